// The tamper suite (issue 14): stored state that no run of this library writes
// is refused with a store code, quickly, and changes nothing.
#include "helpers.h"
#include "recording_client.h"
#include "store_fixtures.h"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <random>

#include "towns/protocol/group_encryption_crypto.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/store/sqlite_crypto_store.h"

using namespace towns;

namespace {

const std::string kStream = "20" + std::string(62, 'a');
const std::string kOtherStream = "20" + std::string(62, 'b');
constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;

// Sets the stream's stored reservation to `until`, keeping its pickle.
void tamper_reservation(CryptoStore& store, uint32_t until) {
  auto record = store.get_outbound_session(kStream);
  REQUIRE(record.has_value());
  record->reserved_until = until;
  StoreChanges changes;
  changes.outbound_sessions.push_back(*record);
  REQUIRE(store.save_changes(changes));
}

// A pickle with one character changed (libolm: the pickle's MAC fails), or not
// a pickle at all.
std::string damaged(const std::string& pickle, bool garbage) {
  if (garbage) return "not a pickle";
  std::string out = pickle;
  char& c = out[out.size() / 2];
  c = c == 'A' ? 'B' : 'A';
  return out;
}

// The two stores, each fresh.
struct OnMemory {
  std::unique_ptr<CryptoStore> make() { return std::make_unique<MemoryCryptoStore>(); }
};
struct OnSqlite {
  test::TempDir dir;
  std::unique_ptr<CryptoStore> make() {
    return SqliteCryptoStore::open(dir.file("device.db"), crypto::SecretBytes(kDefaultPickleKey));
  }
};

}  // namespace

TEMPLATE_TEST_CASE("a stored outbound megolm session that does not unpickle is STORE_CORRUPT; nothing is created",
                   "[tamper]", OnMemory, OnSqlite) {
  // The client would silently create and share a new session (docs/compat.md).
  for (bool garbage : {false, true}) {
    INFO("garbage " << garbage);
    TestType f;
    auto store = f.make();
    EncryptedData before;
    {
      GroupEncryptionCrypto sender(nullptr, *store);
      sender.init();
      before = sender.encrypt_group_event(kStream, test::bytes("before"), kMegolm);
    }
    auto row = *store->get_outbound_session(kStream);
    const auto inbound_ids = store->inbound_session_ids(kStream);
    row.pickle = damaged(row.pickle, garbage);
    StoreChanges changes;
    changes.outbound_sessions.push_back(row);
    REQUIRE(store->save_changes(changes));

    test::RecordingClient client;
    GroupEncryptionCrypto again(&client, *store);
    again.init();
    REQUIRE_ERROR(again.encrypt_group_event(kStream, test::bytes("after"), kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.encrypt_group_event_deprecated_v0(kStream, "after", kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.ensure_outbound_session(kStream, kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.has_outbound_session(kStream, kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.export_device(), STORE_CORRUPT);
    // Nothing created, shared or written.
    CHECK(client.shared.empty());
    auto now = store->get_outbound_session(kStream);
    CHECK(now->pickle == row.pickle);
    CHECK(now->session_id == row.session_id);
    CHECK(now->reserved_until == row.reserved_until);
    CHECK(store->inbound_session_ids(kStream) == inbound_ids);
    // The inbound counterpart is a row of its own: history still decrypts.
    CHECK(again.decrypt_group_event(kStream, before).plaintext.view() == "before");

    // What the client does silently, a host does on purpose: drop the row; the
    // next message makes and shares a new session.
    store->delete_outbound_session(kStream);
    auto fresh = again.encrypt_group_event(kStream, test::bytes("new session"), kMegolm);
    CHECK(fresh.session_id != row.session_id);
    REQUIRE(client.shared.size() == 1);
    CHECK(client.shared[0].session.session_id == fresh.session_id);
  }
}

TEMPLATE_TEST_CASE("an import over a held megolm session that does not unpickle fails that key; the row stays",
                   "[tamper]", OnMemory, OnSqlite) {
  // As the client's import, which throws libolm's error there.
  TestType f;
  auto store = f.make();
  MemoryCryptoStore sender_store;
  GroupEncryptionCrypto sender(nullptr, sender_store);
  sender.init();
  auto event = sender.encrypt_group_event(kStream, test::bytes("held"), kMegolm);
  auto other = sender.encrypt_group_event(kOtherStream, test::bytes("other"), kMegolm);
  auto key = *sender.export_group_session(kStream, event.session_id);
  auto other_key = *sender.export_group_session(kOtherStream, other.session_id);
  {
    GroupEncryptionCrypto receiver(nullptr, *store);
    receiver.init();
    REQUIRE(receiver.import_session_keys(kStream, {key}).imported.size() == 1);
  }
  auto row = *store->get_inbound_session(kStream, event.session_id);
  row.pickle = damaged(row.pickle, false);
  StoreChanges changes;
  changes.inbound_sessions.push_back(row);
  REQUIRE(store->save_changes(changes));

  EncryptionDevice dev(*store);
  GroupEncryptionCrypto receiver(nullptr, dev);
  receiver.init();
  auto results = dev.import_sessions({{kStream, key.session_id, key.session_key, kMegolm},
                                      {kOtherStream, other_key.session_id, other_key.session_key, kMegolm}});
  REQUIRE(results.size() == 2);
  REQUIRE(results[0].error.has_value());
  CHECK(results[0].error->code() == ErrorCode::STORE_CORRUPT);
  REQUIRE(results[1].value == std::optional<ImportOutcome>(ImportOutcome::kImported));
  CHECK(store->get_inbound_session(kStream, event.session_id)->pickle == row.pickle);
  // The facade counts it as failed; reading the row is STORE_CORRUPT everywhere.
  auto counted = receiver.import_room_keys({key});
  CHECK(counted.failed == std::vector<std::string>{key.session_id});
  CHECK(counted.imported.empty());
  REQUIRE_ERROR(receiver.decrypt_group_event(kStream, event), STORE_CORRUPT);
  REQUIRE_ERROR(receiver.export_group_session(kStream, event.session_id), STORE_CORRUPT);
  REQUIRE_ERROR(receiver.export_room_keys(), STORE_CORRUPT);
  CHECK(receiver.decrypt_group_event(kOtherStream, other).plaintext.view() == "other");
  CHECK(store->get_inbound_session(kStream, event.session_id)->pickle == row.pickle);
}

TEMPLATE_TEST_CASE("a reservation beyond what the session could have reached is STORE_CORRUPT, not a long loop",
                   "[tamper]", OnMemory, OnSqlite) {
  // (A row edited in the file is refused by the store itself: its reservation
  // is bound to the row. This is a reservation written through the API.)
  TestType f;
  auto owned = f.make();
  CryptoStore& store = *owned;
  std::string session_id;
  {
    GroupEncryptionCrypto sender(nullptr, store);
    sender.init();
    sender.encrypt_group_event(kStream, test::bytes("one"), kMegolm);
    session_id = store.get_outbound_session(kStream)->session_id;
  }
  const uint32_t legit = store.get_outbound_session(kStream)->reserved_until;
  REQUIRE(legit == OutboundSessions::kReservation);  // the first block: pickle at 0, reserved to 100

  for (uint32_t until : {uint32_t{OutboundSessions::kReservation + 1}, uint32_t{1000000}, uint32_t{0xffffffff}}) {
    INFO("reserved_until " << until);
    tamper_reservation(store, until);
    GroupEncryptionCrypto again(nullptr, store);
    again.init();
    REQUIRE_ERROR(again.encrypt_group_event(kStream, test::bytes("two"), kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.export_device(), STORE_CORRUPT);
    // Nothing was written: the row is exactly as tampered.
    auto row = store.get_outbound_session(kStream);
    REQUIRE(row->reserved_until == until);
    REQUIRE(row->session_id == session_id);
  }

  // Exactly one block past the pickle is what this library writes: accepted,
  // and the next index used is the reserved end.
  tamper_reservation(store, legit);
  GroupEncryptionCrypto again(nullptr, store);
  again.init();
  auto event = again.encrypt_group_event(kStream, test::bytes("three"), kMegolm);
  auto decrypted = again.decrypt_group_event(kStream, event);
  REQUIRE(decrypted.message_index == std::optional<uint32_t>(legit));
}

// ---- The SQLite file tampered with (issue 14): every secret row sealed and
// bound to its store, table and place; the version and key check read before
// anything runs; open modes; truncations; random bit flips.

namespace {

const std::string kPickleKey = "tamper suite pickle key";
constexpr auto kHybrid = GroupEncryptionAlgorithm::kHybridGroupEncryption;
const std::string kThirdStream = "20" + std::string(62, 'c');

void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  INFO(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  INFO(msg);
  REQUIRE(rc == SQLITE_OK);
}

std::string read_bytes(const std::string& path) { return test::read_file(path); }
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// What a device made: its key and events it can decrypt, by stream.
struct Made {
  std::string device_key;
  std::vector<std::pair<std::string, EncryptedData>> events;
  std::map<std::string, std::vector<std::string>> session_ids;  // by stream, both algorithms
};

// A device on `path` with a row in every table: an account; outbound megolm
// sessions on two streams; inbound sessions (its own and two imported, two on one
// stream); hybrid sessions on two streams; replay records. Closed on return, with
// everything checkpointed into the file (no -wal left).
Made make_device(const std::string& path, const std::string& seed) {
  crypto::SeededRandom rng(crypto::as_bytes(seed));
  Made made;
  auto store = SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kCreate, {.rng = &rng});
  GroupEncryptionCrypto c(nullptr, *store, rng);
  c.init({.pickle_key = crypto::SecretBytes(kPickleKey)});
  made.device_key = c.get_user_device().device_key;
  MemoryCryptoStore other_store;
  GroupEncryptionCrypto other(nullptr, other_store, rng);
  other.init();
  for (const auto& stream : {kStream, kOtherStream}) {
    made.events.emplace_back(stream, c.encrypt_group_event(stream, test::bytes("megolm " + stream), kMegolm));
    c.ensure_outbound_session(stream, kHybrid,
                              {.miniblock_info = MiniblockInfo{stream == kStream ? 3 : 9, std::vector<uint8_t>(32, 7)}});
    made.events.emplace_back(stream, c.encrypt_group_event(stream, test::bytes("grpaes " + stream), kHybrid));
    auto foreign = other.encrypt_group_event(stream, test::bytes("other " + stream), kMegolm);
    REQUIRE(c.import_session_keys(stream, {*other.export_group_session(stream, foreign.session_id)}).imported.size() ==
            1);
    made.events.emplace_back(stream, foreign);
  }
  for (const auto& [stream, event] : made.events) (void)c.decrypt_group_event(stream, event);
  for (const auto& stream : {kStream, kOtherStream}) made.session_ids[stream] = c.get_group_session_ids(stream);
  return made;
}

// The device on path behaves as `made` says: the same device key, session ids
// and plaintexts.
void check_behaves(const std::string& path, const Made& made, SqliteStoreOptions options = {}) {
  auto store = SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kOpen, options);
  GroupEncryptionCrypto c(nullptr, *store);
  c.init({.pickle_key = crypto::SecretBytes(kPickleKey)});
  CHECK(c.get_user_device().device_key == made.device_key);
  for (const auto& [stream, ids] : made.session_ids) CHECK(c.get_group_session_ids(stream) == ids);
  for (const auto& [stream, event] : made.events) {
    auto text = c.decrypt_group_event(stream, event).plaintext.str();
    CHECK(text.find(stream) != std::string::npos);
  }
}

bool is_store_code(ErrorCode code) {
  return code == ErrorCode::STORE_ERROR || code == ErrorCode::STORE_CORRUPT || code == ErrorCode::STORE_NEWER_SCHEMA ||
         code == ErrorCode::STORE_WRONG_PICKLE_KEY || code == ErrorCode::STORE_BUSY;
}

// Opening refuses with `code`, a message naming `table`, and leaves the file as it was.
void check_refused(const std::string& path, ErrorCode code, const std::string& table,
                   StoreOpenMode mode = StoreOpenMode::kOpen) {
  auto before = read_bytes(path);
  try {
    (void)SqliteCryptoStore::open(path, kPickleKey, mode);
    FAIL("opened");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(table) != std::string::npos);
  }
  CHECK(read_bytes(path) == before);
  CHECK_FALSE(std::filesystem::exists(path + "-wal"));
}

// Opening without verify_on_open succeeds, and the first read of `table` is STORE_CORRUPT.
template <typename Read>
void check_refused_on_read(const std::string& path, const std::string& table, Read&& read) {
  auto store = SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kOpen, {.verify_on_open = false});
  try {
    read(*store);
    FAIL("read");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == ErrorCode::STORE_CORRUPT);
    CHECK(std::string(e.what()).find(table) != std::string::npos);
  }
}

struct Devices {
  test::TempDir dir;
  std::string a = dir.file("a.db");
  std::string b = dir.file("b.db");
  Made made_a = make_device(a, "device a");
  Made made_b = make_device(b, "device b");
  std::string golden_a = read_bytes(a);
  void reset() {
    write_bytes(a, golden_a);
    std::filesystem::remove(a + "-wal");
    std::filesystem::remove(a + "-shm");
  }
};

// SQL swapping the sealed values of two rows chosen by `where1` and `where2`.
std::string swap_sealed(const std::string& table, const std::string& where1, const std::string& where2) {
  return "CREATE TEMP TABLE swap AS SELECT (SELECT sealed FROM " + table + " WHERE " + where1 + ") AS s1, (SELECT sealed FROM " +
         table + " WHERE " + where2 + ") AS s2; UPDATE " + table + " SET sealed = (SELECT s2 FROM swap) WHERE " +
         where1 + "; UPDATE " + table + " SET sealed = (SELECT s1 FROM swap) WHERE " + where2 + ";";
}

}  // namespace

TEST_CASE("tamper: the untouched file opens and behaves as made; ids and keys are not in it", "[tamper]") {
  Devices d;
  check_behaves(d.a, d.made_a);
  auto bytes = read_bytes(d.a);
  for (const auto& stream : {kStream, kOtherStream}) CHECK(bytes.find(stream) == std::string::npos);
  for (const auto& [stream, ids] : d.made_a.session_ids) {
    for (const auto& id : ids) CHECK(bytes.find(id) == std::string::npos);
  }
  CHECK(bytes.find(d.made_a.device_key) == std::string::npos);
  CHECK(bytes.find(kPickleKey) == std::string::npos);
}

TEST_CASE("tamper: moved, renamed and copied rows of every secret table are STORE_CORRUPT naming the table",
          "[tamper]") {
  Devices d;
  struct Case {
    std::string name, table, sql;
  };
  const std::string lo_stream = "stream = (SELECT min(stream) FROM ", hi_stream = "stream = (SELECT max(stream) FROM ";
  auto by_stream = [&](const std::string& t, bool hi) { return (hi ? hi_stream : lo_stream) + t + ")"; };
  // Two inbound sessions on one stream: renamed = their sealed values swapped.
  const std::string in_one_stream =
      "stream = (SELECT stream FROM inbound_sessions GROUP BY stream HAVING count(*) > 1 LIMIT 1)";
  const std::vector<Case> cases = {
      {"moved outbound", "outbound_sessions",
       swap_sealed("outbound_sessions", by_stream("outbound_sessions", false), by_stream("outbound_sessions", true))},
      {"renamed outbound", "outbound_sessions",
       "UPDATE outbound_sessions SET session = (SELECT session FROM inbound_sessions WHERE session <> "
       "outbound_sessions.session LIMIT 1) WHERE " + by_stream("outbound_sessions", false)},
      {"moved inbound", "inbound_sessions",
       "UPDATE inbound_sessions SET stream = (SELECT max(stream) FROM inbound_sessions) WHERE stream = (SELECT "
       "min(stream) FROM inbound_sessions) AND session = (SELECT min(session) FROM inbound_sessions WHERE stream = "
       "(SELECT min(stream) FROM inbound_sessions))"},
      {"renamed inbound", "inbound_sessions",
       swap_sealed("inbound_sessions",
                   in_one_stream + " AND session = (SELECT min(session) FROM inbound_sessions WHERE " + in_one_stream + ")",
                   in_one_stream + " AND session = (SELECT max(session) FROM inbound_sessions WHERE " + in_one_stream + ")")},
      {"moved hybrid", "hybrid_sessions",
       swap_sealed("hybrid_sessions", by_stream("hybrid_sessions", false), by_stream("hybrid_sessions", true))},
      {"renamed hybrid", "hybrid_sessions",
       "UPDATE hybrid_sessions SET session = X'00112233445566778899aabbccddeeff' WHERE " +
           by_stream("hybrid_sessions", false)},
      {"hybrid miniblock changed", "hybrid_sessions", "UPDATE hybrid_sessions SET miniblock_num = miniblock_num + 1"},
      {"reservation changed", "outbound_sessions", "UPDATE outbound_sessions SET reserved_until = 1000000"},
      // (quick_check sees the broken CHECK first.)
      {"account id changed", "store file", "PRAGMA ignore_check_constraints = ON; UPDATE account SET id = 1"},
      {"replay record moved", "message_indices", "UPDATE message_indices SET message_index = message_index + 7"},
      {"replay record changed", "message_indices", "UPDATE message_indices SET fingerprint = zeroblob(16)"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    d.reset();
    raw_exec(d.a, c.sql);
    check_refused(d.a, ErrorCode::STORE_CORRUPT, c.table);
  }
  // Copied from device b's file (same pickle key): each table's rows, and the account.
  for (const std::string table : {"account", "outbound_sessions", "inbound_sessions", "hybrid_sessions",
                                  "message_indices"}) {
    INFO("copied " << table);
    d.reset();
    raw_exec(d.a, "ATTACH '" + d.b + "' AS b; DELETE FROM main." + table + "; INSERT INTO main." + table +
                      " SELECT * FROM b." + table + ";");
    check_refused(d.a, ErrorCode::STORE_CORRUPT, table);
  }
  // Without the check at open, the row is refused where it is read.
  d.reset();
  raw_exec(d.a, "ATTACH '" + d.b + "' AS b; DELETE FROM main.account; INSERT INTO main.account SELECT * FROM b.account;");
  check_refused_on_read(d.a, "account", [](CryptoStore& s) { (void)s.get_account(); });
  d.reset();
  raw_exec(d.a, "PRAGMA ignore_check_constraints = ON; UPDATE account SET id = 1");
  check_refused_on_read(d.a, "account", [](CryptoStore& s) { (void)s.get_account(); });
  d.reset();
  raw_exec(d.a, swap_sealed("outbound_sessions", by_stream("outbound_sessions", false),
                            by_stream("outbound_sessions", true)));
  check_refused_on_read(d.a, "outbound_sessions", [](CryptoStore& s) { (void)s.get_outbound_session(kStream); });
  d.reset();
  raw_exec(d.a, "UPDATE inbound_sessions SET stream = X'00112233445566778899aabbccddeeff' WHERE session = "
                "(SELECT min(session) FROM inbound_sessions)");
  check_refused_on_read(d.a, "inbound_sessions", [](CryptoStore& s) { (void)s.all_inbound_sessions(); });
  // And the untouched file still opens.
  d.reset();
  check_behaves(d.a, d.made_a);
}

TEST_CASE("tamper: a stale -wal of another store's file is refused, and neither file changes", "[tamper]") {
  Devices d;
  // b writes with its checkpoint held back, so that its -wal holds the new pages.
  {
    auto store = SqliteCryptoStore::open(d.b, kPickleKey, StoreOpenMode::kOpen);
    GroupEncryptionCrypto c(nullptr, *store);
    c.init({.pickle_key = crypto::SecretBytes(kPickleKey)});
    c.encrypt_group_event(kThirdStream, test::bytes("b after"), kMegolm);
    for (const auto& [stream, event] : d.made_b.events) (void)c.decrypt_group_event(stream, event);
    REQUIRE(std::filesystem::exists(d.b + "-wal"));
    std::filesystem::copy_file(d.b + "-wal", d.a + "-wal");
  }
  REQUIRE(std::filesystem::file_size(d.a + "-wal") > 0);
  auto before = read_bytes(d.a);
  auto wal = read_bytes(d.a + "-wal");
  try {
    (void)SqliteCryptoStore::open(d.a, kPickleKey, StoreOpenMode::kOpen);
    FAIL("opened");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == ErrorCode::STORE_CORRUPT);
  }
  CHECK(read_bytes(d.a) == before);
  // Removed, the file is a's again.
  std::filesystem::remove(d.a + "-wal");
  std::filesystem::remove(d.a + "-shm");
  check_behaves(d.a, d.made_a);
}

TEST_CASE("tamper: every odd user_version is refused before anything runs, the file unchanged", "[tamper]") {
  Devices d;
  struct Case {
    int64_t version;
    ErrorCode code;
  };
  for (auto [version, code] : {Case{-1, ErrorCode::STORE_CORRUPT}, Case{-2, ErrorCode::STORE_CORRUPT},
                               Case{-3, ErrorCode::STORE_CORRUPT}, Case{INT32_MIN, ErrorCode::STORE_CORRUPT},
                               Case{0, ErrorCode::STORE_CORRUPT},
                               Case{SqliteCryptoStore::kSchemaVersion + 1, ErrorCode::STORE_NEWER_SCHEMA},
                               Case{1000000, ErrorCode::STORE_NEWER_SCHEMA},
                               Case{INT32_MAX, ErrorCode::STORE_NEWER_SCHEMA},
                               // A known older version over this schema: not what that version had.
                               Case{3, ErrorCode::STORE_CORRUPT}, Case{1, ErrorCode::STORE_CORRUPT}}) {
    INFO("user_version " << version);
    d.reset();
    raw_exec(d.a, "PRAGMA user_version = " + std::to_string(version));
    check_refused(d.a, code, version > SqliteCryptoStore::kSchemaVersion ? "schema version" : "store file");
    // The wrong key changes nothing either.
    auto before = read_bytes(d.a);
    try {
      (void)SqliteCryptoStore::open(d.a, "another key", StoreOpenMode::kEither);
      FAIL("opened");
    } catch (const Error& e) {
      CHECK(is_store_code(e.code()));
    }
    CHECK(read_bytes(d.a) == before);
  }
}

TEST_CASE("tamper: a store with its key check deleted is STORE_CORRUPT under any key; nothing is written",
          "[tamper]") {
  Devices d;
  raw_exec(d.a, "DELETE FROM meta");
  check_refused(d.a, ErrorCode::STORE_CORRUPT, "key check");
  auto before = read_bytes(d.a);
  for (auto mode : {StoreOpenMode::kOpen, StoreOpenMode::kEither}) {
    REQUIRE_ERROR(SqliteCryptoStore::open(d.a, "a wrong key", mode), STORE_CORRUPT);
    CHECK(read_bytes(d.a) == before);
  }
  // Also with the account row gone: no new identity over the old sessions.
  raw_exec(d.a, "DELETE FROM account");
  REQUIRE_ERROR(SqliteCryptoStore::open(d.a, "any key"), STORE_CORRUPT);
  // A wrong key on the intact file writes nothing, and the right key still opens it.
  d.reset();
  before = read_bytes(d.a);
  REQUIRE_ERROR(SqliteCryptoStore::open(d.a, "a wrong key"), STORE_WRONG_PICKLE_KEY);
  CHECK(read_bytes(d.a) == before);
  check_behaves(d.a, d.made_a);
}

TEST_CASE("tamper: a truncated store file is refused at every size", "[tamper]") {
  Devices d;
  const size_t full = d.golden_a.size();
  REQUIRE(full > 8192);
  for (size_t size : {size_t{0}, size_t{1}, size_t{15}, size_t{99}, size_t{100}, size_t{512}, size_t{4095},
                      size_t{4096}, full / 2, full - 4096, full - 1}) {
    INFO("truncated to " << size << " of " << full);
    d.reset();
    write_bytes(d.a, d.golden_a.substr(0, size));
    for (auto mode : {StoreOpenMode::kOpen, StoreOpenMode::kEither}) {
      auto before = read_bytes(d.a);
      try {
        (void)SqliteCryptoStore::open(d.a, kPickleKey, mode);
        FAIL("opened");
      } catch (const Error& e) {
        INFO(e.what());
        CHECK(e.code() == ErrorCode::STORE_CORRUPT);
      }
      CHECK(read_bytes(d.a) == before);
    }
    REQUIRE_ERROR(SqliteCryptoStore::open(d.a, kPickleKey, StoreOpenMode::kCreate), STORE_ERROR);
  }
}

TEST_CASE("tamper: 1,000 seeded random bit flips: each open refuses with a store code or behaves as before",
          "[tamper]") {
  Devices d;
  std::mt19937_64 rng(0x746f776e73);  // fixed seed: the same trials every run
  int refused_at_open = 0, refused_later = 0, same = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    d.reset();
    std::string bytes = d.golden_a;
    size_t bit = static_cast<size_t>(rng() % (bytes.size() * 8));
    bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
    write_bytes(d.a, bytes);
    INFO("trial " << trial << ": bit " << bit);
    std::unique_ptr<SqliteCryptoStore> store;
    try {
      store = SqliteCryptoStore::open(d.a, kPickleKey, StoreOpenMode::kOpen);
    } catch (const Error& e) {
      INFO(e.what());
      REQUIRE(is_store_code(e.code()));
      ++refused_at_open;
      continue;
    }
    try {
      GroupEncryptionCrypto c(nullptr, *store);
      c.init({.pickle_key = crypto::SecretBytes(kPickleKey)});
      REQUIRE(c.get_user_device().device_key == d.made_a.device_key);
      for (const auto& [stream, ids] : d.made_a.session_ids) REQUIRE(c.get_group_session_ids(stream) == ids);
      for (const auto& [stream, event] : d.made_a.events) {
        REQUIRE(c.decrypt_group_event(stream, event).plaintext.str().find(stream) != std::string::npos);
      }
      ++same;
    } catch (const Error& e) {
      INFO(e.what());
      REQUIRE(is_store_code(e.code()));
      ++refused_later;
    }
  }
  UNSCOPED_INFO("refused at open " << refused_at_open << ", later " << refused_later << ", same " << same);
  CHECK(refused_at_open + refused_later + same == 1000);
  CHECK(refused_later == 0);
}

TEST_CASE("tamper: open modes; a new store is 0600 whatever the umask; paths are file names", "[tamper][store]") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  REQUIRE_ERROR(SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kOpen), STORE_ERROR);
  CHECK_FALSE(std::filesystem::exists(path));
  mode_t old_umask = ::umask(0);
  {
    auto s = SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kCreate);
    StoreChanges c;
    c.account = "acct";
    REQUIRE(s->save_changes(c));
    for (const auto& f : {path, path + "-wal", path + "-shm", path + "-gen"}) {
      INFO(f);
      REQUIRE(std::filesystem::exists(f));
      CHECK((std::filesystem::status(f).permissions() & std::filesystem::perms::all) ==
            (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    }
  }
  ::umask(old_umask);
  // Nothing left beside it but the generation file (docs/store.md).
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir.file(""))) files.insert(e.path().filename());
  CHECK(files == std::set<std::string>{"s.db", "s.db-gen"});
  auto before = read_bytes(path);
  REQUIRE_ERROR(SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kCreate), STORE_ERROR);
  CHECK(read_bytes(path) == before);
  // An existing store with wider permissions is narrowed.
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                         std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  CHECK(SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kOpen)->get_account() == "acct");
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  CHECK(SqliteCryptoStore::open(path, kPickleKey, StoreOpenMode::kEither)->get_account() == "acct");
  // An empty file is not a store, in any mode.
  auto empty = dir.file("empty.db");
  write_bytes(empty, "");
  REQUIRE_ERROR(SqliteCryptoStore::open(empty, kPickleKey, StoreOpenMode::kOpen), STORE_CORRUPT);
  REQUIRE_ERROR(SqliteCryptoStore::open(empty, kPickleKey, StoreOpenMode::kEither), STORE_CORRUPT);
  REQUIRE_ERROR(SqliteCryptoStore::open(empty, kPickleKey, StoreOpenMode::kCreate), STORE_ERROR);
  CHECK(std::filesystem::file_size(empty) == 0);
  // A directory is not a store.
  REQUIRE_ERROR(SqliteCryptoStore::open(dir.file(""), kPickleKey), STORE_ERROR);
  // NUL and empty paths.
  REQUIRE_ERROR(SqliteCryptoStore::open(std::string("x\0y", 3), kPickleKey), INVALID_ARGUMENT);
  REQUIRE_ERROR(SqliteCryptoStore::open("", kPickleKey), INVALID_ARGUMENT);
  // URIs and ":memory:" are plain file names, relative to the working directory.
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.file(""));
  for (const std::string name : {"file:uri.db?mode=memory", ":memory:", "file::memory:?cache=shared"}) {
    INFO(name);
    {
      auto s = SqliteCryptoStore::open(name, kPickleKey, StoreOpenMode::kCreate);
      StoreChanges c;
      c.account = "in " + name;
      REQUIRE(s->save_changes(c));
    }
    CHECK(std::filesystem::is_regular_file(dir.file(name)));
    CHECK(SqliteCryptoStore::open(name, kPickleKey, StoreOpenMode::kOpen)->get_account() == "in " + name);
  }
  std::filesystem::current_path(cwd);
}
