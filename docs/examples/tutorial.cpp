// The program of docs/tutorial.md, step by step: two devices, Alice's and
// Bob's, each on its own SQLite store. Alice shares a session with Bob by hand
// and Bob decrypts her message; then Alice encrypts with a session Bob never
// got, Bob's decryption fails with SESSION_NOT_FOUND, and the key exchange
// engines of both devices recover the key through a solicitation.
//
// It uses the public headers and the shared library only, as an application
// does: c++ -std=c++20 tutorial.cpp $(pkg-config --cflags --libs towns-e2ee)
//
// Usage: tutorial DIR  (an existing, empty directory for the two store files)
// Exits 0 when every step gave exactly the expected result, 1 otherwise.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "towns/crypto/random.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/messages.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/sqlite_crypto_store.h"

using namespace towns;

namespace {

constexpr auto kMegolm = GroupEncryptionAlgorithm::kGroupEncryption;
constexpr auto kHybrid = GroupEncryptionAlgorithm::kHybridGroupEncryption;

// Ids as the protocol writes them: a channel stream id (prefix 20, 64 hex
// digits) and two users (their addresses).
const std::string kChannel = "20" + std::string(62, 'c');
const std::string kAlice = "0x" + std::string(40, 'a');
const std::string kBob = "0x" + std::string(40, 'b');

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

std::vector<uint8_t> bytes(std::string_view text) { return {text.begin(), text.end()}; }
std::string text(const crypto::SecretBytes& b) { return std::string(b.view()); }

// The error code a call throws, or "no error".
template <typename F>
std::string error_of(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return std::string(e.code_name());
  }
  return "no error";
}

// The engines' time. It moves only when the program moves it, so the run is
// instant and the same every time.
class ManualClock final : public Clock {
 public:
  int64_t now_ms() override { return now; }
  int64_t now = 1'700'000'000'000;
};

class Device;

// A stand-in for a Towns node, just enough for the key exchange: one channel
// whose members are Alice and Bob, their published devices, the channel's
// stored solicitations, and the relay of what a device sends to the others.
struct Node {
  std::vector<Device*> devices;
  StreamSolicitations solicitations;  // the channel's state: stored solicitations
  MiniblockInfo miniblock{1, std::vector<uint8_t>(32, 0x4d)};

  // Lets every engine work until none has anything left to do now.
  void run();
};

// One device: its store, its GroupEncryptionCrypto and its key exchange
// engine, for which it is the host: what the engine sends goes to the node.
class Device final : public KeyExchangeHost {
 public:
  Device(Node& node, std::string name, std::string user_id, const std::string& path,
         const crypto::SecretBytes& pickle_key, Clock& clock)
      : node_(node), name(std::move(name)), user_id(std::move(user_id)) {
    // The pickle key protects the store file (kCreate: a new file, refused if
    // one exists) and every olm pickle in it.
    store = SqliteCryptoStore::open(path, pickle_key, StoreOpenMode::kCreate);
    // No GroupEncryptionClient: new sessions are not shared automatically,
    // the program shares them (step 2) or the engine does (step 5).
    crypto = std::make_unique<GroupEncryptionCrypto>(nullptr, *store);
    crypto->init({.pickle_key = pickle_key});
    // respond_delay off: answer a solicitation at once rather than after the
    // protocol's random delay of up to 30 s (docs/protocol.md section 10).
    engine = std::make_unique<KeyExchange>(*crypto, *this, this->user_id, clock, crypto::os_random(),
                                           KeyExchangeOptions{.respond_delay = false});
    node_.devices.push_back(this);
  }

  // ---- KeyExchangeHost: what the engine sends. Each message crosses the
  // "network" as its protobuf bytes.
  void send_key_solicitation(std::string_view stream_id, const KeySolicitation& s, bool ephemeral) override {
    auto wire = s.encode();
    std::printf("  %s -> channel: KeySolicitation for %zu session(s), %s, %zu bytes\n", name.c_str(),
                s.session_ids.size(), ephemeral ? "ephemeral" : "stored", wire.size());
    auto received = KeySolicitation::decode(wire);
    // A stored solicitation becomes part of the channel's state first.
    if (!ephemeral) received = node_.solicitations.apply_solicitation(user_id, received);
    for (Device* d : others()) d->engine->enqueue_key_solicitation(stream_id, user_id, received, ephemeral);
  }
  bool send_key_fulfillment(std::string_view stream_id, const KeyFulfillment& f, bool ephemeral) override {
    auto wire = f.encode();
    std::printf("  %s -> channel: KeyFulfillment of %zu session(s), %s, %zu bytes\n", name.c_str(),
                f.session_ids.size(), ephemeral ? "ephemeral" : "stored", wire.size());
    auto received = KeyFulfillment::decode(wire);
    auto updated = ephemeral ? std::nullopt : node_.solicitations.apply_fulfillment(received);
    for (Device* d : others()) {
      if (ephemeral) {
        d->engine->on_ephemeral_key_fulfillment(stream_id, received);
      } else if (updated) {
        d->engine->enqueue_key_solicitation(stream_id, updated->user_id, updated->solicitation, false);
      }
    }
    return true;  // accepted: a real node refuses a second fulfillment of the same request
  }
  void send_group_encryption_sessions(std::string_view to_user_id, const GroupEncryptionSessions& s) override {
    auto wire = s.encode();
    std::printf("  %s -> %s's inbox: GroupEncryptionSessions (%s, %zu session(s)), %zu bytes\n", name.c_str(),
                to_user_id == kBob ? "Bob" : "Alice", s.algorithm.c_str(), s.session_ids.size(), wire.size());
    auto received = GroupEncryptionSessions::decode(wire);
    for (Device* d : node_.devices) {
      if (d->user_id == to_user_id) d->engine->enqueue_new_group_sessions(received);
    }
  }

  // ---- KeyExchangeHost: what the engine asks.
  std::vector<UserDevice> user_devices(std::string_view user) override {
    std::vector<UserDevice> out;
    for (Device* d : node_.devices) {
      if (d->user_id == user) out.push_back(d->crypto->get_user_device());
    }
    return out;
  }
  std::vector<std::string> stream_members(std::string_view) override { return {kAlice, kBob}; }
  bool is_user_entitled(std::string_view, std::string_view) override { return true; }
  std::vector<StreamSolicitation> key_solicitations(std::string_view) override {
    return node_.solicitations.all();
  }
  MiniblockInfo get_miniblock_info(std::string_view) override { return node_.miniblock; }

  // ---- KeyExchangeHost: results.
  void on_decrypted(const EncryptedEvent& e, const DecryptedPayload& p) override {
    std::printf("  %s decrypts %s: \"%s\"\n", name.c_str(), e.event_id.c_str(), text(p.plaintext).c_str());
    decrypted.push_back(e.event_id + ": " + text(p.plaintext));
  }
  void on_decryption_error(const EncryptedEvent& e, const Error& err, bool missing_session) override {
    std::printf("  %s cannot decrypt %s: %s%s\n", name.c_str(), e.event_id.c_str(), std::string(err.code_name()).c_str(),
                missing_session ? " (it waits for the key)" : "");
  }

  std::vector<Device*> others() {
    std::vector<Device*> out;
    for (Device* d : node_.devices) {
      if (d != this) out.push_back(d);
    }
    return out;
  }

 private:
  Node& node_;

 public:
  std::string name;
  std::string user_id;
  // Declared in this order, destroyed in the reverse: the engine, then the
  // crypto that uses the store, then the store.
  std::unique_ptr<SqliteCryptoStore> store;
  std::unique_ptr<GroupEncryptionCrypto> crypto;
  std::unique_ptr<KeyExchange> engine;
  std::vector<std::string> decrypted;  // "event id: text", as the engine reported them
};

void Node::run() {
  for (;;) {
    size_t units = 0;
    for (Device* d : devices) units += d->engine->run();
    if (units == 0) return;
  }
}

int tutorial(const std::string& dir) {
  std::printf("1. Two devices, each on its own store\n");
  // Each device's pickle key: random, and kept by the application (in a
  // platform key store) to open the store again. SecretBytes wipes it when
  // it goes.
  crypto::SecretBytes alice_key = crypto::os_random().bytes(32);
  crypto::SecretBytes bob_key = crypto::os_random().bytes(32);
  ManualClock clock;
  Node node;
  Device alice(node, "Alice", kAlice, dir + "/alice.db", alice_key, clock);
  Device bob(node, "Bob", kBob, dir + "/bob.db", bob_key, clock);
  const UserDevice bob_device = bob.crypto->get_user_device();
  expect(!bob_device.device_key.empty() && bob_device.device_key != alice.crypto->get_user_device().device_key,
         "each device has its own curve25519 device key (published for others to find)");

  std::printf("2. Alice creates a session for the channel and shares it with Bob\n");
  const std::string first = alice.crypto->ensure_outbound_session(kChannel, kMegolm);
  std::vector<GroupEncryptionSession> sessions{*alice.crypto->export_group_session(kChannel, first)};
  SharePlan plan = build_group_encryption_sessions(*alice.crypto, kChannel, kMegolm, sessions, {bob_device});
  expect(plan.skipped_devices.empty() && plan.message.ciphertexts.count(bob_device.device_key) == 1,
         "GroupEncryptionSessions holds one olm ciphertext, for Bob's device key");
  Bytes inbox_message = plan.message.encode();  // posted to Bob's inbox stream
  ReceiveResult received =
      receive_group_encryption_sessions(*bob.crypto, GroupEncryptionSessions::decode(inbox_message));
  expect(received.status == ReceiveStatus::kImported && received.imported == std::vector<std::string>{first},
         "Bob imports the session from his inbox");

  std::printf("3. Alice encrypts a message, Bob decrypts it\n");
  EncryptedData event1 = alice.crypto->encrypt_group_event(kChannel, bytes("Hello Bob"), kMegolm);
  Bytes event1_wire = event1.encode();  // the channel event's content
  expect(event1.session_id == first && event1.algorithm == algorithm_id(kMegolm),
         "EncryptedData names the algorithm and the session");
  DecryptedPayload payload = bob.crypto->decrypt_group_event(kChannel, EncryptedData::decode(event1_wire));
  expect(text(payload.plaintext) == "Hello Bob" && payload.message_index == 0u,
         "Bob reads \"Hello Bob\" (megolm message index 0)");

  std::printf("4. Alice encrypts with a session Bob never got\n");
  // A grpaes session (the hybrid algorithm) is bound to the channel's latest
  // miniblock; without a GroupEncryptionClient it is given here.
  const std::string second = alice.crypto->ensure_outbound_session(kChannel, kHybrid, {.miniblock_info = node.miniblock});
  EncryptedData event2 = alice.crypto->encrypt_group_event(kChannel, bytes("This key was never shared"), kHybrid);
  expect(second != first && alice.crypto->get_group_session_ids(kChannel).size() == 2,
         "Alice holds two sessions of the channel; Bob holds one");
  expect(error_of([&] { bob.crypto->decrypt_group_event(kChannel, event2); }) == "SESSION_NOT_FOUND",
         "Bob's decryption fails with SESSION_NOT_FOUND");

  std::printf("5. The key exchange recovers the missing key\n");
  bob.engine->enqueue_encrypted_content({kChannel, "event-2", event2});
  node.run();
  expect(bob.decrypted == std::vector<std::string>{"event-2: This key was never shared"},
         "Bob's engine decrypts the waiting event once the key arrives");
  const KeyExchangeStats& a = alice.engine->stats();
  const KeyExchangeStats& b = bob.engine->stats();
  expect(b.decryption_failures == 1 && b.solicitations_sent == 1 && b.sessions_imported == 1 && b.decrypted == 1,
         "Bob: one failure, one solicitation, one session imported, one event decrypted");
  expect(a.fulfillments_sent == 1 && a.shares_sent == 1, "Alice: one fulfillment, one GroupEncryptionSessions");
  expect(bob.engine->waiting_events() == 0 && bob.engine->status() == KeyExchangeStatus::kIdle &&
             alice.engine->status() == KeyExchangeStatus::kIdle,
         "nothing waits any more on either side");

  std::printf("6. Bob's store keeps it all, under his pickle key only\n");
  const std::string bob_path = dir + "/bob.db";
  bob.engine.reset();
  bob.crypto.reset();
  bob.store.reset();
  expect(error_of([&] { SqliteCryptoStore::open(bob_path, alice_key, StoreOpenMode::kOpen); }) ==
             "STORE_WRONG_PICKLE_KEY",
         "another key does not open Bob's store: STORE_WRONG_PICKLE_KEY");
  auto store = SqliteCryptoStore::open(bob_path, bob_key, StoreOpenMode::kOpen);
  GroupEncryptionCrypto reopened(nullptr, *store);
  reopened.init({.pickle_key = bob_key});
  expect(reopened.get_user_device().device_key == bob_device.device_key, "reopened, it is the same device");
  expect(text(reopened.decrypt_group_event(kChannel, event2).plaintext) == "This key was never shared" &&
             text(reopened.decrypt_group_event(kChannel, EncryptedData::decode(event1_wire)).plaintext) ==
                 "Hello Bob",
         "and it still decrypts both messages");

  if (failures != 0) {
    std::printf("%d check(s) failed.\n", failures);
    return 1;
  }
  std::printf("All steps gave the expected results.\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR  (an existing, empty directory for the store files)\n", argv[0]);
    return 2;
  }
  try {
    return tutorial(argv[1]);
  } catch (const Error& e) {
    // Every failure of the library is a towns::Error with a code.
    std::printf("FAIL: unexpected %s: %s\n", std::string(e.code_name()).c_str(), e.what());
    return 1;
  }
}
