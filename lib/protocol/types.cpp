#include "towns/protocol/types.h"

#include "towns/error.h"

namespace towns {

std::string_view algorithm_id(GroupEncryptionAlgorithm algorithm) noexcept {
  return algorithm == GroupEncryptionAlgorithm::kGroupEncryption ? kGroupEncryptionAlgorithmId
                                                                 : kHybridGroupEncryptionAlgorithmId;
}

std::optional<GroupEncryptionAlgorithm> parse_group_encryption_algorithm(
    std::string_view value, std::optional<GroupEncryptionAlgorithm> default_value) {
  if (value.empty()) {
    if (default_value) return default_value;
    throw Error(ErrorCode::GROUP_DECRYPTION_UNSET_ALGORITHM, "algorithm is unset");
  }
  if (value == kGroupEncryptionAlgorithmId) return GroupEncryptionAlgorithm::kGroupEncryption;
  if (value == kHybridGroupEncryptionAlgorithmId) return GroupEncryptionAlgorithm::kHybridGroupEncryption;
  return std::nullopt;
}

size_t utf16_length(std::string_view s) noexcept {
  size_t units = 0;
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<uint8_t>(s[i + k]) >> 6) == 2;
    if (!ok) {
      ++units;
      ++i;
      continue;
    }
    units += len == 4 ? 2 : 1;
    i += len;
  }
  return units;
}

}  // namespace towns
