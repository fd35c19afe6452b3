// engine/node/ledger_run.h: `keel run` — the ledger engine with its load generator.
//
//   Result<LedgerReport> report = run_ledger(config, topology, plan, {duration_ms, "/proc/self/exe", config_path});
//
// Lays out the segment (client table, shard table, a doorbell per core), recovers every
// shard from its data directory, starts the persist tile (io_uring, or psync with a note),
// the shard tiles, the scheduler tiles and the gateway on the cores the plan gives them,
// starts a worker-pool process per [[pool]] and node under the pool supervisor and waits
// until each is ready (or quarantined), then starts [load].clients load-generator processes (`keel load`, attached through the client
// library like any application) and runs until the duration ends or SIGINT/SIGTERM,
// taking a timeline sample of every client chain each second (run_timeline.h).
// The stop is a drain: the gateway stops routing, every shard seals and waits for its
// blocks to be durable and answered, then the persist tile stops.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/node/chain_cpu_cap.h"
#include "engine/node/compute_source.h"
#include "engine/node/run_timeline.h"
#include "error/result.h"
#include "numa/placement.h"
#include "numa/topology.h"
#include "shm/segment.h"

namespace keel::node {

// Something that runs beside the engine for as long as it runs (the /metrics endpoint,
// engine/status), made by a factory once the segment is sealed and the cores run, and
// destroyed before the segment is unmapped. A factory that cannot start its companion
// says why itself and returns null: the engine runs on without it.
class RunCompanion {
 public:
  virtual ~RunCompanion() = default;
};
using RunCompanionFactory = std::function<std::unique_ptr<RunCompanion>(const shm::Segment& segment)>;

struct LedgerRunOptions {
  uint64_t duration_ms = 10'000;
  std::string self_executable = "/proc/self/exe";
  std::string config_path;  // handed to the load generators
  // Set (by `keel bench tasks`): a compute source tile takes the gateway's place and
  // sends compute_requests from the moment every pool is ready (compute_source.h); no
  // client can attach. The report's `source` says what it sent.
  std::optional<ComputeSourceOptions> compute_source;
  std::vector<RunCompanionFactory> companions;
  // Set (by `keel bench balance`, for its static split): every client chain's shard tiles
  // together run at most this many cores' worth of time per period, whatever else their
  // cores have to do (chain_cpu_cap.h). The system chain is never capped.
  std::optional<ChainCpuCap> chain_cpu_cap;
  // Called once a second while the run lasts (on run_ledger's thread), with the timeline
  // so far: its last sample is the second just ended. `keel run` prints progress from it.
  std::function<void(const RunTimeline&)> on_sample;
};

struct ChainReport {
  std::string name;
  uint32_t shards = 0;
  uint64_t height_max = 0;          // highest durable block of any of its shards
  uint64_t committed_txs = 0;       // in durable blocks during this run
  uint64_t rejected_txs = 0;        // of those, rejected by the state (e.g. insufficient funds)
  double committed_per_second = 0;
  double commit_latency_us_mean = 0;  // first transaction of a block ordered -> block durable
  uint64_t commit_latency_us_max = 0;
  // Seen by the load generators: submit -> durable receipt.
  uint64_t client_receipts = 0;
  uint64_t client_latency_us_p50 = 0;
  uint64_t client_latency_us_p99 = 0;
  // The balancer's view at the end of the run (engine/balance/balancer.h).
  std::string tier = "light";
  double tps_smoothed = 0;
  double cost_ns_per_tx = 0;
  uint32_t cores_dedicated = 0;
  double slice_cores = 0;        // dedicated cores plus its weight shares of the shared ones
  uint64_t tier_changes = 0;     // this run
  uint64_t slice_changes = 0;
  uint64_t shard_moves = 0;      // its shard tiles' moves between cores this run
  uint64_t cpu_cap_periods_throttled = 0;  // periods it ran out of LedgerRunOptions::chain_cpu_cap
  // From the shards' commit latency buckets (this run) and the run's timeline (client
  // chains only: the system chain's are zero).
  uint64_t commit_latency_us_p99 = 0;
  double tps_peak = 0;           // the busiest second's committed tx/s
  std::array<double, timeline_tier_count> seconds_in_tier{};  // light, medium, heavy
};

// The balancer tile this run.
struct BalancerReport {
  bool ran = false;
  uint64_t windows = 0;
  uint64_t moves_requested = 0;
  uint64_t weight_changes_requested = 0;
  uint64_t records_ordered = 0;        // balance_records pushed to the system chain
  uint64_t windows_held = 0;           // decisions held while records waited for room
  uint64_t placement_mismatches = 0;   // a tile found elsewhere than the balancer had put it
  uint64_t shuffles_requested = 0;     // KEEL_BALANCER_SHUFFLE_MS's moves (a test hook)
};

// Compute tasks this run: the schedulers' counters, the pools' supervision, and the
// ledgers' task tables as they stand after the drain.
struct ComputeReport {
  uint64_t tasks_taken = 0;         // by the schedulers, from the shards
  uint64_t results_returned = 0;    // task results handed back to the shards
  uint64_t results_failed = 0;      // of those, not succeeded
  uint64_t tasks_retried = 0;       // attempts after the first
  uint64_t tasks_expired = 0;       // leases that ran out
  uint64_t tasks_redispatched = 0;  // leases of a pool incarnation that died
  uint64_t completions_stale = 0;   // answers to an attempt no longer leased, dropped
  uint64_t tasks_spilled = 0;       // sent to another node's pool
  uint64_t tasks_dispatched = 0;    // sends to a pool, every attempt
  uint64_t scheduler_busy_ns = 0;   // the scheduler tiles' time in polls that did work
  uint64_t shard_busy_ns = 0;       // every shard tile's time in polls that did work (all chains)
  uint64_t dispatch_latency_us_p50 = 0;  // shard sent the task -> its result handed back
  uint64_t dispatch_latency_us_p99 = 0;
  // Flow jobs: step ready -> handed to the scheduler (ShardTile::ready_to_dispatch).
  uint64_t ready_to_dispatch_us_p50 = 0;
  uint64_t ready_to_dispatch_us_p99 = 0;
  uint64_t pool_restarts = 0;
  uint32_t pools = 0;               // pool processes (one per [[pool]] and node)
  uint32_t pools_quarantined = 0;
  // From the ledgers (all time): issued == succeeded + failed + pending.
  uint64_t ledger_tasks_issued = 0;
  uint64_t ledger_tasks_succeeded = 0;
  uint64_t ledger_tasks_failed = 0;
  uint64_t ledger_tasks_pending = 0;
  // Flows, from the ledgers (all time, but live and running: now).
  uint64_t flows_started = 0, flows_succeeded = 0, flows_failed = 0, flows_cancelled = 0, flows_live = 0;
  uint64_t flow_jobs_dispatched = 0, flow_jobs_succeeded = 0, flow_jobs_failed = 0, flow_jobs_running = 0;
  uint64_t flows_finished_kept = 0;
  uint64_t flow_live_bytes = 0, flow_finished_bytes = 0;  // FlowTable::memory(), summed over shards
  // Cron timers: how many, the flows their fires started, and fires whose misfire policy
  // left missed times out (all time).
  uint64_t timers = 0, timer_flows_started = 0, timer_misfires_dropped = 0;
  // This run (from the recovered state to the end of the drain): flows started and ended
  // (succeeded, failed or cancelled), flow jobs ended (a result ordered), and their rates
  // over the run and its drain (what ended during the drain is counted).
  uint64_t run_flows_started = 0, run_flows_ended = 0, run_flow_jobs_ended = 0;
  double flows_ended_per_second = 0, flow_jobs_per_second = 0;
};

// One product's flows and queue, summed over every shard of every chain, after the drain.
struct ProductProgress {
  std::string name;
  uint32_t priority = 0, running_max = 0;  // as the first shard holding it has them
  uint64_t flows_live = 0, flows_succeeded = 0, flows_failed = 0, flows_cancelled = 0;  // live and kept finished
  uint64_t jobs_queued = 0, jobs_running = 0;
};

// A latency histogram in brief (microseconds).
struct LatencySummary {
  uint64_t count = 0;
  uint64_t p50_us = 0, p99_us = 0, max_us = 0;
};

struct LedgerReport {
  std::vector<std::string> notes;
  std::vector<ChainReport> chains;
  std::string persist_backend;
  std::string fsync;
  uint64_t commits = 0;          // group commits
  uint64_t commits_stalled = 0;  // group commits in the kernel longer than commit_stall_warn_ms
  uint32_t commit_stall_warn_ms = 0;
  uint64_t blocks_recovered = 0;
  uint64_t snapshots_written = 0;    // this run, all shards
  uint64_t snapshots_skipped = 0;    // due while the shard's previous one was still being written
  uint64_t snapshot_write_us_max = 0;  // serialize + write + fdatasync + rename, one snapshot
  uint64_t segments_dropped = 0;     // log segments deleted behind kept snapshots
  uint64_t segments_recycled = 0;      // new log segments that were dropped files, kept for reuse
  uint64_t segments_preallocated = 0;  // new log segments that were spares written full of zeros
  uint64_t segments_unprepared = 0;    // new log segments created empty (spare not ready or failed)
  // The persist tile's times (PersistStats): from poll to poll while a group commit was in
  // flight, a group commit's submission to its completion seen, a block's seal to durable.
  LatencySummary persist_poll_gap, persist_commit, persist_sealed_to_durable;
  ComputeReport compute;
  BalancerReport balancer;
  std::vector<ProductProgress> products;  // by name
  struct {
    uint64_t requests_sent = 0, requests_accepted = 0, requests_backlog_full = 0, requests_refused = 0;
    uint64_t setup_refused = 0;  // flows: a deploy or product_set not applied
  } source;  // the compute source's, when it ran
  double duration_s = 0;
  double duration_with_drain_s = 0;  // to the end of the drain (what was ordered then is durable)
  bool stopped_by_signal = false;
  RunTimeline timeline;  // each second of the run (not the drain), per client chain
};

Result<LedgerReport> run_ledger(const config::PerfConfig& config, const numa::Topology& topology,
                                const numa::Plan& plan, const LedgerRunOptions& options);

}  // namespace keel::node
