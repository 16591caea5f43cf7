#pragma once
#include <cstddef>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace towns::tools {
// The driver's input limits (docs/driver.md, "Limits"): a request over one is
// answered LIMIT_EXCEEDED before any of its work starts, and the driver goes on.
struct DriverLimits {
  // Bytes of one request line, without its newline. The largest legitimate
  // requests carry media (the interop scenario media_chunks sends 1.3 MB, about
  // 1.7 MB of base64), an engine_start of the differential suite, or a large
  // import; 16 MiB keeps a margin of about ten times over the media scenario
  // (docs/driver.md, "Limits").
  size_t max_line_bytes = size_t{16} << 20;
  // Items of any one list of a request (session ids, devices, sessions, chunks,
  // IVs, the lists of an engine world) and of a protobuf argument's repeated
  // fields (session ids, ciphertexts).
  size_t max_list_items = 10000;
  // Nesting of arrays and objects in a request line.
  size_t max_depth = 32;
};

// The conformance driver (docs/driver.md): JSON requests on in, one JSON reply
// per request on out. Returns the process exit status.
int run_driver(std::istream& in, std::ostream& out, const DriverLimits& limits = {});
// `towns-e2ee driver [options]`: the options (--max-line-bytes N,
// --max-list-items N, --max-depth N), then run_driver on stdin/stdout; exit
// status 2 for a bad option.
int run_driver_command(int argc, char** argv);
// The names of its commands, in the order docs/driver.md lists them.
std::vector<std::string> driver_commands();
}  // namespace towns::tools
