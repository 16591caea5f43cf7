// EncryptionDevice: one device's keys and sessions (docs/protocol.md sections 4
// to 7), in parts with one job each:
//   DeviceAccount     the olm account and the olm device-to-device messages
//   OutboundSessions  megolm outbound sessions, with index reservation
//   InboundSessions   megolm inbound sessions, their cache and the replay record
//   HybridSessions    grpaes session keys and their cache
// and, on the device itself, init, the whole-device export and import, and
// imports of shared session keys of both algorithms in one store write.
//
// Every part encrypts and decrypts with the EncryptionDelegate (the only code
// that knows libolm) and keeps what it must in the CryptoStore, handing the
// store a batch of changes (save_changes) rather than running code under its
// lock. Each part owns its lock; the order in which they may be taken is
// written in towns/detail_sync.h and docs/design.md.
//
// Differences from the canonical client, each made for safety (docs/compat.md):
// - A stored account that does not unpickle is an error (the client silently
//   creates a new account); an empty pickle key is refused.
// - Importing an ExportedDevice unpickles every object first and re-pickles it
//   under this device's pickle key, in one store write: a damaged export
//   changes nothing.
// - Outbound megolm ratchets are reserved in blocks: before the first index of
//   a block is used, the store records that every index below the block's end
//   may be in use. A device that loads the session (after a crash, or in a
//   second process) advances past that point first, so no index is used twice.
// - A decrypted megolm event's (session, index) is recorded in the store with a
//   fingerprint; another event at a recorded index is REPLAY (docs/security.md).
//
// Caches: unpickled sessions and hybrid keys are cached; a cache is trusted only
// while the store's data_version() is unchanged, so a second process's imports
// and new sessions are seen at the next call.
//
// Thread-safe once init() has returned; init() must not race with other calls.
// Errors are towns::Error with the codes named per method.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "towns/crypto/random.h"
#include "towns/crypto/secret.h"
#include "towns/detail_sync.h"
#include "towns/error.h"
#include "towns/protocol/encryption_delegate.h"
#include "towns/protocol/types.h"
#include "towns/store/crypto_store.h"


namespace towns {

// What every part of one device shares. The pickle key is set by
// EncryptionDevice::init and not changed afterwards.
struct DeviceContext {
  CryptoStore& store;
  crypto::RandomSource& rng;
  EncryptionDelegate& delegate;
  crypto::SecretBytes pickle_key;
};

// A grpaes session key (the fields of the binary HybridGroupSessionKey), owning
// and wiping its AES key.
struct TOWNS_API HybridSessionKey {
  std::string stream_id;       // raw bytes
  std::string session_id;      // raw 32 bytes
  crypto::SecretBytes key;     // the AES-256 key
  int64_t miniblock_num = 0;
  std::string miniblock_hash;  // raw bytes

  std::string session_id_hex() const;
  std::string stream_id_hex() const;
  // The binary HybridGroupSessionKey protobuf.
  crypto::SecretBytes encode() const;
  // IMPORT_FAILED when bytes are not a HybridGroupSessionKey.
  static HybridSessionKey decode(std::span<const uint8_t> bytes);
};

// One device's result of a fan-out: its pre-key message, or why olm refused it.
using DeviceCiphertext = Outcome<PreKeyMessage>;

class TOWNS_API DeviceAccount {
 public:
  explicit DeviceAccount(DeviceContext& ctx) : ctx_(ctx) {}

  bool initialized() const;
  // NOT_INITIALIZED before init.
  std::string device_key() const;
  std::string fallback_key() const;
  std::string ed25519_key() const;
  UserDevice user_device() const;
  std::string sign(std::string_view message) const;
  void mark_keys_as_published();
  void forget_old_fallback_key();

  // One pre-key message per device, on up to `threads` threads. Each device's
  // randomness is drawn from the device's source in device order first, so the
  // result does not depend on the thread count. PAYLOAD_TOO_LARGE (for all);
  // a device whose keys olm refuses gets its error.
  std::vector<DeviceCiphertext> encrypt_to_devices(std::string_view payload, const std::vector<UserDevice>& devices,
                                                   unsigned threads) const;
  // Several payloads, each to every device: result[p][d]. Randomness is drawn
  // payload by payload, device by device, as that many encrypt_to_devices
  // calls in a row would draw it, so the result is theirs whatever the threads.
  std::vector<std::vector<DeviceCiphertext>> encrypt_each_to_devices(const std::vector<std::string_view>& payloads,
                                                                     const std::vector<UserDevice>& devices,
                                                                     unsigned threads) const;
  // PAYLOAD_TOO_LARGE; DECRYPTION_FAILED when olm refuses the message.
  crypto::SecretBytes decrypt_prekey_message(std::string_view ciphertext, std::string_view their_identity_key);
  // decrypt_prekey_message for each (ciphertext, sender identity key), on up
  // to `threads` threads (with fallback keys, decrypting leaves the account
  // as it was, so the threads share it); each its plaintext or its error.
  std::vector<Outcome<crypto::SecretBytes>> decrypt_prekey_messages(
      const std::vector<std::pair<std::string_view, std::string_view>>& messages, unsigned threads);

 private:
  friend class EncryptionDevice;
  // Loads the stored account or creates one; makes a fallback key when none is
  // unpublished. OLM_BAD_ACCOUNT_KEY when the stored one does not open.
  void load_or_create() TOWNS_EXCLUDES(mu_);
  // Takes over an account (the import has already stored it).
  void adopt(std::unique_ptr<DelegateAccount> account) TOWNS_EXCLUDES(mu_);
  std::string pickle() const TOWNS_EXCLUDES(mu_);
  void set_account(std::unique_ptr<DelegateAccount> account) TOWNS_REQUIRES(mu_);
  void save() TOWNS_REQUIRES(mu_);
  DelegateAccount& account() const TOWNS_REQUIRES(mu_);

  DeviceContext& ctx_;
  mutable Mutex mu_;
  std::unique_ptr<DelegateAccount> account_ TOWNS_GUARDED_BY(mu_);
  std::string device_key_ TOWNS_GUARDED_BY(mu_);
  std::string ed25519_key_ TOWNS_GUARDED_BY(mu_);
  std::string fallback_key_ TOWNS_GUARDED_BY(mu_);
};

class InboundSessions;

// The stream's outbound session key at its current index (what a receiver
// needs to decrypt from there on).
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

struct EnsuredSession {
  std::string session_id;
  bool created = false;  // this call made it (so it must be shared)
};

class TOWNS_API OutboundSessions {
 public:
  OutboundSessions(DeviceContext& ctx, InboundSessions& inbound) : ctx_(ctx), inbound_(inbound) {}
  ~OutboundSessions();

  // Creates (replacing any) the stream's outbound session and stores its
  // inbound counterpart from index 0, in one store write; returns the id.
  std::string create(std::string_view stream_id);
  // The stream's session id, creating one only when there is none (also
  // across processes: the store write is conditional). A stored session that
  // does not unpickle is STORE_CORRUPT here and below, and nothing is created
  // or written: the client would silently make and share a new session
  // (docs/compat.md); a host that wants that deletes the row first.
  EnsuredSession ensure(std::string_view stream_id);
  std::optional<OutboundGroupSessionKey> session_key(std::string_view stream_id);
  // Encrypts with the stream's session. PAYLOAD_TOO_LARGE; SESSION_NOT_FOUND
  // when the stream has none; STORE_CORRUPT when the stored session does not
  // unpickle or its reservation is beyond what the session could have reached.
  GroupCiphertext encrypt(std::string_view payload, std::string_view stream_id);

  // Indices reserved per store write.
  static constexpr uint32_t kReservation = 100;

 private:
  friend class EncryptionDevice;
  struct Entry;
  std::shared_ptr<Entry> entry(std::string_view stream_id) TOWNS_EXCLUDES(mu_);
  // A new session for the stream and what storing it writes (the session and
  // its inbound counterpart from index 0); install() stores it (false when a
  // condition added to its changes does not hold) and caches it.
  struct Fresh {
    std::shared_ptr<Entry> entry;
    std::string session_id;
    StoreChanges changes;
  };
  Fresh fresh_session(std::string_view stream_id);
  bool install(std::string_view stream_id, Fresh& fresh) TOWNS_EXCLUDES(mu_);
  void reserve_block(std::string_view stream_id, Entry& e);
  // Pickles of every outbound session advanced to its reserved end (export).
  std::vector<GroupSessionRecord> export_records() TOWNS_EXCLUDES(mu_);
  void clear() TOWNS_EXCLUDES(mu_);

  DeviceContext& ctx_;
  InboundSessions& inbound_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> entries_ TOWNS_GUARDED_BY(mu_);
  uint64_t data_version_ TOWNS_GUARDED_BY(mu_) = 0;
};

// The outcome of one prepared import.
enum class ImportOutcome { kImported, kKeptExisting };

class TOWNS_API InboundSessions {
 public:
  explicit InboundSessions(DeviceContext& ctx) : ctx_(ctx) {}
  ~InboundSessions();

  bool has(std::string_view stream_id, std::string_view session_id);
  std::vector<std::string> ids(std::string_view stream_id);
  // The key in libolm's export format at the first known index.
  std::optional<GroupEncryptionSession> export_session(std::string_view stream_id, std::string_view session_id);
  std::vector<GroupEncryptionSession> export_all();
  // export_session for each id, in order (nullopt where none is held), on up
  // to `threads` threads: sessions not in the cache are read in one pass and
  // unpickled side by side, then cached unless an import or delete came
  // between. The first STORE_CORRUPT in id order is thrown, as the one-by-one
  // loop would.
  std::vector<std::optional<GroupEncryptionSession>> export_sessions(std::string_view stream_id,
                                                                     const std::vector<std::string>& session_ids,
                                                                     unsigned threads);
  // The first index the held session can decrypt.
  std::optional<uint32_t> first_known_index(std::string_view stream_id, std::string_view session_id);

  // Decrypts a megolm message with the held session (SESSION_NOT_FOUND when
  // none; DECRYPTION_FAILED with the olm error's name in the message); then
  // records (stream, session, index) with the event's fingerprint: REPLAY when
  // another event was decrypted at that index. STORE_CORRUPT when the stored
  // session does not unpickle (as everywhere a stored session is read).
  GroupPlaintext decrypt(std::string_view stream_id, std::string_view session_id, std::string_view ciphertext);
  // Many messages of one stream: each session is unpickled once, sessions are
  // decrypted side by side on up to `threads` threads, and the replay record is
  // written once for the batch, in input order. Each result is what decrypt()
  // would have given in that order.
  using Result = Outcome<GroupPlaintext>;
  std::vector<Result> decrypt_batch(std::string_view stream_id,
                                    const std::vector<std::pair<std::string, std::string>>& session_and_ciphertext,
                                    unsigned threads);

  // The event's fingerprint in the replay record.
  static std::array<uint8_t, 16> fingerprint(std::string_view ciphertext);

 private:
  friend class EncryptionDevice;
  friend class OutboundSessions;
  struct Entry;
  struct Key {
    std::string stream_id, session_id;
    auto operator<=>(const Key&) const = default;
  };
  std::shared_ptr<Entry> entry(std::string_view stream_id, std::string_view session_id) TOWNS_EXCLUDES(cache_mu_);
  void forget(std::string_view stream_id, std::string_view session_id) TOWNS_EXCLUDES(cache_mu_);
  void refresh_if_stale() TOWNS_REQUIRES(cache_mu_);
  void insert_evicting(Key key, std::shared_ptr<Entry> e) TOWNS_REQUIRES(cache_mu_);
  void clear() TOWNS_EXCLUDES(cache_mu_);
  GroupPlaintext decrypt_with(Entry& e, std::string_view ciphertext);
  // A stored row's session; STORE_CORRUPT when its pickle does not open.
  std::unique_ptr<DelegateInboundGroupSession> unpickle_stored(const std::string& stream_id,
                                                               const std::string& session_id,
                                                               const std::string& pickle) const;

  // The cache keeps at most this many unpickled sessions (least recently used
  // go first; destroying one wipes it).
  static constexpr size_t kCacheSize = 4096;

  DeviceContext& ctx_;
  Mutex cache_mu_;
  std::map<Key, std::shared_ptr<Entry>> cache_ TOWNS_GUARDED_BY(cache_mu_);
  uint64_t use_counter_ TOWNS_GUARDED_BY(cache_mu_) = 0;
  uint64_t data_version_ TOWNS_GUARDED_BY(cache_mu_) = 0;
};

class TOWNS_API HybridSessions {
 public:
  explicit HybridSessions(DeviceContext& ctx) : ctx_(ctx) {}

  // Creates and stores a session from the miniblock. INVALID_ARGUMENT when
  // stream_id is not hex.
  HybridSessionKey create(std::string_view stream_id, int64_t miniblock_num, std::span<const uint8_t> miniblock_hash);
  // The stream's latest session, creating one from the miniblock only when the
  // stream has none; created tells whether this call made it.
  struct Ensured {
    HybridSessionKey key;
    bool created = false;
  };
  Ensured ensure(std::string_view stream_id, int64_t miniblock_num, std::span<const uint8_t> miniblock_hash);
  // The stream's session with the highest miniblock number (on a tie, the
  // lowest session id).
  std::optional<HybridSessionKey> latest(std::string_view stream_id);
  std::optional<HybridSessionKey> get(std::string_view stream_id, std::string_view session_id);
  bool has(std::string_view stream_id, std::string_view session_id);
  std::vector<std::string> ids(std::string_view stream_id);
  // session_key: hex of the binary HybridGroupSessionKey.
  std::optional<GroupEncryptionSession> export_session(std::string_view stream_id, std::string_view session_id);
  std::vector<GroupEncryptionSession> export_all();

  // AES-256-GCM under the session's key with a fresh 12-byte IV from the
  // device's random source; no associated data; the tag is appended.
  struct Sealed {
    std::string iv;
    std::string ciphertext;
  };
  Sealed encrypt(const HybridSessionKey& key, std::span<const uint8_t> plaintext);
  // DECRYPTION_FAILED for an IV that is not 12 bytes, a ciphertext shorter than
  // the tag plus one byte, or one that does not authenticate.
  static crypto::SecretBytes decrypt(const HybridSessionKey& key, std::span<const uint8_t> iv,
                                     std::span<const uint8_t> ciphertext);

  // Parses and checks a shared key for (stream, session id). IMPORT_FAILED when
  // it is not hex of a HybridGroupSessionKey, its stream id, session id or hash
  // do not match, or its key is not 32 bytes.
  static HybridSessionRecord prepare_import(std::string_view stream_id, std::string_view session_id,
                                            crypto::SecretView session_key_hex);

 private:
  friend class EncryptionDevice;
  void forget(std::string_view stream_id) TOWNS_EXCLUDES(mu_);
  void refresh_if_stale() TOWNS_REQUIRES(mu_);
  void clear() TOWNS_EXCLUDES(mu_);

  static constexpr size_t kCacheSize = 4096;

  DeviceContext& ctx_;
  Mutex ensure_mu_ TOWNS_ACQUIRED_BEFORE(mu_);  // look-up and creation as one step
  Mutex mu_;
  struct Key {
    std::string stream_id, session_id;
    auto operator<=>(const Key&) const = default;
  };
  std::map<Key, HybridSessionKey> by_id_ TOWNS_GUARDED_BY(mu_);
  std::map<std::string, HybridSessionKey, std::less<>> latest_ TOWNS_GUARDED_BY(mu_);
  uint64_t data_version_ TOWNS_GUARDED_BY(mu_) = 0;
};

struct DeviceInitOptions {
  // The key that protects every pickle; kDefaultPickleKey when not given.
  // INVALID_ARGUMENT when empty.
  std::optional<crypto::SecretBytes> pickle_key = std::nullopt;
  // Recreate the device from an export (binary ExportedDevice protobuf): its
  // pickles are read with its own pickle key and stored under pickle_key.
  std::optional<crypto::SecretBytes> from_exported_device = std::nullopt;
};

// A shared session key to import, of either algorithm.
struct SessionImport {
  std::string stream_id;
  std::string session_id;
  crypto::SecretBytes session_key;
  GroupEncryptionAlgorithm algorithm = GroupEncryptionAlgorithm::kGroupEncryption;
};

class TOWNS_API EncryptionDevice {
 public:
  explicit EncryptionDevice(CryptoStore& store, crypto::RandomSource& rng = crypto::os_random(),
                            EncryptionDelegate& delegate = olm_encryption_delegate());
  ~EncryptionDevice();
  EncryptionDevice(const EncryptionDevice&) = delete;
  EncryptionDevice& operator=(const EncryptionDevice&) = delete;

  // OLM_BAD_ACCOUNT_KEY when the stored account does not open with the pickle
  // key; INVALID_ARGUMENT for bytes that are not an ExportedDevice (and for an
  // empty key); IMPORT_FAILED for an export whose pickles do not open or match.
  void init(const DeviceInitOptions& options = {});

  DeviceAccount& account() { return account_; }
  const DeviceAccount& account() const { return account_; }
  OutboundSessions& outbound() { return outbound_; }
  InboundSessions& inbound() { return inbound_; }
  HybridSessions& hybrid() { return hybrid_; }
  const crypto::SecretBytes& pickle_key() const { return ctx_.pickle_key; }

  // Imports shared keys in one store write. Per key: kImported, kKeptExisting
  // (megolm: a session from a lower or equal index is held), or the error
  // (IMPORT_FAILED / OLM_*; STORE_CORRUPT when the held entry does not unpickle:
  // it is kept as it is). A key listed twice counts once, with its best form.
  using ImportResult = Outcome<ImportOutcome>;
  std::vector<ImportResult> import_sessions(const std::vector<SessionImport>& keys);
  // The same, the megolm keys read and pickled on up to `threads` threads
  // first (the decisions and the one store write stay in key order).
  std::vector<ImportResult> import_sessions(const std::vector<SessionImport>& keys, unsigned threads);

  // The binary ExportedDevice protobuf. Outbound sessions are advanced to their
  // reserved index, so the copy never reuses an index this device may use.
  crypto::SecretBytes export_device();

 private:
  void import_exported_device(std::span<const uint8_t> exported);

  DeviceContext ctx_;
  DeviceAccount account_;
  InboundSessions inbound_;
  OutboundSessions outbound_;
  HybridSessions hybrid_;
  Mutex import_mu_;  // order 2: imports of both kinds, check then write
};

// SHA-256("RVR_HSK:" || stream_id || key || u64_be(miniblock_num) || miniblock_hash).
TOWNS_API std::array<uint8_t, 32> hybrid_session_key_hash(std::span<const uint8_t> stream_id,
                                                          std::span<const uint8_t> key, int64_t miniblock_num,
                                                          std::span<const uint8_t> miniblock_hash);

// PAYLOAD_TOO_LARGE when the text is longer than kMaxPlaintextLength UTF-16
// code units (the client's check); source names the operation in the message.
TOWNS_API void check_payload_length(std::string_view payload, std::string_view source);

}  // namespace towns
