#include "towns/store/memory_crypto_store.h"

namespace towns {
namespace {

template <typename Map>
std::vector<std::string> ids_of_stream(const Map& m, std::string_view stream_id) {
  std::vector<std::string> out;
  for (auto it = m.lower_bound({std::string(stream_id), std::string()});
       it != m.end() && it->first.first == stream_id; ++it) {
    out.push_back(it->first.second);
  }
  return out;
}

template <typename Map>
auto values_of(const Map& m) {
  std::vector<typename Map::mapped_type> out;
  for (const auto& [k, v] : m) out.push_back(v);
  return out;
}

}  // namespace

using Lock = std::lock_guard<std::recursive_mutex>;

std::optional<std::string> MemoryCryptoStore::get_account() {
  Lock l(mu_);
  return t_.account;
}
void MemoryCryptoStore::store_account(std::string_view pickle) {
  Lock l(mu_);
  t_.account = std::string(pickle);
}
void MemoryCryptoStore::delete_account() {
  Lock l(mu_);
  t_.account.reset();
}

std::optional<GroupSessionRecord> MemoryCryptoStore::get_outbound_session(std::string_view stream_id) {
  Lock l(mu_);
  auto it = t_.outbound.find(stream_id);
  if (it == t_.outbound.end()) return std::nullopt;
  return it->second;
}
void MemoryCryptoStore::store_outbound_session(const GroupSessionRecord& record) {
  Lock l(mu_);
  t_.outbound[record.stream_id] = record;
}
void MemoryCryptoStore::delete_outbound_session(std::string_view stream_id) {
  Lock l(mu_);
  auto it = t_.outbound.find(stream_id);
  if (it != t_.outbound.end()) t_.outbound.erase(it);
}
std::vector<GroupSessionRecord> MemoryCryptoStore::all_outbound_sessions() {
  Lock l(mu_);
  return values_of(t_.outbound);
}

std::optional<GroupSessionRecord> MemoryCryptoStore::get_inbound_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  Lock l(mu_);
  auto it = t_.inbound.find({std::string(stream_id), std::string(session_id)});
  if (it == t_.inbound.end()) return std::nullopt;
  return it->second;
}
void MemoryCryptoStore::store_inbound_session(const GroupSessionRecord& record) {
  Lock l(mu_);
  t_.inbound[{record.stream_id, record.session_id}] = record;
}
void MemoryCryptoStore::delete_inbound_session(std::string_view stream_id, std::string_view session_id) {
  Lock l(mu_);
  t_.inbound.erase({std::string(stream_id), std::string(session_id)});
}
std::vector<std::string> MemoryCryptoStore::inbound_session_ids(std::string_view stream_id) {
  Lock l(mu_);
  return ids_of_stream(t_.inbound, stream_id);
}
std::vector<GroupSessionRecord> MemoryCryptoStore::all_inbound_sessions() {
  Lock l(mu_);
  return values_of(t_.inbound);
}

std::optional<HybridSessionRecord> MemoryCryptoStore::get_hybrid_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  Lock l(mu_);
  auto it = t_.hybrid.find({std::string(stream_id), std::string(session_id)});
  if (it == t_.hybrid.end()) return std::nullopt;
  return it->second;
}
std::optional<HybridSessionRecord> MemoryCryptoStore::latest_hybrid_session(std::string_view stream_id) {
  Lock l(mu_);
  const HybridSessionRecord* best = nullptr;
  for (auto it = t_.hybrid.lower_bound({std::string(stream_id), std::string()});
       it != t_.hybrid.end() && it->first.first == stream_id; ++it) {
    if (best == nullptr || it->second.miniblock_num >= best->miniblock_num) best = &it->second;
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}
void MemoryCryptoStore::store_hybrid_session(const HybridSessionRecord& record) {
  Lock l(mu_);
  t_.hybrid[{record.stream_id, record.session_id}] = record;
}
void MemoryCryptoStore::delete_hybrid_session(std::string_view stream_id, std::string_view session_id) {
  Lock l(mu_);
  t_.hybrid.erase({std::string(stream_id), std::string(session_id)});
}
std::vector<std::string> MemoryCryptoStore::hybrid_session_ids(std::string_view stream_id) {
  Lock l(mu_);
  return ids_of_stream(t_.hybrid, stream_id);
}
std::vector<HybridSessionRecord> MemoryCryptoStore::all_hybrid_sessions() {
  Lock l(mu_);
  return values_of(t_.hybrid);
}

void MemoryCryptoStore::save_user_devices(std::string_view user_id, const std::vector<UserDevice>& devices,
                                          int64_t expiration_ms) {
  Lock l(mu_);
  for (const auto& d : devices) {
    t_.devices[{std::string(user_id), d.device_key}] = UserDeviceRecord{std::string(user_id), d, expiration_ms};
  }
}
std::vector<UserDevice> MemoryCryptoStore::get_user_devices(std::string_view user_id, int64_t now_ms) {
  Lock l(mu_);
  std::vector<UserDevice> out;
  for (auto it = t_.devices.lower_bound({std::string(user_id), std::string()});
       it != t_.devices.end() && it->first.first == user_id; ++it) {
    if (it->second.expiration_ms > now_ms) out.push_back(it->second.device);
  }
  return out;
}
void MemoryCryptoStore::delete_user_devices(std::string_view user_id) {
  Lock l(mu_);
  std::erase_if(t_.devices, [&](const auto& kv) { return kv.first.first == user_id; });
}
void MemoryCryptoStore::purge_expired_devices(int64_t now_ms) {
  Lock l(mu_);
  std::erase_if(t_.devices, [&](const auto& kv) { return kv.second.expiration_ms <= now_ms; });
}

void MemoryCryptoStore::delete_all() {
  Lock l(mu_);
  t_ = Tables{};
}

void MemoryCryptoStore::transaction(const std::function<void()>& fn) {
  Lock l(mu_);
  if (depth_ > 0) {
    ++depth_;
    try {
      fn();
    } catch (...) {
      --depth_;
      throw;
    }
    --depth_;
    return;
  }
  Tables snapshot = t_;
  depth_ = 1;
  try {
    fn();
  } catch (...) {
    t_ = std::move(snapshot);
    depth_ = 0;
    throw;
  }
  depth_ = 0;
}

}  // namespace towns
