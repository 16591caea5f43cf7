#include "towns/error.h"

#include <array>

namespace towns {
namespace {

constexpr std::array kNames = {
#define TOWNS_X(name) std::string_view{#name},
    TOWNS_ERROR_CODES(TOWNS_X)
#undef TOWNS_X
};

}  // namespace

std::string_view error_code_name(ErrorCode code) noexcept {
  auto i = static_cast<size_t>(code);
  return i < kNames.size() ? kNames[i] : std::string_view{"INTERNAL"};
}

bool error_code_from_name(std::string_view name, ErrorCode& out) noexcept {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      out = static_cast<ErrorCode>(i);
      return true;
    }
  }
  return false;
}

bool is_olm_error(ErrorCode code) noexcept {
  return error_code_name(code).substr(0, 4) == "OLM_";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string(error_code_name(code)) + ": " + message), code_(code) {}

}  // namespace towns
