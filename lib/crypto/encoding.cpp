#include "towns/crypto/encoding.h"


#include "towns/error.h"

namespace towns::crypto {
namespace {

// Constant-time codecs: secrets (session keys, hybrid keys, payloads) pass
// through them, so no table is indexed by, and no branch taken on, the value of
// an input character; the only data-dependent branch is on validity, which is
// public. (libolm's table-driven base64 is CVE-2024-45192.)

// -1 (all ones) when lo <= x <= hi, else 0, without branching.
constexpr int32_t in_range(int32_t x, int32_t lo, int32_t hi) { return ((lo - 1 - x) & (x - hi - 1)) >> 31; }

// The 6-bit value of a base64 character, or -1.
constexpr int32_t base64_value(uint8_t c) {
  int32_t x = c, v = -1;
  v += in_range(x, 'A', 'Z') & (x - 'A' + 1);
  v += in_range(x, 'a', 'z') & (x - 'a' + 27);
  v += in_range(x, '0', '9') & (x - '0' + 53);
  v += in_range(x, '+', '+') & 63;
  v += in_range(x, '/', '/') & 64;
  return v;
}

// The base64 character of a 6-bit value.
constexpr char base64_char(int32_t v) {
  int32_t c = 'A' + v;
  c += ((25 - v) >> 8) & ('a' - 26 - 'A');
  c += ((51 - v) >> 8) & (('0' - 52) - ('a' - 26));
  c += ((61 - v) >> 8) & (('+' - 62) - ('0' - 52));
  c += ((62 - v) >> 8) & (('/' - 63) - ('+' - 62));
  return static_cast<char>(c);
}

constexpr int32_t hex_value(uint8_t c) {
  int32_t x = c, v = -1;
  v += in_range(x, '0', '9') & (x - '0' + 1);
  v += in_range(x, 'a', 'f') & (x - 'a' + 11);
  v += in_range(x, 'A', 'F') & (x - 'A' + 11);
  return v;
}

constexpr char hex_char(int32_t n) { return static_cast<char>(n + '0' + (((9 - n) >> 8) & ('a' - '0' - 10))); }

static_assert(base64_value('A') == 0 && base64_value('z') == 51 && base64_value('+') == 62 &&
              base64_value('/') == 63 && base64_value('=') == -1 && base64_value(0xff) == -1);
static_assert(base64_char(0) == 'A' && base64_char(26) == 'a' && base64_char(52) == '0' && base64_char(62) == '+' &&
              base64_char(63) == '/');
static_assert(hex_value('f') == 15 && hex_value('F') == 15 && hex_value('g') == -1 && hex_char(10) == 'a');

[[noreturn]] void bad_base64(const char* why) {
  throw Error(ErrorCode::BAD_ENCODING, std::string("invalid base64: ") + why);
}

// Decodes into any byte container with resize()/data().
template <typename Out>
void decode_into(std::string_view text, Base64Padding padding, Out& out) {
  size_t pad = 0;
  while (pad < text.size() && pad < 3 && text[text.size() - 1 - pad] == '=') ++pad;
  std::string_view body = text.substr(0, text.size() - pad);
  if (pad > 0) {
    if (padding == Base64Padding::kNone) bad_base64("padding is not allowed here");
    if (text.size() % 4 != 0 || pad > 2) bad_base64("wrong padding");
  } else if (padding == Base64Padding::kPadded && text.size() % 4 != 0) {
    bad_base64("missing padding");
  }
  size_t rem = body.size() % 4;
  if (rem == 1) bad_base64("impossible length");
  if (pad > 0 && pad != (4 - rem) % 4) bad_base64("wrong padding");
  out.resize(body.size() / 4 * 3 + (rem == 0 ? 0 : rem - 1));
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : body) {
    int32_t v = base64_value(static_cast<uint8_t>(c));
    if (v < 0) bad_base64(c == '=' ? "padding inside the text" : "character outside the alphabet");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.data()[o++] = static_cast<uint8_t>(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) bad_base64("non-zero trailing bits");
}


}  // namespace

std::string base64_encode(std::span<const uint8_t> data, Base64Padding padding) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += base64_char(static_cast<int32_t>(v >> 18));
    out += base64_char(static_cast<int32_t>((v >> 12) & 63));
    out += base64_char(static_cast<int32_t>((v >> 6) & 63));
    out += base64_char(static_cast<int32_t>(v & 63));
  }
  size_t rem = data.size() - i;
  if (rem > 0) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (rem == 2) v |= uint32_t{data[i + 1]} << 8;
    out += base64_char(static_cast<int32_t>(v >> 18));
    out += base64_char(static_cast<int32_t>((v >> 12) & 63));
    if (rem == 2) out += base64_char(static_cast<int32_t>((v >> 6) & 63));
    if (padding == Base64Padding::kPadded) out.append(3 - rem, '=');
  }
  return out;
}

std::vector<uint8_t> base64_decode(std::string_view text, Base64Padding padding) {
  std::vector<uint8_t> out;
  decode_into(text, padding, out);
  return out;
}

SecretBytes base64_decode_secret(std::string_view text, Base64Padding padding) {
  SecretBytes out;
  decode_into(text, padding, out);
  return out;
}

namespace {
template <typename Out>
void hex_encode_into(std::span<const uint8_t> data, Out& out) {
  out.resize(data.size() * 2);
  for (size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = static_cast<typename Out::value_type>(hex_char(data[i] >> 4));
    out[2 * i + 1] = static_cast<typename Out::value_type>(hex_char(data[i] & 15));
  }
}

template <typename Out>
void hex_decode_into(std::string_view text, Out& out) {
  if (text.size() >= 2 && text[0] == '0' && text[1] == 'x') text.remove_prefix(2);
  if (text.size() % 2 != 0) throw Error(ErrorCode::BAD_ENCODING, "invalid hex: odd number of digits");
  out.resize(text.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int32_t hi = hex_value(static_cast<uint8_t>(text[2 * i]));
    int32_t lo = hex_value(static_cast<uint8_t>(text[2 * i + 1]));
    if (hi < 0 || lo < 0) throw Error(ErrorCode::BAD_ENCODING, "invalid hex: character outside 0-9a-fA-F");
    out.data()[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
}
}  // namespace

std::string hex_encode(std::span<const uint8_t> data) {
  std::string out;
  hex_encode_into(data, out);
  return out;
}

SecretBytes hex_encode_secret(std::span<const uint8_t> data) {
  SecretBytes out;
  hex_encode_into(data, out);
  return out;
}

std::vector<uint8_t> hex_decode(std::string_view text) {
  std::vector<uint8_t> out;
  hex_decode_into(text, out);
  return out;
}

SecretBytes hex_decode_secret(std::string_view text) {
  SecretBytes out;
  hex_decode_into(text, out);
  return out;
}

}  // namespace towns::crypto
