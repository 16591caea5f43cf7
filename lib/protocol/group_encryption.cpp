#include "towns/protocol/group_encryption.h"

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns {
namespace {

// Through a byte span: from char to uint8_t iterators the copy ran a byte at a
// time (a tenth of a 1 KiB grpaes encryption).
Bytes to_bytes(const std::string& s) {
  auto b = crypto::as_bytes(s);
  return Bytes(b.begin(), b.end());
}

// The EncryptedData of a megolm message: the sender's device key, the session and the ciphertext.
EncryptedData megolm_event(std::string sender_key, GroupCiphertext result, EncryptedDataVersion version) {
  EncryptedData out;
  out.algorithm = std::string(kGroupEncryptionAlgorithmId);
  out.sender_key = std::move(sender_key);
  out.ciphertext = std::move(result.ciphertext);
  out.session_id = std::move(result.session_id);
  out.version = version;
  return out;
}

}  // namespace

DecryptedPayload payload_for_version(int version, crypto::SecretBytes plaintext, std::optional<uint32_t> index,
                                     bool base64_payload) {
  switch (version) {
    case static_cast<int>(EncryptedDataVersion::kVersion0):
      return {std::move(plaintext), index};
    case static_cast<int>(EncryptedDataVersion::kVersion1):
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

// ---- GroupEncryption

std::string GroupEncryption::ensure_outbound_session(std::string_view stream_id,
                                                     const EnsureOutboundSessionOptions& opts) {
  auto ensured = device_.outbound().ensure(stream_id);
  if (ensured.created) share_session(stream_id, ensured.session_id, opts.priority_user_ids);
  return ensured.session_id;
}

bool GroupEncryption::has_outbound_session(std::string_view stream_id) {
  return device_.outbound().session_key(stream_id).has_value();
}

void GroupEncryption::share_session(std::string_view stream_id, std::string_view session_id,
                                   const std::vector<std::string>& priority_user_ids) {
  if (client_ == nullptr) return;
  auto session = device_.inbound().export_session(stream_id, session_id);
  if (!session) throw Error(ErrorCode::SESSION_NOT_FOUND, "session key not found for session " + std::string(session_id));
  client_->encrypt_and_share_group_sessions_to_stream(stream_id, {*session}, GroupEncryptionAlgorithm::kGroupEncryption,
                                                      priority_user_ids);
}

EncryptedData GroupEncryption::encrypt(std::string_view stream_id, std::span<const uint8_t> payload) {
  auto text = crypto::base64_encode(payload, crypto::Base64Padding::kPadded);
  check_payload_length(text, "encryptGroupMessage");  // before a session is created: a refusal changes nothing
  ensure_outbound_session(stream_id);
  return megolm_event(device_.account().device_key(), device_.outbound().encrypt(text, stream_id),
                      EncryptedDataVersion::kVersion1);
}

EncryptedData GroupEncryption::encrypt_deprecated_v0(std::string_view stream_id, std::string_view payload) {
  check_payload_length(payload, "encryptGroupMessage");
  ensure_outbound_session(stream_id);
  return megolm_event(device_.account().device_key(), device_.outbound().encrypt(payload, stream_id),
                      EncryptedDataVersion::kVersion0);
}

// ---- GroupDecryption

void GroupDecryption::check_fields(const EncryptedData& content) {
  if (content.sender_key.empty() || content.session_id.empty() || content.ciphertext.empty()) {
    throw Error(ErrorCode::GROUP_DECRYPTION_MISSING_FIELDS, "Missing fields in input");
  }
}

DecryptedPayload GroupDecryption::decrypt(std::string_view stream_id, const EncryptedData& content) {
  check_fields(content);
  auto result = device_.inbound().decrypt(stream_id, content.session_id, content.ciphertext);
  return payload_for_version(static_cast<int>(content.version), std::move(result.plaintext), result.message_index, true);
}

std::vector<GroupDecryption::EventResult> GroupDecryption::decrypt_batch(
    std::string_view stream_id, const std::vector<EncryptedData>& events, unsigned threads) {
  std::vector<EventResult> out(events.size());
  std::vector<std::pair<std::string, std::string>> batch;
  std::vector<size_t> at;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].algorithm != kGroupEncryptionAlgorithmId) continue;
    try {
      check_fields(events[i]);
    } catch (const Error& e) {
      out[i].error = e;
      continue;
    }
    batch.emplace_back(events[i].session_id, events[i].ciphertext);
    at.push_back(i);
  }
  auto results = device_.inbound().decrypt_batch(stream_id, batch, threads);
  for (size_t k = 0; k < at.size(); ++k) {
    auto& r = out[at[k]];
    if (results[k].error) {
      r.error = std::move(results[k].error);
      continue;
    }
    try {
      r.value = payload_for_version(static_cast<int>(events[at[k]].version), std::move(results[k].value->plaintext),
                                    results[k].value->message_index, true);
    } catch (const Error& e) {
      r.error = e;
    }
  }
  return out;
}

void GroupDecryption::import_stream_key(std::string_view stream_id, const GroupEncryptionSession& session) {
  auto r = device_.import_sessions({{std::string(stream_id), session.session_id, session.session_key,
                                      GroupEncryptionAlgorithm::kGroupEncryption}});
  if (r.at(0).error) throw *r.at(0).error;
}

std::optional<GroupEncryptionSession> GroupDecryption::export_group_session(std::string_view stream_id,
                                                                            std::string_view session_id) {
  return device_.inbound().export_session(stream_id, session_id);
}
std::vector<GroupEncryptionSession> GroupDecryption::export_group_sessions() { return device_.inbound().export_all(); }
std::vector<std::string> GroupDecryption::export_group_session_ids(std::string_view stream_id) {
  return device_.inbound().ids(stream_id);
}
bool GroupDecryption::has_session_key(std::string_view stream_id, std::string_view session_id) {
  return device_.inbound().has(stream_id, session_id);
}

// ---- HybridGroupEncryption

HybridSessionKey HybridGroupEncryption::ensure_key(std::string_view stream_id,
                                                   const EnsureOutboundSessionOptions& opts) {
  if (auto key = device_.hybrid().latest(stream_id)) return std::move(*key);
  MiniblockInfo info;
  if (opts.miniblock_info) {
    info = *opts.miniblock_info;
  } else if (client_ != nullptr) {
    info = client_->get_miniblock_info(stream_id);
  } else {
    throw Error(ErrorCode::INVALID_ARGUMENT, "a new hybrid session needs the stream's latest miniblock");
  }
  // Asked outside every lock (the client may be slow); created as one step, so
  // that concurrent callers end up with one session.
  auto [key, created] = device_.hybrid().ensure(stream_id, info.miniblock_num, info.miniblock_hash);
  if (created && client_ != nullptr) {
    auto session_id = key.session_id_hex();
    auto exported = device_.hybrid().export_session(stream_id, session_id);
    if (!exported) throw Error(ErrorCode::SESSION_NOT_FOUND, "session key not found for session " + session_id);
    client_->encrypt_and_share_group_sessions_to_stream(
        stream_id, {*exported}, GroupEncryptionAlgorithm::kHybridGroupEncryption, opts.priority_user_ids);
  }
  return key;
}

std::string HybridGroupEncryption::ensure_outbound_session(std::string_view stream_id,
                                                           const EnsureOutboundSessionOptions& opts) {
  return ensure_key(stream_id, opts).session_id_hex();
}

bool HybridGroupEncryption::has_outbound_session(std::string_view stream_id) {
  return device_.hybrid().latest(stream_id).has_value();
}

EncryptedData HybridGroupEncryption::seal(std::string_view stream_id, std::span<const uint8_t> payload,
                                          EncryptedDataVersion version) {
  // An empty payload would be recognisable from the ciphertext length alone.
  if (payload.empty()) throw Error(ErrorCode::EMPTY_PAYLOAD, "data to encrypt cannot be empty");
  auto key = ensure_key(stream_id, {});
  auto sealed = device_.hybrid().encrypt(key, payload);
  EncryptedData out;
  out.algorithm = std::string(kHybridGroupEncryptionAlgorithmId);
  out.sender_key = device_.account().device_key();
  out.session_id_bytes = to_bytes(key.session_id);
  out.ciphertext_bytes = to_bytes(sealed.ciphertext);
  out.iv_bytes = to_bytes(sealed.iv);
  out.version = version;
  return out;
}

EncryptedData HybridGroupEncryption::encrypt(std::string_view stream_id, std::span<const uint8_t> payload) {
  return seal(stream_id, payload, EncryptedDataVersion::kVersion1);
}

EncryptedData HybridGroupEncryption::encrypt_deprecated_v0(std::string_view stream_id, std::string_view payload) {
  return seal(stream_id, crypto::as_bytes(payload), EncryptedDataVersion::kVersion0);
}

// ---- HybridGroupDecryption

DecryptedPayload HybridGroupDecryption::decrypt(std::string_view stream_id, const EncryptedData& content) {
  // As the client reads it: its check (`!content.ivBytes` and so on) can only
  // catch the sender key, because decoded bytes fields are always present
  // (empty arrays are truthy). Empty bytes fields fall through to the session
  // lookup (SESSION_NOT_FOUND) and the IV and length checks (DECRYPTION_FAILED).
  if (content.sender_key.empty()) {
    throw Error(ErrorCode::HYBRID_GROUP_DECRYPTION_MISSING_FIELDS, "Missing fields in input");
  }
  auto session_id = crypto::hex_encode(content.session_id_bytes);
  auto key = device_.hybrid().get(stream_id, session_id);
  if (!key) {
    throw Error(ErrorCode::SESSION_NOT_FOUND, "hybrid group session not found for stream " + std::string(stream_id));
  }
  auto plaintext = HybridSessions::decrypt(*key, content.iv_bytes, content.ciphertext_bytes);
  return payload_for_version(static_cast<int>(content.version), std::move(plaintext), std::nullopt, false);
}

void HybridGroupDecryption::import_stream_key(std::string_view stream_id, const GroupEncryptionSession& session) {
  auto r = device_.import_sessions({{std::string(stream_id), session.session_id, session.session_key,
                                      GroupEncryptionAlgorithm::kHybridGroupEncryption}});
  if (r.at(0).error) throw *r.at(0).error;
}

std::optional<GroupEncryptionSession> HybridGroupDecryption::export_group_session(std::string_view stream_id,
                                                                                  std::string_view session_id) {
  return device_.hybrid().export_session(stream_id, session_id);
}
std::vector<GroupEncryptionSession> HybridGroupDecryption::export_group_sessions() {
  return device_.hybrid().export_all();
}
std::vector<std::string> HybridGroupDecryption::export_group_session_ids(std::string_view stream_id) {
  return device_.hybrid().ids(stream_id);
}
bool HybridGroupDecryption::has_session_key(std::string_view stream_id, std::string_view session_id) {
  return device_.hybrid().has(stream_id, session_id);
}

}  // namespace towns
