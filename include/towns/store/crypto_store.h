// CryptoStore: where a device keeps its account, its group sessions and the
// replay record of the message indices it has decrypted.
//
// The interface offers what the canonical client's store offers (account
// pickle; outbound group sessions by stream; inbound group sessions by (stream,
// session id); hybrid sessions by (stream, session id) and the latest per
// stream). Writes go through save_changes (the shape of matrix-sdk-crypto's
// save_changes(Changes)): the caller builds everything one operation writes and
// hands it over; the store applies it in one transaction.
//
// Contract for every implementation:
// - Thread-safe: any method may be called from any thread, concurrently.
// - No caller code ever runs under a store lock, and the store's lock is a leaf
//   (the last in the lock hierarchy of include/towns/detail_sync.h): a store
//   method takes its own lock, takes no other lock and calls out to nothing while
//   holding it, so a caller may call the store while holding any of its own
//   locks. Methods take data, never callbacks; there is no way to run caller code
//   inside a store transaction.
// - The writers are save_changes (every insert and replace), the delete_*
//   methods and record_message_indices; nothing else writes.
// - save_changes is all or nothing: every change it was given lands together,
//   or (a condition failed, or the store failed) none does.
// - Read-modify-write across processes is optimistic: read, compute, then
//   save_changes with expect_outbound conditions on what was read; if it returns
//   false another writer got there first: re-read and retry.
// - A write that returned has been acknowledged (SqliteCryptoStore: committed).
// - Olm objects are stored as pickles (already encrypted by libolm under the
//   pickle key); hybrid session keys are secrets and each store protects them as
//   it documents (SqliteCryptoStore seals every secret row, bound to its place,
//   and refuses a row it did not write there with STORE_CORRUPT).
// - Lookups of absent entries return std::nullopt / empty lists, never throw.
//   Failures of the store itself throw Error(STORE_*).
#pragma once

#include <array>
#include <cstdint>
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

// A published device of a user (the store does not keep these; the protocol
// layer passes them around).
struct UserDevice {
  std::string device_key;
  std::string fallback_key;
};

// A precondition on an outbound row, checked inside save_changes' transaction.
struct OutboundCondition {
  std::string stream_id;
  std::optional<std::string> session_id;  // std::nullopt: the stream must have NO outbound row
  uint32_t reserved_until = 0;            // checked only when session_id is set: must equal the stored value
};

// Everything one operation writes, applied atomically by save_changes. Within
// one list, a later record for the same key replaces an earlier one.
struct StoreChanges {
  std::optional<std::string> account;                 // the account pickle to store
  std::vector<GroupSessionRecord> outbound_sessions;  // insert or replace by stream id
  std::vector<GroupSessionRecord> inbound_sessions;   // insert or replace by (stream, session id)
  std::vector<HybridSessionRecord> hybrid_sessions;   // insert or replace by (stream, session id)
  std::vector<OutboundCondition> expect_outbound;     // all must hold, else nothing is written
  // True when there is nothing to write and nothing to check.
  bool empty() const {
    return !account.has_value() && outbound_sessions.empty() && inbound_sessions.empty() &&
           hybrid_sessions.empty() && expect_outbound.empty();
  }
};

// The replay record (docs/security.md): per inbound session, the message indices
// decrypted so far with a 16-byte fingerprint of the event decrypted at each.
struct MessageIndexRecord {
  std::string stream_id;
  std::string session_id;
  uint32_t message_index = 0;
  std::array<uint8_t, 16> fingerprint{};
};
enum class ReplayCheck { kNew, kSame, kConflict };

class TOWNS_API CryptoStore {
 public:
  virtual ~CryptoStore() = default;

  virtual std::optional<std::string> get_account() = 0;
  virtual void delete_account() = 0;

  virtual std::optional<GroupSessionRecord> get_outbound_session(std::string_view stream_id) = 0;
  virtual void delete_outbound_session(std::string_view stream_id) = 0;
  virtual std::vector<GroupSessionRecord> all_outbound_sessions() = 0;

  virtual std::optional<GroupSessionRecord> get_inbound_session(std::string_view stream_id,
                                                                std::string_view session_id) = 0;
  // Also deletes the session's replay record (its message indices).
  virtual void delete_inbound_session(std::string_view stream_id, std::string_view session_id) = 0;
  // Sorted ascending.
  virtual std::vector<std::string> inbound_session_ids(std::string_view stream_id) = 0;
  virtual std::vector<GroupSessionRecord> all_inbound_sessions() = 0;

  virtual std::optional<HybridSessionRecord> get_hybrid_session(std::string_view stream_id,
                                                                std::string_view session_id) = 0;
  // The stream's session with the highest miniblock number; on a tie the lowest
  // session id, as the client's IndexedDB store (docs/protocol.md section 6.3).
  virtual std::optional<HybridSessionRecord> latest_hybrid_session(std::string_view stream_id) = 0;
  virtual void delete_hybrid_session(std::string_view stream_id, std::string_view session_id) = 0;
  // Sorted ascending.
  virtual std::vector<std::string> hybrid_session_ids(std::string_view stream_id) = 0;
  virtual std::vector<HybridSessionRecord> all_hybrid_sessions() = 0;

  // Everything, the replay record included.
  virtual void delete_all() = 0;

  // Applies every change in one transaction. Returns false (and writes nothing) when a
  // condition in expect_outbound does not hold. Throws Error(STORE_*) on store failure,
  // writing nothing. Never runs caller code. An empty StoreChanges returns true and
  // touches nothing.
  virtual bool save_changes(const StoreChanges& changes) = 0;

  // Records each entry in order, in one transaction: kNew when the (stream, session, index)
  // was not recorded (it is recorded now), kSame when it was, with the same fingerprint,
  // kConflict when it was with another fingerprint (the stored one is kept). An entry earlier
  // in the same call counts as recorded for a later one. Returns one result per entry.
  // Throws Error(STORE_*) on store failure, recording nothing.
  virtual std::vector<ReplayCheck> record_message_indices(const std::vector<MessageIndexRecord>& entries) = 0;

  // A value that changes whenever ANOTHER writer (another process, or another store object on the
  // same file) has committed since this store's previous call; this store's own writes do not change it,
  // and a store may leave it unchanged for commits that only record message indices (no cache holds
  // them). Caches built from the store are trusted only while it is unchanged. Called before every use
  // of a cache, so it should be cheap. MemoryCryptoStore: always 0.
  virtual uint64_t data_version() = 0;
};

}  // namespace towns
