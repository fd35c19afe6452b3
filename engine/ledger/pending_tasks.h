// engine/ledger/pending_tasks.h: a shard's compute tasks issued and not yet settled, by
// task mark (ShardState::pending_tasks).
//
//   PendingTaskTable tasks;
//   PendingTask& task = tasks.insert(CreditMark::pack(7, 3));   // the mark must be absent
//   task.subject = 42; task.compute_type = "hash"; task.input.assign(...);
//   if (const PendingTask* found = tasks.find(mark)) ...;
//   tasks.erase(mark);                                          // 1, or 0 when absent
//
// Every compute_request inserts one and every result looks one up and erases it: at a
// few million tasks a second on the shard's one core, a node-based map cost a heap node
// per task and its input buffer a second. Here the tasks live in a slab of slots reused
// last-freed first (a freed slot keeps its input buffer, so a steady flow of short inputs
// allocates nothing), chained from an index of slot numbers. A block's marks are
// consecutive, and the index keeps them in consecutive buckets (the height picks where a
// block's run starts, the index within the block steps through it): a block's requests
// inserted one after another, and their results settled nearly in the same order, walk
// the index a cache line per sixteen tasks. (A scattering hash cost a miss per task and
// measured slower than the node map, which hashes a mark to itself.)
//
// Iteration order is unspecified (marks() lists them; sort for mark order). A pointer or
// reference into the table is valid until the next insert or erase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace keel::ledger {

// A compute task issued by a compute_request and not yet settled by a compute_result.
// The input stays here while the task is pending, so an engine restarted from a snapshot
// can dispatch it again even after the request's block was dropped from the log.
struct PendingTask {
  uint64_t subject = 0;
  std::string compute_type;  // 1..compute_type_bytes_max of [a-z0-9_]
  std::vector<std::byte> input;
  bool operator==(const PendingTask&) const = default;
};

class PendingTaskTable {
 public:
  PendingTaskTable() = default;
  PendingTaskTable(const PendingTaskTable&) = default;
  PendingTaskTable& operator=(const PendingTaskTable&) = default;
  // A moved-from table is empty (its count goes with its slots).
  PendingTaskTable(PendingTaskTable&& other) noexcept;
  PendingTaskTable& operator=(PendingTaskTable&& other) noexcept;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool contains(uint64_t mark) const { return find(mark) != nullptr; }
  PendingTask* find(uint64_t mark);
  const PendingTask* find(uint64_t mark) const;
  // The task at `mark`; throws std::out_of_range when there is none (as a map's at()).
  PendingTask& at(uint64_t mark);
  const PendingTask& at(uint64_t mark) const;

  // Adds an empty task at `mark` (non-zero, not present) and returns it to be filled. Its
  // input and name may hold an earlier task's capacity, never its bytes.
  PendingTask& insert(uint64_t mark);
  // Adds `task` at `mark` unless a task is there already (then false, nothing changed).
  bool emplace(uint64_t mark, PendingTask task);
  // The task at `mark`, added empty when absent.
  PendingTask& operator[](uint64_t mark);
  // Removes the task at `mark`: 1, or 0 when there was none.
  size_t erase(uint64_t mark);
  void clear();

  // Every mark held, in no particular order.
  std::vector<uint64_t> marks() const;

  // Same marks, and equal tasks at each.
  bool operator==(const PendingTaskTable& other) const;

 private:
  static constexpr uint32_t no_slot = ~uint32_t(0);
  struct Slot {
    uint64_t mark = 0;  // 0: free (no task mark is 0)
    uint32_t next = no_slot;  // the next slot in its bucket's chain
    PendingTask task;
  };

  size_t bucket_of(uint64_t mark) const;
  void grow();

  std::vector<uint32_t> buckets_;  // a chain's first slot; a power of two, at least size_
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;  // freed slots, the last freed last
  size_t size_ = 0;
};

}  // namespace keel::ledger
