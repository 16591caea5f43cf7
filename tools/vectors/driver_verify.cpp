// The vector corpus through a peer's conformance driver (driver_verify.h).
// Each vector becomes driver commands where the driver protocol can express it;
// the others are reported as not expressible, with the reason.
#include "driver_verify.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>
#include <nlohmann/json.hpp>

#include "exchange_diff.h"
#include "peer.h"
#include "report.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/messages.h"

namespace towns::vectors {

using json = nlohmann::json;
using crypto::Base64Padding;
using tools::Peer;
using tools::PeerError;

namespace {

struct NotExpressible {
  std::string why;
};
struct Mismatch {
  std::string why;
  json actual;
};
struct Refused {  // the driver answered ok: false
  std::string code;
  std::string message;
};

const std::string kUser = "0x" + std::string(40, 'a');
const std::string kMegolm = "r.group-encryption.v1.aes-sha2";

// The protocol.md section each group type checks.
const std::map<std::string, std::string> kSections = {
    {"megolmDecrypt", "5.5"}, {"megolmImport", "5.7"}, {"megolmEncrypt", "5.3, 5.4"}, {"hybridDecrypt", "6.6"},
    {"hybridSessionImport", "6.7"}, {"hybridEncrypt", "6.5"}, {"olmDecrypt", "7.3"}, {"receiveSessions", "8.4"},
    {"importDevice", "14.3"}, {"exportDevice", "14.2"}, {"derivedEncrypt", "12.3"}, {"derivedDecrypt", "12.4"},
    {"mediaEncrypt", "13.1"}, {"mediaDecrypt", "13.3"}, {"wholeFileDecrypt", "13.4"}, {"keyExchangeTrace", "8 to 10"},
};

// Why the others cannot go through a driver.
const std::map<std::string, std::string> kNotExpressible = {
    {"base64Decode", "the encodings have no driver command"},
    {"base64Encode", "the encodings have no driver command"},
    {"hexDecode", "the encodings have no driver command"},
    {"hexEncode", "the encodings have no driver command"},
    {"sessionKeysJson", "SessionKeys JSON has no driver command"},
    {"protobufMessage", "protobuf parsing has no driver command"},
    {"protobufNonCanonical", "protobuf parsing has no driver command"},
    {"protobufMalformed", "protobuf parsing has no driver command"},
    {"hybridSessionId", "the session id hash has no driver command"},
    {"aesGcm", "AES-GCM alone has no driver command"},
    {"deriveKeyAndIv", "the derived key and IV have no driver command"},
    {"megolmOutbound", "a driver draws its own random bytes"},
    {"megolmExport", "a driver exports at the first known index only"},
    {"olmAccount", "a driver draws its own random bytes"},
    {"deviceInit", "a driver draws its own random bytes"},
    {"olmEncrypt", "a driver draws its own random bytes"},
    {"olmAccountUnpickle", "a driver opens accounts only inside an exported device"},
    {"buildSessions", "a driver draws its own random bytes"},
    {"decideSolicitation", "solicit needs the held sessions, which a vector gives only as a count"},
    {"decideAnswer", "answer_solicitation needs the sessions' keys, which a vector gives only as ids"},
};

std::string b64(std::span<const uint8_t> b) { return crypto::base64_encode(b, Base64Padding::kPadded); }
std::string hex_to_b64(const std::string& h) { return b64(crypto::hex_decode(h)); }
std::string b64_to_hex(const std::string& s) { return crypto::hex_encode(crypto::base64_decode(s, Base64Padding::kOptional)); }

const json& param(const json& t, const json& g, const char* name) {
  if (t.contains(name)) return t.at(name);
  return g.at(name);
}
std::string sparam(const json& t, const json& g, const char* name) { return param(t, g, name).get<std::string>(); }

// The code a driver gives for a vector's code (docs/driver.md, "Errors").
std::string driver_code(const std::string& code) {
  if (code == "BAD_ENCODING") return "INVALID_ARGUMENT";
  if (code == "REPLAY") return "DECRYPTION_FAILED";
  if (code.rfind("STORE_", 0) == 0) return "STORE_ERROR";
  return code;
}

class Session {
 public:
  explicit Session(Peer& peer) : peer_(peer) {}
  // The reply of an ok command; Refused otherwise.
  json call(const std::string& cmd, json args = json::object()) {
    args["cmd"] = cmd;
    auto reply = peer_.request(std::move(args));
    if (!reply.value("ok", false)) {
      auto e = reply.value("error", json::object());
      throw Refused{e.value("code", std::string("?")), e.value("message", std::string())};
    }
    return reply;
  }
  json init(const std::string* exported_hex = nullptr, const std::string* pickle_key = nullptr) {
    json args = {{"user_id", kUser}, {"store", "memory"}};
    if (exported_hex) args["exported_device_pb"] = hex_to_b64(*exported_hex);
    if (pickle_key) args["pickle_key"] = *pickle_key;
    return call("init", args);
  }
  void import(const std::string& stream, const std::string& id, const std::string& key, const std::string& alg) {
    auto r = call("import_sessions", {{"sessions", {{{"streamId", stream}, {"sessionId", id}, {"sessionKey", key}, {"algorithm", alg}}}}});
    if (r.value("imported", json::array()) != json::array({id})) throw Refused{"IMPORT_FAILED", "the key is not imported"};
  }

 private:
  Peer& peer_;
};

void expect(bool ok, const std::string& why, json actual = nullptr) {
  if (!ok) throw Mismatch{why, std::move(actual)};
}

std::string pickle_key_of(const std::string& exported_hex) {
  return std::string(ExportedDevice::decode(crypto::hex_decode_secret(exported_hex).span()).pickle_key.view());
}

// Two ExportedDevice encodings with the same fields, each list taken as a set.
bool same_as_sets(const std::string& a_hex, const std::string& b_hex) {
  auto a = ExportedDevice::decode(crypto::hex_decode_secret(a_hex).span());
  auto b = ExportedDevice::decode(crypto::hex_decode_secret(b_hex).span());
  using Key = std::tuple<std::string, std::string, std::string, int64_t>;
  auto groups = [](const std::vector<ExportedDevice::GroupSession>& v) {
    std::set<Key> out;
    for (const auto& s : v) out.insert({s.session_id, s.stream_id, std::string(s.session.view()), 0});
    return out;
  };
  auto hybrids = [](const std::vector<ExportedDevice::HybridGroupSession>& v) {
    std::set<Key> out;
    for (const auto& s : v) out.insert({s.session_id, s.stream_id, crypto::hex_encode(s.session_key.span()), s.miniblock_num});
    return out;
  };
  return a.pickle_key == b.pickle_key && a.pickled_account == b.pickled_account &&
         a.outbound_sessions.size() == b.outbound_sessions.size() && a.inbound_sessions.size() == b.inbound_sessions.size() &&
         a.hybrid_group_sessions.size() == b.hybrid_group_sessions.size() &&
         groups(a.outbound_sessions) == groups(b.outbound_sessions) && groups(a.inbound_sessions) == groups(b.inbound_sessions) &&
         hybrids(a.hybrid_group_sessions) == hybrids(b.hybrid_group_sessions);
}

// Runs one vector through the driver. Returns normally when the steps succeed
// with the expected outputs; throws Refused, Mismatch, NotExpressible or PeerError.
void run(Session& s, const std::string& type, const json& g, const json& t) {
  if (auto it = kNotExpressible.find(type); it != kNotExpressible.end()) throw NotExpressible{it->second};
  if (type == "megolmDecrypt" || type == "hybridDecrypt") {
    s.init();
    auto stream = sparam(t, g, "streamId");
    s.import(stream, sparam(t, g, "sessionId"), sparam(t, g, "sessionKey"), type == "megolmDecrypt" ? kMegolm : "grpaes");
    for (const auto& first : t.value("decryptFirst", json::array())) {
      try {
        s.call("decrypt", {{"stream_id", stream}, {"encrypted_data_pb", hex_to_b64(first.get<std::string>())}});
      } catch (const Refused& r) {
        throw Mismatch{"an event of decryptFirst was refused: " + r.code, nullptr};
      }
    }
    auto r = s.call("decrypt", {{"stream_id", t.value("decryptStreamId", stream)},
                                {"encrypted_data_pb", hex_to_b64(t.at("encryptedData").get<std::string>())}});
    auto got = b64_to_hex(r.at("plaintext_b64").get<std::string>());
    expect(got == t.at("plaintext"), "plaintext differs", got);
  } else if (type == "megolmImport" || type == "hybridSessionImport") {
    s.init();
    auto stream = sparam(t, g, "streamId");
    auto id = sparam(t, g, "sessionId");
    s.import(stream, id, sparam(t, g, "sessionKey"), type == "megolmImport" ? kMegolm : "grpaes");
    if (type == "megolmImport") {
      auto r = s.call("export_sessions", {{"stream_id", stream}, {"session_ids", {id}}});
      const auto& sessions = r.at("sessions");
      expect(sessions.size() == 1, "export_sessions gives one session", sessions);
      auto raw = crypto::base64_decode(sessions[0].at("sessionKey").get<std::string>(), Base64Padding::kNone);
      expect(raw.size() >= 5 && raw[0] == 1, "the exported key is not libolm's export format", sessions);
      uint32_t index = (uint32_t{raw[1]} << 24) | (uint32_t{raw[2]} << 16) | (uint32_t{raw[3]} << 8) | raw[4];
      expect(index == t.at("firstKnownIndex").get<uint32_t>(), "first known index differs", index);
    }
  } else if (type == "olmDecrypt") {
    // The receiver as a device of its own: an ExportedDevice of its account.
    ExportedDevice e;
    e.pickle_key = crypto::SecretBytes(std::string_view(sparam(t, g, "receiverPickleKey")));
    e.pickled_account = crypto::SecretBytes(std::string_view(sparam(t, g, "receiverPickle")));
    auto exported = crypto::hex_encode(e.encode().span());
    json device;
    try {
      device = s.init(&exported);
    } catch (const Refused& r) {
      // Only a vector that gives the receiver a wrong pickle key expects its
      // account not to open ("any failure is DECRYPTION_FAILED"); elsewhere a
      // refused init is the driver's own failure.
      if (!t.contains("receiverPickleKey") || r.code != "IMPORT_FAILED") throw;
      throw Refused{"DECRYPTION_FAILED", "the receiver does not open: " + r.code};
    }
    expect(device.at("device_key") == param(t, g, "receiverIdentityKey"), "receiver device key differs", device);
    expect(device.at("fallback_key") == param(t, g, "receiverFallbackKey"), "receiver fallback key differs", device);
    auto r = s.call("decrypt_from_device", {{"ciphertext", sparam(t, g, "message")}, {"sender_key", sparam(t, g, "senderIdentityKey")}});
    expect(r.at("payload") == t.at("payload"), "payload differs", r.at("payload"));
  } else if (type == "receiveSessions") {
    auto exported = sparam(t, g, "receiverExportedDevice");
    auto device = s.init(&exported);
    expect(device.at("device_key") == param(t, g, "receiverDeviceKey"), "receiver device key differs", device);
    auto r = s.call("receive_sessions", {{"group_encryption_sessions_pb", hex_to_b64(t.at("groupEncryptionSessions").get<std::string>())}});
    json want_ids = json::array();
    for (const auto& w : t.at("imported")) want_ids.push_back(w.at("sessionId"));
    auto got = r.at("imported");
    json sorted_got = got, sorted_want = want_ids;
    std::sort(sorted_got.begin(), sorted_got.end());
    std::sort(sorted_want.begin(), sorted_want.end());
    expect(sorted_got == sorted_want, "imported ids differ", got);
    for (const auto& w : t.at("imported")) {
      auto x = s.call("export_sessions", {{"stream_id", sparam(t, g, "streamId")}, {"session_ids", {w.at("sessionId")}}});
      expect(x.at("sessions").size() == 1 && x.at("sessions")[0].at("sessionKey") == w.at("sessionKey") &&
                 x.at("sessions")[0].at("algorithm") == w.at("algorithm"),
             "imported key differs", x.at("sessions"));
    }
  } else if (type == "importDevice") {
    auto exported = t.at("exportedDevice").get<std::string>();
    auto device = s.init(&exported);
    expect(device.at("device_key") == t.at("deviceKey") && device.at("fallback_key") == t.at("fallbackKey"),
           "device keys differ", device);
    for (const auto& e : t.at("events")) {
      auto r = s.call("decrypt", {{"stream_id", e.at("streamId")}, {"encrypted_data_pb", hex_to_b64(e.at("encryptedData").get<std::string>())}});
      auto got = b64_to_hex(r.at("plaintext_b64").get<std::string>());
      expect(got == e.at("plaintext"), "event plaintext differs", got);
    }
    for (const auto& o : t.at("outbound")) {
      auto r = s.call("encrypt", {{"stream_id", o.at("streamId")}, {"algorithm", kMegolm}, {"plaintext_b64", "AA=="}});
      expect(r.at("session_id") == o.at("sessionId") && r.at("created_session") == false,
             "the outbound session does not continue", r);
    }
  } else if (type == "exportDevice") {
    auto exported = t.at("exportedDevice").get<std::string>();
    auto key = pickle_key_of(exported);
    s.init(&exported, &key);
    auto r = s.call("export_device");
    auto got = b64_to_hex(r.at("exported_device_pb").get<std::string>());
    // The lists' order is not the protocol's (an importer takes any order; the
    // client lists its store's entries most recent first): equal bytes, or the
    // same fields with each list as a set.
    if (got != t.at("exported")) expect(same_as_sets(got, t.at("exported").get<std::string>()), "the exported device differs", got);
  } else if (type == "megolmEncrypt") {
    auto exported = t.at("exportedDevice").get<std::string>();
    auto key = pickle_key_of(exported);
    s.init(&exported, &key);
    auto r = s.call("encrypt", {{"stream_id", sparam(t, g, "streamId")},
                                {"algorithm", kMegolm},
                                {"plaintext_b64", hex_to_b64(t.at("plaintext").get<std::string>())},
                                {"version", t.at("version")}});
    auto got = b64_to_hex(r.at("encrypted_data_pb").get<std::string>());
    expect(got == t.at("encryptedData"), "EncryptedData differs", got);
    expect(r.at("created_session") == false, "a new session was created", r);
  } else if (type == "hybridEncrypt") {
    if (t.at("result") == "valid") throw NotExpressible{"a driver draws its own IV"};
    auto exported = sparam(t, g, "exportedDevice");
    s.init(&exported);
    auto stream = sparam(t, g, "streamId");
    s.import(stream, sparam(t, g, "sessionId"), sparam(t, g, "sessionKey"), "grpaes");
    s.call("encrypt", {{"stream_id", stream},
                       {"algorithm", "grpaes"},
                       {"plaintext_b64", hex_to_b64(t.at("plaintext").get<std::string>())},
                       {"version", t.at("version")}});
  } else if (type == "derivedEncrypt") {
    auto r = s.call("derived_encrypt", {{"key_phrase", t.at("keyPhrase")}, {"plaintext_b64", hex_to_b64(t.at("plaintext").get<std::string>())}});
    auto got = b64_to_hex(r.at("encrypted_data_pb").get<std::string>());
    expect(got == t.at("encryptedData"), "EncryptedData differs", got);
  } else if (type == "derivedDecrypt") {
    auto r = s.call("derived_decrypt", {{"key_phrase", t.at("keyPhrase")}, {"encrypted_data_pb", hex_to_b64(t.at("encryptedData").get<std::string>())}});
    auto got = b64_to_hex(r.at("plaintext_b64").get<std::string>());
    expect(got == t.at("plaintext"), "plaintext differs", got);
  } else if (type == "mediaEncrypt") {
    auto r = s.call("media_encrypt", {{"data_b64", hex_to_b64(t.at("data").get<std::string>())},
                                      {"chunk_size", t.at("chunkSize")},
                                      {"key_hex", t.at("secretKey")},
                                      {"ivs_hex", t.at("ivs")}});
    json chunks = json::array();
    for (const auto& c : r.at("chunks")) chunks.push_back({{"ciphertext", b64_to_hex(c.at("ct_b64").get<std::string>())}, {"iv", c.at("iv_hex")}});
    expect(chunks == t.at("chunks"), "chunks differ", chunks);
  } else if (type == "mediaDecrypt" || type == "wholeFileDecrypt") {
    json chunks = json::array();
    json args = {{"secret_key_hex", t.at("secretKey")}};
    if (type == "mediaDecrypt") {
      for (const auto& c : t.at("chunks")) chunks.push_back({{"ct_b64", hex_to_b64(c.at("ciphertext").get<std::string>())}, {"iv_hex", c.at("iv")}});
    } else {
      for (const auto& c : t.at("chunks")) chunks.push_back({{"ct_b64", hex_to_b64(c.get<std::string>())}});
      args["iv_hex"] = t.at("iv");
    }
    args["chunks"] = chunks;
    auto r = s.call("media_decrypt", args);
    auto got = b64_to_hex(r.at("data_b64").get<std::string>());
    expect(got == t.at("data"), "data differs", got);
  } else {
    throw NotExpressible{"no driver mapping for this group type"};
  }
}

bool has_flag(const json& t, const char* flag) {
  for (const auto& f : t.value("flags", json::array())) {
    if (f == flag) return true;
  }
  return false;
}

bool has_deviation_flag(const json& t) {
  for (const auto& f : t.value("flags", json::array())) {
    if (f == "StrictDecoding" || f == "ClientDeviation" || f == "MapOrder") return true;
  }
  return false;
}

json exchanges_json(std::vector<Peer::Exchange> xs) {
  json out = json::array();
  for (auto& x : xs) out.push_back({{"sent", std::move(x.sent)}, {"reply", std::move(x.reply)}, {"failure", x.failure}});
  return out;
}

}  // namespace

DriverVerifyResult run_vectors_with_driver(const DriverVerifyOptions& o) {
  Peer peer(o.command, o.timeout_ms, tools::PeerStderr::kCapture);
  Session session(peer);
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(o.dir)) {
    if (e.path().extension() == ".json" && e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(ErrorCode::INVALID_ARGUMENT, o.dir + ": no vector files");
  json cases = json::array();
  size_t passed = 0, failed = 0, deviations = 0, skipped = 0;
  for (const auto& path : files) {
    std::ifstream in(path);
    auto doc = json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.contains("testGroups")) throw Error(ErrorCode::INVALID_ARGUMENT, path.string() + ": not a vector file");
    auto name = path.filename().string();
    size_t file_pass = 0, file_fail = 0;
    for (const auto& g : doc.at("testGroups")) {
      auto type = g.at("type").get<std::string>();
      for (const auto& t : g.at("tests")) {
        auto id = name + " tcId " + std::to_string(t.at("tcId").get<int64_t>());
        if (!o.only.empty() && id.find(o.only) == std::string::npos && type.find(o.only) == std::string::npos) continue;
        bool valid = t.at("result") == "valid";
        std::string expected = valid ? "valid" : driver_code(t.value("error", std::string()));
        json row = {{"id", id},
                    {"type", type},
                    {"comment", t.value("comment", "")},
                    {"section", kSections.count(type) ? "protocol.md " + kSections.at(type) : ""},
                    {"roles", {{"device", "peer"}}},
                    {"expected", expected}};
        std::string got;  // "" valid, a code, MISMATCH or PEER
        std::string why;
        json actual;
        try {
          if (type == "keyExchangeTrace") {
            // The peer's outputs must be the trace's; where the test names a
            // documented divergence, a difference is that deviation (flag
            // ClientDeviation), and agreeing is a pass.
            json timeline = t;
            timeline.erase("documented_divergence");
            auto v = tools::replay_trace_through_peer(timeline, peer);
            if (!v.passed) {
              got = "MISMATCH";
              why = v.report;
            }
          } else {
            run(session, type, g, t);
          }
        } catch (const NotExpressible& n) {
          row["result"] = "not-expressible";
          row["why"] = n.why;
          (void)peer.take_exchanges();
          (void)peer.take_stderr();
          ++skipped;
          cases.push_back(std::move(row));
          continue;
        } catch (const Refused& r) {
          got = r.code;
          why = r.message;
        } catch (const Mismatch& m) {
          got = "MISMATCH";
          why = m.why;
          actual = m.actual;
        } catch (const PeerError& e) {
          got = "PEER";
          why = e.what();
        } catch (const std::exception& e) {
          got = "MISMATCH";
          why = std::string("the reply lacks a result or has one of another type: ") + e.what();
        }
        bool ok = valid ? got.empty() : got == expected;
        std::string result = ok ? "pass" : "fail";
        // A documented deviation is the client's answer, not any answer: on an
        // invalid test the client accepts (the command succeeded: valid, or an
        // output this library does not have); on a valid one it refuses (a
        // code) or, for a trace, acts otherwise.
        if (!ok && has_deviation_flag(t) && got != "PEER") {
          // StrictDecoding: the client's lenient decoder takes the text, and what
          // it decodes may then fail to decrypt instead.
          bool lenient_then_fails = has_flag(t, "StrictDecoding") && expected == "INVALID_ARGUMENT" && got == "DECRYPTION_FAILED";
          bool client_like = valid ? (got != "MISMATCH" || type == "keyExchangeTrace")
                                   : (got.empty() || got == "MISMATCH" || lenient_then_fails);
          if (client_like) result = "deviation";
        }
        row["result"] = result;
        row["actual"] = got.empty() ? json("valid") : json(got);
        if (!why.empty()) row["why"] = why;
        if (!actual.is_null()) row["actualOutput"] = actual;
        auto xs = peer.take_exchanges();
        auto err = peer.take_stderr();
        if (result == "fail" && !err.empty()) row["stderr"] = json::array({json{{"driver", "peer"}, {"text", std::move(err)}}});
        if (result != "pass") {
          // What was expected in full: the vector (its inputs and outputs).
          row["vector"] = t;
          row["exchanges"] = exchanges_json(std::move(xs));
        }
        if (result == "fail") {
          ++failed;
          ++file_fail;
          if (!o.quiet) std::fprintf(stderr, "FAIL %s (%s, %s): expected %s, got %s%s\n", id.c_str(), type.c_str(),
                                     t.value("comment", "").c_str(), expected.c_str(), got.empty() ? "valid" : got.c_str(),
                                     why.empty() ? "" : (" (" + why.substr(0, 200) + ")").c_str());
        } else if (result == "deviation") {
          ++deviations;
        } else {
          ++passed;
          ++file_pass;
        }
        cases.push_back(std::move(row));
      }
    }
    if (!o.quiet) std::fprintf(stderr, "%s: %zu passed, %zu failed\n", name.c_str(), file_pass, file_fail);
  }
  try {
    peer.request({{"cmd", "quit"}});
  } catch (const PeerError&) {
  }
  peer.stop();
  DriverVerifyResult r;
  r.cases = std::move(cases);
  r.passed = passed;
  r.failed = failed;
  r.deviations = deviations;
  r.not_expressible = skipped;
  return r;
}

int verify_with_driver(const DriverVerifyOptions& o) {
  auto r = run_vectors_with_driver(o);
  size_t passed = r.passed, failed = r.failed, deviations = r.deviations, skipped = r.not_expressible;
  auto& cases = r.cases;
  json summary = {{"passed", passed}, {"failed", failed}, {"deviations", deviations}, {"notExpressible", skipped}};
  if (!o.report_dir.empty()) {
    tools::write_report(o.report_dir, {{"title", "towns-e2ee vectors verify --driver"},
                                       {"peer", o.command},
                                       {"corpus", o.dir},
                                       {"summary", summary},
                                       {"cases", cases}});
  }
  std::printf("%zu passed, %zu failed, %zu documented deviations, %zu not expressible by a driver\n", passed, failed,
              deviations, skipped);
  return failed == 0 ? 0 : 1;
}

}  // namespace towns::vectors
