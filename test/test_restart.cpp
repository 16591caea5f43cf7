// State that must outlive a process or be seen by another one, and a lock-order
// regression:
// - the replay record (message indices decrypted) survives a restart;
// - a second process on the same SQLite file sees the first one's imports and
//   new outbound sessions without reopening;
// - receiving a batch of shared sessions while ensuring outbound sessions on
//   another thread finishes (it deadlocked before the redesign).
#include "helpers.h"
#include "recording_client.h"
#include "store_fixtures.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "towns/crypto/encoding.h"
#include "towns/olm/olm.h"
#include "towns/protocol/session_sharing.h"

using namespace towns;
using crypto::SecretBytes;

namespace {

const std::string kStream = "20" + std::string(62, '7');
const std::string kStreamY = "20" + std::string(62, '8');
const std::string kNewStream = "20" + std::string(62, '9');
constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;
constexpr auto kHybrid = GroupEncryptionAlgorithm::kHybridGroupEncryption;
const std::string kPickleKey = "restart pickle key";

DeviceInitOptions with_key() { return {.pickle_key = SecretBytes(std::string_view(kPickleKey))}; }

std::string text(const SecretBytes& b) { return std::string(b.view()); }

using test::RecordingClient;

// A sender on a memory store (pickles under the default key).
struct Sender {
  MemoryCryptoStore store;
  RecordingClient client;
  GroupEncryptionCrypto crypto{&client, store};
  Sender() { crypto.init(); }
};

// ---- Two processes talking over pipes, one line at a time.

void send_line(int fd, const std::string& line) { test::write_line(fd, line); }

// The next line from fd, or "<timeout>" / "<eof>" (never hangs longer than the limit).
std::string receive_line(int fd, std::string& buffer, int timeout_ms = 60000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (auto nl = buffer.find('\n'); nl != std::string::npos) {
      auto line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "<timeout>";
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) return "<poll error>";
    if (r == 0) continue;
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return "<eof>";
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

TEST_CASE("restart keeps the replay record: another event at a decrypted index is REPLAY after reopening") {
  Sender a;
  auto e1 = a.crypto.encrypt_group_event(kStream, test::bytes("the real first"), kMegolm);
  auto e3 = a.crypto.encrypt_group_event(kStream, test::bytes("the real second"), kMegolm);
  // A sender that reuses index 0 for other content: the stored ratchet is the
  // one from before the first message (one store write per reserved block).
  auto stored = a.store.get_outbound_session(kStream);
  REQUIRE(stored.has_value());
  auto rolled_back = olm::OutboundGroupSession::unpickle(kDefaultPickleKey, stored->pickle);
  REQUIRE(rolled_back.message_index() == 0);
  auto e2 = e1;
  e2.ciphertext = rolled_back.encrypt(
      crypto::as_bytes(crypto::base64_encode(test::bytes("forged at index 0"), crypto::Base64Padding::kPadded)));
  REQUIRE(e2.ciphertext != e1.ciphertext);
  REQUIRE(a.client.shared.size() == 1);
  auto key = a.client.shared[0].session;

  test::TempDir dir;
  auto path = dir.file("receiver.db");
  {
    auto store = SqliteCryptoStore::open(path, kPickleKey);
    GroupEncryptionCrypto b(nullptr, *store);
    b.init(with_key());
    REQUIRE(b.import_session_keys(kStream, {key}).imported.size() == 1);
    auto d = b.decrypt_group_event(kStream, e1);
    CHECK(text(d.plaintext) == "the real first");
    CHECK(d.message_index == 0u);
  }  // facade, device and store destroyed: the process's memory of E1 is gone

  {
    auto store = SqliteCryptoStore::open(path, kPickleKey);
    GroupEncryptionCrypto b(nullptr, *store);
    b.init(with_key());
    REQUIRE_ERROR(b.decrypt_group_event(kStream, e2), REPLAY);
    auto batch = b.decrypt_group_events(kStream, {e2});
    REQUIRE(batch.size() == 1);
    CHECK_FALSE(batch[0].value.has_value());
    REQUIRE(batch[0].error.has_value());
    CHECK(batch[0].error->code() == ErrorCode::REPLAY);
    auto d = b.decrypt_group_event(kStream, e1);  // the same event again: fine
    CHECK(text(d.plaintext) == "the real first");
    CHECK(d.message_index == 0u);
    CHECK(b.decrypt_group_event(kStream, e3).message_index == 1u);  // the next index is untouched
  }

  // A store that never saw E1 takes the forged event: it is the record, not the
  // session, that refuses it.
  MemoryCryptoStore fresh_store;
  GroupEncryptionCrypto fresh(nullptr, fresh_store);
  fresh.init();
  fresh.import_session_keys(kStream, {key});
  CHECK(text(fresh.decrypt_group_event(kStream, e2).plaintext) == "forged at index 0");
}

TEST_CASE("two processes on one SQLite file: the second sees the first's imports and outbound sessions at once") {
  test::TempDir dir;
  auto path = dir.file("shared.db");

  // The device both processes run, with an outbound session on stream Y.
  std::string old_y;
  {
    auto store = SqliteCryptoStore::open(path, kPickleKey);
    GroupEncryptionCrypto c(nullptr, *store);
    c.init(with_key());
    old_y = c.ensure_outbound_session(kStreamY, kMegolm);
  }
  // Session S from another device, and an event of it.
  Sender sender;
  auto event = sender.crypto.encrypt_group_event(kStream, test::bytes("from S"), kMegolm);
  REQUIRE(sender.client.shared.size() == 1);
  auto s_key = sender.client.shared[0].session;
  const std::string s_id = event.session_id;

  int to_child[2], to_parent[2];
  REQUIRE(pipe(to_child) == 0);
  REQUIRE(pipe(to_parent) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Process 2: opens its facade first, never reopens. Reports every failed
    // expectation as a line; no Catch2 assertion runs in this process.
    close(to_child[1]);
    close(to_parent[0]);
    std::vector<std::string> failures;
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok) failures.push_back(what);
    };
    int code = 0;
    try {
      auto store = SqliteCryptoStore::open(path, kPickleKey);
      EncryptionDevice dev(*store);
      GroupEncryptionCrypto c(nullptr, dev);
      c.init(with_key());
      expect(!c.has_session_key(kStream, s_id, kMegolm), "S held before the import");
      try {
        c.decrypt_group_event(kStream, event);
        failures.push_back("S's event decrypted before the import");
      } catch (const Error& e) {
        expect(e.code() == ErrorCode::SESSION_NOT_FOUND, std::string("before the import: ") + std::string(e.code_name()));
      }
      expect(!c.has_outbound_session(kNewStream, kMegolm), "outbound session on the new stream before it was made");
      // Stream Y's outbound session is loaded (and cached) here.
      auto y = c.encrypt_group_event(kStreamY, test::bytes("y before"), kMegolm);
      expect(y.session_id == old_y, "stream Y encrypted with another session before the change");
      send_line(to_parent[1], "ready");

      std::string buffer;
      auto go = receive_line(to_child[0], buffer);
      auto words = test::split(go);
      if (words.size() != 3 || words[0] != "go") throw std::runtime_error("process 1 said: " + go);
      const std::string& new_id = words[1];
      const std::string& new_y = words[2];

      expect(c.has_session_key(kStream, s_id, kMegolm), "S not held after process 1 imported it");
      try {
        auto d = c.decrypt_group_event(kStream, event);
        expect(text(d.plaintext) == "from S", "S's event decrypts to other bytes");
      } catch (const Error& e) {
        failures.push_back(std::string("S's event after the import: ") + std::string(e.code_name()) + " " + e.what());
      }
      expect(c.has_outbound_session(kNewStream, kMegolm), "process 1's new outbound session not seen");
      auto ensured = c.ensure_outbound_session(kNewStream, kMegolm);
      expect(ensured == new_id, "ensure on the new stream gave " + ensured + ", process 1 made " + new_id);
      auto n = c.encrypt_group_event(kNewStream, test::bytes("n"), kMegolm);
      expect(n.session_id == new_id, "the new stream encrypted with " + n.session_id);
      auto y2 = c.encrypt_group_event(kStreamY, test::bytes("y after"), kMegolm);
      expect(y2.session_id == new_y, "stream Y still encrypted with " + y2.session_id + ", process 1 made " +
                                           new_y);
      expect(dev.outbound().session_key(kStreamY).value().session_id == new_y, "session_key of Y is not the new one");
    } catch (const std::exception& e) {
      failures.push_back(std::string("process 2 threw: ") + e.what());
    }
    try {
      for (const auto& f : failures) send_line(to_parent[1], "FAIL " + f);
      send_line(to_parent[1], "done");
    } catch (...) {
      code = 2;
    }
    _exit(failures.empty() ? code : 1);
  }

  // Process 1.
  close(to_child[0]);
  close(to_parent[1]);
  std::string buffer;
  auto ready = receive_line(to_parent[0], buffer);
  std::vector<std::string> child_lines;
  if (ready != "ready") child_lines.push_back(ready);
  std::string new_id, new_y;
  if (ready == "ready") {
    auto store = SqliteCryptoStore::open(path, kPickleKey);
    EncryptionDevice dev(*store);
    GroupEncryptionCrypto c(nullptr, dev);
    c.init(with_key());
    auto imported = c.import_session_keys(kStream, {s_key});
    CHECK(imported.imported == std::vector<std::string>{s_id});
    new_id = c.ensure_outbound_session(kNewStream, kMegolm);
    new_y = dev.outbound().create(kStreamY);
    CHECK(new_y != old_y);
    send_line(to_child[1], "go " + new_id + " " + new_y);
  }
  close(to_child[1]);  // without a "go", process 2 sees the end at once
  for (;;) {
    auto line = receive_line(to_parent[0], buffer);
    if (line == "done") break;
    child_lines.push_back(line);
    if (line.rfind("FAIL ", 0) != 0) break;  // timeout, eof or junk
  }
  close(to_parent[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  for (const auto& l : child_lines) UNSCOPED_INFO("process 2: " << l);
  CHECK(child_lines.empty());
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

TEST_CASE("lock order: receiving a session batch while ensuring outbound sessions finishes") {
  constexpr int kIterations = 60;
  constexpr int kPerBatch = 2;
  // Streams 0..kIterations-1; the sender shares one megolm and one grpaes
  // session per stream; batch i carries stream i's two messages.
  std::vector<std::string> streams;
  for (int i = 0; i < kIterations; ++i) {
    char buf[65];
    std::snprintf(buf, sizeof buf, "20%054x%08x", 0, i);  // channel ids (the library takes only valid ones)
    streams.emplace_back(buf);
  }
  test::TempDir dir;
  auto store = SqliteCryptoStore::open(dir.file("receiver.db"), kPickleKey);
  RecordingClient receiver_client;
  GroupEncryptionCrypto receiver(&receiver_client, *store);
  receiver.init(with_key());
  auto target = receiver.get_user_device();

  Sender sender;
  std::vector<std::vector<GroupEncryptionSessions>> batches(kIterations);
  std::vector<std::vector<std::string>> expected_ids(kIterations);
  for (int i = 0; i < kIterations; ++i) {
    for (auto alg : {kMegolm, kHybrid}) {
      auto id = sender.crypto.ensure_outbound_session(streams[i], alg);
      auto key = sender.crypto.export_group_session(streams[i], id);
      REQUIRE(key.has_value());
      auto plan = build_group_encryption_sessions(sender.crypto, streams[i], alg, {*key}, {target});
      REQUIRE(plan.message.ciphertexts.size() == 1);
      batches[i].push_back(plan.message);
      expected_ids[i].push_back(id);
    }
    REQUIRE(batches[i].size() == kPerBatch);
  }

  std::atomic<int> received{0}, ensured{0};
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!finished.load()) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr,
                     "\nlock order: DEADLOCK? receive_group_encryption_sessions_batch and ensure_outbound_session "
                     "did not finish in 60 s (%d of %d batches received, %d of %d sessions ensured)\n",
                     received.load(), kIterations, ensured.load(), 2 * kIterations);
        std::fflush(stderr);
        std::_Exit(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::vector<std::string> failures;
  std::mutex failures_mu;
  auto fail = [&](const std::string& what) {
    std::lock_guard l(failures_mu);
    failures.push_back(what);
  };
  std::vector<std::string> receiver_outbound(2 * kIterations);
  std::thread receiving([&] {
    for (int i = 0; i < kIterations; ++i) {
      try {
        auto results = receive_group_encryption_sessions_batch(receiver, batches[i]);
        if (results.size() != batches[i].size()) fail("batch " + std::to_string(i) + ": wrong result count");
        for (size_t j = 0; j < results.size(); ++j) {
          if (results[j].error) {
            fail("batch " + std::to_string(i) + ": " + results[j].error->what());
          } else if (!results[j].value || results[j].value->status != ReceiveStatus::kImported ||
                     results[j].value->imported != std::vector<std::string>{expected_ids[i][j]}) {
            fail("batch " + std::to_string(i) + " message " + std::to_string(j) + " not imported");
          }
        }
      } catch (const std::exception& e) {
        fail(std::string("receive threw: ") + e.what());
      }
      ++received;
    }
  });
  std::thread ensuring([&] {
    // The receiver's own outbound sessions on the same streams, new each time.
    for (int i = 0; i < kIterations; ++i) {
      for (int k = 0; k < 2; ++k) {
        try {
          receiver_outbound[2 * i + k] = receiver.ensure_outbound_session(streams[i], k == 0 ? kMegolm : kHybrid);
        } catch (const std::exception& e) {
          fail(std::string("ensure threw: ") + e.what());
        }
        ++ensured;
      }
    }
  });
  receiving.join();
  ensuring.join();
  finished = true;
  watchdog.join();

  for (const auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  CHECK(received.load() == kIterations);
  CHECK(ensured.load() == 2 * kIterations);
  // Everything landed: the sender's sessions, and the receiver's own sessions
  // (each shared once through the client, with no lock held).
  for (int i = 0; i < kIterations; ++i) {
    INFO("stream " << i);
    CHECK(receiver.has_session_key(streams[i], expected_ids[i][0], kMegolm));
    CHECK(receiver.has_session_key(streams[i], expected_ids[i][1], kHybrid));
    CHECK(receiver.has_outbound_session(streams[i], kMegolm));
    CHECK(receiver.has_hybrid_session(streams[i]));
    CHECK(receiver.has_session_key(streams[i], receiver_outbound[2 * i], kMegolm));
  }
  // Megolm: each new outbound session shared once. (A grpaes ensure may find
  // the sender's imported session and then creates nothing to share.)
  size_t megolm_shares = 0, hybrid_shares = 0;
  for (const auto& s : receiver_client.shared) (s.algorithm == kMegolm ? megolm_shares : hybrid_shares)++;
  CHECK(megolm_shares == static_cast<size_t>(kIterations));
  CHECK(hybrid_shares <= static_cast<size_t>(kIterations));
}
