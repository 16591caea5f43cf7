// Untrusted bytes as an ExportedDevice to recreate a device from.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!river::ExportedDevice().ParseFromArray(data, static_cast<int>(size))) return 0;
  towns::MemoryCryptoStore store;
  towns::GroupEncryptionCrypto c(nullptr, store, fuzz::fixture().rng);
  bool ok = false;
  fuzz::refusals_ok([&] {
    c.init({.from_exported_device = towns::crypto::SecretBytes(std::span<const uint8_t>(data, size))});
    ok = true;
  });
  // A refused import leaves the store empty.
  if (!ok && store.get_account().has_value()) __builtin_trap();
  return 0;
}
