#include "exchange/timeline.h"

#include <algorithm>

#include "exchange/engine_world.h"

namespace towns::trace {

using nlohmann::json;

json normal(const json& o, const std::set<std::string>& known) {
  json n = o;
  n.erase("at_ms");
  if (n.contains("session_ids")) {
    bool made = false;
    for (auto& id : n["session_ids"]) {
      if (known.count(id.get<std::string>()) == 0) {
        id = "new";
        made = true;
      }
    }
    // Where an id was replaced, its place in a sorted list is unknown.
    if (made) std::sort(n["session_ids"].begin(), n["session_ids"].end());
  }
  return n;
}

std::vector<std::string> normal_all(const json& list, const std::set<std::string>& known) {
  std::vector<std::string> out;
  for (const auto& o : list) {
    auto n = normal(o, known);
    n["at_ms"] = o.value("at_ms", int64_t{0});
    out.push_back(n.dump());
  }
  std::sort(out.begin(), out.end());
  return out;
}

json recorded(const json& list, const std::set<std::string>& known) {
  json out = json::array();
  for (const auto& o : list) {
    auto n = normal(o, known);
    n["at_ms"] = o.value("at_ms", int64_t{0});
    out.push_back(std::move(n));
  }
  return out;
}

TimelineRun run_timeline(const json& timeline, const TimelineOptions& options) {
  TimelineRun res;
  TimelinePeer* peer = options.peer;
  std::set<std::string> known;
  for (const auto& id : timeline.at("sessions")) known.insert(id.get<std::string>());
  const json* expected_steps = timeline.contains("expected") ? &timeline["expected"] : nullptr;
  auto ours = EngineWorld::start(timeline.at("start"));
  if (peer) peer->start(timeline["start"]);
  json trace_steps = json::array();
  int64_t shift = 0;
  size_t point = 0;
  auto check = [&](const std::string& where, const json& mine) {
    json theirs = json::array();
    if (peer) theirs = peer->outputs();
    if (expected_steps) {
      if (point >= expected_steps->size() || normal_all((*expected_steps)[point], known) != normal_all(mine, known)) {
        if (res.first_diff.empty()) res.first_diff = "  at " + where + ": our engine differs from the recorded trace\n";
        res.matches = false;
      }
    }
    ++point;
    for (const auto& o : mine) res.ours.push_back(o);
    for (const auto& o : theirs) res.theirs.push_back(o);
    if (options.on_point) options.on_point(where, mine, peer ? &theirs : nullptr);
  };
  check("start", ours->take_outputs());
  trace_steps.push_back(json::array());
  int64_t last = kTimelineStartMs;
  size_t index = 0;
  for (const auto& step : timeline.at("steps")) {
    ++index;
    int64_t at = step.at("at_ms").get<int64_t>() + shift;
    if (!expected_steps && options.quiet_ms > 0) {
      // Keep the input away from the moments our engine acts.
      for (int guard = 0; guard < 100; ++guard) {
        auto due = ours->next_due();
        if (due.is_null()) break;
        int64_t d = due.get<int64_t>();
        if (d < at - options.quiet_ms || d > at) break;
        shift += d + options.quiet_ms - at;
        at = d + options.quiet_ms;
      }
    }
    at = std::max(at, last);
    last = at;
    ours->advance({{"to_ms", at}});
    if (peer) peer->advance(at);
    auto a1 = ours->take_outputs();
    std::string where = "step " + std::to_string(index) + " (" + step.at("event").at("type").get<std::string>() + " at " +
                        std::to_string(at - kTimelineStartMs) + " ms)";
    check("before " + where, a1);
    res.points.emplace_back(at, where);
    ours->input({{"event", step["event"]}});
    if (peer) peer->input(step["event"]);
    auto a2 = ours->take_outputs();
    check(where, a2);
    json s = step;
    s["at_ms"] = at;
    s["outputs_before"] = recorded(a1, known);
    s["outputs_after"] = recorded(a2, known);
    trace_steps.push_back(s);
  }
  int64_t end = last + 70000;
  res.end_ms = end;
  ours->advance({{"to_ms", end}});
  if (peer) peer->advance(end);
  auto fin = ours->take_outputs();
  check("the end (" + std::to_string(end - kTimelineStartMs) + " ms)", fin);

  // (A field the timeline lacks is null: a const json's [] must not be given a
  // missing key.)
  auto field = [&](const char* k) { return timeline.contains(k) ? timeline[k] : json(); };
  res.trace = {{"name", field("name")},
               {"section", field("section")},
               {"sessions", timeline["sessions"]},
               {"start", timeline["start"]},
               {"steps", json::array()},
               {"end_ms", end},
               {"outputs_at_end", recorded(fin, known)}};
  for (size_t i = 1; i < trace_steps.size(); ++i) res.trace["steps"].push_back(trace_steps[i]);
  for (const char* k : {"note", "documented_divergence"}) {
    if (timeline.contains(k)) res.trace[k] = timeline[k];
  }
  res.trace["outputs_at_start"] = json::array();
  return res;
}

json trace_timeline(const json& test) {
  json t = test;
  t["name"] = test.at("comment");
  json expected = json::array();
  expected.push_back(test.value("outputs_at_start", json::array()));
  for (const auto& s : test.at("steps")) {
    expected.push_back(s.at("outputs_before"));
    expected.push_back(s.at("outputs_after"));
  }
  expected.push_back(test.at("outputs_at_end"));
  t["expected"] = expected;
  return t;
}

std::string check_trace(const json& test) {
  // An id the timeline does not list is recorded as "new"; any other text
  // there would also read "new" when compared, and so go unchecked.
  std::set<std::string> known;
  for (const auto& id : test.at("sessions")) known.insert(id.get<std::string>());
  auto listed = [&](const json& outputs, const std::string& where) -> std::string {
    for (const auto& o : outputs) {
      if (!o.is_object() || !o.contains("session_ids")) continue;
      for (const auto& id : o["session_ids"]) {
        if (!id.is_string()) return where + ": a session id that is not text";
        if (id != "new" && known.count(id.get<std::string>()) == 0) {
          return where + ": session id " + id.get<std::string>() + " is neither in sessions nor \"new\"";
        }
      }
    }
    return {};
  };
  std::string why = listed(test.value("outputs_at_start", json::array()), "outputs_at_start");
  size_t index = 0;
  for (const auto& s : test.at("steps")) {
    ++index;
    if (why.empty()) why = listed(s.at("outputs_before"), "step " + std::to_string(index) + " outputs_before");
    if (why.empty()) why = listed(s.at("outputs_after"), "step " + std::to_string(index) + " outputs_after");
  }
  if (why.empty()) why = listed(test.at("outputs_at_end"), "outputs_at_end");
  if (!why.empty()) return "  " + why + "\n";
  auto r = run_timeline(trace_timeline(test));
  return r.matches ? std::string() : r.first_diff;
}

}  // namespace towns::trace
