// towns-e2ee exchange: the key exchange engine held against another engine
// (docs/exchange-diff.md). Timelines (scripted cases and seeded random ones)
// are built with real devices, sessions and events, run through this library's
// KeyExchange in-process and through a peer driver's engine commands
// (docs/driver.md, version 2), and every output is compared.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace towns::tools {

// The keyExchangeTrace vector file (docs/vectors.md): every scripted case and
// random timelines 1..random_seeds, with this library's engine's outputs.
nlohmann::json make_trace_vectors(int random_seeds);
// (Replaying one keyExchangeTrace test is the library's: trace::check_trace in
// lib/exchange/timeline.h.)

class Peer;

// One keyExchangeTrace test (docs/vectors.md) replayed through this library's
// engine and a peer driver's (the engine commands of docs/driver.md), compared
// output by output. documented: the test names a documented divergence
// (docs/compat.md) and the peer showed it; report: the first difference.
struct PeerTraceVerdict {
  bool passed = false;
  bool documented = false;
  std::string report;
};
PeerTraceVerdict replay_trace_through_peer(const nlohmann::json& test, Peer& peer);

// towns-e2ee exchange diff|trace|list ... ; returns the exit status.
int run_exchange(int argc, char** argv);

}  // namespace towns::tools
