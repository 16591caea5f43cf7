// A target for testing the replayer itself (test/fuzz/check_replay.py): what it
// does is named by the input's text.
//   refusal        a towns::Error inside fuzz::refusals_ok (allowed)
//   escape         a std::runtime_error inside fuzz::refusals_ok (not allowed)
//   error-escapes  a towns::Error outside fuzz::refusals_ok (not allowed)
//   trap           a crash
//   anything else  returns normally
#include <stdexcept>
#include <string_view>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text == "refusal") {
    fuzz::refusals_ok([] { throw towns::Error(towns::ErrorCode::INVALID_ARGUMENT, "refused"); });
  } else if (text == "escape") {
    fuzz::refusals_ok([] { throw std::runtime_error("not a refusal"); });
  } else if (text == "error-escapes") {
    throw towns::Error(towns::ErrorCode::INTERNAL, "outside refusals_ok");
  } else if (text == "trap") {
    __builtin_trap();
  }
  return 0;
}
