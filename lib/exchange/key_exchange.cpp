#include "towns/exchange/key_exchange.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "towns/crypto/encoding.h"
#include "towns/protocol/inputs.h"
#include "towns/error.h"

namespace towns {
namespace {

constexpr size_t kMaxSolicitationIds = 100;
constexpr size_t kMaxSessionsPerShare = 100;

class SystemClock final : public Clock {
 public:
  int64_t now_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// The user address of a user id ("0x" optional and 40 hex digits); std::nullopt
// when it is not one: the SDK's userIdToAddress throws and nothing is sent.
std::optional<Bytes> user_address_bytes(std::string_view user_id) {
  if (!is_valid_user_id(user_id)) return std::nullopt;
  try {
    auto b = crypto::hex_decode(user_id);
    if (b.empty()) return std::nullopt;
    return Bytes(b.begin(), b.end());
  } catch (const Error&) {
    return std::nullopt;
  }
}

bool contains(const std::vector<std::string>& list, std::string_view x) {
  return std::find(list.begin(), list.end(), x) != list.end();
}

// The size of a message on the wire (the stats count protobuf bytes).
template <typename Message>
size_t message_size(const Message& m) {
  return m.encode().size();
}

}  // namespace

Clock& system_clock() {
  static SystemClock clock;
  return clock;
}

// ---- StreamSessionSharer

void StreamSessionSharer::encrypt_and_share_group_sessions_to_stream(
    std::string_view stream_id, const std::vector<GroupEncryptionSession>& sessions, GroupEncryptionAlgorithm algorithm,
    const std::vector<std::string>& priority_user_ids) {
  if (crypto_ == nullptr) throw Error(ErrorCode::NOT_INITIALIZED, "StreamSessionSharer is not bound to a device");
  auto users = host_.users_entitled_to_key_exchange(stream_id);
  // The SDK sorts by the index in the priority list: users not in it (-1) first.
  auto rank = [&](const std::string& u) {
    auto it = std::find(priority_user_ids.begin(), priority_user_ids.end(), u);
    return it == priority_user_ids.end() ? -1 : static_cast<long>(it - priority_user_ids.begin());
  };
  std::stable_sort(users.begin(), users.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  for (const auto& member : users) {
    auto devices = host_.user_devices(member);
    if (devices.empty()) continue;
    auto plan = build_group_encryption_sessions(*crypto_, stream_id, algorithm, sessions, devices);
    if (plan.message.ciphertexts.empty()) continue;
    host_.send_group_encryption_sessions(member, plan.message);
  }
}

// ---- StreamSolicitations

KeySolicitation StreamSolicitations::apply_solicitation(
    std::string_view user_id, const KeySolicitation& s) {
  auto member = std::find_if(members_.begin(), members_.end(), [&](const auto& m) { return m.first == user_id; });
  if (member == members_.end()) {
    members_.emplace_back(std::string(user_id), std::vector<KeySolicitation>{});
    member = members_.end() - 1;
  }
  auto& list = member->second;
  std::erase_if(list, [&](const auto& x) { return x.device_key == s.device_key; });
  KeySolicitation stored = s;
  std::sort(stored.session_ids.begin(), stored.session_ids.end());
  list.push_back(stored);
  return stored;
}

std::optional<StreamSolicitation> StreamSolicitations::apply_fulfillment(const KeyFulfillment& f) {
  for (auto& [member, list] : members_) {
    // Member ids compare as addresses: "0x" optional, any case.
    auto bytes = user_address_bytes(member);
    if (!bytes || *bytes != f.user_address) continue;
    for (auto& s : list) {
      if (s.device_key != f.device_key) continue;
      // The SDK's removeCommon over the sorted lists.
      std::set<std::string> done(f.session_ids.begin(), f.session_ids.end());
      KeySolicitation updated;
      updated.device_key = s.device_key;
      updated.fallback_key = s.fallback_key;
      updated.is_new_device = false;
      for (const auto& id : s.session_ids) {
        if (done.count(id) == 0) updated.session_ids.push_back(id);
      }
      s = updated;
      return StreamSolicitation{member, updated};
    }
    return std::nullopt;
  }
  return std::nullopt;
}

void StreamSolicitations::remove_member(std::string_view user_id) {
  std::erase_if(members_, [&](const auto& m) { return m.first == user_id; });
}

std::vector<StreamSolicitation> StreamSolicitations::all() const {
  std::vector<StreamSolicitation> out;
  for (const auto& [member, list] : members_) {
    for (const auto& s : list) out.push_back({member, s});
  }
  return out;
}

// ---- KeyExchange

KeyExchange::KeyExchange(GroupEncryptionCrypto& crypto, KeyExchangeHost& host, std::string user_id, Clock& clock,
                         crypto::RandomSource& rng, KeyExchangeOptions options)
    : crypto_(crypto),
      host_(host),
      user_id_(std::move(user_id)),
      clock_(clock),
      rng_(rng),
      options_(options),
      device_(crypto.get_user_device()) {}

void KeyExchange::enqueue_encrypted_content(EncryptedEvent event) { encrypted_.push_back(std::move(event)); }

void KeyExchange::enqueue_new_group_sessions(GroupEncryptionSessions sessions) {
  new_sessions_.push_back(std::move(sessions));
}

void KeyExchange::enqueue_key_solicitation(std::string_view stream_id, std::string_view from_user_id,
                                           const KeySolicitation& solicitation, bool ephemeral,
                                           std::string_view event_hash) {
  if (solicitation.device_key == device_.device_key) return;
  // The SDK keeps three queues (ephemeral ones; our own user's stored ones;
  // others' stored ones, per stream) and replaces by stream and device key
  // within the queue the new one goes to.
  bool own = from_user_id == user_id_;
  std::erase_if(solicitations_, [&](const KeySolicitationItem& x) {
    return x.stream_id == stream_id && x.ephemeral == ephemeral && (ephemeral || (x.from_user_id == user_id_) == own) &&
           x.solicitation.device_key == solicitation.device_key;
  });
  if (solicitation.session_ids.empty() && !solicitation.is_new_device) return;
  push_solicitation(stream_id, from_user_id, solicitation, ephemeral, event_hash);
}

void KeyExchange::push_solicitation(std::string_view stream_id, std::string_view from_user_id,
                                    const KeySolicitation& solicitation, bool ephemeral,
                                    std::string_view event_hash) {
  KeySolicitationItem item;
  item.stream_id = std::string(stream_id);
  item.from_user_id = std::string(from_user_id);
  item.solicitation = solicitation;
  item.event_hash = std::string(event_hash);
  item.ephemeral = ephemeral;
  item.respond_after_ms = clock_.now_ms() + respond_delay_ms(stream_id, from_user_id, ephemeral);
  // The SDK answers our own user's stored solicitations at once (its queue of
  // them ignores the delay it computed).
  if (!ephemeral && from_user_id == user_id_) item.respond_after_ms = clock_.now_ms();
  solicitations_.push_back(std::move(item));
}

void KeyExchange::enqueue_init_key_solicitations(std::string_view stream_id,
                                                 const std::vector<StreamSolicitation>& stored) {
  std::erase_if(solicitations_, [&](const KeySolicitationItem& x) { return x.stream_id == stream_id && !x.ephemeral; });
  for (const auto& s : stored) {
    // The SDK skips one without ids here even when it is a new device's.
    if (s.solicitation.device_key == device_.device_key || s.solicitation.session_ids.empty()) continue;
    push_solicitation(stream_id, s.user_id, s.solicitation, false, {});
  }
}

void KeyExchange::on_ephemeral_key_fulfillment(std::string_view stream_id,
                                               const KeyFulfillment& f) {
  std::set<std::string> fulfilled(f.session_ids.begin(), f.session_ids.end());
  if (f.device_key == device_.device_key) {
    auto it = own_ephemeral_.find(std::string(stream_id));
    if (it != own_ephemeral_.end()) {
      for (auto& s : it->second) {
        for (const auto& id : fulfilled) s.missing.erase(id);
      }
      std::erase_if(it->second, [](const OwnEphemeral& s) { return s.missing.empty(); });
      if (it->second.empty()) own_ephemeral_.erase(it);
    }
  }
  // Pending ephemeral answers to that device, on every stream (the SDK does
  // not look at the stream here); their time to answer stays.
  for (auto& item : solicitations_) {
    if (!item.ephemeral || item.solicitation.device_key != f.device_key) continue;
    auto* ids = &item.solicitation.session_ids;
    ids->erase(std::remove_if(ids->begin(), ids->end(), [&](const std::string& id) { return fulfilled.count(id) > 0; }),
               ids->end());
  }
  std::erase_if(solicitations_, [&](const KeySolicitationItem& x) {
    return x.ephemeral && x.solicitation.device_key == f.device_key && x.solicitation.session_ids.empty();
  });
}

void KeyExchange::retry_decryption_failures(std::string_view stream_id) {
  auto it = failures_.find(std::string(stream_id));
  if (it != failures_.end() && !it->second.empty()) missing_keys_streams_.insert(std::string(stream_id));
}

int64_t KeyExchange::respond_delay_ms(std::string_view stream_id, std::string_view from_user_id, bool ephemeral) {
  if (!options_.respond_delay) return 0;
  bool own_user = from_user_id == user_id_;
  auto members = static_cast<int64_t>(host_.stream_members(stream_id).size());
  int64_t max_wait_s = std::max<int64_t>(5, std::min<int64_t>(30, members));
  uint8_t r[4];
  rng_.fill(r);  // drawn in every case, as the SDK draws Math.random()
  if (ephemeral && own_user) return 0;
  double unit = static_cast<double>((uint32_t{r[0]} << 24) | (uint32_t{r[1]} << 16) | (uint32_t{r[2]} << 8) | r[3]) /
                4294967296.0;
  double delay = static_cast<double>(max_wait_s) * 1000.0 * unit * (own_user ? 0.5 : 1.0);
  if (ephemeral) delay /= 2;
  // The SDK answers at the first whole millisecond not before now + delay.
  return static_cast<int64_t>(std::ceil(delay));
}

bool KeyExchange::tick() {
  if (!new_sessions_.empty()) {
    // The whole inbox backlog with one durable write.
    std::vector<GroupEncryptionSessions> batch(std::make_move_iterator(new_sessions_.begin()),
                                               std::make_move_iterator(new_sessions_.end()));
    new_sessions_.clear();
    auto results = receive_group_encryption_sessions_batch(crypto_, batch);
    for (size_t i = 0; i < batch.size(); ++i) {
      // A forged or damaged message imported nothing; it is not retried.
      if (results[i].value) process_new_group_sessions(batch[i], *results[i].value);
    }
    return true;
  }
  if (!encrypted_.empty()) {
    auto e = std::move(encrypted_.front());
    encrypted_.pop_front();
    process_encrypted(e);
    return true;
  }
  int64_t now = clock_.now_ms();
  for (auto& [stream, list] : own_ephemeral_) {
    for (const auto& s : list) {
      if (s.convert_at_ms <= now) {
        std::string id = stream;  // convert_ephemeral erases the entry
        convert_ephemeral(id);
        return true;
      }
    }
  }
  if (!missing_keys_streams_.empty()) {
    auto stream = *missing_keys_streams_.begin();
    missing_keys_streams_.erase(missing_keys_streams_.begin());
    process_missing_keys(stream);
    return true;
  }
  auto due = solicitations_.end();
  for (auto it = solicitations_.begin(); it != solicitations_.end(); ++it) {
    if (it->respond_after_ms <= now && (due == solicitations_.end() || it->respond_after_ms < due->respond_after_ms)) {
      due = it;
    }
  }
  if (due != solicitations_.end()) {
    auto item = std::move(*due);
    solicitations_.erase(due);
    process_key_solicitation(item);
    return true;
  }
  return false;
}

size_t KeyExchange::run() {
  size_t n = 0;
  while (tick()) ++n;
  return n;
}

std::optional<int64_t> KeyExchange::next_due_ms() const {
  if (!new_sessions_.empty() || !encrypted_.empty() || !missing_keys_streams_.empty()) return clock_.now_ms();
  std::optional<int64_t> next;
  auto consider = [&](int64_t t) { next = next ? std::min(*next, t) : t; };
  for (const auto& s : solicitations_) consider(s.respond_after_ms);
  for (const auto& [stream, list] : own_ephemeral_) {
    for (const auto& s : list) consider(s.convert_at_ms);
  }
  return next;
}

KeyExchangeStatus KeyExchange::status() const {
  if (!new_sessions_.empty() || !encrypted_.empty() || !missing_keys_streams_.empty()) return KeyExchangeStatus::kWorking;
  if (!solicitations_.empty() || !own_ephemeral_.empty()) return KeyExchangeStatus::kWaiting;
  return KeyExchangeStatus::kIdle;
}

std::vector<std::string> KeyExchange::missing_session_ids(std::string_view stream_id) const {
  std::vector<std::string> out;
  auto it = failures_.find(std::string(stream_id));
  if (it == failures_.end()) return out;
  for (const auto& [id, events] : it->second) out.push_back(id);
  return out;
}

size_t KeyExchange::pending_solicitations() const { return solicitations_.size(); }

size_t KeyExchange::waiting_events() const {
  size_t n = 0;
  for (const auto& [stream, by_session] : failures_) {
    for (const auto& [id, events] : by_session) n += events.size();
  }
  return n;
}

void KeyExchange::process_new_group_sessions(const GroupEncryptionSessions& message,
                                             const ReceiveResult& result) {
  stats_.sessions_imported += result.imported.size();
  // Not for this device or of an unknown algorithm: the SDK stops there.
  if (result.status == ReceiveStatus::kNotForThisDevice || result.status == ReceiveStatus::kUnknownAlgorithm) return;
  auto stream_failures = failures_.find(result.stream_id);
  if (stream_failures == failures_.end()) return;
  // Retry the events waiting on any listed session, held now or not (the SDK
  // retries them all; one still missing fails again and is asked for again).
  for (const auto& id : message.session_ids) {
    auto waiting = stream_failures->second.find(id);
    if (waiting == stream_failures->second.end()) continue;
    for (auto& e : waiting->second) encrypted_.push_back(std::move(e));
    stream_failures->second.erase(waiting);
  }
  if (stream_failures->second.empty()) failures_.erase(stream_failures);
}

void KeyExchange::process_encrypted(const EncryptedEvent& event) {
  try {
    auto plain = crypto_.decrypt_group_event(event.stream_id, event.data);
    ++stats_.decrypted;
    host_.on_decrypted(event, plain);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::SESSION_NOT_FOUND) {
      ++stats_.decryption_errors;
      host_.on_decryption_error(event, e, false);
      return;
    }
    std::string session_id = !event.data.session_id.empty() ? event.data.session_id
                                                            : crypto::hex_encode(event.data.session_id_bytes);
    if (session_id.empty()) {  // nothing to ask for (the SDK logs and drops it too)
      ++stats_.decryption_errors;
      host_.on_decryption_error(event, e, false);
      return;
    }
    auto& waiting = failures_[event.stream_id][session_id];
    bool known = std::any_of(waiting.begin(), waiting.end(),
                             [&](const EncryptedEvent& w) { return w.event_id == event.event_id; });
    if (!known) waiting.push_back(event);
    missing_keys_streams_.insert(event.stream_id);
    ++stats_.decryption_failures;
    host_.on_decryption_error(event, e, true);
  }
}

void KeyExchange::process_missing_keys(const std::string& stream_id) {
  auto it = failures_.find(stream_id);
  if (it == failures_.end() || it->second.empty()) return;
  std::vector<std::string> ids;
  for (const auto& [id, events] : it->second) ids.push_back(id);
  // Membership only: the SDK skips the on-chain check when asking.
  if (!contains(host_.users_entitled_to_key_exchange(stream_id), user_id_)) return;
  // Pending: our own user's stored solicitations on the stream, then our
  // ephemeral ones (the SDK's getKeySolicitations); the first with our device
  // key decides.
  std::vector<KeySolicitation> pending;
  for (auto& posted : host_.key_solicitations(stream_id)) {
    if (posted.user_id == user_id_ && posted.solicitation.device_key == device_.device_key) {
      pending.push_back(std::move(posted.solicitation));
    }
  }
  auto own = own_ephemeral_.find(stream_id);
  if (own != own_ephemeral_.end()) {
    for (const auto& e : own->second) {
      KeySolicitation s;
      s.device_key = device_.device_key;
      s.is_new_device = e.is_new_device;
      s.session_ids.assign(e.missing.begin(), e.missing.end());
      pending.push_back(std::move(s));
    }
  }
  auto solicitation = build_key_solicitation(crypto_, stream_id, std::move(ids), pending);
  if (solicitation) send_solicitation(stream_id, *solicitation, options_.ephemeral_solicitations);
}

void KeyExchange::send_solicitation(const std::string& stream_id, const KeySolicitation& s,
                                    bool ephemeral) {
  if (ephemeral) {
    own_ephemeral_[stream_id].push_back({s.is_new_device, std::set<std::string>(s.session_ids.begin(), s.session_ids.end()),
                                         clock_.now_ms() + options_.ephemeral_timeout_ms});
  }
  ++stats_.solicitations_sent;
  stats_.bytes_sent += message_size(s);
  host_.send_key_solicitation(stream_id, s, ephemeral);
}

void KeyExchange::convert_ephemeral(const std::string& stream_id) {
  auto it = own_ephemeral_.find(stream_id);
  if (it == own_ephemeral_.end()) return;
  std::set<std::string> all;
  bool is_new_device = false;
  for (const auto& s : it->second) {
    all.insert(s.missing.begin(), s.missing.end());
    is_new_device = is_new_device || s.is_new_device;
  }
  own_ephemeral_.erase(it);
  // As the SDK: every id its ephemeral records still miss (ephemeral
  // fulfillments trimmed them), sorted, with no cap and no recheck of what has
  // arrived since.
  KeySolicitation s;
  s.device_key = device_.device_key;
  s.fallback_key = device_.fallback_key;
  s.is_new_device = is_new_device;
  s.session_ids.assign(all.begin(), all.end());
  send_solicitation(stream_id, s, false);
}

void KeyExchange::process_key_solicitation(const KeySolicitationItem& item) {
  if (item.solicitation.session_ids.empty()) return;
  if (!host_.is_valid_event(item)) return;
  auto answer = plan_solicitation_answer(crypto_, item.stream_id, item.from_user_id, item.solicitation, [&] {
    return contains(host_.users_entitled_to_key_exchange(item.stream_id), item.from_user_id) &&
           host_.is_user_entitled(item.stream_id, item.from_user_id);
  });
  if (!answer) return;
  stats_.bytes_sent += message_size(answer->fulfillment);
  if (!host_.send_key_fulfillment(item.stream_id, answer->fulfillment, item.ephemeral)) {
    ++stats_.fulfillments_refused;
  } else {
    ++stats_.fulfillments_sent;
    UserDevice target{item.solicitation.device_key, item.solicitation.fallback_key};
    for (const auto& share : build_solicitation_shares(crypto_, item.stream_id, target, answer->sessions)) {
      ++stats_.shares_sent;
      stats_.bytes_sent += message_size(share);
      host_.send_group_encryption_sessions(item.from_user_id, share);
    }
  }
}

// ---- the decision rules

std::optional<SolicitationDecision> decide_key_solicitation(
    std::vector<std::string> missing, size_t held_session_count,
    const std::vector<KeySolicitation>& pending_own) {
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (missing.size() > kMaxSolicitationIds) missing.resize(kMaxSolicitationIds);
  if (missing.empty()) return std::nullopt;
  if (!pending_own.empty()) {
    // The SDK compares as given (stored ones are kept sorted).
    const auto& p = pending_own.front();
    if (p.is_new_device || p.session_ids == missing) return std::nullopt;
  }
  return SolicitationDecision{held_session_count == 0, std::move(missing)};
}

std::optional<KeySolicitation> build_key_solicitation(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, std::vector<std::string> missing,
    const std::vector<KeySolicitation>& pending_own) {
  auto decision = decide_key_solicitation(std::move(missing), crypto.get_group_session_ids(stream_id).size(), pending_own);
  if (!decision) return std::nullopt;
  auto device = crypto.get_user_device();
  KeySolicitation s;
  s.device_key = device.device_key;
  s.fallback_key = device.fallback_key;
  s.is_new_device = decision->is_new_device;
  s.session_ids = decision->session_ids;
  return s;
}

std::optional<AnswerDecision> decide_solicitation_answer(const std::map<std::string, GroupEncryptionAlgorithm>& known,
                                                         std::string_view own_device_key,
                                                         const KeySolicitation& sol,
                                                         bool requester_entitled) {
  if (sol.device_key == own_device_key || sol.session_ids.empty()) return std::nullopt;
  std::set<std::string> requested(sol.session_ids.begin(), sol.session_ids.end());
  std::vector<std::string> reply;  // std::map: sorted
  for (const auto& [id, algorithm] : known) {
    if (sol.is_new_device || requested.count(id) > 0) reply.push_back(id);
  }
  if (reply.empty() || !requester_entitled) return std::nullopt;
  AnswerDecision d;
  for (const auto& id : reply) {
    if (requested.count(id) > 0) d.fulfilled_session_ids.push_back(id);
  }
  if (d.fulfilled_session_ids.empty()) d.fulfilled_session_ids = reply;
  std::vector<GroupEncryptionAlgorithm> order;  // as each first appears in the reply
  for (const auto& id : reply) {
    if (std::find(order.begin(), order.end(), known.at(id)) == order.end()) order.push_back(known.at(id));
  }
  for (auto algorithm : order) {
    std::vector<std::string> ids;
    for (const auto& id : reply) {
      if (known.at(id) == algorithm) ids.push_back(id);
    }
    for (size_t start = 0; start < ids.size(); start += kMaxSessionsPerShare) {
      size_t end = std::min(ids.size(), start + kMaxSessionsPerShare);
      d.shares.push_back({algorithm, std::vector<std::string>(ids.begin() + static_cast<ptrdiff_t>(start),
                                                              ids.begin() + static_cast<ptrdiff_t>(end))});
    }
  }
  return d;
}

std::optional<SolicitationAnswer> plan_solicitation_answer(GroupEncryptionCrypto& crypto, std::string_view stream_id,
                                                           std::string_view from_user_id,
                                                           const KeySolicitation& sol,
                                                           const std::function<bool()>& is_entitled) {
  auto own = crypto.get_user_device().device_key;
  if (sol.device_key == own || sol.session_ids.empty()) return std::nullopt;
  auto address = user_address_bytes(from_user_id);
  if (!address) return std::nullopt;  // the SDK throws on a user id that is not an address
  std::map<std::string, GroupEncryptionAlgorithm> known;
  for (auto algorithm : {GroupEncryptionAlgorithm::kGroupEncryption, GroupEncryptionAlgorithm::kHybridGroupEncryption}) {
    for (const auto& id : crypto.group_session_ids(stream_id, algorithm)) {
      known.emplace(id, algorithm);
    }
  }
  // Entitlement is asked only when there is something to reply with (it may be
  // an expensive check for the host).
  auto probe = decide_solicitation_answer(known, own, sol, true);
  if (!probe || !is_entitled()) return std::nullopt;
  SolicitationAnswer answer;
  std::vector<std::string> wanted;
  for (const auto& [algorithm, ids] : probe->shares) wanted.insert(wanted.end(), ids.begin(), ids.end());
  // Exported side by side (a new device asks for every session of the stream).
  answer.sessions = crypto.export_group_sessions(stream_id, wanted);
  if (answer.sessions.empty()) return std::nullopt;
  // Recompute over what could actually be exported.
  std::map<std::string, GroupEncryptionAlgorithm> exported;
  for (const auto& s : answer.sessions) exported.emplace(s.session_id, *parse_group_encryption_algorithm(s.algorithm));
  auto decision = decide_solicitation_answer(exported, own, sol, true);
  auto& f = answer.fulfillment;
  f.user_address = *address;
  f.device_key = sol.device_key;
  f.session_ids = decision->fulfilled_session_ids;
  return answer;
}

std::vector<GroupEncryptionSessions> build_solicitation_shares(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, const UserDevice& requester,
    const std::vector<GroupEncryptionSession>& sessions) {
  std::vector<GroupEncryptionSessions> out;
  std::vector<GroupEncryptionAlgorithm> order;  // as each first appears (the SDK groups by first appearance)
  for (const auto& s : sessions) {
    auto a = parse_group_encryption_algorithm(s.algorithm);
    if (a && std::find(order.begin(), order.end(), *a) == order.end()) order.push_back(*a);
  }
  for (auto algorithm : order) {
    std::vector<GroupEncryptionSession> of_algorithm;
    for (const auto& s : sessions) {
      if (s.algorithm == algorithm_id(algorithm)) of_algorithm.push_back(s);
    }
    std::vector<std::vector<GroupEncryptionSession>> chunks;
    for (size_t start = 0; start < of_algorithm.size(); start += kMaxSessionsPerShare) {
      size_t end = std::min(of_algorithm.size(), start + kMaxSessionsPerShare);
      chunks.emplace_back(of_algorithm.begin() + static_cast<ptrdiff_t>(start),
                          of_algorithm.begin() + static_cast<ptrdiff_t>(end));
    }
    // The chunks' olm messages side by side (each is its own olm session).
    for (auto& plan : build_group_encryption_session_chunks(crypto, stream_id, algorithm, chunks, {requester})) {
      if (!plan.message.ciphertexts.empty()) out.push_back(std::move(plan.message));
    }
  }
  return out;
}

}  // namespace towns
