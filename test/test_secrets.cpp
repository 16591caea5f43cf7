// No key material, pickle key or plaintext appears in an error message or in
// the driver's replies to failed requests.
#include "helpers.h"
#include "store_fixtures.h"

#include <nlohmann/json.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "driver.h"
#include "towns/crypto/encoding.h"
#include "towns/proto/payloads.pb.h"
#include "towns/protocol/session_sharing.h"

using namespace towns;
using crypto::SecretBytes;

namespace {

const std::string kStream = "20" + std::string(62, '5');

struct Scanner {
  std::vector<std::string> secrets;
  std::vector<std::string> messages;
  template <typename Fn>
  void expect_error(Fn&& fn) {
    try {
      fn();
      FAIL("expected an error");
    } catch (const Error& e) {
      messages.push_back(e.what());
    }
  }
  void check() {
    REQUIRE(!messages.empty());
    for (const auto& m : messages) {
      for (const auto& s : secrets) {
        INFO("message: " << m);
        CHECK(m.find(s) == std::string::npos);
      }
    }
  }
};

// Imports one key with EncryptionDevice::import_sessions and throws its error.
void import_one(EncryptionDevice& dev, std::string_view stream, std::string_view session_id, const SecretBytes& key,
                std::string_view algorithm) {
  auto alg = parse_group_encryption_algorithm(algorithm);
  REQUIRE(alg.has_value());
  auto r = dev.import_sessions({SessionImport{std::string(stream), std::string(session_id), key, *alg}});
  REQUIRE(r.size() == 1);
  if (r[0].error) throw *r[0].error;
}

}  // namespace

TEST_CASE("error messages never carry secrets") {
  Scanner scan;
  const std::string pickle_key = "correct horse battery staple";
  scan.secrets.push_back(pickle_key);
  test::TempDir dir;
  auto path = dir.file("s.db");
  MemoryCryptoStore store;
  GroupEncryptionCrypto a(nullptr, store);
  a.init({.pickle_key = SecretBytes(std::string_view(pickle_key))});
  SqliteCryptoStore::open(path, pickle_key).reset();
  scan.expect_error([&] { SqliteCryptoStore::open(path, "wrong " + pickle_key); });
  scan.secrets.push_back("wrong " + pickle_key);
  GroupEncryptionCrypto other(nullptr, store);
  scan.expect_error([&] { other.init({.pickle_key = SecretBytes(std::string_view("wrong " + pickle_key))}); });

  const std::string plaintext = "the launch code is 0000";
  scan.secrets.push_back(plaintext);
  auto e = a.encrypt_group_event(kStream, crypto::as_bytes(plaintext), GroupEncryptionAlgorithm::kGroupEncryption);
  auto h = a.encrypt_group_event_deprecated_v0(kStream, plaintext, GroupEncryptionAlgorithm::kGroupEncryption);
  for (const auto& k : a.export_room_keys()) {
    scan.secrets.push_back(k.session_key.str());
    EncryptionDevice b(store);
    b.init({.pickle_key = SecretBytes(std::string_view(pickle_key))});
    scan.expect_error([&] { import_one(b, kStream, "another id", k.session_key, k.algorithm); });
    auto longer = k.session_key;
    longer.append(crypto::as_bytes("x"));
    scan.expect_error([&] { import_one(b, kStream, k.session_id, longer, k.algorithm); });
  }
  auto tampered = e;
  tampered.ciphertext = tampered.ciphertext.substr(0, 40);
  scan.expect_error([&] { a.decrypt_group_event(kStream, tampered); });
  auto version = h;
  version.version = static_cast<EncryptedDataVersion>(9);
  scan.expect_error([&] { a.decrypt_group_event(kStream, version); });

  // Hybrid keys: a mismatched import names no key bytes.
  MemoryCryptoStore hs;
  GroupEncryptionCrypto hy(nullptr, hs);
  hy.init();
  hy.ensure_outbound_session(kStream, GroupEncryptionAlgorithm::kHybridGroupEncryption,
                             {.miniblock_info = MiniblockInfo{1, std::vector<uint8_t>(32, 1)}});
  EncryptionDevice hybrid_importer(store);
  hybrid_importer.init({.pickle_key = SecretBytes(std::string_view(pickle_key))});
  for (const auto& k : hy.export_room_keys()) {
    scan.secrets.push_back(k.session_key.str());
    river::HybridGroupSessionKey parsed;
    auto raw = crypto::hex_decode(k.session_key.view());
    REQUIRE(parsed.ParseFromArray(raw.data(), static_cast<int>(raw.size())));
    scan.secrets.push_back(crypto::hex_encode(crypto::as_bytes(parsed.key())));
    scan.secrets.push_back(crypto::base64_encode(crypto::as_bytes(parsed.key()), crypto::Base64Padding::kNone));
    scan.expect_error([&] { import_one(hybrid_importer, "20ff", k.session_id, k.session_key, k.algorithm); });
  }

  // A shared message whose key count is wrong names no key.
  MemoryCryptoStore rs;
  GroupEncryptionCrypto receiver(nullptr, rs);
  receiver.init();
  auto keys = a.export_room_keys();
  auto plan = build_group_encryption_sessions(a, kStream, GroupEncryptionAlgorithm::kGroupEncryption,
                                              {keys[0]}, {receiver.get_user_device()});
  plan.message.session_ids.push_back("extra");
  scan.expect_error([&] { receive_group_encryption_sessions(receiver, plan.message); });
  scan.check();
}

TEST_CASE("the driver's error replies never echo secrets") {
  test::TempDir dir;
  const std::string pickle_key = "driver pickle key 123";
  std::stringstream in, out;
  auto store = "{\"sqlite\":\"" + dir.file("d.db") + "\"}";
  in << R"({"id":1,"cmd":"init","user_id":"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","store":)" << store << R"(,"pickle_key":")" << pickle_key << "\"}\n";
  in << R"({"id":2,"cmd":"encrypt","stream_id":"20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","algorithm":"r.group-encryption.v1.aes-sha2","plaintext_b64":"c2VjcmV0IHBsYWludGV4dA=="})" << "\n";
  in << R"({"id":3,"cmd":"export_sessions"})" << "\n";
  in << R"({"id":4,"cmd":"init","user_id":"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","store":)" << store << R"(,"pickle_key":"wrong )" << pickle_key << "\"}\n";
  in << R"({"id":5,"cmd":"import_sessions","sessions":[{"streamId":"20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","sessionId":"x","sessionKey":"AAAAsecretkeymaterial","algorithm":"grpaes"}]})" << "\n";
  in << R"({"id":6,"cmd":"decrypt_from_device","ciphertext":"AwoAsecretciphertext","sender_key":"k"})" << "\n";
  tools::run_driver(in, out);
  std::string line;
  std::vector<std::string> replies;
  while (std::getline(out, line)) replies.push_back(line);
  REQUIRE(replies.size() == 6);
  auto exported = nlohmann::json::parse(replies[2]);
  std::string session_key = exported.at("sessions").at(0).at("sessionKey");
  for (size_t i : {3, 4, 5}) {
    INFO(replies[i]);
    // import_sessions reports its refusals in "failed"; the others fail outright.
    auto reply = nlohmann::json::parse(replies[i]);
    if (i == 4) {
      CHECK(reply == nlohmann::json{{"id", 5}, {"ok", true}, {"imported", nlohmann::json::array()}, {"failed", {"x"}}});
    } else {
      CHECK(reply.at("ok") == false);
    }
    for (const std::string& secret : {pickle_key, session_key, std::string("secret plaintext"), std::string("c2VjcmV0IHBsYWludGV4dA"),
                                      std::string("AAAAsecretkeymaterial")}) {
      CHECK(replies[i].find(secret) == std::string::npos);
    }
  }
}

namespace {

// The VmFlags of the mapping of /proc/self/smaps that holds p ("" when none does).
std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  auto addr = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < 17) {
      inside = lo <= addr && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

bool has_flag(const std::string& flags, const std::string& flag) {
  std::istringstream words(flags);
  for (std::string w; words >> w;) {
    if (w == flag) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("secret buffers live in pages left out of core dumps (MADV_DONTDUMP)") {
  // Small (pooled) and large (own mapping) buffers, and a plain heap block for contrast.
  SecretBytes small(std::string_view("a 32-byte key, more or less....."));
  SecretBytes large(std::vector<uint8_t>(100000, 7));
  auto heap = std::make_unique<std::vector<uint8_t>>(100, 1);
  std::string large_flags = vm_flags_of(large.data());
  INFO(vm_flags_of(small.data()) << " / " << large_flags << " / " << vm_flags_of(heap->data()));
  CHECK(has_flag(vm_flags_of(small.data()), "dd"));
  CHECK(has_flag(large_flags, "dd"));
  CHECK_FALSE(has_flag(vm_flags_of(heap->data()), "dd"));
  // Growing, copying and moving keep them there.
  SecretBytes grown;
  for (int i = 0; i < 5000; ++i) grown.append(crypto::as_bytes("x"));
  CHECK(has_flag(vm_flags_of(grown.data()), "dd"));
  SecretBytes copy = small;
  CHECK(has_flag(vm_flags_of(copy.data()), "dd"));
  CHECK(copy == small);
  // Blocks are reused and 16-byte aligned.
  std::vector<SecretBytes> many;
  for (size_t n = 1; n < 3000; n += 37) {
    many.emplace_back(n);
    CHECK(reinterpret_cast<uintptr_t>(many.back().data()) % 16 == 0);
  }
}
