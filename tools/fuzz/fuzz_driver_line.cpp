// Untrusted text as request lines to the conformance driver, after an init.
#include <sstream>

#include "driver.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::stringstream in, out;
  in << R"({"id":1,"cmd":"init","user_id":"0xabababababababababababababababababababab","store":"memory"})" << "\n";
  in.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  in << "\n";
  // Small limits, so that seeds of a few KiB reach every limit (docs/driver.md).
  towns::tools::DriverLimits limits;
  limits.max_line_bytes = 16384;
  limits.max_list_items = 256;
  limits.max_depth = 16;
  towns::tools::run_driver(in, out, limits);
  // Exactly one reply per non-empty line, each a JSON object on its own line.
  size_t lines = 2;  // the init line and the input's last line
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') ++lines;
  }
  size_t replies = 0;
  for (std::string line; std::getline(out, line);) {
    if (line.empty() || line.front() != '{' || line.back() != '}') __builtin_trap();
    ++replies;
  }
  if (replies > lines) __builtin_trap();
  return 0;
}
