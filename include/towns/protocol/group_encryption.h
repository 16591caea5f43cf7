// The two group algorithms (protocol.md sections 5 and 6), each as an
// encryption and a decryption class named as in the canonical client.
//
// GroupEncryption / GroupDecryption: megolm ("r.group-encryption.v1.aes-sha2").
// HybridGroupEncryption / HybridGroupDecryption: AES-256-GCM keys shared over
// olm ("grpaes").
//
// Decryption errors: GROUP_DECRYPTION_MISSING_FIELDS for a megolm event without
// sender key, session id or ciphertext; HYBRID_GROUP_DECRYPTION_MISSING_FIELDS
// for a grpaes event without sender key (empty bytes fields are refused further
// on, exactly as the client refuses them: see docs/compat.md);
// SESSION_NOT_FOUND (message contains "Session not found" / "session not
// found") when no session is held, the error that starts a key solicitation;
// GROUP_DECRYPTION_INVALID_VERSION; DECRYPTION_FAILED when the ciphertext does
// not authenticate or is damaged (the olm error's name is in the message).
// Thread-safe: they keep no state of their own beyond the EncryptionDevice,
// which is thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "towns/protocol/encryption_device.h"
#include "towns/protocol/messages.h"

namespace towns {

struct MiniblockInfo {
  int64_t miniblock_num = 0;
  std::vector<uint8_t> miniblock_hash;
};

// What the algorithms need from the host client (the client's
// IGroupEncryptionClient): sharing new sessions with the stream's devices, and
// the latest miniblock for a new hybrid session.
class TOWNS_API GroupEncryptionClient {
 public:
  virtual ~GroupEncryptionClient() = default;
  virtual void encrypt_and_share_group_sessions_to_stream(std::string_view stream_id,
                                                          const std::vector<GroupEncryptionSession>& sessions,
                                                          GroupEncryptionAlgorithm algorithm,
                                                          const std::vector<std::string>& priority_user_ids) = 0;
  virtual MiniblockInfo get_miniblock_info(std::string_view stream_id) = 0;
};

struct EnsureOutboundSessionOptions {
  // For grpaes: use this instead of asking the client.
  std::optional<MiniblockInfo> miniblock_info = std::nullopt;
  std::vector<std::string> priority_user_ids = {};
};

// A decrypted event: the payload bytes (for version 0, the UTF-8 text) and, for
// megolm, the message index (for replay checks).
struct DecryptedPayload {
  crypto::SecretBytes plaintext;
  std::optional<uint32_t> message_index;
};

class TOWNS_API GroupEncryption {
 public:
  GroupEncryption(EncryptionDevice& device, GroupEncryptionClient* client) : device_(device), client_(client) {}
  // Returns the stream's outbound session id, creating and sharing a session
  // when there is none (sharing is skipped when there is no client).
  std::string ensure_outbound_session(std::string_view stream_id, const EnsureOutboundSessionOptions& opts = {});
  bool has_outbound_session(std::string_view stream_id);
  EncryptedData encrypt(std::string_view stream_id, std::span<const uint8_t> payload);
  // Deprecated version 0: the text is encrypted as is.
  EncryptedData encrypt_deprecated_v0(std::string_view stream_id, std::string_view payload);

 private:
  void share_session(std::string_view stream_id, std::string_view session_id,
                     const std::vector<std::string>& priority_user_ids);
  EncryptionDevice& device_;
  GroupEncryptionClient* client_;
};

// Replay: every decrypted megolm message's (stream, session, index) is recorded
// in the store with a fingerprint of its ciphertext (InboundSessions). Decrypting
// the same event again is fine; a different event carrying an index already
// recorded is refused with REPLAY, for a sender never reuses an index. (The
// client declares such a map but never consults it.) The record survives restarts.
class TOWNS_API GroupDecryption {
 public:
  explicit GroupDecryption(EncryptionDevice& device) : device_(device) {}
  DecryptedPayload decrypt(std::string_view stream_id, const EncryptedData& content);
  // A backlog of one stream: each result is what decrypt() would give for that
  // event in that order (replays included); megolm sessions are decrypted side
  // by side on up to `threads` threads. Events of other algorithms are left
  // unset for the caller.
  using EventResult = Outcome<DecryptedPayload>;
  std::vector<EventResult> decrypt_batch(std::string_view stream_id, const std::vector<EncryptedData>& events,
                                         unsigned threads);
  // GROUP_DECRYPTION_MISSING_FIELDS unless sender key, session id and ciphertext are set.
  static void check_fields(const EncryptedData& content);
  void import_stream_key(std::string_view stream_id, const GroupEncryptionSession& session);
  std::optional<GroupEncryptionSession> export_group_session(std::string_view stream_id, std::string_view session_id);
  std::vector<GroupEncryptionSession> export_group_sessions();
  std::vector<std::string> export_group_session_ids(std::string_view stream_id);
  bool has_session_key(std::string_view stream_id, std::string_view session_id);

 private:
  EncryptionDevice& device_;
};

class TOWNS_API HybridGroupEncryption {
 public:
  HybridGroupEncryption(EncryptionDevice& device, GroupEncryptionClient* client) : device_(device), client_(client) {}
  // The session id (hex) of the stream's latest hybrid session, creating and
  // sharing one when there is none. INVALID_ARGUMENT when a session must be
  // created and neither opts nor a client gives the miniblock.
  std::string ensure_outbound_session(std::string_view stream_id, const EnsureOutboundSessionOptions& opts = {});
  bool has_outbound_session(std::string_view stream_id);
  // EMPTY_PAYLOAD for an empty payload.
  EncryptedData encrypt(std::string_view stream_id, std::span<const uint8_t> payload);
  EncryptedData encrypt_deprecated_v0(std::string_view stream_id, std::string_view payload);

 private:
  HybridSessionKey ensure_key(std::string_view stream_id, const EnsureOutboundSessionOptions& opts);
  EncryptedData seal(std::string_view stream_id, std::span<const uint8_t> payload, EncryptedDataVersion version);
  EncryptionDevice& device_;
  GroupEncryptionClient* client_;
};

class TOWNS_API HybridGroupDecryption {
 public:
  explicit HybridGroupDecryption(EncryptionDevice& device) : device_(device) {}
  DecryptedPayload decrypt(std::string_view stream_id, const EncryptedData& content);
  void import_stream_key(std::string_view stream_id, const GroupEncryptionSession& session);
  std::optional<GroupEncryptionSession> export_group_session(std::string_view stream_id, std::string_view session_id);
  std::vector<GroupEncryptionSession> export_group_sessions();
  std::vector<std::string> export_group_session_ids(std::string_view stream_id);
  bool has_session_key(std::string_view stream_id, std::string_view session_id);

 private:
  EncryptionDevice& device_;
};

// The payload of a decrypted event for its EncryptedData version: version 1
// megolm payloads are base64 of the bytes (DECRYPTION_FAILED when they are
// not); version 0 is the text; anything else GROUP_DECRYPTION_INVALID_VERSION.
TOWNS_API DecryptedPayload payload_for_version(int version, crypto::SecretBytes plaintext,
                                               std::optional<uint32_t> message_index, bool base64_payload);

}  // namespace towns
