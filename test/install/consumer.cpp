#include "towns/protocol/derived.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/media.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/version.h"
#include <cstdio>
#include <string>
int main() {
  towns::MemoryCryptoStore store;
  towns::GroupEncryptionCrypto c(nullptr, store);
  c.init();
  const std::string channel = "20" + std::string(62, 'a');  // a channel stream id
  auto e = c.encrypt_group_event(channel, std::vector<uint8_t>{1,2,3}, towns::GroupEncryptionAlgorithm::kGroupEncryption);
  auto d = c.decrypt_group_event(channel, e);
  if (d.plaintext.size() != 3) return 1;
  // The exported stateless schemes link too.
  auto derived = towns::encrypt_derived("0xabc", std::vector<uint8_t>{4, 5});
  if (towns::decrypt_derived("0xabc", derived).size() != 2) return 1;
  auto media = towns::encrypt_chunked_media(std::vector<uint8_t>(100, 6), 40);
  if (towns::decrypt_chunked_media(media.secret_key, media.chunks).size() != 100) return 1;
  std::printf("consumer built against towns-e2ee %s works\n", towns::versions().towns_e2ee.c_str());
}
