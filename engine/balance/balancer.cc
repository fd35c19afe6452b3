#include "engine/balance/balancer.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <utility>

namespace keel::balance {
namespace {

constexpr double ns_per_s = 1e9;

// Rebalancing the shared cores. A shard tile that moves refills its caches on the new core
// (its state, its rings' lines: tens to hundreds of microseconds of misses) and pauses for
// the hand-over, so a move must buy a lasting gain. In a steady state:
//  - the busiest shared core must carry at least twice the demand of the least busy. A
//    smoothed rate stays within the raw noise of its level, so with window-to-window noise
//    of up to ±20 % two cores of equal demand read at most 1.2 / 0.8 = 1.5× apart;
constexpr double imbalance_ratio_start = 2.0;
//  - and at least a tenth of a core: below that a core has idle time to spare, and moving
//    shards between mostly idle cores buys nothing;
constexpr double busy_cores_min = 0.10;
//  - and a move must lower the busier core's demand by at least 10 %, so that a shard too
//    big for the gap (three equal shards on two cores) stays where it is instead of
//    carrying the imbalance to the other core;
constexpr double move_gain_min = 0.10;
//  - and all of this must have held for 2 s in a row. Noise on a core's summed demand is
//    about ±10 % and can last a window or two (the average remembers), enough to make a
//    near miss look like a paying move for a moment (testing showed it: shards too big to
//    move at 1.9× moved after a few hundred windows); it does not stay one-sided for 8
//    windows. A load that shifted for good waits 2 s for its rebalancing, which is fine:
//    surges are the tiers' business, and they act within windows.
constexpr uint64_t imbalance_ns_min = 2'000'000'000;
// Once started, rebalancing goes on down to 1.25×, far from the trigger. It starts at once,
// with no trigger, when cores are dealt (the first classification, or the heavy chains
// changed): shards move then anyway, and the placement plan knew nothing of the load.
constexpr double imbalance_ratio_stop = 1.25;

// A weight stays as it is while the computed one is within max(0.75, 10 %) of it: smoothed
// noise of a few percent then never rewrites weights, and a real shift of a tenth does.
constexpr double weight_deadband_units = 0.75;
constexpr double weight_deadband_fraction = 0.10;

uint32_t tier_number(Tier tier) { return static_cast<uint32_t>(tier); }
Tier tier_of(uint32_t number) { return static_cast<Tier>(number); }

// How much a cumulative counter grew. One that went back was restarted from zero, so all
// it holds now was counted since: never a negative rate.
uint64_t growth(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// The EWMA that sample moves smoothed to, by weight (0..1).
double smoothed(double average, double sample, double weight) { return average + weight * (sample - average); }

Result<void> check_knobs(const BalancerKnobs& knobs) {
  auto fail = [](std::string reason) { return Result<void>(make_error("balancer", reason)); };
  if (knobs.heavy_tps <= knobs.medium_tps)
    return fail("heavy_tps (" + std::to_string(knobs.heavy_tps) + ") must be greater than medium_tps (" +
                std::to_string(knobs.medium_tps) + ")");
  if (knobs.half_life_ms == 0) return fail("half_life_ms must be at least 1");
  if (knobs.margin_percent >= 100)
    return fail("margin_percent must be below 100, got " + std::to_string(knobs.margin_percent));
  if (knobs.windows_to_change == 0) return fail("windows_to_change must be at least 1");
  if (knobs.min_share_percent > 100)
    return fail("min_share_percent must be at most 100, got " + std::to_string(knobs.min_share_percent));
  if (knobs.weight_max < 1 || knobs.weight_max > 1000)
    return fail("weight_max must be from 1 to 1000, got " + std::to_string(knobs.weight_max));
  return {};
}

Result<void> check_setup(const BalancerSetup& setup) {
  auto fail = [](std::string reason) { return Result<void>(make_error("balancer", reason)); };
  size_t shards = 0;
  for (const ChainSpec& chain : setup.chains) {
    if (chain.shards == 0) return fail("chain \"" + chain.name + "\" has no shards");
    shards += chain.shards;
  }
  std::vector<uint32_t> cores = setup.cores;
  std::sort(cores.begin(), cores.end());
  if (auto twice = std::adjacent_find(cores.begin(), cores.end()); twice != cores.end())
    return fail("core " + std::to_string(*twice) + " is listed twice");
  if (shards > 0 && cores.empty()) return fail("no cores for " + std::to_string(shards) + " shards");
  if (setup.placement.size() != shards)
    return fail("the placement holds " + std::to_string(setup.placement.size()) + " shards, the chains " +
                std::to_string(shards));
  for (size_t shard = 0; shard < shards; ++shard) {
    const ShardPlacement& at = setup.placement[shard];
    if (!std::binary_search(cores.begin(), cores.end(), at.core))
      return fail("shard " + std::to_string(shard) + " is placed on core " + std::to_string(at.core) +
                  ", which is not one of the cores given");
    if (at.weight == 0) return fail("shard " + std::to_string(shard) + " has weight 0");
  }
  for (uint32_t core : setup.cores_with_other_tiles)
    if (!std::binary_search(cores.begin(), cores.end(), core))
      return fail("core " + std::to_string(core) + " runs other tiles but is not one of the cores given");
  return {};
}

// Each of demands' share of their sum, each at least floor: shards whose proportional
// share falls short get floor, and the others split what is left in proportion (water
// filling). When floor × count reaches 1 nobody can have more than the floor: equal shares.
// All zero demands share equally.
std::vector<double> floored_shares(const std::vector<double>& demands, double floor) {
  const size_t count = demands.size();
  std::vector<double> shares(count, count == 0 ? 0.0 : 1.0 / double(count));
  if (count == 0 || floor * double(count) >= 1.0) return shares;
  std::vector<bool> floored(count, false);
  // Each pass floors at least one more shard or ends; since floor × count < 1 the shards
  // left always average more than the floor, so some stay unfloored.
  for (size_t pass = 0; pass < count; ++pass) {
    size_t floored_count = 0;
    double rest_demand = 0;
    for (size_t i = 0; i < count; ++i) {
      floored_count += floored[i];
      if (!floored[i]) rest_demand += demands[i];
    }
    const double rest_share = 1.0 - floor * double(floored_count);
    const double unfloored_count = double(count - floored_count);
    bool floored_more = false;
    for (size_t i = 0; i < count; ++i) {
      if (floored[i]) {
        shares[i] = floor;
        continue;
      }
      shares[i] = rest_demand > 0 ? rest_share * demands[i] / rest_demand : rest_share / unfloored_count;
      if (shares[i] < floor) floored[i] = floored_more = true;
    }
    if (!floored_more) break;
  }
  for (size_t i = 0; i < count; ++i) shares[i] = floored[i] ? floor : shares[i];
  return shares;
}

}  // namespace

std::string_view to_string(Tier tier) {
  switch (tier) {
    case Tier::light: return "light";
    case Tier::medium: return "medium";
    case Tier::heavy: return "heavy";
  }
  assert(false && "Tier value without a name");
  return "?";
}

std::string_view tier_name(uint32_t tier) { return tier <= uint32_t(Tier::heavy) ? to_string(Tier(tier)) : "?"; }

Result<Balancer> Balancer::create(const BalancerKnobs& knobs, BalancerSetup setup) {
  if (Result<void> checked = check_knobs(knobs); !checked) return checked.error();
  if (Result<void> checked = check_setup(setup); !checked) return checked.error();
  return Balancer(knobs, std::move(setup));
}

Balancer::Balancer(const BalancerKnobs& knobs, BalancerSetup setup)
    : knobs_(knobs), cores_(std::move(setup.cores)), placement_(std::move(setup.placement)) {
  std::sort(cores_.begin(), cores_.end());
  owner_.assign(cores_.size(), shared_core);
  for (uint32_t core : cores_)
    has_other_tiles_.push_back(std::find(setup.cores_with_other_tiles.begin(), setup.cores_with_other_tiles.end(),
                                         core) != setup.cores_with_other_tiles.end());
  uint32_t first_shard = 0;
  for (uint32_t chain = 0; chain < setup.chains.size(); ++chain) {
    const ChainSpec& spec = setup.chains[chain];
    chains_.push_back(ChainState{first_shard, spec.shards, {}, false});
    ChainStatus status;
    status.name = spec.name;
    statuses_.push_back(std::move(status));
    chain_of_shard_.insert(chain_of_shard_.end(), spec.shards, chain);
    first_shard += spec.shards;
  }
  for (const ShardPlacement& at : placement_) {
    auto position = std::lower_bound(cores_.begin(), cores_.end(), at.core);
    core_of_shard_.push_back(uint32_t(position - cores_.begin()));
  }
  update_slices();
}

BalanceDecision Balancer::step(uint64_t now_ns, std::span<const ChainCounters> counters) {
  assert(counters.size() == chains_.size());
  BalanceDecision decision;
  decision.now_ns = now_ns;
  if (started_ && now_ns <= last_now_ns_) {
    decision.placement = placement_;
    return decision;
  }
  if (!started_) {
    for (uint32_t chain = 0; chain < chains_.size(); ++chain) chains_[chain].last = counters[chain];
    started_ = true;
    last_now_ns_ = now_ns;
    decision.placement = placement_;
    return decision;
  }
  const uint64_t elapsed_ns = now_ns - last_now_ns_;
  last_now_ns_ = now_ns;
  const double half_life_ns = double(knobs_.half_life_ms) * 1e6;
  const double ewma_weight = 1.0 - std::exp2(-double(elapsed_ns) / half_life_ns);
  for (uint32_t chain = 0; chain < chains_.size(); ++chain)
    measure(chain, counters[chain], elapsed_ns, ewma_weight);

  std::vector<bool> was_heavy;
  for (const ChainStatus& status : statuses_) was_heavy.push_back(status.tier == Tier::heavy);
  const bool first_classification = !classified_;
  for (uint32_t chain = 0; chain < chains_.size(); ++chain) classify(chain, now_ns, decision.tier_changes);
  classified_ = true;
  bool heavy_set_changed = false;
  for (uint32_t chain = 0; chain < chains_.size(); ++chain)
    heavy_set_changed = heavy_set_changed || was_heavy[chain] != (statuses_[chain].tier == Tier::heavy);

  const std::vector<ShardPlacement> before = placement_;
  std::vector<uint32_t> dedicated_before;
  for (const ChainStatus& status : statuses_) dedicated_before.push_back(status.dedicated_cores);
  if (knobs_.enabled) resize_slices(first_classification || heavy_set_changed, now_ns);
  update_slices();

  record_changes(before, dedicated_before, decision);
  return decision;
}

// Fills decision's placement, moves, weight changes and slices_changed from what the
// placement and the dedicated cores were before this step.
void Balancer::record_changes(const std::vector<ShardPlacement>& before, const std::vector<uint32_t>& dedicated_before,
                              BalanceDecision& decision) const {
  decision.placement = placement_;
  for (uint32_t shard = 0; shard < placement_.size(); ++shard) {
    const ShardPlacement& was = before[shard];
    const ShardPlacement& now = placement_[shard];
    if (was.core != now.core) {
      decision.moves.push_back(ShardMove{shard, was.core, now.core, now.weight});
    } else if (was.weight != now.weight) {
      decision.weight_changes.push_back(WeightChange{shard, now.core, was.weight, now.weight});
    }
  }
  decision.slices_changed = !decision.moves.empty();
  for (uint32_t chain = 0; chain < chains_.size(); ++chain)
    decision.slices_changed = decision.slices_changed || dedicated_before[chain] != statuses_[chain].dedicated_cores;
}

void Balancer::measure(uint32_t chain, const ChainCounters& now, uint64_t elapsed_ns, double ewma_weight) {
  ChainState& state = chains_[chain];
  ChainStatus& status = statuses_[chain];
  const uint64_t committed = growth(now.committed_txs, state.last.committed_txs);
  const uint64_t busy_ns = growth(now.busy_ns, state.last.busy_ns);
  status.log_stalled = now.blocks_waiting > 0 && growth(now.durable_blocks, state.last.durable_blocks) == 0;
  state.last = now;
  const double tps = double(committed) * ns_per_s / double(elapsed_ns);
  status.tps_window = tps;
  // The first window has no history: starting the average at zero would make every chain
  // look light for several windows and then climb through the tiers.
  status.tps_smoothed = classified_ ? smoothed(status.tps_smoothed, tps, ewma_weight) : tps;
  if (committed > 0) {
    const double cost_ns_per_tx = double(busy_ns) / double(committed);
    status.cost_ns_per_tx =
        state.cost_known ? smoothed(status.cost_ns_per_tx, cost_ns_per_tx, ewma_weight) : cost_ns_per_tx;
    state.cost_known = true;
  }
  status.demand_cores = status.tps_smoothed * status.cost_ns_per_tx / ns_per_s;
}

// The tier tps points at from tier: up while it is past the next tier's threshold plus the
// margin, else down while it is under its own tier's threshold minus the margin.
Tier Balancer::candidate_tier(Tier tier, double tps) const {
  const double margin = double(knobs_.margin_percent) / 100.0;
  const double thresholds[] = {0.0, double(knobs_.medium_tps), double(knobs_.heavy_tps)};  // by tier
  uint32_t candidate = tier_number(tier);
  while (candidate < tier_number(Tier::heavy) && tps > thresholds[candidate + 1] * (1.0 + margin)) ++candidate;
  if (candidate != tier_number(tier)) return tier_of(candidate);
  while (candidate > tier_number(Tier::light) && tps < thresholds[candidate] * (1.0 - margin)) --candidate;
  return tier_of(candidate);
}

void Balancer::classify(uint32_t chain, uint64_t now_ns, std::vector<TierChange>& changes) {
  ChainStatus& status = statuses_[chain];
  const Tier from = status.tier;
  if (!classified_) {
    const double tps = status.tps_smoothed;
    status.tier = tps >= double(knobs_.heavy_tps)    ? Tier::heavy
                  : tps >= double(knobs_.medium_tps) ? Tier::medium
                                                     : Tier::light;
    status.band_toward = status.tier;
    status.tier_changed_ns = now_ns;
    if (status.tier != from) changes.push_back(TierChange{chain, from, status.tier, tps});
    return;
  }
  Tier candidate = candidate_tier(status.tier, status.tps_smoothed);
  // A heavy chain whose own window rate is below the band steps down by that rate, even
  // while the average still remembers its surge (the header says why).
  bool by_window = false;
  if (status.tier == Tier::heavy && !status.log_stalled) {
    const Tier window_candidate = candidate_tier(status.tier, status.tps_window);
    if (window_candidate < status.tier && window_candidate < candidate) candidate = window_candidate, by_window = true;
  }
  const bool same_direction = (candidate > status.tier) == (status.band_toward > status.tier) &&
                              status.band_toward != status.tier;
  status.windows_past_band = candidate == status.tier ? 0 : same_direction ? status.windows_past_band + 1 : 1;
  status.band_toward = candidate;
  status.downgrade_held = false;
  if (status.windows_past_band < knobs_.windows_to_change) return;
  const uint64_t interval_ns = uint64_t(knobs_.downgrade_interval_ms) * 1'000'000;
  if (candidate < status.tier && now_ns - status.tier_changed_ns < interval_ns) {
    status.downgrade_held = true;
    return;
  }
  if (by_window) {
    status.tps_smoothed = status.tps_window;
    status.demand_cores = status.tps_smoothed * status.cost_ns_per_tx / ns_per_s;
  }
  status.tier = candidate;
  status.windows_past_band = 0;
  status.tier_changed_ns = now_ns;
  changes.push_back(TierChange{chain, from, candidate, status.tps_smoothed});
}

void Balancer::resize_slices(bool deal_cores, uint64_t now_ns) {
  const std::vector<uint32_t> cores_before = core_of_shard_;
  if (deal_cores) {
    deal_dedicated_cores();
    for (uint32_t chain = 0; chain < chains_.size(); ++chain) {
      if (statuses_[chain].dedicated_cores > 0) place_dedicated_shards(chain);
    }
  }
  place_shared_shards();
  rebalance_shared(/*settle=*/deal_cores, now_ns);
  // A core that gained or lost a shard gets fresh weights; the others keep theirs within
  // the dead band.
  std::vector<bool> core_changed(cores_.size(), false);
  for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard) {
    if (cores_before[shard] == core_of_shard_[shard]) continue;
    core_changed[cores_before[shard]] = true;
    core_changed[core_of_shard_[shard]] = true;
  }
  set_weights(core_changed);
}

// Deals the cores heavy chains may have to themselves. One core always stays shared: the
// medium and light chains need somewhere to run, and so do heavy chains dealt none. A core
// that also runs other tiles is never dealt (it is a shared core already): on a host whose
// every shard core runs other tiles, nothing is dealt and heavy chains share by weight.
//
// When the cores do not go round (more heavy chains, or more heavy shards, than spare
// cores), they are dealt one per turn, in order of demand, to each heavy chain short of
// its min(shards, heavy_cores_max): the most demanding chains get a core first and the
// least demanding may get none. An incumbent's demand counts × (1 + margin), so that two
// chains of about the same demand do not trade cores on noise each time cores are dealt.
// Ties go to the lower chain index. Each chain keeps the cores it had, as far as its new
// count allows, and takes new ones where its shards already run.
void Balancer::deal_dedicated_cores() {
  const double incumbent_factor = 1.0 + double(knobs_.margin_percent) / 100.0;
  auto rank = [&](uint32_t chain) {
    const ChainStatus& status = statuses_[chain];
    return status.demand_cores * (status.dedicated_cores > 0 ? incumbent_factor : 1.0);
  };
  std::vector<uint32_t> heavy;
  for (uint32_t chain = 0; chain < chains_.size(); ++chain)
    if (statuses_[chain].tier == Tier::heavy) heavy.push_back(chain);
  std::sort(heavy.begin(), heavy.end(), [&](uint32_t a, uint32_t b) {
    const double rank_a = rank(a), rank_b = rank(b);
    return rank_a != rank_b ? rank_a > rank_b : a < b;
  });

  std::vector<uint32_t> dealt(chains_.size(), 0);
  const uint32_t dealable = uint32_t(std::count(has_other_tiles_.begin(), has_other_tiles_.end(), false));
  const bool one_stays_shared = dealable < cores_.size();
  uint32_t spare = one_stays_shared ? dealable : (dealable > 0 ? dealable - 1 : 0);
  for (bool dealt_one = true; dealt_one && spare > 0;) {
    dealt_one = false;
    for (uint32_t chain : heavy) {
      const uint32_t shards = chains_[chain].shards;
      const uint32_t wanted = knobs_.heavy_cores_max == 0 ? shards : std::min(shards, knobs_.heavy_cores_max);
      if (spare == 0 || dealt[chain] >= wanted) continue;
      ++dealt[chain];
      --spare;
      dealt_one = true;
    }
  }

  std::vector<int32_t> owner(cores_.size(), shared_core);
  for (uint32_t chain : heavy) {
    uint32_t kept = 0;
    for (size_t core = 0; core < cores_.size() && kept < dealt[chain]; ++core) {
      if (owner_[core] == int32_t(chain)) owner[core] = int32_t(chain), ++kept;
    }
  }
  for (uint32_t chain : heavy) {
    uint32_t owned = uint32_t(std::count(owner.begin(), owner.end(), int32_t(chain)));
    for (; owned < dealt[chain]; ++owned) owner[best_new_core(chain, owner)] = int32_t(chain);
  }
  owner_ = std::move(owner);
  for (uint32_t chain = 0; chain < chains_.size(); ++chain) statuses_[chain].dedicated_cores = dealt[chain];
}

// The shared core chain should take next: the one running most of its shards (fewest of
// them move), then the one running fewest others (fewest others move off it), then the lowest.
uint32_t Balancer::best_new_core(uint32_t chain, const std::vector<int32_t>& owner) const {
  std::vector<uint32_t> own(cores_.size(), 0), others(cores_.size(), 0);
  for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard)
    ++(chain_of_shard_[shard] == chain ? own : others)[core_of_shard_[shard]];
  uint32_t best = uint32_t(cores_.size());
  for (uint32_t core = 0; core < cores_.size(); ++core) {
    if (owner[core] != shared_core || has_other_tiles_[core]) continue;
    if (best == cores_.size() || own[core] > own[best] || (own[core] == own[best] && others[core] < others[best]))
      best = core;
  }
  assert(best < cores_.size() && "deal_dedicated_cores leaves a shared core");
  return best;
}

// Spreads chain's shards over its dedicated cores as evenly as counts allow (each holds
// shards / cores, rounded down or up), leaving every shard that already fits where it is.
void Balancer::place_dedicated_shards(uint32_t chain) {
  const ChainState& state = chains_[chain];
  std::vector<uint32_t> count(cores_.size(), 0);
  const uint32_t cores = statuses_[chain].dedicated_cores;
  const uint32_t base = state.shards / cores;
  uint32_t fuller_left = state.shards % cores;  // cores that may hold base + 1
  std::vector<uint32_t> unplaced;
  for (uint32_t shard = state.first_shard; shard < state.first_shard + state.shards; ++shard) {
    const uint32_t core = core_of_shard_[shard];
    if (owner_[core] == int32_t(chain) && count[core] < base) {
      ++count[core];
    } else {
      unplaced.push_back(shard);
    }
  }
  std::vector<uint32_t> still_unplaced;
  for (uint32_t shard : unplaced) {
    const uint32_t core = core_of_shard_[shard];
    if (owner_[core] == int32_t(chain) && count[core] == base && fuller_left > 0) {
      ++count[core];
      --fuller_left;
    } else {
      still_unplaced.push_back(shard);
    }
  }
  for (uint32_t shard : still_unplaced) {
    uint32_t best = uint32_t(cores_.size());
    for (uint32_t core = 0; core < cores_.size(); ++core) {
      if (owner_[core] == int32_t(chain) && (best == cores_.size() || count[core] < count[best])) best = core;
    }
    core_of_shard_[shard] = best;
    ++count[best];
  }
}

// Shards of chains without dedicated cores that sit on a dedicated core go to shared cores:
// the most demanding first, each onto the shared core with the least demand (then the
// fewest shards, then the lowest). Every other shard stays.
void Balancer::place_shared_shards() {
  std::vector<uint32_t> leaving;
  for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard) {
    const uint32_t chain = chain_of_shard_[shard];
    if (statuses_[chain].dedicated_cores == 0 && owner_[core_of_shard_[shard]] != shared_core)
      leaving.push_back(shard);
  }
  if (leaving.empty()) return;
  std::stable_sort(leaving.begin(), leaving.end(),
                   [&](uint32_t a, uint32_t b) { return shard_demand(a) > shard_demand(b); });
  std::vector<double> demand(cores_.size(), 0);
  std::vector<uint32_t> count(cores_.size(), 0);
  for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard) {
    if (std::find(leaving.begin(), leaving.end(), shard) != leaving.end()) continue;
    demand[core_of_shard_[shard]] += shard_demand(shard);
    ++count[core_of_shard_[shard]];
  }
  for (uint32_t shard : leaving) {
    uint32_t best = uint32_t(cores_.size());
    for (uint32_t core = 0; core < cores_.size(); ++core) {
      if (owner_[core] != shared_core) continue;
      if (best == cores_.size() || demand[core] < demand[best] ||
          (demand[core] == demand[best] && count[core] < count[best]))
        best = core;
    }
    core_of_shard_[shard] = best;
    demand[best] += shard_demand(shard);
    ++count[best];
  }
}

// The busiest and the least busy shared core (the lower index among equals), or
// {cores, cores} when fewer than two cores are shared.
std::pair<uint32_t, uint32_t> Balancer::busiest_and_idlest(const std::vector<double>& demand) const {
  const uint32_t none = uint32_t(cores_.size());
  uint32_t busiest = none, idlest = none;
  for (uint32_t core = 0; core < cores_.size(); ++core) {
    if (owner_[core] != shared_core) continue;
    if (busiest == none || demand[core] > demand[busiest]) busiest = core;
    if (idlest == none || demand[core] < demand[idlest]) idlest = core;
  }
  if (busiest == idlest) return {none, none};
  return {busiest, idlest};
}

// The shard to move from the busiest shared core to the least busy, when the two are at
// least ratio_min apart, the busiest carries busy_cores_min and the move lowers its demand
// by move_gain_min; else the number of shards. Among paying moves, the one that leaves the
// busier of the two least loaded (the lower shard index among equals).
uint32_t Balancer::paying_move(const std::vector<double>& demand, double ratio_min) const {
  const uint32_t none = uint32_t(core_of_shard_.size());
  const auto [busiest, idlest] = busiest_and_idlest(demand);
  if (busiest == cores_.size()) return none;
  const double high = demand[busiest], low = demand[idlest];
  if (high < busy_cores_min || high < ratio_min * low) return none;
  uint32_t best_shard = none;
  double best_high = high * (1.0 - move_gain_min);
  for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard) {
    if (core_of_shard_[shard] != busiest) continue;
    const double moved = shard_demand(shard);
    const double new_high = std::max(high - moved, low + moved);
    if (new_high <= best_high && (best_shard == none || new_high < best_high)) best_shard = shard, best_high = new_high;
  }
  return best_shard;
}

// Rebalances the shared cores: at once with settle (cores were just dealt), else once a
// large imbalance with a paying move has lasted imbalance_ns_min (the constants at the top
// of this file). Then moves shards from the busiest to the least busy while a move pays,
// down to imbalance_ratio_stop. Each move lowers the sum of squared core demands, so this
// ends; the bound is a guard.
void Balancer::rebalance_shared(bool settle, uint64_t now_ns) {
  std::vector<double> demand = core_demands();
  if (paying_move(demand, imbalance_ratio_start) == core_of_shard_.size()) {
    imbalanced_since_ns_.reset();
    if (!settle) return;
  } else if (!imbalanced_since_ns_) {
    imbalanced_since_ns_ = now_ns;
  }
  if (!settle && now_ns - *imbalanced_since_ns_ < imbalance_ns_min) return;
  imbalanced_since_ns_.reset();
  for (size_t moves = 0; moves < core_of_shard_.size(); ++moves) {
    const uint32_t shard = paying_move(demand, imbalance_ratio_stop);
    if (shard == core_of_shard_.size()) return;
    core_of_shard_[shard] = busiest_and_idlest(demand).second;
    demand = core_demands();
  }
}

// Each shard's weight on its core: its floored share of the core's demand × weight_max
// (the header says how), kept as it is within the dead band unless its core changed.
void Balancer::set_weights(const std::vector<bool>& core_changed) {
  const double floor = double(knobs_.min_share_percent) / 100.0;
  const double weight_max = double(knobs_.weight_max);
  for (uint32_t core = 0; core < cores_.size(); ++core) {
    std::vector<uint32_t> shards;
    std::vector<double> demands;
    for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard) {
      if (core_of_shard_[shard] != core) continue;
      shards.push_back(shard);
      demands.push_back(shard_demand(shard));
    }
    const std::vector<double> shares = floored_shares(demands, floor);
    const bool floor_fits = floor * double(shards.size()) <= 1.0;
    // The weight the floor share makes; the small slack keeps 0.1 × 30 = 3.0000000000000004
    // from rounding up to 4.
    const uint32_t weight_min =
        floor_fits ? std::max(1u, uint32_t(std::ceil(floor * weight_max - 1e-9))) : 1u;
    for (size_t i = 0; i < shards.size(); ++i) {
      const double ideal = shares[i] * weight_max;
      const uint32_t weight = std::clamp(uint32_t(std::lround(ideal)), weight_min, knobs_.weight_max);
      uint32_t& current = placement_[shards[i]].weight;
      const double deadband = std::max(weight_deadband_units, weight_deadband_fraction * double(current));
      const bool keep = !core_changed[core] && current >= weight_min && current <= knobs_.weight_max &&
                        std::abs(ideal - double(current)) <= deadband;
      if (!keep) current = weight;
    }
  }
}

// A chain's demand split evenly over its shards: the counters are per chain.
double Balancer::shard_demand(uint32_t shard) const {
  const uint32_t chain = chain_of_shard_[shard];
  return statuses_[chain].demand_cores / double(chains_[chain].shards);
}

std::vector<double> Balancer::core_demands() const {
  std::vector<double> demand(cores_.size(), 0);
  for (uint32_t shard = 0; shard < core_of_shard_.size(); ++shard) demand[core_of_shard_[shard]] += shard_demand(shard);
  return demand;
}

// placement_'s cores from core_of_shard_, and each chain's slice for its status.
void Balancer::update_slices() {
  std::vector<uint64_t> weight_sum(cores_.size(), 0);
  for (uint32_t shard = 0; shard < placement_.size(); ++shard) {
    placement_[shard].core = cores_[core_of_shard_[shard]];
    weight_sum[core_of_shard_[shard]] += placement_[shard].weight;
  }
  for (ChainStatus& status : statuses_) status.slice_cores = double(status.dedicated_cores);
  for (uint32_t shard = 0; shard < placement_.size(); ++shard) {
    const uint32_t core = core_of_shard_[shard];
    if (owner_[core] != shared_core) continue;
    statuses_[chain_of_shard_[shard]].slice_cores += double(placement_[shard].weight) / double(weight_sum[core]);
  }
}

}  // namespace keel::balance
