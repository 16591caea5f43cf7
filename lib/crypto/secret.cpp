#include "towns/crypto/secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <mutex>
#include <new>

namespace towns::crypto {

void wipe(void* p, size_t n) noexcept {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}

bool constant_time_equal(std::span<const uint8_t> a, std::span<const uint8_t> b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

// Pages of our own, marked MADV_DONTDUMP (and not inherited by a fork's child:
// MADV_DONTFORK is not set, a forked child keeps its copy, also undumped).
void* map_pages(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)madvise(p, bytes, MADV_DONTDUMP);  // best effort: kernels before 3.4 lack it
  return p;
}

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// Size classes 16, 32, ..., 64 KiB (a mapping of its own costs about 35 us, a
// pooled block as much as the heap); a freed block keeps its first word as the
// link of its class's free list.
constexpr size_t kClasses = 13;
constexpr size_t kMaxSmall = size_t{16} << (kClasses - 1);
constexpr size_t kArenaBytes = size_t{1} << 20;

struct Pool {
  std::mutex mu;
  std::array<void*, kClasses> free{};
  char* next = nullptr;  // the unused rest of the current arena
  size_t left = 0;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: secrets may be freed during exit
  return *p;
}

size_t class_of(size_t bytes) {
  size_t c = 0;
  while ((size_t{16} << c) < bytes) ++c;
  return c;
}

}  // namespace

void* secure_allocate(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > kMaxSmall) {
    size_t ps = page_size();
    if (bytes > SIZE_MAX - ps) throw std::bad_alloc();
    return map_pages((bytes + ps - 1) / ps * ps);
  }
  size_t c = class_of(bytes);
  size_t block = size_t{16} << c;
  auto& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  if (void* b = p.free[c]) {
    p.free[c] = *static_cast<void**>(b);
    return b;
  }
  if (p.left < block) {
    // The rest of the old arena goes to the free lists of the classes it fits.
    while (p.left >= 16) {
      size_t k = kClasses - 1;
      while ((size_t{16} << k) > p.left) --k;
      *reinterpret_cast<void**>(p.next) = p.free[k];
      p.free[k] = p.next;
      p.next += size_t{16} << k;
      p.left -= size_t{16} << k;
    }
    p.next = static_cast<char*>(map_pages(kArenaBytes));
    p.left = kArenaBytes;
  }
  void* b = p.next;
  p.next += block;
  p.left -= block;
  return b;
}

void secure_deallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return;
  if (bytes == 0) bytes = 1;
  if (bytes > kMaxSmall) {
    size_t ps = page_size();
    munmap(ptr, (bytes + ps - 1) / ps * ps);
    return;
  }
  size_t c = class_of(bytes);
  auto& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  *static_cast<void**>(ptr) = p.free[c];
  p.free[c] = ptr;
}

}  // namespace towns::crypto
