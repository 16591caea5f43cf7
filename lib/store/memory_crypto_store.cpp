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

// Moves every staged entry into target, replacing entries of the same key.
// Allocates nothing and throws nothing: the staged nodes are re-linked.
template <typename Map>
void splice_into(Map& target, Map& staged) noexcept {
  while (!staged.empty()) {
    auto node = staged.extract(staged.begin());
    auto it = target.find(node.key());
    if (it != target.end()) {
      using std::swap;
      swap(it->second, node.mapped());
    } else {
      target.insert(std::move(node));
    }
  }
}

template <typename Map>
auto values_of(const Map& m) {
  std::vector<typename Map::mapped_type> out;
  for (const auto& [k, v] : m) out.push_back(v);
  return out;
}

}  // namespace

MemoryCryptoStore::MemoryCryptoStore() = default;

std::optional<std::string> MemoryCryptoStore::get_account() {
  MutexLock l(mu_);
  return t_.account;
}
void MemoryCryptoStore::delete_account() {
  MutexLock l(mu_);
  t_.account.reset();
}

std::optional<GroupSessionRecord> MemoryCryptoStore::get_outbound_session(std::string_view stream_id) {
  MutexLock l(mu_);
  auto it = t_.outbound.find(stream_id);
  if (it == t_.outbound.end()) return std::nullopt;
  return it->second;
}
void MemoryCryptoStore::delete_outbound_session(std::string_view stream_id) {
  MutexLock l(mu_);
  auto it = t_.outbound.find(stream_id);
  if (it != t_.outbound.end()) t_.outbound.erase(it);
}
std::vector<GroupSessionRecord> MemoryCryptoStore::all_outbound_sessions() {
  MutexLock l(mu_);
  return values_of(t_.outbound);
}

std::optional<GroupSessionRecord> MemoryCryptoStore::get_inbound_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  MutexLock l(mu_);
  auto it = t_.inbound.find({std::string(stream_id), std::string(session_id)});
  if (it == t_.inbound.end()) return std::nullopt;
  return it->second;
}
void MemoryCryptoStore::delete_inbound_session(std::string_view stream_id, std::string_view session_id) {
  MutexLock l(mu_);
  t_.inbound.erase({std::string(stream_id), std::string(session_id)});
  auto first = t_.indices.lower_bound({std::string(stream_id), std::string(session_id), 0});
  auto last = first;
  while (last != t_.indices.end() && std::get<0>(last->first) == stream_id && std::get<1>(last->first) == session_id) {
    ++last;
  }
  t_.indices.erase(first, last);
}
std::vector<std::string> MemoryCryptoStore::inbound_session_ids(std::string_view stream_id) {
  MutexLock l(mu_);
  return ids_of_stream(t_.inbound, stream_id);
}
std::vector<GroupSessionRecord> MemoryCryptoStore::all_inbound_sessions() {
  MutexLock l(mu_);
  return values_of(t_.inbound);
}

std::optional<HybridSessionRecord> MemoryCryptoStore::get_hybrid_session(std::string_view stream_id,
                                                                         std::string_view session_id) {
  MutexLock l(mu_);
  auto it = t_.hybrid.find({std::string(stream_id), std::string(session_id)});
  if (it == t_.hybrid.end()) return std::nullopt;
  return it->second;
}
std::optional<HybridSessionRecord> MemoryCryptoStore::latest_hybrid_session(std::string_view stream_id) {
  MutexLock l(mu_);
  const HybridSessionRecord* best = nullptr;
  // In ascending session id order: on a tie the first, the lowest id, stays.
  for (auto it = t_.hybrid.lower_bound({std::string(stream_id), std::string()});
       it != t_.hybrid.end() && it->first.first == stream_id; ++it) {
    if (best == nullptr || it->second.miniblock_num > best->miniblock_num) best = &it->second;
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}
void MemoryCryptoStore::delete_hybrid_session(std::string_view stream_id, std::string_view session_id) {
  MutexLock l(mu_);
  t_.hybrid.erase({std::string(stream_id), std::string(session_id)});
}
std::vector<std::string> MemoryCryptoStore::hybrid_session_ids(std::string_view stream_id) {
  MutexLock l(mu_);
  return ids_of_stream(t_.hybrid, stream_id);
}
std::vector<HybridSessionRecord> MemoryCryptoStore::all_hybrid_sessions() {
  MutexLock l(mu_);
  return values_of(t_.hybrid);
}

void MemoryCryptoStore::delete_all() {
  MutexLock l(mu_);
  t_ = Tables{};
}

bool MemoryCryptoStore::save_changes(const StoreChanges& changes) {
  if (changes.empty()) return true;
  MutexLock l(mu_);
  for (const auto& c : changes.expect_outbound) {
    auto it = t_.outbound.find(c.stream_id);
    if (!c.session_id.has_value()) {
      if (it != t_.outbound.end()) return false;
      continue;
    }
    if (it == t_.outbound.end() || it->second.session_id != *c.session_id ||
        it->second.reserved_until != c.reserved_until) {
      return false;
    }
  }
  // Copy everything aside (this may throw, with nothing changed yet), then splice.
  std::optional<std::string> account = changes.account;
  decltype(Tables::outbound) outbound;
  for (const auto& r : changes.outbound_sessions) outbound[r.stream_id] = r;
  decltype(Tables::inbound) inbound;
  for (const auto& r : changes.inbound_sessions) inbound[{r.stream_id, r.session_id}] = r;
  decltype(Tables::hybrid) hybrid;
  for (const auto& r : changes.hybrid_sessions) hybrid[{r.stream_id, r.session_id}] = r;
  if (account.has_value()) t_.account.swap(account);
  splice_into(t_.outbound, outbound);
  splice_into(t_.inbound, inbound);
  splice_into(t_.hybrid, hybrid);
  return true;
}

std::vector<ReplayCheck> MemoryCryptoStore::record_message_indices(const std::vector<MessageIndexRecord>& entries) {
  std::vector<ReplayCheck> out;
  out.reserve(entries.size());
  MutexLock l(mu_);
  decltype(Tables::indices) added;
  for (const auto& e : entries) {
    IndexKey key{e.stream_id, e.session_id, e.message_index};
    // Recorded before this call, or earlier in it.
    const std::array<uint8_t, 16>* stored = nullptr;
    if (auto a = t_.indices.find(key); a != t_.indices.end()) {
      stored = &a->second;
    } else if (auto b = added.find(key); b != added.end()) {
      stored = &b->second;
    }
    if (stored == nullptr) {
      added.emplace(std::move(key), e.fingerprint);
      out.push_back(ReplayCheck::kNew);
    } else {
      out.push_back(*stored == e.fingerprint ? ReplayCheck::kSame : ReplayCheck::kConflict);
    }
  }
  t_.indices.merge(added);  // the keys are all new: every node moves over
  return out;
}

uint64_t MemoryCryptoStore::data_version() { return 0; }

}  // namespace towns
