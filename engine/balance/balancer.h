// keel::balance Balancer: the balancer tile's decisions, as a pure function of what it is
// given. Once per window the tile hands it the time and each chain's cumulative counters;
// it smooths every chain's committed-transaction rate and CPU cost per transaction,
// classifies chains heavy / medium / light with hysteresis, and sizes their CPU slices:
// cores of their own for heavy chains, deficit-round-robin weights on shared cores for the
// others, and a guaranteed minimum share for every shard.
//
//   BalancerSetup setup{.chains = {{"payments", 2}, {"settlement", 1}},
//                       .cores = {0, 1, 2},                       // where shard tiles may run
//                       .placement = {{0, 4}, {1, 4}, {0, 4}}};   // global shard -> {core, weight}
//   Result<Balancer> balancer = Balancer::create(config.balancer, setup);
//   if (!balancer) return balancer.error();
//   // every window_ms, on the balancer tile, with counters read from the segment:
//   BalanceDecision decision = balancer->step(now_ns, counters);  // one ChainCounters per chain
//   for (const TierChange& change : decision.tier_changes) record_system_transaction(change);
//   for (const ShardMove& move : decision.moves) move_shard_tile(move);       // at a safe point
//   for (const WeightChange& change : decision.weight_changes) set_weight(change);
//   show(balancer->status(0).tps_smoothed, to_string(balancer->status(0).tier));
//
// Pure logic: no threads, no clock reads, no shared memory, no I/O. The same knobs, setup
// and sequence of steps give the same decisions, bit for bit: every list is ordered by
// chain or shard index and every tie is broken by the lower index.
//
// Measuring. Each step's rate is the counters' growth over the real time since the last
// step, so a late window weighs as much as the time it covers; the rate is folded into an
// EWMA whose weight halves every half_life_ms (a window of length w moves the average by
// 1 - 2^(-w / half_life) of the way to the new rate: at the defaults, 50 %, then 75 %,
// 87.5 % of a step change). Cost per transaction is busy ns / committed transactions of
// the window, smoothed the same way; a window that committed nothing keeps the last cost.
// A counter smaller than at the last step was restarted (its process or tile restarted):
// its growth is taken as its new value, so no rate is ever negative.
//
// Tiers. The first measured window classifies every chain plainly (heavy from heavy_tps,
// medium from medium_tps). After that a chain is past its band when its smoothed rate is
// above the next tier's threshold × (1 + margin) or below its own tier's threshold ×
// (1 - margin); after windows_to_change consecutive windows past the band in one direction
// it moves to the tier the latest window's rate points at (one or more tiers). A heavy chain
// is also past its band downward when the window's own rate is below heavy_tps × (1 -
// margin), whatever the average says: the average of a surge far above the band takes
// log2(surge / band) half-lives to fall through it, and all that time the chain would hold
// cores it no longer uses. When such a window rate decides the step down, the average
// restarts from that rate, so the surge it still remembers cannot step the chain straight
// back up. A window in which the chain's blocks waited and none became durable (a stalled
// disk: commits count when durable) is not such a window: its rate says nothing of the
// chain's demand, and a stall of two windows would otherwise flap a steady heavy chain to
// light and back. (Only heavy: medium and light differ in weights, not in cores held.) A downgrade
// further waits until downgrade_interval_ms have passed since the chain's last tier change
// of either kind: at most one downgrade per interval, and a chain that just got cores keeps
// them that long. Noise smaller than the margin cannot move a steady chain back and forth:
// the smoothed rate stays within the noise of its level, and leaving a tier upward and
// downward need rates (1 + margin) / (1 - margin) apart. (A first classification, made
// from one noisy window, may take one correction.)
//
// Slices (only when knobs.enabled; else the placement given stays as it is).
//  - Heavy chains get dedicated cores: only their own shards run there, min(shards,
//    heavy_cores_max) each, and at least one core always stays shared. A core that also
//    runs tiles the balancer does not move (setup.cores_with_other_tiles: the persist tile,
//    the gateway, schedulers) is never dedicated: those tiles would stay there behind the
//    heavy chain's shards. So on a small host where the shards have one core (2 cores:
//    the plan puts the services on the other), heavy chains get weight, not cores. When the cores do
//    not go round, they are dealt one at a time to the heavy chains in order of demand
//    (smoothed tx/s × cost per tx, ties to the lower chain index), a chain that holds
//    dedicated cores counting its demand × (1 + margin) so that two close chains do not
//    swap cores on noise; a heavy chain dealt none shares like the others. Dedicated cores
//    are dealt again only when the set of heavy chains changes.
//  - Medium and light chains (and heavy ones without cores) share the other cores. A shard
//    that must leave a dedicated core goes to the shared core with the least estimated
//    demand. When cores are dealt (at the first classification, and whenever the set of
//    heavy chains changes) shards then move from the busiest shared core to the least
//    busy, each lowering the busier one's demand by at least 10 %, until the two are
//    within 1.25× of each other. Otherwise a shard moves only when the shared cores are
//    badly unbalanced: for 2 s in a row the busiest has carried at least twice the demand
//    of the least busy and at least a tenth of a core's, and a move would lower it by
//    10 %; they are then rebalanced the same way (balancer.cc says why these figures).
//  - On every core, each shard's DRR weight is its share of the demand of the shards on
//    that core (a chain's demand split evenly over its shards), at least min_share_percent
//    (when the core's shards can all have it; else equal shares), times weight_max,
//    rounded, from 1 to weight_max. A weight stays as it is while the new figure is within
//    max(0.75, 10 %) of it, so noise does not rewrite weights every window.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/config/perf_config.h"
#include "error/result.h"

namespace keel::balance {

// The [balancer] section of the perf config (engine/config/perf_config.h, perf/README.md).
// The balancer reads every knob but window_ms, which says how often the tile calls step.
using BalancerKnobs = config::BalancerSection;

// Ordered: light < medium < heavy.
enum class Tier : uint8_t { light, medium, heavy };

// "light", "medium", "heavy".
std::string_view to_string(Tier tier);
// The same for a tier as the segment and the system chain's records hold it (a number):
// "?" for a number that is no tier.
std::string_view tier_name(uint32_t tier);

// A chain as the config lists it. Global shard indexes number the chains' shards in config
// order: chain 0's shards first.
struct ChainSpec {
  std::string name;
  uint32_t shards = 1;
};

// Where a shard tile runs (a planned core index) and its DRR weight there.
struct ShardPlacement {
  uint32_t core = 0;
  uint32_t weight = 1;
  friend bool operator==(const ShardPlacement&, const ShardPlacement&) = default;
};

struct BalancerSetup {
  std::vector<ChainSpec> chains;           // in config order
  std::vector<uint32_t> cores;             // planned core indexes shard tiles may run on
  std::vector<ShardPlacement> placement;   // per global shard, as the placement plan put it
  // Of cores, those that also run tiles the balancer does not move (persist, gateway,
  // schedulers): they stay shared, never dedicated to a heavy chain.
  std::vector<uint32_t> cores_with_other_tiles;
};

// One chain's cumulative counters, as read from the segment: transactions committed and
// CPU time spent in its shard tiles. Never decreasing, except across a restart. And its
// log's progress: blocks made durable (its shards' durable heights summed) and blocks
// sealed but not yet durable at the time of reading.
struct ChainCounters {
  uint64_t committed_txs = 0;
  uint64_t busy_ns = 0;
  uint64_t durable_blocks = 0;
  uint64_t blocks_waiting = 0;
};

struct TierChange {
  uint32_t chain = 0;
  Tier from = Tier::light;
  Tier to = Tier::light;
  double tps_smoothed = 0;  // the rate that decided it
};

// Move shard's tile from from_core to to_core, where it runs with weight.
struct ShardMove {
  uint32_t shard = 0;
  uint32_t from_core = 0;
  uint32_t to_core = 0;
  uint32_t weight = 1;
};

// Shard stays on core; its weight changes.
struct WeightChange {
  uint32_t shard = 0;
  uint32_t core = 0;
  uint32_t from_weight = 1;
  uint32_t to_weight = 1;
};

struct BalanceDecision {
  uint64_t now_ns = 0;
  std::vector<TierChange> tier_changes;      // by chain index
  std::vector<ShardPlacement> placement;     // every global shard, after this step
  std::vector<ShardMove> moves;              // by shard index
  std::vector<WeightChange> weight_changes;  // shards that did not move, by shard index
  // A shard moved or a chain's dedicated cores changed: the slices changed, as an audit
  // records them. Weight changes alone only retune shares within the slices (they follow
  // demand, every few windows under a noisy load), so they do not set it.
  bool slices_changed = false;
};

// One chain as the operator sees it (keel monitor, keel status).
struct ChainStatus {
  std::string name;
  double tps_smoothed = 0;       // committed transactions per second
  double tps_window = 0;         // the last window's own rate (not smoothed)
  bool log_stalled = false;      // in the last window blocks waited and none became durable
  double cost_ns_per_tx = 0;     // busy ns per committed transaction; 0 until one commits
  double demand_cores = 0;       // tps_smoothed × cost_ns_per_tx: cores' worth of CPU it uses
  Tier tier = Tier::light;
  Tier band_toward = Tier::light;  // the tier the last window's rate points at (tier: within band)
  uint32_t windows_past_band = 0;  // consecutive windows pointing past the band in one direction
  bool downgrade_held = false;     // a downgrade is due but downgrade_interval_ms has not passed
  uint64_t tier_changed_ns = 0;    // when it entered its tier (its first classification at first)
  uint32_t dedicated_cores = 0;
  double slice_cores = 0;          // dedicated cores + its shards' weight shares of shared cores
};

class Balancer {
 public:
  // A balancer for setup's chains, cores and placement, all chains light and unmeasured.
  // Fails, with "balancer: <reason>", when the knobs are inconsistent (heavy_tps not above
  // medium_tps, half_life_ms 0, margin_percent 100 or more, windows_to_change 0,
  // min_share_percent over 100, weight_max outside 1..1000), a chain has no shards, a core
  // is listed twice, there are shards but no cores, the placement does not give every
  // shard one of the cores and a weight of at least 1, or a core with other tiles is not
  // one of the cores.
  static Result<Balancer> create(const BalancerKnobs& knobs, BalancerSetup setup);

  // One window: counters holds every chain's counters (in config order, asserted) read at
  // now_ns. The first call only records them; each later call measures the window since
  // the previous one and decides. A now_ns not after the previous one measures nothing
  // and changes nothing (the counters are kept for the next window). O(chains + cores ×
  // shards) per step, plus O(shards²) on a step that re-deals cores or rebalances.
  BalanceDecision step(uint64_t now_ns, std::span<const ChainCounters> counters);

  const ChainStatus& status(uint32_t chain) const { return statuses_.at(chain); }
  std::span<const ChainStatus> statuses() const { return statuses_; }
  // Where every global shard runs now, and with which weight.
  std::span<const ShardPlacement> placement() const { return placement_; }
  uint32_t chain_of_shard(uint32_t shard) const { return chain_of_shard_.at(shard); }
  const BalancerKnobs& knobs() const { return knobs_; }

 private:
  static constexpr int32_t shared_core = -1;

  // What step keeps per chain beyond its status.
  struct ChainState {
    uint32_t first_shard = 0;
    uint32_t shards = 0;
    ChainCounters last;
    bool cost_known = false;
  };

  Balancer(const BalancerKnobs& knobs, BalancerSetup setup);
  void measure(uint32_t chain, const ChainCounters& now, uint64_t elapsed_ns, double ewma_weight);
  Tier candidate_tier(Tier tier, double tps) const;
  void classify(uint32_t chain, uint64_t now_ns, std::vector<TierChange>& changes);
  void resize_slices(bool deal_cores, uint64_t now_ns);
  void deal_dedicated_cores();
  uint32_t best_new_core(uint32_t chain, const std::vector<int32_t>& owner) const;
  void place_dedicated_shards(uint32_t chain);
  void place_shared_shards();
  void rebalance_shared(bool settle, uint64_t now_ns);
  std::pair<uint32_t, uint32_t> busiest_and_idlest(const std::vector<double>& demand) const;
  uint32_t paying_move(const std::vector<double>& demand, double ratio_min) const;
  void set_weights(const std::vector<bool>& core_changed);
  double shard_demand(uint32_t shard) const;
  std::vector<double> core_demands() const;
  void update_slices();
  void record_changes(const std::vector<ShardPlacement>& before, const std::vector<uint32_t>& dedicated_before,
                      BalanceDecision& decision) const;

  BalancerKnobs knobs_;
  std::vector<ChainState> chains_;
  std::vector<ChainStatus> statuses_;
  std::vector<uint32_t> cores_;            // planned core indexes, ascending
  std::vector<int32_t> owner_;             // per core position: the chain it is dedicated to, or shared_core
  std::vector<bool> has_other_tiles_;      // per core position: never dedicated
  std::vector<uint32_t> chain_of_shard_;
  std::vector<uint32_t> core_of_shard_;    // per shard: position in cores_
  std::vector<ShardPlacement> placement_;  // per shard: planned core index and weight
  std::optional<uint64_t> imbalanced_since_ns_;  // the shared cores past the rebalancing trigger since
  uint64_t last_now_ns_ = 0;
  bool started_ = false;
  bool classified_ = false;
};

}  // namespace keel::balance
