#include "engine/ledger/pending_tasks.h"

#include <cassert>
#include <stdexcept>
#include <utility>

namespace keel::ledger {

namespace {

// A freed slot keeps an input buffer up to this size for the next task; a bigger one is
// given back, so a burst of large inputs does not stay resident once settled.
constexpr size_t kept_input_bytes = 256;
constexpr size_t buckets_min = 64;

}  // namespace

PendingTaskTable::PendingTaskTable(PendingTaskTable&& other) noexcept
    : buckets_(std::move(other.buckets_)),
      slots_(std::move(other.slots_)),
      free_slots_(std::move(other.free_slots_)),
      size_(std::exchange(other.size_, 0)) {
  other.buckets_.clear();
  other.slots_.clear();
  other.free_slots_.clear();
}

PendingTaskTable& PendingTaskTable::operator=(PendingTaskTable&& other) noexcept {
  if (this == &other) return *this;
  buckets_ = std::move(other.buckets_);
  slots_ = std::move(other.slots_);
  free_slots_ = std::move(other.free_slots_);
  size_ = std::exchange(other.size_, 0);
  other.buckets_.clear();
  other.slots_.clear();
  other.free_slots_.clear();
  return *this;
}

// Marks are (height << 16 | index): the height, scattered, picks where the block's run of
// buckets starts, and the index steps through it (see the header).
size_t PendingTaskTable::bucket_of(uint64_t mark) const {
  uint32_t height_part = uint32_t(mark >> 16) * 0x9e3779b1u;
  return size_t(height_part + uint32_t(mark & 0xffff)) & (buckets_.size() - 1);
}

PendingTask* PendingTaskTable::find(uint64_t mark) {
  return const_cast<PendingTask*>(std::as_const(*this).find(mark));
}

const PendingTask* PendingTaskTable::find(uint64_t mark) const {
  if (buckets_.empty() || mark == 0) return nullptr;
  for (uint32_t slot = buckets_[bucket_of(mark)]; slot != no_slot; slot = slots_[slot].next)
    if (slots_[slot].mark == mark) return &slots_[slot].task;
  return nullptr;
}

PendingTask& PendingTaskTable::at(uint64_t mark) { return const_cast<PendingTask&>(std::as_const(*this).at(mark)); }

const PendingTask& PendingTaskTable::at(uint64_t mark) const {
  const PendingTask* task = find(mark);
  if (task == nullptr) throw std::out_of_range("no pending task at mark " + std::to_string(mark));
  return *task;
}

void PendingTaskTable::grow() {
  buckets_.assign(buckets_.empty() ? buckets_min : buckets_.size() * 2, no_slot);
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    if (slots_[slot].mark == 0) continue;
    uint32_t& head = buckets_[bucket_of(slots_[slot].mark)];
    slots_[slot].next = head;
    head = slot;
  }
}

PendingTask& PendingTaskTable::insert(uint64_t mark) {
  assert(mark != 0 && !contains(mark));
  if (size_ + 1 > buckets_.size()) grow();
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = uint32_t(slots_.size());
    slots_.emplace_back();
  }
  uint32_t& head = buckets_[bucket_of(mark)];
  slots_[slot].mark = mark;
  slots_[slot].next = head;
  head = slot;
  ++size_;
  return slots_[slot].task;
}

bool PendingTaskTable::emplace(uint64_t mark, PendingTask task) {
  if (contains(mark)) return false;
  insert(mark) = std::move(task);
  return true;
}

PendingTask& PendingTaskTable::operator[](uint64_t mark) {
  if (PendingTask* task = find(mark)) return *task;
  return insert(mark);
}

size_t PendingTaskTable::erase(uint64_t mark) {
  if (buckets_.empty() || mark == 0) return 0;
  uint32_t* link = &buckets_[bucket_of(mark)];
  while (*link != no_slot && slots_[*link].mark != mark) link = &slots_[*link].next;
  if (*link == no_slot) return 0;
  uint32_t index = *link;
  Slot& slot = slots_[index];
  *link = slot.next;
  slot.mark = 0;
  slot.next = no_slot;
  slot.task.subject = 0;
  slot.task.compute_type.clear();
  if (slot.task.input.capacity() > kept_input_bytes) std::vector<std::byte>().swap(slot.task.input);
  slot.task.input.clear();
  free_slots_.push_back(index);
  --size_;
  return 1;
}

void PendingTaskTable::clear() { *this = PendingTaskTable{}; }

std::vector<uint64_t> PendingTaskTable::marks() const {
  std::vector<uint64_t> marks;
  marks.reserve(size_);
  for (const Slot& slot : slots_)
    if (slot.mark != 0) marks.push_back(slot.mark);
  return marks;
}

bool PendingTaskTable::operator==(const PendingTaskTable& other) const {
  if (size_ != other.size_) return false;
  for (const Slot& slot : slots_) {
    if (slot.mark == 0) continue;
    const PendingTask* theirs = other.find(slot.mark);
    if (theirs == nullptr || !(*theirs == slot.task)) return false;
  }
  return true;
}

}  // namespace keel::ledger
