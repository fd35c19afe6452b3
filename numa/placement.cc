#include "numa/placement.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

namespace keel::numa {
namespace {

constexpr uint32_t kUnplaced = std::numeric_limits<uint32_t>::max();

// What a non-busy tile is to the shared-core packing (pack_shared): a client chain's shard,
// a service tile that every shard's traffic crosses, or a light tile that is mostly idle.
enum class Role { chain_work, service, light };

// A tile on its way through the planner; order is its place in the canonical tile list
// (schedulers, singletons, extra tiles, then shards in request order).
struct Tile {
  PlannedTile planned;
  Role role = Role::service;
  uint32_t node = kUnplaced;  // index into the planner's NodeState list
};

// One NUMA node that has cores, and what has been placed on it so far.
struct NodeState {
  const NumaNode* node = nullptr;
  std::vector<const Core*> engine_cores;
  std::vector<const Core*> compute_cores;
  uint32_t busy_tiles = 0;
  uint32_t shared_tiles = 0;
  uint64_t shared_weight = 0;

  int64_t engine_count() const { return static_cast<int64_t>(engine_cores.size()); }
  // Cores still free for busy-polling tiles once one core is kept for the non-busy tiles.
  int64_t free_cores() const { return engine_count() - busy_tiles - (shared_tiles > 0 ? 1 : 0); }
  // Whether count more tiles of this class still leave the node feasible.
  bool fits(bool busy_poll, uint32_t count) const {
    if (busy_poll) return busy_tiles + count + (shared_tiles > 0 ? 1 : 0) <= engine_count();
    return busy_tiles + 1 <= engine_count();
  }
};

struct Planner {
  const Topology& topology;
  const PlanRequest& request;
  std::vector<NodeState> nodes;
  std::vector<Tile> tiles;
  std::vector<std::string> notes;
};

std::string node_name(const NodeState& state) { return "node " + std::to_string(state.node->index); }

Result<void> check_tile_class(std::string_view name, const TileClassRequest& tile_class) {
  if (tile_class.weight == 0) return make_error(name, "weight must be at least 1");
  return {};
}

Result<void> check_request(const PlanRequest& request) {
  std::set<std::string> seen;
  for (size_t i = 0; i < request.chains.size(); ++i) {
    const ChainRequest& chain = request.chains[i];
    if (chain.name.empty()) return make_error("chain " + std::to_string(i), "empty name");
    const std::string place = "chain \"" + chain.name + "\"";
    if (!seen.insert(chain.name).second) return make_error(place, "listed twice");
    if (chain.shards == 0) return make_error(place, "shards must be at least 1");
  }
  seen.clear();
  for (size_t i = 0; i < request.pools.size(); ++i) {
    const PoolRequest& pool = request.pools[i];
    if (pool.compute_type.empty()) return make_error("pool " + std::to_string(i), "empty compute type");
    const std::string place = "pool \"" + pool.compute_type + "\"";
    if (!seen.insert(pool.compute_type).second) return make_error(place, "listed twice");
    if (pool.threads_per_node == 0) return make_error(place, "threads_per_node must be at least 1");
  }
  const std::pair<const char*, const TileClassRequest*> classes[] = {
      {"shard", &request.shard},       {"scheduler", &request.scheduler}, {"persist", &request.persist},
      {"balancer", &request.balancer}, {"timer", &request.timer}};
  for (const auto& [name, tile_class] : classes) {
    if (Result<void> checked = check_tile_class(name, *tile_class); !checked) return checked;
  }
  for (size_t i = 0; i < request.extra_tiles.size(); ++i) {
    const ExtraTileRequest& extra = request.extra_tiles[i];
    if (extra.name.empty()) return make_error("extra tile " + std::to_string(i), "empty name");
    const std::string place = "extra tile \"" + extra.name + "\"";
    if (extra.kind.empty()) return make_error(place, "empty kind");
    if (Result<void> checked = check_tile_class(place, extra.tile_class); !checked) return checked;
  }
  return {};
}

// Splits every node with cores into engine cores and (the last) compute cores.
Result<void> split_nodes(Planner& planner) {
  const uint32_t compute = planner.request.compute_cores_per_node;
  for (const NumaNode& node : planner.topology.nodes()) {
    const uint32_t core_count = static_cast<uint32_t>(node.cores.size());
    if (core_count == 0) {
      planner.notes.push_back("node " + std::to_string(node.index) +
                              " has no cores (memory only): nothing is placed on it");
      continue;
    }
    if (compute >= core_count) {
      return make_error("node " + std::to_string(node.index),
                        "compute_cores_per_node " + std::to_string(compute) +
                            " leaves no engine core (the node has " + std::to_string(core_count) +
                            " cores); set compute_cores_per_node below " + std::to_string(core_count));
    }
    NodeState state;
    state.node = &node;
    for (uint32_t i = 0; i < core_count; ++i) {
      (i < core_count - compute ? state.engine_cores : state.compute_cores).push_back(&node.cores[i]);
    }
    planner.nodes.push_back(std::move(state));
  }
  assert(!planner.nodes.empty());  // hwloc gives every core a node, and a topology has a core
  return {};
}

Tile make_tile(std::string name, std::string kind, const TileClassRequest& tile_class, Role role,
               std::string chain = "") {
  return Tile{.planned = PlannedTile{.name = std::move(name),
                                     .kind = std::move(kind),
                                     .chain = std::move(chain),
                                     .weight = tile_class.weight,
                                     .busy_poll = tile_class.busy_poll},
              .role = role};
}

// A light chain's shards: never busy-polling, weight 1.
constexpr TileClassRequest light_shard_class{.busy_poll = false, .weight = 1};

const TileClassRequest& shard_class(const PlanRequest& request, const ChainRequest& chain) {
  return chain.light ? light_shard_class : request.shard;
}

// All tiles in canonical order. Returns the index of each chain's first shard.
std::vector<size_t> build_tiles(Planner& planner) {
  const PlanRequest& request = planner.request;
  for (const NodeState& state : planner.nodes) {
    planner.tiles.push_back(make_tile("scheduler." + std::to_string(state.node->index), "scheduler",
                                      request.scheduler, Role::service));
  }
  planner.tiles.push_back(make_tile("persist", "persist", request.persist, Role::service));
  planner.tiles.push_back(make_tile("balancer", "balancer", request.balancer, Role::light));
  planner.tiles.push_back(make_tile("timer", "timer", request.timer, Role::light));
  for (const ExtraTileRequest& extra : request.extra_tiles) {
    planner.tiles.push_back(make_tile(extra.name, extra.kind, extra.tile_class, Role::service));
  }
  std::vector<size_t> first_shard;
  for (const ChainRequest& chain : request.chains) {
    first_shard.push_back(planner.tiles.size());
    for (uint32_t i = 0; i < chain.shards; ++i) {
      planner.tiles.push_back(make_tile("shard." + chain.name + "." + std::to_string(i), "shard",
                                        shard_class(request, chain),
                                        chain.light ? Role::light : Role::chain_work, chain.name));
    }
  }
  return first_shard;
}

void assign(Planner& planner, size_t tile_index, uint32_t node) {
  Tile& tile = planner.tiles[tile_index];
  assert(tile.node == kUnplaced);
  tile.node = node;
  NodeState& state = planner.nodes[node];
  if (tile.planned.busy_poll) {
    ++state.busy_tiles;
  } else {
    ++state.shared_tiles;
    state.shared_weight += tile.planned.weight;
  }
}

// Whether node a is a better home than node b for `count` tiles of one class with total
// weight `weight`: busy-polling tiles want the most free cores, non-busy tiles the lowest
// weight per shared core afterwards. Ties go to the lower node (deterministic).
bool better(const NodeState& a, const NodeState& b, bool busy_poll, uint64_t weight) {
  if (!busy_poll) {
    const int64_t shared_a = a.engine_count() - a.busy_tiles;
    const int64_t shared_b = b.engine_count() - b.busy_tiles;
    if (shared_a > 0 && shared_b > 0) {
      const uint64_t load_a = (a.shared_weight + weight) * static_cast<uint64_t>(shared_b);
      const uint64_t load_b = (b.shared_weight + weight) * static_cast<uint64_t>(shared_a);
      if (load_a != load_b) return load_a < load_b;
    }
  }
  if (a.free_cores() != b.free_cores()) return a.free_cores() > b.free_cores();
  return a.node->index < b.node->index;
}

// The best node where `count` tiles of the class fit, or kUnplaced if none.
uint32_t best_fitting_node(const Planner& planner, bool busy_poll, uint32_t count, uint64_t weight) {
  uint32_t best = kUnplaced;
  for (uint32_t i = 0; i < planner.nodes.size(); ++i) {
    if (!planner.nodes[i].fits(busy_poll, count)) continue;
    if (best == kUnplaced || better(planner.nodes[i], planner.nodes[best], busy_poll, weight)) best = i;
  }
  return best;
}

// Singletons and extra tiles: node 0 if they fit there, else the best node that has room,
// else node 0 anyway (check_capacity then reports the overload).
void place_preferring_first_node(Planner& planner, size_t tile_index) {
  const PlannedTile& tile = planner.tiles[tile_index].planned;
  uint32_t node = 0;
  if (!planner.nodes[0].fits(tile.busy_poll, 1)) {
    const uint32_t best = best_fitting_node(planner, tile.busy_poll, 1, tile.weight);
    if (best != kUnplaced) {
      node = best;
      planner.notes.push_back(tile.name + ": " + node_name(planner.nodes[0]) + " is full, placed on " +
                              node_name(planner.nodes[best]));
    }
  }
  assign(planner, tile_index, node);
}

// A busy-polling chain that fits on no single node: fill the nodes with the most free
// cores first, so the chain touches as few nodes as possible.
void split_chain(Planner& planner, const ChainRequest& chain, size_t first_shard) {
  int64_t most_free = 0;
  for (const NodeState& state : planner.nodes) most_free = std::max(most_free, state.free_cores());
  std::string parts;
  uint32_t next = 0;
  while (next < chain.shards) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < planner.nodes.size(); ++i) {
      if (better(planner.nodes[i], planner.nodes[best], true, 0)) best = i;
    }
    const int64_t free_cores = planner.nodes[best].free_cores();
    // With no free core anywhere the rest overload the best node; check_capacity reports it.
    const uint32_t take = free_cores <= 0 ? chain.shards - next
                                          : static_cast<uint32_t>(std::min<int64_t>(free_cores, chain.shards - next));
    for (uint32_t i = 0; i < take; ++i) assign(planner, first_shard + next + i, best);
    next += take;
    parts += (parts.empty() ? "" : ", ") + node_name(planner.nodes[best]) + " (" + std::to_string(take) + ")";
  }
  planner.notes.push_back("chain \"" + chain.name + "\": " + std::to_string(chain.shards) +
                          " busy-polling shards fit on no single node (at most " + std::to_string(most_free) +
                          " free engine cores on one node); split over " + parts);
}

// Chains, largest first (stable, so equal chains keep request order), each on one node.
void place_chains(Planner& planner, const std::vector<size_t>& first_shard) {
  const std::vector<ChainRequest>& chains = planner.request.chains;
  std::vector<size_t> order(chains.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return chains[a].shards > chains[b].shards; });
  for (size_t chain_index : order) {
    const ChainRequest& chain = chains[chain_index];
    const TileClassRequest& shard = shard_class(planner.request, chain);
    const uint64_t weight = uint64_t{chain.shards} * shard.weight;
    // A light chain joins the balancer and the timer on the first node when it fits there.
    uint32_t node = chain.light && planner.nodes[0].fits(shard.busy_poll, chain.shards)
                        ? 0
                        : best_fitting_node(planner, shard.busy_poll, chain.shards, weight);
    if (node == kUnplaced && shard.busy_poll) {
      split_chain(planner, chain, first_shard[chain_index]);
      continue;
    }
    if (node == kUnplaced) node = 0;  // no node has a shared core left; check_capacity reports it
    for (uint32_t i = 0; i < chain.shards; ++i) assign(planner, first_shard[chain_index] + i, node);
  }
}

// Rule 7: every node must have a core per busy-polling tile plus one shared core if it
// has non-busy tiles.
Result<void> check_capacity(const Planner& planner) {
  for (const NodeState& state : planner.nodes) {
    const int64_t needed = state.busy_tiles + (state.shared_tiles > 0 ? 1 : 0);
    if (needed <= state.engine_count()) continue;
    std::string reason = std::to_string(state.busy_tiles) + " busy-polling tiles";
    if (state.shared_tiles > 0) reason += " + " + std::to_string(state.shared_tiles) + " non-busy tiles";
    reason += " need " + std::to_string(needed) + " engine cores (1 per busy-polling tile";
    if (state.shared_tiles > 0) reason += ", 1 shared";
    reason += ") but the node has " + std::to_string(state.engine_count()) + " (" +
              std::to_string(state.node->cores.size()) + " cores - " +
              std::to_string(state.compute_cores.size()) +
              " compute cores); make some tiles non-busy, lower compute_cores_per_node or run fewer shards";
    return make_error(node_name(state), reason);
  }
  return {};
}

// How many of `count` shared cores (>= 2) the service tiles get when they are kept apart
// from the client shards: their share of the two groups' weight, rounded, but no more
// cores than they have tiles, none the shards could not fill, and at least one each.
// With a core for every tile of both groups, each tile gets one.
size_t service_core_count(size_t count, size_t service_tiles, uint64_t service_weight, size_t work_tiles,
                          uint64_t work_weight) {
  if (count >= service_tiles + work_tiles) return service_tiles;
  const uint64_t total = service_weight + work_weight;
  const uint64_t rounded = (2 * count * service_weight + total) / (2 * total);  // count × share, rounded half up
  const size_t low = count > work_tiles ? count - work_tiles : 1;  // the shards fill the rest
  const size_t high = std::min(service_tiles, count - 1);
  return std::clamp(static_cast<size_t>(rounded), low, high);
}

// The node's non-busy tiles (heaviest first, ties in canonical order) onto its shared
// cores. A client chain's shard and the service tiles are stages of one pipeline (gateway
// → shard → scheduler → pool → shard → persist): on cores of their own the stages run at
// once, on one core they take turns and each turn refills the core's caches. So with two
// or more shared cores the services get the first service_core_count of them and the
// shards the rest, each group heaviest first onto its least-loaded core. On 2 cores with
// two working shards, `keel bench tasks` ran 1.94 M tasks/s (median of six) this way and
// 1.51 with a shard and half the services on each core (perf/RESULTS.md, 2026-11-26,
// morning). The light tiles then go onto the shards' cores, least-loaded first: the
// balancer counts only shard demand on the cores that hold shards, so a light shard on
// the services' core would let it move client shards there. Otherwise (one shared core,
// or one group empty) every tile goes onto the least-loaded core, the light ones last.
void pack_shared(const std::vector<const Tile*>& shared, std::vector<PlannedCore>& shared_cores) {
  const size_t count = shared_cores.size();
  std::vector<uint64_t> loads(count, 0);
  // Each tile, in the list's order, onto the least-loaded of shared cores [begin, end).
  const auto pack = [&](const std::vector<const Tile*>& tiles, size_t begin, size_t end) {
    for (const Tile* tile : tiles) {
      const auto lightest = std::min_element(loads.begin() + static_cast<ptrdiff_t>(begin),
                                             loads.begin() + static_cast<ptrdiff_t>(end));
      const size_t index = static_cast<size_t>(lightest - loads.begin());
      loads[index] += tile->planned.weight;
      shared_cores[index].tiles.push_back(tile->planned);
    }
  };
  std::vector<const Tile*> heavy, work, services, light;
  uint64_t work_weight = 0, service_weight = 0;
  for (const Tile* tile : shared) {
    if (tile->role == Role::light) {
      light.push_back(tile);
      continue;
    }
    heavy.push_back(tile);
    if (tile->role == Role::chain_work) {
      work.push_back(tile);
      work_weight += tile->planned.weight;
    } else {
      services.push_back(tile);
      service_weight += tile->planned.weight;
    }
  }
  if (count < 2 || work.empty() || services.empty()) {
    pack(heavy, 0, count);
    pack(light, 0, count);
    return;
  }
  const size_t service_cores = service_core_count(count, services.size(), service_weight, work.size(), work_weight);
  pack(services, 0, service_cores);
  pack(work, service_cores, count);
  pack(light, service_cores, count);
}

// Busy-polling tiles take the node's first engine cores one each; non-busy tiles share
// the remaining (shared) engine cores as pack_shared places them.
void assign_cores(Planner& planner, uint32_t node, std::vector<PlannedCore>& cores) {
  const NodeState& state = planner.nodes[node];
  const auto planned_core = [&](const Core* core, bool busy_poll) {
    return PlannedCore{.core_index = core->index,
                       .node = state.node->index,
                       .pu_os_index = core->pu_os_indexes.front(),
                       .busy_poll = busy_poll,
                       .tiles = {},
                       .node_os_index = state.node->os_index};
  };
  std::vector<const Tile*> shared;
  size_t next_engine_core = 0;
  for (const Tile& tile : planner.tiles) {
    if (tile.node != node) continue;
    if (!tile.planned.busy_poll) {
      shared.push_back(&tile);
      continue;
    }
    PlannedCore core = planned_core(state.engine_cores[next_engine_core++], true);
    core.tiles.push_back(tile.planned);
    cores.push_back(std::move(core));
  }
  std::stable_sort(shared.begin(), shared.end(),
                   [](const Tile* a, const Tile* b) { return a->planned.weight > b->planned.weight; });
  std::vector<PlannedCore> shared_cores;
  for (size_t i = next_engine_core; i < state.engine_cores.size(); ++i) {
    shared_cores.push_back(planned_core(state.engine_cores[i], false));
  }
  assert(shared.empty() || !shared_cores.empty());  // check_capacity guarantees a shared core
  pack_shared(shared, shared_cores);
  size_t idle = 0;
  for (PlannedCore& core : shared_cores) {
    if (core.tiles.empty()) {
      ++idle;
    } else {
      cores.push_back(std::move(core));
    }
  }
  if (idle > 0) {
    planner.notes.push_back(node_name(state) + ": " + std::to_string(idle) + " of " +
                            std::to_string(state.engine_cores.size()) + " engine cores host no tile");
  }
}

std::vector<uint32_t> pus_of(const std::vector<const Core*>& cores) {
  std::vector<uint32_t> pus;
  for (const Core* core : cores) pus.insert(pus.end(), core->pu_os_indexes.begin(), core->pu_os_indexes.end());
  return pus;
}

void place_pools(Planner& planner, Plan& plan) {
  const bool on_engine_cores = planner.request.compute_cores_per_node == 0;
  if (on_engine_cores && !planner.request.pools.empty()) {
    planner.notes.push_back("compute_cores_per_node is 0: pools share the engine cores' PUs");
  }
  if (!on_engine_cores && planner.request.pools.empty()) {
    planner.notes.push_back(std::to_string(planner.request.compute_cores_per_node) +
                            " compute cores per node are reserved but no pool is requested");
  }
  for (const PoolRequest& pool : planner.request.pools) {
    for (const NodeState& state : planner.nodes) {
      std::vector<uint32_t> pus = pus_of(on_engine_cores ? state.engine_cores : state.compute_cores);
      if (pool.threads_per_node > pus.size()) {
        planner.notes.push_back("pool \"" + pool.compute_type + "\" on " + node_name(state) + ": " +
                                std::to_string(pool.threads_per_node) + " threads on " +
                                std::to_string(pus.size()) + " PUs (oversubscribed)");
      }
      plan.pools.push_back(PlannedPool{.compute_type = pool.compute_type,
                                       .node = state.node->index,
                                       .pu_os_indexes = std::move(pus),
                                       .threads = pool.threads_per_node,
                                       .node_os_index = state.node->os_index});
    }
  }
}

// "0-3,8,10-11" for {0,1,2,3,8,10,11}.
std::string format_pu_list(std::vector<uint32_t> pus) {
  std::sort(pus.begin(), pus.end());
  std::string text;
  for (size_t i = 0; i < pus.size();) {
    size_t end = i;
    while (end + 1 < pus.size() && pus[end + 1] == pus[end] + 1) ++end;
    if (!text.empty()) text += ",";
    text += std::to_string(pus[i]);
    if (end > i) text += "-" + std::to_string(pus[end]);
    i = end + 1;
  }
  return text;
}

}  // namespace

Result<Plan> make_plan(const Topology& topology, const PlanRequest& request) {
  if (Result<void> checked = check_request(request); !checked) return checked.error();
  Planner planner{.topology = topology, .request = request, .nodes = {}, .tiles = {}, .notes = {}};
  if (Result<void> split = split_nodes(planner); !split) return split.error();
  const std::vector<size_t> first_shard = build_tiles(planner);

  std::set<std::string_view> names;
  for (const Tile& tile : planner.tiles) {
    if (!names.insert(tile.planned.name).second) {
      return make_error("tile \"" + tile.planned.name + "\"", "name used twice");
    }
  }

  const size_t scheduler_count = planner.nodes.size();
  for (uint32_t i = 0; i < scheduler_count; ++i) assign(planner, i, i);
  const size_t singleton_end = scheduler_count + 3 + request.extra_tiles.size();
  for (size_t i = scheduler_count; i < singleton_end; ++i) place_preferring_first_node(planner, i);
  place_chains(planner, first_shard);
  if (Result<void> capacity = check_capacity(planner); !capacity) return capacity.error();

  Plan plan{.topology_description = topology.describe(),
            .bindable = topology.is_host(),
            .cores = {},
            .pools = {},
            .notes = {}};
  for (uint32_t node = 0; node < planner.nodes.size(); ++node) assign_cores(planner, node, plan.cores);
  std::sort(plan.cores.begin(), plan.cores.end(),
            [](const PlannedCore& a, const PlannedCore& b) { return a.core_index < b.core_index; });
  place_pools(planner, plan);
  plan.notes = std::move(planner.notes);
  return plan;
}

std::string format_plan_table(const Plan& plan) {
  std::string text = "plan for " + plan.topology_description +
                     (plan.bindable ? "" : " (not the host: not bindable)") + "\n";
  char line[160];
  std::snprintf(line, sizeof line, "%6s %5s %5s  %-7s %s\n", "core", "node", "PU", "mode", "tiles");
  text += line;
  for (const PlannedCore& core : plan.cores) {
    std::string tiles;
    for (const PlannedTile& tile : core.tiles) {
      tiles += (tiles.empty() ? "" : ", ") + tile.name + " (weight " + std::to_string(tile.weight) + ")";
    }
    std::snprintf(line, sizeof line, "%6u %5u %5u  %-7s ", core.core_index, core.node, core.pu_os_index,
                  core.busy_poll ? "busy" : "shared");
    text += line + tiles + "\n";
  }
  if (!plan.pools.empty()) {
    std::snprintf(line, sizeof line, "%-20s %5s %7s  %s\n", "pool", "node", "threads", "PUs");
    text += line;
    for (const PlannedPool& pool : plan.pools) {
      std::snprintf(line, sizeof line, "%-20s %5u %7u  ", pool.compute_type.c_str(), pool.node, pool.threads);
      text += line + format_pu_list(pool.pu_os_indexes) + "\n";
    }
  }
  for (const std::string& note : plan.notes) text += "note: " + note + "\n";
  return text;
}

std::string format_plan_json(const Plan& plan) {
  nlohmann::json cores = nlohmann::json::array();
  for (const PlannedCore& core : plan.cores) {
    nlohmann::json tiles = nlohmann::json::array();
    for (const PlannedTile& tile : core.tiles) {
      tiles.push_back({{"name", tile.name},
                       {"kind", tile.kind},
                       {"chain", tile.chain},
                       {"weight", tile.weight},
                       {"busy_poll", tile.busy_poll}});
    }
    cores.push_back({{"core", core.core_index},
                     {"node", core.node},
                     {"node_os_index", core.node_os_index},
                     {"pu", core.pu_os_index},
                     {"busy_poll", core.busy_poll},
                     {"tiles", std::move(tiles)}});
  }
  nlohmann::json pools = nlohmann::json::array();
  for (const PlannedPool& pool : plan.pools) {
    pools.push_back({{"compute_type", pool.compute_type},
                     {"node", pool.node},
                     {"node_os_index", pool.node_os_index},
                     {"pus", pool.pu_os_indexes},
                     {"threads", pool.threads}});
  }
  nlohmann::json object = {{"topology", plan.topology_description},
                           {"bindable", plan.bindable},
                           {"cores", std::move(cores)},
                           {"pools", std::move(pools)},
                           {"notes", plan.notes}};
  return object.dump();
}

const PlannedCore* find_tile(const Plan& plan, std::string_view tile_name) {
  for (const PlannedCore& core : plan.cores) {
    for (const PlannedTile& tile : core.tiles) {
      if (tile.name == tile_name) return &core;
    }
  }
  return nullptr;
}

}  // namespace keel::numa
