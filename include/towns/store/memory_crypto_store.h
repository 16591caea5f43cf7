// MemoryCryptoStore: a CryptoStore in process memory, for tests and throwaway
// devices. Unlike the canonical client's in-memory store (an LRU of 5,000
// entries per table that silently forgets sessions), it never drops an entry.
// Hybrid session keys live in wiped-on-release buffers. Transactions snapshot
// the tables and restore them if the transaction throws.
#pragma once

#include <map>
#include <mutex>
#include <tuple>

#include "towns/store/crypto_store.h"

namespace towns {

class TOWNS_API MemoryCryptoStore final : public CryptoStore {
 public:
  MemoryCryptoStore() = default;

  std::optional<std::string> get_account() override;
  void store_account(std::string_view pickle) override;
  void delete_account() override;

  std::optional<GroupSessionRecord> get_outbound_session(std::string_view stream_id) override;
  void store_outbound_session(const GroupSessionRecord& record) override;
  void delete_outbound_session(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_outbound_sessions() override;

  std::optional<GroupSessionRecord> get_inbound_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  void store_inbound_session(const GroupSessionRecord& record) override;
  void delete_inbound_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> inbound_session_ids(std::string_view stream_id) override;
  std::vector<GroupSessionRecord> all_inbound_sessions() override;

  std::optional<HybridSessionRecord> get_hybrid_session(std::string_view stream_id,
                                                        std::string_view session_id) override;
  std::optional<HybridSessionRecord> latest_hybrid_session(std::string_view stream_id) override;
  void store_hybrid_session(const HybridSessionRecord& record) override;
  void delete_hybrid_session(std::string_view stream_id, std::string_view session_id) override;
  std::vector<std::string> hybrid_session_ids(std::string_view stream_id) override;
  std::vector<HybridSessionRecord> all_hybrid_sessions() override;

  void save_user_devices(std::string_view user_id, const std::vector<UserDevice>& devices,
                         int64_t expiration_ms) override;
  std::vector<UserDevice> get_user_devices(std::string_view user_id, int64_t now_ms) override;
  void delete_user_devices(std::string_view user_id) override;
  void purge_expired_devices(int64_t now_ms) override;

  void delete_all() override;
  void transaction(const std::function<void()>& fn) override;

 private:
  using Key = std::pair<std::string, std::string>;
  struct Tables {
    std::optional<std::string> account;
    std::map<std::string, GroupSessionRecord, std::less<>> outbound;
    std::map<Key, GroupSessionRecord> inbound;
    std::map<Key, HybridSessionRecord> hybrid;
    std::map<Key, UserDeviceRecord> devices;  // (user id, device key)
  };

  std::recursive_mutex mu_;
  Tables t_;
  int depth_ = 0;
};

}  // namespace towns
