#include "towns/crypto/encoding.h"

#include <algorithm>


#include "towns/crypto/secret.h"
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

// Why a text is not base64, found by a second, plain scan: only on the error
// path, once validity (which is public) has failed.
[[noreturn]] void bad_body(std::string_view body) {
  for (char c : body) {
    if (base64_value(static_cast<uint8_t>(c)) < 0) {
      bad_base64(c == '=' ? "padding inside the text" : "character outside the alphabet");
    }
  }
  bad_base64("character outside the alphabet");
}

// The 6-bit values of n base64 characters, in bytes; returns a byte whose top
// bit is set when any character is outside the alphabet. Byte lanes and masks
// only, with no branch and no table: compiled with vectorisation on (see
// lib/meson.build), it runs 16 or 32 characters at a time.
uint8_t base64_values(const uint8_t* in, uint8_t* out, size_t n) {
  uint8_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = in[i];
    uint8_t u = static_cast<uint8_t>(c - 'A'), l = static_cast<uint8_t>(c - 'a'), d = static_cast<uint8_t>(c - '0');
    // 0xff when in range, else 0: (x - k) >> 8 of a value below 256 is -1 exactly when x < k.
    auto below = [](uint8_t x, int k) { return static_cast<uint8_t>((x - k) >> 8); };
    auto equal = [](uint8_t x, uint8_t y) { return static_cast<uint8_t>(((x ^ y) - 1) >> 8); };
    uint8_t mu = below(u, 26), ml = below(l, 26), md = below(d, 10), mp = equal(c, '+'), ms = equal(c, '/');
    out[i] = static_cast<uint8_t>((mu & u) | (ml & static_cast<uint8_t>(l + 26)) | (md & static_cast<uint8_t>(d + 52)) |
                                  (mp & 62) | (ms & 63));
    bad |= static_cast<uint8_t>(~(mu | ml | md | mp | ms));
  }
  return bad;
}

// Decodes into any byte container with resize()/data(): the characters' values
// a block at a time into a wiped buffer, then packed four to three bytes. No
// branch depends on the text until validity (public) is known.
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
  auto* in = reinterpret_cast<const uint8_t*>(body.data());
  uint8_t* o = out.data();
  uint8_t bad = 0;
  uint32_t trailing = 0;
  constexpr size_t kBlock = 512;  // a multiple of 4
  uint8_t v[kBlock];
  for (size_t at = 0; at < body.size(); at += kBlock) {
    size_t n = std::min(kBlock, body.size() - at);
    bad |= base64_values(in + at, v, n);
    size_t full = n - n % 4;
    for (size_t i = 0; i < full; i += 4, o += 3) {
      uint32_t w = (uint32_t{v[i]} << 18) | (uint32_t{v[i + 1]} << 12) | (uint32_t{v[i + 2]} << 6) | v[i + 3];
      o[0] = static_cast<uint8_t>(w >> 16);
      o[1] = static_cast<uint8_t>(w >> 8);
      o[2] = static_cast<uint8_t>(w);
    }
    if (n % 4 != 0) {  // the last block's 2 or 3 characters
      uint32_t w = (uint32_t{v[full]} << 18) | (uint32_t{v[full + 1]} << 12);
      if (n % 4 == 3) w |= uint32_t{v[full + 2]} << 6;
      o[0] = static_cast<uint8_t>(w >> 16);
      if (n % 4 == 3) o[1] = static_cast<uint8_t>(w >> 8);
      trailing = w & (n % 4 == 2 ? 0xf000u : 0xc0u);
    }
  }
  wipe(v, sizeof v);
  if (bad & 0x80) bad_body(body);
  if (trailing != 0) bad_base64("non-zero trailing bits");
}


}  // namespace

std::string base64_encode(std::span<const uint8_t> data, Base64Padding padding) {
  size_t rem = data.size() % 3, full = data.size() - rem;
  size_t tail = rem == 0 ? 0 : (padding == Base64Padding::kPadded ? 4 : rem + 1);
  std::string out(full / 3 * 4 + tail, '=');
  char* o = out.data();
  for (size_t i = 0; i < full; i += 3, o += 4) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    o[0] = base64_char(static_cast<int32_t>(v >> 18));
    o[1] = base64_char(static_cast<int32_t>((v >> 12) & 63));
    o[2] = base64_char(static_cast<int32_t>((v >> 6) & 63));
    o[3] = base64_char(static_cast<int32_t>(v & 63));
  }
  if (rem > 0) {
    uint32_t v = uint32_t{data[full]} << 16;
    if (rem == 2) v |= uint32_t{data[full + 1]} << 8;
    o[0] = base64_char(static_cast<int32_t>(v >> 18));
    o[1] = base64_char(static_cast<int32_t>((v >> 12) & 63));
    if (rem == 2) o[2] = base64_char(static_cast<int32_t>((v >> 6) & 63));
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
