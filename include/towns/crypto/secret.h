// Secret byte buffers.
//
// SecretBytes owns key material, plaintexts and scratch buffers. Its memory is
// wiped (OPENSSL_cleanse, which the compiler cannot elide) whenever it is
// released: on destruction, on reallocation while growing, and on clear().
// It lives in pages marked MADV_DONTDUMP (secure_allocate), so that a core
// dump of the process does not hold it.
// Equality is constant-time in the contents (it still reveals the lengths).
// Not thread-safe; copyable (each copy is wiped on its own).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "towns/export.h"

namespace towns::crypto {

// Overwrites n bytes at p with zeros in a way the optimiser keeps.
TOWNS_API void wipe(void* p, size_t n) noexcept;

// Constant-time comparison of two equal-length buffers; false when the lengths differ.
TOWNS_API bool constant_time_equal(std::span<const uint8_t> a, std::span<const uint8_t> b) noexcept;

// Memory excluded from core dumps (madvise MADV_DONTDUMP), 16-byte aligned:
// requests up to 64 KiB are carved from 1 MiB arenas of such pages (power-of-
// two size classes, reused through free lists, never returned to the system),
// larger ones are their own mapping. Thread-safe. std::bad_alloc when out of
// memory. Cost (docs/security.md): as the heap for pooled sizes, about 35 us
// more for a mapping of its own.
// secure_deallocate does not wipe; pass the size given to secure_allocate.
TOWNS_API void* secure_allocate(size_t bytes);
TOWNS_API void secure_deallocate(void* p, size_t bytes) noexcept;

template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    static_assert(alignof(T) <= 16);
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(secure_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    wipe(p, n * sizeof(T));
    secure_deallocate(p, n * sizeof(T));
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept { return true; }
};

class TOWNS_API SecretBytes {
 public:
  using Storage = std::vector<uint8_t, WipingAllocator<uint8_t>>;
  using value_type = uint8_t;

  SecretBytes() = default;
  explicit SecretBytes(size_t n) : bytes_(n) {}
  explicit SecretBytes(std::span<const uint8_t> data) : bytes_(data.begin(), data.end()) {}
  explicit SecretBytes(std::string_view text)
      : bytes_(reinterpret_cast<const uint8_t*>(text.data()),
               reinterpret_cast<const uint8_t*>(text.data()) + text.size()) {}
  ~SecretBytes() { clear(); }

  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes&) = default;
  // A moved-from SecretBytes is empty.
  SecretBytes(SecretBytes&& o) noexcept : bytes_(std::move(o.bytes_)) { o.bytes_.clear(); }
  SecretBytes& operator=(SecretBytes&& o) noexcept {
    if (this != &o) {
      clear();
      bytes_ = std::move(o.bytes_);
      o.bytes_.clear();
    }
    return *this;
  }

  uint8_t* data() noexcept { return bytes_.data(); }
  const uint8_t* data() const noexcept { return bytes_.data(); }
  size_t size() const noexcept { return bytes_.size(); }
  uint8_t& operator[](size_t i) noexcept { return bytes_[i]; }
  uint8_t operator[](size_t i) const noexcept { return bytes_[i]; }
  bool empty() const noexcept { return bytes_.empty(); }
  void resize(size_t n) {
    if (n < bytes_.size()) wipe(bytes_.data() + n, bytes_.size() - n);
    bytes_.resize(n);
  }
  // Wipes the contents and makes the buffer empty (capacity is kept, wiped).
  void clear() noexcept {
    wipe(bytes_.data(), bytes_.size());
    bytes_.clear();
  }
  void append(std::span<const uint8_t> more) { bytes_.insert(bytes_.end(), more.begin(), more.end()); }

  std::span<const uint8_t> span() const noexcept { return {bytes_.data(), bytes_.size()}; }
  std::span<uint8_t> span() noexcept { return {bytes_.data(), bytes_.size()}; }
  // The bytes as text (olm keys and base64 strings are ASCII). The view borrows.
  std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }
  // A plain std::string copy: only for values that leave the secret domain
  // (for example a session key being serialised into an encrypted message).
  std::string str() const { return std::string(view()); }

  friend bool operator==(const SecretBytes& a, const SecretBytes& b) noexcept {
    return constant_time_equal(a.span(), b.span());
  }

 private:
  Storage bytes_;
};

// Borrowed secret input: accepts SecretBytes, strings and byte spans without copying.
class SecretView {
 public:
  SecretView(const SecretBytes& s) noexcept : p_(s.data()), n_(s.size()) {}  // NOLINT
  SecretView(std::string_view s) noexcept                                  // NOLINT
      : p_(reinterpret_cast<const uint8_t*>(s.data())), n_(s.size()) {}
  SecretView(const char* s) noexcept : SecretView(std::string_view(s)) {}  // NOLINT
  SecretView(const std::string& s) noexcept : SecretView(std::string_view(s)) {}  // NOLINT
  SecretView(std::span<const uint8_t> s) noexcept : p_(s.data()), n_(s.size()) {}  // NOLINT
  const uint8_t* data() const noexcept { return p_; }
  size_t size() const noexcept { return n_; }
  std::span<const uint8_t> span() const noexcept { return {p_, n_}; }
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(p_), n_}; }

 private:
  const uint8_t* p_;
  size_t n_;
};

}  // namespace towns::crypto
