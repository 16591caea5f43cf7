// The protocol's wire messages as plain values (protocol.md section 3).
//
// These are the messages that cross the library's API: the encrypted event
// (EncryptedData), the key exchange's solicitation and fulfillment, and the
// inbox message that shares group sessions. Each is a plain struct with the
// fields of the Towns protocol's message of the same name (same numbers, same
// types), and encode()/decode() to and from the protobuf wire bytes.
//
// The library has no protobuf runtime and exports no generated class: it reads
// and writes these few messages itself (lib/wire), so an application is free to
// use any protobuf version, or its own generated Towns classes, beside it. The
// codec follows protobuf's proto3 rules: fields are written in field-number
// order, a field at its default is not written unless it has presence
// (the `optional` ones here), map entries are written sorted by key with both
// key and value; on reading, unknown fields are skipped, the last value of a
// repeated scalar field wins, a `string` field must be valid UTF-8, and any
// malformed input is INVALID_ARGUMENT naming the message and the fault. Unknown
// fields are not kept: decode then encode drops them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns {

using Bytes = std::vector<uint8_t>;

// EncryptedDataVersion (open: any other value decodes and is kept as is).
enum class EncryptedDataVersion : int32_t { kVersion0 = 0, kVersion1 = 1 };

// river.EncryptedData. Field 7 is reserved upstream.
struct TOWNS_API EncryptedData {
  std::string ciphertext;                   // 1
  std::string algorithm;                    // 2
  std::string sender_key;                   // 3
  std::string session_id;                   // 4
  std::optional<std::string> checksum;      // 5
  std::optional<std::string> ref_event_id;  // 6
  Bytes ciphertext_bytes;                   // 8
  Bytes iv_bytes;                           // 9
  Bytes session_id_bytes;                   // 10
  EncryptedDataVersion version = EncryptedDataVersion::kVersion0;  // 11
  std::optional<std::string> device_key;    // 12

  Bytes encode() const;
  static EncryptedData decode(std::span<const uint8_t> bytes);
  bool operator==(const EncryptedData&) const = default;
};

// river.MemberPayload.KeySolicitation.
struct TOWNS_API KeySolicitation {
  std::string device_key;                // 1
  std::string fallback_key;              // 2
  bool is_new_device = false;            // 3
  std::vector<std::string> session_ids;  // 4

  Bytes encode() const;
  static KeySolicitation decode(std::span<const uint8_t> bytes);
  bool operator==(const KeySolicitation&) const = default;
};

// river.MemberPayload.KeyFulfillment.
struct TOWNS_API KeyFulfillment {
  Bytes user_address;                    // 1 (20 bytes: the user's address)
  std::string device_key;                // 2
  std::vector<std::string> session_ids;  // 3

  Bytes encode() const;
  static KeyFulfillment decode(std::span<const uint8_t> bytes);
  bool operator==(const KeyFulfillment&) const = default;
};

// river.UserInboxPayload.GroupEncryptionSessions.
struct TOWNS_API GroupEncryptionSessions {
  Bytes stream_id;                                // 1 (the stream id's bytes)
  std::string sender_key;                         // 2
  std::vector<std::string> session_ids;           // 3
  std::map<std::string, std::string> ciphertexts;  // 4 (device key -> olm pre-key body)
  std::string algorithm;                          // 5

  Bytes encode() const;
  static GroupEncryptionSessions decode(std::span<const uint8_t> bytes);
  bool operator==(const GroupEncryptionSessions&) const = default;
};

// river.ExportedDevice (payloads.proto): a whole device, as the client's
// exportDevice writes it. Every key and pickle is a SecretBytes (wiped when it
// goes), and so is the encoding. The field names upstream are camelCase
// (pickleKey, pickledAccount, outboundSessions, inboundSessions,
// hybridGroupSessions); the numbers are those below.
struct TOWNS_API ExportedDevice {
  struct GroupSession {
    std::string session_id;       // 1
    std::string stream_id;        // 2
    crypto::SecretBytes session;  // 3 (olm's pickle, as text)
  };
  struct HybridGroupSession {
    std::string session_id;           // 1
    std::string stream_id;            // 2
    crypto::SecretBytes session_key;  // 3 (bytes)
    int64_t miniblock_num = 0;        // 4
  };
  crypto::SecretBytes pickle_key;                          // 1 (text)
  crypto::SecretBytes pickled_account;                     // 2 (text)
  std::vector<GroupSession> outbound_sessions;             // 3
  std::vector<GroupSession> inbound_sessions;              // 4
  std::vector<HybridGroupSession> hybrid_group_sessions;   // 5

  crypto::SecretBytes encode() const;
  static ExportedDevice decode(std::span<const uint8_t> bytes);
};

}  // namespace towns
