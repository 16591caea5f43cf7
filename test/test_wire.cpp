// The library's own protobuf codec (lib/wire, towns/protocol/messages.h)
// against protobuf's generated classes, both ways: the bytes we write are the
// bytes protobuf writes deterministically for the same fields, we read what
// protobuf reads (and nothing it refuses), on fixed cases, seeded random field
// values and seeded random protobuf-like bytes.
#include "helpers.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "towns/protocol/messages.h"
#include "towns/proto/payloads.pb.h"
#include "towns/proto/protocol.pb.h"
#include "river_serialize.h"
#include "towns/protocol/encryption_device.h"

namespace {

using namespace towns;
using Rng = std::mt19937_64;
using RiverEncryptedData = river::EncryptedData;
using RiverSolicitation = river::MemberPayload::KeySolicitation;
using RiverFulfillment = river::MemberPayload::KeyFulfillment;
using RiverSessions = river::UserInboxPayload::GroupEncryptionSessions;

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }
std::string string_of(const Bytes& b) { return std::string(b.begin(), b.end()); }

// protobuf's deterministic serialization (river_serialize.h), as bytes.
Bytes serialize(const google::protobuf::MessageLite& m) { return bytes_of(river_proto::serialize(m)); }

// ---- Each plain message and its generated class, field by field (the test's
// own reference; the library converts only through bytes).

RiverEncryptedData river_of(const EncryptedData& p) {
  RiverEncryptedData r;
  r.set_ciphertext(p.ciphertext);
  r.set_algorithm(p.algorithm);
  r.set_sender_key(p.sender_key);
  r.set_session_id(p.session_id);
  if (p.checksum) r.set_checksum(*p.checksum);
  if (p.ref_event_id) r.set_ref_event_id(*p.ref_event_id);
  r.set_ciphertext_bytes(string_of(p.ciphertext_bytes));
  r.set_iv_bytes(string_of(p.iv_bytes));
  r.set_session_id_bytes(string_of(p.session_id_bytes));
  r.set_version(static_cast<river::EncryptedDataVersion>(static_cast<int32_t>(p.version)));
  if (p.device_key) r.set_device_key(*p.device_key);
  return r;
}

void check_same(const EncryptedData& p, const RiverEncryptedData& r) {
  CHECK(p.ciphertext == r.ciphertext());
  CHECK(p.algorithm == r.algorithm());
  CHECK(p.sender_key == r.sender_key());
  CHECK(p.session_id == r.session_id());
  CHECK(p.checksum.has_value() == r.has_checksum());
  if (p.checksum) CHECK(*p.checksum == r.checksum());
  CHECK(p.ref_event_id.has_value() == r.has_ref_event_id());
  if (p.ref_event_id) CHECK(*p.ref_event_id == r.ref_event_id());
  CHECK(string_of(p.ciphertext_bytes) == r.ciphertext_bytes());
  CHECK(string_of(p.iv_bytes) == r.iv_bytes());
  CHECK(string_of(p.session_id_bytes) == r.session_id_bytes());
  CHECK(static_cast<int32_t>(p.version) == static_cast<int32_t>(r.version()));
  CHECK(p.device_key.has_value() == r.has_device_key());
  if (p.device_key) CHECK(*p.device_key == r.device_key());
}

RiverSolicitation river_of(const KeySolicitation& p) {
  RiverSolicitation r;
  r.set_device_key(p.device_key);
  r.set_fallback_key(p.fallback_key);
  r.set_is_new_device(p.is_new_device);
  for (const auto& id : p.session_ids) r.add_session_ids(id);
  return r;
}

void check_same(const KeySolicitation& p, const RiverSolicitation& r) {
  CHECK(p.device_key == r.device_key());
  CHECK(p.fallback_key == r.fallback_key());
  CHECK(p.is_new_device == r.is_new_device());
  CHECK(p.session_ids == std::vector<std::string>(r.session_ids().begin(), r.session_ids().end()));
}

RiverFulfillment river_of(const KeyFulfillment& p) {
  RiverFulfillment r;
  r.set_user_address(string_of(p.user_address));
  r.set_device_key(p.device_key);
  for (const auto& id : p.session_ids) r.add_session_ids(id);
  return r;
}

void check_same(const KeyFulfillment& p, const RiverFulfillment& r) {
  CHECK(string_of(p.user_address) == r.user_address());
  CHECK(p.device_key == r.device_key());
  CHECK(p.session_ids == std::vector<std::string>(r.session_ids().begin(), r.session_ids().end()));
}

RiverSessions river_of(const GroupEncryptionSessions& p) {
  RiverSessions r;
  r.set_stream_id(string_of(p.stream_id));
  r.set_sender_key(p.sender_key);
  for (const auto& id : p.session_ids) r.add_session_ids(id);
  for (const auto& [k, v] : p.ciphertexts) (*r.mutable_ciphertexts())[k] = v;
  r.set_algorithm(p.algorithm);
  return r;
}

void check_same(const GroupEncryptionSessions& p, const RiverSessions& r) {
  CHECK(string_of(p.stream_id) == r.stream_id());
  CHECK(p.sender_key == r.sender_key());
  CHECK(p.session_ids == std::vector<std::string>(r.session_ids().begin(), r.session_ids().end()));
  CHECK(p.ciphertexts == std::map<std::string, std::string>(r.ciphertexts().begin(), r.ciphertexts().end()));
  CHECK(p.algorithm == r.algorithm());
}

// Both ways for one value: our bytes are protobuf's, protobuf's bytes read back
// to the same value, and protobuf reads our bytes to the same fields.
template <typename Plain>
void check_round_trip(const Plain& p) {
  auto r = river_of(p);
  auto theirs = serialize(r);
  auto ours = p.encode();
  CHECK(ours == theirs);
  auto back = Plain::decode(theirs);
  CHECK(back == p);
  check_same(back, r);
  decltype(r) parsed;
  REQUIRE(parsed.ParseFromArray(ours.data(), static_cast<int>(ours.size())));
  check_same(p, parsed);
}

// ---- Random field values

std::string random_utf8(Rng& rng, size_t max_chars = 12) {
  static const std::vector<std::string> pieces = {"a", "Z", "0", " ", "\n", std::string(1, '\0'), "é", "ß", "€", "✓",
                                                  "中", "😀", "\xf4\x8f\xbf\xbf" /* U+10FFFF */, "\xef\xbf\xbf"};
  std::string s;
  size_t n = rng() % (max_chars + 1);
  for (size_t i = 0; i < n; ++i) {
    if (rng() % 4 == 0) {
      // Any scalar value, encoded.
      uint32_t cp;
      do {
        cp = static_cast<uint32_t>(rng() % 0x110000);
      } while (cp >= 0xd800 && cp <= 0xdfff);
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s += static_cast<char>(0xc0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        s += static_cast<char>(0xe0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        s += static_cast<char>(0x80 | (cp & 0x3f));
      } else {
        s += static_cast<char>(0xf0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        s += static_cast<char>(0x80 | (cp & 0x3f));
      }
    } else {
      s += pieces[rng() % pieces.size()];
    }
  }
  return s;
}

Bytes random_bytes(Rng& rng, size_t max = 40) {
  Bytes b(rng() % (max + 1));
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

std::optional<std::string> random_optional(Rng& rng) {
  switch (rng() % 3) {
    case 0: return std::nullopt;
    case 1: return std::string();
    default: return random_utf8(rng);
  }
}

std::vector<std::string> random_ids(Rng& rng) {
  std::vector<std::string> ids(rng() % 5);
  for (auto& id : ids) id = rng() % 5 == 0 && !ids.empty() ? ids[0] : random_utf8(rng, 6);  // repeats too
  return ids;
}

EncryptedData random_encrypted_data(Rng& rng) {
  EncryptedData m;
  m.ciphertext = random_utf8(rng, 30);
  m.algorithm = random_utf8(rng);
  m.sender_key = random_utf8(rng);
  m.session_id = random_utf8(rng);
  m.checksum = random_optional(rng);
  m.ref_event_id = random_optional(rng);
  m.ciphertext_bytes = random_bytes(rng);
  m.iv_bytes = random_bytes(rng, 16);
  m.session_id_bytes = random_bytes(rng, 32);
  static const int32_t versions[] = {0, 1, 2, -1, -2, 127, 128, INT32_MAX, INT32_MIN};
  m.version = static_cast<EncryptedDataVersion>(rng() % 3 == 0 ? static_cast<int32_t>(rng())
                                                               : versions[rng() % std::size(versions)]);
  m.device_key = random_optional(rng);
  return m;
}

KeySolicitation random_solicitation(Rng& rng) {
  KeySolicitation m;
  m.device_key = random_utf8(rng);
  m.fallback_key = random_utf8(rng);
  m.is_new_device = rng() % 2 == 0;
  m.session_ids = random_ids(rng);
  return m;
}

KeyFulfillment random_fulfillment(Rng& rng) {
  KeyFulfillment m;
  m.user_address = random_bytes(rng, 20);
  m.device_key = random_utf8(rng);
  m.session_ids = random_ids(rng);
  return m;
}

GroupEncryptionSessions random_sessions(Rng& rng) {
  GroupEncryptionSessions m;
  m.stream_id = random_bytes(rng, 32);
  m.sender_key = random_utf8(rng);
  m.session_ids = random_ids(rng);
  size_t n = rng() % 5;
  for (size_t i = 0; i < n; ++i) m.ciphertexts[random_utf8(rng, 4)] = random_utf8(rng, 20);
  m.algorithm = random_utf8(rng);
  return m;
}

// ---- Parsing both ways

template <typename River>
bool river_parses(const Bytes& b, River& out) {
  google::protobuf::LogSilencer quiet;  // invalid UTF-8 is logged before it is refused
  return out.ParseFromArray(b.data(), static_cast<int>(b.size()));
}

// ExportedDevice and the grpaes session key: secrets, encoded into SecretBytes.
void check_same(const ExportedDevice& p, const river::ExportedDevice& r) {
  CHECK(p.pickle_key.view() == r.picklekey());
  CHECK(p.pickled_account.view() == r.pickledaccount());
  auto same_sessions = [](const std::vector<ExportedDevice::GroupSession>& ours,
                          const google::protobuf::RepeatedPtrField<river::ExportedDevice::GroupSession>& theirs) {
    REQUIRE(ours.size() == static_cast<size_t>(theirs.size()));
    for (size_t i = 0; i < ours.size(); ++i) {
      const auto& t = theirs[static_cast<int>(i)];
      CHECK(ours[i].session_id == t.session_id());
      CHECK(ours[i].stream_id == t.stream_id());
      CHECK(ours[i].session.view() == t.session());
    }
  };
  same_sessions(p.outbound_sessions, r.outboundsessions());
  same_sessions(p.inbound_sessions, r.inboundsessions());
  REQUIRE(p.hybrid_group_sessions.size() == static_cast<size_t>(r.hybridgroupsessions_size()));
  for (size_t i = 0; i < p.hybrid_group_sessions.size(); ++i) {
    const auto& t = r.hybridgroupsessions(static_cast<int>(i));
    CHECK(p.hybrid_group_sessions[i].session_id == t.session_id());
    CHECK(p.hybrid_group_sessions[i].stream_id == t.stream_id());
    CHECK(p.hybrid_group_sessions[i].session_key.view() == t.session_key());
    CHECK(p.hybrid_group_sessions[i].miniblock_num == t.miniblock_num());
  }
}

void check_same(const HybridSessionKey& p, const river::HybridGroupSessionKey& r) {
  CHECK(p.session_id == r.session_id());
  CHECK(p.stream_id == r.stream_id());
  CHECK(p.key.view() == r.key());
  CHECK(p.miniblock_num == r.miniblock_num());
  CHECK(p.miniblock_hash == r.miniblock_hash());
}


// Our decode succeeds exactly when protobuf's parse does, and refuses with
// `code`; on success both read the same fields (unknown fields dropped: we do
// not keep them) and write the same bytes.
Bytes encoding_of(const Bytes& b) { return b; }
Bytes encoding_of(const crypto::SecretBytes& b) { return Bytes(b.span().begin(), b.span().end()); }

template <typename Plain, typename River>
void check_reads_like_protobuf(const Bytes& b, ErrorCode code = ErrorCode::INVALID_ARGUMENT) {
  River r;
  bool theirs = river_parses(b, r);
  std::optional<Plain> ours;
  std::optional<Error> error;
  try {
    ours = Plain::decode(b);
  } catch (const Error& e) {
    error = e;
  }
  INFO("bytes " << crypto::hex_encode(b));
  CHECK(theirs == ours.has_value());
  if (theirs != ours.has_value()) return;
  if (error) CHECK(error->code() == code);
  if (!theirs) return;
  r.DiscardUnknownFields();
  check_same(*ours, r);
  CHECK(encoding_of(ours->encode()) == serialize(r));
}

void check_all_read_like_protobuf(const Bytes& b) {
  check_reads_like_protobuf<ExportedDevice, river::ExportedDevice>(b);
  check_reads_like_protobuf<HybridSessionKey, river::HybridGroupSessionKey>(b, ErrorCode::IMPORT_FAILED);
  check_reads_like_protobuf<EncryptedData, RiverEncryptedData>(b);
  check_reads_like_protobuf<KeySolicitation, RiverSolicitation>(b);
  check_reads_like_protobuf<KeyFulfillment, RiverFulfillment>(b);
  check_reads_like_protobuf<GroupEncryptionSessions, RiverSessions>(b);
}

Bytes hex(std::string_view h) { return crypto::hex_decode(h); }

Bytes nested_groups(int depth) {
  Bytes b;
  for (int i = 0; i < depth; ++i) b.push_back(0x6b);  // field 13, start group
  for (int i = 0; i < depth; ++i) b.push_back(0x6c);  // field 13, end group
  return b;
}

Bytes map_entry_holding(const Bytes& entry) {
  Bytes b{0x22};  // field 4, length-delimited: a ciphertexts entry
  size_t n = entry.size();
  while (n >= 0x80) {
    b.push_back(static_cast<uint8_t>(n | 0x80));
    n >>= 7;
  }
  b.push_back(static_cast<uint8_t>(n));
  b.insert(b.end(), entry.begin(), entry.end());
  return b;
}

}  // namespace

TEST_CASE("wire: fixed values encode as protobuf does and decode back") {
  check_round_trip(EncryptedData{});
  check_round_trip(KeySolicitation{});
  check_round_trip(KeyFulfillment{});
  check_round_trip(GroupEncryptionSessions{});
  CHECK(EncryptedData{}.encode().empty());

  EncryptedData e;
  e.ciphertext = "AwgAEn...megolm";
  e.algorithm = "r.group-encryption.v1.aes-sha2";
  e.sender_key = "senderKey✓";
  e.session_id = "sessionId";
  e.checksum = "";  // set but empty: written
  e.ref_event_id = "refEvent";
  e.ciphertext_bytes = {0, 1, 2, 0xff};
  e.iv_bytes = Bytes(12, 7);
  e.session_id_bytes = Bytes(32, 0xab);
  e.version = EncryptedDataVersion::kVersion1;
  e.device_key = "deviceKey 😀";
  check_round_trip(e);
  for (int32_t v : {-1, 2, INT32_MIN, INT32_MAX, 1000}) {
    e.version = static_cast<EncryptedDataVersion>(v);
    check_round_trip(e);
  }
  // The optional fields: absent, set to "" and set.
  for (auto opt : {std::optional<std::string>{}, std::optional<std::string>{""}, std::optional<std::string>{"x"}}) {
    EncryptedData o;
    o.checksum = opt;
    o.ref_event_id = opt;
    o.device_key = opt;
    check_round_trip(o);
  }

  KeySolicitation s{"device", "fallback ü", true, {"b", "a", "b", "", "中文"}};
  check_round_trip(s);
  s.is_new_device = false;
  s.session_ids.clear();
  check_round_trip(s);

  KeyFulfillment f{Bytes(20, 0x11), "device", {"x", "x", "y"}};
  check_round_trip(f);

  GroupEncryptionSessions g;
  g.stream_id = hex("20aabbccddeeff00112233445566778899aabbccddeeff001122334455667788");
  g.sender_key = "sender";
  g.session_ids = {"s1", "s2", "s1"};
  g.ciphertexts = {{"zeta", "body z"}, {"alpha", "body a"}, {"", "empty key"}, {"€", ""}, {"mid", "m"}};
  g.algorithm = "grpaes";
  check_round_trip(g);
}

TEST_CASE("wire: seeded random values encode as protobuf does and decode back") {
  Rng rng(20240515);
  for (int i = 0; i < 2000; ++i) {
    check_round_trip(random_encrypted_data(rng));
    check_round_trip(random_solicitation(rng));
    check_round_trip(random_fulfillment(rng));
    check_round_trip(random_sessions(rng));
  }
}

TEST_CASE("wire: decoding follows protobuf's reader on fixed inputs") {
  // Each is read by all four messages; the comment says what it exercises.
  const std::vector<std::pair<const char*, Bytes>> cases = {
      {"empty", {}},
      // Malformed.
      {"truncated varint", hex("5880")},
      {"truncated tag", hex("80")},
      {"a varint of 11 bytes", hex("58ffffffffffffffffffff01")},
      {"length past the end", hex("0a0561")},
      {"length past the end, nested", hex("220a0a0161")},
      {"length over 2^31", hex("0affffffff0f")},
      {"field number 0, varint", hex("0001")},
      {"field number 0, length-delimited", hex("0200")},
      {"wire type 6", hex("0e")},
      {"wire type 7", hex("0f00")},
      {"invalid UTF-8 (field 1)", hex("0a01ff")},
      {"invalid UTF-8 (field 2)", hex("1201ff")},
      {"invalid UTF-8 (field 3)", hex("1a02c0af")},
      {"invalid UTF-8 (field 4): a surrogate", hex("2203eda080")},
      {"invalid UTF-8 (field 5): over U+10FFFF", hex("2a04f4908080")},
      {"invalid UTF-8 (field 6): overlong", hex("3203e08080")},
      {"invalid UTF-8 (field 12): truncated", hex("6202e282")},
      {"invalid UTF-8 in a map key", hex("2205" "0a01ff" "1200")},
      {"invalid UTF-8 in a map value", hex("2206" "0a0161" "1201ff")},
      {"a stray end-group tag", hex("0c")},
      {"a stray end-group tag after a field", hex("12016114")},
      {"an unclosed group", hex("0b")},
      {"an unclosed group with content", hex("0b1001")},
      {"a group closed by another field number", hex("0b14")},
      {"an end-group tag inside a map entry", hex("2202" "0c00")},
      {"fixed64 past the end", hex("09010203")},
      {"fixed32 past the end", hex("0d0102")},
      // Well formed: unknown fields and known numbers with another wire type are skipped.
      {"reserved field 7", hex("3a0161")},
      {"unknown varint field", hex("a00601")},
      {"unknown fixed64 and fixed32 fields", hex("69" "0102030405060708" "75" "01020304")},
      {"unknown group with content", hex("a3060801120161a406")},
      {"a string field as a varint", hex("0805" "1005" "1805")},
      {"a string field as fixed32", hex("0d01020304")},
      {"a bool or enum field as length-delimited", hex("1a0101" "5a0101")},
      {"a map field as a varint", hex("2001")},
      {"an unknown field with invalid UTF-8 bytes", hex("3a01ff" "7a01ff")},
      {"bytes fields with invalid UTF-8", hex("4201ff" "4a01ff" "5201ff")},
      {"a varint of 10 bytes", hex("58ffffffffffffffffff01")},
      {"a 10-byte varint, high bits of the last byte set", hex("58ffffffffffffffffff7f")},
      {"enum: -1", hex("58ffffffffffffffffff01")},
      {"enum: 2^40, truncated to int32", hex("58808080808020")},
      {"bool: 2 is true", hex("1802")},
      {"bool: 2^63 is true", hex("18808080808080808080" "01")},
      {"last value wins", hex("120161120162" "5801" "5802")},
      {"repeated ids in order", hex("220161220162220161")},
      {"map: entries unsorted, duplicate key (last wins)", hex("2206" "0a017a120131" "2206" "0a0161120132" "2206" "0a017a120133")},
      {"map: entry without key or value", hex("2200" "2203" "120178" "2203" "0a0179")},
      {"map: value before key, unknown field in the entry", hex("220a" "120176" "1801" "0a016b" "2000")},
      {"map: key twice in an entry", hex("2209" "0a0161" "0a0162" "120178")},
      {"a length with a redundant zero byte", hex("12810061")},
      {"overlong tag (2 bytes)", hex("9200" "0161")},
      {"overlong tag (5 bytes)", hex("9280808000" "0161")},
      {"overlong tag (6 bytes)", hex("928080808000" "0161")},
      {"overlong length (5 bytes)", hex("12818080800061")},
      {"overlong length (6 bytes)", hex("1281808080800061")},
      {"a tag over 32 bits (5 bytes)", hex("9a80808010" "0161")},
      {"a tag over 32 bits (5 bytes, top bits set)", hex("9a8080807f" "0161")},
      {"field number 2^29-1", hex("f8ffffff0f01")},
      {"groups nested 100 deep", nested_groups(100)},
      {"groups nested 101 deep", nested_groups(101)},
      {"groups nested 99 deep in a map entry", map_entry_holding(nested_groups(99))},
      {"groups nested 100 deep in a map entry", map_entry_holding(nested_groups(100))},
  };
  for (const auto& [what, bytes] : cases) {
    INFO(what);
    check_all_read_like_protobuf(bytes);
  }
}

TEST_CASE("wire: malformed input is INVALID_ARGUMENT naming the message") {
  for (const auto& b : {hex("5880"), hex("0a0561"), hex("0001"), hex("0e"), hex("0f"), hex("1201ff"), hex("0c"), hex("0b")}) {
    INFO(crypto::hex_encode(b));
    REQUIRE_ERROR(EncryptedData::decode(b), INVALID_ARGUMENT);
    REQUIRE_ERROR(KeySolicitation::decode(b), INVALID_ARGUMENT);
    REQUIRE_ERROR(KeyFulfillment::decode(b), INVALID_ARGUMENT);
    REQUIRE_ERROR(GroupEncryptionSessions::decode(b), INVALID_ARGUMENT);
  }
  try {
    (void)KeySolicitation::decode(hex("0b"));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("KeySolicitation") != std::string::npos);
  }
}

namespace {

// Bytes that look like protobuf: tags of fields 1 to 13 (now and then another
// number), all wire types, short payloads, nested messages and groups, and now
// and then a fault (a wrong length, a cut, a bad byte).
void random_fields(Rng& rng, Bytes& out, int depth) {
  auto varint = [&](uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<uint8_t>(v));
  };
  auto pick = [&](unsigned percent) { return rng() % 100 < percent; };
  size_t fields = rng() % (depth == 0 ? 7 : 4);
  for (size_t i = 0; i < fields; ++i) {
    if (pick(2)) {  // raw noise
      size_t n = 1 + rng() % 3;
      for (size_t k = 0; k < n; ++k) out.push_back(static_cast<uint8_t>(rng()));
      continue;
    }
    uint32_t field = 1 + static_cast<uint32_t>(rng() % 13);
    if (pick(3)) field = pick(50) ? 0 : static_cast<uint32_t>(rng() % (1u << 29));
    unsigned r = static_cast<unsigned>(rng() % 100);
    uint32_t type = r < 25 ? 0 : r < 70 ? 2 : r < 77 ? 1 : r < 84 ? 5 : r < 92 ? 3 : r < 96 ? 4 : 6 + (r & 1);
    uint64_t tag = (uint64_t{field} << 3) | type;
    if (pick(2)) {  // an overlong tag
      out.push_back(static_cast<uint8_t>(tag | 0x80));
      varint(tag >> 7);
    } else {
      varint(tag);
    }
    switch (type) {
      case 0: {
        unsigned k = static_cast<unsigned>(rng() % 10);
        if (k < 5) {
          varint(rng() % 4);
        } else if (k < 8) {
          varint(rng() >> (rng() % 64));
        } else if (k < 9) {
          varint(static_cast<uint64_t>(-static_cast<int64_t>(1 + rng() % 1000)));
        } else {  // 10 or 11 bytes
          size_t n = 9 + rng() % 2;
          for (size_t k2 = 0; k2 < n; ++k2) out.push_back(static_cast<uint8_t>(rng() | 0x80));
          out.push_back(static_cast<uint8_t>(rng() % 0x80));
        }
        break;
      }
      case 1:
      case 5: {
        size_t n = type == 1 ? 8 : 4;
        for (size_t k = 0; k < n; ++k) out.push_back(static_cast<uint8_t>(rng()));
        break;
      }
      case 2: {
        Bytes body;
        unsigned k = static_cast<unsigned>(rng() % 10);
        if (k < 3 && depth < 3) {  // a nested message (a map entry, for field 4)
          random_fields(rng, body, depth + 1);
        } else if (k < 8) {
          auto s = random_utf8(rng, 5);
          body.assign(s.begin(), s.end());
        } else {
          body = random_bytes(rng, 6);
        }
        uint64_t n = body.size();
        if (pick(4)) n = n + 1 - rng() % 3;  // a wrong length
        if (pick(2)) {  // an overlong length
          out.push_back(static_cast<uint8_t>(n | 0x80));
          varint(n >> 7);
        } else {
          varint(n);
        }
        out.insert(out.end(), body.begin(), body.end());
        break;
      }
      case 3: {
        if (depth < 4) random_fields(rng, out, depth + 1);
        unsigned k = static_cast<unsigned>(rng() % 100);
        if (k < 90) {
          varint((uint64_t{field} << 3) | 4);
        } else if (k < 95) {
          varint((uint64_t{field + 1} << 3) | 4);
        }  // else left open
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace

TEST_CASE("wire: random protobuf-like bytes are read exactly when protobuf reads them") {
  // TOWNS_WIRE_SEED and TOWNS_WIRE_INPUTS run other or more inputs.
  auto env = [](const char* name, uint64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::stoull(v) : fallback;
  };
  Rng rng(env("TOWNS_WIRE_SEED", 0x70776e73));
  size_t accepted = 0;
  const auto kInputs = env("TOWNS_WIRE_INPUTS", 20000);
  for (uint64_t i = 0; i < kInputs; ++i) {
    Bytes b;
    random_fields(rng, b, 0);
    if (rng() % 20 == 0 && !b.empty()) b.resize(rng() % b.size());  // cut short
    if (rng() % 50 == 0 && !b.empty()) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    RiverEncryptedData probe;
    if (river_parses(b, probe)) ++accepted;
    check_all_read_like_protobuf(b);
  }
  // Both outcomes occur often enough to mean something.
  CHECK(accepted > kInputs / 10);
  CHECK(accepted < kInputs * 9 / 10);
}

TEST_CASE("wire: ExportedDevice and HybridGroupSessionKey encode as protobuf does") {
  ExportedDevice d;
  d.pickle_key = crypto::SecretBytes(std::string_view("a pickle key ✓"));
  d.pickled_account = crypto::SecretBytes(std::string_view("pickled account"));
  d.outbound_sessions.push_back({"out", "20aa", crypto::SecretBytes(std::string_view("pickle 1"))});
  d.inbound_sessions.push_back({"in1", "20bb", crypto::SecretBytes(std::string_view("pickle 2"))});
  d.inbound_sessions.push_back({"", "", crypto::SecretBytes()});  // every field at its default
  d.hybrid_group_sessions.push_back({"hy", "20aa", crypto::SecretBytes(Bytes{0, 1, 2, 0xff}), -1});
  d.hybrid_group_sessions.push_back({"hz", "20cc", crypto::SecretBytes(Bytes(32, 7)), INT64_MAX});
  auto bytes = d.encode();
  river::ExportedDevice r;
  REQUIRE(r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  check_same(d, r);
  CHECK(Bytes(bytes.span().begin(), bytes.span().end()) == serialize(r));
  check_same(ExportedDevice::decode(bytes.span()), r);
  CHECK(ExportedDevice{}.encode().empty());

  HybridSessionKey k;
  k.session_id = std::string(32, '\x01');
  k.stream_id = std::string("\x20\xaa\x00", 3);
  k.key = crypto::SecretBytes(Bytes(32, 9));
  k.miniblock_num = -5;
  k.miniblock_hash = std::string(32, '\xfe');
  auto kb = k.encode();
  river::HybridGroupSessionKey rk;
  REQUIRE(rk.ParseFromArray(kb.data(), static_cast<int>(kb.size())));
  check_same(k, rk);
  CHECK(Bytes(kb.span().begin(), kb.span().end()) == serialize(rk));
  check_same(HybridSessionKey::decode(kb.span()), rk);

  // A string field of ExportedDevice that is not UTF-8 is refused, as protobuf refuses it.
  Bytes bad{0x0a, 0x01, 0xff};
  river::ExportedDevice rb;
  CHECK_FALSE(river_parses(bad, rb));
  REQUIRE_ERROR(ExportedDevice::decode(bad), INVALID_ARGUMENT);
}
