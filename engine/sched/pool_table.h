// engine/sched/pool_table.h: the worker pools' part of the segment. One slot per pool
// process (a [[pool]] on one NUMA node): a control block anyone can read, the pool's
// doorbell, and one lane per scheduler tile (one per NUMA node), since any scheduler may
// send a pool work (its own node's first, another node's when that one's pools are
// saturated) and every ring has one producer and one consumer. A lane is a task ring
// (scheduler -> pool), a completion ring (pool -> scheduler), and an input and an output
// arena for payloads too big for a ring slot.
//
//   uint64_t table = lay_out_pool_table(segment, options).value();    // engine, before seal
//   PoolTableView view = PoolTableView::join(segment.base(), table).value();
//   PoolControl& control = view.control(slot);
//   const PoolLane& lane = view.lane(slot, scheduler_node);
//   control.epoch.store(next_epoch);  ... start `keel worker --slot <slot> --epoch <next_epoch>`
//
// Incarnations. The engine starts a pool process for a slot with a new epoch, stored in
// PoolControl::epoch before the process starts. The scheduler stamps every task with the
// epoch it dispatches to; a worker runs only tasks of its own epoch and skips (and
// releases) older ones, which a dead predecessor left in the ring. So after a crash the
// rings are simply taken over: no reset, no lock, and a task leased to the dead
// incarnation is dispatched again by the scheduler under a new attempt. A worker whose
// slot's epoch moves past its own stops (it was superseded).
//
// The engine's supervisor (pool_supervisor.h) reaps a dead incarnation, then stores its
// epoch in dead_epoch: from then on the scheduler sends that incarnation nothing and
// dispatches its leased tasks again. A pool the supervisor gives up on is quarantined:
// quarantine holds the reason, then quarantined is set (release); the scheduler fails
// the pool's tasks with that reason.
//
// Liveness: the worker beats heartbeat_ns (CLOCK_MONOTONIC) about every millisecond,
// busy or idle; ready_epoch tells the engine init succeeded. A worker that cannot load or
// initialise its plugin (or pin itself to its PUs) writes one line into failure and
// stores its epoch in failed_epoch (release), then exits with worker_exit_plugin_failed:
// the engine quarantines the pool with that line instead of restarting it.
//
// All of it is one segment object ("sched.pools"), like the shard table.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error/result.h"
#include "shm/segment.h"

namespace keel::sched {

inline constexpr char pool_table_object_name[] = "sched.pools";
inline constexpr uint64_t pool_table_magic = 0x31304c4f4f50484bULL;  // "KHPOOL01"
inline constexpr uint32_t pool_table_version = 5;
inline constexpr uint32_t pool_lanes_max = 64;  // scheduler tiles, one per NUMA node
inline constexpr size_t pool_name_bytes_max = 47;
inline constexpr size_t pool_failure_bytes_max = 511;

// Exit codes of `keel worker`.
inline constexpr int worker_exit_stopped = 0;         // asked to stop, or superseded
inline constexpr int worker_exit_usage = 2;           // bad arguments, no segment, no slot
inline constexpr int worker_exit_plugin_failed = 3;   // see PoolControl::failure
inline constexpr int worker_exit_task_hung = 4;       // a task ran past task_hang_ms: its thread is lost

// One scheduler's rings and arenas to one pool (offsets in the segment).
struct PoolLane {
  uint64_t task_ring;        // TaskBatchMessage slots; consumer: the worker (the slot's doorbell)
  uint64_t completion_ring;  // CompletionBatchMessage slots; consumer: the scheduler
  uint64_t input_arena;      // written by the scheduler, read by the worker
  uint64_t output_arena;     // written by the worker, read by the scheduler
  // For monitors (`keel status`, /metrics): what the lane's scheduler has sent this pool,
  // published by it every pool_lane_publish_interval_ms, not per task, so watching costs
  // the scheduler one store per counter a few times a second.
  std::atomic<uint64_t> tasks_in_flight;   // sent and not answered (the scheduler's credit count)
  std::atomic<uint64_t> tasks_dispatched;  // sends, every attempt
  std::atomic<uint64_t> tasks_retried;     // of those, attempts after the first
  std::atomic<uint64_t> published_ns;      // CLOCK_MONOTONIC of the last publication (0: none yet)
};
static_assert(sizeof(PoolLane) == 64);
static_assert(offsetof(PoolLane, tasks_in_flight) == 32);
inline constexpr uint64_t pool_lane_publish_interval_ms = 100;

struct alignas(128) PoolControl {
  // Laid out by the engine; immutable after.
  char name[pool_name_bytes_max + 1];  // "<compute types>@<node>", for messages
  uint32_t pool_index;  // the [[pool]] it runs
  uint32_t numa_node;
  uint32_t lane_count;  // one per scheduler tile
  uint64_t lanes;       // PoolLane[lane_count], offset in the segment
  uint64_t doorbell;    // the worker's: rung when a task is pushed
  // Written by the engine.
  alignas(64) std::atomic<uint64_t> epoch;  // the incarnation started last (0: never)
  std::atomic<int32_t> pid;                 // of that incarnation's process
  std::atomic<uint64_t> dead_epoch;         // the last incarnation reaped (0: none)
  std::atomic<uint64_t> restarts;           // incarnations started after a death
  std::atomic<uint32_t> quarantined;        // 1: given up on; quarantine says why
  char quarantine[pool_failure_bytes_max + 1];
  // Written by the worker.
  alignas(64) std::atomic<uint64_t> heartbeat_ns;
  std::atomic<uint64_t> ready_epoch;   // the epoch whose plugin loaded and initialised
  std::atomic<uint64_t> failed_epoch;  // the epoch that could not (failure says why)
  std::atomic<uint64_t> tasks_completed;
  std::atomic<uint64_t> tasks_skipped;  // of an older epoch, left by a dead incarnation
  std::atomic<uint64_t> tasks_run_inline;  // run by the main thread itself, not handed to a runner (worker.cc)
  char failure[pool_failure_bytes_max + 1];
};

// Tasks and their answers cross a lane in batches. A ring message names one block of the
// lane's arena holding a batch's entries back to back, each entry its fixed part then its
// bytes (input or output) padded to 8. One message, one arena block and one publish per
// batch rather than per task: a noop task's 128-byte message was two cache lines crossing
// cores each way; its entry is 32 bytes (perf/RESULTS.md, 2026-11-26).
//
//   scheduler:  block = inputs.reserve(bytes); write_task_entry(...) per task;
//               ring slot = TaskBatchMessage{epoch, now, block.position, bytes, count}
//   worker:     TaskEntries entries(inputs.read(position, bytes), count);
//               for (TaskEntry entry; entries.next(entry, input);) ...; inputs.release(position, bytes)
//   and back the same way with CompletionBatchMessage and CompletionEntries.
//
// A batch holds at most batch_tasks_max entries and batch_bytes_max bytes of them, unless
// its one entry is bigger.
inline constexpr uint32_t batch_tasks_max = 64;
inline constexpr size_t batch_bytes_max = 16384;

// A batch of tasks, scheduler -> pool, all dispatched to one incarnation at one time.
struct TaskBatchMessage {
  uint64_t epoch;             // the pool incarnation the batch was dispatched to
  uint64_t dispatched_ns;     // CLOCK_MONOTONIC
  uint64_t entries_position;  // in the lane's input arena
  uint32_t entries_bytes;
  uint32_t task_count;        // >= 1
  uint64_t reserved[4];       // a ring slot is at least 64 bytes
};
static_assert(sizeof(TaskBatchMessage) == 64);

// One task of a batch; its input follows it.
struct TaskEntry {
  uint64_t task_id;       // the scheduler's lease key, returned in the completion
  uint32_t attempt;       // returned in the completion: stale attempts are dropped
  uint32_t compute_type;  // index into the pool's [[pool]] compute_types
  uint32_t input_bytes;
  uint32_t reserved;
};
static_assert(sizeof(TaskEntry) == 24);

// A batch of finished tasks, pool -> scheduler, all run by one incarnation.
struct CompletionBatchMessage {
  uint64_t epoch;
  uint64_t entries_position;  // in the lane's output arena
  uint32_t entries_bytes;
  uint32_t task_count;        // >= 1
  uint64_t reserved[5];       // a ring slot is at least 64 bytes
};
static_assert(sizeof(CompletionBatchMessage) == 64);

// One finished task of a batch; its output follows it. status is the plugin's
// KEEL_STATUS_* code (or sched::status_output_overrun); a failed task has no output.
struct CompletionEntry {
  uint64_t task_id;
  uint32_t attempt;
  int32_t status;
  uint32_t output_bytes;
  uint32_t reserved;
  uint64_t run_ns;  // time inside the plugin's run
};
static_assert(sizeof(CompletionEntry) == 32);

// An entry's bytes (input or output) as they lie in the block: padded to 8, so the next
// entry's fixed part is aligned.
constexpr size_t entry_padded_bytes(size_t bytes) { return (bytes + 7) & ~size_t(7); }
// Bytes an entry takes in its batch's block.
constexpr size_t task_entry_bytes(size_t input_bytes) { return sizeof(TaskEntry) + entry_padded_bytes(input_bytes); }
constexpr size_t completion_entry_bytes(size_t output_bytes) {
  return sizeof(CompletionEntry) + entry_padded_bytes(output_bytes);
}

// Writes an entry and its bytes at the start of `at` (which holds at least the entry's
// bytes) and returns how many it took. The padding is zeroed: the block is shared memory
// another process reads, and stale bytes there would be a leak, not just noise.
size_t write_task_entry(std::span<std::byte> at, const TaskEntry& entry, std::span<const std::byte> input);
size_t write_completion_entry(std::span<std::byte> at, const CompletionEntry& entry, std::span<const std::byte> output);

// Reads a batch's entries in order. next() is false after `count` entries, or at the first
// entry that does not fit the block (a damaged message: malformed() says so).
template <class Entry>
class BatchEntries {
 public:
  BatchEntries(std::span<const std::byte> block, uint32_t count) : block_(block), left_(count) {}
  bool next(Entry& entry, std::span<const std::byte>& bytes);
  bool malformed() const { return malformed_; }

 private:
  std::span<const std::byte> block_;
  uint32_t left_;
  bool malformed_ = false;
};
using TaskEntries = BatchEntries<TaskEntry>;
using CompletionEntries = BatchEntries<CompletionEntry>;

inline uint32_t entry_payload_bytes(const TaskEntry& entry) { return entry.input_bytes; }
inline uint32_t entry_payload_bytes(const CompletionEntry& entry) { return entry.output_bytes; }

template <class Entry>
bool BatchEntries<Entry>::next(Entry& entry, std::span<const std::byte>& bytes) {
  if (left_ == 0 || malformed_) return false;
  if (block_.size() < sizeof(Entry)) {
    malformed_ = true;
    return false;
  }
  std::memcpy(&entry, block_.data(), sizeof(Entry));
  size_t payload = entry_payload_bytes(entry);
  size_t taken = sizeof(Entry) + entry_padded_bytes(payload);
  if (payload > block_.size() || taken > block_.size()) {
    malformed_ = true;
    return false;
  }
  bytes = block_.subspan(sizeof(Entry), payload);
  block_ = block_.subspan(taken);
  --left_;
  return true;
}

struct PoolSlotOptions {
  std::string name;  // pool_name_bytes_max at most
  uint32_t pool_index = 0;
  uint32_t numa_node = 0;
};

struct PoolTableOptions {
  std::vector<PoolSlotOptions> slots;
  // One lane per entry: the doorbell (segment offset, 0 = none) of the scheduler that
  // consumes the lane's completions, rung when one is pushed. Lane n is scheduler n's.
  std::vector<uint64_t> lane_doorbells = {0};
  uint64_t ring_capacity = 4096;  // power of two; at least the pools' in_flight_max
  uint64_t input_arena_bytes = 1 << 20;
  uint64_t output_arena_bytes = 1 << 20;
};

// Bytes lay_out_pool_table takes, for sizing the segment.
Result<uint64_t> pool_table_footprint(const PoolTableOptions& options);
// Lays the table out (allocating its doorbells, rings and arenas inside one object).
Result<uint64_t> lay_out_pool_table(shm::Segment& segment, const PoolTableOptions& options);

class PoolTableView {
 public:
  static Result<PoolTableView> join(std::byte* segment_base, uint64_t offset);
  // Finds the table in an attached segment and joins it.
  static Result<PoolTableView> find(const shm::Segment& segment);
  uint32_t slot_count() const { return slot_count_; }
  PoolControl& control(uint32_t slot) const { return controls_[slot]; }
  PoolLane& lane(uint32_t slot, uint32_t lane) const {
    return reinterpret_cast<PoolLane*>(base_ + controls_[slot].lanes)[lane];
  }

 private:
  std::byte* base_ = nullptr;
  PoolControl* controls_ = nullptr;
  uint32_t slot_count_ = 0;
};

}  // namespace keel::sched
