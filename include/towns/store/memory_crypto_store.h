// MemoryCryptoStore: a CryptoStore in process memory, for tests and throwaway
// devices. Unlike the canonical client's in-memory store (an LRU of 5,000
// entries per table that silently forgets sessions), it never drops an entry.
// Hybrid session keys live in wiped-on-release buffers.
//
// save_changes and record_message_indices copy the new entries aside first and
// then splice them in without allocating, so a failure (out of memory) leaves
// the tables as they were. data_version() is always 0: nothing else can write
// into this store's memory.
//
// Locking: one plain (non-recursive) mutex guards the tables. Every method takes
// it once, for its whole body, and calls nothing outside this class while it is
// held (no caller code, no other lock): it is a leaf lock.
#pragma once

#include <map>
#include <tuple>

#include "towns/detail_sync.h"
#include "towns/store/crypto_store.h"

namespace towns {

class TOWNS_API MemoryCryptoStore final : public CryptoStore {
 public:
  MemoryCryptoStore();  // out of line: one exported constructor, whatever the compiler inlines

  std::optional<std::string> get_account() override;
  void delete_account() override;

  std::optional<GroupSessionRecord> get_outbound_session(std::string_view stream_id) override;
  void delete_outbound_session(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_outbound_sessions() override;

  std::optional<GroupSessionRecord> get_inbound_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  void delete_inbound_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> inbound_session_ids(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_inbound_sessions() override;

  std::optional<HybridSessionRecord> get_hybrid_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  std::optional<HybridSessionRecord> latest_hybrid_session(std::string_view stream_id) override;
  void delete_hybrid_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> hybrid_session_ids(std::string_view stream_id) override;
  std::vector<HybridSessionRecord> all_hybrid_sessions() override;

  void delete_all() override;

  bool save_changes(const StoreChanges& changes) override;
  std::vector<ReplayCheck> record_message_indices(const std::vector<MessageIndexRecord>& entries) override;
  uint64_t data_version() override;

 private:
  using Key = std::pair<std::string, std::string>;
  using IndexKey = std::tuple<std::string, std::string, uint32_t>;
  struct Tables {
    std::optional<std::string> account;
    std::map<std::string, GroupSessionRecord, std::less<>> outbound;
    std::map<Key, GroupSessionRecord> inbound;
    std::map<Key, HybridSessionRecord> hybrid;
    std::map<IndexKey, std::array<uint8_t, 16>> indices;  // the replay record
  };

  Mutex mu_;
  Tables t_ TOWNS_GUARDED_BY(mu_);
};

}  // namespace towns
