#include "towns/protocol/session_sharing.h"

#include <algorithm>
#include <set>
#include <nlohmann/json.hpp>

#include "common/secret_json.h"
#include "common/stream_id.h"
#include "towns/crypto/encoding.h"
#include "wire/wire.h"
#include "towns/error.h"

namespace towns {

crypto::SecretBytes session_keys_json(const std::vector<crypto::SecretBytes>& keys) {
  // protobuf JSON of SessionKeys as the client writes it (JSON.stringify of
  // toJson): no spaces, the empty list left out. Built byte by byte in wiped
  // memory; a key that is not UTF-8 cannot be a JSON string.
  crypto::SecretBytes out;
  auto put = [&](std::string_view s) { out.append(crypto::as_bytes(s)); };
  if (keys.empty()) {
    put("{}");
    return out;
  }
  put("{\"keys\":[");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!wire::is_utf8(keys[i].view())) throw Error(ErrorCode::INTERNAL, "SessionKeys to JSON failed: a key is not UTF-8");
    if (i) put(",");
    append_json_string(out, keys[i].view());
  }
  put("]}");
  return out;
}

std::vector<crypto::SecretBytes> parse_session_keys_json(std::string_view text) {
  // Strict protobuf JSON for SessionKeys: an object whose only member is "keys",
  // a list of strings (or null). protobuf's own C++ parser would also take a bare
  // string for the list, which the client's parser refuses.
  // Parsed into wiped memory: no copy of a key outlives this call (secret_json.h).
  auto doc = SecretJson::parse(text.begin(), text.end(), nullptr, false);
  auto bad = [] { return Error(ErrorCode::INVALID_ARGUMENT, "session keys are not SessionKeys JSON"); };
  if (doc.is_discarded() || !doc.is_object()) throw bad();
  std::vector<crypto::SecretBytes> keys;
  for (const auto& [name, value] : doc.items()) {
    if (name != "keys") throw bad();
    if (value.is_null()) continue;
    if (!value.is_array()) throw bad();
    for (const auto& k : value) {
      if (!k.is_string()) throw bad();
      keys.emplace_back(std::string_view(k.get_ref<const WipedString&>()));
    }
  }
  return keys;
}

SharePlan build_group_encryption_sessions(GroupEncryptionCrypto& crypto, std::string_view stream_id,
                                          GroupEncryptionAlgorithm algorithm,
                                          const std::vector<GroupEncryptionSession>& sessions,
                                          const std::vector<UserDevice>& devices) {
  return std::move(build_group_encryption_session_chunks(crypto, stream_id, algorithm, {sessions}, devices).at(0));
}

std::vector<SharePlan> build_group_encryption_session_chunks(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, GroupEncryptionAlgorithm algorithm,
    const std::vector<std::vector<GroupEncryptionSession>>& chunks, const std::vector<UserDevice>& devices) {
  auto stream_bytes = stream_id_bytes(stream_id);
  auto own = crypto.get_user_device().device_key;
  std::vector<UserDevice> targets;
  for (const auto& d : devices) {
    if (d.device_key != own) targets.push_back(d);
  }
  std::vector<SharePlan> plans(chunks.size());
  std::vector<crypto::SecretBytes> cleartexts;
  for (size_t c = 0; c < chunks.size(); ++c) {
    auto& m = plans[c].message;
    m.stream_id = Bytes(stream_bytes.begin(), stream_bytes.end());
    m.sender_key = own;
    m.algorithm = std::string(algorithm_id(algorithm));
    std::vector<crypto::SecretBytes> keys;
    for (const auto& s : chunks[c]) {
      m.session_ids.push_back(s.session_id);
      keys.push_back(s.session_key);
    }
    cleartexts.push_back(session_keys_json(keys));
  }
  std::vector<std::string_view> payloads;
  for (const auto& c : cleartexts) payloads.push_back(c.view());
  auto results = crypto.encrypt_each_to_devices(payloads, targets);
  for (size_t c = 0; c < chunks.size(); ++c) {
    auto& plan = plans[c];
    for (size_t i = 0; i < targets.size(); ++i) {
      auto& r = results[c][i];
      if (r.value) {
        plan.message.ciphertexts[targets[i].device_key] = std::move(r.value->body);
      } else if (r.error && is_olm_error(r.error->code())) {
        plan.skipped_devices.push_back(targets[i].device_key);
      } else if (r.error) {
        throw *r.error;
      }
    }
  }
  return plans;
}

namespace {

// One message, up to the import: what it lists and misses, and the keys of the
// missing sessions (decrypted from our ciphertext). pending holds sessions that
// earlier messages of the same batch import.
struct Prepared {
  ReceiveResult result;
  std::vector<SessionImport> imports;
};

// What a message needs before the sequential pass: our ciphertext, its
// algorithm, which of its sessions the store already holds, and (when any is
// not held) our ciphertext decrypted, which the batch does side by side.
struct Looked {
  std::string stream_id;                    // hex
  const std::string* ciphertext = nullptr;  // ours, or null
  std::optional<GroupEncryptionAlgorithm> algorithm;
  std::vector<bool> held;
  std::optional<Outcome<crypto::SecretBytes>> decrypted;
};

Looked look(GroupEncryptionCrypto& crypto, const GroupEncryptionSessions& message, const std::string& own_device_key) {
  Looked l;
  l.stream_id = crypto::hex_encode(message.stream_id);
  auto it = message.ciphertexts.find(own_device_key);
  if (it == message.ciphertexts.end()) return l;
  l.ciphertext = &it->second;
  l.algorithm = parse_group_encryption_algorithm(message.algorithm, GroupEncryptionAlgorithm::kGroupEncryption);
  if (!l.algorithm) return l;
  for (const auto& id : message.session_ids) l.held.push_back(crypto.has_session_key(l.stream_id, id, *l.algorithm));
  return l;
}

Prepared prepare_receive(const GroupEncryptionSessions& message, Looked& looked, std::set<std::string>& pending) {
  Prepared p;
  auto& result = p.result;
  result.stream_id = looked.stream_id;
  if (looked.ciphertext == nullptr) {
    result.status = ReceiveStatus::kNotForThisDevice;
    return p;
  }
  if (!looked.algorithm) {
    result.status = ReceiveStatus::kUnknownAlgorithm;
    return p;
  }
  result.algorithm = *looked.algorithm;
  std::vector<size_t> missing;
  for (size_t i = 0; i < message.session_ids.size(); ++i) {
    const auto& id = message.session_ids[i];
    if (pending.count(result.stream_id + "|" + id) > 0) continue;
    if (!looked.held[i]) missing.push_back(i);
  }
  if (missing.empty()) return p;

  auto& decrypted = *looked.decrypted;  // decrypted whenever a session was not held
  if (decrypted.error) throw *decrypted.error;
  std::vector<crypto::SecretBytes> keys;
  try {
    keys = parse_session_keys_json(decrypted.value->view());
  } catch (const Error&) {
    throw Error(ErrorCode::IMPORT_FAILED, "the shared cleartext is not SessionKeys JSON");
  }
  if (keys.size() != message.session_ids.size()) {
    throw Error(ErrorCode::IMPORT_FAILED, "the number of session keys differs from the number of session ids");
  }
  for (size_t i : missing) {
    p.imports.push_back({result.stream_id, message.session_ids[i], std::move(keys[i]), *looked.algorithm});
  }
  return p;
}

}  // namespace

ReceiveResult receive_group_encryption_sessions(GroupEncryptionCrypto& crypto,
                                                const GroupEncryptionSessions& message) {
  auto out = receive_group_encryption_sessions_batch(crypto, {message});
  if (out[0].error) throw *out[0].error;
  return std::move(*out[0].value);
}

std::vector<BatchReceiveResult> receive_group_encryption_sessions_batch(
    GroupEncryptionCrypto& crypto, const std::vector<GroupEncryptionSessions>& messages) {
  std::vector<BatchReceiveResult> out(messages.size());
  auto own = crypto.get_user_device().device_key;
  // First what each message lists and lacks, and our ciphertexts of those that
  // lack a session decrypted side by side (the expensive part: an olm inbound
  // session each). The pass below then decides as it would one by one; a
  // message whose missing sessions an earlier one turns out to bring simply
  // leaves its decryption unused (decrypting changes nothing stored).
  std::vector<Looked> looked(messages.size());
  std::vector<std::pair<std::string_view, std::string_view>> to_decrypt;
  std::vector<size_t> decrypting;
  for (size_t i = 0; i < messages.size(); ++i) {
    try {
      looked[i] = look(crypto, messages[i], own);
    } catch (const Error& e) {
      out[i].error = e;
      continue;
    }
    if (std::find(looked[i].held.begin(), looked[i].held.end(), false) == looked[i].held.end()) continue;
    to_decrypt.emplace_back(*looked[i].ciphertext, messages[i].sender_key);
    decrypting.push_back(i);
  }
  auto decrypted = crypto.decrypt_with_device_keys(to_decrypt);
  for (size_t k = 0; k < decrypting.size(); ++k) looked[decrypting[k]].decrypted = std::move(decrypted[k]);

  std::set<std::string> pending;  // "stream|session" imported by an earlier message
  std::vector<SessionImport> imports;
  std::vector<std::pair<size_t, size_t>> owner;  // (message, first import) ranges
  for (size_t i = 0; i < messages.size(); ++i) {
    if (out[i].error) continue;
    try {
      auto p = prepare_receive(messages[i], looked[i], pending);
      owner.emplace_back(i, imports.size());
      for (auto& imp : p.imports) {
        pending.insert(imp.stream_id + "|" + imp.session_id);
        imports.push_back(std::move(imp));
      }
      out[i].value = std::move(p.result);
    } catch (const Error& e) {
      out[i].error = e;
    }
  }
  auto outcomes = crypto.import_sessions(imports);
  for (size_t k = 0; k < owner.size(); ++k) {
    auto [message, first] = owner[k];
    size_t last = k + 1 < owner.size() ? owner[k + 1].second : imports.size();
    auto& result = *out[message].value;
    for (size_t j = first; j < last; ++j) {
      (outcomes[j].error ? result.failed : result.imported).push_back(imports[j].session_id);
    }
    if (result.status == ReceiveStatus::kNothingMissing && !result.imported.empty()) {
      result.status = ReceiveStatus::kImported;
    }
  }
  return out;
}

}  // namespace towns
