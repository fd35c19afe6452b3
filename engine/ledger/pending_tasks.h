// engine/ledger/pending_tasks.h: a shard's compute tasks issued and not yet settled, by
// task mark (ShardState::pending_tasks).
//
//   PendingTaskTable tasks;
//   tasks.insert(CreditMark::pack(7, 3), 42, "hash", input);  // the mark must be absent
//   if (const PendingTask* found = tasks.find(mark)) ...;
//   tasks.erase(mark);                                          // 1, or 0 when absent
//
// Every compute_request inserts one and every result looks one up and erases it: at a
// few million tasks a second on the shard's one core, a node-based map cost a heap node
// per task and its input buffer a second. Here the tasks live in a slab of slots, chained
// from an index of slot numbers. A block's marks are consecutive, and the index keeps
// them in consecutive buckets (the height picks where a block's run starts, the index
// within the block steps through it). (A scattering hash cost a miss per task and
// measured slower than the node map, which hashes a mark to itself.)
//
// A slot is split in two: its link (mark, chain, 16 bytes) and its task (64 bytes, plus
// the input's buffer). Settling a task reads and writes only links, which for a shard's
// few thousand pending tasks stay in the core's cache; the task's own bytes are touched
// when it is issued and when it is dispatched again after a restart, not when it settles
// (unless its input buffer is over kept_input_bytes, which is then given back). (perf showed the settling look-up missing the cache on the whole slot at about
// 10% of the shard's core.) Slots are reused first freed first: tasks settle nearly in the
// order they were issued, so a block's tasks keep consecutive slots. A freed slot keeps
// its task's buffers, whose bytes the next insert overwrites; an input buffer over
// kept_input_bytes is given back when its task settles, so a burst of large inputs does
// not stay resident.
//
// Iteration order is unspecified (marks() lists them; sort for mark order). A pointer or
// reference into the table is valid until the next insert or erase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
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
  // A copy holds the live tasks; its free slots start empty (a snapshot's capture copies
  // the table on the shard's core, and a settled task's leftover bytes are not worth it).
  PendingTaskTable(const PendingTaskTable& other);
  PendingTaskTable& operator=(const PendingTaskTable& other);
  // A moved-from table is empty (its count goes with its slots).
  PendingTaskTable(PendingTaskTable&& other) noexcept;
  PendingTaskTable& operator=(PendingTaskTable&& other) noexcept;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool contains(uint64_t mark) const { return find(mark) != nullptr; }
  PendingTask* find(uint64_t mark);
  const PendingTask* find(uint64_t mark) const;
  // The task at `mark`; throws std::out_of_range when there is none (as a map's at()).
  // (An input grown past kept_input_bytes through at() or find() is given back when its
  // slot is next used rather than when its task settles.)
  PendingTask& at(uint64_t mark);
  const PendingTask& at(uint64_t mark) const;

  // Adds the task at `mark` (non-zero, not present) and returns it. `compute_type` and
  // `input` must not point into this table (the slab may grow and move).
  PendingTask& insert(uint64_t mark, uint64_t subject, std::string_view compute_type,
                      std::span<const std::byte> input);
  // Adds `task` at `mark` unless a task is there already (then false, nothing changed).
  bool emplace(uint64_t mark, PendingTask task);
  // Removes the task at `mark`: 1, or 0 when there was none.
  size_t erase(uint64_t mark);
  void clear();

  // The bytes of input buffers the table holds, its free slots' included (each at most
  // kept_input_bytes, unless grown through at()).
  size_t input_bytes_held() const;

  // Every mark held, in no particular order.
  std::vector<uint64_t> marks() const;

  // Same marks, and equal tasks at each.
  bool operator==(const PendingTaskTable& other) const;

 private:
  static constexpr uint32_t no_slot = ~uint32_t(0);
  // What a look-up reads: 16 bytes a slot.
  struct Link {
    uint64_t mark = 0;        // 0: free (no task mark is 0)
    uint32_t next = no_slot;  // the next slot in its bucket's chain
    uint32_t input_big = 0;   // 1: the task's input buffer is to be given back when it settles
  };
  static_assert(sizeof(Link) == 16);

  size_t bucket_of(uint64_t mark) const;
  void grow();
  // A free slot (the first freed), or a new one; linked at `mark`.
  uint32_t take_slot(uint64_t mark);

  std::vector<uint32_t> buckets_;  // a chain's first slot; a power of two, at least size_
  std::vector<Link> links_;        // by slot
  std::vector<PendingTask> tasks_;  // by slot; a free slot's holds a settled task's buffers
  // Freed slots, taken from free_head_ on in the order they were freed.
  std::vector<uint32_t> free_slots_;
  size_t free_head_ = 0;
  size_t size_ = 0;
};

}  // namespace keel::ledger
