// The conformance runner (conformance.h): pairings, runs, counting, the report.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "conformance.h"
#include "driver_verify.h"
#include "report.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"

namespace towns::conformance {

using tools::PeerError;

namespace {

const char* kWhoNames1[] = {"reference", "peer"};
const char* kWhoNames2[] = {"reference", "peer 1", "peer 2"};

// Long strings (a megabyte of media) cut for the report.
json cut_long(json j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s.size() > 600) return s.substr(0, 200) + "… (" + std::to_string(s.size()) + " characters)";
  } else if (j.is_structured()) {
    for (auto& v : j) v = cut_long(std::move(v));
  }
  return j;
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command that runs this executable's own driver.
std::string reference_command() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error(ErrorCode::INVALID_ARGUMENT, "cannot find the running towns-e2ee (/proc/self/exe)");
  return quoted(self.string()) + " driver";
}

// Every assignment of drivers to n roles that the runner makes: each peer
// against the reference (never all reference), and with two peers, the two
// together (both present).
std::vector<std::vector<int>> assignments(size_t n, size_t peers) {
  std::vector<std::vector<int>> out;
  auto each = [&](int x, int y, auto keep) {
    for (size_t mask = 0; mask < (size_t{1} << n); ++mask) {
      std::vector<int> who(n);
      for (size_t i = 0; i < n; ++i) who[i] = (mask >> (n - 1 - i)) & 1 ? y : x;
      if (keep(who)) out.push_back(who);
    }
  };
  for (int p = 1; p <= static_cast<int>(peers); ++p) {
    each(0, p, [](const std::vector<int>& w) { return std::any_of(w.begin(), w.end(), [](int v) { return v != 0; }); });
  }
  if (peers == 2) {
    each(1, 2, [](const std::vector<int>& w) {
      return std::count(w.begin(), w.end(), 1) > 0 && std::count(w.begin(), w.end(), 2) > 0;
    });
  }
  return out;
}

}  // namespace

// ---- Driver and Ctx

Driver::Driver(Ctx& ctx, char role, int who, std::string command, int timeout_ms)
    : ctx_(ctx), role_(role), who_(who), peer_(std::move(command), timeout_ms, tools::PeerStderr::kCapture) {
  name_ = std::string(1, role) + " (" + (who == 0 ? "reference" : who == 1 ? "peer" : "peer 2") + ")";
}

void Driver::log(const std::string& cmd) {
  bool answered = false;
  for (auto& x : peer_.take_exchanges()) {
    answered = answered || !x.reply.is_null();
    ctx_.exchanges.push_back({{"driver", name_}, {"sent", std::move(x.sent)}, {"reply", std::move(x.reply)}, {"failure", x.failure}});
  }
  if (is_peer()) {
    ctx_.peer_started = true;
    if (answered && cmd != "init" && cmd != "quit") ctx_.peer_acted = true;
  }
}

json Driver::call(const std::string& cmd, json args) {
  args["cmd"] = cmd;
  used_ = true;
  try {
    auto reply = peer_.request(std::move(args));
    log(cmd);
    return reply;
  } catch (const PeerError& e) {
    log(cmd);
    throw PeerError(name_ + " " + cmd + ": " + e.what());
  }
}

json Driver::ok(const std::string& cmd, json args) {
  auto reply = call(cmd, std::move(args));
  if (reply.value("ok", false) != true) {
    throw Failure{name_ + " " + cmd + " failed", "ok", reply.value("error", json())};
  }
  return reply;
}

json Driver::err(const std::string& cmd, json args, const std::string& code) {
  auto reply = call(cmd, std::move(args));
  // A refusal checked against its code is the peer acting, init's included.
  if (is_peer()) ctx_.peer_acted = true;
  if (!h::is_error(reply, code)) {
    throw Failure{name_ + " " + cmd + ": expected error " + code, code,
                  reply.value("ok", false) == true ? json("ok") : reply.value("error", json())};
  }
  return reply;
}

json Driver::raw(const std::string& line) {
  used_ = true;
  try {
    auto reply = peer_.raw(line);
    log("raw");
    return reply;
  } catch (const PeerError& e) {
    log("raw");
    throw PeerError(name_ + " (raw line): " + e.what());
  }
}

int Driver::quit() {
  if (done_ || !used_) return exit_code_;
  done_ = true;
  try {
    exit_code_ = peer_.quit();
    log("quit");
    return exit_code_;
  } catch (const PeerError& e) {
    log("quit");
    throw PeerError(name_ + " quit: " + e.what());
  }
}

std::string Driver::stop_and_take_stderr() {
  peer_.stop();
  return peer_.take_stderr();
}

Driver& Ctx::make(char role) {
  int who = who_.at(static_cast<size_t>(role - 'A'));
  drivers.push_back(std::make_unique<Driver>(*this, role, who, commands_.at(static_cast<size_t>(who)), timeout_ms_));
  return *drivers.back();
}

void Ctx::client_behaviour(Driver& d, bool matches, const std::string& what, json expected, json actual) {
  if (d.is_peer() && matches) {
    deviations.push_back(d.name() + ": " + what);
    return;
  }
  throw Failure{d.name() + ": " + (d.is_peer() ? "neither the reference's behaviour nor the client's documented one (" + what + ")"
                                                : "the reference's behaviour expected"),
                std::move(expected), std::move(actual)};
}

// ---- helpers

namespace h {

using crypto::Base64Padding;

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}
std::string b64(const std::string& utf8) {
  return crypto::base64_encode(std::span(reinterpret_cast<const uint8_t*>(utf8.data()), utf8.size()), Base64Padding::kPadded);
}
std::vector<uint8_t> bytes(const json& b) {
  auto v = crypto::base64_decode(b.get<std::string>(), Base64Padding::kOptional);
  return std::vector<uint8_t>(v.begin(), v.end());
}
std::string text(const json& b) {
  auto v = bytes(b);
  return std::string(v.begin(), v.end());
}
std::string pb64(const std::vector<uint8_t>& b) { return crypto::base64_encode(b, Base64Padding::kPadded); }

void expect(bool cond, const std::string& what, json actual) {
  if (!cond) throw Failure{"expected: " + what, nullptr, std::move(actual)};
}
void same(const json& actual, const json& expected, const std::string& what) {
  if (actual != expected) throw Failure{what, expected, actual};
}
json init(Driver& d, const std::string& user, json extra) {
  json args = {{"user_id", user}, {"store", "memory"}};
  for (auto& [k, v] : extra.items()) args[k] = v;
  return d.ok("init", args);
}
json device(const json& r) { return {{"device_key", r.at("device_key")}, {"fallback_key", r.at("fallback_key")}}; }
json encrypt(Driver& d, const std::string& alg, const std::string& msg, json extra, const std::string& stream) {
  json args = {{"stream_id", stream}, {"algorithm", alg}, {"plaintext_b64", b64(msg)}};
  for (auto& [k, v] : extra.items()) args[k] = v;
  if (alg == kHybrid) {
    args["miniblock_num"] = "7";
    args["miniblock_hash_hex"] = kHash;
  }
  return d.ok("encrypt", args);
}
std::string decrypt_text(Driver& d, const json& event, const std::string& stream) {
  return text(d.ok("decrypt", {{"stream_id", stream}, {"encrypted_data_pb", event.at("encrypted_data_pb")}}).at("plaintext_b64"));
}
json share_to(Driver& from, Driver& to, const json& to_device, const std::string& alg, json ids, const std::string& stream) {
  auto share = from.ok("share", {{"stream_id", stream}, {"algorithm", alg}, {"session_ids", ids}, {"devices", {to_device}}});
  return to.ok("receive_sessions", {{"group_encryption_sessions_pb", share.at("group_encryption_sessions_pb")}});
}
bool is_error(const json& reply, const std::string& code) {
  return reply.value("ok", true) == false && reply.contains("error") && reply["error"].is_object() &&
         reply["error"].value("code", json()) == json(code);
}
json sorted(json a) {
  std::sort(a.begin(), a.end());
  return a;
}

}  // namespace h

// ---- the runner

int run_conformance(const Options& o) {
  if (o.peers.empty() || o.peers.size() > 2) throw Error(ErrorCode::INVALID_ARGUMENT, "give one or two --peer commands");
  std::vector<Scenario> scenarios;
  add_basic_scenarios(scenarios);
  add_key_scenarios(scenarios);
  add_store_scenarios(scenarios);
  std::vector<std::string> commands = {reference_command()};
  for (const auto& p : o.peers) commands.push_back(p);
  const char* const* names = o.peers.size() == 1 ? kWhoNames1 : kWhoNames2;

  json cases = json::array();
  size_t passed = 0, failed = 0, deviations = 0, skipped = 0, reference_only = 0, ran = 0;
  for (const auto& s : scenarios) {
    if (!o.only.empty() && s.name.find(o.only) == std::string::npos) continue;
    ++ran;
    for (const auto& who : assignments(s.roles.size(), o.peers.size())) {
      json roles = json::object();
      std::string label;
      for (size_t i = 0; i < who.size(); ++i) {
        roles[std::string(1, s.roles[i])] = names[who[i]];
        label += (i ? " " : "") + std::string(1, s.roles[i]) + "=" + names[who[i]];
      }
      std::string id = s.name + " [" + label + "]";
      char tmpl[] = "/tmp/towns-conformance-XXXXXX";
      if (!mkdtemp(tmpl)) throw Error(ErrorCode::INVALID_ARGUMENT, "cannot make a temporary directory");
      std::string dir = tmpl;
      Ctx ctx(dir, commands, who, o.timeout_ms);
      json row = {{"id", id}, {"scenario", s.name}, {"section", s.section}, {"roles", roles}};
      std::string result = "pass", why;
      json expected, actual;
      auto t0 = std::chrono::steady_clock::now();
      try {
        s.run(ctx);
        // Every driver the scenario started ends cleanly.
        for (auto& d : ctx.drivers) {
          int code = d->quit();
          if (code != 0) throw Failure{d->name() + " exited with status " + std::to_string(code), 0, code};
        }
      } catch (const NotExpressible& n) {
        result = "not-expressible";
        why = n.why;
      } catch (const Failure& f) {
        result = "fail";
        why = f.why;
        expected = f.expected;
        actual = f.actual;
      } catch (const PeerError& e) {
        result = "fail";
        why = e.what();
      } catch (const std::exception& e) {
        result = "fail";
        why = std::string("a reply lacks a result or has one of another type: ") + e.what();
      }
      // Every process's stderr, for a failed run's row.
      json stderr_of = json::array();
      for (auto& d : ctx.drivers) {
        auto text = d->stop_and_take_stderr();
        if (!text.empty()) stderr_of.push_back({{"driver", d->name()}, {"text", std::move(text)}});
      }
      ctx.drivers.clear();
      std::filesystem::remove_all(dir);
      if (result == "pass" && !ctx.deviations.empty()) {
        result = "deviation";
        why.clear();
        for (const auto& d : ctx.deviations) why += (why.empty() ? "" : "; ") + d;
      }
      // A run in which no peer acted says nothing about the peer.
      bool counted = ctx.peer_acted || (result == "fail" && ctx.peer_started);
      if (result != "not-expressible" && !counted) {
        result = "reference-only";
        why = "no peer answered a command besides init and quit, nor had a refusal checked, in this run: not counted";
      }
      row["result"] = result;
      if (!why.empty()) row["why"] = why;
      if (result == "fail") {
        row["expected"] = cut_long(expected);
        row["actual"] = cut_long(actual);
      }
      if (result == "fail" || result == "deviation") row["exchanges"] = cut_long(ctx.exchanges);
      if (result == "fail" && !stderr_of.empty()) row["stderr"] = std::move(stderr_of);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      if (result == "pass") ++passed;
      else if (result == "fail") ++failed;
      else if (result == "deviation") ++deviations;
      else if (result == "not-expressible") ++skipped;
      else ++reference_only;
      if (!o.quiet) {
        const char* tag = result == "pass" ? "ok   " : result == "fail" ? "FAIL " : result == "deviation" ? "dev  " : "skip ";
        std::fprintf(stderr, "%s %s (%lld ms)%s%s\n", tag, id.c_str(), static_cast<long long>(ms), why.empty() ? "" : ": ",
                     why.substr(0, 300).c_str());
      }
      cases.push_back(std::move(row));
    }
  }
  if (ran == 0) throw Error(ErrorCode::INVALID_ARGUMENT, "no scenario named like " + o.only);
  // The vector corpus through each peer's driver, in the same report: every
  // case a driver command can express (keyExchangeTrace cases drive the engine
  // commands), as `vectors verify --driver` runs it.
  for (size_t k = 0; k < o.peers.size() && !o.vectors_dir.empty(); ++k) {
    auto r = vectors::run_vectors_with_driver({.dir = o.vectors_dir, .command = o.peers[k], .report_dir = "",
                                               .only = "", .timeout_ms = o.timeout_ms, .quiet = o.quiet});
    for (auto& row : r.cases) {
      row["part"] = "vectors";
      row["roles"] = {{"device", names[k + 1]}};
      if (o.peers.size() == 2) row["id"] = std::string(names[k + 1]) + ": " + row["id"].get<std::string>();
      cases.push_back(std::move(row));
    }
    passed += r.passed;
    failed += r.failed;
    deviations += r.deviations;
    skipped += r.not_expressible;
    if (!o.quiet) {
      std::fprintf(stderr, "vectors through %s: %zu passed, %zu failed, %zu deviations, %zu not expressible\n",
                   names[k + 1], r.passed, r.failed, r.deviations, r.not_expressible);
    }
  }
  json summary = {{"passed", passed}, {"failed", failed}, {"deviations", deviations}, {"notExpressible", skipped},
                  {"referenceOnly", reference_only}};
  if (!o.report_dir.empty()) {
    std::string peer = o.peers[0];
    if (o.peers.size() == 2) peer = "peer 1: " + o.peers[0] + "; peer 2: " + o.peers[1];
    tools::write_report(o.report_dir, {{"title", "towns-e2ee conformance"},
                                       {"peer", peer},
                                       {"peers", o.peers},
                                       {"reference", commands[0]},
                                       {"summary", summary},
                                       {"cases", cases}});
  }
  std::printf("%zu passed, %zu failed, %zu deviations (%zu not expressible, %zu reference only: not counted)\n", passed,
              failed, deviations, skipped, reference_only);
  return failed == 0 ? 0 : 1;
}

}  // namespace towns::conformance
