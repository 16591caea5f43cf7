// SqliteCryptoStore: the default CryptoStore, one SQLite database file.
//
// - Schema version in PRAGMA user_version, the file marked as ours by PRAGMA
//   application_id; numbered migrations, each in its own transaction.
// - WAL journal, prepared statements, a busy timeout so that two processes on one
//   file wait for each other instead of failing. Every write transaction
//   (save_changes, record_message_indices, the deletes) uses BEGIN IMMEDIATE, so
//   concurrent writers serialise rather than deadlock; save_changes checks its
//   conditions inside that transaction.
// - data_version() is PRAGMA data_version: it changes when another connection
//   (another process, or another SqliteCryptoStore on the same file) commits.
// - Durability: synchronous=FULL by default: an acknowledged write survives the
//   process being killed and the machine losing power. (NORMAL, selectable, still
//   survives kill -9 of the process but not power loss.)
// - Secrets: olm objects are stored as libolm pickles under the pickle key. Hybrid
//   session keys are sealed with AES-256-GCM under a key derived from the pickle
//   key; see docs/store.md for the exact format. A key-check value lets open()
//   refuse a wrong pickle key before anything is read or written.
// - open() refuses, changing nothing: a file that is not SQLite (STORE_CORRUPT), a
//   SQLite database that is not a towns-e2ee store (STORE_CORRUPT), a store of a
//   newer schema (STORE_NEWER_SCHEMA), a wrong pickle key (STORE_WRONG_PICKLE_KEY),
//   an empty pickle key (INVALID_ARGUMENT, before the file is touched: a device
//   refuses it too, docs/protocol.md section 4.4).
// - Thread-safe: one connection behind one plain (non-recursive) mutex, a leaf
//   lock: no caller code runs while it is held (hybrid keys are sealed, which
//   calls the random source, before it is taken).
#pragma once

#include <memory>
#include <string>

#include "towns/crypto/random.h"
#include "towns/store/crypto_store.h"

namespace towns {

struct SqliteStoreOptions {
  bool synchronous_full = true;
  int busy_timeout_ms = 30000;
  // Source of the IVs used to seal hybrid keys; default: os_random().
  crypto::RandomSource* rng = nullptr;
};

class TOWNS_API SqliteCryptoStore final : public CryptoStore {
 public:
  static constexpr int kSchemaVersion = 3;
  // "TwnE": marks the file as a towns-e2ee store.
  static constexpr int kApplicationId = 0x54776e45;

  static std::unique_ptr<SqliteCryptoStore> open(const std::string& path, crypto::SecretView pickle_key,
                                                 SqliteStoreOptions options = {});
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
  struct Impl;
  explicit SqliteCryptoStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace towns
