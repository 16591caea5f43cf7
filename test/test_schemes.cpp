// The derived scheme (protocol.md section 12) and media encryption (section 13).
// Known answers come from @towns-protocol/sdk-crypto 0.0.455 (deriveKeyAndIV,
// encryptAESGCM) run on the pinned Node.js.
#include "helpers.h"

#include "towns/crypto/aead.h"
#include "towns/crypto/random.h"
#include "towns/proto/protocol.pb.h"
#include "towns/protocol/derived.h"
#include "towns/protocol/media.h"

using namespace towns;
using crypto::SecretBytes;

namespace {

const std::string kPhrase = "0x1234567890abcdef1234567890abcdef12345678";

std::string hex(std::span<const uint8_t> b) { return crypto::hex_encode(b); }
std::string hex(const SecretBytes& b) { return crypto::hex_encode(b.span()); }
std::span<const uint8_t> bytes_of(const std::string& s) { return crypto::as_bytes(s); }

std::vector<uint8_t> iv_filled(uint8_t v) { return std::vector<uint8_t>(12, v); }

SecretBytes media_key() {
  SecretBytes k(32);
  for (size_t i = 0; i < 32; ++i) k[i] = static_cast<uint8_t>(i);
  return k;
}

}  // namespace

TEST_CASE("derive_key_and_iv gives the SDK's key and IV") {
  auto d = derive_key_and_iv(kPhrase);
  CHECK(hex(d.key) == "cca8973519e4de5d7e52c00731e4be3091f5de5254eb05c61e21ae8b8f20408d");
  CHECK(hex(d.iv) == "7c00b5e23128250f1304ebde");
  auto u = derive_key_and_iv("0xabcdef0123456789abcdef0123456789abcdef01");
  CHECK(hex(u.key) == "cc91bbb35fed142cd600e812b3998cc411888f4760b2ce2ba8f94f44ecc3844d");
  CHECK(hex(u.iv) == "df33df6e645caaa00a2c1945");
  // The empty phrase is accepted: the key is SHA-256 of nothing.
  auto e = derive_key_and_iv("");
  CHECK(hex(e.key) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(e.iv) == "5df6e0e2761359d30a827505");
  // key = H(p), iv = H(H(p))[0..12)
  auto h = crypto::sha256(bytes_of(kPhrase));
  auto hh = crypto::sha256(h);
  CHECK(hex(d.key) == hex(h));
  CHECK(hex(d.iv) == hex(std::span<const uint8_t>(hh.data(), 12)));
  // A phrase in bytes is the same as its text.
  CHECK(derive_key_and_iv(bytes_of(kPhrase)).key == d.key);
  // Case matters: the SDK lower-cases the phrase before it derives.
  CHECK(!(derive_key_and_iv("0x1234567890ABCDEF1234567890abcdef12345678").key == d.key));
}

TEST_CASE("encrypt_derived matches the SDK byte for byte and decrypts back") {
  auto e = encrypt_derived(kPhrase, bytes_of("towns derived scheme"));
  CHECK(e.ciphertext == "RHf/5RLJ8HQ+5vD50zmn8OQdOqjuVkFR8FciTkHVJJ+bFi3K");
  CHECK(e.algorithm == "r.aes-256-gcm.derived");
  CHECK(decrypt_derived(kPhrase, e).view() == "towns derived scheme");
  // Deterministic.
  CHECK(encrypt_derived(kPhrase, bytes_of("towns derived scheme")).ciphertext == e.ciphertext);
  // Padded base64: one byte of plaintext gives 17 bytes, "...=" at the end.
  auto one = encrypt_derived(kPhrase, bytes_of("x"));
  CHECK(one.ciphertext.size() == 24);
  CHECK(one.ciphertext[23] == '=');
  CHECK(one.ciphertext[22] != '=');
}

TEST_CASE("the derived EncryptedData has exactly ciphertext and algorithm") {
  auto e = encrypt_derived(kPhrase, bytes_of("towns derived scheme"));
  auto pb = derived_encrypted_data_bytes(e);
  river::EncryptedData m;
  REQUIRE(m.ParseFromString(pb));
  CHECK(m.ciphertext() == e.ciphertext);
  CHECK(m.algorithm() == "r.aes-256-gcm.derived");
  river::EncryptedData only;
  only.set_ciphertext(e.ciphertext);
  only.set_algorithm(e.algorithm);
  CHECK(pb == only.SerializeAsString());
  // Field 1 (length 48), then field 2 (length 21): nothing else.
  CHECK(hex(bytes_of(pb.substr(0, 2))) == "0a30");
  CHECK(pb.size() == 2 + 48 + 2 + 21);
  auto back = parse_derived_encrypted_data(bytes_of(pb));
  CHECK(back.ciphertext == e.ciphertext);
  CHECK(back.algorithm == e.algorithm);
  // Other fields are ignored, as the SDK ignores them.
  m.set_sender_key("someone");
  m.set_version(river::ENCRYPTED_DATA_VERSION_1);
  auto with_more = m.SerializeAsString();
  CHECK(decrypt_derived(kPhrase, parse_derived_encrypted_data(bytes_of(with_more))).view() == "towns derived scheme");
  REQUIRE_ERROR(parse_derived_encrypted_data(bytes_of(std::string("\xff\xff\xff", 3))), INVALID_ARGUMENT);
}

TEST_CASE("derived: every refusal has its code") {
  auto e = encrypt_derived(kPhrase, bytes_of("towns derived scheme"));
  REQUIRE_ERROR(encrypt_derived(kPhrase, {}), EMPTY_PAYLOAD);

  auto wrong_alg = e;
  wrong_alg.algorithm = "grpaes";
  REQUIRE_ERROR(decrypt_derived(kPhrase, wrong_alg), UNKNOWN_ALGORITHM);
  wrong_alg.algorithm = "";
  REQUIRE_ERROR(decrypt_derived(kPhrase, wrong_alg), UNKNOWN_ALGORITHM);
  wrong_alg.algorithm = "R.AES-256-GCM.DERIVED";
  REQUIRE_ERROR(decrypt_derived(kPhrase, wrong_alg), UNKNOWN_ALGORITHM);

  REQUIRE_ERROR(decrypt_derived("0x1234567890abcdef1234567890abcdef12345679", e), DECRYPTION_FAILED);
  REQUIRE_ERROR(decrypt_derived("", e), DECRYPTION_FAILED);

  // Every flipped bit of the decoded ciphertext fails.
  auto ct = crypto::base64_decode(e.ciphertext, crypto::Base64Padding::kPadded);
  for (size_t bit = 0; bit < ct.size() * 8; ++bit) {
    auto t = ct;
    t[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    DerivedEncryptedData d{crypto::base64_encode(t, crypto::Base64Padding::kPadded), e.algorithm};
    REQUIRE_ERROR(decrypt_derived(kPhrase, d), DECRYPTION_FAILED);
  }
  // Every truncation fails; below 16 bytes there is not even a tag (the SDK's
  // Node build reads a shorter tail as a short tag: docs/compat.md).
  for (size_t n = 0; n < ct.size(); ++n) {
    DerivedEncryptedData d{crypto::base64_encode(std::span<const uint8_t>(ct.data(), n), crypto::Base64Padding::kPadded),
                           e.algorithm};
    INFO(n);
    REQUIRE_ERROR(decrypt_derived(kPhrase, d), DECRYPTION_FAILED);
  }

  // Base64: padded or unpadded standard base64; anything else is BAD_ENCODING.
  auto unpadded = e;
  auto one = encrypt_derived(kPhrase, bytes_of("x"));
  unpadded = one;
  unpadded.ciphertext.pop_back();
  CHECK(decrypt_derived(kPhrase, unpadded).view() == "x");
  for (std::string bad : {"%%%%", "RHf/5RLJ 8HQ+", "RHf_5RLJ", "A", "AR==", "AQ==AQ=="}) {
    INFO(bad);
    REQUIRE_ERROR(decrypt_derived(kPhrase, DerivedEncryptedData{bad, std::string(kDerivedAlgorithmId)}), BAD_ENCODING);
  }
  // The algorithm is checked before the ciphertext is read.
  REQUIRE_ERROR(decrypt_derived(kPhrase, DerivedEncryptedData{"%%%%", "other"}), UNKNOWN_ALGORITHM);
}

TEST_CASE("derived: a 16-byte ciphertext that verifies is an empty plaintext, as in the SDK") {
  auto d = derive_key_and_iv(kPhrase);
  auto tag_only = crypto::AesGcm::New(d.key).encrypt(d.iv.span(), {});
  REQUIRE(tag_only.size() == 16);
  auto out = decrypt_derived(kPhrase, {crypto::base64_encode(tag_only, crypto::Base64Padding::kPadded),
                                       std::string(kDerivedAlgorithmId)});
  CHECK(out.empty());
}

TEST_CASE("media: chunk counts") {
  CHECK(media_chunk_count(1, 17) == 1);
  CHECK(media_chunk_count(2, 17) == 2);
  CHECK(media_chunk_count(10, 20) == 3);
  CHECK(media_chunk_count(12, 20) == 3);
  CHECK(media_chunk_count(13, 20) == 4);
  CHECK(media_chunk_count(0, 20) == 0);
  CHECK(media_chunk_count(1'199'984, kMediaChunkSize) == 1);
  CHECK(media_chunk_count(1'199'985, kMediaChunkSize) == 2);
  REQUIRE_ERROR(media_chunk_count(10, 16), INVALID_ARGUMENT);
  REQUIRE_ERROR(media_chunk_count(10, 0), INVALID_ARGUMENT);
}

TEST_CASE("media: the per-chunk form matches the SDK byte for byte") {
  auto key = media_key();
  std::vector<std::vector<uint8_t>> ivs = {iv_filled(0xa0), iv_filled(0xa1), iv_filled(0xa2)};
  auto chunks = encrypt_chunked_media_with(bytes_of("abcdefghij"), 20, key, ivs);
  REQUIRE(chunks.size() == 3);
  CHECK(hex(chunks[0].ciphertext) == "44d30187aa898e9322150c729a462f314892420b");
  CHECK(hex(chunks[1].ciphertext) == "c0a69c365ae8fa275aa34f30adef10d606a4ed92");
  CHECK(hex(chunks[2].ciphertext) == "3ce43c3a62517b01e22b83edb6aacb4457b7");
  for (size_t i = 0; i < 3; ++i) {
    CHECK(chunks[i].iv == ivs[i]);
    CHECK(chunks[i].ciphertext.size() <= 20);
  }
  CHECK(decrypt_chunked_media(key, chunks).view() == "abcdefghij");
}

TEST_CASE("media: the random form draws the key, then one IV per chunk") {
  crypto::SeededRandom a(test::bytes("media draws"));
  crypto::SeededRandom b(test::bytes("media draws"));
  std::string data(100, 'm');
  auto enc = encrypt_chunked_media(bytes_of(data), 40, a);
  REQUIRE(enc.chunks.size() == 5);  // pieces of 24 bytes
  auto key = b.bytes(32);
  CHECK(enc.secret_key == key);
  std::vector<std::vector<uint8_t>> ivs;
  for (int i = 0; i < 5; ++i) {
    auto iv = b.bytes(12);
    ivs.emplace_back(iv.data(), iv.data() + 12);
  }
  auto again = encrypt_chunked_media_with(bytes_of(data), 40, key, ivs);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(enc.chunks[i].iv == ivs[i]);
    CHECK(enc.chunks[i].ciphertext == again[i].ciphertext);
    CHECK(enc.chunks[i].ciphertext.size() == (i < 4 ? 40u : 4u + 16u));
  }
  CHECK(decrypt_chunked_media(enc.secret_key, enc.chunks).view() == data);
  // With the operating system's source: two files never share a key.
  auto x = encrypt_chunked_media(bytes_of(data), 40);
  auto y = encrypt_chunked_media(bytes_of(data), 40);
  CHECK(!(x.secret_key == y.secret_key));
  CHECK(decrypt_chunked_media(x.secret_key, x.chunks).view() == data);
  // The SDK uploader's size: a piece of 1,199,984 bytes fills one chunk exactly.
  std::vector<uint8_t> big(1'199'985, 7);
  auto up = encrypt_chunked_media(big, kMediaChunkSize);
  REQUIRE(up.chunks.size() == 2);
  CHECK(up.chunks[0].ciphertext.size() == kMediaChunkSize);
  CHECK(up.chunks[1].ciphertext.size() == 17);
  auto round = decrypt_chunked_media(up.secret_key, up.chunks);
  CHECK(std::equal(round.span().begin(), round.span().end(), big.begin(), big.end()));
}

TEST_CASE("media: encryption refusals") {
  auto key = media_key();
  std::vector<std::vector<uint8_t>> three = {iv_filled(1), iv_filled(2), iv_filled(3)};
  REQUIRE_ERROR(encrypt_chunked_media({}, 20), EMPTY_PAYLOAD);
  REQUIRE_ERROR(encrypt_chunked_media_with({}, 20, key, {}), EMPTY_PAYLOAD);
  // Empty data is checked first, as in the SDK.
  REQUIRE_ERROR(encrypt_chunked_media({}, 0), EMPTY_PAYLOAD);
  REQUIRE_ERROR(encrypt_chunked_media(bytes_of("abc"), 16), INVALID_ARGUMENT);
  REQUIRE_ERROR(encrypt_chunked_media(bytes_of("abc"), 10), INVALID_ARGUMENT);
  REQUIRE_ERROR(encrypt_chunked_media_with(bytes_of("abcdefghij"), 20, SecretBytes(31), three), INVALID_ARGUMENT);
  REQUIRE_ERROR(encrypt_chunked_media_with(bytes_of("abcdefghij"), 20, key,
                                           std::span<const std::vector<uint8_t>>(three.data(), 2)),
                INVALID_ARGUMENT);
  auto wrong_len = three;
  wrong_len[1].resize(16);
  REQUIRE_ERROR(encrypt_chunked_media_with(bytes_of("abcdefghij"), 20, key, wrong_len), INVALID_ARGUMENT);
  auto repeated = three;
  repeated[2] = repeated[0];
  REQUIRE_ERROR(encrypt_chunked_media_with(bytes_of("abcdefghij"), 20, key, repeated), INVALID_ARGUMENT);
}

TEST_CASE("media: decryption refusals") {
  auto key = media_key();
  std::vector<std::vector<uint8_t>> ivs = {iv_filled(0xa0), iv_filled(0xa1), iv_filled(0xa2)};
  auto chunks = encrypt_chunked_media_with(bytes_of("abcdefghij"), 20, key, ivs);
  REQUIRE_ERROR(decrypt_chunked_media(SecretBytes(32), chunks), DECRYPTION_FAILED);
  REQUIRE_ERROR(decrypt_chunked_media(SecretBytes(16), chunks), INVALID_ARGUMENT);
  REQUIRE_ERROR(decrypt_chunked_media(key, {}), INVALID_ARGUMENT);
  // Nothing binds a chunk to its index: chunks swapped with their IVs decrypt,
  // reordered. Ciphertexts swapped under IVs left in place do not.
  auto swapped = chunks;
  std::swap(swapped[0], swapped[1]);
  CHECK(decrypt_chunked_media(key, swapped).view() == "efghabcdij");
  auto swapped_ct = chunks;
  std::swap(swapped_ct[0].ciphertext, swapped_ct[1].ciphertext);
  REQUIRE_ERROR(decrypt_chunked_media(key, swapped_ct), DECRYPTION_FAILED);
  auto other_iv = chunks;
  other_iv[1].iv = chunks[0].iv;
  REQUIRE_ERROR(decrypt_chunked_media(key, other_iv), DECRYPTION_FAILED);
  auto short_iv = chunks;
  short_iv[2].iv.resize(8);
  REQUIRE_ERROR(decrypt_chunked_media(key, short_iv), DECRYPTION_FAILED);
  auto no_iv = chunks;
  no_iv[0].iv.clear();
  REQUIRE_ERROR(decrypt_chunked_media(key, no_iv), DECRYPTION_FAILED);
  for (size_t n = 0; n < chunks[2].ciphertext.size(); ++n) {
    auto cut = chunks;
    cut[2].ciphertext.resize(n);
    INFO(n);
    REQUIRE_ERROR(decrypt_chunked_media(key, cut), DECRYPTION_FAILED);
  }
  for (size_t bit = 0; bit < chunks[1].ciphertext.size() * 8; ++bit) {
    auto t = chunks;
    t[1].ciphertext[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    REQUIRE_ERROR(decrypt_chunked_media(key, t), DECRYPTION_FAILED);
  }
  // A chunk left out is not noticed by the per-chunk form (each chunk stands
  // alone; the count comes from the media stream's inception).
  auto dropped = chunks;
  dropped.pop_back();
  CHECK(decrypt_chunked_media(key, dropped).view() == "abcdefgh");
}

TEST_CASE("media: the whole-file form matches the SDK and decrypts from any cut") {
  auto key = media_key();
  auto iv = iv_filled(0xb0);
  auto sealed = crypto::AesGcm::New(key).encrypt(iv, bytes_of("abcdefghij"));
  CHECK(hex(sealed) == "9bd09f2efbacf9c26cf0f068c9c51932d5af47513dd08d53a8e4");
  for (size_t cut = 1; cut <= sealed.size(); ++cut) {
    std::vector<std::vector<uint8_t>> chunks;
    for (size_t i = 0; i < sealed.size(); i += cut) {
      chunks.emplace_back(sealed.begin() + static_cast<ptrdiff_t>(i),
                          sealed.begin() + static_cast<ptrdiff_t>(std::min(sealed.size(), i + cut)));
    }
    INFO(cut);
    CHECK(decrypt_whole_file_media(key, iv, chunks).view() == "abcdefghij");
  }
  std::vector<std::vector<uint8_t>> one = {sealed};
  REQUIRE_ERROR(decrypt_whole_file_media(key, iv_filled(0xb1), one), DECRYPTION_FAILED);
  REQUIRE_ERROR(decrypt_whole_file_media(key, std::vector<uint8_t>(16, 0xb0), one), DECRYPTION_FAILED);
  REQUIRE_ERROR(decrypt_whole_file_media(key, {}, one), DECRYPTION_FAILED);
  REQUIRE_ERROR(decrypt_whole_file_media(SecretBytes(33), iv, one), INVALID_ARGUMENT);
  REQUIRE_ERROR(decrypt_whole_file_media(key, iv, {}), INVALID_ARGUMENT);
  std::vector<std::vector<uint8_t>> tiny = {std::vector<uint8_t>(sealed.begin(), sealed.begin() + 15)};
  REQUIRE_ERROR(decrypt_whole_file_media(key, iv, tiny), DECRYPTION_FAILED);
  std::vector<std::vector<uint8_t>> reordered = {std::vector<uint8_t>(sealed.begin() + 13, sealed.end()),
                                                 std::vector<uint8_t>(sealed.begin(), sealed.begin() + 13)};
  REQUIRE_ERROR(decrypt_whole_file_media(key, iv, reordered), DECRYPTION_FAILED);
}
