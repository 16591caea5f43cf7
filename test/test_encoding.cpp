#include "helpers.h"

#include <random>

#include "towns/crypto/encoding.h"

using namespace towns::crypto;
using towns::ErrorCode;

TEST_CASE("base64 encodes in libolm's unpadded and bin_toBase64's padded forms") {
  auto b = test::bytes("any carnal pleas");
  CHECK(base64_encode(b, Base64Padding::kPadded) == "YW55IGNhcm5hbCBwbGVhcw==");
  CHECK(base64_encode(b, Base64Padding::kNone) == "YW55IGNhcm5hbCBwbGVhcw");
  CHECK(base64_encode(test::bytes("any carnal pleasu"), Base64Padding::kPadded) == "YW55IGNhcm5hbCBwbGVhc3U=");
  CHECK(base64_encode(test::bytes("any carnal pleasur"), Base64Padding::kNone) == "YW55IGNhcm5hbCBwbGVhc3Vy");
  CHECK(base64_encode({}, Base64Padding::kPadded).empty());
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  for (auto p : {Base64Padding::kNone, Base64Padding::kPadded}) {
    for (size_t n = 0; n <= all.size(); ++n) {
      std::span<const uint8_t> part(all.data(), n);
      auto text = base64_encode(part, p);
      auto back = base64_decode(text, p);
      REQUIRE(std::vector<uint8_t>(part.begin(), part.end()) == back);
      REQUIRE(base64_decode(text, Base64Padding::kOptional) == back);
    }
  }
}

TEST_CASE("base64 decoding follows the padding rule asked for") {
  CHECK(base64_decode("AQI=", Base64Padding::kPadded) == std::vector<uint8_t>{1, 2});
  CHECK(base64_decode("AQI", Base64Padding::kNone) == std::vector<uint8_t>{1, 2});
  CHECK(base64_decode("AQI=", Base64Padding::kOptional) == std::vector<uint8_t>{1, 2});
  CHECK(base64_decode("AQI", Base64Padding::kOptional) == std::vector<uint8_t>{1, 2});
  REQUIRE_ERROR(base64_decode("AQI=", Base64Padding::kNone), BAD_ENCODING);
  REQUIRE_ERROR(base64_decode("AQI", Base64Padding::kPadded), BAD_ENCODING);
}

TEST_CASE("base64 decoding refuses what is not canonical base64") {
  for (const char* bad : {"A", "AQ=", "A===", "AQ I=", "AQI=\n", "-_8=", "AQ==AQ==", "=AQI", "AQ=I", "AB==",
                          "AQJ=", "AQ\xff", "\x80\x80\x80\x80"}) {
    INFO(bad);
    REQUIRE_ERROR(base64_decode(bad, Base64Padding::kOptional), BAD_ENCODING);
  }
  REQUIRE_ERROR(base64_decode_secret("!!!!", Base64Padding::kOptional), BAD_ENCODING);
}

namespace {
// The decoder as a plain, character-at-a-time reading of docs/protocol.md 1.1:
// the fast decoder must give the same bytes, or fail with the same message.
std::pair<std::vector<uint8_t>, std::string> reference_decode(std::string_view text, Base64Padding padding) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto fail = [](std::string why) { return std::pair<std::vector<uint8_t>, std::string>{{}, "BAD_ENCODING: invalid base64: " + why}; };
  size_t pad = 0;
  while (pad < text.size() && pad < 3 && text[text.size() - 1 - pad] == '=') ++pad;
  auto body = text.substr(0, text.size() - pad);
  if (pad > 0 && padding == Base64Padding::kNone) return fail("padding is not allowed here");
  if (pad > 0 && (text.size() % 4 != 0 || pad > 2)) return fail("wrong padding");
  if (pad == 0 && padding == Base64Padding::kPadded && text.size() % 4 != 0) return fail("missing padding");
  if (body.size() % 4 == 1) return fail("impossible length");
  if (pad > 0 && pad != (4 - body.size() % 4) % 4) return fail("wrong padding");
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : body) {
    auto v = alphabet.find(c);
    if (c == '\0' || v == std::string::npos) return fail(c == '=' ? "padding inside the text" : "character outside the alphabet");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return fail("non-zero trailing bits");
  return {out, ""};
}
}  // namespace

TEST_CASE("base64 decoding four characters at a time agrees with a character-at-a-time reading") {
  const std::string chars = "AQgw+/9z=!-_ \x80";
  std::mt19937 rng(20261202);
  size_t valid = 0, invalid = 0;
  for (int round = 0; round < 200000; ++round) {
    std::string text(rng() % 14, 'A');
    for (auto& c : text) c = chars[rng() % (chars.size() - (round % 3 == 0 ? 0 : 6))];
    for (auto p : {Base64Padding::kNone, Base64Padding::kPadded, Base64Padding::kOptional}) {
      INFO(text);
      auto [want, why] = reference_decode(text, p);
      try {
        auto got = base64_decode(text, p);
        REQUIRE(why.empty());
        REQUIRE(got == want);
        REQUIRE(base64_decode_secret(text, p).view() == std::string_view(reinterpret_cast<const char*>(want.data()), want.size()));
        ++valid;
      } catch (const towns::Error& e) {
        REQUIRE(e.code() == ErrorCode::BAD_ENCODING);
        REQUIRE(std::string(e.what()) == why);
        ++invalid;
      }
    }
  }
  CHECK(valid > 10000);
  CHECK(invalid > 10000);
}

TEST_CASE("hex is lowercase out, either case and optional 0x in") {
  CHECK(hex_encode(std::vector<uint8_t>{0x0a, 0xff, 0x00}) == "0aff00");
  CHECK(hex_decode("0aFF00") == std::vector<uint8_t>{0x0a, 0xff, 0x00});
  CHECK(hex_decode("0x0a") == std::vector<uint8_t>{0x0a});
  CHECK(hex_decode("").empty());
  CHECK(hex_decode("0x").empty());
  for (const char* bad : {"a", "0g", "0X0a", " 0a", "0a ", "x0", "abc"}) {
    INFO(bad);
    REQUIRE_ERROR(hex_decode(bad), BAD_ENCODING);
  }
}

TEST_CASE("every byte value decodes as the alphabet says, and hex too") {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int c = 0; c < 256; ++c) {
    std::string quad(4, 'A');
    quad[0] = static_cast<char>(c);
    auto pos = alphabet.find(static_cast<char>(c));
    if (c != 0 && pos != std::string::npos) {
      auto b = base64_decode(quad, Base64Padding::kNone);
      REQUIRE(b.size() == 3);
      CHECK((b[0] >> 2) == static_cast<uint8_t>(pos));
    } else {
      REQUIRE_ERROR(base64_decode(quad, Base64Padding::kNone), BAD_ENCODING);
    }
    std::string pair = "0";
    pair += static_cast<char>(c);
    bool is_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (c == 'x') {
      CHECK(hex_decode(pair).empty());  // "0x" is the prefix alone
    } else if (is_hex) {
      CHECK(hex_decode(pair).size() == 1);
    } else {
      REQUIRE_ERROR(hex_decode(pair), BAD_ENCODING);
    }
  }
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  CHECK(hex_decode(hex_encode(all)) == all);
}
