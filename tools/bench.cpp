// towns-e2ee bench: the workloads of docs/performance.md through the public API
// and, where the workload has one, as bare libolm / OpenSSL calls. Prints one
// JSON object per workload: {"workload", "ours_ops_per_s", "raw_ops_per_s", ...}.
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

json megolm_encrypt(size_t n) {
  TempDir dir;
  SqliteDevice d(dir.file("enc.db"));
  auto payload = kib();
  d.crypto->ensure_outbound_session(stream_id(1), kMegolm);
  double ours = rate(n, [&](size_t) { d.crypto->encrypt_group_event(stream_id(1), payload, kMegolm); });
  auto raw_session = olm::OutboundGroupSession::create(crypto::os_random());
  auto text = crypto::base64_encode(payload, crypto::Base64Padding::kPadded);
  double raw = rate(n, [&](size_t) { raw_session.encrypt(crypto::as_bytes(text)); });
  return result("megolm_encrypt_1k", ours, raw);
}

json megolm_decrypt(size_t n) {
  TempDir dir;
  SqliteDevice sender(dir.file("s.db")), receiver(dir.file("r.db"));
  auto payload = kib();
  std::vector<EncryptedData> events;
  for (size_t i = 0; i < n; ++i) events.push_back(sender.crypto->encrypt_group_event(stream_id(1), payload, kMegolm));
  receiver.crypto->import_session_keys(stream_id(1), sender.crypto->export_room_keys());
  double ours = rate(n, [&](size_t i) { receiver.crypto->decrypt_group_event(stream_id(1), events[i]); });
  auto in = olm::InboundGroupSession::import_session(
      crypto::SecretView(sender.crypto->export_group_session(stream_id(1), events[0].session_id)->session_key));
  double raw = rate(n, [&](size_t i) { in.decrypt(events[i].ciphertext); });
  return result("megolm_decrypt_1k", ours, raw);
}

json grpaes(size_t n, bool decrypt) {
  TempDir dir;
  SqliteDevice d(dir.file("h.db"));
  auto payload = kib();
  d.crypto->ensure_outbound_session(stream_id(1), kHybrid, {.miniblock_info = MiniblockInfo{1, std::vector<uint8_t>(32, 1)}});
  std::vector<EncryptedData> events;
  double ours = 0;
  if (!decrypt) {
    ours = rate(n, [&](size_t) { d.crypto->encrypt_group_event(stream_id(1), payload, kHybrid); });
  } else {
    for (size_t i = 0; i < n; ++i) events.push_back(d.crypto->encrypt_group_event(stream_id(1), payload, kHybrid));
    ours = rate(n, [&](size_t i) { d.crypto->decrypt_group_event(stream_id(1), events[i]); });
  }
  auto aes = crypto::AesGcm::New(crypto::os_random().bytes(32));
  auto iv = crypto::os_random().bytes(12);
  auto sealed = aes.encrypt(iv.span(), payload);
  double raw = decrypt ? rate(n, [&](size_t) { aes.decrypt(iv.span(), sealed); })
                       : rate(n, [&](size_t) { aes.encrypt(crypto::os_random().bytes(12).span(), payload); });
  return result(decrypt ? "grpaes_decrypt_1k" : "grpaes_encrypt_1k", ours, raw);
}

std::vector<UserDevice> make_devices(size_t n) {
  std::vector<UserDevice> out;
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

json share(size_t devices, size_t rounds) {
  TempDir dir;
  SqliteDevice d(dir.file("share.db"));
  auto targets = make_devices(devices);
  d.crypto->ensure_outbound_session(stream_id(1), kMegolm);
  auto sessions = d.crypto->export_room_keys();
  double ours = rate(rounds, [&](size_t) { build_group_encryption_sessions(*d.crypto, stream_id(1), kMegolm, sessions, targets); }) *
                static_cast<double>(devices);
  auto account = olm::Account::create(crypto::os_random());
  auto cleartext = session_keys_json({sessions[0].session_key});
  double raw = rate(rounds * devices, [&](size_t i) {
                 auto& t = targets[i % devices];
                 auto s = olm::Session::create_outbound(account, t.device_key, t.fallback_key, crypto::os_random());
                 s.encrypt(cleartext.span(), crypto::os_random());
               });
  return result("share_session_to_1000_devices", ours, raw, {{"unit", "devices"}});
}

json receive(size_t n) {
  TempDir dir;
  SqliteDevice sender(dir.file("s.db")), receiver(dir.file("r.db"));
  std::vector<GroupEncryptionSessions> messages;
  auto target = receiver.crypto->get_user_device();
  for (size_t i = 0; i < n; ++i) {
    auto id = sender.crypto->ensure_outbound_session(stream_id(static_cast<int>(i)), kMegolm);
    auto s = sender.crypto->export_group_session(stream_id(static_cast<int>(i)), id);
    messages.push_back(build_group_encryption_sessions(*sender.crypto, stream_id(static_cast<int>(i)), kMegolm, {*s}, {target}).message);
  }
  // The inbox is read as a backlog: one durable write for the batch.
  auto t = Clock::now();
  for (const auto& r : receive_group_encryption_sessions_batch(*receiver.crypto, messages)) {
    if (!r.value || r.value->imported.size() != 1) throw Error(ErrorCode::INTERNAL, "receive failed");
  }
  double ours = static_cast<double>(n) / seconds_since(t);
  return result("receive_1000_group_encryption_sessions", ours, std::nullopt);
}

json answer(size_t sessions, size_t rounds) {
  TempDir dir;
  SqliteDevice d(dir.file("a.db"));
  // 1000 sessions of one stream, imported from other senders.
  MemoryCryptoStore other_store;
  for (size_t i = 0; i < sessions; ++i) {
    GroupEncryptionCrypto other(nullptr, other_store);
    other.init();
    other_store.delete_outbound_session(stream_id(1));
    auto id = other.ensure_outbound_session(stream_id(1), kMegolm);
    d.crypto->import_session_keys(stream_id(1), {*other.export_group_session(stream_id(1), id)});
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
  return result("answer_new_device_solicitation_1000_sessions", ours, std::nullopt, {{"unit", "solicitations"}});
}

json backlog(size_t events_n, size_t sessions_n) {
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
  return result("decrypt_backlog_10000_events_100_sessions_cold", ours, std::nullopt, {{"unit", "events"}});
}

size_t peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<size_t>(u.ru_maxrss);
}

json million(size_t n) {
  TempDir dir;
  auto path = dir.file("million.db");
  std::vector<std::pair<std::string, std::string>> probes;
  {
    auto store = SqliteCryptoStore::open(path, "bench key", {.synchronous_full = false});
    GroupEncryptionCrypto c(nullptr, *store);
    c.init();
    auto pickle = std::string(300, 'p');
    const size_t batch = 20000;
    for (size_t b = 0; b < n; b += batch) {
      StoreChanges changes;
      for (size_t i = b; i < std::min(n, b + batch); ++i) {
        std::string sid = "s" + std::to_string(i * 2654435761u % 1000000007u);
        changes.inbound_sessions.push_back({stream_id(static_cast<int>(i % 5000)), sid, pickle});
        if (i % (n / 1000) == 0) probes.push_back({stream_id(static_cast<int>(i % 5000)), sid});
      }
      store->save_changes(changes);  // one transaction per batch
    }
  }
  size_t rss_before = peak_rss_kb();
  auto t = Clock::now();
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
          {"lookup_p50_us", pct(0.5)},
          {"lookup_p99_us", pct(0.99)},
          {"file_mb", size_mb},
          {"peak_rss_mb", static_cast<double>(std::max(peak_rss_kb(), rss_before)) / 1024.0}};
}

}  // namespace

int run_bench(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      throw Error(ErrorCode::INVALID_ARGUMENT, "unknown option " + a);
    }
  }
  std::vector<std::pair<std::string, std::function<json()>>> workloads = {
      {"megolm_encrypt_1k", [&] { return megolm_encrypt(quick ? 1000 : 5000); }},
      {"megolm_decrypt_1k", [&] { return megolm_decrypt(quick ? 1000 : 5000); }},
      {"grpaes_encrypt_1k", [&] { return grpaes(quick ? 5000 : 20000, false); }},
      {"grpaes_decrypt_1k", [&] { return grpaes(quick ? 5000 : 20000, true); }},
      {"share_session_to_1000_devices", [&] { return share(1000, quick ? 1 : 3); }},
      {"receive_1000_group_encryption_sessions", [&] { return receive(quick ? 300 : 1000); }},
      {"answer_new_device_solicitation_1000_sessions", [&] { return answer(1000, quick ? 1 : 3); }},
      {"decrypt_backlog_10000_events_100_sessions_cold", [&] { return backlog(quick ? 2000 : 10000, 100); }},
      {"store_inbound_sessions", [&] { return million(quick ? 100000 : 1000000); }},
  };
  for (auto& [name, fn] : workloads) {
    if (!only.empty() && name.find(only) == std::string::npos) continue;
    std::printf("%s\n", fn().dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace towns::tools
