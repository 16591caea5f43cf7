#include "towns/protocol/media.h"

#include <algorithm>
#include <string>

#include "towns/crypto/aead.h"
#include "towns/error.h"

namespace towns {
namespace {

[[noreturn]] void invalid(const std::string& what) { throw Error(ErrorCode::INVALID_ARGUMENT, what); }

crypto::AesGcm media_key(crypto::SecretView secret_key) {
  if (secret_key.size() != crypto::kAesGcmKeySize) {
    invalid("the media key must be 32 bytes, got " + std::to_string(secret_key.size()));
  }
  return crypto::AesGcm::New(secret_key);
}

// AES-GCM decryption where everything wrong with the data is DECRYPTION_FAILED.
crypto::SecretBytes open(const crypto::AesGcm& aes, std::span<const uint8_t> iv, std::span<const uint8_t> sealed,
                         const std::string& what) {
  if (iv.size() != crypto::kAesGcmIvSize) {
    throw Error(ErrorCode::DECRYPTION_FAILED, what + ": the IV has " + std::to_string(iv.size()) + " bytes, not 12");
  }
  if (sealed.size() < crypto::kAesGcmTagSize) {
    throw Error(ErrorCode::DECRYPTION_FAILED,
                what + ": " + std::to_string(sealed.size()) + " bytes, fewer than the 16-byte tag");
  }
  try {
    return aes.decrypt(iv, sealed);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::DECRYPTION_FAILED) throw;
    throw Error(ErrorCode::DECRYPTION_FAILED, what + ": the authentication tag does not verify");
  }
}

}  // namespace

size_t media_chunk_count(size_t data_size, size_t chunk_size) {
  if (chunk_size <= crypto::kAesGcmTagSize) {
    invalid("chunk size " + std::to_string(chunk_size) + " leaves no room for data next to the 16-byte tag");
  }
  const size_t piece = chunk_size - crypto::kAesGcmTagSize;
  return data_size / piece + (data_size % piece != 0 ? 1 : 0);
}

std::vector<MediaChunk> encrypt_chunked_media_with(std::span<const uint8_t> data, size_t chunk_size,
                                                   crypto::SecretView secret_key,
                                                   std::span<const std::vector<uint8_t>> ivs) {
  if (data.empty()) throw Error(ErrorCode::EMPTY_PAYLOAD, "cannot encrypt empty data");
  const size_t count = media_chunk_count(data.size(), chunk_size);
  auto aes = media_key(secret_key);
  if (ivs.size() != count) {
    invalid(std::to_string(data.size()) + " bytes in chunks of " + std::to_string(chunk_size) + " need " +
            std::to_string(count) + " IVs, got " + std::to_string(ivs.size()));
  }
  for (size_t i = 0; i < ivs.size(); ++i) {
    if (ivs[i].size() != crypto::kAesGcmIvSize) {
      invalid("IV " + std::to_string(i) + " has " + std::to_string(ivs[i].size()) + " bytes, not 12");
    }
  }
  {
    std::vector<std::span<const uint8_t>> sorted(ivs.begin(), ivs.end());
    auto less = [](std::span<const uint8_t> a, std::span<const uint8_t> b) {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
    };
    std::sort(sorted.begin(), sorted.end(), less);
    for (size_t i = 1; i < sorted.size(); ++i) {
      if (!less(sorted[i - 1], sorted[i])) invalid("an IV is used for two chunks");
    }
  }
  const size_t piece = chunk_size - crypto::kAesGcmTagSize;
  std::vector<MediaChunk> chunks;
  chunks.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    auto plain = data.subspan(i * piece, std::min(piece, data.size() - i * piece));
    chunks.push_back({aes.encrypt(ivs[i], plain), ivs[i]});
  }
  return chunks;
}

EncryptedMedia encrypt_chunked_media(std::span<const uint8_t> data, size_t chunk_size, crypto::RandomSource& rng) {
  if (data.empty()) throw Error(ErrorCode::EMPTY_PAYLOAD, "cannot encrypt empty data");
  const size_t count = media_chunk_count(data.size(), chunk_size);
  // The SDK's order of draws: the key, then each chunk's IV.
  EncryptedMedia out;
  out.secret_key = rng.bytes(crypto::kAesGcmKeySize);
  std::vector<std::vector<uint8_t>> ivs(count, std::vector<uint8_t>(crypto::kAesGcmIvSize));
  for (auto& iv : ivs) rng.fill(iv);
  // Twelve random bytes repeat with negligible probability; a source that does
  // repeat them is refused (INVALID_ARGUMENT) by the check below, not used.
  out.chunks = encrypt_chunked_media_with(data, chunk_size, out.secret_key, ivs);
  return out;
}

crypto::SecretBytes decrypt_chunked_media(crypto::SecretView secret_key, std::span<const MediaChunk> chunks) {
  auto aes = media_key(secret_key);
  if (chunks.empty()) invalid("no chunks to decrypt");
  crypto::SecretBytes out;
  for (size_t i = 0; i < chunks.size(); ++i) {
    auto plain = open(aes, chunks[i].iv, chunks[i].ciphertext, "chunk " + std::to_string(i));
    out.append(plain.span());
  }
  return out;
}

crypto::SecretBytes decrypt_whole_file_media(crypto::SecretView secret_key, std::span<const uint8_t> iv,
                                             std::span<const std::vector<uint8_t>> chunks) {
  auto aes = media_key(secret_key);
  if (chunks.empty()) invalid("no chunks to decrypt");
  std::vector<uint8_t> sealed;
  for (const auto& c : chunks) sealed.insert(sealed.end(), c.begin(), c.end());
  return open(aes, iv, sealed, "the file");
}

}  // namespace towns
