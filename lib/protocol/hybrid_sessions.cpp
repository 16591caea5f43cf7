#include "towns/crypto/aead.h"
#include "common/stream_id.h"
#include "towns/crypto/encoding.h"
#include "wire/wire.h"
#include "towns/protocol/encryption_device.h"

namespace towns {

using crypto::SecretBytes;

namespace {
std::span<const uint8_t> bytes_of(const std::string& s) { return crypto::as_bytes(s); }

[[noreturn]] void import_failed(const char* why) { throw Error(ErrorCode::IMPORT_FAILED, why); }
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

std::string HybridSessionKey::session_id_hex() const { return crypto::hex_encode(bytes_of(session_id)); }
std::string HybridSessionKey::stream_id_hex() const { return crypto::hex_encode(bytes_of(stream_id)); }

SecretBytes HybridSessionKey::encode() const {
  // river.HybridGroupSessionKey, fields in number order, defaults omitted.
  std::vector<uint8_t, crypto::WipingAllocator<uint8_t>> out;
  wire::Writer w(out);
  w.bytes_if_set(1, session_id);
  w.bytes_if_set(2, stream_id);
  w.bytes_if_set(3, key.span());
  w.varint_if_set(4, static_cast<uint64_t>(miniblock_num));
  w.bytes_if_set(5, miniblock_hash);
  return SecretBytes(std::span<const uint8_t>(out.data(), out.size()));
}

HybridSessionKey HybridSessionKey::decode(std::span<const uint8_t> bytes) {
  HybridSessionKey out;
  try {
    // All fields are bytes (no UTF-8 rule) but miniblock_num.
    wire::read_fields(bytes, "HybridGroupSessionKey", [&](wire::Reader& r, uint32_t field, wire::WireType type) {
      if (type == wire::kVarint && field == 4) {
        out.miniblock_num = static_cast<int64_t>(r.varint());
        return true;
      }
      if (type != wire::kLengthDelimited) return false;
      switch (field) {
        case 1: out.session_id = r.text(); return true;
        case 2: out.stream_id = r.text(); return true;
        case 3: out.key = SecretBytes(r.bytes()); return true;
        case 5: out.miniblock_hash = r.text(); return true;
        default: return false;
      }
    });
  } catch (const Error&) {
    import_failed("hybrid session key is not a HybridGroupSessionKey");
  }
  return out;
}

HybridSessionRecord HybridSessions::prepare_import(std::string_view stream_id, std::string_view session_id,
                                                   crypto::SecretView session_key_hex) {
  SecretBytes bytes;
  try {
    bytes = crypto::hex_decode_secret(session_key_hex.view());
  } catch (const Error&) {
    import_failed("hybrid session key is not hex");
  }
  auto key = HybridSessionKey::decode(bytes.span());
  // The import checks of docs/protocol.md section 6, plus the key length (the
  // client would use a 16- or 24-byte key as AES-128 or AES-192; this library speaks AES-256 only).
  if (key.stream_id_hex() != stream_id) import_failed("stream id mismatch for hybrid group session");
  if (key.session_id_hex() != session_id) import_failed("session id mismatch for hybrid group session");
  auto expected = hybrid_session_key_hash(bytes_of(key.stream_id), key.key.span(), key.miniblock_num,
                                          bytes_of(key.miniblock_hash));
  if (!crypto::constant_time_equal(expected, bytes_of(key.session_id))) {
    import_failed("hybrid session id is not the hash of its key");
  }
  if (key.key.size() != crypto::kAesGcmKeySize) import_failed("hybrid session key is not a 32-byte AES-256 key");
  return {std::string(stream_id), std::string(session_id), std::move(bytes), key.miniblock_num};
}

HybridSessions::Sealed HybridSessions::encrypt(const HybridSessionKey& key, std::span<const uint8_t> plaintext) {
  auto aes = crypto::AesGcm::New(key.key);
  auto iv = ctx_.rng.bytes(crypto::kAesGcmIvSize);
  auto ciphertext = aes.encrypt(iv.span(), plaintext);
  // Through a string_view (one copy), not from uint8_t iterators (a byte at a time).
  return {std::string(iv.view()), std::string(crypto::as_text(ciphertext))};
}

SecretBytes HybridSessions::decrypt(const HybridSessionKey& key, std::span<const uint8_t> iv,
                                    std::span<const uint8_t> ciphertext) {
  if (iv.size() != crypto::kAesGcmIvSize) throw Error(ErrorCode::DECRYPTION_FAILED, "IV must be 12 bytes");
  if (ciphertext.size() < crypto::kAesGcmTagSize + 1) {
    throw Error(ErrorCode::DECRYPTION_FAILED, "ciphertext can not be this short");
  }
  return crypto::AesGcm::New(key.key).decrypt(iv, ciphertext);
}

void HybridSessions::refresh_if_stale() {
  uint64_t version = ctx_.store.data_version();
  if (version != data_version_) {
    by_id_.clear();
    latest_.clear();
    data_version_ = version;
  }
}

HybridSessionKey HybridSessions::create(std::string_view stream_id, int64_t miniblock_num,
                                        std::span<const uint8_t> miniblock_hash) {
  auto stream_bytes = stream_id_bytes(stream_id);
  check_new_session_miniblock(miniblock_num, miniblock_hash);
  HybridSessionKey key;
  key.stream_id.assign(stream_bytes.begin(), stream_bytes.end());
  key.key = ctx_.rng.bytes(crypto::kAesGcmKeySize);
  key.miniblock_num = miniblock_num;
  key.miniblock_hash.assign(miniblock_hash.begin(), miniblock_hash.end());
  auto id = hybrid_session_key_hash(stream_bytes, key.key.span(), miniblock_num, miniblock_hash);
  key.session_id.assign(id.begin(), id.end());
  StoreChanges changes;
  changes.hybrid_sessions.push_back({std::string(stream_id), key.session_id_hex(), key.encode(), miniblock_num});
  MutexLock l(mu_);
  ctx_.store.save_changes(changes);
  latest_.erase(std::string(stream_id));
  return key;
}

HybridSessions::Ensured HybridSessions::ensure(std::string_view stream_id, int64_t miniblock_num,
                                               std::span<const uint8_t> miniblock_hash) {
  // One lock around look-up and creation: concurrent callers agree on one session.
  MutexLock l(ensure_mu_);
  if (auto existing = latest(stream_id)) return {std::move(*existing), false};
  return {create(stream_id, miniblock_num, miniblock_hash), true};
}

std::optional<HybridSessionKey> HybridSessions::latest(std::string_view stream_id) {
  MutexLock l(mu_);
  refresh_if_stale();
  auto it = latest_.find(stream_id);
  if (it != latest_.end()) return it->second;
  auto record = ctx_.store.latest_hybrid_session(stream_id);
  if (!record) return std::nullopt;
  auto key = HybridSessionKey::decode(record->session_key.span());
  if (latest_.size() >= kCacheSize) latest_.clear();  // SecretBytes wipe as they go
  return latest_.insert_or_assign(std::string(stream_id), std::move(key)).first->second;
}

std::optional<HybridSessionKey> HybridSessions::get(std::string_view stream_id, std::string_view session_id) {
  Key k{std::string(stream_id), std::string(session_id)};
  MutexLock l(mu_);
  refresh_if_stale();
  auto it = by_id_.find(k);
  if (it != by_id_.end()) return it->second;
  auto record = ctx_.store.get_hybrid_session(stream_id, session_id);
  if (!record) return std::nullopt;
  auto key = HybridSessionKey::decode(record->session_key.span());
  if (by_id_.size() >= kCacheSize) by_id_.erase(by_id_.begin());  // wiped as it goes
  return by_id_.insert_or_assign(std::move(k), std::move(key)).first->second;
}

void HybridSessions::forget(std::string_view stream_id) {
  MutexLock l(mu_);
  latest_.erase(std::string(stream_id));
  std::erase_if(by_id_, [&](const auto& kv) { return kv.first.stream_id == stream_id; });
}

void HybridSessions::clear() {
  MutexLock l(mu_);
  by_id_.clear();
  latest_.clear();
}

bool HybridSessions::has(std::string_view stream_id, std::string_view session_id) {
  return ctx_.store.get_hybrid_session(stream_id, session_id).has_value();
}

std::vector<std::string> HybridSessions::ids(std::string_view stream_id) {
  return ctx_.store.hybrid_session_ids(stream_id);
}

std::optional<GroupEncryptionSession> HybridSessions::export_session(std::string_view stream_id,
                                                                     std::string_view session_id) {
  auto record = ctx_.store.get_hybrid_session(stream_id, session_id);
  if (!record) return std::nullopt;
  return GroupEncryptionSession{record->stream_id, record->session_id,
                                crypto::hex_encode_secret(record->session_key.span()),
                                std::string(kHybridGroupEncryptionAlgorithmId)};
}

std::vector<GroupEncryptionSession> HybridSessions::export_all() {
  std::vector<GroupEncryptionSession> out;
  for (const auto& r : ctx_.store.all_hybrid_sessions()) {
    out.push_back({r.stream_id, r.session_id, crypto::hex_encode_secret(r.session_key.span()),
                   std::string(kHybridGroupEncryptionAlgorithmId)});
  }
  return out;
}

}  // namespace towns
