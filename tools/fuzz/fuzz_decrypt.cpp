// Untrusted bytes as an EncryptedData event, decrypted (both algorithms).
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  towns::EncryptedData e;
  if (!fuzz::decode(e, data, size)) return 0;
  fuzz::refusals_ok([&] { fuzz::fixture().crypto.decrypt_group_event(fuzz::kStream, e); });
  return 0;
}
