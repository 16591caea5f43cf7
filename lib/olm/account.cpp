#include "common.h"

#include <nlohmann/json.hpp>

namespace towns::olm {
using namespace detail;

namespace {
OlmAccount* P(const detail::Memory& m) { return live(static_cast<OlmAccount*>(m.get())); }

// The string value of a top-level field of libolm's identity keys JSON
// ({"curve25519":"...","ed25519":"..."}).
std::string json_string_field(const std::string& json, const char* name) {
  auto doc = nlohmann::json::parse(json, nullptr, false);
  if (!doc.is_object() || !doc.contains(name) || !doc[name].is_string()) {
    throw Error(ErrorCode::INTERNAL, "libolm JSON lacks " + std::string(name));
  }
  return doc[name].get<std::string>();
}
}  // namespace

Account::Account() : mem_(olm_account_size(), [](void* p) { olm_clear_account(static_cast<OlmAccount*>(p)); }) {
  olm_account(mem_.get());
}

OlmAccount* Account::raw() const { return P(mem_); }

#define ACCOUNT_ERR [this] { return olm_account_last_error_code(P(mem_)); }

Account Account::create(RandomSource& rng) {
  Account a;
  SecretBytes random = rng.bytes(olm_create_account_random_length(P(a.mem_)));
  if (olm_create_account(P(a.mem_), random.data(), random.size()) == olm_error()) {
    throw_olm(olm_account_last_error_code(P(a.mem_)), "olm_create_account");
  }
  return a;
}

Account Account::unpickle(SecretView pickle_key, std::string_view pickle) {
  Account a;
  SecretBytes buf = scratch(pickle);
  if (olm_unpickle_account(P(a.mem_), pickle_key.data(), pickle_key.size(), buf.data(), buf.size()) ==
      olm_error()) {
    throw_olm(olm_account_last_error_code(P(a.mem_)), "olm_unpickle_account");
  }
  return a;
}

std::string Account::pickle(SecretView pickle_key) const {
  return output_string(
      olm_pickle_account_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_pickle_account(P(mem_), pickle_key.data(), pickle_key.size(), out, n); },
      ACCOUNT_ERR, "olm_pickle_account");
}

std::string Account::identity_keys() const {
  return output_string(
      olm_account_identity_keys_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_account_identity_keys(P(mem_), out, n); }, ACCOUNT_ERR,
      "olm_account_identity_keys");
}

std::string Account::curve25519_key() const { return json_string_field(identity_keys(), "curve25519"); }
std::string Account::ed25519_key() const { return json_string_field(identity_keys(), "ed25519"); }

std::string Account::sign(std::string_view message) const {
  return output_string(
      olm_account_signature_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_account_sign(P(mem_), message.data(), message.size(), out, n); },
      ACCOUNT_ERR, "olm_account_sign");
}

size_t Account::max_number_of_one_time_keys() const { return olm_account_max_number_of_one_time_keys(P(mem_)); }

void Account::generate_one_time_keys(size_t count, RandomSource& rng) {
  SecretBytes random = rng.bytes(olm_account_generate_one_time_keys_random_length(P(mem_), count));
  if (olm_account_generate_one_time_keys(P(mem_), count, random.data(), random.size()) == olm_error()) {
    throw_olm(olm_account_last_error_code(P(mem_)), "olm_account_generate_one_time_keys");
  }
}

std::string Account::one_time_keys() const {
  return output_string(
      olm_account_one_time_keys_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_account_one_time_keys(P(mem_), out, n); }, ACCOUNT_ERR,
      "olm_account_one_time_keys");
}

void Account::mark_keys_as_published() { olm_account_mark_keys_as_published(P(mem_)); }

void Account::generate_fallback_key(RandomSource& rng) {
  SecretBytes random = rng.bytes(olm_account_generate_fallback_key_random_length(P(mem_)));
  if (olm_account_generate_fallback_key(P(mem_), random.data(), random.size()) == olm_error()) {
    throw_olm(olm_account_last_error_code(P(mem_)), "olm_account_generate_fallback_key");
  }
}

std::string Account::fallback_key() const {
  return output_string(
      olm_account_fallback_key_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_account_fallback_key(P(mem_), out, n); }, ACCOUNT_ERR,
      "olm_account_fallback_key");
}

std::string Account::unpublished_fallback_key() const {
  return output_string(
      olm_account_unpublished_fallback_key_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_account_unpublished_fallback_key(P(mem_), out, n); }, ACCOUNT_ERR,
      "olm_account_unpublished_fallback_key");
}

void Account::forget_old_fallback_key() { olm_account_forget_old_fallback_key(P(mem_)); }

void remove_one_time_keys(Account& account, const Session& session) {
  if (olm_remove_one_time_keys(account.raw(), session.raw()) == olm_error()) {
    throw_olm(olm_account_last_error_code(account.raw()), "olm_remove_one_time_keys");
  }
}

}  // namespace towns::olm
