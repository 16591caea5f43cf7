// The one thread fan-out of the library: runs fn(i) for every i in [0, n) on
// up to `threads` threads (the calling thread included), each index exactly
// once. fn must not throw; results go into slots the caller owns per index.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace towns {

template <typename Fn>
void parallel_for(size_t n, unsigned threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  threads = static_cast<unsigned>(std::min<size_t>(std::max(1u, threads), std::max<size_t>(1, n)));
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace towns
