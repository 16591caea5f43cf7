#include "towns/protocol/inputs.h"

#include <array>

#include "towns/error.h"

namespace towns {
namespace {

bool lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool any_hex(char c) { return lower_hex(c) || (c >= 'A' && c <= 'F'); }

// The identity length of each prefix (the SDK's expectedIdentityLenByPrefix).
struct Prefix {
  std::string_view prefix;
  size_t identity;
};
constexpr std::array kPrefixes = {
    Prefix{"a8", 40}, Prefix{"ad", 40}, Prefix{"a5", 40}, Prefix{"a1", 40}, Prefix{"10", 40},
    Prefix{"20", 62}, Prefix{"ff", 62}, Prefix{"88", 62}, Prefix{"77", 62}, Prefix{"dd", 16},
};

// Why the stream id is not valid, or nullptr.
const char* stream_id_problem(std::string_view s) noexcept {
  if (s.empty()) return "is empty";
  for (char c : s) {
    if (!lower_hex(c)) return "is not lower-case hex (no 0x prefix, no upper case)";
  }
  const Prefix* p = nullptr;
  for (const auto& k : kPrefixes) {
    if (s.substr(0, 2) == k.prefix) p = &k;
  }
  if (p == nullptr) return "has no known stream prefix";
  auto identity = s.substr(2);
  if (identity.size() == p->identity) return nullptr;
  if (identity.size() != 62) return "has the wrong length for its kind";
  for (size_t i = p->identity; i < identity.size(); ++i) {
    if (identity[i] != '0') return "is not padded with zeros after its identity";
  }
  return nullptr;
}

const char* user_id_problem(std::string_view s) noexcept {
  if (s.substr(0, 2) == "0x") s.remove_prefix(2);
  if (s.size() != 40) return "is not an address (0x and 40 hex digits)";
  for (char c : s) {
    if (!any_hex(c)) return "is not an address (0x and 40 hex digits)";
  }
  return nullptr;
}

}  // namespace

bool is_valid_stream_id(std::string_view stream_id) noexcept { return stream_id_problem(stream_id) == nullptr; }

void check_stream_id(std::string_view stream_id) {
  if (const char* why = stream_id_problem(stream_id)) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "stream id \"" + shorten_for_message(stream_id) + "\" " + why);
  }
}

bool is_valid_user_id(std::string_view user_id) noexcept { return user_id_problem(user_id) == nullptr; }

void check_user_id(std::string_view user_id) {
  if (const char* why = user_id_problem(user_id)) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "user id \"" + shorten_for_message(user_id) + "\" " + why);
  }
}

void check_new_session_miniblock(int64_t miniblock_num, std::span<const uint8_t> miniblock_hash) {
  if (miniblock_num < 0) throw Error(ErrorCode::INVALID_ARGUMENT, "miniblock number is negative");
  if (miniblock_hash.size() != kMiniblockHashLength) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "miniblock hash is " + std::to_string(miniblock_hash.size()) +
                                                 " bytes, not " + std::to_string(kMiniblockHashLength));
  }
}

std::string shorten_for_message(std::string_view value, size_t max) {
  if (value.size() <= max) return std::string(value);
  size_t n = max;
  // Back up to the start of a UTF-8 sequence (at most 3 continuation bytes).
  for (size_t k = 0; k < 3 && n > 0 && (static_cast<uint8_t>(value[n]) & 0xC0) == 0x80; ++k) --n;
  return std::string(value.substr(0, n)) + "\u2026";
}

}  // namespace towns
