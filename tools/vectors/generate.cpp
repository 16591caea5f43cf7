// The vector generator. Every random input comes from one SeededRandom, drawn in
// a fixed order, so a seed always gives the same files.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
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
#include "vectors/given_random.h"

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
  std::deque<json> groups_;  // a deque: a group stays where it is while more are added
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

// A device recreated from an ExportedDevice that must draw nothing (every
// output then follows from the state alone).
struct Imported {
  MemoryCryptoStore store;
  vectors::GivenRandom given;  // what it may draw: nothing, unless given
  EncryptionDevice device{store, given};
  GroupEncryptionCrypto crypto{nullptr, device};
  explicit Imported(const std::string& exported, std::span<const uint8_t> random = {}) : given(random) {
    crypto.init({.from_exported_device = SecretBytes(std::string_view(exported))});
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
  f.add(hd, "the prefix alone: no bytes", {{"input", "0x"}, {"output", ""}});
  f.add(hd, "mixed case", {{"input", "aBcD"}, {"output", "abcd"}});
  f.add(hd, "a space inside", {{"input", "0a 0b"}}, {}, "BAD_ENCODING");
  f.add(hd, "a line break at the end", {{"input", "0a\n"}}, {}, "BAD_ENCODING");
  f.add(hd, "the prefix twice", {{"input", "0x0x0a"}}, {}, "BAD_ENCODING");
  f.add(hd, "a sign in front", {{"input", "-0a"}}, {}, "BAD_ENCODING");
  auto& he = f.group("hexEncode");
  f.add(he, "lowercase", {{"input", hex(random.span())}, {"output", hex(random.span())}});
  f.add(he, "no bytes", {{"input", ""}, {"output", ""}});
  {
    std::vector<uint8_t> all(256);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i);
    f.add(he, "every byte value, 00 to ff", {{"input", hex(all)}, {"output", hex(all)}});
  }

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
  namespace pb = google::protobuf;
  using namespace std::string_literals;
  File f("protobuf",
         {"Binary encodings of every wire message of protocol.md section 3 (package river), the ten the "
          "library's codec reads. json is the message in the standard protobuf JSON mapping.",
          "protobufMessage: bytes is the message's deterministic binary encoding (fields in number order, map "
          "entries sorted by key). protobufNonCanonical: bytes decodes to json but is not that encoding "
          "(unknown fields, fields out of order or repeated, entries unsorted); encoded is the message's "
          "deterministic encoding. protobufMalformed: bytes does not parse as the message."},
         notes({{"ClientDeviation",
                 "The canonical client reads this otherwise (docs/compat.md): a known field under another wire "
                 "type, which this library skips as unknown and protobuf-es reads by its declared type."}}));
  // The wire format by hand (protobuf encoding, "Message Structure").
  auto varint = [](uint64_t v) {
    std::string out;
    while (v >= 0x80) {
      out += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    return out + static_cast<char>(v);
  };
  auto tag = [&](uint32_t field, int wire_type) { return varint((uint64_t{field} << 3) | wire_type); };
  auto ld = [&](uint32_t field, const std::string& body) { return tag(field, 2) + varint(body.size()) + body; };
  auto num = [&](uint32_t field, uint64_t v) { return tag(field, 0) + varint(v); };
  // A length-delimited field whose length is the 11-byte varint of its real
  // length (a varint is at most 10 bytes).
  auto ld_long_length = [&](uint32_t field, const std::string& body) {
    std::string len(1, static_cast<char>((body.size() & 0x7f) | 0x80));
    len += std::string(9, '\x80') + std::string(1, '\0');
    return tag(field, 2) + len + body;
  };
  const std::string eleven_byte_varint = std::string(10, '\xff') + std::string(1, '\x01');
  // One unknown field of every wire type, at numbers none of the messages use
  // (up to the largest field number, 2^29-1: a five-byte tag): a varint, a
  // fixed64, a length-delimited one, a fixed32, and a group holding fields.
  auto unknown_fields = [&](uint32_t base) {
    return num(base, 150) + tag(base + 1, 1) + std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8) +
           ld(base + 2, "unknown") + tag(base + 3, 5) + std::string("\xfe\xff\xff\xff", 4) + tag(base + 4, 3) +
           num(1, 1) + ld(2, "in a group") + tag(3, 3) + tag(3, 4) + tag(base + 4, 4) + ld(536870911, "last");
  };
  auto b64 = [&](size_t n) { return crypto::base64_encode(rng.bytes(n).span(), Base64Padding::kNone); };
  auto raw = [&](size_t n) { return std::string(rng.bytes(n).view()); };

  auto parse = [](const std::string& type, const std::string& bytes) {
    (void)river::EncryptedData::descriptor();
    (void)river::ExportedDevice::descriptor();
    const auto* desc = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
    if (desc == nullptr) throw Error(ErrorCode::INTERNAL, "no message " + type);
    std::unique_ptr<pb::Message> m(pb::MessageFactory::generated_factory()->GetPrototype(desc)->New());
    pb::LogSilencer quiet;
    if (!m->ParseFromString(bytes)) m.reset();
    return m;
  };
  // protobuf's JSON of a message, with map entries sorted by key: the order the
  // deterministic encoding writes them in, so that a reader that encodes a map
  // in the JSON's order (protobuf-es) gives the same bytes.
  auto json_of = [](const pb::Message& m) {
    std::function<void(json&)> sort_maps = [&](json& j) {
      if (j.is_array()) {
        for (auto& e : j) sort_maps(e);
      } else if (j.is_object()) {
        for (auto& [k, v] : j.items()) {
          if (k == "ciphertexts") {
            std::map<std::string, json> sorted;
            for (auto& [mk, mv] : v.items()) sorted[mk] = mv;
            v = json(sorted);
          } else {
            sort_maps(v);
          }
        }
      }
    };
    auto j = json::parse(to_json(m));
    sort_maps(j);
    return j.dump();
  };

  struct Case {
    Case(std::string b, std::string c, std::vector<std::string> fl = {})
        : bytes(std::move(b)), comment(std::move(c)), flags(std::move(fl)) {}
    std::string bytes, comment;
    std::vector<std::string> flags;
  };
  struct Cases {
    std::string message;
    std::vector<Case> valid, noncanonical, malformed;
  };
  std::vector<Cases> all;
  auto message = [&](const std::string& name) -> Cases& {
    all.push_back({name, {}, {}, {}});
    return all.back();
  };

  // ---- river.EncryptedData
  {
    auto& c = message("river.EncryptedData");
    river::EncryptedData megolm;
    megolm.set_ciphertext(b64(40));
    megolm.set_algorithm("r.group-encryption.v1.aes-sha2");
    megolm.set_sender_key(b64(32));
    megolm.set_session_id(b64(32));
    megolm.set_version(river::ENCRYPTED_DATA_VERSION_1);
    c.valid.push_back({serialize(megolm), "a megolm event"});
    river::EncryptedData hybrid;
    hybrid.set_algorithm("grpaes");
    hybrid.set_sender_key(megolm.sender_key());
    hybrid.set_ciphertext_bytes(raw(40));
    hybrid.set_iv_bytes(raw(12));
    hybrid.set_session_id_bytes(raw(32));
    hybrid.set_version(river::ENCRYPTED_DATA_VERSION_1);
    c.valid.push_back({serialize(hybrid), "a grpaes event"});
    river::EncryptedData full = megolm;
    full.set_checksum(b64(8));
    full.set_ref_event_id(hex(rng.bytes(32).span()));
    full.set_ciphertext_bytes(hybrid.ciphertext_bytes());
    full.set_iv_bytes(hybrid.iv_bytes());
    full.set_session_id_bytes(hybrid.session_id_bytes());
    full.set_device_key(b64(32));
    auto full_bytes = serialize(full);
    c.valid.push_back({full_bytes, "all eleven fields set, in number order (7 is reserved)"});
    river::EncryptedData optionals;
    optionals.set_ciphertext("c");
    optionals.set_checksum("");
    optionals.set_ref_event_id("ref");
    optionals.set_device_key("");
    c.valid.push_back({serialize(optionals), "proto3 optional fields set to their defaults are encoded"});
    c.valid.push_back({"", "the empty message: every field at its default"});
    river::EncryptedData text;
    text.set_ciphertext("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92");
    text.set_algorithm(std::string("nul \0 inside", 12));
    text.set_checksum("\xef\xbb\xbf" "bom");
    c.valid.push_back({serialize(text),
                       "strings beyond ASCII: two-, three- and four-byte UTF-8, a U+0000, and a leading U+FEFF "
                       "that is text, not a byte-order mark"});
    river::EncryptedData unnamed;
    unnamed.set_algorithm("a");
    unnamed.set_version(static_cast<river::EncryptedDataVersion>(5));
    c.valid.push_back({serialize(unnamed), "version 5, a value the enum does not name (proto3 enums are open): a number in JSON"});
    river::EncryptedData negative;
    negative.set_version(static_cast<river::EncryptedDataVersion>(-1));
    c.valid.push_back({serialize(negative), "version -1: a negative enum value is a ten-byte varint"});

    c.noncanonical.push_back({full_bytes + unknown_fields(13) + num(7, 1),
                              "unknown fields of every wire type appended, and the reserved field 7: skipped"});
    c.noncanonical.push_back({ld(12, full.device_key()) + num(11, 1) + ld(10, full.session_id_bytes()) +
                                  ld(4, full.session_id()) + ld(2, full.algorithm()) + ld(1, full.ciphertext()),
                              "fields in reverse number order"});
    c.noncanonical.push_back({ld(2, "first") + ld(9, raw(12)) + ld(2, megolm.algorithm()) + ld(9, hybrid.iv_bytes()) +
                                  ld(5, "a") + ld(5, ""),
                              "a string, a bytes and an optional string field each given twice: the last wins (the "
                              "optional one stays set, to \"\")"});
    c.noncanonical.push_back({ld(1, "") + ld(8, "") + num(11, 0) + ld(2, "grpaes"),
                              "implicit-presence fields written at their defaults: read as unset, not encoded"});
    c.noncanonical.push_back({ld(2, "grpaes") + tag(11, 0) + "\x81\x80\x00"s,
                              "version 1 as a three-byte varint: non-minimal varints are read"});
    c.noncanonical.push_back(
        {ld(2, "grpaes") + tag(8, 5) + "\x01\x02\x03\x04",
         "ciphertext_bytes (8) under wire type 5 (fixed32): this library skips it as an unknown field, as "
          "protobuf's C++ reader does; protobuf-es reads field 8 as bytes whatever the wire type and refuses the "
          "rest (docs/compat.md)",
         {"ClientDeviation"}});

    c.malformed.push_back({full_bytes.substr(0, full_bytes.size() - 3), "truncated inside the last field (device_key)"});
    c.malformed.push_back({ld(2, "grpaes") + tag(3, 2) + varint(43) + megolm.sender_key().substr(0, 20),
                           "sender_key's length runs past the end"});
    c.malformed.push_back({ld(2, "grpaes") + tag(11, 0) + eleven_byte_varint, "version as an 11-byte varint"});
    c.malformed.push_back({"\x58"s + std::string(10, '\xff'), "a varint that never ends"});
    c.malformed.push_back({ld(2, "grpaes") + "\x00\x01"s, "field number 0"});
    c.malformed.push_back({ld(2, "grpaes") + tag(1, 6) + "\x00"s, "ciphertext's number with wire type 6"});
    c.malformed.push_back({ld(2, "grpaes") + tag(13, 7) + "\x00"s, "wire type 7 on an unknown field"});
    c.malformed.push_back({ld(2, "grpaes") + tag(13, 4), "an end-group tag without its start"});
    c.malformed.push_back({ld(2, "grpaes") + tag(13, 3) + num(1, 1), "a start-group tag never closed"});
    c.malformed.push_back({tag(13, 3) + tag(14, 4), "a group closed with another field number"});
    c.malformed.push_back({ld(2, "gr\xff" "aes"), "invalid UTF-8 (a 0xff byte) in algorithm"});
    c.malformed.push_back({ld(12, "\xed\xa0\x80"), "invalid UTF-8 in the optional device_key: an encoded surrogate (U+D800)"});
  }

  // ---- river.MemberPayload.KeySolicitation, river.MemberPayload.KeyFulfillment, river.MemberPayload
  const std::string device_key = b64(32);
  const std::string fallback_key = b64(32);
  std::vector<std::string> session_ids = {b64(32), b64(32), hex(rng.bytes(32).span())};
  river::MemberPayload::KeySolicitation sol;
  sol.set_device_key(device_key);
  sol.set_fallback_key(fallback_key);
  sol.set_is_new_device(true);
  for (const auto& id : session_ids) sol.add_session_ids(id);
  const auto sol_bytes = serialize(sol);
  river::MemberPayload::KeyFulfillment ful;
  ful.set_user_address(raw(20));
  ful.set_device_key(device_key);
  for (const auto& id : session_ids) ful.add_session_ids(id);
  const auto ful_bytes = serialize(ful);
  {
    auto& c = message("river.MemberPayload.KeySolicitation");
    c.valid.push_back({sol_bytes, "a key solicitation: every field set, three session ids"});
    c.valid.push_back({"", "the empty message"});
    river::MemberPayload::KeySolicitation ids;
    ids.add_session_ids("");
    ids.add_session_ids("\xe2\x9c\x93 \xf0\x9f\x94\x91");
    ids.add_session_ids("");
    c.valid.push_back({serialize(ids), "is_new_device false (not encoded); session ids that are empty or beyond ASCII"});

    c.noncanonical.push_back({sol_bytes + unknown_fields(5), "unknown fields of every wire type appended: skipped"});
    c.noncanonical.push_back({ld(4, session_ids[0]) + num(3, 1) + ld(2, fallback_key) + ld(1, device_key),
                              "fields in reverse number order"});
    c.noncanonical.push_back({ld(4, session_ids[0]) + ld(1, device_key) + ld(4, session_ids[1]) + num(3, 1) +
                                  ld(4, session_ids[2]),
                              "session_ids split in three runs around other fields: read in order, one list"});
    c.noncanonical.push_back({ld(1, "old") + ld(2, fallback_key) + ld(1, device_key),
                              "device_key given twice: the last one wins"});
    c.noncanonical.push_back({num(3, 2) + ld(1, device_key), "is_new_device as 2: any non-zero varint is true"});
    c.noncanonical.push_back({tag(3, 0) + std::string(9, '\xff') + "\x01"s + ld(1, device_key),
                              "is_new_device as a ten-byte varint: true"});
    c.noncanonical.push_back({num(3, 0) + ld(1, device_key), "is_new_device written as false: not encoded"});

    c.malformed.push_back({sol_bytes.substr(0, sol_bytes.size() - 5), "truncated inside the last session id"});
    c.malformed.push_back({ld(1, device_key) + tag(4, 2) + "\x7f"s + "abc", "a session id's length runs past the end"});
    c.malformed.push_back({ld(1, device_key) + tag(3, 0) + eleven_byte_varint, "is_new_device as an 11-byte varint"});
    c.malformed.push_back({ld(1, device_key) + "\x02\x01x"s, "field number 0 (length-delimited)"});
    c.malformed.push_back({tag(4, 6) + "\x00"s, "session_ids' number with wire type 6"});
    c.malformed.push_back({ld(1, device_key) + tag(9, 7), "wire type 7 on an unknown field"});
    c.malformed.push_back({tag(9, 4) + ld(1, device_key), "an end-group tag without its start"});
    c.malformed.push_back({ld(1, device_key) + tag(9, 3), "a start-group tag never closed"});
    c.malformed.push_back({ld(4, session_ids[0]) + ld(4, "\xc0\x80"), "invalid UTF-8 in the second session id: an overlong U+0000"});
    // protobuf-es reads lengths as 32-bit numbers and takes varints of any
    // length (docs/compat.md, "over-long varints"): these three parse there.
    auto raw = [](const char* h) {
      auto b = crypto::hex_decode(h);
      return std::string(b.begin(), b.end());
    };
    c.malformed.push_back({raw("0a81808080800061"), "a length of 1 written in 6 bytes (protobuf allows 5 at most)", {"ClientDeviation"}});
    c.malformed.push_back({raw("0a818080801061"), "a length of 2^32 + 1 (the client cuts it to 32 bits: 1)", {"ClientDeviation"}});
    c.malformed.push_back({raw("0a8080808010"), "a length of 2^32 (the client cuts it to 32 bits: 0)", {"ClientDeviation"}});
  }
  {
    auto& c = message("river.MemberPayload.KeyFulfillment");
    c.valid.push_back({ful_bytes, "a key fulfillment: every field set, three session ids"});
    c.valid.push_back({"", "the empty message"});
    river::MemberPayload::KeyFulfillment odd;
    odd.set_user_address("\xff\xfe\x00\x80"s);
    odd.set_device_key("\xd0\x9a\xd0\xbb\xd1\x8e\xd1\x87");
    c.valid.push_back({serialize(odd), "a bytes field takes bytes that are not UTF-8; a device key in Cyrillic"});

    c.noncanonical.push_back({ful_bytes + unknown_fields(4), "unknown fields of every wire type appended: skipped"});
    c.noncanonical.push_back({ld(3, session_ids[0]) + ld(2, device_key) + ld(1, ful.user_address()),
                              "fields in reverse number order"});
    c.noncanonical.push_back({ld(3, session_ids[0]) + ld(1, ful.user_address()) + ld(3, session_ids[1]) +
                                  ld(2, device_key) + ld(3, session_ids[2]),
                              "session_ids split in three runs around other fields"});
    c.noncanonical.push_back({ld(1, raw(20)) + ld(1, ful.user_address()), "user_address (bytes) given twice: the last one wins"});

    c.malformed.push_back({ful_bytes.substr(0, 10), "truncated inside user_address"});
    c.malformed.push_back({tag(1, 2) + "\x15"s + ful.user_address().substr(0, 19), "user_address's length (21) runs past the end"});
    c.malformed.push_back({ld_long_length(2, device_key), "device_key's length as an 11-byte varint"});
    c.malformed.push_back({"\x00\x00"s + ful_bytes, "field number 0 first"});
    c.malformed.push_back({ful_bytes + tag(2, 7), "device_key's number with wire type 7"});
    c.malformed.push_back({ful_bytes + tag(100, 4), "an end-group tag without its start"});
    c.malformed.push_back({ful_bytes + tag(100, 3) + ld(1, "x") + tag(101, 3) + tag(101, 4), "a start-group tag never closed (a group inside it is)"});
    c.malformed.push_back({ld(2, "\xe2\x82"), "invalid UTF-8 in device_key: a three-byte sequence cut short"});
  }
  {
    auto& c = message("river.MemberPayload");
    river::MemberPayload mp;
    *mp.mutable_key_solicitation() = sol;
    c.valid.push_back({serialize(mp), "a member payload carrying a key solicitation (field 2)"});
    river::MemberPayload mf;
    *mf.mutable_key_fulfillment() = ful;
    c.valid.push_back({serialize(mf), "a member payload carrying a key fulfillment (field 3)"});
    c.valid.push_back({"", "the empty message: no member of the oneof set"});
    c.valid.push_back({ld(2, ""), "an empty key solicitation: the oneof member is set, to a message with no fields"});

    c.noncanonical.push_back({ld(3, ful_bytes) + ld(2, sol_bytes), "both members of the oneof: the last one wins"});
    c.noncanonical.push_back({ld(2, ld(1, device_key) + ld(4, session_ids[0])) + ld(2, ld(2, fallback_key) + ld(4, session_ids[1]) + ld(1, "new")),
                              "the key solicitation given twice: the two merge (scalars from the last, lists joined)"});
    // (The client's MemberPayload has more members, 1 to 12: the unknown
    // fields here are numbered past them.)
    c.noncanonical.push_back({ld(2, sol_bytes + unknown_fields(20)) + unknown_fields(13),
                              "unknown fields inside the member and after it: skipped"});

    c.malformed.push_back({ld(2, sol_bytes).substr(0, 30), "truncated inside the key solicitation"});
    c.malformed.push_back({tag(3, 2) + varint(ful_bytes.size() + 1) + ful_bytes, "the key fulfillment's length runs past the end"});
    c.malformed.push_back({ld(2, ld(1, device_key) + tag(3, 0) + eleven_byte_varint),
                           "inside the key solicitation: is_new_device as an 11-byte varint"});
    c.malformed.push_back({ld(3, ld(2, "\xf4\x90\x80\x80")), "inside the key fulfillment: invalid UTF-8 in device_key (above U+10FFFF)"});
    c.malformed.push_back({ld(2, "\x00\x01"s), "inside the key solicitation: field number 0"});
    c.malformed.push_back({ld(2, sol_bytes) + tag(2, 6), "the key solicitation's number with wire type 6"});
    c.malformed.push_back({ld(2, sol_bytes) + tag(20, 4), "an end-group tag without its start"});
    c.malformed.push_back({ld(3, ful_bytes + tag(7, 3)), "inside the key fulfillment: a start-group tag never closed"});
  }

  // ---- river.UserInboxPayload.GroupEncryptionSessions, river.UserInboxPayload
  // Map entries: key 1, value 2 (the ciphertexts map of device key to olm message).
  auto entry = [&](const std::string& k, const std::string& v) { return ld(4, ld(1, k) + ld(2, v)); };
  std::vector<std::string> devices = {b64(32), b64(32), b64(32)};
  std::vector<std::string> olm_messages = {b64(60), b64(60), b64(60)};
  river::UserInboxPayload::GroupEncryptionSessions ges;
  ges.set_stream_id(raw(32));
  ges.set_sender_key(device_key);
  for (const auto& id : session_ids) ges.add_session_ids(id);
  for (size_t i = 0; i < devices.size(); ++i) (*ges.mutable_ciphertexts())[devices[i]] = olm_messages[i];
  ges.set_algorithm("r.group-encryption.v1.aes-sha2");
  const auto ges_bytes = serialize(ges);
  // The entries in the reverse of their sorted order.
  std::vector<std::string> by_key = devices;
  std::sort(by_key.rbegin(), by_key.rend());
  std::string reversed_entries;
  for (const auto& k : by_key) reversed_entries += entry(k, ges.ciphertexts().at(k));
  {
    auto& c = message("river.UserInboxPayload.GroupEncryptionSessions");
    c.valid.push_back({ges_bytes, "every field set: three session ids, a ciphertext for each of three devices, the map's "
                                  "entries sorted by key"});
    c.valid.push_back({"", "the empty message"});
    river::UserInboxPayload::GroupEncryptionSessions edge;
    (*edge.mutable_ciphertexts())[""] = "for no key";
    (*edge.mutable_ciphertexts())["k\xc3\xa9y"] = "";
    (*edge.mutable_ciphertexts())["K"] = "upper case sorts first";
    c.valid.push_back({serialize(edge), "map entries with an empty key, an empty value, a key beyond ASCII: every entry "
                                        "writes both key and value"});

    c.noncanonical.push_back({ld(1, ges.stream_id()) + reversed_entries,
                              "map entries in reverse key order: encoding sorts them by key"});
    c.noncanonical.push_back({entry(devices[0], "old") + entry(devices[1], olm_messages[1]) + entry(devices[0], olm_messages[0]),
                              "a map key given twice: the last entry wins"});
    c.noncanonical.push_back({ld(4, ld(2, "v2") + ld(1, "k2")) + ld(4, ld(1, "k1")) + ld(4, ld(2, "v3")) +
                                  ld(4, ld(1, "k4") + ld(2, "x") + ld(2, "v4") + ld(1, "k4")),
                              "map entries with the value before the key, without a value, without a key, and with "
                              "both given twice (the last wins): a missing key or value is \"\""});
    c.noncanonical.push_back({ld(4, ld(1, "k") + unknown_fields(3) + ld(2, "v")) + ges_bytes + unknown_fields(6),
                              "unknown fields inside a map entry and after the message: skipped"});
    c.noncanonical.push_back({ld(5, ges.algorithm()) + ld(3, session_ids[0]) + entry(devices[0], olm_messages[0]) +
                                  ld(3, session_ids[1]) + ld(2, device_key) + ld(3, session_ids[2]) + ld(1, ges.stream_id()),
                              "fields out of number order, session_ids split around other fields"});

    c.malformed.push_back({ges_bytes.substr(0, ges_bytes.size() - 40), "truncated inside the last map entry"});
    c.malformed.push_back({ld(4, ld(1, "k") + tag(2, 2) + "\x05v"s), "a map entry's value length runs past the entry's end"});
    c.malformed.push_back({ld(4, ld(1, "k\xff") + ld(2, "v")), "invalid UTF-8 in a map key"});
    c.malformed.push_back({ld(4, ld(1, "k") + ld(2, "\x80v")), "invalid UTF-8 in a map value: a lone continuation byte"});
    c.malformed.push_back({ld(4, ld(1, "k") + "\x00\x00"s), "field number 0 inside a map entry"});
    c.malformed.push_back({ld(4, ld(1, "k") + tag(9, 4)), "an end-group tag without its start inside a map entry"});
    c.malformed.push_back({ld_long_length(3, session_ids[0]), "a session id's length as an 11-byte varint"});
    c.malformed.push_back({ld(3, session_ids[0]) + ld(3, "\xed\xbf\xbf"), "invalid UTF-8 in a session id: an encoded surrogate (U+DFFF)"});
    c.malformed.push_back({ld(1, ges.stream_id()) + tag(4, 7), "the map's number with wire type 7"});
    c.malformed.push_back({ld(1, ges.stream_id()) + tag(6, 3) + tag(6, 3) + tag(6, 4), "two nested groups, one closed"});
  }
  {
    auto& c = message("river.UserInboxPayload");
    river::UserInboxPayload inbox;
    *inbox.mutable_group_encryption_sessions() = ges;
    c.valid.push_back({serialize(inbox), "a user inbox payload carrying group encryption sessions (field 3)"});
    c.valid.push_back({"", "the empty message"});
    c.valid.push_back({ld(3, ""), "empty group encryption sessions: the member is set"});

    c.noncanonical.push_back({ld(3, ld(1, ges.stream_id()) + entry(devices[1], olm_messages[1])) +
                                  ld(3, entry(devices[0], olm_messages[0]) + ld(5, ges.algorithm())),
                              "the member given twice: the two merge, their map entries too"});
    // (The client's UserInboxPayload also has fields 1 and 2: the unknown
    // fields here are numbered past 3.)
    c.noncanonical.push_back({num(4, 1) + ld(5, "unused") + ld(3, ld(1, ges.stream_id()) + reversed_entries) + unknown_fields(10),
                              "unknown fields before the member and after it; the member's map entries out of order"});

    c.malformed.push_back({ld(3, ges_bytes).substr(0, 100), "truncated inside the member"});
    c.malformed.push_back({tag(3, 2) + varint(1000) + ges_bytes, "the member's length runs past the end"});
    c.malformed.push_back({ld(3, ld(4, ld(1, "k") + tag(2, 2) + "\x09v"s)), "inside the member: a map entry's value runs past the entry"});
    c.malformed.push_back({ld(3, entry("\xc3", "v")), "inside the member: invalid UTF-8 in a map key (a two-byte sequence cut short)"});
    c.malformed.push_back({ld_long_length(3, ges_bytes), "the member's length as an 11-byte varint"});
    c.malformed.push_back({"\x02\x00"s + ld(3, ges_bytes), "field number 0 (length-delimited, empty) first"});
    c.malformed.push_back({ld(3, ges_bytes) + tag(3, 6) + "\x00"s, "the member's number with wire type 6"});
    c.malformed.push_back({ld(3, ges_bytes) + tag(4, 4), "an end-group tag without its start"});
    c.malformed.push_back({ld(3, ld(1, ges.stream_id()) + tag(8, 3) + ld(1, "x")), "inside the member: a start-group tag never closed"});
  }

  // ---- river.UserMetadataPayload.EncryptionDevice
  {
    auto& c = message("river.UserMetadataPayload.EncryptionDevice");
    river::UserMetadataPayload::EncryptionDevice dev;
    dev.set_device_key(device_key);
    dev.set_fallback_key(fallback_key);
    const auto dev_bytes = serialize(dev);
    c.valid.push_back({dev_bytes, "a published device: both keys"});
    c.valid.push_back({"", "the empty message"});
    river::UserMetadataPayload::EncryptionDevice text;
    text.set_fallback_key("\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x97\x9d");
    c.valid.push_back({serialize(text), "only the fallback key, beyond ASCII"});

    c.noncanonical.push_back({dev_bytes + unknown_fields(3), "unknown fields of every wire type appended: skipped"});
    c.noncanonical.push_back({ld(2, fallback_key) + ld(1, device_key), "fields in reverse number order"});
    c.noncanonical.push_back({ld(1, "stale") + ld(2, fallback_key) + ld(1, device_key) + ld(2, "") ,
                              "both fields given twice: the last wins, for fallback_key the empty string"});

    c.malformed.push_back({dev_bytes.substr(0, dev_bytes.size() - 1), "truncated inside fallback_key"});
    c.malformed.push_back({ld(1, device_key) + tag(2, 2) + "\x2c"s + fallback_key, "fallback_key's length (44) runs past the end"});
    c.malformed.push_back({ld_long_length(1, device_key), "device_key's length as an 11-byte varint"});
    c.malformed.push_back({dev_bytes + "\x05\x00\x00\x00\x00"s, "field number 0 (fixed32)"});
    c.malformed.push_back({dev_bytes + tag(1, 7), "device_key's number with wire type 7"});
    c.malformed.push_back({tag(3, 3) + tag(4, 4), "a group closed with another field number"});
    c.malformed.push_back({dev_bytes + tag(3, 3) + tag(3, 3) + tag(3, 4), "nested groups, the outer one never closed"});
    c.malformed.push_back({tag(15, 4), "an end-group tag without its start"});
    c.malformed.push_back({ld(1, device_key) + ld(2, "\xf8\x88\x80\x80\x80"), "invalid UTF-8 in fallback_key: a five-byte sequence"});
  }

  // ---- river.SessionKeys
  {
    auto& c = message("river.SessionKeys");
    river::SessionKeys keys;
    std::vector<std::string> key_list = {b64(32), b64(32), b64(32)};
    for (const auto& k : key_list) keys.add_keys(k);
    const auto keys_bytes = serialize(keys);
    c.valid.push_back({keys_bytes, "three session keys"});
    c.valid.push_back({"", "the empty message: no keys"});
    river::SessionKeys edge;
    edge.add_keys("");
    edge.add_keys("\xce\xba\xce\xbb\xce\xb5\xce\xb9\xce\xb4\xce\xaf");
    edge.add_keys("");
    c.valid.push_back({serialize(edge), "empty keys are kept in the list, as is one beyond ASCII"});

    c.noncanonical.push_back({ld(1, key_list[0]) + unknown_fields(2) + ld(1, key_list[1]) + num(9, 9) + ld(1, key_list[2]),
                              "the list split by unknown fields: one list, in order"});
    c.noncanonical.push_back({"\x08\x00"s + ld(1, key_list[0]),
                              "keys (1) under wire type 0: this library skips it as an unknown field, as protobuf's "
                              "C++ reader does; protobuf-es reads field 1 as a string whatever the wire type and adds "
                              "an empty key (docs/compat.md)",
                              {"ClientDeviation"}});

    c.malformed.push_back({keys_bytes.substr(0, keys_bytes.size() - 10), "truncated inside the last key"});
    c.malformed.push_back({ld(1, key_list[0]) + tag(1, 2) + "\x02k"s, "the second key's length runs past the end"});
    c.malformed.push_back({ld_long_length(1, key_list[0]), "a key's length as an 11-byte varint"});
    c.malformed.push_back({"\x01"s + std::string(8, '\0') + keys_bytes, "field number 0 (fixed64) first"});
    c.malformed.push_back({keys_bytes + tag(1, 6), "keys' number with wire type 6"});
    c.malformed.push_back({ld(1, key_list[0]) + tag(2, 4), "an end-group tag without its start"});
    c.malformed.push_back({tag(2, 3) + ld(1, "k"), "a start-group tag never closed"});
    c.malformed.push_back({ld(1, key_list[0]) + ld(1, "ok") + ld(1, "\xfe"), "invalid UTF-8 in the third key"});
    {
      // An 11-byte varint where the client only skips: an unknown field, and
      // one inside an unknown group (docs/compat.md, "over-long varints").
      auto h = crypto::hex_decode("10ffffffffffffffffffff01");
      c.malformed.push_back({std::string(h.begin(), h.end()), "an unknown varint field of 11 bytes (the client skips it)", {"ClientDeviation"}});
      auto g = crypto::hex_decode("7b10ffffffffffffffffffff017c");
      c.malformed.push_back({std::string(g.begin(), g.end()), "the same inside an unknown group (the client skips it)", {"ClientDeviation"}});
    }
  }

  // ---- river.HybridGroupSessionKey
  river::HybridGroupSessionKey hk;
  hk.set_session_id(raw(32));
  hk.set_stream_id(raw(32));
  hk.set_key(raw(32));
  hk.set_miniblock_num(9223372036854775807LL);
  hk.set_miniblock_hash(raw(32));
  const auto hk_bytes = serialize(hk);
  {
    auto& c = message("river.HybridGroupSessionKey");
    c.valid.push_back({hk_bytes, "every field set, miniblock 2^63-1"});
    c.valid.push_back({"", "the empty message"});
    river::HybridGroupSessionKey neg;
    neg.set_miniblock_num(-1);
    c.valid.push_back({serialize(neg), "miniblock -1 (a ten-byte varint)"});
    river::HybridGroupSessionKey min;
    min.set_key(hk.key());
    min.set_miniblock_num(std::numeric_limits<int64_t>::min());
    c.valid.push_back({serialize(min), "miniblock -2^63, the smallest int64"});
    river::HybridGroupSessionKey js;
    js.set_stream_id(hk.stream_id());
    js.set_miniblock_num(9007199254740993LL);
    c.valid.push_back({serialize(js), "miniblock 2^53+1: not a JavaScript double, read exactly"});

    c.noncanonical.push_back({hk_bytes + unknown_fields(6), "unknown fields of every wire type appended: skipped"});
    c.noncanonical.push_back({ld(5, hk.miniblock_hash()) + num(4, 12) + ld(3, hk.key()) + ld(2, hk.stream_id()) + ld(1, hk.session_id()),
                              "fields in reverse number order"});
    c.noncanonical.push_back({ld(3, raw(32)) + num(4, 5) + ld(3, hk.key()) + num(4, 6),
                              "key and miniblock_num each given twice: the last wins"});
    c.noncanonical.push_back({num(4, 0) + ld(1, "") + ld(3, hk.key()),
                              "miniblock_num 0 and an empty session_id written: read as unset, not encoded"});
    c.noncanonical.push_back({tag(4, 0) + "\x87\x80\x80\x80\x80\x80\x80\x80\x80\x00"s,
                              "miniblock 7 as a ten-byte varint"});

    c.malformed.push_back({hk_bytes.substr(0, hk_bytes.size() - 2), "truncated inside miniblock_hash"});
    c.malformed.push_back({ld(1, hk.session_id()) + tag(3, 2) + "\x20"s + hk.key().substr(0, 31), "key's length (32) runs past the end by one"});
    c.malformed.push_back({ld(3, hk.key()) + tag(4, 0) + eleven_byte_varint, "miniblock_num as an 11-byte varint"});
    c.malformed.push_back({ld(3, hk.key()) + tag(4, 0) + "\xff\xff"s, "miniblock_num's varint never ends"});
    c.malformed.push_back({"\x00"s, "field number 0, nothing after the tag"});
    c.malformed.push_back({ld(3, hk.key()) + tag(4, 6) + "\x01"s, "miniblock_num's number with wire type 6"});
    c.malformed.push_back({ld(3, hk.key()) + tag(6, 7) + "\x01"s, "wire type 7 on an unknown field"});
    c.malformed.push_back({tag(6, 4) + ld(3, hk.key()), "an end-group tag without its start"});
    c.malformed.push_back({ld(3, hk.key()) + tag(6, 3) + num(4, 1), "a start-group tag never closed"});
  }

  // ---- river.ExportedDevice
  {
    auto& c = message("river.ExportedDevice");
    river::ExportedDevice ed;
    ed.set_picklekey(b64(32));
    ed.set_pickledaccount(b64(120));
    for (int i = 0; i < 2; ++i) {
      auto* o = ed.add_outboundsessions();
      o->set_session_id(b64(32));
      o->set_stream_id(stream_of(rng));
      o->set_session(b64(150));
    }
    for (int i = 0; i < 3; ++i) {
      auto* in = ed.add_inboundsessions();
      in->set_session_id(b64(32));
      in->set_stream_id(stream_of(rng));
      in->set_session(b64(150));
    }
    int64_t miniblocks[] = {3, -1};
    for (int64_t n : miniblocks) {
      auto* h = ed.add_hybridgroupsessions();
      h->set_session_id(hex(rng.bytes(32).span()));
      h->set_stream_id(stream_of(rng));
      h->set_session_key(hk_bytes);
      h->set_miniblock_num(n);
    }
    const auto ed_bytes = serialize(ed);
    c.valid.push_back({ed_bytes, "every field set: two outbound, three inbound and two hybrid group sessions (miniblocks "
                                 "3 and -1)"});
    c.valid.push_back({"", "the empty message"});
    river::ExportedDevice empties;
    empties.set_picklekey("cl\xc3\xa9 \xf0\x9f\x94\x91");
    empties.add_outboundsessions();
    empties.add_inboundsessions();
    empties.add_hybridgroupsessions();
    c.valid.push_back({serialize(empties), "a pickle key beyond ASCII; one empty session in each list (kept: an element "
                                           "of a repeated message field is encoded even when empty)"});

    auto group_session = [&](const river::ExportedDevice::GroupSession& s) {
      return ld(1, s.session_id()) + ld(2, s.stream_id()) + ld(3, s.session());
    };
    const auto& out0 = ed.outboundsessions(0);
    const auto& in0 = ed.inboundsessions(0);
    const auto& in1 = ed.inboundsessions(1);
    const auto& hy0 = ed.hybridgroupsessions(0);
    c.noncanonical.push_back({ld(4, group_session(in0)) + ld(3, group_session(out0)) + ld(4, group_session(in1)) +
                                  ld(2, ed.pickledaccount()) + ld(5, serialize(hy0)) + ld(1, ed.picklekey()),
                              "fields out of number order; inboundSessions split around outboundSessions"});
    c.noncanonical.push_back({ld(3, ld(3, out0.session()) + unknown_fields(4) + ld(2, out0.stream_id()) + ld(1, out0.session_id())) +
                                  ld(5, num(4, 3) + ld(9, "x") + ld(3, hy0.session_key()) + ld(1, hy0.session_id())) +
                                  unknown_fields(6),
                              "inside the sessions: fields in reverse order and unknown fields, skipped"});
    c.noncanonical.push_back({ld(1, "old key") + ld(1, ed.picklekey()) + ld(3, ld(3, "old") + ld(3, out0.session())),
                              "pickleKey given twice, and a session's session field: the last wins"});

    c.malformed.push_back({ed_bytes.substr(0, ed_bytes.size() / 2), "truncated in the middle"});
    c.malformed.push_back({ld(3, ld(1, out0.session_id()) + tag(3, 2) + "\x7f"s + "pickle"),
                           "inside an outbound session: the session's length runs past the session's end"});
    c.malformed.push_back({ld(5, ld(1, hy0.session_id()) + tag(4, 0) + eleven_byte_varint),
                           "inside a hybrid group session: miniblock_num as an 11-byte varint"});
    c.malformed.push_back({ld(4, ld(2, "20\xaa")), "inside an inbound session: invalid UTF-8 in stream_id"});
    c.malformed.push_back({ld(5, ld(1, "\xe0\x80\xaf")), "inside a hybrid group session: invalid UTF-8 in session_id (an overlong '/')"});
    c.malformed.push_back({ld(5, "\x00\x00"s), "inside a hybrid group session: field number 0"});
    c.malformed.push_back({ld(3, ld(1, "s") + tag(5, 4)), "inside an outbound session: an end-group tag without its start"});
    c.malformed.push_back({ld(1, ed.picklekey()) + tag(3, 7), "outboundSessions' number with wire type 7"});
    c.malformed.push_back({ld(1, ed.picklekey()) + tag(6, 3) + num(1, 1), "a start-group tag never closed"});
    c.malformed.push_back({tag(2, 2) + varint(500) + ed.pickledaccount(), "pickledAccount's length runs past the end"});
  }

  // Each message's groups: canonical, non-canonical, malformed. protobuf's own
  // reader settles every case here, and the library's and protobuf-es's
  // verdicts are held to it by the verifiers.
  for (const auto& c : all) {
    auto& valid = f.group("protobufMessage", {{"message", c.message}});
    for (const auto& t : c.valid) {
      auto m = parse(c.message, t.bytes);
      if (!m || serialize(*m) != t.bytes) throw Error(ErrorCode::INTERNAL, "not canonical: " + t.comment);
      f.add(valid, t.comment, {{"json", json_of(*m)}, {"bytes", hex(t.bytes)}}, t.flags);
    }
    auto& other = f.group("protobufNonCanonical", {{"message", c.message}});
    for (const auto& t : c.noncanonical) {
      auto m = parse(c.message, t.bytes);
      if (!m) throw Error(ErrorCode::INTERNAL, "does not parse: " + t.comment);
      m->DiscardUnknownFields();
      auto encoded = serialize(*m);
      if (encoded == t.bytes) throw Error(ErrorCode::INTERNAL, "canonical already: " + t.comment);
      f.add(other, t.comment, {{"json", json_of(*m)}, {"bytes", hex(t.bytes)}, {"encoded", hex(encoded)}}, t.flags);
    }
    auto& bad = f.group("protobufMalformed", {{"message", c.message}});
    for (const auto& t : c.malformed) {
      if (parse(c.message, t.bytes)) throw Error(ErrorCode::INTERNAL, "parses: " + t.comment);
      f.add(bad, t.comment, {{"bytes", hex(t.bytes)}}, t.flags, "INVALID_ARGUMENT");
    }
  }
  f.write(dir + "/protobuf.json", seed_hex);
}

// ---------------------------------------------------------------- hybrid

// AES-128-GCM, tag appended: what WebCrypto does with a 16-byte grpaes key
// (the library has only AES-256-GCM, on purpose).
std::vector<uint8_t> aes128_gcm(std::span<const uint8_t> key, std::span<const uint8_t> iv, std::span<const uint8_t> pt) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  std::vector<uint8_t> out(pt.size() + 16);
  int len = 0, fin = 0;
  if (key.size() != 16 || iv.size() != 12 || !ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, key.data(), iv.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, pt.data(), static_cast<int>(pt.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, out.data() + pt.size()) != 1) {
    throw Error(ErrorCode::INTERNAL, "AES-128-GCM");
  }
  return out;
}

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
  auto key_message = [](const auto& k) {
    river::HybridGroupSessionKey m;
    m.set_session_id(k.session_id);
    m.set_stream_id(k.stream_id);
    m.set_key(k.key.str());
    m.set_miniblock_num(k.miniblock_num);
    m.set_miniblock_hash(k.miniblock_hash);
    return m;
  };
  auto session = key_message(d.device.hybrid().create(stream_id, 42, mhash.span()));
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
  auto modified_iv = v1;
  (*modified_iv.mutable_iv_bytes())[0] ^= 0x01;
  f.add(dec, "the IV was modified", {{"encryptedData", pb_hex(modified_iv)}}, {}, "DECRYPTION_FAILED");
  auto tampered_version = tag;
  tampered_version.set_version(static_cast<river::EncryptedDataVersion>(5));
  f.add(dec, "version 5 and a modified tag: decryption fails before the version is read",
        {{"encryptedData", pb_hex(tampered_version)}}, {}, "DECRYPTION_FAILED");
  auto short_id = v1;
  short_id.set_session_id_bytes(v1.session_id_bytes().substr(0, 16));
  f.add(dec, "the first 16 bytes of the session id", {{"encryptedData", pb_hex(short_id)}}, {}, "SESSION_NOT_FOUND");
  auto no_id = v1;
  no_id.clear_session_id_bytes();
  f.add(dec, "no session id bytes", {{"encryptedData", pb_hex(no_id)}}, {}, "SESSION_NOT_FOUND");
  auto no_ct = v1;
  no_ct.clear_ciphertext_bytes();
  f.add(dec, "no ciphertext bytes", {{"encryptedData", pb_hex(no_ct)}}, {}, "DECRYPTION_FAILED");
  auto megolm_fields = v1;
  megolm_fields.set_ciphertext(crypto::base64_encode(crypto::as_bytes(v1.ciphertext_bytes()), Base64Padding::kNone));
  megolm_fields.clear_ciphertext_bytes();
  f.add(dec, "the ciphertext in the megolm field (1) instead of ciphertext_bytes (8)", {{"encryptedData", pb_hex(megolm_fields)}},
        {}, "DECRYPTION_FAILED");
  auto no_alg = v1;
  no_alg.clear_algorithm();
  f.add(dec, "no algorithm", {{"encryptedData", pb_hex(no_alg)}}, {}, "GROUP_DECRYPTION_UNSET_ALGORITHM");
  auto upper = v1;
  upper.set_algorithm("GRPAES");
  f.add(dec, "the algorithm in upper case", {{"encryptedData", pb_hex(upper)}}, {}, "GROUP_DECRYPTION_UNKNOWN_ALGORITHM");
  auto other_stream_dec = v1;
  f.add(dec, "the event read on another stream (sessions are held per stream)",
        {{"encryptedData", pb_hex(other_stream_dec)}, {"decryptStreamId", stream_of(rng)}}, {}, "SESSION_NOT_FOUND");

  // Keys that are not 32 bytes (protocol.md 6.6, 6.7): the client imports any
  // length and WebCrypto uses 16 or 24 bytes as AES-128 or AES-192.
  auto with_key_of = [&](size_t n) {
    river::HybridGroupSessionKey k;
    k.set_stream_id(session.stream_id());
    k.set_key(std::string(rng.bytes(n).view()));
    k.set_miniblock_num(42);
    k.set_miniblock_hash(std::string(mhash.view()));
    auto id = hybrid_session_key_hash(crypto::as_bytes(k.stream_id()), crypto::as_bytes(k.key()), 42, mhash.span());
    k.set_session_id(std::string(id.begin(), id.end()));
    return k;
  };
  for (size_t n : {16u, 24u, 0u}) {
    auto k = with_key_of(n);
    f.add(imp, "a " + std::to_string(n) + "-byte key whose session id is its hash (the client imports it)",
          {{"sessionId", hex(k.session_id())}, {"sessionKey", pb_hex(k)}}, {"ClientDeviation"}, "IMPORT_FAILED");
  }
  auto short_key = with_key_of(16);
  auto& dec16 = f.group("hybridDecrypt", {{"streamId", stream_id}, {"sessionId", hex(short_key.session_id())},
                                          {"sessionKey", pb_hex(short_key)}});
  {
    auto aes_iv = rng.bytes(12);
    // AES-128-GCM under the 16-byte key, as WebCrypto would do it.
    auto sealed = aes128_gcm(crypto::as_bytes(short_key.key()), aes_iv.span(), crypto::as_bytes(std::string("sixteen-byte key")));
    river::EncryptedData e = v1;
    e.set_session_id_bytes(short_key.session_id());
    e.set_iv_bytes(std::string(aes_iv.view()));
    e.set_ciphertext_bytes(std::string(sealed.begin(), sealed.end()));
    f.add(dec16, "a session with a 16-byte key: the client decrypts with AES-128-GCM; this library refuses the key",
          {{"encryptedData", pb_hex(e)}}, {"ClientDeviation"}, "IMPORT_FAILED");
  }

  // The sending side (protocol.md 6.5): a device (its account: the sender
  // key) holding the session, and the IV given.
  Device sender(rng, "hybrid sender");
  auto sender_state = sender.crypto.export_device();
  auto& enc = f.group("hybridEncrypt", {{"streamId", stream_id}, {"sessionId", session_id}, {"sessionKey", session_key_hex},
                                        {"exportedDevice", hex(sender_state.span())}});
  auto add_enc = [&](const std::string& comment, const std::string& text, int version, const SecretBytes& iv,
                     json more = json::array()) {
    Imported fresh(std::string(sender_state.view()), iv.span());
    auto import = [&](const std::string& sid, const std::string& key) {
      auto r = fresh.device.import_sessions({{stream_id, sid, SecretBytes(std::string_view(key)), GroupEncryptionAlgorithm::kHybridGroupEncryption}});
      if (r.at(0).error) throw *r[0].error;
    };
    import(session_id, session_key_hex);
    for (const auto& m : more) import(m.at("sessionId").get<std::string>(), m.at("sessionKey").get<std::string>());
    auto e = version == 0 ? fresh.crypto.encrypt_group_event_deprecated_v0(stream_id, text, GroupEncryptionAlgorithm::kHybridGroupEncryption)
                          : fresh.crypto.encrypt_group_event(stream_id, crypto::as_bytes(text), GroupEncryptionAlgorithm::kHybridGroupEncryption);
    if (!fresh.given.all_used()) throw Error(ErrorCode::INTERNAL, "grpaes encryption drew less than the IV");
    json fields = {{"iv", hex(iv.span())}, {"version", version}, {"plaintext", hex(text)}, {"encryptedData", pb_hex(wire_convert::to_river(e))}};
    if (!more.empty()) fields["moreSessions"] = more;
    f.add(enc, comment, fields);
  };
  add_enc("version 1, 48 random bytes", std::string(rng.bytes(48).view()), 1, rng.bytes(12));
  add_enc("version 1, one byte", "x", 1, rng.bytes(12));
  add_enc("version 1, 16 bytes: one AES block", "exactly 16 bytes", 1, rng.bytes(12));
  add_enc("version 0, text beyond ASCII", "grpaes version 0: ✓ ünïcödé", 0, rng.bytes(12));
  add_enc("an IV of zero bytes", "zero IV", 1, SecretBytes(12));
  {
    // A second session of the stream, at a later miniblock: encryption uses
    // the session of the highest miniblock number (protocol.md 6.3).
    auto k = key_message(sender.device.hybrid().create(stream_id, 43, mhash.span()));
    add_enc("two sessions for the stream: the one of the later miniblock (43, not 42) encrypts", "which session?", 1,
            rng.bytes(12), [&] {
              json one = json::object();
              one["sessionId"] = hex(k.session_id());
              one["sessionKey"] = pb_hex(k);
              json more = json::array();
              more.push_back(one);
              return more;
            }());
  }
  f.add(enc, "an empty payload is refused", {{"iv", hex(rng.bytes(12).span())}, {"version", 1}, {"plaintext", ""}}, {},
        "EMPTY_PAYLOAD");
  f.add(enc, "an empty text is refused (version 0)", {{"iv", hex(rng.bytes(12).span())}, {"version", 0}, {"plaintext", ""}},
        {}, "EMPTY_PAYLOAD");
  f.write(dir + "/grpaes.json", seed_hex);
}

// ---------------------------------------------------------------- megolm

// An error as the vectors' olmError names it: libolm's name without OLM_.
std::string olm_error_name(const Error& e) {
  std::string name(e.code_name());
  return name.rfind("OLM_", 0) == 0 ? name.substr(4) : name;
}

// The libolm error a megolm ciphertext gives under a session key ("" when it
// decrypts): what the vectors' olmError names.
std::string megolm_olm_error(const std::string& session_key, const std::string& ciphertext) {
  try {
    (void)olm::InboundGroupSession::create(SecretBytes(std::string_view(session_key))).decrypt(ciphertext);
    return "";
  } catch (const Error& e) {
    return olm_error_name(e);
  }
}

// The pickle of a device's outbound session for a stream, from its export.
std::string outbound_pickle(Device& d, const std::string& stream_id) {
  auto m = exported_device(d);
  for (const auto& s : m.outboundsessions()) {
    if (s.stream_id() == stream_id) return s.session();
  }
  throw Error(ErrorCode::INTERNAL, "no outbound session for the stream");
}

// Receiving edge cases of megolm events (protocol.md 5.5, 16.2): malformed
// ciphertexts, version-1 texts that are not base64, a bad version together
// with tampering, replays.
void megolm_receiving_edges(File& f, Device& d, const std::string& stream_id, const std::string& session_id,
                            const std::string& signed_key, const std::vector<river::EncryptedData>& events,
                            crypto::RandomSource& rng) {
  json params = {{"streamId", stream_id}, {"sessionId", session_id}, {"sessionKey", signed_key}, {"firstKnownIndex", 0}};
  auto& g = f.group("megolmDecrypt", params);
  auto bad = [&](const std::string& comment, const river::EncryptedData& e, const std::string& error,
                 const std::vector<std::string>& flags = {}) {
    json fields = {{"encryptedData", pb_hex(e)}};
    if (error == "DECRYPTION_FAILED") {
      auto olm_error = megolm_olm_error(signed_key, e.ciphertext());
      if (!olm_error.empty()) fields["olmError"] = olm_error;
    }
    f.add(g, comment, fields, flags, error);
  };
  auto with_ciphertext = [&](const std::string& ct) {
    auto e = events[1];
    e.set_ciphertext(ct);
    return e;
  };
  const std::string& ct = events[1].ciphertext();
  auto raw = crypto::base64_decode(ct, Base64Padding::kNone);
  bad("a character outside the base64 alphabet in the ciphertext (libolm does not check the alphabet: the signature fails)",
      with_ciphertext(ct.substr(0, 10) + "!" + ct.substr(11)),
      "DECRYPTION_FAILED");
  bad("the ciphertext with base64 padding (libolm decodes '=' as data: the signature fails)", with_ciphertext(ct + "=="),
      "DECRYPTION_FAILED");
  bad("a ciphertext of 4n+1 base64 characters", with_ciphertext(ct.substr(0, ((ct.size() - 1) / 4) * 4 + 1)),
      "DECRYPTION_FAILED");
  auto version_byte = raw;
  version_byte[0] ^= 0x07;
  bad("the megolm message version byte changed", with_ciphertext(crypto::base64_encode(version_byte, Base64Padding::kNone)),
      "DECRYPTION_FAILED");
  auto unsigned_ct = raw;
  unsigned_ct.resize(raw.size() - 64);
  bad("the signature cut off", with_ciphertext(crypto::base64_encode(unsigned_ct, Base64Padding::kNone)),
      "DECRYPTION_FAILED");
  auto sig = raw;
  sig.back() ^= 0x01;
  bad("a byte of the signature flipped", with_ciphertext(crypto::base64_encode(sig, Base64Padding::kNone)),
      "DECRYPTION_FAILED");
  auto mac = raw;
  mac[raw.size() - 64 - 1] ^= 0x01;
  bad("a byte of the MAC flipped (the signature covers it)",
      with_ciphertext(crypto::base64_encode(mac, Base64Padding::kNone)), "DECRYPTION_FAILED");
  bad("one byte", with_ciphertext("AQ"), "DECRYPTION_FAILED");
  auto no_id = events[1];
  no_id.clear_session_id();
  bad("no session id", no_id, "GROUP_DECRYPTION_MISSING_FIELDS");
  auto tampered_version = events[1];
  tampered_version.set_version(static_cast<river::EncryptedDataVersion>(7));
  tampered_version.set_ciphertext(crypto::base64_encode(sig, Base64Padding::kNone));
  bad("version 7 and a tampered ciphertext: decryption fails before the version is read", tampered_version,
      "DECRYPTION_FAILED");
  auto v7 = events[1];
  v7.set_version(static_cast<river::EncryptedDataVersion>(7));
  bad("version 7, the ciphertext intact", v7, "GROUP_DECRYPTION_INVALID_VERSION");
  auto hybrid_alg = events[1];
  hybrid_alg.set_algorithm("grpaes");
  bad("a megolm event labelled grpaes: read as grpaes, whose session id bytes are empty", hybrid_alg, "SESSION_NOT_FOUND");
  auto upper = events[1];
  upper.set_algorithm("R.GROUP-ENCRYPTION.V1.AES-SHA2");
  bad("the algorithm in upper case", upper, "GROUP_DECRYPTION_UNKNOWN_ALGORITHM");

  // Another session's event claiming this session's id: the signature is
  // checked with this session's key.
  Device other(rng, "megolm other sender");
  auto other_stream = stream_of(rng);
  other.device.outbound().create(other_stream);
  auto foreign = wire_convert::to_river(other.crypto.encrypt_group_event(
      other_stream, crypto::as_bytes(std::string("from another session")), GroupEncryptionAlgorithm::kGroupEncryption));
  foreign.set_session_id(session_id);
  bad("another session's event under this session's id", foreign, "DECRYPTION_FAILED");

  // Texts the sender's libolm encrypted as given, sent as version 1: the
  // receiver base64-decodes them (protocol.md 5.5 step 6, 1.1).
  auto fork = olm::OutboundGroupSession::unpickle(d.device.pickle_key(), outbound_pickle(d, stream_id));
  auto forged_v1 = [&](const std::string& text) {
    auto e = events[1];
    e.set_ciphertext(fork.encrypt(crypto::as_bytes(text)));
    return pb_hex(e);
  };
  auto index_now = fork.message_index();
  f.add(g, "version 1 whose text is base64 without padding (the client's decoder takes it; so does this library)",
        {{"encryptedData", forged_v1("AQID")}, {"plaintext", "010203"}, {"messageIndex", index_now}});
  f.add(g, "version 1 whose text is not base64", {{"encryptedData", forged_v1("not base64: %%%")}}, {}, "DECRYPTION_FAILED");
  f.add(g, "version 1 whose text is base64 of the URL-safe alphabet (the client's decoder takes it)",
        {{"encryptedData", forged_v1("-_-_")}},
        {"StrictDecoding"}, "DECRYPTION_FAILED");
  f.add(g, "version 1 whose text has white space inside (the client's decoder skips it)",
        {{"encryptedData", forged_v1("AQ ID")}},
        {"StrictDecoding"}, "DECRYPTION_FAILED");
  f.add(g, "version 1 whose text is empty: an empty payload", {{"encryptedData", forged_v1("")}, {"plaintext", ""},
        {"messageIndex", index_now + 4}});

  // Replays (protocol.md 16.2, this reference's policy): the same event twice
  // is allowed; another event at an index already seen is refused.
  // Two copies of the sender's session at one index, each encrypting a text.
  auto at_index = [&](const std::string& text) {
    auto copy = olm::OutboundGroupSession::unpickle(d.device.pickle_key(), outbound_pickle(d, stream_id));
    auto e = events[1];
    e.set_ciphertext(copy.encrypt(crypto::as_bytes(crypto::base64_encode(crypto::as_bytes(text), Base64Padding::kPadded))));
    return std::pair{e, copy.message_index() - 1};
  };
  auto [original, index] = at_index("the original");
  auto second = at_index("a second text at the same index").first;
  auto& replay = f.group("megolmDecrypt", params);
  f.add(replay, "the same event decrypted twice",
        {{"decryptFirst", {pb_hex(original)}}, {"encryptedData", pb_hex(original)},
         {"plaintext", hex(std::string("the original"))}, {"messageIndex", index}});
  f.add(replay, "a second event at the index of one already decrypted (the client decrypts both)",
        {{"decryptFirst", {pb_hex(original)}}, {"encryptedData", pb_hex(second)},
         {"plaintext", hex(std::string("a second text at the same index"))}, {"messageIndex", index}},
        {"ClientDeviation"}, "REPLAY");
  f.add(replay, "the second event alone decrypts",
        {{"decryptFirst", json::array()}, {"encryptedData", pb_hex(second)},
         {"plaintext", hex(std::string("a second text at the same index"))}, {"messageIndex", index}});
}

// The sending side of megolm (protocol.md 5.1 to 5.6): a session from given
// random bytes, encryption from a given state, and export at an index.
void megolm_sending(File& f, crypto::RandomSource& rng) {
  const std::string pickle_key = "megolm outbound pickle key";
  auto& out = f.group("megolmOutbound", {{"pickleKey", pickle_key}});
  auto add_outbound = [&](const std::string& comment, const SecretBytes& random) {
    vectors::GivenRandom given(random.span());
    auto s = olm::OutboundGroupSession::create(given);
    auto key = s.session_key();
    auto inbound = olm::InboundGroupSession::create(key);
    f.add(out, comment,
          {{"random", hex(random.span())}, {"sessionId", s.session_id()}, {"sessionKey", key.str()},
           {"messageIndex", s.message_index()}, {"exportedKey", inbound.export_session(0).str()},
           {"pickle", s.pickle(SecretBytes(std::string_view(pickle_key)))}});
  };
  for (int i = 0; i < 4; ++i) add_outbound("160 random bytes (" + std::to_string(i + 1) + ")", rng.bytes(160));
  SecretBytes zeros(160);
  add_outbound("160 zero bytes: libolm takes the bytes as they are", zeros);

  // Encryption from a given state (protocol.md 5.3, 5.4): the state is an
  // ExportedDevice holding the sender's account and the stream's outbound
  // session at some index. Encrypting draws nothing, so the output is exact.
  Device s(rng, "megolm sender pickle key");
  auto stream = stream_of(rng);
  auto account_only = exported_device(s);
  auto session = olm::OutboundGroupSession::create(rng);
  auto& enc = f.group("megolmEncrypt", {{"streamId", stream}});
  auto state_of = [&](const olm::OutboundGroupSession& o) {
    river::ExportedDevice m = account_only;
    auto* out = m.add_outboundsessions();
    out->set_session_id(o.session_id());
    out->set_stream_id(stream);
    out->set_session(o.pickle(s.device.pickle_key()));
    return serialize(m);
  };
  auto advance_to = [&](uint32_t index) {
    while (session.message_index() < index) (void)session.encrypt(crypto::as_bytes(std::string("filler")));
  };
  auto encrypt = [&](const std::string& comment, uint32_t index, const std::string& text, int version) {
    advance_to(index);
    auto state = state_of(session);
    Imported fresh(state);
    auto e = version == 0 ? fresh.crypto.encrypt_group_event_deprecated_v0(stream, text, GroupEncryptionAlgorithm::kGroupEncryption)
                          : fresh.crypto.encrypt_group_event(stream, crypto::as_bytes(text), GroupEncryptionAlgorithm::kGroupEncryption);
    // The session right after the message, as libolm leaves it (and as the
    // client stores it): the same text through libolm directly.
    auto copy = olm::OutboundGroupSession::unpickle(s.device.pickle_key(), session.pickle(s.device.pickle_key()));
    auto olm_text = version == 0 ? text : crypto::base64_encode(crypto::as_bytes(text), Base64Padding::kPadded);
    if (copy.encrypt(crypto::as_bytes(olm_text)) != e.ciphertext) throw Error(ErrorCode::INTERNAL, "facade and libolm differ");
    f.add(enc, comment,
          {{"exportedDevice", hex(state)}, {"version", version}, {"plaintext", hex(text)},
           {"encryptedData", pb_hex(wire_convert::to_river(e))}, {"messageIndex", index},
           {"sessionAfter", copy.pickle(s.device.pickle_key())}});
  };
  auto refuse = [&](const std::string& comment, const std::string& text, int version, const std::string& error) {
    f.add(enc, comment, {{"exportedDevice", hex(state_of(session))}, {"version", version}, {"plaintext", hex(text)}}, {}, error);
  };
  encrypt("version 1, the first message", 0, "hello, megolm", 1);
  encrypt("version 1, binary bytes", 1, std::string(rng.bytes(40).view()), 1);
  encrypt("version 0, text beyond ASCII", 2, "version 0: ünïcödé ✓", 0);
  encrypt("version 1, one byte", 7, "x", 1);
  encrypt("version 1, an empty payload (an empty base64 text)", 99, "", 1);
  encrypt("version 0, an empty text", 100, "", 0);
  encrypt("version 1 at index 255", 255, "two hundred fifty-five", 1);
  encrypt("version 1 at index 256 (the ratchet's second part turns)", 256, "two hundred fifty-six", 1);
  encrypt("version 1, 36,864 bytes: the longest payload (49,152 base64 characters)", 300, std::string(36864, 'a'), 1);
  refuse("version 1, 36,865 bytes: 49,156 base64 characters, over the limit", std::string(36865, 'a'), 1,
         "PAYLOAD_TOO_LARGE");
  refuse("version 0, 49,153 ASCII characters", std::string(49153, 'b'), 0, "PAYLOAD_TOO_LARGE");
  encrypt("version 1 at index 1000", 1000, "one thousand", 1);

  // Export at an index (protocol.md 5.6): libolm's export format.
  auto& exp = f.group("megolmExport");
  auto source = olm::OutboundGroupSession::create(rng);
  auto key0 = source.session_key().str();
  for (int i = 0; i < 3; ++i) (void)source.encrypt(crypto::as_bytes(std::string("step")));
  auto key3 = source.session_key().str();
  auto inbound0 = olm::InboundGroupSession::create(SecretBytes(std::string_view(key0)));
  for (uint32_t i : {0u, 1u, 3u, 255u, 256u, 1000u}) {
    f.add(exp, "from the session key at index 0, exported at " + std::to_string(i),
          {{"sessionKey", key0}, {"index", i}, {"exportedKey", inbound0.export_session(i).str()}});
  }
  auto inbound3 = olm::InboundGroupSession::create(SecretBytes(std::string_view(key3)));
  f.add(exp, "from a session key at index 3, exported at 3",
        {{"sessionKey", key3}, {"index", 3}, {"exportedKey", inbound3.export_session(3).str()}});
  f.add(exp, "from an export at 3, exported at 7",
        {{"sessionKey", inbound3.export_session(3).str()}, {"index", 7}, {"exportedKey", inbound3.export_session(7).str()}});
  f.add(exp, "from a session key at index 3, exported at 2: before the first known index", {{"sessionKey", key3}, {"index", 2}},
        {}, "OLM_UNKNOWN_MESSAGE_INDEX");
  f.add(exp, "from a session key at index 3, exported at 0", {{"sessionKey", key3}, {"index", 0}}, {},
        "OLM_UNKNOWN_MESSAGE_INDEX");
}


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
  auto flipped = [&](const std::string& key, size_t at) {
    auto b = crypto::base64_decode(key, Base64Padding::kNone);
    b[at < b.size() ? at : b.size() - 1] ^= 0x01;
    return crypto::base64_encode(b, Base64Padding::kNone);
  };
  auto signed_raw_size = crypto::base64_decode(signed_key, Base64Padding::kNone).size();
  f.add(imp, "session-key format: a byte of the signature flipped", {{"sessionId", session_id}, {"sessionKey", flipped(signed_key, signed_raw_size - 1)}}, {}, "IMPORT_FAILED");
  f.add(imp, "session-key format: a byte of the ratchet flipped (the signature no longer verifies)", {{"sessionId", session_id}, {"sessionKey", flipped(signed_key, 10)}}, {}, "IMPORT_FAILED");
  f.add(imp, "session-key format: the version byte changed", {{"sessionId", session_id}, {"sessionKey", flipped(signed_key, 0)}}, {}, "IMPORT_FAILED");
  f.add(imp, "export format: the version byte changed", {{"sessionId", session_id}, {"sessionKey", flipped(export_at(0), 0)}}, {}, "IMPORT_FAILED");
  f.add(imp, "export format: cut short by one byte", {{"sessionId", session_id}, {"sessionKey", [&] {
          auto b = crypto::base64_decode(export_at(0), Base64Padding::kNone);
          b.pop_back();
          return crypto::base64_encode(b, Base64Padding::kNone);
        }()}}, {}, "IMPORT_FAILED");
  f.add(imp, "export format with base64 padding", {{"sessionId", session_id}, {"sessionKey", export_at(0) + "=="}}, {}, "IMPORT_FAILED");
  f.add(imp, "an empty key", {{"sessionId", session_id}, {"sessionKey", ""}}, {}, "IMPORT_FAILED");
  f.add(imp, "session-key format claimed under another session id",
        {{"sessionId", crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone)}, {"sessionKey", signed_key}}, {}, "IMPORT_FAILED");
  f.add(imp, "export format at index 5", {{"sessionId", session_id}, {"sessionKey", export_at(5)}, {"firstKnownIndex", 5}});
  megolm_receiving_edges(f, d, stream_id, session_id, signed_key, events, rng);
  megolm_sending(f, rng);
  f.write(dir + "/megolm.json", seed_hex);
}

// ---------------------------------------------------------------- olm


// The sending side of olm (protocol.md 4.1, 4.2, 4.4, 7.1): an account from
// given random bytes, and a pre-key message from given random bytes.
void olm_sending(File& f, crypto::RandomSource& rng) {
  const std::string pickle_key = "olm account pickle key";
  const std::string to_sign = "a message to sign";
  auto& acc = f.group("olmAccount", {{"pickleKey", pickle_key}, {"signMessage", to_sign}});
  std::optional<olm::Account> sender;
  std::string sender_pickle;
  auto add_account = [&](const std::string& comment, const SecretBytes& random, const SecretBytes& fallback_random) {
    vectors::GivenRandom given(random.span());
    auto a = olm::Account::create(given);
    vectors::GivenRandom given_fallback(fallback_random.span());
    a.generate_fallback_key(given_fallback);
    auto fallback = json::parse(a.unpublished_fallback_key()).at("curve25519");
    auto keys = json::parse(a.identity_keys());
    auto pickle = a.pickle(SecretBytes(std::string_view(pickle_key)));
    f.add(acc, comment,
          {{"random", hex(random.span())}, {"fallbackRandom", hex(fallback_random.span())},
           {"curve25519", keys.at("curve25519")}, {"ed25519", keys.at("ed25519")},
           {"fallbackKeyId", fallback.begin().key()}, {"fallbackKey", fallback.begin().value()},
           {"signature", a.sign(to_sign)}, {"pickle", pickle}});
    if (!sender) {
      sender_pickle = pickle;
      sender.emplace(std::move(a));
    }
  };
  for (int i = 0; i < 4; ++i) add_account("random bytes (" + std::to_string(i + 1) + ")", rng.bytes(64), rng.bytes(32));
  add_account("zero bytes: libolm takes the bytes as they are (curve25519 clamps its key)", SecretBytes(64), SecretBytes(32));

  // The device as the client makes it (protocol.md 4.2): a new account, then
  // its fallback key, both from the device's random source.
  auto& dev = f.group("deviceInit", {{"pickleKey", pickle_key}});
  for (int i = 0; i < 2; ++i) {
    auto random = rng.bytes(96);
    MemoryCryptoStore store;
    vectors::GivenRandom given(random.span());
    EncryptionDevice device(store, given);
    GroupEncryptionCrypto c(nullptr, device);
    c.init({.pickle_key = SecretBytes(std::string_view(pickle_key))});
    if (!given.all_used()) throw Error(ErrorCode::INTERNAL, "device init drew less than 96 bytes");
    auto exported = river::ExportedDevice();
    auto bytes = c.export_device();
    exported.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    f.add(dev, "a new device (" + std::to_string(i + 1) + ")",
          {{"random", hex(random.span())}, {"deviceKey", c.get_user_device().device_key},
           {"fallbackKey", c.get_user_device().fallback_key}, {"pickledAccount", exported.pickledaccount()}});
  }

  // Pre-key messages with given random bytes: 64 for the session (base key,
  // then ratchet key); the first message draws nothing more.
  auto receiver = olm::Account::create(rng);
  receiver.generate_fallback_key(rng);
  auto receiver_fallback = only_fallback_key(receiver);
  auto& enc = f.group("olmEncrypt", {{"senderPickle", sender_pickle}, {"senderPickleKey", pickle_key},
                                      {"senderIdentityKey", sender->curve25519_key()},
                                      {"receiverIdentityKey", receiver.curve25519_key()},
                                      {"receiverFallbackKey", receiver_fallback},
                                      {"receiverPickle", receiver.pickle(SecretBytes(std::string_view("olm receiver")))},
                                      {"receiverPickleKey", "olm receiver"}});
  auto add_enc = [&](const std::string& comment, const std::string& payload, const SecretBytes& random) {
    vectors::GivenRandom given(random.span());
    auto session = olm::Session::create_outbound(*sender, receiver.curve25519_key(), receiver_fallback, given);
    auto m = session.encrypt(crypto::as_bytes(payload), given);
    if (!given.all_used()) throw Error(ErrorCode::INTERNAL, "olm encryption drew less than given");
    f.add(enc, comment, {{"random", hex(random.span())}, {"payload", payload}, {"type", m.type}, {"message", m.body},
                         {"sessionId", session.session_id()}});
  };
  add_enc("a SessionKeys payload", R"({"keys":["a key"]})", rng.bytes(64));
  add_enc("a text beyond ASCII", "ünïcödé ✓", rng.bytes(64));
  add_enc("one character", "x", rng.bytes(64));
  add_enc("zero random bytes", "zero", SecretBytes(64));
  auto refuse = [&](const std::string& comment, json fields, const std::string& error) {
    fields["random"] = hex(rng.bytes(64).span());
    if (!fields.contains("payload")) fields["payload"] = "refused";
    f.add(enc, comment, fields, {}, error);
  };
  refuse("a receiver identity key that is not base64", {{"receiverIdentityKey", "not base64!"}}, "OLM_INVALID_BASE64");
  refuse("a fallback key that is not base64", {{"receiverFallbackKey", "%%%%"}}, "OLM_INVALID_BASE64");
  refuse("a receiver identity key of 31 bytes",
         {{"receiverIdentityKey", crypto::base64_encode(rng.bytes(31).span(), Base64Padding::kNone)}}, "OLM_INVALID_BASE64");
  refuse("a fallback key of 33 bytes",
         {{"receiverFallbackKey", crypto::base64_encode(rng.bytes(33).span(), Base64Padding::kNone)}}, "OLM_INVALID_BASE64");
  refuse("the sender's pickle opened with a wrong key", {{"senderPickleKey", "not the key"}}, "OLM_BAD_ACCOUNT_KEY");

  // Unpickling an account (protocol.md 4.4).
  auto& un = f.group("olmAccountUnpickle", {{"pickleKey", pickle_key}});
  auto keys = json::parse(sender->identity_keys());
  json ok = {{"pickle", sender_pickle}, {"curve25519", keys.at("curve25519")}, {"ed25519", keys.at("ed25519")}};
  f.add(un, "the account of olmAccount's first test", ok);
  auto bad = [&](const std::string& comment, const std::string& pickle, const std::string& error, json extra = json::object()) {
    json fields = {{"pickle", pickle}};
    for (auto& [k, v] : extra.items()) fields[k] = v;
    f.add(un, comment, fields, {}, error);
  };
  auto err = [&](const std::string& pickle, const std::string& key) -> std::string {
    try {
      (void)olm::Account::unpickle(SecretBytes(std::string_view(key)), pickle);
      return "";
    } catch (const Error& e) {
      return std::string(e.code_name());
    }
  };
  auto try_bad = [&](const std::string& comment, const std::string& pickle, const std::string& key = "") {
    auto k = key.empty() ? pickle_key : key;
    auto e = err(pickle, k);
    if (e.empty()) throw Error(ErrorCode::INTERNAL, "an olmAccountUnpickle case unpickles: " + comment);
    bad(comment, pickle, e, key.empty() ? json::object() : json{{"pickleKey", key}});
  };
  try_bad("another pickle key", sender_pickle, "another key");
  try_bad("the pickle key in upper case", sender_pickle, "OLM ACCOUNT PICKLE KEY");
  auto raw = crypto::base64_decode(sender_pickle, Base64Padding::kNone);
  auto flip = [&](size_t at) {
    auto b = raw;
    b[at] ^= 0x01;
    return crypto::base64_encode(b, Base64Padding::kNone);
  };
  try_bad("a byte of the encrypted pickle flipped", flip(raw.size() / 2));
  try_bad("a byte of the pickle's MAC flipped", flip(raw.size() - 1));
  try_bad("cut short by 16 bytes", crypto::base64_encode(std::span<const uint8_t>(raw.data(), raw.size() - 16), Base64Padding::kNone));
  try_bad("a character outside the base64 alphabet", sender_pickle.substr(0, 10) + "!" + sender_pickle.substr(11));
  try_bad("empty", "");
  try_bad("an outbound megolm session's pickle", olm::OutboundGroupSession::create(rng).pickle(SecretBytes(std::string_view(pickle_key))));
}

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
  auto olm_error_of = [&](const std::string& m) -> std::string {
    try {
      auto receiver = olm::Account::unpickle(SecretBytes(std::string_view(receiver_key_text)), receiver_account.pickle(receiver_key_text));
      auto session = olm::Session::create_inbound_from(receiver, sender_account.curve25519_key(), m);
      (void)session.decrypt(0, m);
      return "";
    } catch (const Error& e) {
      return olm_error_name(e);
    }
  };
  // olmError only where libolm itself refuses: this library checks the
  // pre-key envelope first (version 3, the three keys, unpadded base64) and
  // names its own error there, which libolm's may not match.
  auto refused = [&](const std::string& comment, const std::string& m, const std::vector<std::string>& flags = {},
                     bool name_olm_error = true) {
    json fields = {{"message", m}};
    auto e = olm_error_of(m);
    if (!e.empty() && name_olm_error) fields["olmError"] = e;
    f.add(g, comment, fields, flags, "DECRYPTION_FAILED");
  };
  refused("an empty message", "", {}, false);
  refused("a character outside the base64 alphabet (libolm's own decoder does not check the alphabet)",
          message.substr(0, 20) + "!" + message.substr(21), {}, false);
  refused("base64 padding added (libolm's decoder takes it; this library checks the envelope first)", message + "=",
          {"StrictDecoding"}, false);
  refused("cut to its first 40 characters", message.substr(0, 40));
  auto version = raw;
  version[0] ^= 0x01;
  version[raw.size() - 3] ^= 0x01;  // undo the inner flip of raw above
  refused("the pre-key message's version byte 3 changed to 2 (libolm does not check it; this library does)",
          crypto::base64_encode(version, Base64Padding::kNone), {"ClientDeviation"}, false);
  auto mac = crypto::base64_decode(message, Base64Padding::kNone);
  mac.back() ^= 0x01;
  refused("a byte of the inner message's MAC flipped", crypto::base64_encode(mac, Base64Padding::kNone));
  // A normal (type 1) message given as a pre-key message: the second message
  // of a session whose first message the receiver never saw.
  auto reply_to = olm::Session::create_inbound_from(
      receiver_account, sender_account.curve25519_key(),
      olm::Session::create_outbound(sender_account, receiver_account.curve25519_key(), fallback, rng)
          .encrypt(crypto::as_bytes(std::string("x")), rng).body);
  auto normal = reply_to.encrypt(crypto::as_bytes(std::string("a reply")), rng);
  refused("a normal message (type " + std::to_string(normal.type) + ") given as a pre-key message", normal.body);
  f.add(g, "a longer payload: SessionKeys JSON of 100 megolm keys",
        [&] {
          std::vector<SecretBytes> keys;
          for (int i = 0; i < 100; ++i) {
            keys.emplace_back(std::string_view(crypto::base64_encode(rng.bytes(165).span(), Base64Padding::kNone)));
          }
          auto text = session_keys_json(keys).str();
          return json{{"message", encrypt(fallback, text)}, {"payload", text}};
        }());

  olm_sending(f, rng);
  f.write(dir + "/olm.json", seed_hex);
}

// ---------------------------------------------------------------- session sharing

// More of session sharing (protocol.md 8.1, 8.4): the sending side with the
// random bytes given, and receiving edge cases.
void sharing_more(File& f, json& g, Device& sender, Device& receiver, Device& bystander, const std::string& stream_id,
                  const std::vector<GroupEncryptionSession>& megolm_sessions,
                  const std::vector<GroupEncryptionSession>& hybrid_sessions, crypto::RandomSource& rng) {
  auto expect_json = [](const std::vector<GroupEncryptionSession>& ss) {
    json out = json::array();
    for (const auto& s : ss) out.push_back({{"sessionId", s.session_id}, {"sessionKey", s.session_key.str()}, {"algorithm", s.algorithm}});
    return out;
  };
  auto rdev = receiver.crypto.get_user_device();
  auto bdev = bystander.crypto.get_user_device();
  auto build = [&](GroupEncryptionAlgorithm a, const std::vector<GroupEncryptionSession>& ss, const std::vector<UserDevice>& devices) {
    return wire_convert::to_river(build_group_encryption_sessions(sender.crypto, stream_id, a, ss, devices).message);
  };

  // Receiving.
  auto both = std::vector<UserDevice>{rdev, bdev};
  auto base = build(GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, both);
  // A map whose entries are not in key order: written by hand, the
  // bystander's entry first and the receiver's second, whatever their order.
  {
    river::UserInboxPayload::GroupEncryptionSessions without = base;
    without.clear_ciphertexts();
    auto bytes = serialize(without);
    auto entry = [&](const std::string& k, const std::string& v) {
      river::UserInboxPayload::GroupEncryptionSessions one;
      (*one.mutable_ciphertexts())[k] = v;
      return serialize(one);
    };
    bool receiver_first = rdev.device_key < bdev.device_key;
    const auto& first = receiver_first ? bdev : rdev;
    const auto& second = receiver_first ? rdev : bdev;
    bytes += entry(first.device_key, base.ciphertexts().at(first.device_key));
    bytes += entry(second.device_key, base.ciphertexts().at(second.device_key));
    f.add(g, "two devices, the map's entries not in key order (protobuf leaves map order open)",
          {{"groupEncryptionSessions", hex(bytes)}, {"imported", expect_json(megolm_sessions)}});
  }
  // The receiver's verdict on a message, from a fresh copy of it: the
  // imported sessions, or the error.
  auto receiver_state = std::string(receiver.crypto.export_device().view());
  auto add_received = [&](const std::string& comment, const river::UserInboxPayload::GroupEncryptionSessions& m) {
    Imported fresh(receiver_state);
    try {
      auto r = receive_group_encryption_sessions(fresh.crypto, wire_convert::to_plain(m));
      std::vector<GroupEncryptionSession> got;
      for (const auto& id : r.imported) got.push_back(*fresh.crypto.export_group_session(stream_id, id));
      f.add(g, comment, {{"groupEncryptionSessions", pb_hex(m)}, {"imported", expect_json(got)}, {"failed", r.failed}});
    } catch (const Error& e) {
      f.add(g, comment, {{"groupEncryptionSessions", pb_hex(m)}}, {}, std::string(e.code_name()));
    }
  };
  auto dup = base;
  dup.add_session_ids(megolm_sessions[0].session_id);
  f.add(g, "a session id listed twice and one key", {{"groupEncryptionSessions", pb_hex(dup)}}, {}, "IMPORT_FAILED");
  auto no_ids = base;
  no_ids.clear_session_ids();
  add_received("no session ids and one key: no listed session is missing, so nothing is read", no_ids);
  auto other_sender = base;
  other_sender.set_sender_key(bdev.device_key);
  f.add(g, "the sender key of another device: the pre-key message is not from it",
        {{"groupEncryptionSessions", pb_hex(other_sender)}}, {}, "DECRYPTION_FAILED");
  auto hybrid_as_megolm = build(GroupEncryptionAlgorithm::kHybridGroupEncryption, hybrid_sessions, both);
  hybrid_as_megolm.set_algorithm("r.group-encryption.v1.aes-sha2");
  add_received("grpaes keys labelled megolm", hybrid_as_megolm);
  auto wrong_id = base;
  wrong_id.set_session_ids(0, crypto::base64_encode(rng.bytes(32).span(), Base64Padding::kNone));
  add_received("a key listed under another session id", wrong_id);
  {
    // The right olm envelope around a text that is not SessionKeys JSON.
    auto not_json = base;
    auto ct = sender.device.account().encrypt_to_devices("not JSON", {rdev}, 1);
    (*not_json.mutable_ciphertexts())[rdev.device_key] = ct.at(0).value->body;
    f.add(g, "the olm plaintext is not SessionKeys JSON", {{"groupEncryptionSessions", pb_hex(not_json)}}, {}, "IMPORT_FAILED");
  }
  auto no_map = base;
  no_map.clear_ciphertexts();
  f.add(g, "no ciphertexts at all", {{"groupEncryptionSessions", pb_hex(no_map)}, {"imported", json::array()}},
        {"NotForThisDevice"});

  // Sending (protocol.md 8.1): the sender from its ExportedDevice; each
  // device's pre-key message from given random bytes. This library draws a
  // 32-byte seed per device (in the order given) and expands it as
  // SeededRandom does (include/towns/crypto/random.h) into the 64 bytes olm
  // takes (base key, ratchet key); the client draws those 64 bytes itself.
  auto sender_state = sender.crypto.export_device();
  auto& bg = f.group("buildSessions", {{"streamId", stream_id}, {"senderExportedDevice", hex(sender_state.span())},
                                       {"senderKey", sender.crypto.get_user_device().device_key}});
  Device third(rng, "third");
  auto tdev = third.crypto.get_user_device();
  auto add_build = [&](const std::string& comment, GroupEncryptionAlgorithm a, const std::vector<GroupEncryptionSession>& ss,
                       const std::vector<UserDevice>& devices, const std::vector<std::string>& flags = {}) {
    std::vector<SecretBytes> seeds;
    json seeds_json = json::array(), olm_random = json::array();
    std::string all;
    for (const auto& d : devices) {
      if (d.device_key == sender.crypto.get_user_device().device_key) continue;
      seeds.push_back(rng.bytes(32));
      seeds_json.push_back(hex(seeds.back().span()));
      crypto::SeededRandom expand(seeds.back().span());
      olm_random.push_back(hex(expand.bytes(64).span()));
      all += std::string(seeds.back().view());
    }
    Imported fresh(std::string(sender_state.view()), crypto::as_bytes(all));
    auto plan = build_group_encryption_sessions(fresh.crypto, stream_id, a, ss, devices);
    if (!fresh.given.all_used()) throw Error(ErrorCode::INTERNAL, "sharing drew less than the seeds");
    json sessions = json::array(), devs = json::array();
    for (const auto& s : ss) sessions.push_back({{"sessionId", s.session_id}, {"sessionKey", s.session_key.str()}});
    for (const auto& d : devices) devs.push_back({{"deviceKey", d.device_key}, {"fallbackKey", d.fallback_key}});
    f.add(bg, comment,
          {{"algorithm", std::string(algorithm_id(a))}, {"sessions", sessions}, {"devices", devs}, {"seeds", seeds_json},
           {"olmRandom", olm_random}, {"groupEncryptionSessions", pb_hex(wire_convert::to_river(plan.message))},
           {"skippedDevices", plan.skipped_devices}},
          flags);
  };
  auto sorted = [](std::vector<UserDevice> v) {
    std::sort(v.begin(), v.end(), [](const UserDevice& a, const UserDevice& b) { return a.device_key < b.device_key; });
    return v;
  };
  add_build("one megolm session to one device", GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, {rdev});
  add_build("one grpaes session to one device", GroupEncryptionAlgorithm::kHybridGroupEncryption, hybrid_sessions, {rdev});
  add_build("three devices, listed in key order", GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions,
            sorted({rdev, bdev, tdev}));
  add_build("the sender's own device in the list: skipped, nothing drawn for it", GroupEncryptionAlgorithm::kGroupEncryption,
            megolm_sessions, sorted({rdev, sender.crypto.get_user_device()}));
  {
    std::vector<GroupEncryptionSession> two = megolm_sessions;
    Device extra(rng, "extra sessions");
    auto extra_stream = stream_id;
    extra.device.outbound().create(extra_stream);
    for (auto& s : extra.crypto.export_room_keys()) two.push_back(s);
    add_build("two megolm sessions in one share: SessionKeys lists both keys, in order", GroupEncryptionAlgorithm::kGroupEncryption,
              two, {rdev});
  }
  auto reversed = sorted({rdev, bdev, tdev});
  std::reverse(reversed.begin(), reversed.end());
  add_build("three devices listed against key order: this library writes the map in key order, the client in the order "
            "it finished encrypting",
            GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, reversed, {"MapOrder"});
  auto broken = bdev;
  broken.fallback_key = "not a key";
  add_build("a device whose fallback key is not a key: skipped, the others get theirs (the client sends that share to "
            "no one)",
            GroupEncryptionAlgorithm::kGroupEncryption, megolm_sessions, sorted({rdev, broken}), {"ClientDeviation"});
}

void sharing(const std::string& dir, const std::string& seed_hex, crypto::RandomSource& rng) {
  File f("session sharing",
         {"Receiving GroupEncryptionSessions (protocol.md section 8): the receiver, recreated from its "
          "ExportedDevice, reads the ciphertext for its own device key and imports the listed sessions."},
         notes({{"NotForThisDevice", "No ciphertext for the receiver's device: nothing is imported, no error."},
                {"MapOrder", "The client writes the ciphertexts map in another order: compared as a message, not as bytes."},
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
  sharing_more(f, g, sender, receiver, bystander, stream_id, megolm_sessions, hybrid_sessions, rng);
  // Every valid receive lists the sessions that failed to import (none, but
  // where a case says otherwise).
  for (auto& t : g["tests"]) {
    if (t["result"] == "valid" && !t.contains("failed")) t["failed"] = json::array();
  }
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
