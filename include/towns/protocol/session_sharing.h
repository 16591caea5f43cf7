// Sharing group sessions between devices (protocol.md section 8).
//
// Sending: the sessions' keys travel as protobuf JSON of SessionKeys inside one
// olm pre-key message per target device, gathered in a GroupEncryptionSessions
// posted to the target user's inbox.
// Receiving: only the ciphertext for our own device is read, only sessions we
// do not hold are imported, and a key that fails to import is reported, not fatal.
#pragma once

#include <string>
#include <vector>

#include "towns/error.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/messages.h"

namespace towns {

// protobuf JSON of SessionKeys ({"keys":[...]}, or {} with none).
TOWNS_API crypto::SecretBytes session_keys_json(const std::vector<crypto::SecretBytes>& keys);
// INVALID_ARGUMENT when text is not SessionKeys JSON.
TOWNS_API std::vector<crypto::SecretBytes> parse_session_keys_json(std::string_view text);

// Builds the message for one user's devices; our own device is skipped, and so is
// a device whose keys olm refuses (reported in skipped_devices).
struct SharePlan {
  GroupEncryptionSessions message;
  std::vector<std::string> skipped_devices;
};
TOWNS_API SharePlan build_group_encryption_sessions(GroupEncryptionCrypto& crypto, std::string_view stream_id,
                                                    GroupEncryptionAlgorithm algorithm,
                                                    const std::vector<GroupEncryptionSession>& sessions,
                                                    const std::vector<UserDevice>& devices);
// One message per chunk of sessions, to the same devices, built side by side;
// the same bytes as build_group_encryption_sessions chunk after chunk.
TOWNS_API std::vector<SharePlan> build_group_encryption_session_chunks(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, GroupEncryptionAlgorithm algorithm,
    const std::vector<std::vector<GroupEncryptionSession>>& chunks, const std::vector<UserDevice>& devices);

enum class ReceiveStatus {
  kImported,          // at least one missing session was imported
  kNothingMissing,    // none was imported: each listed one was held, or its key was refused (see failed)
  kNotForThisDevice,  // no ciphertext for our device key
  kUnknownAlgorithm,  // ignored
};

struct ReceiveResult {
  ReceiveStatus status = ReceiveStatus::kNothingMissing;
  std::string stream_id;                 // hex
  GroupEncryptionAlgorithm algorithm = GroupEncryptionAlgorithm::kGroupEncryption;
  std::vector<std::string> imported;     // newly held session ids
  std::vector<std::string> failed;       // listed, missing, and refused on import
};

// DECRYPTION_FAILED when our ciphertext does not decrypt; IMPORT_FAILED when
// its cleartext is not SessionKeys JSON or the key count differs from the id
// count. Nothing is imported in those cases.
TOWNS_API ReceiveResult receive_group_encryption_sessions(
    GroupEncryptionCrypto& crypto, const GroupEncryptionSessions& message);

// Several messages (an inbox backlog) with one store write for all of them
// (no store lock is held while messages are decrypted). Each entry is that message's result, or the error it
// would have raised alone; a failed message imports nothing.
using BatchReceiveResult = Outcome<ReceiveResult>;
TOWNS_API std::vector<BatchReceiveResult> receive_group_encryption_sessions_batch(
    GroupEncryptionCrypto& crypto, const std::vector<GroupEncryptionSessions>& messages);

}  // namespace towns
