// The scenarios that need no key exchange: the derived scheme, media chunks,
// the two group algorithms' round trips and version 0 payloads.
#include <algorithm>
#include <cctype>
#include <set>

#include "conformance.h"
#include "towns/crypto/encoding.h"
#include "towns/protocol/messages.h"

namespace towns::conformance {

using namespace h;

namespace {

// protocol.md 12.2's example and what sdk-crypto makes of it (12.3).
const std::string kPhrase = "0x1234567890abcdef1234567890abcdef12345678";
const std::string kDerived = "r.aes-256-gcm.derived";
const std::string kDerivedCt = "RHf/5RLJ8HQ+5vD50zmn8OQdOqjuVkFR8FciTkHVJJ+bFi3K";

std::string derived_pb(const std::string& ciphertext, const std::string& algorithm = kDerived) {
  EncryptedData e;
  e.ciphertext = ciphertext;
  e.algorithm = algorithm;
  return pb64(e.encode());
}
EncryptedData event_of(const json& b64_pb) {
  auto b = bytes(b64_pb);
  return EncryptedData::decode(b);
}

void derived_scheme(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  // No init: the derived scheme needs no device.
  for (Driver* d : {&a, &b}) {
    auto e = d->ok("derived_encrypt", {{"key_phrase", kPhrase}, {"plaintext_b64", b64("towns derived scheme")}});
    same(e.at("encrypted_data_pb"), derived_pb(kDerivedCt), d->name() + ": the SDK's bytes");
    auto pb = event_of(e.at("encrypted_data_pb"));
    same(json::array({pb.sender_key, pb.session_id, static_cast<int>(pb.version), pb.ciphertext_bytes.size()}),
          json::array({"", "", 0, 0}), d->name() + ": nothing else set");
  }
  // Each reads the other's: a UserBio-like payload under a user id, and bytes under a space address.
  const std::string user = "0x" + kUserB;
  const std::string bio = pb64({0x0a, 0x03, 0x68, 0x69, 0x21, 0x10, 0x01});
  auto from_a = a.ok("derived_encrypt", {{"key_phrase", user}, {"plaintext_b64", bio}});
  same(b.ok("derived_decrypt", {{"key_phrase", user}, {"encrypted_data_pb", from_a.at("encrypted_data_pb")}}).at("plaintext_b64"),
        bio, "B reads A");
  std::vector<uint8_t> big_bytes(5000);
  for (size_t i = 0; i < big_bytes.size(); ++i) big_bytes[i] = static_cast<uint8_t>(i % 251);
  const std::string big = pb64(big_bytes);
  auto from_b = b.ok("derived_encrypt", {{"key_phrase", kPhrase}, {"plaintext_b64", big}});
  same(a.ok("derived_decrypt", {{"key_phrase", kPhrase}, {"encrypted_data_pb", from_b.at("encrypted_data_pb")}}).at("plaintext_b64"),
        big, "A reads B");
  auto raw = bytes(kDerivedCt);
  std::string upper = kPhrase;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (Driver* d : {&a, &b}) {
    auto dd = [&](const std::string& phrase, const std::string& pb) {
      return json{{"key_phrase", phrase}, {"encrypted_data_pb", pb}};
    };
    d->err("derived_encrypt", {{"key_phrase", kPhrase}, {"plaintext_b64", ""}}, "EMPTY_PAYLOAD");
    d->err("derived_decrypt", dd(upper, derived_pb(kDerivedCt)), "DECRYPTION_FAILED");
    d->err("derived_decrypt", dd(user, derived_pb(kDerivedCt)), "DECRYPTION_FAILED");
    d->err("derived_decrypt", dd(kPhrase, derived_pb(kDerivedCt, "grpaes")), "UNKNOWN_ALGORITHM");
    d->err("derived_decrypt", dd(kPhrase, derived_pb(kDerivedCt, "")), "UNKNOWN_ALGORITHM");
    d->err("derived_decrypt", dd(kPhrase, derived_pb(pb64(std::vector<uint8_t>(raw.begin(), raw.begin() + 15)))), "DECRYPTION_FAILED");
    auto flipped = raw;
    flipped.back() ^= 1;
    d->err("derived_decrypt", dd(kPhrase, derived_pb(pb64(flipped))), "DECRYPTION_FAILED");
    d->err("derived_decrypt", dd(kPhrase, pb64({0xff, 0xff})), "INVALID_ARGUMENT");
    std::string unpadded = kDerivedCt;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    same(d->ok("derived_decrypt", dd(kPhrase, derived_pb(unpadded))).at("plaintext_b64"), b64("towns derived scheme"),
          d->name() + ": unpadded base64");
    // docs/compat.md: sdk-crypto's Node build reads URL-safe base64 and, below
    // 16 bytes, a short tag; this library refuses both.
    std::string url_safe_ct = kDerivedCt;
    for (auto& c : url_safe_ct) c = c == '+' ? '-' : c == '/' ? '_' : c;
    auto url_safe = derived_pb(url_safe_ct);
    auto eight = d->ok("derived_encrypt", {{"key_phrase", kPhrase}, {"plaintext_b64", b64("8 bytes!")}});
    auto eight_ct = bytes(event_of(eight.at("encrypted_data_pb")).ciphertext);
    expect(eight_ct.size() >= 12, "a ciphertext of at least 12 bytes", eight);
    auto short_tag = derived_pb(pb64(std::vector<uint8_t>(eight_ct.begin(), eight_ct.begin() + 12)));
    auto r = d->call("derived_decrypt", dd(kPhrase, url_safe));
    if (!is_error(r, "INVALID_ARGUMENT")) {
      ctx.client_behaviour(*d, r.value("ok", false) && r.value("plaintext_b64", "") == b64("towns derived scheme"),
                           "sdk-crypto reads URL-safe base64 (docs/compat.md)", "INVALID_ARGUMENT", r);
    }
    r = d->call("derived_decrypt", dd(kPhrase, short_tag));
    if (!is_error(r, "DECRYPTION_FAILED")) {
      ctx.client_behaviour(*d, r.value("ok", false) && r.value("plaintext_b64", "") == b64("8 bytes!"),
                           "sdk-crypto reads a 4-byte tag (docs/compat.md)", "DECRYPTION_FAILED", r);
    }
  }
}

// Media known answer: 'abcdefghij' in chunks of 20 under key 00..1f, IVs a0.., a1.., a2..
std::string media_key() {
  std::vector<uint8_t> k(32);
  for (size_t i = 0; i < 32; ++i) k[i] = static_cast<uint8_t>(i);
  return crypto::hex_encode(k);
}
const std::vector<std::string> kMediaIvs = {repeat("a0", 12), repeat("a1", 12), repeat("a2", 12)};
const std::vector<std::string> kMediaCts = {"44d30187aa898e9322150c729a462f314892420b", "c0a69c365ae8fa275aa34f30adef10d606a4ed92",
                                            "3ce43c3a62517b01e22b83edb6aacb4457b7"};
std::string hex_b64(const std::string& h) { return pb64(crypto::hex_decode(h)); }
std::vector<uint8_t> sub(const std::vector<uint8_t>& v, size_t from, size_t to) {
  to = std::min(to, v.size());
  from = std::min(from, to);
  return std::vector<uint8_t>(v.begin() + static_cast<ptrdiff_t>(from), v.begin() + static_cast<ptrdiff_t>(to));
}

void media_chunks(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  const auto key = media_key();
  json known = json::array();
  for (size_t i = 0; i < 3; ++i) known.push_back({{"ct_b64", hex_b64(kMediaCts[i])}, {"iv_hex", kMediaIvs[i]}});
  for (Driver* d : {&a, &b}) {
    auto e = d->ok("media_encrypt", {{"data_b64", b64("abcdefghij")}, {"chunk_size", 20}, {"key_hex", key}, {"ivs_hex", kMediaIvs}});
    same(e.at("secret_key_hex"), key, d->name() + ": the key given");
    same(e.at("chunks"), known, d->name() + ": the SDK's chunks");
  }
  // Random keys and IVs, each side reading the other's, at two chunk sizes
  // (the second the SDK uploader's 1,200,000).
  struct Leg {
    Driver* from;
    Driver* to;
    size_t size;
    size_t chunk;
  };
  for (const auto& l : {Leg{&a, &b, 50, 20}, Leg{&b, &a, 50, 20}, Leg{&a, &b, 1300000, 1200000}, Leg{&b, &a, 1300000, 1200000}}) {
    std::vector<uint8_t> raw(l.size);
    for (size_t i = 0; i < l.size; ++i) raw[i] = static_cast<uint8_t>((i * 7) % 256);
    auto data = pb64(raw);
    auto e = l.from->ok("media_encrypt", {{"data_b64", data}, {"chunk_size", l.chunk}});
    size_t pieces = (l.size + (l.chunk - 16) - 1) / (l.chunk - 16);
    same(e.at("chunks").size(), pieces, l.from->name() + ": chunk count");
    expect(e.at("secret_key_hex").get<std::string>().size() == 64, "a 32-byte key", e.at("secret_key_hex"));
    std::set<std::string> ivs;
    for (const auto& c : e.at("chunks")) {
      expect(bytes(c.at("ct_b64")).size() <= l.chunk && c.at("iv_hex").get<std::string>().size() == 24,
             "chunks within chunk_size, 12-byte IVs", c.at("iv_hex"));
      ivs.insert(c.at("iv_hex").get<std::string>());
    }
    expect(ivs.size() == pieces, "a fresh IV per chunk");
    same(l.to->ok("media_decrypt", {{"secret_key_hex", e.at("secret_key_hex")}, {"chunks", e.at("chunks")}}).at("data_b64"), data,
          l.to->name() + " reads " + l.from->name() + "'s chunks");
  }
  // The whole-file form: one chunk of A's (the whole file under one IV), cut
  // into pieces that carry no IV.
  std::vector<uint8_t> raw(100);
  for (size_t i = 0; i < 100; ++i) raw[i] = static_cast<uint8_t>(255 - i);
  auto data = pb64(raw);
  auto whole = a.ok("media_encrypt", {{"data_b64", data}, {"chunk_size", 1000}, {"key_hex", key}, {"ivs_hex", json::array({kMediaIvs[0]})}});
  auto sealed = bytes(whole.at("chunks").at(0).at("ct_b64"));
  json cut = json::array();
  for (size_t i : {0, 30, 60, 90}) cut.push_back({{"ct_b64", pb64(sub(sealed, i, i + 30))}});
  same(b.ok("media_decrypt", {{"secret_key_hex", key}, {"iv_hex", kMediaIvs[0]}, {"chunks", cut}}).at("data_b64"), data,
        "B reads the whole-file form");
  b.err("media_decrypt", {{"secret_key_hex", key}, {"iv_hex", kMediaIvs[1]}, {"chunks", cut}}, "DECRYPTION_FAILED");
  b.err("media_decrypt", {{"secret_key_hex", key}, {"iv_hex", kMediaIvs[0]}, {"chunks", {cut[1], cut[0], cut[2], cut[3]}}},
        "DECRYPTION_FAILED");
  for (Driver* d : {&a, &b}) {
    auto enc = [&](const std::string& data_b64, int chunk) { return json{{"data_b64", data_b64}, {"chunk_size", chunk}}; };
    d->err("media_encrypt", enc("", 20), "EMPTY_PAYLOAD");
    d->err("media_encrypt", enc(b64("abc"), 16), "INVALID_ARGUMENT");
    d->err("media_encrypt", enc(b64("abc"), 10), "INVALID_ARGUMENT");
    d->err("media_encrypt", enc(b64("abc"), 0), "INVALID_ARGUMENT");
    auto with_key = enc(b64("abc"), 20);
    with_key["key_hex"] = key;
    d->err("media_encrypt", with_key, "INVALID_ARGUMENT");
    auto two_ivs = enc(b64("abcdefghij"), 20);
    two_ivs["key_hex"] = key;
    two_ivs["ivs_hex"] = {kMediaIvs[0], kMediaIvs[1]};
    d->err("media_encrypt", two_ivs, "INVALID_ARGUMENT");
    auto repeated = two_ivs;
    repeated["ivs_hex"] = {kMediaIvs[0], kMediaIvs[1], kMediaIvs[0]};
    d->err("media_encrypt", repeated, "INVALID_ARGUMENT");
    auto short_key = two_ivs;
    short_key["key_hex"] = key.substr(2);
    short_key["ivs_hex"] = kMediaIvs;
    d->err("media_encrypt", short_key, "INVALID_ARGUMENT");
    auto dec = [&](const std::string& k, json chunks) { return json{{"secret_key_hex", k}, {"chunks", std::move(chunks)}}; };
    same(d->ok("media_decrypt", dec(key, known)).at("data_b64"), b64("abcdefghij"), d->name() + ": the known chunks");
    d->err("media_decrypt", dec(key, json::array()), "INVALID_ARGUMENT");
    d->err("media_decrypt", dec(key.substr(2), known), "INVALID_ARGUMENT");
    d->err("media_decrypt", dec(repeat("11", 32), known), "DECRYPTION_FAILED");
    auto k0 = known[0];
    k0["iv_hex"] = kMediaIvs[1];
    d->err("media_decrypt", dec(key, {k0, known[1], known[2]}), "DECRYPTION_FAILED");
    auto k1 = known[1];
    k1["iv_hex"] = repeat("a1", 8);
    d->err("media_decrypt", dec(key, {known[0], k1, known[2]}), "DECRYPTION_FAILED");
    auto k2 = known[2];
    k2["ct_b64"] = hex_b64(kMediaCts[2].substr(0, 30));
    d->err("media_decrypt", dec(key, {known[0], known[1], k2}), "DECRYPTION_FAILED");
    // Nothing binds a chunk to its index: swapped with their IVs, chunks decrypt reordered.
    same(d->ok("media_decrypt", dec(key, {known[1], known[0], known[2]})).at("data_b64"), b64("efghabcdij"),
          d->name() + ": reordered");
    // docs/compat.md: sdk-crypto's Node build reads a short tag from a chunk under 16 bytes.
    auto eight = d->ok("media_encrypt", {{"data_b64", b64("8 bytes!")}, {"chunk_size", 100}, {"key_hex", key}, {"ivs_hex", json::array({kMediaIvs[2]})}});
    json short_tag = json::array({json{{"ct_b64", pb64(sub(bytes(eight.at("chunks").at(0).at("ct_b64")), 0, 12))}, {"iv_hex", kMediaIvs[2]}}});
    auto r = d->call("media_decrypt", dec(key, short_tag));
    if (!is_error(r, "DECRYPTION_FAILED")) {
      ctx.client_behaviour(*d, r.value("ok", false) && r.value("data_b64", "") == b64("8 bytes!"),
                           "sdk-crypto reads a 4-byte tag (docs/compat.md)", "DECRYPTION_FAILED", r);
    }
  }
}

void roundtrip(Ctx& ctx, const std::string& alg) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  init(a, kUserA);
  auto bd = device(init(b, kUserB));
  auto e1 = encrypt(a, alg, "first message");
  expect(e1.at("created_session") == true, "the first encrypt creates the session", e1);
  auto e2 = encrypt(a, alg, "second message ✓");
  expect(e2.at("created_session") == false && e2.at("session_id") == e1.at("session_id"), "the second reuses it", e2);
  b.err("decrypt", {{"stream_id", kStream}, {"encrypted_data_pb", e1.at("encrypted_data_pb")}}, "SESSION_NOT_FOUND");
  auto r = share_to(a, b, bd, alg, json::array({e1.at("session_id")}));
  same(r.at("imported"), json::array({e1.at("session_id")}), "imported ids");
  same(decrypt_text(b, e1), "first message", "B decrypts 1");
  same(decrypt_text(b, e2), "second message ✓", "B decrypts 2");
  same(decrypt_text(a, e2), "second message ✓", "A decrypts its own");
  auto again = a.ok("share", {{"stream_id", kStream}, {"algorithm", alg}, {"session_ids", json::array({e1.at("session_id")})}, {"devices", json::array({bd})}});
  same(b.ok("receive_sessions", {{"group_encryption_sessions_pb", again.at("group_encryption_sessions_pb")}}).at("imported"),
        json::array(), "nothing new the second time");
  auto pb = event_of(e1.at("encrypted_data_pb"));
  same(pb.algorithm, alg, "algorithm field");
  same(static_cast<int>(pb.version), 1, "version 1");
  // The stream is part of the key's identity. (The canonical client caches
  // sessions by id alone and decrypts the event in another stream too.)
  auto other = b.call("decrypt", {{"stream_id", kOtherStream}, {"encrypted_data_pb", e1.at("encrypted_data_pb")}});
  if (!is_error(other, "SESSION_NOT_FOUND")) {
    ctx.client_behaviour(b, other.value("ok", false) && other.value("plaintext_b64", "") == b64("first message"),
                         "decrypts an event under another stream id: the client caches sessions by id (docs/compat.md)",
                         "SESSION_NOT_FOUND", other);
  }
  auto& fresh = ctx.c();
  init(fresh, kUserC);
  auto exported = a.ok("export_sessions", {{"stream_id", kStream}}).at("sessions");
  auto imported = fresh.ok("import_sessions", {{"sessions", exported}});
  // The fresh device holds the stream's sessions, but not under another stream
  // (asked first: the client, once it has used a session, finds it by id
  // alone); both checked, so that a run where only C is the peer checks what works.
  same(imported.at("imported").size(), exported.size(), "every exported session imported");
  fresh.err("decrypt", {{"stream_id", kOtherStream}, {"encrypted_data_pb", e1.at("encrypted_data_pb")}}, "SESSION_NOT_FOUND");
  same(decrypt_text(fresh, e1), "first message", "C decrypts 1 from the export");
}

void version0_payloads(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  init(a, kUserA);
  auto bd = device(init(b, kUserB));
  for (const auto& alg : {kMegolm, kHybrid}) {
    auto e = encrypt(a, alg, "version 0 — text ünïcode", {{"version", 0}});
    same(static_cast<int>(event_of(e.at("encrypted_data_pb")).version), 0, "version 0");
    share_to(a, b, bd, alg, json::array({e.at("session_id")}));
    same(decrypt_text(b, e), "version 0 — text ünïcode", alg + " v0");
  }
}

}  // namespace

void add_basic_scenarios(std::vector<Scenario>& out) {
  out.push_back({"derived_scheme", "protocol.md 12.3, 12.4", "AB", derived_scheme});
  out.push_back({"media_chunks", "protocol.md 13.1, 13.3, 13.4", "AB", media_chunks});
  out.push_back({"megolm_encrypt_share_decrypt", "protocol.md 5.3, 5.5, 8.4", "ABC", [](Ctx& c) { roundtrip(c, kMegolm); }});
  out.push_back({"grpaes_encrypt_share_decrypt", "protocol.md 6.5, 6.6, 8.4", "ABC", [](Ctx& c) { roundtrip(c, kHybrid); }});
  out.push_back({"version0_payloads", "protocol.md 5.4, 6.5", "AB", version0_payloads});
}

}  // namespace towns::conformance
