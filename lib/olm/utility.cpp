#include "common.h"

namespace towns::olm {
using namespace detail;

// ---- Utility

namespace {
OlmUtility* U(const detail::Memory& m) { return live(static_cast<OlmUtility*>(m.get())); }
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

}  // namespace towns::olm
