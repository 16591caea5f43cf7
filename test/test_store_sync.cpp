// The SQLite store's durability modes, observed where they act: the calls that
// wait for the disk. This suite counts fsync and fdatasync (it defines them,
// counting, then calls the C library's), so it is an executable of its own.
#include <dlfcn.h>

#include <atomic>

#include "helpers.h"
#include "store_fixtures.h"
#include "towns/store/sqlite_crypto_store.h"

namespace {
std::atomic<int> g_syncs{0};

template <typename F>
F next_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}
}  // namespace

extern "C" int fdatasync(int fd) {
  ++g_syncs;
  static auto next = next_symbol<int (*)(int)>("fdatasync");
  return next(fd);
}

extern "C" int fsync(int fd) {
  ++g_syncs;
  static auto next = next_symbol<int (*)(int)>("fsync");
  return next(fd);
}

using namespace towns;

namespace {
void record(SqliteCryptoStore& s, uint32_t index) {
  std::array<uint8_t, 16> fp{};
  fp[0] = static_cast<uint8_t>(index);
  REQUIRE(s.record_message_indices({{"stream", "sid", index, fp}}).at(0) == ReplayCheck::kNew);
}

void key_write(SqliteCryptoStore& s, int n) {
  StoreChanges c;
  c.inbound_sessions.push_back({"stream", "session " + std::to_string(n), "pickle"});
  REQUIRE(s.save_changes(c));
}
}  // namespace

TEST_CASE("sqlite store: replay records do not wait for the disk, and a key write after them still does") {
  test::TempDir dir;
  auto s = SqliteCryptoStore::open(dir.file("sync.db"), "k");
  // The first frames of a fresh WAL are synced whatever the mode (SQLite makes
  // the WAL's header durable): start counting after them.
  key_write(*s, 100);
  record(*s, 100);
  uint32_t index = 0;
  for (int round = 0; round < 3; ++round) {
    int before = g_syncs;
    for (int i = 0; i < 4; ++i) record(*s, index++);
    CHECK(g_syncs == before);  // synchronous=NORMAL: committed to the WAL, not synced
    before = g_syncs;
    key_write(*s, round);
    CHECK(g_syncs > before);  // synchronous=FULL again before the key write's BEGIN
    before = g_syncs;
    key_write(*s, 10 + round);
    CHECK(g_syncs > before);
  }
}

TEST_CASE("sqlite store: with synchronous_full off, neither kind of write waits for the disk") {
  test::TempDir dir;
  auto s = SqliteCryptoStore::open(dir.file("sync.db"), "k", {.synchronous_full = false});
  key_write(*s, 100);
  record(*s, 100);
  int before = g_syncs;
  for (uint32_t i = 0; i < 4; ++i) record(*s, i);
  key_write(*s, 0);
  record(*s, 4);
  key_write(*s, 1);
  CHECK(g_syncs == before);
}
