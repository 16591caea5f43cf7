// The coverage table of the vector corpus (towns-e2ee vectors coverage <dir>):
// per file and group type, what is exercised, in which direction, how many
// valid and invalid tests, and how the canonical client's verifier
// (test/interop/verify_vectors.ts) checks it. docs/vectors.md holds its output
// on the committed corpus, and a test keeps the two equal.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "towns/error.h"
#include "vectors.h"

namespace towns::vectors {

namespace {

struct TypeInfo {
  const char* operation;
  const char* direction;     // send: encode, encrypt, create; receive: decode, decrypt, import; decide; both
  const char* client_check;  // what verify_vectors.ts does with it today
};

// Every group type of the corpus. A type missing here makes the command fail:
// a new type must say what it covers and how the client checks it.
//   byte for byte: the client computes the output itself and compares it exactly;
//   decrypts our output: the client decrypts or imports what this library made
//     and compares what comes out;
//   verdict only: the client only succeeds or fails (and gives a code);
//   replays through the SDK engine: the timeline is run on the SDK's own engine.
const std::map<std::string, TypeInfo> kTypes = {
    {"base64Decode", {"base64 decoding, three padding rules", "receive", "byte for byte"}},
    {"base64Encode", {"base64 encoding", "send", "byte for byte"}},
    {"hexDecode", {"hex decoding", "receive", "byte for byte"}},
    {"hexEncode", {"hex encoding", "send", "byte for byte"}},
    {"sessionKeysJson", {"SessionKeys protobuf JSON, parsed and written", "both", "byte for byte"}},
    {"protobufMessage", {"river messages, binary and protobuf JSON", "both", "byte for byte"}},
    {"protobufMalformed", {"malformed river messages refused", "receive", "verdict only"}},
    {"protobufNonCanonical", {"river messages in a non-canonical encoding", "receive", "byte for byte"}},
    {"hybridSessionId", {"hybrid session id (SHA-256)", "send", "byte for byte"}},
    {"hybridSessionImport", {"hybrid session key import", "receive", "verdict only"}},
    {"aesGcm", {"AES-256-GCM", "send", "byte for byte"}},
    {"hybridDecrypt", {"grpaes event decryption", "receive", "decrypts our output"}},
    {"hybridEncrypt", {"grpaes event encryption, IV given", "send", "byte for byte"}},
    {"megolmDecrypt", {"megolm event decryption", "receive", "decrypts our output"}},
    {"megolmImport", {"megolm session key import", "receive", "byte for byte"}},
    {"megolmOutbound", {"megolm session from given random bytes", "send", "byte for byte"}},
    {"megolmEncrypt", {"megolm event encryption from a given state", "send", "byte for byte"}},
    {"megolmExport", {"megolm session export at an index", "send", "byte for byte"}},
    {"olmDecrypt", {"olm pre-key message decryption", "receive", "decrypts our output"}},
    {"olmAccount", {"olm account and fallback key from given random bytes", "send", "byte for byte"}},
    {"deviceInit", {"a new device from given random bytes", "send", "byte for byte"}},
    {"olmEncrypt", {"olm pre-key message from given random bytes", "send", "byte for byte"}},
    {"olmAccountUnpickle", {"olm account pickle opened", "receive", "byte for byte"}},
    {"receiveSessions", {"group sessions shared to a device", "receive", "decrypts our output"}},
    {"buildSessions", {"group sessions shared, random bytes given", "send", "byte for byte (MapOrder: as a message)"}},
    {"decideSolicitation", {"whether to ask for missing keys", "decide", "byte for byte"}},
    {"decideAnswer", {"how to answer a key solicitation", "decide", "byte for byte"}},
    {"importDevice", {"exported device import", "receive", "decrypts our output"}},
    {"exportDevice", {"exported device export from a given state", "send", "byte for byte, its lists compared as sets"}},
    {"deriveKeyAndIv", {"key and IV from a key phrase", "send", "byte for byte"}},
    {"derivedEncrypt", {"derived scheme encryption", "send", "byte for byte"}},
    {"derivedDecrypt", {"derived scheme decryption", "receive", "decrypts our output"}},
    {"mediaEncrypt", {"chunked media encryption", "send", "byte for byte"}},
    {"mediaDecrypt", {"chunked media decryption", "receive", "decrypts our output"}},
    {"wholeFileDecrypt", {"whole-file media decryption", "receive", "decrypts our output"}},
    {"keyExchangeTrace", {"key exchange engine timelines", "decide", "replays through the SDK engine"}},
};

struct Row {
  std::string file, type;
  size_t valid = 0, invalid = 0;
};

}  // namespace

std::string coverage_table(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".json" && e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(ErrorCode::INVALID_ARGUMENT, dir + ": no vector files");
  std::vector<Row> rows;
  for (const auto& path : files) {
    std::ifstream in(path);
    auto doc = nlohmann::json::parse(in, nullptr, false);
    auto name = path.filename().string();
    if (doc.is_discarded() || !doc.contains("testGroups")) throw Error(ErrorCode::INVALID_ARGUMENT, name + ": not a vector file");
    for (const auto& g : doc.at("testGroups")) {
      auto type = g.at("type").get<std::string>();
      if (!kTypes.count(type)) {
        throw Error(ErrorCode::INVALID_ARGUMENT,
                    name + ": group type " + type + " is unknown to the coverage table (tools/vectors/coverage.cpp)");
      }
      auto row = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.file == name && r.type == type; });
      if (row == rows.end()) row = rows.insert(rows.end(), Row{name, type});
      for (const auto& t : g.at("tests")) {
        auto result = t.at("result").get<std::string>();
        if (result == "valid") {
          ++row->valid;
        } else if (result == "invalid") {
          ++row->invalid;
        } else {
          throw Error(ErrorCode::INVALID_ARGUMENT, name + ": result \"" + result + "\"");
        }
      }
    }
  }
  std::ostringstream out;
  out << "| file | group type | operation | direction | valid | invalid | canonical client checks |\n"
      << "| --- | --- | --- | --- | ---: | ---: | --- |\n";
  size_t valid = 0, invalid = 0;
  for (const auto& r : rows) {
    const auto& info = kTypes.at(r.type);
    out << "| " << r.file << " | `" << r.type << "` | " << info.operation << " | " << info.direction << " | " << r.valid
        << " | " << r.invalid << " | " << info.client_check << " |\n";
    valid += r.valid;
    invalid += r.invalid;
  }
  auto total = valid + invalid;
  // The share of invalid tests, to one decimal, rounded half up.
  auto tenths = total == 0 ? 0 : (invalid * 1000 + total / 2) / total;
  out << "| **total** | " << rows.size() << " rows | | | " << valid << " | " << invalid << " | " << tenths / 10 << "."
      << tenths % 10 << " % invalid |\n";
  return out.str();
}

}  // namespace towns::vectors
