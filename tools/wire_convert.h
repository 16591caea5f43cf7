// Conversions between the library's plain wire messages (towns/protocol/
// messages.h) and the protobuf generated classes (river::), for the tools and
// tests that handle wire bytes with protobuf for their own purposes (vector
// JSON, reflection checks). Always through the wire bytes, never field by
// field: what crosses is exactly what the other side would read off the wire.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "towns/error.h"
#include "towns/protocol/messages.h"
#include "towns/proto/payloads.pb.h"
#include "towns/proto/protocol.pb.h"
#include "river_serialize.h"

namespace towns::wire_convert {

template <typename Plain>
struct RiverOf;
template <>
struct RiverOf<EncryptedData> {
  using type = river::EncryptedData;
};
template <>
struct RiverOf<KeySolicitation> {
  using type = river::MemberPayload::KeySolicitation;
};
template <>
struct RiverOf<KeyFulfillment> {
  using type = river::MemberPayload::KeyFulfillment;
};
template <>
struct RiverOf<GroupEncryptionSessions> {
  using type = river::UserInboxPayload::GroupEncryptionSessions;
};

template <typename River>
struct PlainOf;
template <>
struct PlainOf<river::EncryptedData> {
  using type = EncryptedData;
};
template <>
struct PlainOf<river::MemberPayload::KeySolicitation> {
  using type = KeySolicitation;
};
template <>
struct PlainOf<river::MemberPayload::KeyFulfillment> {
  using type = KeyFulfillment;
};
template <>
struct PlainOf<river::UserInboxPayload::GroupEncryptionSessions> {
  using type = GroupEncryptionSessions;
};

using river_proto::serialize;

inline std::span<const uint8_t> as_span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// river -> plain (INVALID_ARGUMENT if the message holds what the codec refuses,
// such as a string field that is not UTF-8).
template <typename River>
typename PlainOf<River>::type to_plain(const River& m) {
  return PlainOf<River>::type::decode(as_span(serialize(m)));
}

template <typename River>
std::vector<typename PlainOf<River>::type> to_plain(const std::vector<River>& ms) {
  std::vector<typename PlainOf<River>::type> out;
  out.reserve(ms.size());
  for (const auto& m : ms) out.push_back(to_plain(m));
  return out;
}

// plain -> river.
template <typename Plain>
typename RiverOf<Plain>::type to_river(const Plain& m) {
  auto bytes = m.encode();
  typename RiverOf<Plain>::type out;
  if (!out.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error(ErrorCode::INTERNAL, "protobuf refused an encoded message");
  }
  return out;
}

template <typename Plain>
std::vector<typename RiverOf<Plain>::type> to_river(const std::vector<Plain>& ms) {
  std::vector<typename RiverOf<Plain>::type> out;
  out.reserve(ms.size());
  for (const auto& m : ms) out.push_back(to_river(m));
  return out;
}

}  // namespace towns::wire_convert
