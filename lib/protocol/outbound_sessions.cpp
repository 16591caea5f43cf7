#include "common/stored_pickle.h"
#include "towns/crypto/encoding.h"
#include "towns/protocol/encryption_device.h"

namespace towns {

struct OutboundSessions::Entry {
  Mutex mu;
  std::unique_ptr<DelegateOutboundGroupSession> session TOWNS_GUARDED_BY(mu);
  std::string session_id TOWNS_GUARDED_BY(mu);
  // Indices below this are ours to use; at it, a new block must be reserved.
  uint32_t reserved_until TOWNS_GUARDED_BY(mu) = 0;
};

namespace {

// How often a reservation is retried when another process wrote the row in
// between (each retry re-reads it); more means something keeps rewriting it.
constexpr int kReservationAttempts = 64;

[[noreturn]] void no_session(std::string_view stream_id) {
  throw Error(ErrorCode::SESSION_NOT_FOUND, "unknown outbound group session for stream " + std::string(stream_id));
}

// Moves an outbound ratchet forward to `index` (after a crash, or when another
// process holds the indices in between). The callers bound the distance.
void advance(DelegateOutboundGroupSession& session, uint32_t index) {
  static constexpr uint8_t kFiller[1] = {0};
  while (session.message_index() < index) (void)session.encrypt(kFiller);
}

// The stored pickle of an outbound row (STORE_CORRUPT when it does not open).
std::unique_ptr<DelegateOutboundGroupSession> unpickle_stored(const DeviceContext& ctx, const std::string& stream_id,
                                                              const std::string& session_id, const std::string& pickle) {
  return open_stored_pickle("outbound_sessions", stream_id, session_id,
                            [&] { return ctx.delegate.unpickle_outbound_group_session(ctx.pickle_key, pickle); });
}

// A stored row is written with its pickle at the start of the block it
// reserves, so its reservation is at most one block past the pickle's index.
// Anything further is not a state this library writes.
void check_reservation(const GroupSessionRecord& record, uint32_t pickle_index) {
  if (record.reserved_until > pickle_index &&
      record.reserved_until - pickle_index > OutboundSessions::kReservation) {
    throw Error(ErrorCode::STORE_CORRUPT, "outbound_sessions: the reservation of stream " + record.stream_id +
                                              " is beyond what its session could have reached");
  }
}

}  // namespace

OutboundSessions::~OutboundSessions() = default;

std::shared_ptr<OutboundSessions::Entry> OutboundSessions::entry(std::string_view stream_id) {
  MutexLock l(mu_);
  uint64_t version = ctx_.store.data_version();
  if (version != data_version_) {
    // Another process wrote the store: it may have replaced a session.
    entries_.clear();
    data_version_ = version;
  }
  auto it = entries_.find(stream_id);
  if (it != entries_.end()) return it->second;
  auto record = ctx_.store.get_outbound_session(stream_id);
  if (!record) return nullptr;
  auto e = std::make_shared<Entry>();
  MutexLock el(e->mu);
  e->session = unpickle_stored(ctx_, record->stream_id, record->session_id, record->pickle);
  check_reservation(*record, e->session->message_index());
  e->session_id = record->session_id;
  // Nothing is reserved for this copy yet: the first encrypt reserves a block,
  // advancing past every index anyone may have used.
  e->reserved_until = e->session->message_index();
  entries_.emplace(std::string(stream_id), e);
  return e;
}

OutboundSessions::Fresh OutboundSessions::fresh_session(std::string_view stream_id) {
  auto session = ctx_.delegate.create_outbound_group_session(ctx_.rng);
  auto session_id = session->session_id();
  auto inbound = ctx_.delegate.inbound_group_session_from_key(session->session_key());
  Fresh out;
  out.changes.outbound_sessions.push_back({std::string(stream_id), session_id, session->pickle(ctx_.pickle_key), 0});
  out.changes.inbound_sessions.push_back({std::string(stream_id), session_id, inbound->pickle(ctx_.pickle_key), 0});
  out.entry = std::make_shared<Entry>();
  MutexLock el(out.entry->mu);
  out.entry->session = std::move(session);
  out.entry->session_id = session_id;
  out.session_id = std::move(session_id);
  return out;
}

bool OutboundSessions::install(std::string_view stream_id, Fresh& fresh) {
  MutexLock l(mu_);
  if (!ctx_.store.save_changes(fresh.changes)) return false;
  inbound_.forget(stream_id, fresh.session_id);
  entries_.insert_or_assign(std::string(stream_id), std::move(fresh.entry));
  return true;
}

std::string OutboundSessions::create(std::string_view stream_id) {
  auto fresh = fresh_session(stream_id);
  install(stream_id, fresh);
  return fresh.session_id;
}

EnsuredSession OutboundSessions::ensure(std::string_view stream_id) {
  for (;;) {
    if (auto e = entry(stream_id)) {
      MutexLock el(e->mu);
      return {e->session_id, false};
    }
    auto fresh = fresh_session(stream_id);
    // Only if the stream still has none (another thread or process may have
    // made one meanwhile: then that one is used).
    fresh.changes.expect_outbound.push_back({std::string(stream_id), std::nullopt, 0});
    if (install(stream_id, fresh)) return {fresh.session_id, true};
  }
}

std::optional<OutboundGroupSessionKey> OutboundSessions::session_key(std::string_view stream_id) {
  auto e = entry(stream_id);
  if (!e) return std::nullopt;
  MutexLock el(e->mu);
  return OutboundGroupSessionKey{e->session->message_index(), e->session->session_key(), e->session_id};
}

void OutboundSessions::reserve_block(std::string_view stream_id, Entry& e) TOWNS_NO_THREAD_SAFETY_ANALYSIS {
  // Called with e.mu held (the analysis cannot see through the reference).
  for (int attempt = 0; attempt < kReservationAttempts; ++attempt) {
    auto record = ctx_.store.get_outbound_session(stream_id);
    if (!record) no_session(stream_id);
    if (record->session_id != e.session_id || record->reserved_until > e.session->message_index() + kReservation) {
      // Another process made a new session for the stream, or went further
      // with this one: continue from the stored state.
      auto stored = unpickle_stored(ctx_, record->stream_id, record->session_id, record->pickle);
      check_reservation(*record, stored->message_index());
      if (record->session_id != e.session_id || stored->message_index() > e.session->message_index()) {
        e.session = std::move(stored);
        e.session_id = record->session_id;
      }
    }
    uint32_t start = std::max(record->reserved_until, e.session->message_index());
    advance(*e.session, start);
    StoreChanges changes;
    changes.outbound_sessions.push_back(
        {std::string(stream_id), e.session_id, e.session->pickle(ctx_.pickle_key), start + kReservation});
    changes.expect_outbound.push_back({std::string(stream_id), record->session_id, record->reserved_until});
    if (ctx_.store.save_changes(changes)) {
      e.reserved_until = start + kReservation;
      return;
    }
  }
  throw Error(ErrorCode::STORE_BUSY, "the outbound session of stream " + std::string(stream_id) +
                                         " keeps changing under another writer");
}

GroupCiphertext OutboundSessions::encrypt(std::string_view payload, std::string_view stream_id) {
  check_payload_length(payload, "encryptGroupMessage");
  auto e = entry(stream_id);
  if (!e) no_session(stream_id);
  MutexLock el(e->mu);
  if (e->session->message_index() >= e->reserved_until) reserve_block(stream_id, *e);
  GroupCiphertext out;
  out.message_index = e->session->message_index();
  out.ciphertext = e->session->encrypt(crypto::as_bytes(payload));
  out.session_id = e->session_id;
  return out;
}

std::vector<GroupSessionRecord> OutboundSessions::export_records() {
  std::vector<GroupSessionRecord> out;
  for (auto& record : ctx_.store.all_outbound_sessions()) {
    std::shared_ptr<Entry> cached;
    {
      MutexLock l(mu_);
      auto it = entries_.find(record.stream_id);
      if (it != entries_.end()) cached = it->second;
    }
    uint32_t target = record.reserved_until;
    std::string pickle = record.pickle;
    if (cached) {
      MutexLock el(cached->mu);
      if (cached->session_id == record.session_id) {
        pickle = cached->session->pickle(ctx_.pickle_key);
        target = std::max(target, cached->reserved_until);
      }
    }
    // Advanced outside every lock: a copy, at most a block past its pickle.
    auto copy = unpickle_stored(ctx_, record.stream_id, record.session_id, pickle);
    if (target > copy->message_index() + kReservation) {
      throw Error(ErrorCode::STORE_CORRUPT, "outbound_sessions: the reservation of stream " + record.stream_id +
                                                " is beyond what its session could have reached");
    }
    advance(*copy, target);
    record.pickle = copy->pickle(ctx_.pickle_key);
    record.reserved_until = 0;
    out.push_back(std::move(record));
  }
  return out;
}

void OutboundSessions::clear() {
  MutexLock l(mu_);
  entries_.clear();
}

}  // namespace towns
