#include "towns/protocol/group_encryption_crypto.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/version.h"
#include <cstdio>
int main() {
  towns::MemoryCryptoStore store;
  towns::GroupEncryptionCrypto c(nullptr, store);
  c.init();
  auto e = c.encrypt_group_event("20aa", std::vector<uint8_t>{1,2,3}, towns::GroupEncryptionAlgorithm::kGroupEncryption);
  auto d = c.decrypt_group_event("20aa", e);
  if (d.plaintext.size() != 3) return 1;
  std::printf("consumer built against towns-e2ee %s works\n", towns::versions().towns_e2ee.c_str());
}
