// engine/pipeline/pipeline_run.h: one `keel run` of the synthetic pipeline: create the
// instance's segment, lay it out, start the relay process and the engine's cores per
// the plan, run for a duration or until SIGINT/SIGTERM, drain, and report.
//
//   Result<PipelineReport> report = run_pipeline(config, topology, plan, {.duration_ms = 10'000,
//                                                .self_executable = "/proc/self/exe"});
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/core/core.h"
#include "engine/core/latency_histogram.h"
#include "error/result.h"
#include "numa/placement.h"
#include "numa/topology.h"
#include "shm/ring.h"

namespace keel::engine::pipeline {

struct RunOptions {
  uint64_t duration_ms = 10'000;
  std::string self_executable;  // the keel binary, re-executed as the relay process
};

struct RingReport {
  std::string name;
  shm::RingStats stats;
  LatencyHistogram latency;
  uint64_t arena_full_events = 0;
};

struct CoreReport {
  std::string name;
  std::vector<std::string> tiles;
  int pu_os_index = -1;  // -1: not bound (synthetic or XML topology)
  CoreStats stats;
};

struct PipelineReport {
  double duration_s = 0;
  uint64_t messages = 0;
  double messages_per_second = 0;
  RingReport rings[2];
  LatencyHistogram end_to_end;
  uint64_t sequence_errors = 0;
  uint64_t payload_errors = 0;
  std::vector<CoreReport> cores;
  bool stopped_by_signal = false;
  std::vector<std::string> notes;  // lines worth printing (a reclaimed segment, no binding)
};

Result<PipelineReport> run_pipeline(const config::PerfConfig& config, const numa::Topology& topology,
                                    const numa::Plan& plan, const RunOptions& options);

}  // namespace keel::engine::pipeline
