#include "store/replay_journal.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace towns::store_detail {
namespace {

// Offsets in a slot. A slot is live when its mark is the header's epoch + 1, so
// a zero-filled file holds no entry and moving the epoch on retires them all.
constexpr size_t kMark = 0, kStream = 8, kSession = 24, kIndex = 40, kFingerprint = 48, kTag = 64;
static_assert(kTag + 16 == ReplayJournal::kSlotSize);
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);

std::atomic_ref<uint64_t> word_at(uint8_t* p) { return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(p)); }

uint64_t load64(std::span<const uint8_t> b) {
  uint64_t v = 0;
  std::memcpy(&v, b.data(), std::min(b.size(), sizeof v));
  return v;
}

// The names are keyed hashes (uniform), so their first bytes spread the slots.
size_t home_slot(std::span<const uint8_t> stream, std::span<const uint8_t> session, uint32_t index) {
  uint64_t h = load64(session) ^ (load64(stream) * 0x9e3779b97f4a7c15ULL) ^ (uint64_t{index} * 0xc2b2ae3d27d4eb4fULL);
  h ^= h >> 29;
  return static_cast<size_t>(h % ReplayJournal::kSlots);
}

bool same(std::span<const uint8_t> a, const std::array<uint8_t, 16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), b.size()) == 0;
}

JournalEntry read_slot(const uint8_t* p) {
  JournalEntry e;
  std::memcpy(e.stream.data(), p + kStream, 16);
  std::memcpy(e.session.data(), p + kSession, 16);
  std::memcpy(&e.index, p + kIndex, 4);
  std::memcpy(e.fingerprint.data(), p + kFingerprint, 16);
  std::memcpy(e.tag.data(), p + kTag, 16);
  return e;
}

}  // namespace

uint64_t ReplayJournal::epoch() const { return word_at(header_).load(std::memory_order_acquire); }
uint64_t ReplayJournal::count() const { return word_at(header_ + 8).load(std::memory_order_relaxed); }

std::optional<JournalEntry> ReplayJournal::find(std::span<const uint8_t> stream, std::span<const uint8_t> session,
                                                uint32_t index) const {
  const uint64_t live = epoch() + 1;
  size_t slot = home_slot(stream, session, index);
  for (size_t probe = 0; probe < kSlots; ++probe, slot = (slot + 1) % kSlots) {
    uint8_t* p = slots_ + slot * kSlotSize;
    if (word_at(p + kMark).load(std::memory_order_acquire) != live) return std::nullopt;
    JournalEntry e = read_slot(p);
    if (e.index == index && same(stream, e.stream) && same(session, e.session)) return e;
  }
  return std::nullopt;
}

bool ReplayJournal::insert(const JournalEntry& e) {
  const uint64_t live = epoch() + 1;
  size_t slot = home_slot(e.stream, e.session, e.index);
  for (size_t probe = 0; probe < kSlots; ++probe, slot = (slot + 1) % kSlots) {
    uint8_t* p = slots_ + slot * kSlotSize;
    if (word_at(p + kMark).load(std::memory_order_acquire) == live) continue;
    // The entry first, its mark last: a process that dies in between leaves a
    // slot that is not live.
    std::memcpy(p + kStream, e.stream.data(), 16);
    std::memcpy(p + kSession, e.session.data(), 16);
    std::memcpy(p + kIndex, &e.index, 4);
    std::memset(p + kIndex + 4, 0, 4);
    std::memcpy(p + kFingerprint, e.fingerprint.data(), 16);
    std::memcpy(p + kTag, e.tag.data(), 16);
    word_at(p + kMark).store(live, std::memory_order_release);
    word_at(header_ + 8).fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

std::vector<JournalEntry> ReplayJournal::entries() const {
  const uint64_t live = epoch() + 1;
  std::vector<JournalEntry> out;
  for (size_t slot = 0; slot < kSlots; ++slot) {
    uint8_t* p = slots_ + slot * kSlotSize;
    if (word_at(p + kMark).load(std::memory_order_acquire) == live) out.push_back(read_slot(p));
  }
  return out;
}

bool ReplayJournal::has_entries() const {
  const uint64_t live = epoch() + 1;
  for (size_t slot = 0; slot < kSlots; ++slot) {
    if (word_at(slots_ + slot * kSlotSize + kMark).load(std::memory_order_acquire) == live) return true;
  }
  return false;
}

void ReplayJournal::clear() {
  word_at(header_).fetch_add(1, std::memory_order_acq_rel);
  word_at(header_ + 8).store(0, std::memory_order_relaxed);
}

}  // namespace towns::store_detail
