// engine/sched/batch_entries.h: how a batch of tasks (or of their answers) lies in an
// arena block. Every compute ring carries batches: a ring message names one block of its
// arena, and the block holds the batch's entries back to back, each a fixed part (Entry)
// followed by its bytes (an input or an output) padded to 8. One message, one block and
// one publish per batch rather than per task (perf/RESULTS.md, 2026-11-26).
//
//   size_t bytes = 0;  for (...) bytes += batch_entry_bytes<TaskEntry>(input.size());
//   std::optional<shm::ArenaBlock> block = arena.reserve(bytes);
//   size_t offset = 0;  for (...) offset += write_batch_entry(block->bytes.subspan(offset), entry, input);
//   ...
//   BatchEntries<TaskEntry> entries(reader.read(position, bytes), count);
//   std::span<const std::byte> input;
//   for (TaskEntry entry; entries.next(entry, input);) ...
//
// An Entry is trivially copyable and says how many bytes follow it (payload_bytes()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace keel::sched {

// A batch holds at most batch_tasks_max entries and batch_bytes_max bytes of them, unless
// its one entry is bigger.
inline constexpr uint32_t batch_tasks_max = 64;
inline constexpr size_t batch_bytes_max = 16384;

// Bytes an entry takes in its batch's block.
template <class Entry>
constexpr size_t batch_entry_bytes(size_t payload_bytes) {
  return sizeof(Entry) + ((payload_bytes + 7) & ~size_t(7));
}

// Writes an entry and its bytes at the start of `at` (which holds at least the entry's
// bytes) and returns how many it took. The padding is zeroed: the block is shared memory
// another process reads, and stale bytes there would be a leak, not just noise.
template <class Entry>
size_t write_batch_entry(std::span<std::byte> at, const Entry& entry, std::span<const std::byte> payload) {
  const size_t padded = (payload.size() + 7) & ~size_t(7);
  std::memcpy(at.data(), &entry, sizeof entry);
  if (!payload.empty()) std::memcpy(at.data() + sizeof entry, payload.data(), payload.size());
  if (padded != payload.size()) std::memset(at.data() + sizeof entry + payload.size(), 0, padded - payload.size());
  return sizeof entry + padded;
}

// Reads a batch's entries in order. next() is false after `count` entries, or at the first
// entry that does not fit the block (a damaged message: malformed() says so).
template <class Entry>
class BatchEntries {
 public:
  BatchEntries(std::span<const std::byte> block, uint32_t count) : block_(block), left_(count) {}

  bool next(Entry& entry, std::span<const std::byte>& payload) {
    if (left_ == 0 || malformed_) return false;
    if (block_.size() < sizeof(Entry)) {
      malformed_ = true;
      return false;
    }
    std::memcpy(&entry, block_.data(), sizeof(Entry));
    const size_t bytes = entry.payload_bytes();
    const size_t taken = sizeof(Entry) + ((bytes + 7) & ~size_t(7));
    if (bytes > block_.size() || taken > block_.size()) {
      malformed_ = true;
      return false;
    }
    payload = block_.subspan(sizeof(Entry), bytes);
    block_ = block_.subspan(taken);
    --left_;
    return true;
  }
  bool malformed() const { return malformed_; }

 private:
  std::span<const std::byte> block_;
  uint32_t left_;
  bool malformed_ = false;
};

}  // namespace keel::sched
