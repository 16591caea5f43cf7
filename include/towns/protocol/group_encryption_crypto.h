// GroupEncryptionCrypto: the protocol's main interface, as in the canonical client.
//
// It initialises the EncryptionDelegate and owns (or, with the second
// constructor, uses) an EncryptionDevice over the given CryptoStore, plus one
// encryption and one decryption object per algorithm, and offers the client's
// operations and what session sharing and the key exchange need. It hands out
// none of its parts: callers ask for operations.
//
// Thread safety: every method may be called from several threads at once once
// init() has returned (the lock order is in docs/design.md; no caller code runs
// under a lock, and the GroupEncryptionClient is called with no lock held);
// encrypting on one stream from two threads yields distinct message indices.
// init() must not race with other calls.
//
// Errors: towns::Error with the client's codes; a missing session of either
// algorithm is SESSION_NOT_FOUND. The import operations never throw for a bad
// key: they report it in their result, as the client logs and skips.
#pragma once

#include <atomic>
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
                        crypto::RandomSource& rng = crypto::os_random(),
                        EncryptionDelegate& delegate = olm_encryption_delegate());
  // Uses a device the caller owns (and may use directly, as tests do).
  GroupEncryptionCrypto(GroupEncryptionClient* client, EncryptionDevice& device);

  void init(const DeviceInitOptions& options = {});

  // {device key: olm pre-key body} for each device (the client's
  // encryptWithDeviceKeys; it does not skip our own device).
  std::map<std::string, std::string> encrypt_with_device_keys(std::string_view payload,
                                                              const std::vector<UserDevice>& devices);
  crypto::SecretBytes decrypt_with_device_key(std::string_view ciphertext, std::string_view sender_device_key);
  // The same per device, a refused device getting its error instead of failing
  // the call (session sharing). Results do not depend on parallelism().
  std::vector<DeviceCiphertext> encrypt_to_devices(std::string_view payload, const std::vector<UserDevice>& devices);
  // Several payloads, each to every device (result[payload][device]), side by
  // side; the same bytes as that many encrypt_to_devices calls in a row.
  std::vector<std::vector<DeviceCiphertext>> encrypt_each_to_devices(const std::vector<std::string_view>& payloads,
                                                                     const std::vector<UserDevice>& devices);
  // decrypt_with_device_key for each (ciphertext, sender device key), side by
  // side; each its plaintext or the error that call would have thrown.
  std::vector<Outcome<crypto::SecretBytes>> decrypt_with_device_keys(
      const std::vector<std::pair<std::string_view, std::string_view>>& ciphertext_and_sender);

  std::string ensure_outbound_session(std::string_view stream_id, GroupEncryptionAlgorithm algorithm,
                                      const EnsureOutboundSessionOptions& opts = {});
  bool has_outbound_session(std::string_view stream_id, GroupEncryptionAlgorithm algorithm);
  bool has_hybrid_session(std::string_view stream_id);

  EncryptedData encrypt_group_event(std::string_view stream_id, std::span<const uint8_t> payload,
                                           GroupEncryptionAlgorithm algorithm);
  // Deprecated: version 0 payloads (text).
  EncryptedData encrypt_group_event_deprecated_v0(std::string_view stream_id, std::string_view payload,
                                                         GroupEncryptionAlgorithm algorithm);
  // GROUP_DECRYPTION_UNSET_ALGORITHM / GROUP_DECRYPTION_UNKNOWN_ALGORITHM for a
  // bad algorithm field, then the algorithm's own errors.
  DecryptedPayload decrypt_group_event(std::string_view stream_id, const EncryptedData& content);

  // Decrypts a batch of events of one stream (a backlog), on up to
  // parallelism() threads: megolm sessions are loaded once each and decrypted
  // side by side. Each result is exactly what decrypt_group_event would give
  // for that event in that order (replays included).
  using EventResult = GroupDecryption::EventResult;
  std::vector<EventResult> decrypt_group_events(std::string_view stream_id,
                                                const std::vector<EncryptedData>& events);

  // Threads used by the batch operations (decrypt_group_events,
  // encrypt_with_device_keys); 1 makes them sequential. Results do not depend
  // on it. Default: the number of cores.
  void set_parallelism(unsigned threads) { parallelism_.store(threads == 0 ? 1 : threads); }
  unsigned parallelism() const { return parallelism_.load(); }

  std::optional<GroupEncryptionSession> export_group_session(std::string_view stream_id, std::string_view session_id);
  // export_group_session for each id, in order, leaving out the ids not held;
  // megolm sessions are loaded side by side on parallelism() threads.
  std::vector<GroupEncryptionSession> export_group_sessions(std::string_view stream_id,
                                                            const std::vector<std::string>& session_ids);
  std::vector<GroupEncryptionSession> export_room_keys();
  // Megolm session ids, then hybrid ones (each sorted), as the client lists them.
  std::vector<std::string> get_group_session_ids(std::string_view stream_id);
  // The session ids of one algorithm held for the stream, sorted.
  std::vector<std::string> group_session_ids(std::string_view stream_id, GroupEncryptionAlgorithm algorithm);
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

  // Keys of either algorithm in one store write (session sharing's batches):
  // per key its outcome or error, as EncryptionDevice::import_sessions.
  std::vector<EncryptionDevice::ImportResult> import_sessions(const std::vector<SessionImport>& keys);

  UserDevice get_user_device() const;
  // The binary ExportedDevice protobuf.
  crypto::SecretBytes export_device();

 private:
  // Imports keys (stream ids already decided) in one write; fills result and
  // calls on_key(i, imported) for every key the algorithm of which is known.
  void import_keys(const std::vector<GroupEncryptionSession>& keys, const std::vector<std::string_view>& stream_ids,
                   ImportResult& result, const std::function<void(size_t, bool)>& on_key);

  std::unique_ptr<EncryptionDevice> owned_device_;
  EncryptionDevice& device_;
  std::atomic<unsigned> parallelism_;
  GroupEncryption megolm_encryption_;
  GroupDecryption megolm_decryption_;
  HybridGroupEncryption hybrid_encryption_;
  HybridGroupDecryption hybrid_decryption_;
};

}  // namespace towns
