// The scenarios about moving keys: solicitation and fulfillment, olm to-device
// payloads, session export and import, and an exported device that continues
// elsewhere.
#include <set>

#include "conformance.h"
#include "towns/crypto/encoding.h"
#include "towns/protocol/messages.h"

namespace towns::conformance {

using namespace h;

namespace {

KeySolicitation solicitation_of(const json& b64_pb) {
  expect(b64_pb.is_string(), "a solicitation", b64_pb);
  auto b = bytes(b64_pb);
  return KeySolicitation::decode(b);
}
KeyFulfillment fulfillment_of(const json& b64_pb) {
  expect(b64_pb.is_string(), "a fulfillment", b64_pb);
  auto b = bytes(b64_pb);
  return KeyFulfillment::decode(b);
}
GroupEncryptionSessions share_of(const json& b64_pb) {
  auto b = bytes(b64_pb);
  return GroupEncryptionSessions::decode(b);
}
json answer(Driver& d, const json& solicitation_pb, const std::string& from, json entitled = true) {
  return d.ok("answer_solicitation", {{"stream_id", kStream},
                                      {"from_user_id", from},
                                      {"key_solicitation_pb", solicitation_pb},
                                      {"requester_entitled", entitled}});
}
json solicit(Driver& d, json ids) { return d.ok("solicit", {{"stream_id", kStream}, {"missing_session_ids", std::move(ids)}}); }

// A and B started, and A's first megolm and grpaes events, which B does not
// hold yet: the start of the solicitation scenarios.
struct History {
  json bd, m, hy;  // B's device, A's megolm event, A's grpaes event
};
History start_with_history(Driver& a, Driver& b, const char* megolm_text, const char* grpaes_text) {
  init(a, kUserA);
  History h;
  h.bd = device(init(b, kUserB));
  h.m = encrypt(a, kMegolm, megolm_text);
  h.hy = encrypt(a, kHybrid, grpaes_text);
  return h;
}

void solicitation_new_device(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  auto [bd, m, hy] = start_with_history(a, b, "megolm history", "grpaes history");
  b.err("decrypt", {{"stream_id", kStream}, {"encrypted_data_pb", m.at("encrypted_data_pb")}}, "SESSION_NOT_FOUND");
  b.err("decrypt", {{"stream_id", kStream}, {"encrypted_data_pb", hy.at("encrypted_data_pb")}}, "SESSION_NOT_FOUND");
  json missing = json::array({hy.at("session_id"), m.at("session_id")});
  auto sol = solicit(b, missing);
  auto s = solicitation_of(sol.at("key_solicitation_pb"));
  same(s.device_key, bd.at("device_key"), "device key");
  same(s.fallback_key, bd.at("fallback_key"), "fallback key");
  expect(s.is_new_device, "is_new_device");
  same(s.session_ids, sorted(missing), "sorted ids");
  auto ans = answer(a, sol.at("key_solicitation_pb"), kUserB);
  auto f = fulfillment_of(ans.at("key_fulfillment_pb"));
  same(crypto::hex_encode(f.user_address), kUserB, "user address");
  same(f.device_key, bd.at("device_key"), "fulfilled device");
  same(f.session_ids, sorted(missing), "fulfilled ids");
  same(ans.at("group_encryption_sessions_pb").size(), 2, "one share per algorithm");
  json algs = json::array();
  for (const auto& x : ans.at("group_encryption_sessions_pb")) algs.push_back(share_of(x).algorithm);
  // Grouped by algorithm in the order each first appears among the sorted ids (the SDK's order).
  json first_seen = json::array();
  for (const auto& id : sorted(missing)) {
    auto alg = id == m.at("session_id") ? kMegolm : kHybrid;
    if (std::find(first_seen.begin(), first_seen.end(), alg) == first_seen.end()) first_seen.push_back(alg);
  }
  same(algs, first_seen, "algorithms in order of first appearance");
  for (const auto& share : ans.at("group_encryption_sessions_pb")) b.ok("receive_sessions", {{"group_encryption_sessions_pb", share}});
  same(decrypt_text(b, m), "megolm history", "megolm after fulfillment");
  same(decrypt_text(b, hy), "grpaes history", "grpaes after fulfillment");
  auto again = solicit(b, json::array({"another"}));
  expect(!solicitation_of(again.at("key_solicitation_pb")).is_new_device, "no longer new");
}

void solicitation_partial(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  auto [bd, m, hy] = start_with_history(a, b, "shared one", "missing one");
  share_to(a, b, bd, kMegolm, json::array({m.at("session_id")}));
  auto sol = solicit(b, json::array({hy.at("session_id"), hy.at("session_id")}));
  auto s = solicitation_of(sol.at("key_solicitation_pb"));
  expect(!s.is_new_device, "not a new device");
  same(s.session_ids, json::array({hy.at("session_id")}), "only the missing id, once");
  auto ans = answer(a, sol.at("key_solicitation_pb"), kUserB);
  same(fulfillment_of(ans.at("key_fulfillment_pb")).session_ids, json::array({hy.at("session_id")}), "fulfilled");
  same(ans.at("group_encryption_sessions_pb").size(), 1, "one share");
  same(b.ok("receive_sessions", {{"group_encryption_sessions_pb", ans.at("group_encryption_sessions_pb").at(0)}}).at("imported"),
       json::array({hy.at("session_id")}), "imported");
  same(decrypt_text(b, hy), "missing one", "decrypts");
  // Asking for ids nobody holds: no answer.
  auto unknown = solicit(b, json::array({"nobody-has-this"}));
  auto none = answer(a, unknown.at("key_solicitation_pb"), kUserB);
  same(none.at("key_fulfillment_pb"), nullptr, "no fulfillment");
  same(none.at("group_encryption_sessions_pb"), json::array(), "no shares");
}

void solicitation_not_entitled_and_own_device(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  init(a, kUserA);
  init(b, kUserB);
  auto m = encrypt(a, kMegolm, "members only");
  auto sol = solicit(b, json::array({m.at("session_id")}));
  auto ans = answer(a, sol.at("key_solicitation_pb"), kUserB, false);
  same(ans.at("key_fulfillment_pb"), nullptr, "no fulfillment");
  same(ans.at("group_encryption_sessions_pb"), json::array(), "no shares");
  auto own = solicit(a, json::array({"x"}));
  auto self = answer(a, own.at("key_solicitation_pb"), kUserA);
  same(self.at("key_fulfillment_pb"), nullptr, "own device ignored");
  KeySolicitation empty;
  empty.device_key = "someone";
  empty.fallback_key = "x";
  empty.is_new_device = true;
  same(answer(a, pb64(empty.encode()), kUserB).at("key_fulfillment_pb"), nullptr, "no session ids: ignored");
}

void solicitation_duplicate_pending(Ctx& ctx) {
  auto& b = ctx.b();
  init(b, kUserB);
  auto newcomer = solicit(b, json::array({"s1"}));
  expect(solicitation_of(newcomer.at("key_solicitation_pb")).is_new_device, "new device");
  encrypt(b, kMegolm, "now holds a session of the stream");
  auto first = solicit(b, json::array({"s2", "s1"}));
  expect(!solicitation_of(first.at("key_solicitation_pb")).is_new_device, "not new");
  same(b.ok("solicit", {{"stream_id", kStream}, {"missing_session_ids", {"s1", "s2"}}, {"pending_pb", first.at("key_solicitation_pb")}})
           .at("key_solicitation_pb"),
       nullptr, "same ids pending");
  KeySolicitation nd;
  nd.device_key = "k";
  nd.fallback_key = "f";
  nd.is_new_device = true;
  nd.session_ids = {"s9"};
  same(b.ok("solicit", {{"stream_id", kStream}, {"missing_session_ids", json::array({"s3"})}, {"pending_pb", pb64(nd.encode())}})
           .at("key_solicitation_pb"),
       nullptr, "new-device one pending");
  auto other =
      b.ok("solicit", {{"stream_id", kStream}, {"missing_session_ids", json::array({"s3"})}, {"pending_pb", first.at("key_solicitation_pb")}});
  same(solicitation_of(other.at("key_solicitation_pb")).session_ids, json::array({"s3"}), "different ids go out");
  same(solicit(b, json::array()).at("key_solicitation_pb"), nullptr, "never zero ids");
  json many = json::array();
  for (int i = 149; i >= 0; --i) {
    char id[16];
    std::snprintf(id, sizeof id, "id-%03d", i);
    many.push_back(id);
  }
  auto capped = solicit(b, many);
  auto ids = solicitation_of(capped.at("key_solicitation_pb")).session_ids;
  same(ids.size(), 100, "at most 100 ids");
  same(ids.at(0), "id-000", "the first 100 in sorted order");
}

void olm_to_device_payloads(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  auto ad = device(init(a, kUserA));
  auto bd = device(init(b, kUserB));
  const std::string payload = "{\"hello\":\"bob ✓\"}";
  auto out = a.ok("encrypt_to_devices", {{"payload", payload}, {"devices", {bd, ad}}});
  json keys = json::array();
  for (auto& [k, v] : out.at("ciphertexts").items()) keys.push_back(k);
  same(keys, json::array({bd.at("device_key")}), "own device skipped");
  const auto& ct = out.at("ciphertexts").at(bd.at("device_key").get<std::string>());
  same(b.ok("decrypt_from_device", {{"ciphertext", ct}, {"sender_key", ad.at("device_key")}}).at("payload"), payload, "payload");
  b.err("decrypt_from_device", {{"ciphertext", ct}, {"sender_key", bd.at("device_key")}}, "DECRYPTION_FAILED");
  b.err("decrypt_from_device", {{"ciphertext", "AwoAnot-a-message"}, {"sender_key", ad.at("device_key")}}, "DECRYPTION_FAILED");
  a.err("encrypt_to_devices", {{"payload", std::string(49153, 'x')}, {"devices", json::array({bd})}}, "PAYLOAD_TOO_LARGE");
}

json ids_of(const json& sessions) {
  json out = json::array();
  for (const auto& s : sessions) out.push_back(s.at("sessionId"));
  return out;
}

void session_export_import(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  init(a, kUserA);
  init(b, kUserB);
  auto m = encrypt(a, kMegolm, "exported megolm");
  auto hy = encrypt(a, kHybrid, "exported grpaes");
  encrypt(a, kMegolm, "other stream", json::object(), kOtherStream);
  auto all = a.ok("export_sessions").at("sessions");
  same(all.size(), 3, "every session");
  auto exp = a.ok("export_sessions", {{"stream_id", kStream}}).at("sessions");
  same(sorted(ids_of(exp)), sorted({m.at("session_id"), hy.at("session_id")}), "the stream's sessions");
  auto one = a.ok("export_sessions", {{"stream_id", kStream}, {"session_ids", json::array({hy.at("session_id")})}}).at("sessions");
  same(one.size(), 1, "by id");
  same(one.at(0).at("algorithm"), kHybrid, "algorithm");
  json forged = exp;
  for (auto& s : forged) s["sessionId"] = s.at("sessionId") == m.at("session_id") ? hy.at("session_id") : m.at("session_id");
  auto bad = b.ok("import_sessions", {{"sessions", forged}});
  same(bad.at("imported"), json::array(), "mismatched ids refused");
  same(bad.at("failed").size(), 2, "both reported");
  same(b.ok("session_ids", {{"stream_id", kStream}}).at("session_ids"), json::array(), "nothing stored");
  json hybrid_wrong = json::array();
  for (auto s : exp) {
    if (s.at("algorithm") != kHybrid) continue;
    s["streamId"] = kOtherStream;
    hybrid_wrong.push_back(s);
  }
  same(b.ok("import_sessions", {{"sessions", hybrid_wrong}}).at("imported"), json::array(), "a grpaes key names its stream");
  auto good = b.ok("import_sessions", {{"sessions", exp}});
  same(sorted(good.at("imported")), sorted({m.at("session_id"), hy.at("session_id")}), "imported");
  same(decrypt_text(b, m), "exported megolm", "megolm");
  same(decrypt_text(b, hy), "exported grpaes", "grpaes");
  same(b.ok("session_ids", {{"stream_id", kStream}}).at("session_ids"), sorted({m.at("session_id"), hy.at("session_id")}), "session ids");
}

void exported_device_continues(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  auto ad = device(init(a, kUserA));
  auto bd = device(init(b, kUserB));
  auto e1 = encrypt(a, kMegolm, "before export 1");
  auto e2 = encrypt(a, kMegolm, "before export 2");
  auto h1 = encrypt(a, kHybrid, "before export grpaes");
  share_to(a, b, bd, kMegolm, json::array({e1.at("session_id")}));
  auto exported = a.ok("export_device").at("exported_device_pb");
  auto& c = ctx.c();
  same(device(c.ok("init", {{"user_id", kUserA}, {"store", "memory"}, {"exported_device_pb", exported}})), ad, "same device keys");
  same(decrypt_text(c, e2), "before export 2", "old megolm");
  same(decrypt_text(c, h1), "before export grpaes", "old grpaes");
  auto e3 = encrypt(c, kMegolm, "after import");
  expect(e3.at("created_session") == false && e3.at("session_id") == e1.at("session_id"), "continues the outbound session", e3);
  same(decrypt_text(b, e3), "after import", "B reads the continued session");
  same(decrypt_text(a, e3), "after import", "and so does the original");
  auto again = c.ok("export_device").at("exported_device_pb");
  auto& d = ctx.a();
  same(device(d.ok("init", {{"user_id", kUserA}, {"store", "memory"}, {"exported_device_pb", again}})), ad, "and back");
  same(decrypt_text(d, e3), "after import", "round trip");
  d.err("init", {{"user_id", kUserA}, {"store", "memory"}, {"exported_device_pb", "not base64!"}}, "INVALID_ARGUMENT");
  same(device(d.ok("device")), ad, "a failed init keeps the device");
}

}  // namespace

void add_key_scenarios(std::vector<Scenario>& out) {
  out.push_back({"solicitation_new_device", "protocol.md 9.2, 9.5, 9.6, 9.7", "AB", solicitation_new_device});
  out.push_back({"solicitation_partial", "protocol.md 9.2, 9.5", "AB", solicitation_partial});
  out.push_back({"solicitation_not_entitled_and_own_device", "protocol.md 9.5", "AB", solicitation_not_entitled_and_own_device});
  // Only B acts: the runs where the peer plays A are
  // reported as reference only.
  out.push_back({"solicitation_duplicate_pending", "protocol.md 9.2", "AB", solicitation_duplicate_pending});
  out.push_back({"olm_to_device_payloads", "protocol.md 7.2, 7.3", "AB", olm_to_device_payloads});
  out.push_back({"session_export_import", "protocol.md 5.6, 5.7, 6.7", "AB", session_export_import});
  // C takes A's exported device; a second A takes C's back.
  out.push_back({"exported_device_continues", "protocol.md 14.2, 14.3", "ABC", exported_device_continues});
}

}  // namespace towns::conformance
