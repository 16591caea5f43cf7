#include "towns/crypto/aead.h"

// SHA256_Init/Update/Final: OpenSSL 3 marks them deprecated in favour of EVP,
// whose context set-up per call costs more than hashing a short input (an HMAC of
// 80 bytes: 0.74 us through EVP_MAC_CTX_dup, 0.19 us from copied SHA-256 states).
// They remain in every OpenSSL 3 release.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <algorithm>
#include <memory>

#include "towns/error.h"

namespace towns::crypto {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

CipherCtx new_ctx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw Error(ErrorCode::INTERNAL, "EVP_CIPHER_CTX_new failed");
  return ctx;
}

void check_iv(std::span<const uint8_t> iv) {
  if (iv.size() != kAesGcmIvSize) {
    throw Error(ErrorCode::INVALID_ARGUMENT,
                "AES-GCM IV must be 12 bytes, got " + std::to_string(iv.size()));
  }
}

void ossl(int ok, const char* what) {
  if (ok != 1) throw Error(ErrorCode::INTERNAL, std::string("OpenSSL ") + what + " failed");
}

// AES-256-GCM fetched from the default provider once. EVP_aes_256_gcm() makes
// every EVP_*Init_ex look the cipher up again by name (a tenth of a 1 KiB
// grpaes event). Kept for the life of the process; reachable, so not a leak.
const EVP_CIPHER* aes_256_gcm() {
  static const EVP_CIPHER* const fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return fetched != nullptr ? fetched : EVP_aes_256_gcm();
}

int as_int(size_t n) {
  if (n > static_cast<size_t>(INT32_MAX)) throw Error(ErrorCode::INVALID_ARGUMENT, "input too large");
  return static_cast<int>(n);
}

}  // namespace

AesGcm AesGcm::New(SecretView key) {
  if (key.size() != kAesGcmKeySize) {
    throw Error(ErrorCode::INVALID_ARGUMENT,
                "AES-256-GCM key must be 32 bytes, got " + std::to_string(key.size()));
  }
  return AesGcm(SecretBytes(key.span()));
}

std::vector<uint8_t> AesGcm::encrypt(std::span<const uint8_t> iv, std::span<const uint8_t> plaintext,
                                     std::span<const uint8_t> aad) const {
  check_iv(iv);
  auto ctx = new_ctx();
  ossl(EVP_EncryptInit_ex(ctx.get(), aes_256_gcm(), nullptr, key_.data(), iv.data()), "EncryptInit");
  int len = 0;
  if (!aad.empty()) ossl(EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), as_int(aad.size())), "aad");
  std::vector<uint8_t> out(plaintext.size() + kAesGcmTagSize);
  if (!plaintext.empty()) {
    ossl(EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(), as_int(plaintext.size())), "EncryptUpdate");
  }
  int fin = 0;
  ossl(EVP_EncryptFinal_ex(ctx.get(), out.data() + plaintext.size(), &fin), "EncryptFinal");
  ossl(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAesGcmTagSize, out.data() + plaintext.size()),
       "GET_TAG");
  return out;
}

SecretBytes AesGcm::decrypt(std::span<const uint8_t> iv, std::span<const uint8_t> ciphertext_and_tag,
                            std::span<const uint8_t> aad) const {
  check_iv(iv);
  if (ciphertext_and_tag.size() < kAesGcmTagSize) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "AES-GCM input shorter than its 16-byte tag");
  }
  size_t ct_len = ciphertext_and_tag.size() - kAesGcmTagSize;
  auto ctx = new_ctx();
  ossl(EVP_DecryptInit_ex(ctx.get(), aes_256_gcm(), nullptr, key_.data(), iv.data()), "DecryptInit");
  int len = 0;
  if (!aad.empty()) ossl(EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), as_int(aad.size())), "aad");
  SecretBytes out(ct_len);
  if (ct_len > 0) {
    ossl(EVP_DecryptUpdate(ctx.get(), out.data(), &len, ciphertext_and_tag.data(), as_int(ct_len)), "DecryptUpdate");
  }
  // OpenSSL takes a non-const tag pointer for SET_TAG but only reads it.
  uint8_t tag[kAesGcmTagSize];
  std::copy_n(ciphertext_and_tag.data() + ct_len, kAesGcmTagSize, tag);
  ossl(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAesGcmTagSize, tag), "SET_TAG");
  int fin = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + ct_len, &fin) != 1) {
    out.clear();
    throw Error(ErrorCode::DECRYPTION_FAILED, "AES-GCM authentication tag mismatch");
  }
  return out;
}

std::array<uint8_t, 32> sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  SHA256_CTX c;
  ossl(SHA256_Init(&c), "SHA-256");
  ossl(SHA256_Update(&c, data.data(), data.size()), "SHA-256");
  ossl(SHA256_Final(out.data(), &c), "SHA-256");
  return out;
}

std::array<uint8_t, 32> hmac_sha256(SecretView key, std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  static constexpr uint8_t kEmpty[1] = {0};
  const uint8_t* d = data.empty() ? kEmpty : data.data();
  ossl(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), d, data.size(), out.data(), &n) != nullptr &&
               n == out.size()
           ? 1
           : 0,
       "HMAC-SHA-256");
  return out;
}

namespace {
// A prepared HMAC-SHA-256 key (RFC 2104): SHA-256 after absorbing the key's inner
// and outer pads. Secret (either state lets one compute MACs): wiped when freed.
struct HmacState {
  SHA256_CTX inner;
  SHA256_CTX outer;
  ~HmacState() { OPENSSL_cleanse(this, sizeof *this); }
};
}  // namespace

HmacSha256::HmacSha256(SecretView key) : ctx_(nullptr) {
  auto state = std::make_unique<HmacState>();
  constexpr size_t kBlock = 64;
  std::array<uint8_t, kBlock> k{};
  if (key.size() > kBlock) {
    auto h = sha256(std::span<const uint8_t>(key.data(), key.size()));
    std::copy(h.begin(), h.end(), k.begin());
    OPENSSL_cleanse(h.data(), h.size());
  } else if (key.size() > 0) {
    std::copy(key.data(), key.data() + key.size(), k.begin());
  }
  std::array<uint8_t, kBlock> pad{};
  auto absorb = [&](SHA256_CTX& c, uint8_t byte) {
    for (size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ byte;
    ossl(SHA256_Init(&c) == 1 && SHA256_Update(&c, pad.data(), pad.size()) == 1 ? 1 : 0, "HMAC key");
  };
  absorb(state->inner, 0x36);
  absorb(state->outer, 0x5c);
  OPENSSL_cleanse(k.data(), k.size());
  OPENSSL_cleanse(pad.data(), pad.size());
  ctx_ = state.release();
}

HmacSha256::~HmacSha256() { delete static_cast<HmacState*>(ctx_); }

HmacSha256& HmacSha256::operator=(HmacSha256&& o) noexcept {
  if (this != &o) {
    delete static_cast<HmacState*>(ctx_);
    ctx_ = o.ctx_;
    o.ctx_ = nullptr;
  }
  return *this;
}

std::array<uint8_t, 32> HmacSha256::mac(std::span<const uint8_t> data) const {
  if (ctx_ == nullptr) throw Error(ErrorCode::INTERNAL, "HMAC key moved from");
  const auto& state = *static_cast<const HmacState*>(ctx_);
  std::array<uint8_t, 32> inner{};
  std::array<uint8_t, 32> out{};
  SHA256_CTX c = state.inner;  // copies: mac() is const and may run on several threads
  int ok = SHA256_Update(&c, data.data(), data.size()) == 1 && SHA256_Final(inner.data(), &c) == 1;
  c = state.outer;
  ok = ok && SHA256_Update(&c, inner.data(), inner.size()) == 1 && SHA256_Final(out.data(), &c) == 1;
  OPENSSL_cleanse(&c, sizeof c);
  OPENSSL_cleanse(inner.data(), inner.size());
  ossl(ok ? 1 : 0, "HMAC-SHA-256");
  return out;
}

SecretBytes hkdf_sha256(SecretView ikm, std::span<const uint8_t> salt, std::span<const uint8_t> info,
                        size_t out_len) {
  std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr), EVP_KDF_free);
  if (!kdf) throw Error(ErrorCode::INTERNAL, "HKDF unavailable");
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()), EVP_KDF_CTX_free);
  if (!ctx) throw Error(ErrorCode::INTERNAL, "HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecretBytes out(out_len);
  ossl(EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) > 0 ? 1 : 0, "HKDF");
  return out;
}

}  // namespace towns::crypto
