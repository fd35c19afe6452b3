// shm/arena.h: a payload arena for messages larger than a ring slot.
//
// An arena is paired with one SPSC ring: the producer reserves contiguous bytes, writes
// the payload, and pushes a slot naming (position, length); the consumer reads the
// payload through the slot and releases it. Because the ring is FIFO, payloads are
// released in the order they were reserved, so the arena is itself a ring of bytes with
// one shared index (released). The producer's own position needs no sharing: the
// ring's release-store of its tail already publishes the payload bytes written before
// it. A payload never wraps: when it would, the producer skips to the arena's start.
//
//   ArenaWriter writer = ArenaWriter::join(base, arena_offset).value();
//   if (auto block = writer.reserve(payload.size())) {
//     std::memcpy(block->bytes.data(), payload.data(), payload.size());
//     slot.position = block->position; slot.length = payload.size();
//     producer.push(slot);            // if the ring is full, retry the push, not the reserve
//   }                                 // else: arena full, back-pressure
//   // consumer
//   std::span<const std::byte> payload = reader.read(slot.position, slot.length);
//   ... use it ...
//   reader.release(slot.position, slot.length);
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "error/result.h"

namespace keel::shm {

inline constexpr uint64_t arena_magic = 0x31414e4552414b4bULL;  // "KKARENA1"
inline constexpr uint32_t arena_layout_version = 1;
inline constexpr uint64_t arena_bytes_min = 4096;
inline constexpr uint64_t arena_bytes_max = 1ULL << 32;

struct ArenaHeader {
  alignas(128) uint64_t magic;
  uint32_t layout_version;
  uint32_t reserved_field;
  uint64_t bytes;         // data bytes, power of two
  uint64_t data_offset;   // from the arena header
  alignas(128) std::atomic<uint64_t> reserved;     // producer: bytes handed out so far (for monitors)
  std::atomic<uint64_t> full_events;               // reserves refused for lack of room
  alignas(128) std::atomic<uint64_t> released;     // consumer: everything before this is free
};
static_assert(offsetof(ArenaHeader, reserved) == 128);
static_assert(offsetof(ArenaHeader, released) == 256);
static_assert(sizeof(ArenaHeader) == 384);

// Bytes the arena needs in the segment; rejects sizes that are not a power of two in
// [4 KiB, 4 GiB].
Result<uint64_t> arena_footprint(uint64_t bytes);
// Builds an empty arena at segment_base + offset (128-byte aligned).
Result<void> arena_construct(std::byte* segment_base, uint64_t offset, uint64_t bytes);

struct ArenaBlock {
  uint64_t position;          // monotonic; goes into the ring slot
  std::span<std::byte> bytes;
};

class ArenaWriter {
 public:
  ArenaWriter() = default;
  static Result<ArenaWriter> join(std::byte* segment_base, uint64_t offset);
  // Contiguous room for `length` bytes, or nullopt when the arena is too full (counted)
  // or length exceeds the arena.
  std::optional<ArenaBlock> reserve(uint64_t length);
  // Shortens the block reserve() handed out last, before any message names it: the bytes
  // past `length` (1 to the block's size) are free again. For a producer that reserves for
  // the most it might write and learns how much it wrote as it writes.
  void shorten_last(const ArenaBlock& block, uint64_t length);

 private:
  ArenaHeader* header_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t position_ = 0;        // next free byte (monotonic)
  uint64_t cached_released_ = 0;
};

class ArenaReader {
 public:
  ArenaReader() = default;
  static Result<ArenaReader> join(std::byte* segment_base, uint64_t offset);
  // The payload a slot names; empty if (position, length) cannot be a payload of this
  // arena (a corrupt slot), which the caller treats as bad input.
  std::span<const std::byte> read(uint64_t position, uint64_t length) const;
  // Frees everything up to the end of this payload.
  void release(uint64_t position, uint64_t length);

 private:
  ArenaHeader* header_ = nullptr;
  const std::byte* data_ = nullptr;
  uint64_t mask_ = 0;
};

}  // namespace keel::shm
