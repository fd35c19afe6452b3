// engine/node/load_generator.h: `keel load`, the load generator `keel run` starts — an
// ordinary client process (the client library, nothing engine-internal) that opens
// accounts on every chain and then submits transfers among them until its duration
// ends, then waits for its last receipts and prints one JSON object:
//   {"client": 0, "chains": [{"name": "payments", "submitted": N, "receipts": N,
//     "applied": N, "latency_us_p50": N, "latency_us_p99": N, "latency_us_max": N,
//     "compute_submitted": N, "compute_accepted": N, "compute_backlog_full": N,
//     "flows_submitted": N, "flows_accepted": N, "flows_refused": N}]}
// submitted, receipts, applied and the latencies count every transaction; the compute_
// figures count the compute_requests among them: accepted (applied: a pending task now)
// and refused as compute_backlog_full (the shard held its maximum of pending tasks).
//
// Client i owns accounts i * 10^9 + 1 .. i * 10^9 + accounts_per_chain on each chain, so
// several generators never contend. cross_shard_percent of the transfers go between
// accounts on different shards (when the chain has more than one). compute_percent of
// the submissions, evenly spread, are compute_requests instead, about one of the client's
// accounts, cycling over every compute type of the config's pools with inputs from
// sample_compute_input (compute_inputs.h) seeded by the client index and a counter.
//
// Pacing: with [load] chain_rate_per_second or [[load.shape]]s, each client chain gets its
// own rate (LoadSchedule, load_schedule.h; times count from the generator's start, which
// `keel run` makes the run's), this client sending its even part of it, and compute_percent
// and flow_percent count per chain; each chain's first submissions open the client's
// accounts on it (at the chain's rate, not in a burst that would look heavy to the
// balancer), and it makes up at most 100 ms of a schedule it fell behind. Otherwise the submissions go over all chains in turn, at [load] rate_per_second
// or as fast as backpressure allows.
//
// Flows: with [load] flow_contracts and flow_percent, the generator first deploys each
// contract on every shard of every chain (checked against the pools' compute types; a bad
// file stops it with one line), then flow_percent of the submissions are flow_starts, the
// chains and contracts in turn, each under a key of its own ("load-<client>-<run>-<n>")
// and with arguments made from samples of the compute types of the steps that read them
// (sample_flow_args). flows_accepted counts starts applied; flows_refused the others
// (flows_full when a shard holds its most live flows: backpressure).
#pragma once

#include <cstdint>
#include <string>

#include "engine/config/perf_config.h"

namespace keel::node {

struct LoadOptions {
  std::string segment_name;
  uint32_t client_index = 0;
  uint64_t duration_ms = 10'000;
};

// Runs the generator in this process; returns the exit status (0, or 1 with one line on
// stderr when it could not attach or the engine went away).
int run_load_process(const config::PerfConfig& config, const LoadOptions& options);

}  // namespace keel::node
