// Untrusted text as the SessionKeys JSON inside a shared olm message.
#include "fuzz_common.h"
#include "towns/protocol/session_sharing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::refusals_ok([&] {
    auto keys = towns::parse_session_keys_json(text);
    // What parses re-encodes and parses to the same keys.
    if (towns::parse_session_keys_json(towns::session_keys_json(keys).view()) != keys) __builtin_trap();
  });
  return 0;
}
