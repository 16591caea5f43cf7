// AES-256-GCM, SHA-256, HMAC-SHA-256 and HKDF-SHA-256 over OpenSSL libcrypto.
//
// AesGcm: 32-byte key, 12-byte IV, 16-byte tag appended to the ciphertext, as the
// Towns hybrid (grpaes) algorithm and WebCrypto lay it out. An AesGcm object is
// immutable after construction and may be used from several threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "towns/crypto/random.h"
#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns::crypto {

inline constexpr size_t kAesGcmKeySize = 32;
inline constexpr size_t kAesGcmIvSize = 12;
inline constexpr size_t kAesGcmTagSize = 16;

class TOWNS_API AesGcm {
 public:
  // Error(INVALID_ARGUMENT) when the key is not 32 bytes.
  static AesGcm New(SecretView key);

  // Returns ciphertext || tag. Error(INVALID_ARGUMENT) when the IV is not 12 bytes.
  std::vector<uint8_t> encrypt(std::span<const uint8_t> iv, std::span<const uint8_t> plaintext,
                               std::span<const uint8_t> aad = {}) const;

  // Takes ciphertext || tag. Error(INVALID_ARGUMENT) for an IV that is not 12
  // bytes or an input shorter than the tag; Error(DECRYPTION_FAILED) when the tag
  // does not verify (nothing of the plaintext is returned then).
  SecretBytes decrypt(std::span<const uint8_t> iv, std::span<const uint8_t> ciphertext_and_tag,
                      std::span<const uint8_t> aad = {}) const;

 private:
  explicit AesGcm(SecretBytes key) : key_(std::move(key)) {}
  SecretBytes key_;
};

TOWNS_API std::array<uint8_t, 32> sha256(std::span<const uint8_t> data);

// HMAC-SHA-256 (RFC 2104).
TOWNS_API std::array<uint8_t, 32> hmac_sha256(SecretView key, std::span<const uint8_t> data);

// An HMAC-SHA-256 key prepared once (its padded key hashed), for many MACs under
// it: about four times faster per MAC than hmac_sha256. Immutable after
// construction; mac() may be called from several threads at once.
class TOWNS_API HmacSha256 {
 public:
  explicit HmacSha256(SecretView key);
  ~HmacSha256();
  HmacSha256(HmacSha256&& o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }
  HmacSha256& operator=(HmacSha256&& o) noexcept;
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  std::array<uint8_t, 32> mac(std::span<const uint8_t> data) const;

 private:
  void* ctx_;  // the SHA-256 states after the key's inner and outer pads (wiped when freed)
};

// HKDF-SHA-256 (RFC 5869) of out_len bytes.
TOWNS_API SecretBytes hkdf_sha256(SecretView ikm, std::span<const uint8_t> salt,
                                  std::span<const uint8_t> info, size_t out_len);

}  // namespace towns::crypto
