#include <algorithm>
#include <atomic>
#include <map>

#include "common/parallel.h"
#include "common/stored_pickle.h"
#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/protocol/encryption_device.h"

namespace towns {

struct InboundSessions::Entry {
  Mutex mu;  // one thread at a time uses the session
  std::unique_ptr<DelegateInboundGroupSession> session TOWNS_GUARDED_BY(mu);
  uint64_t last_use = 0;  // under InboundSessions::cache_mu_
};

namespace {
// Bumped (under the cache lock of the InboundSessions concerned) whenever a
// cache forgets an entry or clears: a load that raced with an import or a
// delete is then not cached. One counter for every instance (a member would
// change the public class's layout); another instance's bump only costs a
// skipped cache fill.
std::atomic<uint64_t> g_forgets{0};
}  // namespace

InboundSessions::~InboundSessions() = default;

std::unique_ptr<DelegateInboundGroupSession> InboundSessions::unpickle_stored(const std::string& stream_id,
                                                                            const std::string& session_id,
                                                                            const std::string& pickle) const {
  return open_stored_pickle("inbound_sessions", stream_id, session_id,
                            [&] { return ctx_.delegate.unpickle_inbound_group_session(ctx_.pickle_key, pickle); });
}

std::array<uint8_t, 16> InboundSessions::fingerprint(std::string_view ciphertext) {
  auto digest = crypto::sha256(crypto::as_bytes(ciphertext));
  std::array<uint8_t, 16> out{};
  std::copy_n(digest.begin(), out.size(), out.begin());
  return out;
}

void InboundSessions::refresh_if_stale() {
  uint64_t version = ctx_.store.data_version();
  if (version != data_version_) {
    // Another process wrote the store: it may have imported a better key.
    cache_.clear();
    ++g_forgets;
    data_version_ = version;
  }
}

std::shared_ptr<InboundSessions::Entry> InboundSessions::entry(std::string_view stream_id,
                                                               std::string_view session_id) {
  Key key{std::string(stream_id), std::string(session_id)};
  // Loaded under the cache lock: an import writes the store first and then
  // forgets the cached entry under this lock, so a stale load cannot land
  // after the forget.
  MutexLock l(cache_mu_);
  refresh_if_stale();
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    it->second->last_use = ++use_counter_;
    return it->second;
  }
  auto record = ctx_.store.get_inbound_session(stream_id, session_id);
  if (!record) return nullptr;
  auto e = std::make_shared<Entry>();
  {
    MutexLock el(e->mu);
    e->session = unpickle_stored(record->stream_id, record->session_id, record->pickle);
  }
  e->last_use = ++use_counter_;
  insert_evicting(std::move(key), e);
  return e;
}

void InboundSessions::insert_evicting(Key key, std::shared_ptr<Entry> e) {
  if (cache_.size() >= kCacheSize) {
    // The least recently used eighth goes at once (their sessions are wiped
    // when their last users let go): one pass over the cache per kEvict
    // inserts, where evicting one at a time walked the whole cache on every
    // miss of a stream with more sessions than the cache holds.
    constexpr size_t kEvict = kCacheSize / 8;
    std::vector<uint64_t> uses;
    uses.reserve(cache_.size());
    for (const auto& [k, v] : cache_) uses.push_back(v->last_use);
    std::nth_element(uses.begin(), uses.begin() + (kEvict - 1), uses.end());
    uint64_t cutoff = uses[kEvict - 1];  // last_use values are distinct
    for (auto i = cache_.begin(); i != cache_.end();) {
      i = i->second->last_use <= cutoff ? cache_.erase(i) : std::next(i);
    }
  }
  cache_.emplace(std::move(key), std::move(e));
}

void InboundSessions::forget(std::string_view stream_id, std::string_view session_id) {
  MutexLock l(cache_mu_);
  cache_.erase(Key{std::string(stream_id), std::string(session_id)});
  ++g_forgets;
}

void InboundSessions::clear() {
  MutexLock l(cache_mu_);
  cache_.clear();
  ++g_forgets;
}

bool InboundSessions::has(std::string_view stream_id, std::string_view session_id) {
  return ctx_.store.get_inbound_session(stream_id, session_id).has_value();
}

std::vector<std::string> InboundSessions::ids(std::string_view stream_id) {
  return ctx_.store.inbound_session_ids(stream_id);
}

std::optional<uint32_t> InboundSessions::first_known_index(std::string_view stream_id, std::string_view session_id) {
  auto e = entry(stream_id, session_id);
  if (!e) return std::nullopt;
  MutexLock l(e->mu);
  return e->session->first_known_index();
}

std::optional<GroupEncryptionSession> InboundSessions::export_session(std::string_view stream_id,
                                                                      std::string_view session_id) {
  auto e = entry(stream_id, session_id);
  if (!e) return std::nullopt;
  MutexLock l(e->mu);
  return GroupEncryptionSession{std::string(stream_id), std::string(session_id),
                                e->session->export_session(e->session->first_known_index()),
                                std::string(kGroupEncryptionAlgorithmId)};
}

std::vector<GroupEncryptionSession> InboundSessions::export_all() {
  std::vector<GroupEncryptionSession> out;
  for (const auto& r : ctx_.store.all_inbound_sessions()) {
    auto session = unpickle_stored(r.stream_id, r.session_id, r.pickle);
    out.push_back({r.stream_id, r.session_id, session->export_session(session->first_known_index()),
                   std::string(kGroupEncryptionAlgorithmId)});
  }
  return out;
}

std::vector<std::optional<GroupEncryptionSession>> InboundSessions::export_sessions(
    std::string_view stream_id, const std::vector<std::string>& session_ids, unsigned threads) {
  size_t n = session_ids.size();
  std::vector<std::shared_ptr<Entry>> cached(n);
  std::vector<std::optional<GroupSessionRecord>> stored(n);
  uint64_t forgets = 0;
  {
    // The cache and the store are read under the cache lock, as entry() does;
    // the unpickling, the expensive part, is left for the threads.
    MutexLock l(cache_mu_);
    refresh_if_stale();
    forgets = g_forgets.load();
    for (size_t i = 0; i < n; ++i) {
      auto it = cache_.find(Key{std::string(stream_id), session_ids[i]});
      if (it != cache_.end()) {
        it->second->last_use = ++use_counter_;
        cached[i] = it->second;
      } else {
        stored[i] = ctx_.store.get_inbound_session(stream_id, session_ids[i]);
      }
    }
  }
  std::vector<std::optional<GroupEncryptionSession>> out(n);
  std::vector<std::unique_ptr<DelegateInboundGroupSession>> loaded(n);
  std::vector<std::optional<Error>> errors(n);
  auto exported = [&](size_t i, const DelegateInboundGroupSession& s) {
    return GroupEncryptionSession{std::string(stream_id), session_ids[i], s.export_session(s.first_known_index()),
                                  std::string(kGroupEncryptionAlgorithmId)};
  };
  parallel_for(n, threads, [&](size_t i) {
    try {
      if (cached[i]) {
        MutexLock el(cached[i]->mu);
        out[i] = exported(i, *cached[i]->session);
      } else if (stored[i]) {
        loaded[i] = unpickle_stored(stored[i]->stream_id, stored[i]->session_id, stored[i]->pickle);
        out[i] = exported(i, *loaded[i]);
      }
    } catch (const Error& e) {
      errors[i] = e;
    }
  });
  for (auto& e : errors) {
    if (e) throw *e;
  }
  // Cache what was loaded, unless an import or a delete came in between (its
  // row may be newer than the one read) or another thread cached it first.
  MutexLock l(cache_mu_);
  if (g_forgets.load() != forgets) return out;
  for (size_t i = 0; i < n; ++i) {
    if (!loaded[i]) continue;
    Key key{std::string(stream_id), session_ids[i]};
    if (cache_.count(key) > 0) continue;
    auto e = std::make_shared<Entry>();
    {
      MutexLock el(e->mu);
      e->session = std::move(loaded[i]);
    }
    e->last_use = ++use_counter_;
    insert_evicting(std::move(key), std::move(e));
  }
  return out;
}

GroupPlaintext InboundSessions::decrypt_with(Entry& e, std::string_view ciphertext) {
  MutexLock l(e.mu);
  try {
    return e.session->decrypt(ciphertext);
  } catch (const Error& err) {
    if (!is_olm_error(err.code())) throw;
    throw Error(ErrorCode::DECRYPTION_FAILED, "megolm decryption failed: " + std::string(err.code_name()));
  }
}

namespace {
[[noreturn]] void replay(std::string_view session_id, uint32_t index) {
  throw Error(ErrorCode::REPLAY, "message index " + std::to_string(index) + " of session " + std::string(session_id) +
                                     " was already used by another event");
}
[[noreturn]] void not_found() { throw Error(ErrorCode::SESSION_NOT_FOUND, "Session not found"); }
}  // namespace

GroupPlaintext InboundSessions::decrypt(std::string_view stream_id, std::string_view session_id,
                                        std::string_view ciphertext) {
  auto e = entry(stream_id, session_id);
  if (!e) not_found();
  auto result = decrypt_with(*e, ciphertext);
  auto checks = ctx_.store.record_message_indices(
      {{std::string(stream_id), std::string(session_id), result.message_index, fingerprint(ciphertext)}});
  if (checks.at(0) == ReplayCheck::kConflict) replay(session_id, result.message_index);
  return result;
}

std::vector<InboundSessions::Result> InboundSessions::decrypt_batch(
    std::string_view stream_id, const std::vector<std::pair<std::string, std::string>>& events, unsigned threads) {
  std::vector<Result> results(events.size());
  std::map<std::string_view, std::vector<size_t>> by_session;
  for (size_t i = 0; i < events.size(); ++i) by_session[events[i].first].push_back(i);
  std::vector<const std::pair<const std::string_view, std::vector<size_t>>*> groups;
  for (const auto& g : by_session) groups.push_back(&g);
  parallel_for(groups.size(), threads, [&](size_t g) {
    const auto& [session_id, indices] = *groups[g];
    std::shared_ptr<Entry> e;
    try {
      e = entry(stream_id, session_id);
      if (!e) not_found();
    } catch (const Error& err) {
      for (size_t i : indices) results[i].error = err;
      return;
    }
    for (size_t i : indices) {
      try {
        results[i].value = decrypt_with(*e, events[i].second);
      } catch (const Error& err) {
        results[i].error = err;
      }
    }
  });
  // The replay record for the batch, in input order.
  std::vector<MessageIndexRecord> records;
  std::vector<size_t> at;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!results[i].value) continue;
    records.push_back({std::string(stream_id), events[i].first, results[i].value->message_index,
                       fingerprint(events[i].second)});
    at.push_back(i);
  }
  if (records.empty()) return results;
  auto checks = ctx_.store.record_message_indices(records);
  for (size_t k = 0; k < at.size(); ++k) {
    if (checks.at(k) != ReplayCheck::kConflict) continue;
    auto& r = results[at[k]];
    try {
      replay(events[at[k]].first, r.value->message_index);
    } catch (const Error& err) {
      r.error = err;
    }
    r.value.reset();
  }
  return results;
}

}  // namespace towns
