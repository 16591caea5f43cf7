#include "common.h"

#include <cstdlib>

namespace towns::olm {

std::string library_version() {
  uint8_t major = 0, minor = 0, patch = 0;
  olm_get_library_version(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

namespace detail {

void throw_olm(OlmErrorCode code, const char* operation) {
  static constexpr ErrorCode kMap[] = {
      ErrorCode::OLM_UNKNOWN_ERROR,  // OLM_SUCCESS should never be reported as a failure
      ErrorCode::OLM_NOT_ENOUGH_RANDOM,
      ErrorCode::OLM_OUTPUT_BUFFER_TOO_SMALL,
      ErrorCode::OLM_BAD_MESSAGE_VERSION,
      ErrorCode::OLM_BAD_MESSAGE_FORMAT,
      ErrorCode::OLM_BAD_MESSAGE_MAC,
      ErrorCode::OLM_BAD_MESSAGE_KEY_ID,
      ErrorCode::OLM_INVALID_BASE64,
      ErrorCode::OLM_BAD_ACCOUNT_KEY,
      ErrorCode::OLM_UNKNOWN_PICKLE_VERSION,
      ErrorCode::OLM_CORRUPTED_PICKLE,
      ErrorCode::OLM_BAD_SESSION_KEY,
      ErrorCode::OLM_UNKNOWN_MESSAGE_INDEX,
      ErrorCode::OLM_BAD_LEGACY_ACCOUNT_PICKLE,
      ErrorCode::OLM_BAD_SIGNATURE,
      ErrorCode::OLM_INPUT_BUFFER_TOO_SMALL,
      ErrorCode::OLM_SAS_THEIR_KEY_NOT_SET,
      ErrorCode::OLM_PICKLE_EXTRA_DATA,
  };
  auto i = static_cast<size_t>(code);
  ErrorCode ec = i < std::size(kMap) ? kMap[i] : ErrorCode::OLM_UNKNOWN_ERROR;
  throw Error(ec, std::string(operation) + " failed: " + _olm_error_to_string(code));
}

void throw_moved_from() { throw Error(ErrorCode::INTERNAL, "use of a moved-from olm object"); }

Memory::Memory(size_t size, Clear clear) : size_(size), clear_(clear) {
  mem_ = std::malloc(size);
  if (mem_ == nullptr) throw std::bad_alloc();
}

Memory::~Memory() { release(); }

Memory::Memory(Memory&& o) noexcept : mem_(o.mem_), size_(o.size_), clear_(o.clear_) {
  o.mem_ = nullptr;
  o.size_ = 0;
}

Memory& Memory::operator=(Memory&& o) noexcept {
  if (this != &o) {
    release();
    mem_ = o.mem_;
    size_ = o.size_;
    clear_ = o.clear_;
    o.mem_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

void Memory::release() noexcept {
  if (mem_ == nullptr) return;
  if (clear_ != nullptr) clear_(mem_);
  crypto::wipe(mem_, size_);
  std::free(mem_);
  mem_ = nullptr;
  size_ = 0;
}

}  // namespace detail
}  // namespace towns::olm
