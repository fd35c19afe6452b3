// shm/ring.h: single-producer single-consumer rings of fixed-size, cache-line-aligned
// slots, laid out in a segment and joined from any process by offset.
//
//   // engine, at layout time
//   uint64_t bytes = ring_footprint(4096, 64).value();
//   uint64_t offset = segment.allocate("a_to_b", SegmentObjectKind::ring, bytes, 128).value();
//   ring_construct(segment.base(), offset, {.capacity = 4096, .slot_bytes = 64});
//   // producer (any process that attached the segment)
//   RingProducer producer = RingProducer::join(segment.base(), offset).value();
//   size_t taken = producer.push(std::span<const Message>(batch));   // may be < batch.size()
//   // consumer
//   RingConsumer consumer = RingConsumer::join(segment.base(), offset).value();
//   size_t got = consumer.pop(std::span<Message>(buffer));
//
// Zero-copy: producer.claim(n) hands out up to n contiguous slots to write in place,
// producer.publish(k) makes the first k visible; consumer.peek(n) / release(k) likewise.
//
// Indexes are 64-bit and only grow (slot = index & mask), so pushed == tail and
// popped == head: the counters a monitor reads are the indexes themselves. Each side
// keeps a private cached copy of the other's index and reloads it only when the ring
// looks full (producer) or empty (consumer), so the common case touches no shared
// cache line but the slots. A full ring pushes back: push reports what it took and
// counts a full event; nothing is dropped.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "error/result.h"
#include "shm/doorbell.h"

namespace keel::shm {

inline constexpr uint64_t ring_magic = 0x31474e49524c454bULL;  // "KELRING1"
inline constexpr uint32_t ring_layout_version = 1;
inline constexpr uint64_t ring_capacity_min = 2;
inline constexpr uint64_t ring_capacity_max = 1ULL << 24;
inline constexpr uint32_t ring_slot_bytes_min = 64;
inline constexpr uint32_t ring_slot_bytes_max = 65536;
// Two lines apart: adjacent-line prefetchers pull cache lines in pairs.
inline constexpr size_t ring_index_alignment = 128;

struct RingOptions {
  uint64_t capacity = 0;     // slots, power of two
  uint32_t slot_bytes = 0;   // power of two, at least one cache line
  uint64_t doorbell_offset = 0;  // consumer's doorbell in the segment; 0 = none (spinning consumer)
};

// The ring as laid out in shared memory; slots follow at slots_offset.
struct RingHeader {
  // Immutable after construction.
  alignas(ring_index_alignment) uint64_t magic;
  uint32_t layout_version;
  uint32_t slot_bytes;
  uint64_t capacity;
  uint64_t slots_offset;     // from the ring header
  uint64_t doorbell_offset;  // from the segment base; 0 = none
  // Producer's line: written by the producer only.
  alignas(ring_index_alignment) std::atomic<uint64_t> tail;  // == messages pushed
  std::atomic<uint64_t> full_events;                          // pushes that took less than asked
  std::atomic<uint32_t> closed;       // 1 once the producer will push nothing more (drain)
  // Consumer's line: written by the consumer only.
  alignas(ring_index_alignment) std::atomic<uint64_t> head;  // == messages popped
};
static_assert(offsetof(RingHeader, tail) == 128);
static_assert(offsetof(RingHeader, head) == 256);
static_assert(sizeof(RingHeader) == 384);

// Counters as read from outside (any process): a snapshot, not a transaction.
struct RingStats {
  uint64_t pushed;
  bool closed;
  uint64_t popped;
  uint64_t full_events;
  uint64_t capacity;
};

// Bytes the ring needs in the segment (header plus slots). Rejects a capacity that is
// not a power of two in [2, 2^24] or a slot size that is not a power of two in
// [64, 65536], naming the value.
Result<uint64_t> ring_footprint(uint64_t capacity, uint32_t slot_bytes);

// Builds an empty ring at segment_base + offset (which must be 128-byte aligned and
// have ring_footprint bytes). Returns the footprint error for impossible options.
Result<void> ring_construct(std::byte* segment_base, uint64_t offset, const RingOptions& options);

// Reads the counters of the ring at segment_base + offset, from any process.
RingStats ring_stats(const std::byte* segment_base, uint64_t offset);

// Checks magic and layout version of the ring at segment_base + offset.
Result<const RingHeader*> ring_check(const std::byte* segment_base, uint64_t offset);

// The producer's end. One producer per ring; a handle is process-local and cheap.
class RingProducer {
 public:
  RingProducer() = default;
  static Result<RingProducer> join(std::byte* segment_base, uint64_t offset);

  uint32_t slot_bytes() const { return slot_bytes_; }
  uint64_t capacity() const { return mask_ + 1; }

  // Copies up to messages.size() messages in; returns how many it took (0 when full).
  // T must be trivially copyable and exactly one slot in size.
  template <class T>
  size_t push(std::span<const T> messages) {
    static_assert(std::is_trivially_copyable_v<T>);
    assert(sizeof(T) == slot_bytes_);
    size_t count = reserve(messages.size());
    T* slots = reinterpret_cast<T*>(slots_);
    for (size_t index = 0; index < count; ++index) slots[(tail_ + index) & mask_] = messages[index];
    publish(count);
    return count;
  }
  template <class T>
  bool push(const T& message) { return push(std::span<const T>(&message, 1)) == 1; }

  // Zero-copy: up to `count` contiguous free slots (fewer at the wrap or when nearly
  // full; empty when full). Write them, then publish.
  std::span<std::byte> claim(size_t count) {
    count = reserve(count);
    uint64_t first = tail_ & mask_;
    if (first + count > mask_ + 1) count = mask_ + 1 - first;
    return {slots_ + (first << slot_shift_), count << slot_shift_};
  }
  // Makes the next `count` claimed (or pushed) slots visible to the consumer.
  void publish(size_t count) {
    if (count == 0) return;
    tail_ += count;
    header_->tail.store(tail_, std::memory_order_release);
    if (doorbell_ != nullptr) doorbell_ring(doorbell_);
  }

  // Says nothing more will come (drain); a sleeping consumer is woken to see it.
  void close() {
    header_->closed.store(1, std::memory_order_release);
    if (doorbell_ != nullptr) doorbell_ring(doorbell_);
  }

  // Free slots as far as this producer knows without touching the consumer's line.
  uint64_t free_slots_cached() const { return (mask_ + 1) - (tail_ - cached_head_); }
  // True when the consumer has taken everything pushed so far.
  bool drained() const { return header_->head.load(std::memory_order_acquire) == tail_; }

 private:
  // How many of `wanted` slots are free, reloading the consumer's index only when the
  // cached one says there is not enough room. Counts a full event when short.
  size_t reserve(size_t wanted) {
    uint64_t capacity = mask_ + 1;
    uint64_t free = capacity - (tail_ - cached_head_);
    if (free < wanted) {
      cached_head_ = header_->head.load(std::memory_order_acquire);
      free = capacity - (tail_ - cached_head_);
      if (free < wanted) {
        header_->full_events.store(header_->full_events.load(std::memory_order_relaxed) + 1,
                                   std::memory_order_relaxed);
        return free;
      }
    }
    return wanted;
  }

  RingHeader* header_ = nullptr;
  std::byte* slots_ = nullptr;
  Doorbell* doorbell_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t tail_ = 0;
  uint64_t cached_head_ = 0;
  uint32_t slot_bytes_ = 0;
  uint32_t slot_shift_ = 0;
};

// The consumer's end. One consumer per ring.
class RingConsumer {
 public:
  RingConsumer() = default;
  static Result<RingConsumer> join(std::byte* segment_base, uint64_t offset);

  uint32_t slot_bytes() const { return slot_bytes_; }
  uint64_t capacity() const { return mask_ + 1; }

  // Copies up to out.size() messages out; returns how many (0 when empty).
  template <class T>
  size_t pop(std::span<T> out) {
    static_assert(std::is_trivially_copyable_v<T>);
    assert(sizeof(T) == slot_bytes_);
    size_t count = available(out.size());
    const T* slots = reinterpret_cast<const T*>(slots_);
    for (size_t index = 0; index < count; ++index) out[index] = slots[(head_ + index) & mask_];
    release(count);
    return count;
  }
  template <class T>
  bool pop(T& message) { return pop(std::span<T>(&message, 1)) == 1; }

  // Zero-copy: up to `count` contiguous filled slots; read them, then release.
  std::span<const std::byte> peek(size_t count) {
    count = available(count);
    uint64_t first = head_ & mask_;
    if (first + count > mask_ + 1) count = mask_ + 1 - first;
    return {slots_ + (first << slot_shift_), count << slot_shift_};
  }
  // Returns the next `count` slots to the producer.
  void release(size_t count) {
    if (count == 0) return;
    head_ += count;
    header_->head.store(head_, std::memory_order_release);
  }

  // True if a message is waiting (reloads the producer's index when needed).
  bool has_messages() { return available(1) != 0; }
  // True once the producer closed the ring and every message has been taken.
  bool finished() {
    return header_->closed.load(std::memory_order_acquire) != 0 && !has_messages();
  }

 private:
  size_t available(size_t wanted) {
    uint64_t ready = cached_tail_ - head_;
    if (ready < wanted) {
      cached_tail_ = header_->tail.load(std::memory_order_acquire);
      ready = cached_tail_ - head_;
    }
    return ready < wanted ? ready : wanted;
  }

  RingHeader* header_ = nullptr;
  const std::byte* slots_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t head_ = 0;
  uint64_t cached_tail_ = 0;
  uint32_t slot_bytes_ = 0;
  uint32_t slot_shift_ = 0;
};

}  // namespace keel::shm
