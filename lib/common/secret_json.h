// JSON that may hold secrets (session keys being imported): every string it
// allocates, object keys, values and the parser's own token buffer, lives in
// wiped memory (crypto::WipingAllocator), so nothing of a key is left behind
// in freed memory, whether the parse succeeds, fails half-way, or a key is
// given twice. Strings short enough for the small-string buffer are not
// allocated at all; session keys are far longer.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "towns/crypto/secret.h"

namespace towns {

using WipedString = std::basic_string<char, std::char_traits<char>, crypto::WipingAllocator<char>>;
using SecretJson = nlohmann::basic_json<std::map, std::vector, WipedString>;

}  // namespace towns
