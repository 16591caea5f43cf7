// An application with its own generated Towns classes (the whole upstream
// protocol.proto, package river, plus one field of a "newer" protocol), built
// against the installed libtowns-e2ee with nothing but pkg-config. Every
// facade operation is run, and every wire message goes through the
// application's own classes on its way between the two devices: if the library
// still carried river:: classes, the two definitions would collide (one header
// skipped by its include guard, one set of symbols picked at run time).
//
// Prints one line per check; exits non-zero on the first failure.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "protocol.pb.h"  // the application's own, generated at test time
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/messages.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/sqlite_crypto_store.h"

namespace {

int checks = 0;
void check(bool ok, const char* what) {
  ++checks;
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    std::exit(1);
  }
  std::printf("ok: %s\n", what);
}

// Library message -> application class -> (field 13 set) -> bytes -> library.
towns::EncryptedData through_app(const towns::EncryptedData& in, const char* note) {
  auto bytes = in.encode();
  river::EncryptedData app;
  check(app.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())), "the app parses the library's EncryptedData");
  check(app.ciphertext() == in.ciphertext && app.algorithm() == in.algorithm && app.session_id() == in.session_id &&
            app.version() == static_cast<int>(in.version),
        "the app reads the same fields");
  app.set_newer_protocol_note(note);
  std::string out = app.SerializeAsString();
  auto back = towns::EncryptedData::decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()), out.size()));
  check(back == in, "the library reads the app's EncryptedData, newer field skipped");
  return back;
}

towns::GroupEncryptionSessions through_app(const towns::GroupEncryptionSessions& in) {
  auto bytes = in.encode();
  river::UserInboxPayload payload;
  auto* app = payload.mutable_group_encryption_sessions();
  check(app->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())), "the app parses GroupEncryptionSessions");
  check(static_cast<size_t>(app->ciphertexts_size()) == in.ciphertexts.size() &&
            static_cast<size_t>(app->session_ids_size()) == in.session_ids.size(),
        "the app reads the same ciphertexts and session ids");
  std::string out = payload.SerializeAsString();
  // A field neither side knows (field 99 of the inner message) is skipped too.
  auto* inner_app = payload.mutable_group_encryption_sessions();
  std::string inner_bytes = inner_app->SerializeAsString() + std::string("\x98\x06\x01", 3);
  auto with_unknown = towns::GroupEncryptionSessions::decode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(inner_bytes.data()), inner_bytes.size()));
  check(with_unknown == in, "the library skips a field it does not know in GroupEncryptionSessions");
  river::UserInboxPayload reread;
  check(reread.ParseFromString(out) && reread.has_group_encryption_sessions(), "the app's inbox payload round-trips");
  std::string inner = reread.group_encryption_sessions().SerializeAsString();
  auto back = towns::GroupEncryptionSessions::decode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(inner.data()), inner.size()));
  check(back == in, "the library reads the app's GroupEncryptionSessions");
  return back;
}

std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

template <typename Plain>
Plain decode_string(const std::string& s) {
  return Plain::decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// The key exchange's payloads through the app's MemberPayload (oneof fields 2 and 3).
void solicitation_and_fulfillment_through_app(const std::string& device_key, const std::string& fallback_key,
                                              const std::vector<std::string>& session_ids) {
  towns::KeySolicitation s;
  s.device_key = device_key;
  s.fallback_key = fallback_key;
  s.is_new_device = false;
  s.session_ids = session_ids;
  auto sb = s.encode();
  river::MemberPayload member;
  check(member.mutable_key_solicitation()->ParseFromArray(sb.data(), static_cast<int>(sb.size())),
        "the app parses the library's KeySolicitation");
  check(member.key_solicitation().device_key() == device_key &&
            member.key_solicitation().session_ids_size() == static_cast<int>(session_ids.size()),
        "the app reads the same solicitation");
  river::MemberPayload reread;
  check(reread.ParseFromString(member.SerializeAsString()) && reread.has_key_solicitation(),
        "the app's MemberPayload carries it");
  check(decode_string<towns::KeySolicitation>(reread.key_solicitation().SerializeAsString()) == s,
        "the library reads the app's KeySolicitation");

  towns::KeyFulfillment f;
  f.user_address = std::vector<uint8_t>(20, 0xab);
  f.device_key = device_key;
  f.session_ids = session_ids;
  auto fb = f.encode();
  river::MemberPayload fm;
  check(fm.mutable_key_fulfillment()->ParseFromArray(fb.data(), static_cast<int>(fb.size())),
        "the app parses the library's KeyFulfillment");
  check(fm.key_fulfillment().user_address() == std::string(20, '\xab'), "the app reads the same fulfillment");
  check(decode_string<towns::KeyFulfillment>(fm.key_fulfillment().SerializeAsString()) == f,
        "the library reads the app's KeyFulfillment");
}

}  // namespace

int main(int argc, char** argv) {
  GOOGLE_PROTOBUF_VERIFY_VERSION;
  if (argc != 2) {
    std::fprintf(stderr, "usage: app SCRATCH_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string channel = "20" + std::string(62, 'b');
  const std::string space = "10" + std::string(38, 'c');
  towns::crypto::SecretBytes key_a(std::string_view("pickle key of alice")), key_b(std::string_view("pickle key of bob"));

  auto store_a = towns::SqliteCryptoStore::open((dir / "alice.db").string(), key_a, towns::StoreOpenMode::kCreate);
  auto store_b = towns::SqliteCryptoStore::open((dir / "bob.db").string(), key_b, towns::StoreOpenMode::kCreate);
  towns::GroupEncryptionCrypto alice(nullptr, *store_a), bob(nullptr, *store_b);
  towns::DeviceInitOptions init_a, init_b;
  init_a.pickle_key = key_a;
  init_b.pickle_key = key_b;
  alice.init(init_a);
  bob.init(init_b);
  auto alice_device = alice.get_user_device(), bob_device = bob.get_user_device();
  check(!alice_device.device_key.empty() && alice_device.device_key != bob_device.device_key, "two devices");

  // Device to device.
  auto to_bob = alice.encrypt_with_device_keys("hello bob", {bob_device});
  check(to_bob.size() == 1 && to_bob.count(bob_device.device_key) == 1, "encrypt_with_device_keys");
  auto opened = bob.decrypt_with_device_key(to_bob.at(bob_device.device_key), alice_device.device_key);
  check(opened.view() == "hello bob", "decrypt_with_device_key");
  auto fan = alice.encrypt_to_devices("again", {bob_device});
  check(fan.size() == 1, "encrypt_to_devices");

  // Both algorithms: a session, shared through the app's inbox message.
  const std::vector<std::pair<towns::GroupEncryptionAlgorithm, const char*>> algorithms = {
      {towns::GroupEncryptionAlgorithm::kGroupEncryption, "megolm"},
      {towns::GroupEncryptionAlgorithm::kHybridGroupEncryption, "grpaes"}};
  for (const auto& [algorithm, name] : algorithms) {
    std::printf("-- %s\n", name);
    towns::EnsureOutboundSessionOptions opts;
    opts.miniblock_info = towns::MiniblockInfo{7, std::vector<uint8_t>(32, 9)};
    auto session_id = alice.ensure_outbound_session(channel, algorithm, opts);
    check(alice.has_outbound_session(channel, algorithm), "ensure_outbound_session / has_outbound_session");
    auto exported = alice.export_group_session(channel, session_id);
    check(exported.has_value() && exported->session_id == session_id, "export_group_session");
    auto plan = towns::build_group_encryption_sessions(alice, channel, algorithm, {*exported}, {alice_device, bob_device});
    check(plan.message.ciphertexts.size() == 1, "build_group_encryption_sessions skips our own device");
    auto received = towns::receive_group_encryption_sessions(bob, through_app(plan.message));
    check(received.status == towns::ReceiveStatus::kImported && received.imported == std::vector<std::string>{session_id},
          "receive_group_encryption_sessions imports the session");
    check(bob.has_session_key(channel, session_id, algorithm), "has_session_key");

    auto event = alice.encrypt_group_event(channel, bytes_of("a message"), algorithm);
    auto decrypted = bob.decrypt_group_event(channel, through_app(event, "v1"));
    check(decrypted.plaintext.view() == "a message", "encrypt_group_event / decrypt_group_event");
    auto v0 = alice.encrypt_group_event_deprecated_v0(channel, "old text", algorithm);
    check(bob.decrypt_group_event(channel, through_app(v0, "v0")).plaintext.view() == "old text",
          "encrypt_group_event_deprecated_v0");
    std::vector<towns::EncryptedData> batch;
    for (int i = 0; i < 3; ++i) batch.push_back(through_app(alice.encrypt_group_event(channel, bytes_of("m" + std::to_string(i)), algorithm), "batch"));
    auto results = bob.decrypt_group_events(channel, batch);
    check(results.size() == 3 && results[2].value && results[2].value->plaintext.view() == "m2", "decrypt_group_events");
  }

  check(alice.has_hybrid_session(channel), "has_hybrid_session");
  alice.set_parallelism(3);
  check(alice.parallelism() == 3, "set_parallelism / parallelism");
  solicitation_and_fulfillment_through_app(bob_device.device_key, bob_device.fallback_key,
                                           alice.get_group_session_ids(channel));

  // Key export and import, on a third device.
  auto store_c = towns::SqliteCryptoStore::open((dir / "carol.db").string(), key_a, towns::StoreOpenMode::kCreate);
  towns::GroupEncryptionCrypto carol(nullptr, *store_c);
  carol.init(init_a);
  auto room_keys = alice.export_room_keys();
  check(room_keys.size() == 2, "export_room_keys");
  auto ids = alice.get_group_session_ids(channel);
  check(ids.size() == 2, "get_group_session_ids");
  auto megolm_ids = alice.group_session_ids(channel, towns::GroupEncryptionAlgorithm::kGroupEncryption);
  check(megolm_ids.size() == 1, "group_session_ids");
  auto imported = carol.import_room_keys(room_keys);
  check(imported.imported.size() == 2 && imported.failed.empty(), "import_room_keys");
  auto again = carol.import_session_keys(channel, room_keys);
  check(again.imported.size() == 2, "import_session_keys");
  auto json = carol.import_room_keys_as_json("[]");
  check(json.imported.empty() && json.failed.empty(), "import_room_keys_as_json");
  std::vector<towns::SessionImport> direct;
  for (const auto& k : room_keys) {
    direct.push_back({k.stream_id, k.session_id, k.session_key, *towns::parse_group_encryption_algorithm(k.algorithm)});
  }
  check(carol.import_sessions(direct).size() == 2, "import_sessions");
  auto event = alice.encrypt_group_event(channel, bytes_of("for carol"), towns::GroupEncryptionAlgorithm::kGroupEncryption);
  check(carol.decrypt_group_event(channel, through_app(event, "carol")).plaintext.view() == "for carol",
        "an imported key decrypts");

  // The whole device, exported and recreated.
  auto device_bytes = alice.export_device();
  auto exported_device = towns::ExportedDevice::decode(device_bytes.span());
  check(exported_device.outbound_sessions.size() == 1 && exported_device.hybrid_group_sessions.size() == 1,
        "export_device");
  auto store_d = towns::SqliteCryptoStore::open((dir / "dave.db").string(), key_a, towns::StoreOpenMode::kCreate);
  towns::GroupEncryptionCrypto dave(nullptr, *store_d);
  towns::DeviceInitOptions from_export;
  from_export.pickle_key = key_a;
  from_export.from_exported_device = device_bytes;
  dave.init(from_export);
  check(dave.get_user_device().device_key == alice_device.device_key, "a device recreated from its export");

  // A malformed message is refused with its code, not a crash.
  std::string garbage = "\x0a\xff";
  try {
    towns::EncryptedData::decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size()));
    check(false, "malformed EncryptedData refused");
  } catch (const towns::Error& e) {
    check(e.code() == towns::ErrorCode::INVALID_ARGUMENT, "malformed EncryptedData refused with INVALID_ARGUMENT");
  }
  (void)space;
  google::protobuf::ShutdownProtobufLibrary();
  std::printf("%d passed, 0 failed\n", checks);
  return 0;
}
