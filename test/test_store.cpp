// One conformance suite for every CryptoStore, then SQLite-specific checks.
#include "helpers.h"
#include "store_fixtures.h"

#include <catch2/catch_template_test_macros.hpp>
#include <sqlite3.h>
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace

TEMPLATE_TEST_CASE("store: account", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK_FALSE(s->get_account().has_value());
  s->store_account("pickle-1");
  s->store_account("pickle-2");
  CHECK(s->get_account() == "pickle-2");
  s->delete_account();
  CHECK_FALSE(s->get_account().has_value());
}

TEMPLATE_TEST_CASE("store: outbound and inbound group sessions", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK_FALSE(s->get_outbound_session("stream").has_value());
  s->store_outbound_session({"stream", "s1", "p1"});
  s->store_outbound_session({"stream", "s2", "p2"});  // one per stream: replaced
  s->store_outbound_session({"other", "s3", "p3"});
  auto out = s->get_outbound_session("stream");
  REQUIRE(out.has_value());
  CHECK(out->session_id == "s2");
  CHECK(out->pickle == "p2");
  CHECK(s->all_outbound_sessions().size() == 2);
  s->delete_outbound_session("stream");
  CHECK_FALSE(s->get_outbound_session("stream").has_value());

  for (const char* id : {"c", "a", "b"}) s->store_inbound_session({"stream", id, std::string("pickle ") + id});
  s->store_inbound_session({"stream2", "z", "pz"});
  CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"a", "b", "c"});
  CHECK(s->inbound_session_ids("nothing").empty());
  CHECK(s->get_inbound_session("stream", "b")->pickle == "pickle b");
  CHECK_FALSE(s->get_inbound_session("stream2", "a").has_value());
  s->store_inbound_session({"stream", "b", "new b"});
  CHECK(s->get_inbound_session("stream", "b")->pickle == "new b");
  CHECK(s->all_inbound_sessions().size() == 4);
  s->delete_inbound_session("stream", "a");
  CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"b", "c"});
}

TEMPLATE_TEST_CASE("store: hybrid sessions and the latest per stream", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  CHECK_FALSE(s->latest_hybrid_session("stream").has_value());
  s->store_hybrid_session(hybrid("stream", "bb", 5));
  s->store_hybrid_session(hybrid("stream", "aa", 9));
  s->store_hybrid_session(hybrid("stream", "cc", 2));
  s->store_hybrid_session(hybrid("other", "dd", 100));
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

TEMPLATE_TEST_CASE("store: user devices expire", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  s->save_user_devices("u1", {{"d2", "f2"}, {"d1", "f1"}}, 1000);
  s->save_user_devices("u2", {{"d3", "f3"}}, 5000);
  auto devices = s->get_user_devices("u1", 999);
  REQUIRE(devices.size() == 2);
  CHECK(devices[0].device_key == "d1");
  CHECK(devices[1].fallback_key == "f2");
  CHECK(s->get_user_devices("u1", 1000).empty());  // valid only while expiry > now
  s->save_user_devices("u1", {{"d1", "f1-new"}}, 3000);  // refreshes d1 only
  devices = s->get_user_devices("u1", 2000);
  REQUIRE(devices.size() == 1);
  CHECK(devices[0].fallback_key == "f1-new");
  s->purge_expired_devices(2000);
  CHECK(s->get_user_devices("u1", 0).size() == 1);
  s->delete_user_devices("u2");
  CHECK(s->get_user_devices("u2", 0).empty());
}

TEMPLATE_TEST_CASE("store: transactions land together or not at all", "[store]", MemoryFactory, SqliteFactory) {
  TestType f;
  auto s = f.make();
  s->store_inbound_session({"stream", "keep", "p"});
  struct Boom {};
  CHECK_THROWS_AS(s->transaction([&] {
    s->store_inbound_session({"stream", "x", "p"});
    s->store_account("acct");
    s->transaction([&] { s->store_hybrid_session(hybrid("stream", "h", 1)); });  // nested joins
    throw Boom{};
  }),
                  Boom);
  CHECK(s->inbound_session_ids("stream") == std::vector<std::string>{"keep"});
  CHECK_FALSE(s->get_account().has_value());
  CHECK(s->hybrid_session_ids("stream").empty());

  s->transaction([&] {
    s->store_inbound_session({"stream", "y", "p"});
    s->store_account("acct");
  });
  CHECK(s->inbound_session_ids("stream").size() == 2);
  CHECK(s->get_account() == "acct");

  s->delete_all();
  CHECK(s->all_inbound_sessions().empty());
  CHECK_FALSE(s->get_account().has_value());
}

// ---- SQLite only

namespace {

void raw_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

}  // namespace

TEST_CASE("sqlite store: reopens with its data; hybrid keys are not in the clear") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  const std::string secret = "THIS-IS-A-SECRET-AES-KEY-32bytes";
  {
    auto s = SqliteCryptoStore::open(path, "k");
    s->store_account("acct");
    s->store_hybrid_session({"stream", "id", SecretBytes(std::string_view(secret)), 3});
    s->store_inbound_session({"stream", "in", "pickle"});
  }
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->get_account() == "acct");
  CHECK(s->get_hybrid_session("stream", "id")->session_key.view() == secret);
  CHECK(s->integrity_ok());
  s.reset();
  for (const auto& f : {path, path + "-wal"}) {
    auto bytes = test::read_file(f);
    CHECK(bytes.find(secret) == std::string::npos);
  }
}

TEST_CASE("sqlite store: wrong key, foreign file, corrupt file, newer schema are refused unchanged") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  {
    auto s = SqliteCryptoStore::open(path, "right key");
    s->store_account("acct");
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
  SqliteCryptoStore::open(path, "k")->store_hybrid_session(hybrid("stream", "id", 1));
  raw_sql(path, "UPDATE hybrid_sessions SET sealed_key = zeroblob(60);");
  auto s = SqliteCryptoStore::open(path, "k");
  REQUIRE_ERROR(s->get_hybrid_session("stream", "id"), STORE_CORRUPT);
  // A row moved to another session id does not open either (bound by its AAD).
  s->store_hybrid_session(hybrid("stream", "good", 1));
  raw_sql(path, "DELETE FROM hybrid_sessions WHERE session_id = 'id'; "
                "UPDATE hybrid_sessions SET session_id = 'moved';");
  REQUIRE_ERROR(s->get_hybrid_session("stream", "moved"), STORE_CORRUPT);
}

TEST_CASE("sqlite store: expired devices are purged when the store opens") {
  test::TempDir dir;
  auto path = dir.file("s.db");
  SqliteCryptoStore::open(path, "k")->save_user_devices("u", {{"old", "f"}}, 1000);
  SqliteCryptoStore::open(path, "k")->save_user_devices("u", {{"new", "f"}}, 9000);
  SqliteStoreOptions opts;
  opts.now_ms = [] { return int64_t{5000}; };
  SqliteCryptoStore::open(path, "k", opts).reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM user_devices", -1, &st, nullptr);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_CASE("sqlite store: two processes write one file concurrently") {
  test::TempDir dir;
  auto path = dir.file("shared.db");
  SqliteCryptoStore::open(path, "k").reset();
  constexpr int kPerProcess = 150;
  CHECK(test::run_in_children(2, [&](int p) {
    auto s = SqliteCryptoStore::open(path, "k");
    for (int i = 0; i < kPerProcess; ++i) {
      s->transaction([&] {
        s->store_inbound_session({"stream", "p" + std::to_string(p) + "-" + std::to_string(i), "pickle"});
        s->store_account("written by " + std::to_string(p));
      });
    }
  }));
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->inbound_session_ids("stream").size() == 2 * kPerProcess);
  CHECK(s->integrity_ok());
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
            s->store_inbound_session({"stream", id, "pickle"});
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

TEST_CASE("sqlite store: a version 1 store is migrated to the current schema, keeping its data") {
  test::TempDir dir;
  auto path = dir.file("v1.db");
  {
    auto s = SqliteCryptoStore::open(path, "k");
    s->store_account("acct");
    s->store_outbound_session({"stream", "sid", "pickle", 0});
  }
  // Turn it back into what schema version 1 wrote.
  raw_sql(path, "ALTER TABLE outbound_sessions DROP COLUMN reserved_until; PRAGMA user_version = 1;");
  auto s = SqliteCryptoStore::open(path, "k");
  CHECK(s->get_account() == "acct");
  auto out = s->get_outbound_session("stream");
  REQUIRE(out.has_value());
  CHECK(out->pickle == "pickle");
  CHECK(out->reserved_until == 0);
  s->store_outbound_session({"stream", "sid", "pickle", 300});
  CHECK(s->get_outbound_session("stream")->reserved_until == 300);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == SqliteCryptoStore::kSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
}
