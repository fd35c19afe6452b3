// engine/status/engine_status.h: the operator's view of a running engine, read from its
// segment: a StatusSample copies every counter the engine publishes (chains with their
// shards, cores, rings, pools, products, schedulers, clients, the balancer), and
// make_status_report turns two samples into rates and percentiles over the interval
// between them. `keel status`, `keel monitor` and the /metrics endpoint all read it.
//
//   Result<EngineStatus> status = EngineStatus::attach(config, plan);   // read-only, by [engine] instance
//   StatusSample before = status->sample();
//   ... sleep 1 s ...
//   StatusSample after = status->sample();
//   StatusReport report = make_status_report(before, after);
//   for (const ChainFigures& chain : report.chains) use(chain.name, chain.committed_per_second, chain.commit_latency_us_p99);
//
// Reading costs the engine nothing: the segment is mapped read-only and every figure is
// a counter or watermark the engine keeps anyway, or one it publishes a few times a
// second (product queues, pool lanes). A sample is a set of relaxed reads, not a
// transaction: figures of one sample may be microseconds apart.
//
// Which tiles run on which core comes from the placement plan (the config's, recomputed
// as `keel plan` does) with each shard tile on the core its ShardControl names now (the
// balancer moves them).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/node/shard_table.h"
#include "engine/node/status_table.h"
#include "error/result.h"
#include "numa/placement.h"
#include "shm/segment.h"

namespace keel::status {

// --- one sample: counters as read ---

struct ShardSample {
  uint32_t global_shard = 0;
  uint32_t shard = 0;  // within its chain
  std::string tile;    // "shard.<chain>.<shard>"
  uint64_t sealed_height = 0, durable_height = 0;
  uint64_t committed_txs = 0, rejected_txs = 0, refused_txs = 0;
  uint64_t blocks_backpressured = 0;
  uint64_t commit_latency_us_sum = 0, commit_latency_us_max = 0;
  std::array<uint64_t, node::commit_latency_bucket_count> commit_latency_buckets{};
  uint64_t busy_ns = 0;
  uint32_t core_index = 0, weight = 0;
  uint64_t moves = 0;
  uint32_t compute_tasks_pending = 0;
  uint64_t snapshot_height = 0;
};

struct ChainSample {
  std::string name;
  std::vector<ShardSample> shards;
  node::ChainSliceStatus slice{};  // the balancer's; window 0: it has written none
};

struct CoreSample {
  uint32_t core_index = 0, node = 0, pu = 0;
  bool bound = false;
  uint64_t busy_ns = 0, rounds = 0, sleeps = 0, work_done = 0, tiles_moved_in = 0, tiles_moved_out = 0;
  uint32_t tile_count = 0;           // as its loop says
  std::vector<std::string> tiles;    // plan's tiles the engine runs here, shard tiles where they are now
};

enum class RingKind : uint32_t {
  client_submit,      // client -> gateway
  client_receipt,     // gateway -> client
  shard_submit,       // gateway -> shard
  shard_receipt,      // shard -> gateway
  block,              // shard -> persist
  credit,             // shard -> shard of the same chain
  scheduler_request,  // shard -> scheduler
  scheduler_result,   // scheduler -> shard
  pool_task,          // scheduler -> pool process
  pool_completion,    // pool process -> scheduler
};
inline constexpr uint32_t ring_kind_count = 10;
// "client_submit", ..., as JSON and metric labels spell them.
const char* to_string(RingKind kind);

struct RingSample {
  RingKind kind{};
  std::string name;      // e.g. "shard.payments.0.block", "credit.payments.0-1", "pool.noop@0.lane0.task"
  std::string producer;  // the tile (or process: "client.3", "pool.noop@0") that pushes into it
  uint64_t capacity = 0, pushed = 0, popped = 0, full_events = 0;
};

struct PoolSample {
  std::string name;  // "<compute types>@<node>"
  uint32_t node = 0;
  int32_t pid = 0;
  uint64_t epoch = 0, ready_epoch = 0, dead_epoch = 0;
  uint64_t restarts = 0;
  bool quarantined = false;
  std::string quarantine;  // why, when quarantined
  uint64_t tasks_completed = 0, tasks_skipped = 0;
  uint64_t tasks_run_inline = 0;  // of those run, by the worker's main thread itself
  // Summed over the schedulers' lanes, as they last published them.
  uint64_t tasks_in_flight = 0, tasks_dispatched = 0, tasks_retried = 0;
};

struct ProductSample {
  std::string name;
  uint32_t priority = 0, running_max = 0;  // the first shard's that holds it
  uint64_t jobs_queued = 0, jobs_running = 0;  // over every shard of every chain
  uint32_t shards = 0;  // shards holding it
};

struct SchedulerSample {
  std::string tile;  // "scheduler.<node>"
  uint64_t tasks_taken = 0, tasks_dispatched = 0, tasks_spilled = 0, tasks_retried = 0, tasks_expired = 0,
           tasks_redispatched = 0, completions_stale = 0, results_returned = 0, results_failed = 0, leases_held = 0,
           busy_ns = 0;
};

struct ClientsSample {
  uint32_t slots = 0, attached = 0;
  // Over every slot, as the gateway counts them: since each slot's current owner claimed
  // it (the gateway clears a slot's counts when it frees it), so not a running total.
  uint64_t submitted = 0, receipts_sent = 0;
};

struct BalancerSample {
  uint32_t window_ms = 0;  // 0: no balancer runs
  uint64_t windows = 0, moves = 0, records = 0, records_backpressured = 0;
};

struct StatusSample {
  std::string instance;
  int32_t engine_pid = 0;
  uint64_t taken_ns = 0;  // CLOCK_MONOTONIC (the same clock in every process)
  std::vector<ChainSample> chains;
  std::vector<CoreSample> cores;
  std::vector<RingSample> rings;
  std::vector<PoolSample> pools;
  std::vector<ProductSample> products;  // by name
  std::vector<SchedulerSample> schedulers;
  ClientsSample clients;
  BalancerSample balancer;
};

// --- a report: two samples' difference ---

struct ChainFigures {
  std::string name;
  uint32_t shards = 0;
  uint64_t committed_txs = 0, rejected_txs = 0, refused_txs = 0;  // totals since the engine started
  double committed_per_second = 0;  // over the interval ("TPS")
  // Of the transactions committed in the interval: p99 of first-tx-ordered -> block
  // durable, from the shards' latency bucket deltas (a bucket's upper bound, at most ~6 % high);
  // 0 when none committed.
  uint64_t commit_latency_us_p99 = 0;
  double commit_latency_us_mean = 0;  // same transactions
  uint64_t sealed_height_max = 0, durable_height_max = 0;
  // Blocks sealed and not yet durable, on its worst shard, at the later sample.
  uint64_t durable_lag_blocks = 0;
  // The oldest of those was sealed at least this long before the later sample: the
  // interval when it was already sealed at the earlier one, else 0.
  uint64_t durable_lag_ms_min = 0;
  double busy_percent = 0;  // its shard tiles' busy time over the interval, % of one core
  uint64_t blocks_backpressured = 0;  // in the interval: seals delayed by a full persist ring or arena
  uint32_t compute_tasks_pending = 0;
  uint64_t moves = 0;  // its shard tiles moved between cores, total
  // The balancer's slice (balanced false: it has decided nothing yet, or none runs).
  bool balanced = false;
  std::string tier;  // "light", "medium", "heavy", or "none"
  uint32_t cores_dedicated = 0, shares_permille = 0;
  uint64_t tps_smoothed = 0, cost_ns_per_tx = 0, tier_changes = 0, slice_changes = 0;
};

struct CoreFigures {
  uint32_t core_index = 0, node = 0, pu = 0;
  bool bound = false;
  double busy_percent = 0;  // time in rounds that did work
  double rounds_per_second = 0, sleeps_per_second = 0;
  uint32_t tile_count = 0;
  std::vector<std::string> tiles;
  uint64_t tiles_moved_in = 0, tiles_moved_out = 0;  // totals
  // Backpressure its tiles met in the interval: full events of the rings they push into,
  // plus seals their shard tiles delayed for a full persist ring.
  uint64_t full_events = 0;
  uint64_t blocks_backpressured = 0;
};

struct RingFigures {
  RingKind kind{};
  uint32_t rings = 0;
  uint64_t capacity_max = 0;         // of one ring
  uint64_t depth = 0;                // messages in them now (pushed - popped), summed
  uint64_t depth_max = 0;            // the fullest one's depth
  std::string depth_max_ring;        // its name (empty when all are empty)
  double pushed_per_second = 0;
  uint64_t full_events = 0;          // total
  uint64_t full_events_interval = 0; // in the interval
  std::string full_events_ring;      // the ring with most full events in the interval (empty: none)
};

struct PoolFigures {
  std::string name;
  uint32_t node = 0;
  int32_t pid = 0;
  std::string state;  // "ready", "starting", "restarting" or "quarantined"
  std::string quarantine;
  uint64_t tasks_in_flight = 0;
  double dispatched_per_second = 0, completed_per_second = 0, retried_per_second = 0;
  uint64_t tasks_retried = 0, restarts = 0;  // totals
};

struct ProductFigures {
  std::string name;
  uint32_t priority = 0, running_max = 0, shards = 0;
  uint64_t jobs_queued = 0, jobs_running = 0;
};

struct ComputeFigures {
  double tasks_taken_per_second = 0, results_per_second = 0;
  uint64_t leases_held = 0;
  uint64_t tasks_retried = 0, tasks_expired = 0, tasks_spilled = 0, tasks_redispatched = 0;  // totals
  double scheduler_busy_percent = 0;  // summed over the scheduler tiles, % of one core
};

struct StatusReport {
  std::string instance;
  int32_t engine_pid = 0;
  double interval_s = 0;
  std::vector<ChainFigures> chains;
  std::vector<CoreFigures> cores;
  std::vector<RingFigures> rings;  // one per kind that has rings, in RingKind order
  std::vector<PoolFigures> pools;
  std::vector<ProductFigures> products;
  ComputeFigures compute;
  ClientsSample clients;
  BalancerSample balancer;
};

// p99 of the latencies counted between two copies of commit latency buckets (summed over
// any number of shards): the upper bound of the bucket holding the 99th percentile; 0
// when nothing was counted.
uint64_t commit_latency_us_percentile(const std::array<uint64_t, node::commit_latency_bucket_count>& counted,
                                      double quantile);

// Rates and percentiles between two samples of the same engine (later.taken_ns >
// earlier.taken_ns; a counter that went down, as after an engine restart, counts as 0).
// The report's lists follow `later`.
StatusReport make_status_report(const StatusSample& earlier, const StatusSample& later);

// A running engine's segment, mapped for reading, and what the plan says runs where.
class EngineStatus {
 public:
  // Attaches read-only to "keel-<config.engine.instance>". Fails with one line when no
  // engine runs under that name, or when the engine runs other chains or another plan
  // than the config's (then its figures could not be named).
  static Result<EngineStatus> attach(const config::PerfConfig& config, const numa::Plan& plan);
  // Over a segment this process maps already (the engine's own /metrics thread); the
  // segment must outlive the EngineStatus.
  static Result<EngineStatus> over(const shm::Segment& segment, const config::PerfConfig& config,
                                   const numa::Plan& plan);

  EngineStatus(EngineStatus&&) noexcept;
  EngineStatus& operator=(EngineStatus&&) noexcept;
  ~EngineStatus();

  StatusSample sample() const;
  // False once the engine's process is gone (pid and start time no longer match).
  bool engine_running() const;
  const std::string& segment_name() const;

  struct Layout;  // where every table and ring is (engine_status.cc)

 private:
  EngineStatus();
  static Result<EngineStatus> build(std::unique_ptr<shm::Segment> owned, const shm::Segment& segment,
                                    const config::PerfConfig& config, const numa::Plan& plan);
  std::unique_ptr<Layout> layout_;
};

}  // namespace keel::status
