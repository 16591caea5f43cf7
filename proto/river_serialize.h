// protobuf's deterministic serialization of a generated river:: message (map
// entries sorted by key): the bytes the library's own codec writes for the
// same fields. For tools and tests, which hold the codec to protobuf.
#pragma once

#include <string>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message_lite.h>

namespace towns::river_proto {

inline std::string serialize(const google::protobuf::MessageLite& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  {
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace towns::river_proto
