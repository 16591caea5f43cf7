#include <olm/pk.h>

#include "common.h"

namespace towns::olm {
using namespace detail;

// ---- Utility

namespace {
OlmUtility* U(const detail::Memory& m) { return live(static_cast<OlmUtility*>(m.get())); }
OlmPkEncryption* E(const detail::Memory& m) { return live(static_cast<OlmPkEncryption*>(m.get())); }
OlmPkDecryption* D(const detail::Memory& m) { return live(static_cast<OlmPkDecryption*>(m.get())); }
OlmPkSigning* S(const detail::Memory& m) { return live(static_cast<OlmPkSigning*>(m.get())); }
}  // namespace

Utility::Utility() : mem_(olm_utility_size(), [](void* p) { olm_clear_utility(static_cast<OlmUtility*>(p)); }) {
  olm_utility(mem_.get());
}

std::string Utility::sha256(std::span<const uint8_t> data) const {
  return output_string(
      olm_sha256_length(U(mem_)),
      [&](uint8_t* out, size_t n) { return olm_sha256(U(mem_), data.data(), data.size(), out, n); },
      [this] { return olm_utility_last_error_code(U(mem_)); }, "olm_sha256");
}

void Utility::ed25519_verify(std::string_view key, std::string_view message, std::string_view signature) const {
  SecretBytes sig = scratch(signature);
  if (olm_ed25519_verify(U(mem_), key.data(), key.size(), message.data(), message.size(), sig.data(), sig.size()) ==
      olm_error()) {
    throw_olm(olm_utility_last_error_code(U(mem_)), "olm_ed25519_verify");
  }
}

// ---- PkEncryption

PkEncryption::PkEncryption()
    : mem_(olm_pk_encryption_size(), [](void* p) { olm_clear_pk_encryption(static_cast<OlmPkEncryption*>(p)); }) {
  olm_pk_encryption(mem_.get());
}

PkEncryption PkEncryption::create(std::string_view recipient_public_key) {
  PkEncryption e;
  if (olm_pk_encryption_set_recipient_key(E(e.mem_), recipient_public_key.data(), recipient_public_key.size()) ==
      olm_error()) {
    throw_olm(olm_pk_encryption_last_error_code(E(e.mem_)), "olm_pk_encryption_set_recipient_key");
  }
  return e;
}

PkMessage PkEncryption::encrypt(std::span<const uint8_t> plaintext, RandomSource& rng) {
  PkMessage m;
  m.ciphertext.resize(olm_pk_ciphertext_length(E(mem_), plaintext.size()));
  m.mac.resize(olm_pk_mac_length(E(mem_)));
  m.ephemeral_key.resize(olm_pk_key_length());
  SecretBytes random = rng.bytes(olm_pk_encrypt_random_length(E(mem_)));
  if (olm_pk_encrypt(E(mem_), plaintext.data(), plaintext.size(), m.ciphertext.data(), m.ciphertext.size(),
                     m.mac.data(), m.mac.size(), m.ephemeral_key.data(), m.ephemeral_key.size(), random.data(),
                     random.size()) == olm_error()) {
    throw_olm(olm_pk_encryption_last_error_code(E(mem_)), "olm_pk_encrypt");
  }
  return m;
}

// ---- PkDecryption

PkDecryption::PkDecryption()
    : mem_(olm_pk_decryption_size(), [](void* p) { olm_clear_pk_decryption(static_cast<OlmPkDecryption*>(p)); }) {
  olm_pk_decryption(mem_.get());
}

PkDecryption PkDecryption::from_private_key(SecretView private_key) {
  PkDecryption d;
  d.public_key_.resize(olm_pk_key_length());
  if (olm_pk_key_from_private(D(d.mem_), d.public_key_.data(), d.public_key_.size(), private_key.data(),
                              private_key.size()) == olm_error()) {
    throw_olm(olm_pk_decryption_last_error_code(D(d.mem_)), "olm_pk_key_from_private");
  }
  return d;
}

PkDecryption PkDecryption::generate(RandomSource& rng) {
  SecretBytes key = rng.bytes(olm_pk_private_key_length());
  return from_private_key(key);
}

PkDecryption PkDecryption::unpickle(SecretView pickle_key, std::string_view pickle) {
  PkDecryption d;
  d.public_key_.resize(olm_pk_key_length());
  SecretBytes buf = scratch(pickle);
  if (olm_unpickle_pk_decryption(D(d.mem_), pickle_key.data(), pickle_key.size(), buf.data(), buf.size(),
                                 d.public_key_.data(), d.public_key_.size()) == olm_error()) {
    throw_olm(olm_pk_decryption_last_error_code(D(d.mem_)), "olm_unpickle_pk_decryption");
  }
  return d;
}

SecretBytes PkDecryption::private_key() const {
  return output_secret(
      olm_pk_private_key_length(),
      [&](uint8_t* out, size_t n) { return olm_pk_get_private_key(D(mem_), out, n); },
      [this] { return olm_pk_decryption_last_error_code(D(mem_)); }, "olm_pk_get_private_key");
}

std::string PkDecryption::pickle(SecretView pickle_key) const {
  return output_string(
      olm_pickle_pk_decryption_length(D(mem_)),
      [&](uint8_t* out, size_t n) {
        return olm_pickle_pk_decryption(D(mem_), pickle_key.data(), pickle_key.size(), out, n);
      },
      [this] { return olm_pk_decryption_last_error_code(D(mem_)); }, "olm_pickle_pk_decryption");
}

SecretBytes PkDecryption::decrypt(const PkMessage& message) {
  SecretBytes buf = scratch(message.ciphertext);
  size_t max = olm_pk_max_plaintext_length(D(mem_), buf.size());
  return output_secret(
      max,
      [&](uint8_t* out, size_t n) {
        return olm_pk_decrypt(D(mem_), message.ephemeral_key.data(), message.ephemeral_key.size(),
                              message.mac.data(), message.mac.size(), buf.data(), buf.size(), out, n);
      },
      [this] { return olm_pk_decryption_last_error_code(D(mem_)); }, "olm_pk_decrypt");
}

// ---- PkSigning

PkSigning::PkSigning()
    : mem_(olm_pk_signing_size(), [](void* p) { olm_clear_pk_signing(static_cast<OlmPkSigning*>(p)); }) {
  olm_pk_signing(mem_.get());
}

size_t PkSigning::seed_length() { return olm_pk_signing_seed_length(); }

PkSigning PkSigning::from_seed(SecretView seed) {
  PkSigning s;
  s.public_key_.resize(olm_pk_signing_public_key_length());
  if (olm_pk_signing_key_from_seed(S(s.mem_), s.public_key_.data(), s.public_key_.size(), seed.data(),
                                   seed.size()) == olm_error()) {
    throw_olm(olm_pk_signing_last_error_code(S(s.mem_)), "olm_pk_signing_key_from_seed");
  }
  return s;
}

std::string PkSigning::sign(std::string_view message) {
  return output_string(
      olm_pk_signature_length(),
      [&](uint8_t* out, size_t n) {
        return olm_pk_sign(S(mem_), reinterpret_cast<const uint8_t*>(message.data()), message.size(), out, n);
      },
      [this] { return olm_pk_signing_last_error_code(S(mem_)); }, "olm_pk_sign");
}

}  // namespace towns::olm
