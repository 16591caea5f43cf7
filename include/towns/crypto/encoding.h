// Strict codecs for the encodings of the protocol (protocol.md section 1).
//
// Decoders refuse anything not in canonical form with Error(BAD_ENCODING):
// characters outside the alphabet (including white space and the URL-safe
// alphabet), a length no encoding produces, misplaced padding, and non-zero
// bits in the last character. (The canonical client's decoder is laxer: it
// skips white space and accepts '-' and '_'. docs/compat.md lists this.)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns::crypto {

enum class Base64Padding {
  kNone,      // libolm's form: never '=' (decoding refuses '=')
  kPadded,    // bin_toBase64's form: always '=' to a multiple of 4 (decoding requires it)
  kOptional,  // decoding only: '=' padding may be present (complete) or absent
};

TOWNS_API std::string base64_encode(std::span<const uint8_t> data, Base64Padding padding);
TOWNS_API std::vector<uint8_t> base64_decode(std::string_view text, Base64Padding padding);
// The same, into a buffer that is wiped when released (for decoded secrets).
TOWNS_API SecretBytes base64_decode_secret(std::string_view text, Base64Padding padding);

// Lowercase hex, no prefix.
TOWNS_API std::string hex_encode(std::span<const uint8_t> data);
// Accepts upper and lower case digits and an optional "0x" prefix; the number of
// digits must be even.
TOWNS_API std::vector<uint8_t> hex_decode(std::string_view text);
// The same into and from secret buffers (keys travel as hex).
TOWNS_API SecretBytes hex_encode_secret(std::span<const uint8_t> data);
TOWNS_API SecretBytes hex_decode_secret(std::string_view text);

inline std::span<const uint8_t> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_text(std::span<const uint8_t> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace towns::crypto
