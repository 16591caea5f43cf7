// A device's SQLite store file with its bytes changed, then opened and used.
//
// The input edits a fixed store file (made once, from a seeded source, with a
// row in every table): the first byte chooses the open (bit 0 set: without
// verify_on_open), then each 5 bytes are an edit: a 32-bit little-endian offset
// (modulo the file's size) and a byte: XORed into the file there, or, when 0,
// the file cut at that offset. The store must then refuse with a store code or
// behave exactly as the untouched file does: the same device key, the same
// session ids, the same plaintexts. (Without verify_on_open a row whose keyed
// name was changed is simply not found, so any towns::Error is allowed there;
// what is read must still be the original's.)
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "fuzz_common.h"
#include "towns/store/sqlite_crypto_store.h"

namespace {

using towns::GroupEncryptionAlgorithm;

const std::string kPickleKey = "fuzz store pickle key";
const std::string kOther = "20" + std::string(62, 'e');

struct Golden {
  fuzz::TempDir dir{"towns-fuzz-store"};
  std::string path;
  std::string bytes;
  std::string device_key;
  std::vector<std::pair<std::string, towns::EncryptedData>> events;
  std::map<std::string, std::vector<std::string>> ids;

  Golden() {
    path = dir.path + "/store.db";
    std::string golden = dir.path + "/golden.db";
    towns::crypto::SeededRandom rng(towns::crypto::as_bytes("fuzz store golden"));
    {
      auto store = towns::SqliteCryptoStore::open(golden, kPickleKey, towns::StoreOpenMode::kCreate, {.rng = &rng});
      towns::GroupEncryptionCrypto c(nullptr, *store, rng);
      c.init({.pickle_key = towns::crypto::SecretBytes(kPickleKey)});
      device_key = c.get_user_device().device_key;
      towns::MemoryCryptoStore other_store;
      towns::GroupEncryptionCrypto other(nullptr, other_store, rng);
      other.init();
      for (const auto& stream : {fuzz::kStream, kOther}) {
        std::string text = "megolm " + stream;
        events.emplace_back(stream, c.encrypt_group_event(stream, towns::crypto::as_bytes(text),
                                                          GroupEncryptionAlgorithm::kGroupEncryption));
        c.ensure_outbound_session(stream, GroupEncryptionAlgorithm::kHybridGroupEncryption,
                                  {.miniblock_info = towns::MiniblockInfo{5, std::vector<uint8_t>(32, 9)}});
        text = "grpaes " + stream;
        events.emplace_back(stream, c.encrypt_group_event(stream, towns::crypto::as_bytes(text),
                                                          GroupEncryptionAlgorithm::kHybridGroupEncryption));
        text = "other " + stream;
        auto foreign = other.encrypt_group_event(stream, towns::crypto::as_bytes(text),
                                                 GroupEncryptionAlgorithm::kGroupEncryption);
        c.import_session_keys(stream, {*other.export_group_session(stream, foreign.session_id)});
        events.emplace_back(stream, foreign);
      }
      for (const auto& [stream, event] : events) (void)c.decrypt_group_event(stream, event);
      for (const auto& stream : {fuzz::kStream, kOther}) ids[stream] = c.get_group_session_ids(stream);
    }
    bytes = fuzz::read_file(golden);
    if (bytes.empty()) __builtin_trap();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& g = fuzz::once<Golden>();
  if (size == 0) return 0;
  const bool verify = (data[0] & 1) == 0;
  std::string bytes = fuzz::edit_file(g.bytes, data, size);
  fuzz::remove_store(g.path);
  fuzz::write_file(g.path, bytes);
  try {
    auto store = towns::SqliteCryptoStore::open(g.path, kPickleKey, towns::StoreOpenMode::kOpen,
                                                {.verify_on_open = verify});
    towns::GroupEncryptionCrypto c(nullptr, *store);
    c.init({.pickle_key = towns::crypto::SecretBytes(kPickleKey)});
    if (c.get_user_device().device_key != g.device_key) __builtin_trap();
    for (const auto& [stream, ids] : g.ids) {
      if (verify && c.get_group_session_ids(stream) != ids) __builtin_trap();
    }
    for (const auto& [stream, event] : g.events) {
      auto check = [&, &stream = stream, &event = event] {
        auto text = c.decrypt_group_event(stream, event).plaintext.str();
        if (text.find(stream) == std::string::npos) __builtin_trap();
      };
      if (verify) {
        check();  // a refusal ends the run: a store code, checked below
      } else {
        fuzz::refusals_ok(check);
      }
    }
    (void)c.encrypt_group_event(fuzz::kStream, towns::crypto::as_bytes("after"),
                                GroupEncryptionAlgorithm::kGroupEncryption);
  } catch (const towns::Error& e) {
    if (verify && !fuzz::store_code(e.code())) __builtin_trap();
  }
  return 0;
}
