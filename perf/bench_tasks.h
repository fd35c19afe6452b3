// perf/bench_tasks.h: `keel bench tasks`: compute tasks/s end to end through the real
// engine — a compute source tile in the gateway's place writes compute_requests into the
// shard, which orders them durably and sends each sealed block's tasks to the scheduler
// tile, which leases them to a `keel worker` process running the noop plugin, whose
// completions come back in compute_results transactions ordered durably on the shard —
// and in the same run the same tasks (noop through the same plugin library) in a oneTBB
// flow_graph inside one process, with no ledger, durability or isolation: the baseline.
//
// Figures: tasks/s end to end (results ordered on the ledger per second of the run), the
// scheduler tile's own time per task (its busy time over results returned), the shard
// tile's (its busy time over tasks ordered: requests and results both), the CPU
// time per task of the engine process (every thread), of the pool processes and of the
// flow_graph baseline (getrusage: where the cores go, in the same run), the p50/p99
// of dispatch latency (shard sent the task -> its result handed back to the shard), the
// in-process flow_graph tasks/s, and on a synthetic two-node topology (two shards, a
// scheduler and a noop pool per node) the share of tasks that stayed on their node.
//
// Targets (issue 4): at least 500,000 tasks/s end to end; at least half the flow_graph
// figure; 100% of tasks on their own node while the local pool has credit (its
// in_flight_max is the shard's compute_pending_max here, so it always has).
//
// Estimate per task end to end: one ledger transaction (the request, 44 bytes) checked,
// executed, hashed (leaf + a seventh of an 8-child inner node, ~90 ns), plus a 40-byte entry of a
// compute_results that answers up to 256 tasks at once (one check and hash per batch);
// written at ~90 bytes per task amortized over 8,192-transaction blocks, one fdatasync
// per group commit; a 128-byte ring message per task shard -> scheduler, a 32-byte entry
// each way between the scheduler and the pool (batches of up to 64, one message each), one
// message per batch back to the shard, one 64-byte receipt: ~5 cache lines crossing cores;
// a queue hop and a completion in the worker. Roughly 0.8-1 us of CPU per task over the
// two cores, so ~2-2.5 M tasks/s if nothing waits; flow_graph's noop ~0.3-0.5 us per
// task: 2-6 M/s.
//
// Layout: the engine's plan for the host, printed (and in --json). On two cores it puts
// the scheduler, persist tile and gateway on one and the chain's shard on the other
// (numa/placement.h). The source loads only the bench chain, never the system chain.
#pragma once

#include <cstdint>
#include <string>

namespace keel::perf {

struct TasksBenchOptions {
  bool json = false;
  uint32_t repetitions = 3;
  double seconds = 2.0;              // each end-to-end run
  uint64_t baseline_tasks = 2'000'000;  // each flow_graph run
  std::string directory;             // empty: a fresh folder under ./data/bench-tasks
};

int run_tasks_bench(const TasksBenchOptions& options);

}  // namespace keel::perf
