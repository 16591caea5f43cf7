#pragma once
#include <istream>
#include <ostream>

namespace towns::tools {
// The conformance driver (docs/driver.md): JSON requests on in, one JSON reply
// per request on out. Returns the process exit status.
int run_driver(std::istream& in, std::ostream& out);
}  // namespace towns::tools
