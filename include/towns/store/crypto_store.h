// CryptoStore: where a device keeps its account and its group sessions.
//
// The interface offers what the canonical client's store offers (account
// pickle; outbound group sessions by stream; inbound group sessions by (stream,
// session id); hybrid sessions by (stream, session id) and the latest per
// stream; user devices with expiry) plus transactions.
//
// Contract for every implementation:
// - Thread-safe: any method may be called from any thread. A transaction holds
//   the store for its duration, so other threads wait for it.
// - transaction(fn): every write made inside fn lands together or not at all. If
//   fn throws, nothing it wrote remains and the exception propagates. Nested
//   calls join the outermost transaction.
// - A write that returned has been acknowledged (SqliteCryptoStore: committed).
// - Olm objects are stored as pickles (already encrypted by libolm under the
//   pickle key); hybrid session keys are secrets and each store protects them as
//   it documents.
// - Lookups of absent entries return std::nullopt / empty lists, never throw.
//   Failures of the store itself throw Error(STORE_*).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns {

// An olm group session (outbound or inbound) as stored: its pickle. For an
// outbound session, reserved_until is the first message index nobody has
// reserved yet: indices below it may have been used, so whoever loads the
// pickle (which may be older) advances it to reserved_until before encrypting.
struct GroupSessionRecord {
  std::string stream_id;
  std::string session_id;
  std::string pickle;
  uint32_t reserved_until = 0;
};

// A hybrid (grpaes) session as stored: session_key is the binary
// HybridGroupSessionKey protobuf, which contains the AES key.
struct HybridSessionRecord {
  std::string stream_id;
  std::string session_id;  // lowercase hex of the 32-byte id
  crypto::SecretBytes session_key;
  int64_t miniblock_num = 0;
};

// A published device of a user, cached with an expiry.
struct UserDevice {
  std::string device_key;
  std::string fallback_key;
};

struct UserDeviceRecord {
  std::string user_id;
  UserDevice device;
  int64_t expiration_ms = 0;  // Unix time in milliseconds
};

// The client's default device-cache lifetime: 5 days.
inline constexpr int64_t kDefaultUserDeviceExpirationMs = 5LL * 24 * 60 * 60 * 1000;

class TOWNS_API CryptoStore {
 public:
  virtual ~CryptoStore() = default;

  virtual std::optional<std::string> get_account() = 0;
  virtual void store_account(std::string_view pickle) = 0;
  virtual void delete_account() = 0;

  virtual std::optional<GroupSessionRecord> get_outbound_session(std::string_view stream_id) = 0;
  virtual void store_outbound_session(const GroupSessionRecord& record) = 0;
  virtual void delete_outbound_session(std::string_view stream_id) = 0;
  virtual std::vector<GroupSessionRecord> all_outbound_sessions() = 0;

  virtual std::optional<GroupSessionRecord> get_inbound_session(std::string_view stream_id,
                                                                std::string_view session_id) = 0;
  virtual void store_inbound_session(const GroupSessionRecord& record) = 0;
  virtual void delete_inbound_session(std::string_view stream_id, std::string_view session_id) = 0;
  // Sorted ascending.
  virtual std::vector<std::string> inbound_session_ids(std::string_view stream_id) = 0;
  virtual std::vector<GroupSessionRecord> all_inbound_sessions() = 0;

  virtual std::optional<HybridSessionRecord> get_hybrid_session(std::string_view stream_id,
                                                                std::string_view session_id) = 0;
  // The stream's session with the highest miniblock number (ties: the highest id).
  virtual std::optional<HybridSessionRecord> latest_hybrid_session(std::string_view stream_id) = 0;
  virtual void store_hybrid_session(const HybridSessionRecord& record) = 0;
  virtual void delete_hybrid_session(std::string_view stream_id, std::string_view session_id) = 0;
  // Sorted ascending.
  virtual std::vector<std::string> hybrid_session_ids(std::string_view stream_id) = 0;
  virtual std::vector<HybridSessionRecord> all_hybrid_sessions() = 0;

  // Adds or refreshes the listed devices of the user, each valid until
  // expiration_ms; devices not listed keep their own expiry (as the client does).
  virtual void save_user_devices(std::string_view user_id, const std::vector<UserDevice>& devices,
                                 int64_t expiration_ms) = 0;
  // The user's devices whose expiry is after now_ms, ordered by device key.
  virtual std::vector<UserDevice> get_user_devices(std::string_view user_id, int64_t now_ms) = 0;
  virtual void delete_user_devices(std::string_view user_id) = 0;
  virtual void purge_expired_devices(int64_t now_ms) = 0;

  virtual void delete_all() = 0;

  virtual void transaction(const std::function<void()>& fn) = 0;
};

}  // namespace towns
