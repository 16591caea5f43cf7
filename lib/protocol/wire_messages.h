// The other river messages the library reads and writes (internal), over
// lib/wire, with the rules of messages.h: the wrappers that carry the public
// messages (MemberPayload, UserInboxPayload), the published device
// (UserMetadataPayload.EncryptionDevice) and the binary SessionKeys. The vector
// verifier (lib/vectors) checks protobuf.json with them; test_vectors holds them
// against protobuf's generated classes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "towns/protocol/messages.h"

namespace towns::wire {

// The public messages' decoders at a nesting depth (how many messages the bytes
// are nested in; 0 is what Message::decode does).
KeySolicitation decode_key_solicitation(std::span<const uint8_t> bytes, int depth);
KeyFulfillment decode_key_fulfillment(std::span<const uint8_t> bytes, int depth);
GroupEncryptionSessions decode_group_encryption_sessions(std::span<const uint8_t> bytes, int depth);

// river.MemberPayload, the part of its oneof content the protocol uses: at most
// one of the two is set. As protobuf reads a oneof: the last member seen wins,
// and several occurrences of the same member merge.
struct MemberPayload {
  std::optional<KeySolicitation> key_solicitation;  // 2
  std::optional<KeyFulfillment> key_fulfillment;    // 3

  Bytes encode() const;
  static MemberPayload decode(std::span<const uint8_t> bytes);
};

// river.UserInboxPayload, its oneof content's group_encryption_sessions.
struct UserInboxPayload {
  std::optional<GroupEncryptionSessions> group_encryption_sessions;  // 3

  Bytes encode() const;
  static UserInboxPayload decode(std::span<const uint8_t> bytes);
};

// river.UserMetadataPayload.EncryptionDevice: a device as it is published.
struct EncryptionDeviceMessage {
  std::string device_key;    // 1
  std::string fallback_key;  // 2

  Bytes encode() const;
  static EncryptionDeviceMessage decode(std::span<const uint8_t> bytes);
};

// river.SessionKeys in its binary form (the protocol sends its JSON form:
// session_sharing.h).
struct SessionKeysMessage {
  std::vector<std::string> keys;  // 1

  Bytes encode() const;
  static SessionKeysMessage decode(std::span<const uint8_t> bytes);
};

}  // namespace towns::wire
