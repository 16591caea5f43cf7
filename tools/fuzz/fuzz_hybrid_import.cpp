// Untrusted bytes as a HybridGroupSessionKey being imported under the ids it names.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  river::HybridGroupSessionKey k;
  std::string stream = fuzz::kStream, session = "00";
  if (k.ParseFromArray(data, static_cast<int>(size))) {
    stream = towns::crypto::hex_encode(towns::crypto::as_bytes(k.stream_id()));
    session = towns::crypto::hex_encode(towns::crypto::as_bytes(k.session_id()));
  }
  towns::MemoryCryptoStore store;
  towns::GroupEncryptionCrypto c(nullptr, store, fuzz::fixture().rng);
  c.init();
  fuzz::refusals_ok([&] {
    auto r = c.import_sessions({{stream, session, towns::crypto::hex_encode_secret({data, size}),
                                 towns::GroupEncryptionAlgorithm::kHybridGroupEncryption}});
    // Either held now, or refused with its reason; never both, never neither.
    if (r.size() != 1 || r[0].value.has_value() == r[0].error.has_value()) __builtin_trap();
    if (r[0].error) throw *r[0].error;
    if (!c.has_session_key(stream, session, towns::GroupEncryptionAlgorithm::kHybridGroupEncryption)) __builtin_trap();
  });
  return 0;
}
