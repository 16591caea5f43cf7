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

#include <string_view>

#include <nlohmann/json.hpp>

#include "towns/crypto/encoding.h"
#include "towns/crypto/secret.h"
#include "towns/error.h"
#include "towns/protocol/types.h"

namespace towns {

using WipedString = std::basic_string<char, std::char_traits<char>, crypto::WipingAllocator<char>>;
using SecretJson = nlohmann::basic_json<std::map, std::vector, WipedString>;

// Appends s as a JSON string, escaped as JSON.stringify escapes it (the short
// forms for \b \f \n \r \t, \u00XX for the other control characters), to
// wiped memory. s is taken as UTF-8; the caller checks it where it must.
inline void append_json_string(crypto::SecretBytes& out, std::string_view s) {
  auto put = [&](std::string_view t) { out.append(crypto::as_bytes(t)); };
  put("\"");
  size_t run = 0;  // start of the characters not yet written that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    put(s.substr(run, i - run));  // written in runs: a key is one run
    run = i + 1;
    switch (c) {
      case '"': put("\\\""); break;
      case '\\': put("\\\\"); break;
      case '\b': put("\\b"); break;
      case '\f': put("\\f"); break;
      case '\n': put("\\n"); break;
      case '\r': put("\\r"); break;
      case '\t': put("\\t"); break;
      default: {
        static const char kHex[] = "0123456789abcdef";
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        put({esc, 6});
      }
    }
  }
  put(s.substr(run));
  put("\"");
}

// The client's exported-sessions JSON ([{"streamId", "sessionId", "sessionKey",
// "algorithm"}, ...]; a missing or non-string field is empty), parsed into
// wiped memory. INVALID_ARGUMENT naming `what` when text is not JSON, not an
// array, or holds an entry that is not an object.
inline std::vector<GroupEncryptionSession> parse_sessions_json(std::string_view text, std::string_view what) {
  auto doc = SecretJson::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) throw Error(ErrorCode::INVALID_ARGUMENT, std::string(what) + " is not JSON");
  if (!doc.is_array()) throw Error(ErrorCode::INVALID_ARGUMENT, std::string(what) + " must be a JSON array");
  auto field = [](const SecretJson& o, const char* name) -> std::string_view {
    auto it = o.find(name);
    return it != o.end() && it->is_string() ? std::string_view(it->get_ref<const WipedString&>()) : std::string_view();
  };
  std::vector<GroupEncryptionSession> out;
  for (const auto& o : doc) {
    if (!o.is_object()) {
      throw Error(ErrorCode::INVALID_ARGUMENT, std::string(what) + ": each entry must be a JSON object");
    }
    out.push_back({std::string(field(o, "streamId")), std::string(field(o, "sessionId")),
                   crypto::SecretBytes(field(o, "sessionKey")), std::string(field(o, "algorithm"))});
  }
  return out;
}

}  // namespace towns
