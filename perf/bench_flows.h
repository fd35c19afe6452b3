// perf/bench_flows.h: `keel bench flows`: flow jobs/s and flows/s end to end through the
// real engine, durable (fsync always), with the noop plugin: a source tile in the
// gateway's place deploys the contract on the shard, raises its product's running limit
// and starts flows under fresh keys; the shard releases each flow's jobs by its
// dependency counters, the scheduler leases them to a `keel worker` process, and every
// job's result is a compute_result ordered on the shard, which releases the next steps.
//
// Two shapes: the loan approval's (hash -> score and risk split 16 -> decision: 19 jobs a
// flow) and one step split 10,000 ways (a nightly batch's shape). Every step is noop with
// the 8-byte split index as input.
//
// Baseline, in the same run: the same engine running plain compute tasks (a compute
// source sending compute_requests, `keel bench tasks`'s path): the ratio is what the flow
// layer costs or saves per job. Target (issue 5): at least 100,000 jobs/s on this 2-core
// machine (a billion jobs a day is 11,600/s).
//
// Figures: jobs/s and flows/s (jobs and flows succeeded in durable blocks, divided by the
// run plus its drain), the scheduler's dispatch latency p50/p99 (shard sent -> result
// handed back), a job's step ready -> dispatched latency p50/p99 (its dependencies done ->
// handed to the scheduler, queueing behind its product's running limit included; at full
// speed this is the backlog the source builds, so a third loan run at a fixed rate of
// latency_flows_per_second, below capacity, measures it without one), and the memory of a live and of a kept finished flow (FlowTable::memory() over
// the counts, at the end of the run). Bounded: live flows at most 2^18 a shard, kept
// finished ones 2^18, running jobs 16,384 (ledger/state.h's shard_flow_limits).
//
// Estimate per job: one compute_result transaction (~72 bytes: checked, executed, hashed,
// written), four ring messages, the flow table's work (a hash-map insert and erase, a
// counter, a successor release: ~100-200 ns); a loan flow adds one flow_start (~100
// bytes) per 19 jobs. So a job costs about what a plain task costs minus its request:
// jobs/s should be at or above tasks/s.
#pragma once

#include <cstdint>
#include <string>

namespace keel::perf {

struct FlowsBenchOptions {
  bool json = false;
  uint32_t repetitions = 3;
  double seconds = 2.0;   // each end-to-end run
  uint32_t latency_flows_per_second = 5000;  // the loan run that measures latency at a fixed rate
  std::string directory;  // empty: a fresh folder under ./data/bench-flows
};

int run_flows_bench(const FlowsBenchOptions& options);

}  // namespace keel::perf
