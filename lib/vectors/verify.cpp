// The vector verifier: runs every test of every file through this library
// (include/towns/vectors.h).
#include "towns/vectors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/olm/olm.h"
#include "towns/protocol/derived.h"
#include "towns/protocol/inputs.h"
#include "towns/protocol/media.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/memory_crypto_store.h"
#include "exchange/timeline.h"
#include "vectors/given_random.h"
#include "vectors/protobuf_json.h"
#include "vectors/verify_case.h"

namespace towns::vectors {

using json = nlohmann::json;
using crypto::Base64Padding;
using crypto::SecretBytes;

namespace {

struct Failure {
  std::string why;
};
[[noreturn]] void fail(const std::string& why) { throw Failure{why}; }
void expect(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

std::string hex(std::span<const uint8_t> b) { return crypto::hex_encode(b); }
std::string hex(const std::string& s) { return crypto::hex_encode(crypto::as_bytes(s)); }
std::string unhex(const std::string& h) {
  auto b = crypto::hex_decode(h);
  return {b.begin(), b.end()};
}

// A test's value, falling back to its group's.
const json& param(const json& test, const json& group, const char* name) {
  if (test.contains(name)) return test.at(name);
  if (group.contains(name)) return group.at(name);
  fail(std::string("the vector lacks ") + name);
}
std::string sparam(const json& test, const json& group, const char* name) {
  return param(test, group, name).get<std::string>();
}

// One of the library's wire messages, read by the library's own codec.
template <typename Plain>
Plain decode_hex(const std::string& h) {
  return Plain::decode(crypto::hex_decode(h));
}

// A device in memory and the facade over it (members in this order: each uses
// the one before). The second constructor recreates it from the hex of a binary
// ExportedDevice: INVALID_ARGUMENT when that is not one, as before the redesign.
struct Device {
  MemoryCryptoStore store;
  EncryptionDevice device;
  GroupEncryptionCrypto crypto{nullptr, device};
  Device() : device(store) { crypto.init(); }
  // rng: where the device's random draws come from (a vector's given bytes).
  // With own_pickle_key, the device takes the export's own pickle key, as the
  // client does.
  explicit Device(const std::string& exported_device_hex, crypto::RandomSource& rng = crypto::os_random(),
                  bool own_pickle_key = false)
      : device(store, rng) {
    // The export holds every key of the device: wiped memory only.
    auto bytes = crypto::hex_decode_secret(exported_device_hex);
    ExportedDevice e;
    try {
      e = ExportedDevice::decode(bytes.span());
    } catch (const Error&) {
      throw Error(ErrorCode::INVALID_ARGUMENT, "not a valid protobuf");
    }
    DeviceInitOptions options{.from_exported_device = std::move(bytes)};
    if (own_pickle_key) options.pickle_key = e.pickle_key;
    crypto.init(options);
  }

  // Imports one shared key; throws the error the import reports.
  void import(const std::string& stream_id, const std::string& session_id, const std::string& key,
              GroupEncryptionAlgorithm algorithm) {
    auto r = device.import_sessions({{stream_id, session_id, SecretBytes(std::string_view(key)), algorithm}});
    if (r.at(0).error) throw *r[0].error;
  }
};

std::vector<std::string> strings_of(const std::vector<SecretBytes>& v) {
  std::vector<std::string> out;
  for (const auto& b : v) out.push_back(b.str());
  return out;
}

Base64Padding padding_of(const std::string& p) {
  if (p == "none") return Base64Padding::kNone;
  if (p == "padded") return Base64Padding::kPadded;
  if (p == "optional") return Base64Padding::kOptional;
  fail("unknown padding " + p);
}

bool has_flag(const json& test, const char* flag) {
  for (const auto& f : test.value("flags", json::array())) {
    if (f == flag) return true;
  }
  return false;
}

KeySolicitation solicitation_of(const json& j) {
  KeySolicitation s;
  s.device_key = j.value("deviceKey", "");
  s.is_new_device = j.value("isNewDevice", false);
  for (const auto& id : j.at("sessionIds")) s.session_ids.push_back(id.get<std::string>());
  return s;
}

// Runs one test; returns normally when the outcome is the expected one. A
// towns::Error escaping the check is compared with the test's error code.
void check(const std::string& type, const json& g, const json& t) {
  if (type == "base64Decode") {
    auto out = crypto::base64_decode(t.at("input").get<std::string>(), padding_of(g.at("padding")));
    expect(hex(out) == t.at("output"), "decoded bytes differ");
  } else if (type == "base64Encode") {
    expect(crypto::base64_encode(crypto::hex_decode(t.at("input").get<std::string>()), padding_of(g.at("padding"))) ==
               t.at("output"),
           "encoded text differs");
  } else if (type == "hexDecode") {
    expect(hex(crypto::hex_decode(t.at("input").get<std::string>())) == t.at("output"), "decoded bytes differ");
  } else if (type == "hexEncode") {
    expect(hex(crypto::hex_decode(t.at("input").get<std::string>())) == t.at("output"), "hex differs");
  } else if (type == "sessionKeysJson") {
    auto keys = parse_session_keys_json(t.at("json").get<std::string>());
    expect(strings_of(keys) == t.at("keys").get<std::vector<std::string>>(), "keys differ");
    if (!has_flag(t, "NonCanonical")) expect(session_keys_json(keys).str() == t.at("json"), "re-encoding differs");
  } else if (type == "protobufMessage" || type == "protobufMalformed") {
    // Read by the library's own codec (protobuf_json.h): the bytes decode, the
    // message is the JSON's, and encodes back to the bytes.
    const auto& names = known_messages();
    const auto& message = g.at("message").get_ref<const std::string&>();
    expect(std::find(names.begin(), names.end(), message) != names.end(), "unknown message type");
    auto decoded = decode_message(message, crypto::hex_decode(t.at("bytes").get<std::string>()));
    expect(type == "protobufMessage", "malformed bytes parsed");
    auto want = json::parse(t.at("json").get<std::string>(), nullptr, false);
    expect(!want.is_discarded(), "JSON does not parse");
    expect(decoded.json == want, "bytes and JSON differ");
    expect(hex(decoded.encoding) == t.at("bytes"), "re-encoding differs");
  } else if (type == "protobufNonCanonical") {
    // The bytes decode to the JSON's message (unknown fields skipped, the last
    // of a repeated scalar kept, repeated runs joined), which encodes to the
    // canonical `encoded`, not to the bytes.
    const auto& names = known_messages();
    const auto& message = g.at("message").get_ref<const std::string&>();
    expect(std::find(names.begin(), names.end(), message) != names.end(), "unknown message type");
    auto decoded = decode_message(message, crypto::hex_decode(t.at("bytes").get<std::string>()));
    auto want = json::parse(t.at("json").get<std::string>(), nullptr, false);
    expect(!want.is_discarded(), "JSON does not parse");
    expect(decoded.json == want, "bytes and JSON differ");
    expect(hex(decoded.encoding) == t.at("encoded"), "encoding differs");
    expect(t.at("encoded") != t.at("bytes"), "the bytes are canonical already");
  } else if (type == "hybridSessionId") {
    auto id = hybrid_session_key_hash(crypto::hex_decode(t.at("streamId").get<std::string>()),
                                      crypto::hex_decode(t.at("key").get<std::string>()),
                                      static_cast<int64_t>(std::stoull(t.at("miniblockNum").get<std::string>())),
                                      crypto::hex_decode(t.at("miniblockHash").get<std::string>()));
    expect(hex(id) == t.at("sessionId"), "session id differs");
  } else if (type == "hybridSessionImport") {
    Device d;
    d.import(sparam(t, g, "streamId"), sparam(t, g, "sessionId"), sparam(t, g, "sessionKey"),
             GroupEncryptionAlgorithm::kHybridGroupEncryption);
    expect(d.crypto.has_session_key(sparam(t, g, "streamId"), sparam(t, g, "sessionId"),
                                    GroupEncryptionAlgorithm::kHybridGroupEncryption),
           "not held after import");
  } else if (type == "aesGcm") {
    auto aes = crypto::AesGcm::New(SecretBytes(std::span<const uint8_t>(crypto::hex_decode(t.at("key").get<std::string>()))));
    auto iv = crypto::hex_decode(t.at("iv").get<std::string>());
    auto pt = crypto::hex_decode(t.at("plaintext").get<std::string>());
    expect(hex(aes.encrypt(iv, pt)) == t.at("ciphertext"), "ciphertext differs");
    expect(hex(aes.decrypt(iv, crypto::hex_decode(t.at("ciphertext").get<std::string>())).span()) == t.at("plaintext"),
           "plaintext differs");
  } else if (type == "hybridDecrypt") {
    Device d;
    auto stream = sparam(t, g, "streamId");
    d.import(stream, sparam(t, g, "sessionId"), sparam(t, g, "sessionKey"), GroupEncryptionAlgorithm::kHybridGroupEncryption);
    auto read_on = t.value("decryptStreamId", stream);
    auto out = d.crypto.decrypt_group_event(read_on, decode_hex<EncryptedData>(t.at("encryptedData")));
    expect(hex(out.plaintext.span()) == t.at("plaintext"), "plaintext differs");
  } else if (type == "hybridEncrypt") {
    // The sender (an ExportedDevice: its account gives the sender key) holds
    // the group's session and any more; its one draw is the IV.
    GivenRandom iv(crypto::hex_decode_secret(t.at("iv").get<std::string>()).span());
    Device d(sparam(t, g, "exportedDevice"), iv);
    auto stream = sparam(t, g, "streamId");
    d.import(stream, sparam(t, g, "sessionId"), sparam(t, g, "sessionKey"), GroupEncryptionAlgorithm::kHybridGroupEncryption);
    for (const auto& m : t.value("moreSessions", json::array())) {
      d.import(stream, m.at("sessionId").get<std::string>(), m.at("sessionKey").get<std::string>(),
               GroupEncryptionAlgorithm::kHybridGroupEncryption);
    }
    auto pt = unhex(t.at("plaintext").get<std::string>());
    auto e = t.at("version").get<int>() == 0
                 ? d.crypto.encrypt_group_event_deprecated_v0(stream, pt, GroupEncryptionAlgorithm::kHybridGroupEncryption)
                 : d.crypto.encrypt_group_event(stream, crypto::as_bytes(pt), GroupEncryptionAlgorithm::kHybridGroupEncryption);
    expect(iv.all_used(), "the IV was not drawn");
    expect(hex(e.encode()) == t.at("encryptedData"), "EncryptedData differs");
  } else if (type == "megolmDecrypt") {
    Device d;
    auto stream = sparam(t, g, "streamId");
    auto id = sparam(t, g, "sessionId");
    d.import(stream, id, sparam(t, g, "sessionKey"), GroupEncryptionAlgorithm::kGroupEncryption);
    // The import, as in megolmImport: the session starts at firstKnownIndex.
    auto first = d.device.inbound().first_known_index(stream, id);
    expect(first && *first == param(t, g, "firstKnownIndex").get<uint32_t>(), "first known index differs");
    // Events the device decrypts before this one (each must decrypt).
    for (const auto& before : t.value("decryptFirst", json::array())) {
      try {
        (void)d.crypto.decrypt_group_event(stream, decode_hex<EncryptedData>(before.get<std::string>()));
      } catch (const Error& e) {
        fail(std::string("an event of decryptFirst failed: ") + e.what());
      }
    }
    auto decrypt = [&] {
      try {
        return d.crypto.decrypt_group_event(stream, decode_hex<EncryptedData>(t.at("encryptedData")));
      } catch (const Error& e) {
        // libolm's refusal is DECRYPTION_FAILED naming libolm's error (OLM_<name>).
        if (t.contains("olmError") &&
            (e.code() != ErrorCode::DECRYPTION_FAILED ||
             std::string_view(e.what()).find("OLM_" + t.at("olmError").get<std::string>()) == std::string_view::npos)) {
          fail("olm error: " + std::string(e.what()) + ", expected OLM_" + t.at("olmError").get<std::string>());
        }
        throw;
      }
    };
    auto out = decrypt();
    expect(hex(out.plaintext.span()) == t.at("plaintext"), "plaintext differs");
    expect(out.message_index && *out.message_index == t.at("messageIndex").get<uint32_t>(), "message index differs");
  } else if (type == "megolmOutbound") {
    GivenRandom random(crypto::hex_decode_secret(t.at("random").get<std::string>()).span());
    auto s = olm::OutboundGroupSession::create(random);
    expect(random.all_used(), "not every random byte was drawn");
    expect(s.session_id() == t.at("sessionId"), "session id differs");
    auto key = s.session_key();
    expect(key.view() == t.at("sessionKey").get<std::string>(), "session key differs");
    expect(s.message_index() == t.at("messageIndex").get<uint32_t>(), "message index differs");
    expect(olm::InboundGroupSession::create(key).export_session(0).view() == t.at("exportedKey").get<std::string>(),
           "exported key differs");
    expect(s.pickle(SecretBytes(std::string_view(sparam(t, g, "pickleKey")))) == t.at("pickle"), "pickle differs");
  } else if (type == "megolmEncrypt") {
    // The state is an ExportedDevice holding the stream's outbound session:
    // encrypting draws nothing, so the output is exact.
    GivenRandom none({});
    Device d(t.at("exportedDevice").get<std::string>(), none);
    auto stream = sparam(t, g, "streamId");
    auto pt = unhex(t.at("plaintext").get<std::string>());
    auto version = t.at("version").get<int>();
    auto before = d.device.outbound().session_key(stream);
    expect(before.has_value(), "the state holds no outbound session for the stream");
    std::optional<EncryptedData> e;
    try {
      e = version == 0 ? d.crypto.encrypt_group_event_deprecated_v0(stream, pt, GroupEncryptionAlgorithm::kGroupEncryption)
                       : d.crypto.encrypt_group_event(stream, crypto::as_bytes(pt), GroupEncryptionAlgorithm::kGroupEncryption);
    } catch (const Error&) {
      // A refusal changes nothing: the session stays at its index.
      auto after = d.device.outbound().session_key(stream);
      expect(after && after->chain_index == before->chain_index && after->session_id == before->session_id,
             "a refused encryption moved the session");
      throw;
    }
    expect(hex(e->encode()) == t.at("encryptedData"), "EncryptedData differs");
    expect(before->chain_index == t.at("messageIndex").get<uint32_t>(), "message index differs");
    // sessionAfter is the session right after the message, as libolm leaves
    // it (and the client stores it): the state's session through libolm.
    auto state = ExportedDevice::decode(crypto::hex_decode_secret(t.at("exportedDevice").get<std::string>()).span());
    std::optional<olm::OutboundGroupSession> copy;
    for (const auto& s : state.outbound_sessions) {
      if (s.stream_id == stream) copy = olm::OutboundGroupSession::unpickle(state.pickle_key, s.session.view());
    }
    expect(copy.has_value(), "the state holds no outbound session for the stream");
    auto text = version == 0 ? pt : crypto::base64_encode(crypto::as_bytes(pt), Base64Padding::kPadded);
    expect(copy->encrypt(crypto::as_bytes(text)) == e->ciphertext, "the ciphertext is not libolm's for the state");
    expect(copy->pickle(state.pickle_key) == t.at("sessionAfter"), "the session after differs");
    // This library exports the session advanced past its reserved block
    // (protocol.md 16.1): the same session, at an index past the message.
    auto exported = ExportedDevice::decode(d.crypto.export_device().span());
    bool continues = false;
    for (const auto& s : exported.outbound_sessions) {
      if (s.stream_id != stream) continue;
      auto o = olm::OutboundGroupSession::unpickle(exported.pickle_key, s.session.view());
      continues = o.session_id() == before->session_id && o.message_index() > before->chain_index;
    }
    expect(continues, "the exported session does not continue past the message");
  } else if (type == "megolmExport") {
    auto key = sparam(t, g, "sessionKey");
    std::optional<olm::InboundGroupSession> s;
    try {
      s = olm::InboundGroupSession::import_session(SecretBytes(std::string_view(key)));
    } catch (const Error&) {
      s = olm::InboundGroupSession::create(SecretBytes(std::string_view(key)));
    }
    auto exported = s->export_session(t.at("index").get<uint32_t>());
    expect(exported.view() == t.at("exportedKey").get<std::string>(), "exported key differs");
  } else if (type == "megolmImport") {
    Device d;
    auto stream = sparam(t, g, "streamId");
    auto id = sparam(t, g, "sessionId");
    d.import(stream, id, sparam(t, g, "sessionKey"), GroupEncryptionAlgorithm::kGroupEncryption);
    auto index = d.device.inbound().first_known_index(stream, id);
    expect(index && *index == t.at("firstKnownIndex").get<uint32_t>(), "first known index differs");
  } else if (type == "olmDecrypt") {
    auto sender = olm::Account::unpickle(sparam(t, g, "senderPickleKey"), sparam(t, g, "senderPickle"));
    expect(sender.curve25519_key() == g.at("senderIdentityKey"), "the sender pickle is not the sender");
    try {
      auto receiver = olm::Account::unpickle(sparam(t, g, "receiverPickleKey"), sparam(t, g, "receiverPickle"));
      expect(receiver.curve25519_key() == param(t, g, "receiverIdentityKey"), "the receiver pickle is not the receiver");
      auto fallback = json::parse(receiver.unpublished_fallback_key()).at("curve25519");
      expect(fallback.size() == 1 && fallback.begin()->get<std::string>() == param(t, g, "receiverFallbackKey"),
             "the receiver's fallback key differs");
      auto message = sparam(t, g, "message");
      auto session = olm::Session::create_inbound_from(receiver, sparam(t, g, "senderIdentityKey"), message);
      auto payload = session.decrypt(0, message);
      expect(payload.view() == t.at("payload").get<std::string>(), "payload differs");
    } catch (const Error& e) {
      if (!is_olm_error(e.code())) throw;
      if (t.contains("olmError") && std::string(e.code_name()) != "OLM_" + t.at("olmError").get<std::string>()) {
        fail("olm error " + std::string(e.code_name()) + ", expected OLM_" + t.at("olmError").get<std::string>());
      }
      throw Error(ErrorCode::DECRYPTION_FAILED, e.what());
    }
  } else if (type == "olmAccount") {
    GivenRandom random(crypto::hex_decode_secret(t.at("random").get<std::string>()).span());
    auto a = olm::Account::create(random);
    expect(random.all_used(), "not every random byte was drawn");
    GivenRandom fallback_random(crypto::hex_decode_secret(t.at("fallbackRandom").get<std::string>()).span());
    a.generate_fallback_key(fallback_random);
    expect(fallback_random.all_used(), "not every fallback random byte was drawn");
    auto keys = json::parse(a.identity_keys());
    expect(keys.at("curve25519") == t.at("curve25519"), "curve25519 key differs");
    expect(keys.at("ed25519") == t.at("ed25519"), "ed25519 key differs");
    auto fallback = json::parse(a.unpublished_fallback_key()).at("curve25519");
    expect(fallback.size() == 1 && fallback.begin().key() == t.at("fallbackKeyId").get<std::string>() &&
               fallback.begin().value() == t.at("fallbackKey"),
           "fallback key differs");
    expect(a.sign(sparam(t, g, "signMessage")) == t.at("signature"), "signature differs");
    expect(a.pickle(SecretBytes(std::string_view(sparam(t, g, "pickleKey")))) == t.at("pickle"), "pickle differs");
  } else if (type == "deviceInit") {
    GivenRandom random(crypto::hex_decode_secret(t.at("random").get<std::string>()).span());
    MemoryCryptoStore store;
    EncryptionDevice device(store, random);
    GroupEncryptionCrypto c(nullptr, device);
    c.init({.pickle_key = SecretBytes(std::string_view(sparam(t, g, "pickleKey")))});
    expect(random.all_used(), "not every random byte was drawn");
    expect(c.get_user_device().device_key == t.at("deviceKey"), "device key differs");
    expect(c.get_user_device().fallback_key == t.at("fallbackKey"), "fallback key differs");
    expect(ExportedDevice::decode(c.export_device().span()).pickled_account.view() == t.at("pickledAccount").get<std::string>(),
           "pickled account differs");
  } else if (type == "olmEncrypt") {
    auto sender = olm::Account::unpickle(SecretBytes(std::string_view(sparam(t, g, "senderPickleKey"))), sparam(t, g, "senderPickle"));
    expect(sender.curve25519_key() == g.at("senderIdentityKey"), "the sender pickle is not the sender");
    GivenRandom random(crypto::hex_decode_secret(t.at("random").get<std::string>()).span());
    auto session = olm::Session::create_outbound(sender, sparam(t, g, "receiverIdentityKey"), sparam(t, g, "receiverFallbackKey"), random);
    auto m = session.encrypt(crypto::as_bytes(t.at("payload").get<std::string>()), random);
    expect(random.all_used(), "not every random byte was drawn");
    expect(m.type == t.at("type").get<size_t>(), "message type differs");
    expect(m.body == t.at("message"), "message differs");
    expect(session.session_id() == t.at("sessionId"), "session id differs");
    // And the receiver reads it.
    auto receiver = olm::Account::unpickle(SecretBytes(std::string_view(sparam(t, g, "receiverPickleKey"))), sparam(t, g, "receiverPickle"));
    auto inbound = olm::Session::create_inbound_from(receiver, sender.curve25519_key(), m.body);
    expect(inbound.decrypt(0, m.body).view() == t.at("payload").get<std::string>(), "the receiver reads another payload");
  } else if (type == "olmAccountUnpickle") {
    auto a = olm::Account::unpickle(SecretBytes(std::string_view(sparam(t, g, "pickleKey"))), sparam(t, g, "pickle"));
    expect(a.curve25519_key() == t.at("curve25519") && a.ed25519_key() == t.at("ed25519"), "keys differ");
  } else if (type == "receiveSessions") {
    Device d(sparam(t, g, "receiverExportedDevice"));
    auto& c = d.crypto;
    expect(c.get_user_device().device_key == param(t, g, "receiverDeviceKey"), "receiver device key differs");
    auto result = receive_group_encryption_sessions(c, decode_hex<GroupEncryptionSessions>(t.at("groupEncryptionSessions")));
    const auto& want = t.at("imported");
    expect(result.failed == t.at("failed").get<std::vector<std::string>>(), "failed ids differ");
    expect(result.imported.size() == want.size(), "imported count differs");
    for (size_t i = 0; i < want.size(); ++i) {
      expect(result.imported[i] == want[i].at("sessionId"), "imported ids differ");
      auto s = c.export_group_session(sparam(t, g, "streamId"), result.imported[i]);
      expect(s && s->session_key.str() == want[i].at("sessionKey") && s->algorithm == want[i].at("algorithm"), "imported key differs");
    }
  } else if (type == "buildSessions") {
    // The library draws a seed per device (besides the sender's own) and
    // expands it into olm's 64 bytes; the vector gives both.
    const auto sender_key = sparam(t, g, "senderKey");
    size_t receivers = 0;
    for (const auto& dv : t.at("devices")) receivers += dv.at("deviceKey").get<std::string>() != sender_key;
    const auto& seed_list = t.at("seeds");
    const auto& olm_random = t.at("olmRandom");
    expect(seed_list.size() == receivers && olm_random.size() == receivers,
           "one seed and one olmRandom per device other than the sender's");
    SecretBytes seeds;
    for (const auto& seed : seed_list) {
      auto one = crypto::hex_decode_secret(seed.get<std::string>());
      expect(one.size() == 32, "a seed is 32 bytes");
      seeds.append(one.span());
    }
    GivenRandom random(seeds.span());
    Device d(sparam(t, g, "senderExportedDevice"), random);
    expect(d.crypto.get_user_device().device_key == sender_key, "sender key differs");
    std::vector<GroupEncryptionSession> sessions;
    auto algorithm = parse_group_encryption_algorithm(t.at("algorithm").get<std::string>());
    expect(algorithm.has_value(), "unknown algorithm");
    for (const auto& s : t.at("sessions")) {
      sessions.push_back({sparam(t, g, "streamId"), s.at("sessionId").get<std::string>(),
                          SecretBytes(std::string_view(s.at("sessionKey").get<std::string>())),
                          std::string(algorithm_id(*algorithm))});
    }
    std::vector<UserDevice> devices;
    for (const auto& dv : t.at("devices")) {
      devices.push_back({dv.at("deviceKey").get<std::string>(), dv.at("fallbackKey").get<std::string>()});
    }
    auto plan = build_group_encryption_sessions(d.crypto, sparam(t, g, "streamId"), *algorithm, sessions, devices);
    expect(random.all_used(), "not every seed was drawn");
    expect(hex(plan.message.encode()) == t.at("groupEncryptionSessions"), "GroupEncryptionSessions differs");
    expect(plan.skipped_devices == t.at("skippedDevices").get<std::vector<std::string>>(), "skipped devices differ");
    // Each seed's expansion is the olm random given, and each pre-key message
    // is libolm's from it (what the client, which draws those bytes, sends).
    // The SessionKeys JSON every device's pre-key message carries: once.
    auto payload = session_keys_json([&] {
      std::vector<SecretBytes> keys;
      for (const auto& s : sessions) keys.push_back(s.session_key);
      return keys;
    }());
    auto sender_state = ExportedDevice::decode(crypto::hex_decode_secret(sparam(t, g, "senderExportedDevice")).span());
    auto sender = olm::Account::unpickle(sender_state.pickle_key, sender_state.pickled_account.view());
    size_t i = 0;
    for (const auto& dv : devices) {
      if (dv.device_key == sender_key) continue;
      auto seed = crypto::hex_decode_secret(seed_list.at(i).get<std::string>());
      auto given_bytes = crypto::hex_decode_secret(olm_random.at(i).get<std::string>());
      crypto::SeededRandom expand(seed.span());
      expect(expand.bytes(64) == given_bytes, "olmRandom is not the seed's expansion");
      auto it = plan.message.ciphertexts.find(dv.device_key);
      if (it != plan.message.ciphertexts.end()) {
        GivenRandom given(given_bytes.span());
        auto session = olm::Session::create_outbound(sender, dv.device_key, dv.fallback_key, given);
        expect(session.encrypt(payload.span(), given).body == it->second, "a pre-key message is not libolm's from olmRandom");
        expect(given.all_used(), "olmRandom is not what one pre-key message draws");
      }
      ++i;
    }
  } else if (type == "decideSolicitation") {
    // Ours: our user's stored ones and our ephemeral records, with our device
    // key, in the listed order (the SDK's getKeySolicitations, then its find).
    std::vector<KeySolicitation> pending;
    for (const auto& p : t.at("pending")) {
      bool ours = p.value("ephemeral", false) || p.value("userId", "") == sparam(t, g, "ownUserId");
      if (ours && p.value("deviceKey", "") == sparam(t, g, "ownDeviceKey")) pending.push_back(solicitation_of(p));
    }
    auto d = decide_key_solicitation(t.at("missingSessionIds").get<std::vector<std::string>>(),
                                     t.at("heldSessionCount").get<size_t>(), pending);
    const auto& want = t.at("solicitation");
    expect(want.is_null() == !d.has_value(), "whether to solicit differs");
    if (d) {
      expect(d->is_new_device == want.at("isNewDevice").get<bool>(), "isNewDevice differs");
      expect(d->session_ids == want.at("sessionIds").get<std::vector<std::string>>(), "session ids differ");
    }
  } else if (type == "decideAnswer") {
    std::map<std::string, GroupEncryptionAlgorithm> known;
    for (const auto& [id, alg] : t.at("known").items()) {
      auto name = alg.get<std::string>();
      auto parsed = name.empty() ? std::nullopt : parse_group_encryption_algorithm(name);
      if (!parsed) fail("known session " + shorten_for_message(id) + " has an unknown algorithm \"" + shorten_for_message(name) + "\"");
      known.emplace(id, *parsed);
    }
    auto d = decide_solicitation_answer(known, g.at("ownDeviceKey").get<std::string>(), solicitation_of(t.at("solicitation")),
                                        t.at("requesterEntitled").get<bool>());
    const auto& want = t.at("answer");
    expect(want.is_null() == !d.has_value(), "whether to answer differs");
    if (d) {
      expect(d->fulfilled_session_ids == want.at("fulfilledSessionIds").get<std::vector<std::string>>(), "fulfilled ids differ");
      expect(d->shares.size() == want.at("shares").size(), "share count differs");
      for (size_t i = 0; i < d->shares.size(); ++i) {
        expect(algorithm_id(d->shares[i].first) == want.at("shares")[i].at("algorithm").get<std::string>(), "share algorithm differs");
        expect(d->shares[i].second == want.at("shares")[i].at("sessionIds").get<std::vector<std::string>>(), "share ids differ");
      }
    }
  } else if (type == "importDevice") {
    Device d(t.at("exportedDevice").get<std::string>());
    auto& c = d.crypto;
    expect(c.get_user_device().device_key == t.at("deviceKey"), "device key differs");
    expect(c.get_user_device().fallback_key == t.at("fallbackKey"), "fallback key differs");
    for (const auto& e : t.at("events")) {
      auto out = c.decrypt_group_event(e.at("streamId").get<std::string>(), decode_hex<EncryptedData>(e.at("encryptedData")));
      expect(hex(out.plaintext.span()) == e.at("plaintext"), "event plaintext differs");
    }
    for (const auto& o : t.at("outbound")) {
      auto key = d.device.outbound().session_key(o.at("streamId").get<std::string>());
      expect(key && key->session_id == o.at("sessionId") && key->chain_index == o.at("nextMessageIndex").get<uint32_t>(),
             "outbound session does not continue");
    }
  } else if (type == "exportDevice") {
    Device d(t.at("exportedDevice").get<std::string>(), crypto::os_random(), true);
    expect(hex(d.crypto.export_device().span()) == t.at("exported"), "exported bytes differ");
  } else if (type == "deriveKeyAndIv") {
    auto d = derive_key_and_iv(t.at("keyPhrase").get<std::string>());
    expect(hex(d.key.span()) == t.at("key"), "key differs");
    expect(hex(d.iv.span()) == t.at("iv"), "iv differs");
  } else if (type == "derivedEncrypt") {
    auto e = encrypt_derived(t.at("keyPhrase").get<std::string>(), crypto::hex_decode(t.at("plaintext").get<std::string>()));
    expect(e.ciphertext == t.at("ciphertext"), "ciphertext differs");
    expect(hex(derived_encrypted_data_bytes(e)) == t.at("encryptedData"), "EncryptedData differs");
  } else if (type == "derivedDecrypt") {
    auto data = parse_derived_encrypted_data(crypto::hex_decode(t.at("encryptedData").get<std::string>()));
    auto out = decrypt_derived(t.at("keyPhrase").get<std::string>(), data);
    expect(hex(out.span()) == t.at("plaintext"), "plaintext differs");
  } else if (type == "mediaEncrypt") {
    std::vector<std::vector<uint8_t>> ivs;
    for (const auto& iv : t.at("ivs")) ivs.push_back(crypto::hex_decode(iv.get<std::string>()));
    auto key = crypto::hex_decode_secret(t.at("secretKey").get<std::string>());
    auto chunks = encrypt_chunked_media_with(crypto::hex_decode(t.at("data").get<std::string>()),
                                             t.at("chunkSize").get<size_t>(), key, ivs);
    const auto& want = t.at("chunks");
    expect(chunks.size() == want.size(), "chunk count differs");
    for (size_t i = 0; i < chunks.size(); ++i) {
      expect(hex(chunks[i].ciphertext) == want[i].at("ciphertext") && hex(chunks[i].iv) == want[i].at("iv"),
             "chunk " + std::to_string(i) + " differs");
    }
  } else if (type == "mediaDecrypt") {
    std::vector<MediaChunk> chunks;
    for (const auto& c : t.at("chunks")) {
      chunks.push_back({crypto::hex_decode(c.at("ciphertext").get<std::string>()), crypto::hex_decode(c.at("iv").get<std::string>())});
    }
    auto out = decrypt_chunked_media(crypto::hex_decode_secret(t.at("secretKey").get<std::string>()), chunks);
    expect(hex(out.span()) == t.at("data"), "data differs");
  } else if (type == "keyExchangeTrace") {
    // Replayed through this library's engine: every output as recorded.
    auto why = trace::check_trace(t);
    if (!why.empty()) throw Failure{why};
  } else if (type == "wholeFileDecrypt") {
    std::vector<std::vector<uint8_t>> chunks;
    for (const auto& c : t.at("chunks")) chunks.push_back(crypto::hex_decode(c.get<std::string>()));
    auto out = decrypt_whole_file_media(crypto::hex_decode_secret(t.at("secretKey").get<std::string>()),
                                        crypto::hex_decode(t.at("iv").get<std::string>()), chunks);
    expect(hex(out.span()) == t.at("data"), "data differs");
  } else {
    fail("unknown test type " + type);
  }
}

}  // namespace

CaseVerdict verify_case(const std::string& type, const json& g, const json& t) {
  CaseVerdict v;
  try {
    if (!t.is_object()) fail("a test must be an object");
    const auto& result = t.at("result");
    if (!result.is_string() || (result != "valid" && result != "invalid")) fail("result must be \"valid\" or \"invalid\"");
    v.valid = result == "valid";
    v.expected_error = t.value("error", std::string());
    check(type, g, t);
  } catch (const Error& e) {
    v.got = std::string(e.code_name());
    v.why = e.what();
  } catch (const Failure& f) {
    v.got = "MISMATCH";
    v.why = f.why;
  } catch (const std::exception& e) {
    // A field missing or of the wrong type (nlohmann::json), or anything
    // else the case made the library throw: this case fails, with why.
    v.got = "EXCEPTION";
    v.why = e.what();
  }
  v.passed = v.valid ? v.got.empty() : (!v.got.empty() && v.got == v.expected_error);
  return v;
}

namespace {

// A test's tcId as text, "?" when it has none.
std::string tc_id(const json& t) {
  if (t.is_object() && t.contains("tcId") && t["tcId"].is_number_integer()) return std::to_string(t["tcId"].get<int64_t>());
  return "?";
}

// Runs the tests of one parsed file into r. A malformed test fails alone; a
// malformed group or file is one failure, and the run goes on.
void verify_file(const std::string& name, const json& doc, VerifyResult& r) {
  auto malformed = [&](const std::string& where, const std::string& why) {
    ++r.failed;
    r.failures.push_back(name + where + ": malformed: " + why);
  };
  if (!doc.is_object() || !doc.contains("testGroups") || !doc["testGroups"].is_array()) {
    malformed("", "no testGroups list");
    return;
  }
  size_t counted = 0;
  size_t group_index = 0;
  for (const auto& g : doc["testGroups"]) {
    ++group_index;
    if (!g.is_object() || !g.contains("type") || !g["type"].is_string() || !g.contains("tests") || !g["tests"].is_array()) {
      malformed(" group " + std::to_string(group_index), "a group needs a type (text) and a tests list");
      continue;
    }
    auto type = g["type"].get<std::string>();
    for (const auto& t : g["tests"]) {
      ++counted;
      auto v = verify_case(type, g, t);
      if (v.passed) {
        ++r.passed;
      } else {
        ++r.failed;
        std::string comment = t.is_object() && t.contains("comment") && t["comment"].is_string() ? t["comment"].get<std::string>() : "";
        r.failures.push_back(name + " tcId " + tc_id(t) + " (" + type + ", " + shorten_for_message(comment) +
                             "): expected " + (v.valid ? "valid" : v.expected_error.empty() ? "?" : v.expected_error) +
                             ", got " + (v.got.empty() ? "valid" : v.got + " (" + shorten_for_message(v.why, 200) + ")"));
      }
    }
  }
  if (!doc.contains("numberOfTests") || !doc["numberOfTests"].is_number_unsigned() ||
      doc["numberOfTests"].get<size_t>() != counted) {
    ++r.failed;
    r.failures.push_back(name + ": numberOfTests does not match the tests");
  }
}

}  // namespace

VerifyResult verify(const std::string& dir) {
  VerifyResult r;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    r.failed = 1;
    r.failures.push_back(dir + ": cannot list: " + ec.message());
    return r;
  }
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    // Regular files only (a symlink counts as what it points to): a FIFO or a
    // device named *.json would block the read or never end.
    std::error_code kind;
    if (it->path().extension() == ".json" && it->is_regular_file(kind) && !kind) files.push_back(it->path());
  }
  if (ec) {
    r.failed = 1;
    r.failures.push_back(dir + ": cannot list: " + ec.message());
    return r;
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    r.failed = 1;
    r.failures.push_back(dir + ": no vector files");
    return r;
  }
  for (const auto& path : files) {
    auto name = path.filename().string();
    std::ifstream in(path);
    if (!in) {
      ++r.failed;
      r.failures.push_back(name + ": cannot be read");
      continue;
    }
    auto doc = json::parse(in, nullptr, false);
    if (doc.is_discarded()) {
      ++r.failed;
      r.failures.push_back(name + ": not JSON");
      continue;
    }
    verify_file(name, doc, r);
  }
  return r;
}

}  // namespace towns::vectors
