// The vector generator. Every random input comes from one SeededRandom, drawn in
// a fixed order, so a seed always gives the same files.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/olm/olm.h"
#include "towns/proto/payloads.pb.h"
#include "towns/proto/protocol.pb.h"
#include "towns/protocol/derived.h"
#include "towns/protocol/media.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/version.h"
#include "exchange_diff.h"
#include "wire_convert.h"
#include "vectors.h"

namespace towns::vectors {

using json = nlohmann::ordered_json;
using crypto::Base64Padding;
using crypto::SecretBytes;

namespace {

constexpr const char* kSchema = "towns_e2ee_vectors_v1";

std::string hex(std::span<const uint8_t> b) { return crypto::hex_encode(b); }
std::string hex(const std::string& s) { return crypto::hex_encode(crypto::as_bytes(s)); }

using wire_convert::serialize;
std::string pb_hex(const google::protobuf::MessageLite& m) { return hex(serialize(m)); }

// The account's one unpublished fallback key: {"curve25519":{"<key id>":"<key>"}}.
std::string only_fallback_key(const olm::Account& account) {
  auto keys = json::parse(account.unpublished_fallback_key()).at("curve25519");
  if (keys.size() != 1) throw Error(ErrorCode::INTERNAL, "expected one unpublished fallback key");
  return keys.begin()->get<std::string>();
}

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out).ok()) throw Error(ErrorCode::INTERNAL, "proto to JSON");
  return out;
}

// One file of the corpus.
class File {
 public:
  File(std::string algorithm, std::vector<std::string> header, json notes)
      : algorithm_(std::move(algorithm)), header_(std::move(header)), notes_(std::move(notes)) {}

  json& group(const std::string& type, json params = json::object()) {
    json g = json::object();
    g["type"] = type;
    for (auto& [k, v] : params.items()) g[k] = v;
    g["tests"] = json::array();
    groups_.push_back(std::move(g));
    return groups_.back();
  }

  void add(json& group, const std::string& comment, json fields, const std::vector<std::string>& flags = {},
           const std::string& error = {}) {
    json t = json::object();
    t["tcId"] = ++count_;
    t["comment"] = comment;
    t["flags"] = flags;
    for (auto& [k, v] : fields.items()) t[k] = v;
    t["result"] = error.empty() ? "valid" : "invalid";
    if (!error.empty()) t["error"] = error;
    group["tests"].push_back(std::move(t));
  }

  void write(const std::string& path, const std::string& seed_hex) const {
    json f = json::object();
    f["algorithm"] = algorithm_;
    f["schema"] = kSchema;
    f["generatorVersion"] = "towns-e2ee " + versions().towns_e2ee;
    f["seed"] = seed_hex;
    f["numberOfTests"] = count_;
    f["header"] = header_;
    f["notes"] = notes_;
    f["testGroups"] = groups_;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << f.dump(2) << "\n";
    if (!out) throw Error(ErrorCode::STORE_ERROR, "cannot write " + path);
  }

 private:
  std::string algorithm_;
  std::vector<std::string> header_;
  json notes_;
  std::vector<json> groups_;
  int count_ = 0;
};

const json kCommonNotes = {
    {"StrictDecoding",
     "Refused by this library's strict decoder; the canonical client's decoder is lenient and accepts it "
     "(docs/compat.md)."},
    {"NonCanonical", "Decodes, but encoding the result gives other text."},
    {"ClientDeviation",
     "The canonical client accepts this; this library refuses it on purpose (docs/compat.md)."},
};

json notes(std::initializer_list<std::pair<const char*, const char*>> extra) {
  json n = kCommonNotes;
  for (const auto& [k, v] : extra) n[k] = v;
  return n;
}


// A device in memory whose random draws come from the generator's source, and
// the facade over it (members in this order: each uses the one before).
struct Device {
  MemoryCryptoStore store;
  EncryptionDevice device;
  GroupEncryptionCrypto crypto;
  Device(crypto::RandomSource& rng, const std::string& pickle_key) : device(store, rng), crypto(nullptr, device) {
    crypto.init({.pickle_key = SecretBytes(std::string_view(pickle_key))});
  }
};

// A device's binary ExportedDevice as the message.
river::ExportedDevice exported_device(Device& d) {
  auto bytes = d.crypto.export_device();
  river::ExportedDevice m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error(ErrorCode::INTERNAL, "export_device gave no ExportedDevice");
  }
  return m;
}

std::string stream_of(crypto::RandomSource& rng) { return "20" + hex(rng.bytes(31).span()); }

// ---------------------------------------------------------------- encodings

void encodings(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("encodings",
         {"Base64 (libolm's unpadded form and bin_toBase64's padded form), hex, and the protobuf JSON of "
          "SessionKeys, as protocol.md section 1 defines them."},
         notes({}));
  struct Case {
    std::string input;
    std::string output;
    std::vector<std::string> flags;
    std::string error;
    std::string comment;
  };
  auto random = rng.bytes(32);
  auto decode_group = [&](const char* padding, const std::vector<Case>& cases) {
    auto& g = f.group("base64Decode", {{"padding", padding}});
    for (const auto& c : cases) {
      json fields = {{"input", c.input}};
      if (c.error.empty()) fields["output"] = c.output;
      f.add(g, c.comment, fields, c.flags, c.error);
    }
  };
  std::string r_unpadded = crypto::base64_encode(random.span(), Base64Padding::kNone);
  std::string r_padded = crypto::base64_encode(random.span(), Base64Padding::kPadded);
  decode_group("none", {
                           {"", "", {}, "", "empty"},
                           {"AQ", "01", {}, "", "one byte"},
                           {"AQI", "0102", {}, "", "two bytes"},
                           {"AQID", "010203", {}, "", "three bytes"},
                           {r_unpadded, hex(random.span()), {}, "", "32 random bytes"},
                           {"AQ==", "", {"StrictDecoding"}, "BAD_ENCODING", "padding where none is allowed"},
                           {"A", "", {}, "BAD_ENCODING", "a length no encoding produces"},
                           {"AQ!D", "", {}, "BAD_ENCODING", "a character outside the alphabet"},
                           {"AR", "", {"StrictDecoding"}, "BAD_ENCODING", "non-zero trailing bits"},
                           {"-_8", "", {"StrictDecoding"}, "BAD_ENCODING", "the URL-safe alphabet"},
                           {"AQ I", "", {"StrictDecoding"}, "BAD_ENCODING", "white space"},
                       });
  decode_group("padded", {
                             {"AQ==", "01", {}, "", "one byte"},
                             {"AQI=", "0102", {}, "", "two bytes"},
                             {r_padded, hex(random.span()), {}, "", "32 random bytes"},
                             {"AQ", "", {"StrictDecoding"}, "BAD_ENCODING", "padding missing"},
                             {"AQ=", "", {"StrictDecoding"}, "BAD_ENCODING", "padding incomplete"},
                             {"AQ==AQ==", "", {"StrictDecoding"}, "BAD_ENCODING", "padding inside"},
                         });
  decode_group("optional", {
                               {"AQ==", "01", {}, "", "padded"},
                               {"AQ", "01", {}, "", "unpadded"},
                               {"A", "", {}, "BAD_ENCODING", "a length no encoding produces"},
                           });
  for (const char* padding : {"none", "padded"}) {
    auto& g = f.group("base64Encode", {{"padding", padding}});
    auto mode = std::string(padding) == "none" ? Base64Padding::kNone : Base64Padding::kPadded;
    for (size_t n : {0, 1, 2, 3, 32}) {
      std::span<const uint8_t> part(random.data(), n);
      f.add(g, std::to_string(n) + " bytes", {{"input", hex(part)}, {"output", crypto::base64_encode(part, mode)}});
    }
  }
  auto& hd = f.group("hexDecode");
  f.add(hd, "lowercase", {{"input", "0aff"}, {"output", "0aff"}});
  f.add(hd, "uppercase", {{"input", "0AFF"}, {"output", "0aff"}});
  f.add(hd, "0x prefix", {{"input", "0x0a"}, {"output", "0a"}});
  f.add(hd, "empty", {{"input", ""}, {"output", ""}});
  f.add(hd, "odd length", {{"input", "abc"}}, {}, "BAD_ENCODING");
  f.add(hd, "not a hex digit", {{"input", "0g"}}, {}, "BAD_ENCODING");
  f.add(hd, "0X prefix (the client refuses it too)", {{"input", "0X0a"}}, {}, "BAD_ENCODING");
  auto& he = f.group("hexEncode");
  f.add(he, "lowercase", {{"input", hex(random.span())}, {"output", hex(random.span())}});

  auto& sk = f.group("sessionKeysJson");
  f.add(sk, "two keys", {{"json", R"({"keys":["k1","k2"]})"}, {"keys", {"k1", "k2"}}});
  f.add(sk, "no keys: the canonical form is {}", {{"json", "{}"}, {"keys", json::array()}});
  f.add(sk, "an explicit empty list", {{"json", R"({"keys":[]})"}, {"keys", json::array()}}, {"NonCanonical"});
  f.add(sk, "white space", {{"json", R"({ "keys" : [ "a" ] })"}, {"keys", {"a"}}}, {"NonCanonical"});
  f.add(sk, "a list, not an object", {{"json", R"(["k1"])"}}, {}, "INVALID_ARGUMENT");
  f.add(sk, "keys is not a list", {{"json", R"({"keys":"k1"})"}}, {}, "INVALID_ARGUMENT");
  f.add(sk, "a key is not a string", {{"json", R"({"keys":[1]})"}}, {}, "INVALID_ARGUMENT");
  f.add(sk, "an unknown field", {{"json", R"({"keys":[],"other":1})"}}, {}, "INVALID_ARGUMENT");
  f.add(sk, "not JSON", {{"json", "keys: k1"}}, {}, "INVALID_ARGUMENT");
  f.write(dir + "/encodings.json", seed_hex);
}

// ---------------------------------------------------------------- protobuf

void protobuf(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("protobuf",
         {"Binary encodings of every wire message of protocol.md section 3 (package river). json is the "
          "message in the standard protobuf JSON mapping; bytes is its deterministic binary encoding."},
         notes({}));
  auto bytes = [&](size_t n) { return std::string(rng.bytes(n).view()); };
  auto add = [&](const google::protobuf::Message& m, const std::string& comment) {
    auto& g = f.group("protobufMessage", {{"message", m.GetTypeName()}});
    f.add(g, comment, {{"json", to_json(m)}, {"bytes", pb_hex(m)}});
    return serialize(m);
  };
  river::EncryptedData megolm;
  megolm.set_ciphertext(crypto::base64_encode(rng.bytes(40).span(), Base64Padding::kNone));
  megolm.set_algorithm("r.group-encryption.v1.aes-sha2");
  megolm.set_sender_key(crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone));
  megolm.set_session_id(crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone));
  megolm.set_version(river::ENCRYPTED_DATA_VERSION_1);
  auto megolm_bytes = add(megolm, "a megolm event");
  river::EncryptedData hybrid;
  hybrid.set_algorithm("grpaes");
  hybrid.set_sender_key(megolm.sender_key());
  hybrid.set_ciphertext_bytes(bytes(40));
  hybrid.set_iv_bytes(bytes(12));
  hybrid.set_session_id_bytes(bytes(32));
  hybrid.set_version(river::ENCRYPTED_DATA_VERSION_1);
  add(hybrid, "a grpaes event");
  river::EncryptedData optionals;
  optionals.set_ciphertext("c");
  optionals.set_checksum("");
  optionals.set_ref_event_id("ref");
  optionals.set_device_key("");
  add(optionals, "proto3 optional fields set to their defaults are encoded");
  river::MemberPayload::KeySolicitation sol;
  sol.set_device_key(megolm.sender_key());
  sol.set_fallback_key(crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone));
  sol.set_is_new_device(true);
  sol.add_session_ids(megolm.session_id());
  sol.add_session_ids(hex(hybrid.session_id_bytes()));
  add(sol, "a key solicitation");
  river::MemberPayload mp;
  *mp.mutable_key_solicitation() = sol;
  add(mp, "a member payload carrying it (field 2)");
  river::MemberPayload::KeyFulfillment ful;
  ful.set_user_address(bytes(20));
  ful.set_device_key(sol.device_key());
  ful.add_session_ids(megolm.session_id());
  add(ful, "a key fulfillment");
  river::MemberPayload mf;
  *mf.mutable_key_fulfillment() = ful;
  add(mf, "a member payload carrying it (field 3)");
  river::UserInboxPayload::GroupEncryptionSessions ges;
  ges.set_stream_id(bytes(32));
  ges.set_sender_key(megolm.sender_key());
  ges.add_session_ids(megolm.session_id());
  (*ges.mutable_ciphertexts())[sol.device_key()] = crypto::base64_encode(rng.bytes(60).span(), Base64Padding::kNone);
  ges.set_algorithm("r.group-encryption.v1.aes-sha2");
  add(ges, "group encryption sessions for one device");
  river::UserInboxPayload inbox;
  *inbox.mutable_group_encryption_sessions() = ges;
  add(inbox, "a user inbox payload carrying them (field 3)");
  river::UserMetadataPayload::EncryptionDevice dev;
  dev.set_device_key(sol.device_key());
  dev.set_fallback_key(sol.fallback_key());
  add(dev, "a published device");
  river::SessionKeys keys;
  keys.add_keys("key one");
  keys.add_keys("key two");
  add(keys, "session keys");
  river::HybridGroupSessionKey hk;
  hk.set_session_id(bytes(32));
  hk.set_stream_id(bytes(32));
  hk.set_key(bytes(32));
  hk.set_miniblock_num(9223372036854775807LL);
  hk.set_miniblock_hash(bytes(32));
  add(hk, "a hybrid session key, miniblock 2^63-1");
  river::HybridGroupSessionKey neg;
  neg.set_miniblock_num(-1);
  add(neg, "a negative miniblock number (ten-byte varint)");
  river::ExportedDevice ed;
  ed.set_picklekey("a pickle key");
  ed.set_pickledaccount("pickled account");
  auto* o = ed.add_outboundsessions();
  o->set_session_id("out");
  o->set_stream_id("20aa");
  o->set_session("pickle");
  auto* h = ed.add_hybridgroupsessions();
  h->set_session_id("hy");
  h->set_stream_id("20aa");
  h->set_session_key(serialize(hk));
  h->set_miniblock_num(3);
  add(ed, "an exported device");

  auto& bad = f.group("protobufMalformed", {{"message", "river.EncryptedData"}});
  f.add(bad, "truncated inside a length-delimited field",
        {{"bytes", hex(megolm_bytes.substr(0, megolm_bytes.size() - 3))}}, {}, "INVALID_ARGUMENT");
  f.add(bad, "a varint that never ends", {{"bytes", "58ffffffffffffffffffff"}}, {}, "INVALID_ARGUMENT");
  f.add(bad, "field number 0", {{"bytes", "0001"}}, {}, "INVALID_ARGUMENT");
  f.write(dir + "/protobuf.json", seed_hex);
}

// ---------------------------------------------------------------- hybrid

void hybrid(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("grpaes",
         {"The hybrid algorithm (protocol.md section 6): session id derivation, session import checks, "
          "AES-256-GCM, and decryption of grpaes events."},
         notes({}));
  auto& ids = f.group("hybridSessionId");
  auto stream = rng.bytes(32);
  stream.data()[0] = 0x20;
  auto key = rng.bytes(32);
  auto mhash = rng.bytes(32);
  struct IdCase {
    int64_t num;
    size_t hash_len;
  };
  for (auto c : {IdCase{0, 0}, IdCase{0, 32}, IdCase{1, 32}, IdCase{1, 0}, IdCase{9223372036854775807LL, 32},
                 IdCase{9223372036854775807LL, 0}}) {
    std::span<const uint8_t> h(mhash.data(), c.hash_len);
    f.add(ids, "miniblock " + std::to_string(c.num) + ", hash of " + std::to_string(c.hash_len) + " bytes",
          {{"streamId", hex(stream.span())},
           {"key", hex(key.span())},
           {"miniblockNum", std::to_string(c.num)},
           {"miniblockHash", hex(h)},
           {"sessionId", hex(hybrid_session_key_hash(stream.span(), key.span(), c.num, h))}});
  }

  Device d(rng, "hybrid generator");
  auto stream_id = stream_of(rng);
  // HybridSessionKey's methods are not exported from the shared library, so
  // the HybridGroupSessionKey is built here from its fields (as encode() does).
  auto session_key = d.device.hybrid().create(stream_id, 42, mhash.span());
  river::HybridGroupSessionKey session;
  session.set_session_id(session_key.session_id);
  session.set_stream_id(session_key.stream_id);
  session.set_key(session_key.key.str());
  session.set_miniblock_num(session_key.miniblock_num);
  session.set_miniblock_hash(session_key.miniblock_hash);
  auto session_id = hex(session.session_id());
  auto session_key_hex = pb_hex(session);

  auto& imp = f.group("hybridSessionImport", {{"streamId", stream_id}});
  f.add(imp, "a valid session key", {{"sessionId", session_id}, {"sessionKey", session_key_hex}});
  f.add(imp, "claimed for another stream",
        {{"streamId", stream_of(rng)}, {"sessionId", session_id}, {"sessionKey", session_key_hex}}, {}, "IMPORT_FAILED");
  f.add(imp, "claimed under another session id",
        {{"sessionId", hex(rng.bytes(32).span())}, {"sessionKey", session_key_hex}}, {}, "IMPORT_FAILED");
  auto forged = session;
  (*forged.mutable_key())[0] ^= 1;
  f.add(imp, "the key was changed: the id is not its hash", {{"sessionId", session_id}, {"sessionKey", pb_hex(forged)}}, {},
        "IMPORT_FAILED");
  f.add(imp, "not hex", {{"sessionId", session_id}, {"sessionKey", "zz"}}, {}, "IMPORT_FAILED");
  f.add(imp, "not a HybridGroupSessionKey", {{"sessionId", session_id}, {"sessionKey", "ffff"}}, {}, "IMPORT_FAILED");

  auto& aes = f.group("aesGcm", {{"keySize", 256}, {"ivSize", 96}, {"tagSize", 128}});
  auto aes_key = rng.bytes(32);
  auto gcm = crypto::AesGcm::New(aes_key);
  for (size_t n : {1, 16, 33}) {
    auto iv = rng.bytes(12);
    auto pt = rng.bytes(n);
    f.add(aes, std::to_string(n) + "-byte plaintext",
          {{"key", hex(aes_key.span())}, {"iv", hex(iv.span())}, {"plaintext", hex(pt.span())},
           {"ciphertext", hex(gcm.encrypt(iv.span(), pt.span()))}});
  }

  auto& dec = f.group("hybridDecrypt", {{"streamId", stream_id}, {"sessionId", session_id}, {"sessionKey", session_key_hex}});
  auto payload = rng.bytes(48);
  auto v1 = wire_convert::to_river(d.crypto.encrypt_group_event(stream_id, payload.span(), GroupEncryptionAlgorithm::kHybridGroupEncryption));
  f.add(dec, "version 1: bytes", {{"encryptedData", pb_hex(v1)}, {"plaintext", hex(payload.span())}});
  auto v0 = wire_convert::to_river(d.crypto.encrypt_group_event_deprecated_v0(stream_id, "version 0 text ✓", GroupEncryptionAlgorithm::kHybridGroupEncryption));
  f.add(dec, "version 0: the UTF-8 of a string",
        {{"encryptedData", pb_hex(v0)}, {"plaintext", hex(std::string("version 0 text ✓"))}});
  auto tag = v1;
  (*tag.mutable_ciphertext_bytes())[tag.ciphertext_bytes().size() - 1] ^= 0x80;
  f.add(dec, "the tag was modified", {{"encryptedData", pb_hex(tag)}}, {}, "DECRYPTION_FAILED");
  auto body = v1;
  (*body.mutable_ciphertext_bytes())[0] ^= 0x01;
  f.add(dec, "the ciphertext was modified", {{"encryptedData", pb_hex(body)}}, {}, "DECRYPTION_FAILED");
  auto short_ct = v1;
  short_ct.set_ciphertext_bytes(short_ct.ciphertext_bytes().substr(0, 16));
  f.add(dec, "a ciphertext shorter than 17 bytes", {{"encryptedData", pb_hex(short_ct)}}, {}, "DECRYPTION_FAILED");
  auto long_iv = v1;
  long_iv.set_iv_bytes(std::string(16, '\0'));
  f.add(dec, "an IV that is not 12 bytes", {{"encryptedData", pb_hex(long_iv)}}, {}, "DECRYPTION_FAILED");
  auto no_iv = v1;
  no_iv.clear_iv_bytes();
  f.add(dec, "no IV (the client's missing-fields check does not see empty bytes fields)",
        {{"encryptedData", pb_hex(no_iv)}}, {}, "DECRYPTION_FAILED");
  auto no_sender = v1;
  no_sender.clear_sender_key();
  f.add(dec, "no sender key", {{"encryptedData", pb_hex(no_sender)}}, {}, "HYBRID_GROUP_DECRYPTION_MISSING_FIELDS");
  auto other = v1;
  other.set_session_id_bytes(std::string(rng.bytes(32).view()));
  f.add(dec, "an unknown session", {{"encryptedData", pb_hex(other)}}, {}, "SESSION_NOT_FOUND");
  auto version = v1;
  version.set_version(static_cast<river::EncryptedDataVersion>(2));
  f.add(dec, "version 2", {{"encryptedData", pb_hex(version)}}, {}, "GROUP_DECRYPTION_INVALID_VERSION");
  auto& enc = f.group("hybridEncrypt", {{"streamId", stream_id}, {"sessionId", session_id}, {"sessionKey", session_key_hex}});
  f.add(enc, "an empty payload is refused", {{"plaintext", ""}}, {}, "EMPTY_PAYLOAD");
  f.write(dir + "/grpaes.json", seed_hex);
}

// ---------------------------------------------------------------- megolm

void megolm(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("megolm",
         {"GroupEncryption (protocol.md section 5): libolm megolm sessions imported from a key in either format, "
          "and EncryptedData events decrypted with them. sessionKey is libolm's base64 (the signed session-key "
          "format, or the export format at firstKnownIndex). olmError names libolm's error where one applies."},
         notes({{"ForgedRatchet",
                 "The key has the sender's public signing key but a different ratchet, so signatures verify and "
                 "the MAC does not."}}));
  Device d(rng, "megolm generator");
  auto stream_id = stream_of(rng);
  auto session_id = d.device.outbound().create(stream_id);
  auto signed_key = d.device.outbound().session_key(stream_id)->key.str();
  std::vector<river::EncryptedData> events;
  std::vector<std::string> texts;
  for (int i = 0; i < 6; ++i) {
    texts.push_back("megolm message " + std::to_string(i));
    if (i == 4) {
      events.push_back(wire_convert::to_river(d.crypto.encrypt_group_event_deprecated_v0(stream_id, texts.back(), GroupEncryptionAlgorithm::kGroupEncryption)));
    } else {
      events.push_back(wire_convert::to_river(d.crypto.encrypt_group_event(stream_id, crypto::as_bytes(texts.back()), GroupEncryptionAlgorithm::kGroupEncryption)));
    }
  }
  // The device exports only at the first known index; libolm exports at any.
  auto inbound = olm::InboundGroupSession::create(signed_key);
  auto export_at = [&](uint32_t i) { return inbound.export_session(i).str(); };

  auto& full = f.group("megolmDecrypt", {{"streamId", stream_id}, {"sessionId", session_id}, {"sessionKey", signed_key}, {"firstKnownIndex", 0}});
  for (int i : {5, 0, 2, 1, 4, 3}) {  // out of order on purpose
    f.add(full, "index " + std::to_string(i) + (i == 4 ? ", version 0" : ", version 1"),
          {{"encryptedData", pb_hex(events[static_cast<size_t>(i)])}, {"plaintext", hex(texts[static_cast<size_t>(i)])}, {"messageIndex", i}});
  }
  auto tampered = events[1];
  auto raw = crypto::base64_decode(tampered.ciphertext(), Base64Padding::kNone);
  raw[raw.size() / 2] ^= 0x01;
  tampered.set_ciphertext(crypto::base64_encode(raw, Base64Padding::kNone));
  f.add(full, "a ciphertext byte flipped", {{"encryptedData", pb_hex(tampered)}, {"olmError", "BAD_SIGNATURE"}}, {}, "DECRYPTION_FAILED");
  auto truncated = events[1];
  truncated.set_ciphertext(truncated.ciphertext().substr(0, 30));
  f.add(full, "truncated", {{"encryptedData", pb_hex(truncated)}}, {}, "DECRYPTION_FAILED");
  auto no_sender = events[0];
  no_sender.clear_sender_key();
  f.add(full, "no sender key", {{"encryptedData", pb_hex(no_sender)}}, {}, "GROUP_DECRYPTION_MISSING_FIELDS");
  auto no_ct = events[0];
  no_ct.clear_ciphertext();
  f.add(full, "no ciphertext", {{"encryptedData", pb_hex(no_ct)}}, {}, "GROUP_DECRYPTION_MISSING_FIELDS");
  auto unset = events[0];
  unset.clear_algorithm();
  f.add(full, "no algorithm", {{"encryptedData", pb_hex(unset)}}, {}, "GROUP_DECRYPTION_UNSET_ALGORITHM");
  auto unknown = events[0];
  unknown.set_algorithm("m.megolm.v1.aes-sha2");
  f.add(full, "an unknown algorithm", {{"encryptedData", pb_hex(unknown)}}, {}, "GROUP_DECRYPTION_UNKNOWN_ALGORITHM");
  auto version = events[0];
  version.set_version(static_cast<river::EncryptedDataVersion>(3));
  f.add(full, "version 3", {{"encryptedData", pb_hex(version)}}, {}, "GROUP_DECRYPTION_INVALID_VERSION");
  auto other_session = events[0];
  other_session.set_session_id(crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone));
  f.add(full, "a session nobody shared", {{"encryptedData", pb_hex(other_session)}}, {}, "SESSION_NOT_FOUND");

  auto& late = f.group("megolmDecrypt", {{"streamId", stream_id}, {"sessionId", session_id}, {"sessionKey", export_at(3)}, {"firstKnownIndex", 3}});
  f.add(late, "before the first known index", {{"encryptedData", pb_hex(events[1])}, {"olmError", "UNKNOWN_MESSAGE_INDEX"}}, {}, "DECRYPTION_FAILED");
  f.add(late, "at the first known index", {{"encryptedData", pb_hex(events[3])}, {"plaintext", hex(texts[3])}, {"messageIndex", 3}});
  f.add(late, "after it", {{"encryptedData", pb_hex(events[5])}, {"plaintext", hex(texts[5])}, {"messageIndex", 5}});

  // An export whose ratchet is not the session's: same id and signing key.
  auto exported = crypto::base64_decode(export_at(0), Base64Padding::kNone);
  auto ratchet = rng.bytes(128);
  std::copy(ratchet.data(), ratchet.data() + 128, exported.begin() + 5);
  auto& forged = f.group("megolmDecrypt", {{"streamId", stream_id}, {"sessionId", session_id},
                                            {"sessionKey", crypto::base64_encode(exported, Base64Padding::kNone)}, {"firstKnownIndex", 0}});
  f.add(forged, "the MAC does not verify", {{"encryptedData", pb_hex(events[0])}, {"olmError", "BAD_MESSAGE_MAC"}}, {"ForgedRatchet"}, "DECRYPTION_FAILED");

  auto& imp = f.group("megolmImport", {{"streamId", stream_id}});
  f.add(imp, "session-key format (signed)", {{"sessionId", session_id}, {"sessionKey", signed_key}, {"firstKnownIndex", 0}});
  f.add(imp, "export format at index 0", {{"sessionId", session_id}, {"sessionKey", export_at(0)}, {"firstKnownIndex", 0}});
  f.add(imp, "export format at index 2", {{"sessionId", session_id}, {"sessionKey", export_at(2)}, {"firstKnownIndex", 2}});
  f.add(imp, "claimed under another session id",
        {{"sessionId", crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone)}, {"sessionKey", export_at(0)}}, {}, "IMPORT_FAILED");
  f.add(imp, "not a session key", {{"sessionId", session_id}, {"sessionKey", "AAAA"}}, {}, "IMPORT_FAILED");
  f.write(dir + "/megolm.json", seed_hex);
}

// ---------------------------------------------------------------- olm

void olm(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("olm",
         {"Device-to-device pre-key messages (protocol.md section 7): the sender encrypts to the receiver's "
          "identity key and fallback key; the receiver, from its pickled account, decrypts."},
         notes({}));
  const std::string sender_key_text = "sender pickle key", receiver_key_text = "receiver pickle key";
  auto sender_account = olm::Account::create(rng);
  auto receiver_account = olm::Account::create(rng);
  receiver_account.generate_fallback_key(rng);
  auto fallback = only_fallback_key(receiver_account);
  auto& g = f.group("olmDecrypt", {{"senderIdentityKey", sender_account.curve25519_key()},
                                   {"senderPickle", sender_account.pickle(sender_key_text)},
                                   {"senderPickleKey", sender_key_text},
                                   {"receiverIdentityKey", receiver_account.curve25519_key()},
                                   {"receiverFallbackKey", fallback},
                                   {"receiverPickle", receiver_account.pickle(receiver_key_text)},
                                   {"receiverPickleKey", receiver_key_text}});
  auto encrypt = [&](const std::string& to_fallback, const std::string& payload) {
    auto session = olm::Session::create_outbound(sender_account, receiver_account.curve25519_key(), to_fallback, rng);
    return session.encrypt(crypto::as_bytes(payload), rng).body;
  };
  std::string payload =
      session_keys_json({SecretBytes(std::string_view("a session key")), SecretBytes(std::string_view("another"))}).str();
  auto message = encrypt(fallback, payload);
  f.add(g, "a pre-key message to the fallback key", {{"message", message}, {"payload", payload}});
  f.add(g, "a second message: a fresh session each time", {{"message", encrypt(fallback, "ünïcode payload")}, {"payload", "ünïcode payload"}});
  auto other = olm::Account::create(rng);
  other.generate_fallback_key(rng);
  auto other_fallback = only_fallback_key(other);
  f.add(g, "encrypted to a fallback key the receiver does not have",
        {{"message", encrypt(other_fallback, payload)}, {"olmError", "BAD_MESSAGE_KEY_ID"}}, {}, "DECRYPTION_FAILED");
  auto raw = crypto::base64_decode(message, Base64Padding::kNone);
  raw[raw.size() - 3] ^= 0x01;
  f.add(g, "a byte of the inner message flipped", {{"message", crypto::base64_encode(raw, Base64Padding::kNone)}}, {}, "DECRYPTION_FAILED");
  f.add(g, "claimed by another sender", {{"message", message}, {"senderIdentityKey", other.curve25519_key()}}, {}, "DECRYPTION_FAILED");
  f.add(g, "the receiver's pickle opened with a wrong key", {{"message", message}, {"receiverPickleKey", "not the key"}, {"olmError", "BAD_ACCOUNT_KEY"}}, {}, "DECRYPTION_FAILED");
  f.write(dir + "/olm.json", seed_hex);
}

// ---------------------------------------------------------------- session sharing

void sharing(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("session sharing",
         {"Receiving GroupEncryptionSessions (protocol.md section 8): the receiver, recreated from its "
          "ExportedDevice, reads the ciphertext for its own device key and imports the listed sessions."},
         notes({{"NotForThisDevice", "No ciphertext for the receiver's device: nothing is imported, no error."},
                {"UnknownAlgorithm", "An algorithm the receiver does not know: ignored, no error."}}));
  Device sender(rng, "sender");
  Device receiver(rng, "receiver");
  Device bystander(rng, "bystander");
  auto stream_id = stream_of(rng);
  sender.device.outbound().create(stream_id);
  auto megolm_sessions = sender.crypto.export_room_keys();
  auto mhash = rng.bytes(32);
  sender.device.hybrid().create(stream_id, 7, mhash.span());
  std::vector<GroupEncryptionSession> hybrid_sessions;
  for (auto& s : sender.crypto.export_room_keys()) {
    if (s.algorithm == kHybridGroupEncryptionAlgorithmId) hybrid_sessions.push_back(s);
  }
  auto& g = f.group("receiveSessions", {{"streamId", stream_id},
                                        {"receiverExportedDevice", pb_hex(exported_device(receiver))},
                                        {"receiverDeviceKey", receiver.crypto.get_user_device().device_key}});
  auto expect_json = [](const std::vector<GroupEncryptionSession>& ss) {
    json out = json::array();
    for (const auto& s : ss) out.push_back({{"sessionId", s.session_id}, {"sessionKey", s.session_key.str()}, {"algorithm", s.algorithm}});
    return out;
  };
  auto to = [&](GroupEncryptionAlgorithm a, const std::vector<GroupEncryptionSession>& ss, const std::vector<UserDevice>& devices) {
    return wire_convert::to_river(build_group_encryption_sessions(sender.crypto, stream_id, a, ss, devices).message);
  };
  auto both = std::vector<UserDevice>{receiver.crypto.get_user_device(), bystander.crypto.get_user_device()};
  f.add(g, "a megolm session", {{"groupEncryptionSessions", pb_hex(to(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, both))}, {"imported", expect_json(megolm_sessions)}});
  f.add(g, "a grpaes session", {{"groupEncryptionSessions", pb_hex(to(GroupEncryptionAlgorithm::kHybridGroupEncryption, hybrid_sessions, both))}, {"imported", expect_json(hybrid_sessions)}});
  auto empty_alg = to(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, both);
  empty_alg.clear_algorithm();
  f.add(g, "no algorithm means megolm", {{"groupEncryptionSessions", pb_hex(empty_alg)}, {"imported", expect_json(megolm_sessions)}});
  f.add(g, "only for another device", {{"groupEncryptionSessions", pb_hex(to(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, {bystander.crypto.get_user_device()}))}, {"imported", json::array()}}, {"NotForThisDevice"});
  auto future = to(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, both);
  future.set_algorithm("future.algorithm.v9");
  f.add(g, "an unknown algorithm", {{"groupEncryptionSessions", pb_hex(future)}, {"imported", json::array()}}, {"UnknownAlgorithm"});
  auto mismatch = to(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, both);
  mismatch.add_session_ids("one id too many");
  f.add(g, "more session ids than keys", {{"groupEncryptionSessions", pb_hex(mismatch)}}, {}, "IMPORT_FAILED");
  auto garbage = to(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, both);
  (*garbage.mutable_ciphertexts())[receiver.crypto.get_user_device().device_key] = "AwogYXJiYWdl";
  f.add(g, "a ciphertext that is not an olm message", {{"groupEncryptionSessions", pb_hex(garbage)}}, {}, "DECRYPTION_FAILED");
  f.write(dir + "/session_sharing.json", seed_hex);
}

// ---------------------------------------------------------------- key exchange

void key_exchange(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("key exchange",
         {"The decisions of protocol.md section 9, on session ids alone. decideSolicitation: which "
          "solicitation a device that misses sessions posts (null: none). decideAnswer: what a device that "
          "sees a solicitation fulfills and shares (null: nothing)."},
         notes({}));
  auto id = [&] { return crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone); };
  auto hid = [&] { return hex(rng.bytes(32).span()); };
  auto own = id();
  auto requester = id();
  auto sol_json = [](const river::MemberPayload::KeySolicitation& s) {
    return json{{"deviceKey", s.device_key()}, {"isNewDevice", s.is_new_device()},
                {"sessionIds", std::vector<std::string>(s.session_ids().begin(), s.session_ids().end())}};
  };
  // pending: what the SDK's getKeySolicitations looks through, stored
  // solicitations (each in the record of the member who posted it, userId)
  // first, then our ephemeral records (ephemeral: true). Only ours with our
  // device key count, and the first of those decides.
  auto own_user = hex(rng.bytes(20).span());
  auto other_user = hex(rng.bytes(20).span());
  auto other_device = id();
  struct Pending {
    std::string user;  // empty: one of our ephemeral records
    river::MemberPayload::KeySolicitation s;
  };
  auto& gs = f.group("decideSolicitation", {{"ownUserId", own_user}, {"ownDeviceKey", own}});
  auto add_sol = [&](const std::string& comment, std::vector<std::string> missing, size_t held,
                     std::vector<Pending> pending) {
    json pj = json::array();
    std::vector<river::MemberPayload::KeySolicitation> ours;
    for (const auto& p : pending) {
      auto j = sol_json(p.s);
      if (p.user.empty()) {
        j["ephemeral"] = true;
      } else {
        j["userId"] = p.user;
      }
      pj.push_back(j);
      if ((p.user.empty() || p.user == own_user) && p.s.device_key() == own) ours.push_back(p.s);
    }
    auto d = decide_key_solicitation(missing, held, wire_convert::to_plain(ours));
    json out = d ? json{{"isNewDevice", d->is_new_device}, {"sessionIds", d->session_ids}} : json(nullptr);
    f.add(gs, comment, {{"missingSessionIds", missing}, {"heldSessionCount", held}, {"pending", pj}, {"solicitation", out}});
  };
  auto mine = [&](const river::MemberPayload::KeySolicitation& s) { return Pending{own_user, s}; };
  auto a = id(), b = id(), c = id();
  river::MemberPayload::KeySolicitation same, newdev, other;
  // Pending ids are compared as given: stream state keeps them sorted.
  same.set_device_key(own);
  for (auto& x : std::vector<std::string>{std::min(a, b), std::max(a, b)}) same.add_session_ids(x);
  river::MemberPayload::KeySolicitation reversed = same;
  std::reverse(reversed.mutable_session_ids()->begin(), reversed.mutable_session_ids()->end());
  newdev.set_device_key(own);
  newdev.set_is_new_device(true);
  newdev.add_session_ids(c);
  other.set_device_key(own);
  other.add_session_ids(c);
  add_sol("a new device: holds nothing", {b, a}, 0, {});
  add_sol("missing some: ids sorted and once", {b, a, b}, 3, {});
  add_sol("nothing missing: no solicitation", {}, 3, {});
  add_sol("the same ids pending", {b, a}, 3, {mine(same)});
  add_sol("a new-device solicitation pending", {a}, 0, {mine(newdev)});
  add_sol("other ids pending", {a, b}, 3, {mine(other)});
  add_sol("the same ids pending in another order: compared as given, asked again", {b, a}, 3, {mine(reversed)});
  add_sol("two pending: only the first counts (the SDK looks at the first)", {a, b}, 3, {mine(other), mine(same)});
  std::vector<std::string> many;
  for (int i = 0; i < 130; ++i) many.push_back(id());
  add_sol("130 missing: the first 100 sorted", many, 1, {});

  // Another user's solicitations sit in that user's record: never ours.
  auto theirs = same;
  theirs.set_device_key(other_device);
  add_sol("the same ids pending, posted by another user's device: asked", {a, b}, 3, {Pending{other_user, theirs}});
  add_sol("the same ids pending under our device key but posted by another user: asked", {a, b}, 3, {Pending{other_user, same}});
  auto theirs_new = newdev;
  theirs_new.set_device_key(other_device);
  add_sol("a new-device solicitation of another user's device pending: asked, as a new device", {a}, 0, {Pending{other_user, theirs_new}});
  add_sol("another user's new-device solicitation under our device key: asked", {a}, 0, {Pending{other_user, newdev}});
  add_sol("the same ids pending from our user's other device: asked", {a, b}, 3, {mine(theirs)});
  add_sol("our other device's first, then ours with the same ids: ours is the first with our key, not asked", {a, b}, 3,
          {mine(theirs), mine(same)});
  add_sol("another user's first, then ours with the same ids: not asked", {a, b}, 3, {Pending{other_user, same}, mine(same)});
  add_sol("our ephemeral record with the same ids: not asked", {b, a}, 3, {Pending{"", same}});
  add_sol("our ephemeral new-device record: not asked", {a, b, c}, 0, {Pending{"", newdev}});
  add_sol("our stored one with other ids, then an ephemeral record with the same ids: the stored one decides, asked", {a, b}, 3,
          {mine(other), Pending{"", same}});
  auto fulfilled = same;
  fulfilled.clear_session_ids();
  add_sol("our stored solicitation with every id fulfilled (no ids left): asked again", {a, b}, 3, {mine(fulfilled)});
  auto dup = same;
  dup.add_session_ids(same.session_ids(1));
  add_sol("our pending solicitation lists an id twice: not equal, asked", {a, b}, 3, {mine(dup)});
  add_sol("the same id missing three times: one id", {c, c, c}, 0, {});
  add_sol("pending ids are a superset of the missing: asked", {a}, 3, {mine(same)});
  std::vector<std::string> hundred(many.begin(), many.begin() + 100);
  add_sol("exactly 100 missing: all of them", hundred, 2, {});
  std::vector<std::string> hundred_one(many.begin(), many.begin() + 101);
  add_sol("101 missing: the first 100 sorted", hundred_one, 2, {});
  auto first100 = hundred_one;
  std::sort(first100.begin(), first100.end());
  first100.resize(100);
  river::MemberPayload::KeySolicitation p100;
  p100.set_device_key(own);
  for (const auto& x : first100) p100.add_session_ids(x);
  add_sol("101 missing, the first 100 already pending: not asked", hundred_one, 2, {mine(p100)});

  auto& ga = f.group("decideAnswer", {{"ownDeviceKey", own}});
  std::map<std::string, GroupEncryptionAlgorithm> known;
  std::vector<std::string> megolm_ids{id(), id(), id()}, hybrid_ids{hid(), hid()};
  for (const auto& x : megolm_ids) known.emplace(x, GroupEncryptionAlgorithm::kGroupEncryption);
  for (const auto& x : hybrid_ids) known.emplace(x, GroupEncryptionAlgorithm::kHybridGroupEncryption);
  json known_json = json::object();
  for (const auto& [k, v] : known) known_json[k] = std::string(algorithm_id(v));
  auto add_ans = [&](const std::string& comment, const river::MemberPayload::KeySolicitation& s, bool entitled,
                     const std::map<std::string, GroupEncryptionAlgorithm>& k) {
    json kj = json::object();
    for (const auto& [x, v] : k) kj[x] = std::string(algorithm_id(v));
    auto d = decide_solicitation_answer(k, own, wire_convert::to_plain(s), entitled);
    json out = nullptr;
    if (d) {
      json shares = json::array();
      for (const auto& [alg, ids] : d->shares) shares.push_back({{"algorithm", std::string(algorithm_id(alg))}, {"sessionIds", ids}});
      out = {{"fulfilledSessionIds", d->fulfilled_session_ids}, {"shares", shares}};
    }
    f.add(ga, comment, {{"known", kj}, {"solicitation", sol_json(s)}, {"requesterEntitled", entitled}, {"answer", out}});
  };
  river::MemberPayload::KeySolicitation s1;
  s1.set_device_key(requester);
  s1.add_session_ids(megolm_ids[1]);
  s1.add_session_ids(hybrid_ids[0]);
  s1.add_session_ids(id());
  add_ans("some requested, some unknown", s1, true, known);
  add_ans("not entitled", s1, false, known);
  river::MemberPayload::KeySolicitation s2;
  s2.set_device_key(requester);
  s2.set_is_new_device(true);
  s2.add_session_ids(megolm_ids[0]);
  add_ans("a new device gets every session; the fulfillment lists the requested ones", s2, true, known);
  river::MemberPayload::KeySolicitation s3;
  s3.set_device_key(requester);
  s3.set_is_new_device(true);
  s3.add_session_ids(id());
  add_ans("a new device asking for ids nobody has: every session, all listed", s3, true, known);
  river::MemberPayload::KeySolicitation s4;
  s4.set_device_key(requester);
  s4.add_session_ids(id());
  add_ans("nothing to reply with", s4, true, known);
  auto s5 = s1;
  s5.set_device_key(own);
  add_ans("our own device's solicitation", s5, true, known);
  river::MemberPayload::KeySolicitation s6;
  s6.set_device_key(requester);
  s6.set_is_new_device(true);
  add_ans("no session ids at all", s6, true, known);
  std::map<std::string, GroupEncryptionAlgorithm> lots;
  river::MemberPayload::KeySolicitation s7;
  s7.set_device_key(requester);
  for (int i = 0; i < 150; ++i) {
    auto x = id();
    lots.emplace(x, GroupEncryptionAlgorithm::kGroupEncryption);
    if (i < 120) s7.add_session_ids(x);
  }
  add_ans("150 known, 120 requested: shares of at most 100 sessions", s7, true, lots);
  auto sol_of = [&](const std::string& device, bool is_new, const std::vector<std::string>& ids) {
    river::MemberPayload::KeySolicitation s;
    s.set_device_key(device);
    s.set_is_new_device(is_new);
    for (const auto& x : ids) s.add_session_ids(x);
    return s;
  };
  add_ans("a solicitation listing ids twice: each fulfilled and shared once",
          sol_of(requester, false, {hybrid_ids[1], megolm_ids[2], hybrid_ids[1], megolm_ids[2]}), true, known);
  add_ans("requested ids out of order: fulfilled sorted", sol_of(requester, false, {megolm_ids[2], megolm_ids[0], hybrid_ids[1]}), true, known);
  add_ans("a new device, not entitled", s2, false, known);
  add_ans("a new device, our own device key", sol_of(own, true, {megolm_ids[0]}), true, known);
  add_ans("every requested id unknown, not a new device", sol_of(requester, false, {id(), hid(), id()}), true, known);
  add_ans("every requested id unknown, not entitled either", sol_of(requester, false, {id()}), false, known);
  add_ans("a new device, we hold nothing", sol_of(requester, true, {id()}), true, {});
  add_ans("not a new device, we hold nothing", sol_of(requester, false, {megolm_ids[0]}), true, {});
  // Both algorithms, ids interleaved in sort order: megolm ids are base64,
  // hybrid ids hex; the first character decides the order here.
  auto with_first = [](std::string x, char c) {
    x[0] = c;
    return x;
  };
  std::map<std::string, GroupEncryptionAlgorithm> mixed;
  std::vector<std::string> mixed_ids;
  for (auto [c, alg] : std::vector<std::pair<char, GroupEncryptionAlgorithm>>{
           {'0', GroupEncryptionAlgorithm::kGroupEncryption}, {'1', GroupEncryptionAlgorithm::kHybridGroupEncryption},
           {'2', GroupEncryptionAlgorithm::kGroupEncryption}, {'3', GroupEncryptionAlgorithm::kHybridGroupEncryption},
           {'A', GroupEncryptionAlgorithm::kGroupEncryption}, {'a', GroupEncryptionAlgorithm::kHybridGroupEncryption},
           {'b', GroupEncryptionAlgorithm::kGroupEncryption}, {'c', GroupEncryptionAlgorithm::kHybridGroupEncryption}}) {
    auto x = with_first(alg == GroupEncryptionAlgorithm::kGroupEncryption ? id() : hid(), c);
    mixed.emplace(x, alg);
    mixed_ids.push_back(x);
  }
  add_ans("both algorithms interleaved in sort order, megolm first: one share each, megolm's first", sol_of(requester, false, mixed_ids), true, mixed);
  add_ans("both algorithms interleaved, a new device asking for some: all shared, the requested fulfilled",
          sol_of(requester, true, {mixed_ids[3], mixed_ids[4]}), true, mixed);
  add_ans("both algorithms interleaved, hybrid first in sort order: the hybrid share first",
          sol_of(requester, false, {mixed_ids[1], mixed_ids[2], mixed_ids[5], mixed_ids[6]}), true, mixed);
  std::map<std::string, GroupEncryptionAlgorithm> many_hybrid;
  std::vector<std::string> many_hybrid_ids;
  for (int i = 0; i < 130; ++i) {
    auto x = hid();
    many_hybrid.emplace(x, GroupEncryptionAlgorithm::kHybridGroupEncryption);
    many_hybrid_ids.push_back(x);
  }
  for (int i = 0; i < 20; ++i) many_hybrid.emplace(id(), GroupEncryptionAlgorithm::kGroupEncryption);
  add_ans("130 hybrid and 20 megolm sessions, a new device: hybrid in runs of 100 and 30, then megolm (hex ids sort first)",
          sol_of(requester, true, {many_hybrid_ids[5]}), true, many_hybrid);
  add_ans("130 hybrid requested: runs of 100 and 30", sol_of(requester, false, many_hybrid_ids), true, many_hybrid);
  std::map<std::string, GroupEncryptionAlgorithm> megolm100;
  std::vector<std::string> m100_ids;
  for (int i = 0; i < 101; ++i) {
    auto x = id();
    megolm100.emplace(x, GroupEncryptionAlgorithm::kGroupEncryption);
    m100_ids.push_back(x);
  }
  add_ans("exactly 100 requested and held: one share", sol_of(requester, false, std::vector<std::string>(m100_ids.begin(), m100_ids.begin() + 100)),
          true, megolm100);
  add_ans("101 requested and held: a share of 100 and one of 1", sol_of(requester, false, m100_ids), true, megolm100);
  add_ans("an empty device key is not ours: answered", sol_of("", false, {megolm_ids[1]}), true, known);
  (void)known_json;
  f.write(dir + "/key_exchange.json", seed_hex);
}

// ---------------------------------------------------------------- exported devices

void exported_devices(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("exported device",
         {"ExportedDevice (payloads.proto): a device recreated from its export has the same keys, decrypts "
          "the events of the sessions it carries, and continues its outbound megolm sessions at the next index."},
         notes({}));
  Device d(rng, "exported device key");
  auto stream_id = stream_of(rng);
  std::vector<std::pair<river::EncryptedData, std::string>> events;
  for (int i = 0; i < 3; ++i) {
    std::string text = "before export " + std::to_string(i);
    events.push_back({wire_convert::to_river(d.crypto.encrypt_group_event(stream_id, crypto::as_bytes(text), GroupEncryptionAlgorithm::kGroupEncryption)), text});
  }
  auto mhash = rng.bytes(32);
  d.crypto.ensure_outbound_session(stream_id, GroupEncryptionAlgorithm::kHybridGroupEncryption, {.miniblock_info = MiniblockInfo{5, {mhash.data(), mhash.data() + 32}}});
  events.push_back({wire_convert::to_river(d.crypto.encrypt_group_event(stream_id, crypto::as_bytes(std::string("grpaes before export")), GroupEncryptionAlgorithm::kHybridGroupEncryption)), "grpaes before export"});
  auto exported = exported_device(d);
  auto& g = f.group("importDevice");
  json evs = json::array();
  for (const auto& [e, t] : events) evs.push_back({{"streamId", stream_id}, {"encryptedData", pb_hex(e)}, {"plaintext", hex(t)}});
  f.add(g, "a device with megolm and grpaes sessions",
        {{"exportedDevice", pb_hex(exported)},
         {"deviceKey", d.crypto.get_user_device().device_key},
         {"fallbackKey", d.crypto.get_user_device().fallback_key},
         {"events", evs},
         // Three messages went out; the export is advanced past the block the
         // device had reserved (docs/performance.md), so it continues there.
         {"outbound", json::array({json{{"streamId", stream_id}, {"sessionId", events[0].first.session_id()},
                                        {"nextMessageIndex", OutboundSessions::kReservation}}})}});
  auto damaged = exported;
  damaged.mutable_inboundsessions(0)->set_session("not a pickle");
  f.add(g, "an inbound session pickle is damaged", {{"exportedDevice", pb_hex(damaged)}}, {"ClientDeviation"}, "IMPORT_FAILED");
  auto wrong_key = exported;
  wrong_key.set_picklekey("not the pickle key");
  f.add(g, "the pickle key does not open the pickles", {{"exportedDevice", pb_hex(wrong_key)}}, {}, "IMPORT_FAILED");
  f.add(g, "not a protobuf", {{"exportedDevice", "0001"}}, {}, "INVALID_ARGUMENT");

  // ---- more refusals, each against the client's verdict. The client only
  // unpickles the account (protocol.md section 14.3); what it stores unread is
  // a ClientDeviation here.
  const std::string their_key = exported.picklekey();
  auto bytes = serialize(exported);
  auto ident = [&](const Device& x) {
    return json{{"deviceKey", x.crypto.get_user_device().device_key}, {"fallbackKey", x.crypto.get_user_device().fallback_key},
                {"events", json::array()}, {"outbound", json::array()}};
  };
  json same_device = ident(d);
  // The test's fields: the device's, with the given ones added.
  auto merge = [](json base, const json& extra) {
    for (auto& [k, v] : extra.items()) base[k] = v;
    return base;
  };
  f.add(g, "truncated in the middle of the account pickle", {{"exportedDevice", hex(bytes.substr(0, bytes.size() / 2))}}, {},
        "INVALID_ARGUMENT");
  f.add(g, "garbage: a varint that never ends", {{"exportedDevice", "ffffffffffffffffffffff"}}, {}, "INVALID_ARGUMENT");
  f.add(g, "trailing junk: a field whose length runs past the end", {{"exportedDevice", hex(bytes) + "0a05ab"}}, {},
        "INVALID_ARGUMENT");
  f.add(g, "trailing junk: wire type 7", {{"exportedDevice", hex(bytes) + "0f"}}, {}, "INVALID_ARGUMENT");
  auto no_account = exported;
  no_account.clear_pickledaccount();
  f.add(g, "no pickled account", {{"exportedDevice", pb_hex(no_account)}}, {}, "IMPORT_FAILED");
  auto account = olm::Account::unpickle(SecretBytes(std::string_view(their_key)), exported.pickledaccount());
  auto other_key_account = exported;
  other_key_account.set_pickledaccount(account.pickle(SecretBytes(std::string_view("another pickle key"))));
  f.add(g, "the account pickled under another key than pickleKey (the sessions under pickleKey)",
        {{"exportedDevice", pb_hex(other_key_account)}}, {}, "IMPORT_FAILED");
  auto change_char = [](std::string p, size_t at) {
    p[at] = p[at] == 'A' ? 'B' : 'A';
    return p;
  };
  auto bad_account = exported;
  bad_account.set_pickledaccount(change_char(exported.pickledaccount(), exported.pickledaccount().size() / 2));
  f.add(g, "the account pickle with one base64 character changed", {{"exportedDevice", pb_hex(bad_account)}}, {},
        "IMPORT_FAILED");
  auto short_account = exported;
  short_account.set_pickledaccount(exported.pickledaccount().substr(0, exported.pickledaccount().size() - 12));
  f.add(g, "the account pickle truncated", {{"exportedDevice", pb_hex(short_account)}}, {}, "IMPORT_FAILED");
  auto bad_outbound = exported;
  bad_outbound.mutable_outboundsessions(0)->set_session(change_char(exported.outboundsessions(0).session(), 40));
  f.add(g, "an outbound session pickle with one base64 character changed", merge(same_device, {{"exportedDevice", pb_hex(bad_outbound)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");
  auto bad_inbound = exported;
  bad_inbound.mutable_inboundsessions(0)->set_session(change_char(exported.inboundsessions(0).session(), 40));
  f.add(g, "an inbound session pickle with one base64 character changed", merge(same_device, {{"exportedDevice", pb_hex(bad_inbound)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");
  auto other_outbound = exported;
  other_outbound.mutable_outboundsessions(0)->set_session_id("AAAA" + exported.outboundsessions(0).session_id().substr(4));
  f.add(g, "an outbound session listed under another session id than its pickle's", merge(same_device, {{"exportedDevice", pb_hex(other_outbound)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");

  // Hybrid records: the client stores them unread.
  river::HybridGroupSessionKey hkey;
  if (!hkey.ParseFromString(exported.hybridgroupsessions(0).session_key())) throw Error(ErrorCode::INTERNAL, "hybrid key");
  auto not_a_key = exported;
  not_a_key.mutable_hybridgroupsessions(0)->set_session_key("not a HybridGroupSessionKey");
  f.add(g, "a hybrid session whose sessionKey is not a HybridGroupSessionKey", merge(same_device, {{"exportedDevice", pb_hex(not_a_key)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");
  auto flipped = hkey;
  flipped.mutable_key()->at(0) ^= 1;
  auto bad_hash = exported;
  bad_hash.mutable_hybridgroupsessions(0)->set_session_key(serialize(flipped));
  f.add(g, "a hybrid session whose key does not hash to its session id", merge(same_device, {{"exportedDevice", pb_hex(bad_hash)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");
  auto hybrid_key = [&](const std::string& stream_hex, size_t key_size, int64_t num) {
    river::HybridGroupSessionKey k;
    auto stream_bytes = crypto::hex_decode(stream_hex);
    k.set_stream_id(std::string(stream_bytes.begin(), stream_bytes.end()));
    auto key = rng.bytes(key_size);
    k.set_key(std::string(key.view()));
    k.set_miniblock_num(num);
    auto h = rng.bytes(32);
    k.set_miniblock_hash(std::string(h.view()));
    auto id = hybrid_session_key_hash(stream_bytes, key.span(), num, h.span());
    k.set_session_id(std::string(id.begin(), id.end()));
    return k;
  };
  auto hybrid_entry = [&](const river::HybridGroupSessionKey& k) {
    river::ExportedDevice::HybridGroupSession s;
    s.set_session_id(hex(k.session_id()));
    s.set_stream_id(hex(k.stream_id()));
    s.set_session_key(serialize(k));
    s.set_miniblock_num(k.miniblock_num());
    return s;
  };
  auto short_key = exported;
  *short_key.add_hybridgroupsessions() = hybrid_entry(hybrid_key(stream_id, 16, 9));
  f.add(g, "a hybrid session with a 16-byte key (its id is the hash of it)", merge(same_device, {{"exportedDevice", pb_hex(short_key)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");
  auto other_stream = exported;
  other_stream.mutable_hybridgroupsessions(0)->set_stream_id(stream_of(rng));
  f.add(g, "a hybrid session listed under another stream id than its key holds", merge(same_device, {{"exportedDevice", pb_hex(other_stream)}}),
        {"ClientDeviation"}, "IMPORT_FAILED");
  auto twice_hybrid = exported;
  auto second = hybrid_entry(hybrid_key(stream_id, 32, 11));
  second.set_session_id(exported.hybridgroupsessions(0).session_id());
  *twice_hybrid.add_hybridgroupsessions() = second;
  f.add(g, "one hybrid session id twice, the second with another key (whose own id differs): the client keeps the last",
        merge(same_device, {{"exportedDevice", pb_hex(twice_hybrid)}}), {"ClientDeviation"}, "IMPORT_FAILED");

  // ---- a device with several streams, megolm sessions of its own and of a
  // sender, one of them from a later index, and grpaes sessions.
  Device sender(rng, "sender pickle key");
  Device multi(rng, "multi stream key");
  std::vector<std::string> streams{stream_of(rng), stream_of(rng), stream_of(rng)};
  json mevents = json::array();
  auto event = [&](Device& from, const std::string& s, const std::string& text, GroupEncryptionAlgorithm alg) {
    auto e = wire_convert::to_river(from.crypto.encrypt_group_event(s, crypto::as_bytes(text), alg));
    return json{{"streamId", s}, {"encryptedData", pb_hex(e)}, {"plaintext", hex(text)}};
  };
  std::vector<json> late_events;
  json early_event;
  for (size_t i = 0; i < streams.size(); ++i) {
    for (int k = 0; k < 2; ++k) mevents.push_back(event(multi, streams[i], "own megolm " + std::to_string(i) + "." + std::to_string(k), GroupEncryptionAlgorithm::kGroupEncryption));
    if (i != 1) {
      auto h = rng.bytes(32);
      multi.crypto.ensure_outbound_session(streams[i], GroupEncryptionAlgorithm::kHybridGroupEncryption,
                                           {.miniblock_info = MiniblockInfo{static_cast<int64_t>(10 + i), {h.data(), h.data() + 32}}});
      mevents.push_back(event(multi, streams[i], "own grpaes " + std::to_string(i), GroupEncryptionAlgorithm::kHybridGroupEncryption));
    }
    // The sender's session: shared from index 0 on stream 0, from index 2 elsewhere.
    std::vector<json> sent;
    for (int k = 0; k < 4; ++k) sent.push_back(event(sender, streams[i], "from the sender " + std::to_string(i) + "." + std::to_string(k), GroupEncryptionAlgorithm::kGroupEncryption));
    auto sid = sender.device.outbound().session_key(streams[i])->session_id;
    auto full = sender.crypto.export_group_session(streams[i], sid);
    uint32_t from = i == 0 ? 0 : 2;
    auto key = olm::InboundGroupSession::import_session(full->session_key).export_session(from);
    auto r = multi.device.import_sessions({{streams[i], sid, std::move(key), GroupEncryptionAlgorithm::kGroupEncryption}});
    if (r.at(0).error) throw *r[0].error;
    for (uint32_t k = from; k < 4; ++k) mevents.push_back(sent[k]);
    if (i == 1) {
      late_events.assign(sent.begin() + 2, sent.end());
      early_event = sent[0];
    }
  }
  auto sender_hybrid = rng.bytes(32);
  sender.crypto.ensure_outbound_session(streams[2], GroupEncryptionAlgorithm::kHybridGroupEncryption,
                                        {.miniblock_info = MiniblockInfo{40, {sender_hybrid.data(), sender_hybrid.data() + 32}}});
  {
    auto e = event(sender, streams[2], "sender grpaes", GroupEncryptionAlgorithm::kHybridGroupEncryption);
    auto id = sender.crypto.get_group_session_ids(streams[2]);
    for (const auto& s : id) {
      auto x = sender.crypto.export_group_session(streams[2], s);
      if (x && x->algorithm == algorithm_id(GroupEncryptionAlgorithm::kHybridGroupEncryption)) {
        auto r = multi.device.import_sessions({{streams[2], s, std::move(x->session_key), GroupEncryptionAlgorithm::kHybridGroupEncryption}});
        if (r.at(0).error) throw *r[0].error;
      }
    }
    mevents.push_back(e);
  }
  auto multi_export = exported_device(multi);
  json mout = json::array();
  for (const auto& s : streams) {
    mout.push_back({{"streamId", s}, {"sessionId", multi.device.outbound().session_key(s)->session_id},
                    {"nextMessageIndex", OutboundSessions::kReservation}});
  }
  auto multi_case = ident(multi);
  multi_case["events"] = mevents;
  multi_case["outbound"] = mout;
  f.add(g, "three streams: own megolm and grpaes sessions, a sender's megolm sessions (two from index 2) and a sender's grpaes session",
        merge(multi_case, {{"exportedDevice", pb_hex(multi_export)}}));
  // Listed in reverse: the import does not depend on the order.
  auto reversed = multi_export;
  std::reverse(reversed.mutable_outboundsessions()->begin(), reversed.mutable_outboundsessions()->end());
  std::reverse(reversed.mutable_inboundsessions()->begin(), reversed.mutable_inboundsessions()->end());
  std::reverse(reversed.mutable_hybridgroupsessions()->begin(), reversed.mutable_hybridgroupsessions()->end());
  f.add(g, "the same device with every session list reversed", merge(multi_case, {{"exportedDevice", pb_hex(reversed)}}));
  // The session shared from index 2: only its later messages decrypt.
  int late = -1;
  for (int i = 0; i < multi_export.inboundsessions_size(); ++i) {
    if (multi_export.inboundsessions(i).stream_id() == streams[1] &&
        olm::InboundGroupSession::unpickle(SecretBytes(std::string_view(multi_export.picklekey())), multi_export.inboundsessions(i).session())
                .first_known_index() == 2) {
      late = i;
    }
  }
  if (late < 0) throw Error(ErrorCode::INTERNAL, "no late inbound session");
  auto late_case = ident(multi);
  late_case["events"] = late_events;
  f.add(g, "an inbound session whose pickle starts at index 2: messages 2 and 3 decrypt",
        merge(late_case, {{"exportedDevice", pb_hex(multi_export)}}));
  late_case["events"] = json::array({early_event});
  f.add(g, "the same session's message 0, below the pickle's first known index", merge(late_case, {{"exportedDevice", pb_hex(multi_export)}}),
        {}, "DECRYPTION_FAILED");
  auto with_unknown = serialize(multi_export) + std::string("\x48\x01\x62\x03" "abc", 7);
  f.add(g, "unknown fields 9 (varint) and 12 (bytes) after the known ones are skipped",
        merge(multi_case, {{"exportedDevice", hex(with_unknown)}}));
  // The same inbound session twice: the last listed wins, here and in the client.
  auto full_late = multi_export.inboundsessions(late);
  auto twice_inbound = multi_export;
  auto other_inbound = multi_export.inboundsessions(late == 0 ? 1 : 0);
  auto dup = full_late;
  dup.set_session(other_inbound.session());
  *twice_inbound.add_inboundsessions() = dup;
  f.add(g, "one inbound session id twice, the second a pickle of another session: the client keeps the last",
        merge(ident(multi), {{"exportedDevice", pb_hex(twice_inbound)}}), {"ClientDeviation"}, "IMPORT_FAILED");

  // The empty pickle key: used as given, by this library as by the client
  // (this library refuses an empty key only as a device's own, docs/compat.md).
  auto empty_key = multi_export;
  empty_key.set_picklekey("");
  {
    SecretBytes k(std::string_view(multi_export.picklekey()));
    SecretBytes none;
    empty_key.set_pickledaccount(olm::Account::unpickle(k, multi_export.pickledaccount()).pickle(none));
    for (auto& s : *empty_key.mutable_outboundsessions()) s.set_session(olm::OutboundGroupSession::unpickle(k, s.session()).pickle(none));
    for (auto& s : *empty_key.mutable_inboundsessions()) s.set_session(olm::InboundGroupSession::unpickle(k, s.session()).pickle(none));
  }
  f.add(g, "pickleKey empty, every pickle under the empty key", merge(multi_case, {{"exportedDevice", pb_hex(empty_key)}}));

  // ---- exportDevice: what this library's export_device gives after importing
  // the state, with the export's own pickle key (as the client, whose pickle key
  // becomes the export's).
  auto& ge = f.group("exportDevice");
  auto add_export = [&](const std::string& comment, const river::ExportedDevice& in) {
    MemoryCryptoStore store;
    EncryptionDevice device(store, rng);
    GroupEncryptionCrypto c(nullptr, device);
    auto in_bytes = serialize(in);
    c.init({.pickle_key = SecretBytes(std::string_view(in.picklekey())), .from_exported_device = SecretBytes(std::string_view(in_bytes))});
    auto out = c.export_device();
    f.add(ge, comment, {{"exportedDevice", hex(in_bytes)}, {"exported", hex(out.span())}});
  };
  add_export("a device with megolm and grpaes sessions on one stream", exported);
  add_export("three streams, lists in this library's order", multi_export);
  add_export("three streams, every list reversed", reversed);
  auto shuffled = multi_export;
  std::rotate(shuffled.mutable_inboundsessions()->begin(), shuffled.mutable_inboundsessions()->begin() + 2, shuffled.mutable_inboundsessions()->end());
  std::rotate(shuffled.mutable_outboundsessions()->begin(), shuffled.mutable_outboundsessions()->begin() + 1, shuffled.mutable_outboundsessions()->end());
  std::swap(*shuffled.mutable_hybridgroupsessions(0), *shuffled.mutable_hybridgroupsessions(2));
  add_export("three streams, lists rotated and swapped", shuffled);
  {
    river::ExportedDevice parsed;
    if (!parsed.ParseFromString(with_unknown)) throw Error(ErrorCode::INTERNAL, "unknown fields");
    add_export("unknown fields are not exported again", parsed);
  }
  auto account_only = multi_export;
  account_only.clear_outboundsessions();
  account_only.clear_inboundsessions();
  account_only.clear_hybridgroupsessions();
  add_export("an account and no session", account_only);
  auto dup_same = multi_export;
  *dup_same.add_inboundsessions() = multi_export.inboundsessions(0);
  *dup_same.add_hybridgroupsessions() = multi_export.hybridgroupsessions(1);
  add_export("an inbound and a hybrid session listed twice: exported once", dup_same);
  Device plain(rng, std::string(kDefaultPickleKey));
  auto ps = stream_of(rng);
  (void)plain.crypto.encrypt_group_event(ps, crypto::as_bytes(std::string("hello")), GroupEncryptionAlgorithm::kGroupEncryption);
  add_export("a device under the default pickle key", exported_device(plain));
  f.write(dir + "/exported_device.json", seed_hex);
}

// ---------------------------------------------------------------- derived scheme

// The binary of a UserBio (bio (1), updated_at_epoch_ms (2)), what the SDK's
// setUserBio encrypts; written out by hand (proto/ carries no UserBio).
std::string user_bio(const std::string& bio, uint64_t updated_at_ms) {
  std::string out = "\x0a";
  out += static_cast<char>(bio.size());
  out += bio;
  out += '\x10';
  for (uint64_t v = updated_at_ms; ; v >>= 7) {
    if (v < 0x80) {
      out += static_cast<char>(v);
      break;
    }
    out += static_cast<char>((v & 0x7f) | 0x80);
  }
  return out;
}

void derived(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("r.aes-256-gcm.derived",
         {"The derived scheme (protocol.md section 12), as @towns-protocol/sdk-crypto 0.0.455 and the SDK's "
          "callers do it: key and IV from a key phrase, AES-256-GCM, padded base64 in an EncryptedData with "
          "only ciphertext and algorithm set."},
         notes({}));
  const std::string space = "0x1234567890abcdef1234567890abcdef12345678";
  const std::string user = "0x" + hex(rng.bytes(20).span());
  const std::string other = "0x" + hex(rng.bytes(20).span());
  auto& kd = f.group("deriveKeyAndIv");
  auto add_kd = [&](const std::string& comment, const std::string& phrase) {
    auto d = derive_key_and_iv(phrase);
    f.add(kd, comment, {{"keyPhrase", phrase}, {"key", hex(d.key.span())}, {"iv", hex(d.iv.span())}});
  };
  add_kd("protocol.md 12.2's example: a space's contract address", space);
  add_kd("a user id", user);
  add_kd("the same user id in upper case: another key", "0x" + [&] {
    std::string u = user.substr(2);
    for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
  }());
  add_kd("the empty phrase", "");
  add_kd("a phrase beyond ASCII: its UTF-8 bytes", "ünïcode ✓");

  auto bio = user_bio("towns bio ✓", 1700000000123ULL);
  auto random = rng.bytes(100);
  auto& enc = f.group("derivedEncrypt");
  auto add_enc = [&](const std::string& comment, const std::string& phrase, std::span<const uint8_t> pt) {
    auto e = encrypt_derived(phrase, pt);
    f.add(enc, comment,
          {{"keyPhrase", phrase}, {"plaintext", hex(pt)}, {"ciphertext", e.ciphertext},
           {"encryptedData", hex(derived_encrypted_data_bytes(e))}});
    return e;
  };
  auto example = add_enc("protocol.md 12.2's phrase", space, crypto::as_bytes(std::string("towns derived scheme")));
  auto bio_e = add_enc("a UserBio under a user id", user, crypto::as_bytes(bio));
  add_enc("100 random bytes", space, random.span());
  auto one = add_enc("one byte: padding in the base64", user, crypto::as_bytes(std::string("x")));
  f.add(enc, "an empty plaintext is refused", {{"keyPhrase", space}, {"plaintext", ""}}, {}, "EMPTY_PAYLOAD");

  auto& dec = f.group("derivedDecrypt");
  const std::string alg(kDerivedAlgorithmId);
  auto pb = [](const DerivedEncryptedData& d) { return hex(derived_encrypted_data_bytes(d)); };
  auto add_dec = [&](const std::string& comment, const std::string& phrase, const std::string& encrypted_data,
                     const std::optional<std::string>& plaintext, const std::vector<std::string>& flags = {},
                     const std::string& error = {}) {
    json fields = {{"keyPhrase", phrase}, {"encryptedData", encrypted_data}};
    if (plaintext) fields["plaintext"] = hex(*plaintext);
    f.add(dec, comment, fields, flags, error);
  };
  add_dec("protocol.md 12.2's phrase", space, pb(example), "towns derived scheme");
  add_dec("a UserBio", user, pb(bio_e), bio);
  auto unpadded = one;
  while (!unpadded.ciphertext.empty() && unpadded.ciphertext.back() == '=') unpadded.ciphertext.pop_back();
  add_dec("unpadded base64 (both SDK builds read it)", user, pb(unpadded), "x");
  river::EncryptedData extra;
  extra.set_ciphertext(example.ciphertext);
  extra.set_algorithm(alg);
  extra.set_sender_key("not read");
  extra.set_session_id("not read");
  extra.set_version(river::ENCRYPTED_DATA_VERSION_1);
  add_dec("other EncryptedData fields are ignored", space, pb_hex(extra), "towns derived scheme");
  auto keys = derive_key_and_iv(space);
  auto aes = crypto::AesGcm::New(keys.key);
  auto b64 = [](std::span<const uint8_t> b) { return crypto::base64_encode(b, Base64Padding::kPadded); };
  add_dec("a tag alone (16 bytes): an empty plaintext, as in the SDK", space,
          pb({b64(aes.encrypt(keys.iv.span(), {})), alg}), std::string());
  add_dec("another key phrase", other, pb(example), std::nullopt, {}, "DECRYPTION_FAILED");
  add_dec("the key phrase not lower-cased", "0x1234567890ABCDEF1234567890ABCDEF12345678", pb(example), std::nullopt, {},
          "DECRYPTION_FAILED");
  auto raw = crypto::base64_decode(example.ciphertext, Base64Padding::kPadded);
  auto changed = [&](size_t at) {
    auto t = raw;
    t[at] ^= 0x01;
    return pb({b64(t), alg});
  };
  add_dec("the ciphertext was modified", space, changed(0), std::nullopt, {}, "DECRYPTION_FAILED");
  add_dec("the tag was modified", space, changed(raw.size() - 1), std::nullopt, {}, "DECRYPTION_FAILED");
  add_dec("truncated to 15 bytes", space, pb({b64(std::span<const uint8_t>(raw.data(), 15)), alg}), std::nullopt, {},
          "DECRYPTION_FAILED");
  add_dec("an empty ciphertext", space, pb({"", alg}), std::nullopt, {}, "DECRYPTION_FAILED");
  auto eight = aes.encrypt(keys.iv.span(), crypto::as_bytes(std::string("8 bytes!")));
  add_dec("8 bytes and the first 4 bytes of the tag: the SDK's Node build reads a 4-byte tag and accepts it", space,
          pb({b64(std::span<const uint8_t>(eight.data(), 12)), alg}), std::nullopt, {"ClientDeviation"},
          "DECRYPTION_FAILED");
  auto tag_only = aes.encrypt(keys.iv.span(), {});
  add_dec("the first 8 bytes of an empty plaintext's tag: the SDK's Node build accepts an 8-byte tag", space,
          pb({b64(std::span<const uint8_t>(tag_only.data(), 8)), alg}), std::nullopt, {"ClientDeviation"},
          "DECRYPTION_FAILED");
  auto other_alg = example;
  other_alg.algorithm = "grpaes";
  add_dec("another algorithm (the SDK: Err.UNIMPLEMENTED)", space, pb(other_alg), std::nullopt, {}, "UNKNOWN_ALGORITHM");
  other_alg.algorithm = "";
  add_dec("no algorithm", space, pb(other_alg), std::nullopt, {}, "UNKNOWN_ALGORITHM");
  other_alg.algorithm = "R.AES-256-GCM.DERIVED";
  add_dec("the algorithm in upper case", space, pb(other_alg), std::nullopt, {}, "UNKNOWN_ALGORITHM");
  auto url_safe = example;
  for (auto& c : url_safe.ciphertext) c = c == '+' ? '-' : c == '/' ? '_' : c;
  add_dec("the URL-safe alphabet (the SDK's Node build reads it)", space, pb(url_safe), std::nullopt,
          {"StrictDecoding"}, "BAD_ENCODING");
  auto spaced = example;
  spaced.ciphertext.insert(8, " ");
  add_dec("white space inside (both SDK builds skip it)", space, pb(spaced), std::nullopt, {"StrictDecoding"},
          "BAD_ENCODING");
  auto trailing = one;  // 17 bytes: the last character before "=" carries 2 unused bits
  {
    auto& t = trailing.ciphertext;
    auto at = t.find('=') - 1;
    static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    t[at] = kAlphabet[kAlphabet.find(t[at]) | 1];
  }
  add_dec("non-zero unused bits in the last character (the SDK ignores them)", user, pb(trailing), std::nullopt,
          {"StrictDecoding"}, "BAD_ENCODING");
  add_dec("not base64 at all (the SDK's Node build skips the characters and fails on what is left)", space,
          pb({"%%%%", alg}), std::nullopt, {"StrictDecoding"}, "BAD_ENCODING");
  add_dec("not an EncryptedData", space, "ffff", std::nullopt, {}, "INVALID_ARGUMENT");
  f.write(dir + "/derived.json", seed_hex);
}

// ---------------------------------------------------------------- media

void media(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("chunked AES-256-GCM",
         {"Media encryption (protocol.md section 13): the per-chunk form of @towns-protocol/sdk-crypto 0.0.455 "
          "(encryptChunkedAESGCM, with its key and IVs given), its decryption chunk by chunk, and the older "
          "whole-file form (the SDK's Client.getMediaPayload)."},
         notes({}));
  auto chunk_json = [](const std::vector<MediaChunk>& chunks) {
    json out = json::array();
    for (const auto& c : chunks) out.push_back({{"ciphertext", hex(c.ciphertext)}, {"iv", hex(c.iv)}});
    return out;
  };
  auto ivs_of = [&](size_t n) {
    std::vector<std::vector<uint8_t>> ivs;
    for (size_t i = 0; i < n; ++i) {
      auto iv = rng.bytes(12);
      ivs.emplace_back(iv.data(), iv.data() + 12);
    }
    return ivs;
  };
  auto ivs_json = [](const std::vector<std::vector<uint8_t>>& ivs) {
    json out = json::array();
    for (const auto& iv : ivs) out.push_back(hex(iv));
    return out;
  };
  auto& enc = f.group("mediaEncrypt");
  struct Made {
    SecretBytes key;
    std::vector<uint8_t> data;
    std::vector<MediaChunk> chunks;
  };
  std::vector<Made> made;
  auto add_enc = [&](const std::string& comment, std::vector<uint8_t> data, size_t chunk_size) {
    auto key = rng.bytes(32);
    auto ivs = ivs_of(media_chunk_count(data.size(), chunk_size));
    auto chunks = encrypt_chunked_media_with(data, chunk_size, key, ivs);
    f.add(enc, comment,
          {{"data", hex(data)}, {"chunkSize", chunk_size}, {"secretKey", hex(key.span())}, {"ivs", ivs_json(ivs)},
           {"chunks", chunk_json(chunks)}});
    made.push_back({std::move(key), std::move(data), std::move(chunks)});
  };
  auto text = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  auto random_bytes = [&](size_t n) {
    auto b = rng.bytes(n);
    return std::vector<uint8_t>(b.data(), b.data() + n);
  };
  add_enc("10 bytes in chunks of 20: pieces of 4, the last shorter", text("abcdefghij"), 20);
  add_enc("12 bytes in chunks of 20: three full chunks", text("abcdefghijkl"), 20);
  add_enc("one byte per chunk (chunk size 17)", text("abc"), 17);
  add_enc("100 random bytes in chunks of 40", random_bytes(100), 40);
  add_enc("a chunk size larger than the data: one chunk", random_bytes(33), 1'200'000);
  auto key = rng.bytes(32);
  auto three = ivs_of(3);
  json base = {{"data", hex(text("abcdefghij"))}, {"chunkSize", 20}, {"secretKey", hex(key.span())}, {"ivs", ivs_json(three)}};
  auto with = [&](json changes) {
    json t = base;
    for (auto& [k, v] : changes.items()) t[k] = v;
    return t;
  };
  f.add(enc, "empty data is refused", with({{"data", ""}, {"ivs", json::array()}}), {}, "EMPTY_PAYLOAD");
  f.add(enc, "chunk size 16: no room for data (the SDK fails on an empty piece)", with({{"chunkSize", 16}}), {},
        "INVALID_ARGUMENT");
  f.add(enc, "chunk size 10: a chunk would exceed it (the SDK: Encrypted chunk exceeds chunkSize)",
        with({{"chunkSize", 10}}), {}, "INVALID_ARGUMENT");
  f.add(enc, "a 31-byte key", with({{"secretKey", hex(std::span<const uint8_t>(key.data(), 31))}}), {},
        "INVALID_ARGUMENT");
  f.add(enc, "two IVs for three chunks", with({{"ivs", ivs_json({three[0], three[1]})}}), {}, "INVALID_ARGUMENT");
  auto long_iv = three;
  long_iv[1].resize(16);
  f.add(enc, "a 16-byte IV", with({{"ivs", ivs_json(long_iv)}}), {}, "INVALID_ARGUMENT");
  f.add(enc, "an IV used twice under one key", with({{"ivs", ivs_json({three[0], three[1], three[0]})}}), {},
        "INVALID_ARGUMENT");

  auto& dec = f.group("mediaDecrypt");
  for (const auto& m : made) {
    f.add(dec, std::to_string(m.data.size()) + " bytes in " + std::to_string(m.chunks.size()) + " chunks",
          {{"secretKey", hex(m.key.span())}, {"chunks", chunk_json(m.chunks)}, {"data", hex(m.data)}});
  }
  const auto& m0 = made[0];
  auto bad = [&](const std::string& comment, const std::vector<MediaChunk>& chunks, const std::string& error,
                 const std::vector<std::string>& flags = {}, const SecretBytes* k = nullptr) {
    f.add(dec, comment, {{"secretKey", hex((k ? *k : m0.key).span())}, {"chunks", chunk_json(chunks)}}, flags, error);
  };
  auto aes0 = crypto::AesGcm::New(m0.key);
  auto tag_only = m0.chunks;
  auto extra_iv = rng.bytes(12);
  tag_only.push_back({aes0.encrypt(extra_iv.span(), {}), std::vector<uint8_t>(extra_iv.data(), extra_iv.data() + 12)});
  f.add(dec, "a chunk of 16 bytes (a tag alone) adds nothing, as in the SDK",
        {{"secretKey", hex(m0.key.span())}, {"chunks", chunk_json(tag_only)}, {"data", hex(m0.data)}});
  auto wrong_key = rng.bytes(32);
  bad("another key", m0.chunks, "DECRYPTION_FAILED", {}, &wrong_key);
  SecretBytes short_key(std::span<const uint8_t>(m0.key.data(), 16));
  bad("a 16-byte key", m0.chunks, "INVALID_ARGUMENT", {}, &short_key);
  bad("no chunks", {}, "INVALID_ARGUMENT");
  auto swapped = m0.chunks;
  std::swap(swapped[0], swapped[1]);
  auto reordered_data = m0.data;
  std::swap_ranges(reordered_data.begin(), reordered_data.begin() + 4, reordered_data.begin() + 4);
  f.add(dec, "two chunks swapped with their IVs decrypt, reordered: nothing binds a chunk to its index",
        {{"secretKey", hex(m0.key.span())}, {"chunks", chunk_json(swapped)}, {"data", hex(reordered_data)}});
  auto swapped_ct = m0.chunks;
  std::swap(swapped_ct[0].ciphertext, swapped_ct[1].ciphertext);
  bad("two ciphertexts swapped, the IVs left in place", swapped_ct, "DECRYPTION_FAILED");
  auto other_iv = m0.chunks;
  other_iv[1].iv = m0.chunks[0].iv;
  bad("a chunk under another chunk's IV", other_iv, "DECRYPTION_FAILED");
  auto tag = m0.chunks;
  tag[2].ciphertext.back() ^= 0x80;
  bad("a tag was modified", tag, "DECRYPTION_FAILED");
  auto body = m0.chunks;
  body[1].ciphertext[0] ^= 0x01;
  bad("a ciphertext was modified", body, "DECRYPTION_FAILED");
  auto cut = m0.chunks;
  cut[2].ciphertext.resize(15);
  bad("a chunk of 15 bytes", cut, "DECRYPTION_FAILED");
  // The SDK's Node build takes the tag of an n-byte chunk (n < 16) to be its last
  // 16 - n bytes, so 8 bytes and the first 4 bytes of their tag pass there.
  auto short_tag = m0.chunks;
  auto short_iv_bytes = rng.bytes(12);
  short_tag[0].iv.assign(short_iv_bytes.data(), short_iv_bytes.data() + 12);
  short_tag[0].ciphertext = aes0.encrypt(short_tag[0].iv, crypto::as_bytes(std::string("8 bytes!")));
  short_tag[0].ciphertext.resize(8 + 4);
  bad("a chunk of 8 bytes and the first 4 bytes of its tag: the SDK's Node build reads a 4-byte tag and accepts it",
      short_tag, "DECRYPTION_FAILED", {"ClientDeviation"});
  auto short_iv = m0.chunks;
  short_iv[1].iv.resize(8);
  bad("an 8-byte IV", short_iv, "DECRYPTION_FAILED");
  auto no_iv = m0.chunks;
  no_iv[0].iv.clear();
  bad("a chunk without IV", no_iv, "DECRYPTION_FAILED");

  auto& whole = f.group("wholeFileDecrypt");
  auto wkey = rng.bytes(32);
  auto wiv = rng.bytes(12);
  auto wdata = random_bytes(50);
  auto sealed = crypto::AesGcm::New(wkey).encrypt(wiv.span(), wdata);
  auto pieces = [&](size_t size) {
    json out = json::array();
    for (size_t i = 0; i < sealed.size(); i += size) {
      out.push_back(hex(std::span<const uint8_t>(sealed).subspan(i, std::min(size, sealed.size() - i))));
    }
    return out;
  };
  json wbase = {{"secretKey", hex(wkey.span())}, {"iv", hex(wiv.span())}, {"chunks", pieces(30)}};
  auto wwith = [&](json changes) {
    json t = wbase;
    for (auto& [k, v] : changes.items()) t[k] = v;
    return t;
  };
  f.add(whole, "50 bytes sealed once, cut into chunks of 30", wwith({{"data", hex(wdata)}}));
  f.add(whole, "the same in one chunk", wwith({{"chunks", pieces(sealed.size())}, {"data", hex(wdata)}}));
  f.add(whole, "the same in chunks of 1 byte", wwith({{"chunks", pieces(1)}, {"data", hex(wdata)}}));
  f.add(whole, "another IV", wwith({{"iv", hex(rng.bytes(12).span())}}), {}, "DECRYPTION_FAILED");
  f.add(whole, "a 16-byte IV", wwith({{"iv", hex(rng.bytes(16).span())}}), {}, "DECRYPTION_FAILED");
  f.add(whole, "another key", wwith({{"secretKey", hex(rng.bytes(32).span())}}), {}, "DECRYPTION_FAILED");
  f.add(whole, "a 31-byte key", wwith({{"secretKey", hex(std::span<const uint8_t>(wkey.data(), 31))}}), {},
        "INVALID_ARGUMENT");
  json reordered = pieces(30);
  std::swap(reordered[0], reordered[1]);
  f.add(whole, "the chunks out of order", wwith({{"chunks", reordered}}), {}, "DECRYPTION_FAILED");
  f.add(whole, "the last chunk missing", wwith({{"chunks", json::array({pieces(30)[0]})}}), {}, "DECRYPTION_FAILED");
  f.add(whole, "no chunks", wwith({{"chunks", json::array()}}), {}, "INVALID_ARGUMENT");
  auto short_sealed = crypto::AesGcm::New(wkey).encrypt(wiv.span(), crypto::as_bytes(std::string("8 bytes!")));
  f.add(whole, "8 bytes and the first 4 bytes of their tag: the SDK's Node build reads a 4-byte tag and accepts it",
        wwith({{"chunks", json::array({hex(std::span<const uint8_t>(short_sealed.data(), 12))})}}), {"ClientDeviation"},
        "DECRYPTION_FAILED");
  f.add(whole, "15 bytes in all", wwith({{"chunks", json::array({hex(std::span<const uint8_t>(sealed.data(), 15))})}}),
        {}, "DECRYPTION_FAILED");
  f.write(dir + "/media.json", seed_hex);
}

}  // namespace

std::vector<std::string> file_names() {
  return {"encodings.json", "protobuf.json", "grpaes.json", "megolm.json", "olm.json",
          "session_sharing.json", "key_exchange.json", "exported_device.json", "derived.json", "media.json",
          "key_exchange_trace.json"};
}

void generate(std::span<const uint8_t> seed, const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto seed_hex = hex(seed);
  // One source per file, each derived from the seed and the file's name, so that
  // a change in one file's draws does not shift every file after it.
  auto source = [&](const char* name) {
    std::vector<uint8_t> s(seed.begin(), seed.end());
    s.insert(s.end(), name, name + std::char_traits<char>::length(name));
    return crypto::SeededRandom(s);
  };
  { auto r = source("encodings"); encodings(dir, seed_hex, r); }
  { auto r = source("protobuf"); protobuf(dir, seed_hex, r); }
  { auto r = source("grpaes"); hybrid(dir, seed_hex, r); }
  { auto r = source("megolm"); megolm(dir, seed_hex, r); }
  { auto r = source("olm"); olm(dir, seed_hex, r); }
  { auto r = source("session_sharing"); sharing(dir, seed_hex, r); }
  { auto r = source("key_exchange"); key_exchange(dir, seed_hex, r); }
  { auto r = source("exported_device"); exported_devices(dir, seed_hex, r); }
  { auto r = source("derived"); derived(dir, seed_hex, r); }
  { auto r = source("media"); media(dir, seed_hex, r); }
  // The key exchange traces come from their own seeded timelines (scripted
  // cases, random seeds 1 to 15), not from this seed.
  {
    std::ofstream f(std::filesystem::path(dir) / "key_exchange_trace.json");
    f << tools::make_trace_vectors(15).dump(2) << "\n";
  }
}

}  // namespace towns::vectors
