// Data made by the canonical client (test/data/client_fixture.json, produced by
// test/interop/client_fixture.ts) read by towns-e2ee: hybrid session ids, an
// exported device with its events, and an olm message.
#include "helpers.h"

#include <nlohmann/json.hpp>

#include "towns/crypto/encoding.h"
#include "towns/proto/payloads.pb.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/store/memory_crypto_store.h"

using namespace towns;
using crypto::Base64Padding;
using nlohmann::json;

namespace {

json fixture() {
  std::ifstream in(test::data_path("client_fixture.json"));
  REQUIRE(in.good());
  return json::parse(in);
}

template <typename M>
M parse_b64(const std::string& b64) {
  auto bytes = crypto::base64_decode(b64, Base64Padding::kPadded);
  M m;
  REQUIRE(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  return m;
}

// One of the library's wire messages, read by the library's codec.
template <typename M>
M decode_b64(const std::string& b64) {
  return M::decode(crypto::base64_decode(b64, Base64Padding::kPadded));
}

// The fixture's exported device as DeviceInitOptions takes it: the binary
// ExportedDevice protobuf (checked to be one).
crypto::SecretBytes exported_device(const std::string& b64) {
  parse_b64<river::ExportedDevice>(b64);
  return crypto::SecretBytes(crypto::base64_decode(b64, Base64Padding::kPadded));
}

}  // namespace

TEST_CASE("hybrid session ids are derived as the client derives them") {
  auto f = fixture();  // a local: iterating a temporary's member would dangle
  for (const auto& h : f["hybrid_session_ids"]) {
    auto id = hybrid_session_key_hash(crypto::hex_decode(h["stream_id_hex"].get<std::string>()),
                                      crypto::hex_decode(h["key_hex"].get<std::string>()),
                                      static_cast<int64_t>(std::stoull(h["miniblock_num"].get<std::string>())),
                                      crypto::hex_decode(h["miniblock_hash_hex"].get<std::string>()));
    CHECK(crypto::hex_encode(id) == h["session_id_hex"].get<std::string>());
  }
}

TEST_CASE("a device exported by the client is imported, decrypts its events and continues its session") {
  auto f = fixture();
  auto exported = exported_device(f["alice"]["exported_device_b64"].get<std::string>());
  std::string stream = f["stream_id"];
  MemoryCryptoStore store;
  EncryptionDevice device(store);
  GroupEncryptionCrypto alice(nullptr, device);
  alice.init({.pickle_key = crypto::SecretBytes(std::string_view("our own key")), .from_exported_device = exported});
  CHECK(alice.get_user_device().device_key == f["alice"]["device_key"]);
  auto ids = alice.get_group_session_ids(stream);
  CHECK(ids == f["alice"]["session_ids"].get<std::vector<std::string>>());

  for (const auto& e : f["events"]) {
    INFO(e["algorithm"].get<std::string>() << " v" << e["version"].get<int>());
    auto data = decode_b64<EncryptedData>(e["encrypted_data_b64"].get<std::string>());
    auto plain = alice.decrypt_group_event(stream, data);
    CHECK(crypto::base64_encode(plain.plaintext.span(), Base64Padding::kPadded) == e["plaintext_b64"]);
  }
  // Two megolm messages went out before the export: the session goes on at index 2.
  auto key = device.outbound().session_key(stream);
  REQUIRE(key.has_value());
  CHECK(key->chain_index == 2);
  auto next = alice.encrypt_group_event(stream, test::bytes("next"), GroupEncryptionAlgorithm::kGroupEncryption);
  CHECK(alice.decrypt_group_event(stream, next).message_index == 2u);

  // Everything was re-pickled under our key: the store reopens with it alone.
  GroupEncryptionCrypto again(nullptr, store);
  again.init({.pickle_key = crypto::SecretBytes(std::string_view("our own key"))});
  CHECK(again.get_user_device().device_key == f["alice"]["device_key"]);
  GroupEncryptionCrypto wrong(nullptr, store);
  REQUIRE_ERROR(wrong.init({.pickle_key = crypto::SecretBytes(std::string_view("fixture pickle key alice"))}),
                OLM_BAD_ACCOUNT_KEY);
}

TEST_CASE("an olm message from the client decrypts on the receiving device") {
  auto f = fixture();
  auto exported = exported_device(f["bob"]["exported_device_b64"].get<std::string>());
  MemoryCryptoStore store;
  GroupEncryptionCrypto bob(nullptr, store);
  bob.init({.from_exported_device = exported});
  CHECK(bob.get_user_device().device_key == f["bob"]["device_key"]);
  CHECK(bob.get_user_device().fallback_key == f["bob"]["fallback_key"]);
  auto plain = bob.decrypt_with_device_key(f["olm"]["ciphertext"].get<std::string>(),
                                           f["olm"]["sender_key"].get<std::string>());
  CHECK(plain.view() == f["olm"]["payload"].get<std::string>());
  REQUIRE_ERROR(bob.decrypt_with_device_key(f["olm"]["ciphertext"].get<std::string>(), f["bob"]["device_key"].get<std::string>()),
                DECRYPTION_FAILED);
}
