#include "towns/store/sqlite_crypto_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/detail_sync.h"
#include "towns/error.h"
#include "store/replay_journal.h"

namespace towns {
namespace {

// Migration N brings the schema from version N to N+1. Never edit a released
// entry; append a new one. Versions 1 to 3 kept ids and pickles in the clear;
// version 4 (kSchemaV4, reached from 3 by Impl::migrate_to_4, which re-seals
// every row) is what a new store is made with.
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
constexpr int kOldVersions = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kOldVersions + 1 == SqliteCryptoStore::kSchemaVersion);

// Version 4: every secret row sealed and bound, ids as keyed hashes
// (docs/store.md). `stream` and `session` are 16-byte keyed hashes.
constexpr const char* kSchemaV4 = R"sql(
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 0), sealed BLOB NOT NULL);
    CREATE TABLE outbound_sessions (
      stream BLOB PRIMARY KEY, session BLOB NOT NULL, reserved_until INTEGER NOT NULL,
      sealed BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE inbound_sessions (
      stream BLOB NOT NULL, session BLOB NOT NULL, sealed BLOB NOT NULL,
      PRIMARY KEY (stream, session)) WITHOUT ROWID;
    CREATE TABLE hybrid_sessions (
      stream BLOB NOT NULL, session BLOB NOT NULL, miniblock_num INTEGER NOT NULL,
      sealed BLOB NOT NULL, PRIMARY KEY (stream, session)) WITHOUT ROWID;
    CREATE INDEX hybrid_sessions_latest ON hybrid_sessions (stream, miniblock_num);
    CREATE TABLE message_indices (
      stream BLOB NOT NULL, session BLOB NOT NULL, message_index INTEGER NOT NULL,
      fingerprint BLOB NOT NULL, tag BLOB NOT NULL,
      PRIMARY KEY (stream, session, message_index)) WITHOUT ROWID;
)sql";

// Version 3's tables, renamed aside while migrate_to_4 copies them.
constexpr const char* kSetAsideV3 = R"sql(
    DROP INDEX hybrid_sessions_latest;
    ALTER TABLE account RENAME TO v3_account;
    ALTER TABLE outbound_sessions RENAME TO v3_outbound_sessions;
    ALTER TABLE inbound_sessions RENAME TO v3_inbound_sessions;
    ALTER TABLE hybrid_sessions RENAME TO v3_hybrid_sessions;
    ALTER TABLE message_indices RENAME TO v3_message_indices;
)sql";
constexpr const char* kDropV3 = R"sql(
    DROP TABLE v3_account;
    DROP TABLE v3_outbound_sessions;
    DROP TABLE v3_inbound_sessions;
    DROP TABLE v3_hybrid_sessions;
    DROP TABLE v3_message_indices;
)sql";

// Version 1 to 3 (unchanged, to read old files).
constexpr std::string_view kKdfSaltV1 = "towns-e2ee sqlite store v1";
constexpr std::string_view kKeyCheckPlaintextV1 = "towns-e2ee key check v1";
constexpr uint8_t kSealVersionV1 = 1;
// Version 4.
constexpr std::string_view kKdfSalt = "towns-e2ee sqlite store v4";
constexpr std::string_view kKeyCheckPlaintext = "towns-e2ee key check v4";
constexpr std::string_view kKeyCheckAad = "towns-e2ee store key check v4";
constexpr std::string_view kRowAad = "towns-e2ee store row v4";
constexpr uint8_t kSealVersion = 4;
constexpr size_t kStoreIdSize = 16;
constexpr size_t kNameSize = 16;  // keyed hashes of ids
constexpr size_t kTagSize = 16;   // replay record MACs
constexpr size_t kSealOverhead = 1 + crypto::kAesGcmIvSize + crypto::kAesGcmTagSize;

// The algorithm each table's rows belong to (bound into the row's AAD).
constexpr std::string_view kOlm = "r.olm.v1.curve25519-aes-sha2";
constexpr std::string_view kMegolm = "r.group-encryption.v1.aes-sha2";
constexpr std::string_view kGrpaes = "grpaes";

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
  // Without SQLite's copy: the bytes must stay as they are until this guard
  // is gone (it unbinds them).
  Stmt& bind_unowned(int i, std::span<const uint8_t> v) {
    check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
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

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
// A length-prefixed field (u32 big-endian length, then the bytes).
void put_field(std::vector<uint8_t>& out, std::span<const uint8_t> v) {
  put_u32(out, static_cast<uint32_t>(v.size()));
  out.insert(out.end(), v.begin(), v.end());
}
template <typename Out>
void put_field_secret(Out& out, std::span<const uint8_t> v) {
  uint8_t len[4];
  for (int i = 0; i < 4; ++i) len[i] = static_cast<uint8_t>(v.size() >> (8 * (3 - i)));
  out.append(len);
  out.append(v);
}

// The plaintext of a sealed row: length-prefixed fields, exactly `count` of them.
// Returns false for anything else (the caller reports the table).
bool split_fields(std::span<const uint8_t> in, size_t count, std::vector<std::span<const uint8_t>>& out) {
  out.clear();
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    if (in.size() - at < 4) return false;
    uint32_t n = 0;
    for (int k = 0; k < 4; ++k) n = (n << 8) | in[at + static_cast<size_t>(k)];
    at += 4;
    if (in.size() - at < n) return false;
    out.push_back(in.subspan(at, n));
    at += n;
  }
  return at == in.size();
}

std::string as_string(std::span<const uint8_t> v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

[[noreturn]] void corrupt(std::string_view table, std::string_view what) {
  throw Error(ErrorCode::STORE_CORRUPT, std::string(table) + ": " + std::string(what));
}

std::vector<uint8_t> hybrid_aad_v1(std::string_view stream_id, std::string_view session_id) {
  std::string aad = "towns-e2ee hybrid session key";
  aad.push_back('\0');
  aad += stream_id;
  aad.push_back('\0');
  aad += session_id;
  return {aad.begin(), aad.end()};
}

// IVs for the rows a migration or a new store seals with the store's lock held:
// drawn from a seed taken from the caller's random source before (so that no
// caller code runs under the lock), block i = SHA-256(label || seed || u64(i)).
class IvStream {
 public:
  explicit IvStream(crypto::SecretBytes seed) : seed_(std::move(seed)) {}
  crypto::SecretBytes next() {
    crypto::SecretBytes in(std::string_view("towns-e2ee store iv"));
    in.append(seed_.span());
    std::vector<uint8_t> ctr;
    put_u64(ctr, counter_++);
    in.append(ctr);
    auto h = crypto::sha256(in.span());
    crypto::SecretBytes iv(std::span<const uint8_t>(h.data(), crypto::kAesGcmIvSize));
    crypto::wipe(h.data(), h.size());
    return iv;
  }

 private:
  crypto::SecretBytes seed_;
  uint64_t counter_ = 0;
};

// What open() draws from the random source before it takes any lock.
struct Drawn {
  crypto::SecretBytes store_id;  // for a new store, or one migrated from version 3
  crypto::SecretBytes iv_seed;
  std::string temp_suffix;
  crypto::SecretBytes lock_nonce;  // where this store's journal lock tokens start
};

// SQLite would read "file:..." as a URI (when URIs are enabled) and ":memory:" or
// "" as no file at all: a relative path is prefixed with "./", which names the
// same file and is none of these.
std::string sqlite_path(const std::string& path) { return path[0] == '/' ? path : "./" + path; }

struct ClosingDb {
  sqlite3* db = nullptr;
  ~ClosingDb() {
    if (db != nullptr) sqlite3_close_v2(db);
  }
};

void exec_raw(sqlite3* db, const char* sql, const char* what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, what);
}

// The schema objects (type, name, table, sql) of the database, by name;
// internal sqlite_ objects left out.
using SchemaObjects = std::vector<std::tuple<std::string, std::string, std::string, std::string>>;
SchemaObjects schema_objects(sqlite3* db) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema "
                              "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                              -1, &s, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "reading the schema");
  SchemaObjects out;
  auto col = [&](int i) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i))) : std::string();
  };
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.emplace_back(col(0), col(1), col(2), col(3));
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) throw_sqlite(db, rc, "reading the schema");
  // Each table's columns (name, type, not null, default, key), in order.
  rc = sqlite3_prepare_v2(db,
                          "SELECT m.name, p.name, p.type, p.\"notnull\", coalesce(p.dflt_value, ''), p.pk "
                          "FROM sqlite_schema AS m JOIN pragma_table_info(m.name) AS p "
                          "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY m.name, p.cid",
                          -1, &s, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "reading the schema");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    out.emplace_back("column", col(0), col(1), col(2) + " " + col(3) + " " + col(4) + " " + col(5));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) throw_sqlite(db, rc, "reading the schema");
  return out;
}

// The schema a file of `version` has: built by the same SQL in memory.
SchemaObjects reference_schema(int version) {
  ClosingDb mem;
  int rc = sqlite3_open_v2(":memory:", &mem.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(mem.db, rc, "opening a reference database");
  if (version == SqliteCryptoStore::kSchemaVersion) {
    exec_raw(mem.db, kSchemaV4, "building the reference schema");
  } else {
    for (int v = 0; v < version; ++v) exec_raw(mem.db, kMigrations[v], "building the reference schema");
  }
  return schema_objects(mem.db);
}

// Makes path's permissions 0600 when they allow more (group or others).
void restrict_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // absent (-wal, -shm)
  if ((st.st_mode & 0077) == 0) return;
  if (::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0) {
    throw Error(ErrorCode::STORE_ERROR, "cannot make the store file private (chmod 0600): " +
                                            std::string(std::strerror(errno)));
  }
}

void fsync_dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

// The shared file `<path>-gen` (docs/store.md, "Other writers" and "The replay
// journal"). Its first 8 bytes are the generation word behind data_version(), a
// counter every writer of the store changes around each commit; bytes 64 to 79
// are the replay journal's header, and the journal's table starts at 4096. Any
// value is valid (a damaged or crafted file can at worst make caches be dropped,
// or kept, as a writer of the file could anyway; journal entries are checked by
// their tags).
struct GenerationPage {
  static constexpr size_t kJournalHeader = 64;
  static constexpr size_t kLockWord = 96;  // the journal lock (Impl::lock_journal)
  static constexpr size_t kJournalTable = 4096;
  // Each open store holds an OFD write lock on one byte from here (beyond the
  // file's end; nothing is stored there): the journal lock's holder is alive
  // while its byte is locked.
  static constexpr off_t kLiveBase = off_t{1} << 20;
  static constexpr uint64_t kLiveSlots = 4096;
  static constexpr size_t kSize = kJournalTable + store_detail::ReplayJournal::kTableSize;
  static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
  int fd = -1;
  uint64_t* word = nullptr;  // the start of the mapped file
  uint64_t live_slot = 0;    // 1 + this store's byte from kLiveBase (0: none)

  std::atomic_ref<uint64_t> lock_word() const {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(word) + kLockWord));
  }

  // The write lock on a slot's byte (F_OFD_SETLK takes it, F_OFD_GETLK asks for it).
  static struct flock live_byte(uint64_t slot) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = kLiveBase + static_cast<off_t>(slot - 1);
    fl.l_len = 1;
    return fl;
  }

  // Takes the first free byte (slot) from kLiveBase; held until the file is
  // closed, or the process ends.
  void take_live_slot(const std::string& path) {
    for (uint64_t slot = 1; slot <= kLiveSlots; ++slot) {
      auto fl = live_byte(slot);
      if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) {
        live_slot = slot;
        return;
      }
      if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
        throw Error(ErrorCode::STORE_ERROR,
                    "cannot lock a byte of the store's generation file (" + path + "): " + std::strerror(errno));
      }
    }
    throw Error(ErrorCode::STORE_BUSY, "more than 4096 stores are open on " + path);
  }

  // False while the store whose slot the token names holds its byte.
  bool holder_gone(uint64_t token) const {
    uint64_t slot = token & 0xffff;
    if (slot == 0 || slot > kLiveSlots) return true;  // no store has that slot (a damaged word)
    auto fl = live_byte(slot);
    if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return false;  // unknown: waited for, up to the timeout
    return fl.l_type == F_UNLCK;  // also for this store's own slot, which no other store can hold
  }

  store_detail::ReplayJournal journal() const {
    auto* base = reinterpret_cast<uint8_t*>(word);
    return {base + kJournalHeader, base + kJournalTable};
  }

  GenerationPage() = default;
  GenerationPage(GenerationPage&& o) noexcept { *this = std::move(o); }
  GenerationPage& operator=(GenerationPage&& o) noexcept {
    std::swap(fd, o.fd);
    std::swap(word, o.word);
    std::swap(live_slot, o.live_slot);
    return *this;
  }
  ~GenerationPage() {
    if (word != nullptr) ::munmap(word, kSize);
    if (fd >= 0) ::close(fd);
  }

  static GenerationPage open(const std::string& path) {
    auto fail = [&](const char* what) {
      return Error(ErrorCode::STORE_ERROR, std::string(what) + " (" + path + "): " + std::strerror(errno));
    };
    GenerationPage p;
    p.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, S_IRUSR | S_IWUSR);
    if (p.fd < 0) throw fail("cannot open the store's generation file");
    struct stat st {};
    if (::fstat(p.fd, &st) != 0) throw fail("cannot read the store's generation file");
    if (!S_ISREG(st.st_mode)) {
      throw Error(ErrorCode::STORE_ERROR, "the store's generation file is not a regular file (" + path + ")");
    }
    if ((st.st_mode & 0077) != 0 && ::fchmod(p.fd, S_IRUSR | S_IWUSR) != 0) {
      throw fail("cannot make the store's generation file private (chmod 0600)");
    }
    // Growing only: a second process doing the same at once changes nothing.
    if (st.st_size < static_cast<off_t>(kSize) && ::ftruncate(p.fd, kSize) != 0) {
      throw fail("cannot size the store's generation file");
    }
    void* m = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
    if (m == MAP_FAILED) throw fail("cannot map the store's generation file");
    p.word = static_cast<uint64_t*>(m);
    return p;
  }
};

// Locking: one plain (non-recursive) mutex, mu, serialises the connection
// (opened SQLITE_OPEN_NOMUTEX) and its cached statements. Each public method
// takes it once, for its whole body; helpers that use the connection require it
// (TOWNS_REQUIRES) and never take it. Nothing outside the store is called while
// it is held (rows are sealed, which calls the random source, before it is
// taken; a migration draws its IVs' seed before): it is a leaf lock.
struct SqliteCryptoStore::Impl {
  // Set while opening, before the store is shared; then only read.
  crypto::RandomSource* rng = nullptr;
  bool synchronous_full = true;
  bool relaxed_now = false;  // synchronous_full, but the connection is at NORMAL (WriteTxn)
  crypto::SecretBytes store_id;
  std::optional<crypto::AesGcm> row_key;   // seals the rows
  std::optional<crypto::HmacSha256> name_key;  // keyed hashes of ids
  std::optional<crypto::HmacSha256> tag_key;   // MACs of the replay record
  std::optional<crypto::AesGcm> check_key;      // the key check (every version)
  std::optional<crypto::AesGcm> hybrid_key_v1;  // hybrid keys of versions 1 to 3 (migration)

  Mutex mu;
  sqlite3* db TOWNS_GUARDED_BY(mu) = nullptr;
  std::map<std::string, sqlite3_stmt*, std::less<>> statements TOWNS_GUARDED_BY(mu);

  // The generation word (docs/store.md, "Other writers"): a counter in the file
  // `<path>-gen`, mapped shared by every process and store object on the file.
  // Set once the file is accepted (open_existing), then only read.
  GenerationPage gen;
  uint64_t gen_expected TOWNS_GUARDED_BY(mu) = 0;  // the value after every commit this store knows of
  uint64_t gen_odd_seen TOWNS_GUARDED_BY(mu) = 0;  // an odd value the previous data_version() found
  uint64_t foreign_changes TOWNS_GUARDED_BY(mu) = 0;  // what data_version() returns

  // The replay journal (docs/store.md, "The replay journal"), in the same file.
  // Every access holds the journal lock (JournalLock), taken after mu and before
  // any SQLite lock.
  store_detail::ReplayJournal journal;  // set with gen
  int busy_timeout_ms = 0;               // also bounds the wait for the journal lock
  bool journal_locked TOWNS_GUARDED_BY(mu) = false;
  uint64_t lock_nonce TOWNS_GUARDED_BY(mu) = 0;  // the last token's upper 48 bits
  uint64_t lock_token TOWNS_GUARDED_BY(mu) = 0;  // the token this store holds the lock with
  // Per (stream, session) keyed names: the highest message index in
  // message_indices (-1: none), as read while the journal's epoch was
  // folded_epoch. Rows reach message_indices only by a fold, which moves the
  // epoch on, so while it is unchanged these are exact or high (a delete only
  // lowers the truth), and an index above one is not in the file.
  uint64_t folded_epoch TOWNS_GUARDED_BY(mu) = 0;
  struct LastNames {
    std::string stream_id, session_id;
    std::array<uint8_t, 16> stream, session;
  };
  std::optional<LastNames> last_names TOWNS_GUARDED_BY(mu);
  std::unordered_map<std::string, int64_t> folded_max TOWNS_GUARDED_BY(mu);
  static constexpr size_t kFoldedMaxLimit = 1 << 16;  // dropped (and read again) beyond this

  ~Impl() {
    if (journal.attached()) {
      // Closing folds what this or another process left in the journal, so a
      // store closed cleanly leaves its whole record in the file.
      try {
        MutexLock l(mu);
        fold_journal(WriteTxn::Sync::kRelaxed);
      } catch (const std::exception&) {  // the entries stay in the journal for the next fold
      }
    }
    for (auto& [sql, s] : statements) sqlite3_finalize(s);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // Called with the write lock held (inside BEGIN IMMEDIATE), just before COMMIT:
  // makes the word odd ("a commit is under way"), so that no reader trusts a cache
  // from here until gen_leave makes it even again. Returns the odd value.
  uint64_t gen_enter() TOWNS_REQUIRES(mu) {
    std::atomic_ref<uint64_t> w(*gen.word);
    uint64_t g = w.load();
    uint64_t odd = 0;
    // A failure means the previous writer's gen_leave landed meanwhile: retry.
    do {
      odd = g + 1 + (g & 1);
    } while (!w.compare_exchange_weak(g, odd));
    if (g != gen_expected) ++foreign_changes;  // another writer committed before this one
    return odd;
  }

  // data_version() (docs/store.md, "Other writers").
  uint64_t generation_check() TOWNS_REQUIRES(mu) {
    std::atomic_ref<uint64_t> w(*gen.word);
    uint64_t g = w.load();
    if (g == gen_expected) return foreign_changes;
    if ((g & 1) != 0 && g == gen_odd_seen) {
      // Odd twice running: a writer may have died between its odd and even
      // steps. Under the write lock no commit is under way, so if the word
      // still holds that value, that commit is over (done or rolled back).
      if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
        uint64_t expect = g;
        (void)w.compare_exchange_strong(expect, g + 1);
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        g = w.load();
      }
    }
    if ((g & 1) != 0) {
      gen_odd_seen = g;  // a commit under way: nothing cached is trusted yet
    } else {
      gen_expected = g;
    }
    return ++foreign_changes;
  }

  // After COMMIT (or its failure): even again, unless another writer or a
  // reader's repair has moved the word on (that writer's own leave covers this
  // commit, which came first).
  void gen_leave(uint64_t odd) TOWNS_REQUIRES(mu) {
    std::atomic_ref<uint64_t> w(*gen.word);
    uint64_t expect = odd;
    if (w.compare_exchange_strong(expect, odd + 1)) gen_expected = odd + 1;
  }

  // The journal lock (docs/store.md, "The replay journal"): a word in the
  // generation file, 0 when free, else the holder's token: a fresh 48-bit number
  // above its 16-bit slot. Taken and released by compare-and-swap, so an
  // uncontended lock costs no system call. A store waits while the holder's
  // store holds its slot's byte (an OFD lock, which the kernel releases when the
  // store's file is closed or its process dies); a holder that is gone is
  // replaced by compare-and-swap on its exact token. Waits up to the busy
  // timeout, then STORE_BUSY.
  void lock_journal() TOWNS_REQUIRES(mu) {
    auto word = gen.lock_word();
    lock_nonce = (lock_nonce + 1) & ((uint64_t{1} << 48) - 1);
    const uint64_t mine = (lock_nonce << 16) | gen.live_slot;
    std::optional<std::chrono::steady_clock::time_point> deadline;  // set at the first wait
    auto pause = std::chrono::microseconds(10);
    // A failed compare-and-swap leaves the holder's token in seen.
    for (uint64_t seen = 0; !word.compare_exchange_strong(seen, mine, std::memory_order_acquire); seen = 0) {
      if (gen.holder_gone(seen) && word.compare_exchange_strong(seen, mine, std::memory_order_acquire)) break;
      const auto now = std::chrono::steady_clock::now();
      if (!deadline) {
        deadline = now + std::chrono::milliseconds(busy_timeout_ms);
      } else if (now >= *deadline) {
        throw Error(ErrorCode::STORE_BUSY, "the replay journal stayed locked by another store for the busy timeout");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
    }
    lock_token = mine;
    journal_locked = true;
    // Another store folded since this one last looked: its highest folded
    // indices may be low now.
    if (uint64_t e = journal.epoch(); e != folded_epoch) {
      folded_max.clear();
      folded_epoch = e;
    }
  }
  void unlock_journal() TOWNS_REQUIRES(mu) {
    journal_locked = false;
    uint64_t expect = lock_token;
    // Fails only if another store took the lock as this one's holder was gone,
    // which a live store never is: then it is that store's to release.
    (void)gen.lock_word().compare_exchange_strong(expect, 0, std::memory_order_release);
  }
  // Takes the journal lock unless this store already holds it (then nothing:
  // an inner scope within a method that holds it).
  class JournalLock {
   public:
    explicit JournalLock(Impl& impl) TOWNS_REQUIRES(impl.mu) : impl_(impl) {
      if (impl.journal.attached() && !impl.journal_locked) {
        impl.lock_journal();
        taken_ = true;
      }
    }
    ~JournalLock() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      if (taken_) impl_.unlock_journal();
    }
    JournalLock(const JournalLock&) = delete;
    JournalLock& operator=(const JournalLock&) = delete;

   private:
    Impl& impl_;
    bool taken_ = false;
  };

  // A write transaction: BEGIN IMMEDIATE when constructed, COMMIT on commit(),
  // ROLLBACK when destroyed without a successful commit() (an exception, or a
  // save_changes condition that does not hold). Constructed with mu held, after
  // the MutexLock in the same scope, so it ends before the lock is released; there
  // is no nesting. commit() and the destructor run within that scope; they are
  // exempt from the analysis only because it cannot tie txn.impl_.mu to the
  // caller's impl_->mu (the constructor's requirement is checked).
  class WriteTxn {
   public:
    // kRelaxed: the replay record's transactions (docs/store.md), committed
    // with synchronous=NORMAL; every other write is kDurable. The connection's
    // mode is switched only when it differs (a run of decrypts switches it
    // once), and before BEGIN, so a key write never commits under NORMAL.
    enum class Sync { kDurable, kRelaxed };
    //
    // Every write transaction also folds the replay journal: it takes the
    // journal lock before BEGIN (the lock order: mu, the journal lock, SQLite's
    // locks) and writes the journal's entries into the transaction, so a key
    // write makes every entry recorded before it as durable as itself. The
    // journal is emptied after COMMIT (a crash in between leaves entries that
    // are in the file already, which the next fold writes again, changing
    // nothing).
    explicit WriteTxn(Impl& impl, Sync sync = Sync::kDurable) TOWNS_REQUIRES(impl.mu)
        : impl_(impl), journal_(impl), bump_(sync == Sync::kDurable && impl.gen.word != nullptr) {
      bool relax = sync == Sync::kRelaxed && impl_.synchronous_full;
      if (relax != impl_.relaxed_now) {
        impl_.stmt(relax ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL").run();
        impl_.relaxed_now = relax;
      }
      impl_.stmt("BEGIN IMMEDIATE").run();
      try {
        if (impl_.journal.attached()) folded_ = impl_.write_journal_rows();
      } catch (...) {
        sqlite3_exec(impl_.db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
    // Rows this transaction wrote to message_indices itself (a backlog): they
    // move the journal's epoch on like folded ones.
    void also_folded(const store_detail::JournalEntry& e) { folded_.push_back(e); }
    ~WriteTxn() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      if (!committed_ && sqlite3_get_autocommit(impl_.db) == 0) {
        sqlite3_exec(impl_.db, "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }
    WriteTxn(const WriteTxn&) = delete;
    WriteTxn& operator=(const WriteTxn&) = delete;
    // The replay record's commits (kRelaxed) leave the generation word alone:
    // no cache holds message indices, so they need not drop other processes'
    // caches. Every other commit makes it odd before COMMIT and even after.
    void commit() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      if (!bump_) {
        impl_.stmt("COMMIT").run();
      } else {
        uint64_t odd = impl_.gen_enter();
        try {
          impl_.stmt("COMMIT").run();
        } catch (...) {
          impl_.gen_leave(odd);
          throw;
        }
        impl_.gen_leave(odd);
      }
      committed_ = true;
      if (!folded_.empty()) impl_.journal_folded(folded_);
    }

   private:
    Impl& impl_;
    JournalLock journal_;
    std::vector<store_detail::JournalEntry> folded_;
    const bool bump_;
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

  // ---- sealing (no lock needed: the keys are set before the store is shared)

  static std::vector<uint8_t> seal(const crypto::AesGcm& key, uint8_t version, std::span<const uint8_t> iv,
                                   std::span<const uint8_t> plaintext, std::span<const uint8_t> aad) {
    auto ct = key.encrypt(iv, plaintext, aad);
    std::vector<uint8_t> out;
    out.reserve(1 + iv.size() + ct.size());
    out.push_back(version);
    out.insert(out.end(), iv.begin(), iv.end());
    out.insert(out.end(), ct.begin(), ct.end());
    return out;
  }

  // Error(DECRYPTION_FAILED) for a wrong key or a damaged value.
  static crypto::SecretBytes unseal(const crypto::AesGcm& key, uint8_t version, std::span<const uint8_t> sealed,
                                    std::span<const uint8_t> aad) {
    if (sealed.size() < kSealOverhead || sealed[0] != version) {
      throw Error(ErrorCode::DECRYPTION_FAILED, "sealed value has an unknown format");
    }
    return key.decrypt(sealed.subspan(1, crypto::kAesGcmIvSize), sealed.subspan(1 + crypto::kAesGcmIvSize), aad);
  }

  // The keyed hash under which an id is stored.
  std::vector<uint8_t> name(std::string_view kind, std::string_view id) const {
    std::vector<uint8_t> in(kind.begin(), kind.end());
    in.push_back(0);
    in.insert(in.end(), id.begin(), id.end());
    auto mac = name_key->mac(in);
    return {mac.begin(), mac.begin() + kNameSize};
  }
  std::vector<uint8_t> stream_name(std::string_view stream_id) const { return name("stream", stream_id); }
  std::vector<uint8_t> session_name(std::string_view session_id) const { return name("session", session_id); }

  // The associated data of a row: the store, the table, the algorithm, the key
  // columns as stored and the one clear column the table has (0 when none).
  std::vector<uint8_t> row_aad(std::string_view table, std::string_view algorithm, std::span<const uint8_t> stream,
                               std::span<const uint8_t> session, uint64_t clear_column) const {
    std::vector<uint8_t> aad(kRowAad.begin(), kRowAad.end());
    aad.push_back(0);
    aad.insert(aad.end(), store_id.data(), store_id.data() + store_id.size());
    put_field(aad, bytes_of(table));
    put_field(aad, bytes_of(algorithm));
    put_field(aad, stream);
    put_field(aad, session);
    put_u64(aad, clear_column);
    return aad;
  }

  // HMAC(K_tags, field(stream) || field(session) || u32(index) || field(fingerprint))
  // (docs/store.md), truncated to kTagSize. Built on the stack for the sizes
  // this store writes (the record's hot path), on the heap for a malformed row's.
  std::array<uint8_t, kTagSize> replay_tag(std::span<const uint8_t> stream, std::span<const uint8_t> session,
                                           uint32_t index, std::span<const uint8_t> fingerprint) const {
    const size_t n = 4 + stream.size() + 4 + session.size() + 4 + 4 + fingerprint.size();
    std::array<uint8_t, 3 * (4 + kNameSize) + 4> small{};
    std::vector<uint8_t> large(n > small.size() ? n : 0);
    uint8_t* out = n > small.size() ? large.data() : small.data();
    size_t at = 0;
    auto u32 = [&](uint32_t v) {
      for (int i = 3; i >= 0; --i) out[at++] = static_cast<uint8_t>(v >> (8 * i));
    };
    auto field = [&](std::span<const uint8_t> v) {
      u32(static_cast<uint32_t>(v.size()));
      if (!v.empty()) std::memcpy(out + at, v.data(), v.size());
      at += v.size();
    };
    field(stream);
    field(session);
    u32(index);
    field(fingerprint);
    return truncated_tag(tag_key->mac({out, n}));
  }
  static std::array<uint8_t, kTagSize> truncated_tag(const std::array<uint8_t, 32>& mac) {
    std::array<uint8_t, kTagSize> out;
    std::copy(mac.begin(), mac.begin() + kTagSize, out.begin());
    return out;
  }

  // A row ready to be written: its keyed names, its clear column and its sealed value.
  struct SealedRow {
    std::vector<uint8_t> stream;
    std::vector<uint8_t> session;
    int64_t clear_column = 0;
    std::vector<uint8_t> sealed;
  };

  SealedRow seal_account(std::string_view pickle, std::span<const uint8_t> iv) const {
    crypto::SecretBytes pt;
    put_field_secret(pt, bytes_of(pickle));
    SealedRow r;
    r.sealed = seal(*row_key, kSealVersion, iv, pt.span(), row_aad("account", kOlm, {}, {}, 0));
    return r;
  }
  // Outbound (clear column: reserved_until) and inbound megolm rows.
  SealedRow seal_group(std::string_view table, const GroupSessionRecord& g, std::span<const uint8_t> iv) const {
    crypto::SecretBytes pt;
    put_field_secret(pt, bytes_of(g.stream_id));
    put_field_secret(pt, bytes_of(g.session_id));
    put_field_secret(pt, bytes_of(g.pickle));
    SealedRow r;
    r.stream = stream_name(g.stream_id);
    r.session = session_name(g.session_id);
    r.clear_column = table == "outbound_sessions" ? static_cast<int64_t>(g.reserved_until) : 0;
    r.sealed = seal(*row_key, kSealVersion, iv, pt.span(),
                    row_aad(table, kMegolm, r.stream, r.session, static_cast<uint64_t>(r.clear_column)));
    return r;
  }
  SealedRow seal_hybrid(const HybridSessionRecord& h, std::span<const uint8_t> iv) const {
    crypto::SecretBytes pt;
    put_field_secret(pt, bytes_of(h.stream_id));
    put_field_secret(pt, bytes_of(h.session_id));
    put_field_secret(pt, h.session_key.span());
    SealedRow r;
    r.stream = stream_name(h.stream_id);
    r.session = session_name(h.session_id);
    r.clear_column = h.miniblock_num;
    r.sealed = seal(*row_key, kSealVersion, iv, pt.span(),
                    row_aad("hybrid_sessions", kGrpaes, r.stream, r.session, static_cast<uint64_t>(h.miniblock_num)));
    return r;
  }

  // Opens a stored row into its `count` fields; STORE_CORRUPT naming the table
  // when it does not open under this store's key and this place.
  crypto::SecretBytes open_row(std::string_view table, std::string_view algorithm, std::span<const uint8_t> stream,
                               std::span<const uint8_t> session, uint64_t clear_column,
                               std::span<const uint8_t> sealed, size_t count,
                               std::vector<std::span<const uint8_t>>& fields) const {
    crypto::SecretBytes pt;
    try {
      pt = unseal(*row_key, kSealVersion, sealed, row_aad(table, algorithm, stream, session, clear_column));
    } catch (const Error&) {
      corrupt(table, "a row does not open here (moved, renamed, copied from another store, or damaged)");
    }
    if (!split_fields(pt.span(), count, fields)) corrupt(table, "a row opens but is not well formed");
    return pt;
  }

  // Rows as read by the SELECTs below (the column order is part of each).
  std::string read_account(const Stmt& s) const {  // id, sealed
    // The one row is id 0 (a CHECK that holds only for rows SQLite inserts).
    if (s.int64(0) != 0) corrupt("account", "a row that is not the account's");
    std::vector<std::span<const uint8_t>> f;
    auto pt = open_row("account", kOlm, {}, {}, 0, s.blob(1), 1, f);
    return as_string(f[0]);
  }
  GroupSessionRecord read_outbound(const Stmt& s) const {  // stream, session, reserved_until, sealed
    int64_t reserved = s.int64(2);
    if (reserved < 0 || reserved > int64_t{0xffffffff}) corrupt("outbound_sessions", "a reservation out of range");
    std::vector<std::span<const uint8_t>> f;
    auto pt = open_row("outbound_sessions", kMegolm, s.blob(0), s.blob(1), static_cast<uint64_t>(reserved), s.blob(3),
                       3, f);
    return {as_string(f[0]), as_string(f[1]), as_string(f[2]), static_cast<uint32_t>(reserved)};
  }
  GroupSessionRecord read_inbound(const Stmt& s) const {  // stream, session, sealed
    std::vector<std::span<const uint8_t>> f;
    auto pt = open_row("inbound_sessions", kMegolm, s.blob(0), s.blob(1), 0, s.blob(2), 3, f);
    return {as_string(f[0]), as_string(f[1]), as_string(f[2]), 0};
  }
  HybridSessionRecord read_hybrid(const Stmt& s) const {  // stream, session, miniblock_num, sealed
    int64_t miniblock = s.int64(2);
    std::vector<std::span<const uint8_t>> f;
    auto pt = open_row("hybrid_sessions", kGrpaes, s.blob(0), s.blob(1), static_cast<uint64_t>(miniblock), s.blob(3),
                       3, f);
    HybridSessionRecord r;
    r.stream_id = as_string(f[0]);
    r.session_id = as_string(f[1]);
    r.session_key = crypto::SecretBytes(f[2]);
    r.miniblock_num = miniblock;
    return r;
  }

  // A row found under the keyed names of (stream_id, session_id) carries those ids.
  static void check_ids(std::string_view table, std::string_view stream_id, std::string_view session_id,
                        const std::string& got_stream, const std::string& got_session) {
    if (got_stream != stream_id || got_session != session_id) corrupt(table, "a row holds other ids than its place");
  }

  // ---- opening

  void derive_keys(crypto::SecretView pickle_key) {
    auto info = [&](std::string_view label) {
      std::vector<uint8_t> v(label.begin(), label.end());
      v.insert(v.end(), store_id.data(), store_id.data() + store_id.size());
      return v;
    };
    row_key = crypto::AesGcm::New(crypto::hkdf_sha256(pickle_key, bytes_of(kKdfSalt), info("sealed rows"), 32));
    name_key.emplace(crypto::hkdf_sha256(pickle_key, bytes_of(kKdfSalt), info("keyed names"), 32));
    tag_key.emplace(crypto::hkdf_sha256(pickle_key, bytes_of(kKdfSalt), info("replay record"), 32));
  }

  static std::vector<uint8_t> key_check_v4(const crypto::AesGcm& check, std::span<const uint8_t> store_id,
                                           std::span<const uint8_t> iv) {
    crypto::SecretBytes pt(kKeyCheckPlaintext);
    pt.append(store_id);
    return seal(check, kSealVersion, iv, pt.span(), bytes_of(kKeyCheckAad));
  }

  // Version 4: reads the key check, which holds the store id. STORE_CORRUPT when
  // there is none; STORE_WRONG_PICKLE_KEY when the pickle key does not open it.
  void read_key_check_v4() TOWNS_REQUIRES(mu) {
    if (pragma_int("SELECT count(*) FROM meta WHERE key <> 'key_check'") != 0) {
      corrupt("meta", "entries this library does not write");
    }
    auto s = stmt("SELECT value FROM meta WHERE key = 'key_check'");
    if (!s.step()) corrupt("meta", "the store has no key check");
    auto sealed = s.blob(0);
    crypto::SecretBytes pt;
    try {
      pt = unseal(*check_key, kSealVersion, sealed, bytes_of(kKeyCheckAad));
    } catch (const Error&) {
      throw Error(ErrorCode::STORE_WRONG_PICKLE_KEY, "the pickle key does not open this store");
    }
    if (pt.size() != kKeyCheckPlaintext.size() + kStoreIdSize ||
        pt.view().substr(0, kKeyCheckPlaintext.size()) != kKeyCheckPlaintext) {
      corrupt("meta", "the key check opens but is not well formed");
    }
    store_id = crypto::SecretBytes(pt.span().subspan(kKeyCheckPlaintext.size()));
  }

  // Versions 1 to 3: false when there is no key check; STORE_WRONG_PICKLE_KEY when
  // the pickle key does not open it.
  bool key_check_v1_present() TOWNS_REQUIRES(mu) {
    auto s = stmt("SELECT value FROM meta WHERE key = 'key_check'");
    if (!s.step()) return false;
    auto sealed = s.blob(0);
    try {
      auto pt = unseal(*check_key, kSealVersionV1, sealed, bytes_of("key_check"));
      if (pt.view() == kKeyCheckPlaintextV1) return true;
    } catch (const Error&) {
    }
    throw Error(ErrorCode::STORE_WRONG_PICKLE_KEY, "the pickle key does not open this store");
  }

  // Versions 1 to 3: any row in any table.
  bool has_data_v1(int version) TOWNS_REQUIRES(mu) {
    std::vector<std::string> tables = {"meta", "account", "outbound_sessions", "inbound_sessions", "hybrid_sessions"};
    tables.push_back(version >= 3 ? "message_indices" : "user_devices");
    for (const auto& t : tables) {
      auto s = stmt("SELECT 1 FROM " + t + " LIMIT 1");
      if (s.step()) return true;
    }
    return false;
  }

  // Version 3 to 4 inside the caller's transaction: every row re-sealed under
  // the new store id and moved under keyed names.
  void migrate_to_4(IvStream& ivs) TOWNS_REQUIRES(mu) {
    exec(kSetAsideV3);
    exec(kSchemaV4);
    {
      auto s = stmt("SELECT pickle FROM v3_account");
      while (s.step()) {
        auto row = seal_account(s.text(0), ivs.next().span());
        stmt("INSERT INTO account (id, sealed) VALUES (0, ?)").bind(1, std::span<const uint8_t>(row.sealed)).run();
      }
    }
    {
      auto s = stmt("SELECT stream_id, session_id, pickle, reserved_until FROM v3_outbound_sessions");
      while (s.step()) {
        int64_t reserved = s.int64(3);
        if (reserved < 0 || reserved > int64_t{0xffffffff}) corrupt("outbound_sessions", "a reservation out of range");
        GroupSessionRecord g{s.text(0), s.text(1), s.text(2), static_cast<uint32_t>(reserved)};
        write_row(insert_outbound, seal_group("outbound_sessions", g, ivs.next().span()));
      }
    }
    {
      auto s = stmt("SELECT stream_id, session_id, pickle FROM v3_inbound_sessions");
      while (s.step()) {
        GroupSessionRecord g{s.text(0), s.text(1), s.text(2), 0};
        write_row(insert_inbound, seal_group("inbound_sessions", g, ivs.next().span()));
      }
    }
    {
      auto s = stmt("SELECT stream_id, session_id, miniblock_num, sealed_key FROM v3_hybrid_sessions");
      while (s.step()) {
        HybridSessionRecord h;
        h.stream_id = s.text(0);
        h.session_id = s.text(1);
        h.miniblock_num = s.int64(2);
        try {
          h.session_key = unseal(*hybrid_key_v1, kSealVersionV1, s.blob(3), hybrid_aad_v1(h.stream_id, h.session_id));
        } catch (const Error&) {
          corrupt("hybrid_sessions", "a sealed hybrid session key does not open (damaged row)");
        }
        write_row(insert_hybrid, seal_hybrid(h, ivs.next().span()));
      }
    }
    {
      auto s = stmt("SELECT stream_id, session_id, message_index, fingerprint FROM v3_message_indices");
      while (s.step()) {
        auto fp = s.blob(3);
        int64_t index = s.int64(2);
        if (fp.size() != 16 || index < 0 || index > int64_t{0xffffffff}) corrupt("message_indices", "a malformed row");
        MessageIndexRecord r{s.text(0), s.text(1), static_cast<uint32_t>(index), {}};
        std::copy(fp.begin(), fp.end(), r.fingerprint.begin());
        insert_index(journal_entry(r));
      }
    }
    exec(kDropV3);
    exec("DELETE FROM meta");
  }

  static constexpr std::string_view insert_outbound =
      "INSERT OR REPLACE INTO outbound_sessions (stream, session, reserved_until, sealed) VALUES (?, ?, ?, ?)";
  static constexpr std::string_view insert_inbound =
      "INSERT OR REPLACE INTO inbound_sessions (stream, session, sealed) VALUES (?, ?, ?)";
  static constexpr std::string_view insert_hybrid =
      "INSERT OR REPLACE INTO hybrid_sessions (stream, session, miniblock_num, sealed) VALUES (?, ?, ?, ?)";

  void write_row(std::string_view sql, const SealedRow& r) TOWNS_REQUIRES(mu) {
    auto s = stmt(sql);
    s.bind(1, std::span<const uint8_t>(r.stream)).bind(2, std::span<const uint8_t>(r.session));
    if (sql == insert_inbound) {
      s.bind(3, std::span<const uint8_t>(r.sealed));
    } else {
      s.bind(3, r.clear_column).bind(4, std::span<const uint8_t>(r.sealed));
    }
    s.run();
  }

  // True when the (stream, session, index) was new.
  bool insert_index(const store_detail::JournalEntry& e) TOWNS_REQUIRES(mu) {
    return insert_indices({&e, 1}) == 1;
  }
  // One INSERT of 1 or kFoldRows rows (a fold writes kFoldRows to a statement:
  // half the time of one statement a row); rows already there are left alone.
  // Returns how many were new.
  static constexpr size_t kFoldRows = 32;
  int insert_indices(std::span<const store_detail::JournalEntry> rows) TOWNS_REQUIRES(mu) {
    static const auto sql = [](size_t n) {
      std::string q = "INSERT INTO message_indices (stream, session, message_index, fingerprint, tag) VALUES ";
      for (size_t i = 0; i < n; ++i) q += i == 0 ? "(?, ?, ?, ?, ?)" : ", (?, ?, ?, ?, ?)";
      return q + " ON CONFLICT DO NOTHING";
    };
    static const std::string one = sql(1), many = sql(kFoldRows);
    auto s = stmt(rows.size() == 1 ? one : many);
    int at = 0;  // the parameter before this row's first
    for (const auto& e : rows) {  // rows outlive s
      s.bind_unowned(at + 1, e.stream)
          .bind_unowned(at + 2, e.session)
          .bind(at + 3, static_cast<int64_t>(e.index))
          .bind_unowned(at + 4, e.fingerprint)
          .bind_unowned(at + 5, e.tag);
      at += 5;
    }
    s.run();
    return sqlite3_changes(db);
  }

  // ---- the replay journal (docs/store.md, "The replay journal"); every
  // method below runs with the journal lock held.

  // The record's entry for r under the keyed names of its stream and session.
  store_detail::JournalEntry journal_entry(const std::array<uint8_t, kNameSize>& stream,
                                           const std::array<uint8_t, kNameSize>& session,
                                           const MessageIndexRecord& r) const {
    store_detail::JournalEntry e{stream, session, r.message_index, r.fingerprint, {}};
    e.tag = replay_tag(e.stream, e.session, e.index, e.fingerprint);
    return e;
  }
  static std::array<uint8_t, kNameSize> name_array(const std::vector<uint8_t>& name) {
    std::array<uint8_t, kNameSize> out;
    std::copy(name.begin(), name.end(), out.begin());
    return out;
  }
  store_detail::JournalEntry journal_entry(const MessageIndexRecord& r) const {
    return journal_entry(name_array(stream_name(r.stream_id)), name_array(session_name(r.session_id)), r);
  }
  // journal_entry, with the keyed names of the last (stream, session) kept:
  // a run of events of one session computes them once.
  store_detail::JournalEntry journal_entry_cached(const MessageIndexRecord& r) TOWNS_REQUIRES(mu) {
    if (!last_names || last_names->stream_id != r.stream_id || last_names->session_id != r.session_id) {
      last_names = LastNames{r.stream_id, r.session_id, name_array(stream_name(r.stream_id)),
                             name_array(session_name(r.session_id))};
    }
    return journal_entry(last_names->stream, last_names->session, r);
  }

  void check_journal_entry(const store_detail::JournalEntry& e) const {
    if (!crypto::constant_time_equal(e.tag, replay_tag(e.stream, e.session, e.index, e.fingerprint))) {
      corrupt("the replay journal", "an entry does not check here (damaged, or written for another store)");
    }
  }

  // Writes the journal's entries into the open write transaction (in key order),
  // each one's tag checked first. Returns them.
  std::vector<store_detail::JournalEntry> write_journal_rows() TOWNS_REQUIRES(mu) {
    auto rows = journal.entries();
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      return std::tie(a.stream, a.session, a.index) < std::tie(b.stream, b.session, b.index);
    });
    for (const auto& e : rows) check_journal_entry(e);
    // Already there only after a crash between a fold's COMMIT and its clear.
    size_t at = 0;
    for (; at + kFoldRows <= rows.size(); at += kFoldRows) insert_indices(std::span(rows).subspan(at, kFoldRows));
    for (; at < rows.size(); ++at) (void)insert_index(rows[at]);
    return rows;
  }

  // After the COMMIT of a transaction that wrote `rows` to message_indices.
  void journal_folded(const std::vector<store_detail::JournalEntry>& rows) TOWNS_REQUIRES(mu) {
    journal.clear();
    folded_epoch = journal.epoch();
    const store_detail::JournalEntry* run = nullptr;  // the first row of a run of one session
    decltype(folded_max)::iterator it = folded_max.end();
    for (const auto& e : rows) {
      if (run == nullptr || run->stream != e.stream || run->session != e.session) {
        run = &e;
        it = folded_max.find(folded_key(e));
      }
      if (it != folded_max.end()) it->second = std::max<int64_t>(it->second, e.index);
    }
  }

  static std::string folded_key(const store_detail::JournalEntry& e) {
    std::string k(e.stream.begin(), e.stream.end());
    k.append(e.session.begin(), e.session.end());
    return k;
  }

  // The highest index of the session in message_indices (-1: none), read once
  // per epoch.
  int64_t folded_max_of(const store_detail::JournalEntry& e) TOWNS_REQUIRES(mu) {
    auto key = folded_key(e);
    if (auto it = folded_max.find(key); it != folded_max.end()) return it->second;
    auto s = stmt("SELECT coalesce(max(message_index), -1) FROM message_indices WHERE stream = ? AND session = ?");
    s.bind(1, std::span<const uint8_t>(e.stream)).bind(2, std::span<const uint8_t>(e.session));
    int64_t v = s.step() ? s.int64(0) : -1;
    if (folded_max.size() >= kFoldedMaxLimit) folded_max.clear();
    folded_max.emplace(std::move(key), v);
    return v;
  }

  // The stored row at e's (stream, session, index) against e's fingerprint.
  std::optional<ReplayCheck> check_stored(const store_detail::JournalEntry& e) TOWNS_REQUIRES(mu) {
    auto s = stmt(
        "SELECT stream, session, message_index, fingerprint, tag FROM message_indices "
        "WHERE stream = ? AND session = ? AND message_index = ?");
    s.bind(1, std::span<const uint8_t>(e.stream))
        .bind(2, std::span<const uint8_t>(e.session))
        .bind(3, static_cast<int64_t>(e.index));
    if (!s.step()) return std::nullopt;
    check_index_row(s);
    auto stored = s.blob(3);
    bool same = stored.size() == e.fingerprint.size() && std::equal(stored.begin(), stored.end(), e.fingerprint.begin());
    return same ? ReplayCheck::kSame : ReplayCheck::kConflict;
  }

  // One entry against the journal, the entries this call adds before it, and
  // the file; nothing is written.
  ReplayCheck check_entry(const store_detail::JournalEntry& e, const std::vector<store_detail::JournalEntry>& added)
      TOWNS_REQUIRES(mu) {
    auto same_place = [&](const store_detail::JournalEntry& o) {
      return o.index == e.index && o.stream == e.stream && o.session == e.session;
    };
    if (auto j = journal.find(e.stream, e.session, e.index)) {
      check_journal_entry(*j);
      return j->fingerprint == e.fingerprint ? ReplayCheck::kSame : ReplayCheck::kConflict;
    }
    for (const auto& a : added) {
      if (same_place(a)) return a.fingerprint == e.fingerprint ? ReplayCheck::kSame : ReplayCheck::kConflict;
    }
    if (int64_t{e.index} > folded_max_of(e)) return ReplayCheck::kNew;  // above everything in the file
    return check_stored(e).value_or(ReplayCheck::kNew);
  }

  // Folds the journal into the file in a transaction of its own (nothing when
  // it is empty).
  void fold_journal(WriteTxn::Sync sync) TOWNS_REQUIRES(mu) {
    JournalLock jl(*this);
    if (!journal.attached() || !journal.has_entries()) return;
    WriteTxn txn(*this, sync);
    txn.commit();
  }

  std::vector<ReplayCheck> record(const std::vector<store_detail::JournalEntry>& in) TOWNS_REQUIRES(mu);

  // Opens every row once (and checks the file's structure): a file that holds
  // anything this store did not write here is refused at open.
  void verify_all() TOWNS_REQUIRES(mu) {
    {
      auto s = stmt("PRAGMA quick_check");
      if (!s.step() || s.text(0) != "ok") corrupt("the store file", "PRAGMA quick_check fails");
    }
    {
      auto s = stmt("SELECT id, sealed FROM account");
      while (s.step()) (void)read_account(s);
    }
    {
      auto s = stmt("SELECT stream, session, reserved_until, sealed FROM outbound_sessions");
      while (s.step()) (void)read_outbound(s);
    }
    {
      auto s = stmt("SELECT stream, session, sealed FROM inbound_sessions");
      while (s.step()) (void)read_inbound(s);
    }
    {
      auto s = stmt("SELECT stream, session, miniblock_num, sealed FROM hybrid_sessions");
      while (s.step()) (void)read_hybrid(s);
    }
    {
      auto s = stmt("SELECT stream, session, message_index, fingerprint, tag FROM message_indices");
      while (s.step()) check_index_row(s);
    }
  }

  // stream, session, message_index, fingerprint, tag
  void check_index_row(const Stmt& s) const {
    int64_t index = s.int64(2);
    auto fp = s.blob(3);
    auto tag = s.blob(4);
    if (index < 0 || index > int64_t{0xffffffff} || fp.size() != 16 ||
        !crypto::constant_time_equal(tag, replay_tag(s.blob(0), s.blob(1), static_cast<uint32_t>(index), fp))) {
      corrupt("message_indices", "a row does not check here (moved, copied from another store, or damaged)");
    }
  }

  void open_existing(const std::string& path, crypto::SecretView pickle_key, StoreOpenMode mode,
                     const SqliteStoreOptions& opts, Drawn& drawn) TOWNS_EXCLUDES(mu);
  static bool create_store_file(const std::string& path, const crypto::AesGcm& check_key, Drawn& drawn);
};

// Builds a new, complete store under a temporary name next to `path` and links
// it into place. False when `path` appeared meanwhile (nothing is left behind).
bool SqliteCryptoStore::Impl::create_store_file(const std::string& path, const crypto::AesGcm& check_key,
                                                Drawn& drawn) {
  const std::string tmp = path + ".new-" + drawn.temp_suffix;
  struct Cleanup {
    std::string tmp;
    ~Cleanup() {
      for (const char* ext : {"", "-wal", "-shm", "-journal"}) (void)::unlink((tmp + ext).c_str());
    }
  } cleanup{tmp};
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (fd < 0) throw Error(ErrorCode::STORE_ERROR, "cannot create the store file: " + std::string(std::strerror(errno)));
  int chmod_rc = ::fchmod(fd, S_IRUSR | S_IWUSR);  // whatever the umask
  ::close(fd);
  if (chmod_rc != 0) throw Error(ErrorCode::STORE_ERROR, "cannot make the new store file private");
  {
    ClosingDb c;
    int rc = sqlite3_open_v2(sqlite_path(tmp).c_str(), &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(c.db, rc, "cannot open the new store file");
    exec_raw(c.db, "PRAGMA journal_mode=WAL", "creating the store");
    exec_raw(c.db, "PRAGMA synchronous=FULL", "creating the store");
    exec_raw(c.db, "BEGIN IMMEDIATE", "creating the store");
    exec_raw(c.db, kSchemaV4, "creating the store");
    exec_raw(c.db, ("PRAGMA application_id=" + std::to_string(SqliteCryptoStore::kApplicationId)).c_str(),
             "creating the store");
    exec_raw(c.db, ("PRAGMA user_version=" + std::to_string(SqliteCryptoStore::kSchemaVersion)).c_str(),
             "creating the store");
    IvStream ivs(drawn.iv_seed);
    auto check = SqliteCryptoStore::Impl::key_check_v4(check_key, drawn.store_id.span(), ivs.next().span());
    sqlite3_stmt* s = nullptr;
    rc = sqlite3_prepare_v2(c.db, "INSERT INTO meta (key, value) VALUES ('key_check', ?)", -1, &s, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(c.db, rc, "creating the store");
    sqlite3_bind_blob(s, 1, check.data(), static_cast<int>(check.size()), SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) throw_sqlite(c.db, rc, "creating the store");
    exec_raw(c.db, "COMMIT", "creating the store");
  }  // closing the only connection checkpoints everything into the file
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) return false;
    throw Error(ErrorCode::STORE_ERROR, "cannot put the new store in place: " + std::string(std::strerror(errno)));
  }
  fsync_dir_of(path);
  return true;
}

void SqliteCryptoStore::Impl::open_existing(const std::string& path, crypto::SecretView pickle_key,
                                            StoreOpenMode mode, const SqliteStoreOptions& opts, Drawn& drawn) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(ErrorCode::STORE_ERROR, "cannot read the store file: " + std::string(std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::STORE_ERROR, "the store path is not a regular file");
  if (st.st_size == 0) corrupt("the store file", "it is empty (0 bytes)");
  for (const char* ext : {"", "-wal", "-shm"}) restrict_mode(path + ext);

  // A -wal already there may be another store's: until the file is accepted,
  // closing must not checkpoint it into the file. (Without one, closing after a
  // refusal has nothing to checkpoint, and removes the empty -wal it made.)
  struct stat wal {};
  const bool had_wal = ::stat((path + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;

  MutexLock l(mu);
  int rc = sqlite3_open_v2(sqlite_path(path).c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "cannot open the store file");
  if (had_wal) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, opts.busy_timeout_ms);

  // The checks read one snapshot (another process may be migrating the file):
  // a deferred read transaction, which writes nothing, ended before any write.
  struct ReadTxn {
    Impl& impl;
    bool open = false;
    void begin() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      impl.exec("BEGIN");
      open = true;
    }
    void end() TOWNS_NO_THREAD_SAFETY_ANALYSIS {
      if (open) sqlite3_exec(impl.db, "ROLLBACK", nullptr, nullptr, nullptr);
      open = false;
    }
    ~ReadTxn() { end(); }
  } read{*this};
  for (int attempt = 0;; ++attempt) {
    read.begin();
    // The version first: nothing else runs on a file of a version we do not know.
    int64_t version = pragma_int("PRAGMA user_version");
    if (version > kSchemaVersion) {
      throw Error(ErrorCode::STORE_NEWER_SCHEMA, "the store has schema version " + std::to_string(version) +
                                                     ", newer than this library's " +
                                                     std::to_string(kSchemaVersion));
    }
    if (version < 1) {
      corrupt("the store file", "schema version " + std::to_string(version) + " is not one this library writes");
    }
    if (pragma_int("PRAGMA application_id") != kApplicationId) {
      corrupt("the store file", "it is not a towns-e2ee store (application id)");
    }
    const int v = static_cast<int>(version);
    auto have = schema_objects(db);
    auto want = reference_schema(v);
    if (v < kSchemaVersion) {
      // Files of older versions: the same objects and columns (their SQL text
      // depends on the SQLite that altered them).
      for (auto* list : {&have, &want}) {
        for (auto& o : *list) {
          if (std::get<0>(o) != "column") std::get<3>(o).clear();
        }
      }
    }
    if (have != want) corrupt("the store file", "its schema is not version " + std::to_string(v) + "'s");

    if (v == kSchemaVersion) {
      read_key_check_v4();
      derive_keys(pickle_key);
      if (opts.verify_on_open) verify_all();  // in the same snapshot
      read.end();
      break;
    }
    if (!key_check_v1_present() && (mode == StoreOpenMode::kOpen || has_data_v1(v))) {
      corrupt("meta", "the store has no key check");
    }
    read.end();
    // Upgrade in one transaction (the pickle key is known to be right); the
    // clear rows it drops are overwritten (secure_delete, below).
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA secure_delete=ON");
    WriteTxn txn(*this);
    if (pragma_int("PRAGMA user_version") != version) {
      // Another process migrated it meanwhile: check again.
      if (attempt >= 2) throw Error(ErrorCode::STORE_BUSY, "the store's version keeps changing");
      clear_statements();
      continue;
    }
    for (int m = v; m < kOldVersions; ++m) exec(kMigrations[m]);
    store_id = drawn.store_id;
    derive_keys(pickle_key);
    IvStream ivs(drawn.iv_seed);
    migrate_to_4(ivs);
    auto check = key_check_v4(*check_key, store_id.span(), ivs.next().span());
    stmt("INSERT INTO meta (key, value) VALUES ('key_check', ?)").bind(1, std::span<const uint8_t>(check)).run();
    exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
    txn.commit();
    clear_statements();
    if (opts.verify_on_open) verify_all();
    break;
  }
  // Accepted: from here on the file is ours to write.
  gen = GenerationPage::open(path + "-gen");
  gen_expected = std::atomic_ref<uint64_t>(*gen.word).load();
  busy_timeout_ms = opts.busy_timeout_ms;
  gen.take_live_slot(path + "-gen");
  std::memcpy(&lock_nonce, drawn.lock_nonce.data(), sizeof lock_nonce);
  journal = gen.journal();
  if (opts.verify_on_open) {
    try {
      JournalLock jl(*this);
      for (const auto& e : journal.entries()) check_journal_entry(e);
    } catch (...) {
      journal = {};  // refused: closing must not fold it
      throw;
    }
  }
  exec("PRAGMA journal_mode=WAL");
  synchronous_full = opts.synchronous_full;
  exec(opts.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // Deleted rows (sessions, the old clear rows of a migration) are overwritten.
  exec("PRAGMA secure_delete=ON");
  if (had_wal) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
}

std::unique_ptr<SqliteCryptoStore> SqliteCryptoStore::open(const std::string& path, crypto::SecretView pickle_key,
                                                           SqliteStoreOptions options) {
  return open(path, pickle_key, StoreOpenMode::kEither, options);
}

std::unique_ptr<SqliteCryptoStore> SqliteCryptoStore::open(const std::string& path, crypto::SecretView pickle_key,
                                                           StoreOpenMode mode, SqliteStoreOptions options) {
  if (pickle_key.size() == 0) throw Error(ErrorCode::INVALID_ARGUMENT, "the pickle key is empty");
  if (path.empty()) throw Error(ErrorCode::INVALID_ARGUMENT, "the store path is empty");
  if (path.find('\0') != std::string::npos) throw Error(ErrorCode::INVALID_ARGUMENT, "the store path holds a NUL");
  auto impl = std::make_unique<Impl>();
  impl->rng = options.rng != nullptr ? options.rng : &crypto::os_random();
  // Everything open() may need from the random source, drawn before any lock.
  Drawn drawn{impl->rng->bytes(kStoreIdSize), impl->rng->bytes(32), crypto::hex_encode(impl->rng->bytes(8).span()),
              impl->rng->bytes(8)};
  impl->check_key = crypto::AesGcm::New(
      crypto::hkdf_sha256(pickle_key, bytes_of(kKdfSaltV1), bytes_of("pickle key check"), 32));
  impl->hybrid_key_v1 = crypto::AesGcm::New(
      crypto::hkdf_sha256(pickle_key, bytes_of(kKdfSaltV1), bytes_of("hybrid session keys"), 32));

  for (int attempt = 0; attempt < 2; ++attempt) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (mode == StoreOpenMode::kCreate) throw Error(ErrorCode::STORE_ERROR, "a file exists at the store path");
      break;
    }
    if (errno != ENOENT) {
      throw Error(ErrorCode::STORE_ERROR, "cannot read the store path: " + std::string(std::strerror(errno)));
    }
    if (mode == StoreOpenMode::kOpen) throw Error(ErrorCode::STORE_ERROR, "there is no store at the path");
    if (Impl::create_store_file(path, *impl->check_key, drawn)) break;
    // Another process created it meanwhile.
    if (mode == StoreOpenMode::kCreate) throw Error(ErrorCode::STORE_ERROR, "a file exists at the store path");
  }
  impl->open_existing(path, pickle_key, mode, options, drawn);
  return std::unique_ptr<SqliteCryptoStore>(new SqliteCryptoStore(std::move(impl)));
}

SqliteCryptoStore::SqliteCryptoStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteCryptoStore::~SqliteCryptoStore() = default;

std::optional<std::string> SqliteCryptoStore::get_account() {
  MutexLock l(impl_->mu);
  // Every row, not just id 0: a row whose id was changed is not a missing account.
  auto s = impl_->stmt("SELECT id, sealed FROM account");
  if (!s.step()) return std::nullopt;
  auto pickle = impl_->read_account(s);
  if (s.step()) corrupt("account", "more than one row");
  return pickle;
}
void SqliteCryptoStore::delete_account() {
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM account").run();
  txn.commit();
}

std::optional<GroupSessionRecord> SqliteCryptoStore::get_outbound_session(std::string_view stream_id) {
  auto stream = impl_->stream_name(stream_id);
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("SELECT stream, session, reserved_until, sealed FROM outbound_sessions WHERE stream = ?");
  s.bind(1, std::span<const uint8_t>(stream));
  if (!s.step()) return std::nullopt;
  auto r = impl_->read_outbound(s);
  if (r.stream_id != stream_id) corrupt("outbound_sessions", "a row holds another stream than its place");
  return r;
}
void SqliteCryptoStore::delete_outbound_session(std::string_view stream_id) {
  auto stream = impl_->stream_name(stream_id);
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM outbound_sessions WHERE stream = ?").bind(1, std::span<const uint8_t>(stream)).run();
  txn.commit();
}
std::vector<GroupSessionRecord> SqliteCryptoStore::all_outbound_sessions() {
  std::vector<GroupSessionRecord> out;
  {
    MutexLock l(impl_->mu);
    auto s = impl_->stmt("SELECT stream, session, reserved_until, sealed FROM outbound_sessions");
    while (s.step()) out.push_back(impl_->read_outbound(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.stream_id < b.stream_id; });
  return out;
}

std::optional<GroupSessionRecord> SqliteCryptoStore::get_inbound_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  auto stream = impl_->stream_name(stream_id);
  auto session = impl_->session_name(session_id);
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("SELECT stream, session, sealed FROM inbound_sessions WHERE stream = ? AND session = ?");
  s.bind(1, std::span<const uint8_t>(stream)).bind(2, std::span<const uint8_t>(session));
  if (!s.step()) return std::nullopt;
  auto r = impl_->read_inbound(s);
  Impl::check_ids("inbound_sessions", stream_id, session_id, r.stream_id, r.session_id);
  return r;
}
void SqliteCryptoStore::delete_inbound_session(std::string_view stream_id, std::string_view session_id) {
  auto stream = impl_->stream_name(stream_id);
  auto session = impl_->session_name(session_id);
  MutexLock l(impl_->mu);
  // The journal is folded and emptied in a transaction of its own first, under
  // the same journal lock: folded in this one, its entries would stay live until
  // it is emptied after COMMIT, and a crash in between would bring the deleted
  // session's entries back.
  Impl::JournalLock jl(*impl_);
  impl_->fold_journal(Impl::WriteTxn::Sync::kRelaxed);
  Impl::WriteTxn txn(*impl_);
  for (const char* sql : {"DELETE FROM inbound_sessions WHERE stream = ? AND session = ?",
                          "DELETE FROM message_indices WHERE stream = ? AND session = ?"}) {
    impl_->stmt(sql).bind(1, std::span<const uint8_t>(stream)).bind(2, std::span<const uint8_t>(session)).run();
  }
  txn.commit();
}
std::vector<std::string> SqliteCryptoStore::inbound_session_ids(std::string_view stream_id) {
  auto stream = impl_->stream_name(stream_id);
  std::vector<std::string> out;
  {
    MutexLock l(impl_->mu);
    auto s = impl_->stmt("SELECT stream, session, sealed FROM inbound_sessions WHERE stream = ?");
    s.bind(1, std::span<const uint8_t>(stream));
    while (s.step()) {
      auto r = impl_->read_inbound(s);
      if (r.stream_id != stream_id) corrupt("inbound_sessions", "a row holds another stream than its place");
      out.push_back(std::move(r.session_id));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<GroupSessionRecord> SqliteCryptoStore::all_inbound_sessions() {
  std::vector<GroupSessionRecord> out;
  {
    MutexLock l(impl_->mu);
    auto s = impl_->stmt("SELECT stream, session, sealed FROM inbound_sessions");
    while (s.step()) out.push_back(impl_->read_inbound(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.stream_id, a.session_id) < std::tie(b.stream_id, b.session_id);
  });
  return out;
}

std::optional<HybridSessionRecord> SqliteCryptoStore::get_hybrid_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  auto stream = impl_->stream_name(stream_id);
  auto session = impl_->session_name(session_id);
  MutexLock l(impl_->mu);
  auto s = impl_->stmt(
      "SELECT stream, session, miniblock_num, sealed FROM hybrid_sessions WHERE stream = ? AND session = ?");
  s.bind(1, std::span<const uint8_t>(stream)).bind(2, std::span<const uint8_t>(session));
  if (!s.step()) return std::nullopt;
  auto r = impl_->read_hybrid(s);
  Impl::check_ids("hybrid_sessions", stream_id, session_id, r.stream_id, r.session_id);
  return r;
}
std::optional<HybridSessionRecord> SqliteCryptoStore::latest_hybrid_session(std::string_view stream_id) {
  auto stream = impl_->stream_name(stream_id);
  std::optional<HybridSessionRecord> best;
  MutexLock l(impl_->mu);
  // The rows at the stream's highest miniblock; the lowest session id among them
  // (ids are stored keyed, so the tie is broken here).
  auto s = impl_->stmt(
      "SELECT stream, session, miniblock_num, sealed FROM hybrid_sessions WHERE stream = ?1 AND miniblock_num = "
      "(SELECT max(miniblock_num) FROM hybrid_sessions WHERE stream = ?1)");
  s.bind(1, std::span<const uint8_t>(stream));
  while (s.step()) {
    auto r = impl_->read_hybrid(s);
    if (r.stream_id != stream_id) corrupt("hybrid_sessions", "a row holds another stream than its place");
    if (!best || r.session_id < best->session_id) best = std::move(r);
  }
  return best;
}
void SqliteCryptoStore::delete_hybrid_session(std::string_view stream_id, std::string_view session_id) {
  auto stream = impl_->stream_name(stream_id);
  auto session = impl_->session_name(session_id);
  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);
  impl_->stmt("DELETE FROM hybrid_sessions WHERE stream = ? AND session = ?")
      .bind(1, std::span<const uint8_t>(stream))
      .bind(2, std::span<const uint8_t>(session))
      .run();
  txn.commit();
}
std::vector<std::string> SqliteCryptoStore::hybrid_session_ids(std::string_view stream_id) {
  auto stream = impl_->stream_name(stream_id);
  std::vector<std::string> out;
  {
    MutexLock l(impl_->mu);
    auto s = impl_->stmt("SELECT stream, session, miniblock_num, sealed FROM hybrid_sessions WHERE stream = ?");
    s.bind(1, std::span<const uint8_t>(stream));
    while (s.step()) {
      auto r = impl_->read_hybrid(s);
      if (r.stream_id != stream_id) corrupt("hybrid_sessions", "a row holds another stream than its place");
      out.push_back(std::move(r.session_id));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<HybridSessionRecord> SqliteCryptoStore::all_hybrid_sessions() {
  std::vector<HybridSessionRecord> out;
  {
    MutexLock l(impl_->mu);
    auto s = impl_->stmt("SELECT stream, session, miniblock_num, sealed FROM hybrid_sessions");
    while (s.step()) out.push_back(impl_->read_hybrid(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.stream_id, a.session_id) < std::tie(b.stream_id, b.session_id);
  });
  return out;
}

void SqliteCryptoStore::delete_all() {
  MutexLock l(impl_->mu);
  Impl::JournalLock jl(*impl_);  // as delete_inbound_session
  impl_->fold_journal(Impl::WriteTxn::Sync::kRelaxed);
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
  auto iv = [&] { return impl_->rng->bytes(crypto::kAesGcmIvSize); };
  std::optional<Impl::SealedRow> account;
  if (c.account.has_value()) account = impl_->seal_account(*c.account, iv().span());
  std::vector<Impl::SealedRow> outbound, inbound, hybrid;
  for (const auto& r : c.outbound_sessions) outbound.push_back(impl_->seal_group("outbound_sessions", r, iv().span()));
  for (const auto& r : c.inbound_sessions) inbound.push_back(impl_->seal_group("inbound_sessions", r, iv().span()));
  for (const auto& r : c.hybrid_sessions) hybrid.push_back(impl_->seal_hybrid(r, iv().span()));
  struct Condition {
    std::vector<uint8_t> stream;
    std::optional<std::vector<uint8_t>> session;
    int64_t reserved_until;
  };
  std::vector<Condition> conditions;
  for (const auto& cond : c.expect_outbound) {
    conditions.push_back({impl_->stream_name(cond.stream_id),
                          cond.session_id ? std::optional(impl_->session_name(*cond.session_id)) : std::nullopt,
                          static_cast<int64_t>(cond.reserved_until)});
  }

  MutexLock l(impl_->mu);
  Impl::WriteTxn txn(*impl_);  // rolled back on every return or throw before commit()
  for (const auto& cond : conditions) {
    auto s = impl_->stmt("SELECT session, reserved_until FROM outbound_sessions WHERE stream = ?");
    s.bind(1, std::span<const uint8_t>(cond.stream));
    bool exists = s.step();
    if (!cond.session.has_value()) {
      if (exists) return false;
      continue;
    }
    if (!exists || s.blob(0) != *cond.session || s.int64(1) != cond.reserved_until) return false;
  }
  if (account) {
    impl_->stmt("INSERT OR REPLACE INTO account (id, sealed) VALUES (0, ?)")
        .bind(1, std::span<const uint8_t>(account->sealed))
        .run();
  }
  for (const auto& r : outbound) impl_->write_row(Impl::insert_outbound, r);
  for (const auto& r : inbound) impl_->write_row(Impl::insert_inbound, r);
  for (const auto& r : hybrid) impl_->write_row(Impl::insert_hybrid, r);
  txn.commit();
  return true;
}

std::vector<ReplayCheck> SqliteCryptoStore::record_message_indices(const std::vector<MessageIndexRecord>& entries) {
  if (entries.empty()) return {};
  MutexLock l(impl_->mu);
  // The keyed names and tags (HMACs, which call nothing outside the store).
  std::vector<store_detail::JournalEntry> named;
  named.reserve(entries.size());
  for (const auto& e : entries) named.push_back(impl_->journal_entry_cached(e));
  return impl_->record(named);
}

// docs/store.md, "The replay journal".
std::vector<ReplayCheck> SqliteCryptoStore::Impl::record(const std::vector<store_detail::JournalEntry>& in) {
  using store_detail::ReplayJournal;
  std::vector<ReplayCheck> out;
  out.reserve(in.size());
  JournalLock jl(*this);
  // The record survives a crash of the process either way (the journal is a
  // shared mapping of a file, a relaxed commit is in the WAL), and the next key
  // write makes it durable against power loss too: keys are never written with
  // kRelaxed, and every key write folds the journal into its transaction.
  if (!journal.attached() || in.size() > ReplayJournal::kFoldAt) {
    // A backlog: one transaction, which folds the journal first.
    WriteTxn txn(*this, WriteTxn::Sync::kRelaxed);
    for (const auto& e : in) {
      if (insert_index(e)) {
        out.push_back(ReplayCheck::kNew);
        txn.also_folded(e);
        continue;
      }
      auto stored = check_stored(e);
      if (!stored) throw Error(ErrorCode::STORE_ERROR, "a message index neither inserted nor found");
      out.push_back(*stored);
    }
    txn.commit();
    return out;
  }
  if (journal.count() + in.size() > ReplayJournal::kFoldAt) fold_journal(WriteTxn::Sync::kRelaxed);
  // Every entry is decided before any is written: a failure (a damaged row or
  // entry) leaves the record as it was.
  std::vector<store_detail::JournalEntry> added;
  for (const auto& e : in) {
    out.push_back(check_entry(e, added));
    if (out.back() == ReplayCheck::kNew) added.push_back(e);
  }
  for (size_t i = 0; i < added.size(); ++i) {
    if (journal.insert(added[i])) continue;
    // No free slot (the count in the file was stale or damaged): the journal
    // and the rest of these go to the file in one transaction.
    WriteTxn txn(*this, WriteTxn::Sync::kRelaxed);
    for (size_t j = i; j < added.size(); ++j) {
      (void)insert_index(added[j]);
      txn.also_folded(added[j]);
    }
    txn.commit();
    break;
  }
  return out;
}

uint64_t SqliteCryptoStore::data_version() {
  MutexLock l(impl_->mu);
  return impl_->generation_check();
}

bool SqliteCryptoStore::integrity_ok() {
  MutexLock l(impl_->mu);
  auto s = impl_->stmt("PRAGMA integrity_check");
  return s.step() && s.text(0) == "ok";
}

}  // namespace towns
