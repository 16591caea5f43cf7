#include "helpers.h"

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
