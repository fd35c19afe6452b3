#include "shm/arena.h"

#include <bit>
#include <cassert>
#include <new>
#include <string>

namespace keel::shm {

namespace {

Result<ArenaHeader*> arena_check(std::byte* segment_base, uint64_t offset) {
  auto* header = reinterpret_cast<ArenaHeader*>(segment_base + offset);
  std::string place = "arena at offset " + std::to_string(offset);
  if (header->magic != arena_magic) return make_error(place, "bad magic");
  if (header->layout_version != arena_layout_version) {
    return make_error(place, "layout version " + std::to_string(header->layout_version) +
                                 ", expected " + std::to_string(arena_layout_version));
  }
  if (!arena_footprint(header->bytes)) return make_error(place, "corrupt size");
  return header;
}

}  // namespace

Result<uint64_t> arena_footprint(uint64_t bytes) {
  if (bytes < arena_bytes_min || bytes > arena_bytes_max || !std::has_single_bit(bytes)) {
    return make_error("arena", "bytes must be a power of two from " + std::to_string(arena_bytes_min) +
                                   " to " + std::to_string(arena_bytes_max) + ", got " +
                                   std::to_string(bytes));
  }
  return uint64_t(sizeof(ArenaHeader)) + bytes;
}

Result<void> arena_construct(std::byte* segment_base, uint64_t offset, uint64_t bytes) {
  if (Result<uint64_t> footprint = arena_footprint(bytes); !footprint) return footprint.error();
  assert(offset % 128 == 0);
  auto* header = new (segment_base + offset) ArenaHeader{};
  header->layout_version = arena_layout_version;
  header->bytes = bytes;
  header->data_offset = sizeof(ArenaHeader);
  std::atomic_thread_fence(std::memory_order_release);
  header->magic = arena_magic;
  return {};
}

Result<ArenaWriter> ArenaWriter::join(std::byte* segment_base, uint64_t offset) {
  Result<ArenaHeader*> header = arena_check(segment_base, offset);
  if (!header) return header.error();
  ArenaWriter writer;
  writer.header_ = *header;
  writer.data_ = segment_base + offset + writer.header_->data_offset;
  writer.mask_ = writer.header_->bytes - 1;
  writer.position_ = writer.header_->reserved.load(std::memory_order_relaxed);
  writer.cached_released_ = writer.header_->released.load(std::memory_order_acquire);
  return writer;
}

std::optional<ArenaBlock> ArenaWriter::reserve(uint64_t length) {
  uint64_t capacity = mask_ + 1;
  if (length == 0 || length > capacity) return std::nullopt;
  uint64_t start = position_;
  // A payload never wraps: skip the arena's tail end if it is too short.
  if ((start & mask_) + length > capacity) start = (start | mask_) + 1;
  uint64_t end = start + length;
  if (end - cached_released_ > capacity) {
    cached_released_ = header_->released.load(std::memory_order_acquire);
    if (end - cached_released_ > capacity) {
      header_->full_events.store(header_->full_events.load(std::memory_order_relaxed) + 1,
                                 std::memory_order_relaxed);
      return std::nullopt;
    }
  }
  position_ = end;
  header_->reserved.store(end, std::memory_order_relaxed);
  return ArenaBlock{start, {data_ + (start & mask_), length}};
}

void ArenaWriter::shorten_last(const ArenaBlock& block, uint64_t length) {
  assert(block.position + block.bytes.size() == position_ && length != 0 && length <= block.bytes.size());
  position_ = block.position + length;
  header_->reserved.store(position_, std::memory_order_relaxed);
}

Result<ArenaReader> ArenaReader::join(std::byte* segment_base, uint64_t offset) {
  Result<ArenaHeader*> header = arena_check(segment_base, offset);
  if (!header) return header.error();
  ArenaReader reader;
  reader.header_ = *header;
  reader.data_ = segment_base + offset + reader.header_->data_offset;
  reader.mask_ = reader.header_->bytes - 1;
  return reader;
}

std::span<const std::byte> ArenaReader::read(uint64_t position, uint64_t length) const {
  uint64_t capacity = mask_ + 1;
  uint64_t released = header_->released.load(std::memory_order_relaxed);
  bool fits = length != 0 && length <= capacity && (position & mask_) + length <= capacity &&
              position >= released && position + length - released <= capacity;
  if (!fits) return {};
  return {data_ + (position & mask_), length};
}

void ArenaReader::release(uint64_t position, uint64_t length) {
  header_->released.store(position + length, std::memory_order_release);
}

}  // namespace keel::shm
