#include "helpers.h"

#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/crypto/random.h"

#include <openssl/evp.h>

#include <random>

using namespace towns::crypto;

TEST_CASE("AES-256-GCM matches Wycheproof known answers") {
  auto lines = test::read_lines("wycheproof_aes256gcm_iv96.txt");
  REQUIRE(lines.size() >= 30);
  int valid = 0, invalid = 0;
  for (const auto& line : lines) {
    auto f = test::split(line);
    REQUIRE(f.size() == 8);
    INFO("tcId " << f[0]);
    auto key = test::unhex(f[1]), iv = test::unhex(f[2]), aad = test::unhex(f[3]), msg = test::unhex(f[4]);
    auto ct = test::unhex(f[5]), tag = test::unhex(f[6]);
    auto aes = AesGcm::New(std::span<const uint8_t>(key));
    auto sealed = ct;
    sealed.insert(sealed.end(), tag.begin(), tag.end());
    if (f[7] == "valid") {
      ++valid;
      REQUIRE(aes.encrypt(iv, msg, aad) == sealed);
      auto opened = aes.decrypt(iv, sealed, aad);
      REQUIRE(std::vector<uint8_t>(opened.data(), opened.data() + opened.size()) == msg);
    } else {
      ++invalid;
      REQUIRE_ERROR(aes.decrypt(iv, sealed, aad), DECRYPTION_FAILED);
    }
  }
  CHECK(valid > 0);
  CHECK(invalid > 0);
}

TEST_CASE("AES-256-GCM refuses every flipped bit and every truncation") {
  SeededRandom rng(test::bytes("aead tamper"));
  auto aes = AesGcm::New(rng.bytes(32));
  auto iv = rng.bytes(12);
  auto sealed = aes.encrypt(iv.span(), test::bytes("the quick brown fox"));
  for (size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    auto copy = sealed;
    copy[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    REQUIRE_ERROR(aes.decrypt(iv.span(), copy), DECRYPTION_FAILED);
  }
  for (size_t n = 0; n < sealed.size(); ++n) {
    std::span<const uint8_t> cut(sealed.data(), n);
    if (n < kAesGcmTagSize) {
      REQUIRE_ERROR(aes.decrypt(iv.span(), cut), INVALID_ARGUMENT);
    } else {
      REQUIRE_ERROR(aes.decrypt(iv.span(), cut), DECRYPTION_FAILED);
    }
  }
  auto other_iv = iv;
  other_iv.data()[0] ^= 1;
  REQUIRE_ERROR(aes.decrypt(other_iv.span(), sealed), DECRYPTION_FAILED);
}

TEST_CASE("AES-256-GCM checks key and IV lengths") {
  REQUIRE_ERROR(AesGcm::New(std::string_view("short")), INVALID_ARGUMENT);
  REQUIRE_ERROR(AesGcm::New(SecretBytes(33)), INVALID_ARGUMENT);
  auto aes = AesGcm::New(SecretBytes(32));
  for (size_t n : {0, 8, 11, 13, 16}) {
    std::vector<uint8_t> iv(n);
    REQUIRE_ERROR(aes.encrypt(iv, test::bytes("x")), INVALID_ARGUMENT);
    REQUIRE_ERROR(aes.decrypt(iv, std::vector<uint8_t>(32)), INVALID_ARGUMENT);
  }
}

TEST_CASE("SHA-256 and HKDF-SHA-256 give the published answers") {
  // FIPS 180-2 example "abc".
  CHECK(hex_encode(sha256(test::bytes("abc"))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 5869 test case 1.
  auto ikm = test::unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  auto okm = hkdf_sha256(std::span<const uint8_t>(ikm), test::unhex("000102030405060708090a0b0c"),
                         test::unhex("f0f1f2f3f4f5f6f7f8f9"), 42);
  CHECK(hex_encode(okm.span()) ==
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST_CASE("the seeded random source is deterministic and the OS one is not") {
  SeededRandom a(test::bytes("seed")), b(test::bytes("seed")), c(test::bytes("seee"));
  auto x = a.bytes(100), y = b.bytes(100), z = c.bytes(100);
  CHECK(x == y);
  CHECK_FALSE(x == z);
  // Draw boundaries do not matter, only the order of the bytes.
  SeededRandom d(test::bytes("seed"));
  auto p1 = d.bytes(7), p2 = d.bytes(93);
  p1.append(p2.span());
  CHECK(p1 == x);
  auto r1 = os_random().bytes(32), r2 = os_random().bytes(32);
  CHECK_FALSE(r1 == r2);
}

TEST_CASE("secret buffers compare in constant time and wipe on clear") {
  SecretBytes s(std::string_view("secret"));
  CHECK(s == SecretBytes(std::string_view("secret")));
  CHECK_FALSE(s == SecretBytes(std::string_view("secreT")));
  CHECK_FALSE(s == SecretBytes(std::string_view("secret!")));
  const uint8_t* p = s.data();
  s.clear();
  CHECK(s.empty());
  for (int i = 0; i < 6; ++i) CHECK(p[i] == 0);  // capacity is kept, contents wiped
  SecretBytes moved(std::string_view("abc"));
  SecretBytes to = std::move(moved);
  CHECK(moved.empty());  // NOLINT(bugprone-use-after-move): the contract says empty
  CHECK(to.view() == "abc");
}

TEST_CASE("HMAC-SHA-256 matches RFC 4231, one-shot and with a prepared key") {
  struct Case {
    std::string key, data, mac;
  };
  const Case cases[] = {
      {std::string(20, '\x0b'), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      // A key longer than the block is hashed first (RFC 4231 case 6).
      {std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
  };
  for (const auto& c : cases) {
    auto one = towns::crypto::hmac_sha256(c.key, towns::crypto::as_bytes(c.data));
    CHECK(towns::crypto::hex_encode(one) == c.mac);
    towns::crypto::HmacSha256 prepared(c.key);
    CHECK(towns::crypto::hex_encode(prepared.mac(towns::crypto::as_bytes(c.data))) == c.mac);
    CHECK(towns::crypto::hex_encode(prepared.mac(towns::crypto::as_bytes(c.data))) == c.mac);  // reusable
  }
}

TEST_CASE("SHA-256 and the prepared HMAC agree with OpenSSL's EVP and HMAC() at every key and data length") {
  // The prepared key absorbs the pads into SHA-256 states and copies them per
  // MAC; sha256() uses SHA256_*: both checked against OpenSSL's other entry
  // points (EVP_Digest; HMAC() in hmac_sha256), key lengths 0 to 130 (shorter
  // than, equal to and longer than the 64-byte block) and data 0 to 300 bytes.
  std::mt19937 rng(7);
  auto random_bytes = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };
  for (size_t key_len = 0; key_len <= 130; ++key_len) {
    auto key = random_bytes(key_len);
    towns::crypto::HmacSha256 prepared{SecretView(std::span<const uint8_t>(key))};
    for (size_t data_len : {size_t{0}, size_t{1}, size_t{55}, size_t{56}, size_t{64}, size_t{65}, key_len * 2 + 3,
                            size_t{300}}) {
      auto data = random_bytes(data_len);
      INFO("key " << key_len << " data " << data_len);
      CHECK(prepared.mac(data) == towns::crypto::hmac_sha256(SecretView(std::span<const uint8_t>(key)), data));
    }
  }
  for (size_t len : {size_t{0}, size_t{1}, size_t{55}, size_t{56}, size_t{63}, size_t{64}, size_t{65}, size_t{1500},
                     size_t{1} << 20}) {
    auto data = random_bytes(len);
    std::array<uint8_t, 32> expected{};
    unsigned int n = 0;
    REQUIRE(EVP_Digest(data.data(), data.size(), expected.data(), &n, EVP_sha256(), nullptr) == 1);
    CHECK(towns::crypto::sha256(data) == expected);
  }
  // A moved-from key refuses rather than MACs under nothing.
  towns::crypto::HmacSha256 a{SecretView(std::string_view("k"))};
  towns::crypto::HmacSha256 b = std::move(a);
  REQUIRE_ERROR(a.mac(test::bytes("x")), INTERNAL);  // NOLINT(bugprone-use-after-move)
  CHECK(b.mac(test::bytes("x")) == towns::crypto::hmac_sha256(SecretView(std::string_view("k")), test::bytes("x")));
}
