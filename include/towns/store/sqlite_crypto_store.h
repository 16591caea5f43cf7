// SqliteCryptoStore: the default CryptoStore, one SQLite database file.
//
// - Schema version in PRAGMA user_version, the file marked as ours by PRAGMA
//   application_id; numbered migrations, each in its own transaction.
// - WAL journal, prepared statements, a busy timeout so that two processes on one
//   file wait for each other instead of failing. Writes inside transaction() use
//   BEGIN IMMEDIATE, so concurrent writers serialise rather than deadlock.
// - Durability: synchronous=FULL by default: an acknowledged write survives the
//   process being killed and the machine losing power. (NORMAL, selectable, still
//   survives kill -9 of the process but not power loss.)
// - Secrets: olm objects are stored as libolm pickles under the pickle key. Hybrid
//   session keys are sealed with AES-256-GCM under a key derived from the pickle
//   key; see docs/store.md for the exact format. A key-check value lets open()
//   refuse a wrong pickle key before anything is read or written.
// - open() refuses, changing nothing: a file that is not SQLite (STORE_CORRUPT), a
//   SQLite database that is not a towns-e2ee store (STORE_CORRUPT), a store of a
//   newer schema (STORE_NEWER_SCHEMA), a wrong pickle key (STORE_WRONG_PICKLE_KEY).
// - Expired user devices are purged when the store opens.
// Thread-safe (one connection behind a mutex).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "towns/crypto/random.h"
#include "towns/store/crypto_store.h"

namespace towns {

struct SqliteStoreOptions {
  bool synchronous_full = true;
  int busy_timeout_ms = 30000;
  // The clock used to purge expired devices at open; default: system clock.
  std::function<int64_t()> now_ms = {};
  // Source of the IVs used to seal hybrid keys; default: os_random().
  crypto::RandomSource* rng = nullptr;
};

class TOWNS_API SqliteCryptoStore final : public CryptoStore {
 public:
  static constexpr int kSchemaVersion = 2;
  // "TwnE": marks the file as a towns-e2ee store.
  static constexpr int kApplicationId = 0x54776e45;

  static std::unique_ptr<SqliteCryptoStore> open(const std::string& path, crypto::SecretView pickle_key,
                                                 SqliteStoreOptions options = {});
  ~SqliteCryptoStore() override;
  SqliteCryptoStore(const SqliteCryptoStore&) = delete;
  SqliteCryptoStore& operator=(const SqliteCryptoStore&) = delete;

  std::optional<std::string> get_account() override;
  void store_account(std::string_view pickle) override;
  void delete_account() override;

  std::optional<GroupSessionRecord> get_outbound_session(std::string_view stream_id) override;
  void store_outbound_session(const GroupSessionRecord& record) override;
  void delete_outbound_session(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_outbound_sessions() override;

  std::optional<GroupSessionRecord> get_inbound_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  void store_inbound_session(const GroupSessionRecord& record) override;
  void delete_inbound_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> inbound_session_ids(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_inbound_sessions() override;

  std::optional<HybridSessionRecord> get_hybrid_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  std::optional<HybridSessionRecord> latest_hybrid_session(std::string_view stream_id) override;
  void store_hybrid_session(const HybridSessionRecord& record) override;
  void delete_hybrid_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> hybrid_session_ids(std::string_view stream_id) override;
  std::vector<HybridSessionRecord> all_hybrid_sessions() override;

  void save_user_devices(std::string_view user_id, const std::vector<UserDevice>& devices,
                         int64_t expiration_ms) override;
  std::vector<UserDevice> get_user_devices(std::string_view user_id, int64_t now_ms) override;
  void delete_user_devices(std::string_view user_id) override;
  void purge_expired_devices(int64_t now_ms) override;

  void delete_all() override;
  void transaction(const std::function<void()>& fn) override;

  // PRAGMA integrity_check == "ok".
  bool integrity_ok();

 private:
  struct Impl;
  explicit SqliteCryptoStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace towns
