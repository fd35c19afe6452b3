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

PendingTaskTable::PendingTaskTable(const PendingTaskTable& other)
    : buckets_(other.buckets_),
      links_(other.links_),
      free_slots_(other.free_slots_),
      free_head_(other.free_head_),
      size_(other.size_) {
  tasks_.resize(other.tasks_.size());
  for (uint32_t slot = 0; slot < links_.size(); ++slot)
    if (links_[slot].mark != 0) tasks_[slot] = other.tasks_[slot];
}

PendingTaskTable& PendingTaskTable::operator=(const PendingTaskTable& other) {
  if (this != &other) *this = PendingTaskTable(other);
  return *this;
}

PendingTaskTable::PendingTaskTable(PendingTaskTable&& other) noexcept
    : buckets_(std::move(other.buckets_)),
      links_(std::move(other.links_)),
      tasks_(std::move(other.tasks_)),
      free_slots_(std::move(other.free_slots_)),
      free_head_(std::exchange(other.free_head_, 0)),
      size_(std::exchange(other.size_, 0)) {
  other.buckets_.clear();
  other.links_.clear();
  other.tasks_.clear();
  other.free_slots_.clear();
}

PendingTaskTable& PendingTaskTable::operator=(PendingTaskTable&& other) noexcept {
  if (this == &other) return *this;
  buckets_ = std::move(other.buckets_);
  links_ = std::move(other.links_);
  tasks_ = std::move(other.tasks_);
  free_slots_ = std::move(other.free_slots_);
  free_head_ = std::exchange(other.free_head_, 0);
  size_ = std::exchange(other.size_, 0);
  other.buckets_.clear();
  other.links_.clear();
  other.tasks_.clear();
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
  for (uint32_t slot = buckets_[bucket_of(mark)]; slot != no_slot; slot = links_[slot].next)
    if (links_[slot].mark == mark) return &tasks_[slot];
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
  for (uint32_t slot = 0; slot < links_.size(); ++slot) {
    if (links_[slot].mark == 0) continue;
    uint32_t& head = buckets_[bucket_of(links_[slot].mark)];
    links_[slot].next = head;
    head = slot;
  }
}

uint32_t PendingTaskTable::take_slot(uint64_t mark) {
  if (size_ + 1 > buckets_.size()) grow();
  uint32_t slot;
  if (free_head_ < free_slots_.size()) {
    slot = free_slots_[free_head_++];
    // The taken front is dropped once it is half the list (and 64 entries at least), so
    // the list stays within about twice the slots free (a steady flow never empties it).
    if (free_head_ == free_slots_.size()) {
      free_slots_.clear();
      free_head_ = 0;
    } else if (free_head_ >= 64 && free_head_ * 2 >= free_slots_.size()) {
      free_slots_.erase(free_slots_.begin(), free_slots_.begin() + ptrdiff_t(free_head_));
      free_head_ = 0;
    }
    // The next inserts' tasks are settled ones', long out of the cache: the one after next
    // is fetched now, and the next one's input buffer (its task was fetched last time).
    if (free_head_ + 1 < free_slots_.size()) __builtin_prefetch(&tasks_[free_slots_[free_head_ + 1]], 1);
    if (free_head_ < free_slots_.size()) __builtin_prefetch(tasks_[free_slots_[free_head_]].input.data(), 1);
  } else {
    slot = uint32_t(links_.size());
    links_.emplace_back();
    tasks_.emplace_back();
  }
  uint32_t& head = buckets_[bucket_of(mark)];
  links_[slot] = Link{mark, head, 0};
  head = slot;
  ++size_;
  return slot;
}

PendingTask& PendingTaskTable::insert(uint64_t mark, uint64_t subject, std::string_view compute_type,
                                      std::span<const std::byte> input) {
  assert(mark != 0 && !contains(mark));
  uint32_t slot = take_slot(mark);
  PendingTask& task = tasks_[slot];
  // A big buffer left by an earlier task (grown through at()) is not kept for a short input.
  if (task.input.capacity() > kept_input_bytes && input.size() <= kept_input_bytes)
    std::vector<std::byte>().swap(task.input);
  task.subject = subject;
  task.compute_type.assign(compute_type);
  task.input.assign(input.begin(), input.end());
  links_[slot].input_big = task.input.capacity() > kept_input_bytes;
  return task;
}

bool PendingTaskTable::emplace(uint64_t mark, PendingTask task) {
  if (mark == 0 || contains(mark)) return false;
  uint32_t slot = take_slot(mark);
  tasks_[slot] = std::move(task);
  links_[slot].input_big = tasks_[slot].input.capacity() > kept_input_bytes;
  return true;
}

size_t PendingTaskTable::erase(uint64_t mark) {
  if (buckets_.empty() || mark == 0) return 0;
  uint32_t* link = &buckets_[bucket_of(mark)];
  while (*link != no_slot && links_[*link].mark != mark) link = &links_[*link].next;
  if (*link == no_slot) return 0;
  uint32_t slot = *link;
  *link = links_[slot].next;
  // The task's bytes stay until the slot's next insert overwrites them: settling touches
  // only the link, unless the input's buffer is big.
  if (links_[slot].input_big != 0) std::vector<std::byte>().swap(tasks_[slot].input);
  links_[slot] = Link{};
  free_slots_.push_back(slot);
  --size_;
  return 1;
}

void PendingTaskTable::clear() { *this = PendingTaskTable{}; }

size_t PendingTaskTable::input_bytes_held() const {
  size_t bytes = 0;
  for (const PendingTask& task : tasks_) bytes += task.input.capacity();
  return bytes;
}

std::vector<uint64_t> PendingTaskTable::marks() const {
  std::vector<uint64_t> marks;
  marks.reserve(size_);
  for (const Link& link : links_)
    if (link.mark != 0) marks.push_back(link.mark);
  return marks;
}

bool PendingTaskTable::operator==(const PendingTaskTable& other) const {
  if (size_ != other.size_) return false;
  for (uint32_t slot = 0; slot < links_.size(); ++slot) {
    if (links_[slot].mark == 0) continue;
    const PendingTask* theirs = other.find(links_[slot].mark);
    if (theirs == nullptr || !(*theirs == tasks_[slot])) return false;
  }
  return true;
}

}  // namespace keel::ledger
