#include "exchange_diff.h"
#include "peer.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "exchange/timeline.h"
#include "towns/crypto/encoding.h"
#include "towns/crypto/random.h"
#include "towns/error.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/session_sharing.h"
#include "towns/protocol/messages.h"
#include "towns/store/memory_crypto_store.h"

extern char** environ;

namespace towns::tools {
namespace {

using nlohmann::json;
using trace::normal;

constexpr const char* kMegolm = "r.group-encryption.v1.aes-sha2";
constexpr const char* kGrpaes = "grpaes";
// How late the SDK's engine may act after ours: it looks for due work on a
// 100 ms timer (docs/exchange-diff.md).
constexpr int64_t kLateMs = 200;
// Inputs are kept this far from the moments our engine acts, so that the SDK's
// lateness never reorders an input and an action.
constexpr int64_t kQuietMs = 250;

std::string b64(const std::string& bytes) { return crypto::base64_encode(crypto::as_bytes(bytes), crypto::Base64Padding::kPadded); }
std::string b64(const Bytes& bytes) { return crypto::base64_encode(bytes, crypto::Base64Padding::kPadded); }

// ---------------------------------------------------------------- timelines

class NoClient final : public GroupEncryptionClient {
 public:
  void encrypt_and_share_group_sessions_to_stream(std::string_view, const std::vector<GroupEncryptionSession>&,
                                                  GroupEncryptionAlgorithm, const std::vector<std::string>&) override {}
  MiniblockInfo get_miniblock_info(std::string_view) override { return {7, std::vector<uint8_t>(32, 0x5a)}; }
};

struct Device {
  std::unique_ptr<MemoryCryptoStore> store;
  std::unique_ptr<GroupEncryptionCrypto> crypto;
  UserDevice key;
  bool invalid = false;  // published with a key olm refuses
};

struct User {
  std::string id;
  std::vector<Device> devices;
};

struct Session {
  std::string stream;
  std::string id;
  std::string algorithm;
  std::string key;
  std::vector<std::string> events;  // EncryptedData protobufs
  size_t next_event = 0;
};

// Builds one timeline: real devices, sessions and events from a seeded source,
// and the steps that feed them to an engine.
class Timeline {
 public:
  Timeline(std::string name, std::string section, uint64_t seed, std::string note = {})
      : name_(std::move(name)), section_(std::move(section)), note_(std::move(note)) {
    std::string s = "exchange-diff|" + name_ + "|" + std::to_string(seed);
    rng_ = std::make_unique<crypto::SeededRandom>(crypto::as_bytes(s));
    user();  // user 0 is ours; its device 0 is the engine's
    for (int i = 0; i < 64; ++i) {
      uint8_t r[4];
      rng_->fill(r);
      random_.push_back((uint32_t{r[0]} << 24) | (uint32_t{r[1]} << 16) | (uint32_t{r[2]} << 8) | r[3]);
    }
  }

  crypto::RandomSource& rng() { return *rng_; }
  uint32_t next_u32() {
    uint8_t r[4];
    rng_->fill(r);
    return (uint32_t{r[0]} << 24) | (uint32_t{r[1]} << 16) | (uint32_t{r[2]} << 8) | r[3];
  }
  size_t pick(size_t n) { return n == 0 ? 0 : next_u32() % n; }

  // A user with n devices (the second one invalid when asked).
  int user(int n = 1, bool invalid_second = false) {
    User u;
    u.id = "0x" + crypto::hex_encode(rng_->bytes(20).span());
    users_.push_back(std::move(u));
    int idx = static_cast<int>(users_.size()) - 1;
    for (int i = 0; i < n; ++i) device(idx, invalid_second && i == 1);
    return idx;
  }
  int device(int user, bool invalid = false) {
    Device d;
    d.store = std::make_unique<MemoryCryptoStore>();
    d.crypto = std::make_unique<GroupEncryptionCrypto>(&no_client_, *d.store, *rng_);
    d.crypto->init();
    d.key = d.crypto->get_user_device();
    if (invalid) {
      d.invalid = true;
      d.key.device_key = "invalid-" + std::to_string(users_[user].devices.size()) + "-" + users_[user].id.substr(2, 8);
    }
    users_[user].devices.push_back(std::move(d));
    return static_cast<int>(users_[user].devices.size()) - 1;
  }
  const std::string& uid(int user) const { return users_.at(user).id; }
  const UserDevice& dev(int user, int device) const { return users_.at(user).devices.at(device).key; }
  void set_user_id(int user, std::string id) { users_.at(user).id = std::move(id); }
  void unpublished(int user) { unpublished_.insert(user); }

  std::string stream(const std::string& kind) {
    static const std::map<std::string, std::string> prefix = {{"channel", "20"}, {"space", "10"}, {"dm", "88"}, {"gdm", "77"}};
    std::string id = prefix.at(kind) + crypto::hex_encode(rng_->bytes(kind == "space" ? 20 : 31).span());
    streams_.push_back({{"stream_id", id}, {"kind", kind}});
    return id;
  }
  void member(const std::string& stream, int user, const std::string& op = "join") {
    members_.push_back({{"stream_id", stream}, {"user_id", uid(user)}, {"membership", op}});
  }
  void on_chain(const std::string& stream, int user, bool read) {
    entitlements_.push_back({{"stream_id", stream}, {"user_id", uid(user)}, {"read", read}});
  }
  void options(bool ephemeral, int64_t timeout_ms = 30000) {
    ephemeral_ = ephemeral;
    ephemeral_timeout_ms_ = timeout_ms;
  }

  // A session of another device (its own throwaway sender), with events.
  int session(const std::string& stream, bool held = false, const std::string& algorithm = kMegolm, int events = 3) {
    MemoryCryptoStore store;
    GroupEncryptionCrypto sender(&no_client_, store, *rng_);
    sender.init();
    auto alg = *parse_group_encryption_algorithm(algorithm);
    Session s;
    s.stream = stream;
    s.algorithm = std::string(algorithm_id(alg));
    for (int i = 0; i < std::max(1, events); ++i) {
      std::string text = "message " + std::to_string(i);
      auto data = sender.encrypt_group_event(stream, crypto::as_bytes(text), alg);
      auto bytes = data.encode();
      s.events.emplace_back(bytes.begin(), bytes.end());
      if (s.id.empty()) s.id = data.session_id.empty() ? crypto::hex_encode(data.session_id_bytes) : data.session_id;
    }
    auto exported = sender.export_group_session(stream, s.id);
    if (!exported) throw Error(ErrorCode::INTERNAL, "session did not export");
    s.key = std::string(exported->session_key.view());
    sessions_.push_back(std::move(s));
    int idx = static_cast<int>(sessions_.size()) - 1;
    if (held) held_.push_back(idx);
    return idx;
  }
  const std::string& sid(int session) const { return sessions_.at(session).id; }
  const std::string& algorithm_of(int session) const { return sessions_.at(session).algorithm; }
  std::vector<std::string> sids(const std::vector<int>& list) const {
    std::vector<std::string> out;
    for (int i : list) out.push_back(sid(i));
    return out;
  }

  // ---- steps (times in ms from the start)
  void event(int64_t at, int session) {
    auto& s = sessions_.at(session);
    const auto& pb = s.events[s.next_event % s.events.size()];
    ++s.next_event;
    step(at, {{"type", "encrypted"},
              {"stream_id", s.stream},
              {"event_id", "ev" + std::to_string(++events_)},
              {"encrypted_data_pb", b64(pb)}});
  }
  // The sessions, shared by a device of from_user to ours (or only to
  // another device when not for_me).
  void new_sessions(int64_t at, const std::vector<int>& list, bool for_me = true, int from_user = 1,
                    std::optional<std::string> algorithm_field = std::nullopt) {
    if (list.empty()) return;
    auto& from = users_.at(from_user).devices.at(0);
    const auto& first = sessions_.at(list[0]);
    std::vector<GroupEncryptionSession> keys;
    for (int i : list) {
      const auto& s = sessions_.at(i);
      keys.push_back({s.stream, s.id, crypto::SecretBytes(s.key), s.algorithm});
    }
    from.crypto->import_session_keys(first.stream, keys);
    std::vector<UserDevice> to;
    if (for_me) {
      to.push_back(dev(0, 0));
    } else {
      to.push_back(dev(from_user == 2 ? 1 : 2, 0));
    }
    auto plan = build_group_encryption_sessions(*from.crypto, first.stream, *parse_group_encryption_algorithm(first.algorithm), keys, to);
    if (algorithm_field) plan.message.algorithm = *algorithm_field;
    json keys_json = json::array();
    for (const auto& k : keys) keys_json.push_back(std::string(k.session_key.view()));
    step(at, {{"type", "new_sessions"},
              {"from_user_id", uid(from_user)},
              {"group_encryption_sessions_pb", b64(plan.message.encode())},
              {"session_keys_json", json{{"keys", keys_json}}.dump()}});
  }
  void solicit(int64_t at, const std::string& stream, int user, int device, const std::vector<std::string>& ids,
               bool new_device = false, bool ephemeral = false, std::optional<UserDevice> as_device = std::nullopt) {
    KeySolicitation s;
    auto d = as_device.value_or(dev(user, device));
    s.device_key = d.device_key;
    s.fallback_key = d.fallback_key;
    s.is_new_device = new_device;
    s.session_ids = ids;
    step(at, {{"type", "solicitation"},
              {"stream_id", stream},
              {"user_id", uid(user)},
              {"key_solicitation_pb", b64(s.encode())},
              {"ephemeral", ephemeral}});
  }
  void fulfill(int64_t at, const std::string& stream, int by_user, int for_user, const std::string& device_key,
               const std::vector<std::string>& ids, bool ephemeral = false) {
    KeyFulfillment f;
    auto address = crypto::hex_decode(uid(for_user));
    f.user_address = Bytes(address.begin(), address.end());
    f.device_key = device_key;
    f.session_ids = ids;
    step(at, {{"type", "fulfillment"},
              {"stream_id", stream},
              {"user_id", uid(by_user)},
              {"key_fulfillment_pb", b64(f.encode())},
              {"ephemeral", ephemeral}});
  }
  void membership(int64_t at, const std::string& stream, int user, const std::string& op) {
    step(at, {{"type", "membership"}, {"stream_id", stream}, {"user_id", uid(user)}, {"membership", op}});
  }
  void snapshot(int64_t at, const std::string& stream) {
    step(at, {{"type", "snapshot"}, {"stream_id", stream}});
  }
  void entitlement(int64_t at, const std::string& stream, int user, bool read) {
    step(at, {{"type", "entitlement"}, {"stream_id", stream}, {"user_id", uid(user)}, {"read", read}});
  }
  void send(int64_t at, const std::string& stream, const std::string& algorithm = kMegolm) {
    step(at, {{"type", "send"}, {"stream_id", stream}, {"algorithm", algorithm}});
  }
  // The case is a documented divergence (docs/compat.md): the engines must
  // differ, first at this step.
  void divergence(std::string compat_row) { divergence_ = std::move(compat_row); }

  json build() {
    json users = json::array();
    for (size_t i = 0; i < users_.size(); ++i) {
      if (unpublished_.count(static_cast<int>(i)) > 0) continue;
      json devices = json::array();
      for (const auto& d : users_[i].devices) {
        json j = {{"device_key", d.key.device_key}, {"fallback_key", d.key.fallback_key}};
        if (d.invalid) j["invalid"] = true;
        devices.push_back(j);
      }
      users.push_back({{"user_id", users_[i].id}, {"devices", devices}});
    }
    json held = json::array();
    for (int i : held_) {
      const auto& s = sessions_[i];
      held.push_back({{"streamId", s.stream}, {"sessionId", s.id}, {"sessionKey", s.key}, {"algorithm", s.algorithm}});
    }
    auto exported = users_[0].devices[0].crypto->export_device();
    json start = {{"user_id", uid(0)},
                  {"device_key", dev(0, 0).device_key},
                  {"fallback_key", dev(0, 0).fallback_key},
                  {"exported_device_pb", crypto::base64_encode(exported.span(), crypto::Base64Padding::kPadded)},
                  {"now_ms", kStartMs},
                  {"streams", streams_},
                  {"users", users},
                  {"members", members_},
                  {"entitlements", entitlements_},
                  {"held", held},
                  {"random", random_},
                  {"ephemeral", ephemeral_},
                  {"ephemeral_timeout_ms", ephemeral_timeout_ms_}};
    std::stable_sort(steps_.begin(), steps_.end(), [](const json& a, const json& b) {
      return a["at_ms"].get<int64_t>() < b["at_ms"].get<int64_t>();
    });
    json sessions = json::array();
    for (const auto& s : sessions_) sessions.push_back(s.id);
    json t = {{"name", name_}, {"section", section_}, {"start", start}, {"steps", steps_}, {"sessions", sessions}};
    if (!note_.empty()) t["note"] = note_;
    if (!divergence_.empty()) t["documented_divergence"] = divergence_;
    return t;
  }

  static constexpr int64_t kStartMs = trace::kTimelineStartMs;

 private:
  void step(int64_t at, json event) { steps_.push_back({{"at_ms", kStartMs + at}, {"event", std::move(event)}}); }

  std::string name_, section_, note_, divergence_;
  std::unique_ptr<crypto::SeededRandom> rng_;
  NoClient no_client_;
  std::vector<User> users_;
  std::set<int> unpublished_;
  std::vector<Session> sessions_;
  std::vector<int> held_;
  json streams_ = json::array(), members_ = json::array(), entitlements_ = json::array(), steps_ = json::array();
  std::vector<uint32_t> random_;
  bool ephemeral_ = true;
  int64_t ephemeral_timeout_ms_ = 30000;
  int events_ = 0;
};

// ---------------------------------------------------------------- the cases

using CaseFn = std::function<json(uint64_t seed)>;
struct Case {
  const char* name;
  CaseFn make;
};

// A channel with us (user 0) and users 1..n joined.
struct Channel {
  Timeline t;
  std::string ch;
  Channel(const char* name, const char* section, int others = 2, const char* kind = "channel")
      : t(name, section, 1) {
    ch = t.stream(kind);
    t.member(ch, 0);
    for (int i = 0; i < others; ++i) t.member(ch, t.user());
  }
};

std::vector<Case> scripted_cases() {
  std::vector<Case> c;
  // ---- 9.1 when a device asks
  c.push_back({"ask_missing_session_ephemeral_first", [](uint64_t) {
                 Channel w("ask_missing_session_ephemeral_first", "9.1 9.3");
                 w.t.session(w.ch, true);
                 int s = w.t.session(w.ch);
                 w.t.event(1000, s);
                 return w.t.build();
               }});
  c.push_back({"ask_as_new_device", [](uint64_t) {
                 Channel w("ask_as_new_device", "9.1 9.2");
                 int s = w.t.session(w.ch);
                 w.t.event(1000, s);
                 return w.t.build();
               }});
  c.push_back({"ask_not_a_member", [](uint64_t) {
                 Timeline t("ask_not_a_member", "9.1", 1);
                 auto ch = t.stream("channel");
                 t.member(ch, t.user());
                 int s = t.session(ch);
                 t.event(1000, s);
                 return t.build();
               }});
  c.push_back({"ask_ignores_on_chain_check", [](uint64_t) {
                 Channel w("ask_ignores_on_chain_check", "9.1 (membership only when asking)");
                 w.t.on_chain(w.ch, 0, false);
                 int s = w.t.session(w.ch);
                 w.t.event(1000, s);
                 return w.t.build();
               }});
  c.push_back({"ask_while_join_pending", [](uint64_t) {
                 Timeline t("ask_while_join_pending", "9.1 8.3", 1);
                 auto ch = t.stream("channel");
                 t.member(ch, 0, "pending_join");
                 t.member(ch, t.user());
                 int s = t.session(ch);
                 t.event(1000, s);
                 return t.build();
               }});
  c.push_back({"ask_again_after_joining", [](uint64_t) {
                 Timeline t("ask_again_after_joining", "9.9", 1);
                 auto ch = t.stream("channel");
                 t.member(ch, t.user());
                 int s = t.session(ch);
                 t.event(1000, s);
                 t.membership(5000, ch, 0, "join");
                 return t.build();
               }});
  // ---- 9.2 building
  c.push_back({"ask_at_most_100_sorted", [](uint64_t) {
                 Channel w("ask_at_most_100_sorted", "9.2");
                 w.t.session(w.ch, true);
                 std::vector<int> s;
                 for (int i = 0; i < 104; ++i) s.push_back(w.t.session(w.ch, false, kMegolm, 1));
                 for (size_t i = 0; i < s.size(); ++i) w.t.event(1000 + static_cast<int64_t>(i), s[i]);
                 return w.t.build();
               }});
  // ---- 9.3 ephemeral first, then stored
  c.push_back({"ephemeral_unanswered_becomes_stored", [](uint64_t) {
                 Channel w("ephemeral_unanswered_becomes_stored", "9.3");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch), b = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.event(1500, b);
                 return w.t.build();
               }});
  c.push_back({"ephemeral_partly_fulfilled", [](uint64_t) {
                 Channel w("ephemeral_partly_fulfilled", "9.3 9.8");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch), b = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.event(1000, b);
                 w.t.fulfill(4000, w.ch, 1, 0, w.t.dev(0, 0).device_key, {w.t.sid(a)}, true);
                 w.t.new_sessions(4100, {a});
                 return w.t.build();
               }});
  c.push_back({"ephemeral_fully_fulfilled", [](uint64_t) {
                 Channel w("ephemeral_fully_fulfilled", "9.3 9.8");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.fulfill(4000, w.ch, 1, 0, w.t.dev(0, 0).device_key, {w.t.sid(a)}, true);
                 w.t.new_sessions(4100, {a});
                 return w.t.build();
               }});
  c.push_back({"ephemeral_conversion_asks_for_all_still_recorded", [](uint64_t) {
                 // Keys arrive by the inbox with no fulfillment seen: the SDK's
                 // conversion still asks for them (no recheck).
                 Channel w("ephemeral_conversion_asks_for_all_still_recorded", "9.3");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch), b = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.event(1000, b);
                 w.t.new_sessions(3000, {a});
                 return w.t.build();
               }});
  c.push_back({"ephemeral_off_stored_at_once", [](uint64_t) {
                 Channel w("ephemeral_off_stored_at_once", "9.3");
                 w.t.options(false);
                 int a = w.t.session(w.ch);
                 w.t.event(1000, a);
                 return w.t.build();
               }});
  // ---- 9.4 stream state
  c.push_back({"stored_fulfillment_rewrites_and_requeues", [](uint64_t) {
                 Channel w("stored_fulfillment_rewrites_and_requeues", "9.4 9.8", 3);
                 int a = w.t.session(w.ch, true), b = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a, b}));
                 w.t.fulfill(1100, w.ch, 2, 1, w.t.dev(1, 0).device_key, {w.t.sid(a)});
                 return w.t.build();
               }});
  c.push_back({"stored_fulfillment_complete_cancels", [](uint64_t) {
                 Channel w("stored_fulfillment_complete_cancels", "9.4 9.8", 3);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 w.t.fulfill(1100, w.ch, 2, 1, w.t.dev(1, 0).device_key, {w.t.sid(a)});
                 return w.t.build();
               }});
  c.push_back({"stored_fulfillment_clears_new_device_flag", [](uint64_t) {
                 Channel w("stored_fulfillment_clears_new_device_flag", "9.4 9.8", 3);
                 int a = w.t.session(w.ch, true), b = w.t.session(w.ch, true);
                 w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a, b}), true);
                 w.t.fulfill(1100, w.ch, 2, 1, w.t.dev(1, 0).device_key, {w.t.sid(a)});
                 return w.t.build();
               }});
  c.push_back({"stored_fulfillment_for_another_user_same_device_key", [](uint64_t) {
                 // The requester is matched by user address and device key.
                 Channel w("stored_fulfillment_for_another_user_same_device_key", "9.4", 3);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 w.t.fulfill(1100, w.ch, 2, 3, w.t.dev(1, 0).device_key, {w.t.sid(a)});
                 return w.t.build();
               }});
  c.push_back({"ephemeral_fulfillment_trims_every_stream", [](uint64_t) {
                 Timeline t("ephemeral_fulfillment_trims_every_stream", "9.8", 1);
                 auto ch1 = t.stream("channel"), ch2 = t.stream("channel");
                 int u1 = t.user(), u2 = t.user();
                 for (const auto& ch : {ch1, ch2}) {
                   t.member(ch, 0);
                   t.member(ch, u1);
                   t.member(ch, u2);
                 }
                 int a = t.session(ch1, true);
                 t.solicit(1000, ch1, u1, 0, t.sids({a}), false, true);
                 t.fulfill(1100, ch2, u2, u1, t.dev(u1, 0).device_key, {t.sid(a)}, true);
                 return t.build();
               }});
  c.push_back({"snapshot_replaces_pending_answers", [](uint64_t) {
                 // Read from a snapshot: the stream's pending stored answers are
                 // replaced, each with a fresh delay; ephemeral ones stay.
                 Channel w("snapshot_replaces_pending_answers", "9.4 10.2", 3);
                 int d = w.t.device(0);
                 int a = w.t.session(w.ch, true), b = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 w.t.solicit(1000, w.ch, 2, 0, w.t.sids({b}), false, true);
                 w.t.solicit(1000, w.ch, 3, 0, {}, true);
                 w.t.solicit(1200, w.ch, 0, d, w.t.sids({a, b}), false, true);
                 w.t.snapshot(1300, w.ch);
                 return w.t.build();
               }});
  c.push_back({"one_device_key_from_two_users", [](uint64_t) {
                 // The SDK queues our own user's stored solicitations apart
                 // from others': one from another user with the same device key
                 // does not replace ours, nor ours theirs.
                 Channel w("one_device_key_from_two_users", "9.5 10.2");
                 int d = w.t.device(0);
                 int a = w.t.session(w.ch, true), b = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({b}), false, false, w.t.dev(0, d));
                 w.t.solicit(1100, w.ch, 0, d, w.t.sids({a}));
                 return w.t.build();
               }});
  c.push_back({"newer_solicitation_replaces", [](uint64_t) {
                 Channel w("newer_solicitation_replaces", "9.4");
                 int a = w.t.session(w.ch, true), b = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 w.t.solicit(1200, w.ch, 1, 0, w.t.sids({b}));
                 return w.t.build();
               }});
  c.push_back({"empty_solicitation_clears", [](uint64_t) {
                 Channel w("empty_solicitation_clears", "9.4");
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 w.t.solicit(1200, w.ch, 1, 0, {});
                 return w.t.build();
               }});
  // ---- 9.5 answering
  c.push_back({"answer_requested_held_only", [](uint64_t) {
                 Channel w("answer_requested_held_only", "9.5 9.6 9.7");
                 int a = w.t.session(w.ch, true), b = w.t.session(w.ch);
                 w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a, b}));
                 return w.t.build();
               }});
  c.push_back({"answer_new_device_everything", [](uint64_t) {
                 Channel w("answer_new_device_everything", "9.5");
                 int a = w.t.session(w.ch, true);
                 w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}), true);
                 return w.t.build();
               }});
  c.push_back({"answer_nothing_to_reply", [](uint64_t) {
                 Channel w("answer_nothing_to_reply", "9.5");
                 w.t.session(w.ch, true);
                 int b = w.t.session(w.ch);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({b}));
                 return w.t.build();
               }});
  c.push_back({"answer_refused_on_chain", [](uint64_t) {
                 Channel w("answer_refused_on_chain", "9.5");
                 int a = w.t.session(w.ch, true);
                 w.t.on_chain(w.ch, 1, false);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 return w.t.build();
               }});
  c.push_back({"answer_refused_after_leaving", [](uint64_t) {
                 Channel w("answer_refused_after_leaving", "9.5");
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}), false, true);
                 w.t.membership(1001, w.ch, 1, "leave");
                 return w.t.build();
               }});
  c.push_back({"answer_dm_invited_participant", [](uint64_t) {
                 Timeline t("answer_dm_invited_participant", "9.5 8.3", 1);
                 auto dm = t.stream("dm");
                 int u = t.user();
                 t.member(dm, 0);
                 t.member(dm, u, "invite");
                 int a = t.session(dm, true);
                 t.solicit(1000, dm, u, 0, t.sids({a}), false, true);
                 return t.build();
               }});
  c.push_back({"answer_own_user_stored_at_once", [](uint64_t) {
                 Channel w("answer_own_user_stored_at_once", "10.1");
                 int d = w.t.device(0);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 0, d, w.t.sids({a}));
                 return w.t.build();
               }});
  c.push_back({"answer_own_user_ephemeral_at_once", [](uint64_t) {
                 Channel w("answer_own_user_ephemeral_at_once", "10.1");
                 int d = w.t.device(0);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 0, d, w.t.sids({a}), false, true);
                 return w.t.build();
               }});
  c.push_back({"answer_user_id_not_an_address", [](uint64_t) {
                 Channel w("answer_user_id_not_an_address", "9.6");
                 int u = w.t.user();
                 w.t.set_user_id(u, "alice");
                 w.t.member(w.ch, u);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, u, 0, w.t.sids({a}), false, true);
                 return w.t.build();
               }});
  // ---- 9.6, 9.7
  c.push_back({"fulfillment_refused_as_duplicate", [](uint64_t) {
                 Channel w("fulfillment_refused_as_duplicate", "9.6", 3);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}), false, true);
                 w.t.fulfill(1050, w.ch, 2, 1, w.t.dev(1, 0).device_key, {w.t.sid(a)}, true);
                 return w.t.build();
               }});
  c.push_back({"shares_grouped_by_first_appearance", [](uint64_t) {
                 Channel w("shares_grouped_by_first_appearance", "9.7");
                 std::vector<int> all;
                 for (int i = 0; i < 3; ++i) all.push_back(w.t.session(w.ch, true, kGrpaes, 1));
                 for (int i = 0; i < 3; ++i) all.push_back(w.t.session(w.ch, true, kMegolm, 1));
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({all[0]}), true);
                 return w.t.build();
               }});
  c.push_back({"shares_in_runs_of_100", [](uint64_t) {
                 Channel w("shares_in_runs_of_100", "9.7");
                 int first = -1;
                 for (int i = 0; i < 130; ++i) {
                   int s = w.t.session(w.ch, true, kMegolm, 1);
                   if (first < 0) first = s;
                 }
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({first}), true);
                 return w.t.build();
               }});
  // ---- 8.3 who receives a new session
  c.push_back({"new_session_to_pending_join_not_invited", [](uint64_t) {
                 Channel w("new_session_to_pending_join_not_invited", "8.3");
                 int p = w.t.user(), i = w.t.user();
                 w.t.member(w.ch, p, "pending_join");
                 w.t.member(w.ch, i, "invite");
                 w.t.send(1000, w.ch);
                 return w.t.build();
               }});
  c.push_back({"new_session_dm_participants", [](uint64_t) {
                 Timeline t("new_session_dm_participants", "8.3", 1);
                 auto dm = t.stream("dm");
                 int u = t.user(), v = t.user();
                 t.member(dm, 0);
                 t.member(dm, u, "invite");
                 t.member(dm, v, "join");
                 t.member(dm, v, "leave");
                 t.send(1000, dm);
                 return t.build();
               }});
  c.push_back({"new_session_ignores_on_chain", [](uint64_t) {
                 Channel w("new_session_ignores_on_chain", "8.3");
                 w.t.on_chain(w.ch, 1, false);
                 w.t.send(1000, w.ch);
                 return w.t.build();
               }});
  c.push_back({"new_session_own_other_devices", [](uint64_t) {
                 Channel w("new_session_own_other_devices", "8.3");
                 w.t.device(0);
                 w.t.send(1000, w.ch, kGrpaes);
                 return w.t.build();
               }});
  c.push_back({"new_session_refused_device", [](uint64_t) {
                 Timeline t("new_session_refused_device", "8.3", 1,
                            "docs/compat.md: a user with one device that olm refuses");
                 auto ch = t.stream("channel");
                 t.member(ch, 0);
                 t.member(ch, t.user(2, true));
                 t.member(ch, t.user());
                 t.send(1000, ch);
                 t.divergence("one refused device in a share");
                 return t.build();
               }});
  // ---- 9.9 asking again
  c.push_back({"already_asked_same_ids", [](uint64_t) {
                 Channel w("already_asked_same_ids", "9.9");
                 w.t.options(false);
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.event(5000, a);
                 w.t.membership(6000, w.ch, 0, "join");
                 return w.t.build();
               }});
  c.push_back({"already_asked_first_match_only", [](uint64_t) {
                 // Our stored solicitation (for a) comes first; our ephemeral
                 // one for b is not looked at.
                 Channel w("already_asked_first_match_only", "9.9");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch), b = w.t.session(w.ch);
                 w.t.solicit(500, w.ch, 0, 0, w.t.sids({a}));
                 w.t.event(1000, b);
                 w.t.membership(2000, w.ch, 0, "join");
                 return w.t.build();
               }});
  c.push_back({"already_asked_counts_own_user_only", [](uint64_t) {
                 // Another member posts a solicitation with our device key: we ask anyway.
                 Channel w("already_asked_counts_own_user_only", "9.9");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch);
                 w.t.solicit(500, w.ch, 1, 0, w.t.sids({a}), true, false, w.t.dev(0, 0));
                 w.t.event(1000, a);
                 return w.t.build();
               }});
  c.push_back({"new_sessions_retry_every_listed_id", [](uint64_t) {
                 Channel w("new_sessions_retry_every_listed_id", "8.4");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch), b = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.event(1000, b);
                 w.t.new_sessions(2000, {a});
                 return w.t.build();
               }});
  c.push_back({"new_sessions_unknown_or_inherited_algorithm", [](uint64_t) {
                 // "constructor" is a property of every JavaScript object: the
                 // SDK's parser compares with the known ids, so it is unknown.
                 Channel w("new_sessions_unknown_or_inherited_algorithm", "8.4");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.new_sessions(2000, {a}, true, 1, "constructor");
                 w.t.new_sessions(2500, {a}, true, 1, "r.group-encryption.v2");
                 w.t.new_sessions(3000, {a}, true, 1, "");
                 return w.t.build();
               }});
  c.push_back({"new_sessions_not_for_this_device", [](uint64_t) {
                 Channel w("new_sessions_not_for_this_device", "8.4");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch);
                 w.t.event(1000, a);
                 w.t.new_sessions(2000, {a}, false);
                 return w.t.build();
               }});
  c.push_back({"decrypt_once_keys_arrive", [](uint64_t) {
                 Channel w("decrypt_once_keys_arrive", "8.4 5.5");
                 int a = w.t.session(w.ch), b = w.t.session(w.ch, false, kGrpaes);
                 w.t.event(1000, a);
                 w.t.event(1000, b);
                 w.t.event(1001, a);
                 w.t.new_sessions(9000, {a});
                 w.t.new_sessions(9500, {b});
                 return w.t.build();
               }});
  // ---- 10 timing
  c.push_back({"delay_grows_with_members", [](uint64_t) {
                 Channel w("delay_grows_with_members", "10.1", 40);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 w.t.solicit(1000, w.ch, 2, 0, w.t.sids({a}), false, true);
                 return w.t.build();
               }});
  c.push_back({"delay_counts_confirmed_joins_only", [](uint64_t) {
                 Channel w("delay_counts_confirmed_joins_only", "10.1", 2);
                 for (int i = 0; i < 12; ++i) w.t.member(w.ch, w.t.user(), "pending_join");
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({a}));
                 return w.t.build();
               }});
  c.push_back({"space_and_gdm_streams", [](uint64_t) {
                 Timeline t("space_and_gdm_streams", "8.3 9.5", 1);
                 auto sp = t.stream("space"), g = t.stream("gdm");
                 int u = t.user(), v = t.user();
                 for (const auto& s : {sp, g}) {
                   t.member(s, 0);
                   t.member(s, u);
                   t.member(s, v, "pending_join");
                 }
                 int a = t.session(g, true);
                 t.solicit(1000, g, v, 0, t.sids({a}));
                 t.send(1500, sp);
                 return t.build();
               }});
  // ---- holes found by mutation testing (docs/exchange-diff.md)
  c.push_back({"delay_draw_for_own_ephemeral", [](uint64_t) {
                 // Our other device's ephemeral solicitation is answered at
                 // once, but the SDK draws its random value all the same: the
                 // next answer's delay takes the next value.
                 Channel w("delay_draw_for_own_ephemeral", "10.1");
                 int d = w.t.device(0);
                 int a = w.t.session(w.ch, true);
                 w.t.solicit(1000, w.ch, 0, d, w.t.sids({a}), false, true);
                 w.t.solicit(1500, w.ch, 1, 0, w.t.sids({a}));
                 return w.t.build();
               }});
  c.push_back({"ephemeral_timeout_option", [](uint64_t) {
                 // Not the default 30 s: the conversion follows the option.
                 Channel w("ephemeral_timeout_option", "9.3");
                 w.t.options(true, 10000);
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch);
                 w.t.event(1000, a);
                 return w.t.build();
               }});
  c.push_back({"already_asked_stored_sorted", [](uint64_t) {
                 // Our device's stored solicitation, posted with its ids out of
                 // order: the stream keeps them sorted, so once both are missing
                 // it asks for exactly them and we do not ask again.
                 Channel w("already_asked_stored_sorted", "9.4 9.9");
                 w.t.session(w.ch, true);
                 int a = w.t.session(w.ch), b = w.t.session(w.ch);
                 auto ids = w.t.sids({a, b});
                 std::sort(ids.rbegin(), ids.rend());
                 w.t.solicit(500, w.ch, 0, 0, ids);
                 w.t.event(1000, a);
                 w.t.event(1000, b);
                 return w.t.build();
               }});
  c.push_back({"shares_grpaes_first_when_it_sorts_first", [](uint64_t) {
                 // The reply's first id in byte order is a grpaes session's: the
                 // grpaes share goes before the megolm one (the diff compares
                 // the order of shares made at one moment).
                 Channel w("shares_grpaes_first_when_it_sorts_first", "9.7");
                 int m = w.t.session(w.ch, true, kMegolm, 1);
                 int g = w.t.session(w.ch, true, kGrpaes, 1);
                 for (int i = 0; i < 50 && !(w.t.sid(g) < w.t.sid(m)); ++i) {
                   m = w.t.session(w.ch, true, kMegolm, 1);
                   g = w.t.session(w.ch, true, kGrpaes, 1);
                 }
                 w.t.solicit(1000, w.ch, 1, 0, w.t.sids({m, g}));
                 return w.t.build();
               }});
  return c;
}

// A random timeline from a seed: several streams, members joining and
// leaving, devices online and offline (their traffic arrives late or not at
// all), new devices, stored and ephemeral solicitations, partial and full
// fulfillments, keys arriving, messages sent.
json random_timeline(uint64_t seed) {
  Timeline t("random-" + std::to_string(seed), "random", seed);
  auto r = [&](size_t n) { return t.pick(n); };
  int n_users = 2 + static_cast<int>(r(4));
  std::vector<int> users;
  for (int i = 0; i < n_users; ++i) users.push_back(t.user(1 + static_cast<int>(r(2))));
  if (r(3) == 0) t.device(0);
  static const char* kinds[] = {"channel", "channel", "gdm", "dm", "space"};
  std::vector<std::string> streams;
  int n_streams = 1 + static_cast<int>(r(3));
  for (int i = 0; i < n_streams; ++i) {
    auto kind = std::string(kinds[r(5)]);
    auto s = t.stream(kind);
    streams.push_back(s);
    t.member(s, 0, r(6) == 0 ? "pending_join" : "join");
    for (int u : users) {
      size_t m = r(6);
      if (m < 3) t.member(s, u);
      if (m == 3) t.member(s, u, "pending_join");
      if (m == 4) t.member(s, u, "invite");
    }
    if (kind == "channel" && r(4) == 0) t.on_chain(s, users[r(users.size())], false);
  }
  if (r(4) == 0) t.options(r(2) == 0, 30000);
  std::map<std::string, std::vector<int>> sessions;
  for (const auto& s : streams) {
    int n = 1 + static_cast<int>(r(5));
    for (int i = 0; i < n; ++i) {
      sessions[s].push_back(t.session(s, r(2) == 0, r(4) == 0 ? kGrpaes : kMegolm, 2));
    }
  }
  auto some = [&](const std::vector<int>& from) {
    std::vector<int> out;
    for (int x : from) {
      if (r(2) == 0) out.push_back(x);
    }
    if (out.empty() && !from.empty()) out.push_back(from[r(from.size())]);
    return out;
  };
  int64_t at = 500;
  int steps = 8 + static_cast<int>(r(20));
  for (int i = 0; i < steps; ++i) {
    // Now and then several inputs at one moment: a backlog, as a device that was
    // offline gets it when it comes back.
    if (i == 0 || r(6) != 0) at += 100 + static_cast<int64_t>(r(r(3) == 0 ? 40000 : 6000));
    const auto& s = streams[r(streams.size())];
    auto& ss = sessions[s];
    int u = users[r(users.size())];
    switch (r(10)) {
      case 0:
      case 1:
      case 2:
        t.event(at, ss[r(ss.size())]);
        break;
      case 3: {
        // One message carries sessions of one algorithm.
        auto list = some(ss);
        auto alg = t.algorithm_of(list[0]);
        std::erase_if(list, [&](int x) { return t.algorithm_of(x) != alg; });
        t.new_sessions(at, list, r(5) != 0, u);
        break;
      }
      case 4:
      case 5: {
        bool ephemeral = r(2) == 0;
        t.solicit(at, s, u, 0, t.sids(some(ss)), r(4) == 0, ephemeral);
        break;
      }
      case 6: {
        bool for_us = r(2) == 0;
        int target = for_us ? 0 : users[r(users.size())];
        auto key = t.dev(target, 0).device_key;
        t.fulfill(at, s, u, target, key, t.sids(some(ss)), r(2) == 0);
        break;
      }
      case 7: {
        static const char* ops[] = {"join", "leave", "pending_join", "invite"};
        t.membership(at, s, r(4) == 0 ? 0 : u, ops[r(4)]);
        break;
      }
      case 8:
        t.send(at, s, r(3) == 0 ? kGrpaes : kMegolm);
        break;
      default:
        if (r(5) == 0) {
          t.snapshot(at, s);
        } else if (r(2) == 0) {
          t.entitlement(at, s, u, r(2) == 0);
        } else {
          // A new device of a member asks as a new device.
          int d = t.device(u);
          t.solicit(at, s, u, d, t.sids(some(ss)), true, r(2) == 0);
        }
        break;
    }
  }
  return t.build();
}

// ---------------------------------------------------------------- peers

// The peer driver: tools/peer.h.

// ---------------------------------------------------------------- comparing

struct Diff {
  bool same = true;
  int64_t first_ms = 0;
  std::string what;
};

// Every output of one engine against the other's: the same outputs, each at
// most kLateMs later in the peer (its engine looks for due work on a timer).
// Reports from the earliest output that has no partner.
Diff compare(const json& ours, const json& theirs, const std::set<std::string>& known) {
  struct Out {
    std::string key;
    int64_t at;
    bool matched = false;
    long partner = -1;  // index of the matching output in the other list
  };
  auto list = [&](const json& l) {
    std::vector<Out> v;
    for (const auto& o : l) v.push_back({normal(o, known).dump(), o.value("at_ms", int64_t{0})});
    std::stable_sort(v.begin(), v.end(), [](const Out& a, const Out& b) { return a.at < b.at; });
    return v;
  };
  auto a = list(ours), b = list(theirs);
  for (auto& x : a) {
    for (size_t j = 0; j < b.size(); ++j) {
      auto& y = b[j];
      if (y.matched || y.key != x.key) continue;
      int64_t late = y.at - x.at;
      if (late < -2 || late > kLateMs) continue;
      x.matched = y.matched = true;
      x.partner = static_cast<long>(j);
      break;
    }
  }
  Diff d;
  int64_t first = INT64_MAX;
  for (const auto& x : a) {
    if (!x.matched) first = std::min(first, x.at);
  }
  for (const auto& y : b) {
    if (!y.matched) first = std::min(first, y.at);
  }
  auto when = [](int64_t t) { return std::to_string(t - Timeline::kStartMs) + " ms"; };
  if (first == INT64_MAX) {
    // Everything matched. The shares to one user made at one moment must also
    // come in the same order (9.7: grouped by algorithm as each first
    // appears). Other outputs, shares to different users (the SDK sends a
    // new session to each user concurrently), and shares holding a session our
    // engine made (its random id sorts anywhere) may differ in order.
    auto share_to = [](const Out& o) {
      auto j = json::parse(o.key);
      if (j.value("kind", "") != "share" || o.key.find("\"new\"") != std::string::npos) return std::string();
      return j.value("to_user_id", "");
    };
    for (size_t i = 0; i < a.size(); ++i) {
      for (size_t j = i + 1; j < a.size() && a[j].at == a[i].at; ++j) {
        auto to = share_to(a[i]);
        if (to.empty() || share_to(a[j]) != to || a[i].partner < a[j].partner) continue;
        d.same = false;
        d.first_ms = a[i].at;
        d.what = "    shares in another order, at " + when(a[i].at) + ": ours sends\n      " + a[i].key +
                 "\n    before\n      " + a[j].key + "\n    the peer after it\n";
        return d;
      }
    }
    return d;
  }
  d.same = false;
  d.first_ms = first;
  for (const auto& x : a) {
    if (!x.matched && x.at <= first + 1000) d.what += "    ours only, at " + when(x.at) + ": " + x.key + "\n";
  }
  for (const auto& y : b) {
    if (!y.matched && y.at <= first + 1000) d.what += "    peer only, at " + when(y.at) + ": " + y.key + "\n";
  }
  return d;
}

struct RunResult {
  bool passed = true;
  bool documented = false;  // a documented divergence, shown
  std::string report;
  json trace;  // the timeline with our outputs after each step (trace vectors)
};

// The peer driver's engine, as the library's timeline runner drives it.
class PeerEngine final : public trace::TimelinePeer {
 public:
  explicit PeerEngine(Peer& peer) : peer_(peer) {}
  void start(const json& start) override {
    json req = start;
    req["cmd"] = "engine_start";
    peer_.ok(req);
  }
  void advance(int64_t to_ms) override { peer_.ok({{"cmd", "engine_advance"}, {"to_ms", to_ms}}); }
  void input(const json& event) override { peer_.ok({{"cmd", "engine_input"}, {"event", event}}); }
  json outputs() override { return peer_.ok({{"cmd", "engine_outputs"}})["outputs"]; }

 private:
  Peer& peer_;
};

// Runs one timeline through our engine (in-process, the library's runner) and
// the peer's, and compares them; when the timeline holds expected outputs (a
// trace), ours must equal them too.
RunResult run_timeline(const json& timeline, Peer* peer, bool verbose) {
  RunResult res;
  std::set<std::string> known;
  for (const auto& id : timeline["sessions"]) known.insert(id.get<std::string>());
  bool expect_divergence = timeline.contains("documented_divergence");
  std::optional<PeerEngine> peer_engine;
  if (peer) peer_engine.emplace(*peer);
  trace::TimelineOptions options;
  options.peer = peer_engine ? &*peer_engine : nullptr;
  options.quiet_ms = kQuietMs;
  if (verbose) {
    options.on_point = [](const std::string& where, const json& mine, const json* theirs) {
      std::printf("  %s: ours %s\n", where.c_str(), mine.dump().c_str());
      if (theirs) std::printf("  %s: peer %s\n", where.c_str(), theirs->dump().c_str());
    };
  }
  auto run = trace::run_timeline(timeline, options);
  res.passed = run.matches;
  res.trace = std::move(run.trace);
  std::string first_diff = run.first_diff;
  if (peer) {
    peer->ok({{"cmd", "engine_stop"}});
    auto d = compare(run.ours, run.theirs, known);
    if (!d.same && first_diff.empty()) {
      std::string after = "the start";
      for (const auto& [t, w] : run.points) {
        if (t <= d.first_ms) after = w;
      }
      first_diff = "  first difference at " + std::to_string(d.first_ms - Timeline::kStartMs) + " ms (after " + after +
                   "):\n" + d.what;
    }
  }

  if (expect_divergence && peer) {
    res.documented = !first_diff.empty();
    if (!res.documented) {
      res.passed = false;
      res.report = "  expected the documented divergence \"" + timeline["documented_divergence"].get<std::string>() +
                   "\" (docs/compat.md) but the engines agree\n";
    } else {
      res.report = "  documented divergence \"" + timeline["documented_divergence"].get<std::string>() + "\":\n" + first_diff;
    }
  } else if (!first_diff.empty()) {
    res.passed = false;
    res.report = first_diff;
  }
  return res;
}

}  // namespace

PeerTraceVerdict replay_trace_through_peer(const json& test, Peer& peer) {
  auto r = run_timeline(test, &peer, false);
  return {r.passed, r.documented, r.report};
}

namespace {

// The traces as a vector file (docs/vectors.md): one keyExchangeTrace group.
json trace_vector_file(const json& traces) {
  json tests = json::array();
  int id = 0;
  for (const auto& tr : traces) {
    json t = {{"tcId", ++id}, {"comment", tr.at("name")}};
    // A documented divergence: the SDK's engine acts otherwise (docs/compat.md).
    t["flags"] = tr.contains("documented_divergence") ? json::array({"ClientDeviation"}) : json::array();
    for (const auto& [k, v] : tr.items()) {
      if (k != "name") t[k] = v;
    }
    t["result"] = "valid";
    tests.push_back(std::move(t));
  }
  return {{"algorithm", "key exchange trace"},
          {"schema", "towns_e2ee_vectors_v1"},
          {"generatorVersion", "towns-e2ee exchange trace"},
          {"numberOfTests", tests.size()},
          {"header",
           {"Timelines of what one device's key exchange engine is given (protocol.md sections 8 to 10) and what it "
            "must do after each input: made by this library's engine, checked against the SDK's engine "
            "(docs/exchange-diff.md). A peer replays them without a driver: start the world, then for each step "
            "advance the clock to at_ms, compare outputs_before, give the event, compare outputs_after; at end_ms "
            "compare outputs_at_end. Session ids the engine made itself read \"new\"; an output may come up to 200 "
            "ms later than at_ms."}},
          {"notes",
           {{"ClientDeviation",
             "The SDK's engine does otherwise on purpose of this library (docs/compat.md); the trace records this "
             "library's behaviour."}}},
          {"testGroups", json::array({{{"type", "keyExchangeTrace"}, {"tests", tests}}})}};
}

int usage() {
  std::fprintf(stderr,
               "usage: towns-e2ee exchange diff [--peer <command>] [--seeds N] [--first-seed N] [--only <case>]\n"
               "                                [--scripted-only] [--random-only] [--verbose]\n"
               "       towns-e2ee exchange trace --out <file> [--seeds N]\n"
               "       towns-e2ee exchange replay <trace file> [--peer <command>]\n"
               "       towns-e2ee exchange list\n");
  return 2;
}

}  // namespace

json make_trace_vectors(int random_seeds) {
  json traces = json::array();
  for (const auto& c : scripted_cases()) traces.push_back(run_timeline(c.make(1), nullptr, false).trace);
  for (int i = 1; i <= random_seeds; ++i) traces.push_back(run_timeline(random_timeline(i), nullptr, false).trace);
  return trace_vector_file(traces);
}

int run_exchange(int argc, char** argv) {
  std::string sub = argc > 2 ? argv[2] : "";
  std::optional<std::string> peer_cmd, only, out, replay;
  int seeds = 50;
  uint64_t first_seed = 1;
  bool scripted = true, random = true, verbose = false;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::INVALID_ARGUMENT, a + " needs a value");
      return argv[++i];
    };
    if (a == "--peer") {
      peer_cmd = next();
    } else if (a == "--seeds") {
      seeds = std::stoi(next());
    } else if (a == "--first-seed") {
      first_seed = std::stoull(next());
    } else if (a == "--only") {
      only = next();
    } else if (a == "--out") {
      out = next();
    } else if (a == "--scripted-only") {
      random = false;
    } else if (a == "--random-only") {
      scripted = false;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (sub == "replay" && !replay) {
      replay = a;
    } else {
      return usage();
    }
  }
  // A slower build (the sanitizer stage of tools/test) caps the random timelines.
  if (const char* cap = std::getenv("TOWNS_EXCHANGE_SEEDS_MAX"); cap != nullptr && *cap != '\0') {
    seeds = std::min(seeds, std::max(0, std::atoi(cap)));
  }
  auto cases = scripted_cases();
  if (sub == "list") {
    for (const auto& c : cases) std::printf("%s\n", c.name);
    return 0;
  }
  if (sub != "diff" && sub != "trace" && sub != "replay") return usage();
  if (sub == "trace" && !out) return usage();
  if (sub == "replay" && !replay) return usage();

  // The timelines, built lazily.
  std::vector<std::function<json()>> timelines;
  if (sub == "replay") {
    std::ifstream f(*replay);
    if (!f) throw Error(ErrorCode::INVALID_ARGUMENT, "cannot read " + *replay);
    json file = json::parse(f);
    for (const auto& g : file.at("testGroups")) {
      if (g.value("type", "") != "keyExchangeTrace") continue;
      for (const auto& t : g.at("tests")) {
        auto timeline = trace::trace_timeline(t);
        timelines.push_back([timeline] { return timeline; });
      }
    }
  } else {
    if (scripted) {
      for (const auto& c : cases) {
        if (only && *only != c.name) continue;
        timelines.push_back([c] { return c.make(1); });
      }
    }
    if (random && !only) {
      for (int i = 0; i < seeds; ++i) {
        uint64_t seed = first_seed + static_cast<uint64_t>(i);
        timelines.push_back([seed] { return random_timeline(seed); });
      }
    }
    if (only && only->rfind("random-", 0) == 0) {
      uint64_t seed = std::stoull(only->substr(7));
      timelines.push_back([seed] { return random_timeline(seed); });
    }
  }

  std::unique_ptr<Peer> peer;
  if (peer_cmd) peer = std::make_unique<Peer>(*peer_cmd);
  size_t passed = 0, failed = 0, documented = 0;
  json traces = json::array();
  auto started = std::chrono::steady_clock::now();
  for (size_t i = 0; i < timelines.size(); ++i) {
    json t = timelines[i]();
    auto name = t["name"].get<std::string>();
    RunResult r;
    try {
      r = run_timeline(t, peer.get(), verbose);
    } catch (const std::exception& e) {
      r.passed = false;
      r.report = std::string("  error: ") + e.what() + "\n";
      if (peer) peer = std::make_unique<Peer>(*peer_cmd);  // a fresh peer for the next case
    }
    if (r.passed) {
      ++passed;
      if (r.documented) ++documented;
    } else {
      ++failed;
    }
    if (!r.passed || r.documented || verbose) {
      std::printf("%s %s [%s]\n%s", r.passed ? (r.documented ? "DOCUMENTED" : "ok") : "FAIL", name.c_str(),
                  t["section"].get<std::string>().c_str(), r.report.c_str());
      if (!r.passed && name.rfind("random-", 0) == 0) {
        std::printf("  replay: towns-e2ee exchange diff --only %s --peer <command> --verbose\n", name.c_str());
      }
    }
    if (sub == "trace") traces.push_back(r.trace);
    if ((i + 1) % 50 == 0) {
      auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count();
      std::fprintf(stderr, "exchange: %zu of %zu timelines [%llds]\n", i + 1, timelines.size(), static_cast<long long>(s));
    }
  }
  if (peer) {
    try {
      peer->request({{"cmd", "quit"}});
    } catch (const PeerError&) {
    }
    peer->stop();
  }
  if (sub == "trace") {
    std::ofstream f(*out);
    f << trace_vector_file(traces).dump(2) << "\n";
  }
  std::printf("%zu passed, %zu failed (%zu documented divergences)\n", passed, failed, documented);
  return failed == 0 ? 0 : 1;
}

}  // namespace towns::tools
