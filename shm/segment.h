// shm/segment.h: one named shared-memory segment per engine instance.
//
// The engine creates the segment and lays it out once (rings, arenas, doorbells,
// counters), then seals it; worker processes and clients attach and find objects by
// name. Nothing inside the segment is a pointer (offsets from the base only) and
// nothing in it is a lock: Boost 1.74's interprocess mutexes are not robust, so a
// process dying while holding one would wedge the engine. Ownership is the owner's
// pid plus its process start time (which catches pid reuse) plus a heartbeat.
//
//   auto segment = Segment::create({.name = "keel-default", .bytes = 1 << 24});
//   uint64_t ring = segment->allocate("pipeline.source_to_relay", SegmentObjectKind::ring,
//                                     ring_footprint(...), 128).value();
//   ... construct objects in place at segment->base() + ring ...
//   segment->seal();                       // attachers may now find objects
//   // in another process:
//   auto attached = Segment::attach("keel-default");
//   uint64_t offset = attached->find("pipeline.source_to_relay", SegmentObjectKind::ring)->offset;
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "error/result.h"

namespace keel::shm {

inline constexpr uint64_t segment_magic = 0x314745534c45454bULL;  // "KEELSEG1"
inline constexpr uint32_t segment_layout_version = 1;
inline constexpr uint32_t segment_directory_entries_max = 128;
inline constexpr size_t segment_object_name_bytes_max = 47;

enum class SegmentObjectKind : uint32_t { ring = 1, arena = 2, doorbell = 3, counters = 4 };

// One named object laid out in the segment.
struct SegmentDirectoryEntry {
  char name[segment_object_name_bytes_max + 1];
  SegmentObjectKind kind;
  uint32_t reserved;
  uint64_t offset;  // from the segment base
  uint64_t bytes;
};
static_assert(sizeof(SegmentDirectoryEntry) == 72);

// The segment's first bytes. Written by the creator only; read by everyone.
struct alignas(64) SegmentHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t entry_count;
  uint64_t segment_bytes;
  uint64_t used_bytes;               // bump pointer while laying out
  int32_t owner_pid;
  uint32_t reserved;
  uint64_t owner_start_ticks;        // /proc/<pid>/stat field 22: tells pid reuse apart
  std::atomic<uint64_t> owner_heartbeat_ns;  // CLOCK_MONOTONIC, beaten by the owner
  std::atomic<uint32_t> sealed;      // 1 once the layout is complete (release)
  uint32_t reserved2;
  SegmentDirectoryEntry entries[segment_directory_entries_max];
};
static_assert(offsetof(SegmentHeader, entries) == 64);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

struct SegmentOptions {
  std::string name;       // e.g. "keel-default"; appears as /dev/shm/<name>
  uint64_t bytes = 0;     // whole segment, header included
};

struct SegmentObject {
  uint64_t offset;
  uint64_t bytes;
};

class Segment {
 public:
  // Creates the named segment with permissions 0600 and an empty layout. A segment of
  // the same name whose owner is gone (or which a crashed creator left half-made) is
  // reclaimed, and notes() says so; one whose owner still runs, or which is not a keel
  // segment, is an Error. Nothing is left behind on failure.
  static Result<Segment> create(const SegmentOptions& options);

  // Attaches to a sealed segment made by a running engine: checks magic and layout
  // version, and that the creator finished laying it out. A monitor maps it read_only:
  // it can then only read (a stray write faults instead of corrupting the engine).
  enum class Access { read_write, read_only };
  static Result<Segment> attach(std::string_view name, Access access = Access::read_write);

  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  ~Segment();  // unmaps; the owner also removes the name (clean shutdown)

  // Reserves `bytes` at `alignment` under `name` (creator only, before seal()).
  // Errors: sealed already, name too long or taken, directory or segment full.
  Result<uint64_t> allocate(std::string_view name, SegmentObjectKind kind, uint64_t bytes,
                            uint64_t alignment);
  // Publishes the layout to attachers. Creator only.
  void seal();

  // Finds an object by name and kind. Error names the segment and the object.
  Result<SegmentObject> find(std::string_view name, SegmentObjectKind kind) const;

  std::byte* base() const { return base_; }
  uint64_t bytes() const { return bytes_; }
  const std::string& name() const { return name_; }
  bool is_owner() const { return owner_; }
  const SegmentHeader& header() const { return *reinterpret_cast<SegmentHeader*>(base_); }
  // Lines worth printing about how the segment came to be (a reclaimed stale segment).
  const std::vector<std::string>& notes() const { return notes_; }
  // The owner beats this so that attachers can tell a live engine from a stuck one.
  void beat_heartbeat();

  // Removes a segment name if it exists (operator clean-up and tests).
  static bool remove(std::string_view name);

 private:
  Segment() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::byte* base_ = nullptr;
  uint64_t bytes_ = 0;
  std::string name_;
  bool owner_ = false;
  std::vector<std::string> notes_;
};

// What attach says of a segment its engine is still laying out (clients wait for it).
inline constexpr char segment_not_sealed_reason[] = "its engine has not finished laying it out";

// Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or
// 0 if the process does not exist.
uint64_t process_start_ticks(int pid);

// CLOCK_MONOTONIC in nanoseconds.
uint64_t monotonic_ns();

// CLOCK_MONOTONIC_COARSE in nanoseconds: the time of the last scheduler tick (up to one
// tick old: 4 ms at HZ=250, 10 ms at HZ=100), read without the time stamp counter. For "is it time yet" checks on intervals of
// 100 ms and more that tiles make on every poll: it costs ~5 ns here where monotonic_ns
// costs ~25 ns, and a core makes hundreds of thousands of polls a second.
uint64_t monotonic_coarse_ns();

}  // namespace keel::shm
