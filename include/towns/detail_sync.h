// Locks the library uses, annotated for clang's -Wthread-safety (tools/test
// builds the library with clang and -Werror=thread-safety).
//
// The lock hierarchy (docs/design.md): a thread holding a lock may take only
// locks further down this list, and never calls host or caller code while
// holding any of them.
//   1. OutboundSessions::mu_, then one OutboundSessions entry's mu
//   2. EncryptionDevice::import_mu_ (imports of both kinds: check, then write)
//   3. InboundSessions: one cached session's mu, then InboundSessions::cache_mu_
//   4. HybridSessions::mu_
//   5. DeviceAccount::mu_
//   6. the store's own lock (a leaf: the store never calls out). Under it a
//      SQLite store takes only its cross-process locks, in this order: the
//      replay journal's lock, then SQLite's file locks (docs/store.md).
// No mutex is recursive.
#pragma once

#include <mutex>

#if defined(__clang__)
#define TOWNS_TSA(x) __attribute__((x))
#else
#define TOWNS_TSA(x)
#endif

#define TOWNS_CAPABILITY(x) TOWNS_TSA(capability(x))
#define TOWNS_SCOPED_CAPABILITY TOWNS_TSA(scoped_lockable)
#define TOWNS_GUARDED_BY(x) TOWNS_TSA(guarded_by(x))
#define TOWNS_PT_GUARDED_BY(x) TOWNS_TSA(pt_guarded_by(x))
#define TOWNS_ACQUIRED_BEFORE(...) TOWNS_TSA(acquired_before(__VA_ARGS__))
#define TOWNS_ACQUIRED_AFTER(...) TOWNS_TSA(acquired_after(__VA_ARGS__))
#define TOWNS_REQUIRES(...) TOWNS_TSA(requires_capability(__VA_ARGS__))
#define TOWNS_EXCLUDES(...) TOWNS_TSA(locks_excluded(__VA_ARGS__))
#define TOWNS_ACQUIRE(...) TOWNS_TSA(acquire_capability(__VA_ARGS__))
#define TOWNS_RELEASE(...) TOWNS_TSA(release_capability(__VA_ARGS__))
#define TOWNS_NO_THREAD_SAFETY_ANALYSIS TOWNS_TSA(no_thread_safety_analysis)

namespace towns {

class TOWNS_CAPABILITY("mutex") Mutex {
 public:
  void lock() TOWNS_ACQUIRE() { mu_.lock(); }
  void unlock() TOWNS_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class TOWNS_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) TOWNS_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() TOWNS_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace towns
