// Stored state that no run of this library writes is refused with a store
// code, quickly, and changes nothing (the start of issue 14's tamper suite).
#include "helpers.h"

#include <catch2/catch_test_macros.hpp>

#include "towns/protocol/group_encryption_crypto.h"
#include "towns/store/memory_crypto_store.h"

using namespace towns;

namespace {

const std::string kStream = "20" + std::string(62, 'a');
constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;

// Sets the stream's stored reservation to `until`, keeping its pickle.
void tamper_reservation(CryptoStore& store, uint32_t until) {
  auto record = store.get_outbound_session(kStream);
  REQUIRE(record.has_value());
  record->reserved_until = until;
  StoreChanges changes;
  changes.outbound_sessions.push_back(*record);
  REQUIRE(store.save_changes(changes));
}

}  // namespace

TEST_CASE("a reservation beyond what the session could have reached is STORE_CORRUPT, not a long loop") {
  MemoryCryptoStore store;
  std::string session_id;
  {
    GroupEncryptionCrypto sender(nullptr, store);
    sender.init();
    sender.encrypt_group_event(kStream, test::bytes("one"), kMegolm);
    session_id = store.get_outbound_session(kStream)->session_id;
  }
  const uint32_t legit = store.get_outbound_session(kStream)->reserved_until;
  REQUIRE(legit == OutboundSessions::kReservation);  // the first block: pickle at 0, reserved to 100

  for (uint32_t until : {uint32_t{OutboundSessions::kReservation + 1}, uint32_t{1000000}, uint32_t{0xffffffff}}) {
    INFO("reserved_until " << until);
    tamper_reservation(store, until);
    GroupEncryptionCrypto again(nullptr, store);
    again.init();
    REQUIRE_ERROR(again.encrypt_group_event(kStream, test::bytes("two"), kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.export_device(), STORE_CORRUPT);
    // Nothing was written: the row is exactly as tampered.
    auto row = store.get_outbound_session(kStream);
    REQUIRE(row->reserved_until == until);
    REQUIRE(row->session_id == session_id);
  }

  // Exactly one block past the pickle is what this library writes: accepted,
  // and the next index used is the reserved end.
  tamper_reservation(store, legit);
  GroupEncryptionCrypto again(nullptr, store);
  again.init();
  auto event = again.encrypt_group_event(kStream, test::bytes("three"), kMegolm);
  auto decrypted = again.decrypt_group_event(kStream, event);
  REQUIRE(decrypted.message_index == std::optional<uint32_t>(legit));
}
