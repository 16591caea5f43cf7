// The replay record's journal (docs/store.md, "The replay journal"): a small
// open-addressing table of the most recent replay-record entries, kept in the
// store's shared generation file and folded into `message_indices` in batches.
//
// This class only reads and writes the mapped table; it takes no lock. Every
// call must be made while holding the journal lock (flock on the generation
// file, SqliteCryptoStore::Impl::JournalLock), which orders every access across
// processes and store objects. The table may have been written by anyone who can
// write the file: every value read from it is bounded here (a probe never runs
// past the table), and the caller checks an entry's tag before it trusts it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace towns::store_detail {

// One recorded (stream, session, index) with its fingerprint and its tag, the
// same five values as a `message_indices` row (the names are keyed hashes).
struct JournalEntry {
  std::array<uint8_t, 16> stream{};
  std::array<uint8_t, 16> session{};
  uint32_t index = 0;
  std::array<uint8_t, 16> fingerprint{};
  std::array<uint8_t, 16> tag{};
};

class ReplayJournal {
 public:
  static constexpr size_t kSlots = 512;        // the table's size
  static constexpr size_t kFoldAt = 256;       // entries after which the store folds (half full)
  static constexpr size_t kSlotSize = 80;      // mark, stream, session, index, pad, fingerprint, tag
  static constexpr size_t kHeaderSize = 16;    // epoch, count
  static constexpr size_t kTableSize = kSlots * kSlotSize;

  ReplayJournal() = default;
  // header: kHeaderSize bytes, 8-aligned; slots: kTableSize bytes, 8-aligned.
  ReplayJournal(uint8_t* header, uint8_t* slots) : header_(header), slots_(slots) {}

  bool attached() const { return header_ != nullptr; }

  // Changes whenever the table is emptied (every fold); a process that saw
  // another value since it last looked knows that rows reached the file.
  uint64_t epoch() const;
  // Entries inserted since the table was last emptied, as the file says: only
  // a hint for when to fold (a crash between an insert and its count leaves it
  // low; a damaged file, anything).
  uint64_t count() const;

  std::optional<JournalEntry> find(std::span<const uint8_t> stream, std::span<const uint8_t> session,
                                   uint32_t index) const;
  // False when the table has no free slot on the entry's probe path (only a
  // damaged or stale count lets it fill up): the caller folds and retries.
  bool insert(const JournalEntry& e);
  bool has_entries() const;
  // Every entry in the table, in slot order.
  std::vector<JournalEntry> entries() const;
  // Empties the table in one store (the epoch moves on, which retires every
  // entry at once), then resets the count.
  void clear();

 private:
  uint8_t* header_ = nullptr;
  uint8_t* slots_ = nullptr;
};

}  // namespace towns::store_detail
