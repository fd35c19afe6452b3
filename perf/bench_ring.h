// perf/bench_ring.h: `keel bench ring`: keel's SPSC ring against boost::lockfree's
// spsc_queue and a mutex + condition-variable queue, in the same run, interleaved.
//
// Throughput (messages/s) between two pinned threads and between two processes, for
// 64- and 256-byte messages and batches of 1, 8 and 32, copying and zero-copy
// (claim/publish, peek/release); round-trip latency (p50, p99) by ping-pong. Every
// figure is the median of `repetitions` runs with min and max; ratios are taken run by
// run (keel's run i against the baseline's run i) and their median reported.
//
// Estimate, 64-byte messages at batch 32: per message one slot write and one slot read
// (one cache line each way between the cores), plus 1/32 of an index store and,
// rarely, an index reload; so the bound is the cross-core cache-line transfer rate.
// The run measures that rate too (`cross_core_ceiling`: the same messages written and
// read in chunks of 16, 64 or 256 with one flag per chunk, the best of the three) and
// shows each target's demand and keel's best mode as a share of it. It is a reference for
// the line rate, not a proof: keel's zero-copy path at batch 32 reaches it, and at 256 B
// passes it by a few percent.
#pragma once

#include <cstdint>

namespace keel::perf {

struct RingBenchOptions {
  bool json = false;
  uint32_t repetitions = 5;
  uint64_t messages = 4'000'000;        // per throughput run (the mutex queue gets a tenth)
  uint64_t round_trips = 100'000;       // per latency run
};

// Runs the benchmark, prints a table (or one JSON object) and returns the exit code.
int run_ring_bench(const RingBenchOptions& options);

}  // namespace keel::perf
