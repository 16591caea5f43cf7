#include "towns/store/sqlite_crypto_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/detail_sync.h"
#include "towns/error.h"

namespace towns {
namespace {

// Migration N brings the schema from version N to N+1. Never edit a released
// entry; append a new one.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 0), pickle TEXT NOT NULL);
    CREATE TABLE outbound_sessions (
      stream_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, pickle TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE inbound_sessions (
      stream_id TEXT NOT NULL, session_id TEXT NOT NULL, pickle TEXT NOT NULL,
      PRIMARY KEY (stream_id, session_id)) WITHOUT ROWID;
    CREATE TABLE hybrid_sessions (
      stream_id TEXT NOT NULL, session_id TEXT NOT NULL, miniblock_num INTEGER NOT NULL,
      sealed_key BLOB NOT NULL, PRIMARY KEY (stream_id, session_id)) WITHOUT ROWID;
    CREATE INDEX hybrid_sessions_latest ON hybrid_sessions (stream_id, miniblock_num, session_id);
    CREATE TABLE user_devices (
      user_id TEXT NOT NULL, device_key TEXT NOT NULL, fallback_key TEXT NOT NULL,
      expiration_ms INTEGER NOT NULL, PRIMARY KEY (user_id, device_key)) WITHOUT ROWID;
    CREATE INDEX user_devices_expiry ON user_devices (expiration_ms);
    )sql",
    // 2: outbound ratchets are reserved in blocks (docs/performance.md).
    R"sql(
    ALTER TABLE outbound_sessions ADD COLUMN reserved_until INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 3: the user-device cache had no caller; the replay record (docs/security.md).
    R"sql(
    DROP TABLE user_devices;
    CREATE TABLE message_indices (
      stream_id TEXT NOT NULL, session_id TEXT NOT NULL, message_index INTEGER NOT NULL,
      fingerprint BLOB NOT NULL, PRIMARY KEY (stream_id, session_id, message_index)) WITHOUT ROWID;
    )sql",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == SqliteCryptoStore::kSchemaVersion);

constexpr std::string_view kKdfSalt = "towns-e2ee sqlite store v1";
constexpr std::string_view kKeyCheckPlaintext = "towns-e2ee key check v1";
constexpr uint8_t kSealVersion = 1;

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& what) {
  int primary = rc & 0xff;
  ErrorCode code = ErrorCode::STORE_ERROR;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = ErrorCode::STORE_BUSY;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) code = ErrorCode::STORE_CORRUPT;
  std::string msg = what + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (code == ErrorCode::STORE_CORRUPT) msg += " (the file is not a usable towns-e2ee store)";
  throw Error(code, msg);
}

// A cached prepared statement, reset and unbound when the guard goes.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, std::span<const uint8_t> v) {
    check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  // True when a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw_sqlite(db_, rc, "sqlite3_step");
  }
  void run() { (void)step(); }
  std::string text(int i) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, i))) : std::string();
  }
  std::vector<uint8_t> blob(int i) const {
    auto p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, i));
    return p ? std::vector<uint8_t>(p, p + sqlite3_column_bytes(s_, i)) : std::vector<uint8_t>();
  }
  int64_t int64(int i) const { return sqlite3_column_int64(s_, i); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "sqlite3_bind");
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
};

std::vector<uint8_t> hybrid_aad(std::string_view stream_id, std::string_view session_id) {
  std::string aad = "towns-e2ee hybrid session key";
  aad.push_back('\0');
  aad += stream_id;
  aad.push_back('\0');
  aad += session_id;
  return {aad.begin(), aad.end()};
}

}  // namespace

// Locking: one plain (non-recursive) mutex, mu, serialises the connection
// (opened SQLITE_OPEN_NOMUTEX) and its cached statements. Each public method
// takes it once, for its whole body; helpers that use the connection require it
// (TOWNS_REQUIRES) and never take it. Nothing outside the store is called while
// it is held (hybrid keys are sealed, which calls the random source, before it is
// taken): it is a leaf lock.
struct SqliteCryptoStore::Impl {
  // Set before the store is shared, then only read.
  crypto::RandomSource* rng = nullptr;
  bool synchronous_full = true;
  std::optional<crypto::AesGcm> hybrid_key;
  std::optional<crypto::AesGcm> check_key;

  Mutex mu;
  sqlite3* db TOWNS_GUARDED_BY(mu) = nullptr;
  std::map<std::string, sqlite3_stmt*, std::less<>> statements TOWNS_GUARDED_BY(mu);

  ~Impl() {
    for (auto& [sql, s] : statements) sqlite3_finalize(s);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // A write transaction: BEGIN IMMEDIATE when constructed, COMMIT on commit(),
  // ROLLBACK when destroyed without a successful commit() (an exception, or a
  // save_changes condition that does not hold). Constructed with mu held, after
  // the MutexLock in the same scope, so it ends before the lock is released; there
  // is no nesting. commit() and the destructor run within that scope; they are
  // exempt from the analysis only because it cannot tie txn.impl_.mu to the
  // caller's impl_->mu (the constructor's requirement is checked).
  class WriteTxn {
   public:
    explicit WriteTxn(Impl& impl) TOWNS_REQUIRES(impl.mu) : impl_(impl) { impl_.exec("BEGIN IMMEDIATE"); }
    ~WriteTxn() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      if (!committed_ && sqlite3_get_autocommit(impl_.db) == 0) {
        sqlite3_exec(impl_.db, "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }
    WriteTxn(const WriteTxn&) = delete;
    WriteTxn& operator=(const WriteTxn&) = delete;
    void commit() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      impl_.exec("COMMIT");
      committed_ = true;
    }

   private:
    Impl& impl_;
    bool committed_ = false;
  };

  Stmt stmt(std::string_view sql) TOWNS_REQUIRES(mu) {
    auto it = statements.find(sql);
    if (it == statements.end()) {
      sqlite3_stmt* s = nullptr;
      int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s,
                                  nullptr);
      if (rc != SQLITE_OK) throw_sqlite(db, rc, "sqlite3_prepare");
      it = statements.emplace(std::string(sql), s).first;
    }
    return Stmt(db, it->second);
  }

  void exec(const char* sql) TOWNS_REQUIRES(mu) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    sqlite3_free(err);  // sqlite3_errmsg below says the same
    if (rc != SQLITE_OK) throw_sqlite(db, rc, "sqlite3_exec");
  }

  int64_t pragma_int(const char* sql) TOWNS_REQUIRES(mu) {
    auto s = stmt(sql);
    return s.step() ? s.int64(0) : 0;
  }

  // Drops every cached statement (they were prepared against an older schema).
  void clear_statements() TOWNS_REQUIRES(mu) {
    for (auto& [sql, s] : statements) sqlite3_finalize(s);
    statements.clear();
  }

  std::vector<uint8_t> seal(const crypto::AesGcm& key, std::span<const uint8_t> plaintext,
                            std::span<const uint8_t> aad) {
    auto iv = rng->bytes(crypto::kAesGcmIvSize);
    auto ct = key.encrypt(iv.span(), plaintext, aad);
    std::vector<uint8_t> out;
    out.reserve(1 + iv.size() + ct.size());
    out.push_back(kSealVersion);
    out.insert(out.end(), iv.data(), iv.data() + iv.size());
    out.insert(out.end(), ct.begin(), ct.end());
    return out;
  }

  // Error(DECRYPTION_FAILED) for a wrong key or a damaged value.
  crypto::SecretBytes unseal(const crypto::AesGcm& key, std::span<const uint8_t> sealed,
                             std::span<const uint8_t> aad) {
    if (sealed.size() < 1 + crypto::kAesGcmIvSize + crypto::kAesGcmTagSize || sealed[0] != kSealVersion) {
      throw Error(ErrorCode::DECRYPTION_FAILED, "sealed value has an unknown format");
    }
    return key.decrypt(sealed.subspan(1, crypto::kAesGcmIvSize), sealed.subspan(1 + crypto::kAesGcmIvSize), aad);
  }

  HybridSessionRecord hybrid_from_row(const Stmt& s) {
    HybridSessionRecord r;
    r.stream_id = s.text(0);
    r.session_id = s.text(1);
    r.miniblock_num = s.int64(2);
    auto sealed = s.blob(3);
    try {
      r.session_key = unseal(*hybrid_key, sealed, hybrid_aad(r.stream_id, r.session_id));
    } catch (const Error&) {
      throw Error(ErrorCode::STORE_CORRUPT, "a sealed hybrid session key does not open (damaged row)");
    }
    return r;
  }

  // False when the store has no key check yet; throws STORE_WRONG_PICKLE_KEY
  // when it has one the pickle key does not open.
  bool key_check_present() TOWNS_REQUIRES(mu) {
    auto s = stmt("SELECT value FROM meta WHERE key = 'key_check'");
    if (!s.step()) return false;
    auto sealed = s.blob(0);
    try {
      auto pt = unseal(*check_key, sealed, crypto::as_bytes("key_check"));
      if (pt.view() == kKeyCheckPlaintext) return true;
    } catch (const Error&) {
    }
    throw Error(ErrorCode::STORE_WRONG_PICKLE_KEY, "the pickle key does not open this store");
  }

  // Opens, checks and migrates the file; false when the key check still has to be written.
  bool open_and_migrate(const std::string& path, const SqliteStoreOptions& opts) TOWNS_REQUIRES(mu);
  void open_and_check(const std::string& path, crypto::SecretView pickle_key, const SqliteStoreOptions& opts)
      TOWNS_EXCLUDES(mu);
};

bool SqliteCryptoStore::Impl::open_and_migrate(const std::string& path, const SqliteStoreOptions& opts) {
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "cannot open " + path);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, opts.busy_timeout_ms);

  // Read-only checks first: nothing is written to a file we refuse.
  int64_t app_id = pragma_int("PRAGMA application_id");  // fails with NOTADB on a foreign file
  int64_t version = pragma_int("PRAGMA user_version");
  int64_t objects = pragma_int("SELECT count(*) FROM sqlite_schema");
  if (app_id != kApplicationId && !(app_id == 0 && version == 0 && objects == 0)) {
    throw Error(ErrorCode::STORE_CORRUPT, "the file is an SQLite database of another application");
  }
  if (version > kSchemaVersion) {
    throw Error(ErrorCode::STORE_NEWER_SCHEMA, "the store has schema version " + std::to_string(version) +
                                                   ", newer than this library's " +
                                                   std::to_string(kSchemaVersion));
  }
  if (version >= 1) (void)key_check_present();

  // WAL before the first write transaction; it persists in the file.
  exec("PRAGMA journal_mode=WAL");
  synchronous_full = opts.synchronous_full;
  exec(opts.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");

  for (int v = static_cast<int>(version); v < kSchemaVersion; ++v) {
    WriteTxn txn(*this);
    // Another process may have migrated while we waited for the lock.
    if (pragma_int("PRAGMA user_version") <= v) {
      exec(kMigrations[v]);
      exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
      exec(("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
    }
    txn.commit();
  }
  // Drop statements prepared against the pre-migration schema.
  clear_statements();
  return key_check_present();
}

void SqliteCryptoStore::Impl::open_and_check(const std::string& path, crypto::SecretView pickle_key,
                                             const SqliteStoreOptions& opts) {
  hybrid_key = crypto::AesGcm::New(
      crypto::hkdf_sha256(pickle_key, crypto::as_bytes(kKdfSalt), crypto::as_bytes("hybrid session keys"), 32));
  check_key = crypto::AesGcm::New(
      crypto::hkdf_sha256(pickle_key, crypto::as_bytes(kKdfSalt), crypto::as_bytes("pickle key check"), 32));

  {
    MutexLock l(mu);
    if (open_and_migrate(path, opts)) return;
  }
  // A new store: write its key check. Sealing calls the random source, so it is
  // done with the lock released (nobody else has the store yet in any case).
  auto sealed = seal(*check_key, crypto::as_bytes(kKeyCheckPlaintext), crypto::as_bytes("key_check"));
  MutexLock l(mu);
  WriteTxn txn(*this);
  // Another process may have written one meanwhile: keep it if our key opens it.
  if (!key_check_present()) {
    stmt("INSERT INTO meta (key, value) VALUES ('key_check', ?)").bind(1, std::span<const uint8_t>(sealed)).run();
  }
  txn.commit();
}

std::unique_ptr<SqliteCryptoStore> SqliteCryptoStore::open(const std::string& path, crypto::SecretView pickle_key,
                                                           SqliteStoreOptions options) {
  if (pickle_key.size() == 0) throw Error(ErrorCode::INVALID_ARGUMENT, "the pickle key is empty");
  auto impl = std::make_unique<Impl>();
  impl->rng = options.rng != nullptr ? options.rng : &crypto::os_random();
  impl->open_and_check(path, pickle_key, options);
  return std::unique_ptr<SqliteCryptoStore>(new SqliteCryptoStore(std::move(impl)));
}

SqliteCryptoStore::SqliteCryptoStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteCryptoStore::~SqliteCryptoStore() = default;

std::optional<std::string> SqliteCryptoStore::get_account() {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("SELECT pickle FROM account WHERE id = 0");
  if (!s.step()) return std::nullopt;
  return s.text(0);
}
void SqliteCryptoStore::delete_account() {
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM account").run();
  txn.commit();
}

std::optional<GroupSessionRecord> SqliteCryptoStore::get_outbound_session(std::string_view stream_id) {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream_id, session_id, pickle, reserved_until FROM outbound_sessions WHERE stream_id = ?");
  s.bind(1, stream_id);
  if (!s.step()) return std::nullopt;
  return GroupSessionRecord{s.text(0), s.text(1), s.text(2), static_cast<uint32_t>(s.int64(3))};
}
void SqliteCryptoStore::delete_outbound_session(std::string_view stream_id) {
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM outbound_sessions WHERE stream_id = ?").bind(1, stream_id).run();
  txn.commit();
}
std::vector<GroupSessionRecord> SqliteCryptoStore::all_outbound_sessions() {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream_id, session_id, pickle, reserved_until FROM outbound_sessions ORDER BY stream_id");
  std::vector<GroupSessionRecord> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), static_cast<uint32_t>(s.int64(3))});
  return out;
}

std::optional<GroupSessionRecord> SqliteCryptoStore::get_inbound_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream_id, session_id, pickle FROM inbound_sessions WHERE stream_id = ? AND session_id = ?");
  s.bind(1, stream_id).bind(2, session_id);
  if (!s.step()) return std::nullopt;
  return GroupSessionRecord{s.text(0), s.text(1), s.text(2)};
}
void SqliteCryptoStore::delete_inbound_session(std::string_view stream_id, std::string_view session_id) {
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM inbound_sessions WHERE stream_id = ? AND session_id = ?")
      .bind(1, stream_id)
      .bind(2, session_id)
      .run();
  impl_->stmt("DELETE FROM message_indices WHERE stream_id = ? AND session_id = ?")
      .bind(1, stream_id)
      .bind(2, session_id)
      .run();
  txn.commit();
}
std::vector<std::string> SqliteCryptoStore::inbound_session_ids(std::string_view stream_id) {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("SELECT session_id FROM inbound_sessions WHERE stream_id = ? ORDER BY session_id");
  s.bind(1, stream_id);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}
std::vector<GroupSessionRecord> SqliteCryptoStore::all_inbound_sessions() {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("SELECT stream_id, session_id, pickle FROM inbound_sessions ORDER BY stream_id, session_id");
  std::vector<GroupSessionRecord> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

std::optional<HybridSessionRecord> SqliteCryptoStore::get_hybrid_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream_id, session_id, miniblock_num, sealed_key FROM hybrid_sessions "
      "WHERE stream_id = ? AND session_id = ?");
  s.bind(1, stream_id).bind(2, session_id);
  if (!s.step()) return std::nullopt;
  return impl_->hybrid_from_row(s);
}
std::optional<HybridSessionRecord> SqliteCryptoStore::latest_hybrid_session(std::string_view stream_id) {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream_id, session_id, miniblock_num, sealed_key FROM hybrid_sessions WHERE stream_id = ? "
      "ORDER BY miniblock_num DESC, session_id ASC LIMIT 1");
  s.bind(1, stream_id);
  if (!s.step()) return std::nullopt;
  return impl_->hybrid_from_row(s);
}
void SqliteCryptoStore::delete_hybrid_session(std::string_view stream_id, std::string_view session_id) {
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM hybrid_sessions WHERE stream_id = ? AND session_id = ?")
      .bind(1, stream_id)
      .bind(2, session_id)
      .run();
  txn.commit();
}
std::vector<std::string> SqliteCryptoStore::hybrid_session_ids(std::string_view stream_id) {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("SELECT session_id FROM hybrid_sessions WHERE stream_id = ? ORDER BY session_id");
  s.bind(1, stream_id);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}
std::vector<HybridSessionRecord> SqliteCryptoStore::all_hybrid_sessions() {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream_id, session_id, miniblock_num, sealed_key FROM hybrid_sessions "
      "ORDER BY stream_id, session_id");
  std::vector<HybridSessionRecord> out;
  while (s.step()) out.push_back(impl_->hybrid_from_row(s));
  return out;
}

void SqliteCryptoStore::delete_all() {
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  for (const char* sql : {"DELETE FROM account", "DELETE FROM outbound_sessions", "DELETE FROM inbound_sessions",
                          "DELETE FROM hybrid_sessions", "DELETE FROM message_indices"}) {
    impl_->stmt(sql).run();
  }
  txn.commit();
}

bool SqliteCryptoStore::save_changes(const StoreChanges& c) {
  if (c.empty()) return true;
  // Sealing calls the random source: done before the lock is taken.
  std::vector<std::vector<uint8_t>> sealed;
  sealed.reserve(c.hybrid_sessions.size());
  for (const auto& r : c.hybrid_sessions) {
    sealed.push_back(impl_->seal(*impl_->hybrid_key, r.session_key.span(), hybrid_aad(r.stream_id, r.session_id)));
  }
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);  // rolled back on every return or throw before commit()
  for (const auto& cond : c.expect_outbound) {
    auto s = impl_->stmt("SELECT session_id, reserved_until FROM outbound_sessions WHERE stream_id = ?");
    s.bind(1, cond.stream_id);
    bool exists = s.step();
    if (!cond.session_id.has_value()) {
      if (exists) return false;
      continue;
    }
    if (!exists || s.text(0) != *cond.session_id || s.int64(1) != static_cast<int64_t>(cond.reserved_until)) {
      return false;
    }
  }
  if (c.account.has_value()) {
    impl_->stmt("INSERT OR REPLACE INTO account (id, pickle) VALUES (0, ?)").bind(1, *c.account).run();
  }
  for (const auto& r : c.outbound_sessions) {
    impl_->stmt(
              "INSERT OR REPLACE INTO outbound_sessions (stream_id, session_id, pickle, reserved_until) "
              "VALUES (?, ?, ?, ?)")
        .bind(1, r.stream_id)
        .bind(2, r.session_id)
        .bind(3, r.pickle)
        .bind(4, static_cast<int64_t>(r.reserved_until))
        .run();
  }
  for (const auto& r : c.inbound_sessions) {
    impl_->stmt("INSERT OR REPLACE INTO inbound_sessions (stream_id, session_id, pickle) VALUES (?, ?, ?)")
        .bind(1, r.stream_id)
        .bind(2, r.session_id)
        .bind(3, r.pickle)
        .run();
  }
  for (size_t i = 0; i < c.hybrid_sessions.size(); ++i) {
    const auto& r = c.hybrid_sessions[i];
    impl_->stmt(
              "INSERT OR REPLACE INTO hybrid_sessions (stream_id, session_id, miniblock_num, sealed_key) "
              "VALUES (?, ?, ?, ?)")
        .bind(1, r.stream_id)
        .bind(2, r.session_id)
        .bind(3, r.miniblock_num)
        .bind(4, std::span<const uint8_t>(sealed[i]))
        .run();
  }
  txn.commit();
  return true;
}

std::vector<ReplayCheck> SqliteCryptoStore::record_message_indices(const std::vector<MessageIndexRecord>& entries) {
  std::vector<ReplayCheck> out;
  if (entries.empty()) return out;
  out.reserve(entries.size());
  MutexLock l(impl_->mu);
  // The replay record is written once per decrypt (or per backlog), so it is
  // committed without waiting for the disk: in WAL mode it then survives a crash
  // of the process, and the next key write (synchronous=FULL) makes it durable
  // against power loss too (docs/security.md). Keys are never written this way.
  struct Relaxed {
    Impl& impl;
    bool on;
    Relaxed(Impl& i, bool full) TOWNS_REQUIRES(i.mu) : impl(i), on(full) {
      if (on) impl.exec("PRAGMA synchronous=NORMAL");
    }
    ~Relaxed() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      if (on) sqlite3_exec(impl.db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
    }
  } relaxed(*impl_, impl_->synchronous_full);
  Impl::WriteTxn txn(*impl_);
  for (const auto& e : entries) {
    impl_->stmt(
              "INSERT INTO message_indices (stream_id, session_id, message_index, fingerprint) "
              "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
        .bind(1, e.stream_id)
        .bind(2, e.session_id)
        .bind(3, static_cast<int64_t>(e.message_index))
        .bind(4, std::span<const uint8_t>(e.fingerprint))
        .run();
    if (sqlite3_changes(impl_->db) == 1) {
      out.push_back(ReplayCheck::kNew);
      continue;
    }
    auto s = impl_->stmt(
        "SELECT fingerprint FROM message_indices WHERE stream_id = ? AND session_id = ? AND message_index = ?");
    s.bind(1, e.stream_id).bind(2, e.session_id).bind(3, static_cast<int64_t>(e.message_index));
    if (!s.step()) throw Error(ErrorCode::STORE_ERROR, "a message index neither inserted nor found");
    auto stored = s.blob(0);
    bool same =
        stored.size() == e.fingerprint.size() && std::equal(stored.begin(), stored.end(), e.fingerprint.begin());
    out.push_back(same ? ReplayCheck::kSame : ReplayCheck::kConflict);
  }
  txn.commit();
  return out;
}

uint64_t SqliteCryptoStore::data_version() {
  MutexLock l(impl_->mu);
  return static_cast<uint64_t>(impl_->pragma_int("PRAGMA data_version"));
}

bool SqliteCryptoStore::integrity_ok() {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("PRAGMA integrity_check");
  return s.step() && s.text(0) == "ok";
}

}  // namespace towns
