#include "network.h"

#include <algorithm>
#include <cstdio>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns::sim {
namespace {

std::string short_id(const std::string& s) { return s.size() > 8 ? s.substr(0, 8) : s; }

std::string fulfillment_key(const KeyFulfillment& f) {
  std::vector<std::string> ids = f.session_ids;
  std::sort(ids.begin(), ids.end());
  std::string key = f.device_key;
  for (const auto& id : ids) key += "|" + id;
  return key;
}

std::string seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%7.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

}  // namespace

// ---- SimDevice

SimDevice::SimDevice(Network& net, std::string user_id, std::string name, std::unique_ptr<CryptoStore> store,
                     crypto::SecretBytes pickle_key, crypto::RandomSource& rng, KeyExchangeOptions options)
    : net_(net), user_id_(std::move(user_id)), name_(std::move(name)), store_(std::move(store)), sharer_(*this) {
  crypto_ = std::make_unique<GroupEncryptionCrypto>(&sharer_, *store_, rng);
  crypto_->init({.pickle_key = std::move(pickle_key)});
  sharer_.bind(*crypto_);
  engine_ = std::make_unique<KeyExchange>(*crypto_, *this, user_id_, net.clock(), rng, options);
}

SimDevice::~SimDevice() = default;

void SimDevice::send_key_solicitation(std::string_view stream_id, const KeySolicitation& s,
                                      bool ephemeral) {
  net_.post_solicitation(user_id_, std::string(stream_id), s, ephemeral, name_);
}
bool SimDevice::send_key_fulfillment(std::string_view stream_id, const KeyFulfillment& f,
                                     bool ephemeral) {
  return net_.post_fulfillment(user_id_, std::string(stream_id), f, ephemeral, name_);
}
void SimDevice::send_group_encryption_sessions(std::string_view to_user_id,
                                               const GroupEncryptionSessions& s) {
  net_.send_to_inbox(user_id_, std::string(to_user_id), s, name_);
}
std::vector<UserDevice> SimDevice::user_devices(std::string_view user_id) {
  return net_.published_devices(std::string(user_id));
}
std::vector<std::string> SimDevice::stream_members(std::string_view stream_id) {
  return net_.members(std::string(stream_id));
}
bool SimDevice::is_user_entitled(std::string_view stream_id, std::string_view user_id) {
  return net_.is_entitled(std::string(stream_id), std::string(user_id));
}
std::vector<StreamSolicitation> SimDevice::key_solicitations(std::string_view stream_id) {
  std::vector<StreamSolicitation> out;
  auto& s = net_.stream(std::string(stream_id));
  for (auto& x : s.solicitations.all()) out.push_back(std::move(x));
  return out;
}
MiniblockInfo SimDevice::get_miniblock_info(std::string_view stream_id) { return net_.miniblock(std::string(stream_id)); }

void SimDevice::on_decrypted(const EncryptedEvent& e, const DecryptedPayload& p) {
  decrypted_[e.event_id] = std::string(p.plaintext.view());
  if (net_.on_log) net_.log(name_ + " decrypts " + e.event_id + ": \"" + std::string(p.plaintext.view()) + "\"");
}

void SimDevice::on_decryption_error(const EncryptedEvent& e, const Error& err, bool missing_session) {
  if (!net_.on_log) return;
  net_.log(name_ + (missing_session ? " cannot decrypt " : " refuses ") + e.event_id + " (" +
           std::string(err.code_name()) + ")");
}

// ---- Network

Network::Network(SimClock& clock, crypto::RandomSource& rng, KeyExchangeOptions options)
    : clock_(clock), rng_(rng), options_(options) {}
Network::~Network() = default;

void Network::log(const std::string& line) {
  if (on_log) on_log(seconds(clock_.now_ms() - 1'800'000'000'000) + "  " + line);
}

Network::Stream& Network::stream(const std::string& id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) throw Error(ErrorCode::INVALID_ARGUMENT, "no stream " + id);
  return it->second;
}

SimDevice& Network::add_device(const std::string& user_id, const std::string& name, std::unique_ptr<CryptoStore> store,
                               crypto::SecretBytes pickle_key) {
  devices_.push_back(
      std::make_unique<SimDevice>(*this, user_id, name, std::move(store), std::move(pickle_key), rng_, options_));
  auto& d = *devices_.back();
  if (on_log) log(name + " is a new device of user " + user_label(user_id) + " (device key " + short_id(d.device().device_key) + ")");
  catch_up(d);
  return d;
}

void Network::create_stream(const std::string& stream_id, const std::set<std::string>& members) {
  streams_[stream_id].members = members;
  streams_[stream_id].ever_members = members;
}

void Network::join(const std::string& stream_id, const std::string& user_id) {
  stream(stream_id).members.insert(user_id);
  stream(stream_id).ever_members.insert(user_id);
  if (on_log) log("user " + user_label(user_id) + " joins stream " + short_id(stream_id));
  for (auto& d : devices_) {
    if (d->user_id_ != user_id || !d->online_) continue;
    catch_up(*d);
    d->engine().retry_decryption_failures(stream_id);
  }
}

void Network::leave(const std::string& stream_id, const std::string& user_id) {
  auto& s = stream(stream_id);
  s.members.erase(user_id);
  s.solicitations.remove_member(user_id);
  if (on_log) log("user " + user_label(user_id) + " leaves stream " + short_id(stream_id));
}

void Network::set_entitled(const std::string& stream_id, const std::string& user_id, bool entitled) {
  auto& s = stream(stream_id);
  if (entitled) {
    s.not_entitled.erase(user_id);
  } else {
    s.not_entitled.insert(user_id);
  }
}

void Network::set_online(SimDevice& device, bool online) {
  device.online_ = online;
  if (on_log) log(device.name() + (online ? " comes online" : " goes offline"));
  if (online) catch_up(device);
}

void Network::catch_up(SimDevice& d) {
  auto& inbox = inboxes_[d.user_id_];
  for (; d.inbox_cursor_ < inbox.size(); ++d.inbox_cursor_) d.engine().enqueue_new_group_sessions(inbox[d.inbox_cursor_]);
  for (auto& [id, s] : streams_) {
    if (s.members.count(d.user_id_) == 0) continue;
    auto& cursor = d.stream_cursor_[id];
    for (; cursor < s.events.size(); ++cursor) {
      d.engine().enqueue_encrypted_content({id, s.events[cursor].event_id, s.events[cursor].data});
    }
    for (const auto& x : s.solicitations.all()) d.engine().enqueue_key_solicitation(id, x.user_id, x.solicitation, false);
  }
}

const StreamEvent& Network::post_message(SimDevice& sender, const std::string& stream_id, const std::string& plaintext,
                                         GroupEncryptionAlgorithm algorithm) {
  auto data = sender.crypto().encrypt_group_event(stream_id, crypto::as_bytes(plaintext), algorithm);
  post_raw_event(stream_id, sender.user_id(), std::move(data));
  if (on_log) log(sender.name() + " posts " + stream(stream_id).events.back().event_id + " to stream " + short_id(stream_id) + " (" + std::string(algorithm_id(algorithm)) + ")");
  return stream(stream_id).events.back();
}

void Network::post_raw_event(const std::string& stream_id, const std::string& sender_user_id,
                             EncryptedData data, bool honest) {
  auto& s = stream(stream_id);
  s.events.push_back({"ev-" + std::to_string(++next_event_), sender_user_id, std::move(data), honest});
  if (s.events.size() % 5 == 0) ++s.miniblock_num;
  ++traffic_.messages;
  traffic_.bytes += s.events.back().data.encode().size();
  for (auto& d : devices_) {
    if (!d->online_ || s.members.count(d->user_id_) == 0) continue;
    catch_up(*d);
  }
}

void Network::post_solicitation(const std::string& from_user_id, const std::string& stream_id,
                                const KeySolicitation& sol, bool ephemeral,
                                const std::string& by) {
  auto& s = stream(stream_id);
  if (s.members.count(from_user_id) == 0) {
    if (on_log) log("node refuses a solicitation from non-member " + short_id(from_user_id));
    return;
  }
  ++(ephemeral ? traffic_.ephemeral_solicitations : traffic_.solicitations);
  traffic_.bytes += sol.encode().size();
  if (on_log) {
    std::string who = by.empty() ? "user " + user_label(from_user_id) : by;
    std::string target = name_of(sol.device_key);
    log(who + " solicits " + std::to_string(sol.session_ids.size()) + " session(s)" +
        (target == who ? "" : " for " + target) + " on stream " +
        short_id(stream_id) + (sol.is_new_device ? ", as a new device" : "") +
        (ephemeral ? " (ephemeral)" : " (stream event)"));
  }
  // A stored one goes through the stream's state, which hands out what it stored.
  auto delivered = ephemeral ? sol : s.solicitations.apply_solicitation(from_user_id, sol);
  for (auto& d : devices_) {
    if (!d->online_ || s.members.count(d->user_id_) == 0) continue;
    d->engine().enqueue_key_solicitation(stream_id, from_user_id, delivered, ephemeral);
  }
}

bool Network::post_fulfillment(const std::string& from_user_id, const std::string& stream_id,
                               const KeyFulfillment& f, bool ephemeral, const std::string& by) {
  std::string who = by.empty() ? "user " + user_label(from_user_id) : by;
  auto& s = stream(stream_id);
  auto key = fulfillment_key(f);
  if (s.members.count(from_user_id) == 0 || !s.fulfilled.insert(key).second) {
    ++traffic_.fulfillments_refused;
    if (on_log) log("node refuses a duplicate fulfillment by " + who + " for " + name_of(f.device_key));
    return false;
  }
  ++traffic_.fulfillments_accepted;
  traffic_.bytes += f.encode().size();
  if (on_log) {
    log(who + " answers first: fulfills " + std::to_string(f.session_ids.size()) + " session(s) for " +
        name_of(f.device_key) + (ephemeral ? " (ephemeral)" : ""));
  }
  // A stored one rewrites the requester's solicitation in the stream's state,
  // which every member device's engine is told about (the SDK's
  // updatedKeySolicitation); an ephemeral one goes to the engines as it is.
  std::optional<StreamSolicitation> updated;
  if (!ephemeral) updated = s.solicitations.apply_fulfillment(f);
  for (auto& d : devices_) {
    if (!d->online_ || s.members.count(d->user_id_) == 0) continue;
    if (ephemeral) {
      d->engine().on_ephemeral_key_fulfillment(stream_id, f);
    } else if (updated) {
      d->engine().enqueue_key_solicitation(stream_id, updated->user_id, updated->solicitation, false);
    }
  }
  return true;
}

void Network::send_to_inbox(const std::string& from_user_id, const std::string& to_user_id,
                            const GroupEncryptionSessions& msg, const std::string& by) {
  inboxes_[to_user_id].push_back(msg);
  ++traffic_.shares;
  traffic_.bytes += msg.encode().size();
  if (on_log) {
    std::string targets;
    for (const auto& [key, body] : msg.ciphertexts) targets += (targets.empty() ? "" : ", ") + name_of(key);
    std::string who = by.empty() ? "user " + user_label(from_user_id) : by;
    log(who + " shares " + std::to_string(msg.session_ids.size()) + " " +
        (msg.algorithm.empty() ? std::string(kGroupEncryptionAlgorithmId) : msg.algorithm) +
        " session(s) with " + targets);
  }
  for (auto& d : devices_) {
    if (d->online_ && d->user_id_ == to_user_id) catch_up(*d);
  }
}

MiniblockInfo Network::miniblock(const std::string& stream_id) {
  auto& s = stream(stream_id);
  std::string seed = stream_id + "#" + std::to_string(s.miniblock_num);
  auto hash = crypto::sha256(crypto::as_bytes(seed));
  return {s.miniblock_num, std::vector<uint8_t>(hash.begin(), hash.end())};
}

size_t Network::run(int64_t max_ms) {
  int64_t end = clock_.now_ms() + max_ms;
  size_t total = 0;
  for (;;) {
    size_t work = 0;
    for (size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i]->online_) work += devices_[i]->engine().run();
    }
    total += work;
    if (work > 0) continue;
    std::optional<int64_t> next;
    for (auto& d : devices_) {
      if (!d->online_) continue;
      if (auto t = d->engine().next_due_ms()) next = next ? std::min(*next, *t) : *t;
    }
    if (!next || *next > end) break;
    clock_.advance_to(*next);
  }
  return total;
}

Verdict Network::verify() const {
  Verdict v;
  for (const auto& d : devices_) {
    ++v.devices;
    for (const auto& [id, s] : streams_) {
      if (is_entitled(id, d->user_id_)) {
        for (const auto& e : s.events) {
          if (!e.honest) continue;
          ++v.expected;
          if (d->has_decrypted(e.event_id)) {
            ++v.decrypted;
          } else if (v.problems.size() < 20) {
            v.problems.push_back(d->name() + " cannot decrypt " + e.event_id + " of stream " + short_id(id));
          }
        }
      } else if (s.ever_members.count(d->user_id_) == 0) {
        bool holds = !d->crypto_->get_group_session_ids(id).empty();
        bool read = std::any_of(s.events.begin(), s.events.end(),
                                [&](const StreamEvent& e) { return d->has_decrypted(e.event_id); });
        if (holds || read) {
          ++v.leaked;
          if (v.problems.size() < 20) v.problems.push_back(d->name() + " holds keys of stream " + short_id(id) + " it never joined");
        }
      }
    }
  }
  return v;
}

size_t Network::inbox_size(const std::string& user_id) const {
  auto it = inboxes_.find(user_id);
  return it == inboxes_.end() ? 0 : it->second.size();
}

bool Network::is_member(const std::string& stream_id, const std::string& user_id) const {
  auto it = streams_.find(stream_id);
  return it != streams_.end() && it->second.members.count(user_id) > 0;
}

bool Network::is_entitled(const std::string& stream_id, const std::string& user_id) const {
  auto it = streams_.find(stream_id);
  return it != streams_.end() && it->second.members.count(user_id) > 0 && it->second.not_entitled.count(user_id) == 0;
}

std::vector<std::string> Network::members(const std::string& stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return {};
  return {it->second.members.begin(), it->second.members.end()};
}

std::vector<UserDevice> Network::published_devices(const std::string& user_id) const {
  std::vector<UserDevice> out;
  for (const auto& d : devices_) {
    if (d->user_id_ == user_id) out.push_back(d->device());
  }
  return out;
}

const std::vector<StreamEvent>& Network::events(const std::string& stream_id) const {
  static const std::vector<StreamEvent> kNone;
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? kNone : it->second.events;
}

std::vector<std::string> Network::stream_ids() const {
  std::vector<std::string> out;
  for (const auto& [id, s] : streams_) out.push_back(id);
  return out;
}

SimDevice* Network::device_by_key(const std::string& device_key) const {
  for (const auto& d : devices_) {
    if (d->device().device_key == device_key) return d.get();
  }
  return nullptr;
}

std::string Network::user_label(const std::string& user_id) const {
  auto it = user_names_.find(user_id);
  return it != user_names_.end() ? it->second : short_id(user_id);
}

std::string Network::name_of(const std::string& device_key) const {
  auto* d = device_by_key(device_key);
  return d != nullptr ? d->name() : "device " + short_id(device_key);
}

}  // namespace towns::sim
