#include "selfcheck.h"

#include <string>

#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/memory_crypto_store.h"

namespace towns::tools {
namespace {

// Delivers every shared session straight to one receiving device.
class DirectClient final : public GroupEncryptionClient {
 public:
  explicit DirectClient(GroupEncryptionCrypto*& sender, GroupEncryptionCrypto& receiver)
      : sender_(sender), receiver_(receiver) {}
  void encrypt_and_share_group_sessions_to_stream(std::string_view stream_id,
                                                  const std::vector<GroupEncryptionSession>& sessions,
                                                  GroupEncryptionAlgorithm algorithm,
                                                  const std::vector<std::string>&) override {
    auto plan = build_group_encryption_sessions(*sender_, stream_id, algorithm, sessions,
                                                {receiver_.get_user_device()});
    auto result = receive_group_encryption_sessions(receiver_, plan.message);
    received += result.imported.size();
  }
  MiniblockInfo get_miniblock_info(std::string_view) override { return {7, std::vector<uint8_t>(32, 0xab)}; }
  size_t received = 0;

 private:
  GroupEncryptionCrypto*& sender_;
  GroupEncryptionCrypto& receiver_;
};

}  // namespace

bool run_selfcheck(FILE* out) {
  bool ok = true;
  auto step = [&](const char* what, bool passed) {
    std::fprintf(out, "  %-58s %s\n", what, passed ? "ok" : "FAILED");
    ok = ok && passed;
  };
  std::fprintf(out, "self-check:\n");
  MemoryCryptoStore alice_store, bob_store;
  GroupEncryptionCrypto bob(nullptr, bob_store);
  bob.init();
  GroupEncryptionCrypto* alice_ptr = nullptr;
  DirectClient client(alice_ptr, bob);
  GroupEncryptionCrypto alice(&client, alice_store);
  alice_ptr = &alice;
  alice.init();
  step("two devices created in memory", alice.get_user_device().device_key != bob.get_user_device().device_key);

  const std::string stream = "20" + std::string(62, 'a');
  const std::string text = "hello from the self-check";
  std::span<const uint8_t> payload = crypto::as_bytes(text);
  for (auto algorithm : {GroupEncryptionAlgorithm::kGroupEncryption, GroupEncryptionAlgorithm::kHybridGroupEncryption}) {
    std::string name(algorithm_id(algorithm));
    size_t before = client.received;
    auto event = alice.encrypt_group_event(stream, payload, algorithm);
    step((name + ": session created and shared over olm").c_str(), client.received == before + 1);
    try {
      auto plain = bob.decrypt_group_event(stream, event);
      step((name + ": receiver decrypts the event").c_str(), plain.plaintext.view() == text);
    } catch (const Error& e) {
      std::fprintf(out, "    %s\n", e.what());
      step((name + ": receiver decrypts the event").c_str(), false);
    }
  }
  return ok;
}

}  // namespace towns::tools
