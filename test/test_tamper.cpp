// Stored state that no run of this library writes is refused with a store
// code, quickly, and changes nothing (the start of issue 14's tamper suite).
#include "helpers.h"
#include "recording_client.h"
#include "store_fixtures.h"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include "towns/protocol/group_encryption_crypto.h"
#include "towns/store/memory_crypto_store.h"

using namespace towns;

namespace {

const std::string kStream = "20" + std::string(62, 'a');
const std::string kOtherStream = "20" + std::string(62, 'b');
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

// A pickle with one character changed (libolm: the pickle's MAC fails), or not
// a pickle at all.
std::string damaged(const std::string& pickle, bool garbage) {
  if (garbage) return "not a pickle";
  std::string out = pickle;
  char& c = out[out.size() / 2];
  c = c == 'A' ? 'B' : 'A';
  return out;
}

// The two stores, each fresh.
struct OnMemory {
  std::unique_ptr<CryptoStore> make() { return std::make_unique<MemoryCryptoStore>(); }
};
struct OnSqlite {
  test::TempDir dir;
  std::unique_ptr<CryptoStore> make() {
    return SqliteCryptoStore::open(dir.file("device.db"), crypto::SecretBytes(kDefaultPickleKey));
  }
};

}  // namespace

TEMPLATE_TEST_CASE("a stored outbound megolm session that does not unpickle is STORE_CORRUPT; nothing is created",
                   "[tamper]", OnMemory, OnSqlite) {
  // The client would silently create and share a new session (docs/compat.md).
  for (bool garbage : {false, true}) {
    INFO("garbage " << garbage);
    TestType f;
    auto store = f.make();
    river::EncryptedData before;
    {
      GroupEncryptionCrypto sender(nullptr, *store);
      sender.init();
      before = sender.encrypt_group_event(kStream, test::bytes("before"), kMegolm);
    }
    auto row = *store->get_outbound_session(kStream);
    const auto inbound_ids = store->inbound_session_ids(kStream);
    row.pickle = damaged(row.pickle, garbage);
    StoreChanges changes;
    changes.outbound_sessions.push_back(row);
    REQUIRE(store->save_changes(changes));

    test::RecordingClient client;
    GroupEncryptionCrypto again(&client, *store);
    again.init();
    REQUIRE_ERROR(again.encrypt_group_event(kStream, test::bytes("after"), kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.encrypt_group_event_deprecated_v0(kStream, "after", kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.ensure_outbound_session(kStream, kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.has_outbound_session(kStream, kMegolm), STORE_CORRUPT);
    REQUIRE_ERROR(again.export_device(), STORE_CORRUPT);
    // Nothing created, shared or written.
    CHECK(client.shared.empty());
    auto now = store->get_outbound_session(kStream);
    CHECK(now->pickle == row.pickle);
    CHECK(now->session_id == row.session_id);
    CHECK(now->reserved_until == row.reserved_until);
    CHECK(store->inbound_session_ids(kStream) == inbound_ids);
    // The inbound counterpart is a row of its own: history still decrypts.
    CHECK(again.decrypt_group_event(kStream, before).plaintext.view() == "before");

    // What the client does silently, a host does on purpose: drop the row; the
    // next message makes and shares a new session.
    store->delete_outbound_session(kStream);
    auto fresh = again.encrypt_group_event(kStream, test::bytes("new session"), kMegolm);
    CHECK(fresh.session_id() != row.session_id);
    REQUIRE(client.shared.size() == 1);
    CHECK(client.shared[0].session.session_id == fresh.session_id());
  }
}

TEMPLATE_TEST_CASE("an import over a held megolm session that does not unpickle fails that key; the row stays",
                   "[tamper]", OnMemory, OnSqlite) {
  // As the client's import, which throws libolm's error there.
  TestType f;
  auto store = f.make();
  MemoryCryptoStore sender_store;
  GroupEncryptionCrypto sender(nullptr, sender_store);
  sender.init();
  auto event = sender.encrypt_group_event(kStream, test::bytes("held"), kMegolm);
  auto other = sender.encrypt_group_event(kOtherStream, test::bytes("other"), kMegolm);
  auto key = *sender.export_group_session(kStream, event.session_id());
  auto other_key = *sender.export_group_session(kOtherStream, other.session_id());
  {
    GroupEncryptionCrypto receiver(nullptr, *store);
    receiver.init();
    REQUIRE(receiver.import_session_keys(kStream, {key}).imported.size() == 1);
  }
  auto row = *store->get_inbound_session(kStream, event.session_id());
  row.pickle = damaged(row.pickle, false);
  StoreChanges changes;
  changes.inbound_sessions.push_back(row);
  REQUIRE(store->save_changes(changes));

  EncryptionDevice dev(*store);
  GroupEncryptionCrypto receiver(nullptr, dev);
  receiver.init();
  auto results = dev.import_sessions({{kStream, key.session_id, key.session_key, kMegolm},
                                      {kOtherStream, other_key.session_id, other_key.session_key, kMegolm}});
  REQUIRE(results.size() == 2);
  REQUIRE(results[0].error.has_value());
  CHECK(results[0].error->code() == ErrorCode::STORE_CORRUPT);
  REQUIRE(results[1].value == std::optional<ImportOutcome>(ImportOutcome::kImported));
  CHECK(store->get_inbound_session(kStream, event.session_id())->pickle == row.pickle);
  // The facade counts it as failed; reading the row is STORE_CORRUPT everywhere.
  auto counted = receiver.import_room_keys({key});
  CHECK(counted.failed == std::vector<std::string>{key.session_id});
  CHECK(counted.imported.empty());
  REQUIRE_ERROR(receiver.decrypt_group_event(kStream, event), STORE_CORRUPT);
  REQUIRE_ERROR(receiver.export_group_session(kStream, event.session_id()), STORE_CORRUPT);
  REQUIRE_ERROR(receiver.export_room_keys(), STORE_CORRUPT);
  CHECK(receiver.decrypt_group_event(kOtherStream, other).plaintext.view() == "other");
  CHECK(store->get_inbound_session(kStream, event.session_id())->pickle == row.pickle);
}

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
