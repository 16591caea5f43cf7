// The one way randomness enters the library.
//
// Every random input (libolm's random buffers, AES keys, IVs) is drawn from a
// RandomSource passed in by the caller, so that a seeded source can reproduce
// every byte of a test vector. os_random() is the default for real use.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns::crypto {

class TOWNS_API RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Fills out with random bytes; throws towns::Error(INTERNAL) when the source fails.
  virtual void fill(std::span<uint8_t> out) = 0;

  SecretBytes bytes(size_t n) {
    SecretBytes b(n);
    fill(b.span());
    return b;
  }
};

// The operating system's CSPRNG through OpenSSL's RAND_bytes. Thread-safe.
TOWNS_API RandomSource& os_random();

// A deterministic source. Output block i (32 bytes) is
//   SHA-256("towns-e2ee seeded random v1" || seed || u64_be(i))
// and bytes are handed out in order, so the output depends only on the seed and
// on the order of the draws. With a known seed it serves test vectors and
// reproducible tests; with a secret 32-byte seed drawn from os_random() it is a
// sound hash-based generator, which is how the parallel paths give each worker
// its own stream without depending on the thread count. Thread-safe (draws are
// serialised).
class TOWNS_API SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(std::span<const uint8_t> seed);
  void fill(std::span<uint8_t> out) override;

 private:
  std::mutex mu_;
  SecretBytes seed_;
  uint64_t counter_ = 0;
  SecretBytes block_;
  size_t used_ = 32;
};

}  // namespace towns::crypto
