// A thin RAII layer over libolm's C API.
//
// Each class owns one libolm object. Contract shared by all of them:
// - Move-only. A moved-from object is empty; calling a method on it throws
//   Error(INTERNAL). Destruction calls olm_clear_* and wipes the memory.
// - Objects come from static factories (create, unpickle, ...) and are never
//   half-built: a factory either returns a working object or throws.
// - A libolm failure ((size_t)-1) becomes towns::Error with the matching
//   OLM_* code (OLM_BAD_MESSAGE_MAC, OLM_BAD_ACCOUNT_KEY, ...). After a failed
//   call the object is unchanged, because libolm validates before it mutates;
//   for the calls where that is not true (decrypt on a Session advances the
//   ratchet only on success) libolm documents the same.
// - Inputs that libolm overwrites (unpickle, decrypt, import, verify) are
//   copied into a wiped scratch buffer first; the caller's data is never touched.
// - Output buffers are sized per call (a megolm message grows with its index).
// - Random bytes come from the RandomSource passed to the call.
// - Not thread-safe: one object, one thread at a time. Distinct objects are
//   independent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "towns/crypto/random.h"
#include "towns/crypto/secret.h"
#include "towns/export.h"

struct OlmAccount;
struct OlmSession;
struct OlmUtility;
struct OlmOutboundGroupSession;
struct OlmInboundGroupSession;

namespace towns::olm {

using crypto::RandomSource;
using crypto::SecretBytes;
using crypto::SecretView;

// libolm's version as "major.minor.patch".
std::string library_version();

namespace detail {
// Owns the memory block of one libolm object and clears and wipes it on release.
class Memory {
 public:
  using Clear = void (*)(void*);
  Memory() = default;
  Memory(size_t size, Clear clear);
  ~Memory();
  Memory(Memory&& o) noexcept;
  Memory& operator=(Memory&& o) noexcept;
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;
  void* get() const noexcept { return mem_; }

 private:
  void release() noexcept;
  void* mem_ = nullptr;
  size_t size_ = 0;
  Clear clear_ = nullptr;
};
}  // namespace detail

// An olm pre-key (type 0) or normal (type 1) message.
struct OlmMessage {
  size_t type = 0;
  std::string body;
};

class Account {
 public:
  static Account create(RandomSource& rng);
  // OLM_BAD_ACCOUNT_KEY for a wrong pickle key, and also for a truncated or
  // damaged pickle: libolm checks the pickle's MAC before anything else, so the
  // two cannot be told apart. (The same holds for every unpickle below.)
  static Account unpickle(SecretView pickle_key, std::string_view pickle);

  std::string pickle(SecretView pickle_key) const;
  // {"curve25519":"...","ed25519":"..."}, as libolm writes it.
  std::string identity_keys() const;
  std::string curve25519_key() const;
  std::string ed25519_key() const;
  std::string sign(std::string_view message) const;

  size_t max_number_of_one_time_keys() const;
  void generate_one_time_keys(size_t count, RandomSource& rng);
  std::string one_time_keys() const;
  void mark_keys_as_published();

  void generate_fallback_key(RandomSource& rng);
  // {"curve25519":{"<key id>":"<key>"}}, or {"curve25519":{}} when there is none.
  std::string fallback_key() const;
  std::string unpublished_fallback_key() const;
  void forget_old_fallback_key();

  OlmAccount* raw() const;

 private:
  Account();
  detail::Memory mem_;
};

class Session {
 public:
  static Session create_outbound(const Account& account, std::string_view their_identity_key,
                                 std::string_view their_one_time_key, RandomSource& rng);
  // The account is not changed by libolm when it is only used with fallback keys,
  // but a one-time key would be consumed by remove_one_time_keys, not here.
  static Session create_inbound(Account& account, std::string_view prekey_message);
  static Session create_inbound_from(Account& account, std::string_view their_identity_key,
                                     std::string_view prekey_message);
  static Session unpickle(SecretView pickle_key, std::string_view pickle);

  std::string pickle(SecretView pickle_key) const;
  std::string session_id() const;
  bool has_received_message() const;
  bool matches_inbound(std::string_view prekey_message) const;
  bool matches_inbound_from(std::string_view their_identity_key, std::string_view prekey_message) const;
  std::string describe() const;

  OlmMessage encrypt(std::span<const uint8_t> plaintext, RandomSource& rng);
  SecretBytes decrypt(size_t message_type, std::string_view message);

  OlmSession* raw() const;

 private:
  Session();
  detail::Memory mem_;
};

// Removes the one-time key a pre-key message used (not needed with fallback keys).
void remove_one_time_keys(Account& account, const Session& session);

class OutboundGroupSession {
 public:
  static OutboundGroupSession create(RandomSource& rng);
  static OutboundGroupSession unpickle(SecretView pickle_key, std::string_view pickle);

  std::string pickle(SecretView pickle_key) const;
  std::string session_id() const;
  // The key that lets a receiver decrypt from the current message index on
  // (libolm's session-key format, with the sender's signature).
  SecretBytes session_key() const;
  uint32_t message_index() const;
  // Encrypts and advances the ratchet; the result is base64 without padding.
  std::string encrypt(std::span<const uint8_t> plaintext);

 private:
  OutboundGroupSession();
  detail::Memory mem_;
};

struct GroupPlaintext {
  SecretBytes plaintext;
  uint32_t message_index = 0;
};

class InboundGroupSession {
 public:
  // From a session key (signed format, as OutboundGroupSession::session_key gives).
  static InboundGroupSession create(SecretView session_key);
  // From an exported key (libolm's export format, as export_session gives).
  static InboundGroupSession import_session(SecretView exported_key);
  static InboundGroupSession unpickle(SecretView pickle_key, std::string_view pickle);

  std::string pickle(SecretView pickle_key) const;
  std::string session_id() const;
  uint32_t first_known_index() const;
  bool is_verified() const;
  // OLM_UNKNOWN_MESSAGE_INDEX when index is before the first known index.
  SecretBytes export_session(uint32_t message_index) const;
  // OLM_BAD_MESSAGE_MAC, OLM_BAD_SIGNATURE, OLM_BAD_MESSAGE_FORMAT,
  // OLM_INVALID_BASE64, OLM_UNKNOWN_MESSAGE_INDEX.
  GroupPlaintext decrypt(std::string_view message);

 private:
  InboundGroupSession();
  detail::Memory mem_;
};

class Utility {
 public:
  Utility();
  // SHA-256 as libolm gives it: unpadded base64.
  std::string sha256(std::span<const uint8_t> data) const;
  // Throws OLM_BAD_MESSAGE_MAC when the signature does not verify,
  // OLM_INVALID_BASE64 when key or signature are not base64.
  void ed25519_verify(std::string_view key, std::string_view message, std::string_view signature) const;

 private:
  detail::Memory mem_;
};

}  // namespace towns::olm
