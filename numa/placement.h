// keel::numa placement: decides which engine core runs which tiles, and which PUs each
// worker pool may use, for a topology and a request (usually built from the perf config).
//
//   PlanRequest request;
//   request.chains = {{"payments", 4}, {"settlement", 2}};
//   request.pools = {{"hash", 8}};
//   request.shard.busy_poll = true;
//   request.compute_cores_per_node = 8;
//   Result<Plan> plan = make_plan(*topology, request);
//   if (!plan) { std::fprintf(stderr, "keel: %s\n", plan.error().message.c_str()); return 2; }
//   std::fputs(format_plan_table(*plan).c_str(), stdout);
//   const PlannedCore* core = find_tile(*plan, "scheduler.0");
//
// The rules, in the order they are applied:
//  - Per node, the last compute_cores_per_node cores are compute cores, reserved for pools;
//    the others are engine cores.
//  - Every node with cores gets a scheduler tile "scheduler.<node>".
//  - persist, balancer, timer and the extra tiles go on node 0 when they fit there.
//  - A chain's shards "shard.<chain>.<i>" go together on the node with the most free
//    engine capacity (chains are placed largest first); a chain that fits on no single
//    node is split over the nodes with the most room, and a note says so.
//  - A busy-polling tile gets a whole core: one engine thread on the core's first PU, the
//    core's other PUs (hyperthread siblings) left idle.
//  - A light chain's shards (the system chain's) never busy-poll, weigh 1 and go on node 0
//    when they fit there.
//  - Non-busy tiles share the node's remaining engine cores. With two or more shared cores
//    the client chains' shards and the service tiles (schedulers, persist, gateway,
//    pipeline and other extra tiles) are kept apart: the services get a share of the
//    shared cores in proportion to their weight (rounded; at least one, leaving at least
//    one, no more than they have tiles; a core each when there are cores for every tile),
//    the shards the rest. Each group goes heaviest first onto its least-loaded core; then
//    the light tiles (balancer, timer, light chains' shards) onto the least-loaded of the
//    shards' cores. Otherwise all go heaviest first onto the least-loaded shared core, the
//    light ones last. Engine cores left without a tile are not in the plan (a note counts
//    them).
//  - Pools: one per compute type and node, on the node's compute cores' PUs (or on its
//    engine cores' PUs when compute_cores_per_node is 0).
// The same topology and request always give the same plan.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "error/result.h"
#include "numa/topology.h"

namespace keel::numa {

// How a class of tiles runs: busy-polling on a core of its own, or sharing a core with
// other non-busy tiles in proportion to weight (weight >= 1).
struct TileClassRequest {
  bool busy_poll = false;
  uint32_t weight = 1;
};

// A ledger chain and its number of shards (>= 1). A light chain carries a few
// transactions a second (the system chain: the balancer's decisions): its shards never
// busy-poll, weigh 1 and fill in beside the other light tiles, since a core's share for
// them would be a core's share lost.
struct ChainRequest {
  std::string name;
  uint32_t shards = 1;
  bool light = false;
};

// A worker pool of one compute type; one pool process per NUMA node.
struct PoolRequest {
  std::string compute_type;
  uint32_t threads_per_node = 1;
};

// A tile outside the standard set, e.g. the synthetic pipeline's source/relay/sink.
struct ExtraTileRequest {
  std::string name;
  std::string kind;
  TileClassRequest tile_class;
};

struct PlanRequest {
  std::vector<ChainRequest> chains;
  std::vector<PoolRequest> pools;
  TileClassRequest shard, scheduler, persist, balancer, timer;
  std::vector<ExtraTileRequest> extra_tiles;
  uint32_t compute_cores_per_node = 0;
};

// kind is "shard", "scheduler", "persist", "balancer", "timer" or an extra tile's kind.
struct PlannedTile {
  std::string name;
  std::string kind;
  std::string chain;  // empty unless a shard
  uint32_t weight;
  bool busy_poll;
};

// One engine thread: pinned to pu_os_index (the core's first PU), memory on its node.
// node is the logical NUMA index; node_os_index is the kernel's number for binding.
struct PlannedCore {
  uint32_t core_index;
  uint32_t node;
  uint32_t pu_os_index;
  bool busy_poll;
  std::vector<PlannedTile> tiles;
  uint32_t node_os_index = 0;
};

// One worker-pool process: its threads may run on pu_os_indexes, its memory on the node.
struct PlannedPool {
  std::string compute_type;
  uint32_t node;
  std::vector<uint32_t> pu_os_indexes;
  uint32_t threads;
  uint32_t node_os_index = 0;
};

struct Plan {
  std::string topology_description;
  bool bindable;  // topology.is_host(): only then may the engine pin to this plan
  std::vector<PlannedCore> cores;  // sorted by core_index; only cores that host tiles
  std::vector<PlannedPool> pools;  // in request order, then by node
  std::vector<std::string> notes;
};

// Places every tile and pool of the request on the topology following the rules above.
// Error (one line) for a request a user can fix: a bad name or count, compute cores that
// leave a node no engine core, or more busy-polling tiles than a node has engine cores.
Result<Plan> make_plan(const Topology& topology, const PlanRequest& request);

// A table for people: one row per planned core (core, node, PU, busy/shared, tiles with
// weights), then the pools, then the notes. Ends with a newline.
std::string format_plan_table(const Plan& plan);

// The whole plan as one JSON object on one line (no trailing newline).
std::string format_plan_json(const Plan& plan);

// The planned core running the tile with this name, or nullptr if no tile has it.
const PlannedCore* find_tile(const Plan& plan, std::string_view tile_name);

}  // namespace keel::numa
