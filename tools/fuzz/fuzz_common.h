// Shared setup for the fuzz targets: a device that holds a megolm and a grpaes
// session of one stream, so that inputs reach the decryption paths.
#pragma once

#include <cstddef>
#include <cstdint>
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

}  // namespace fuzz
