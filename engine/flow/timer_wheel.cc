#include "engine/flow/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <string>

namespace keel::flow {
namespace {

// splitmix64's finalizer: sequential ids spread over the whole index.
uint64_t mix(uint64_t id) {
  id = (id ^ (id >> 30)) * 0xbf58476d1ce4e5b9ULL;
  id = (id ^ (id >> 27)) * 0x94d049bb133111ebULL;
  return id ^ (id >> 31);
}

// The bits of a time above level's slot index: what a timer on that level shares with
// the clock.
uint64_t above_level(uint64_t time_ms, uint32_t level, uint32_t level_bits) {
  uint32_t shift = (level + 1) * level_bits;
  return shift >= 64 ? 0 : time_ms & (~uint64_t(0) << shift);
}

}  // namespace

TimerWheel::TimerWheel(uint32_t capacity, uint64_t now_ms) : nodes_(capacity), now_ms_(now_ms) {
  assert(capacity >= 1 && capacity <= capacity_max);
  for (uint32_t node = 0; node < capacity; ++node) nodes_[node].next = node + 1 < capacity ? node + 1 : none;
  free_head_ = 0;
  slot_heads_.fill(none);
  index_.assign(std::bit_ceil(uint64_t(capacity) * 2), none);
  index_mask_ = uint32_t(index_.size() - 1);
}

Result<void> TimerWheel::insert(uint64_t id, uint64_t due_ms) {
  if (uint32_t position = find_index_position(id); position != none)
    return make_error("timer " + std::to_string(id),
                      "already set, due at " + std::to_string(nodes_[index_[position]].due_ms) + " ms");
  if (free_head_ == none)
    return make_error("timer wheel", "full (capacity " + std::to_string(capacity()) + " timers)");
  uint32_t node = free_head_;
  free_head_ = nodes_[node].next;
  nodes_[node].id = id;
  nodes_[node].due_ms = due_ms;
  place(node);
  uint32_t position = index_home(id);
  while (index_[position] != none) position = (position + 1) & index_mask_;
  index_[position] = node;
  ++size_;
  return {};
}

bool TimerWheel::cancel(uint64_t id) {
  uint32_t position = find_index_position(id);
  if (position == none) return false;
  uint32_t node = index_[position];
  erase_index_position(position);
  unlink(node);
  nodes_[node].next = free_head_;
  free_head_ = node;
  --size_;
  return true;
}

void TimerWheel::advance(uint64_t now_ms, std::vector<DueTimer>& due) {
  due.clear();
  const uint64_t target_ms = std::max(now_ms, now_ms_);
  while (true) {
    // The lowest occupied level holds the earliest timers: a level's timers all lie in
    // the clock's current slot of the level above.
    uint32_t level = 0;
    while (level < level_count && occupied_[level] == 0) ++level;
    if (level == level_count) break;
    uint32_t index = uint32_t(std::countr_zero(occupied_[level]));
    uint64_t slot_start_ms = above_level(now_ms_, level, level_bits) | (uint64_t(index) << (level * level_bits));
    if (slot_start_ms > target_ms) break;
    // Moving the clock to the slot's start keeps every other timer where it belongs: the
    // clock stays within the same slot of each higher level.
    now_ms_ = slot_start_ms;
    uint32_t slot = level * slots_per_level + index;
    uint32_t node = slot_heads_[slot];
    slot_heads_[slot] = none;
    occupied_[level] &= ~(uint64_t(1) << index);
    while (node != none) {
      uint32_t next = nodes_[node].next;
      if (level == 0) {
        due.push_back({nodes_[node].due_ms, nodes_[node].id});
        erase_index_position(find_index_position(nodes_[node].id));
        nodes_[node].next = free_head_;
        free_head_ = node;
        --size_;
      } else {
        place(node);  // into a lower level: its due time now differs from the clock only below this one
      }
      node = next;
    }
  }
  now_ms_ = target_ms;
  std::sort(due.begin(), due.end(),
            [](const DueTimer& a, const DueTimer& b) { return a.due_ms != b.due_ms ? a.due_ms < b.due_ms : a.id < b.id; });
}

std::vector<DueTimer> TimerWheel::advance(uint64_t now_ms) {
  std::vector<DueTimer> due;
  advance(now_ms, due);
  return due;
}

std::optional<uint64_t> TimerWheel::due_of(uint64_t id) const {
  uint32_t position = find_index_position(id);
  if (position == none) return std::nullopt;
  return nodes_[index_[position]].due_ms;
}

std::optional<uint64_t> TimerWheel::next_due_ms() const {
  for (uint32_t level = 0; level < level_count; ++level) {
    if (occupied_[level] == 0) continue;
    uint32_t slot = level * slots_per_level + uint32_t(std::countr_zero(occupied_[level]));
    uint64_t earliest_ms = UINT64_MAX;
    for (uint32_t node = slot_heads_[slot]; node != none; node = nodes_[node].next)
      earliest_ms = std::min(earliest_ms, nodes_[node].due_ms);
    return std::max(earliest_ms, now_ms_);
  }
  return std::nullopt;
}

// Puts the node at the head of the slot its due time falls in (an overdue one in the
// clock's own slot of level 0, so that the next advance returns it).
void TimerWheel::place(uint32_t node) {
  uint64_t due_ms = std::max(nodes_[node].due_ms, now_ms_);
  uint64_t differing = due_ms ^ now_ms_;
  uint32_t level = differing == 0 ? 0 : uint32_t(63 - std::countl_zero(differing)) / level_bits;
  uint32_t index = uint32_t(due_ms >> (level * level_bits)) & (slots_per_level - 1);
  uint32_t slot = level * slots_per_level + index;
  nodes_[node].slot = slot;
  nodes_[node].previous = none;
  nodes_[node].next = slot_heads_[slot];
  if (slot_heads_[slot] != none) nodes_[slot_heads_[slot]].previous = node;
  slot_heads_[slot] = node;
  occupied_[level] |= uint64_t(1) << index;
}

void TimerWheel::unlink(uint32_t node) {
  Node& timer = nodes_[node];
  if (timer.previous != none) nodes_[timer.previous].next = timer.next;
  else slot_heads_[timer.slot] = timer.next;
  if (timer.next != none) nodes_[timer.next].previous = timer.previous;
  if (slot_heads_[timer.slot] == none)
    occupied_[timer.slot / slots_per_level] &= ~(uint64_t(1) << (timer.slot % slots_per_level));
}

uint32_t TimerWheel::index_home(uint64_t id) const { return uint32_t(mix(id)) & index_mask_; }

uint32_t TimerWheel::find_index_position(uint64_t id) const {
  for (uint32_t position = index_home(id); index_[position] != none; position = (position + 1) & index_mask_) {
    if (nodes_[index_[position]].id == id) return position;
  }
  return none;
}

// Backward-shift deletion: entries after the hole that would no longer be found past it
// move into it, so lookups never need tombstones.
void TimerWheel::erase_index_position(uint32_t position) {
  assert(position != none);
  uint32_t hole = position;
  uint32_t scan = position;
  while (true) {
    scan = (scan + 1) & index_mask_;
    if (index_[scan] == none) break;
    uint32_t home = index_home(nodes_[index_[scan]].id);
    // The entry at scan may move into the hole unless its home lies cyclically in (hole, scan].
    bool stays = hole <= scan ? (hole < home && home <= scan) : (hole < home || home <= scan);
    if (stays) continue;
    index_[hole] = index_[scan];
    hole = scan;
  }
  index_[hole] = none;
}

}  // namespace keel::flow
