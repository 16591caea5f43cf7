// The internal river messages' codecs (wire_messages.h), over lib/wire.
#include "protocol/wire_messages.h"

#include "wire/wire.h"

namespace towns::wire {

namespace {

using Out = std::vector<uint8_t>;

// The occurrences of one oneof member, as protobuf merges them: each must be a
// message on its own (protobuf parses each alone), and together they read as
// their concatenation (protobuf's merge of proto3 messages without nested
// messages: a later set scalar wins, repeated fields and map entries append).
struct OneofMember {
  uint32_t field = 0;  // the member last seen (0: none)
  Out bytes;

  template <typename Decode>
  void add(uint32_t f, std::span<const uint8_t> b, Decode&& decode) {
    (void)decode(b);  // throws when this occurrence alone is malformed
    if (f != field) bytes.clear();
    field = f;
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
};

}  // namespace

Bytes MemberPayload::encode() const {
  Out out;
  Writer w(out);
  // A oneof member is written when set, even when empty.
  if (key_solicitation) w.bytes(2, std::span<const uint8_t>(key_solicitation->encode()));
  if (key_fulfillment) w.bytes(3, std::span<const uint8_t>(key_fulfillment->encode()));
  return out;
}

MemberPayload MemberPayload::decode(std::span<const uint8_t> bytes) {
  OneofMember content;
  read_fields(bytes, "MemberPayload", [&](Reader& r, uint32_t field, WireType type) {
    if (type != kLengthDelimited || (field != 2 && field != 3)) return false;
    if (field == 2) {
      content.add(field, r.bytes(), [](auto b) { return decode_key_solicitation(b, 1); });
    } else {
      content.add(field, r.bytes(), [](auto b) { return decode_key_fulfillment(b, 1); });
    }
    return true;
  });
  MemberPayload m;
  if (content.field == 2) m.key_solicitation = decode_key_solicitation(content.bytes, 1);
  if (content.field == 3) m.key_fulfillment = decode_key_fulfillment(content.bytes, 1);
  return m;
}

Bytes UserInboxPayload::encode() const {
  Out out;
  Writer w(out);
  if (group_encryption_sessions) w.bytes(3, std::span<const uint8_t>(group_encryption_sessions->encode()));
  return out;
}

UserInboxPayload UserInboxPayload::decode(std::span<const uint8_t> bytes) {
  OneofMember content;
  read_fields(bytes, "UserInboxPayload", [&](Reader& r, uint32_t field, WireType type) {
    if (type != kLengthDelimited || field != 3) return false;
    content.add(field, r.bytes(), [](auto b) { return decode_group_encryption_sessions(b, 1); });
    return true;
  });
  UserInboxPayload m;
  if (content.field == 3) m.group_encryption_sessions = decode_group_encryption_sessions(content.bytes, 1);
  return m;
}

Bytes EncryptionDeviceMessage::encode() const {
  Out out;
  Writer w(out);
  w.bytes_if_set(1, device_key);
  w.bytes_if_set(2, fallback_key);
  return out;
}

EncryptionDeviceMessage EncryptionDeviceMessage::decode(std::span<const uint8_t> bytes) {
  EncryptionDeviceMessage m;
  read_fields(bytes, "EncryptionDevice", [&](Reader& r, uint32_t field, WireType type) {
    if (type != kLengthDelimited) return false;
    switch (field) {
      case 1: m.device_key = r.utf8(); return true;
      case 2: m.fallback_key = r.utf8(); return true;
      default: return false;
    }
  });
  return m;
}

Bytes SessionKeysMessage::encode() const {
  Out out;
  Writer w(out);
  for (const auto& k : keys) w.bytes(1, k);
  return out;
}

SessionKeysMessage SessionKeysMessage::decode(std::span<const uint8_t> bytes) {
  SessionKeysMessage m;
  read_fields(bytes, "SessionKeys", [&](Reader& r, uint32_t field, WireType type) {
    if (type != kLengthDelimited || field != 1) return false;
    m.keys.emplace_back(r.utf8());
    return true;
  });
  return m;
}

}  // namespace towns::wire
