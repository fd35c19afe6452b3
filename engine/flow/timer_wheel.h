// keel::flow TimerWheel: the timers of business-process flows (cron fires, waits and
// timeouts), each an id and a due time, handed back when the clock passes them.
//
//   TimerWheel wheel(/*capacity=*/100000, /*now_ms=*/block_time_ms);
//   if (Result<void> set = wheel.insert(timer_id, next_fire_s * 1000); !set) return set.error();
//   wheel.cancel(other_id);
//   std::vector<DueTimer> due;
//   wheel.advance(block_time_ms, due);   // oldest first, ties by id
//   for (const DueTimer& timer : due) start_flow(timer.id, timer.due_ms);
//
// Times are milliseconds on the caller's clock (the ledger's block time); the wheel only
// compares and subtracts them, so any epoch works. A cron fire at s seconds is s * 1000.
//
// Determinism: advance returns exactly the timers whose due time is at or before now_ms,
// sorted by due time then id, whatever order they were inserted or cancelled in. The
// ledger replays blocks through it and must get the same fires every time.
//
// Shape: a hierarchical timing wheel of 11 levels of 64 slots, level n's slots 64^n ms
// wide, which together cover all of uint64_t, so no timer is too far away and no overflow
// list is needed. A timer sits in the level of the highest 6-bit group in which its due
// time differs from the wheel's clock, and moves down a level each time the clock enters
// its slot, at most 10 times. advance jumps from one occupied slot to the next (a bitmap
// per level finds it), so a clock that leaps a year costs no more than one that moves 1 ms.
//
// Memory is fixed at construction: capacity timers of 32 bytes, an id index of at most
// 16 bytes per timer, and 704 slot heads. Nothing allocates after that except the vector
// advance fills.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "error/result.h"

namespace keel::flow {

struct DueTimer {
  uint64_t due_ms = 0;
  uint64_t id = 0;
  friend bool operator==(const DueTimer&, const DueTimer&) = default;
};

class TimerWheel {
 public:
  static constexpr uint32_t capacity_max = 1u << 24;

  // A wheel holding at most capacity timers (1..capacity_max, asserted), its clock at now_ms.
  explicit TimerWheel(uint32_t capacity, uint64_t now_ms = 0);

  // Sets timer id to fire at due_ms. A due time at or before now_ms() fires at the next
  // advance (reported with its own due_ms). O(1). Fails when id is already set
  // ("timer 42: already set, due at 1700000000000 ms") or the wheel holds capacity timers
  // ("timer wheel: full (capacity 1000 timers)"); the wheel is unchanged then.
  Result<void> insert(uint64_t id, uint64_t due_ms);

  // Removes timer id. False when it is not set (never set, cancelled or already fired). O(1).
  bool cancel(uint64_t id);

  // Moves the clock to now_ms and replaces the contents of due with the timers due at or
  // before it, removed from the wheel, sorted by due_ms then id. A now_ms before now_ms()
  // leaves the clock where it is (time never runs backwards here) but still returns what
  // is due. O(due timers * log + 11 * timers moved down).
  void advance(uint64_t now_ms, std::vector<DueTimer>& due);
  std::vector<DueTimer> advance(uint64_t now_ms);

  // When the timer id is due, or nullopt when it is not set.
  std::optional<uint64_t> due_of(uint64_t id) const;

  // The earliest time at which advance would return a timer: the smallest due time, or
  // now_ms() when a timer is overdue; nullopt when the wheel is empty. For a tile that
  // wants to sleep until then. O(timers in one slot).
  std::optional<uint64_t> next_due_ms() const;

  uint64_t now_ms() const { return now_ms_; }
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return uint32_t(nodes_.size()); }

 private:
  static constexpr uint32_t level_bits = 6;
  static constexpr uint32_t slots_per_level = 1u << level_bits;
  static constexpr uint32_t level_count = 11;  // 11 * 6 = 66 bits >= 64
  static constexpr uint32_t none = UINT32_MAX;

  struct Node {
    uint64_t due_ms;
    uint64_t id;
    uint32_t previous;  // in the slot's list, or the free list's link in next
    uint32_t next;
    uint32_t slot;  // level * slots_per_level + index
  };
  static_assert(sizeof(Node) == 32);

  void place(uint32_t node);
  void unlink(uint32_t node);
  uint32_t find_index_position(uint64_t id) const;
  void erase_index_position(uint32_t position);
  uint32_t index_home(uint64_t id) const;

  std::vector<Node> nodes_;
  uint32_t free_head_ = none;
  uint32_t size_ = 0;
  uint64_t now_ms_ = 0;
  std::array<uint32_t, level_count * slots_per_level> slot_heads_;
  std::array<uint64_t, level_count> occupied_{};  // bit i of level n: slot i holds a timer
  // Open addressing with linear probing, at most half full: node numbers, or none.
  std::vector<uint32_t> index_;
  uint32_t index_mask_ = 0;
};

}  // namespace keel::flow
