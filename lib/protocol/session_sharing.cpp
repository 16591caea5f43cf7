#include "towns/protocol/session_sharing.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns {

std::string session_keys_json(const std::vector<std::string>& keys) {
  river::SessionKeys message;
  for (const auto& k : keys) message.add_keys(k);
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out).ok()) {
    throw Error(ErrorCode::INTERNAL, "SessionKeys to JSON failed");
  }
  for (auto& k : *message.mutable_keys()) crypto::wipe(k.data(), k.size());
  return out;
}

std::vector<std::string> parse_session_keys_json(std::string_view text) {
  // Strict protobuf JSON for SessionKeys: an object whose only member is "keys",
  // a list of strings (or null). protobuf's own C++ parser would also take a bare
  // string for the list, which the client's parser refuses.
  auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  auto bad = [] { return Error(ErrorCode::INVALID_ARGUMENT, "session keys are not SessionKeys JSON"); };
  if (doc.is_discarded() || !doc.is_object()) throw bad();
  std::vector<std::string> keys;
  for (const auto& [name, value] : doc.items()) {
    if (name != "keys") throw bad();
    if (value.is_null()) continue;
    if (!value.is_array()) throw bad();
    for (const auto& k : value) {
      if (!k.is_string()) throw bad();
      keys.push_back(k.get<std::string>());
    }
  }
  return keys;
}

SharePlan build_group_encryption_sessions(GroupEncryptionCrypto& crypto, std::string_view stream_id,
                                          GroupEncryptionAlgorithm algorithm,
                                          const std::vector<GroupEncryptionSession>& sessions,
                                          const std::vector<UserDevice>& devices) {
  std::vector<uint8_t> stream_bytes;
  try {
    stream_bytes = crypto::hex_decode(stream_id);
  } catch (const Error&) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "stream id is not hex");
  }
  std::vector<std::string> keys;
  SharePlan plan;
  auto& m = plan.message;
  m.set_stream_id(std::string(stream_bytes.begin(), stream_bytes.end()));
  m.set_sender_key(crypto.get_user_device().device_key);
  m.set_algorithm(std::string(algorithm_id(algorithm)));
  for (const auto& s : sessions) {
    m.add_session_ids(s.session_id);
    keys.push_back(s.session_key);
  }
  crypto::SecretBytes cleartext(session_keys_json(keys));
  for (auto& k : keys) crypto::wipe(k.data(), k.size());
  auto own = crypto.get_user_device().device_key;
  std::vector<UserDevice> targets;
  for (const auto& d : devices) {
    if (d.device_key != own) targets.push_back(d);
  }
  auto results = crypto.encryption_device().encrypt_to_devices(cleartext.view(), targets, crypto.parallelism());
  for (size_t i = 0; i < targets.size(); ++i) {
    if (results[i].message) {
      (*m.mutable_ciphertexts())[targets[i].device_key] = std::move(results[i].message->body);
    } else if (results[i].error && is_olm_error(results[i].error->code())) {
      plan.skipped_devices.push_back(targets[i].device_key);
    } else if (results[i].error) {
      throw *results[i].error;
    }
  }
  return plan;
}

ReceiveResult receive_group_encryption_sessions(GroupEncryptionCrypto& crypto,
                                                const river::UserInboxPayload::GroupEncryptionSessions& message) {
  ReceiveResult result;
  result.stream_id = crypto::hex_encode(crypto::as_bytes(message.stream_id()));
  auto own = crypto.get_user_device().device_key;
  auto it = message.ciphertexts().find(own);
  if (it == message.ciphertexts().end()) {
    result.status = ReceiveStatus::kNotForThisDevice;
    return result;
  }
  auto algorithm = parse_group_encryption_algorithm(message.algorithm(), GroupEncryptionAlgorithm::kGroupEncryption);
  if (!algorithm) {
    result.status = ReceiveStatus::kUnknownAlgorithm;
    return result;
  }
  result.algorithm = *algorithm;
  std::vector<int> missing;
  for (int i = 0; i < message.session_ids_size(); ++i) {
    if (!crypto.has_session_key(result.stream_id, message.session_ids(i), *algorithm)) missing.push_back(i);
  }
  if (missing.empty()) return result;

  auto cleartext = crypto.decrypt_with_device_key(it->second, message.sender_key());
  std::vector<std::string> keys;
  try {
    keys = parse_session_keys_json(cleartext.view());
  } catch (const Error&) {
    throw Error(ErrorCode::IMPORT_FAILED, "the shared cleartext is not SessionKeys JSON");
  }
  if (keys.size() != static_cast<size_t>(message.session_ids_size())) {
    for (auto& k : keys) crypto::wipe(k.data(), k.size());
    throw Error(ErrorCode::IMPORT_FAILED, "the number of session keys differs from the number of session ids");
  }
  std::vector<GroupEncryptionSession> to_import;
  for (int i : missing) {
    to_import.push_back({result.stream_id, message.session_ids(i), keys[static_cast<size_t>(i)],
                         std::string(algorithm_id(*algorithm))});
  }
  for (auto& k : keys) crypto::wipe(k.data(), k.size());
  auto imported = crypto.import_session_keys(result.stream_id, to_import);
  for (auto& s : to_import) crypto::wipe(s.session_key.data(), s.session_key.size());
  result.imported = std::move(imported.imported);
  result.failed = std::move(imported.failed);
  result.status = result.imported.empty() ? ReceiveStatus::kNothingMissing : ReceiveStatus::kImported;
  return result;
}

std::vector<BatchReceiveResult> receive_group_encryption_sessions_batch(
    GroupEncryptionCrypto& crypto, const std::vector<river::UserInboxPayload::GroupEncryptionSessions>& messages) {
  std::vector<BatchReceiveResult> out(messages.size());
  crypto.encryption_device().store().transaction([&] {
    for (size_t i = 0; i < messages.size(); ++i) {
      try {
        out[i].result = receive_group_encryption_sessions(crypto, messages[i]);
      } catch (const Error& e) {
        out[i].error = e;
      }
    }
  });
  return out;
}

}  // namespace towns
