// The raw bytes of a stream id given as hex: what the grpaes session id is
// hashed over and what GroupEncryptionSessions carries. INVALID_ARGUMENT when
// the id is not a stream id in its one canonical form (towns/protocol/inputs.h).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/inputs.h"

namespace towns {

inline std::vector<uint8_t> stream_id_bytes(std::string_view stream_id) {
  check_stream_id(stream_id);
  try {
    return crypto::hex_decode(stream_id);
  } catch (const Error&) {
    throw Error(ErrorCode::INVALID_ARGUMENT, "stream id is not hex");
  }
}

}  // namespace towns
