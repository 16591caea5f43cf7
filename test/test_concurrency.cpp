// Concurrency torture test of GroupEncryptionCrypto and session sharing.
//
// Two devices, A on a SqliteCryptoStore and B on a MemoryCryptoStore, are driven
// by several threads at once with a seeded random mix of every facade operation
// and the session-sharing helpers (see the table `kOps`), while new streams keep
// appearing. It checks that
//  1. no (megolm session id, message index) is ever emitted twice, by either
//     device or by a device recreated from export_device();
//  2. after the run, every event each device produced decrypts on the other
//     device, once the producer's room keys are imported, to exactly the bytes
//     that were encrypted;
//  3. every operation succeeds or throws a towns::Error with a code expected for
//     that operation (and each operation's result is checked exactly);
//  4. nothing hangs: a watchdog ends the process with a report when no
//     operation finishes for the stall limit (a deadlock fails, never hangs).
//
// Environment: TOWNS_TORTURE_SEED (replays a run's operation sequence per thread),
// TOWNS_TORTURE_THREADS (default 6), TOWNS_TORTURE_SECONDS (default 3),
// TOWNS_TORTURE_STALL_SECONDS (default 5; 60 under ThreadSanitizer).
#include "helpers.h"
#include "store_fixtures.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "towns/crypto/encoding.h"
#include "towns/proto/payloads.pb.h"
#include "towns/protocol/session_sharing.h"

#if defined(__SANITIZE_THREAD__)
#define TORTURE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TORTURE_TSAN 1
#endif
#endif
#ifndef TORTURE_TSAN
#define TORTURE_TSAN 0
#endif

using namespace towns;
using Clock = std::chrono::steady_clock;
using Sessions = GroupEncryptionSessions;

namespace {

constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;
constexpr auto kHybrid = GroupEncryptionAlgorithm::kHybridGroupEncryption;
constexpr size_t kInitialStreams = 8;
constexpr size_t kMaxStreams = 128;

// ---- The only places that know how keys and plaintexts are represented.
std::string key_text(const GroupEncryptionSession& s) { return std::string(s.session_key.view()); }
std::string plain_text(const crypto::SecretBytes& b) { return std::string(b.view()); }

// ---- Configuration

struct Config {
  uint64_t seed = 0;
  int threads = 6;
  double seconds = 3;
  double stall_seconds = TORTURE_TSAN ? 60 : 5;
};

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

double env_seconds(const char* name, double fallback) {
  const char* v = env(name);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  if (*end != '\0' || !(d > 0)) throw std::runtime_error(std::string(name) + " is not a positive number: " + v);
  return d;
}

Config read_config() {
  Config c;
  if (const char* v = env("TOWNS_TORTURE_SEED")) {
    char* end = nullptr;
    c.seed = std::strtoull(v, &end, 0);
    if (*end != '\0') throw std::runtime_error(std::string("TOWNS_TORTURE_SEED is not a number: ") + v);
  } else {
    std::random_device rd;
    c.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  if (const char* v = env("TOWNS_TORTURE_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 256) throw std::runtime_error(std::string("bad TOWNS_TORTURE_THREADS: ") + v);
    c.threads = static_cast<int>(n);
  }
  c.seconds = env_seconds("TOWNS_TORTURE_SECONDS", c.seconds);
  c.stall_seconds = env_seconds("TOWNS_TORTURE_STALL_SECONDS", c.stall_seconds);
  return c;
}

// splitmix64: each thread's choices come from its own generator.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }
  std::vector<uint8_t> bytes(size_t min, size_t max) {
    std::vector<uint8_t> out(min + below(max - min + 1));
    for (auto& b : out) b = static_cast<uint8_t>(next());
    return out;
  }
  std::string text(size_t min, size_t max) {
    std::string out(min + below(max - min + 1), ' ');
    for (auto& ch : out) ch = static_cast<char>(' ' + below(95));
    return out;
  }
};

Rng rng_for(uint64_t seed, uint64_t thread, uint64_t purpose) {
  Rng r{seed};
  Rng mixed{r.next() ^ (thread * 0xd1b54a32d192ed03ULL) ^ (purpose * 0x8cb92ba72f3d8dd7ULL)};
  return Rng{mixed.next()};
}

// ---- Helpers on events

std::string session_of(const EncryptedData& e, GroupEncryptionAlgorithm alg) {
  return alg == kMegolm ? e.session_id : crypto::hex_encode(e.session_id_bytes);
}

// The message index written in a megolm message: version byte 3, then field 1
// (tag 0x08) as a varint.
std::optional<uint32_t> megolm_index_of(const std::string& ciphertext) {
  std::vector<uint8_t> raw;
  try {
    raw = crypto::base64_decode(ciphertext, crypto::Base64Padding::kOptional);
  } catch (const Error&) {
    return std::nullopt;
  }
  if (raw.size() < 3 || raw[0] != 0x03 || raw[1] != 0x08) return std::nullopt;
  uint64_t value = 0;
  for (size_t i = 2, shift = 0; i < raw.size() && shift < 35; ++i, shift += 7) {
    value |= static_cast<uint64_t>(raw[i] & 0x7f) << shift;
    if ((raw[i] & 0x80) == 0) return static_cast<uint32_t>(value);
  }
  return std::nullopt;
}

MiniblockInfo miniblock_for(std::string_view stream, int64_t num) {
  std::vector<uint8_t> hash(32);
  for (size_t i = 0; i < hash.size(); ++i) hash[i] = static_cast<uint8_t>(stream[i % stream.size()] + i + num);
  return {num, hash};
}

// ---- The devices

struct Share {
  std::string stream;
  std::vector<GroupEncryptionSession> sessions;
  GroupEncryptionAlgorithm algorithm;
};

// Answers the miniblock question and queues every share; the share operation
// later builds the sharing message and delivers it to the other device's inbox.
class TortureClient final : public GroupEncryptionClient {
 public:
  void encrypt_and_share_group_sessions_to_stream(std::string_view stream_id,
                                                  const std::vector<GroupEncryptionSession>& sessions,
                                                  GroupEncryptionAlgorithm algorithm,
                                                  const std::vector<std::string>&) override {
    std::lock_guard l(mu_);
    pending_.push_back({std::string(stream_id), sessions, algorithm});
  }
  MiniblockInfo get_miniblock_info(std::string_view stream_id) override { return miniblock_for(stream_id, 10); }
  std::vector<Share> take(size_t max) {
    std::lock_guard l(mu_);
    std::vector<Share> out;
    while (!pending_.empty() && out.size() < max) {
      out.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::deque<Share> pending_;
};

struct HeldKey {
  std::string stream;
  std::string session;
  GroupEncryptionAlgorithm algorithm;
};

struct Peer {
  int index = 0;
  const char* name = "";
  std::unique_ptr<CryptoStore> store;
  TortureClient client;
  std::unique_ptr<GroupEncryptionCrypto> crypto;
  UserDevice device;

  // What the test knows; guarded by mu, never held across a library call.
  std::mutex mu;
  std::deque<Sessions> inbox;
  std::map<std::string, std::map<std::string, GroupEncryptionAlgorithm>> held;  // stream -> session -> algorithm
  std::map<std::string, std::string> megolm_outbound;                          // stream -> session id
  std::set<std::string> hybrid_outbound;                                        // streams ensured for grpaes
};

struct Produced {
  int producer = 0;
  std::string stream;
  GroupEncryptionAlgorithm algorithm = kMegolm;
  EncryptedData event;
  std::string plaintext;
  std::optional<uint32_t> index;
};

// ---- Per-thread progress, read by the watchdog

struct Slot {
  std::atomic<uint64_t> progress{0};
  std::atomic<const char*> op{"starting"};
  std::atomic<const char*> device{"-"};
  std::atomic<int64_t> since_ms{0};
};

struct OpStats {
  std::atomic<uint64_t> done{0};      // ran and checked
  std::atomic<uint64_t> idle{0};      // nothing to do at that moment (empty inbox, no event yet)
  std::atomic<uint64_t> expected{0};  // threw an error expected for the operation
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

struct Op;
struct World;

struct Ctx {
  World& w;
  Rng& rng;  // the operation's arguments (the schedule has its own generator)
  Peer& self;
  Peer& other;
  const Op& op;
  // Records a failure of this operation; true, so that an operation can end
  // with `return c.fail(...)`.
  bool fail(const std::string& what) const;
};

struct Op {
  const char* name;
  int weight;
  bool (*run)(Ctx&);              // false: nothing to do at that moment
  std::vector<ErrorCode> expected;  // the codes the operation may throw
};

extern const std::vector<Op> kOps;

struct World {
  explicit World(const Config& c) : config(c), slots(static_cast<size_t>(c.threads) + 1), stats(kOps.size()) {
    for (size_t i = 0; i < kMaxStreams; ++i) {
      char buf[65];
      std::snprintf(buf, sizeof buf, "20%054x%08zx", 0, i);
      streams.emplace_back(buf);
    }
  }

  Config config;
  Peer peers[2];
  std::vector<std::string> streams;  // all ids made up front; the first `active` are in use
  std::atomic<size_t> active{kInitialStreams};
  std::atomic<bool> stop{false};
  std::atomic<bool> finished{false};
  std::vector<Slot> slots;  // one per worker, then the main thread
  std::vector<OpStats> stats;

  std::mutex events_mu;
  std::vector<Produced> events;
  std::map<std::string, std::vector<size_t>> events_by_stream;
  std::atomic<size_t> event_count{0};

  std::mutex emitted_mu;
  std::map<std::string, uint64_t> emitted;  // "session|index" -> order of emission
  uint64_t emitted_seq = 0;

  std::mutex fail_mu;
  std::vector<std::string> failures;
  std::atomic<size_t> failure_count{0};

  void fail(const std::string& what) {
    ++failure_count;
    std::lock_guard l(fail_mu);
    if (failures.size() < 100) failures.push_back(what);
  }

  // 25%: the first stream (so that megolm ratchets cross reservation blocks);
  // 35%: one of the newest streams (where sessions are being created).
  std::string pick_stream(Rng& rng) {
    size_t n = active.load();
    size_t which = rng.below(100), newest = rng.below(std::min<size_t>(n, 4)), any = rng.below(n);
    return streams[which < 25 ? 0 : which < 60 ? n - 1 - newest : any];
  }
  std::string new_stream(Rng& rng) {
    size_t n = active.load();
    while (n < kMaxStreams && !active.compare_exchange_weak(n, n + 1)) {
    }
    return n < kMaxStreams ? streams[n] : pick_stream(rng);
  }

  void hold(Peer& p, const std::string& stream, const std::string& session, GroupEncryptionAlgorithm alg) {
    std::lock_guard l(p.mu);
    p.held[stream][session] = alg;
  }
  bool holds(Peer& p, const std::string& stream, const std::string& session) {
    std::lock_guard l(p.mu);
    auto it = p.held.find(stream);
    return it != p.held.end() && it->second.count(session) > 0;
  }
  std::map<std::string, GroupEncryptionAlgorithm> held_on(Peer& p, const std::string& stream) {
    std::lock_guard l(p.mu);
    auto it = p.held.find(stream);
    return it == p.held.end() ? std::map<std::string, GroupEncryptionAlgorithm>{} : it->second;
  }
  std::optional<HeldKey> random_held(Peer& p, Rng& rng) {
    size_t a = rng.below(1 << 20), b = rng.below(1 << 20);
    std::lock_guard l(p.mu);
    if (p.held.empty()) return std::nullopt;
    auto s = std::next(p.held.begin(), static_cast<long>(a % p.held.size()));
    auto k = std::next(s->second.begin(), static_cast<long>(b % s->second.size()));
    return HeldKey{s->first, k->first, k->second};
  }
  // The stream's megolm outbound session never changes once made; false when
  // `id` contradicts what was seen before (previous is set).
  bool note_megolm_outbound(Peer& p, const std::string& stream, const std::string& id, std::string& previous) {
    std::lock_guard l(p.mu);
    auto [it, inserted] = p.megolm_outbound.emplace(stream, id);
    previous = it->second;
    return inserted || it->second == id;
  }
  std::optional<std::string> known_megolm_outbound(Peer& p, const std::string& stream) {
    std::lock_guard l(p.mu);
    auto it = p.megolm_outbound.find(stream);
    return it == p.megolm_outbound.end() ? std::nullopt : std::optional(it->second);
  }

  void add_event(Produced e) {
    std::lock_guard l(events_mu);
    events_by_stream[e.stream].push_back(events.size());
    events.push_back(std::move(e));
    event_count.store(events.size());
  }
  std::optional<Produced> random_event(Rng& rng) {
    size_t i = rng.below(1 << 30);
    std::lock_guard l(events_mu);
    if (events.empty()) return std::nullopt;
    return events[i % events.size()];
  }
  // Up to `count` random events of the stream of a random event.
  std::vector<Produced> random_stream_events(Rng& rng, size_t count) {
    std::vector<size_t> picks;
    size_t first = rng.below(1 << 30);
    for (size_t i = 0; i < count; ++i) picks.push_back(rng.below(1 << 30));
    std::lock_guard l(events_mu);
    std::vector<Produced> out;
    if (events.empty()) return out;
    const auto& same = events_by_stream[events[first % events.size()].stream];
    for (size_t p : picks) out.push_back(events[same[p % same.size()]]);
    return out;
  }

  // Records a megolm (session, index); the order it had when it was emitted
  // before, if it was.
  std::optional<uint64_t> emit(const std::string& session, uint32_t index) {
    std::lock_guard l(emitted_mu);
    auto [it, inserted] = emitted.emplace(session + "|" + std::to_string(index), emitted_seq++);
    if (inserted) return std::nullopt;
    return it->second;
  }
  std::optional<uint64_t> emitted_at(const std::string& session, uint32_t index) {
    std::lock_guard l(emitted_mu);
    auto it = emitted.find(session + "|" + std::to_string(index));
    return it == emitted.end() ? std::nullopt : std::optional(it->second);
  }
  uint64_t emission_mark() {
    std::lock_guard l(emitted_mu);
    return emitted_seq;
  }

  // Written from the watchdog while other threads may be stuck: reads atomics only.
  void print_counters(FILE* out) {
    int64_t now = now_ms();
    for (size_t t = 0; t < slots.size(); ++t) {
      const auto& s = slots[t];
      std::string who = t + 1 == slots.size() ? "main" : "thread " + std::to_string(t);
      std::fprintf(out, "  %-9s in %-36s on %s for %6.1f s, %" PRIu64 " operations done\n", who.c_str(),
                   s.op.load(), s.device.load(), static_cast<double>(now - s.since_ms.load()) / 1000.0,
                   s.progress.load());
    }
    for (size_t i = 0; i < kOps.size(); ++i) {
      std::fprintf(out, "  %-36s %8" PRIu64 " done %6" PRIu64 " idle %6" PRIu64 " expected errors\n", kOps[i].name,
                   stats[i].done.load(), stats[i].idle.load(), stats[i].expected.load());
    }
    std::fprintf(out, "  events %zu, streams %zu, failures so far %zu\n", event_count.load(), active.load(),
                 failure_count.load());
  }
};

bool Ctx::fail(const std::string& what) const {
  w.fail(std::string(op.name) + " on " + self.name + ": " + what);
  return true;
}

void enter(Slot& slot, const char* op, const char* device) {
  slot.op.store(op);
  slot.device.store(device);
  slot.since_ms.store(now_ms());
}
void progress(Slot& slot) { slot.progress.fetch_add(1); }

std::string error_text(const Error& e) { return std::string(e.code_name()) + " (" + e.what() + ")"; }

// ---- Checks shared by several operations

// An event this device just made: its fields, its session, its message index
// (parsed and as the device itself decrypts it), never reused.
bool record_own_event(Ctx& c, const std::string& stream, GroupEncryptionAlgorithm alg, bool v1,
                      const std::string& plaintext, const EncryptedData& e) {
  if (e.algorithm != algorithm_id(alg)) return c.fail("event algorithm is " + e.algorithm);
  if (e.sender_key != c.self.device.device_key) return c.fail("event sender key is not the device's");
  if (e.version != (v1 ? EncryptedDataVersion::kVersion1 : EncryptedDataVersion::kVersion0)) {
    return c.fail("event version is " + std::to_string(static_cast<int>(e.version)));
  }
  auto session = session_of(e, alg);
  if (session.empty()) return c.fail("event without session id");
  std::optional<uint32_t> parsed;
  if (alg == kMegolm) {
    std::string previous;
    if (!c.w.note_megolm_outbound(c.self, stream, session, previous)) {
      return c.fail("stream " + stream + " encrypted with megolm session " + session + " after " + previous);
    }
    parsed = megolm_index_of(e.ciphertext);
    if (!parsed) return c.fail("megolm ciphertext does not parse");
    // The index was reserved in the store before it was used (so a reload
    // never reuses it).
    auto record = c.self.store->get_outbound_session(stream);
    if (!record || record->session_id != session || record->reserved_until <= *parsed) {
      return c.fail("index " + std::to_string(*parsed) + " used beyond the stored reservation of stream " + stream);
    }
  }
  DecryptedPayload d;
  try {
    d = c.self.crypto->decrypt_group_event(stream, e);
  } catch (const Error& err) {
    return c.fail("own event does not decrypt on its device: " + error_text(err));
  }
  if (plain_text(d.plaintext) != plaintext) return c.fail("own event decrypts to other bytes");
  if (d.message_index != parsed) return c.fail("decrypted message index differs from the one in the message");
  if (alg == kMegolm) {
    if (auto first = c.w.emit(session, *parsed)) {
      return c.fail("message index reused: session " + session + " index " + std::to_string(*parsed));
    }
  }
  c.w.hold(c.self, stream, session, alg);
  c.w.add_event({c.self.index, stream, alg, e, plaintext, parsed});
  return true;
}

// A successful decryption of a recorded event: exactly what was encrypted.
void check_decrypted(Ctx& c, const Produced& ev, const DecryptedPayload& d) {
  if (plain_text(d.plaintext) != ev.plaintext) c.fail("event decrypts to other bytes (stream " + ev.stream + ")");
  if (d.message_index != ev.index) c.fail("event decrypts with another message index");
}

// A decryption error is allowed only before the keys arrived: SESSION_NOT_FOUND
// for another device's event whose session this device was not known to hold.
// False (and a failure recorded) for any other error.
bool allowed_decrypt_error(Ctx& c, const Produced& ev, bool must_decrypt, const Error& e) {
  if (!must_decrypt && e.code() == ErrorCode::SESSION_NOT_FOUND) return true;
  c.fail(std::string(must_decrypt ? (ev.producer == c.self.index ? "own" : "held") : "another device's") +
         " event does not decrypt: " + error_text(e));
  return false;
}

bool check_received(Ctx& c, const Sessions& m, const ReceiveResult& r) {
  auto stream = crypto::hex_encode(m.stream_id);
  auto alg = *parse_group_encryption_algorithm(m.algorithm);
  if (r.stream_id != stream) return c.fail("received for stream " + r.stream_id + ", sent for " + stream);
  if (r.algorithm != alg) return c.fail("received with another algorithm");
  if (r.status != ReceiveStatus::kImported && r.status != ReceiveStatus::kNothingMissing) {
    return c.fail("receive status " + std::to_string(static_cast<int>(r.status)));
  }
  if ((r.status == ReceiveStatus::kImported) == r.imported.empty()) return c.fail("status and imported disagree");
  if (!r.failed.empty()) return c.fail("a shared session failed to import: " + r.failed[0]);
  std::set<std::string> listed(m.session_ids.begin(), m.session_ids.end());
  for (const auto& id : r.imported) {
    if (!listed.count(id)) return c.fail("imported an unlisted session " + id);
  }
  for (const auto& id : listed) {
    if (!c.self.crypto->has_session_key(stream, id, alg)) return c.fail("received session not held: " + id);
    c.w.hold(c.self, stream, id, alg);
  }
  return true;
}

bool check_import(Ctx& c, const std::vector<GroupEncryptionSession>& keys, const ImportResult& r) {
  if (!r.failed.empty()) return c.fail("import refused " + r.failed[0]);
  if (!r.skipped.empty()) return c.fail("import skipped " + r.skipped[0]);
  if (r.imported.size() != keys.size()) return c.fail("import held " + std::to_string(r.imported.size()) + " of " +
                                                      std::to_string(keys.size()));
  for (const auto& k : keys) {
    c.w.hold(c.other, k.stream_id, k.session_id, *parse_group_encryption_algorithm(k.algorithm));
  }
  return true;
}

// A progress callback that checks it is told about every key, in order.
struct ProgressCheck {
  size_t calls = 0;
  bool ordered = true;
  std::function<void(const ImportProgress&)> fn() {
    return [this](const ImportProgress& p) {
      ++calls;
      ordered = ordered && p.successes + p.failures == calls;
    };
  }
  void verify(Ctx& c, size_t keys) {
    if (calls != keys || !ordered) c.fail("progress told " + std::to_string(calls) + " times for " +
                                          std::to_string(keys) + " keys");
  }
};

std::vector<GroupEncryptionSession> subset(Rng& rng, std::vector<GroupEncryptionSession> keys, size_t max) {
  for (size_t i = keys.size(); i > 1; --i) std::swap(keys[i - 1], keys[rng.below(i)]);
  if (keys.size() > max) keys.resize(max);
  return keys;
}

// ---- The operations

// A burst of 1 to 12 events on one stream.
bool encrypt(Ctx& c, GroupEncryptionAlgorithm alg, bool v1) {
  auto stream = c.w.pick_stream(c.rng);
  for (size_t n = 1 + c.rng.below(12); n > 0; --n) {
    if (v1) {
      auto payload = c.rng.bytes(1, 96);
      auto e = c.self.crypto->encrypt_group_event(stream, payload, alg);
      record_own_event(c, stream, alg, true, std::string(payload.begin(), payload.end()), e);
    } else {
      auto payload = c.rng.text(1, 96);
      auto e = c.self.crypto->encrypt_group_event_deprecated_v0(stream, payload, alg);
      record_own_event(c, stream, alg, false, payload, e);
    }
  }
  return true;
}

bool decrypt_one(Ctx& c) {
  auto ev = c.w.random_event(c.rng);
  if (!ev) return false;
  auto session = session_of(ev->event, ev->algorithm);
  bool must = ev->producer == c.self.index || c.w.holds(c.self, ev->stream, session);
  try {
    check_decrypted(c, *ev, c.self.crypto->decrypt_group_event(ev->stream, ev->event));
  } catch (const Error& e) {
    if (!allowed_decrypt_error(c, *ev, must, e)) return true;
    throw;  // an expected error, counted as such
  }
  c.w.hold(c.self, ev->stream, session, ev->algorithm);
  return true;
}

bool decrypt_batch(Ctx& c) {
  auto batch = c.w.random_stream_events(c.rng, 1 + c.rng.below(8));
  if (batch.empty()) return false;
  std::vector<EncryptedData> events;
  std::vector<bool> must;
  for (const auto& ev : batch) {
    events.push_back(ev.event);
    must.push_back(ev.producer == c.self.index || c.w.holds(c.self, ev.stream, session_of(ev.event, ev.algorithm)));
  }
  auto results = c.self.crypto->decrypt_group_events(batch[0].stream, events);
  if (results.size() != batch.size()) return c.fail("batch gave " + std::to_string(results.size()) + " results");
  for (size_t i = 0; i < batch.size(); ++i) {
    if (results[i].value.has_value() == results[i].error.has_value()) {
      c.fail("a batch result is neither a payload nor an error");
    } else if (results[i].value) {
      check_decrypted(c, batch[i], *results[i].value);
      c.w.hold(c.self, batch[i].stream, session_of(batch[i].event, batch[i].algorithm), batch[i].algorithm);
    } else {
      allowed_decrypt_error(c, batch[i], must[i], *results[i].error);
    }
  }
  return true;
}

bool ensure(Ctx& c, bool fresh_stream) {
  auto stream = fresh_stream ? c.w.new_stream(c.rng) : c.w.pick_stream(c.rng);
  auto alg = c.rng.chance(50) ? kMegolm : kHybrid;
  EnsureOutboundSessionOptions opts;
  bool with_miniblock = c.rng.chance(50);
  auto num = static_cast<int64_t>(c.rng.below(100));
  if (alg == kHybrid && with_miniblock) opts.miniblock_info = miniblock_for(stream, num);
  auto id = c.self.crypto->ensure_outbound_session(stream, alg, opts);
  if (!c.self.crypto->has_outbound_session(stream, alg)) return c.fail("no outbound session after ensure");
  if (!c.self.crypto->has_session_key(stream, id, alg)) return c.fail("ensured session's key not held");
  if (alg == kMegolm) {
    std::string previous;
    if (!c.w.note_megolm_outbound(c.self, stream, id, previous)) {
      return c.fail("ensure gave megolm session " + id + " after " + previous);
    }
  } else {
    if (id.size() != 64) return c.fail("grpaes session id " + id);
    if (!c.self.crypto->has_hybrid_session(stream)) return c.fail("has_hybrid_session false after ensure");
    std::lock_guard l(c.self.mu);
    c.self.hybrid_outbound.insert(stream);
  }
  c.w.hold(c.self, stream, id, alg);
  return true;
}

bool has_session(Ctx& c) {
  auto stream = c.w.pick_stream(c.rng);
  auto known_megolm = c.w.known_megolm_outbound(c.self, stream);
  bool known_hybrid;
  {
    std::lock_guard l(c.self.mu);
    known_hybrid = c.self.hybrid_outbound.count(stream) > 0;
  }
  auto held = c.w.random_held(c.self, c.rng);
  auto unknown = crypto::base64_encode(c.rng.bytes(32, 32), crypto::Base64Padding::kNone);
  auto& crypto = *c.self.crypto;
  if (known_megolm && !crypto.has_outbound_session(stream, kMegolm)) c.fail("megolm outbound session forgotten");
  bool r1 = crypto.has_outbound_session(stream, kHybrid);
  bool r2 = crypto.has_hybrid_session(stream);
  if ((known_hybrid || r1) && !r2) c.fail("has_hybrid_session false after a grpaes session was seen");
  if (held) {
    auto other_alg = held->algorithm == kMegolm ? kHybrid : kMegolm;
    if (!crypto.has_session_key(held->stream, held->session, held->algorithm)) c.fail("held key forgotten");
    if (crypto.has_session_key(held->stream, held->session, other_alg)) c.fail("key held under both algorithms");
  }
  if (crypto.has_session_key(stream, unknown, kMegolm)) c.fail("has_session_key true for a made-up id");
  return true;
}

bool list_session_ids(Ctx& c) {
  auto stream = c.w.pick_stream(c.rng);
  auto known = c.w.held_on(c.self, stream);
  auto ids = c.self.crypto->get_group_session_ids(stream);
  // Megolm ids (43 characters) sorted, then grpaes ids (64 hex digits) sorted.
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].size() != 43 && ids[i].size() != 64) return c.fail("odd session id " + ids[i]);
    if (i > 0 && (ids[i - 1].size() > ids[i].size() || (ids[i - 1].size() == ids[i].size() && ids[i - 1] >= ids[i]))) {
      return c.fail("session ids out of order or repeated");
    }
  }
  for (const auto& [id, alg] : known) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) return c.fail("held session " + id + " not listed");
  }
  return true;
}

bool export_one(Ctx& c) {
  auto held = c.w.random_held(c.self, c.rng);
  if (!held) return false;
  auto s = c.self.crypto->export_group_session(held->stream, held->session);
  if (!s) return c.fail("held session " + held->session + " not exported");
  if (s->session_id != held->session || s->stream_id != held->stream || s->algorithm != algorithm_id(held->algorithm) ||
      key_text(*s).empty()) {
    c.fail("exported session does not describe itself");
  }
  auto unknown = crypto::base64_encode(c.rng.bytes(32, 32), crypto::Base64Padding::kNone);
  if (c.self.crypto->export_group_session(held->stream, unknown)) c.fail("exported a made-up session");
  return true;
}

// export_room_keys holds every key held before the call; some of them go to
// the other device, as objects or as the client's JSON.
bool room_keys(Ctx& c, bool as_json) {
  std::map<std::string, std::map<std::string, GroupEncryptionAlgorithm>> known;
  {
    std::lock_guard l(c.self.mu);
    known = c.self.held;
  }
  auto all = c.self.crypto->export_room_keys();
  std::set<std::pair<std::string, std::string>> exported;
  for (const auto& k : all) exported.emplace(k.stream_id, k.session_id);
  for (const auto& [stream, sessions] : known) {
    for (const auto& [id, alg] : sessions) {
      if (!exported.count({stream, id})) return c.fail("held session " + id + " not in export_room_keys");
    }
  }
  auto keys = subset(c.rng, std::move(all), 24);
  bool bad_json = as_json && c.rng.chance(12);
  ProgressCheck progress;
  ImportResult r;
  if (!as_json) {
    r = c.other.crypto->import_room_keys(keys, progress.fn());
  } else if (bad_json) {
    try {
      c.other.crypto->import_room_keys_as_json("{\"keys\": []}");
      c.fail("a JSON object was taken for room keys");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::INVALID_ARGUMENT) c.fail("JSON object refused with " + error_text(e));
    }
    return true;
  } else {
    auto json = nlohmann::json::array();
    for (const auto& k : keys) {
      json.push_back({{"streamId", k.stream_id}, {"sessionId", k.session_id}, {"sessionKey", key_text(k)},
                      {"algorithm", k.algorithm}});
    }
    r = c.other.crypto->import_room_keys_as_json(json.dump(), progress.fn());
  }
  progress.verify(c, keys.size());
  check_import(c, keys, r);
  return true;
}

bool import_session_keys(Ctx& c) {
  auto held = c.w.random_held(c.self, c.rng);
  if (!held) return false;
  auto ids = c.self.crypto->get_group_session_ids(held->stream);
  std::vector<GroupEncryptionSession> keys;
  for (size_t i = c.rng.below(ids.size()); i < ids.size() && keys.size() < 4; ++i) {
    auto s = c.self.crypto->export_group_session(held->stream, ids[i]);
    if (!s) return c.fail("listed session " + ids[i] + " not exported");
    keys.push_back(*s);
  }
  check_import(c, keys, c.other.crypto->import_session_keys(held->stream, keys));
  return true;
}

// Builds sharing messages for the sessions the device created (or re-shares
// one it holds) and delivers them to the other device's inbox.
bool share(Ctx& c) {
  auto shares = c.self.client.take(1 + c.rng.below(3));
  auto held = c.w.random_held(c.self, c.rng);
  if (shares.empty()) {
    if (!held) return false;
    auto s = c.self.crypto->export_group_session(held->stream, held->session);
    if (!s) return c.fail("held session " + held->session + " not exported");
    shares.push_back({held->stream, {*s}, held->algorithm});
  }
  for (const auto& sh : shares) {
    auto plan = build_group_encryption_sessions(*c.self.crypto, sh.stream, sh.algorithm, sh.sessions,
                                                {c.other.device, c.self.device});
    const auto& m = plan.message;
    if (!plan.skipped_devices.empty()) return c.fail("device skipped: " + plan.skipped_devices[0]);
    if (m.ciphertexts.size() != 1 || !m.ciphertexts.count(c.other.device.device_key)) {
      return c.fail("sharing message not for exactly the other device");
    }
    if (m.session_ids.size() != sh.sessions.size() || m.algorithm != algorithm_id(sh.algorithm) ||
        m.sender_key != c.self.device.device_key) {
      return c.fail("sharing message does not describe its sessions");
    }
    std::lock_guard l(c.other.mu);
    c.other.inbox.push_back(m);
  }
  return true;
}

std::vector<Sessions> take_inbox(Peer& p, size_t max) {
  std::lock_guard l(p.mu);
  std::vector<Sessions> out;
  while (!p.inbox.empty() && out.size() < max) {
    out.push_back(std::move(p.inbox.front()));
    p.inbox.pop_front();
  }
  return out;
}

bool receive_one(Ctx& c) {
  auto messages = take_inbox(c.self, 1);
  if (messages.empty()) return false;
  check_received(c, messages[0], receive_group_encryption_sessions(*c.self.crypto, messages[0]));
  return true;
}

bool receive_batch(Ctx& c) {
  auto messages = take_inbox(c.self, 1 + c.rng.below(6));
  size_t not_ours = messages.size();
  if (!messages.empty() && c.rng.chance(30)) {  // one for nobody here
    messages.push_back(messages[0]);
    messages.back().ciphertexts.clear();
  }
  if (messages.empty()) return false;
  auto results = receive_group_encryption_sessions_batch(*c.self.crypto, messages);
  if (results.size() != messages.size()) return c.fail("batch gave " + std::to_string(results.size()));
  for (size_t i = 0; i < messages.size(); ++i) {
    if (results[i].error) {
      c.fail("batch entry failed: " + error_text(*results[i].error));
    } else if (!results[i].value) {
      c.fail("batch entry without result");
    } else if (i >= not_ours) {
      if (results[i].value->status != ReceiveStatus::kNotForThisDevice || !results[i].value->imported.empty()) {
        c.fail("a message without our ciphertext was not kNotForThisDevice");
      }
    } else {
      check_received(c, messages[i], *results[i].value);
    }
  }
  return true;
}

bool device_keys(Ctx& c) {
  auto payload = c.rng.text(1, 200);
  auto out = c.self.crypto->encrypt_with_device_keys(payload, {c.other.device});
  auto it = out.find(c.other.device.device_key);
  if (out.size() != 1 || it == out.end()) return c.fail("not one ciphertext for the other device");
  auto clear = c.other.crypto->decrypt_with_device_key(it->second, c.self.device.device_key);
  if (plain_text(clear) != payload) c.fail("device-key message decrypts to other text");
  return true;
}

// A device recreated from export_device() never reuses an index the exporting
// device used before the export, nor one it had reserved (and so may still use
// without another store write).
bool export_device(Ctx& c) {
  std::map<std::string, std::string> outbound;
  {
    std::lock_guard l(c.self.mu);
    outbound = c.self.megolm_outbound;
  }
  std::map<std::string, GroupSessionRecord> reserved;
  for (auto& r : c.self.store->all_outbound_sessions()) reserved[r.stream_id] = std::move(r);
  uint64_t mark = c.w.emission_mark();
  auto exported = c.self.crypto->export_device();  // the binary ExportedDevice
  river::ExportedDevice parsed;
  if (!parsed.ParseFromArray(exported.data(), static_cast<int>(exported.size()))) {
    return c.fail("export_device gave bytes that are not an ExportedDevice");
  }
  std::map<std::string, std::string> exported_outbound;
  for (const auto& s : parsed.outboundsessions()) exported_outbound[s.stream_id()] = s.session_id();
  for (const auto& [stream, id] : outbound) {
    if (exported_outbound[stream] != id) return c.fail("export lacks outbound session " + id);
  }
  MemoryCryptoStore store;
  GroupEncryptionCrypto clone(nullptr, store);
  clone.init({.from_exported_device = exported});
  if (clone.get_user_device().device_key != c.self.device.device_key) c.fail("the clone has another device key");
  if (exported_outbound.empty()) return true;
  for (int n = 0; n < 2; ++n) {
    auto it = std::next(exported_outbound.begin(), static_cast<long>(c.rng.below(exported_outbound.size())));
    auto payload = c.rng.bytes(1, 64);
    auto e = clone.encrypt_group_event(it->first, payload, kMegolm);
    if (e.session_id != it->second) return c.fail("the clone encrypts with another session");
    auto d = clone.decrypt_group_event(it->first, e);
    auto index = megolm_index_of(e.ciphertext);
    if (plain_text(d.plaintext) != std::string(payload.begin(), payload.end()) || !index || d.message_index != index) {
      return c.fail("the clone's event does not decrypt to itself");
    }
    if (auto r = reserved.find(it->first);
        r != reserved.end() && r->second.session_id == e.session_id && *index < r->second.reserved_until) {
      return c.fail("the exported device uses index " + std::to_string(*index) + ", reserved by the exporting device");
    }
    if (auto at = c.w.emitted_at(e.session_id, *index); at && *at < mark) {
      return c.fail("the exported device reuses index " + std::to_string(*index) + " of session " + e.session_id),
             true;
    }
  }
  return true;
}

bool set_parallelism(Ctx& c) {
  c.self.crypto->set_parallelism(static_cast<unsigned>(1 + c.rng.below(4)));
  if (c.self.crypto->parallelism() < 1) c.fail("parallelism below 1");
  return true;
}

bool user_device(Ctx& c) {
  auto d = c.self.crypto->get_user_device();
  if (d.device_key != c.self.device.device_key || d.fallback_key != c.self.device.fallback_key) {
    c.fail("the user device changed");
  }
  return true;
}

bool session_keys_round_trip(Ctx& c) {
  std::vector<crypto::SecretBytes> keys(c.rng.below(4));
  for (auto& k : keys) {
    k = crypto::SecretBytes(std::string_view(crypto::base64_encode(c.rng.bytes(1, 64), crypto::Base64Padding::kNone)));
  }
  if (parse_session_keys_json(session_keys_json(keys).view()) != keys) c.fail("SessionKeys JSON does not round-trip");
  return true;
}

const std::vector<ErrorCode> kNone = {};

const std::vector<Op> kOps = {
    {"encrypt megolm v1", 10, [](Ctx& c) { return encrypt(c, kMegolm, true); }, kNone},
    {"encrypt megolm v0", 3, [](Ctx& c) { return encrypt(c, kMegolm, false); }, kNone},
    {"encrypt grpaes v1", 8, [](Ctx& c) { return encrypt(c, kHybrid, true); }, kNone},
    {"encrypt grpaes v0", 3, [](Ctx& c) { return encrypt(c, kHybrid, false); }, kNone},
    {"decrypt_group_event", 10, decrypt_one, {ErrorCode::SESSION_NOT_FOUND}},
    {"decrypt_group_events", 4, decrypt_batch, kNone},
    {"ensure_outbound_session new stream", 3, [](Ctx& c) { return ensure(c, true); }, kNone},
    {"ensure_outbound_session", 3, [](Ctx& c) { return ensure(c, false); }, kNone},
    {"has_*_session / has_session_key", 4, has_session, kNone},
    {"get_group_session_ids", 2, list_session_ids, kNone},
    {"export_group_session", 2, export_one, kNone},
    {"export_room_keys + import_room_keys", 1, [](Ctx& c) { return room_keys(c, false); }, kNone},
    {"export_room_keys + import_as_json", 1, [](Ctx& c) { return room_keys(c, true); }, kNone},
    {"import_session_keys", 2, import_session_keys, kNone},
    {"build_group_encryption_sessions", 4, share, kNone},
    {"receive_group_encryption_sessions", 3, receive_one, kNone},
    {"receive_..._sessions_batch", 3, receive_batch, kNone},
    {"encrypt/decrypt with device keys", 3, device_keys, kNone},
    {"export_device", 1, export_device, kNone},
    {"set_parallelism", 2, set_parallelism, kNone},
    {"get_user_device", 1, user_device, kNone},
    {"session_keys_json round trip", 1, session_keys_round_trip, kNone},
};

void run_op(World& w, Rng& args, Peer& self, Peer& other, size_t op_index) {
  const Op& op = kOps[op_index];
  Ctx c{w, args, self, other, op};
  auto& stats = w.stats[op_index];
  try {
    if (op.run(c)) {
      ++stats.done;
    } else {
      ++stats.idle;
    }
  } catch (const Error& e) {
    if (std::find(op.expected.begin(), op.expected.end(), e.code()) != op.expected.end()) {
      ++stats.expected;
    } else {
      c.fail("unexpected error " + error_text(e));
    }
  } catch (const std::exception& e) {
    c.fail(std::string("unexpected exception: ") + e.what());
  } catch (...) {
    c.fail("unexpected exception of unknown type");
  }
}

void worker(World& w, int t) {
  // The schedule (operation and device) and the arguments have their own
  // generators, so the schedule replays exactly whatever the other threads do.
  Rng schedule = rng_for(w.config.seed, static_cast<uint64_t>(t), 0);
  Rng args = rng_for(w.config.seed, static_cast<uint64_t>(t), 1);
  int total_weight = 0;
  for (const auto& op : kOps) total_weight += op.weight;
  Slot& slot = w.slots[static_cast<size_t>(t)];
  while (!w.stop.load()) {
    auto pick = static_cast<int>(schedule.below(static_cast<size_t>(total_weight)));
    size_t op = 0;
    while (pick >= kOps[op].weight) pick -= kOps[op++].weight;
    int d = static_cast<int>(schedule.below(2));
    enter(slot, kOps[op].name, w.peers[d].name);
    run_op(w, args, w.peers[d], w.peers[1 - d], op);
    enter(slot, "between operations", "-");
    progress(slot);
  }
  enter(slot, "finished", "-");
}

void watchdog(World& w) {
  uint64_t last_total = ~0ULL;
  auto last_change = Clock::now();
  auto limit = std::chrono::duration<double>(w.config.stall_seconds);
  while (!w.finished.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t total = 0;
    for (const auto& s : w.slots) total += s.progress.load();
    auto now = Clock::now();
    if (total != last_total) {
      last_total = total;
      last_change = now;
    } else if (now - last_change > limit) {
      std::fprintf(stderr,
                   "\ntorture: STALL: no operation finished for %.1f s (a deadlock?)\n"
                   "torture seed: 0x%016" PRIx64 " (replay with TOWNS_TORTURE_SEED=0x%016" PRIx64 "), %d threads\n",
                   w.config.stall_seconds, w.config.seed, w.config.seed, w.config.threads);
      w.print_counters(stderr);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
}

}  // namespace

TEST_CASE("torture: two devices from many threads: no deadlock, no index reuse, every event readable") {
  Config config = read_config();
  std::printf("torture seed: 0x%016" PRIx64 " (%d threads, %.1f s, stall limit %.0f s%s)\n", config.seed,
              config.threads, config.seconds, config.stall_seconds, TORTURE_TSAN ? ", ThreadSanitizer" : "");
  std::fflush(stdout);
  test::TempDir dir;
  World w(config);
  Peer& a = w.peers[0];
  Peer& b = w.peers[1];
  a.index = 0;
  a.name = "A (sqlite)";
  a.store = SqliteCryptoStore::open(dir.file("a.db"), "torture pickle key");
  b.index = 1;
  b.name = "B (memory)";
  b.store = std::make_unique<MemoryCryptoStore>();
  for (Peer* p : {&a, &b}) {
    p->crypto = std::make_unique<GroupEncryptionCrypto>(&p->client, *p->store);
    p->crypto->init();
    p->device = p->crypto->get_user_device();
  }

  Slot& main_slot = w.slots.back();
  std::thread dog(watchdog, std::ref(w));
  struct StopWatchdog {  // also when a final step throws
    World& w;
    std::thread& dog;
    void stop() {
      w.finished = true;
      if (dog.joinable()) dog.join();
    }
    ~StopWatchdog() { stop(); }
  } watchdog_guard{w, dog};
  auto start = Clock::now();
  enter(main_slot, "waiting for the workers", "-");
  std::vector<std::thread> workers;
  for (int t = 0; t < config.threads; ++t) workers.emplace_back(worker, std::ref(w), t);
  // The fixed time, then (at most 30 s more) until every operation has run once.
  auto deadline = start + std::chrono::duration<double>(config.seconds);
  auto all_ran = [&] {
    for (const auto& s : w.stats) {
      if (s.done.load() == 0) return false;
    }
    return true;
  };
  while (Clock::now() < deadline || (!all_ran() && Clock::now() < deadline + std::chrono::seconds(30))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  w.stop = true;
  enter(main_slot, "joining the workers", "-");
  for (auto& t : workers) t.join();
  double worked = std::chrono::duration<double>(Clock::now() - start).count();

  // Every event decrypts on the other device once the producer's keys are in.
  std::vector<std::string> final_failures;  // the first 50
  size_t final_failure_count = 0;
  auto final_fail = [&](const std::string& what) {
    if (final_failure_count++ < 50) final_failures.push_back(what);
  };
  enter(main_slot, "final: export_room_keys + import", "-");
  for (Peer* p : {&a, &b}) {
    Peer& q = p == &a ? b : a;
    auto keys = p->crypto->export_room_keys();
    auto r = q.crypto->import_room_keys(keys, [&](const ImportProgress&) { progress(main_slot); });
    if (!r.failed.empty() || !r.skipped.empty() || r.imported.size() != keys.size()) {
      final_fail(std::string("final import into ") + q.name + ": " + std::to_string(r.imported.size()) +
                               " of " + std::to_string(keys.size()) + " held");
    }
    progress(main_slot);
  }
  enter(main_slot, "final: decrypt every event", "-");
  size_t megolm_events = 0;
  std::map<std::pair<int, std::string>, std::vector<size_t>> by_consumer_stream;
  for (size_t i = 0; i < w.events.size(); ++i) {
    const auto& ev = w.events[i];
    Peer& q = ev.producer == 0 ? b : a;
    megolm_events += ev.algorithm == kMegolm;
    by_consumer_stream[{q.index, ev.stream}].push_back(i);
    try {
      auto d = q.crypto->decrypt_group_event(ev.stream, ev.event);
      if (plain_text(d.plaintext) != ev.plaintext || d.message_index != ev.index) {
        final_fail("event " + std::to_string(i) + " decrypts to something else on " + q.name);
      }
    } catch (const Error& e) {
      final_fail("event " + std::to_string(i) + " of stream " + ev.stream + " does not decrypt on " +
                               q.name + ": " + error_text(e));
    }
    progress(main_slot);
  }
  enter(main_slot, "final: decrypt_group_events per stream", "-");
  for (const auto& [key, indices] : by_consumer_stream) {
    Peer& q = w.peers[key.first];
    std::vector<EncryptedData> events;
    for (size_t i : indices) events.push_back(w.events[i].event);
    auto results = q.crypto->decrypt_group_events(key.second, events);
    for (size_t j = 0; j < indices.size() && j < results.size(); ++j) {
      const auto& ev = w.events[indices[j]];
      if (!results[j].value || plain_text(results[j].value->plaintext) != ev.plaintext ||
          results[j].value->message_index != ev.index) {
        final_fail("event " + std::to_string(indices[j]) + " fails in a batch on " + q.name);
      }
    }
    if (results.size() != indices.size()) final_fail("a final batch lost results");
    progress(main_slot);
  }
  watchdog_guard.stop();

  uint64_t operations = 0;
  for (int t = 0; t < config.threads; ++t) operations += w.slots[static_cast<size_t>(t)].progress.load();
  std::printf("torture: %" PRIu64 " operations in %.1f s (%.0f/s) on %d threads; %zu events (%zu megolm), "
              "%zu streams\n",
              operations, worked, static_cast<double>(operations) / worked, config.threads, w.events.size(),
              megolm_events, w.active.load());
  w.print_counters(stdout);
  std::fflush(stdout);

  INFO("torture seed: 0x" << std::hex << config.seed << std::dec << " (replay with TOWNS_TORTURE_SEED)");
  for (const auto& f : w.failures) UNSCOPED_INFO(f);
  CHECK(w.failure_count.load() == 0);
  for (const auto& f : final_failures) UNSCOPED_INFO(f);
  CHECK(final_failure_count == 0);
  for (size_t i = 0; i < kOps.size(); ++i) {
    INFO("operation " << kOps[i].name << " never ran to completion");
    CHECK(w.stats[i].done.load() > 0);
  }
}
