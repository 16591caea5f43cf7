// The public wire messages' codecs (messages.h), over lib/wire.
#include "towns/protocol/messages.h"

#include <string>

#include "protocol/wire_messages.h"
#include "wire/wire.h"

namespace towns {

namespace {

using wire::Malformed;
using wire::Reader;
using wire::WireType;
using Out = std::vector<uint8_t>;

Bytes copy(std::span<const uint8_t> b) { return Bytes(b.begin(), b.end()); }

using wire::read_fields;

}  // namespace

Bytes EncryptedData::encode() const {
  Out out;
  wire::Writer w(out);
  w.bytes_if_set(1, ciphertext);
  w.bytes_if_set(2, algorithm);
  w.bytes_if_set(3, sender_key);
  w.bytes_if_set(4, session_id);
  if (checksum) w.bytes(5, *checksum);
  if (ref_event_id) w.bytes(6, *ref_event_id);
  w.bytes_if_set(8, std::span<const uint8_t>(ciphertext_bytes));
  w.bytes_if_set(9, std::span<const uint8_t>(iv_bytes));
  w.bytes_if_set(10, std::span<const uint8_t>(session_id_bytes));
  // An enum is an int32: a negative value is sign-extended to 64 bits.
  w.varint_if_set(11, static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(version))));
  if (device_key) w.bytes(12, *device_key);
  return out;
}

EncryptedData EncryptedData::decode(std::span<const uint8_t> bytes) {
  EncryptedData m;
  read_fields(bytes, "EncryptedData", [&](Reader& r, uint32_t field, WireType type) {
    if (type == wire::kVarint && field == 11) {
      m.version = static_cast<EncryptedDataVersion>(static_cast<int32_t>(static_cast<uint32_t>(r.varint())));
      return true;
    }
    if (type != wire::kLengthDelimited) return false;
    switch (field) {
      case 1: m.ciphertext = r.utf8(); return true;
      case 2: m.algorithm = r.utf8(); return true;
      case 3: m.sender_key = r.utf8(); return true;
      case 4: m.session_id = r.utf8(); return true;
      case 5: m.checksum = std::string(r.utf8()); return true;
      case 6: m.ref_event_id = std::string(r.utf8()); return true;
      case 8: m.ciphertext_bytes = copy(r.bytes()); return true;
      case 9: m.iv_bytes = copy(r.bytes()); return true;
      case 10: m.session_id_bytes = copy(r.bytes()); return true;
      case 12: m.device_key = std::string(r.utf8()); return true;
      default: return false;
    }
  });
  return m;
}

Bytes KeySolicitation::encode() const {
  Out out;
  wire::Writer w(out);
  w.bytes_if_set(1, device_key);
  w.bytes_if_set(2, fallback_key);
  w.varint_if_set(3, is_new_device ? 1 : 0);
  for (const auto& id : session_ids) w.bytes(4, id);
  return out;
}

KeySolicitation KeySolicitation::decode(std::span<const uint8_t> bytes) { return wire::decode_key_solicitation(bytes, 0); }

KeySolicitation wire::decode_key_solicitation(std::span<const uint8_t> bytes, int depth) {
  KeySolicitation m;
  read_fields(bytes, "KeySolicitation", [&](Reader& r, uint32_t field, WireType type) {
    if (type == wire::kVarint && field == 3) {
      m.is_new_device = r.varint() != 0;
      return true;
    }
    if (type != wire::kLengthDelimited) return false;
    switch (field) {
      case 1: m.device_key = r.utf8(); return true;
      case 2: m.fallback_key = r.utf8(); return true;
      case 4: m.session_ids.emplace_back(r.utf8()); return true;
      default: return false;
    }
  }, depth);
  return m;
}

Bytes KeyFulfillment::encode() const {
  Out out;
  wire::Writer w(out);
  w.bytes_if_set(1, std::span<const uint8_t>(user_address));
  w.bytes_if_set(2, device_key);
  for (const auto& id : session_ids) w.bytes(3, id);
  return out;
}

KeyFulfillment KeyFulfillment::decode(std::span<const uint8_t> bytes) { return wire::decode_key_fulfillment(bytes, 0); }

KeyFulfillment wire::decode_key_fulfillment(std::span<const uint8_t> bytes, int depth) {
  KeyFulfillment m;
  read_fields(bytes, "KeyFulfillment", [&](Reader& r, uint32_t field, WireType type) {
    if (type != wire::kLengthDelimited) return false;
    switch (field) {
      case 1: m.user_address = copy(r.bytes()); return true;
      case 2: m.device_key = r.utf8(); return true;
      case 3: m.session_ids.emplace_back(r.utf8()); return true;
      default: return false;
    }
  }, depth);
  return m;
}

Bytes GroupEncryptionSessions::encode() const {
  Out out;
  wire::Writer w(out);
  w.bytes_if_set(1, std::span<const uint8_t>(stream_id));
  w.bytes_if_set(2, sender_key);
  for (const auto& id : session_ids) w.bytes(3, id);
  // Map entries as protobuf writes them deterministically: sorted by key, key
  // and value both written.
  for (const auto& entry : ciphertexts) {
    w.message(4, [&](wire::Writer<Out>& e) {
      e.bytes(1, entry.first);
      e.bytes(2, entry.second);
    });
  }
  w.bytes_if_set(5, algorithm);
  return out;
}

GroupEncryptionSessions GroupEncryptionSessions::decode(std::span<const uint8_t> bytes) { return wire::decode_group_encryption_sessions(bytes, 0); }

GroupEncryptionSessions wire::decode_group_encryption_sessions(std::span<const uint8_t> bytes, int depth) {
  GroupEncryptionSessions m;
  read_fields(bytes, "GroupEncryptionSessions", [&](Reader& r, uint32_t field, WireType type) {
    if (type != wire::kLengthDelimited) return false;
    switch (field) {
      case 1: m.stream_id = copy(r.bytes()); return true;
      case 2: m.sender_key = r.utf8(); return true;
      case 3: m.session_ids.emplace_back(r.utf8()); return true;
      case 4: {
        // A map entry: a missing key or value is "", a later entry for the same
        // key replaces the earlier one.
        std::string key, value;
        read_fields(r.bytes(), "GroupEncryptionSessions", [&](Reader& e, uint32_t f, WireType t) {
          if (t != wire::kLengthDelimited || (f != 1 && f != 2)) return false;
          (f == 1 ? key : value) = e.utf8();
          return true;
        }, depth + 1);
        m.ciphertexts[key] = std::move(value);
        return true;
      }
      case 5: m.algorithm = r.utf8(); return true;
      default: return false;
    }
  }, depth);
  return m;
}

}  // namespace towns

namespace towns {

namespace {
using SecretOut = std::vector<uint8_t, crypto::WipingAllocator<uint8_t>>;

crypto::SecretBytes secret_utf8(Reader& r) {
  auto b = r.bytes();
  if (!wire::is_utf8({reinterpret_cast<const char*>(b.data()), b.size()})) {
    throw Malformed{"a string field is not valid UTF-8"};
  }
  return crypto::SecretBytes(b);
}

void write_group_session(wire::Writer<SecretOut>& w, const ExportedDevice::GroupSession& s) {
  w.bytes_if_set(1, s.session_id);
  w.bytes_if_set(2, s.stream_id);
  w.bytes_if_set(3, s.session.span());
}
}  // namespace

crypto::SecretBytes ExportedDevice::encode() const {
  SecretOut out;
  wire::Writer w(out);
  w.bytes_if_set(1, pickle_key.span());
  w.bytes_if_set(2, pickled_account.span());
  for (const auto& s : outbound_sessions) w.message(3, [&](auto& e) { write_group_session(e, s); });
  for (const auto& s : inbound_sessions) w.message(4, [&](auto& e) { write_group_session(e, s); });
  for (const auto& s : hybrid_group_sessions) {
    w.message(5, [&](auto& e) {
      e.bytes_if_set(1, s.session_id);
      e.bytes_if_set(2, s.stream_id);
      e.bytes_if_set(3, s.session_key.span());
      e.varint_if_set(4, static_cast<uint64_t>(s.miniblock_num));
    });
  }
  return crypto::SecretBytes(std::span<const uint8_t>(out.data(), out.size()));
}

ExportedDevice ExportedDevice::decode(std::span<const uint8_t> bytes) {
  ExportedDevice m;
  auto group_session = [](std::span<const uint8_t> b) {
    GroupSession s;
    read_fields(b, "ExportedDevice", [&](Reader& r, uint32_t field, WireType type) {
      if (type != wire::kLengthDelimited) return false;
      switch (field) {
        case 1: s.session_id = r.utf8(); return true;
        case 2: s.stream_id = r.utf8(); return true;
        case 3: s.session = secret_utf8(r); return true;
        default: return false;
      }
    }, 1);
    return s;
  };
  read_fields(bytes, "ExportedDevice", [&](Reader& r, uint32_t field, WireType type) {
    if (type != wire::kLengthDelimited) return false;
    switch (field) {
      case 1: m.pickle_key = secret_utf8(r); return true;
      case 2: m.pickled_account = secret_utf8(r); return true;
      case 3: m.outbound_sessions.push_back(group_session(r.bytes())); return true;
      case 4: m.inbound_sessions.push_back(group_session(r.bytes())); return true;
      case 5: {
        HybridGroupSession s;
        read_fields(r.bytes(), "ExportedDevice", [&](Reader& e, uint32_t f, WireType t) {
          if (t == wire::kVarint && f == 4) {
            s.miniblock_num = static_cast<int64_t>(e.varint());
            return true;
          }
          if (t != wire::kLengthDelimited) return false;
          switch (f) {
            case 1: s.session_id = e.utf8(); return true;
            case 2: s.stream_id = e.utf8(); return true;
            case 3: s.session_key = crypto::SecretBytes(e.bytes()); return true;
            default: return false;
          }
        }, 1);
        m.hybrid_group_sessions.push_back(std::move(s));
        return true;
      }
      default: return false;
    }
  });
  return m;
}

}  // namespace towns
