#include "towns/protocol/group_encryption.h"

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns {
namespace {

std::span<const uint8_t> bytes_of(const std::string& s) { return crypto::as_bytes(s); }

void check_payload_length(std::string_view payload) {
  if (utf16_length(payload) > kMaxPlaintextLength) {
    throw Error(ErrorCode::PAYLOAD_TOO_LARGE, "message too long for group encryption (maximum " +
                                                  std::to_string(kMaxPlaintextLength) + ")");
  }
}

DecryptedPayload by_version(river::EncryptedDataVersion version, crypto::SecretBytes plaintext,
                            std::optional<uint32_t> index, bool base64_payload) {
  switch (version) {
    case river::ENCRYPTED_DATA_VERSION_0:
      return {std::move(plaintext), index};
    case river::ENCRYPTED_DATA_VERSION_1:
      if (!base64_payload) return {std::move(plaintext), index};
      try {
        return {crypto::base64_decode_secret(plaintext.view(), crypto::Base64Padding::kOptional), index};
      } catch (const Error&) {
        throw Error(ErrorCode::DECRYPTION_FAILED, "version 1 payload is not base64");
      }
    default:
      throw Error(ErrorCode::GROUP_DECRYPTION_INVALID_VERSION, "unsupported version");
  }
}

}  // namespace

// ---- GroupEncryption

std::string GroupEncryption::ensure_outbound_session(std::string_view stream_id,
                                                     const EnsureOutboundSessionOptions& opts) {
  auto ensured = device_.ensure_outbound_group_session(stream_id);
  if (ensured.created) share_session(stream_id, ensured.session_id, opts.priority_user_ids);
  return ensured.session_id;
}

bool GroupEncryption::has_outbound_session(std::string_view stream_id) {
  return device_.outbound_group_session_key(stream_id).has_value();
}

void GroupEncryption::share_session(std::string_view stream_id, std::string_view session_id,
                                   const std::vector<std::string>& priority_user_ids) {
  if (client_ == nullptr) return;
  auto session = device_.export_inbound_group_session(stream_id, session_id);
  if (!session) throw Error(ErrorCode::SESSION_NOT_FOUND, "session key not found for session " + std::string(session_id));
  client_->encrypt_and_share_group_sessions_to_stream(stream_id, {*session}, GroupEncryptionAlgorithm::kGroupEncryption,
                                                      priority_user_ids);
}

river::EncryptedData GroupEncryption::encrypt(std::string_view stream_id, std::span<const uint8_t> payload) {
  auto text = crypto::base64_encode(payload, crypto::Base64Padding::kPadded);
  check_payload_length(text);  // before a session is created: a refusal changes nothing
  ensure_outbound_session(stream_id);
  auto result = device_.encrypt_group_message(text, stream_id);
  river::EncryptedData out;
  out.set_algorithm(std::string(kGroupEncryptionAlgorithmId));
  out.set_sender_key(device_.device_key());
  out.set_ciphertext(result.ciphertext);
  out.set_session_id(result.session_id);
  out.set_version(river::ENCRYPTED_DATA_VERSION_1);
  return out;
}

river::EncryptedData GroupEncryption::encrypt_deprecated_v0(std::string_view stream_id, std::string_view payload) {
  check_payload_length(payload);
  ensure_outbound_session(stream_id);
  auto result = device_.encrypt_group_message(payload, stream_id);
  river::EncryptedData out;
  out.set_algorithm(std::string(kGroupEncryptionAlgorithmId));
  out.set_sender_key(device_.device_key());
  out.set_ciphertext(result.ciphertext);
  out.set_session_id(result.session_id);
  out.set_version(river::ENCRYPTED_DATA_VERSION_0);
  return out;
}

// ---- GroupDecryption

bool GroupDecryption::has_fields(const river::EncryptedData& content) {
  return !content.sender_key().empty() && !content.session_id().empty() && !content.ciphertext().empty();
}

void GroupDecryption::check_fields(const river::EncryptedData& content) {
  if (!has_fields(content)) throw Error(ErrorCode::GROUP_DECRYPTION_MISSING_FIELDS, "Missing fields in input");
}

DecryptedPayload GroupDecryption::decrypt_with(olm::InboundGroupSession& session, const river::EncryptedData& content) {
  olm::GroupPlaintext result;
  try {
    result = session.decrypt(content.ciphertext());
  } catch (const Error& e) {
    if (!is_olm_error(e.code())) throw;
    throw Error(ErrorCode::DECRYPTION_FAILED, "megolm decryption failed: " + std::string(e.code_name()));
  }
  return by_version(content.version(), std::move(result.plaintext), result.message_index, true);
}

void GroupDecryption::remember(std::string_view stream_id, const river::EncryptedData& content, uint32_t index) {
  auto fingerprint = crypto::sha256(bytes_of(content.ciphertext()));
  std::string key = std::string(stream_id) + "|" + content.session_id() + "|" + std::to_string(index);
  std::lock_guard lock(seen_mu_);
  auto [it, inserted] = seen_.emplace(key, fingerprint);
  if (!inserted && it->second != fingerprint) {
    throw Error(ErrorCode::REPLAY, "message index " + std::to_string(index) + " of session " + content.session_id() +
                                       " was already used by another event");
  }
}

DecryptedPayload GroupDecryption::decrypt(std::string_view stream_id, const river::EncryptedData& content) {
  check_fields(content);
  std::optional<DecryptedPayload> decrypted;
  bool held = device_.with_inbound_group_session(stream_id, content.session_id(), [&](olm::InboundGroupSession& s) {
    decrypted = decrypt_with(s, content);
  });
  if (!held) throw Error(ErrorCode::SESSION_NOT_FOUND, "Session not found");
  remember(stream_id, content, *decrypted->message_index);
  return std::move(*decrypted);
}

void GroupDecryption::import_stream_key(std::string_view stream_id, const GroupEncryptionSession& session) {
  device_.add_inbound_group_session(stream_id, session.session_id, session.session_key);
}

std::optional<GroupEncryptionSession> GroupDecryption::export_group_session(std::string_view stream_id,
                                                                            std::string_view session_id) {
  return device_.export_inbound_group_session(stream_id, session_id);
}
std::vector<GroupEncryptionSession> GroupDecryption::export_group_sessions() {
  return device_.export_inbound_group_sessions();
}
std::vector<std::string> GroupDecryption::export_group_session_ids(std::string_view stream_id) {
  return device_.inbound_group_session_ids(stream_id);
}
bool GroupDecryption::has_session_key(std::string_view stream_id, std::string_view session_id) {
  return device_.has_inbound_session_keys(stream_id, session_id);
}

// ---- HybridGroupEncryption

river::HybridGroupSessionKey HybridGroupEncryption::ensure_key(std::string_view stream_id,
                                                               const EnsureOutboundSessionOptions& opts) {
  if (auto key = device_.hybrid_group_session_key_for_stream(stream_id)) return *key;
  MiniblockInfo info;
  if (opts.miniblock_info) {
    info = *opts.miniblock_info;
  } else if (client_ != nullptr) {
    info = client_->get_miniblock_info(stream_id);
  } else {
    throw Error(ErrorCode::INVALID_ARGUMENT, "a new hybrid session needs the stream's latest miniblock");
  }
  // Asked outside the device's lock (the client may be slow); created under it,
  // so that concurrent callers end up with one session.
  bool created = false;
  auto key = device_.ensure_hybrid_group_session(stream_id, info.miniblock_num, info.miniblock_hash, created);
  if (created && client_ != nullptr) {
    auto session_id = crypto::hex_encode(bytes_of(key.session_id()));
    auto exported = device_.export_hybrid_group_session(stream_id, session_id);
    if (!exported) throw Error(ErrorCode::SESSION_NOT_FOUND, "session key not found for session " + session_id);
    client_->encrypt_and_share_group_sessions_to_stream(
        stream_id, {*exported}, GroupEncryptionAlgorithm::kHybridGroupEncryption, opts.priority_user_ids);
  }
  return key;
}

std::string HybridGroupEncryption::ensure_outbound_session(std::string_view stream_id,
                                                           const EnsureOutboundSessionOptions& opts) {
  return crypto::hex_encode(bytes_of(ensure_key(stream_id, opts).session_id()));
}

bool HybridGroupEncryption::has_outbound_session(std::string_view stream_id) {
  return device_.hybrid_group_session_key_for_stream(stream_id).has_value();
}

river::EncryptedData HybridGroupEncryption::seal(std::string_view stream_id, std::span<const uint8_t> payload,
                                                 int version) {
  // An empty payload would be recognisable from the ciphertext length alone.
  if (payload.empty()) throw Error(ErrorCode::EMPTY_PAYLOAD, "data to encrypt cannot be empty");
  auto key = ensure_key(stream_id, {});
  auto aes = crypto::AesGcm::New(crypto::SecretView(bytes_of(key.key())));
  auto iv = device_.random().bytes(crypto::kAesGcmIvSize);
  auto ciphertext = aes.encrypt(iv.span(), payload);
  river::EncryptedData out;
  out.set_algorithm(std::string(kHybridGroupEncryptionAlgorithmId));
  out.set_sender_key(device_.device_key());
  out.set_session_id_bytes(key.session_id());
  out.set_ciphertext_bytes(std::string(ciphertext.begin(), ciphertext.end()));
  out.set_iv_bytes(std::string(iv.view()));
  out.set_version(static_cast<river::EncryptedDataVersion>(version));
  crypto::wipe(key.mutable_key()->data(), key.key().size());
  return out;
}

river::EncryptedData HybridGroupEncryption::encrypt(std::string_view stream_id, std::span<const uint8_t> payload) {
  return seal(stream_id, payload, river::ENCRYPTED_DATA_VERSION_1);
}

river::EncryptedData HybridGroupEncryption::encrypt_deprecated_v0(std::string_view stream_id, std::string_view payload) {
  return seal(stream_id, crypto::as_bytes(payload), river::ENCRYPTED_DATA_VERSION_0);
}

// ---- HybridGroupDecryption

DecryptedPayload HybridGroupDecryption::decrypt(std::string_view stream_id, const river::EncryptedData& content) {
  // As the client reads it: its check (`!content.ivBytes` and so on) can only
  // catch the sender key, because decoded bytes fields are always present
  // (empty arrays are truthy). Empty bytes fields fall through to the session
  // lookup (SESSION_NOT_FOUND) and the IV and length checks (DECRYPTION_FAILED).
  if (content.sender_key().empty()) {
    throw Error(ErrorCode::HYBRID_GROUP_DECRYPTION_MISSING_FIELDS, "Missing fields in input");
  }
  auto session_id = crypto::hex_encode(bytes_of(content.session_id_bytes()));
  auto key = device_.hybrid_group_session_key(stream_id, session_id);
  if (!key) {
    throw Error(ErrorCode::SESSION_NOT_FOUND, "hybrid group session not found for stream " + std::string(stream_id));
  }
  if (content.iv_bytes().size() != crypto::kAesGcmIvSize) {
    throw Error(ErrorCode::DECRYPTION_FAILED, "IV must be 12 bytes");
  }
  if (content.ciphertext_bytes().size() < crypto::kAesGcmTagSize + 1) {
    throw Error(ErrorCode::DECRYPTION_FAILED, "ciphertext can not be this short");
  }
  crypto::SecretBytes plaintext;
  {
    auto aes = crypto::AesGcm::New(crypto::SecretView(bytes_of(key->key())));
    crypto::wipe(key->mutable_key()->data(), key->key().size());
    plaintext = aes.decrypt(bytes_of(content.iv_bytes()), bytes_of(content.ciphertext_bytes()));
  }
  return by_version(content.version(), std::move(plaintext), std::nullopt, false);
}

void HybridGroupDecryption::import_stream_key(std::string_view stream_id, const GroupEncryptionSession& session) {
  device_.add_hybrid_group_session(stream_id, session.session_id, session.session_key);
}

std::optional<GroupEncryptionSession> HybridGroupDecryption::export_group_session(std::string_view stream_id,
                                                                                  std::string_view session_id) {
  return device_.export_hybrid_group_session(stream_id, session_id);
}
std::vector<GroupEncryptionSession> HybridGroupDecryption::export_group_sessions() {
  return device_.export_hybrid_group_sessions();
}
std::vector<std::string> HybridGroupDecryption::export_group_session_ids(std::string_view stream_id) {
  return device_.hybrid_group_session_ids(stream_id);
}
bool HybridGroupDecryption::has_session_key(std::string_view stream_id, std::string_view session_id) {
  return device_.has_hybrid_group_session_key(stream_id, session_id);
}

}  // namespace towns
