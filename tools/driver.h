#pragma once
#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace towns::tools {
// The conformance driver (docs/driver.md): JSON requests on in, one JSON reply
// per request on out. Returns the process exit status.
int run_driver(std::istream& in, std::ostream& out);
// The names of its commands, in the order docs/driver.md lists them.
std::vector<std::string> driver_commands();
}  // namespace towns::tools
