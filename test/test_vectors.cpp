// The committed vector corpus verifies, and is exactly what the generator makes
// from its recorded seed. The library verifies protobuf.json with its own codec;
// protobuf's generated classes, the independent oracle, must agree with it on
// every case, and on variations of them.
#include "helpers.h"
#include "store_fixtures.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "towns/proto/payloads.pb.h"
#include "towns/proto/protocol.pb.h"
#include "river_serialize.h"
#include "towns/vectors.h"
#include "vectors.h"
#include "vectors/protobuf_json.h"
#include "vectors/verify_case.h"

namespace {
const std::string kCorpus = std::string(TOWNS_TEST_DATA_DIR) + "/../vectors";

// The number of tests in the *.json files of dir, counted from the files
// themselves (every testGroups[].tests[] entry), independently of the verifier.
size_t count_vectors(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    auto doc = nlohmann::json::parse(test::read_file(e.path().string()));
    for (const auto& g : doc.at("testGroups")) n += g.at("tests").size();
  }
  return n;
}
}  // namespace

TEST_CASE("every committed vector verifies: all of them pass, none fails or is skipped") {
  auto expected = count_vectors(kCorpus);
  REQUIRE(expected > 0);
  auto r = towns::vectors::verify(kCorpus);
  for (const auto& f : r.failures) UNSCOPED_INFO(f);
  CHECK(r.failed == 0);
  CHECK(r.failures.empty());
  CHECK(r.passed == expected);
}

TEST_CASE("the committed corpus equals a fresh generation from its seed") {
  std::ifstream in(kCorpus + "/encodings.json");
  auto doc = nlohmann::json::parse(in);
  auto seed = towns::crypto::hex_decode(doc.at("seed").get<std::string>());
  test::TempDir dir;
  auto out = dir.file("fresh");
  towns::vectors::generate(seed, out);
  for (const auto& name : towns::vectors::file_names()) {
    INFO(name);
    CHECK(test::read_file(out + "/" + name) == test::read_file(kCorpus + "/" + name));
  }
  size_t committed = 0;
  for (const auto& e : std::filesystem::directory_iterator(kCorpus)) committed += e.path().extension() == ".json";
  CHECK(committed == towns::vectors::file_names().size());
}

TEST_CASE("the verifier notices a wrong vector") {
  test::TempDir dir;
  auto out = dir.file("broken");
  towns::vectors::generate(towns::crypto::as_bytes("another seed"), out);
  auto path = out + "/hybrid_wrong.json";
  std::filesystem::copy_file(out + "/grpaes.json", path);
  // The first test's expected session id, one character changed.
  auto doc = nlohmann::ordered_json::parse(test::read_file(path));
  auto& first = doc.at("testGroups").at(0).at("tests").at(0);
  REQUIRE(first.at("tcId") == 1);
  auto id = first.at("sessionId").get<std::string>();
  REQUIRE(!id.empty());
  id[0] = id[0] == 'a' ? 'b' : 'a';
  first["sessionId"] = id;
  std::ofstream(path, std::ios::trunc) << doc.dump(2);
  auto r = towns::vectors::verify(out);
  CHECK(r.failed == 1);
  CHECK(r.passed == count_vectors(out) - 1);
  REQUIRE(r.failures.size() == 1);
  CHECK(r.failures[0].rfind("hybrid_wrong.json tcId 1 (hybridSessionId, ", 0) == 0);
}

namespace {

using nlohmann::json;
namespace pb = google::protobuf;

std::string unhex(const std::string& h) {
  auto b = towns::crypto::hex_decode(h);
  return {b.begin(), b.end()};
}

std::unique_ptr<pb::Message> new_message(const std::string& type) {
  // (Naming the classes links their descriptors into the generated pool.)
  (void)river::EncryptedData::descriptor();
  (void)river::ExportedDevice::descriptor();
  const auto* desc = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  REQUIRE(desc != nullptr);
  return std::unique_ptr<pb::Message>(pb::MessageFactory::generated_factory()->GetPrototype(desc)->New());
}

using towns::river_proto::serialize;

// protobuf's verdict on a protobufMessage, protobufNonCanonical or
// protobufMalformed test, as the verifier gave it before the library read these
// messages itself: the bytes parse, the JSON parses to an equal message (unknown
// fields dropped), and both encode to the bytes (to encoded for a non-canonical
// test, whose bytes are not that).
bool protobuf_passes(const std::string& type, const json& group, const json& t) {
  pb::LogSilencer quiet;
  auto from_bytes = new_message(group.at("message"));
  auto from_json = new_message(group.at("message"));
  bool parsed = from_bytes->ParseFromString(unhex(t.at("bytes")));
  if (type == "protobufMalformed") return !parsed;
  from_bytes->DiscardUnknownFields();
  const auto& canonical = type == "protobufNonCanonical" ? t.at("encoded") : t.at("bytes");
  auto hex_of = [](const pb::Message& m) { return towns::crypto::hex_encode(towns::crypto::as_bytes(serialize(m))); };
  return parsed && pb::util::JsonStringToMessage(t.at("json").get<std::string>(), from_json.get()).ok() &&
         pb::util::MessageDifferencer::Equals(*from_bytes, *from_json) && hex_of(*from_json) == canonical &&
         hex_of(*from_bytes) == canonical && (type == "protobufMessage" || t.at("encoded") != t.at("bytes"));
}

struct Read {
  json j;
  std::string bytes;
};

// The bytes read as type by protobuf: the message's JSON (MessageToJsonString)
// and its deterministic encoding without unknown fields (the library keeps
// none); nullopt when protobuf refuses them.
std::optional<Read> protobuf_read(const std::string& type, const std::string& bytes) {
  pb::LogSilencer quiet;
  auto m = new_message(type);
  if (!m->ParseFromString(bytes)) return std::nullopt;
  m->DiscardUnknownFields();
  std::string text;
  REQUIRE(pb::util::MessageToJsonString(*m, &text).ok());
  return Read{json::parse(text), serialize(*m)};
}

// The same by the library's codec.
std::optional<Read> library_read(const std::string& type, const std::string& bytes) {
  try {
    auto d = towns::vectors::decode_message(type, towns::crypto::as_bytes(bytes));
    return Read{d.json, std::string(d.encoding.begin(), d.encoding.end())};
  } catch (const towns::Error& e) {
    INFO(e.what());
    CHECK(e.code() == towns::ErrorCode::INVALID_ARGUMENT);
    return std::nullopt;
  }
}

// Both read the bytes alike: both refuse them, or both give the same JSON and
// the same encoding.
void agree(const std::string& type, const std::string& bytes) {
  auto want = protobuf_read(type, bytes);
  auto got = library_read(type, bytes);
  INFO(type << " " << towns::crypto::hex_encode(towns::crypto::as_bytes(bytes)));
  REQUIRE(want.has_value() == got.has_value());
  if (!want) return;
  CHECK(got->j == want->j);
  CHECK(towns::crypto::hex_encode(towns::crypto::as_bytes(got->bytes)) ==
        towns::crypto::hex_encode(towns::crypto::as_bytes(want->bytes)));
}

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// A length-delimited field (length under 2^14).
std::string ld(uint8_t tag, const std::string& body) {
  std::string out(1, static_cast<char>(tag));
  if (body.size() >= 0x80) {
    out += static_cast<char>((body.size() & 0x7f) | 0x80);
    out += static_cast<char>(body.size() >> 7);
  } else {
    out += static_cast<char>(body.size());
  }
  return out + body;
}

json protobuf_json_file() {
  return json::parse(test::read_file(kCorpus + "/protobuf.json"));
}

}  // namespace

TEST_CASE("protobuf's generated classes agree with the library's verdict on every protobuf.json case") {
  auto doc = protobuf_json_file();
  size_t cases = 0;
  for (const auto& g : doc.at("testGroups")) {
    auto type = g.at("type").get<std::string>();
    REQUIRE((type == "protobufMessage" || type == "protobufNonCanonical" || type == "protobufMalformed"));
    for (const auto& t : g.at("tests")) {
      ++cases;
      INFO("tcId " << t.at("tcId") << " " << g.at("message"));
      auto library = towns::vectors::verify_case(type, g, t);
      INFO("library: " << library.got << " " << library.why);
      CHECK(protobuf_passes(type, g, t) == library.passed);
      CHECK(library.passed);
      // The same case made wrong: a changed JSON value (a field that does not
      // exist, for the empty message), or malformed bytes called valid; both
      // must refuse it.
      if (type != "protobufMalformed") {
        auto wrong = t;
        auto j = json::parse(t.at("json").get<std::string>());
        if (j.empty()) {
          j["noSuchField"] = "x";
        } else {
          j[j.begin().key()] = j.begin()->is_string() ? json(j.begin()->get<std::string>() + "x") : json("x");
        }
        wrong["json"] = j.dump();
        CHECK(protobuf_passes(type, g, wrong) == towns::vectors::verify_case(type, g, wrong).passed);
        CHECK_FALSE(towns::vectors::verify_case(type, g, wrong).passed);
      }
    }
  }
  CHECK(cases == doc.at("numberOfTests").get<size_t>());
  // Every message the library knows is in the corpus, and the reverse.
  std::set<std::string> named;
  for (const auto& g : doc.at("testGroups")) named.insert(g.at("message").get<std::string>());
  const auto& known = towns::vectors::known_messages();
  CHECK(named == std::set<std::string>(known.begin(), known.end()));
}

TEST_CASE("protobuf and the library read every protobuf.json message alike, cut short and with bytes changed") {
  auto doc = protobuf_json_file();
  for (const auto& g : doc.at("testGroups")) {
    if (g.at("type") == "protobufMalformed") continue;
    auto type = g.at("message").get<std::string>();
    for (const auto& t : g.at("tests")) {
      auto bytes = unhex(t.at("bytes"));
      agree(type, bytes);
      for (size_t n = 0; n < bytes.size(); ++n) agree(type, bytes.substr(0, n));
      for (size_t i = 0; i < bytes.size(); ++i) {
        for (uint8_t x : {0x01, 0x07, 0x80, 0xff}) {
          auto b = bytes;
          b[i] = static_cast<char>(b[i] ^ x);
          agree(type, b);
        }
      }
    }
  }
}

TEST_CASE("protobuf and the library read crafted inputs alike, as every message") {
  std::vector<std::string> inputs = {
      "",
      // oneof members: repeated ones merge, the last member wins, another wire type is unknown
      ld(0x12, "\x0a\x01" "a") + ld(0x12, "\x12\x01" "b"),
      ld(0x12, "\x0a\x01" "a") + ld(0x1a, "") + ld(0x12, "\x22\x01" "c"),
      ld(0x12, "\x0a\x01" "a") + ld(0x1a, "\x12\x01" "d"),
      std::string("\x10\x01", 2) + ld(0x1a, ""),
      ld(0x12, "\x0a\x01"),  // a member that is malformed alone
      ld(0x12, "\x0a\x02" "a") + ld(0x12, "a"),
      // a map entry: missing key or value, repeated key, invalid UTF-8
      ld(0x22, ld(0x0a, "k")) + ld(0x22, ld(0x12, "v")) + ld(0x22, ld(0x0a, "k") + ld(0x12, "w")),
      ld(0x1a, ld(0x22, ld(0x0a, "\xff"))),
      // enum values with no name, negative ones as ten-byte varints
      std::string("\x58\x05", 2),
      std::string("\x58\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),
      std::string("\x20\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11),
      // invalid UTF-8 in a string field; a bytes field takes anything
      ld(0x0a, "\xff"),
      ld(0x0a, "\xc0\x80"),
      ld(0x0a, "\xed\xa0\x80"),
      ld(0x12, "\xf4\x90\x80\x80"),
      ld(0x0a, "\xe2\x82\xac"),
      // an unknown field of each wire type, and field 7 (reserved in EncryptedData)
      std::string("\x38\x01\x41\x00\x00\x00\x00\x00\x00\x00\x00\x45\x00\x00\x00\x00", 16) + ld(0x7a, "x"),
  };
  // Groups nested to protobuf's limit and one more, at the top and inside each
  // kind of nested message (oneof member, map entry, ExportedDevice's lists).
  for (size_t n : {99, 100, 101}) {
    auto groups = repeat("\x2b", n) + repeat("\x2c", n);
    inputs.push_back(groups);
    inputs.push_back(ld(0x12, groups));
    inputs.push_back(ld(0x1a, groups));
    inputs.push_back(ld(0x2a, groups));
    inputs.push_back(ld(0x1a, ld(0x22, groups)));
  }
  for (const auto& type : towns::vectors::known_messages()) {
    for (const auto& in : inputs) agree(type, in);
  }
}
