#include "towns/protocol/group_encryption_crypto.h"

#include "common/secret_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <thread>

#include "towns/error.h"
#include "towns/protocol/inputs.h"

namespace towns {

GroupEncryptionCrypto::GroupEncryptionCrypto(GroupEncryptionClient* client, CryptoStore& store,
                                             crypto::RandomSource& rng, EncryptionDelegate& delegate)
    : owned_device_(std::make_unique<EncryptionDevice>(store, rng, delegate)),
      device_(*owned_device_),
      parallelism_(std::max(1u, std::thread::hardware_concurrency())),
      megolm_encryption_(device_, client),
      megolm_decryption_(device_),
      hybrid_encryption_(device_, client),
      hybrid_decryption_(device_) {}

GroupEncryptionCrypto::GroupEncryptionCrypto(GroupEncryptionClient* client, EncryptionDevice& device)
    : device_(device),
      parallelism_(std::max(1u, std::thread::hardware_concurrency())),
      megolm_encryption_(device_, client),
      megolm_decryption_(device_),
      hybrid_encryption_(device_, client),
      hybrid_decryption_(device_) {}

void GroupEncryptionCrypto::init(const DeviceInitOptions& options) { device_.init(options); }

std::map<std::string, std::string> GroupEncryptionCrypto::encrypt_with_device_keys(
    std::string_view payload, const std::vector<UserDevice>& devices) {
  std::map<std::string, std::string> out;
  auto results = encrypt_to_devices(payload, devices);
  for (size_t i = 0; i < devices.size(); ++i) {
    if (results[i].error) throw *results[i].error;
    out[devices[i].device_key] = std::move(results[i].value->body);
  }
  return out;
}

std::vector<DeviceCiphertext> GroupEncryptionCrypto::encrypt_to_devices(std::string_view payload,
                                                                        const std::vector<UserDevice>& devices) {
  return device_.account().encrypt_to_devices(payload, devices, parallelism());
}

crypto::SecretBytes GroupEncryptionCrypto::decrypt_with_device_key(std::string_view ciphertext,
                                                                   std::string_view sender_device_key) {
  return device_.account().decrypt_prekey_message(ciphertext, sender_device_key);
}

std::vector<Outcome<crypto::SecretBytes>> GroupEncryptionCrypto::decrypt_with_device_keys(
    const std::vector<std::pair<std::string_view, std::string_view>>& ciphertext_and_sender) {
  return device_.account().decrypt_prekey_messages(ciphertext_and_sender, parallelism());
}

std::vector<std::vector<DeviceCiphertext>> GroupEncryptionCrypto::encrypt_each_to_devices(
    const std::vector<std::string_view>& payloads, const std::vector<UserDevice>& devices) {
  return device_.account().encrypt_each_to_devices(payloads, devices, parallelism());
}

std::string GroupEncryptionCrypto::ensure_outbound_session(std::string_view stream_id,
                                                           GroupEncryptionAlgorithm algorithm,
                                                           const EnsureOutboundSessionOptions& opts) {
  check_stream_id(stream_id);
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption
             ? megolm_encryption_.ensure_outbound_session(stream_id, opts)
             : hybrid_encryption_.ensure_outbound_session(stream_id, opts);
}

bool GroupEncryptionCrypto::has_outbound_session(std::string_view stream_id, GroupEncryptionAlgorithm algorithm) {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption ? megolm_encryption_.has_outbound_session(stream_id)
                                                                 : hybrid_encryption_.has_outbound_session(stream_id);
}

bool GroupEncryptionCrypto::has_hybrid_session(std::string_view stream_id) {
  return hybrid_encryption_.has_outbound_session(stream_id);
}

EncryptedData GroupEncryptionCrypto::encrypt_group_event(std::string_view stream_id,
                                                                std::span<const uint8_t> payload,
                                                                GroupEncryptionAlgorithm algorithm) {
  check_stream_id(stream_id);
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption ? megolm_encryption_.encrypt(stream_id, payload)
                                                                 : hybrid_encryption_.encrypt(stream_id, payload);
}

EncryptedData GroupEncryptionCrypto::encrypt_group_event_deprecated_v0(std::string_view stream_id,
                                                                              std::string_view payload,
                                                                              GroupEncryptionAlgorithm algorithm) {
  check_stream_id(stream_id);
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption
             ? megolm_encryption_.encrypt_deprecated_v0(stream_id, payload)
             : hybrid_encryption_.encrypt_deprecated_v0(stream_id, payload);
}

DecryptedPayload GroupEncryptionCrypto::decrypt_group_event(std::string_view stream_id,
                                                            const EncryptedData& content) {
  check_stream_id(stream_id);
  auto algorithm = parse_group_encryption_algorithm(content.algorithm);
  if (!algorithm) throw Error(ErrorCode::GROUP_DECRYPTION_UNKNOWN_ALGORITHM, "unknown algorithm");
  return *algorithm == GroupEncryptionAlgorithm::kGroupEncryption ? megolm_decryption_.decrypt(stream_id, content)
                                                                  : hybrid_decryption_.decrypt(stream_id, content);
}

std::vector<GroupEncryptionCrypto::EventResult> GroupEncryptionCrypto::decrypt_group_events(
    std::string_view stream_id, const std::vector<EncryptedData>& events) {
  // Megolm events side by side; the rest one by one (none of them is in the
  // megolm replay record, so the order between the two does not matter).
  check_stream_id(stream_id);
  auto results = megolm_decryption_.decrypt_batch(stream_id, events, parallelism());
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].algorithm == kGroupEncryptionAlgorithmId) continue;
    try {
      results[i].value = decrypt_group_event(stream_id, events[i]);
    } catch (const Error& e) {
      results[i].error = e;
    }
  }
  return results;
}

std::optional<GroupEncryptionSession> GroupEncryptionCrypto::export_group_session(std::string_view stream_id,
                                                                                  std::string_view session_id) {
  if (auto s = megolm_decryption_.export_group_session(stream_id, session_id)) return s;
  return hybrid_decryption_.export_group_session(stream_id, session_id);
}

std::vector<GroupEncryptionSession> GroupEncryptionCrypto::export_group_sessions(
    std::string_view stream_id, const std::vector<std::string>& session_ids) {
  auto megolm = device_.inbound().export_sessions(stream_id, session_ids, parallelism());
  std::vector<GroupEncryptionSession> out;
  for (size_t i = 0; i < session_ids.size(); ++i) {
    if (megolm[i]) {
      out.push_back(std::move(*megolm[i]));
    } else if (auto h = hybrid_decryption_.export_group_session(stream_id, session_ids[i])) {
      out.push_back(std::move(*h));
    }
  }
  return out;
}

std::vector<GroupEncryptionSession> GroupEncryptionCrypto::export_room_keys() {
  auto out = megolm_decryption_.export_group_sessions();
  auto hybrid = hybrid_decryption_.export_group_sessions();
  out.insert(out.end(), hybrid.begin(), hybrid.end());
  return out;
}

std::vector<std::string> GroupEncryptionCrypto::get_group_session_ids(std::string_view stream_id) {
  auto out = megolm_decryption_.export_group_session_ids(stream_id);
  auto hybrid = hybrid_decryption_.export_group_session_ids(stream_id);
  out.insert(out.end(), hybrid.begin(), hybrid.end());
  return out;
}

std::vector<std::string> GroupEncryptionCrypto::group_session_ids(std::string_view stream_id,
                                                                 GroupEncryptionAlgorithm algorithm) {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption
             ? megolm_decryption_.export_group_session_ids(stream_id)
             : hybrid_decryption_.export_group_session_ids(stream_id);
}

bool GroupEncryptionCrypto::has_session_key(std::string_view stream_id, std::string_view session_id,
                                            GroupEncryptionAlgorithm algorithm) {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption
             ? megolm_decryption_.has_session_key(stream_id, session_id)
             : hybrid_decryption_.has_session_key(stream_id, session_id);
}

void GroupEncryptionCrypto::import_keys(const std::vector<GroupEncryptionSession>& keys,
                                        const std::vector<std::string_view>& stream_ids, ImportResult& result,
                                        const std::function<void(size_t, bool)>& on_key) {
  std::vector<SessionImport> batch;
  std::vector<size_t> at;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& key = keys[i];
    auto algorithm = key.algorithm.empty() ? std::nullopt : parse_group_encryption_algorithm(key.algorithm);
    if (!algorithm) {
      result.skipped.push_back(key.session_id);
      continue;
    }
    batch.push_back({std::string(stream_ids[i]), key.session_id, key.session_key, *algorithm});
    at.push_back(i);
  }
  auto outcomes = device_.import_sessions(batch, parallelism());
  for (size_t k = 0; k < at.size(); ++k) {
    bool ok = !outcomes[k].error;
    (ok ? result.imported : result.failed).push_back(keys[at[k]].session_id);
    if (on_key) on_key(at[k], ok);
  }
}

ImportResult GroupEncryptionCrypto::import_session_keys(std::string_view stream_id,
                                                        const std::vector<GroupEncryptionSession>& keys) {
  ImportResult result;
  import_keys(keys, std::vector<std::string_view>(keys.size(), stream_id), result, {});
  return result;
}

ImportResult GroupEncryptionCrypto::import_room_keys(const std::vector<GroupEncryptionSession>& keys,
                                                     const std::function<void(const ImportProgress&)>& progress) {
  // A key without stream id or algorithm is a failure; an unknown algorithm is
  // neither a success nor a failure, as in the client. Progress is reported
  // after every counted key, in input order.
  ImportResult result;
  std::vector<GroupEncryptionSession> usable;
  std::vector<std::string_view> streams;
  std::vector<size_t> at;
  std::vector<int> verdict(keys.size(), 0);  // 1 imported, -1 failed, 0 not counted
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].stream_id.empty() || keys[i].algorithm.empty()) {
      verdict[i] = -1;
      continue;
    }
    usable.push_back(keys[i]);
    streams.push_back(keys[i].stream_id);
    at.push_back(i);
  }
  ImportResult inner;
  import_keys(usable, streams, inner, [&](size_t k, bool ok) { verdict[at[k]] = ok ? 1 : -1; });
  result.skipped = std::move(inner.skipped);
  ImportProgress p;
  p.total = keys.size();
  for (size_t i = 0; i < keys.size(); ++i) {
    if (verdict[i] == 0) continue;
    (verdict[i] > 0 ? result.imported : result.failed).push_back(keys[i].session_id);
    ++(verdict[i] > 0 ? p.successes : p.failures);
    if (progress) progress(p);
  }
  return result;
}

std::vector<EncryptionDevice::ImportResult> GroupEncryptionCrypto::import_sessions(
    const std::vector<SessionImport>& keys) {
  return device_.import_sessions(keys, parallelism());
}

ImportResult GroupEncryptionCrypto::import_room_keys_as_json(std::string_view json,
                                                             const std::function<void(const ImportProgress&)>& progress) {
  // Parsed into wiped memory: no copy of a key outlives this call (secret_json.h).
  return import_room_keys(parse_sessions_json(json, "room keys"), progress);
}

UserDevice GroupEncryptionCrypto::get_user_device() const { return device_.account().user_device(); }

crypto::SecretBytes GroupEncryptionCrypto::export_device() { return device_.export_device(); }

}  // namespace towns
