// engine/sched/task_table.h: the shards' side of the scheduler in the segment. Per shard:
// a request ring to the scheduler tile of its NUMA node (the compute tasks its sealed
// blocks issued) and a result ring back (the compute_result transactions the shard
// orders), each with an arena for what does not fit a slot. Per scheduler tile: its
// counters, for `keel run`'s report and monitors.
//
//   TaskTableOptions options;
//   options.shards = {{.scheduler = 0, .shard_doorbell = ..., .scheduler_doorbell = ...}, ...};
//   options.scheduler_count = 1;
//   uint64_t table = lay_out_task_table(segment, options).value();   // engine, before seal
//   TaskTableView view = TaskTableView::join(segment.base(), table).value();
//   ShardTaskPorts& ports = view.shard(global_shard);   // ring and arena offsets
//   SchedulerCounters& counters = view.scheduler(0);
//
// Compute types cross the rings as indexes into the engine's ComputeTypeTable (all the
// [[pool]]s' compute types in config order), looked up once by the shard. A type no pool
// serves is sent as unknown_compute_type: the scheduler answers it no_pool.
//
// One segment object ("sched.tasks"), like the shard and pool tables.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "error/result.h"
#include "shm/segment.h"

namespace keel::sched {

inline constexpr char task_table_object_name[] = "sched.tasks";
inline constexpr uint64_t task_table_magic = 0x31304b5341544b4bULL;  // "KKTASK01"
inline constexpr uint32_t task_table_version = 1;

inline constexpr uint32_t unknown_compute_type = 0xffffffffu;

// Every compute type some [[pool]] serves, numbered in config order.
class ComputeTypeTable {
 public:
  ComputeTypeTable() = default;
  explicit ComputeTypeTable(std::vector<std::string> names);
  // The type's number, or unknown_compute_type.
  uint32_t index_of(std::string_view name) const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string_view, uint32_t> indexes_;  // views into names_
};

inline constexpr size_t request_inline_bytes = 16;

// One compute task, shard -> scheduler: issued by the request at task_mark (its height
// and index in the shard's log). The input is inline when it fits, else in the shard's
// request arena at input_position; the scheduler copies it out and releases it. One cache
// line: every task crosses from the shard's core to the scheduler's in one, and a short
// input (a noop's 8 bytes, an id, a few numbers) rides along; at 128 bytes with 80 inline
// the second line was a miss on both cores for inputs that rarely needed it.
struct TaskRequestMessage {
  uint64_t task_mark;
  uint64_t input_position;
  uint64_t issued_ns;      // CLOCK_MONOTONIC, when the shard sent it (dispatch latency)
  uint32_t compute_type;   // ComputeTypeTable index, or unknown_compute_type
  uint32_t input_bytes;    // inline when <= request_inline_bytes
  // The task's own lease policy (a flow step's), or timeout_ms 0 for its pool's. The
  // lease is never longer than the pool's timeout_ms: the operator's ceiling, which the
  // worker's hung-task rule also stands on.
  uint32_t timeout_ms;
  uint32_t retries_max;
  uint32_t backoff_ms;
  uint32_t reserved;
  std::byte input[request_inline_bytes];
};
static_assert(sizeof(TaskRequestMessage) == 64);

inline constexpr size_t result_inline_bytes = 112;
// The scheduler answers a shard in compute_results transactions of at most this many
// entries, and at most this many bytes of entries unless a single entry is bigger (so a
// batch is at most ledger::compute_results_tx_bytes of one largest entry).
inline constexpr uint32_t result_batch_entries_max = 256;
inline constexpr size_t result_batch_bytes_max = 16384;

// One compute_results transaction, scheduler -> shard, ready to check and order. Inline
// when it fits, else in the shard's result arena at tx_position; the shard releases it.
struct TaskResultMessage {
  uint64_t tx_position;
  uint32_t tx_bytes;  // inline when <= result_inline_bytes
  uint32_t reserved;
  std::byte tx[result_inline_bytes];
};
static_assert(sizeof(TaskResultMessage) == 128);

struct ShardTaskPorts {
  uint64_t request_ring;   // TaskRequestMessage; consumer: the scheduler tile
  uint64_t request_arena;  // written by the shard
  uint64_t result_ring;    // TaskResultMessage; consumer: the shard tile
  uint64_t result_arena;   // written by the scheduler
  uint32_t scheduler;      // the scheduler tile (lane) that serves this shard
  uint32_t reserved;
};

// Written by one scheduler tile; read by anyone.
struct alignas(128) SchedulerCounters {
  std::atomic<uint64_t> tasks_taken;        // from the shards' request rings
  std::atomic<uint64_t> tasks_dispatched;   // sends to a pool, retries included
  std::atomic<uint64_t> tasks_spilled;      // of those, to another node's pool
  std::atomic<uint64_t> tasks_retried;      // attempts after the first
  std::atomic<uint64_t> tasks_expired;      // leases that ran out
  std::atomic<uint64_t> tasks_redispatched; // leases of a pool incarnation that died
  std::atomic<uint64_t> completions_stale;  // answers to an attempt no longer leased: dropped
  std::atomic<uint64_t> results_returned;   // compute_results handed to the shards
  std::atomic<uint64_t> results_failed;     // of those, not succeeded
  std::atomic<uint64_t> leases_held;        // now
  std::atomic<uint64_t> dispatch_latency_ns_sum;  // shard sent -> completion back, results returned
  std::atomic<uint64_t> scheduler_busy_ns;  // time inside poll() that did work
};

struct TaskShardOptions {
  uint32_t scheduler = 0;            // which scheduler tile serves the shard
  uint64_t shard_doorbell = 0;       // the shard's core's doorbell (result ring), 0 = none
  uint64_t scheduler_doorbell = 0;   // its scheduler's core's doorbell (request ring), 0 = none
};

struct TaskTableOptions {
  std::vector<TaskShardOptions> shards;  // by global shard
  uint32_t scheduler_count = 1;
  uint64_t ring_capacity = 4096;         // per ring, a power of two
  uint64_t request_arena_bytes = 1 << 20;
  uint64_t result_arena_bytes = 1 << 20;
};

Result<uint64_t> task_table_footprint(const TaskTableOptions& options);
Result<uint64_t> lay_out_task_table(shm::Segment& segment, const TaskTableOptions& options);

class TaskTableView {
 public:
  static Result<TaskTableView> join(std::byte* segment_base, uint64_t offset);
  static Result<TaskTableView> find(const shm::Segment& segment);
  uint32_t shard_count() const { return shard_count_; }
  uint32_t scheduler_count() const { return scheduler_count_; }
  const ShardTaskPorts& shard(uint32_t global_shard) const { return shards_[global_shard]; }
  SchedulerCounters& scheduler(uint32_t index) const { return schedulers_[index]; }

 private:
  ShardTaskPorts* shards_ = nullptr;
  SchedulerCounters* schedulers_ = nullptr;
  uint32_t shard_count_ = 0, scheduler_count_ = 0;
};

}  // namespace keel::sched
