#include "towns/crypto/encoding.h"

#include <array>

#include "towns/error.h"

namespace towns::crypto {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kTable = make_table();

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
    int8_t v = kTable[static_cast<uint8_t>(c)];
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

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string base64_encode(std::span<const uint8_t> data, Base64Padding padding) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rem = data.size() - i;
  if (rem > 0) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (rem == 2) v |= uint32_t{data[i + 1]} << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    if (rem == 2) out += kAlphabet[(v >> 6) & 63];
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

std::string hex_encode(std::span<const uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t b : data) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::vector<uint8_t> hex_decode(std::string_view text) {
  if (text.size() >= 2 && text[0] == '0' && text[1] == 'x') text.remove_prefix(2);
  if (text.size() % 2 != 0) throw Error(ErrorCode::BAD_ENCODING, "invalid hex: odd number of digits");
  std::vector<uint8_t> out(text.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_digit(text[2 * i]);
    int lo = hex_digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) throw Error(ErrorCode::BAD_ENCODING, "invalid hex: character outside 0-9a-fA-F");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace towns::crypto
