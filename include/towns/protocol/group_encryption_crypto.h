// GroupEncryptionCrypto: the protocol's main interface, as in the canonical client.
//
// It owns an EncryptionDevice over the given CryptoStore and one encryption and
// one decryption object per algorithm, and offers the client's operations.
//
// Thread safety: every method may be called from several threads at once once
// init() has returned. The device serialises access to the account and to each
// store transaction; encrypting on one stream from two threads yields distinct
// message indices. init() must not race with other calls.
//
// Errors: towns::Error with the client's codes; a missing session of either
// algorithm is SESSION_NOT_FOUND. The import operations never throw for a bad
// key: they report it in their result, as the client logs and skips.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "towns/error.h"
#include "towns/protocol/group_encryption.h"

namespace towns {

struct ImportProgress {
  size_t successes = 0;
  size_t failures = 0;
  size_t total = 0;
};

struct ImportResult {
  std::vector<std::string> imported;  // session ids now held (new or kept)
  std::vector<std::string> failed;    // session ids refused
  std::vector<std::string> skipped;   // unknown algorithm or missing fields
};

class TOWNS_API GroupEncryptionCrypto {
 public:
  // client may be null: new sessions are then not shared, and a new grpaes
  // session needs its miniblock in EnsureOutboundSessionOptions.
  GroupEncryptionCrypto(GroupEncryptionClient* client, CryptoStore& store,
                        crypto::RandomSource& rng = crypto::os_random());

  void init(const DeviceInitOptions& options = {});

  // {device key: olm pre-key body} for each device (the client's
  // encryptWithDeviceKeys; it does not skip our own device).
  std::map<std::string, std::string> encrypt_with_device_keys(std::string_view payload,
                                                              const std::vector<UserDevice>& devices);
  crypto::SecretBytes decrypt_with_device_key(std::string_view ciphertext, std::string_view sender_device_key);

  std::string ensure_outbound_session(std::string_view stream_id, GroupEncryptionAlgorithm algorithm,
                                      const EnsureOutboundSessionOptions& opts = {});
  bool has_outbound_session(std::string_view stream_id, GroupEncryptionAlgorithm algorithm);
  bool has_hybrid_session(std::string_view stream_id);

  river::EncryptedData encrypt_group_event(std::string_view stream_id, std::span<const uint8_t> payload,
                                           GroupEncryptionAlgorithm algorithm);
  // Deprecated: version 0 payloads (text).
  river::EncryptedData encrypt_group_event_deprecated_v0(std::string_view stream_id, std::string_view payload,
                                                         GroupEncryptionAlgorithm algorithm);
  // GROUP_DECRYPTION_UNSET_ALGORITHM / GROUP_DECRYPTION_UNKNOWN_ALGORITHM for a
  // bad algorithm field, then the algorithm's own errors.
  DecryptedPayload decrypt_group_event(std::string_view stream_id, const river::EncryptedData& content);

  // Decrypts a batch of events of one stream (a backlog), on up to
  // parallelism() threads: megolm sessions are loaded once each and decrypted
  // side by side. Each result is exactly what decrypt_group_event would give
  // for that event in that order (replays included).
  struct EventResult {
    std::optional<DecryptedPayload> payload;
    std::optional<Error> error;
    bool has_value() const { return payload.has_value(); }
  };
  std::vector<EventResult> decrypt_group_events(std::string_view stream_id,
                                                const std::vector<river::EncryptedData>& events);

  // Threads used by the batch operations (decrypt_group_events,
  // encrypt_with_device_keys); 1 makes them sequential. Results do not depend
  // on it. Default: the number of cores.
  void set_parallelism(unsigned threads) { parallelism_ = threads == 0 ? 1 : threads; }
  unsigned parallelism() const { return parallelism_; }

  std::optional<GroupEncryptionSession> export_group_session(std::string_view stream_id, std::string_view session_id);
  std::vector<GroupEncryptionSession> export_room_keys();
  // Megolm session ids, then hybrid ones (each sorted), as the client lists them.
  std::vector<std::string> get_group_session_ids(std::string_view stream_id);
  bool has_session_key(std::string_view stream_id, std::string_view session_id, GroupEncryptionAlgorithm algorithm);

  // Imports keys for stream_id (each key's own stream id is ignored, as the
  // client does). Unknown algorithms are skipped; refused keys are reported.
  ImportResult import_session_keys(std::string_view stream_id, const std::vector<GroupEncryptionSession>& keys);
  // Imports keys under their own stream ids; a key without stream id or
  // algorithm is a failure; progress is reported after every key.
  ImportResult import_room_keys(const std::vector<GroupEncryptionSession>& keys,
                                const std::function<void(const ImportProgress&)>& progress = {});
  // The same from the JSON array the client writes ([{"streamId", "sessionId",
  // "sessionKey", "algorithm"}, ...]); INVALID_ARGUMENT when it is not such JSON.
  ImportResult import_room_keys_as_json(std::string_view json,
                                        const std::function<void(const ImportProgress&)>& progress = {});

  UserDevice get_user_device() const;
  river::ExportedDevice export_device();

  EncryptionDevice& encryption_device() { return device_; }

 private:
  bool import_one(std::string_view stream_id, const GroupEncryptionSession& key, ImportResult& result);

  EncryptionDevice device_;
  unsigned parallelism_;
  GroupEncryption megolm_encryption_;
  GroupDecryption megolm_decryption_;
  HybridGroupEncryption hybrid_encryption_;
  HybridGroupDecryption hybrid_decryption_;
};

}  // namespace towns
