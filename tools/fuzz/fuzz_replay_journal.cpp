// A SQLite store's generation file (the generation word, the replay journal and
// its lock word) with its bytes changed, then the store opened and used.
//
// The golden store (made once, from a seeded source) has decrypted six megolm
// events: three folded into message_indices by a key write, three still in the
// journal, as a process that was killed leaves them (the files are copied while
// the store is open). The input edits the generation file as fuzz_store_bytes
// edits the store: the first byte chooses the open (bit 0 set: without
// verify_on_open), then each 5 bytes are an edit: a 32-bit little-endian offset
// (modulo the file's size) and a byte, XORed in there, or, when 0, the file cut
// at that offset. The store must then refuse with a store code, or give every
// event its plaintext again: a changed journal can never make a recorded event
// a replay (REPLAY), nor anything else that is not a store code. Then a key
// write (which folds the journal) and closing must not fail otherwise either.
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz_common.h"
#include "towns/store/sqlite_crypto_store.h"

namespace {

using towns::GroupEncryptionAlgorithm;

const std::string kPickleKey = "fuzz journal pickle key";

struct Golden {
  fuzz::TempDir dir{"towns-fuzz-journal"};
  std::string path;
  std::string db, wal, gen;
  std::string device_key;
  std::vector<towns::EncryptedData> events;

  Golden() {
    path = dir.path + "/store.db";
    std::string golden = dir.path + "/golden.db";
    towns::crypto::SeededRandom rng(towns::crypto::as_bytes("fuzz journal golden"));
    towns::MemoryCryptoStore sender_store;
    towns::GroupEncryptionCrypto sender(nullptr, sender_store, rng);
    sender.init();
    for (int i = 0; i < 6; ++i) {
      std::string text = "event " + std::to_string(i);
      events.push_back(sender.encrypt_group_event(fuzz::kStream, towns::crypto::as_bytes(text),
                                                  GroupEncryptionAlgorithm::kGroupEncryption));
    }
    auto store = towns::SqliteCryptoStore::open(golden, kPickleKey, towns::StoreOpenMode::kCreate, {.rng = &rng});
    towns::GroupEncryptionCrypto c(nullptr, *store, rng);
    c.init({.pickle_key = towns::crypto::SecretBytes(kPickleKey)});
    device_key = c.get_user_device().device_key;
    c.import_session_keys(fuzz::kStream, sender.export_room_keys());
    for (int i = 0; i < 3; ++i) (void)c.decrypt_group_event(fuzz::kStream, events[i]);
    c.ensure_outbound_session(fuzz::kStream, GroupEncryptionAlgorithm::kGroupEncryption);  // a key write: folds
    for (int i = 3; i < 6; ++i) (void)c.decrypt_group_event(fuzz::kStream, events[i]);
    // Copied while the store is open: three entries are only in the journal.
    db = fuzz::read_file(golden);
    wal = fuzz::read_file(golden + "-wal");
    gen = fuzz::read_file(golden + "-gen");
    if (db.empty() || gen.size() < 4096) __builtin_trap();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& g = fuzz::once<Golden>();
  if (size == 0) return 0;
  const bool verify = (data[0] & 1) == 0;
  std::string gen = fuzz::edit_file(g.gen, data, size);
  fuzz::remove_store(g.path);
  fuzz::write_file(g.path, g.db);
  fuzz::write_file(g.path + "-wal", g.wal);
  fuzz::write_file(g.path + "-gen", gen);
  try {
    // A short busy timeout: a lock word naming a live store could only make a
    // call wait (no other store is open here, so none is live but this one).
    auto store = towns::SqliteCryptoStore::open(g.path, kPickleKey, towns::StoreOpenMode::kOpen,
                                                {.verify_on_open = verify, .busy_timeout_ms = 200});
    towns::GroupEncryptionCrypto c(nullptr, *store);
    c.init({.pickle_key = towns::crypto::SecretBytes(kPickleKey)});
    if (c.get_user_device().device_key != g.device_key) __builtin_trap();
    for (size_t i = 0; i < g.events.size(); ++i) {
      try {
        auto text = c.decrypt_group_event(fuzz::kStream, g.events[i]).plaintext.str();
        if (text != "event " + std::to_string(i)) __builtin_trap();
      } catch (const towns::Error& e) {
        if (!fuzz::gen_file_code(e.code())) __builtin_trap();  // never REPLAY: these events are the recorded ones
        if (verify) throw;  // the open checked every entry: only a store code, and the run ends
      }
    }
    (void)c.encrypt_group_event(fuzz::kStream, towns::crypto::as_bytes("after"),
                                GroupEncryptionAlgorithm::kGroupEncryption);
  } catch (const towns::Error& e) {
    if (!fuzz::gen_file_code(e.code())) __builtin_trap();
  }
  return 0;
}
