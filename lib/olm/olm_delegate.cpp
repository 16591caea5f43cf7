// The libolm-backed EncryptionDelegate: adapters from the delegate interfaces to
// the RAII wrappers of olm.h.
#include <nlohmann/json.hpp>

#include "olm/olm_delegate.h"
#include "towns/error.h"
#include "towns/olm/olm.h"
#include "towns/protocol/encryption_delegate.h"

namespace towns {
namespace {

using crypto::RandomSource;
using crypto::SecretBytes;
using crypto::SecretView;

class OlmDelegateAccount final : public DelegateAccount {
 public:
  explicit OlmDelegateAccount(olm::Account a) : a_(std::move(a)) {}
  std::string pickle(SecretView key) const override { return a_.pickle(key); }
  std::string curve25519_key() const override { return a_.curve25519_key(); }
  std::string ed25519_key() const override { return a_.ed25519_key(); }
  std::string sign(std::string_view message) const override { return a_.sign(message); }
  void generate_fallback_key(RandomSource& rng) override { a_.generate_fallback_key(rng); }
  std::string unpublished_fallback_key() const override {
    // libolm: {"curve25519":{"<key id>":"<key>"}}, or {"curve25519":{}}.
    auto doc = nlohmann::json::parse(a_.unpublished_fallback_key(), nullptr, false);
    auto keys = doc.is_object() ? doc.find("curve25519") : doc.end();
    if (doc.is_discarded() || keys == doc.end() || !keys->is_object()) {
      throw Error(ErrorCode::INTERNAL, "libolm returned an unexpected fallback key object");
    }
    for (const auto& [id, key] : keys->items()) {
      if (key.is_string()) return key.get<std::string>();
    }
    return {};
  }
  void mark_keys_as_published() override { a_.mark_keys_as_published(); }
  void forget_old_fallback_key() override { a_.forget_old_fallback_key(); }
  PreKeyMessage encrypt_to_device(std::string_view identity_key, std::string_view fallback_key,
                                  std::span<const uint8_t> plaintext, RandomSource& rng) const override {
    auto session = olm::Session::create_outbound(a_, identity_key, fallback_key, rng);
    auto message = session.encrypt(plaintext, rng);
    if (message.type != 0) throw Error(ErrorCode::INTERNAL, "a fresh olm session did not produce a pre-key message");
    return {std::move(message.body)};
  }
  SecretBytes decrypt_prekey_message(std::string_view identity_key, std::string_view message) override {
    auto session = olm::Session::create_inbound_from(a_, identity_key, message);
    return session.decrypt(0, message);
  }

 private:
  olm::Account a_;
};

class OlmDelegateOutbound final : public DelegateOutboundGroupSession {
 public:
  explicit OlmDelegateOutbound(olm::OutboundGroupSession s) : s_(std::move(s)) {}
  std::string pickle(SecretView key) const override { return s_.pickle(key); }
  std::string session_id() const override { return s_.session_id(); }
  SecretBytes session_key() const override { return s_.session_key(); }
  uint32_t message_index() const override { return s_.message_index(); }
  std::string encrypt(std::span<const uint8_t> plaintext) override { return s_.encrypt(plaintext); }

 private:
  olm::OutboundGroupSession s_;
};

class OlmDelegateInbound final : public DelegateInboundGroupSession {
 public:
  explicit OlmDelegateInbound(olm::InboundGroupSession s) : s_(std::move(s)) {}
  std::string pickle(SecretView key) const override { return s_.pickle(key); }
  std::string session_id() const override { return s_.session_id(); }
  uint32_t first_known_index() const override { return s_.first_known_index(); }
  SecretBytes export_session(uint32_t index) const override { return s_.export_session(index); }
  GroupPlaintext decrypt(std::string_view message) override {
    auto r = s_.decrypt(message);
    return {std::move(r.plaintext), r.message_index};
  }

 private:
  olm::InboundGroupSession s_;
};

class OlmEncryptionDelegate final : public EncryptionDelegate {
 public:
  std::unique_ptr<DelegateAccount> create_account(RandomSource& rng) override {
    return std::make_unique<OlmDelegateAccount>(olm::Account::create(rng));
  }
  std::unique_ptr<DelegateAccount> unpickle_account(SecretView key, std::string_view pickle) override {
    return std::make_unique<OlmDelegateAccount>(olm::Account::unpickle(key, pickle));
  }
  std::unique_ptr<DelegateOutboundGroupSession> create_outbound_group_session(RandomSource& rng) override {
    return std::make_unique<OlmDelegateOutbound>(olm::OutboundGroupSession::create(rng));
  }
  std::unique_ptr<DelegateOutboundGroupSession> unpickle_outbound_group_session(SecretView key,
                                                                                std::string_view pickle) override {
    return std::make_unique<OlmDelegateOutbound>(olm::OutboundGroupSession::unpickle(key, pickle));
  }
  std::unique_ptr<DelegateInboundGroupSession> inbound_group_session_from_key(SecretView key) override {
    try {
      return std::make_unique<OlmDelegateInbound>(olm::InboundGroupSession::import_session(key));
    } catch (const Error&) {
      // Not the export format: the signed format, or the error that one gives.
      return std::make_unique<OlmDelegateInbound>(olm::InboundGroupSession::create(key));
    }
  }
  std::unique_ptr<DelegateInboundGroupSession> unpickle_inbound_group_session(SecretView key,
                                                                              std::string_view pickle) override {
    return std::make_unique<OlmDelegateInbound>(olm::InboundGroupSession::unpickle(key, pickle));
  }
  void ed25519_verify(std::string_view key, std::string_view message, std::string_view signature) override {
    olm::Utility().ed25519_verify(key, message, signature);
  }
};

}  // namespace

bool decrypts_without_writing(const DelegateAccount& account) {
  return dynamic_cast<const OlmDelegateAccount*>(&account) != nullptr;
}

bool is_olm_delegate(const EncryptionDelegate& delegate) { return &delegate == &olm_encryption_delegate(); }

EncryptionDelegate& olm_encryption_delegate() {
  static OlmEncryptionDelegate delegate;
  return delegate;
}

}  // namespace towns
