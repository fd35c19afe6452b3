// engine/cli/status_commands.h: the operator's view from the command line — `keel
// status` (two samples N ms apart, printed once as tables or one JSON object) and `keel
// monitor` (the same tables redrawn every interval until Ctrl-C or the engine stops) —
// and the /metrics companion `keel run` starts when [metrics] enabled.
//
//   keel status --config perf/default.toml [--json] [--interval-ms 1000] [--topology T]
//   keel monitor --config perf/default.toml [--interval-ms 1000] [--topology T]
//
// Both attach read-only to the segment of the config's [engine] instance; with no engine
// running they fail with one line (exit status 2).
#pragma once

#include <cstdint>
#include <string>

#include "engine/config/perf_config.h"
#include "engine/node/ledger_run.h"
#include "numa/placement.h"

namespace keel::cli {

struct StatusRequest {
  std::string config_path;
  std::string topology_override;  // as `keel run --topology` was given, if it was
  uint32_t interval_ms = 1000;
  bool json = false;
};

int status_command(const StatusRequest& request);
int monitor_command(const StatusRequest& request);

// The /metrics endpoint as a `keel run` companion: serves the engine's own segment from a
// thread; prints one line saying where (or why not: a taken port, and the engine runs on).
node::RunCompanionFactory metrics_companion(const config::PerfConfig& config, const numa::Plan& plan);

}  // namespace keel::cli
