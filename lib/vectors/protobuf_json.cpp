// protobuf.json's messages through the library's codecs, and a protobuf JSON
// writer for them (protobuf_json.h).
#include "vectors/protobuf_json.h"

#include <functional>
#include <optional>
#include <utility>

#include "protocol/wire_messages.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/encryption_device.h"
#include "towns/protocol/inputs.h"
#include "towns/protocol/messages.h"

namespace towns::vectors {

namespace {

using nlohmann::json;

// One message's JSON object: each setter leaves a field at its default out, as
// protobuf's printer does for implicit presence.
class Obj {
 public:
  Obj& str(const char* name, std::string_view v) {
    if (!v.empty()) j_[name] = std::string(v);
    return *this;
  }
  // A proto3 `optional` field: written when set, even to its default.
  Obj& opt(const char* name, const std::optional<std::string>& v) {
    if (v) j_[name] = *v;
    return *this;
  }
  Obj& bytes(const char* name, std::span<const uint8_t> v) {
    if (!v.empty()) j_[name] = crypto::base64_encode(v, crypto::Base64Padding::kPadded);
    return *this;
  }
  Obj& bytes(const char* name, std::string_view v) { return bytes(name, crypto::as_bytes(v)); }
  Obj& boolean(const char* name, bool v) {
    if (v) j_[name] = true;
    return *this;
  }
  // int64 and uint64 are strings in protobuf JSON.
  Obj& int64(const char* name, int64_t v) {
    if (v != 0) j_[name] = std::to_string(v);
    return *this;
  }
  Obj& strs(const char* name, const std::vector<std::string>& v) {
    if (!v.empty()) j_[name] = v;
    return *this;
  }
  // A repeated message field: the list of their objects.
  Obj& list(const char* name, json v) {
    if (!v.empty()) j_[name] = std::move(v);
    return *this;
  }
  // A map<string, string>: an object.
  Obj& map(const char* name, const std::map<std::string, std::string>& v) {
    if (!v.empty()) j_[name] = v;
    return *this;
  }
  // A message field with presence (a oneof member): written when set.
  Obj& message(const char* name, json v) {
    j_[name] = std::move(v);
    return *this;
  }
  Obj& raw(const char* name, json v) {
    j_[name] = std::move(v);
    return *this;
  }
  json done() { return std::move(j_); }

 private:
  json j_ = json::object();
};

std::vector<uint8_t> vec(std::span<const uint8_t> b) { return {b.begin(), b.end()}; }

json to_json(const EncryptedData& m) {
  Obj o;
  o.str("ciphertext", m.ciphertext)
      .str("algorithm", m.algorithm)
      .str("senderKey", m.sender_key)
      .str("sessionId", m.session_id)
      .opt("checksum", m.checksum)
      .opt("refEventId", m.ref_event_id)
      .bytes("ciphertextBytes", m.ciphertext_bytes)
      .bytes("ivBytes", m.iv_bytes)
      .bytes("sessionIdBytes", m.session_id_bytes)
      .opt("deviceKey", m.device_key);
  // An enum by name; a value without one (proto3 enums are open) as a number.
  switch (m.version) {
    case EncryptedDataVersion::kVersion0: break;
    case EncryptedDataVersion::kVersion1: o.raw("version", "ENCRYPTED_DATA_VERSION_1"); break;
    default: o.raw("version", static_cast<int32_t>(m.version));
  }
  return o.done();
}

json to_json(const KeySolicitation& m) {
  return Obj()
      .str("deviceKey", m.device_key)
      .str("fallbackKey", m.fallback_key)
      .boolean("isNewDevice", m.is_new_device)
      .strs("sessionIds", m.session_ids)
      .done();
}

json to_json(const KeyFulfillment& m) {
  return Obj().bytes("userAddress", m.user_address).str("deviceKey", m.device_key).strs("sessionIds", m.session_ids).done();
}

json to_json(const GroupEncryptionSessions& m) {
  return Obj()
      .bytes("streamId", m.stream_id)
      .str("senderKey", m.sender_key)
      .strs("sessionIds", m.session_ids)
      .map("ciphertexts", m.ciphertexts)
      .str("algorithm", m.algorithm)
      .done();
}

json to_json(const wire::MemberPayload& m) {
  Obj o;
  if (m.key_solicitation) o.message("keySolicitation", to_json(*m.key_solicitation));
  if (m.key_fulfillment) o.message("keyFulfillment", to_json(*m.key_fulfillment));
  return o.done();
}

json to_json(const wire::UserInboxPayload& m) {
  Obj o;
  if (m.group_encryption_sessions) o.message("groupEncryptionSessions", to_json(*m.group_encryption_sessions));
  return o.done();
}

json to_json(const wire::EncryptionDeviceMessage& m) {
  return Obj().str("deviceKey", m.device_key).str("fallbackKey", m.fallback_key).done();
}

json to_json(const wire::SessionKeysMessage& m) { return Obj().strs("keys", m.keys).done(); }

json to_json(const HybridSessionKey& m) {
  return Obj()
      .bytes("sessionId", m.session_id)
      .bytes("streamId", m.stream_id)
      .bytes("key", m.key.span())
      .int64("miniblockNum", m.miniblock_num)
      .bytes("miniblockHash", m.miniblock_hash)
      .done();
}

json to_json(const ExportedDevice& m) {
  auto group_sessions = [](const std::vector<ExportedDevice::GroupSession>& v) {
    json out = json::array();
    for (const auto& s : v) {
      out.push_back(Obj().str("sessionId", s.session_id).str("streamId", s.stream_id).str("session", s.session.view()).done());
    }
    return out;
  };
  json hybrid = json::array();
  for (const auto& s : m.hybrid_group_sessions) {
    hybrid.push_back(Obj()
                         .str("sessionId", s.session_id)
                         .str("streamId", s.stream_id)
                         .bytes("sessionKey", s.session_key.span())
                         .int64("miniblockNum", s.miniblock_num)
                         .done());
  }
  // Upstream names these fields in camelCase already.
  return Obj()
      .str("pickleKey", m.pickle_key.view())
      .str("pickledAccount", m.pickled_account.view())
      .list("outboundSessions", group_sessions(m.outbound_sessions))
      .list("inboundSessions", group_sessions(m.inbound_sessions))
      .list("hybridGroupSessions", std::move(hybrid))
      .done();
}

// A message whose codec is M::decode and M::encode.
template <typename M>
DecodedMessage plain(std::span<const uint8_t> bytes) {
  auto m = M::decode(bytes);
  auto encoded = m.encode();
  if constexpr (std::is_same_v<decltype(encoded), crypto::SecretBytes>) {
    return {to_json(m), vec(encoded.span())};
  } else {
    return {to_json(m), vec(encoded)};
  }
}

// HybridSessionKey::decode refuses with IMPORT_FAILED (what importing one
// gives); as a message, malformed bytes are INVALID_ARGUMENT.
DecodedMessage hybrid_group_session_key(std::span<const uint8_t> bytes) {
  try {
    return plain<HybridSessionKey>(bytes);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::IMPORT_FAILED) throw;
    throw Error(ErrorCode::INVALID_ARGUMENT, "not a HybridGroupSessionKey: malformed");
  }
}

using Codec = DecodedMessage (*)(std::span<const uint8_t>);

const std::vector<std::pair<std::string, Codec>>& codecs() {
  static const std::vector<std::pair<std::string, Codec>> table = {
      {"river.EncryptedData", &plain<EncryptedData>},
      {"river.MemberPayload", &plain<wire::MemberPayload>},
      {"river.MemberPayload.KeySolicitation", &plain<KeySolicitation>},
      {"river.MemberPayload.KeyFulfillment", &plain<KeyFulfillment>},
      {"river.UserInboxPayload", &plain<wire::UserInboxPayload>},
      {"river.UserInboxPayload.GroupEncryptionSessions", &plain<GroupEncryptionSessions>},
      {"river.UserMetadataPayload.EncryptionDevice", &plain<wire::EncryptionDeviceMessage>},
      {"river.SessionKeys", &plain<wire::SessionKeysMessage>},
      {"river.HybridGroupSessionKey", &hybrid_group_session_key},
      {"river.ExportedDevice", &plain<ExportedDevice>},
  };
  return table;
}

}  // namespace

const std::vector<std::string>& known_messages() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, codec] : codecs()) out.push_back(name);
    return out;
  }();
  return names;
}

DecodedMessage decode_message(std::string_view type_name, std::span<const uint8_t> bytes) {
  for (const auto& [name, codec] : codecs()) {
    if (name == type_name) return codec(bytes);
  }
  throw Error(ErrorCode::INVALID_ARGUMENT, "unknown message type " + shorten_for_message(type_name));
}

}  // namespace towns::vectors
