// The forms of the ids that enter the library (protocol.md 1.3, 6.2), checked
// where they enter: stream ids, user ids and the miniblock of a new hybrid
// session. Non-canonical forms are refused, not rewritten (protocol.md 1.3,
// "Policy"): "0xAB", "AB" and "ab" are not three spellings of one stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "towns/export.h"

namespace towns {

// The SDK's isValidStreamId: lower-case hex digits only (no "0x"), a known
// prefix (the first two digits: 10 20 88 77 a1 a8 ad a5 ff dd), then either the
// kind's identity length (40 digits for spaces and user streams, 16 for
// metadata, 62 for the others) or 62 digits whose part after the identity is
// zeros.
TOWNS_API bool is_valid_stream_id(std::string_view stream_id) noexcept;
// INVALID_ARGUMENT, saying why, when !is_valid_stream_id.
TOWNS_API void check_stream_id(std::string_view stream_id);

// An address: "0x" (optional, as the SDK's getAddress takes it) and 40 hex
// digits of either case. (The SDK also checks the EIP-55 checksum of a
// mixed-case address; this library does not: docs/compat.md.)
TOWNS_API bool is_valid_user_id(std::string_view user_id) noexcept;
// INVALID_ARGUMENT, saying why, when !is_valid_user_id.
TOWNS_API void check_user_id(std::string_view user_id);

// The miniblock a new hybrid session is created at (protocol.md 6.2): a number
// from 0 to 2^63-1 and a 32-byte hash. INVALID_ARGUMENT otherwise.
inline constexpr size_t kMiniblockHashLength = 32;
TOWNS_API void check_new_session_miniblock(int64_t miniblock_num, std::span<const uint8_t> miniblock_hash);

// A value as an error message may show it: the first max bytes (not cutting a
// UTF-8 sequence), then "…" when anything was left out.
TOWNS_API std::string shorten_for_message(std::string_view value, size_t max = 64);

}  // namespace towns
