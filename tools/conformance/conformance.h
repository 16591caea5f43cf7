// towns-e2ee conformance: the interop scenarios run with this library's own
// driver (the reference) as the counterpart of one or two peer drivers
// (docs/driver.md, "The conformance suite").
//
// A scenario is a function of a Ctx. It names its roles (A, B, and C where it
// has a third device) and asks the Ctx for a driver of a role; the runner calls
// it once for each assignment of the reference and the peer to the roles
// (never all reference). Each call of Ctx::a() starts a new driver process of
// role A's implementation, as a scenario that restarts a device needs.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "peer.h"

namespace towns::conformance {

using json = nlohmann::json;

struct Options {
  std::vector<std::string> peers;  // one or two driver commands
  std::string report_dir;          // "" for no report files
  std::string only;                // "" for every scenario; else those whose name contains it
  int timeout_ms = 60000;          // per driver command
  bool quiet = false;              // no progress lines on stderr
  std::string vectors_dir;         // also run this corpus through each peer ("" for none)
};

// Returns the exit status: 0 when every counted run passed (documented
// deviations included), 1 otherwise.
int run_conformance(const Options& options);

// A check that did not hold: what was expected and what came.
struct Failure {
  std::string why;
  json expected;
  json actual;
};

// A scenario that cannot run with this peer (the reason says why).
struct NotExpressible {
  std::string why;
};

class Ctx;

// One driver process playing a role.
class Driver {
 public:
  Driver(Ctx& ctx, char role, int who, std::string command, int timeout_ms);
  // The reply, ok or not; PeerError when none came.
  json call(const std::string& cmd, json args = json::object());
  // The reply, which must be ok.
  json ok(const std::string& cmd, json args = json::object());
  // The reply, which must be the error code.
  json err(const std::string& cmd, json args, const std::string& code);
  // A raw line and its reply.
  json raw(const std::string& line);
  // quit, and the exit status.
  int quit();
  // Stops the process if it still runs; what it wrote to stderr (its tail).
  std::string stop_and_take_stderr();
  bool is_peer() const { return who_ != 0; }
  char role() const { return role_; }
  // "A (peer)", "B (reference)"
  const std::string& name() const { return name_; }

 private:
  void log(const std::string& cmd);
  Ctx& ctx_;
  char role_;
  int who_;  // 0 reference, 1 the first peer, 2 the second
  bool used_ = false;  // a request was sent
  bool done_ = false;  // quit was sent
  int exit_code_ = 0;
  std::string name_;
  tools::Peer peer_;
};

class Ctx {
 public:
  Ctx(std::string dir, std::vector<std::string> commands, std::vector<int> who, int timeout_ms)
      : dir(std::move(dir)), commands_(std::move(commands)), who_(std::move(who)), timeout_ms_(timeout_ms) {}
  Driver& a() { return make('A'); }
  Driver& b() { return make('B'); }
  Driver& c() { return make('C'); }
  Driver& make(char role);
  bool is_peer(char role) const { return who_.at(static_cast<size_t>(role - 'A')) != 0; }

  // d answered what the canonical client documents (docs/compat.md) where the
  // reference answers otherwise: a deviation when d is a peer and matches,
  // else a Failure with what the reference expects.
  void client_behaviour(Driver& d, bool matches, const std::string& what, json expected, json actual);

  const std::string dir;  // a fresh directory for the run's store files

  // For the runner.
  std::deque<std::unique_ptr<Driver>> drivers;
  json exchanges = json::array();
  std::vector<std::string> deviations;
  bool peer_acted = false;
  bool peer_started = false;

 private:
  std::vector<std::string> commands_;  // [reference, peer 1, peer 2]
  std::vector<int> who_;               // per role
  int timeout_ms_;
};

struct Scenario {
  std::string name;
  std::string section;  // "protocol.md 5.3, 5.5"
  std::string roles;    // "AB" or "ABC"
  void (*run)(Ctx&);
};

// The scenarios, in the order the runner runs them.
void add_basic_scenarios(std::vector<Scenario>& out);
void add_key_scenarios(std::vector<Scenario>& out);
void add_store_scenarios(std::vector<Scenario>& out);

// Helpers shared by the scenario files.
namespace h {
inline const std::string kMegolm = "r.group-encryption.v1.aes-sha2";
inline const std::string kHybrid = "grpaes";
inline const std::string kStream = "20" + [] { std::string s; for (int i = 0; i < 31; ++i) s += "ab"; return s; }();
inline const std::string kOtherStream = "20" + [] { std::string s; for (int i = 0; i < 31; ++i) s += "cd"; return s; }();
std::string repeat(const std::string& s, size_t n);
inline const std::string kHash = repeat("11", 32);
inline const std::string kUserA = repeat("a1", 20);
inline const std::string kUserB = repeat("b2", 20);
inline const std::string kUserC = repeat("c3", 20);

std::string b64(const std::string& utf8);                 // base64 of text
std::string text(const json& b64);                        // the text of base64
std::vector<uint8_t> bytes(const json& b64);              // the bytes of base64
std::string pb64(const std::vector<uint8_t>& b);          // base64 of bytes
void expect(bool cond, const std::string& what, json actual = nullptr);
void same(const json& actual, const json& expected, const std::string& what);
json init(Driver& d, const std::string& user, json extra = json::object());
json device(const json& init_reply);  // {device_key, fallback_key}
json encrypt(Driver& d, const std::string& alg, const std::string& msg, json extra = json::object(),
             const std::string& stream = kStream);
std::string decrypt_text(Driver& d, const json& event, const std::string& stream = kStream);
json share_to(Driver& from, Driver& to, const json& to_device, const std::string& alg, json ids,
              const std::string& stream = kStream);
bool is_error(const json& reply, const std::string& code);
json sorted(json a);
}  // namespace h

}  // namespace towns::conformance
