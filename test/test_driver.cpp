// The conformance driver's command table (tools/driver.cpp): the one list of its
// commands, which docs/driver.md documents and the dispatch follows.
#include "helpers.h"

#include <nlohmann/json.hpp>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>

#include "driver.h"
#include "store_fixtures.h"
#include "towns/proto/protocol.pb.h"

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

std::vector<json> run(const std::string& input, const towns::tools::DriverLimits& limits = {}) {
  std::istringstream in(input);
  std::ostringstream out;
  REQUIRE(towns::tools::run_driver(in, out, limits) == 0);
  std::vector<json> replies;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) replies.push_back(json::parse(line));
  return replies;
}

}  // namespace

TEST_CASE("docs/driver.md documents exactly the driver's commands, in its order") {
  CHECK(documented_commands() == towns::tools::driver_commands());
  CHECK(towns::tools::driver_commands().size() == 25);
}

TEST_CASE("the driver dispatches every command of its table and only those") {
  auto commands = towns::tools::driver_commands();
  // The derived scheme and media commands need no device; without arguments they
  // name the first one missing.
  const std::map<std::string, std::string> stateless = {
      {"derived_encrypt", "key_phrase"},
      {"derived_decrypt", "key_phrase"},
      {"media_encrypt", "data_b64"},
      {"media_decrypt", "secret_key_hex"},
  };
  std::string input;
  int id = 0;
  // Before init: every version 1 command but init, quit and the device-free ones
  // needs a device; the engine commands need engine_start.
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
    if (auto it = stateless.find(c); it != stateless.end()) {
      CHECK(replies[i] == json{{"id", i + 1}, {"ok", false},
                               {"error", {{"code", "INVALID_ARGUMENT"},
                                          {"message", "INVALID_ARGUMENT: missing argument " + it->second}}}});
    } else if (c == "engine_start") {
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
  auto replies = run(R"({"id":1,"cmd":"init","user_id":"0xabababababababababababababababababababab","store":"memory"})" "\n"
                     R"({"id":2,"cmd":"device"})" "\n"
                     R"({"id":3,"cmd":"session_ids","stream_id":"20ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"})" "\n"
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

TEST_CASE("init's store mode: create refuses an existing path, open a missing or empty one") {
  test::TempDir dir;
  auto path = dir.file("d.db");
  auto init = [&](int id, const std::string& mode, const std::string& p) {
    json store = {{"sqlite", p}};
    if (!mode.empty()) store["mode"] = mode;
    return json{{"id", id}, {"cmd", "init"}, {"user_id", "0x" + std::string(40, 'a')}, {"store", store}}.dump() + "\n";
  };
  auto replies = run(init(1, "open", path) + init(2, "create", path) + init(3, "create", path) + init(4, "open", path) +
                     init(5, "", path) + init(6, "either", path) + init(7, "sometimes", path) +
                     init(8, "open", std::string("a\0b", 3)));
  REQUIRE(replies.size() == 8);
  auto code = [&](int i) { return replies[static_cast<size_t>(i)]["error"]["code"]; };
  CHECK(code(0) == "STORE_ERROR");
  CHECK(replies[1]["ok"] == true);
  CHECK(code(2) == "STORE_ERROR");
  for (int i : {3, 4, 5}) {
    CHECK(replies[static_cast<size_t>(i)]["ok"] == true);
    CHECK(replies[static_cast<size_t>(i)]["device_key"] == replies[1]["device_key"]);
  }
  CHECK(code(6) == "INVALID_ARGUMENT");
  CHECK(code(7) == "INVALID_ARGUMENT");
  std::ofstream(dir.file("empty.db")).close();
  CHECK(run(init(1, "open", dir.file("empty.db")))[0]["error"]["code"] == "STORE_ERROR");
}

TEST_CASE("the derived and media commands give the SDK's bytes and their error codes") {
  const std::string phrase = "0x1234567890abcdef1234567890abcdef12345678";
  const std::string ct = "RHf/5RLJ8HQ+5vD50zmn8OQdOqjuVkFR8FciTkHVJJ+bFi3K";
  using towns::crypto::Base64Padding;
  auto b64 = [](const std::string& s) { return towns::crypto::base64_encode(towns::crypto::as_bytes(s), Base64Padding::kPadded); };
  std::string pb = std::string("\x0a\x30", 2) + ct + "\x12\x15" + "r.aes-256-gcm.derived";
  std::string other_alg = std::string("\x0a\x30", 2) + ct + "\x12\x06" + "grpaes";
  std::string bad_b64 = std::string("\x0a\x04", 2) + "%%%%" + "\x12\x15" + "r.aes-256-gcm.derived";
  const std::string key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  const json ivs = json::array({"a0a0a0a0a0a0a0a0a0a0a0a0", "a1a1a1a1a1a1a1a1a1a1a1a1", "a2a2a2a2a2a2a2a2a2a2a2a2"});
  auto whole = towns::crypto::hex_decode("9bd09f2efbacf9c26cf0f068c9c51932d5af47513dd08d53a8e4");
  json whole_chunks = json::array();
  for (size_t i = 0; i < whole.size(); i += 20) {
    whole_chunks.push_back({{"ct_b64", towns::crypto::base64_encode(std::span<const uint8_t>(whole).subspan(i, std::min<size_t>(20, whole.size() - i)), Base64Padding::kPadded)}});
  }
  std::vector<json> requests = {
      {{"cmd", "derived_encrypt"}, {"key_phrase", phrase}, {"plaintext_b64", b64("towns derived scheme")}},
      {{"cmd", "derived_decrypt"}, {"key_phrase", phrase}, {"encrypted_data_pb", b64(pb)}},
      {{"cmd", "media_encrypt"}, {"data_b64", b64("abcdefghij")}, {"chunk_size", 20}, {"key_hex", key}, {"ivs_hex", ivs}},
      {{"cmd", "media_decrypt"}, {"secret_key_hex", key}, {"iv_hex", "b0b0b0b0b0b0b0b0b0b0b0b0"}, {"chunks", whole_chunks}},
      {{"cmd", "derived_encrypt"}, {"key_phrase", phrase}, {"plaintext_b64", ""}},
      {{"cmd", "derived_decrypt"}, {"key_phrase", phrase}, {"encrypted_data_pb", b64(other_alg)}},
      {{"cmd", "derived_decrypt"}, {"key_phrase", "0x00"}, {"encrypted_data_pb", b64(pb)}},
      {{"cmd", "derived_decrypt"}, {"key_phrase", phrase}, {"encrypted_data_pb", b64(bad_b64)}},
      {{"cmd", "derived_decrypt"}, {"key_phrase", phrase}, {"encrypted_data_pb", "/w=="}},
      {{"cmd", "media_encrypt"}, {"data_b64", ""}, {"chunk_size", 20}},
      {{"cmd", "media_encrypt"}, {"data_b64", b64("abc")}, {"chunk_size", 16}},
      {{"cmd", "media_encrypt"}, {"data_b64", b64("abc")}, {"chunk_size", 0}},
      {{"cmd", "media_encrypt"}, {"data_b64", b64("abc")}, {"chunk_size", 20}, {"key_hex", key}},
      {{"cmd", "media_decrypt"}, {"secret_key_hex", key}, {"chunks", json::array()}},
      {{"cmd", "media_decrypt"}, {"secret_key_hex", key}, {"chunks", {{{"ct_b64", b64("0123456789abcdefg")}}}}},
      {{"cmd", "media_decrypt"}, {"secret_key_hex", key}, {"chunks", {{{"ct_b64", b64("0123456789abcdefg")}, {"iv_hex", "00"}}}}},
  };
  std::string input;
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i]["id"] = i + 1;
    input += requests[i].dump() + "\n";
  }
  auto replies = run(input);
  REQUIRE(replies.size() == requests.size());
  CHECK(replies[0] == json{{"id", 1}, {"ok", true}, {"encrypted_data_pb", b64(pb)}});
  CHECK(replies[1] == json{{"id", 2}, {"ok", true}, {"plaintext_b64", b64("towns derived scheme")}});
  CHECK(replies[2]["secret_key_hex"] == key);
  CHECK(replies[2]["chunks"] ==
        json{{{"ct_b64", towns::crypto::base64_encode(towns::crypto::hex_decode("44d30187aa898e9322150c729a462f314892420b"), Base64Padding::kPadded)}, {"iv_hex", ivs[0]}},
             {{"ct_b64", towns::crypto::base64_encode(towns::crypto::hex_decode("c0a69c365ae8fa275aa34f30adef10d606a4ed92"), Base64Padding::kPadded)}, {"iv_hex", ivs[1]}},
             {{"ct_b64", towns::crypto::base64_encode(towns::crypto::hex_decode("3ce43c3a62517b01e22b83edb6aacb4457b7"), Base64Padding::kPadded)}, {"iv_hex", ivs[2]}}});
  CHECK(replies[3] == json{{"id", 4}, {"ok", true}, {"data_b64", b64("abcdefghij")}});
  const std::vector<std::string> codes = {"EMPTY_PAYLOAD", "UNKNOWN_ALGORITHM", "DECRYPTION_FAILED", "INVALID_ARGUMENT",
                                          "INVALID_ARGUMENT", "EMPTY_PAYLOAD", "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                                          "INVALID_ARGUMENT", "INVALID_ARGUMENT", "INVALID_ARGUMENT", "DECRYPTION_FAILED"};
  for (size_t i = 0; i < codes.size(); ++i) {
    INFO(requests[4 + i].dump());
    CHECK(replies[4 + i]["ok"] == false);
    CHECK(replies[4 + i]["error"]["code"] == codes[i]);
  }
}

namespace {

const std::string kUser = "0x" + std::string(40, 'a');
const std::string kStreamId = "20" + std::string(62, 'e');
const std::string kInit = json{{"id", 1}, {"cmd", "init"}, {"user_id", kUser}, {"store", "memory"}}.dump() + "\n";
const json kDevice = {{"id", 99}, {"cmd", "device"}};

// The reply's error code, or "" for ok.
std::string code_of(const json& reply) { return reply["ok"] == true ? "" : reply["error"]["code"].get<std::string>(); }

}  // namespace

TEST_CASE("driver limits: an over-long line is dropped unread and answered LIMIT_EXCEEDED") {
  // 20 MiB of a JSON string, then a normal request.
  std::string huge = R"({"id":5,"cmd":"device","x":")" + std::string(20u << 20, 'a') + "\"}\n";
  auto replies = run(kInit + huge + kDevice.dump() + "\n");
  REQUIRE(replies.size() == 3);
  CHECK(replies[1]["id"].is_null());  // the line is never parsed, so its id is unknown
  CHECK(code_of(replies[1]) == "LIMIT_EXCEEDED");
  CHECK(replies[1]["error"]["message"].get<std::string>().find("16777216 bytes") != std::string::npos);
  CHECK(replies[2]["id"] == 99);
  CHECK(code_of(replies[2]).empty());

  // The limit is the line's length without its newline, and configurable.
  towns::tools::DriverLimits small;
  small.max_line_bytes = 40;
  std::string fits = json{{"id", 1}, {"cmd", "nope"}}.dump();
  fits += std::string(40 - fits.size(), ' ');
  replies = run(fits + "\n" + fits + " \n" + fits, small);
  REQUIRE(replies.size() == 3);
  CHECK(code_of(replies[0]) == "UNKNOWN_COMMAND");
  CHECK(code_of(replies[1]) == "LIMIT_EXCEEDED");
  CHECK(code_of(replies[2]) == "UNKNOWN_COMMAND");  // the last line needs no newline
}

TEST_CASE("driver limits: too many list items are refused before any work") {
  json ids = json::array();
  for (int i = 0; i < 10001; ++i) ids.push_back("x");
  json share = {{"id", 2}, {"cmd", "share"}, {"stream_id", kStreamId}, {"algorithm", "grpaes"},
                {"session_ids", ids}, {"devices", json::array()}};
  json import = {{"id", 3}, {"cmd", "import_sessions"}, {"sessions", json::array()}};
  for (int i = 0; i < 10001; ++i) import["sessions"].push_back({{"streamId", kStreamId}, {"sessionId", "s"}, {"sessionKey", "k"}, {"algorithm", "grpaes"}});
  json wide = {{"id", 4}, {"cmd", "device"}};  // an object with too many members
  for (int i = 0; i < 10001; ++i) wide["k" + std::to_string(i)] = 1;
  json before_init = {{"id", 5}, {"cmd", "solicit"}, {"stream_id", kStreamId}, {"missing_session_ids", ids}};
  // A protobuf argument's repeated field counts too.
  river::UserInboxPayload::GroupEncryptionSessions pb;
  pb.set_stream_id(std::string(32, '\x20'));
  for (int i = 0; i < 10001; ++i) pb.add_session_ids("s");
  auto pb_b64 = towns::crypto::base64_encode(towns::crypto::as_bytes(pb.SerializeAsString()), towns::crypto::Base64Padding::kPadded);
  json receive = {{"id", 6}, {"cmd", "receive_sessions"}, {"group_encryption_sessions_pb", pb_b64}};
  auto replies = run(before_init.dump() + "\n" + kInit + share.dump() + "\n" + import.dump() + "\n" + wide.dump() + "\n" +
                     receive.dump() + "\n" + kDevice.dump() + "\n");
  REQUIRE(replies.size() == 7);
  CHECK(code_of(replies[0]) == "LIMIT_EXCEEDED");  // limits come before NOT_INITIALIZED
  CHECK(replies[0]["id"].is_null());                // refused while parsing: the request is not read whole
  for (size_t i : {2, 3, 4, 5}) {
    INFO(replies[i].dump());
    CHECK(code_of(replies[i]) == "LIMIT_EXCEEDED");
  }
  CHECK(replies[2]["error"]["message"].get<std::string>().find("session_ids holds more than 10000 items") != std::string::npos);
  CHECK(replies[5]["error"]["message"].get<std::string>().find("group_encryption_sessions_pb.session_ids") != std::string::npos);
  CHECK(code_of(replies[6]).empty());

  // At the limit a list is read as usual.
  ids.erase(ids.begin());
  share["session_ids"] = ids;
  replies = run(kInit + share.dump() + "\n");
  CHECK(code_of(replies[1]) == "SESSION_NOT_FOUND");
}

TEST_CASE("driver limits: deep nesting is refused while parsing") {
  std::string deep = R"({"id":7,"cmd":"device","x":)" + std::string(500000, '[') + std::string(500000, ']') + "}";
  std::string just_fits = R"({"id":8,"cmd":"nope","x":)" + std::string(31, '[') + std::string(31, ']') + "}";
  std::string one_more = R"({"id":9,"cmd":"nope","x":)" + std::string(32, '[') + std::string(32, ']') + "}";
  auto replies = run(kInit + deep + "\n" + just_fits + "\n" + one_more + "\n" + kDevice.dump() + "\n");
  REQUIRE(replies.size() == 5);
  CHECK(code_of(replies[1]) == "LIMIT_EXCEEDED");
  CHECK(code_of(replies[2]) == "UNKNOWN_COMMAND");  // 32 levels, the request object included
  CHECK(code_of(replies[3]) == "LIMIT_EXCEEDED");
  CHECK(code_of(replies[4]).empty());
}

TEST_CASE("driver limits: error messages show at most a short prefix of a value") {
  std::string long_value(500000, 'z');
  json bad_alg = {{"id", 2}, {"cmd", "encrypt"}, {"stream_id", kStreamId}, {"algorithm", long_value}, {"plaintext_b64", "AA=="}};
  json bad_cmd = {{"id", 3}, {"cmd", long_value}};
  json bad_stream = {{"id", 4}, {"cmd", "session_ids"}, {"stream_id", "0x" + long_value}};
  json bad_user = {{"id", 5}, {"cmd", "init"}, {"user_id", long_value}, {"store", "memory"}};
  auto replies = run(kInit + bad_alg.dump() + "\n" + bad_cmd.dump() + "\n" + bad_stream.dump() + "\n" + bad_user.dump() + "\n");
  REQUIRE(replies.size() == 5);
  for (size_t i = 1; i < replies.size(); ++i) {
    INFO(replies[i].dump());
    CHECK_FALSE(code_of(replies[i]).empty());
    auto message = replies[i]["error"]["message"].get<std::string>();
    CHECK(message.size() < 200);
    CHECK(message.find(std::string(62, 'z') + "\u2026") != std::string::npos);  // 64 bytes of the value, "0x" included
    CHECK(message.find(std::string(65, 'z')) == std::string::npos);
  }
  CHECK(code_of(replies[2]) == "UNKNOWN_COMMAND");
}

TEST_CASE("driver inputs: NUL bytes, non-canonical ids and miniblocks are refused with INVALID_ARGUMENT") {
  const std::string upper = "20" + std::string(62, 'E');
  const std::string hash(64, '0');
  auto encrypt = [&](const std::string& stream, const json& num, const std::string& hash_hex) {
    return json{{"id", 2}, {"cmd", "encrypt"}, {"stream_id", stream}, {"algorithm", "grpaes"}, {"plaintext_b64", "AA=="},
                {"miniblock_num", num}, {"miniblock_hash_hex", hash_hex}}.dump() + "\n";
  };
  std::string input = kInit;
  input += std::string(R"({"id":2,"cmd":"device")") + '\0' + "}\n";                     // a raw NUL in the line
  input += json{{"id", 2}, {"cmd", "session_ids"}, {"stream_id", kStreamId + std::string(1, '\0')}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "session_ids"}, {"stream_id", "0x"}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "session_ids"}, {"stream_id", "0x" + kStreamId}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "session_ids"}, {"stream_id", upper}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "session_ids"}, {"stream_id", "ab"}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "session_ids"}, {"stream_id", "20" + std::string(60, 'e')}}.dump() + "\n";
  input += encrypt(kStreamId, json::parse("18446744073709551615"), hash);
  input += encrypt(kStreamId, "18446744073709551615", hash);
  input += encrypt(kStreamId, "-1", hash);
  input += encrypt(kStreamId, 0, "");
  input += encrypt(kStreamId, 0, "00");
  input += json{{"id", 2}, {"cmd", "init"}, {"user_id", "ab"}, {"store", "memory"}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "export_sessions"}, {"stream_id", upper}}.dump() + "\n";
  input += json{{"id", 2}, {"cmd", "init"}, {"user_id", kUser}, {"store", {{"sqlite", std::string("/tmp/x\0y", 8)}}}}.dump() + "\n";
  // Accepted: the canonical forms, a 42-digit space id, miniblock 2^63-1.
  input += json{{"id", 3}, {"cmd", "session_ids"}, {"stream_id", "10" + std::string(40, 'e')}}.dump() + "\n";
  input += encrypt(kStreamId, "9223372036854775807", hash);
  auto replies = run(input);
  REQUIRE(replies.size() == 18);
  for (size_t i = 1; i < 16; ++i) {
    INFO(i << ": " << replies[i].dump());
    CHECK(code_of(replies[i]) == "INVALID_ARGUMENT");
  }
  CHECK(code_of(replies[16]).empty());
  CHECK(code_of(replies[17]).empty());
}

TEST_CASE("towns-e2ee driver is not dumpable and reads its limit options") {
  auto child = [](std::vector<std::string> args) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      int rc = towns::tools::run_driver_command(static_cast<int>(argv.size()), argv.data());
      // Exit status: the command's, plus 100 when the process is still dumpable.
      _exit(rc + (prctl(PR_GET_DUMPABLE) != 0 ? 100 : 0));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  CHECK(child({"towns-e2ee", "driver"}) == 0);
  CHECK(child({"towns-e2ee", "driver", "--max-line-bytes", "4096", "--max-list-items", "5", "--max-depth", "8"}) == 0);
  CHECK(child({"towns-e2ee", "driver", "--max-line-bytes", "0"}) == 2);
  CHECK(child({"towns-e2ee", "driver", "--max-line-bytes"}) == 2);
  CHECK(child({"towns-e2ee", "driver", "--bogus", "1"}) == 2);
}
