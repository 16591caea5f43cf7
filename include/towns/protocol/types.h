// Names, limits and shapes shared by the protocol classes (protocol.md sections 2, 4).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "towns/crypto/secret.h"
#include "towns/export.h"

namespace towns {

inline constexpr std::string_view kGroupEncryptionAlgorithmId = "r.group-encryption.v1.aes-sha2";
inline constexpr std::string_view kHybridGroupEncryptionAlgorithmId = "grpaes";
inline constexpr std::string_view kOlmAlgorithmId = "r.olm.v1.curve25519-aes-sha2";

// The client's DEFAULT_KEY. Accepted for compatibility only: it is a public
// constant, so pickles under it are protected by nothing. Supply your own key.
inline constexpr std::string_view kDefaultPickleKey = "DEFAULT_KEY";

// A payload string longer than this (65536 * 3 / 4) is refused with
// PAYLOAD_TOO_LARGE before olm sees it. Lengths are counted as the client counts
// them: in UTF-16 code units of the text.
inline constexpr size_t kMaxPlaintextLength = 49152;

enum class GroupEncryptionAlgorithm { kGroupEncryption, kHybridGroupEncryption };

TOWNS_API std::string_view algorithm_id(GroupEncryptionAlgorithm algorithm) noexcept;

// The algorithm-field rule: empty -> default_value if given, else
// Error(GROUP_DECRYPTION_UNSET_ALGORITHM); a known id -> that algorithm;
// anything else -> std::nullopt (the caller decides: an event is refused with
// GROUP_DECRYPTION_UNKNOWN_ALGORITHM, a shared session is ignored).
TOWNS_API std::optional<GroupEncryptionAlgorithm> parse_group_encryption_algorithm(
    std::string_view value, std::optional<GroupEncryptionAlgorithm> default_value = std::nullopt);

// The client's exported group-session shape (GroupEncryptionSession):
// session_key is libolm's export format for megolm, and the hex of the binary
// HybridGroupSessionKey for grpaes.
struct GroupEncryptionSession {
  std::string stream_id;
  std::string session_id;
  crypto::SecretBytes session_key;
  std::string algorithm;
};

// The length of UTF-8 text in UTF-16 code units, as JavaScript's String.length
// counts it; bytes that are not valid UTF-8 count one each.
TOWNS_API size_t utf16_length(std::string_view utf8) noexcept;

}  // namespace towns
