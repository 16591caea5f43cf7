// EncryptionDevice: one device's keys and sessions (protocol.md sections 4 to 7).
//
// It owns the olm account and keeps every session in a CryptoStore, as the
// canonical client's EncryptionDevice does, with these differences, each made
// for safety:
// - A stored account that does not unpickle (wrong pickle key, damage) is an
//   error. (The client silently creates a new account and overwrites it.)
// - Importing an ExportedDevice unpickles every object first and re-pickles it
//   under this device's pickle key, all in one store transaction: a damaged
//   export changes nothing, and the store stays readable with one key.
// - Outbound megolm ratchets are reserved in blocks: before the first index of a
//   block is used, the store records (in one transaction) that every index below
//   the block's end may be in use. A device that loads the session (after a
//   crash, or in a second process) advances it past that point first. So no
//   index is ever used twice, while the store is written once per block instead
//   of once per message; a crash skips at most a block of indices, which
//   receivers accept.
// - Unpickled sessions are cached in memory (outbound per stream, inbound and
//   hybrid keys per session); every write through this device keeps the caches
//   right. Another process writing the same store is seen by the outbound
//   sessions at their next reservation block, but sessions it imports that this
//   device has cached in an older form are seen only after a restart (one device
//   per process is the supported shape; two processes never reuse an index).
//
// Thread-safe: operations are serialised by an internal mutex; the store is
// thread-safe itself. Errors are towns::Error with the codes named per method.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "towns/crypto/random.h"
#include "towns/crypto/secret.h"
#include "towns/error.h"
#include "towns/olm/olm.h"
#include "towns/protocol/types.h"
#include "towns/proto/payloads.pb.h"
#include "towns/store/crypto_store.h"

namespace towns {

struct DeviceInitOptions {
  // The key that protects every pickle; kDefaultPickleKey when not given.
  std::optional<crypto::SecretBytes> pickle_key = std::nullopt;
  // Recreate the device from an export (its pickles are read with its own
  // pickleKey and stored under pickle_key).
  const river::ExportedDevice* from_exported_device = nullptr;
};

struct OutboundGroupSessionKey {
  uint32_t chain_index = 0;
  crypto::SecretBytes key;
  std::string session_id;
};

struct GroupCiphertext {
  std::string ciphertext;
  std::string session_id;
  uint32_t message_index = 0;
};

enum class ImportOutcome { kImported, kKeptExisting };

class TOWNS_API EncryptionDevice {
 public:
  explicit EncryptionDevice(CryptoStore& store, crypto::RandomSource& rng = crypto::os_random());
  ~EncryptionDevice();

  // Loads the account from the store or creates (and stores) one; generates a
  // fallback key when none is unpublished. OLM_BAD_ACCOUNT_KEY when the stored
  // account does not open with the pickle key; IMPORT_FAILED for a damaged export.
  void init(const DeviceInitOptions& options = {});
  bool initialized() const;

  // The curve25519 identity key ("the device key") and the current fallback key.
  // NOT_INITIALIZED before init().
  std::string device_key() const;
  std::string fallback_key() const;
  std::string ed25519_key() const;
  UserDevice user_device() const;
  const crypto::SecretBytes& pickle_key() const { return pickle_key_; }

  std::string sign(std::string_view message);
  // OLM_BAD_MESSAGE_MAC when the signature does not verify.
  void verify_signature(std::string_view ed25519_key, std::string_view message, std::string_view signature) const;
  void mark_keys_as_published();
  void forget_old_fallback_key();

  // ---- olm device-to-device (section 7)
  // A pre-key message from a fresh outbound session to (identity key, fallback
  // key). PAYLOAD_TOO_LARGE; OLM_* for bad keys.
  olm::OlmMessage encrypt_using_fallback_key(std::string_view their_identity_key, std::string_view their_fallback_key,
                                             std::string_view payload);
  // Only pre-key messages (type 0). INVALID_ARGUMENT for another type,
  // PAYLOAD_TOO_LARGE, DECRYPTION_FAILED when olm refuses the message.
  crypto::SecretBytes decrypt_message(std::string_view ciphertext, std::string_view their_identity_key,
                                      size_t message_type = 0);

  // ---- megolm outbound (section 5)
  // Creates (replacing any) the stream's outbound session and stores its inbound
  // counterpart from index 0; returns the session id.
  std::string create_outbound_group_session(std::string_view stream_id);
  // The stream's outbound session id, creating one (as above) only when there is
  // none; atomic, so concurrent callers agree on one session. created tells
  // whether this call made it (and so whether it must be shared).
  struct EnsuredSession {
    std::string session_id;
    bool created = false;
  };
  EnsuredSession ensure_outbound_group_session(std::string_view stream_id);
  std::optional<OutboundGroupSessionKey> outbound_group_session_key(std::string_view stream_id);
  // Encrypts payload (already the string the algorithm version calls for) with
  // the stream's outbound session. PAYLOAD_TOO_LARGE; SESSION_NOT_FOUND when the
  // stream has no outbound session.
  GroupCiphertext encrypt_group_message(std::string_view payload, std::string_view stream_id);

  // ---- megolm inbound
  // Import of a session key in either libolm format. IMPORT_FAILED when the key
  // is not a session key or its id is not session_id. Keeps an existing session
  // whose first known index is lower or equal.
  ImportOutcome add_inbound_group_session(std::string_view stream_id, std::string_view session_id,
                                          crypto::SecretView session_key);
  std::optional<olm::InboundGroupSession> inbound_group_session(std::string_view stream_id,
                                                                std::string_view session_id);
  bool has_inbound_session_keys(std::string_view stream_id, std::string_view session_id);
  std::optional<GroupEncryptionSession> export_inbound_group_session(std::string_view stream_id,
                                                                     std::string_view session_id);
  std::vector<GroupEncryptionSession> export_inbound_group_sessions();
  std::vector<std::string> inbound_group_session_ids(std::string_view stream_id);

  // ---- hybrid (section 6)
  // INVALID_ARGUMENT when stream_id is not hex.
  river::HybridGroupSessionKey create_hybrid_group_session(std::string_view stream_id, int64_t miniblock_num,
                                                           std::span<const uint8_t> miniblock_hash);
  // The stream's latest hybrid session, creating one from the miniblock only when
  // the stream has none; atomic like ensure_outbound_group_session.
  river::HybridGroupSessionKey ensure_hybrid_group_session(std::string_view stream_id, int64_t miniblock_num,
                                                           std::span<const uint8_t> miniblock_hash, bool& created);
  // The stream's session with the highest miniblock number.
  std::optional<river::HybridGroupSessionKey> hybrid_group_session_key_for_stream(std::string_view stream_id);
  std::optional<river::HybridGroupSessionKey> hybrid_group_session_key(std::string_view stream_id,
                                                                       std::string_view session_id);
  // session_key_hex: hex of the binary HybridGroupSessionKey. IMPORT_FAILED when
  // it does not parse or its stream id, session id or hash do not match.
  void add_hybrid_group_session(std::string_view stream_id, std::string_view session_id,
                                std::string_view session_key_hex);
  bool has_hybrid_group_session_key(std::string_view stream_id, std::string_view session_id);
  std::optional<GroupEncryptionSession> export_hybrid_group_session(std::string_view stream_id,
                                                                    std::string_view session_id);
  std::vector<GroupEncryptionSession> export_hybrid_group_sessions();
  std::vector<std::string> hybrid_group_session_ids(std::string_view stream_id);

  // One pre-key message per device (as encrypt_using_fallback_key), on up to
  // `threads` threads. Each device's randomness is drawn from this device's
  // source in device order before the work is split, so the result does not
  // depend on the thread count. A device whose keys olm refuses gets its error.
  struct DeviceCiphertext {
    std::optional<olm::OlmMessage> message;
    std::optional<Error> error;
  };
  std::vector<DeviceCiphertext> encrypt_to_devices(std::string_view payload, const std::vector<UserDevice>& devices,
                                                   unsigned threads);

  // Runs fn on the stream's inbound session, unpickled once and cached; false
  // when the session is not held. Calls on one session are serialised.
  bool with_inbound_group_session(std::string_view stream_id, std::string_view session_id,
                                  const std::function<void(olm::InboundGroupSession&)>& fn);

  // Indices reserved per store write (see above).
  static constexpr uint32_t kOutboundReservation = 100;

  // ---- whole device
  // Outbound sessions are exported advanced to their reserved index, so that the
  // exported device never reuses an index this one may have used.
  river::ExportedDevice export_device();

  CryptoStore& store() { return store_; }
  crypto::RandomSource& random() { return rng_; }

 private:
  olm::Account& account();  // NOT_INITIALIZED before init
  void save_account();
  struct OutboundState {
    olm::OutboundGroupSession session;
    uint32_t reserved_until = 0;
  };
  OutboundState& outbound_state(std::string_view stream_id);
  void reserve_block(std::string_view stream_id, OutboundState& state);
  void clear_caches();
  struct CachedInbound {
    std::mutex mu;
    olm::InboundGroupSession session;
  };
  void import_exported_device(const river::ExportedDevice& exported);
  void refresh_fallback_key();

  CryptoStore& store_;
  crypto::RandomSource& rng_;
  mutable std::recursive_mutex mu_;
  crypto::SecretBytes pickle_key_;
  std::optional<olm::Account> account_;
  std::string device_key_;
  std::string ed25519_key_;
  std::string fallback_key_;

  std::map<std::string, OutboundState, std::less<>> outbound_cache_;  // under mu_
  std::mutex cache_mu_;  // the two caches below
  std::map<std::string, std::shared_ptr<CachedInbound>> inbound_cache_;
  std::map<std::string, river::HybridGroupSessionKey> hybrid_cache_;  // "id|stream|id", "latest|stream"
};

// SHA-256("RVR_HSK:" || stream_id || key || u64_be(miniblock_num) || miniblock_hash).
TOWNS_API std::array<uint8_t, 32> hybrid_session_key_hash(std::span<const uint8_t> stream_id,
                                                          std::span<const uint8_t> key, int64_t miniblock_num,
                                                          std::span<const uint8_t> miniblock_hash);

}  // namespace towns
