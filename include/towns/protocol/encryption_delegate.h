// EncryptionDelegate: the seam between the protocol and an olm implementation.
//
// As in the canonical client, GroupEncryptionCrypto initialises the delegate
// and EncryptionDevice encrypts and decrypts with it. Everything the protocol
// needs from olm (accounts, pre-key messages, megolm group sessions, ed25519
// verification) goes through these interfaces, in plain values: the device
// never sees a libolm type. olm_encryption_delegate() is the libolm one
// (lib/olm, the only code that knows libolm); another olm implementation can
// stand behind the same interfaces.
//
// Contract of every object handed out:
// - Failures throw towns::Error with an OLM_* code (the libolm names), and
//   leave the object as it was.
// - Pickles are olm's encrypted pickles under the given pickle key (its bytes
//   as given; libolm's format: docs/protocol.md section 14).
// - Not thread-safe, except where a method says it only reads.
// - Key material comes back in SecretBytes; destroying an object wipes it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "towns/crypto/random.h"
#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns {

// An olm pre-key message (type 0) as it travels: base64 body.
struct PreKeyMessage {
  std::string body;
};

struct GroupPlaintext {
  crypto::SecretBytes plaintext;
  uint32_t message_index = 0;
};

class TOWNS_API DelegateAccount {
 public:
  virtual ~DelegateAccount() = default;
  virtual std::string pickle(crypto::SecretView pickle_key) const = 0;
  // curve25519 identity key ("the device key") and ed25519 signing key, unpadded base64.
  virtual std::string curve25519_key() const = 0;
  virtual std::string ed25519_key() const = 0;
  virtual std::string sign(std::string_view message) const = 0;
  virtual void generate_fallback_key(crypto::RandomSource& rng) = 0;
  // The fallback key not yet marked published (unpadded base64), "" when none.
  virtual std::string unpublished_fallback_key() const = 0;
  virtual void mark_keys_as_published() = 0;
  virtual void forget_old_fallback_key() = 0;
  // A pre-key message to (identity key, fallback key) from a fresh outbound
  // session, which is then dropped. Only reads the account: several threads may
  // call it at once while nobody changes the account.
  virtual PreKeyMessage encrypt_to_device(std::string_view their_identity_key, std::string_view their_fallback_key,
                                          std::span<const uint8_t> plaintext, crypto::RandomSource& rng) const = 0;
  // Decrypts a pre-key message with a fresh inbound session (not kept). With
  // fallback keys this leaves the account as it was.
  virtual crypto::SecretBytes decrypt_prekey_message(std::string_view their_identity_key,
                                                     std::string_view message) = 0;
};

class TOWNS_API DelegateOutboundGroupSession {
 public:
  virtual ~DelegateOutboundGroupSession() = default;
  virtual std::string pickle(crypto::SecretView pickle_key) const = 0;
  virtual std::string session_id() const = 0;
  // The key that lets a receiver decrypt from the current index on.
  virtual crypto::SecretBytes session_key() const = 0;
  virtual uint32_t message_index() const = 0;
  // Encrypts at the current index and advances the ratchet (unpadded base64).
  virtual std::string encrypt(std::span<const uint8_t> plaintext) = 0;
};

class TOWNS_API DelegateInboundGroupSession {
 public:
  virtual ~DelegateInboundGroupSession() = default;
  virtual std::string pickle(crypto::SecretView pickle_key) const = 0;
  virtual std::string session_id() const = 0;
  virtual uint32_t first_known_index() const = 0;
  // The session key in the export format, from message_index on.
  virtual crypto::SecretBytes export_session(uint32_t message_index) const = 0;
  virtual GroupPlaintext decrypt(std::string_view message) = 0;
};

class TOWNS_API EncryptionDelegate {
 public:
  virtual ~EncryptionDelegate() = default;
  virtual std::unique_ptr<DelegateAccount> create_account(crypto::RandomSource& rng) = 0;
  virtual std::unique_ptr<DelegateAccount> unpickle_account(crypto::SecretView pickle_key,
                                                            std::string_view pickle) = 0;
  virtual std::unique_ptr<DelegateOutboundGroupSession> create_outbound_group_session(crypto::RandomSource& rng) = 0;
  virtual std::unique_ptr<DelegateOutboundGroupSession> unpickle_outbound_group_session(crypto::SecretView pickle_key,
                                                                                        std::string_view pickle) = 0;
  // From a session key in either format (the export format, or the signed one
  // an outbound session gives).
  virtual std::unique_ptr<DelegateInboundGroupSession> inbound_group_session_from_key(crypto::SecretView key) = 0;
  virtual std::unique_ptr<DelegateInboundGroupSession> unpickle_inbound_group_session(crypto::SecretView pickle_key,
                                                                                      std::string_view pickle) = 0;
  // OLM_BAD_MESSAGE_MAC when the signature does not verify.
  virtual void ed25519_verify(std::string_view key, std::string_view message, std::string_view signature) = 0;
};

// The libolm-backed delegate (stateless; shared by every device).
TOWNS_API EncryptionDelegate& olm_encryption_delegate();

}  // namespace towns
