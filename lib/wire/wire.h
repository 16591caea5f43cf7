// A protobuf wire-format reader and writer for the library's few messages
// (internal). The library carries no protobuf runtime (docs/design.md, "Linking
// beside another protobuf"); test/test_wire.cpp checks every message against
// protobuf's own generated code, both ways, on fixed and random inputs.
//
// Reading follows protobuf's parser (3.21): a field number 0, a wire type 6 or
// 7, a varint over 10 bytes, a tag over 5 bytes (a 5-byte tag keeps its low 32
// bits), a length over 5 bytes or of 2^31 or more, a length past the end, an
// end-group tag without its start, or a group left open is malformed; unknown
// fields (any number, or a known number with another wire type) are skipped;
// groups and nested messages together nest at most kMaxGroupDepth deep.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "towns/error.h"

namespace towns::wire {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

inline constexpr int kMaxGroupDepth = 100;

// Thrown by Reader on malformed input; the message codecs turn it into
// INVALID_ARGUMENT (or their caller's code) naming the message.
struct Malformed {
  const char* what;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool done() const { return p_ == end_; }
  // The next field's tag; check done() first.
  void next(uint32_t& field, WireType& type);
  uint64_t varint();
  // A length-delimited field's bytes (a view into the input).
  std::span<const uint8_t> bytes();
  std::string_view text() {
    auto b = bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  // A proto3 `string` field: its bytes must be UTF-8.
  std::string_view utf8();
  // Skips the field whose tag was just read.
  void skip(uint32_t field, WireType type, int depth = 0);

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Writes into any std::vector<uint8_t, A> (a wiping one for secrets).
template <typename Vec>
class Writer {
 public:
  explicit Writer(Vec& out) : out_(out) {}
  void tag(uint32_t field, WireType type) { varint((uint64_t{field} << 3) | type); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<uint8_t>(v));
  }
  void bytes(uint32_t field, std::span<const uint8_t> b) {
    tag(field, kLengthDelimited);
    varint(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void bytes(uint32_t field, std::string_view b) {
    bytes(field, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
  }
  // proto3 implicit presence: written only when not the default.
  void bytes_if_set(uint32_t field, std::string_view b) {
    if (!b.empty()) bytes(field, b);
  }
  void bytes_if_set(uint32_t field, std::span<const uint8_t> b) {
    if (!b.empty()) bytes(field, b);
  }
  void varint_if_set(uint32_t field, uint64_t v) {
    if (v != 0) {
      tag(field, kVarint);
      varint(v);
    }
  }
  // A nested message: encoded by fill into a scratch vector of the same kind.
  template <typename Fill>
  void message(uint32_t field, Fill&& fill) {
    Vec inner(out_.get_allocator());
    Writer w(inner);
    fill(w);
    bytes(field, std::span<const uint8_t>(inner.data(), inner.size()));
  }

 private:
  Vec& out_;
};

// Reads every field of a message: known ones (number and wire type) go to
// on_field(reader, field, type), which returns false for those it does not
// know; the rest are skipped. depth: how many messages this one is nested in
// (protobuf counts a nested message against the same limit as groups). Malformed
// input is INVALID_ARGUMENT "not a <message>: <fault>".
template <typename OnField>
void read_fields(std::span<const uint8_t> bytes, const char* message, OnField&& on_field, int depth = 0) {
  try {
    Reader r(bytes);
    while (!r.done()) {
      uint32_t field;
      WireType type;
      r.next(field, type);
      if (!on_field(r, field, type)) r.skip(field, type, depth);
    }
  } catch (const Malformed& m) {
    throw Error(ErrorCode::INVALID_ARGUMENT, std::string("not a ") + message + ": " + m.what);
  }
}

// Valid UTF-8 as protobuf checks it (no overlong forms, no surrogates, at most U+10FFFF).
bool is_utf8(std::string_view s) noexcept;

}  // namespace towns::wire
