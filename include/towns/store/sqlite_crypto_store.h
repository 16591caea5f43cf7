// SqliteCryptoStore: the default CryptoStore, one SQLite database file.
//
// - Schema version in PRAGMA user_version, the file marked as ours by PRAGMA
//   application_id; numbered migrations, each in its own transaction.
// - WAL journal, prepared statements, a busy timeout so that two processes on one
//   file wait for each other instead of failing. Every write transaction
//   (save_changes, the deletes, the replay journal's folds) uses BEGIN IMMEDIATE, so
//   concurrent writers serialise rather than deadlock; save_changes checks its
//   conditions inside that transaction.
// - data_version() changes when another connection (another process, or another
//   SqliteCryptoStore on the same file) commits anything but the replay record:
//   a generation word in `<path>-gen`, mapped shared, which every such commit
//   changes (docs/store.md, "Other writers").
// - The replay record (record_message_indices) is written to a journal in the
//   same shared file, a small table every process on the store reads and writes
//   under a lock of its own, and folded into the database in batches of up to
//   256 entries, by every key write and when the store is closed (docs/store.md,
//   "The replay journal"). It survives the process being killed; power loss can
//   lose the entries since the last key write, as before the journal.
// - Durability: synchronous=FULL by default: an acknowledged write survives the
//   process being killed and the machine losing power. (NORMAL, selectable, still
//   survives kill -9 of the process but not power loss.)
// - Every stored secret row (the account, outbound, inbound and hybrid
//   sessions) is sealed with AES-256-GCM under a key derived from the pickle key,
//   with associated data naming the store (a random store id made with the
//   store), the table, the algorithm and the row's key columns: a row that was
//   moved, renamed, copied from another store or damaged does not open
//   (STORE_CORRUPT naming the table). Stream and session ids are stored as keyed
//   hashes (HMAC-SHA-256 under another key derived from the pickle key); their
//   clear values live inside the sealed rows. The replay record's rows carry a
//   MAC. docs/store.md has the exact format.
// - open() checks, before any statement but the read of PRAGMA user_version
//   runs: the version is one this library knows (else STORE_CORRUPT, or
//   STORE_NEWER_SCHEMA above the current one); then the application id, the
//   schema's objects and the key check; a file with data but no key check is
//   STORE_CORRUPT, and a wrong pickle key (STORE_WRONG_PICKLE_KEY) writes
//   nothing. Then (verify_on_open, the default) every row is opened once, so
//   that a tampered or mixed file is refused at open rather than at first use.
//   An empty pickle key is INVALID_ARGUMENT, before the file is touched.
// - Open modes: kCreate (refuses an existing path), kOpen (refuses a missing
//   path, an empty or truncated file), kEither (creates when the path does not
//   exist). A new store is built under a temporary name and linked into place
//   complete, so a store file is never half made.
// - Files are 0600 (store, -wal, -shm) whatever the umask; an existing store with
//   wider permissions is narrowed. The path is a plain file name: SQLite URIs
//   and ":memory:" are not interpreted; a NUL in it is INVALID_ARGUMENT.
// - Thread-safe: one connection behind one plain (non-recursive) mutex, a leaf
//   lock: no caller code runs while it is held (rows are sealed, which calls the
//   random source, before it is taken). Under it the store takes only its
//   cross-process locks, in one order: the replay journal's, then SQLite's.
#pragma once

#include <memory>
#include <string>

#include "towns/crypto/random.h"
#include "towns/store/crypto_store.h"

namespace towns {

// How open() treats the path.
enum class StoreOpenMode {
  kCreate,  // a new store; STORE_ERROR when the path exists
  kOpen,    // an existing store; STORE_ERROR when the path does not exist
  kEither,  // the existing store, or a new one when the path does not exist
};

struct SqliteStoreOptions {
  bool synchronous_full = true;
  // Open every row once at open (and run PRAGMA quick_check), so that a damaged,
  // mixed or tampered file is refused at open; docs/store.md gives the cost.
  // Without it each row is still checked when it is read.
  bool verify_on_open = true;
  int busy_timeout_ms = 30000;
  // Source of the IVs used to seal hybrid keys; default: os_random().
  crypto::RandomSource* rng = nullptr;
};

class TOWNS_API SqliteCryptoStore final : public CryptoStore {
 public:
  static constexpr int kSchemaVersion = 4;
  // "TwnE": marks the file as a towns-e2ee store.
  static constexpr int kApplicationId = 0x54776e45;

  // kEither.
  static std::unique_ptr<SqliteCryptoStore> open(const std::string& path, crypto::SecretView pickle_key,
                                                 SqliteStoreOptions options = {});
  static std::unique_ptr<SqliteCryptoStore> open(const std::string& path, crypto::SecretView pickle_key,
                                                 StoreOpenMode mode, SqliteStoreOptions options = {});
  ~SqliteCryptoStore() override;
  SqliteCryptoStore(const SqliteCryptoStore&) = delete;
  SqliteCryptoStore& operator=(const SqliteCryptoStore&) = delete;

  std::optional<std::string> get_account() override;
  void delete_account() override;

  std::optional<GroupSessionRecord> get_outbound_session(std::string_view stream_id) override;
  void delete_outbound_session(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_outbound_sessions() override;

  std::optional<GroupSessionRecord> get_inbound_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  void delete_inbound_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> inbound_session_ids(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_inbound_sessions() override;

  std::optional<HybridSessionRecord> get_hybrid_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  std::optional<HybridSessionRecord> latest_hybrid_session(std::string_view stream_id) override;
  void delete_hybrid_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> hybrid_session_ids(std::string_view stream_id) override;
  std::vector<HybridSessionRecord> all_hybrid_sessions() override;

  void delete_all() override;

  bool save_changes(const StoreChanges& changes) override;
  std::vector<ReplayCheck> record_message_indices(const std::vector<MessageIndexRecord>& entries) override;
  uint64_t data_version() override;

  // PRAGMA integrity_check == "ok".
  bool integrity_ok();

 private:
  struct TOWNS_INTERNAL Impl;
  TOWNS_INTERNAL explicit SqliteCryptoStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace towns
