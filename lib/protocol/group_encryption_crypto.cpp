#include "towns/protocol/group_encryption_crypto.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "towns/error.h"

namespace towns {

GroupEncryptionCrypto::GroupEncryptionCrypto(GroupEncryptionClient* client, CryptoStore& store,
                                             crypto::RandomSource& rng)
    : device_(store, rng),
      parallelism_(std::max(1u, std::thread::hardware_concurrency())),
      megolm_encryption_(device_, client),
      megolm_decryption_(device_),
      hybrid_encryption_(device_, client),
      hybrid_decryption_(device_) {}

void GroupEncryptionCrypto::init(const DeviceInitOptions& options) { device_.init(options); }

std::map<std::string, std::string> GroupEncryptionCrypto::encrypt_with_device_keys(
    std::string_view payload, const std::vector<UserDevice>& devices) {
  std::map<std::string, std::string> out;
  auto results = device_.encrypt_to_devices(payload, devices, parallelism_);
  for (size_t i = 0; i < devices.size(); ++i) {
    if (results[i].error) throw *results[i].error;
    out[devices[i].device_key] = std::move(results[i].message->body);
  }
  return out;
}

crypto::SecretBytes GroupEncryptionCrypto::decrypt_with_device_key(std::string_view ciphertext,
                                                                   std::string_view sender_device_key) {
  return device_.decrypt_message(ciphertext, sender_device_key);
}

std::string GroupEncryptionCrypto::ensure_outbound_session(std::string_view stream_id,
                                                           GroupEncryptionAlgorithm algorithm,
                                                           const EnsureOutboundSessionOptions& opts) {
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

river::EncryptedData GroupEncryptionCrypto::encrypt_group_event(std::string_view stream_id,
                                                                std::span<const uint8_t> payload,
                                                                GroupEncryptionAlgorithm algorithm) {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption ? megolm_encryption_.encrypt(stream_id, payload)
                                                                 : hybrid_encryption_.encrypt(stream_id, payload);
}

river::EncryptedData GroupEncryptionCrypto::encrypt_group_event_deprecated_v0(std::string_view stream_id,
                                                                              std::string_view payload,
                                                                              GroupEncryptionAlgorithm algorithm) {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption
             ? megolm_encryption_.encrypt_deprecated_v0(stream_id, payload)
             : hybrid_encryption_.encrypt_deprecated_v0(stream_id, payload);
}

DecryptedPayload GroupEncryptionCrypto::decrypt_group_event(std::string_view stream_id,
                                                            const river::EncryptedData& content) {
  auto algorithm = parse_group_encryption_algorithm(content.algorithm());
  if (!algorithm) throw Error(ErrorCode::GROUP_DECRYPTION_UNKNOWN_ALGORITHM, "unknown algorithm");
  return *algorithm == GroupEncryptionAlgorithm::kGroupEncryption ? megolm_decryption_.decrypt(stream_id, content)
                                                                  : hybrid_decryption_.decrypt(stream_id, content);
}

std::vector<GroupEncryptionCrypto::EventResult> GroupEncryptionCrypto::decrypt_group_events(
    std::string_view stream_id, const std::vector<river::EncryptedData>& events) {
  std::vector<EventResult> results(events.size());
  std::vector<bool> batched(events.size(), false);
  // Megolm events with their fields in place, grouped by session.
  std::map<std::string, std::vector<size_t>> by_session;
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (e.algorithm() != kGroupEncryptionAlgorithmId) continue;
    if (!GroupDecryption::has_fields(e)) continue;  // refused the one-by-one way below
    by_session[e.session_id()].push_back(i);
    batched[i] = true;
  }
  std::vector<const std::vector<size_t>*> groups;
  for (const auto& [id, indices] : by_session) groups.push_back(&indices);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t g; (g = next.fetch_add(1)) < groups.size();) {
      const auto& indices = *groups[g];
      std::optional<olm::InboundGroupSession> session;
      try {
        session = device_.inbound_group_session(stream_id, events[indices[0]].session_id());
      } catch (const Error& e) {
        for (size_t i : indices) results[i].error = e;
        continue;
      }
      for (size_t i : indices) {
        if (!session) {
          results[i].error = Error(ErrorCode::SESSION_NOT_FOUND, "Session not found");
          continue;
        }
        try {
          results[i].payload = GroupDecryption::decrypt_with(*session, events[i]);
        } catch (const Error& e) {
          results[i].error = e;
        }
      }
    }
  };
  unsigned threads = std::min<unsigned>(parallelism_, static_cast<unsigned>(std::max<size_t>(1, groups.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  // In input order: the replay check, and everything else the one-by-one way.
  for (size_t i = 0; i < events.size(); ++i) {
    try {
      if (!batched[i]) {
        results[i].payload = decrypt_group_event(stream_id, events[i]);
      } else if (results[i].payload) {
        megolm_decryption_.remember(stream_id, events[i], *results[i].payload->message_index);
      }
    } catch (const Error& e) {
      results[i].payload.reset();
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

bool GroupEncryptionCrypto::has_session_key(std::string_view stream_id, std::string_view session_id,
                                            GroupEncryptionAlgorithm algorithm) {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption
             ? megolm_decryption_.has_session_key(stream_id, session_id)
             : hybrid_decryption_.has_session_key(stream_id, session_id);
}

bool GroupEncryptionCrypto::import_one(std::string_view stream_id, const GroupEncryptionSession& key,
                                       ImportResult& result) {
  auto algorithm = key.algorithm.empty() ? std::nullopt : parse_group_encryption_algorithm(key.algorithm);
  if (!algorithm) {
    result.skipped.push_back(key.session_id);
    return false;
  }
  try {
    if (*algorithm == GroupEncryptionAlgorithm::kGroupEncryption) {
      megolm_decryption_.import_stream_key(stream_id, key);
    } else {
      hybrid_decryption_.import_stream_key(stream_id, key);
    }
    result.imported.push_back(key.session_id);
    return true;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::IMPORT_FAILED && !is_olm_error(e.code())) throw;
    result.failed.push_back(key.session_id);
    return false;
  }
}

ImportResult GroupEncryptionCrypto::import_session_keys(std::string_view stream_id,
                                                        const std::vector<GroupEncryptionSession>& keys) {
  ImportResult result;
  for (const auto& key : keys) import_one(stream_id, key, result);
  return result;
}

ImportResult GroupEncryptionCrypto::import_room_keys(const std::vector<GroupEncryptionSession>& keys,
                                                     const std::function<void(const ImportProgress&)>& progress) {
  ImportResult result;
  ImportProgress p;
  p.total = keys.size();
  for (const auto& key : keys) {
    if (key.stream_id.empty() || key.algorithm.empty()) {
      result.failed.push_back(key.session_id);
      ++p.failures;
      if (progress) progress(p);
      continue;
    }
    size_t failed_before = result.failed.size();
    if (import_one(key.stream_id, key, result)) {
      ++p.successes;
    } else if (result.failed.size() > failed_before) {
      ++p.failures;
    } else {
      continue;  // unknown algorithm: neither, as in the client
    }
    if (progress) progress(p);
  }
  return result;
}

ImportResult GroupEncryptionCrypto::import_room_keys_as_json(std::string_view json,
                                                             const std::function<void(const ImportProgress&)>& progress) {
  auto doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "room keys must be a JSON array");
  }
  std::vector<GroupEncryptionSession> keys;
  auto field = [](const nlohmann::json& o, const char* name) {
    auto it = o.find(name);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  for (const auto& o : doc) {
    if (!o.is_object()) throw Error(ErrorCode::INVALID_ARGUMENT, "each room key must be a JSON object");
    keys.push_back({field(o, "streamId"), field(o, "sessionId"), field(o, "sessionKey"), field(o, "algorithm")});
  }
  return import_room_keys(keys, progress);
}

UserDevice GroupEncryptionCrypto::get_user_device() const { return device_.user_device(); }

river::ExportedDevice GroupEncryptionCrypto::export_device() { return device_.export_device(); }

}  // namespace towns
