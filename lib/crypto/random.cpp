#include "towns/crypto/random.h"

#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns::crypto {
namespace {

class OsRandom final : public RandomSource {
 public:
  void fill(std::span<uint8_t> out) override {
    while (!out.empty()) {
      int n = static_cast<int>(std::min<size_t>(out.size(), INT_MAX));
      if (RAND_bytes(out.data(), n) != 1) {
        throw Error(ErrorCode::INTERNAL, "the operating system's random source failed");
      }
      out = out.subspan(static_cast<size_t>(n));
    }
  }
};

constexpr std::string_view kSeededDomain = "towns-e2ee seeded random v1";

}  // namespace

RandomSource& os_random() {
  static OsRandom source;
  return source;
}

SeededRandom::SeededRandom(std::span<const uint8_t> seed) : seed_(seed), block_(32) {}

void SeededRandom::fill(std::span<uint8_t> out) {
  std::lock_guard lock(mu_);
  size_t done = 0;
  while (done < out.size()) {
    if (used_ == block_.size()) {
      SecretBytes input(as_bytes(kSeededDomain));
      input.append(seed_.span());
      uint8_t ctr[8];
      for (int i = 0; i < 8; ++i) ctr[i] = static_cast<uint8_t>(counter_ >> (56 - 8 * i));
      input.append(ctr);
      auto digest = sha256(input.span());
      std::memcpy(block_.data(), digest.data(), digest.size());
      wipe(digest.data(), digest.size());
      ++counter_;
      used_ = 0;
    }
    size_t n = std::min(out.size() - done, block_.size() - used_);
    std::memcpy(out.data() + done, block_.data() + used_, n);
    used_ += n;
    done += n;
  }
}

}  // namespace towns::crypto
