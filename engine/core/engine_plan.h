// engine/core/engine_plan.h: from a perf config to a topology and a placement plan, the
// same way for `keel plan` and `keel run`.
//
//   Result<numa::Topology> topology = load_topology(config, cli_topology_override);
//   Result<numa::Plan> plan = numa::make_plan(*topology, plan_request(config));
#pragma once

#include <string>

#include "engine/config/perf_config.h"
#include "error/result.h"
#include "numa/placement.h"
#include "numa/topology.h"

namespace keel::engine {

// Loads the topology the config names, or `override_spec` when non-empty: "host", a
// path ending in ".xml", or an hwloc synthetic description ("pack:2 numa:2 core:16 pu:2").
Result<numa::Topology> load_topology(const config::PerfConfig& config, const std::string& override_spec);

// The placement request for everything the config asks for: chains' shards, the
// per-node schedulers, persist, balancer and timer tiles, pools, and either the synthetic
// pipeline's three tiles ([pipeline] enabled) or the ledger's client gateway.
numa::PlanRequest plan_request(const config::PerfConfig& config);

// Tile kinds this build runs for a job (the synthetic pipeline or the ledger); the plan
// also places tiles later issues implement.
bool tile_kind_is_implemented(std::string_view kind, bool pipeline_job);

}  // namespace keel::engine
