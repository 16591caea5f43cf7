// A GroupEncryptionClient for tests: records every share it is asked to make and
// answers the miniblock question with miniblock next_miniblock (hash: 32 bytes
// of that number). Thread-safe: shares of the two algorithms may come from two
// threads.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "towns/protocol/group_encryption.h"

namespace test {

inline towns::MiniblockInfo miniblock(int64_t n) { return {n, std::vector<uint8_t>(32, static_cast<uint8_t>(n))}; }

class RecordingClient final : public towns::GroupEncryptionClient {
 public:
  void encrypt_and_share_group_sessions_to_stream(std::string_view stream_id,
                                                  const std::vector<towns::GroupEncryptionSession>& sessions,
                                                  towns::GroupEncryptionAlgorithm algorithm,
                                                  const std::vector<std::string>&) override {
    std::lock_guard lock(mu);
    for (const auto& s : sessions) shared.push_back({std::string(stream_id), s, algorithm});
  }
  towns::MiniblockInfo get_miniblock_info(std::string_view) override { return miniblock(next_miniblock); }

  struct Share {
    std::string stream;
    towns::GroupEncryptionSession session;
    towns::GroupEncryptionAlgorithm algorithm;
  };
  std::mutex mu;
  std::vector<Share> shared;
  int64_t next_miniblock = 10;
};

}  // namespace test
