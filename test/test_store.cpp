// One conformance suite for every CryptoStore, then SQLite-specific checks.
#include "helpers.h"
#include "store_fixtures.h"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <sqlite3.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <array>
#include <csignal>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"

using namespace towns;
using crypto::SecretBytes;

namespace {

struct MemoryFactory {
  std::unique_ptr<CryptoStore> make() { return std::make_unique<MemoryCryptoStore>(); }
};

struct SqliteFactory {
  test::TempDir dir;
  std::unique_ptr<CryptoStore> make() { return SqliteCryptoStore::open(dir.file("store.db"), "store key"); }
};

HybridSessionRecord hybrid(const std::string& stream, const std::string& id, int64_t num) {
  return {stream, id, SecretBytes(std::string_view("key bytes of " + id)), num};
}

// One-record writes through save_changes.
void put_account(CryptoStore& s, const std::string& pickle) {
  StoreChanges c;
  c.account = pickle;
  REQUIRE(s.save_changes(c));
}
void put_outbound(CryptoStore& s, const GroupSessionRecord& r) {
  StoreChanges c;
  c.outbound_sessions.push_back(r);
  REQUIRE(s.save_changes(c));
}
void put_inbound(CryptoStore& s, const GroupSessionRecord& r) {
  StoreChanges c;
  c.inbound_sessions.push_back(r);
  REQUIRE(s.save_changes(c));
}
void put_hybrid(CryptoStore& s, const HybridSessionRecord& r) {
  StoreChanges c;
  c.hybrid_sessions.push_back(r);
  REQUIRE(s.save_changes(c));
}

std::array<uint8_t, 16> fp(uint8_t b) {
  std::array<uint8_t, 16> out{};
  out.fill(b);
  return out;
}

MessageIndexRecord mi(const std::string& stream, const std::string& session, uint32_t index, uint8_t fill) {
  return {stream, session, index, fp(fill)};
}

using RC = std::vector<ReplayCheck>;

// A StoreChanges touching every kind of row, each distinct from what the
// condition tests start with.
StoreChanges every_kind() {
  StoreChanges c;
  c.account = "new account";
  c.outbound_sessions.push_back({"stream", "out-2", "out pickle 2", 200});
  c.inbound_sessions.push_back({"stream", "in-2", "in pickle 2"});
  c.hybrid_sessions.push_back(hybrid("stream", "h2", 7));
  return c;
}

// Exactly the state the condition tests start with: nothing of every_kind() in it.
template <typename Store>
void check_untouched(Store& s) {
  CHECK(s.get_account() == "old account");
  auto out = s.get_outbound_session("stream");
  REQUIRE(out.has_value());
  CHECK(out->session_id == "out-1");
  CHECK(out->pickle == "out pickle 1");
  CHECK(out->reserved_until == 100);
  CHECK(s.inbound_session_ids("stream") == std::vector<std::string>{"in-1"});
  CHECK(s.hybrid_session_ids("stream") == std::vector<std::string>{"h1"});
}

}  // namespace

TEMPLATE_TEST_CASE("store: account", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK_FALSE(s->get_account().has_value());
  put_account(*s, "pickle-1");
  put_account(*s, "pickle-2");
  CHECK(s->get_account() == "pickle-2");
  s->delete_account();
  CHECK_FALSE(s->get_account().has_value());
}

TEMPLATE_TEST_CASE("store: outbound and inbound group sessions", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK_FALSE(s->get_outbound_session("stream").has_value());
  put_outbound(*s, {"stream", "s1", "p1"});
  put_outbound(*s, {"stream", "s2", "p2"});  // one per stream: replaced
  put_outbound(*s, {"other", "s3", "p3"});
  auto out = s->get_outbound_session("stream");
  REQUIRE(out.has_value());
  CHECK(out->session_id == "s2");
  CHECK(out->pickle == "p2");
  CHECK(s->all_outbound_sessions().size() == 2);
  s->delete_outbound_session("stream");
  CHECK_FALSE(s->get_outbound_session("stream").has_value());

  for (const char* id : {"c", "a", "b"}) put_inbound(*s, {"stream", id, std::string("pickle ") + id});
  put_inbound(*s, {"stream2", "z", "pz"});
  CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"a", "b", "c"});
  CHECK(s->inbound_session_ids("nothing").empty());
  CHECK(s->get_inbound_session("stream", "b")->pickle == "pickle b");
  CHECK_FALSE(s->get_inbound_session("stream2", "a").has_value());
  put_inbound(*s, {"stream", "b", "new b"});
  CHECK(s->get_inbound_session("stream", "b")->pickle == "new b");
  CHECK(s->all_inbound_sessions().size() == 4);
  s->delete_inbound_session("stream", "a");
  CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"b", "c"});
}

TEMPLATE_TEST_CASE("store: hybrid sessions and the latest per stream", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK_FALSE(s->latest_hybrid_session("stream").has_value());
  put_hybrid(*s, hybrid("stream", "bb", 5));
  put_hybrid(*s, hybrid("stream", "aa", 9));
  put_hybrid(*s, hybrid("stream", "cc", 2));
  put_hybrid(*s, hybrid("other", "dd", 100));
  auto latest = s->latest_hybrid_session("stream");
  REQUIRE(latest.has_value());
  CHECK(latest->session_id == "aa");
  CHECK(latest->session_key.view() == "key bytes of aa");
  CHECK(s->hybrid_session_ids("stream") == std::vector<std::string>{"aa", "bb", "cc"});
  CHECK(s->get_hybrid_session("stream", "cc")->miniblock_num == 2);
  CHECK_FALSE(s->get_hybrid_session("other", "aa").has_value());
  CHECK(s->all_hybrid_sessions().size() == 4);
  s->delete_hybrid_session("stream", "aa");
  CHECK(s->latest_hybrid_session("stream")->session_id == "bb");
}

TEMPLATE_TEST_CASE("store: nothing is ever dropped (the client's in-memory store forgets beyond 5,000)", "[store]",
                   MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  StoreChanges c;
  for (int i = 0; i < 5001; ++i) c.inbound_sessions.push_back({"stream", "s" + std::to_string(i), "p"});
  REQUIRE(s->save_changes(c));
  CHECK(s->all_inbound_sessions().size() == 5001);
  CHECK(s->get_inbound_session("stream", "s0").has_value());
}

TEMPLATE_TEST_CASE("store: a tie on the miniblock number goes to the lowest session id", "[store]", MemoryFactory,
                   SqliteFactory) {
  // As the client's IndexedDB store, whatever the order of writing (its
  // in-memory store would take the most recently used one: docs/compat.md).
  TestType f;
  auto s = f.make();
  put_hybrid(*s, hybrid("stream", "b7", 4));
  put_hybrid(*s, hybrid("stream", "c1", 4));
  put_hybrid(*s, hybrid("stream", "a9", 4));
  put_hybrid(*s, hybrid("stream", "00", 3));
  CHECK(s->latest_hybrid_session("stream")->session_id == "a9");
  (void)s->get_hybrid_session("stream", "c1");  // reading one changes nothing
  CHECK(s->latest_hybrid_session("stream")->session_id == "a9");
  put_hybrid(*s, hybrid("stream", "ff", 5));  // a higher miniblock wins over any id
  CHECK(s->latest_hybrid_session("stream")->session_id == "ff");
  s->delete_hybrid_session("stream", "ff");
  s->delete_hybrid_session("stream", "a9");
  CHECK(s->latest_hybrid_session("stream")->session_id == "b7");
}

TEMPLATE_TEST_CASE("store: save_changes writes every kind together", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK(s->save_changes(StoreChanges{}));  // empty: nothing to do
  CHECK(StoreChanges{}.empty());
  CHECK_FALSE(every_kind().empty());
  CHECK(s->all_inbound_sessions().empty());

  StoreChanges c;
  c.account = "acct";
  c.outbound_sessions = {{"s1", "o1", "op1", 10}, {"s2", "o2", "op2", 20}, {"s1", "o3", "op3", 30}};  // last for s1 wins
  c.inbound_sessions = {{"s1", "i1", "ip1"}, {"s1", "i2", "ip2"}, {"s2", "i1", "ip3"}};
  c.hybrid_sessions = {hybrid("s1", "h1", 4), hybrid("s1", "h2", 6)};
  REQUIRE(s->save_changes(c));

  CHECK(s->get_account() == "acct");
  auto o1 = s->get_outbound_session("s1");
  REQUIRE(o1.has_value());
  CHECK(o1->session_id == "o3");
  CHECK(o1->pickle == "op3");
  CHECK(o1->reserved_until == 30);
  CHECK(s->get_outbound_session("s2")->reserved_until == 20);
  CHECK(s->all_outbound_sessions().size() == 2);
  CHECK(s->inbound_session_ids("s1") == std::vector<std::string>{"i1", "i2"});
  CHECK(s->get_inbound_session("s2", "i1")->pickle == "ip3");
  CHECK(s->hybrid_session_ids("s1") == std::vector<std::string>{"h1", "h2"});
  CHECK(s->latest_hybrid_session("s1")->session_key.view() == "key bytes of h2");

  // Replacing keeps the others.
  StoreChanges d;
  d.inbound_sessions = {{"s1", "i2", "ip2 new"}};
  REQUIRE(s->save_changes(d));
  CHECK(s->get_inbound_session("s1", "i2")->pickle == "ip2 new");
  CHECK(s->get_inbound_session("s1", "i1")->pickle == "ip1");
  CHECK(s->get_account() == "acct");

  s->delete_all();
  CHECK_FALSE(s->get_account().has_value());
  CHECK(s->all_outbound_sessions().empty());
  CHECK(s->all_inbound_sessions().empty());
  CHECK(s->all_hybrid_sessions().empty());
}

TEMPLATE_TEST_CASE("store: a failing condition writes nothing", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  {
    StoreChanges start;
    start.account = "old account";
    start.outbound_sessions.push_back({"stream", "out-1", "out pickle 1", 100});
    start.inbound_sessions.push_back({"stream", "in-1", "in pickle 1"});
    start.hybrid_sessions.push_back(hybrid("stream", "h1", 3));
    REQUIRE(s->save_changes(start));
  }
  auto with = [](std::vector<OutboundCondition> conds) {
    auto c = every_kind();
    c.expect_outbound = std::move(conds);
    return c;
  };

  SECTION("no row expected, but there is one") {
    CHECK_FALSE(s->save_changes(with({{"stream", std::nullopt}})));
    check_untouched(*s);
  }
  SECTION("the session id differs") {
    CHECK_FALSE(s->save_changes(with({{"stream", "out-other", 100}})));
    check_untouched(*s);
  }
  SECTION("reserved_until differs") {
    CHECK_FALSE(s->save_changes(with({{"stream", "out-1", 99}})));
    check_untouched(*s);
  }
  SECTION("a row expected, but there is none") {
    CHECK_FALSE(s->save_changes(with({{"no-such-stream", "out-1", 100}})));
    check_untouched(*s);
  }
  SECTION("one of several fails") {
    CHECK_FALSE(s->save_changes(with({{"stream", "out-1", 100}, {"other", std::nullopt}, {"stream2", std::nullopt},
                                      {"stream", "out-1", 101}})));
    check_untouched(*s);
  }
  SECTION("a condition alone, nothing to write") {
    StoreChanges c;
    c.expect_outbound = {{"stream", "out-1", 100}};
    CHECK_FALSE(c.empty());
    CHECK(s->save_changes(c));
    c.expect_outbound = {{"stream", "out-1", 1}};
    CHECK_FALSE(s->save_changes(c));
    check_untouched(*s);
  }
  SECTION("the matching session and reserved_until pass, and everything lands") {
    REQUIRE(s->save_changes(with({{"stream", "out-1", 100}, {"fresh", std::nullopt}})));
    CHECK(s->get_account() == "new account");
    auto out = s->get_outbound_session("stream");
    REQUIRE(out.has_value());
    CHECK(out->session_id == "out-2");
    CHECK(out->reserved_until == 200);
    CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"in-1", "in-2"});
    CHECK(s->hybrid_session_ids("stream") == std::vector<std::string>{"h1", "h2"});
    // The condition that just held no longer does: the row moved on.
    CHECK_FALSE(s->save_changes(with({{"stream", "out-1", 100}})));
    CHECK(s->get_outbound_session("stream")->session_id == "out-2");
  }
  SECTION("no row expected and there is none: passes") {
    StoreChanges c;
    c.outbound_sessions.push_back({"fresh", "f1", "fp", 0});
    c.expect_outbound = {{"fresh", std::nullopt}};
    REQUIRE(s->save_changes(c));
    CHECK(s->get_outbound_session("fresh")->session_id == "f1");
    // Only one of two racing creators wins.
    c.outbound_sessions[0].session_id = "f2";
    CHECK_FALSE(s->save_changes(c));
    CHECK(s->get_outbound_session("fresh")->session_id == "f1");
  }
}

TEMPLATE_TEST_CASE("store: a failed condition ends its transaction; the next writes go through", "[store]",
                   MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  put_outbound(*s, {"stream", "out-1", "p", 100});
  StoreChanges c = every_kind();
  c.expect_outbound = {{"stream", "out-1", 99}};
  REQUIRE_FALSE(s->save_changes(c));
  // Every kind of writer works right after (SQLite: the failed BEGIN IMMEDIATE was rolled back).
  c.expect_outbound = {{"stream", "out-1", 100}};
  CHECK(s->save_changes(c));
  CHECK(s->record_message_indices({mi("stream", "in-2", 0, 1)}) == RC{ReplayCheck::kNew});
  s->delete_hybrid_session("stream", "h2");
  CHECK(s->hybrid_session_ids("stream").empty());
  CHECK(s->get_outbound_session("stream")->session_id == "out-2");
  if constexpr (std::is_same_v<TestType, SqliteFactory>) {
    // The file's write lock was released too: another connection writes at once.
    c.expect_outbound = {{"stream", "out-other", 1}};
    REQUIRE_FALSE(s->save_changes(c));
    SqliteStoreOptions quick;
    quick.busy_timeout_ms = 200;
    auto other = SqliteCryptoStore::open(f.dir.file("store.db"), "store key", quick);
    put_account(*other, "from the other connection");
    CHECK(s->get_account() == "from the other connection");
  }
}

TEMPLATE_TEST_CASE("store: one store used from several threads at once", "[store]", MemoryFactory, SqliteFactory) {
  // Every method takes the store's plain mutex once; reads, writes and optimistic
  // read-modify-writes from several threads interleave without losing an update.
  TestType f;
  auto s = f.make();
  put_outbound(*s, {"shared", "out", "p", 0});
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::string stream = "stream-" + std::to_string(t);
        for (int i = 0; i < kRounds; ++i) {
          StoreChanges c;
          c.inbound_sessions.push_back({stream, "in-" + std::to_string(i), "p"});
          c.hybrid_sessions.push_back(hybrid(stream, "h-" + std::to_string(i), i));
          if (!s->save_changes(c)) ++failures[t];
          if (s->record_message_indices({mi(stream, "in-" + std::to_string(i), 0, 1)}) != RC{ReplayCheck::kNew}) {
            ++failures[t];
          }
          if (s->latest_hybrid_session(stream)->session_id != "h-" + std::to_string(i)) ++failures[t];
          // Reserve one index of the shared row, retrying when another thread got there first.
          for (;;) {
            auto row = s->get_outbound_session("shared");
            StoreChanges r;
            r.expect_outbound = {{"shared", row->session_id, row->reserved_until}};
            row->reserved_until += 1;
            r.outbound_sessions.push_back(*row);
            if (s->save_changes(r)) break;
          }
        }
      } catch (...) {
        ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == std::vector<int>(kThreads, 0));
  CHECK(s->get_outbound_session("shared")->reserved_until == kThreads * kRounds);
  for (int t = 0; t < kThreads; ++t) {
    std::string stream = "stream-" + std::to_string(t);
    CHECK(s->inbound_session_ids(stream).size() == kRounds);
    CHECK(s->hybrid_session_ids(stream).size() == kRounds);
  }
}

TEMPLATE_TEST_CASE("store: the replay record", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK(s->record_message_indices({}).empty());
  CHECK(s->record_message_indices({mi("st", "a", 0, 1), mi("st", "a", 1, 2), mi("st", "b", 0, 3)}) ==
        RC{ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew});
  CHECK(s->record_message_indices({mi("st", "a", 0, 1), mi("st", "a", 0, 9), mi("st", "a", 2, 4), mi("st", "b", 0, 3),
                                   mi("other", "a", 0, 9)}) ==
        RC{ReplayCheck::kSame, ReplayCheck::kConflict, ReplayCheck::kNew, ReplayCheck::kSame, ReplayCheck::kNew});
  // A conflict keeps the stored fingerprint: the first one still matches, the conflicting one still conflicts.
  CHECK(s->record_message_indices({mi("st", "a", 0, 9), mi("st", "a", 0, 1)}) ==
        RC{ReplayCheck::kConflict, ReplayCheck::kSame});
  // Duplicates within one call: the earlier entry counts as recorded.
  CHECK(s->record_message_indices({mi("st", "c", 5, 7), mi("st", "c", 5, 7), mi("st", "c", 5, 8), mi("st", "c", 6, 8)}) ==
        RC{ReplayCheck::kNew, ReplayCheck::kSame, ReplayCheck::kConflict, ReplayCheck::kNew});
  // Fingerprints differing in one byte conflict.
  auto almost = mi("st", "c", 6, 8);
  almost.fingerprint[15] = 0;
  CHECK(s->record_message_indices({almost}) == RC{ReplayCheck::kConflict});
  // The top of the index range is an index like any other.
  CHECK(s->record_message_indices({mi("st", "c", 0xffffffffu, 1), mi("st", "c", 0xffffffffu, 1)}) ==
        RC{ReplayCheck::kNew, ReplayCheck::kSame});

  // delete_inbound_session forgets that session's indices only.
  put_inbound(*s, {"st", "a", "pickle a"});
  s->delete_inbound_session("st", "a");
  CHECK(s->record_message_indices({mi("st", "a", 0, 9), mi("st", "a", 1, 9), mi("st", "b", 0, 3), mi("other", "a", 0, 9)}) ==
        RC{ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kSame, ReplayCheck::kSame});

  s->delete_all();
  CHECK(s->record_message_indices({mi("st", "a", 0, 1), mi("st", "b", 0, 1), mi("st", "c", 5, 1)}) ==
        RC{ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew});
}

TEMPLATE_TEST_CASE("store: its own writes do not change data_version", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  uint64_t v = s->data_version();
  if constexpr (std::is_same_v<TestType, MemoryFactory>) CHECK(v == 0);
  put_account(*s, "a");
  put_inbound(*s, {"st", "i", "p"});
  CHECK(s->record_message_indices({mi("st", "i", 0, 1)}) == RC{ReplayCheck::kNew});
  s->delete_inbound_session("st", "i");
  CHECK(s->data_version() == v);
}

// ---- SQLite only

namespace {

void raw_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  INFO(sql);
  REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

// The single integer the query returns.
int64_t raw_int(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  INFO(sql);
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

int64_t table_count(const std::string& path, const std::string& table) {
  return raw_int(path, ("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '" + table + "'").c_str());
}

}  // namespace

TEST_CASE("sqlite store: reopens with its data; hybrid keys are not in the clear") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  const std::string secret = "THIS-IS-A-SECRET-AES-KEY-32bytes";
  {
    auto s = SqliteCryptoStore::open(path, "k");
    StoreChanges c;
    c.account = "acct";
    c.hybrid_sessions.push_back({"stream", "id", SecretBytes(std::string_view(secret)), 3});
    c.inbound_sessions.push_back({"stream", "in", "pickle"});
    c.outbound_sessions.push_back({"stream", "out", "out pickle", 42});
    REQUIRE(s->save_changes(c));
  }
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->get_account() == "acct");
  CHECK(s->get_hybrid_session("stream", "id")->session_key.view() == secret);
  CHECK(s->get_inbound_session("stream", "in")->pickle == "pickle");
  CHECK(s->get_outbound_session("stream")->reserved_until == 42);
  CHECK(s->integrity_ok());
  s.reset();
  for (const auto& f : {path, path + "-wal"}) {
    auto bytes = test::read_file(f);
    CHECK(bytes.find(secret) == std::string::npos);
  }
}

TEST_CASE("sqlite store: the replay record survives reopening") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  {
    auto s = SqliteCryptoStore::open(path, "k");
    REQUIRE(s->record_message_indices({mi("st", "a", 0, 1), mi("st", "a", 7, 2), mi("st", "b", 3, 3)}) ==
            RC{ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew});
  }
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->record_message_indices({mi("st", "a", 7, 2), mi("st", "a", 0, 5), mi("st", "b", 3, 3), mi("st", "b", 4, 3)}) ==
        RC{ReplayCheck::kSame, ReplayCheck::kConflict, ReplayCheck::kSame, ReplayCheck::kNew});
  // The new entry is in the replay journal while the store is open; closing folds it.
  CHECK(raw_int(path, "SELECT count(*) FROM message_indices") == 3);
  s.reset();
  CHECK(raw_int(path, "SELECT count(*) FROM message_indices") == 4);
  CHECK(raw_int(path, "SELECT length(fingerprint) FROM message_indices WHERE message_index = 7") == 16);
}

TEST_CASE("sqlite store: a store failure in the middle of save_changes leaves nothing") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  {
    auto s = SqliteCryptoStore::open(path, "k");
    StoreChanges start;
    start.account = "old account";
    start.outbound_sessions.push_back({"stream", "out-1", "out pickle 1", 100});
    start.inbound_sessions.push_back({"stream", "in-1", "in pickle 1"});
    start.hybrid_sessions.push_back(hybrid("stream", "h1", 3));
    REQUIRE(s->save_changes(start));
  }
  // The hybrid rows are written last: fail there, after the others were written
  // (the trigger is added while the store is open: a file with a trigger in its
  // schema is not one this library wrote, and open() refuses it).
  auto s = SqliteCryptoStore::open(path, "k");
  raw_sql(path,
          "CREATE TRIGGER inject_failure BEFORE INSERT ON hybrid_sessions WHEN NEW.miniblock_num = 424242 "
          "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  auto c = every_kind();
  c.expect_outbound = {{"stream", "out-1", 100}};  // holds
  c.hybrid_sessions.push_back(hybrid("stream", "boom", 424242));
  REQUIRE_ERROR(s->save_changes(c), STORE_ERROR);
  check_untouched(*s);
  CHECK(s->integrity_ok());
  // The store is usable afterwards: the same changes without the failing row land.
  c.hybrid_sessions.pop_back();
  REQUIRE(s->save_changes(c));
  CHECK(s->get_account() == "new account");
  CHECK(s->hybrid_session_ids("stream") == std::vector<std::string>{"h1", "h2"});
}

TEST_CASE("sqlite store: data_version changes for another store's commits, not for its own") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  auto a = SqliteCryptoStore::open(path, "k");
  auto b = SqliteCryptoStore::open(path, "k");
  uint64_t va = a->data_version();
  uint64_t vb = b->data_version();
  CHECK(a->data_version() == va);  // nothing happened

  put_account(*a, "written by a");
  put_inbound(*a, {"st", "i", "p"});
  CHECK(a->record_message_indices({mi("st", "i", 0, 1)}) == RC{ReplayCheck::kNew});
  CHECK(a->data_version() == va);  // a's own writes
  uint64_t vb2 = b->data_version();
  CHECK(vb2 != vb);  // a committed

  put_outbound(*b, {"st", "o", "p", 1});
  uint64_t va2 = a->data_version();
  CHECK(va2 != va);  // b committed
  CHECK(b->data_version() == vb2);
  CHECK(a->data_version() == va2);  // unchanged until the next foreign commit

  // A save_changes that fails its condition commits nothing: no change seen by the other.
  StoreChanges c;
  c.account = "never";
  c.expect_outbound = {{"st", std::nullopt}};
  CHECK_FALSE(b->save_changes(c));
  CHECK(a->data_version() == va2);
  CHECK(a->get_account() == "written by a");

  b->delete_inbound_session("st", "i");
  CHECK(a->data_version() != va2);
}

namespace {
// The generation word of a store's `-gen` file (docs/store.md), read and
// written as another process would.
uint64_t gen_word(const std::string& path) {
  uint64_t w = 0;
  int fd = ::open((path + "-gen").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, &w, sizeof w, 0) == static_cast<ssize_t>(sizeof w));
  ::close(fd);
  return w;
}
void set_gen_word(const std::string& path, uint64_t w) {
  int fd = ::open((path + "-gen").c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, &w, sizeof w, 0) == static_cast<ssize_t>(sizeof w));
  ::close(fd);
}
// Two stores on one file, as two processes would have it.
struct TwoStores {
  test::TempDir dir;
  std::string path = dir.file("s.db");
  std::unique_ptr<SqliteCryptoStore> a = SqliteCryptoStore::open(path, "k");
  std::unique_ptr<SqliteCryptoStore> b = SqliteCryptoStore::open(path, "k");
};
}  // namespace

TEST_CASE("sqlite store: the replay record does not change another store's data_version; other writes do") {
  TwoStores t;
  auto& [dir, path, a, b] = t;
  uint64_t va = a->data_version();
  uint64_t g = gen_word(path);
  CHECK(g % 2 == 0);
  // No cache holds message indices: b's records leave a's caches alone.
  CHECK(b->record_message_indices({mi("st", "i", 0, 1), mi("st", "i", 1, 2)}) == RC{ReplayCheck::kNew, ReplayCheck::kNew});
  CHECK(gen_word(path) == g);
  CHECK(a->data_version() == va);
  // Any other commit moves the word by two (odd while it commits, even after).
  put_outbound(*b, {"st", "o", "p", 1});
  CHECK(gen_word(path) == g + 2);
  CHECK(a->data_version() != va);
}

TEST_CASE("sqlite store: a commit left half-marked (a writer died between its two steps) is not trusted, then mended") {
  TwoStores t;
  auto& [dir, path, a, b] = t;
  uint64_t v0 = a->data_version();
  uint64_t g = gen_word(path);
  set_gen_word(path, g + 1);  // odd, as a writer leaves it just before its COMMIT
  uint64_t v1 = a->data_version();
  CHECK(v1 != v0);  // a commit may be under way: nothing cached is trusted
  CHECK(gen_word(path) == g + 1);
  // The same odd value again: a takes the write lock, so no commit is under way,
  // and the word is made even.
  uint64_t v2 = a->data_version();
  CHECK(v2 != v1);
  CHECK(gen_word(path) == g + 2);
  CHECK(a->data_version() == v2);  // stable from here
  // Writers go on from an odd word too: b's commit is seen by a.
  set_gen_word(path, g + 3);
  put_account(*b, "written by b");
  CHECK(gen_word(path) == g + 6);  // g+3 was odd: b took it to g+5, then g+6
  uint64_t v3 = a->data_version();
  CHECK(v3 != v2);
  CHECK(a->data_version() == v3);
  CHECK(a->get_account() == "written by b");
}

TEST_CASE("sqlite store: the generation file: any content is taken; not a regular file, or a link, is refused") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  { put_account(*SqliteCryptoStore::open(path, "k"), "acct"); }
  auto gen = path + "-gen";
  constexpr uintmax_t kGenSize = 4096 + 512 * 80;  // the generation page, then the replay journal's table
  CHECK(std::filesystem::file_size(gen) == kGenSize);
  // Short, with anything in it, readable by others: grown, narrowed, used.
  {
    std::ofstream out(gen, std::ios::binary | std::ios::trunc);
    out << "xyz";
  }
  std::filesystem::permissions(gen, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                        std::filesystem::perms::others_read);
  {
    auto a = SqliteCryptoStore::open(path, "k");
    auto b = SqliteCryptoStore::open(path, "k");
    uint64_t va = a->data_version();
    put_account(*b, "again");
    CHECK(a->data_version() != va);
    CHECK(a->get_account() == "again");
  }
  CHECK(std::filesystem::file_size(gen) == kGenSize);
  CHECK((std::filesystem::status(gen).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  // A link (even to a good file) and a directory are refused, the store unchanged.
  auto before = test::read_file(path);
  auto elsewhere = dir.file("elsewhere");
  std::filesystem::rename(gen, elsewhere);
  std::filesystem::create_symlink(elsewhere, gen);
  REQUIRE_ERROR(SqliteCryptoStore::open(path, "k"), STORE_ERROR);
  std::filesystem::remove(gen);
  std::filesystem::create_directory(gen);
  REQUIRE_ERROR(SqliteCryptoStore::open(path, "k"), STORE_ERROR);
  CHECK(test::read_file(path) == before);
  std::filesystem::remove(gen);
  CHECK(SqliteCryptoStore::open(path, "k")->get_account() == "again");
}

// ---- The replay journal (docs/store.md, "The replay journal"): its layout in
// the generation file, read and written here as another process (or a crash)
// would leave it.

namespace {
constexpr off_t kJournalEpoch = 64, kJournalCount = 72, kJournalSlots = 4096;
constexpr size_t kSlots = 512, kSlotSize = 80, kFoldAt = 256;

std::string gen_bytes(const std::string& path, off_t at, size_t n) {
  std::string out(n, '\0');
  int fd = ::open((path + "-gen").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, out.data(), n, at) == static_cast<ssize_t>(n));
  ::close(fd);
  return out;
}
void set_gen_bytes(const std::string& path, off_t at, const std::string& bytes) {
  int fd = ::open((path + "-gen").c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), at) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}
uint64_t gen_u64(const std::string& path, off_t at) {
  uint64_t v = 0;
  std::memcpy(&v, gen_bytes(path, at, 8).data(), 8);
  return v;
}
void set_gen_u64(const std::string& path, off_t at, uint64_t v) {
  set_gen_bytes(path, at, std::string(reinterpret_cast<const char*>(&v), 8));
}
// The journal's header and table, as a crash would leave them.
std::string journal_bytes(const std::string& path) {
  return gen_bytes(path, kJournalEpoch, 16) + gen_bytes(path, kJournalSlots, kSlots * kSlotSize);
}
void set_journal_bytes(const std::string& path, const std::string& b) {
  set_gen_bytes(path, kJournalEpoch, b.substr(0, 16));
  set_gen_bytes(path, kJournalSlots, b.substr(16));
}
// The live slots (mark == epoch + 1).
std::vector<size_t> live_slots(const std::string& path) {
  uint64_t live = gen_u64(path, kJournalEpoch) + 1;
  std::vector<size_t> out;
  for (size_t i = 0; i < kSlots; ++i) {
    if (gen_u64(path, kJournalSlots + static_cast<off_t>(i * kSlotSize)) == live) out.push_back(i);
  }
  return out;
}
int64_t rows(const std::string& path) { return raw_int(path, "SELECT count(*) FROM message_indices"); }
// One store on a file of its own.
struct OneStore {
  test::TempDir dir;
  std::string path = dir.file("s.db");
  std::unique_ptr<SqliteCryptoStore> s = SqliteCryptoStore::open(path, "k");
};
bool save_account(CryptoStore& s, const std::string& pickle) {
  StoreChanges c;
  c.account = pickle;
  return s.save_changes(c);
}

RC records(SqliteCryptoStore& s, const std::string& session, uint32_t from, uint32_t to, uint8_t fill) {
  RC out;
  for (uint32_t i = from; i < to; ++i) out.push_back(s.record_message_indices({mi("st", session, i, fill)}).at(0));
  return out;
}
RC all(size_t n, ReplayCheck c) { return RC(n, c); }
}  // namespace

TEST_CASE("sqlite store: replay entries wait in the journal and are folded into the file in batches") {
  OneStore t;
  auto& [dir, path, s] = t;
  CHECK(records(*s, "a", 0, kFoldAt, 1) == all(kFoldAt, ReplayCheck::kNew));
  CHECK(rows(path) == 0);
  CHECK(gen_u64(path, kJournalCount) == kFoldAt);
  CHECK(live_slots(path).size() == kFoldAt);
  uint64_t epoch = gen_u64(path, kJournalEpoch);
  // The next entry would pass the fold mark: the journal goes to the file first.
  CHECK(records(*s, "a", kFoldAt, kFoldAt + 44, 1) == all(44, ReplayCheck::kNew));
  CHECK(rows(path) == static_cast<int64_t>(kFoldAt));
  CHECK(gen_u64(path, kJournalEpoch) == epoch + 1);
  CHECK(gen_u64(path, kJournalCount) == 44);
  CHECK(live_slots(path).size() == 44);
  // Every entry answers the same wherever it is (the file, the journal).
  CHECK(records(*s, "a", 0, kFoldAt + 44, 1) == all(kFoldAt + 44, ReplayCheck::kSame));
  CHECK(records(*s, "a", 0, kFoldAt + 44, 2) == all(kFoldAt + 44, ReplayCheck::kConflict));
  // Below the highest folded index, a gap is still new (the file is asked).
  CHECK(s->record_message_indices({mi("st", "a", 100000, 1)}) == RC{ReplayCheck::kNew});
  CHECK(records(*s, "gap", 10, 11, 1) == RC{ReplayCheck::kNew});
  put_account(*s, "acct");  // folds
  CHECK(records(*s, "gap", 0, 12, 1) == RC{ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew,
                                          ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kNew,
                                          ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kSame, ReplayCheck::kNew});
}

TEST_CASE("sqlite store: a key write folds the journal into its own transaction") {
  OneStore t;
  auto& [dir, path, s] = t;
  CHECK(records(*s, "a", 0, 3, 1) == all(3, ReplayCheck::kNew));
  uint64_t epoch = gen_u64(path, kJournalEpoch);
  put_account(*s, "acct");
  CHECK(rows(path) == 3);
  CHECK(live_slots(path).empty());
  CHECK(gen_u64(path, kJournalEpoch) == epoch + 1);
  // A key write with nothing to fold leaves the epoch alone.
  put_account(*s, "acct 2");
  CHECK(gen_u64(path, kJournalEpoch) == epoch + 1);
  // After its own fold this store still knows index 1 is taken (its highest
  // folded index moved with the fold).
  CHECK(s->record_message_indices({mi("st", "a", 1, 9), mi("st", "a", 1, 1)}) ==
        RC{ReplayCheck::kConflict, ReplayCheck::kSame});
}

TEST_CASE("sqlite store: two stores on one file share the journal, and each sees the other's folds") {
  TwoStores t;
  auto& [dir, path, a, b] = t;
  CHECK(a->record_message_indices({mi("st", "i", 5, 1)}) == RC{ReplayCheck::kNew});
  CHECK(b->record_message_indices({mi("st", "i", 5, 2), mi("st", "i", 5, 1)}) ==
        RC{ReplayCheck::kConflict, ReplayCheck::kSame});
  // b learns that the file has nothing of session i (its highest folded index: none).
  CHECK(b->record_message_indices({mi("st", "i", 9, 1)}) == RC{ReplayCheck::kNew});
  // a folds both entries into the file; b must not trust what it knew.
  put_account(*a, "acct");
  CHECK(rows(path) == 2);
  CHECK(live_slots(path).empty());
  CHECK(b->record_message_indices({mi("st", "i", 9, 2), mi("st", "i", 5, 2), mi("st", "i", 6, 2)}) ==
        RC{ReplayCheck::kConflict, ReplayCheck::kConflict, ReplayCheck::kNew});
  CHECK(a->record_message_indices({mi("st", "i", 6, 3), mi("st", "i", 6, 2)}) ==
        RC{ReplayCheck::kConflict, ReplayCheck::kSame});
}

TEST_CASE("sqlite store: a backlog goes to the file in one transaction, with the journal before it") {
  OneStore t;
  auto& [dir, path, s] = t;
  CHECK(records(*s, "a", 0, 10, 1) == all(10, ReplayCheck::kNew));
  std::vector<MessageIndexRecord> batch;
  RC want;
  for (uint32_t i = 0; i < 300; ++i) {
    batch.push_back(mi("st", "a", i, i < 5 ? 1 : 7));  // 0-4 as recorded, 5-9 conflicting, the rest new
    want.push_back(i < 5 ? ReplayCheck::kSame : i < 10 ? ReplayCheck::kConflict : ReplayCheck::kNew);
  }
  batch.push_back(mi("st", "a", 299, 8));
  want.push_back(ReplayCheck::kConflict);
  CHECK(s->record_message_indices(batch) == want);
  CHECK(rows(path) == 300);
  CHECK(live_slots(path).empty());
  CHECK(records(*s, "a", 0, 10, 1) == all(10, ReplayCheck::kSame));  // a conflict keeps the first
  CHECK(records(*s, "a", 10, 300, 7) == all(290, ReplayCheck::kSame));
  CHECK(records(*s, "a", 300, 301, 7) == RC{ReplayCheck::kNew});
}

TEST_CASE("sqlite store: journal entries survive a crash of the process (SIGKILL)") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  { put_account(*SqliteCryptoStore::open(path, "k"), "acct"); }
  auto lines = test::run_and_kill(
      [&](int out) {
        auto s = SqliteCryptoStore::open(path, "k");
        if (records(*s, "a", 0, 20, 1) != all(20, ReplayCheck::kNew)) throw std::runtime_error("not new");
        if (::write(out, "recorded\n", 9) != 9) throw std::runtime_error("write");
        ::pause();  // killed here, the store open
      },
      1);
  REQUIRE(lines == std::vector<std::string>{"recorded"});
  CHECK(rows(path) == 0);
  CHECK(live_slots(path).size() == 20);
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(records(*s, "a", 0, 20, 1) == all(20, ReplayCheck::kSame));
  CHECK(records(*s, "a", 0, 20, 2) == all(20, ReplayCheck::kConflict));
  s.reset();
  CHECK(rows(path) == 20);
}

TEST_CASE("sqlite store: a crash between a fold's COMMIT and the journal's clearing changes no answer") {
  OneStore t;
  auto& [dir, path, s] = t;
  CHECK(records(*s, "a", 0, 8, 1) == all(8, ReplayCheck::kNew));
  auto before_fold = journal_bytes(path);
  put_account(*s, "acct");  // folds: the rows are in the file, the journal empty
  REQUIRE(rows(path) == 8);
  // As a writer that died right after its COMMIT leaves it: the entries both in
  // the file and live in the journal, the epoch not moved.
  set_journal_bytes(path, before_fold);
  CHECK(live_slots(path).size() == 8);
  CHECK(records(*s, "a", 0, 8, 1) == all(8, ReplayCheck::kSame));
  CHECK(records(*s, "a", 0, 8, 2) == all(8, ReplayCheck::kConflict));
  CHECK(records(*s, "a", 8, 9, 2) == RC{ReplayCheck::kNew});
  put_account(*s, "acct 2");  // folds them again: nothing changes in the file but the new one
  CHECK(rows(path) == 9);
  CHECK(live_slots(path).empty());
  CHECK(records(*s, "a", 0, 9, 1) == RC{ReplayCheck::kSame, ReplayCheck::kSame, ReplayCheck::kSame,
                                       ReplayCheck::kSame, ReplayCheck::kSame, ReplayCheck::kSame,
                                       ReplayCheck::kSame, ReplayCheck::kSame, ReplayCheck::kConflict});
}

TEST_CASE("sqlite store: a half-written journal slot, or a count left low, changes no answer") {
  OneStore t;
  auto& [dir, path, s] = t;
  CHECK(records(*s, "a", 0, 4, 1) == all(4, ReplayCheck::kNew));
  // Every slot that is not live gets an entry's bytes without its mark (as a
  // writer that died before the mark leaves it), here a copy of a live one.
  auto live = live_slots(path);
  REQUIRE(live.size() == 4);
  auto body = gen_bytes(path, kJournalSlots + static_cast<off_t>(live[0] * kSlotSize) + 8, kSlotSize - 8);
  for (size_t i = 0; i < kSlots; ++i) {
    if (std::find(live.begin(), live.end(), i) == live.end()) {
      set_gen_bytes(path, kJournalSlots + static_cast<off_t>(i * kSlotSize) + 8, body);
    }
  }
  CHECK(records(*s, "a", 4, 8, 1) == all(4, ReplayCheck::kNew));
  CHECK(records(*s, "a", 0, 8, 1) == all(8, ReplayCheck::kSame));
  // A count that stays low (a writer that died after the mark, every time): the
  // table fills up, and the entry that finds no slot (index 512) goes to the
  // file with the whole journal.
  for (uint32_t i = 8; i < 600; ++i) {
    set_gen_u64(path, kJournalCount, 0);
    REQUIRE(s->record_message_indices({mi("st", "a", i, 1)}) == RC{ReplayCheck::kNew});
  }
  CHECK(rows(path) == 513);
  CHECK(live_slots(path).size() == 600 - 513);
  CHECK(records(*s, "a", 0, 600, 1) == all(600, ReplayCheck::kSame));
  CHECK(records(*s, "a", 600, 601, 1) == RC{ReplayCheck::kNew});
  s.reset();
  CHECK(rows(path) == 601);
}

TEST_CASE("sqlite store: a damaged journal entry is STORE_CORRUPT, and nothing is written") {
  OneStore t;
  auto& [dir, path, s] = t;
  put_account(*s, "acct");
  CHECK(records(*s, "a", 0, 3, 1) == all(3, ReplayCheck::kNew));
  auto live = live_slots(path);
  REQUIRE(live.size() == 3);
  for (size_t slot : live) {
    // A fingerprint changed (to another event's) without its tag.
    set_gen_bytes(path, kJournalSlots + static_cast<off_t>(slot * kSlotSize) + 48, std::string(16, '\2'));
  }
  auto file_before = test::read_file(path);
  REQUIRE_ERROR(s->record_message_indices({mi("st", "a", 1, 2)}), STORE_CORRUPT);
  REQUIRE_ERROR(s->record_message_indices({mi("st", "a", 3, 2), mi("st", "a", 1, 2)}), STORE_CORRUPT);
  CHECK(live_slots(path).size() == 3);  // the new entry before the damaged one was not written either
  REQUIRE_ERROR(save_account(*s, "acct 2"), STORE_CORRUPT);  // a key write folds: refused, rolled back
  CHECK(s->get_account() == "acct");
  CHECK(rows(path) == 0);
  s.reset();  // closing cannot fold it either
  CHECK(rows(path) == 0);
  REQUIRE_ERROR(SqliteCryptoStore::open(path, "k"), STORE_CORRUPT);
  // Opened without verification, the damage is found where it is read.
  auto unverified = SqliteCryptoStore::open(path, "k", {.verify_on_open = false});
  CHECK(unverified->record_message_indices({mi("st", "b", 0, 1)}) == RC{ReplayCheck::kNew});
  REQUIRE_ERROR(unverified->record_message_indices({mi("st", "a", 0, 1)}), STORE_CORRUPT);
}

TEST_CASE("sqlite store: a journal copied from another store does not check") {
  test::TempDir dir;
  auto a = dir.file("a.db"), b = dir.file("b.db");
  {
    auto s = SqliteCryptoStore::open(a, "k");
    CHECK(records(*s, "a", 0, 3, 1) == all(3, ReplayCheck::kNew));
    auto t = SqliteCryptoStore::open(b, "k");
    put_account(*t, "b");
    set_journal_bytes(b, journal_bytes(a));
    // Same pickle key, another store id: the entries' names mean nothing here
    // (the same ids have other keyed names), and no tag checks.
    CHECK(t->record_message_indices({mi("st", "a", 0, 2)}) == RC{ReplayCheck::kNew});
    REQUIRE_ERROR(save_account(*t, "b 2"), STORE_CORRUPT);  // the fold checks every entry
    CHECK(t->get_account() == "b");
    CHECK(rows(b) == 0);
  }
  REQUIRE_ERROR(SqliteCryptoStore::open(b, "k"), STORE_CORRUPT);
}

TEST_CASE("sqlite store: deleting a session folds the journal first, then forgets the session's entries") {
  OneStore t;
  auto& [dir, path, s] = t;
  put_inbound(*s, {"st", "a", "pickle a"});
  CHECK(s->record_message_indices({mi("st", "a", 0, 1), mi("st", "a", 1, 1), mi("st", "b", 0, 1)}) ==
        all(3, ReplayCheck::kNew));
  s->delete_inbound_session("st", "a");
  CHECK(live_slots(path).empty());
  CHECK(rows(path) == 1);
  CHECK(s->record_message_indices({mi("st", "a", 0, 2), mi("st", "a", 1, 2), mi("st", "b", 0, 2)}) ==
        RC{ReplayCheck::kNew, ReplayCheck::kNew, ReplayCheck::kConflict});
  s->delete_all();
  CHECK(live_slots(path).empty());
  CHECK(rows(path) == 0);
  CHECK(s->record_message_indices({mi("st", "a", 0, 3), mi("st", "b", 0, 3)}) == all(2, ReplayCheck::kNew));
}

namespace {
constexpr off_t kLockWord = 96;
constexpr off_t kLiveBase = off_t{1} << 20;
// Holds a store's liveness byte for `slot`, as an open store does.
int hold_live_slot(const std::string& path, uint64_t slot) {
  int fd = ::open((path + "-gen").c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = kLiveBase + static_cast<off_t>(slot - 1);
  fl.l_len = 1;
  REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
  return fd;
}
}  // namespace

TEST_CASE("sqlite store: the journal lock: a live holder is waited for up to the busy timeout, a gone one replaced") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  auto s = SqliteCryptoStore::open(path, "k", {.busy_timeout_ms = 200});
  CHECK(records(*s, "a", 0, 1, 1) == RC{ReplayCheck::kNew});
  CHECK(gen_u64(path, kLockWord) == 0);  // free between calls
  constexpr uint64_t kSlot = 4000;
  const uint64_t token = (uint64_t{77} << 16) | kSlot;
  int fd = hold_live_slot(path, kSlot);
  set_gen_u64(path, kLockWord, token);
  auto before = journal_bytes(path);
  REQUIRE_ERROR(s->record_message_indices({mi("st", "a", 1, 1)}), STORE_BUSY);
  REQUIRE_ERROR(save_account(*s, "acct"), STORE_BUSY);
  CHECK(journal_bytes(path) == before);
  CHECK(gen_u64(path, kLockWord) == token);
  // Released by its holder meanwhile: the store goes on.
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    set_gen_u64(path, kLockWord, 0);
  });
  CHECK(records(*s, "a", 1, 2, 1) == RC{ReplayCheck::kNew});
  release.join();
  // The holder's store gone (its byte free, as when its process dies): replaced.
  set_gen_u64(path, kLockWord, token);
  ::close(fd);
  CHECK(records(*s, "a", 2, 3, 1) == RC{ReplayCheck::kNew});
  CHECK(gen_u64(path, kLockWord) == 0);
  // A word no store can hold (slot 0, or past the last) is replaced as well.
  for (uint64_t w : {uint64_t{5} << 16, (uint64_t{5} << 16) | 4097}) {
    set_gen_u64(path, kLockWord, w);
    CHECK(s->record_message_indices({mi("st", "a", 3, 1)}).size() == 1);
    CHECK(gen_u64(path, kLockWord) == 0);
  }
  put_account(*s, "acct");
  CHECK(rows(path) == 4);
}

TEST_CASE("sqlite store: a process killed while it holds the journal lock does not block the others") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  auto s = SqliteCryptoStore::open(path, "k", {.busy_timeout_ms = 5000});
  CHECK(records(*s, "a", 0, 1, 1) == RC{ReplayCheck::kNew});
  auto lines = test::run_and_kill(
      [&](int out) {
        (void)hold_live_slot(path, 4000);
        set_gen_u64(path, kLockWord, (uint64_t{9} << 16) | 4000);
        if (::write(out, "locked\n", 7) != 7) throw std::runtime_error("write");
        ::pause();
      },
      1);
  REQUIRE(lines == std::vector<std::string>{"locked"});
  CHECK(gen_u64(path, kLockWord) == ((uint64_t{9} << 16) | 4000));
  auto t0 = std::chrono::steady_clock::now();
  CHECK(records(*s, "a", 1, 2, 1) == RC{ReplayCheck::kNew});
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));  // not the busy timeout
}

TEST_CASE("sqlite store: processes recording the same indices at once: exactly one sees each as new") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  { put_account(*SqliteCryptoStore::open(path, "k"), "acct"); }
  constexpr uint32_t kIndices = 1500;  // past five folds
  REQUIRE(test::run_in_children(2, [&](int child) {
    auto s = SqliteCryptoStore::open(path, "k");
    // Both start together: each marks itself ready and waits for the other.
    std::ofstream(dir.file("ready-" + std::to_string(child))) << "";
    while (!std::filesystem::exists(dir.file("ready-" + std::to_string(1 - child)))) std::this_thread::yield();
    std::string out;
    for (uint32_t i = 0; i < kIndices; ++i) {
      auto r = s->record_message_indices({mi("st", "a", i, static_cast<uint8_t>(child + 1))}).at(0);
      out.push_back(r == ReplayCheck::kNew ? 'n' : r == ReplayCheck::kConflict ? 'c' : 's');
    }
    std::ofstream(dir.file("child-" + std::to_string(child))) << out;
  }));
  auto a = test::read_file(dir.file("child-0")), b = test::read_file(dir.file("child-1"));
  REQUIRE(a.size() == kIndices);
  REQUIRE(b.size() == kIndices);
  for (uint32_t i = 0; i < kIndices; ++i) {
    INFO("index " << i);
    CHECK(((a[i] == 'n' && b[i] == 'c') || (a[i] == 'c' && b[i] == 'n')));
  }
  CHECK(rows(path) == kIndices);  // both closed: everything folded
  CHECK(gen_u64(path, kLockWord) == 0);
}

TEST_CASE("sqlite store: wrong key, foreign file, corrupt file, newer schema are refused unchanged") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  {
    auto s = SqliteCryptoStore::open(path, "right key");
    put_account(*s, "acct");
  }
  auto before = test::read_file(path);
  REQUIRE_ERROR(SqliteCryptoStore::open(path, "wrong key"), STORE_WRONG_PICKLE_KEY);
  CHECK(test::read_file(path) == before);
  CHECK(SqliteCryptoStore::open(path, "right key")->get_account() == "acct");

  auto garbage = dir.file("garbage.db");
  {
    std::ofstream out(garbage, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(i * 7 + 3));
  }
  auto garbage_before = test::read_file(garbage);
  REQUIRE_ERROR(SqliteCryptoStore::open(garbage, "k"), STORE_CORRUPT);
  CHECK(test::read_file(garbage) == garbage_before);

  auto foreign = dir.file("foreign.db");
  raw_sql(foreign, "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');");
  auto foreign_before = test::read_file(foreign);
  REQUIRE_ERROR(SqliteCryptoStore::open(foreign, "k"), STORE_CORRUPT);
  CHECK(test::read_file(foreign) == foreign_before);

  auto newer = dir.file("newer.db");
  SqliteCryptoStore::open(newer, "k").reset();
  raw_sql(newer, "PRAGMA user_version = 99;");
  REQUIRE_ERROR(SqliteCryptoStore::open(newer, "k"), STORE_NEWER_SCHEMA);
}

TEST_CASE("sqlite store: a damaged sealed key is reported, not returned") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  put_hybrid(*SqliteCryptoStore::open(path, "k"), hybrid("stream", "id", 1));
  raw_sql(path, "UPDATE hybrid_sessions SET sealed = zeroblob(60);");
  REQUIRE_ERROR(SqliteCryptoStore::open(path, "k"), STORE_CORRUPT);
  auto s = SqliteCryptoStore::open(path, "k", {.verify_on_open = false});
  REQUIRE_ERROR(s->get_hybrid_session("stream", "id"), STORE_CORRUPT);
  REQUIRE_ERROR(s->latest_hybrid_session("stream"), STORE_CORRUPT);
  REQUIRE_ERROR(s->hybrid_session_ids("stream"), STORE_CORRUPT);
}

TEST_CASE("sqlite store: two processes write one file concurrently") {
  test::TempDir dir;
  auto path = dir.file("shared.db");
  SqliteCryptoStore::open(path, "k").reset();
  constexpr int kPerProcess = 150;
  CHECK(test::run_in_children(2, [&](int p) {
    auto s = SqliteCryptoStore::open(path, "k");
    for (int i = 0; i < kPerProcess; ++i) {
      StoreChanges c;
      c.inbound_sessions.push_back({"stream", "p" + std::to_string(p) + "-" + std::to_string(i), "pickle"});
      c.account = "written by " + std::to_string(p);
      if (!s->save_changes(c)) throw std::runtime_error("no condition, yet refused");
    }
  }));
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->inbound_session_ids("stream").size() == 2 * kPerProcess);
  CHECK(s->integrity_ok());
}

TEST_CASE("sqlite store: two processes reserve from one outbound row optimistically, losing no update") {
  // Each process reads the row, adds 1 to reserved_until and writes it back on
  // condition that the row is still what it read; on a refusal it re-reads.
  test::TempDir dir;
  auto path = dir.file("shared.db");
  put_outbound(*SqliteCryptoStore::open(path, "k"), {"stream", "sid", "pickle", 0});
  constexpr int kPerProcess = 60;
  CHECK(test::run_in_children(2, [&](int p) {
    auto s = SqliteCryptoStore::open(path, "k", {.synchronous_full = false});
    for (int done = 0; done < kPerProcess;) {
      auto row = s->get_outbound_session("stream");
      if (!row) throw std::runtime_error("row gone");
      StoreChanges c;
      c.expect_outbound = {{"stream", row->session_id, row->reserved_until}};
      c.outbound_sessions.push_back({"stream", row->session_id, "by " + std::to_string(p), row->reserved_until + 1});
      if (s->save_changes(c)) ++done;
    }
  }));
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->get_outbound_session("stream")->reserved_until == 2 * kPerProcess);
}

TEST_CASE("sqlite store: every acknowledged write survives kill -9") {
  test::TempDir dir;
  auto path = dir.file("durable.db");
  SqliteCryptoStore::open(path, "k").reset();
  for (int round = 0; round < 3; ++round) {
    // Let it write for a while, then kill it mid-flight.
    auto acked = test::run_and_kill(
        [&](int fd) {
          auto s = SqliteCryptoStore::open(path, "k");
          for (int i = 0;; ++i) {
            std::string id = "r" + std::to_string(round) + "-" + std::to_string(i);
            StoreChanges c;
            c.inbound_sessions.push_back({"stream", id, "pickle"});
            if (!s->save_changes(c)) throw std::runtime_error("refused");
            test::write_line(fd, id);  // acknowledged only after the write returned
          }
        },
        static_cast<size_t>(250 + round * 190));
    auto s = SqliteCryptoStore::open(path, "k");
    CHECK(s->integrity_ok());
    for (const auto& id : acked) REQUIRE(s->get_inbound_session("stream", id).has_value());
    CHECK(!acked.empty());
  }
}

namespace {

// The SQL of versions 1 to 3 (lib/store/sqlite_crypto_store.cpp's kMigrations),
// to make files as the old code did.
const char* const kOldMigrations[] = {
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
    R"sql(
    ALTER TABLE outbound_sessions ADD COLUMN reserved_until INTEGER NOT NULL DEFAULT 0;
    )sql",
    R"sql(
    DROP TABLE user_devices;
    CREATE TABLE message_indices (
      stream_id TEXT NOT NULL, session_id TEXT NOT NULL, message_index INTEGER NOT NULL,
      fingerprint BLOB NOT NULL, PRIMARY KEY (stream_id, session_id, message_index)) WITHOUT ROWID;
    )sql",
};

// A value sealed as versions 1 to 3 sealed: 0x01 || iv || AES-256-GCM, as an SQL blob literal.
std::string sealed_v1(const std::string& key, const char* info, std::string_view plaintext, std::string_view aad) {
  auto k = crypto::AesGcm::New(crypto::hkdf_sha256(key, crypto::as_bytes("towns-e2ee sqlite store v1"),
                                                   crypto::as_bytes(info), 32));
  std::vector<uint8_t> iv(12, 0x5a);
  auto ct = k.encrypt(iv, crypto::as_bytes(plaintext), crypto::as_bytes(aad));
  std::vector<uint8_t> out{1};
  out.insert(out.end(), iv.begin(), iv.end());
  out.insert(out.end(), ct.begin(), ct.end());
  return "X'" + crypto::hex_encode(out) + "'";
}

// A store file of schema `version` (1 to 3) as the code of that version wrote it,
// with a row in every table; key_check false: without the key check.
void write_old_store(const std::string& path, int version, const std::string& key, bool key_check = true,
                     bool data = true) {
  std::string sql = "PRAGMA journal_mode=WAL;";
  for (int v = 0; v < version; ++v) sql += kOldMigrations[v];
  sql += "PRAGMA application_id=" + std::to_string(SqliteCryptoStore::kApplicationId) + ";";
  sql += "PRAGMA user_version=" + std::to_string(version) + ";";
  if (key_check) {
    sql += "INSERT INTO meta VALUES ('key_check', " +
           sealed_v1(key, "pickle key check", "towns-e2ee key check v1", "key_check") + ");";
  }
  if (data) {
    sql += "INSERT INTO account VALUES (0, 'acct');";
    sql += version >= 2 ? "INSERT INTO outbound_sessions VALUES ('stream', 'sid', 'pickle', 250);"
                        : "INSERT INTO outbound_sessions VALUES ('stream', 'sid', 'pickle');";
    sql += "INSERT INTO inbound_sessions VALUES ('stream', 'in', 'in pickle');";
    sql += "INSERT INTO inbound_sessions VALUES ('stream', 'in2', 'in pickle 2');";
    std::string aad = std::string("towns-e2ee hybrid session key") + '\0' + "stream" + '\0' + "hid";
    sql += "INSERT INTO hybrid_sessions VALUES ('stream', 'hid', 7, " +
           sealed_v1(key, "hybrid session keys", "THE-AES-KEY-OF-AN-OLD-STORE-32by", aad) + ");";
    if (version >= 3) {
      sql += "INSERT INTO message_indices VALUES ('stream', 'in', 5, X'" + std::string(32, 'a') + "');";
    } else {
      sql += "INSERT INTO user_devices VALUES ('u', 'd', 'f', 9000000000000);";
    }
  }
  raw_sql(path, sql.c_str());
}

}  // namespace

TEST_CASE("sqlite store: version 1, 2 and 3 stores are upgraded to the current schema in one go, keeping their data") {
  const int from = GENERATE(1, 2, 3);
  INFO("from schema version " << from);
  test::TempDir dir;
  auto path = dir.file("old.db");
  write_old_store(path, from, "k");
  REQUIRE(raw_int(path, "PRAGMA user_version") == from);
  CHECK(SqliteCryptoStore::kSchemaVersion == 4);

  // A wrong key is refused before anything is written.
  auto before = test::read_file(path);
  REQUIRE_ERROR(SqliteCryptoStore::open(path, "wrong"), STORE_WRONG_PICKLE_KEY);
  CHECK(test::read_file(path) == before);

  auto s = SqliteCryptoStore::open(path, "k", StoreOpenMode::kOpen);
  CHECK(raw_int(path, "PRAGMA user_version") == SqliteCryptoStore::kSchemaVersion);
  CHECK(table_count(path, "user_devices") == 0);
  CHECK(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'v3_%' OR name = 'user_devices_expiry'") == 0);
  CHECK(s->get_account() == "acct");
  CHECK(s->get_inbound_session("stream", "in")->pickle == "in pickle");
  CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"in", "in2"});
  CHECK(s->get_hybrid_session("stream", "hid")->session_key.view() == "THE-AES-KEY-OF-AN-OLD-STORE-32by");
  CHECK(s->latest_hybrid_session("stream")->miniblock_num == 7);
  auto out = s->get_outbound_session("stream");
  REQUIRE(out.has_value());
  CHECK(out->pickle == "pickle");
  CHECK(out->reserved_until == (from == 1 ? 0u : 250u));
  put_outbound(*s, {"stream", "sid", "pickle", 300});
  CHECK(s->get_outbound_session("stream")->reserved_until == 300);
  std::array<uint8_t, 16> fp{};
  fp.fill(0xaa);
  CHECK(s->record_message_indices({{"stream", "in", 5, fp}, mi("stream", "in", 6, 1)}) ==
        RC{from >= 3 ? ReplayCheck::kSame : ReplayCheck::kNew, ReplayCheck::kNew});
  CHECK(s->integrity_ok());
  s.reset();
  // The clear ids and the plain pickles are gone from the file.
  auto bytes = test::read_file(path);
  CHECK(bytes.find("in pickle") == std::string::npos);
  CHECK(bytes.find("acct") == std::string::npos);
  CHECK(SqliteCryptoStore::open(path, "k", StoreOpenMode::kOpen)->get_account() == "acct");
}

TEST_CASE("sqlite store: an old store without its key check") {
  test::TempDir dir;
  // With data: refused under any key, unchanged.
  auto with_data = dir.file("data.db");
  write_old_store(with_data, 3, "k", false);
  auto before = test::read_file(with_data);
  REQUIRE_ERROR(SqliteCryptoStore::open(with_data, "k"), STORE_CORRUPT);
  REQUIRE_ERROR(SqliteCryptoStore::open(with_data, "other"), STORE_CORRUPT);
  CHECK(test::read_file(with_data) == before);
  // Empty (the old code wrote the key check in a second transaction): a new,
  // empty store, finished when opened with kEither, refused with kOpen.
  auto empty = dir.file("empty.db");
  write_old_store(empty, 3, "k", false, false);
  REQUIRE_ERROR(SqliteCryptoStore::open(empty, "k", StoreOpenMode::kOpen), STORE_CORRUPT);
  put_account(*SqliteCryptoStore::open(empty, "k", StoreOpenMode::kEither), "new");
  CHECK(SqliteCryptoStore::open(empty, "k", StoreOpenMode::kOpen)->get_account() == "new");
  REQUIRE_ERROR(SqliteCryptoStore::open(empty, "other"), STORE_WRONG_PICKLE_KEY);
}

TEST_CASE("sqlite store: processes creating one new path at once, or upgrading one old file at once, end with one store") {
  test::TempDir dir;
  auto path = dir.file("new.db");
  CHECK(test::run_in_children(4, [&](int p) {
    auto s = SqliteCryptoStore::open(path, "k", StoreOpenMode::kEither);
    StoreChanges c;
    c.inbound_sessions.push_back({"stream", "from " + std::to_string(p), "pickle"});
    if (!s->save_changes(c)) throw std::runtime_error("refused");
  }));
  CHECK(SqliteCryptoStore::open(path, "k", StoreOpenMode::kOpen)->inbound_session_ids("stream").size() == 4);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.file(""))) {
    if (e.path().filename().string().find(".new-") != std::string::npos) ++files;
  }
  CHECK(files == 0);

  auto old = dir.file("old.db");
  write_old_store(old, 3, "k");
  CHECK(test::run_in_children(3, [&](int) {
    try {
      auto s = SqliteCryptoStore::open(old, "k", StoreOpenMode::kOpen);
      if (s->get_account() != "acct" || s->inbound_session_ids("stream").size() != 2) throw std::runtime_error("lost");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());  // which refusal, when it fails
      throw;
    }
  }));
  CHECK(raw_int(old, "PRAGMA user_version") == SqliteCryptoStore::kSchemaVersion);
  auto s = SqliteCryptoStore::open(old, "k", StoreOpenMode::kOpen);
  CHECK(s->get_outbound_session("stream")->reserved_until == 250);
  CHECK(s->integrity_ok());
}
