#include "towns/protocol/derived.h"

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/messages.h"

namespace towns {
namespace {

// The length getExtendedKeyMaterial is asked for: a 32-byte key and a 12-byte IV.
constexpr size_t kMaterialSize = crypto::kAesGcmKeySize + crypto::kAesGcmIvSize;

}  // namespace

DerivedKeyAndIv derive_key_and_iv(crypto::SecretView key_phrase) {
  // M := H(p); while |M| < 44: M := M || H(M), as sdk-crypto's
  // getExtendedKeyMaterial (one round always suffices; the loop is kept so that
  // the code reads as the definition does).
  crypto::SecretBytes material;
  {
    auto h = crypto::sha256(key_phrase.span());
    material.append(h);
    crypto::wipe(h.data(), h.size());
  }
  while (material.size() < kMaterialSize) {
    auto h = crypto::sha256(material.span());
    material.append(h);
    crypto::wipe(h.data(), h.size());
  }
  DerivedKeyAndIv out;
  out.key = crypto::SecretBytes(material.span().subspan(0, crypto::kAesGcmKeySize));
  out.iv = crypto::SecretBytes(material.span().subspan(crypto::kAesGcmKeySize, crypto::kAesGcmIvSize));
  return out;
}

DerivedEncryptedData encrypt_derived(crypto::SecretView key_phrase, std::span<const uint8_t> plaintext) {
  if (plaintext.empty()) throw Error(ErrorCode::EMPTY_PAYLOAD, "cannot encrypt empty data");
  auto derived = derive_key_and_iv(key_phrase);
  auto ct = crypto::AesGcm::New(derived.key).encrypt(derived.iv.span(), plaintext);
  DerivedEncryptedData out;
  out.ciphertext = crypto::base64_encode(ct, crypto::Base64Padding::kPadded);
  out.algorithm = std::string(kDerivedAlgorithmId);
  return out;
}

crypto::SecretBytes decrypt_derived(crypto::SecretView key_phrase, const DerivedEncryptedData& data) {
  if (data.algorithm != kDerivedAlgorithmId) {
    throw Error(ErrorCode::UNKNOWN_ALGORITHM,
                "algorithm \"" + data.algorithm + "\" is not " + std::string(kDerivedAlgorithmId));
  }
  std::vector<uint8_t> ct;
  try {
    ct = crypto::base64_decode(data.ciphertext, crypto::Base64Padding::kOptional);
  } catch (const Error&) {
    throw Error(ErrorCode::BAD_ENCODING, "the derived ciphertext is not base64");
  }
  if (ct.size() < crypto::kAesGcmTagSize) {
    throw Error(ErrorCode::DECRYPTION_FAILED,
                "the derived ciphertext has " + std::to_string(ct.size()) + " bytes, fewer than its 16-byte tag");
  }
  auto derived = derive_key_and_iv(key_phrase);
  return crypto::AesGcm::New(derived.key).decrypt(derived.iv.span(), ct);
}

std::string derived_encrypted_data_bytes(const DerivedEncryptedData& data) {
  EncryptedData m;
  m.ciphertext = data.ciphertext;
  m.algorithm = data.algorithm;
  auto bytes = m.encode();
  return std::string(bytes.begin(), bytes.end());
}

DerivedEncryptedData parse_derived_encrypted_data(std::span<const uint8_t> encrypted_data) {
  EncryptedData m;
  try {
    m = EncryptedData::decode(encrypted_data);
  } catch (const Error&) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "not an EncryptedData");
  }
  return {m.ciphertext, m.algorithm};
}

}  // namespace towns
