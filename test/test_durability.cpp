// Crash durability: a process working on a SQLite store is killed with SIGKILL
// at random points, many times. After each restart no (session, message index)
// has been emitted twice, every acknowledged import is there, and the database
// passes PRAGMA integrity_check.
#include "helpers.h"
#include "store_fixtures.h"

#include <csignal>
#include <poll.h>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

#include "towns/crypto/encoding.h"
#include "towns/protocol/group_encryption_crypto.h"

using namespace towns;
using crypto::SecretBytes;

namespace {

const std::string kStream = "20" + std::string(62, 'd');
const std::string kKey = "durability key";

size_t random_below(crypto::RandomSource& rng, size_t n) {
  uint8_t b[2];
  rng.fill(b);
  return ((b[0] << 8) | b[1]) % n;
}

}  // namespace

TEST_CASE("killed while encrypting: no (session, index) is ever emitted twice") {
  test::TempDir dir;
  auto path = dir.file("device.db");
  crypto::SeededRandom when(test::bytes("kill points"));
  std::vector<std::string> emitted;
  for (int round = 0; round < 12; ++round) {
    auto lines = test::run_and_kill(
        [&](int fd) {
          auto store = SqliteCryptoStore::open(path, kKey);
          GroupEncryptionCrypto c(nullptr, *store);
          c.init({.pickle_key = SecretBytes(std::string_view(kKey))});
          for (int i = 0;; ++i) {
            auto e = c.encrypt_group_event(kStream, test::bytes("round " + std::to_string(round) + " #" + std::to_string(i)),
                                           GroupEncryptionAlgorithm::kGroupEncryption);
            // Handed out only once encrypt returned: the ratchet is on disk.
            test::write_line(fd, crypto::base64_encode(e.encode(), crypto::Base64Padding::kPadded));
          }
        },
        1 + random_below(when, 40));
    emitted.insert(emitted.end(), lines.begin(), lines.end());
    auto store = SqliteCryptoStore::open(path, kKey);
    REQUIRE(store->integrity_ok());
  }
  REQUIRE(emitted.size() >= 12);
  auto store = SqliteCryptoStore::open(path, kKey);
  GroupEncryptionCrypto c(nullptr, *store);
  c.init({.pickle_key = SecretBytes(std::string_view(kKey))});
  std::set<std::pair<std::string, uint32_t>> seen;
  for (const auto& line : emitted) {
    auto bytes = crypto::base64_decode(line, crypto::Base64Padding::kPadded);
    auto e = EncryptedData::decode(bytes);
    auto d = c.decrypt_group_event(kStream, e);
    REQUIRE(d.message_index.has_value());
    CHECK(seen.insert({e.session_id, *d.message_index}).second);
  }
  CHECK(seen.size() == emitted.size());
}

TEST_CASE("killed during batch imports: every acknowledged import is still there") {
  test::TempDir dir;
  auto path = dir.file("importer.db");
  // 300 sessions of a sender, exported.
  MemoryCryptoStore sender_store;
  GroupEncryptionCrypto sender(nullptr, sender_store);
  sender.init();
  std::vector<GroupEncryptionSession> keys;
  for (int i = 0; i < 300; ++i) {
    std::string stream = "20" + std::string(60, 'e') + "0123456789abcdef"[i / 16 % 16] + "0123456789abcdef"[i % 16];
    auto id = sender.ensure_outbound_session(stream, GroupEncryptionAlgorithm::kGroupEncryption);
    keys.push_back(*sender.export_group_session(stream, id));
  }
  constexpr size_t kBatch = 25;
  crypto::SeededRandom when(test::bytes("import kill points"));
  std::set<size_t> acked;
  for (int round = 0; round < 8; ++round) {
    size_t start = random_below(when, keys.size() / kBatch) * kBatch;
    auto lines = test::run_and_kill(
        [&](int fd) {
          auto store = SqliteCryptoStore::open(path, kKey);
          GroupEncryptionCrypto c(nullptr, *store);
          c.init({.pickle_key = SecretBytes(std::string_view(kKey))});
          for (size_t b = start; b < keys.size(); b += kBatch) {
            std::vector<GroupEncryptionSession> batch(keys.begin() + static_cast<ptrdiff_t>(b),
                                                      keys.begin() + static_cast<ptrdiff_t>(std::min(keys.size(), b + kBatch)));
            // The batch is imported in memory (same pickle key), then written to
            // the file with one save_changes: one transaction per batch.
            MemoryCryptoStore staging;
            GroupEncryptionCrypto stager(nullptr, staging);
            stager.init({.pickle_key = SecretBytes(std::string_view(kKey))});
            auto r = stager.import_room_keys(batch);
            if (!r.failed.empty()) throw std::runtime_error("import failed");
            StoreChanges changes;
            changes.inbound_sessions = staging.all_inbound_sessions();
            changes.hybrid_sessions = staging.all_hybrid_sessions();
            if (changes.inbound_sessions.size() != batch.size()) throw std::runtime_error("not all imported");
            if (!store->save_changes(changes)) throw std::runtime_error("refused");
            test::write_line(fd, std::to_string(b));
          }
          for (;;) pause();
        },
        1 + random_below(when, 5));
    for (const auto& l : lines) acked.insert(std::stoul(l));
    REQUIRE(SqliteCryptoStore::open(path, kKey)->integrity_ok());
  }
  REQUIRE(!acked.empty());
  auto store = SqliteCryptoStore::open(path, kKey);
  GroupEncryptionCrypto c(nullptr, *store);
  c.init({.pickle_key = SecretBytes(std::string_view(kKey))});
  for (size_t b : acked) {
    for (size_t i = b; i < std::min(keys.size(), b + kBatch); ++i) {
      INFO("batch " << b << " key " << i);
      CHECK(c.has_session_key(keys[i].stream_id, keys[i].session_id, GroupEncryptionAlgorithm::kGroupEncryption));
    }
  }
}
