#include "shm/ring.h"

#include <bit>
#include <new>
#include <string>

namespace keel::shm {

namespace {

const RingHeader* header_at(const std::byte* segment_base, uint64_t offset) {
  return reinterpret_cast<const RingHeader*>(segment_base + offset);
}

std::string ring_place(uint64_t offset) { return "ring at offset " + std::to_string(offset); }

}  // namespace

Result<uint64_t> ring_footprint(uint64_t capacity, uint32_t slot_bytes) {
  if (capacity < ring_capacity_min || capacity > ring_capacity_max || !std::has_single_bit(capacity)) {
    return make_error("ring", "capacity must be a power of two from " +
                                  std::to_string(ring_capacity_min) + " to " +
                                  std::to_string(ring_capacity_max) + ", got " +
                                  std::to_string(capacity));
  }
  if (slot_bytes < ring_slot_bytes_min || slot_bytes > ring_slot_bytes_max ||
      !std::has_single_bit(slot_bytes)) {
    return make_error("ring", "slot_bytes must be a power of two from " +
                                  std::to_string(ring_slot_bytes_min) + " to " +
                                  std::to_string(ring_slot_bytes_max) + ", got " +
                                  std::to_string(slot_bytes));
  }
  return uint64_t(sizeof(RingHeader)) + capacity * slot_bytes;
}

Result<void> ring_construct(std::byte* segment_base, uint64_t offset, const RingOptions& options) {
  Result<uint64_t> footprint = ring_footprint(options.capacity, options.slot_bytes);
  if (!footprint) return footprint.error();
  assert(offset % ring_index_alignment == 0);
  auto* header = new (segment_base + offset) RingHeader{};
  header->layout_version = ring_layout_version;
  header->slot_bytes = options.slot_bytes;
  header->capacity = options.capacity;
  header->slots_offset = sizeof(RingHeader);
  header->doorbell_offset = options.doorbell_offset;
  header->tail.store(0, std::memory_order_relaxed);
  header->full_events.store(0, std::memory_order_relaxed);
  header->closed.store(0, std::memory_order_relaxed);
  header->head.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  header->magic = ring_magic;
  return {};
}

Result<const RingHeader*> ring_check(const std::byte* segment_base, uint64_t offset) {
  const RingHeader* header = header_at(segment_base, offset);
  if (offset % ring_index_alignment != 0) {
    return make_error(ring_place(offset), "not 128-byte aligned");
  }
  if (header->magic != ring_magic) return make_error(ring_place(offset), "bad magic");
  if (header->layout_version != ring_layout_version) {
    return make_error(ring_place(offset), "layout version " + std::to_string(header->layout_version) +
                                              ", expected " + std::to_string(ring_layout_version));
  }
  if (!ring_footprint(header->capacity, header->slot_bytes)) {
    return make_error(ring_place(offset), "corrupt capacity or slot size");
  }
  return header;
}

RingStats ring_stats(const std::byte* segment_base, uint64_t offset) {
  const RingHeader* header = header_at(segment_base, offset);
  return RingStats{header->tail.load(std::memory_order_acquire),
                   header->closed.load(std::memory_order_acquire) != 0,
                   header->head.load(std::memory_order_acquire),
                   header->full_events.load(std::memory_order_relaxed), header->capacity};
}

Result<RingProducer> RingProducer::join(std::byte* segment_base, uint64_t offset) {
  Result<const RingHeader*> checked = ring_check(segment_base, offset);
  if (!checked) return checked.error();
  RingProducer producer;
  producer.header_ = const_cast<RingHeader*>(*checked);
  producer.slots_ = segment_base + offset + producer.header_->slots_offset;
  producer.mask_ = producer.header_->capacity - 1;
  producer.slot_bytes_ = producer.header_->slot_bytes;
  producer.slot_shift_ = uint32_t(std::countr_zero(producer.slot_bytes_));
  producer.tail_ = producer.header_->tail.load(std::memory_order_acquire);
  producer.cached_head_ = producer.header_->head.load(std::memory_order_acquire);
  if (producer.header_->doorbell_offset != 0) {
    producer.doorbell_ = reinterpret_cast<Doorbell*>(segment_base + producer.header_->doorbell_offset);
  }
  return producer;
}

Result<RingConsumer> RingConsumer::join(std::byte* segment_base, uint64_t offset) {
  Result<const RingHeader*> checked = ring_check(segment_base, offset);
  if (!checked) return checked.error();
  RingConsumer consumer;
  consumer.header_ = const_cast<RingHeader*>(*checked);
  consumer.slots_ = segment_base + offset + consumer.header_->slots_offset;
  consumer.mask_ = consumer.header_->capacity - 1;
  consumer.slot_bytes_ = consumer.header_->slot_bytes;
  consumer.slot_shift_ = uint32_t(std::countr_zero(consumer.slot_bytes_));
  consumer.head_ = consumer.header_->head.load(std::memory_order_acquire);
  consumer.cached_tail_ = consumer.header_->tail.load(std::memory_order_acquire);
  return consumer;
}

}  // namespace keel::shm
