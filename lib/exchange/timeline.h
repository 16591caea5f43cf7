// Running a key exchange timeline through this library's engine (internal):
// the one copy of what replaying a keyExchangeTrace vector needs
// (docs/vectors.md), used by the vector verifier in the library and by the
// tools (towns-e2ee exchange, docs/exchange-diff.md), which also give the same
// timeline to a peer's engine (TimelinePeer) and compare the two.
//
// A timeline is {"start": <engine_start request>, "steps": [{"at_ms", "event"}],
// "sessions": [ids the timeline made]}, optionally "expected": the outputs our
// engine must give at each point (start, then before and after each step, then
// the end), as trace_timeline builds from a recorded trace.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace towns::trace {

// Where the timelines' clocks start (ms); trace times count from here.
inline constexpr int64_t kTimelineStartMs = 1'750'000'000'000;

// An output as compared: no time, and the ids of sessions the engine made
// itself (a sent message's new session) replaced by "new".
nlohmann::json normal(const nlohmann::json& output, const std::set<std::string>& known);
// The outputs of one point, normalized (time kept) and sorted: a trace's check.
std::vector<std::string> normal_all(const nlohmann::json& outputs, const std::set<std::string>& known);
// Outputs as a trace records them: normalized, the time kept.
nlohmann::json recorded(const nlohmann::json& outputs, const std::set<std::string>& known);

// A second engine given the same timeline (the tools' peer driver).
class TimelinePeer {
 public:
  virtual ~TimelinePeer() = default;
  virtual void start(const nlohmann::json& start) = 0;  // the timeline's "start"
  virtual void advance(int64_t to_ms) = 0;
  virtual void input(const nlohmann::json& event) = 0;
  virtual nlohmann::json outputs() = 0;  // its outputs since the last call
};

struct TimelineOptions {
  TimelinePeer* peer = nullptr;
  // Without expected outputs: each input is moved this far from the moments our
  // engine acts (and the rest of the timeline with it), so that a peer that acts
  // late never sees an input and an action in another order. 0: not moved.
  int64_t quiet_ms = 0;
  // Called at each point with our outputs and, with a peer, the peer's.
  std::function<void(const std::string& where, const nlohmann::json& ours, const nlohmann::json* theirs)> on_point;
};

struct TimelineRun {
  bool matches = true;     // our outputs are the expected ones (true when none are)
  std::string first_diff;  // where they first differ ("" when they match)
  nlohmann::json trace;    // the timeline with our outputs at each point (a trace vector's test)
  nlohmann::json ours = nlohmann::json::array(), theirs = nlohmann::json::array();  // every output
  std::vector<std::pair<int64_t, std::string>> points;  // when each input was given, and its name
  int64_t end_ms = 0;
};

// Runs the timeline through a fresh EngineWorld (and options.peer). Throws what
// the world throws for a timeline it cannot run (towns::Error, or nlohmann's
// exceptions for a missing or mistyped field).
TimelineRun run_timeline(const nlohmann::json& timeline, const TimelineOptions& options = {});

// A keyExchangeTrace test back as a timeline whose expected outputs are the
// recorded ones.
nlohmann::json trace_timeline(const nlohmann::json& test);

// One keyExchangeTrace test replayed through this library's engine: "" when
// every output is as recorded, else what differs.
std::string check_trace(const nlohmann::json& test);

}  // namespace towns::trace
