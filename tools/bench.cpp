// towns-e2ee bench: the workloads of docs/performance.md through the public API
// and, where the workload has one, as bare libolm / OpenSSL calls. Each
// workload family runs at a size (payload bytes, devices, sessions, events);
// by default each at its headline size, with --run at the sizes asked for.
// Prints one JSON object per measurement: {"workload", "family", "size",
// "ours_ops_per_s", "raw_ops_per_s", ...}; tools/bench drives it.
#include "bench.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "towns/olm/olm.h"
#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/store/sqlite_crypto_store.h"

namespace towns::tools {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;
constexpr auto kHybrid = GroupEncryptionAlgorithm::kHybridGroupEncryption;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ops per second of fn(i) run n times.
double rate(size_t n, const std::function<void(size_t)>& fn) {
  auto t = Clock::now();
  for (size_t i = 0; i < n; ++i) fn(i);
  return static_cast<double>(n) / seconds_since(t);
}

// Ours and raw libolm (or OpenSSL) on the same items, in alternating blocks of
// `block`, each side's time summed: a machine that slows down or speeds up
// during the run (a shared virtual machine does) weighs on both sides alike,
// which timing one side after the other does not. Returns {ours/s, raw/s}.
std::pair<double, double> paired_rates(size_t n, const std::function<void(size_t)>& ours,
                                       const std::function<void(size_t)>& raw, size_t block = 50) {
  double t_ours = 0, t_raw = 0;
  for (size_t start = 0; start < n; start += block) {
    size_t end = std::min(n, start + block);
    bool ours_first = (start / block) % 2 == 0;
    for (int side = 0; side < 2; ++side) {
      bool is_ours = (side == 0) == ours_first;
      auto t = Clock::now();
      for (size_t i = start; i < end; ++i) (is_ours ? ours : raw)(i);
      (is_ours ? t_ours : t_raw) += seconds_since(t);
    }
  }
  return {static_cast<double>(n) / t_ours, static_cast<double>(n) / t_raw};
}

std::string stream_id(int n) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06x", n);
  return "20" + std::string(56, 'b') + buf;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "towns-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw Error(ErrorCode::STORE_ERROR, "mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& n) const { return path_ + "/" + n; }

 private:
  std::string path_;
};

struct SqliteDevice {
  std::unique_ptr<SqliteCryptoStore> store;
  std::unique_ptr<GroupEncryptionCrypto> crypto;
  SqliteDevice(const std::string& path, GroupEncryptionClient* client = nullptr) {
    store = SqliteCryptoStore::open(path, "bench key");
    crypto = std::make_unique<GroupEncryptionCrypto>(client, *store);
    crypto->init({.pickle_key = crypto::SecretBytes(std::string_view("bench key"))});
  }
};

json result(const std::string& name, double ours, std::optional<double> raw, json extra = json::object()) {
  json j = {{"workload", name}, {"ours_ops_per_s", ours}, {"raw_ops_per_s", raw ? json(*raw) : json(nullptr)}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

std::vector<uint8_t> kib() { return std::vector<uint8_t>(1024, 0x5a); }
std::vector<uint8_t> payload_of(size_t bytes) { return std::vector<uint8_t>(bytes, 0x5a); }

// The payload families' names: 100b, 1k, 10k, 32k.
std::string payload_name(size_t bytes) {
  return bytes % 1024 == 0 ? std::to_string(bytes / 1024) + "k" : std::to_string(bytes) + "b";
}

// Events measured at a payload size: base up to 1 KiB (the headline size), then
// as many as make the same number of bytes (libolm takes about 5 ms for a
// 32 KiB event here), at least base / 50.
size_t events_for(size_t base, size_t bytes) {
  return bytes <= 1024 ? base : std::max(base / 50, base * 1024 / bytes);
}

json megolm_encrypt(size_t bytes, size_t n) {
  TempDir dir;
  SqliteDevice d(dir.file("enc.db"));
  auto payload = payload_of(bytes);
  d.crypto->ensure_outbound_session(stream_id(1), kMegolm);
  auto raw_session = olm::OutboundGroupSession::create(crypto::os_random());
  auto text = crypto::base64_encode(payload, crypto::Base64Padding::kPadded);
  auto [ours, raw] = paired_rates(
      n, [&](size_t) { d.crypto->encrypt_group_event(stream_id(1), payload, kMegolm); },
      [&](size_t) { raw_session.encrypt(crypto::as_bytes(text)); });
  return result("megolm_encrypt_" + payload_name(bytes), ours, raw);
}

json megolm_decrypt(size_t bytes, size_t n) {
  TempDir dir;
  SqliteDevice sender(dir.file("s.db")), receiver(dir.file("r.db"));
  auto payload = payload_of(bytes);
  std::vector<EncryptedData> events;
  for (size_t i = 0; i < n; ++i) events.push_back(sender.crypto->encrypt_group_event(stream_id(1), payload, kMegolm));
  receiver.crypto->import_session_keys(stream_id(1), sender.crypto->export_room_keys());
  auto in = olm::InboundGroupSession::import_session(
      crypto::SecretView(sender.crypto->export_group_session(stream_id(1), events[0].session_id)->session_key));
  auto [ours, raw] = paired_rates(
      n, [&](size_t i) { receiver.crypto->decrypt_group_event(stream_id(1), events[i]); },
      [&](size_t i) { in.decrypt(events[i].ciphertext); });
  return result("megolm_decrypt_" + payload_name(bytes), ours, raw);
}

json grpaes(size_t bytes, size_t n, bool decrypt) {
  TempDir dir;
  SqliteDevice d(dir.file("h.db"));
  auto payload = payload_of(bytes);
  d.crypto->ensure_outbound_session(stream_id(1), kHybrid, {.miniblock_info = MiniblockInfo{1, std::vector<uint8_t>(32, 1)}});
  std::vector<EncryptedData> events;
  auto aes = crypto::AesGcm::New(crypto::os_random().bytes(32));
  auto iv = crypto::os_random().bytes(12);
  auto sealed = aes.encrypt(iv.span(), payload);
  std::pair<double, double> rates;
  if (!decrypt) {
    rates = paired_rates(
        n, [&](size_t) { d.crypto->encrypt_group_event(stream_id(1), payload, kHybrid); },
        [&](size_t) { aes.encrypt(crypto::os_random().bytes(12).span(), payload); });
  } else {
    for (size_t i = 0; i < n; ++i) events.push_back(d.crypto->encrypt_group_event(stream_id(1), payload, kHybrid));
    rates = paired_rates(
        n, [&](size_t i) { d.crypto->decrypt_group_event(stream_id(1), events[i]); },
        [&](size_t) { aes.decrypt(iv.span(), sealed); });
  }
  auto [ours, raw] = rates;
  return result(std::string(decrypt ? "grpaes_decrypt_" : "grpaes_encrypt_") + payload_name(bytes), ours, raw);
}

std::vector<UserDevice> make_devices(size_t n) {
  std::vector<UserDevice> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto a = olm::Account::create(crypto::os_random());
    a.generate_fallback_key(crypto::os_random());
    // {"curve25519":{"<key id>":"<key>"}}: the one unpublished fallback key.
    auto keys = json::parse(a.unpublished_fallback_key()).at("curve25519");
    if (keys.size() != 1) throw Error(ErrorCode::INTERNAL, "expected one unpublished fallback key");
    out.push_back({a.curve25519_key(), keys.begin()->get<std::string>()});
  }
  return out;
}

// Target devices for share, made once per process and sliced for each size
// (making 10,000 olm accounts is setup, not the measured work).
std::vector<UserDevice> targets_of(size_t n) {
  static std::vector<UserDevice> pool;
  if (pool.size() < n) {
    auto more = make_devices(n - pool.size());
    pool.insert(pool.end(), more.begin(), more.end());
  }
  return {pool.begin(), pool.begin() + static_cast<ptrdiff_t>(n)};
}

// rounds shares to `devices` devices; raw: raw_devices single olm sessions.
json share(size_t devices, size_t rounds, size_t raw_devices) {
  TempDir dir;
  SqliteDevice d(dir.file("share.db"));
  auto targets = targets_of(devices);
  d.crypto->ensure_outbound_session(stream_id(1), kMegolm);
  auto sessions = d.crypto->export_room_keys();
  double ours = rate(rounds, [&](size_t) { build_group_encryption_sessions(*d.crypto, stream_id(1), kMegolm, sessions, targets); }) *
                static_cast<double>(devices);
  auto account = olm::Account::create(crypto::os_random());
  auto cleartext = session_keys_json({sessions[0].session_key});
  double raw = rate(raw_devices, [&](size_t i) {
                 auto& t = targets[i % devices];
                 auto s = olm::Session::create_outbound(account, t.device_key, t.fallback_key, crypto::os_random());
                 s.encrypt(cleartext.span(), crypto::os_random());
               });
  return result("share_session_to_" + std::to_string(devices) + "_devices", ours, raw, {{"unit", "devices"}});
}

json receive(size_t n) {
  TempDir dir;
  SqliteDevice receiver(dir.file("r.db"));
  // The sender only makes the inbox messages: an in-memory store keeps that
  // setup short (10,000 durable writes took longer than the receiving).
  MemoryCryptoStore sender_store;
  GroupEncryptionCrypto sender(nullptr, sender_store);
  sender.init();
  std::vector<GroupEncryptionSessions> messages;
  auto target = receiver.crypto->get_user_device();
  for (size_t i = 0; i < n; ++i) {
    auto id = sender.ensure_outbound_session(stream_id(static_cast<int>(i)), kMegolm);
    auto s = sender.export_group_session(stream_id(static_cast<int>(i)), id);
    messages.push_back(build_group_encryption_sessions(sender, stream_id(static_cast<int>(i)), kMegolm, {*s}, {target}).message);
  }
  // The inbox is read as a backlog: one durable write for the batch.
  auto t = Clock::now();
  for (const auto& r : receive_group_encryption_sessions_batch(*receiver.crypto, messages)) {
    if (!r.value || r.value->imported.size() != 1) throw Error(ErrorCode::INTERNAL, "receive failed");
  }
  double ours = static_cast<double>(n) / seconds_since(t);
  return result("receive_" + std::to_string(n) + "_group_encryption_sessions", ours, std::nullopt);
}

json answer(size_t sessions, size_t rounds) {
  TempDir dir;
  SqliteDevice d(dir.file("a.db"));
  // `sessions` megolm sessions of one stream: made by one sender on as many
  // streams, imported under stream 1 in one call (as the client's side does).
  MemoryCryptoStore other_store;
  GroupEncryptionCrypto other(nullptr, other_store);
  other.init();
  std::vector<GroupEncryptionSession> keys;
  for (size_t i = 0; i < sessions; ++i) {
    auto stream = stream_id(1000 + static_cast<int>(i));
    keys.push_back(*other.export_group_session(stream, other.ensure_outbound_session(stream, kMegolm)));
  }
  if (d.crypto->import_session_keys(stream_id(1), keys).imported.size() != sessions) {
    throw Error(ErrorCode::INTERNAL, "answer: sessions not imported");
  }
  auto requester = make_devices(1)[0];
  KeySolicitation sol;
  sol.device_key = requester.device_key;
  sol.fallback_key = requester.fallback_key;
  sol.is_new_device = true;
  sol.session_ids = {"anything"};
  // The requester's user id must be an address (0x and 40 hex digits), else the plan stops.
  const std::string requester_user = "0x" + std::string(40, 'a');
  double ours = rate(rounds, [&](size_t) {
    auto plan = plan_solicitation_answer(*d.crypto, stream_id(1), requester_user, sol, [] { return true; });
    if (!plan) throw Error(ErrorCode::INTERNAL, "the solicitation was not answered");
    build_solicitation_shares(*d.crypto, stream_id(1), requester, plan->sessions);
  });
  return result("answer_new_device_solicitation_" + std::to_string(sessions) + "_sessions", ours, std::nullopt,
                {{"unit", "solicitations"}});
}

json backlog(size_t events_n, size_t sessions_n) {
  if (events_n % sessions_n != 0) throw Error(ErrorCode::INVALID_ARGUMENT, "backlog: events must be a multiple of sessions");
  TempDir dir;
  auto path = dir.file("backlog.db");
  std::vector<EncryptedData> events;
  std::vector<GroupEncryptionSession> keys;
  {
    MemoryCryptoStore ss;
    for (size_t s = 0; s < sessions_n; ++s) {
      GroupEncryptionCrypto sender(nullptr, ss);
      sender.init();
      ss.delete_outbound_session(stream_id(1));
      for (size_t i = 0; i < events_n / sessions_n; ++i) events.push_back(sender.encrypt_group_event(stream_id(1), kib(), kMegolm));
      keys.push_back(*sender.export_group_session(stream_id(1), events.back().session_id));
    }
    SqliteDevice r(path);
    r.crypto->import_session_keys(stream_id(1), keys);
  }
  // Interleave the sessions, as a stream's history would.
  std::vector<EncryptedData> ordered;
  size_t per = events_n / sessions_n;
  for (size_t i = 0; i < per; ++i) {
    for (size_t s = 0; s < sessions_n; ++s) ordered.push_back(events[s * per + i]);
  }
  auto t = Clock::now();
  SqliteDevice cold(path);
  auto results = cold.crypto->decrypt_group_events(stream_id(1), ordered);
  double ours = static_cast<double>(ordered.size()) / seconds_since(t);
  for (const auto& r : results) {
    if (!r.value) throw Error(ErrorCode::INTERNAL, "backlog event failed");
  }
  return result("decrypt_backlog_" + std::to_string(events_n) + "_events_" + std::to_string(sessions_n) + "_sessions_cold",
                ours, std::nullopt, {{"unit", "events"}});
}

size_t peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<size_t>(u.ru_maxrss);
}

// The store family's session ids and probes: session i is ("s" + a hash of i)
// on one of 5,000 streams; every (n / 1000)-th session is probed. Computed, not
// remembered, so that a store built by another process can be probed.
std::string store_session_id(size_t i) { return "s" + std::to_string(i * 2654435761u % 1000000007u); }

std::vector<std::pair<std::string, std::string>> store_probes(size_t n) {
  std::vector<std::pair<std::string, std::string>> probes;
  for (size_t i = 0; i < n; i += n / 1000) probes.push_back({stream_id(static_cast<int>(i % 5000)), store_session_id(i)});
  return probes;
}

// Writes a store of n inbound sessions (300-byte pickles) at path.
void make_store(const std::string& path, size_t n) {
  if (n < 1000) throw Error(ErrorCode::INVALID_ARGUMENT, "a store needs at least 1000 sessions");
  auto store = SqliteCryptoStore::open(path, "bench key", {.synchronous_full = false});
  GroupEncryptionCrypto c(nullptr, *store);
  c.init();
  auto pickle = std::string(300, 'p');
  const size_t batch = 20000;
  for (size_t b = 0; b < n; b += batch) {
    StoreChanges changes;
    for (size_t i = b; i < std::min(n, b + batch); ++i) {
      changes.inbound_sessions.push_back({stream_id(static_cast<int>(i % 5000)), store_session_id(i), pickle});
    }
    store->save_changes(changes);  // one transaction per batch
  }
}

// Opens a store of n sessions and looks up its probes. The store is built in a
// temporary folder unless store_dir holds inbound-<n>.db (tools/bench builds
// each size once per run and reuses it across rounds).
json million(size_t n, const std::string& store_dir) {
  TempDir dir;
  std::string path = store_dir.empty() ? dir.file("million.db") : store_dir + "/inbound-" + std::to_string(n) + ".db";
  if (store_dir.empty()) make_store(path, n);
  if (!std::filesystem::exists(path)) throw Error(ErrorCode::INVALID_ARGUMENT, "no store at " + path);
  auto probes = store_probes(n);
  // An open without the row-by-row verification, for comparison (the headline
  // open_s is the default open, which verifies every row).
  auto t = Clock::now();
  SqliteCryptoStore::open(path, "bench key", {.verify_on_open = false}).reset();
  double open_unverified_s = seconds_since(t);
  t = Clock::now();
  auto store = SqliteCryptoStore::open(path, "bench key");
  double open_s = seconds_since(t);
  std::vector<double> lookups;
  for (const auto& [s, id] : probes) {
    auto t0 = Clock::now();
    if (!store->get_inbound_session(s, id)) throw Error(ErrorCode::INTERNAL, "probe missing");
    lookups.push_back(seconds_since(t0) * 1e6);
  }
  std::sort(lookups.begin(), lookups.end());
  auto pct = [&](double p) { return lookups[static_cast<size_t>(p * static_cast<double>(lookups.size() - 1))]; };
  auto size_mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
  return {{"workload", "store_" + std::to_string(n) + "_inbound_sessions"},
          {"ours_ops_per_s", 1e6 / pct(0.5)},
          {"raw_ops_per_s", nullptr},
          {"open_s", open_s},
          {"open_unverified_s", open_unverified_s},
          {"lookup_p50_us", pct(0.5)},
          {"lookup_p99_us", pct(0.99)},
          {"file_mb", size_mb},
          {"peak_rss_mb", static_cast<double>(peak_rss_kb()) / 1024.0}};  // of this process, to here
}

// A workload family: its name at a size, its headline size (and the one
// --quick uses), and how one measurement at a size runs.
struct Family {
  std::string key;
  std::function<std::string(size_t)> name;
  size_t size;
  size_t quick_size;
  std::function<json(size_t size, bool quick)> run;
};

std::vector<Family> families(const std::string& store_dir) {
  // Repetitions, so that each measurement covers about as much work as the
  // headline size's (3 x 1,000 devices or sessions; 1 x 1,000 with --quick):
  // 3,000 devices or sessions in all from 1,000 up (at least one repetition),
  // 1,000 below.
  auto reps = [](size_t size, bool quick) {
    return std::max<size_t>(1, (quick || size < 1000 ? 1000 : 3000) / size);
  };
  auto named = [](std::string head, std::string tail) {
    return [=](size_t n) { return head + std::to_string(n) + tail; };
  };
  auto payload = [](std::string head) { return [=](size_t b) { return head + payload_name(b); }; };
  return {
      {"megolm_encrypt", payload("megolm_encrypt_"), 1024, 1024,
       [](size_t b, bool q) { return megolm_encrypt(b, events_for(q ? 1000 : 5000, b)); }},
      {"megolm_decrypt", payload("megolm_decrypt_"), 1024, 1024,
       [](size_t b, bool q) { return megolm_decrypt(b, events_for(q ? 1000 : 5000, b)); }},
      {"grpaes_encrypt", payload("grpaes_encrypt_"), 1024, 1024,
       [](size_t b, bool q) { return grpaes(b, events_for(q ? 5000 : 20000, b), false); }},
      {"grpaes_decrypt", payload("grpaes_decrypt_"), 1024, 1024,
       [](size_t b, bool q) { return grpaes(b, events_for(q ? 5000 : 20000, b), true); }},
      {"share", named("share_session_to_", "_devices"), 1000, 1000,
       [=](size_t n, bool q) { return share(n, reps(n, q), std::min(n * reps(n, q), size_t{3000})); }},
      {"receive", named("receive_", "_group_encryption_sessions"), 1000, 300, [](size_t n, bool) { return receive(n); }},
      {"answer", named("answer_new_device_solicitation_", "_sessions"), 1000, 1000,
       [=](size_t n, bool q) { return answer(n, reps(n, q)); }},
      {"backlog", named("decrypt_backlog_", "_events_100_sessions_cold"), 10000, 2000,
       [](size_t n, bool) { return backlog(n, 100); }},
      {"store", named("store_", "_inbound_sessions"), 1000000, 100000, [=](size_t n, bool) { return million(n, store_dir); }},
  };
}

}  // namespace

int run_bench(int argc, char** argv) {
  bool quick = false;
  std::vector<std::string> only;
  std::vector<std::pair<std::string, size_t>> runs;  // family, size
  std::string store_dir;
  auto split = [](const std::string& list) {
    std::vector<std::string> out;
    for (size_t at = 0; at <= list.size();) {
      size_t comma = std::min(list.find(',', at), list.size());
      if (comma > at) out.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    return out;
  };
  auto size_of = [](const std::string& text) {
    size_t used = 0;
    unsigned long long v = 0;
    try {
      v = std::stoull(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || v == 0) throw Error(ErrorCode::INVALID_ARGUMENT, "not a size: " + text);
    return static_cast<size_t>(v);
  };
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--quick") {
      quick = true;
    } else if (a == "--only" && has_value) {
      for (auto& o : split(argv[++i])) only.push_back(o);
    } else if (a == "--run" && has_value) {
      for (auto& item : split(argv[++i])) {
        auto colon = item.find(':');
        if (colon == std::string::npos) throw Error(ErrorCode::INVALID_ARGUMENT, "--run wants family:size, not " + item);
        runs.emplace_back(item.substr(0, colon), size_of(item.substr(colon + 1)));
      }
    } else if (a == "--store-dir" && has_value) {
      store_dir = argv[++i];
    } else if (a == "--make-store" && i + 2 < argc) {
      std::string path = argv[++i];
      make_store(path, size_of(argv[++i]));
      return 0;
    } else {
      throw Error(ErrorCode::INVALID_ARGUMENT, "unknown option " + a);
    }
  }
  auto all = families(store_dir);
  if (runs.empty()) {
    for (const auto& f : all) runs.emplace_back(f.key, quick ? f.quick_size : f.size);
  }
  for (const auto& [key, size] : runs) {
    auto f = std::find_if(all.begin(), all.end(), [&](const Family& x) { return x.key == key; });
    if (f == all.end()) throw Error(ErrorCode::INVALID_ARGUMENT, "no workload family " + key);
    // --only keeps the measurements whose family or name holds one of its words.
    if (!only.empty() && std::none_of(only.begin(), only.end(), [&](const std::string& o) {
          return key.find(o) != std::string::npos || f->name(size).find(o) != std::string::npos;
        })) {
      continue;
    }
    json j = f->run(size, quick);
    json out = {{"workload", f->name(size)}, {"family", key}, {"size", size}};
    for (auto& [k, v] : j.items()) {
      if (k != "workload") out[k] = v;
    }
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace towns::tools
