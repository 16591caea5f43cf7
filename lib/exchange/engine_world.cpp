#include "exchange/engine_world.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/crypto/random.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/store/memory_crypto_store.h"

namespace towns::trace {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::INVALID_ARGUMENT, what); }

std::string jstr(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) bad(std::string("missing argument ") + name);
  return it->get<std::string>();
}

template <typename M>
M jpb(const json& j, const char* name) {
  std::vector<uint8_t> bytes;
  try {
    bytes = crypto::base64_decode(jstr(j, name), crypto::Base64Padding::kOptional);
  } catch (const Error&) {
    bad(std::string(name) + " is not base64");
  }
  try {
    return M::decode(bytes);
  } catch (const Error&) {
    bad(std::string(name) + " is not a valid protobuf");
  }
}

enum class StreamKind { kChannel, kSpace, kDm, kGdm };

struct WorldStream {
  StreamKind kind = StreamKind::kChannel;
  std::set<std::string> appended_joins;  // joined or pending join: the members stream state keeps solicitations for
  std::vector<std::string> appended_order;  // the same, in the order they joined (the SDK's Map order)
  std::vector<std::string> joined_order;  // confirmed joins, in order
  std::set<std::string> pending_joined, invited, left;
  std::set<std::string> fulfilled;  // accepted fulfillments, to refuse duplicates
  StreamSolicitations solicitations;
  bool is_joined(const std::string& u) const {
    return std::find(joined_order.begin(), joined_order.end(), u) != joined_order.end();
  }
};

// The timeline's random values, one per response delay: each is handed out as
// the 4 big-endian bytes KeyExchange reads (u / 2^32 is the SDK's Math.random()).
class FedRandom final : public crypto::RandomSource {
 public:
  std::vector<uint32_t> values;
  size_t at = 0;
  void fill(std::span<uint8_t> out) override {
    for (size_t i = 0; i < out.size(); i += 4) {
      uint32_t v = values.empty() ? 0 : values[at++ % values.size()];
      for (size_t k = 0; k < 4 && i + k < out.size(); ++k) out[i + k] = static_cast<uint8_t>(v >> (24 - 8 * k));
    }
  }
};

class FixedClock final : public Clock {
 public:
  int64_t now = 0;
  int64_t now_ms() override { return now; }
};

}  // namespace

struct EngineWorld::Impl final : KeyExchangeHost {
  std::string user_id;
  std::map<std::string, WorldStream> streams;
  std::map<std::string, std::vector<UserDevice>> devices;
  std::map<std::string, bool> on_chain_read;  // stream|user
  FixedClock clock;
  FedRandom random;
  // The device's own draws (a sent message's new session, olm): seeded from the
  // world, so that a timeline gives the same outputs on every run.
  std::unique_ptr<crypto::SeededRandom> device_random;
  MemoryCryptoStore store;
  std::unique_ptr<StreamSessionSharer> sharer;
  std::unique_ptr<GroupEncryptionCrypto> crypto;
  std::unique_ptr<KeyExchange> engine;
  json outputs = json::array();

  WorldStream& stream(const std::string& id) {
    auto it = streams.find(id);
    if (it == streams.end()) bad("unknown stream " + id);
    return it->second;
  }

  void record(json o) {
    o["at_ms"] = clock.now;
    outputs.push_back(std::move(o));
  }

  void apply_membership(const std::string& stream_id, const std::string& user, const std::string& op, bool notify) {
    auto& s = stream(stream_id);
    if (op == "join" || op == "pending_join") {
      if (s.appended_joins.insert(user).second) s.appended_order.push_back(user);
      if (op == "pending_join") {
        s.pending_joined.insert(user);
      } else {
        s.pending_joined.erase(user);
        s.left.erase(user);
        if (!s.is_joined(user)) {
          s.joined_order.push_back(user);
          if (notify && user == user_id) engine->retry_decryption_failures(stream_id);
        }
      }
    } else if (op == "invite") {
      s.invited.insert(user);
    } else if (op == "leave") {
      s.appended_joins.erase(user);
      std::erase(s.appended_order, user);
      s.solicitations.remove_member(user);
      std::erase(s.joined_order, user);
      s.invited.erase(user);
      s.pending_joined.erase(user);
      s.left.insert(user);
    } else {
      bad("unknown membership " + op);
    }
  }

  // The node, for a solicitation from anyone (our engine included).
  void post_solicitation(const std::string& stream_id, const std::string& from,
                         const KeySolicitation& sol, bool ephemeral) {
    auto& s = stream(stream_id);
    if (ephemeral) {
      engine->enqueue_key_solicitation(stream_id, from, sol, true);  // the engine skips its own device
      return;
    }
    if (s.appended_joins.count(from) == 0) return;  // from a non-member: refused
    auto stored = s.solicitations.apply_solicitation(from, sol);
    engine->enqueue_key_solicitation(stream_id, from, stored, false);
  }

  bool post_fulfillment(const std::string& stream_id, const std::string& from,
                        const KeyFulfillment& f, bool ephemeral) {
    auto& s = stream(stream_id);
    auto ids = f.session_ids;
    std::sort(ids.begin(), ids.end());
    std::string key = std::string(ephemeral ? "e" : "s") + "|" + f.device_key;
    for (const auto& id : ids) key += "|" + id;
    if (!s.fulfilled.insert(key).second) return false;
    (void)from;
    if (ephemeral) {
      engine->on_ephemeral_key_fulfillment(stream_id, f);
      return true;
    }
    if (auto updated = s.solicitations.apply_fulfillment(f)) {
      engine->enqueue_key_solicitation(stream_id, updated->user_id, updated->solicitation, false);
    }
    return true;
  }

  // ---- KeyExchangeHost
  void send_key_solicitation(std::string_view stream_id, const KeySolicitation& sol,
                             bool ephemeral) override {
    record({{"kind", "solicitation"},
            {"stream_id", stream_id},
            {"device_key", sol.device_key},
            {"is_new_device", sol.is_new_device},
            {"session_ids", sol.session_ids},
            {"ephemeral", ephemeral}});
    post_solicitation(std::string(stream_id), user_id, sol, ephemeral);
  }
  bool send_key_fulfillment(std::string_view stream_id, const KeyFulfillment& f,
                            bool ephemeral) override {
    bool accepted = post_fulfillment(std::string(stream_id), user_id, f, ephemeral);
    record({{"kind", "fulfillment"},
            {"stream_id", stream_id},
            {"user_id", "0x" + crypto::hex_encode(f.user_address)},
            {"device_key", f.device_key},
            {"session_ids", f.session_ids},
            {"ephemeral", ephemeral},
            {"accepted", accepted}});
    return accepted;
  }
  void send_group_encryption_sessions(std::string_view to_user_id,
                                      const GroupEncryptionSessions& m) override {
    std::vector<std::string> keys;
    for (const auto& [k, v] : m.ciphertexts) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    record({{"kind", "share"},
            {"stream_id", crypto::hex_encode(m.stream_id)},
            {"to_user_id", to_user_id},
            {"algorithm", m.algorithm},
            {"session_ids", m.session_ids},
            {"device_keys", keys}});
  }
  std::vector<UserDevice> user_devices(std::string_view user) override {
    auto it = devices.find(std::string(user));
    return it == devices.end() ? std::vector<UserDevice>{} : it->second;
  }
  std::vector<std::string> stream_members(std::string_view stream_id) override {
    return stream(std::string(stream_id)).joined_order;
  }
  std::vector<std::string> users_entitled_to_key_exchange(std::string_view stream_id) override {
    auto& s = stream(std::string(stream_id));
    std::vector<std::string> out = s.joined_order;
    auto add = [&](const std::set<std::string>& set) {
      for (const auto& u : set) {
        if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(u);
      }
    };
    if (s.kind == StreamKind::kDm) {
      add(s.invited);
      add(s.left);
    } else {
      add(s.pending_joined);
    }
    return out;
  }
  bool is_user_entitled(std::string_view stream_id, std::string_view user) override {
    auto& s = stream(std::string(stream_id));
    if (s.kind != StreamKind::kChannel) return true;
    auto it = on_chain_read.find(std::string(stream_id) + "|" + std::string(user));
    return it == on_chain_read.end() || it->second;
  }
  std::vector<StreamSolicitation> key_solicitations(std::string_view stream_id) override {
    return stream(std::string(stream_id)).solicitations.all();
  }
  MiniblockInfo get_miniblock_info(std::string_view) override { return {1, std::vector<uint8_t>(32, 0)}; }
  void on_decrypted(const EncryptedEvent& e, const DecryptedPayload&) override {
    record({{"kind", "decrypted"}, {"stream_id", e.stream_id}, {"event_id", e.event_id}});
  }
  void on_decryption_error(const EncryptedEvent& e, const Error&, bool missing) override {
    record({{"kind", "decryption_error"}, {"stream_id", e.stream_id}, {"event_id", e.event_id}, {"missing_session", missing}});
  }
};

EngineWorld::EngineWorld(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EngineWorld::~EngineWorld() = default;

std::unique_ptr<EngineWorld> EngineWorld::start(const json& req) {
  auto w = std::make_unique<Impl>();
  w->user_id = jstr(req, "user_id");
  if (req.contains("now_ms")) w->clock.now = req["now_ms"].get<int64_t>();
  for (const auto& s : req.value("streams", json::array())) {
    auto kind = jstr(s, "kind");
    WorldStream ws;
    if (kind == "channel") {
      ws.kind = StreamKind::kChannel;
    } else if (kind == "space") {
      ws.kind = StreamKind::kSpace;
    } else if (kind == "dm") {
      ws.kind = StreamKind::kDm;
    } else if (kind == "gdm") {
      ws.kind = StreamKind::kGdm;
    } else {
      bad("unknown stream kind " + kind);
    }
    w->streams.emplace(jstr(s, "stream_id"), std::move(ws));
  }
  for (const auto& u : req.value("users", json::array())) {
    auto& list = w->devices[jstr(u, "user_id")];
    for (const auto& d : u.value("devices", json::array())) list.push_back({jstr(d, "device_key"), jstr(d, "fallback_key")});
  }
  for (const auto& e : req.value("entitlements", json::array())) {
    w->on_chain_read[jstr(e, "stream_id") + "|" + jstr(e, "user_id")] = e.value("read", false);
  }
  for (const auto& v : req.value("random", json::array())) w->random.values.push_back(v.get<uint32_t>());

  // The device: the timeline's exported device, imported as it is.
  std::vector<uint8_t> exported;
  try {
    exported = crypto::base64_decode(jstr(req, "exported_device_pb"), crypto::Base64Padding::kOptional);
  } catch (const Error&) {
    bad("exported_device_pb is not base64");
  }
  w->sharer = std::make_unique<StreamSessionSharer>(*w);
  auto device_seed = crypto::sha256(std::span<const uint8_t>(exported));
  w->device_random = std::make_unique<crypto::SeededRandom>(device_seed);
  w->crypto = std::make_unique<GroupEncryptionCrypto>(w->sharer.get(), w->store, *w->device_random);
  crypto::SecretBytes device{std::span<const uint8_t>(exported)};
  crypto::wipe(exported.data(), exported.size());
  w->crypto->init({.pickle_key = crypto::SecretBytes(std::string("DEFAULT_KEY")), .from_exported_device = std::move(device)});
  w->sharer->bind(*w->crypto);
  if (w->crypto->get_user_device().device_key != jstr(req, "device_key")) bad("device_key is not the exported device's");

  std::vector<GroupEncryptionSession> held;
  for (const auto& s : req.value("held", json::array())) {
    held.push_back({jstr(s, "streamId"), jstr(s, "sessionId"), crypto::SecretBytes(jstr(s, "sessionKey")), jstr(s, "algorithm")});
  }
  for (const auto& s : held) {
    auto r = w->crypto->import_session_keys(s.stream_id, {s});
    if (!r.failed.empty()) bad("held session " + s.session_id + " does not import");
  }

  KeyExchangeOptions options;
  options.ephemeral_solicitations = req.value("ephemeral", true);
  options.ephemeral_timeout_ms = req.value("ephemeral_timeout_ms", int64_t{30000});
  w->engine = std::make_unique<KeyExchange>(*w->crypto, *w, w->user_id, w->clock, w->random, options);
  for (const auto& m : req.value("members", json::array())) {
    w->apply_membership(jstr(m, "stream_id"), jstr(m, "user_id"), jstr(m, "membership"), false);
  }
  w->engine->run();
  return std::unique_ptr<EngineWorld>(new EngineWorld(std::move(w)));
}

void EngineWorld::input(const json& req) {
  auto& w = *impl_;
  auto it = req.find("event");
  if (it == req.end() || !it->is_object()) bad("missing event");
  const auto& ev = *it;
  auto type = jstr(ev, "type");
  if (type == "membership") {
    w.apply_membership(jstr(ev, "stream_id"), jstr(ev, "user_id"), jstr(ev, "membership"), true);
  } else if (type == "encrypted") {
    w.engine->enqueue_encrypted_content(
        {jstr(ev, "stream_id"), jstr(ev, "event_id"), jpb<EncryptedData>(ev, "encrypted_data_pb")});
  } else if (type == "new_sessions") {
    w.engine->enqueue_new_group_sessions(
        jpb<GroupEncryptionSessions>(ev, "group_encryption_sessions_pb"));
  } else if (type == "solicitation") {
    w.post_solicitation(jstr(ev, "stream_id"), jstr(ev, "user_id"),
                        jpb<KeySolicitation>(ev, "key_solicitation_pb"), ev.value("ephemeral", false));
  } else if (type == "fulfillment") {
    w.post_fulfillment(jstr(ev, "stream_id"), jstr(ev, "user_id"),
                       jpb<KeyFulfillment>(ev, "key_fulfillment_pb"), ev.value("ephemeral", false));
  } else if (type == "snapshot") {
    // The stream read again from a snapshot: its stored solicitations, member by
    // member in join order.
    auto stream = jstr(ev, "stream_id");
    auto& s = w.stream(stream);
    auto all = s.solicitations.all();
    std::vector<StreamSolicitation> ordered;
    for (const auto& member : s.appended_order) {
      for (const auto& x : all) {
        if (x.user_id == member) ordered.push_back(x);
      }
    }
    w.engine->enqueue_init_key_solicitations(stream, ordered);
  } else if (type == "entitlement") {
    w.on_chain_read[jstr(ev, "stream_id") + "|" + jstr(ev, "user_id")] = ev.value("read", false);
  } else if (type == "send") {
    auto stream = jstr(ev, "stream_id");
    auto algorithm = parse_group_encryption_algorithm(jstr(ev, "algorithm"), std::nullopt);
    if (!algorithm) bad("unknown algorithm");
    static const std::vector<uint8_t> kMessage{'h', 'i'};
    (void)w.crypto->encrypt_group_event(stream, kMessage, *algorithm);
  } else {
    bad("unknown event type " + type);
  }
  w.engine->run();
}

void EngineWorld::advance(const json& req) {
  auto& w = *impl_;
  int64_t to = req.at("to_ms").get<int64_t>();
  if (to < w.clock.now) bad("to_ms is before now");
  // Step through every moment something is due, in order.
  for (;;) {
    w.engine->run();
    auto next = w.engine->next_due_ms();
    if (!next || *next > to) break;
    w.clock.now = std::max(w.clock.now, *next);
  }
  w.clock.now = to;
  w.engine->run();
}

json EngineWorld::take_outputs() {
  json out = std::move(impl_->outputs);
  impl_->outputs = json::array();
  return out;
}

json EngineWorld::next_due() const {
  auto next = impl_->engine->next_due_ms();
  return next ? json(*next) : json(nullptr);
}

}  // namespace towns::trace
