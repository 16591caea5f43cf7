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
    c.encryption_device().add_hybrid_group_session(stream, session, towns::crypto::hex_encode({data, size}));
  });
  return 0;
}
