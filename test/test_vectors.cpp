// The committed vector corpus verifies, and is exactly what the generator makes
// from its recorded seed.
#include "helpers.h"
#include "store_fixtures.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "vectors.h"

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
  auto text = test::read_file(path);
  auto at = text.find("\"sessionId\": \"");
  REQUIRE(at != std::string::npos);
  text[at + 14] = text[at + 14] == 'a' ? 'b' : 'a';
  std::ofstream(path, std::ios::trunc) << text;
  auto r = towns::vectors::verify(out);
  CHECK(r.failed == 1);
}
