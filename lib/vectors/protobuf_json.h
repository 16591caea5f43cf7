// The river messages of protobuf.json (docs/vectors.md) read by the library's
// own codecs and written as protobuf JSON (internal): what the vector verifier
// checks the protobufMessage, protobufNonCanonical and protobufMalformed groups
// with, without a protobuf runtime.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace towns::vectors {

// The full names of the messages decode_message knows ("river.EncryptedData", ...).
const std::vector<std::string>& known_messages();

struct DecodedMessage {
  nlohmann::json json;          // the message in the standard protobuf JSON mapping
  std::vector<uint8_t> encoding;  // the message encoded again (fields in number order)
};

// Decodes bytes as the message named type_name (a full name of known_messages)
// with the library's codec. INVALID_ARGUMENT when the bytes are not one (as
// protobuf's parser refuses them), or when type_name is not known.
//
// The JSON is what protobuf's JSON printer writes (MessageToJsonString): field
// names in lowerCamelCase (ExportedDevice's are camelCase upstream), bytes as
// padded standard base64, 64-bit integers as decimal strings, enums by name (a
// value without a name as a number), fields at their default left out except
// proto3 `optional` ones that are set and oneof members that are set, maps as
// objects.
DecodedMessage decode_message(std::string_view type_name, std::span<const uint8_t> bytes);

}  // namespace towns::vectors
