#include "wire/wire.h"

namespace towns::wire {

uint64_t Reader::varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (p_ == end_) throw Malformed{"a varint runs past the end"};
    uint8_t b = *p_++;
    // The tenth byte holds bit 63 only; protobuf ignores the rest of it.
    if (shift < 64) v |= uint64_t{static_cast<uint8_t>(b & 0x7f)} << shift;
    if ((b & 0x80) == 0) return v;
  }
  throw Malformed{"a varint is longer than 10 bytes"};
}

void Reader::next(uint32_t& field, WireType& type) {
  // protobuf reads a tag as a varint of at most 5 bytes and keeps its low 32
  // bits (a fifth byte over 0x0f is not refused: its high bits are dropped).
  uint32_t tag = 0;
  for (int i = 0;; ++i) {
    if (i == 5) throw Malformed{"a tag is longer than 5 bytes"};
    if (p_ == end_) throw Malformed{"a tag runs past the end"};
    uint8_t b = *p_++;
    tag |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) break;
  }
  field = tag >> 3;
  uint32_t t = tag & 7;
  if (field == 0) throw Malformed{"a field number is 0"};
  if (t > kFixed32) throw Malformed{"a wire type is 6 or 7"};
  type = static_cast<WireType>(t);
}

std::span<const uint8_t> Reader::bytes() {
  // protobuf reads a length as a varint of at most 5 bytes below 2^31: the
  // fifth byte, if any, must be under 8.
  uint64_t n = 0;
  for (int i = 0;; ++i) {
    if (p_ == end_) throw Malformed{"a length runs past the end"};
    uint8_t b = *p_++;
    if (i == 4) {
      if (b >= 8) throw Malformed{"a length is 2^31 or more, or longer than 5 bytes"};
      n |= uint64_t{b} << 28;
      break;
    }
    n |= uint64_t{static_cast<uint8_t>(b & 0x7f)} << (7 * i);
    if ((b & 0x80) == 0) break;
  }
  if (n > static_cast<uint64_t>(end_ - p_)) throw Malformed{"a length runs past the end"};
  std::span<const uint8_t> out(p_, static_cast<size_t>(n));
  p_ += n;
  return out;
}

std::string_view Reader::utf8() {
  auto s = text();
  if (!is_utf8(s)) throw Malformed{"a string field is not valid UTF-8"};
  return s;
}

void Reader::skip(uint32_t field, WireType type, int depth) {
  switch (type) {
    case kVarint:
      varint();
      return;
    case kFixed64:
      if (end_ - p_ < 8) throw Malformed{"a fixed64 runs past the end"};
      p_ += 8;
      return;
    case kFixed32:
      if (end_ - p_ < 4) throw Malformed{"a fixed32 runs past the end"};
      p_ += 4;
      return;
    case kLengthDelimited:
      bytes();
      return;
    case kStartGroup: {
      if (depth >= kMaxGroupDepth) throw Malformed{"groups nest too deep"};
      for (;;) {
        if (done()) throw Malformed{"a group is not closed"};
        uint32_t f;
        WireType t;
        next(f, t);
        if (t == kEndGroup) {
          if (f != field) throw Malformed{"a group ends with another field number"};
          return;
        }
        skip(f, t, depth + 1);
      }
    }
    case kEndGroup:
      throw Malformed{"an end-group tag without its start"};
  }
  throw Malformed{"a wire type is unknown"};
}

bool is_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) < n) return false;
    for (size_t i = 1; i < n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
      return false;
    }
    p += n;
  }
  return true;
}

}  // namespace towns::wire
