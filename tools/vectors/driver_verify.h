// towns-e2ee vectors verify --driver "<command>": the vector corpus run through
// another implementation's conformance driver (docs/driver.md), wherever a
// driver command can express a vector, with a JSON and an HTML report.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace towns::vectors {

struct DriverVerifyOptions {
  std::string dir;          // the corpus
  std::string command;      // the driver, run with /bin/sh -c
  std::string report_dir;   // "" for no report files
  std::string only;         // "" for every case; else cases whose id or type contains it
  int timeout_ms = 30000;   // per driver command
  bool quiet = false;       // no progress lines on stderr
};

// The corpus through the driver: a report row per case (pass, fail, deviation,
// not-expressible) and the counts. report_dir is not used here.
struct DriverVerifyResult {
  nlohmann::json cases = nlohmann::json::array();
  size_t passed = 0, failed = 0, deviations = 0, not_expressible = 0;
};
DriverVerifyResult run_vectors_with_driver(const DriverVerifyOptions& options);

// Returns the exit status: 0 when every expressible vector passed (documented
// deviations included), 1 otherwise.
int verify_with_driver(const DriverVerifyOptions& options);

}  // namespace towns::vectors
