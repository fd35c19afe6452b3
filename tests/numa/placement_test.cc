// Tests for numa/placement.h, rule by rule, on synthetic topologies.
#include "numa/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>

namespace keel::numa {
namespace {

Topology load(std::string_view description) {
  Result<Topology> topology = Topology::load_synthetic(description);
  EXPECT_TRUE(topology) << topology.error().message;
  return std::move(*topology);
}

const Core* find_core(const Topology& topology, uint32_t core_index) {
  for (const NumaNode& node : topology.nodes()) {
    for (const Core& core : node.cores) {
      if (core.index == core_index) return &core;
    }
  }
  return nullptr;
}

bool has_note(const Plan& plan, std::string_view text) {
  return std::any_of(plan.notes.begin(), plan.notes.end(),
                     [&](const std::string& note) { return note.find(text) != std::string::npos; });
}

// Engine cores of a node are all but its last compute_cores_per_node cores.
std::vector<const Core*> engine_cores(const NumaNode& node, uint32_t compute) {
  std::vector<const Core*> cores;
  for (size_t i = 0; i + compute < node.cores.size(); ++i) cores.push_back(&node.cores[i]);
  return cores;
}

// Every rule that holds for every feasible plan.
void check_plan(const Topology& topology, const PlanRequest& request, const Plan& plan) {
  const uint32_t compute = request.compute_cores_per_node;
  EXPECT_EQ(plan.bindable, topology.is_host());
  EXPECT_EQ(plan.topology_description, topology.describe());

  // Every tile placed exactly once.
  std::map<std::string, int> expected;
  uint32_t first_node_with_cores = UINT32_MAX;
  for (const NumaNode& node : topology.nodes()) {
    if (node.cores.empty()) continue;
    first_node_with_cores = std::min(first_node_with_cores, node.index);
    expected["scheduler." + std::to_string(node.index)] = 0;
  }
  for (const char* name : {"persist", "balancer", "timer"}) expected[name] = 0;
  for (const ExtraTileRequest& extra : request.extra_tiles) expected[extra.name] = 0;
  for (const ChainRequest& chain : request.chains) {
    for (uint32_t i = 0; i < chain.shards; ++i) expected["shard." + chain.name + "." + std::to_string(i)] = 0;
  }
  std::set<uint32_t> used_cores;
  std::map<uint32_t, std::vector<const PlannedCore*>> shared_by_node;
  std::map<uint32_t, uint32_t> busy_by_node;
  for (const PlannedCore& core : plan.cores) {
    EXPECT_TRUE(used_cores.insert(core.core_index).second) << "core " << core.core_index << " planned twice";
    const Core* topology_core = find_core(topology, core.core_index);
    ASSERT_NE(topology_core, nullptr);
    EXPECT_EQ(core.node, topology_core->node);
    EXPECT_EQ(core.node_os_index, topology.nodes()[core.node].os_index);
    EXPECT_EQ(core.pu_os_index, topology_core->pu_os_indexes.front());
    // Rule 4: compute cores host no tile.
    const std::vector<const Core*> engine = engine_cores(topology.nodes()[core.node], compute);
    EXPECT_NE(std::find(engine.begin(), engine.end(), topology_core), engine.end())
        << "core " << core.core_index << " is a compute core";
    EXPECT_FALSE(core.tiles.empty());
    // Rule 5: a busy core runs exactly one busy tile; rule 6: a shared core only non-busy ones.
    if (core.busy_poll) {
      ASSERT_EQ(core.tiles.size(), 1u) << "busy core " << core.core_index;
      EXPECT_TRUE(core.tiles[0].busy_poll);
      ++busy_by_node[core.node];
    } else {
      shared_by_node[core.node].push_back(&core);
    }
    for (const PlannedTile& tile : core.tiles) {
      if (!core.busy_poll) { EXPECT_FALSE(tile.busy_poll) << tile.name; }
      ASSERT_TRUE(expected.count(tile.name)) << "unexpected tile " << tile.name;
      ++expected[tile.name];
      // Rule 1: scheduler.<node> on its node.
      if (tile.kind == "scheduler") { EXPECT_EQ(tile.name, "scheduler." + std::to_string(core.node)); }
      // Rule 2: singletons and extra tiles on node 0 unless a note says it was full.
      if (tile.kind != "scheduler" && tile.kind != "shard" && !has_note(plan, tile.name + ": ")) {
        EXPECT_EQ(core.node, first_node_with_cores) << tile.name;
      }
    }
  }
  for (const auto& [name, count] : expected) EXPECT_EQ(count, 1) << name;

  // Rule 3: a chain's shards stay on one node unless a note says the chain was split.
  for (const ChainRequest& chain : request.chains) {
    std::set<uint32_t> nodes;
    for (uint32_t i = 0; i < chain.shards; ++i) {
      const PlannedCore* core = find_tile(plan, "shard." + chain.name + "." + std::to_string(i));
      ASSERT_NE(core, nullptr);
      for (const PlannedTile& tile : core->tiles) {
        if (tile.kind == "shard" && tile.name.rfind("shard." + chain.name + ".", 0) == 0) {
          EXPECT_EQ(tile.chain, chain.name) << tile.name;
        }
      }
      nodes.insert(core->node);
    }
    if (!has_note(plan, "chain \"" + chain.name + "\"")) { EXPECT_EQ(nodes.size(), 1u) << chain.name; }
  }

  // Rule 6: on a node's shared cores, with two or more of them and both client shards and
  // service tiles there, the services' cores hold services only, and as many cores as
  // their weight asks for (rounded; at least one, leaving one, no more than their tiles,
  // none the shards could not fill; one a tile when there are cores for every tile). Each
  // group, and without a split all but the light tiles together, is balanced: its loads
  // over the cores it may use (idle ones count 0) differ by at most its heaviest tile's.
  std::set<std::string> light_chains;
  for (const ChainRequest& chain : request.chains) {
    if (chain.light) light_chains.insert(chain.name);
  }
  // 'w': a client chain's shard, 'l': a light tile, 's': a service tile.
  const auto role_of = [&](const PlannedTile& tile) {
    if (tile.kind == "balancer" || tile.kind == "timer") return 'l';
    if (tile.kind == "shard") return light_chains.count(tile.chain) ? 'l' : 'w';
    return 's';
  };
  const auto check_balanced = [](const std::vector<uint64_t>& loads, uint64_t heaviest, const std::string& what) {
    if (loads.empty()) return;
    auto [low, high] = std::minmax_element(loads.begin(), loads.end());
    EXPECT_LE(*high - *low, heaviest) << what;
  };
  for (const auto& [node, cores] : shared_by_node) {
    const size_t shared_count = engine_cores(topology.nodes()[node], compute).size() - busy_by_node[node];
    std::map<char, uint64_t> weight, heaviest, tiles;  // by role
    for (const PlannedCore* core : cores) {
      for (const PlannedTile& tile : core->tiles) {
        const char role = role_of(tile);
        weight[role] += tile.weight;
        heaviest[role] = std::max<uint64_t>(heaviest[role], tile.weight);
        ++tiles[role];
      }
    }
    const bool split = shared_count >= 2 && weight['w'] > 0 && weight['s'] > 0;
    for (const PlannedCore* core : cores) {
      std::set<char> roles;
      for (const PlannedTile& tile : core->tiles) roles.insert(role_of(tile));
      EXPECT_FALSE(split && roles.count('s') && roles.size() > 1)
          << "node " << node << ": core " << core->core_index << " holds services beside other tiles";
    }
    const auto loads_of = [&](std::string_view roles, size_t slots) {
      std::vector<uint64_t> loads;
      for (const PlannedCore* core : cores) {
        uint64_t load = 0;
        for (const PlannedTile& tile : core->tiles) {
          if (roles.find(role_of(tile)) != std::string_view::npos) load += tile.weight;
        }
        if (load > 0) loads.push_back(load);
      }
      EXPECT_LE(loads.size(), slots) << "node " << node << " roles " << roles;
      loads.resize(std::max(loads.size(), slots), 0);
      return loads;
    };
    if (split) {
      size_t service_cores = tiles['s'];
      if (shared_count < tiles['s'] + tiles['w']) {
        const double share = double(shared_count) * double(weight['s']) / double(weight['s'] + weight['w']);
        const size_t low = shared_count > tiles['w'] ? shared_count - tiles['w'] : 1;
        service_cores = std::clamp<size_t>(size_t(std::lround(share)), low, std::min<size_t>(tiles['s'], shared_count - 1));
      }
      check_balanced(loads_of("s", service_cores), heaviest['s'], "services on node " + std::to_string(node));
      check_balanced(loads_of("w", shared_count - service_cores), heaviest['w'],
                     "shards on node " + std::to_string(node));
    } else {
      check_balanced(loads_of("ws", shared_count), std::max(heaviest['w'], heaviest['s']),
                     "node " + std::to_string(node));
    }
  }
  // A light chain's shards never busy-poll and weigh 1.
  for (const PlannedCore& core : plan.cores) {
    for (const PlannedTile& tile : core.tiles) {
      if (tile.kind != "shard" || !light_chains.count(tile.chain)) continue;
      EXPECT_FALSE(tile.busy_poll) << tile.name;
      EXPECT_EQ(tile.weight, 1u) << tile.name;
    }
  }

  // Rule 8: one pool per compute type and node, on the compute (or engine) cores' PUs.
  size_t pool_index = 0;
  for (const PoolRequest& pool : request.pools) {
    for (const NumaNode& node : topology.nodes()) {
      if (node.cores.empty()) continue;
      ASSERT_LT(pool_index, plan.pools.size());
      const PlannedPool& planned = plan.pools[pool_index++];
      EXPECT_EQ(planned.compute_type, pool.compute_type);
      EXPECT_EQ(planned.node, node.index);
      EXPECT_EQ(planned.node_os_index, node.os_index);
      EXPECT_EQ(planned.threads, pool.threads_per_node);
      std::vector<uint32_t> pus;
      for (size_t i = 0; i < node.cores.size(); ++i) {
        const bool is_compute = i + compute >= node.cores.size();
        if (is_compute == (compute > 0)) {
          pus.insert(pus.end(), node.cores[i].pu_os_indexes.begin(), node.cores[i].pu_os_indexes.end());
        }
      }
      EXPECT_EQ(planned.pu_os_indexes, pus);
    }
  }
  EXPECT_EQ(pool_index, plan.pools.size());
  if (compute == 0 && !request.pools.empty()) { EXPECT_TRUE(has_note(plan, "pools share the engine cores")); }
}

// (a) A 2-core laptop: everything shares the two cores.
TEST(Placement, LaptopSharesBothCores) {
  Topology topology = load("numa:1 core:2 pu:1");
  PlanRequest request;
  request.chains = {{"a", 1}, {"b", 1}};
  request.pools = {{"hash", 2}};
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  check_plan(topology, request, *plan);
  ASSERT_EQ(plan->cores.size(), 2u);
  EXPECT_FALSE(plan->bindable);
  for (const PlannedCore& core : plan->cores) EXPECT_FALSE(core.busy_poll);
  // Weight 1 each: the scheduler and persist on one core, the shards and the light tiles
  // (balancer, timer) on the other.
  EXPECT_EQ(plan->cores[0].tiles.size(), 2u);
  EXPECT_EQ(find_tile(*plan, "persist"), &plan->cores[0]);
  EXPECT_EQ(plan->cores[1].tiles.size(), 4u);
  EXPECT_EQ(find_tile(*plan, "shard.b.0"), &plan->cores[1]);
  EXPECT_EQ(find_tile(*plan, "timer"), &plan->cores[1]);
  ASSERT_EQ(plan->pools.size(), 1u);
  EXPECT_EQ(plan->pools[0].pu_os_indexes, (std::vector<uint32_t>{0, 1}));
}

// The engine's default weights on 2 cores: the client chains' shards on one core, the
// services (scheduler, persist, gateway) on the other, the light tiles (balancer, timer,
// the system chain's shard) beside the shards, so the services' core holds no shard the
// balancer could move client shards beside.
TEST(Placement, LaptopKeepsShardsApartFromServices) {
  Topology topology = load("numa:1 core:2 pu:1");
  PlanRequest request;
  request.chains = {{"a", 1}, {"b", 1}, {"system", 1, true}};
  request.shard.weight = 4;
  request.scheduler.weight = 2;
  request.persist.weight = 2;
  request.extra_tiles = {{"gateway", "gateway", {.busy_poll = false, .weight = 2}}};
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  check_plan(topology, request, *plan);
  ASSERT_EQ(plan->cores.size(), 2u);
  const std::string table = format_plan_table(*plan);
  // Services 6, shards 8: 2 × 6 / 14 rounds to 1 service core.
  const PlannedCore* services = find_tile(*plan, "scheduler.0");
  const PlannedCore* shards = find_tile(*plan, "shard.a.0");
  ASSERT_NE(services, shards) << table;
  EXPECT_EQ(find_tile(*plan, "persist"), services) << table;
  EXPECT_EQ(find_tile(*plan, "gateway"), services) << table;
  EXPECT_EQ(find_tile(*plan, "shard.b.0"), shards) << table;
  EXPECT_EQ(find_tile(*plan, "balancer"), shards) << table;
  EXPECT_EQ(find_tile(*plan, "timer"), shards) << table;
  EXPECT_EQ(find_tile(*plan, "shard.system.0"), shards) << table;
  EXPECT_EQ(services->tiles.size(), 3u) << table;
  EXPECT_NE(table.find("shard.system.0 (weight 1)"), std::string::npos) << table;
}

// Busy-polling shards: a light chain's shard still shares a core, on node 0 beside the
// balancer and the timer, where a client chain's would have taken a core of its own.
TEST(Placement, ALightChainsShardSharesOnTheFirstNode) {
  Topology topology = load("numa:2 core:4 pu:1");
  PlanRequest request;
  request.chains = {{"a", 2}, {"system", 1, true}};
  request.shard.busy_poll = true;
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  check_plan(topology, request, *plan);
  const std::string table = format_plan_table(*plan);
  const PlannedCore* system = find_tile(*plan, "shard.system.0");
  ASSERT_NE(system, nullptr);
  EXPECT_EQ(system->node, 0u) << table;
  EXPECT_FALSE(system->busy_poll) << table;
  EXPECT_EQ(find_tile(*plan, "balancer")->node, 0u) << table;
  EXPECT_TRUE(find_tile(*plan, "shard.a.0")->busy_poll) << table;
}

// With more shared cores the services get the share their weight asks for.
TEST(Placement, ServicesGetSharedCoresInProportionToTheirWeight) {
  Topology topology = load("numa:1 core:5 pu:1");
  PlanRequest request;
  request.chains = {{"a", 2}};
  request.shard.weight = 4;  // shards 8
  request.scheduler.weight = 2;
  request.persist.weight = 2;
  for (const char* name : {"source", "relay", "sink"}) request.extra_tiles.push_back({name, "pipeline", {.weight = 2}});
  // Services 10 of 18 on 5 cores: 2.8 rounds to 3 service cores, 2 for the shards.
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  check_plan(topology, request, *plan);
  const std::string table = format_plan_table(*plan);
  std::set<const PlannedCore*> service_cores, shard_cores;
  for (const char* name : {"scheduler.0", "persist", "source", "relay", "sink"}) {
    service_cores.insert(find_tile(*plan, name));
  }
  for (const char* name : {"shard.a.0", "shard.a.1"}) shard_cores.insert(find_tile(*plan, name));
  EXPECT_EQ(service_cores.size(), 3u) << table;
  EXPECT_EQ(shard_cores.size(), 2u) << table;
  for (const PlannedCore* core : shard_cores) EXPECT_EQ(service_cores.count(core), 0u) << table;

  // A core for every tile of both groups: one each (the share by weight alone, 4 × 6 / 22,
  // would crowd the three services onto one core beside two idle ones).
  Topology four_cores = load("numa:1 core:4 pu:1");
  PlanRequest heavy_shard;
  heavy_shard.chains = {{"a", 1}};
  heavy_shard.shard.weight = 16;
  heavy_shard.scheduler.weight = 2;
  heavy_shard.persist.weight = 2;
  heavy_shard.extra_tiles = {{"gateway", "gateway", {.weight = 2}}};
  Result<Plan> spread = make_plan(four_cores, heavy_shard);
  ASSERT_TRUE(spread) << spread.error().message;
  check_plan(four_cores, heavy_shard, *spread);
  std::set<const PlannedCore*> spread_services;
  for (const char* name : {"scheduler.0", "persist", "gateway"}) spread_services.insert(find_tile(*spread, name));
  EXPECT_EQ(spread_services.size(), 3u) << format_plan_table(*spread);
  EXPECT_EQ(spread_services.count(find_tile(*spread, "shard.a.0")), 0u) << format_plan_table(*spread);

  // Half a core rounds up: 3 cores, services and shards of equal weight give 1.5 → 2.
  Topology three_cores = load("numa:1 core:3 pu:1");
  PlanRequest even;
  even.chains = {{"a", 2}};
  even.shard.weight = 2;
  even.scheduler.weight = 2;
  even.persist.weight = 2;
  Result<Plan> halves = make_plan(three_cores, even);
  ASSERT_TRUE(halves) << halves.error().message;
  check_plan(three_cores, even, *halves);
  EXPECT_NE(find_tile(*halves, "scheduler.0"), find_tile(*halves, "persist")) << format_plan_table(*halves);
  EXPECT_EQ(find_tile(*halves, "shard.a.0"), find_tile(*halves, "shard.a.1")) << format_plan_table(*halves);

  // More shards than cores: the share by weight decides (3 × 6 / 26 rounds to 1), and the
  // shards fill the other two.
  PlanRequest many_shards = heavy_shard;
  many_shards.chains = {{"a", 2}, {"b", 3}};
  many_shards.shard.weight = 4;
  Result<Plan> crowded = make_plan(three_cores, many_shards);
  ASSERT_TRUE(crowded) << crowded.error().message;
  check_plan(three_cores, many_shards, *crowded);
  const PlannedCore* crowded_services = find_tile(*crowded, "scheduler.0");
  EXPECT_EQ(find_tile(*crowded, "persist"), crowded_services) << format_plan_table(*crowded);
  EXPECT_EQ(find_tile(*crowded, "gateway"), crowded_services) << format_plan_table(*crowded);
  EXPECT_EQ(crowded_services->tiles.size(), 3u) << format_plan_table(*crowded);

  // One shared core: everything shares it.
  Topology one_core = load("numa:1 core:1 pu:1");
  Result<Plan> shared = make_plan(one_core, request);
  ASSERT_TRUE(shared) << shared.error().message;
  check_plan(one_core, request, *shared);
  ASSERT_EQ(shared->cores.size(), 1u);
  EXPECT_EQ(shared->cores[0].tiles.size(), 9u);
}

PlanRequest big_request() {
  PlanRequest request;
  for (int i = 0; i < 6; ++i) request.chains.push_back({"chain" + std::to_string(i), 4});
  for (const char* type : {"hash", "sign", "verify", "score", "render"}) request.pools.push_back({type, 16});
  request.shard.busy_poll = true;
  request.scheduler.busy_poll = true;
  request.persist.busy_poll = true;
  request.extra_tiles = {{"source", "pipeline", {}}, {"sink", "pipeline", {.busy_poll = true, .weight = 1}}};
  request.compute_cores_per_node = 16;
  return request;
}

// (b) 2 sockets × 4 nodes × 128 cores, 16 compute cores per node.
TEST(Placement, BigHostRuleByRule) {
  Topology topology = load("pack:2 numa:2 core:32 pu:2");
  const PlanRequest request = big_request();
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  check_plan(topology, request, *plan);

  for (uint32_t node = 0; node < 4; ++node) {
    const PlannedCore* scheduler = find_tile(*plan, "scheduler." + std::to_string(node));
    ASSERT_NE(scheduler, nullptr);
    EXPECT_EQ(scheduler->node, node);
    EXPECT_TRUE(scheduler->busy_poll);
  }
  std::map<uint32_t, int> chains_per_node;
  for (const ChainRequest& chain : request.chains) {
    const uint32_t node = find_tile(*plan, "shard." + chain.name + ".0")->node;
    ++chains_per_node[node];
    for (uint32_t i = 0; i < chain.shards; ++i) {
      const PlannedCore* core = find_tile(*plan, "shard." + chain.name + "." + std::to_string(i));
      EXPECT_EQ(core->node, node);
      EXPECT_TRUE(core->busy_poll);
    }
  }
  // 6 chains over 4 nodes: spread, at most 2 per node.
  EXPECT_EQ(chains_per_node.size(), 4u);
  for (const auto& [node, count] : chains_per_node) EXPECT_LE(count, 2) << node;

  // No two busy tiles share a core; a busy core's PU is its core's first and its sibling
  // PU is used by no engine thread.
  std::set<uint32_t> engine_pus;
  for (const PlannedCore& core : plan->cores) engine_pus.insert(core.pu_os_index);
  for (const PlannedCore& core : plan->cores) {
    if (!core.busy_poll) continue;
    EXPECT_EQ(core.tiles.size(), 1u);
    EXPECT_EQ(core.pu_os_index % 2, 0u);
    EXPECT_FALSE(engine_pus.count(core.pu_os_index + 1));
  }
  for (const char* name : {"persist", "balancer", "timer", "source", "sink"}) {
    EXPECT_EQ(find_tile(*plan, name)->node, 0u) << name;
  }

  // Pools: 5 types × 4 nodes, each on its node's last 16 cores (32 PUs).
  ASSERT_EQ(plan->pools.size(), 20u);
  for (const PlannedPool& pool : plan->pools) {
    ASSERT_EQ(pool.pu_os_indexes.size(), 32u);
    EXPECT_EQ(pool.pu_os_indexes.front(), pool.node * 64 + 32);
    EXPECT_EQ(pool.pu_os_indexes.back(), pool.node * 64 + 63);
    EXPECT_EQ(pool.threads, 16u);
  }
  const std::string table = format_plan_table(*plan);
  EXPECT_NE(table.find("scheduler.3 (weight 1)"), std::string::npos) << table;
  EXPECT_NE(table.find("32-63"), std::string::npos) << table;
}

// (c) More busy-polling tiles than cores: one exact, one-line error.
TEST(Placement, InfeasibleLayoutIsOneClearError) {
  Topology topology = load("numa:1 core:2 pu:1");
  PlanRequest request;
  request.chains = {{"a", 1}};
  request.shard.busy_poll = true;
  request.scheduler.busy_poll = true;
  request.persist.busy_poll = true;
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message,
            "node 0: 3 busy-polling tiles + 2 non-busy tiles need 4 engine cores (1 per busy-polling tile, "
            "1 shared) but the node has 2 (2 cores - 0 compute cores); make some tiles non-busy, lower "
            "compute_cores_per_node or run fewer shards");
}

TEST(Placement, TooManyBusyTilesOnANode) {
  Topology topology = load("pack:2 numa:2 core:32 pu:2");
  PlanRequest request = big_request();
  request.balancer.busy_poll = true;
  request.timer.busy_poll = true;
  request.extra_tiles[0].tile_class.busy_poll = true;
  request.chains = {{"wide", 64}};
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message.find('\n'), std::string::npos);
  EXPECT_NE(plan.error().message.find("busy-polling tiles need"), std::string::npos) << plan.error().message;
  EXPECT_NE(plan.error().message.find("(32 cores - 16 compute cores)"), std::string::npos) << plan.error().message;
}

// (d) compute_cores_per_node that leaves a node no engine core.
TEST(Placement, TooManyComputeCores) {
  Topology topology = load("pack:2 numa:2 core:32 pu:2");
  PlanRequest request = big_request();
  request.compute_cores_per_node = 32;
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message,
            "node 0: compute_cores_per_node 32 leaves no engine core (the node has 32 cores); set "
            "compute_cores_per_node below 32");
}

// (e) A chain too large for any node is split, with a note.
TEST(Placement, OversizedChainIsSplitWithANote) {
  // Node 0 keeps 1 core for the scheduler and 1 shared by persist, balancer and timer
  // (3 free); node 1 only its scheduler (4 free).
  Topology topology = load("numa:2 core:5 pu:1");
  PlanRequest request;
  request.chains = {{"big", 5}, {"small", 1}};
  request.shard.busy_poll = true;
  request.scheduler.busy_poll = true;
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  check_plan(topology, request, *plan);
  EXPECT_TRUE(has_note(*plan,
                       "chain \"big\": 5 busy-polling shards fit on no single node (at most 4 free engine cores "
                       "on one node); split over node 1 (4), node 0 (1)"))
      << format_plan_table(*plan);
  std::set<uint32_t> nodes;
  for (uint32_t i = 0; i < 5; ++i) nodes.insert(find_tile(*plan, "shard.big." + std::to_string(i))->node);
  EXPECT_EQ(nodes.size(), 2u);
  EXPECT_FALSE(has_note(*plan, "chain \"small\""));
}

// (f) Same input, same plan.
TEST(Placement, Deterministic) {
  const PlanRequest request = big_request();
  Topology first = load("pack:2 numa:2 core:32 pu:2");
  Topology second = load("pack:2 numa:2 core:32 pu:2");
  Result<Plan> a = make_plan(first, request);
  Result<Plan> b = make_plan(second, request);
  Result<Plan> c = make_plan(first, request);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(format_plan_json(*a), format_plan_json(*b));
  EXPECT_EQ(format_plan_json(*a), format_plan_json(*c));
  EXPECT_EQ(format_plan_table(*a), format_plan_table(*b));
}

TEST(Placement, JsonIsOneObject) {
  Topology topology = load("numa:1 core:2 pu:1");
  PlanRequest request;
  request.chains = {{"a", 2}};
  request.pools = {{"hash", 1}};
  Result<Plan> plan = make_plan(topology, request);
  ASSERT_TRUE(plan) << plan.error().message;
  const std::string text = format_plan_json(*plan);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  const nlohmann::json json = nlohmann::json::parse(text);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json["topology"], plan->topology_description);
  EXPECT_EQ(json["bindable"], false);
  EXPECT_EQ(json["cores"].size(), plan->cores.size());
  EXPECT_EQ(json["pools"][0]["pus"], nlohmann::json::array({0, 1}));
  EXPECT_EQ(find_tile(*plan, "nope"), nullptr);
}

TEST(Placement, BadRequestsAreErrors) {
  Topology topology = load("numa:1 core:2 pu:1");
  const auto error_of = [&](const PlanRequest& request) {
    Result<Plan> plan = make_plan(topology, request);
    return plan ? std::string("ok") : plan.error().message;
  };
  PlanRequest request;
  request.chains = {{"a", 0}};
  EXPECT_EQ(error_of(request), "chain \"a\": shards must be at least 1");
  request.chains = {{"a", 1}, {"a", 1}};
  EXPECT_EQ(error_of(request), "chain \"a\": listed twice");
  request.chains = {};
  request.pools = {{"hash", 0}};
  EXPECT_EQ(error_of(request), "pool \"hash\": threads_per_node must be at least 1");
  request.pools = {};
  request.shard.weight = 0;
  EXPECT_EQ(error_of(request), "shard: weight must be at least 1");
  request.shard.weight = 1;
  request.extra_tiles = {{"persist", "pipeline", {}}};
  EXPECT_EQ(error_of(request), "tile \"persist\": name used twice");
}

// Random topologies and requests: every plan made satisfies every rule; every refusal is
// one line naming a node.
TEST(Placement, RandomizedRequests) {
  const uint32_t seed = std::random_device{}();
  std::printf("placement randomized seed %u\n", seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random(seed);
  const auto pick = [&](uint32_t low, uint32_t high) {
    return std::uniform_int_distribution<uint32_t>(low, high)(random);
  };
  int feasible = 0;
  for (int round = 0; round < 200; ++round) {
    const std::string description = "numa:" + std::to_string(pick(1, 4)) + " core:" + std::to_string(pick(1, 12)) +
                                    " pu:" + std::to_string(pick(1, 2));
    SCOPED_TRACE(description);
    Topology topology = load(description);
    PlanRequest request;
    for (uint32_t i = 0, n = pick(0, 4); i < n; ++i) {
      request.chains.push_back({"c" + std::to_string(i), pick(1, 8), pick(0, 3) == 0});
    }
    for (uint32_t i = 0, n = pick(0, 3); i < n; ++i) {
      request.extra_tiles.push_back({"x" + std::to_string(i), "pipeline", {.busy_poll = pick(0, 2) == 0, .weight = pick(1, 5)}});
    }
    for (uint32_t i = 0, n = pick(0, 2); i < n; ++i) request.pools.push_back({"p" + std::to_string(i), pick(1, 4)});
    for (TileClassRequest* tile_class :
         {&request.shard, &request.scheduler, &request.persist, &request.balancer, &request.timer}) {
      *tile_class = {.busy_poll = pick(0, 2) == 0, .weight = pick(1, 5)};
    }
    request.compute_cores_per_node = pick(0, 3);
    Result<Plan> plan = make_plan(topology, request);
    if (!plan) {
      EXPECT_EQ(plan.error().message.rfind("node ", 0), 0u) << plan.error().message;
      EXPECT_EQ(plan.error().message.find('\n'), std::string::npos);
      continue;
    }
    ++feasible;
    check_plan(topology, request, *plan);
  }
  EXPECT_GT(feasible, 0);
}

}  // namespace
}  // namespace keel::numa
