// Media encryption (protocol.md section 13): the per-chunk scheme of
// @towns-protocol/sdk-crypto 0.0.455 (encryptChunkedAESGCM), and decryption of
// it and of the older whole-file form (the SDK's Client.getMediaPayload).
//
// Per-chunk: one random 32-byte key per file; the data is cut into pieces of
// chunk_size - 16 bytes, and each piece is AES-256-GCM encrypted under the key
// with its own fresh 12-byte IV, the 16-byte tag appended, so that no encrypted
// chunk is larger than chunk_size. Whole-file: the file was encrypted once under
// one key and one IV, and the result cut into chunks that carry no IV.
//
// No protobuf or libolm type appears here; the chunks are plain bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "towns/crypto/random.h"
#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns {

// The chunk size of the SDK's own uploader (tag included): pieces of 1,199,984
// bytes. It is the uploader's choice and is written nowhere.
inline constexpr size_t kMediaChunkSize = 1'200'000;

struct MediaChunk {
  std::vector<uint8_t> ciphertext;  // AES-256-GCM ciphertext || 16-byte tag
  std::vector<uint8_t> iv;          // 12 bytes (MediaPayload.Chunk.iv)
};

struct EncryptedMedia {
  crypto::SecretBytes secret_key;  // 32 bytes (ChunkedMedia.AESGCM.secretKey)
  std::vector<MediaChunk> chunks;  // in chunk_index order
};

// The number of chunks data_size bytes make: ceil(data_size / (chunk_size - 16)).
// Error(INVALID_ARGUMENT) when chunk_size is 16 or less (no plaintext fits).
TOWNS_API size_t media_chunk_count(size_t data_size, size_t chunk_size);

// encryptChunkedAESGCM: draws the key, then one IV per chunk in order, from rng.
// Errors: EMPTY_PAYLOAD for empty data (checked first, as in the SDK);
// INVALID_ARGUMENT when chunk_size is 16 or less (the SDK fails there too: a
// chunk would exceed chunk_size, or a piece would be empty).
TOWNS_API EncryptedMedia encrypt_chunked_media(std::span<const uint8_t> data, size_t chunk_size,
                                               crypto::RandomSource& rng = crypto::os_random());

// The same with the key and the IVs given (test vectors, reproducible output):
// ivs holds exactly media_chunk_count(data.size(), chunk_size) IVs of 12 bytes,
// all different (an IV used twice under one key breaks AES-GCM). Errors as above,
// and INVALID_ARGUMENT for a key that is not 32 bytes, a wrong number of IVs, an
// IV that is not 12 bytes, or a repeated IV.
TOWNS_API std::vector<MediaChunk> encrypt_chunked_media_with(std::span<const uint8_t> data, size_t chunk_size,
                                                             crypto::SecretView secret_key,
                                                             std::span<const std::vector<uint8_t>> ivs);

// Decrypts the chunks of the per-chunk form, each under secret_key with its own
// IV, and concatenates the plaintexts. Errors: INVALID_ARGUMENT for a key that is
// not 32 bytes or no chunks at all; DECRYPTION_FAILED when a chunk's IV is not 12
// bytes, a chunk is shorter than its tag, or a tag does not verify (a wrong key,
// a changed byte, chunks swapped, an IV from another chunk). Nothing of the
// plaintext is returned on failure.
TOWNS_API crypto::SecretBytes decrypt_chunked_media(crypto::SecretView secret_key, std::span<const MediaChunk> chunks);

// Decrypts the whole-file form: the chunks' bytes (any IVs they carry are not
// used) are concatenated and decrypted once under secret_key and iv
// (ChunkedMedia.AESGCM.iv). Errors: INVALID_ARGUMENT for a key that is not 32
// bytes or no chunks; DECRYPTION_FAILED for an IV that is not 12 bytes, fewer
// than 16 bytes in all, or a tag that does not verify.
TOWNS_API crypto::SecretBytes decrypt_whole_file_media(crypto::SecretView secret_key, std::span<const uint8_t> iv,
                                                       std::span<const std::vector<uint8_t>> chunks);

}  // namespace towns
