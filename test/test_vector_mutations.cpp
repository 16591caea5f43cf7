// Mutation test of the vector verifier (docs/vectors.md, "Mutation test"):
// every expected output of every committed vector, changed in one place, must
// make towns::vectors::verify_case report a failure. A change that still passes
// is an output the verifier does not check.
//
// The outputs of each group type are declared in kFields below, and so are its
// inputs: a group type, or a field, that the table does not know fails the test,
// so a new type or field has to say which of its fields are outputs.
#include "helpers.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

#include "vectors/verify_case.h"

namespace {

using nlohmann::json;
using towns::vectors::verify_case;

const std::string kCorpus = std::string(TOWNS_TEST_DATA_DIR) + "/../vectors";

// The fields of one group type. An output is a path: "name", or "name[].sub"
// for the field sub of every element of the list name. A name may be given by
// the group (the test's own field overrides it); a mutation then overrides it
// in the test.
struct Fields {
  std::vector<std::string> valid_outputs;    // expected by a valid test; each must be present
  std::vector<std::string> invalid_outputs;  // expected by an invalid test when present (besides its error)
  std::vector<std::string> inputs;           // everything else a group or a test may hold
};

// Fields every test may hold: bookkeeping, the verdict, the error code.
const std::set<std::string> kCommon = {"tcId", "comment", "flags", "result", "error", "type", "tests"};

// Keep this table in step with check() in lib/vectors/verify.cpp.
const std::map<std::string, Fields> kFields = {
    {"base64Decode", {{"output"}, {}, {"padding", "input"}}},
    {"base64Encode", {{"output"}, {}, {"padding", "input"}}},
    {"hexDecode", {{"output"}, {}, {"input"}}},
    {"hexEncode", {{"output"}, {}, {"input"}}},
    {"sessionKeysJson", {{"keys"}, {}, {"json"}}},
    {"protobufMessage", {{"json", "bytes"}, {}, {"message"}}},
    {"protobufMalformed", {{}, {}, {"message", "bytes"}}},
    {"protobufNonCanonical", {{"json", "encoded"}, {}, {"message", "bytes"}}},
    {"hybridSessionId", {{"sessionId"}, {}, {"streamId", "key", "miniblockNum", "miniblockHash"}}},
    {"hybridSessionImport", {{}, {}, {"streamId", "sessionId", "sessionKey"}}},
    {"aesGcm", {{"ciphertext"}, {}, {"keySize", "ivSize", "tagSize", "key", "iv", "plaintext"}}},
    {"hybridDecrypt", {{"plaintext"}, {}, {"streamId", "sessionId", "sessionKey", "encryptedData", "decryptStreamId"}}},
    {"hybridEncrypt",
     {{"encryptedData"}, {}, {"streamId", "sessionId", "sessionKey", "exportedDevice", "iv", "version", "plaintext", "moreSessions"}}},
    {"megolmDecrypt",
     {{"plaintext", "messageIndex", "firstKnownIndex"},
      {"olmError"},
      {"streamId", "sessionId", "sessionKey", "encryptedData", "decryptFirst"}}},
    {"megolmOutbound", {{"sessionId", "sessionKey", "messageIndex", "exportedKey", "pickle"}, {}, {"pickleKey", "random"}}},
    {"megolmEncrypt",
     {{"encryptedData", "messageIndex", "sessionAfter"}, {}, {"streamId", "exportedDevice", "plaintext", "version"}}},
    {"megolmExport", {{"exportedKey"}, {}, {"sessionKey", "index"}}},
    {"olmAccount",
     {{"curve25519", "ed25519", "fallbackKeyId", "fallbackKey", "signature", "pickle"},
      {},
      {"pickleKey", "signMessage", "random", "fallbackRandom"}}},
    {"deviceInit", {{"deviceKey", "fallbackKey", "pickledAccount"}, {}, {"pickleKey", "random"}}},
    {"olmEncrypt",
     {{"type", "message", "sessionId"},
      {},
      {"senderIdentityKey", "senderPickle", "senderPickleKey", "receiverIdentityKey", "receiverFallbackKey", "receiverPickle",
       "receiverPickleKey", "random", "payload"}}},
    {"olmAccountUnpickle", {{"curve25519", "ed25519"}, {}, {"pickleKey", "pickle"}}},
    {"buildSessions",
     {{"groupEncryptionSessions", "skippedDevices", "olmRandom", "senderKey"},
      {},
      {"streamId", "senderExportedDevice", "algorithm", "sessions", "devices", "seeds"}}},
    {"exportDevice", {{"exported"}, {}, {"exportedDevice"}}},
    {"megolmImport", {{"firstKnownIndex"}, {}, {"streamId", "sessionId", "sessionKey"}}},
    {"olmDecrypt",
     {{"payload", "receiverIdentityKey", "receiverFallbackKey"},
      {"olmError"},
      {"senderIdentityKey", "senderPickle", "senderPickleKey", "receiverPickle", "receiverPickleKey", "message"}}},
    {"receiveSessions",
     {{"imported", "failed", "receiverDeviceKey"}, {}, {"streamId", "receiverExportedDevice", "groupEncryptionSessions"}}},
    {"decideSolicitation",
     {{"solicitation"}, {}, {"ownUserId", "ownDeviceKey", "missingSessionIds", "heldSessionCount", "pending"}}},
    {"decideAnswer", {{"answer"}, {}, {"ownDeviceKey", "known", "solicitation", "requesterEntitled"}}},
    {"importDevice",
     {{"deviceKey", "fallbackKey", "events[].plaintext", "outbound[].sessionId", "outbound[].nextMessageIndex"},
      {},
      {"exportedDevice", "events", "outbound"}}},
    {"deriveKeyAndIv", {{"key", "iv"}, {}, {"keyPhrase"}}},
    {"derivedEncrypt", {{"ciphertext", "encryptedData"}, {}, {"keyPhrase", "plaintext"}}},
    {"derivedDecrypt", {{"plaintext"}, {}, {"keyPhrase", "encryptedData"}}},
    {"mediaEncrypt", {{"chunks"}, {}, {"data", "chunkSize", "secretKey", "ivs"}}},
    {"mediaDecrypt", {{"data"}, {}, {"secretKey", "chunks"}}},
    {"wholeFileDecrypt", {{"data"}, {}, {"secretKey", "iv", "chunks"}}},
    {"keyExchangeTrace",
     {{"outputs_at_start", "outputs_at_end", "steps[].outputs_before", "steps[].outputs_after"},
      {},
      {"start", "steps", "end_ms", "sessions", "section", "note", "documented_divergence"}}},
};

// Each keyExchangeTrace test is a replay of a whole timeline, and its outputs
// have hundreds of leaves: a spread sample of this many of its mutations runs.
constexpr size_t kTraceSample = 16;

struct Mutation {
  json::json_pointer where;
  json value;
  std::string how;
};

bool is_hex(const std::string& s) {
  return !s.empty() && s.size() % 2 == 0 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_base64(const std::string& s) {
  auto body = s.substr(0, s.find_last_not_of('=') + 1);
  if (body.empty() || s.size() - body.size() > 2 || body.size() % 4 == 1) return false;
  return std::all_of(body.begin(), body.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/'; });
}

// A string changed in one byte (of what it encodes), in the same form: hex and
// base64 (padded or not) re-encoded with the first, then the last byte flipped;
// other text with one character changed. The empty string gets one byte.
std::vector<std::pair<std::string, std::string>> string_mutations(const std::string& s) {
  using towns::crypto::Base64Padding;
  std::vector<std::pair<std::string, std::string>> out;
  if (s.empty()) return {{"00", "empty -> \"00\""}};
  if (is_hex(s)) {
    auto b = towns::crypto::hex_decode(s);
    b.front() ^= 0x01;
    out.emplace_back(towns::crypto::hex_encode(b), "hex, first byte ^ 0x01");
    if (b.size() > 1) {
      b.front() ^= 0x01;
      b.back() ^= 0x80;
      out.emplace_back(towns::crypto::hex_encode(b), "hex, last byte ^ 0x80");
    }
    return out;
  }
  if (is_base64(s)) {
    auto padding = s.back() == '=' ? Base64Padding::kPadded : Base64Padding::kNone;
    try {
      auto b = towns::crypto::base64_decode(s, Base64Padding::kOptional);
      if (!b.empty() && towns::crypto::base64_encode(b, padding) == s) {
        b.front() ^= 0x01;
        out.emplace_back(towns::crypto::base64_encode(b, padding), "base64, first byte ^ 0x01");
        if (b.size() > 1) {
          b.front() ^= 0x01;
          b.back() ^= 0x80;
          out.emplace_back(towns::crypto::base64_encode(b, padding), "base64, last byte ^ 0x80");
        }
        return out;
      }
    } catch (const towns::Error&) {
      // Not base64 after all: changed as text.
    }
  }
  auto t = s;
  auto at = std::find_if(t.begin(), t.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (at == t.end()) return {{s + "a", "text, \"a\" appended"}};
  *at = *at == 'a' ? 'b' : 'a';
  out.emplace_back(t, "text, character " + std::to_string(at - t.begin()) + " changed");
  return out;
}

// Every mutation of the value at p (and, inside objects and lists, of each leaf).
void mutations_of(const json& v, const json::json_pointer& p, std::vector<Mutation>& out) {
  switch (v.type()) {
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      // Text holding a JSON object or list (protobuf JSON): each of its leaves.
      if (!s.empty() && (s[0] == '{' || s[0] == '[')) {
        auto doc = json::parse(s, nullptr, false);
        if (!doc.is_discarded()) {
          std::vector<Mutation> inner;
          mutations_of(doc, json::json_pointer(), inner);
          for (auto& m : inner) {
            auto changed = doc;
            changed[m.where] = m.value;
            out.push_back({p, changed.dump(), "JSON text at " + m.where.to_string() + ": " + m.how});
          }
          if (!inner.empty()) return;
        }
      }
      for (auto& [value, how] : string_mutations(s)) out.push_back({p, value, how});
      return;
    }
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      out.push_back({p, v.get<int64_t>() + 1, "number + 1"});
      return;
    case json::value_t::number_float:
      out.push_back({p, v.get<double>() + 1, "number + 1"});
      return;
    case json::value_t::boolean:
      out.push_back({p, !v.get<bool>(), "negated"});
      return;
    case json::value_t::null:
      out.push_back({p, json::object(), "null -> {}"});
      return;
    case json::value_t::object:
      out.push_back({p, nullptr, "object -> null"});
      for (const auto& [k, x] : v.items()) mutations_of(x, p / k, out);
      return;
    case json::value_t::array:
      if (v.empty()) {
        out.push_back({p, json::array({json::object()}), "empty list -> [{}]"});
        return;
      }
      {
        auto shorter = v;
        shorter.erase(shorter.size() - 1);
        out.push_back({p, shorter, "last element dropped"});
        auto longer = v;
        longer.push_back(v.back());
        out.push_back({p, longer, "last element repeated"});
      }
      for (size_t i = 0; i < v.size(); ++i) mutations_of(v[i], p / i, out);
      return;
    default:
      out.push_back({p, "mutated", "replaced by text"});
  }
}

// The pointers an output path names in t, or why it names none.
std::vector<json::json_pointer> resolve(const json& t, const std::string& path, std::string& missing) {
  std::vector<json::json_pointer> at = {json::json_pointer()};
  size_t start = 0;
  while (start <= path.size()) {
    auto dot = path.find('.', start);
    auto seg = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool each = seg.size() > 2 && seg.compare(seg.size() - 2, 2, "[]") == 0;
    if (each) seg.resize(seg.size() - 2);
    std::vector<json::json_pointer> next;
    for (const auto& p : at) {
      const auto& here = t[p];
      if (!here.is_object() || !here.contains(seg)) {
        missing = (p / seg).to_string();
        return {};
      }
      if (!each) {
        next.push_back(p / seg);
        continue;
      }
      if (!here[seg].is_array()) {
        missing = (p / seg).to_string() + " (not a list)";
        return {};
      }
      for (size_t i = 0; i < here[seg].size(); ++i) next.push_back(p / seg / i);
    }
    at = std::move(next);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return at;
}

std::string other_code(const std::string& code) { return code == "DECRYPTION_FAILED" ? "INVALID_ARGUMENT" : "DECRYPTION_FAILED"; }
std::string other_olm_error(const std::string& e) { return e == "BAD_MESSAGE_MAC" ? "BAD_MESSAGE_FORMAT" : "BAD_MESSAGE_MAC"; }

struct Tally {
  size_t tests = 0, mutations = 0;
  std::vector<std::string> problems;  // malformed or undeclared
  std::vector<std::string> escaped;   // mutations that still pass
};

void mutate_test(const std::string& file, const std::string& type, const json& g, const json& t, const Fields& fields, Tally& tally) {
  auto id = file + " tcId " + (t.contains("tcId") ? t["tcId"].dump() : "?") + " (" + type + ")";
  ++tally.tests;
  for (const auto& [k, v] : t.items()) {
    auto declared = [&](const std::vector<std::string>& names) {
      return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n == k || n.rfind(k + "[].", 0) == 0; });
    };
    if (!kCommon.count(k) && !declared(fields.valid_outputs) && !declared(fields.invalid_outputs) && !declared(fields.inputs)) {
      tally.problems.push_back(id + ": field \"" + k + "\" is not declared in kFields (an input or an output?)");
    }
  }
  auto base = verify_case(type, g, t);
  if (!base.passed) {
    tally.problems.push_back(id + ": does not pass unchanged: got " + base.got + " " + base.why);
    return;
  }
  bool valid = t.at("result") == "valid";
  // The test with the group's value of every output it inherits made its own.
  json own = t;
  std::vector<Mutation> all;
  const auto& outputs = valid ? fields.valid_outputs : fields.invalid_outputs;
  for (const auto& path : outputs) {
    auto top = path.substr(0, path.find('.'));
    if (top.size() > 2 && top.compare(top.size() - 2, 2, "[]") == 0) top.resize(top.size() - 2);
    if (!own.contains(top) && g.contains(top)) own[top] = g[top];
    std::string missing;
    auto at = resolve(own, path, missing);
    if (at.empty() && !missing.empty()) {
      if (valid) tally.problems.push_back(id + ": the declared output " + path + " is missing (" + missing + ")");
      continue;
    }
    for (const auto& p : at) {
      if (path == "olmError") {
        all.push_back({p, other_olm_error(own[p].get<std::string>()), "another libolm error"});
      } else {
        mutations_of(own[p], p, all);
      }
    }
  }
  if (!valid) {
    auto e = own.value("error", std::string());
    all.push_back({json::json_pointer("/error"), other_code(e), "error " + e + " -> " + other_code(e)});
  }
  if (type == "keyExchangeTrace" && all.size() > kTraceSample) {
    std::vector<Mutation> sample;
    for (size_t i = 0; i < kTraceSample; ++i) sample.push_back(all[i * (all.size() - 1) / (kTraceSample - 1)]);
    all = std::move(sample);
  }
  for (const auto& m : all) {
    ++tally.mutations;
    auto changed = own;
    changed[m.where] = m.value;
    auto v = verify_case(type, g, changed);
    if (v.passed) tally.escaped.push_back(id + ": output " + m.where.to_string() + " not checked (" + m.how + ")");
  }
}

// Every mutation of every vector file in dir.
Tally mutate_corpus(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(!files.empty());
  Tally tally;
  std::set<std::string> seen;
  for (const auto& path : files) {
    std::ifstream in(path);
    auto doc = json::parse(in);
    auto file = path.filename().string();
    for (const auto& g : doc.at("testGroups")) {
      auto type = g.at("type").get<std::string>();
      seen.insert(type);
      auto fields = kFields.find(type);
      if (fields == kFields.end()) {
        tally.problems.push_back(file + ": group type " + type + " is not in kFields: declare its outputs and inputs");
        continue;
      }
      for (const auto& [k, v] : g.items()) {
        const auto& f = fields->second;
        auto in_list = [&](const std::vector<std::string>& l) { return std::find(l.begin(), l.end(), k) != l.end(); };
        if (!kCommon.count(k) && !in_list(f.valid_outputs) && !in_list(f.invalid_outputs) && !in_list(f.inputs)) {
          tally.problems.push_back(file + " " + type + " group: field \"" + k + "\" is not declared in kFields");
        }
      }
      for (const auto& t : g.at("tests")) mutate_test(file, type, g, t, fields->second, tally);
    }
  }
  for (const auto& [type, f] : kFields) {
    if (!seen.count(type)) tally.problems.push_back("kFields declares " + type + ", which no vector file has");
  }
  return tally;
}

std::string lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "\n  " + s;
  return out;
}

}  // namespace

TEST_CASE("every expected output of every vector, changed in one byte, makes the verifier fail") {
  auto started = std::chrono::steady_clock::now();
  auto tally = mutate_corpus(kCorpus);
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  WARN(tally.tests << " tests, " << tally.mutations << " mutations, " << tally.escaped.size() << " not caught, " << seconds
                   << " s");
  {
    INFO("malformed or undeclared:" << lines(tally.problems));
    CHECK(tally.problems.empty());
  }
  {
    INFO("changed outputs the verifier accepts:" << lines(tally.escaped));
    CHECK(tally.escaped.empty());
  }
  CHECK(tally.mutations > tally.tests);
}

TEST_CASE("the mutation test refuses a group type or a field it does not know, and a missing output") {
  auto dir = std::filesystem::temp_directory_path() / ("towns-mutation-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  json doc = {{"numberOfTests", 4},
              {"testGroups",
               {{{"type", "noSuchType"}, {"tests", {{{"tcId", 1}, {"result", "valid"}}}}},
                {{"type", "hexDecode"},
                 {"tests",
                  {{{"tcId", 2}, {"result", "valid"}, {"input", "0a"}, {"output", "0a"}},
                   {{"tcId", 3}, {"result", "valid"}, {"input", "0b"}, {"output", "0b"}, {"extra", 1}},
                   {{"tcId", 4}, {"result", "valid"}, {"input", "0c"}}}}}}}};
  std::ofstream(dir / "a.json") << doc.dump();
  auto tally = mutate_corpus(dir.string());
  std::filesystem::remove_all(dir);
  auto has = [&](const std::string& text) {
    return std::any_of(tally.problems.begin(), tally.problems.end(), [&](const std::string& p) { return p.find(text) != std::string::npos; });
  };
  INFO(lines(tally.problems));
  CHECK(has("a.json: group type noSuchType is not in kFields"));
  CHECK(has("a.json tcId 3 (hexDecode): field \"extra\" is not declared in kFields"));
  CHECK(has("a.json tcId 4 (hexDecode): does not pass unchanged"));
  CHECK(has("kFields declares megolmDecrypt, which no vector file has"));
  // tcIds 2 and 3 are mutated (their one byte flipped) and caught.
  CHECK(tally.mutations == 2);
  CHECK(tally.escaped.empty());
}
