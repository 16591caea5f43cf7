// EncryptionDevice, the algorithms and GroupEncryptionCrypto: every operation
// and every error code, on the memory store and (where it matters) SQLite.
#include "helpers.h"
#include "recording_client.h"
#include "store_fixtures.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "towns/crypto/encoding.h"
#include "towns/proto/payloads.pb.h"
#include "towns/olm/olm.h"
#include "towns/protocol/inputs.h"
#include "towns/exchange/key_exchange.h"
#include "towns/protocol/session_sharing.h"

using namespace towns;
using crypto::SecretBytes;

namespace {

const std::string kStream = "20" + std::string(62, '1');
const std::string kOtherStream = "20" + std::string(62, '2');
constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;
constexpr auto kHybrid = GroupEncryptionAlgorithm::kHybridGroupEncryption;

using test::miniblock;
using test::RecordingClient;

// A device and the facade over it (tests reach the device's parts through dev).
struct Device {
  MemoryCryptoStore store;
  RecordingClient client;
  EncryptionDevice dev{store};
  GroupEncryptionCrypto crypto{&client, dev};
  Device() { crypto.init(); }
};

std::string text(const SecretBytes& b) { return std::string(b.view()); }
SecretBytes secret(std::string_view s) { return SecretBytes(s); }

// Imports one key with the device's import_sessions: its outcome, or its error thrown.
ImportOutcome import_one(EncryptionDevice& dev, std::string_view stream, std::string_view session_id,
                         const SecretBytes& key, GroupEncryptionAlgorithm algorithm) {
  auto r = dev.import_sessions({SessionImport{std::string(stream), std::string(session_id), key, algorithm}});
  REQUIRE(r.size() == 1);
  if (r[0].error) throw *r[0].error;
  REQUIRE(r[0].value.has_value());
  return *r[0].value;
}

river::ExportedDevice parse_exported(const SecretBytes& bytes) {
  river::ExportedDevice d;
  REQUIRE(d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  return d;
}
SecretBytes serialize(const river::ExportedDevice& d) { return SecretBytes(std::string_view(d.SerializeAsString())); }

EncryptedData megolm_event(Device& d, const std::string& s) {
  return d.crypto.encrypt_group_event(kStream, test::bytes(s), kMegolm);
}

}  // namespace

TEST_CASE("device: created once, reloaded with the same keys, default pickle key") {
  MemoryCryptoStore store;
  std::string device_key, fallback_key;
  {
    EncryptionDevice dev(store);
    GroupEncryptionCrypto c(nullptr, dev);
    REQUIRE_ERROR(c.get_user_device(), NOT_INITIALIZED);
    c.init();
    device_key = c.get_user_device().device_key;
    fallback_key = c.get_user_device().fallback_key;
    CHECK(device_key.size() == 43);
    CHECK(fallback_key.size() == 43);
    CHECK(dev.pickle_key().view() == kDefaultPickleKey);
  }
  EncryptionDevice again_dev(store);
  GroupEncryptionCrypto again(nullptr, again_dev);
  again.init();
  CHECK(again.get_user_device().device_key == device_key);
  CHECK(again.get_user_device().fallback_key == fallback_key);

  // Once published, the next init generates a fresh fallback key (as the client does).
  again_dev.account().mark_keys_as_published();
  GroupEncryptionCrypto third(nullptr, store);
  third.init();
  CHECK(third.get_user_device().fallback_key != fallback_key);
}

TEST_CASE("device: a wrong pickle key is an error and changes nothing") {
  MemoryCryptoStore store;
  GroupEncryptionCrypto c(nullptr, store);
  c.init({.pickle_key = SecretBytes(std::string_view("right"))});
  auto pickle = store.get_account();
  GroupEncryptionCrypto other(nullptr, store);
  REQUIRE_ERROR(other.init({.pickle_key = SecretBytes(std::string_view("wrong"))}), OLM_BAD_ACCOUNT_KEY);
  CHECK(store.get_account() == pickle);
  REQUIRE_ERROR(other.init({.pickle_key = SecretBytes()}), INVALID_ARGUMENT);
  CHECK(store.get_account() == pickle);
}

TEST_CASE("device: an empty pickle key is refused, where the client takes its default key") {
  // The client ignores an empty pickle key and uses DEFAULT_KEY (docs/compat.md):
  // a caller that meant to protect the store would get a public key silently.
  MemoryCryptoStore store;
  GroupEncryptionCrypto c(nullptr, store);
  REQUIRE_ERROR(c.init({.pickle_key = SecretBytes()}), INVALID_ARGUMENT);
  CHECK_FALSE(store.get_account().has_value());
  REQUIRE_ERROR(c.get_user_device(), NOT_INITIALIZED);
  // So does a SQLite store, before the file exists.
  test::TempDir dir;
  REQUIRE_ERROR(SqliteCryptoStore::open(dir.file("d.db"), SecretBytes()), INVALID_ARGUMENT);
  CHECK_FALSE(std::filesystem::exists(dir.file("d.db")));
  // Asked for by name, the default key is accepted.
  c.init({.pickle_key = SecretBytes(kDefaultPickleKey)});
  GroupEncryptionCrypto by_default(nullptr, store);
  by_default.init();
  CHECK(by_default.get_user_device().device_key == c.get_user_device().device_key);
}

TEST_CASE("device: sign and verify") {
  Device d;
  auto& account = d.dev.account();
  auto sig = account.sign("hello");
  auto& olm = olm_encryption_delegate();
  olm.ed25519_verify(account.ed25519_key(), "hello", sig);
  REQUIRE_ERROR(olm.ed25519_verify(account.ed25519_key(), "hellO", sig), OLM_BAD_MESSAGE_MAC);
}

TEST_CASE("olm to-device: encrypt to a device's fallback key, decrypt, refuse bad input") {
  Device a, b;
  auto bob = b.crypto.get_user_device();
  auto out = a.crypto.encrypt_with_device_keys("payload for bob", {bob});
  REQUIRE(out.size() == 1);
  auto sender = a.crypto.get_user_device().device_key;
  const auto account_before = b.store.get_account();
  CHECK(text(b.crypto.decrypt_with_device_key(out.at(bob.device_key), sender)) == "payload for bob");
  // The account is not written again (the client stores it after every one).
  CHECK(b.store.get_account() == account_before);
  // Each message uses a fresh session: decrypting it again works too.
  CHECK(text(b.crypto.decrypt_with_device_key(out.at(bob.device_key), sender)) == "payload for bob");

  REQUIRE_ERROR(b.crypto.decrypt_with_device_key(out.at(bob.device_key), bob.device_key), DECRYPTION_FAILED);
  REQUIRE_ERROR(b.crypto.decrypt_with_device_key("garbage", sender), DECRYPTION_FAILED);
  // The device's own call gives what the facade gives.
  CHECK(text(b.dev.account().decrypt_prekey_message(out.at(bob.device_key), sender)) == "payload for bob");
  // A message for another device.
  Device c;
  REQUIRE_ERROR(c.crypto.decrypt_with_device_key(out.at(bob.device_key), sender), DECRYPTION_FAILED);
  REQUIRE_ERROR(a.crypto.encrypt_with_device_keys("x", {{"not a key", "also not"}}), OLM_INVALID_BASE64);
}

TEST_CASE("payload limit: 49152 UTF-16 units, counted as the client counts") {
  Device a, b;
  auto bob = b.crypto.get_user_device();
  std::string max(kMaxPlaintextLength, 'x');
  CHECK_NOTHROW(a.crypto.encrypt_with_device_keys(max, {bob}));
  REQUIRE_ERROR(a.crypto.encrypt_with_device_keys(max + "x", {bob}), PAYLOAD_TOO_LARGE);
  // U+00E9 is two UTF-8 bytes but one UTF-16 unit; U+1F600 is four bytes, two units.
  CHECK(utf16_length("\xc3\xa9") == 1);
  CHECK(utf16_length("\xf0\x9f\x98\x80") == 2);
  CHECK(utf16_length("\xff") == 1);
  std::string accents;
  for (size_t i = 0; i < kMaxPlaintextLength; ++i) accents += "\xc3\xa9";
  CHECK_NOTHROW(a.crypto.encrypt_group_event_deprecated_v0(kStream, accents, kMegolm));
  REQUIRE_ERROR(a.crypto.encrypt_group_event_deprecated_v0(kStream, accents + "a", kMegolm), PAYLOAD_TOO_LARGE);
  // Version 1 encrypts base64 of the bytes: 36864 bytes make exactly 49152 characters.
  CHECK_NOTHROW(a.crypto.encrypt_group_event(kStream, std::vector<uint8_t>(36864, 1), kMegolm));
  REQUIRE_ERROR(a.crypto.encrypt_group_event(kStream, std::vector<uint8_t>(36865, 1), kMegolm), PAYLOAD_TOO_LARGE);
  REQUIRE_ERROR(b.crypto.decrypt_with_device_key(std::string(kMaxPlaintextLength + 1, 'A'), "k"), PAYLOAD_TOO_LARGE);
}

TEST_CASE("megolm: outbound session created, inbound counterpart stored, shared once") {
  Device a;
  CHECK_FALSE(a.crypto.has_outbound_session(kStream, kMegolm));
  auto id = a.crypto.ensure_outbound_session(kStream, kMegolm);
  CHECK(a.crypto.has_outbound_session(kStream, kMegolm));
  CHECK(a.crypto.ensure_outbound_session(kStream, kMegolm) == id);
  REQUIRE(a.client.shared.size() == 1);
  CHECK(a.client.shared[0].session.session_id == id);
  CHECK(a.client.shared[0].algorithm == kMegolm);
  CHECK(a.crypto.has_session_key(kStream, id, kMegolm));
  CHECK(a.crypto.get_group_session_ids(kStream) == std::vector<std::string>{id});

  auto e = megolm_event(a, "first");
  CHECK(e.algorithm == kGroupEncryptionAlgorithmId);
  CHECK(e.sender_key == a.crypto.get_user_device().device_key);
  CHECK(e.session_id == id);
  CHECK(e.version == EncryptedDataVersion::kVersion1);
  auto d = a.crypto.decrypt_group_event(kStream, e);  // the sender reads its own messages
  CHECK(text(d.plaintext) == "first");
  CHECK(d.message_index == 0u);
  CHECK(a.crypto.decrypt_group_event(kStream, megolm_event(a, "second")).message_index == 1u);
}

TEST_CASE("megolm: receiver imports the shared key and decrypts both versions") {
  Device a, b;
  auto e1 = megolm_event(a, "v1 payload");
  auto e0 = a.crypto.encrypt_group_event_deprecated_v0(kStream, "v0 text", kMegolm);
  CHECK(e0.version == EncryptedDataVersion::kVersion0);
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, e1), SESSION_NOT_FOUND);
  try {
    b.crypto.decrypt_group_event(kStream, e1);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("Session not found") != std::string::npos);
  }
  auto result = b.crypto.import_session_keys(kStream, {a.client.shared[0].session});
  CHECK(result.imported.size() == 1);
  CHECK(text(b.crypto.decrypt_group_event(kStream, e1).plaintext) == "v1 payload");
  CHECK(text(b.crypto.decrypt_group_event(kStream, e0).plaintext) == "v0 text");
  // The session is held for that stream only.
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kOtherStream, e1), SESSION_NOT_FOUND);
}

TEST_CASE("megolm: refused events carry the client's codes") {
  Device a;
  auto e = megolm_event(a, "x");
  for (auto clear : {&EncryptedData::sender_key, &EncryptedData::session_id, &EncryptedData::ciphertext}) {
    auto bad = e;
    (bad.*clear).clear();
    REQUIRE_ERROR(a.crypto.decrypt_group_event(kStream, bad), GROUP_DECRYPTION_MISSING_FIELDS);
  }
  auto unset = e;
  unset.algorithm = {};
  REQUIRE_ERROR(a.crypto.decrypt_group_event(kStream, unset), GROUP_DECRYPTION_UNSET_ALGORITHM);
  auto unknown = e;
  unknown.algorithm = "m.megolm.v1.aes-sha2";
  REQUIRE_ERROR(a.crypto.decrypt_group_event(kStream, unknown), GROUP_DECRYPTION_UNKNOWN_ALGORITHM);
  auto version = e;
  version.version = static_cast<EncryptedDataVersion>(7);
  REQUIRE_ERROR(a.crypto.decrypt_group_event(kStream, version), GROUP_DECRYPTION_INVALID_VERSION);
  auto tampered = e;
  auto& ct = tampered.ciphertext;
  ct[ct.size() / 2] = ct[ct.size() / 2] == 'A' ? 'B' : 'A';
  REQUIRE_ERROR(a.crypto.decrypt_group_event(kStream, tampered), DECRYPTION_FAILED);
  auto garbage = e;
  garbage.ciphertext = "%%%";
  REQUIRE_ERROR(a.crypto.decrypt_group_event(kStream, garbage), DECRYPTION_FAILED);
}

TEST_CASE("megolm import: id check, first-known-index rule, failures change nothing") {
  Device a, b;
  auto id = a.crypto.ensure_outbound_session(kStream, kMegolm);
  std::vector<EncryptedData> events;
  for (int i = 0; i < 4; ++i) events.push_back(megolm_event(a, "m" + std::to_string(i)));
  auto exported = a.dev.inbound().export_session(kStream, id);
  REQUIRE(exported.has_value());
  CHECK(a.dev.inbound().first_known_index(kStream, id) == 0u);
  auto session = olm::InboundGroupSession::import_session(exported->session_key);
  auto at = [&](uint32_t index) {
    return GroupEncryptionSession{kStream, id, session.export_session(index), std::string(kGroupEncryptionAlgorithmId)};
  };

  auto wrong_id = at(0);
  wrong_id.session_id = "not" + id;
  auto r = b.crypto.import_session_keys(kStream, {wrong_id});
  CHECK(r.failed == std::vector<std::string>{"not" + id});
  CHECK_FALSE(b.crypto.has_session_key(kStream, id, kMegolm));
  CHECK(b.crypto.get_group_session_ids(kStream).empty());

  auto garbage = at(0);
  garbage.session_key = secret("definitely not a key");
  CHECK(b.crypto.import_session_keys(kStream, {garbage}).failed.size() == 1);
  CHECK(b.store.all_inbound_sessions().empty());

  b.crypto.import_session_keys(kStream, {at(2)});
  CHECK(b.dev.inbound().first_known_index(kStream, id) == 2u);
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, events[1]), DECRYPTION_FAILED);  // before index 2
  CHECK(text(b.crypto.decrypt_group_event(kStream, events[2]).plaintext) == "m2");
  b.crypto.import_session_keys(kStream, {at(3)});  // later index: existing kept
  CHECK(b.dev.inbound().first_known_index(kStream, id) == 2u);
  CHECK(text(b.crypto.decrypt_group_event(kStream, events[2]).plaintext) == "m2");
  b.crypto.import_session_keys(kStream, {at(0)});  // earlier index: replaces
  CHECK(text(b.crypto.decrypt_group_event(kStream, events[0]).plaintext) == "m0");
  CHECK(b.dev.inbound().first_known_index(kStream, id) == 0u);
  CHECK(import_one(b.dev, kStream, id, at(1).session_key, kMegolm) == ImportOutcome::kKeptExisting);

  // The session-key (signed) format is accepted too.
  Device c;
  auto key = a.dev.outbound().session_key(kStream);
  REQUIRE(key.has_value());
  CHECK(key->session_id == id);
  CHECK(import_one(c.dev, kStream, id, key->key, kMegolm) == ImportOutcome::kImported);
  CHECK(text(c.crypto.decrypt_group_event(kStream, megolm_event(a, "later")).plaintext) == "later");
}

namespace {
// libolm's delegate, counting the pickles of inbound sessions read from keys,
// and refusing to pickle session `refuse` read from index 0 (as libolm would
// refuse a session it cannot write).
struct PickleCountingDelegate : EncryptionDelegate {
  EncryptionDelegate& olm = olm_encryption_delegate();
  int pickles = 0;
  std::string refuse;
  struct Inbound : DelegateInboundGroupSession {
    PickleCountingDelegate& d;
    std::unique_ptr<DelegateInboundGroupSession> s;
    Inbound(PickleCountingDelegate& d, std::unique_ptr<DelegateInboundGroupSession> s) : d(d), s(std::move(s)) {}
    std::string pickle(crypto::SecretView k) const override {
      ++d.pickles;
      if (s->session_id() == d.refuse && s->first_known_index() == 0) throw Error(ErrorCode::IMPORT_FAILED, "refused to pickle");
      return s->pickle(k);
    }
    std::string session_id() const override { return s->session_id(); }
    uint32_t first_known_index() const override { return s->first_known_index(); }
    crypto::SecretBytes export_session(uint32_t i) const override { return s->export_session(i); }
    GroupPlaintext decrypt(std::string_view m) override { return s->decrypt(m); }
  };
  std::unique_ptr<DelegateAccount> create_account(crypto::RandomSource& rng) override {
    return olm.create_account(rng);
  }
  std::unique_ptr<DelegateAccount> unpickle_account(crypto::SecretView k, std::string_view p) override {
    return olm.unpickle_account(k, p);
  }
  std::unique_ptr<DelegateOutboundGroupSession> create_outbound_group_session(crypto::RandomSource& rng) override {
    return olm.create_outbound_group_session(rng);
  }
  std::unique_ptr<DelegateOutboundGroupSession> unpickle_outbound_group_session(crypto::SecretView k,
                                                                                std::string_view p) override {
    return olm.unpickle_outbound_group_session(k, p);
  }
  std::unique_ptr<DelegateInboundGroupSession> inbound_group_session_from_key(crypto::SecretView key) override {
    return std::make_unique<Inbound>(*this, olm.inbound_group_session_from_key(key));
  }
  std::unique_ptr<DelegateInboundGroupSession> unpickle_inbound_group_session(crypto::SecretView k,
                                                                              std::string_view p) override {
    return olm.unpickle_inbound_group_session(k, p);
  }
  void ed25519_verify(std::string_view key, std::string_view message, std::string_view signature) override {
    olm.ed25519_verify(key, message, signature);
  }
};
}  // namespace

TEST_CASE("megolm import: only the keys that will be written are pickled; a key that does not pickle fails alone") {
  Device senders[3];
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<olm::InboundGroupSession>> sessions;
  for (auto& a : senders) {
    ids.push_back(a.crypto.ensure_outbound_session(kStream, kMegolm));
    sessions.push_back(std::make_unique<olm::InboundGroupSession>(
        olm::InboundGroupSession::import_session(a.dev.inbound().export_session(kStream, ids.back())->session_key)));
  }
  REQUIRE(std::set<std::string>(ids.begin(), ids.end()).size() == 3);
  auto key = [&](int s, uint32_t index) {
    return SessionImport{kStream, ids[s], sessions[s]->export_session(index), kMegolm};
  };
  MemoryCryptoStore store;
  PickleCountingDelegate delegate;
  EncryptionDevice dev(store, crypto::os_random(), delegate);
  dev.init();
  auto outcomes = [](const std::vector<EncryptionDevice::ImportResult>& r) {
    std::vector<std::string> out;
    for (const auto& x : r) {
      out.push_back(x.error ? std::string(x.error->code_name())
                            : *x.value == ImportOutcome::kImported ? "imported" : "kept");
    }
    return out;
  };
  using V = std::vector<std::string>;
  // Session 0 twice (index 2, then the better index 1): one pickle, of the better.
  CHECK(outcomes(dev.import_sessions({key(0, 2), key(0, 1), key(1, 1)}, 2)) == V{"imported", "imported", "imported"});
  CHECK(delegate.pickles == 2);
  CHECK(dev.inbound().first_known_index(kStream, ids[0]) == 1u);
  // Held at the same or a better index: nothing pickled. A better index and a new session: two.
  delegate.pickles = 0;
  CHECK(outcomes(dev.import_sessions({key(0, 1), key(1, 2), key(0, 0), key(2, 1)}, 2)) ==
        V{"kept", "kept", "imported", "imported"});
  CHECK(delegate.pickles == 2);
  CHECK(dev.inbound().first_known_index(kStream, ids[0]) == 0u);
  CHECK(dev.inbound().first_known_index(kStream, ids[1]) == 1u);
  // Session 2's better key (index 0) does not pickle: it fails as if it could not be
  // read, so the index-2 key before it in the batch is judged against what is held
  // (kept), and session 1's better key is written.
  delegate.refuse = ids[2];
  delegate.pickles = 0;
  CHECK(outcomes(dev.import_sessions({key(2, 2), key(2, 0), key(1, 0)}, 2)) == V{"kept", "IMPORT_FAILED", "imported"});
  CHECK(dev.inbound().first_known_index(kStream, ids[2]) == 1u);
  CHECK(dev.inbound().first_known_index(kStream, ids[1]) == 0u);
  // When session 2 is not held, its index-2 key is imported in the failed one's place.
  MemoryCryptoStore store2;
  EncryptionDevice dev2(store2, crypto::os_random(), delegate);
  dev2.init();
  CHECK(outcomes(dev2.import_sessions({key(2, 2), key(2, 0)}, 2)) == V{"imported", "IMPORT_FAILED"});
  CHECK(dev2.inbound().first_known_index(kStream, ids[2]) == 2u);
}

TEST_CASE("grpaes: session from the latest miniblock, shared, encrypt and decrypt both versions") {
  Device a, b;
  CHECK_FALSE(a.crypto.has_hybrid_session(kStream));
  auto id = a.crypto.ensure_outbound_session(kStream, kHybrid);
  CHECK(id.size() == 64);
  CHECK(a.crypto.has_hybrid_session(kStream));
  REQUIRE(a.client.shared.size() == 1);
  auto shared = a.client.shared[0].session;
  CHECK(shared.algorithm == kHybridGroupEncryptionAlgorithmId);
  auto key = a.dev.hybrid().get(kStream, id);
  REQUIRE(key.has_value());
  CHECK(key->miniblock_num == 10);
  CHECK(crypto::hex_encode(crypto::as_bytes(key->session_id)) == id);

  auto e1 = a.crypto.encrypt_group_event(kStream, test::bytes("hybrid v1"), kHybrid);
  CHECK(e1.algorithm == "grpaes");
  CHECK(e1.iv_bytes.size() == 12);
  CHECK(e1.ciphertext_bytes.size() == 9 + 16);
  CHECK(crypto::hex_encode(e1.session_id_bytes) == id);
  auto e0 = a.crypto.encrypt_group_event_deprecated_v0(kStream, "hybrid v0", kHybrid);
  CHECK(e0.version == EncryptedDataVersion::kVersion0);
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, e1), SESSION_NOT_FOUND);
  CHECK(b.crypto.import_session_keys(kStream, {shared}).imported.size() == 1);
  CHECK(text(b.crypto.decrypt_group_event(kStream, e1).plaintext) == "hybrid v1");
  CHECK(text(b.crypto.decrypt_group_event(kStream, e0).plaintext) == "hybrid v0");
  CHECK_FALSE(b.crypto.decrypt_group_event(kStream, e1).message_index.has_value());

  // A newer miniblock's session becomes the outbound one.
  a.dev.hybrid().create(kStream, 20, std::vector<uint8_t>(32, 2));
  auto newer = a.crypto.ensure_outbound_session(kStream, kHybrid);
  CHECK(newer != id);
  CHECK(a.crypto.get_group_session_ids(kStream).size() == 2);
  REQUIRE_ERROR(a.crypto.encrypt_group_event(kStream, {}, kHybrid), EMPTY_PAYLOAD);
}

TEST_CASE("version-0 and olm plaintexts come back byte for byte, NUL and invalid UTF-8 included") {
  // The client's olm binding ends megolm version-0 and olm plaintexts at the
  // first NUL, and its strings replace invalid UTF-8 (docs/compat.md).
  Device a, b;
  const std::string msg("abc\0def\xff", 8);
  for (auto alg : {kMegolm, kHybrid}) {
    auto v0 = a.crypto.encrypt_group_event_deprecated_v0(kStream, msg, alg);
    CHECK(v0.version == EncryptedDataVersion::kVersion0);
    CHECK(text(a.crypto.decrypt_group_event(kStream, v0).plaintext) == msg);
    auto v1 = a.crypto.encrypt_group_event(kStream, test::bytes(msg), alg);
    CHECK(text(a.crypto.decrypt_group_event(kStream, v1).plaintext) == msg);
  }
  auto bob = b.crypto.get_user_device();
  auto out = a.crypto.encrypt_with_device_keys(msg, {bob});
  CHECK(text(b.crypto.decrypt_with_device_key(out.at(bob.device_key), a.crypto.get_user_device().device_key)) == msg);
}

TEST_CASE("grpaes: only 32-byte keys are imported, where the client takes any length") {
  // WebCrypto would use 16 and 24 bytes as AES-128 and AES-192 (docs/compat.md).
  for (size_t length : {size_t{0}, size_t{16}, size_t{24}, size_t{31}, size_t{33}, size_t{32}}) {
    INFO("key length " << length);
    const auto stream = crypto::hex_decode(kStream);
    const std::vector<uint8_t> key(length, 0x11);
    const std::vector<uint8_t> hash(32, 7);
    auto id = hybrid_session_key_hash(stream, key, 3, hash);
    river::HybridGroupSessionKey k;
    k.set_session_id(std::string(id.begin(), id.end()));
    k.set_stream_id(std::string(stream.begin(), stream.end()));
    k.set_key(std::string(key.begin(), key.end()));
    k.set_miniblock_num(3);
    k.set_miniblock_hash(std::string(hash.begin(), hash.end()));
    const auto id_hex = crypto::hex_encode(id);
    const auto key_hex = crypto::hex_encode_secret(crypto::as_bytes(k.SerializeAsString()));
    Device d;
    if (length == 32) {
      CHECK(import_one(d.dev, kStream, id_hex, key_hex, kHybrid) == ImportOutcome::kImported);
      auto e = d.crypto.encrypt_group_event(kStream, test::bytes("aes-256"), kHybrid);
      CHECK(crypto::hex_encode(e.session_id_bytes) == id_hex);
      continue;
    }
    REQUIRE_ERROR(import_one(d.dev, kStream, id_hex, key_hex, kHybrid), IMPORT_FAILED);
    CHECK(d.store.all_hybrid_sessions().empty());
    // Nor in an exported device.
    auto exported = parse_exported(d.crypto.export_device());
    auto* h = exported.add_hybridgroupsessions();
    h->set_session_id(id_hex);
    h->set_stream_id(kStream);
    h->set_session_key(k.SerializeAsString());
    h->set_miniblock_num(3);
    MemoryCryptoStore fresh;
    GroupEncryptionCrypto copy(nullptr, fresh);
    REQUIRE_ERROR(copy.init({.from_exported_device = serialize(exported)}), IMPORT_FAILED);
    CHECK(fresh.all_hybrid_sessions().empty());
  }
}

TEST_CASE("grpaes: of sessions with the same miniblock number, the lowest id encrypts") {
  // Three members' sessions of one miniblock, held by one device: it encrypts
  // with the lowest id however they arrived and whichever it read last.
  Device a, b, c, d;
  std::vector<GroupEncryptionSession> keys;
  for (Device* x : {&a, &b, &c}) {
    x->crypto.ensure_outbound_session(kStream, kHybrid, {.miniblock_info = miniblock(4)});
    keys.push_back(x->client.shared.at(0).session);
  }
  std::sort(keys.begin(), keys.end(), [](const auto& x, const auto& y) { return x.session_id > y.session_id; });
  for (const auto& k : keys) REQUIRE(d.crypto.import_session_keys(kStream, {k}).imported.size() == 1);
  const std::string lowest = keys.back().session_id;
  auto sealed_with = [&] {
    auto e = d.crypto.encrypt_group_event(kStream, test::bytes("x"), kHybrid);
    return crypto::hex_encode(e.session_id_bytes);
  };
  CHECK(sealed_with() == lowest);
  CHECK(d.crypto.export_group_session(kStream, keys.front().session_id).has_value());
  CHECK(sealed_with() == lowest);
  GroupEncryptionCrypto reloaded(nullptr, d.store);  // a fresh cache reads the store again
  reloaded.init();
  auto e = reloaded.encrypt_group_event(kStream, test::bytes("y"), kHybrid);
  CHECK(crypto::hex_encode(e.session_id_bytes) == lowest);
  // A later miniblock's session takes over.
  d.dev.hybrid().create(kStream, 5, std::vector<uint8_t>(32, 5));
  CHECK(sealed_with() != lowest);
}

TEST_CASE("grpaes: refused events and refused imports") {
  Device a, b;
  auto e = a.crypto.encrypt_group_event(kStream, test::bytes("secret"), kHybrid);
  auto shared = a.client.shared[0].session;
  b.crypto.import_session_keys(kStream, {shared});
  // The client's missing-fields check only ever catches the sender key.
  auto no_sender = e;
  no_sender.sender_key = {};
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, no_sender), HYBRID_GROUP_DECRYPTION_MISSING_FIELDS);
  auto no_session = e;
  no_session.session_id_bytes = {};
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, no_session), SESSION_NOT_FOUND);
  for (auto clear : {&EncryptedData::ciphertext_bytes, &EncryptedData::iv_bytes}) {
    auto bad = e;
    (bad.*clear).clear();
    REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, bad), DECRYPTION_FAILED);
  }
  auto iv = e;
  iv.iv_bytes = Bytes(16, 'x');
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, iv), DECRYPTION_FAILED);
  auto shortct = e;
  shortct.ciphertext_bytes = Bytes(16, 'x');
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, shortct), DECRYPTION_FAILED);
  for (size_t i = 0; i < e.ciphertext_bytes.size(); ++i) {
    auto flipped = e;
    flipped.ciphertext_bytes[i] ^= 0x01;
    REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, flipped), DECRYPTION_FAILED);
  }
  auto version = e;
  version.version = static_cast<EncryptedDataVersion>(2);
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, version), GROUP_DECRYPTION_INVALID_VERSION);

  Device c;
  auto& dev = c.dev;
  REQUIRE_ERROR(import_one(dev, kOtherStream, shared.session_id, shared.session_key, kHybrid), IMPORT_FAILED);
  REQUIRE_ERROR(import_one(dev, kStream, std::string(64, 'a'), shared.session_key, kHybrid), IMPORT_FAILED);
  REQUIRE_ERROR(import_one(dev, kStream, shared.session_id, secret("zz"), kHybrid), IMPORT_FAILED);
  REQUIRE_ERROR(import_one(dev, kStream, shared.session_id, secret("ffff"), kHybrid), IMPORT_FAILED);
  // A key whose id is not its hash (key bytes changed).
  auto raw = crypto::hex_decode(shared.session_key.view());
  // (Parsed with the protobuf class: HybridSessionKey's encode/decode are not
  // exported from the shared library.)
  river::HybridGroupSessionKey parsed;
  REQUIRE(parsed.ParseFromArray(raw.data(), static_cast<int>(raw.size())));
  CHECK(crypto::hex_encode(crypto::as_bytes(parsed.session_id())) == shared.session_id);
  (*parsed.mutable_key())[0] ^= 1;
  auto forged = parsed.SerializeAsString();
  REQUIRE_ERROR(import_one(dev, kStream, shared.session_id, crypto::hex_encode_secret(crypto::as_bytes(forged)), kHybrid),
                IMPORT_FAILED);
  CHECK(c.store.all_hybrid_sessions().empty());
  REQUIRE_ERROR(dev.hybrid().create("not hex", 1, {}), INVALID_ARGUMENT);

  GroupEncryptionCrypto no_client(nullptr, c.store);
  no_client.init();
  REQUIRE_ERROR(no_client.ensure_outbound_session(kStream, kHybrid), INVALID_ARGUMENT);
  CHECK(no_client.ensure_outbound_session(kStream, kHybrid, {.miniblock_info = miniblock(3)}).size() == 64);
}

TEST_CASE("export and import of room keys, with progress, and as JSON") {
  Device a, b;
  a.crypto.ensure_outbound_session(kStream, kMegolm);
  a.crypto.ensure_outbound_session(kStream, kHybrid);
  a.crypto.ensure_outbound_session(kOtherStream, kMegolm);
  auto keys = a.crypto.export_room_keys();
  REQUIRE(keys.size() == 3);
  auto one = a.crypto.export_group_session(kStream, keys[0].session_id);
  REQUIRE(one.has_value());
  CHECK_FALSE(a.crypto.export_group_session(kStream, "missing").has_value());

  std::vector<ImportProgress> seen;
  auto extra = keys;
  extra.push_back({"", "no-stream", secret("k"), std::string(kGroupEncryptionAlgorithmId)});
  extra.push_back({kStream, "weird", secret("k"), "some.other.algorithm"});
  auto result = b.crypto.import_room_keys(extra, [&](const ImportProgress& p) { seen.push_back(p); });
  CHECK(result.imported.size() == 3);
  CHECK(result.failed == std::vector<std::string>{"no-stream"});
  CHECK(result.skipped == std::vector<std::string>{"weird"});
  REQUIRE(seen.size() == 4);  // the unknown algorithm counts as neither
  CHECK(seen.back().successes == 3);
  CHECK(seen.back().failures == 1);
  CHECK(seen.back().total == 5);
  CHECK(b.crypto.get_group_session_ids(kStream).size() == 2);

  Device c;
  std::string json = "[";
  for (size_t i = 0; i < keys.size(); ++i) {
    json += (i ? "," : "") + std::string("{\"streamId\":\"") + keys[i].stream_id + "\",\"sessionId\":\"" +
            keys[i].session_id + "\",\"sessionKey\":\"" + text(keys[i].session_key) + "\",\"algorithm\":\"" +
            keys[i].algorithm + "\"}";
  }
  json += "]";
  CHECK(c.crypto.import_room_keys_as_json(json).imported.size() == 3);
  REQUIRE_ERROR(c.crypto.import_room_keys_as_json("{\"not\":\"a list\"}"), INVALID_ARGUMENT);
  REQUIRE_ERROR(c.crypto.import_room_keys_as_json("[1,2]"), INVALID_ARGUMENT);
  REQUIRE_ERROR(c.crypto.import_room_keys_as_json("[{\"sessionKey\": "), INVALID_ARGUMENT);  // not JSON
  REQUIRE_ERROR(c.crypto.import_room_keys_as_json("[{"), INVALID_ARGUMENT);
}

TEST_CASE("exported device: imported into a fresh device, decrypts old messages, continues outbound sessions") {
  Device a;
  auto old_megolm = megolm_event(a, "old megolm");
  auto old_hybrid = a.crypto.encrypt_group_event(kStream, test::bytes("old hybrid"), kHybrid);
  auto exported_bytes = a.crypto.export_device();
  auto exported = parse_exported(exported_bytes);
  CHECK(exported.picklekey() == kDefaultPickleKey);
  CHECK(exported.outboundsessions_size() == 1);
  CHECK(exported.inboundsessions_size() == 1);
  CHECK(exported.hybridgroupsessions_size() == 1);

  test::TempDir dir;
  auto store = SqliteCryptoStore::open(dir.file("copy.db"), "another key");
  GroupEncryptionCrypto copy(nullptr, *store);
  copy.init({.pickle_key = SecretBytes(std::string_view("another key")), .from_exported_device = exported_bytes});
  CHECK(copy.get_user_device().device_key == a.crypto.get_user_device().device_key);
  CHECK(text(copy.decrypt_group_event(kStream, old_megolm).plaintext) == "old megolm");
  CHECK(text(copy.decrypt_group_event(kStream, old_hybrid).plaintext) == "old hybrid");
  auto next = copy.encrypt_group_event(kStream, test::bytes("continued"), kMegolm);
  CHECK(next.session_id == old_megolm.session_id);
  // The export was advanced past the block `a` reserved, so the two devices
  // never share an index.
  CHECK(a.crypto.decrypt_group_event(kStream, next).message_index == OutboundSessions::kReservation);
  CHECK(parse_exported(copy.export_device()).picklekey() == "another key");

  // A damaged export is refused whole: nothing lands in the store.
  auto broken = exported;
  broken.mutable_inboundsessions(0)->set_session("garbage");
  MemoryCryptoStore empty;
  GroupEncryptionCrypto refused(nullptr, empty);
  REQUIRE_ERROR(refused.init({.from_exported_device = serialize(broken)}), IMPORT_FAILED);
  CHECK_FALSE(empty.get_account().has_value());
  auto wrong_key = exported;
  wrong_key.set_picklekey("not the key");
  REQUIRE_ERROR(refused.init({.from_exported_device = serialize(wrong_key)}), IMPORT_FAILED);
  auto mismatched = exported;
  mismatched.mutable_outboundsessions(0)->set_session_id("other");
  REQUIRE_ERROR(refused.init({.from_exported_device = serialize(mismatched)}), IMPORT_FAILED);
  // Bytes that are not an ExportedDevice at all.
  REQUIRE_ERROR(refused.init({.from_exported_device = secret("\xff\xff not a protobuf")}), INVALID_ARGUMENT);
  CHECK_FALSE(empty.get_account().has_value());
  CHECK(empty.all_inbound_sessions().empty());
}

TEST_CASE("sqlite: reopen and carry on with the same device, session and next index") {
  test::TempDir dir;
  auto path = dir.file("device.db");
  std::string device_key, session_id;
  {
    auto store = SqliteCryptoStore::open(path, "pk");
    GroupEncryptionCrypto c(nullptr, *store);
    c.init({.pickle_key = SecretBytes(std::string_view("pk"))});
    device_key = c.get_user_device().device_key;
    for (int i = 0; i < 3; ++i) session_id = c.encrypt_group_event(kStream, test::bytes("m"), kMegolm).session_id;
  }
  auto store = SqliteCryptoStore::open(path, "pk");
  GroupEncryptionCrypto c(nullptr, *store);
  c.init({.pickle_key = SecretBytes(std::string_view("pk"))});
  CHECK(c.get_user_device().device_key == device_key);
  auto e = c.encrypt_group_event(kStream, test::bytes("after restart"), kMegolm);
  CHECK(e.session_id == session_id);
  // The rest of the reserved block is skipped: never reused, receivers accept gaps.
  CHECK(c.decrypt_group_event(kStream, e).message_index == OutboundSessions::kReservation);
  // And the next one follows directly, without another store write per message.
  CHECK(c.decrypt_group_event(kStream, c.encrypt_group_event(kStream, test::bytes("again"), kMegolm)).message_index ==
        OutboundSessions::kReservation + 1);
}

TEST_CASE("session sharing: build, receive only ours and only what is missing") {
  Device a, b, c;
  auto id = a.crypto.ensure_outbound_session(kStream, kMegolm);
  auto sessions = std::vector<GroupEncryptionSession>{a.client.shared[0].session};
  auto plan = build_group_encryption_sessions(a.crypto, kStream, kMegolm, sessions,
                                              {b.crypto.get_user_device(), a.crypto.get_user_device()});
  CHECK(plan.message.ciphertexts.size() == 1);  // our own device skipped
  CHECK(plan.message.sender_key == a.crypto.get_user_device().device_key);
  CHECK(crypto::hex_encode(plan.message.stream_id) == kStream);

  CHECK(receive_group_encryption_sessions(c.crypto, plan.message).status == ReceiveStatus::kNotForThisDevice);
  auto r = receive_group_encryption_sessions(b.crypto, plan.message);
  CHECK(r.status == ReceiveStatus::kImported);
  CHECK(r.imported == std::vector<std::string>{id});
  CHECK(receive_group_encryption_sessions(b.crypto, plan.message).status == ReceiveStatus::kNothingMissing);

  auto unknown = plan.message;
  unknown.algorithm = "future.algorithm";
  CHECK(receive_group_encryption_sessions(b.crypto, unknown).status == ReceiveStatus::kUnknownAlgorithm);

  // An empty algorithm means megolm.
  Device d;
  auto to_d = build_group_encryption_sessions(a.crypto, kStream, kMegolm, sessions, {d.crypto.get_user_device()});
  to_d.message.algorithm = {};
  CHECK(receive_group_encryption_sessions(d.crypto, to_d.message).status == ReceiveStatus::kImported);

  // More ids than keys: refused, nothing imported.
  Device e;
  auto mismatch = build_group_encryption_sessions(a.crypto, kStream, kMegolm, sessions, {e.crypto.get_user_device()});
  mismatch.message.session_ids.push_back("extra");
  REQUIRE_ERROR(receive_group_encryption_sessions(e.crypto, mismatch.message), IMPORT_FAILED);
  CHECK(e.crypto.get_group_session_ids(kStream).empty());
  // A forged ciphertext for our device: refused, nothing imported.
  auto forged = mismatch.message;
  forged.session_ids = {id};
  forged.ciphertexts[e.crypto.get_user_device().device_key] = "AwogforgedAAAA";
  REQUIRE_ERROR(receive_group_encryption_sessions(e.crypto, forged), DECRYPTION_FAILED);
  CHECK(e.crypto.get_group_session_ids(kStream).empty());
  CHECK(session_keys_json({}).view() == "{}");
  // Escaped as JSON.stringify escapes, runs of plain characters kept whole.
  CHECK(session_keys_json({secret("a\"b\\c\b\f\n\r\t\x01\x1f \u00e9\x7f end"), secret("plain"), secret("")}).view() ==
        "{\"keys\":[\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f \u00e9\x7f end\",\"plain\",\"\"]}");
  CHECK(parse_session_keys_json("{\"keys\":[\"a\"]}") == std::vector<SecretBytes>{secret("a")});
  REQUIRE_ERROR(parse_session_keys_json("[\"a\"]"), INVALID_ARGUMENT);
}

TEST_CASE("GroupEncryptionCrypto from 4 threads: distinct indices, every event decrypts") {
  test::TempDir dir;
  for (bool sqlite : {false, true}) {
    INFO((sqlite ? "sqlite" : "memory"));
    MemoryCryptoStore memory;
    std::unique_ptr<SqliteCryptoStore> file;
    CryptoStore* store = &memory;
    if (sqlite) {
      file = SqliteCryptoStore::open(dir.file("threads.db"), "k");
      store = file.get();
    }
    RecordingClient client;
    GroupEncryptionCrypto c(&client, *store);
    c.init();
    constexpr int kThreads = 4, kEach = 40;
    std::vector<std::vector<EncryptedData>> events(kThreads);
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        try {
          for (int i = 0; i < kEach; ++i) {
            auto alg = i % 2 == 0 ? kMegolm : kHybrid;
            auto e = c.encrypt_group_event(kStream, test::bytes("t" + std::to_string(t) + "i" + std::to_string(i)), alg);
            // Decrypt an earlier event while others encrypt.
            if (!events[t].empty()) c.decrypt_group_event(kStream, events[t].front());
            events[t].push_back(e);
          }
        } catch (...) {
          ++errors;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(errors == 0);
    std::set<uint32_t> indices;
    std::set<std::string> megolm_sessions;
    for (int t = 0; t < kThreads; ++t) {
      for (int i = 0; i < kEach; ++i) {
        auto d = c.decrypt_group_event(kStream, events[t][i]);
        CHECK(text(d.plaintext) == "t" + std::to_string(t) + "i" + std::to_string(i));
        if (d.message_index) {
          megolm_sessions.insert(events[t][i].session_id);
          CHECK(indices.insert(*d.message_index).second);
        }
      }
    }
    CHECK(megolm_sessions.size() == 1);  // the threads agreed on one outbound session
    CHECK(client.shared.size() == 2);     // one per algorithm, each shared once
    CHECK(c.get_group_session_ids(kStream).size() == 2);
    CHECK(indices.size() == kThreads * kEach / 2);
  }
}

TEST_CASE("sqlite: two processes on one device store never reuse a message index") {
  test::TempDir dir;
  auto path = dir.file("device.db");
  {
    auto store = SqliteCryptoStore::open(path, "pk");
    GroupEncryptionCrypto c(nullptr, *store);
    c.init({.pickle_key = SecretBytes(std::string_view("pk"))});
    c.ensure_outbound_session(kStream, kMegolm);
  }
  constexpr int kEach = 30;
  REQUIRE(test::run_in_children(2, [&](int p) {
    auto store = SqliteCryptoStore::open(path, "pk");
    GroupEncryptionCrypto c(nullptr, *store);
    c.init({.pickle_key = SecretBytes(std::string_view("pk"))});
    std::ofstream out(dir.file("events-" + std::to_string(p)), std::ios::binary);
    for (int i = 0; i < kEach; ++i) {
      auto e = c.encrypt_group_event(kStream, test::bytes("p" + std::to_string(p)), kMegolm);
      out << crypto::base64_encode(e.encode(), crypto::Base64Padding::kPadded) << "\n";
    }
  }));
  auto store = SqliteCryptoStore::open(path, "pk");
  GroupEncryptionCrypto c(nullptr, *store);
  c.init({.pickle_key = SecretBytes(std::string_view("pk"))});
  std::set<uint32_t> indices;
  for (int p = 0; p < 2; ++p) {
    std::ifstream in(dir.file("events-" + std::to_string(p)));
    int n = 0;
    for (std::string line; std::getline(in, line); ++n) {
      auto bytes = crypto::base64_decode(line, crypto::Base64Padding::kPadded);
      auto e = EncryptedData::decode(bytes);
      auto d = c.decrypt_group_event(kStream, e);
      CHECK(text(d.plaintext) == "p" + std::to_string(p));
      CHECK(indices.insert(*d.message_index).second);
    }
    CHECK(n == kEach);
  }
  CHECK(indices.size() == 2 * kEach);
}

TEST_CASE("replay: another event with an index already seen is refused; the same event again is fine") {
  Device a, b, c;
  auto e0 = megolm_event(a, "first");
  auto stored = a.store.get_outbound_session(kStream);  // the ratchet at the start of the block
  REQUIRE(stored.has_value());
  auto e1 = megolm_event(a, "second");
  // A sender that reuses index 1 for other content, as a device restored from
  // an old pickle without the reservation would.
  auto rolled_back = olm::OutboundGroupSession::unpickle(kDefaultPickleKey, stored->pickle);
  REQUIRE(rolled_back.message_index() == 0);
  (void)rolled_back.encrypt(test::bytes("index 0"));
  auto forged = e1;
  forged.ciphertext = rolled_back.encrypt(
      crypto::as_bytes(crypto::base64_encode(test::bytes("other content"), crypto::Base64Padding::kPadded)));
  REQUIRE(forged.ciphertext != e1.ciphertext);

  b.crypto.import_session_keys(kStream, {a.client.shared[0].session});
  CHECK(b.crypto.decrypt_group_event(kStream, e0).message_index == 0u);
  CHECK(b.crypto.decrypt_group_event(kStream, e1).message_index == 1u);
  CHECK(b.crypto.decrypt_group_event(kStream, e1).message_index == 1u);  // the same event again: fine
  REQUIRE_ERROR(b.crypto.decrypt_group_event(kStream, forged), REPLAY);

  // Whichever comes first is the one accepted.
  c.crypto.import_session_keys(kStream, {a.client.shared[0].session});
  CHECK(text(c.crypto.decrypt_group_event(kStream, forged).plaintext) == "other content");
  REQUIRE_ERROR(c.crypto.decrypt_group_event(kStream, e1), REPLAY);
}

namespace {
// A device with a seeded source on a memory store, working on `threads`
// threads: two made from one seed hold the same account and draw the same bytes.
auto seeded_device(const std::string& seed, unsigned threads) {
  auto rng = std::make_unique<crypto::SeededRandom>(test::bytes(seed));
  auto store = std::make_unique<MemoryCryptoStore>();
  auto c = std::make_unique<GroupEncryptionCrypto>(nullptr, *store, *rng);
  c->init();
  c->set_parallelism(threads);
  return std::make_tuple(std::move(rng), std::move(store), std::move(c));
}
}  // namespace

TEST_CASE("the parallel paths give exactly what the sequential ones give") {
  // Sharing: two devices with the same seeded source, one on 1 thread, one on 2.
  auto [r1, s1, seq] = seeded_device("parallel sharing", 1);
  auto [r2, s2, par] = seeded_device("parallel sharing", 2);
  REQUIRE(seq->get_user_device().device_key == par->get_user_device().device_key);
  std::vector<UserDevice> targets;
  for (int i = 0; i < 40; ++i) {
    Device d;
    targets.push_back(d.crypto.get_user_device());
  }
  targets.push_back({"not a key", "not a key either"});
  auto id = seq->ensure_outbound_session(kStream, kMegolm);
  REQUIRE(par->ensure_outbound_session(kStream, kMegolm) == id);
  auto a = build_group_encryption_sessions(*seq, kStream, kMegolm, seq->export_room_keys(), targets);
  auto b = build_group_encryption_sessions(*par, kStream, kMegolm, par->export_room_keys(), targets);
  // (Compared entry by entry: protobuf map order depends on the map object.)
  REQUIRE(a.message.ciphertexts.size() == 40);
  REQUIRE(b.message.ciphertexts.size() == 40);
  for (const auto& [key, body] : a.message.ciphertexts) CHECK(b.message.ciphertexts.at(key) == body);
  CHECK(a.message.session_ids[0] == b.message.session_ids[0]);
  CHECK(a.skipped_devices == b.skipped_devices);
  CHECK(a.skipped_devices.size() == 1);

  // A backlog: every result, errors and replays included, as one by one.
  Device sender, other;
  std::vector<EncryptedData> events;
  for (int i = 0; i < 30; ++i) events.push_back(megolm_event(sender, "m" + std::to_string(i)));
  for (int i = 0; i < 10; ++i) events.push_back(megolm_event(other, "o" + std::to_string(i)));
  events.push_back(sender.crypto.encrypt_group_event(kStream, test::bytes("h"), kHybrid));
  auto tampered = events[3];
  tampered.ciphertext = tampered.ciphertext.substr(0, 20);
  events.push_back(tampered);
  events.push_back(events[5]);  // the same event twice is fine
  std::reverse(events.begin(), events.end());
  Device one, many;
  for (auto* d : {&one, &many}) {
    d->crypto.import_session_keys(kStream, {sender.client.shared[0].session, sender.client.shared[1].session});
  }
  many.crypto.set_parallelism(2);
  auto batch = many.crypto.decrypt_group_events(kStream, events);
  REQUIRE(batch.size() == events.size());
  size_t ok = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    INFO("event " << i);
    try {
      auto single = one.crypto.decrypt_group_event(kStream, events[i]);
      REQUIRE(batch[i].value.has_value());
      CHECK_FALSE(batch[i].error.has_value());
      CHECK(batch[i].value->plaintext == single.plaintext);
      CHECK(batch[i].value->message_index == single.message_index);
      ++ok;
    } catch (const Error& e) {
      REQUIRE(batch[i].error.has_value());
      CHECK_FALSE(batch[i].value.has_value());
      CHECK(batch[i].error->code() == e.code());
    }
  }
  CHECK(ok == 32);  // 30 + the hybrid one + the repeated one; the other sender's and the tampered one fail
}

TEST_CASE("answering and receiving side by side give exactly what one at a time gives") {
  // Two devices with the same seeded source and the same keys: one works on 1
  // thread, the other on 2 (export, chunked shares, pre-key decryption, import).
  auto [r1, s1, seq] = seeded_device("parallel answers", 1);
  auto [r2, s2, par] = seeded_device("parallel answers", 2);
  std::vector<GroupEncryptionSession> keys;
  for (int i = 0; i < 230; ++i) {
    Device d;
    d.crypto.ensure_outbound_session(kStream, kMegolm);
    keys.push_back(d.crypto.export_room_keys().at(0));
  }
  // Twice in the batch, the second time from a later index (the first wins);
  // a key under another session's id; a key that is not one.
  Device late;
  late.crypto.ensure_outbound_session(kStream, kMegolm);
  for (int i = 0; i < 3; ++i) late.crypto.encrypt_group_event(kStream, test::bytes("advance"), kMegolm);
  auto late_id = late.crypto.export_room_keys().at(0).session_id;
  keys.push_back(*late.crypto.export_group_session(kStream, late_id));
  keys.push_back(late.crypto.export_room_keys().at(0));
  auto mislabelled = keys[0];
  mislabelled.session_id = keys[1].session_id;
  keys.insert(keys.begin() + 7, mislabelled);
  auto garbage = keys[2];
  garbage.session_key = secret("not a session key");
  keys.insert(keys.begin() + 9, garbage);
  auto i1 = seq->import_session_keys(kStream, keys);
  auto i2 = par->import_session_keys(kStream, keys);
  CHECK(i1.imported == i2.imported);
  CHECK(i1.failed == i2.failed);
  CHECK(i1.imported.size() == 232);  // 230 + the late key, counted for each of its two entries
  CHECK(i1.failed.size() == 2);

  // Export: in id order, the missing id left out, as export_group_session one by one.
  auto ids = seq->group_session_ids(kStream, kMegolm);
  REQUIRE(ids.size() == 231);
  ids.insert(ids.begin() + 100, "no such session");
  for (int round = 0; round < 2; ++round) {  // from the store, then from the cache
    auto a = seq->export_group_sessions(kStream, ids);
    auto b = par->export_group_sessions(kStream, ids);
    REQUIRE(a.size() == 231);
    REQUIRE(b.size() == 231);
    size_t at = 0;
    for (const auto& id : ids) {
      auto one = seq->export_group_session(kStream, id);
      if (!one) continue;
      CHECK(a[at].session_id == id);
      CHECK(text(a[at].session_key) == text(one->session_key));
      CHECK(text(b[at].session_key) == text(one->session_key));
      ++at;
    }
  }

  // Shares of the answer: 231 sessions in 3 chunks, the same bytes one chunk
  // after another (seq) and side by side (par).
  Device requester;
  auto target = requester.crypto.get_user_device();
  auto sessions = seq->export_group_sessions(kStream, seq->group_session_ids(kStream, kMegolm));
  std::vector<GroupEncryptionSessions> one_by_one;
  for (size_t start = 0; start < sessions.size(); start += 100) {
    std::vector<GroupEncryptionSession> chunk(sessions.begin() + static_cast<ptrdiff_t>(start),
                                              sessions.begin() + static_cast<ptrdiff_t>(std::min(sessions.size(), start + 100)));
    one_by_one.push_back(build_group_encryption_sessions(*seq, kStream, kMegolm, chunk, {target}).message);
  }
  auto side_by_side = build_solicitation_shares(*par, kStream, target, sessions);
  REQUIRE(one_by_one.size() == 3);
  REQUIRE(side_by_side.size() == 3);
  for (size_t c = 0; c < 3; ++c) {
    CHECK(one_by_one[c].session_ids == side_by_side[c].session_ids);
    CHECK(one_by_one[c].ciphertexts == side_by_side[c].ciphertexts);
  }

  // Pre-key decryption, a tampered message and a wrong sender among them.
  std::vector<std::pair<std::string, std::string>> messages;
  for (const auto& m : side_by_side) messages.emplace_back(m.ciphertexts.at(target.device_key), m.sender_key);
  auto tampered = messages[1];
  tampered.first[tampered.first.size() / 2] ^= 1;
  messages.insert(messages.begin() + 1, tampered);
  messages.emplace_back(messages[0].first, late.crypto.get_user_device().device_key);
  std::vector<std::pair<std::string_view, std::string_view>> views(messages.begin(), messages.end());
  requester.crypto.set_parallelism(2);
  auto batch = requester.crypto.decrypt_with_device_keys(views);
  REQUIRE(batch.size() == 5);
  size_t decrypted = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    INFO("message " << i);
    try {
      auto single = requester.crypto.decrypt_with_device_key(messages[i].first, messages[i].second);
      REQUIRE(batch[i].value.has_value());
      CHECK(text(*batch[i].value) == text(single));
      ++decrypted;
    } catch (const Error& e) {
      REQUIRE(batch[i].error.has_value());
      CHECK(batch[i].error->code() == e.code());
      CHECK(std::string(batch[i].error->what()) == e.what());
    }
  }
  CHECK(decrypted == 3);

  // Receiving the shares (one twice, one for another device) on 1 and 2 threads.
  auto inbox = side_by_side;
  inbox.push_back(side_by_side[1]);
  auto elsewhere = side_by_side[2];
  elsewhere.ciphertexts = {{"another device", "x"}};
  inbox.insert(inbox.begin(), elsewhere);
  auto broken = side_by_side[2];  // its sessions not yet held when it comes: decrypted, and refused
  broken.ciphertexts[target.device_key] = tampered.first;
  inbox.insert(inbox.begin() + 2, broken);
  // The inbox was sealed for requester; both receivers take over its account.
  auto exported = requester.crypto.export_device();
  MemoryCryptoStore solo_store, duo_store;
  GroupEncryptionCrypto solo(nullptr, solo_store), duo(nullptr, duo_store);
  solo.init({.from_exported_device = exported});
  duo.init({.from_exported_device = exported});
  solo.set_parallelism(1);
  duo.set_parallelism(2);
  auto got1 = receive_group_encryption_sessions_batch(solo, inbox);
  auto got2 = receive_group_encryption_sessions_batch(duo, inbox);
  REQUIRE(got1.size() == inbox.size());
  REQUIRE(got2.size() == inbox.size());
  size_t imported = 0;
  for (size_t i = 0; i < inbox.size(); ++i) {
    INFO("inbox message " << i);
    REQUIRE(got1[i].value.has_value() == got2[i].value.has_value());
    if (got1[i].value) {
      CHECK(got1[i].value->status == got2[i].value->status);
      CHECK(got1[i].value->imported == got2[i].value->imported);
      CHECK(got1[i].value->failed == got2[i].value->failed);
      imported += got1[i].value->imported.size();
    } else {
      REQUIRE(got2[i].error.has_value());
      CHECK(got1[i].error->code() == got2[i].error->code());
    }
  }
  CHECK(imported == 231);
  CHECK(got1[0].value->status == ReceiveStatus::kNotForThisDevice);
  CHECK(got1[2].error->code() == ErrorCode::DECRYPTION_FAILED);
  CHECK(got1.back().value->status == ReceiveStatus::kNothingMissing);
}

TEST_CASE("a stream with more sessions than the inbound cache holds still exports every key, whole batches and one by one") {
  Device d;
  std::vector<GroupEncryptionSession> keys;
  for (int i = 0; i < 4096 + 904; ++i) {
    auto s = olm::OutboundGroupSession::create(crypto::os_random());
    keys.push_back({kStream, s.session_id(), s.session_key(), std::string(kGroupEncryptionAlgorithmId)});
  }
  REQUIRE(d.crypto.import_session_keys(kStream, keys).imported.size() == keys.size());
  auto ids = d.crypto.group_session_ids(kStream, kMegolm);
  REQUIRE(ids.size() == keys.size());
  d.crypto.set_parallelism(2);
  // Twice over: the first pass fills the cache and evicts from it, the second
  // meets some entries cached and some evicted.
  std::map<std::string, std::string> first;
  for (int pass = 0; pass < 2; ++pass) {
    auto out = d.crypto.export_group_sessions(kStream, ids);
    REQUIRE(out.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      REQUIRE(out[i].session_id == ids[i]);
      if (pass == 0) first[ids[i]] = text(out[i].session_key);
      REQUIRE(text(out[i].session_key) == first[ids[i]]);
    }
  }
  for (size_t i = 0; i < ids.size(); i += 7) {
    REQUIRE(text(d.crypto.export_group_session(kStream, ids[i])->session_key) == first[ids[i]]);
  }
}

TEST_CASE("inputs: stream ids in their one canonical form, the SDK's isValidStreamId") {
  // The SDK's own table (sdk/src/tests/multi_ne/id.test.ts).
  CHECK(is_valid_stream_id("10b6cd7a587ea499f57bfdc820b8c57ef654e38bc4" + std::string(22, '0')));
  CHECK(is_valid_stream_id("101010101010101010101010101010101010101010" + std::string(22, '0')));
  CHECK(is_valid_stream_id("a81010101010101010101010101010101010101010"));
  for (const char* bad : {"", "0", "00", "101", "10AA", "10111", "10AAbb", "1000",
                          "10B6cd7a587ea499f57bfdc820b8c57ef654e38bc4572e7843df05321dd74c2f",
                          "1110101010101010101010101010101010101010101010101010101010101010",
                          "a810101010101010101010101010101010101010", "a8101010101010101010101010101010101010101",
                          "a8101010101010101010101010101010101010101000",
                          "10b6cd7a587ea499f57bfdc820b8c57ef654e38bc4572e7843df05321dd74c2f36",
                          "101010101010101010101010101010101010101010101010101010101010101010", "0x10aa", "0x"}) {
    INFO(bad);
    CHECK_FALSE(is_valid_stream_id(bad));
    REQUIRE_ERROR(check_stream_id(bad), INVALID_ARGUMENT);
  }
  CHECK(is_valid_stream_id(kStream));
  CHECK(is_valid_stream_id("dd" + std::string(16, '1')));
  CHECK(is_valid_user_id("0x" + std::string(40, 'A')));
  CHECK(is_valid_user_id(std::string(40, 'a')));
  CHECK_FALSE(is_valid_user_id("0x" + std::string(39, 'a')));
  CHECK_FALSE(is_valid_user_id("0x" + std::string(38, 'a') + "zz"));
  CHECK_FALSE(is_valid_user_id("alice"));
  CHECK(shorten_for_message(std::string(100, 'x')) == std::string(64, 'x') + "\u2026");
  CHECK(shorten_for_message("short") == "short");
  // A cut never splits a UTF-8 sequence.
  CHECK(shorten_for_message(std::string(63, 'x') + "\u00e9\u00e9") == std::string(63, 'x') + "\u2026");
}

TEST_CASE("inputs: the library refuses non-canonical stream ids where they enter; one stream, one entry") {
  Device a;
  const std::string upper = "20" + std::string(62, 'A');
  const std::string lower = "20" + std::string(62, 'a');
  for (const auto& bad : {std::string("0x"), "0x" + lower, upper, std::string("ab")}) {
    INFO(bad);
    REQUIRE_ERROR(a.crypto.ensure_outbound_session(bad, kMegolm), INVALID_ARGUMENT);
    REQUIRE_ERROR(a.crypto.encrypt_group_event(bad, test::bytes("x"), kMegolm), INVALID_ARGUMENT);
    REQUIRE_ERROR(a.crypto.encrypt_group_event_deprecated_v0(bad, "x", kMegolm), INVALID_ARGUMENT);
    REQUIRE_ERROR(a.crypto.decrypt_group_event(bad, megolm_event(a, "x")), INVALID_ARGUMENT);
    REQUIRE_ERROR(a.crypto.decrypt_group_events(bad, {}), INVALID_ARGUMENT);
    REQUIRE_ERROR(build_group_encryption_sessions(a.crypto, bad, kMegolm, {}, {}), INVALID_ARGUMENT);
  }
  // Imports: a key under a non-canonical stream id fails alone.
  auto id = a.crypto.ensure_outbound_session(lower, kMegolm);
  auto key = *a.crypto.export_group_session(lower, id);
  Device b;
  auto upper_key = key;
  upper_key.stream_id = upper;
  auto prefixed_key = key;
  prefixed_key.stream_id = "0x" + lower;
  auto r = b.crypto.import_room_keys({upper_key, prefixed_key, key});
  CHECK(r.failed == std::vector<std::string>{id, id});
  CHECK(r.imported == std::vector<std::string>{id});
  CHECK(b.crypto.import_session_keys(upper, {key}).failed == std::vector<std::string>{id});
  CHECK(b.crypto.get_group_session_ids(lower) == std::vector<std::string>{id});
  CHECK(b.crypto.get_group_session_ids(upper).empty());
}

TEST_CASE("inputs: a new hybrid session needs a miniblock number from 0 and a 32-byte hash") {
  Device a;
  REQUIRE_ERROR(a.crypto.ensure_outbound_session(kStream, kHybrid, {.miniblock_info = MiniblockInfo{-1, std::vector<uint8_t>(32, 1)}}),
                INVALID_ARGUMENT);
  REQUIRE_ERROR(a.crypto.ensure_outbound_session(kStream, kHybrid, {.miniblock_info = MiniblockInfo{1, {}}}), INVALID_ARGUMENT);
  REQUIRE_ERROR(a.crypto.ensure_outbound_session(kStream, kHybrid, {.miniblock_info = MiniblockInfo{1, std::vector<uint8_t>(31, 1)}}),
                INVALID_ARGUMENT);
  CHECK_FALSE(a.crypto.has_outbound_session(kStream, kHybrid));
  CHECK_NOTHROW(a.crypto.ensure_outbound_session(
      kStream, kHybrid, {.miniblock_info = MiniblockInfo{INT64_MAX, std::vector<uint8_t>(32, 1)}}));
}
