// Untrusted bytes as a KeySolicitation another member posted; we answer it.
#include "fuzz_common.h"
#include "towns/exchange/key_exchange.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  towns::KeySolicitation s;
  if (!fuzz::decode(s, data, size)) return 0;
  auto& f = fuzz::fixture();
  fuzz::refusals_ok([&] {
    auto answer = towns::plan_solicitation_answer(f.crypto, fuzz::kStream, "ab", s, [] { return true; });
    if (answer) {
      towns::build_solicitation_shares(f.crypto, fuzz::kStream, {s.device_key, s.fallback_key}, answer->sessions);
    }
  });
  return 0;
}
