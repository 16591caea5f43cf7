// The key exchange engine in a simulated world (internal): what the driver's
// engine commands (docs/driver.md, version 2) run on, and what a recorded
// keyExchangeTrace vector is replayed through (exchange/timeline.h): this
// library's KeyExchange with a real device (from the timeline's exported
// device) and real sessions, in a simulated world of streams, members,
// published devices and a node, the same world the canonical SDK's engine is
// put in by test/interop/engine_sdk.ts.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>

namespace towns::trace {

class EngineWorld {
 public:
  // engine_start: a new world and engine (replacing any previous one).
  static std::unique_ptr<EngineWorld> start(const nlohmann::json& req);
  ~EngineWorld();

  void input(const nlohmann::json& req);    // engine_input
  void advance(const nlohmann::json& req);  // engine_advance
  nlohmann::json take_outputs();            // engine_outputs
  // Our engine's next due time (ms), or null: lets a runner keep its inputs
  // away from the moments the engine acts (docs/driver.md, engine commands).
  nlohmann::json next_due() const;

  struct Impl;

 private:
  explicit EngineWorld(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace towns::trace
