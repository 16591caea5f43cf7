// Untrusted bytes as a GroupEncryptionSessions message in our inbox.
#include "fuzz_common.h"
#include "towns/protocol/session_sharing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  towns::GroupEncryptionSessions m;
  if (!fuzz::decode(m, data, size)) return 0;
  auto& f = fuzz::fixture();
  // Make the message reach the olm decryption: address it to our device when it
  // carries any ciphertext at all.
  if (!m.ciphertexts.empty() && m.ciphertexts.count(f.crypto.get_user_device().device_key) == 0) {
    m.ciphertexts[f.crypto.get_user_device().device_key] = m.ciphertexts.begin()->second;
  }
  fuzz::refusals_ok([&] { towns::receive_group_encryption_sessions(f.crypto, m); });
  return 0;
}
