// The derived scheme r.aes-256-gcm.derived (protocol.md section 12), as
// @towns-protocol/sdk-crypto 0.0.455 does it (deriveKeyAndIV, encryptAESGCM,
// decryptDerivedAESGCM) and the SDK's callers use it: a space's image, a user's
// profile image and bio, encrypted under a key and an IV that are both derived
// from a public key phrase (the space's contract address or the user id, in
// lower case). It hides the data from whoever does not know the phrase; it is
// obfuscation, not confidentiality (every value under one phrase reuses the same
// key and IV).
//
// No protobuf or libolm type appears here: the EncryptedData travels as a plain
// struct, and derived_encrypted_data_bytes / parse_derived_encrypted_data
// convert it to and from the binary river.EncryptedData.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns {

inline constexpr std::string_view kDerivedAlgorithmId = "r.aes-256-gcm.derived";

// key = SHA-256(phrase); iv = SHA-256(key)[0..12): the first 44 bytes of the
// iterated chain M := H(p), M := M || H(M) while |M| < 44 (section 12.2). A text
// phrase is used as its UTF-8 bytes; any bytes (the empty phrase too) are accepted.
struct DerivedKeyAndIv {
  crypto::SecretBytes key;  // 32 bytes
  crypto::SecretBytes iv;   // 12 bytes
};
TOWNS_API DerivedKeyAndIv derive_key_and_iv(crypto::SecretView key_phrase);

// The two fields of an EncryptedData that the scheme sets: ciphertext (1), the
// padded standard base64 of AES-256-GCM ciphertext || 16-byte tag, and
// algorithm (2).
struct DerivedEncryptedData {
  std::string ciphertext;
  std::string algorithm{kDerivedAlgorithmId};
};

// Encrypts plaintext (the binary ChunkedMedia or UserBio, in the SDK's use) under
// the key and IV of key_phrase. Deterministic: the same phrase and plaintext give
// the same ciphertext. Error(EMPTY_PAYLOAD) for an empty plaintext.
TOWNS_API DerivedEncryptedData encrypt_derived(crypto::SecretView key_phrase, std::span<const uint8_t> plaintext);

// Decrypts under the key and IV of key_phrase. Errors:
//   UNKNOWN_ALGORITHM   algorithm is not r.aes-256-gcm.derived (empty included);
//                       the SDK throws its Err.UNIMPLEMENTED there
//   BAD_ENCODING        ciphertext is not standard base64 (padded or unpadded;
//                       the SDK's decoders are laxer: docs/compat.md)
//   DECRYPTION_FAILED   shorter than the 16-byte tag, or the tag does not verify
//                       (a wrong key phrase, a changed byte)
// A 16-byte ciphertext that verifies gives an empty plaintext, as in the SDK.
TOWNS_API crypto::SecretBytes decrypt_derived(crypto::SecretView key_phrase, const DerivedEncryptedData& data);

// The binary river.EncryptedData with exactly ciphertext (1) and algorithm (2)
// set, as the SDK posts it (section 12.3).
TOWNS_API std::string derived_encrypted_data_bytes(const DerivedEncryptedData& data);

// Reads ciphertext (1) and algorithm (2) of a binary river.EncryptedData; its
// other fields are ignored, as the SDK ignores them. Error(INVALID_ARGUMENT) when
// the bytes are not an EncryptedData.
TOWNS_API DerivedEncryptedData parse_derived_encrypted_data(std::span<const uint8_t> encrypted_data);

}  // namespace towns
