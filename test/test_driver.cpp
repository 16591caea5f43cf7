// The conformance driver's command table (tools/driver.cpp): the one list of its
// commands, which docs/driver.md documents and the dispatch follows.
#include "helpers.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "driver.h"

using nlohmann::json;

namespace {

// The command names of docs/driver.md's "## Commands" table, in order.
std::vector<std::string> documented_commands() {
  std::ifstream in(std::string(TOWNS_TEST_DATA_DIR) + "/../../docs/driver.md");
  REQUIRE(in.good());
  std::vector<std::string> names;
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## Commands";
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    auto end = line.find('`', 3);
    REQUIRE(end != std::string::npos);
    names.push_back(line.substr(3, end - 3));
  }
  return names;
}

std::vector<json> run(const std::string& input) {
  std::istringstream in(input);
  std::ostringstream out;
  REQUIRE(towns::tools::run_driver(in, out) == 0);
  std::vector<json> replies;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) replies.push_back(json::parse(line));
  return replies;
}

}  // namespace

TEST_CASE("docs/driver.md documents exactly the driver's commands, in its order") {
  CHECK(documented_commands() == towns::tools::driver_commands());
  CHECK(towns::tools::driver_commands().size() == 21);
}

TEST_CASE("the driver dispatches every command of its table and only those") {
  auto commands = towns::tools::driver_commands();
  std::string input;
  int id = 0;
  // Before init: every version 1 command but init and quit needs a device; the
  // engine commands need engine_start.
  for (const auto& c : commands) {
    if (c == "init" || c == "quit") continue;
    input += json{{"id", ++id}, {"cmd", c}}.dump() + "\n";
  }
  input += json{{"id", ++id}, {"cmd", "nope"}}.dump() + "\n";
  input += json{{"id", ++id}, {"cmd", "Init"}}.dump() + "\n";
  input += json{{"id", ++id}, {"cmd", "quit"}}.dump() + "\n";
  input += json{{"id", ++id}, {"cmd", "device"}}.dump() + "\n";  // after quit: never read
  auto replies = run(input);
  REQUIRE(replies.size() == commands.size() - 2 + 3);
  size_t i = 0;
  for (const auto& c : commands) {
    if (c == "init" || c == "quit") continue;
    INFO(c);
    if (c == "engine_start") {
      // Version 2's engine needs no device; started without arguments it says what is missing.
      CHECK(replies[i] == json{{"id", i + 1}, {"ok", false},
                               {"error", {{"code", "INVALID_ARGUMENT"}, {"message", "INVALID_ARGUMENT: missing argument user_id"}}}});
    } else if (c == "engine_stop") {
      CHECK(replies[i] == json{{"id", i + 1}, {"ok", true}});  // stopping nothing is fine
    } else if (c.rfind("engine_", 0) == 0) {
      CHECK(replies[i] == json{{"id", i + 1}, {"ok", false},
                               {"error", {{"code", "NOT_INITIALIZED"}, {"message", "NOT_INITIALIZED: send engine_start first"}}}});
    } else {
      CHECK(replies[i] == json{{"id", i + 1}, {"ok", false},
                               {"error", {{"code", "NOT_INITIALIZED"}, {"message", "NOT_INITIALIZED: send init first"}}}});
    }
    ++i;
  }
  CHECK(replies[i] == json{{"id", i + 1}, {"ok", false},
                           {"error", {{"code", "UNKNOWN_COMMAND"}, {"message", "UNKNOWN_COMMAND: unknown command nope"}}}});
  ++i;
  CHECK(replies[i] == json{{"id", i + 1}, {"ok", false},
                           {"error", {{"code", "UNKNOWN_COMMAND"}, {"message", "UNKNOWN_COMMAND: unknown command Init"}}}});
  ++i;
  CHECK(replies[i] == json{{"id", i + 1}, {"ok", true}});
}

TEST_CASE("after init the device commands reach their handlers") {
  auto replies = run(R"({"id":1,"cmd":"init","user_id":"ab","store":"memory"})" "\n"
                     R"({"id":2,"cmd":"device"})" "\n"
                     R"({"id":3,"cmd":"session_ids","stream_id":"20ff"})" "\n"
                     R"({"id":4,"cmd":"init","store":"memory"})" "\n");
  REQUIRE(replies.size() == 4);
  CHECK(replies[0]["ok"] == true);
  CHECK(replies[0]["device_key"].get<std::string>().size() == 43);
  CHECK(replies[1] == json{{"id", 2}, {"ok", true}, {"device_key", replies[0]["device_key"]},
                           {"fallback_key", replies[0]["fallback_key"]}});
  CHECK(replies[2] == json{{"id", 3}, {"ok", true}, {"session_ids", json::array()}});
  // init requires user_id even though the device keeps none.
  CHECK(replies[3]["ok"] == false);
  CHECK(replies[3]["error"]["code"] == "INVALID_ARGUMENT");
}
