// Opening a pickle read back from the device's own store. The pickle key is the
// one the account opened under (and, in SQLite, the one the key check
// accepted), so a stored pickle that libolm refuses is a damaged or tampered
// row: STORE_CORRUPT, with libolm's name in the message (docs/protocol.md
// section 16.7). The caller writes nothing.
#pragma once

#include <string>
#include <string_view>

#include "towns/error.h"

namespace towns {

template <typename Unpickle>
auto open_stored_pickle(std::string_view table, std::string_view stream_id, std::string_view session_id,
                        Unpickle&& unpickle) -> decltype(unpickle()) {
  try {
    return unpickle();
  } catch (const Error& e) {
    if (!is_olm_error(e.code())) throw;
    throw Error(ErrorCode::STORE_CORRUPT, std::string(table) + ": the session " + std::string(session_id) +
                                              " of stream " + std::string(stream_id) + " does not unpickle (" +
                                              std::string(e.code_name()) + ")");
  }
}

}  // namespace towns
