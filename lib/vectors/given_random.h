// A RandomSource that hands out bytes a test vector gives, in order: the
// vectors' way of making libolm's draws, AES keys and IVs explicit inputs.
// Asking for more than was given is an error, and so is leaving some unused
// (all_used()), so a vector's random input must match the draws exactly.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "towns/crypto/random.h"
#include "towns/error.h"

namespace towns::vectors {

class GivenRandom final : public crypto::RandomSource {
 public:
  explicit GivenRandom(std::span<const uint8_t> bytes) : bytes_(bytes.begin(), bytes.end()) {}
  ~GivenRandom() override { crypto::wipe(bytes_.data(), bytes_.size()); }
  GivenRandom(const GivenRandom&) = delete;
  GivenRandom& operator=(const GivenRandom&) = delete;

  void fill(std::span<uint8_t> out) override {
    if (out.size() > bytes_.size() - at_) {
      throw Error(ErrorCode::INTERNAL, "a draw of " + std::to_string(out.size()) + " random bytes, but only " +
                                           std::to_string(bytes_.size() - at_) + " were given");
    }
    std::copy(bytes_.begin() + static_cast<std::ptrdiff_t>(at_),
              bytes_.begin() + static_cast<std::ptrdiff_t>(at_ + out.size()), out.begin());
    at_ += out.size();
  }
  bool all_used() const { return at_ == bytes_.size(); }
  size_t used() const { return at_; }

 private:
  std::vector<uint8_t> bytes_;
  size_t at_ = 0;
};

}  // namespace towns::vectors
