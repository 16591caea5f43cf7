// Errors of the towns-e2ee library.
//
// Every failure is a towns::Error carrying a code from one closed set (ErrorCode)
// and a human-readable message. The set holds the canonical client's
// DecryptionError codes, the conformance driver's codes, libolm's error names and
// the store's. Messages never contain key material or plaintext.
//
// One style throughout: operations throw towns::Error; nothing returns error
// codes through out-parameters. A failure on untrusted input is routine and
// leaves every object and stored state as it was before the call.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "towns/export.h"

namespace towns {

#define TOWNS_ERROR_CODES(X)                    \
  /* generic */                                 \
  X(INVALID_ARGUMENT)                           \
  X(UNKNOWN_COMMAND)                            \
  X(NOT_INITIALIZED)                            \
  X(INTERNAL)                                   \
  /* a request over a size limit (the driver) */ \
  X(LIMIT_EXCEEDED)                             \
  /* the client's DecryptionError codes */      \
  X(GROUP_DECRYPTION_MISSING_FIELDS)            \
  X(GROUP_DECRYPTION_UNSET_ALGORITHM)           \
  X(GROUP_DECRYPTION_UNKNOWN_ALGORITHM)         \
  X(GROUP_DECRYPTION_INVALID_VERSION)           \
  X(HYBRID_GROUP_DECRYPTION_MISSING_FIELDS)     \
  /* protocol */                                \
  X(SESSION_NOT_FOUND)                          \
  X(DECRYPTION_FAILED)                          \
  X(PAYLOAD_TOO_LARGE)                          \
  X(EMPTY_PAYLOAD)                              \
  X(IMPORT_FAILED)                              \
  X(REPLAY)                                     \
  /* the derived scheme's algorithm check */   \
  X(UNKNOWN_ALGORITHM)                          \
  /* encodings */                               \
  X(BAD_ENCODING)                               \
  /* libolm's error names, prefixed */          \
  X(OLM_NOT_ENOUGH_RANDOM)                      \
  X(OLM_OUTPUT_BUFFER_TOO_SMALL)                \
  X(OLM_BAD_MESSAGE_VERSION)                    \
  X(OLM_BAD_MESSAGE_FORMAT)                     \
  X(OLM_BAD_MESSAGE_MAC)                        \
  X(OLM_BAD_MESSAGE_KEY_ID)                     \
  X(OLM_INVALID_BASE64)                         \
  X(OLM_BAD_ACCOUNT_KEY)                        \
  X(OLM_UNKNOWN_PICKLE_VERSION)                 \
  X(OLM_CORRUPTED_PICKLE)                       \
  X(OLM_BAD_SESSION_KEY)                        \
  X(OLM_UNKNOWN_MESSAGE_INDEX)                  \
  X(OLM_BAD_LEGACY_ACCOUNT_PICKLE)              \
  X(OLM_BAD_SIGNATURE)                          \
  X(OLM_INPUT_BUFFER_TOO_SMALL)                 \
  X(OLM_SAS_THEIR_KEY_NOT_SET)                  \
  X(OLM_PICKLE_EXTRA_DATA)                      \
  X(OLM_UNKNOWN_ERROR)                          \
  /* the store */                               \
  X(STORE_ERROR)                                \
  X(STORE_WRONG_PICKLE_KEY)                     \
  X(STORE_CORRUPT)                              \
  X(STORE_NEWER_SCHEMA)                         \
  X(STORE_BUSY)

enum class ErrorCode {
#define TOWNS_X(name) name,
  TOWNS_ERROR_CODES(TOWNS_X)
#undef TOWNS_X
};

// The code's name as it appears on the wire and in the conformance driver
// ("OLM_BAD_MESSAGE_MAC", "SESSION_NOT_FOUND", ...).
TOWNS_API std::string_view error_code_name(ErrorCode code) noexcept;

// Parses a name produced by error_code_name; false when unknown.
TOWNS_API bool error_code_from_name(std::string_view name, ErrorCode& out) noexcept;

// True for the codes that come from libolm (OLM_*).
TOWNS_API bool is_olm_error(ErrorCode code) noexcept;

class TOWNS_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);

  ErrorCode code() const noexcept { return code_; }
  std::string_view code_name() const noexcept { return error_code_name(code_); }

 private:
  ErrorCode code_;
};

// The outcome of one item of a batch: its value, or the error that item alone
// would have raised (at most one of the two is set; a batch operation that
// leaves some items to its caller leaves both unset for them).
template <typename T>
struct Outcome {
  std::optional<T> value;
  std::optional<Error> error;
};

}  // namespace towns
