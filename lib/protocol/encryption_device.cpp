#include "towns/protocol/encryption_device.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns {
namespace {

using crypto::SecretBytes;

// The key of {"curve25519":{"<id>":"<key>"}}, or "" when the object is empty.
std::string first_fallback_key(const std::string& json) {
  auto inner = json.find("\":{\"");
  if (inner == std::string::npos) return {};
  auto colon = json.find("\":\"", inner + 4);
  if (colon == std::string::npos) return {};
  auto start = colon + 3;
  auto end = json.find('"', start);
  return end == std::string::npos ? std::string() : json.substr(start, end - start);
}

void check_payload_length(std::string_view payload, const char* source) {
  size_t n = utf16_length(payload);
  if (n > kMaxPlaintextLength) {
    throw Error(ErrorCode::PAYLOAD_TOO_LARGE, std::string(source) + ": message too long (" + std::to_string(n) +
                                                  "); the maximum for an encrypted message is " +
                                                  std::to_string(kMaxPlaintextLength));
  }
}

template <typename Fn>
auto as_import_failure(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw Error(ErrorCode::IMPORT_FAILED, std::string(what) + ": " + std::string(e.code_name()));
  }
}

SecretBytes serialize_secret(const google::protobuf::MessageLite& m) {
  SecretBytes out(m.ByteSizeLong());
  if (!m.SerializeToArray(out.data(), static_cast<int>(out.size()))) {
    throw Error(ErrorCode::INTERNAL, "protobuf serialisation failed");
  }
  return out;
}

river::HybridGroupSessionKey parse_hybrid_key(std::span<const uint8_t> bytes) {
  river::HybridGroupSessionKey key;
  if (!key.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error(ErrorCode::IMPORT_FAILED, "hybrid session key is not a HybridGroupSessionKey");
  }
  return key;
}

std::span<const uint8_t> bytes_of(const std::string& s) { return crypto::as_bytes(s); }

}  // namespace

namespace {
// The import checks of protocol.md section 6, plus the key length (the client
// would take a 16-byte key as AES-128; this library speaks AES-256 only).
void check_hybrid_key(const river::HybridGroupSessionKey& key, std::string_view stream_id,
                      std::string_view session_id) {
  if (crypto::hex_encode(bytes_of(key.stream_id())) != stream_id) {
    throw Error(ErrorCode::IMPORT_FAILED, "stream id mismatch for hybrid group session");
  }
  if (crypto::hex_encode(bytes_of(key.session_id())) != session_id) {
    throw Error(ErrorCode::IMPORT_FAILED, "session id mismatch for hybrid group session");
  }
  auto expected = hybrid_session_key_hash(bytes_of(key.stream_id()), bytes_of(key.key()), key.miniblock_num(),
                                          bytes_of(key.miniblock_hash()));
  if (!crypto::constant_time_equal(expected, bytes_of(key.session_id()))) {
    throw Error(ErrorCode::IMPORT_FAILED, "hybrid session id is not the hash of its key");
  }
  if (key.key().size() != crypto::kAesGcmKeySize) {
    throw Error(ErrorCode::IMPORT_FAILED, "hybrid session key is not a 32-byte AES-256 key");
  }
}
}  // namespace

std::array<uint8_t, 32> hybrid_session_key_hash(std::span<const uint8_t> stream_id, std::span<const uint8_t> key,
                                                int64_t miniblock_num, std::span<const uint8_t> miniblock_hash) {
  SecretBytes input(std::string_view("RVR_HSK:"));
  input.append(stream_id);
  input.append(key);
  uint8_t num[8];
  auto u = static_cast<uint64_t>(miniblock_num);
  for (int i = 0; i < 8; ++i) num[i] = static_cast<uint8_t>(u >> (56 - 8 * i));
  input.append(num);
  input.append(miniblock_hash);
  return crypto::sha256(input.span());
}

using Lock = std::lock_guard<std::recursive_mutex>;

EncryptionDevice::EncryptionDevice(CryptoStore& store, crypto::RandomSource& rng) : store_(store), rng_(rng) {}
EncryptionDevice::~EncryptionDevice() = default;

void EncryptionDevice::init(const DeviceInitOptions& options) {
  Lock l(mu_);
  SecretBytes key = options.pickle_key ? *options.pickle_key : SecretBytes(kDefaultPickleKey);
  if (key.empty()) throw Error(ErrorCode::INVALID_ARGUMENT, "the pickle key is empty");
  pickle_key_ = std::move(key);
  account_.reset();
  clear_caches();
  if (options.from_exported_device != nullptr) {
    import_exported_device(*options.from_exported_device);
  } else if (auto pickled = store_.get_account()) {
    account_ = olm::Account::unpickle(pickle_key_, *pickled);
  } else {
    account_ = olm::Account::create(rng_);
    save_account();
  }
  refresh_fallback_key();
  device_key_ = account_->curve25519_key();
  ed25519_key_ = account_->ed25519_key();
}

bool EncryptionDevice::initialized() const {
  Lock l(mu_);
  return account_.has_value();
}

olm::Account& EncryptionDevice::account() {
  if (!account_) throw Error(ErrorCode::NOT_INITIALIZED, "the encryption device is not initialised");
  return *account_;
}

void EncryptionDevice::save_account() { store_.store_account(account().pickle(pickle_key_)); }

void EncryptionDevice::refresh_fallback_key() {
  auto key = first_fallback_key(account().unpublished_fallback_key());
  if (key.empty()) {
    account().generate_fallback_key(rng_);
    save_account();
    key = first_fallback_key(account().unpublished_fallback_key());
  }
  fallback_key_ = key;
}

void EncryptionDevice::import_exported_device(const river::ExportedDevice& exported) {
  SecretBytes their_key(exported.picklekey());
  auto account = as_import_failure("exported account", [&] {
    return olm::Account::unpickle(their_key, exported.pickledaccount());
  });
  std::vector<GroupSessionRecord> outbound, inbound;
  for (const auto& s : exported.outboundsessions()) {
    auto session = as_import_failure("exported outbound session", [&] {
      return olm::OutboundGroupSession::unpickle(their_key, s.session());
    });
    if (session.session_id() != s.session_id()) {
      throw Error(ErrorCode::IMPORT_FAILED, "exported outbound session id does not match its pickle");
    }
    outbound.push_back({s.stream_id(), s.session_id(), session.pickle(pickle_key_)});
  }
  for (const auto& s : exported.inboundsessions()) {
    auto session = as_import_failure("exported inbound session", [&] {
      return olm::InboundGroupSession::unpickle(their_key, s.session());
    });
    if (session.session_id() != s.session_id()) {
      throw Error(ErrorCode::IMPORT_FAILED, "exported inbound session id does not match its pickle");
    }
    inbound.push_back({s.stream_id(), s.session_id(), session.pickle(pickle_key_)});
  }
  std::vector<HybridSessionRecord> hybrid;
  for (const auto& s : exported.hybridgroupsessions()) {
    check_hybrid_key(parse_hybrid_key(bytes_of(s.session_key())), s.stream_id(), s.session_id());
    hybrid.push_back({s.stream_id(), s.session_id(), SecretBytes(bytes_of(s.session_key())), s.miniblock_num()});
  }
  auto account_pickle = account.pickle(pickle_key_);
  store_.transaction([&] {
    store_.store_account(account_pickle);
    for (const auto& r : outbound) store_.store_outbound_session(r);
    for (const auto& r : inbound) store_.store_inbound_session(r);
    for (const auto& r : hybrid) store_.store_hybrid_session(r);
  });
  clear_caches();
  account_ = std::move(account);
}

std::string EncryptionDevice::device_key() const {
  Lock l(mu_);
  if (!account_) throw Error(ErrorCode::NOT_INITIALIZED, "the encryption device is not initialised");
  return device_key_;
}
std::string EncryptionDevice::fallback_key() const {
  Lock l(mu_);
  if (!account_) throw Error(ErrorCode::NOT_INITIALIZED, "the encryption device is not initialised");
  return fallback_key_;
}
std::string EncryptionDevice::ed25519_key() const {
  Lock l(mu_);
  if (!account_) throw Error(ErrorCode::NOT_INITIALIZED, "the encryption device is not initialised");
  return ed25519_key_;
}
UserDevice EncryptionDevice::user_device() const { return {device_key(), fallback_key()}; }

std::string EncryptionDevice::sign(std::string_view message) {
  Lock l(mu_);
  return account().sign(message);
}

void EncryptionDevice::verify_signature(std::string_view key, std::string_view message,
                                        std::string_view signature) const {
  olm::Utility().ed25519_verify(key, message, signature);
}

void EncryptionDevice::mark_keys_as_published() {
  Lock l(mu_);
  account().mark_keys_as_published();
  save_account();
}

void EncryptionDevice::forget_old_fallback_key() {
  Lock l(mu_);
  account().forget_old_fallback_key();
  save_account();
}

olm::OlmMessage EncryptionDevice::encrypt_using_fallback_key(std::string_view their_identity_key,
                                                             std::string_view their_fallback_key,
                                                             std::string_view payload) {
  auto out = encrypt_to_devices(payload, {{std::string(their_identity_key), std::string(their_fallback_key)}}, 1);
  if (out[0].error) throw *out[0].error;
  return std::move(*out[0].message);
}

SecretBytes EncryptionDevice::decrypt_message(std::string_view ciphertext, std::string_view their_identity_key,
                                              size_t message_type) {
  if (message_type != 0) throw Error(ErrorCode::INVALID_ARGUMENT, "only pre-key messages are supported");
  check_payload_length(ciphertext, "decryptMessage");
  Lock l(mu_);
  try {
    // With fallback keys, making an inbound session leaves the account as it was
    // (no one-time key is used up), so nothing is written back. (The client
    // stores the account again here; that write changes nothing.)
    auto session = olm::Session::create_inbound_from(account(), their_identity_key, ciphertext);
    return session.decrypt(0, ciphertext);
  } catch (const Error& e) {
    if (!is_olm_error(e.code())) throw;
    throw Error(ErrorCode::DECRYPTION_FAILED, "error decrypting pre-key message: " + std::string(e.code_name()));
  }
}

std::string EncryptionDevice::create_outbound_group_session(std::string_view stream_id) {
  Lock l(mu_);
  account();  // NOT_INITIALIZED before init
  auto session = olm::OutboundGroupSession::create(rng_);
  auto session_id = session.session_id();
  auto inbound = olm::InboundGroupSession::create(session.session_key());
  GroupSessionRecord out{std::string(stream_id), session_id, session.pickle(pickle_key_), 0};
  GroupSessionRecord in{std::string(stream_id), session_id, inbound.pickle(pickle_key_)};
  store_.transaction([&] {
    store_.store_outbound_session(out);
    store_.store_inbound_session(in);
  });
  {
    std::lock_guard c(cache_mu_);
    inbound_cache_.erase(std::string(stream_id) + "|" + session_id);
  }
  outbound_cache_.insert_or_assign(std::string(stream_id), OutboundState{std::move(session), 0});
  return session_id;
}

EncryptionDevice::EnsuredSession EncryptionDevice::ensure_outbound_group_session(std::string_view stream_id) {
  Lock l(mu_);
  auto cached = outbound_cache_.find(stream_id);
  if (cached != outbound_cache_.end()) return {cached->second.session.session_id(), false};
  if (auto record = store_.get_outbound_session(stream_id)) return {record->session_id, false};
  return {create_outbound_group_session(stream_id), true};
}

std::optional<OutboundGroupSessionKey> EncryptionDevice::outbound_group_session_key(std::string_view stream_id) {
  Lock l(mu_);
  auto cached = outbound_cache_.find(stream_id);
  if (cached != outbound_cache_.end()) {
    const auto& st = cached->second;
    return OutboundGroupSessionKey{st.session.message_index(), st.session.session_key(), st.session.session_id()};
  }
  auto record = store_.get_outbound_session(stream_id);
  if (!record) return std::nullopt;
  auto session = olm::OutboundGroupSession::unpickle(pickle_key_, record->pickle);
  return OutboundGroupSessionKey{std::max(session.message_index(), record->reserved_until), session.session_key(),
                                 session.session_id()};
}

namespace {
// Moves an outbound ratchet forward to `index` (only after a crash, or when
// another process holds the indices in between).
void advance(olm::OutboundGroupSession& session, uint32_t index) {
  static constexpr uint8_t kFiller[1] = {0};
  while (session.message_index() < index) (void)session.encrypt(kFiller);
}
}  // namespace

EncryptionDevice::OutboundState& EncryptionDevice::outbound_state(std::string_view stream_id) {
  auto it = outbound_cache_.find(stream_id);
  if (it != outbound_cache_.end()) return it->second;
  auto record = store_.get_outbound_session(stream_id);
  if (!record) {
    throw Error(ErrorCode::SESSION_NOT_FOUND, "unknown outbound group session for stream " + std::string(stream_id));
  }
  // reserved_until stays as stored: the first encrypt reserves a new block,
  // advancing past every index anyone may have used.
  OutboundState st{olm::OutboundGroupSession::unpickle(pickle_key_, record->pickle), record->reserved_until};
  st.reserved_until = std::min(st.reserved_until, st.session.message_index());  // force a reservation first
  return outbound_cache_.emplace(std::string(stream_id), std::move(st)).first->second;
}

void EncryptionDevice::reserve_block(std::string_view stream_id, OutboundState& st) {
  store_.transaction([&] {
    auto record = store_.get_outbound_session(stream_id);
    if (!record) {
      throw Error(ErrorCode::SESSION_NOT_FOUND, "unknown outbound group session for stream " + std::string(stream_id));
    }
    if (record->session_id != st.session.session_id()) {
      // Another process made a new session for the stream: use it from now on.
      st.session = olm::OutboundGroupSession::unpickle(pickle_key_, record->pickle);
    }
    uint32_t start = std::max(record->reserved_until, st.session.message_index());
    advance(st.session, start);
    record->pickle = st.session.pickle(pickle_key_);
    record->reserved_until = start + kOutboundReservation;
    store_.store_outbound_session(*record);
    st.reserved_until = record->reserved_until;
  });
}

GroupCiphertext EncryptionDevice::encrypt_group_message(std::string_view payload, std::string_view stream_id) {
  check_payload_length(payload, "encryptGroupMessage");
  Lock l(mu_);
  account();
  auto& st = outbound_state(stream_id);
  if (st.session.message_index() >= st.reserved_until) reserve_block(stream_id, st);
  GroupCiphertext result;
  result.message_index = st.session.message_index();
  result.ciphertext = st.session.encrypt(crypto::as_bytes(payload));
  result.session_id = st.session.session_id();
  return result;
}

std::vector<EncryptionDevice::DeviceCiphertext> EncryptionDevice::encrypt_to_devices(
    std::string_view payload, const std::vector<UserDevice>& devices, unsigned threads) {
  check_payload_length(payload, "encryptUsingFallbackKey");
  Lock l(mu_);
  const olm::Account& acct = account();
  std::vector<SecretBytes> seeds;
  seeds.reserve(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) seeds.push_back(rng_.bytes(32));
  std::vector<DeviceCiphertext> out(devices.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < devices.size();) {
      try {
        // libolm only reads the account here, so threads may share it.
        crypto::SeededRandom r(seeds[i].span());
        auto session = olm::Session::create_outbound(acct, devices[i].device_key, devices[i].fallback_key, r);
        auto message = session.encrypt(crypto::as_bytes(payload), r);
        if (message.type != 0) throw Error(ErrorCode::INTERNAL, "a fresh olm session did not produce a pre-key message");
        out[i].message = std::move(message);
      } catch (const Error& e) {
        out[i].error = e;
      }
    }
  };
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(devices.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

bool EncryptionDevice::with_inbound_group_session(std::string_view stream_id, std::string_view session_id,
                                                  const std::function<void(olm::InboundGroupSession&)>& fn) {
  std::string key = std::string(stream_id) + "|" + std::string(session_id);
  std::shared_ptr<CachedInbound> entry;
  {
    std::lock_guard c(cache_mu_);
    auto it = inbound_cache_.find(key);
    if (it != inbound_cache_.end()) entry = it->second;
  }
  if (!entry) {
    auto session = inbound_group_session(stream_id, session_id);
    if (!session) return false;
    auto fresh = std::shared_ptr<CachedInbound>(new CachedInbound{{}, std::move(*session)});
    std::lock_guard c(cache_mu_);
    if (inbound_cache_.size() >= 10000) inbound_cache_.clear();  // a simple bound
    entry = inbound_cache_.emplace(key, fresh).first->second;
  }
  std::lock_guard one(entry->mu);
  fn(entry->session);
  return true;
}

void EncryptionDevice::clear_caches() {
  outbound_cache_.clear();
  std::lock_guard c(cache_mu_);
  inbound_cache_.clear();
  for (auto& [k, v] : hybrid_cache_) crypto::wipe(v.mutable_key()->data(), v.key().size());
  hybrid_cache_.clear();
}

ImportOutcome EncryptionDevice::add_inbound_group_session(std::string_view stream_id, std::string_view session_id,
                                                          crypto::SecretView session_key) {
  std::optional<olm::InboundGroupSession> session;
  try {
    session = olm::InboundGroupSession::import_session(session_key);
  } catch (const Error&) {
    session = as_import_failure("megolm session key", [&] { return olm::InboundGroupSession::create(session_key); });
  }
  if (session->session_id() != session_id) {
    throw Error(ErrorCode::IMPORT_FAILED, "mismatched group session id for stream " + std::string(stream_id));
  }
  Lock l(mu_);
  account();
  if (auto existing = store_.get_inbound_session(stream_id, session_id)) {
    try {
      auto old = olm::InboundGroupSession::unpickle(pickle_key_, existing->pickle);
      if (old.first_known_index() <= session->first_known_index()) return ImportOutcome::kKeptExisting;
    } catch (const Error&) {
      // An existing entry that no longer opens is replaced by the good one.
    }
  }
  store_.store_inbound_session({std::string(stream_id), std::string(session_id), session->pickle(pickle_key_)});
  std::lock_guard c(cache_mu_);
  inbound_cache_.erase(std::string(stream_id) + "|" + std::string(session_id));
  return ImportOutcome::kImported;
}

std::optional<olm::InboundGroupSession> EncryptionDevice::inbound_group_session(std::string_view stream_id,
                                                                                std::string_view session_id) {
  Lock l(mu_);
  auto record = store_.get_inbound_session(stream_id, session_id);
  if (!record) return std::nullopt;
  return olm::InboundGroupSession::unpickle(pickle_key_, record->pickle);
}

bool EncryptionDevice::has_inbound_session_keys(std::string_view stream_id, std::string_view session_id) {
  auto record = store_.get_inbound_session(stream_id, session_id);
  return record.has_value() && record->stream_id == stream_id;
}

std::optional<GroupEncryptionSession> EncryptionDevice::export_inbound_group_session(std::string_view stream_id,
                                                                                     std::string_view session_id) {
  auto session = inbound_group_session(stream_id, session_id);
  if (!session) return std::nullopt;
  auto key = session->export_session(session->first_known_index());
  return GroupEncryptionSession{std::string(stream_id), std::string(session_id), key.str(),
                                std::string(kGroupEncryptionAlgorithmId)};
}

std::vector<GroupEncryptionSession> EncryptionDevice::export_inbound_group_sessions() {
  Lock l(mu_);
  std::vector<GroupEncryptionSession> out;
  for (const auto& r : store_.all_inbound_sessions()) {
    auto session = olm::InboundGroupSession::unpickle(pickle_key_, r.pickle);
    out.push_back({r.stream_id, r.session_id, session.export_session(session.first_known_index()).str(),
                   std::string(kGroupEncryptionAlgorithmId)});
  }
  return out;
}

std::vector<std::string> EncryptionDevice::inbound_group_session_ids(std::string_view stream_id) {
  return store_.inbound_session_ids(stream_id);
}

river::HybridGroupSessionKey EncryptionDevice::create_hybrid_group_session(std::string_view stream_id,
                                                                           int64_t miniblock_num,
                                                                           std::span<const uint8_t> miniblock_hash) {
  std::vector<uint8_t> stream_bytes;
  try {
    stream_bytes = crypto::hex_decode(stream_id);
  } catch (const Error&) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "stream id is not hex");
  }
  Lock l(mu_);
  account();
  auto key = rng_.bytes(crypto::kAesGcmKeySize);
  auto id = hybrid_session_key_hash(stream_bytes, key.span(), miniblock_num, miniblock_hash);
  river::HybridGroupSessionKey session;
  session.set_session_id(std::string(id.begin(), id.end()));
  session.set_stream_id(std::string(stream_bytes.begin(), stream_bytes.end()));
  session.set_key(std::string(key.view()));
  session.set_miniblock_num(miniblock_num);
  session.set_miniblock_hash(std::string(miniblock_hash.begin(), miniblock_hash.end()));
  store_.store_hybrid_session({std::string(stream_id), crypto::hex_encode(id), serialize_secret(session), miniblock_num});
  {
    std::lock_guard c(cache_mu_);
    hybrid_cache_.erase("latest|" + std::string(stream_id));
  }
  return session;
}

river::HybridGroupSessionKey EncryptionDevice::ensure_hybrid_group_session(std::string_view stream_id,
                                                                           int64_t miniblock_num,
                                                                           std::span<const uint8_t> miniblock_hash,
                                                                           bool& created) {
  Lock l(mu_);
  if (auto existing = hybrid_group_session_key_for_stream(stream_id)) {
    created = false;
    return *existing;
  }
  created = true;
  return create_hybrid_group_session(stream_id, miniblock_num, miniblock_hash);
}

std::optional<river::HybridGroupSessionKey> EncryptionDevice::hybrid_group_session_key_for_stream(
    std::string_view stream_id) {
  std::string key = "latest|" + std::string(stream_id);
  {
    std::lock_guard c(cache_mu_);
    auto it = hybrid_cache_.find(key);
    if (it != hybrid_cache_.end()) return it->second;
  }
  auto record = store_.latest_hybrid_session(stream_id);
  if (!record) return std::nullopt;
  auto parsed = parse_hybrid_key(record->session_key.span());
  std::lock_guard c(cache_mu_);
  hybrid_cache_.insert_or_assign(key, parsed);
  return parsed;
}

std::optional<river::HybridGroupSessionKey> EncryptionDevice::hybrid_group_session_key(std::string_view stream_id,
                                                                                       std::string_view session_id) {
  std::string key = "id|" + std::string(stream_id) + "|" + std::string(session_id);
  {
    std::lock_guard c(cache_mu_);
    auto it = hybrid_cache_.find(key);
    if (it != hybrid_cache_.end()) return it->second;
  }
  auto record = store_.get_hybrid_session(stream_id, session_id);
  if (!record) return std::nullopt;
  auto parsed = parse_hybrid_key(record->session_key.span());
  std::lock_guard c(cache_mu_);
  if (hybrid_cache_.size() >= 10000) hybrid_cache_.clear();
  hybrid_cache_.insert_or_assign(key, parsed);
  return parsed;
}

void EncryptionDevice::add_hybrid_group_session(std::string_view stream_id, std::string_view session_id,
                                                std::string_view session_key_hex) {
  SecretBytes bytes;
  try {
    auto raw = crypto::hex_decode(session_key_hex);
    bytes = SecretBytes(std::span<const uint8_t>(raw));
    crypto::wipe(raw.data(), raw.size());
  } catch (const Error&) {
    throw Error(ErrorCode::IMPORT_FAILED, "hybrid session key is not hex");
  }
  auto key = parse_hybrid_key(bytes.span());
  check_hybrid_key(key, stream_id, session_id);
  Lock l(mu_);
  account();
  store_.store_hybrid_session({std::string(stream_id), std::string(session_id), std::move(bytes), key.miniblock_num()});
  std::lock_guard c(cache_mu_);
  hybrid_cache_.erase("latest|" + std::string(stream_id));
  hybrid_cache_.erase("id|" + std::string(stream_id) + "|" + std::string(session_id));
}

bool EncryptionDevice::has_hybrid_group_session_key(std::string_view stream_id, std::string_view session_id) {
  return store_.get_hybrid_session(stream_id, session_id).has_value();
}

std::optional<GroupEncryptionSession> EncryptionDevice::export_hybrid_group_session(std::string_view stream_id,
                                                                                    std::string_view session_id) {
  auto record = store_.get_hybrid_session(stream_id, session_id);
  if (!record) return std::nullopt;
  return GroupEncryptionSession{record->stream_id, record->session_id, crypto::hex_encode(record->session_key.span()),
                                std::string(kHybridGroupEncryptionAlgorithmId)};
}

std::vector<GroupEncryptionSession> EncryptionDevice::export_hybrid_group_sessions() {
  std::vector<GroupEncryptionSession> out;
  for (const auto& r : store_.all_hybrid_sessions()) {
    out.push_back({r.stream_id, r.session_id, crypto::hex_encode(r.session_key.span()),
                   std::string(kHybridGroupEncryptionAlgorithmId)});
  }
  return out;
}

std::vector<std::string> EncryptionDevice::hybrid_group_session_ids(std::string_view stream_id) {
  return store_.hybrid_session_ids(stream_id);
}

river::ExportedDevice EncryptionDevice::export_device() {
  Lock l(mu_);
  river::ExportedDevice out;
  out.set_picklekey(std::string(pickle_key_.view()));
  out.set_pickledaccount(account().pickle(pickle_key_));
  for (const auto& r : store_.all_outbound_sessions()) {
    auto* s = out.add_outboundsessions();
    s->set_session_id(r.session_id);
    s->set_stream_id(r.stream_id);
    auto cached = outbound_cache_.find(r.stream_id);
    bool same = cached != outbound_cache_.end() && cached->second.session.session_id() == r.session_id;
    auto copy = olm::OutboundGroupSession::unpickle(pickle_key_, same ? cached->second.session.pickle(pickle_key_) : r.pickle);
    advance(copy, std::max(r.reserved_until, same ? cached->second.reserved_until : 0u));
    s->set_session(copy.pickle(pickle_key_));
  }
  for (const auto& r : store_.all_inbound_sessions()) {
    auto* s = out.add_inboundsessions();
    s->set_session_id(r.session_id);
    s->set_stream_id(r.stream_id);
    s->set_session(r.pickle);
  }
  for (const auto& r : store_.all_hybrid_sessions()) {
    auto* s = out.add_hybridgroupsessions();
    s->set_session_id(r.session_id);
    s->set_stream_id(r.stream_id);
    s->set_session_key(std::string(r.session_key.view()));
    s->set_miniblock_num(r.miniblock_num);
  }
  return out;
}

}  // namespace towns
