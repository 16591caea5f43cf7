// Shared setup for the fuzz targets: a device that holds a megolm and a grpaes
// session of one stream, so that inputs reach the decryption paths.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/messages.h"
#include "towns/proto/payloads.pb.h"
#include "towns/store/memory_crypto_store.h"

namespace fuzz {

inline const std::string kStream = "20" + std::string(62, 'f');

// Untrusted bytes as one of the library's wire messages: false when they are
// not one (the codec refuses them), as a protobuf parser would.
template <typename Message>
bool decode(Message& out, const uint8_t* data, size_t size) {
  try {
    out = Message::decode({data, size});
    return true;
  } catch (const towns::Error&) {
    return false;
  }
}

struct Fixture {
  towns::crypto::SeededRandom rng{towns::crypto::as_bytes("fuzz fixture")};
  towns::MemoryCryptoStore store;
  towns::GroupEncryptionCrypto crypto{nullptr, store, rng};
  Fixture() {
    crypto.init();
    crypto.ensure_outbound_session(kStream, towns::GroupEncryptionAlgorithm::kGroupEncryption);
    crypto.ensure_outbound_session(kStream, towns::GroupEncryptionAlgorithm::kHybridGroupEncryption,
                                   {.miniblock_info = towns::MiniblockInfo{3, std::vector<uint8_t>(32, 7)}});
  }
};

inline Fixture& fixture() {
  static Fixture f;
  return f;
}

// Runs fn, letting only towns::Error through (a refusal is a normal outcome);
// anything else escapes and makes the fuzzer report it.
template <typename Fn>
void refusals_ok(Fn&& fn) {
  try {
    fn();
  } catch (const towns::Error&) {
  }
}

// A folder of its own under /tmp for a store target's files, removed at exit.
struct TempDir {
  std::string path;
  explicit TempDir(const char* name) {
    std::string tmpl = std::string("/tmp/") + name + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) __builtin_trap();
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// One instance of T per process, made at the first call (a target's golden state).
template <typename T>
T& once() {
  static T t;
  return t;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
// A SQLite store's file and every file beside it.
inline void remove_store(const std::string& path) {
  for (const char* ext : {"", "-wal", "-shm", "-gen"}) ::unlink((path + ext).c_str());
}

// The refusals a damaged `-gen` file (generation word, replay journal, lock
// word) may cause: it holds no key, schema or pickle-key check, so nothing else.
inline bool gen_file_code(towns::ErrorCode c) {
  using towns::ErrorCode;
  return c == ErrorCode::STORE_ERROR || c == ErrorCode::STORE_CORRUPT || c == ErrorCode::STORE_BUSY;
}
// A refusal the store targets allow: the store's own codes.
inline bool store_code(towns::ErrorCode c) {
  using towns::ErrorCode;
  return gen_file_code(c) || c == ErrorCode::STORE_NEWER_SCHEMA || c == ErrorCode::STORE_WRONG_PICKLE_KEY;
}

// The file edits of the store targets (fuzz_store_bytes, fuzz_replay_journal):
// after the input's first byte (the target's mode), each 5 bytes are an edit, a
// 32-bit little-endian offset (modulo the file's current size) and a byte:
// XORed into the file there, or, when 0, the file cut at that offset.
inline std::string edit_file(std::string bytes, const uint8_t* data, size_t size) {
  for (size_t at = 1; at + 5 <= size && !bytes.empty(); at += 5) {
    uint32_t offset = 0;
    std::memcpy(&offset, data + at, 4);
    size_t where = offset % bytes.size();
    if (data[at + 4] == 0) {
      bytes.resize(where);
    } else {
      bytes[where] = static_cast<char>(bytes[where] ^ static_cast<char>(data[at + 4]));
    }
  }
  return bytes;
}

}  // namespace fuzz
