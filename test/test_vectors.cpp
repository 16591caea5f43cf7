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
