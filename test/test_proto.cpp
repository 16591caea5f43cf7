// Our protobuf encoding against the canonical client's (test/data/proto_golden.txt,
// produced by test/interop/proto_golden.ts): same fields, same bytes, both ways.
#include "helpers.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <map>

#include "towns/proto/payloads.pb.h"
#include "towns/proto/protocol.pb.h"
#include "river_serialize.h"

namespace {

std::map<std::string, std::vector<uint8_t>> golden() {
  std::map<std::string, std::vector<uint8_t>> out;
  for (const auto& line : test::read_lines("proto_golden.txt")) {
    auto f = test::split(line);
    REQUIRE(!f.empty());
    out[f[0]] = f.size() > 1 ? towns::crypto::hex_decode(f[1]) : std::vector<uint8_t>{};
  }
  return out;
}

std::string seq(int n, int start) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((start + i) & 0xff);
  return s;
}

std::vector<uint8_t> encode(const google::protobuf::MessageLite& m) {
  auto out = towns::river_proto::serialize(m);
  return {out.begin(), out.end()};
}

template <typename M>
M decode(const std::vector<uint8_t>& b) {
  M m;
  REQUIRE(m.ParseFromArray(b.data(), static_cast<int>(b.size())));
  return m;
}

river::MemberPayload::KeySolicitation solicitation() {
  river::MemberPayload::KeySolicitation s;
  s.set_device_key("requesterDeviceKey");
  s.set_fallback_key("requesterFallbackKey");
  s.set_is_new_device(true);
  s.add_session_ids("sessionA");
  s.add_session_ids("sessionB");
  return s;
}

river::MemberPayload::KeyFulfillment fulfillment() {
  river::MemberPayload::KeyFulfillment f;
  f.set_user_address(seq(20, 0x30));
  f.set_device_key("requesterDeviceKey");
  f.add_session_ids("sessionA");
  return f;
}

river::UserInboxPayload::GroupEncryptionSessions sessions() {
  river::UserInboxPayload::GroupEncryptionSessions s;
  s.set_stream_id(seq(32, 0x20));
  s.set_sender_key("senderDeviceKey");
  s.add_session_ids("s1");
  s.add_session_ids("s2");
  (*s.mutable_ciphertexts())["deviceA"] = "ciphertextA";
  (*s.mutable_ciphertexts())["deviceB"] = "ciphertextB";
  s.set_algorithm("grpaes");
  return s;
}

}  // namespace

TEST_CASE("EncryptedData encodes as the canonical client does") {
  auto g = golden();
  river::EncryptedData megolm;
  megolm.set_ciphertext("AwgAEhCiphertext");
  megolm.set_algorithm("r.group-encryption.v1.aes-sha2");
  megolm.set_sender_key("senderKeyCurve25519");
  megolm.set_session_id("sessionIdBase64");
  megolm.set_version(river::ENCRYPTED_DATA_VERSION_1);
  CHECK(encode(megolm) == g.at("EncryptedData.megolm"));
  auto m2 = decode<river::EncryptedData>(g.at("EncryptedData.megolm"));
  CHECK(m2.ciphertext() == "AwgAEhCiphertext");
  CHECK(m2.version() == river::ENCRYPTED_DATA_VERSION_1);
  CHECK_FALSE(m2.has_checksum());

  river::EncryptedData hybrid;
  hybrid.set_algorithm("grpaes");
  hybrid.set_sender_key("senderKeyCurve25519");
  hybrid.set_ciphertext_bytes(seq(20, 1));
  hybrid.set_iv_bytes(seq(12, 100));
  hybrid.set_session_id_bytes(seq(32, 200));
  hybrid.set_version(river::ENCRYPTED_DATA_VERSION_1);
  CHECK(encode(hybrid) == g.at("EncryptedData.hybrid"));
  auto h2 = decode<river::EncryptedData>(g.at("EncryptedData.hybrid"));
  CHECK(h2.iv_bytes() == seq(12, 100));
  CHECK(h2.session_id_bytes() == seq(32, 200));

  river::EncryptedData all;
  all.set_ciphertext("c");
  all.set_algorithm("a");
  all.set_sender_key("s");
  all.set_session_id("i");
  all.set_checksum("sum");
  all.set_ref_event_id("ref");
  all.set_ciphertext_bytes(seq(3, 7));
  all.set_iv_bytes(seq(2, 9));
  all.set_session_id_bytes(seq(1, 11));
  all.set_version(river::ENCRYPTED_DATA_VERSION_0);
  all.set_device_key("dev");
  CHECK(encode(all) == g.at("EncryptedData.all"));
  auto a2 = decode<river::EncryptedData>(g.at("EncryptedData.all"));
  CHECK(a2.checksum() == "sum");
  CHECK(a2.ref_event_id() == "ref");
  CHECK(a2.device_key() == "dev");

  // proto3 optional fields set to "" are still on the wire.
  river::EncryptedData empties;
  empties.set_ciphertext("c");
  empties.set_checksum("");
  empties.set_ref_event_id("");
  empties.set_device_key("");
  CHECK(encode(empties) == g.at("EncryptedData.v0_empty_optionals"));
  auto e2 = decode<river::EncryptedData>(g.at("EncryptedData.v0_empty_optionals"));
  CHECK(e2.has_checksum());
  CHECK(e2.has_device_key());
}

TEST_CASE("member payloads encode as the canonical client does") {
  auto g = golden();
  CHECK(encode(solicitation()) == g.at("KeySolicitation"));
  river::MemberPayload mp;
  *mp.mutable_key_solicitation() = solicitation();
  CHECK(encode(mp) == g.at("MemberPayload.key_solicitation"));
  auto s2 = decode<river::MemberPayload::KeySolicitation>(g.at("KeySolicitation"));
  CHECK(s2.is_new_device());
  CHECK(s2.session_ids_size() == 2);
  CHECK(s2.session_ids(1) == "sessionB");

  CHECK(encode(fulfillment()) == g.at("KeyFulfillment"));
  river::MemberPayload mf;
  *mf.mutable_key_fulfillment() = fulfillment();
  CHECK(encode(mf) == g.at("MemberPayload.key_fulfillment"));
  auto f2 = decode<river::MemberPayload>(g.at("MemberPayload.key_fulfillment"));
  REQUIRE(f2.has_key_fulfillment());
  CHECK(f2.key_fulfillment().user_address() == seq(20, 0x30));
}

TEST_CASE("user inbox and metadata payloads encode as the canonical client does") {
  auto g = golden();
  CHECK(encode(sessions()) == g.at("GroupEncryptionSessions"));
  river::UserInboxPayload inbox;
  *inbox.mutable_group_encryption_sessions() = sessions();
  CHECK(encode(inbox) == g.at("UserInboxPayload.group_encryption_sessions"));
  auto s2 = decode<river::UserInboxPayload::GroupEncryptionSessions>(g.at("GroupEncryptionSessions"));
  CHECK(s2.ciphertexts().at("deviceB") == "ciphertextB");
  CHECK(s2.algorithm() == "grpaes");

  river::UserMetadataPayload::EncryptionDevice dev;
  dev.set_device_key("deviceKey");
  dev.set_fallback_key("fallbackKey");
  CHECK(encode(dev) == g.at("EncryptionDevice"));
}

TEST_CASE("payloads.proto messages encode as the canonical client does") {
  auto g = golden();
  river::SessionKeys keys;
  for (const char* k : {"key1", "key2", "key3"}) keys.add_keys(k);
  CHECK(encode(keys) == g.at("SessionKeys"));
  CHECK(encode(river::SessionKeys()) == g.at("SessionKeys.empty"));

  river::HybridGroupSessionKey hk;
  hk.set_session_id(seq(32, 1));
  hk.set_stream_id(seq(32, 0x20));
  hk.set_key(seq(32, 0x80));
  hk.set_miniblock_num(1234567890123LL);
  hk.set_miniblock_hash(seq(32, 0x40));
  CHECK(encode(hk) == g.at("HybridGroupSessionKey"));
  CHECK(decode<river::HybridGroupSessionKey>(g.at("HybridGroupSessionKey")).miniblock_num() == 1234567890123LL);
  river::HybridGroupSessionKey neg;
  neg.set_miniblock_num(-1);
  CHECK(encode(neg) == g.at("HybridGroupSessionKey.negative"));

  river::ExportedDevice d;
  d.set_picklekey("DEFAULT_KEY");
  d.set_pickledaccount("pickledAccountBase64");
  auto* o = d.add_outboundsessions();
  o->set_session_id("out1");
  o->set_stream_id("stream1");
  o->set_session("outPickle");
  auto* i1 = d.add_inboundsessions();
  i1->set_session_id("in1");
  i1->set_stream_id("stream1");
  i1->set_session("inPickle1");
  auto* i2 = d.add_inboundsessions();
  i2->set_session_id("in2");
  i2->set_stream_id("stream2");
  i2->set_session("inPickle2");
  auto* h = d.add_hybridgroupsessions();
  h->set_session_id("hy1");
  h->set_stream_id("stream1");
  h->set_session_key(seq(5, 3));
  h->set_miniblock_num(42);
  CHECK(encode(d) == g.at("ExportedDevice"));
  auto d2 = decode<river::ExportedDevice>(g.at("ExportedDevice"));
  CHECK(d2.inboundsessions_size() == 2);
  CHECK(d2.hybridgroupsessions(0).miniblock_num() == 42);
}

TEST_CASE("SessionKeys protobuf JSON is what the canonical client writes") {
  auto g = golden();
  auto as_text = [](const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); };
  river::SessionKeys keys;
  keys.add_keys("key1");
  keys.add_keys("key2");
  std::string json;
  REQUIRE(google::protobuf::util::MessageToJsonString(keys, &json).ok());
  CHECK(json == as_text(g.at("SessionKeys.json")));
  json.clear();
  REQUIRE(google::protobuf::util::MessageToJsonString(river::SessionKeys(), &json).ok());
  CHECK(json == as_text(g.at("SessionKeys.json.empty")));
}
