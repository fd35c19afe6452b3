// Tests for engine/balance/balancer.h: the balancer's decisions, driven by a fake clock and
// scripted counters (ScriptedLoad), at the default knobs unless a test says otherwise
// (heavy 50,000 tx/s, medium 5,000, margin 25 %, 2 windows to change, 250 ms windows and
// half-life, downgrades 2,500 ms apart, 10 % minimum share, weight_max 32). Randomized
// tests print their seed; KEEL_TEST_SEED=<n> replays one.
#include "engine/balance/balancer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace keel::balance {
namespace {

constexpr uint64_t window_ns = 250'000'000;
constexpr double cost_ns_default = 10'000;  // 10 us of shard-tile CPU per transaction

uint64_t test_seed() {
  if (const char* given = std::getenv("KEEL_TEST_SEED")) return std::strtoull(given, nullptr, 10);
  return std::random_device{}();
}

// A fake clock and each chain's cumulative counters: every advance moves the clock and adds
// tps × elapsed transactions (times that window's noise factor) and cost × transactions of
// busy time to each chain.
class ScriptedLoad {
 public:
  explicit ScriptedLoad(size_t chains)
      : tps_(chains, 0), cost_ns_(chains, cost_ns_default), stalled_(chains, false), counters_(chains) {}

  void set_tps(size_t chain, double tps) { tps_.at(chain) = tps; }
  void set_cost_ns(size_t chain, double cost_ns) { cost_ns_.at(chain) = cost_ns; }
  // A stalled log: the chain's blocks wait, none becomes durable, so nothing commits.
  void set_stalled(size_t chain, bool stalled) { stalled_.at(chain) = stalled; }
  // What the counters read now, as the balancer tile would read them.
  const std::vector<ChainCounters>& counters() const { return counters_; }
  std::vector<ChainCounters>& counters() { return counters_; }
  uint64_t now_ns() const { return now_ns_; }

  // Moves the clock by elapsed_ns; noise, when given, scales each chain's rate.
  void advance(uint64_t elapsed_ns = window_ns, const std::vector<double>& noise = {}) {
    now_ns_ += elapsed_ns;
    for (size_t chain = 0; chain < tps_.size(); ++chain) {
      if (stalled_[chain]) {
        counters_[chain].blocks_waiting = 4;
        counters_[chain].busy_ns += elapsed_ns / 100;
        continue;
      }
      const double factor = noise.empty() ? 1.0 : noise[chain];
      const double txs = tps_[chain] * factor * double(elapsed_ns) / 1e9;
      const uint64_t whole_txs = uint64_t(std::llround(txs));
      counters_[chain].committed_txs += whole_txs;
      counters_[chain].busy_ns += uint64_t(std::llround(double(whole_txs) * cost_ns_[chain]));
      counters_[chain].durable_blocks += whole_txs > 0;
      counters_[chain].blocks_waiting = whole_txs > 0 ? 1 : 0;
    }
  }

 private:
  std::vector<double> tps_;
  std::vector<double> cost_ns_;
  std::vector<bool> stalled_;
  std::vector<ChainCounters> counters_;
  uint64_t now_ns_ = 1'000'000'000;
};

// Chains of the given shard counts named c0, c1, ..., their shards dealt round-robin over
// cores with weight 4 (the default [tiles.shard] weight).
BalancerSetup setup_of(const std::vector<uint32_t>& shards, const std::vector<uint32_t>& cores) {
  BalancerSetup setup;
  setup.cores = cores;
  uint32_t global = 0;
  for (size_t chain = 0; chain < shards.size(); ++chain) {
    setup.chains.push_back(ChainSpec{"c" + std::to_string(chain), shards[chain]});
    for (uint32_t i = 0; i < shards[chain]; ++i, ++global)
      setup.placement.push_back(ShardPlacement{cores[global % cores.size()], 4});
  }
  return setup;
}

Balancer make_balancer(const BalancerSetup& setup, const BalancerKnobs& knobs = {}) {
  Result<Balancer> balancer = Balancer::create(knobs, setup);
  if (!balancer) {
    ADD_FAILURE() << balancer.error().message;
    std::abort();
  }
  return std::move(balancer).value();
}

// A balancer and its script, stepped together.
struct Rig {
  Rig(const BalancerSetup& setup, const BalancerKnobs& knobs = {})
      : balancer(make_balancer(setup, knobs)), load(setup.chains.size()) {
    balancer.step(load.now_ns(), load.counters());  // the baseline
  }
  BalanceDecision step(uint64_t elapsed_ns = window_ns, const std::vector<double>& noise = {}) {
    load.advance(elapsed_ns, noise);
    return balancer.step(load.now_ns(), load.counters());
  }
  Tier tier(uint32_t chain) const { return balancer.status(chain).tier; }

  Balancer balancer;
  ScriptedLoad load;
};

std::vector<double> noise_of(std::mt19937_64& random, size_t chains, double amplitude) {
  std::uniform_real_distribution<double> factor(1.0 - amplitude, 1.0 + amplitude);
  std::vector<double> noise;
  for (size_t chain = 0; chain < chains; ++chain) noise.push_back(factor(random));
  return noise;
}

// The cores (planned indexes) chain's shards run on.
std::vector<uint32_t> cores_of(const Balancer& balancer, uint32_t chain) {
  std::vector<uint32_t> cores;
  for (uint32_t shard = 0; shard < balancer.placement().size(); ++shard)
    if (balancer.chain_of_shard(shard) == chain) cores.push_back(balancer.placement()[shard].core);
  std::sort(cores.begin(), cores.end());
  return cores;
}

// The chains whose shards run on core.
std::vector<uint32_t> chains_on(const Balancer& balancer, uint32_t core) {
  std::vector<uint32_t> chains;
  for (uint32_t shard = 0; shard < balancer.placement().size(); ++shard)
    if (balancer.placement()[shard].core == core) chains.push_back(balancer.chain_of_shard(shard));
  std::sort(chains.begin(), chains.end());
  chains.erase(std::unique(chains.begin(), chains.end()), chains.end());
  return chains;
}

TEST(Balancer, FirstWindowClassifiesPlainly) {
  Rig rig(setup_of({1, 1, 1, 1}, {0, 1}));
  rig.load.set_tps(0, 1'000);
  rig.load.set_tps(1, 10'000);
  rig.load.set_tps(2, 80'000);
  rig.load.set_tps(3, 5'000);  // exactly medium_tps: medium
  const BalanceDecision first = rig.step();
  ASSERT_EQ(first.tier_changes.size(), 3u);
  EXPECT_EQ(first.tier_changes[0].chain, 1u);
  EXPECT_EQ(first.tier_changes[0].from, Tier::light);
  EXPECT_EQ(first.tier_changes[0].to, Tier::medium);
  EXPECT_DOUBLE_EQ(first.tier_changes[0].tps_smoothed, 10'000);
  EXPECT_EQ(first.tier_changes[1].chain, 2u);
  EXPECT_EQ(first.tier_changes[1].to, Tier::heavy);
  EXPECT_EQ(first.tier_changes[2].chain, 3u);
  EXPECT_EQ(first.tier_changes[2].to, Tier::medium);
  EXPECT_EQ(rig.tier(0), Tier::light);
  EXPECT_DOUBLE_EQ(rig.balancer.status(0).tps_smoothed, 1'000);
  EXPECT_DOUBLE_EQ(rig.balancer.status(2).cost_ns_per_tx, cost_ns_default);
  EXPECT_DOUBLE_EQ(rig.balancer.status(2).demand_cores, 80'000 * cost_ns_default / 1e9);
  EXPECT_EQ(rig.balancer.status(2).tier_changed_ns, first.now_ns);
  for (int window = 0; window < 20; ++window) EXPECT_TRUE(rig.step().tier_changes.empty());
  EXPECT_EQ(to_string(Tier::light), "light");
  EXPECT_EQ(to_string(Tier::medium), "medium");
  EXPECT_EQ(to_string(Tier::heavy), "heavy");
}

// The first call is a baseline only; a step that is not later than the last measures nothing.
TEST(Balancer, BaselineAndStalledClockDecideNothing) {
  BalancerSetup setup = setup_of({1}, {0});
  Balancer balancer = make_balancer(setup);
  std::vector<ChainCounters> counters{{1'000'000, 5'000'000}};
  const BalanceDecision baseline = balancer.step(5 * window_ns, counters);
  EXPECT_TRUE(baseline.tier_changes.empty());
  EXPECT_FALSE(baseline.slices_changed);
  EXPECT_EQ(baseline.placement, setup.placement);
  EXPECT_EQ(balancer.status(0).tps_smoothed, 0);
  counters[0].committed_txs += 100'000;
  const BalanceDecision stalled = balancer.step(5 * window_ns, counters);
  EXPECT_TRUE(stalled.tier_changes.empty());
  EXPECT_EQ(balancer.status(0).tps_smoothed, 0);
  // The growth the stalled step saw is measured by the next one.
  balancer.step(6 * window_ns, counters);
  EXPECT_DOUBLE_EQ(balancer.status(0).tps_smoothed, 400'000);
}

// Noise as wide as ±20 % around a threshold, for hundreds of windows, never moves a chain
// that sits on it, from either side.
TEST(Balancer, NoiseAroundAThresholdNeverFlips) {
  const uint64_t seed = test_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  Rig rig(setup_of({1, 1, 1, 1}, {0, 1, 2}));
  const double levels_before[] = {2'000, 8'000, 30'000, 80'000};  // light, medium, medium, heavy
  const double levels_after[] = {5'000, 5'000, 50'000, 50'000};   // each chain's threshold
  for (uint32_t chain = 0; chain < 4; ++chain) rig.load.set_tps(chain, levels_before[chain]);
  for (int window = 0; window < 20; ++window) rig.step();
  const Tier tiers[] = {Tier::light, Tier::medium, Tier::medium, Tier::heavy};
  for (uint32_t chain = 0; chain < 4; ++chain) {
    ASSERT_EQ(rig.tier(chain), tiers[chain]) << chain;
    rig.load.set_tps(chain, levels_after[chain]);
  }
  for (int window = 0; window < 400; ++window) {
    const BalanceDecision decision = rig.step(window_ns, noise_of(random, 4, 0.20));
    ASSERT_TRUE(decision.tier_changes.empty())
        << "seed " << seed << " window " << window << ": chain " << decision.tier_changes[0].chain << " "
        << to_string(decision.tier_changes[0].from) << " -> " << to_string(decision.tier_changes[0].to)
        << " at " << decision.tier_changes[0].tps_smoothed << " tx/s";
  }
}

// A real shift changes the tier exactly windows_to_change windows after the smoothed rate
// first passes the band (counting that window), up and down alike.
TEST(Balancer, RealShiftChangesTierWindowsToChangeAfterTheAverageCrosses) {
  BalancerKnobs knobs;
  knobs.windows_to_change = 3;
  knobs.half_life_ms = 1'000;  // slow, so that the average takes a few windows to cross
  knobs.downgrade_interval_ms = 0;
  Rig rig(setup_of({1}, {0, 1}), knobs);
  rig.load.set_tps(0, 1'000);
  for (int window = 0; window < 10; ++window) rig.step();
  ASSERT_EQ(rig.tier(0), Tier::light);

  struct Shift {
    double tps;
    double crossing_tps;  // where the band ends on the way there
    Tier to;
    bool above;
  };
  const Shift shifts[] = {{20'000, 5'000 * 1.25, Tier::medium, true}, {1'000, 5'000 * 0.75, Tier::light, false}};
  for (const Shift& shift : shifts) {
    rig.load.set_tps(0, shift.tps);
    int crossed_at = -1;
    int changed_at = -1;
    for (int window = 0; window < 40 && changed_at < 0; ++window) {
      const BalanceDecision decision = rig.step();
      const double tps = rig.balancer.status(0).tps_smoothed;
      const bool past = shift.above ? tps > shift.crossing_tps : tps < shift.crossing_tps;
      if (past && crossed_at < 0) crossed_at = window;
      if (crossed_at >= 0 && decision.tier_changes.empty()) {
        EXPECT_EQ(rig.balancer.status(0).windows_past_band, uint32_t(window - crossed_at + 1));
        EXPECT_EQ(rig.balancer.status(0).band_toward, shift.to);
      }
      if (!decision.tier_changes.empty()) changed_at = window;
    }
    ASSERT_GE(crossed_at, 1) << "the average should take more than a window to cross";
    EXPECT_EQ(changed_at, crossed_at + 2) << to_string(shift.to);
    EXPECT_EQ(rig.tier(0), shift.to);
    EXPECT_EQ(rig.balancer.status(0).windows_past_band, 0u);
  }
}

// A window past the band and one back inside starts the count again.
TEST(Balancer, AWindowBackInsideTheBandRestartsTheCount) {
  BalancerKnobs knobs;
  knobs.half_life_ms = 1;  // the average is the last window's rate
  Rig rig(setup_of({1}, {0}), knobs);
  rig.load.set_tps(0, 1'000);
  rig.step();
  for (int round = 0; round < 10; ++round) {
    rig.load.set_tps(0, 7'000);  // past 6,250
    EXPECT_TRUE(rig.step().tier_changes.empty());
    EXPECT_EQ(rig.balancer.status(0).windows_past_band, 1u);
    rig.load.set_tps(0, 6'000);
    EXPECT_TRUE(rig.step().tier_changes.empty());
    EXPECT_EQ(rig.balancer.status(0).windows_past_band, 0u);
  }
  rig.load.set_tps(0, 7'000);
  rig.step();
  EXPECT_EQ(rig.step().tier_changes.size(), 1u);
  EXPECT_EQ(rig.tier(0), Tier::medium);
}

// At the default knobs, a tenfold step in either direction settles its chain in its new
// tier within 3 windows, and it stays there.
TEST(Balancer, SettlesWithinThreeWindowsOfATenfoldStep) {
  struct Step {
    double from_tps, to_tps;
    Tier before, after;
  };
  const Step steps[] = {{1'000, 10'000, Tier::light, Tier::medium},
                        {10'000, 100'000, Tier::medium, Tier::heavy},
                        {100'000, 10'000, Tier::heavy, Tier::medium},
                        {10'000, 1'000, Tier::medium, Tier::light},
                        {4'000, 40'000, Tier::light, Tier::medium}};
  for (const Step& step : steps) {
    SCOPED_TRACE(std::to_string(step.from_tps) + " -> " + std::to_string(step.to_tps));
    Rig rig(setup_of({2, 1}, {0, 1, 2}));
    rig.load.set_tps(0, step.from_tps);
    rig.load.set_tps(1, 3'000);
    for (int window = 0; window < 20; ++window) rig.step();  // 5 s: past the downgrade interval
    ASSERT_EQ(rig.tier(0), step.before);
    rig.load.set_tps(0, step.to_tps);
    int settled_at = -1;
    for (int window = 1; window <= 40; ++window) {
      const BalanceDecision decision = rig.step();
      for (const TierChange& change : decision.tier_changes) {
        EXPECT_EQ(change.chain, 0u);
        EXPECT_EQ(settled_at, -1) << "a second change at window " << window;
        EXPECT_EQ(change.to, step.after);
        settled_at = window;
      }
    }
    EXPECT_GE(settled_at, 1);
    EXPECT_LE(settled_at, 3);
  }
}

// Steady load with ±10-20 % noise at random levels (many close to a threshold), after each
// chain's first classification: no chain changes tier twice within 10 windows.
TEST(Balancer, SteadyNoisyLoadChangesTierAtMostOncePerTenWindows) {
  const uint64_t seed = test_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  for (int run = 0; run < 20; ++run) {
    const size_t chains = 6;
    Rig rig(setup_of({2, 1, 3, 1, 2, 1}, {0, 1, 2, 3}));
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const double thresholds[] = {5'000, 50'000};
    for (size_t chain = 0; chain < chains; ++chain) {
      // Half the chains sit within 20 % of a threshold, the others anywhere from 100 to 500,000.
      const double level = unit(random) < 0.5
                               ? thresholds[chain % 2] * (0.8 + 0.4 * unit(random))
                               : 100.0 * std::pow(5'000.0, unit(random));
      rig.load.set_tps(chain, level);
      rig.load.set_cost_ns(chain, 2'000 + 20'000 * unit(random));
    }
    const double amplitude = 0.10 + 0.10 * unit(random);
    std::vector<std::vector<int>> changes(chains);
    for (int window = 0; window < 200; ++window) {
      const BalanceDecision decision = rig.step(window_ns, noise_of(random, chains, amplitude));
      if (window == 0) continue;  // the first classification places chains from nothing
      for (const TierChange& change : decision.tier_changes) changes[change.chain].push_back(window);
    }
    for (size_t chain = 0; chain < chains; ++chain) {
      for (size_t i = 1; i < changes[chain].size(); ++i)
        EXPECT_GE(changes[chain][i] - changes[chain][i - 1], 10)
            << "seed " << seed << " run " << run << " chain " << chain << " (noise ±" << amplitude * 100 << " %)";
    }
  }
}

// A light chain's shard on a shared core never gets less than the minimum share's weight,
// however much the chains beside it commit, nor less than 1 with no minimum.
TEST(Balancer, MinimumShareIsGuaranteed) {
  for (uint32_t min_share_percent : {0u, 5u, 10u, 20u}) {
    SCOPED_TRACE("min_share_percent " + std::to_string(min_share_percent));
    BalancerKnobs knobs;
    knobs.min_share_percent = min_share_percent;
    // One core: four medium and light chains share it (nothing can be dedicated).
    Rig rig(setup_of({1, 1, 1, 1}, {7}), knobs);
    rig.load.set_tps(0, 40'000);
    rig.load.set_tps(1, 30'000);
    rig.load.set_tps(2, 20);  // light
    rig.load.set_tps(3, 0);   // idle: no cost known, no demand
    const uint32_t floor_weight =
        std::max(1u, uint32_t(std::ceil(min_share_percent * knobs.weight_max / 100.0 - 1e-9)));
    for (int window = 0; window < 30; ++window) {
      rig.step();
      const auto placement = rig.balancer.placement();
      uint32_t weight_sum = 0;
      for (const ShardPlacement& at : placement) {
        EXPECT_EQ(at.core, 7u);
        EXPECT_GE(at.weight, 1u);
        EXPECT_LE(at.weight, knobs.weight_max);
        weight_sum += at.weight;
      }
      EXPECT_GE(placement[2].weight, floor_weight) << "window " << window;
      EXPECT_GE(placement[3].weight, floor_weight) << "window " << window;
      // Within a unit of rounding of the share itself.
      EXPECT_GE(double(placement[2].weight + 1) / weight_sum, min_share_percent / 100.0);
    }
    // The busy chains split the rest by demand.
    const auto placement = rig.balancer.placement();
    EXPECT_GT(placement[0].weight, placement[1].weight);
    EXPECT_GT(placement[1].weight, placement[2].weight);
    if (min_share_percent == 0) {
      EXPECT_EQ(placement[3].weight, 1u);
    }
  }
}

// When a core's shards cannot all have the minimum, they get equal weights.
TEST(Balancer, MinimumSharesThatDoNotFitGiveEqualWeights) {
  BalancerKnobs knobs;
  knobs.min_share_percent = 50;
  Rig rig(setup_of({1, 1, 1}, {0}), knobs);
  rig.load.set_tps(0, 40'000);
  rig.load.set_tps(1, 100);
  rig.load.set_tps(2, 10);
  rig.step();
  for (const ShardPlacement& at : rig.balancer.placement()) EXPECT_EQ(at.weight, 11u);  // 32 / 3
}

// A heavy chain gets at most heavy_cores_max cores, its shards spread evenly over them and
// nobody else's there; one core always stays shared.
TEST(Balancer, HeavyCoresAreCappedAndOneCoreStaysShared) {
  struct Case {
    uint32_t heavy_cores_max;
    uint32_t cores_expected;
  };
  for (const Case& c : {Case{2, 2}, Case{0, 3}, Case{1, 1}, Case{9, 3}}) {
    SCOPED_TRACE("heavy_cores_max " + std::to_string(c.heavy_cores_max));
    BalancerKnobs knobs;
    knobs.heavy_cores_max = c.heavy_cores_max;
    Rig rig(setup_of({6, 2, 1}, {10, 11, 12, 13}), knobs);
    rig.load.set_tps(0, 200'000);
    rig.load.set_tps(1, 8'000);
    rig.load.set_tps(2, 500);
    const BalanceDecision decision = rig.step();
    EXPECT_TRUE(decision.slices_changed);
    EXPECT_EQ(rig.balancer.status(0).dedicated_cores, c.cores_expected);
    EXPECT_DOUBLE_EQ(rig.balancer.status(0).slice_cores, c.cores_expected);
    std::vector<uint32_t> heavy_cores = cores_of(rig.balancer, 0);
    heavy_cores.erase(std::unique(heavy_cores.begin(), heavy_cores.end()), heavy_cores.end());
    ASSERT_EQ(heavy_cores.size(), c.cores_expected);
    for (uint32_t core : heavy_cores) {
      EXPECT_EQ(chains_on(rig.balancer, core), std::vector<uint32_t>{0}) << "core " << core;
      const auto all = cores_of(rig.balancer, 0);
      const auto on_core = std::count(all.begin(), all.end(), core);
      EXPECT_GE(on_core, 6 / c.cores_expected);
      EXPECT_LE(on_core, (6 + c.cores_expected - 1) / c.cores_expected);
    }
    // The other chains share what is left.
    for (uint32_t chain : {1u, 2u}) {
      EXPECT_EQ(rig.balancer.status(chain).dedicated_cores, 0u);
      for (uint32_t core : cores_of(rig.balancer, chain))
        EXPECT_EQ(std::count(heavy_cores.begin(), heavy_cores.end(), core), 0);
    }
    // Moves say where from and where to; applying them to the setup gives the placement.
    std::vector<ShardPlacement> applied = setup_of({6, 2, 1}, {10, 11, 12, 13}).placement;
    for (const ShardMove& move : decision.moves) {
      EXPECT_EQ(applied[move.shard].core, move.from_core);
      applied[move.shard] = {move.to_core, move.weight};
    }
    for (const WeightChange& change : decision.weight_changes) {
      EXPECT_EQ(applied[change.shard].core, change.core);
      EXPECT_EQ(applied[change.shard].weight, change.from_weight);
      applied[change.shard].weight = change.to_weight;
    }
    EXPECT_EQ(applied, decision.placement);
  }
}

// With one core, nothing is dedicated: a heavy chain shares it.
TEST(Balancer, OneCoreIsAlwaysShared) {
  Rig rig(setup_of({2, 1}, {3}));
  rig.load.set_tps(0, 500'000);
  rig.load.set_tps(1, 100);
  const BalanceDecision decision = rig.step();
  EXPECT_EQ(rig.tier(0), Tier::heavy);
  EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 0u);
  EXPECT_TRUE(decision.moves.empty());
  EXPECT_EQ(chains_on(rig.balancer, 3), (std::vector<uint32_t>{0, 1}));
}

// A core that also runs tiles the balancer does not move (persist, gateway, schedulers) is
// never dedicated: on a host where every shard core runs such tiles (2 cores), a heavy
// chain gets weight on its shared core instead; elsewhere it gets only the other cores.
TEST(Balancer, CoresWithOtherTilesAreNeverDedicated) {
  {
    SCOPED_TRACE("2 cores, both running other tiles");
    BalancerSetup setup = setup_of({2, 1, 1, 1}, {0, 1});
    setup.cores_with_other_tiles = {0, 1};
    Rig rig(setup);
    rig.load.set_tps(0, 2'000);
    rig.load.set_tps(1, 2'000);
    rig.load.set_tps(2, 800'000);  // heavy, 8 cores' worth at 10 us a transaction
    rig.load.set_tps(3, 2'000);
    for (int window = 0; window < 20; ++window) {
      rig.step();
      EXPECT_EQ(rig.balancer.status(2).dedicated_cores, 0u) << "window " << window;
    }
    ASSERT_EQ(rig.tier(2), Tier::heavy);
    // The heavy chain's shard shares its core by weight, the largest there; the others keep
    // their minimum share.
    const auto placement = rig.balancer.placement();
    const uint32_t heavy_core = placement[3].core;
    std::vector<uint32_t> others = chains_on(rig.balancer, heavy_core);
    EXPECT_GT(others.size(), 1u);
    for (uint32_t shard = 0; shard < placement.size(); ++shard) {
      if (shard == 3 || placement[shard].core != heavy_core) continue;
      EXPECT_GT(placement[3].weight, placement[shard].weight);
      EXPECT_GE(placement[shard].weight, 4u);  // 10 % of 32, rounded up
    }
    EXPECT_GT(rig.balancer.status(2).slice_cores, 0.5);
  }
  {
    SCOPED_TRACE("4 cores, 2 running other tiles");
    BalancerSetup setup = setup_of({6, 2, 1}, {10, 11, 12, 13});
    setup.cores_with_other_tiles = {11, 10};
    Rig rig(setup);
    rig.load.set_tps(0, 200'000);
    rig.load.set_tps(1, 8'000);
    rig.load.set_tps(2, 500);
    rig.step();
    ASSERT_EQ(rig.tier(0), Tier::heavy);
    // Both cores without other tiles (none has to stay shared: 10 and 11 are).
    EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 2u);
    std::vector<uint32_t> heavy_cores = cores_of(rig.balancer, 0);
    heavy_cores.erase(std::unique(heavy_cores.begin(), heavy_cores.end()), heavy_cores.end());
    EXPECT_EQ(heavy_cores, (std::vector<uint32_t>{12, 13}));
    for (uint32_t core : {12u, 13u}) EXPECT_EQ(chains_on(rig.balancer, core), std::vector<uint32_t>{0});
    for (uint32_t chain : {1u, 2u})
      for (uint32_t core : cores_of(rig.balancer, chain)) EXPECT_TRUE(core == 10 || core == 11) << core;
  }
  {
    SCOPED_TRACE("3 cores, 1 running other tiles, two heavy chains");
    BalancerSetup setup = setup_of({1, 1, 1}, {0, 1, 2});
    setup.cores_with_other_tiles = {1};
    Rig rig(setup);
    rig.load.set_tps(0, 90'000);
    rig.load.set_tps(1, 80'000);
    rig.load.set_tps(2, 1'000);
    rig.step();
    EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 1u);
    EXPECT_EQ(rig.balancer.status(1).dedicated_cores, 1u);
    EXPECT_NE(cores_of(rig.balancer, 0), std::vector<uint32_t>{1});
    EXPECT_NE(cores_of(rig.balancer, 1), std::vector<uint32_t>{1});
    EXPECT_EQ(cores_of(rig.balancer, 2), std::vector<uint32_t>{1});
  }
}

// A heavy chain whose surge ends steps down windows_to_change windows after its own window
// rate falls below the band, long before the average of a large surge does, and its average
// restarts from that rate, so the surge it remembered does not step it back up.
TEST(Balancer, AHeavyChainStepsDownByItsWindowRate) {
  Rig rig(setup_of({1, 1}, {0, 1, 2}));
  rig.load.set_tps(0, 1'000'000);
  rig.load.set_tps(1, 2'000);
  for (int window = 0; window < 20; ++window) rig.step();  // 5 s: past the downgrade interval
  ASSERT_EQ(rig.tier(0), Tier::heavy);
  ASSERT_EQ(rig.balancer.status(0).dedicated_cores, 1u);
  rig.load.set_tps(0, 2'000);
  const BalanceDecision first = rig.step();
  EXPECT_TRUE(first.tier_changes.empty());
  EXPECT_DOUBLE_EQ(rig.balancer.status(0).tps_window, 2'000);
  EXPECT_GT(rig.balancer.status(0).tps_smoothed, 50'000 * 1.25);  // the average: still far above
  EXPECT_EQ(rig.balancer.status(0).windows_past_band, 1u);
  EXPECT_EQ(rig.balancer.status(0).band_toward, Tier::light);
  const BalanceDecision second = rig.step();
  ASSERT_EQ(second.tier_changes.size(), 1u);
  EXPECT_EQ(second.tier_changes[0].from, Tier::heavy);
  EXPECT_EQ(second.tier_changes[0].to, Tier::light);  // where the window's rate points
  EXPECT_DOUBLE_EQ(second.tier_changes[0].tps_smoothed, 2'000);
  EXPECT_DOUBLE_EQ(rig.balancer.status(0).tps_smoothed, 2'000);
  EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 0u);
  EXPECT_TRUE(second.slices_changed);
  for (int window = 0; window < 40; ++window) EXPECT_TRUE(rig.step().tier_changes.empty()) << window;
  EXPECT_EQ(rig.tier(0), Tier::light);

  // Without the window rule, the average alone (1,000,000 halving each window) would cross
  // 37,500 only after 5 windows: the same surge with the fall to 40,000 (inside the band)
  // keeps the chain heavy.
  Rig inside(setup_of({1, 1}, {0, 1, 2}));
  inside.load.set_tps(0, 1'000'000);
  for (int window = 0; window < 20; ++window) inside.step();
  inside.load.set_tps(0, 40'000);
  for (int window = 0; window < 40; ++window) EXPECT_TRUE(inside.step().tier_changes.empty()) << window;
  EXPECT_EQ(inside.tier(0), Tier::heavy);
}

// The window rule keeps the rest of the tier rules: one window below the band and one back
// inside restarts the count, a downgrade waits for downgrade_interval_ms, and only heavy
// chains step down by a window's rate (a medium one waits for its average).
// A disk that stalls for a while commits nothing, but the chain's demand has not gone:
// windows whose blocks waited and none became durable do not step a heavy chain down by
// their rate, and the chain stays heavy through a stall of 4 windows (a second).
TEST(Balancer, AStalledLogDoesNotStepAHeavyChainDown) {
  Rig rig(setup_of({1, 1}, {0, 1, 2}));
  rig.load.set_tps(0, 1'000'000);
  rig.load.set_tps(1, 1'000);
  for (int window = 0; window < 20; ++window) rig.step();
  ASSERT_EQ(rig.tier(0), Tier::heavy);
  rig.load.set_stalled(0, true);
  for (int window = 0; window < 4; ++window) {
    EXPECT_TRUE(rig.step().tier_changes.empty()) << window;
    EXPECT_TRUE(rig.balancer.status(0).log_stalled) << window;
    EXPECT_EQ(rig.balancer.status(0).tps_window, 0.0) << window;
  }
  EXPECT_EQ(rig.tier(0), Tier::heavy);
  rig.load.set_stalled(0, false);
  for (int window = 0; window < 4; ++window) EXPECT_TRUE(rig.step().tier_changes.empty()) << window;
  EXPECT_FALSE(rig.balancer.status(0).log_stalled);
  EXPECT_EQ(rig.tier(0), Tier::heavy);

  // Without the stall flag the same two empty windows step it down: the rule still works.
  rig.load.set_tps(0, 0);
  rig.step();
  EXPECT_FALSE(rig.balancer.status(0).log_stalled);
  EXPECT_EQ(rig.step().tier_changes.size(), 1u);
  EXPECT_NE(rig.tier(0), Tier::heavy);
}

TEST(Balancer, WindowRateDowngradesKeepTheRules) {
  Rig rig(setup_of({1, 1}, {0, 1, 2}));
  rig.load.set_tps(0, 1'000'000);
  for (int window = 0; window < 20; ++window) rig.step();
  ASSERT_EQ(rig.tier(0), Tier::heavy);
  for (int round = 0; round < 10; ++round) {
    rig.load.set_tps(0, 10'000);
    EXPECT_TRUE(rig.step().tier_changes.empty());
    EXPECT_EQ(rig.balancer.status(0).windows_past_band, 1u);
    rig.load.set_tps(0, 1'000'000);
    EXPECT_TRUE(rig.step().tier_changes.empty());
    EXPECT_EQ(rig.balancer.status(0).windows_past_band, 0u);
  }
  EXPECT_EQ(rig.tier(0), Tier::heavy);

  // Heavy for only 3 windows, then calm at once: held until 2.5 s after the upgrade.
  Rig held(setup_of({1, 1}, {0, 1, 2}));
  held.load.set_tps(0, 1'000);
  held.step();
  held.load.set_tps(0, 1'000'000);
  held.step();
  ASSERT_EQ(held.step().tier_changes.size(), 1u);
  ASSERT_EQ(held.tier(0), Tier::heavy);
  const uint64_t heavy_at_ns = held.load.now_ns();
  held.load.set_tps(0, 1'000);
  uint64_t light_at_ns = 0;
  for (int window = 0; window < 20 && light_at_ns == 0; ++window) {
    if (!held.step().tier_changes.empty()) {
      light_at_ns = held.load.now_ns();
    } else if (held.balancer.status(0).windows_past_band >= 2) {
      EXPECT_TRUE(held.balancer.status(0).downgrade_held);
    }
  }
  EXPECT_EQ(light_at_ns, heavy_at_ns + 2'500'000'000ull);
  EXPECT_EQ(held.tier(0), Tier::light);

  // A medium chain's window rate far below its band does not move it before its average.
  BalancerKnobs knobs;
  knobs.half_life_ms = 2'000;
  Rig medium(setup_of({1, 1}, {0, 1, 2}), knobs);
  medium.load.set_tps(0, 30'000);
  for (int window = 0; window < 20; ++window) medium.step();
  ASSERT_EQ(medium.tier(0), Tier::medium);
  medium.load.set_tps(0, 100);
  for (int window = 0; window < 3; ++window) EXPECT_TRUE(medium.step().tier_changes.empty()) << window;
  EXPECT_EQ(medium.tier(0), Tier::medium);
}

// A chain steps down at most once per downgrade_interval_ms, counted from its last change
// of either kind; meanwhile its status says a downgrade is held.
TEST(Balancer, DowngradesAreRateLimited) {
  BalancerKnobs knobs;
  knobs.downgrade_interval_ms = 2'000;  // 8 windows
  knobs.half_life_ms = 1;               // the average is the last window's rate
  Rig rig(setup_of({2, 1}, {0, 1, 2}), knobs);
  rig.load.set_tps(0, 1'000);
  rig.load.set_tps(1, 1'000);
  for (int window = 0; window < 20; ++window) rig.step();
  rig.load.set_tps(0, 100'000);
  rig.step();
  ASSERT_EQ(rig.step().tier_changes.size(), 1u);
  ASSERT_EQ(rig.tier(0), Tier::heavy);
  const uint64_t heavy_at_ns = rig.load.now_ns();
  EXPECT_EQ(rig.balancer.status(0).tier_changed_ns, heavy_at_ns);

  // The load falls to medium at once: no downgrade until 2 s after the upgrade.
  rig.load.set_tps(0, 10'000);
  uint64_t medium_at_ns = 0;
  for (int window = 0; window < 20 && medium_at_ns == 0; ++window) {
    const BalanceDecision decision = rig.step();
    if (!decision.tier_changes.empty()) {
      EXPECT_EQ(decision.tier_changes[0].to, Tier::medium);
      medium_at_ns = rig.load.now_ns();
    } else if (rig.balancer.status(0).windows_past_band >= knobs.windows_to_change) {
      EXPECT_TRUE(rig.balancer.status(0).downgrade_held);
    }
  }
  EXPECT_EQ(medium_at_ns, heavy_at_ns + 2'000'000'000ull);
  EXPECT_FALSE(rig.balancer.status(0).downgrade_held);

  // And falls again to light: the next downgrade waits another interval.
  rig.load.set_tps(0, 100);
  uint64_t light_at_ns = 0;
  for (int window = 0; window < 20 && light_at_ns == 0; ++window) {
    if (!rig.step().tier_changes.empty()) light_at_ns = rig.load.now_ns();
  }
  EXPECT_EQ(rig.tier(0), Tier::light);
  EXPECT_EQ(light_at_ns, medium_at_ns + 2'000'000'000ull);

  // Upgrades are not held: a surge gets its cores after windows_to_change windows.
  rig.load.set_tps(0, 100'000);
  EXPECT_TRUE(rig.step().tier_changes.empty());
  EXPECT_EQ(rig.step().tier_changes.size(), 1u);
  EXPECT_EQ(rig.tier(0), Tier::heavy);
}

// Once settled, a steady (noisy) load moves no shard tile.
TEST(Balancer, SteadyStateMakesNoMoves) {
  const uint64_t seed = test_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  BalancerKnobs knobs;
  knobs.heavy_cores_max = 2;  // chain 0 takes two of the five cores; the others share three
  for (int run = 0; run < 10; ++run) {
    Rig rig(setup_of({4, 2, 2, 1, 1, 3}, {0, 1, 2, 3, 4}), knobs);
    const double levels[] = {150'000, 30'000, 12'000, 3'000, 200, 20'000};
    for (uint32_t chain = 0; chain < 6; ++chain) rig.load.set_tps(chain, levels[chain]);
    for (int window = 0; window < 10; ++window) rig.step(window_ns, noise_of(random, 6, 0.2));
    size_t weight_changes = 0;
    for (int window = 0; window < 200; ++window) {
      const BalanceDecision decision = rig.step(window_ns, noise_of(random, 6, 0.2));
      ASSERT_TRUE(decision.moves.empty()) << "seed " << seed << " run " << run << " window " << window << ": shard "
                                          << decision.moves[0].shard << " " << decision.moves[0].from_core
                                          << " -> " << decision.moves[0].to_core;
      ASSERT_TRUE(decision.tier_changes.empty());
      ASSERT_FALSE(decision.slices_changed);
      weight_changes += decision.weight_changes.size();
    }
    // Weights follow the demand but not its noise: far fewer than one change per shard and window.
    EXPECT_LT(weight_changes, 13u * 200u / 10u) << "seed " << seed << " run " << run;
  }
}

// The first classification places shards by the load (the plan knew nothing of it), as
// well as single moves allow; a shard a move cannot help stays.
TEST(Balancer, FirstClassificationSpreadsTheSharedCores) {
  // Three busy single-shard chains and a light one, all placed on core 0 of two.
  BalancerSetup setup = setup_of({1, 1, 1, 1}, {0, 1});
  for (ShardPlacement& at : setup.placement) at.core = 0;
  Rig rig(setup);
  for (uint32_t chain = 0; chain < 3; ++chain) rig.load.set_tps(chain, 20'000);  // 0.2 cores each
  rig.load.set_tps(3, 100);
  const BalanceDecision decision = rig.step();
  ASSERT_EQ(decision.moves.size(), 1u);  // 0.6 : 0 -> 0.4 : 0.2; then 2 : 1 shards cannot do better
  EXPECT_EQ(decision.moves[0].shard, 0u);
  EXPECT_EQ(decision.moves[0].from_core, 0u);
  EXPECT_EQ(decision.moves[0].to_core, 1u);
  for (int window = 0; window < 40; ++window) EXPECT_TRUE(rig.step().moves.empty());

  // Idle cores are not worth a move: the same placement at a hundredth of the rate stays.
  Rig idle(setup);
  for (uint32_t chain = 0; chain < 3; ++chain) idle.load.set_tps(chain, 200);
  for (int window = 0; window < 10; ++window) EXPECT_TRUE(idle.step().moves.empty());
}

// In a steady state, shards move only after the shared cores have been at least 2× apart,
// with a paying move, for 2 s; then they are balanced to within 1.25×.
TEST(Balancer, LastingLargeImbalanceMovesShards) {
  BalancerSetup setup = setup_of({1, 1, 1, 1}, {0, 1});
  setup.placement[1].core = 0;  // chains 0 and 1 on core 0, chains 2 and 3 on core 1
  setup.placement[2].core = 1;
  Rig rig(setup);
  for (uint32_t chain = 0; chain < 4; ++chain) rig.load.set_tps(chain, 20'000);  // medium, 0.2 cores each
  for (int window = 0; window < 20; ++window) ASSERT_TRUE(rig.step().moves.empty());
  // Chains 0 and 1 grow and 2 and 3 shrink, all staying medium: 0.8 against 0.12 cores.
  rig.load.set_tps(0, 40'000);
  rig.load.set_tps(1, 40'000);
  rig.load.set_tps(2, 6'000);
  rig.load.set_tps(3, 6'000);
  int trigger_window = -1, moved_window = -1;
  BalanceDecision moved;
  for (int window = 0; window < 40 && moved_window < 0; ++window) {
    const BalanceDecision decision = rig.step();
    double demand[2] = {0, 0};
    for (uint32_t chain = 0; chain < 4; ++chain)
      demand[rig.balancer.placement()[chain].core] += rig.balancer.status(chain).demand_cores;
    if (trigger_window < 0 && demand[0] >= 2 * demand[1]) trigger_window = window;
    if (!decision.moves.empty()) moved_window = window, moved = decision;
  }
  for (uint32_t chain = 0; chain < 4; ++chain) ASSERT_EQ(rig.tier(chain), Tier::medium);
  // Window 0 is already 2.3× apart (0.6 : 0.26), but moving a busy shard would leave 0.56
  // of the 0.6, not 10 % less; window 1 (0.7 : 0.19) has a paying move, and 2 s later,
  // 8 windows of 250 ms, the shards move.
  EXPECT_EQ(trigger_window, 0);
  EXPECT_EQ(moved_window, 1 + 8);
  // A busy shard to the idle core, then a small one back: 0.46 : 0.46.
  ASSERT_EQ(moved.moves.size(), 2u);
  EXPECT_EQ(moved.moves[0].shard, 0u);
  EXPECT_EQ(moved.moves[0].to_core, 1u);
  EXPECT_EQ(moved.moves[1].to_core, 0u);
  for (int window = 0; window < 40; ++window) EXPECT_TRUE(rig.step().moves.empty());
}

// A counter that goes back was restarted: its new value is the window's growth, never a
// negative rate, and the next window measures from it.
TEST(Balancer, CountersThatGoBackwardsAreRestarts) {
  Rig rig(setup_of({1, 1}, {0, 1}));
  rig.load.set_tps(0, 20'000);
  rig.load.set_tps(1, 2'000);
  for (int window = 0; window < 10; ++window) rig.step();
  const double cost_before = rig.balancer.status(0).cost_ns_per_tx;
  // Chain 0's counters restart and have counted 1,000 transactions and 10 ms since.
  rig.load.counters()[0] = ChainCounters{1'000, 10'000'000};
  const uint64_t now_ns = rig.load.now_ns() + window_ns;
  rig.balancer.step(now_ns, rig.load.counters());
  const ChainStatus& status = rig.balancer.status(0);
  EXPECT_GE(status.tps_smoothed, 0);
  EXPECT_DOUBLE_EQ(status.tps_smoothed, 20'000 + 0.5 * (4'000 - 20'000));
  EXPECT_DOUBLE_EQ(status.cost_ns_per_tx, cost_before);  // 10 us per transaction, as before
  // Only busy time restarts: a window with many transactions and little CPU is a cheap window.
  rig.load.counters()[1].committed_txs += 500;
  rig.load.counters()[1].busy_ns = 1'000'000;
  rig.balancer.step(now_ns + window_ns, rig.load.counters());
  EXPECT_DOUBLE_EQ(rig.balancer.status(1).cost_ns_per_tx, cost_ns_default + 0.5 * (2'000 - cost_ns_default));
  EXPECT_GE(rig.balancer.status(0).tps_smoothed, 0);
  EXPECT_DOUBLE_EQ(rig.balancer.status(0).tps_smoothed, 6'000);  // (20,000 - 16,000 / 2) / 2: nothing committed
}

// A window with no commits keeps the last cost per transaction.
TEST(Balancer, AnIdleWindowKeepsTheCost) {
  Rig rig(setup_of({1}, {0}));
  rig.load.set_tps(0, 4'000);
  rig.load.set_cost_ns(0, 30'000);
  for (int window = 0; window < 5; ++window) rig.step();
  rig.load.set_tps(0, 0);
  rig.load.counters()[0].busy_ns += 7'000'000;  // polling without committing
  rig.step();
  EXPECT_DOUBLE_EQ(rig.balancer.status(0).cost_ns_per_tx, 30'000);
  EXPECT_DOUBLE_EQ(rig.balancer.status(0).tps_smoothed, 2'000);
}

// A late window weighs for the time it covers: one 500 ms window moves the average as far
// as two of 250 ms at the same rate.
TEST(Balancer, ALateWindowWeighsItsTime) {
  Rig on_time(setup_of({1}, {0}));
  Rig late(setup_of({1}, {0}));
  for (Rig* rig : {&on_time, &late}) {
    rig->load.set_tps(0, 1'000);
    rig->step();
    rig->load.set_tps(0, 9'000);
  }
  on_time.step();
  on_time.step();
  late.step(2 * window_ns);
  EXPECT_NEAR(late.balancer.status(0).tps_smoothed, on_time.balancer.status(0).tps_smoothed, 1e-6);
  EXPECT_NEAR(late.balancer.status(0).tps_smoothed, 1'000 + 0.75 * 8'000, 1e-6);
}

// More heavy chains than spare cores: the most demanding get cores, one each, the others
// share; ties go to the lower chain index; and a chain holding cores keeps them against a
// challenger less than the margin ahead.
TEST(Balancer, MoreHeavyChainsThanCores) {
  Rig rig(setup_of({1, 1, 1, 1, 1}, {0, 1, 2}));
  rig.load.set_tps(0, 60'000);
  rig.load.set_tps(1, 90'000);
  rig.load.set_tps(2, 70'000);
  rig.load.set_tps(3, 70'000);
  rig.load.set_tps(4, 1'000);
  rig.step();
  for (uint32_t chain = 0; chain < 4; ++chain) ASSERT_EQ(rig.tier(chain), Tier::heavy);
  const uint32_t dedicated_expected[] = {0, 1, 1, 0, 0};  // 90,000, then 70,000 of the lower index
  for (uint32_t chain = 0; chain < 5; ++chain)
    EXPECT_EQ(rig.balancer.status(chain).dedicated_cores, dedicated_expected[chain]) << chain;
  const uint32_t core_1 = cores_of(rig.balancer, 1)[0], core_2 = cores_of(rig.balancer, 2)[0];
  EXPECT_NE(core_1, core_2);
  EXPECT_EQ(chains_on(rig.balancer, core_1), std::vector<uint32_t>{1});
  EXPECT_EQ(chains_on(rig.balancer, core_2), std::vector<uint32_t>{2});
  // The shared core holds the rest.
  const uint32_t shared = 0 + 1 + 2 - core_1 - core_2;
  EXPECT_EQ(chains_on(rig.balancer, shared), (std::vector<uint32_t>{0, 3, 4}));

  // Chain 3 edges ahead of chain 2 (by less than the margin) while chain 0 leaves heavy, so
  // the cores are dealt again: chain 2 keeps its core.
  rig.load.set_tps(3, 80'000);
  rig.load.set_tps(0, 1'000);
  for (int window = 0; window < 20; ++window) rig.step();
  EXPECT_EQ(rig.tier(0), Tier::light);
  EXPECT_EQ(rig.balancer.status(2).dedicated_cores, 1u);
  EXPECT_EQ(rig.balancer.status(3).dedicated_cores, 0u);
  EXPECT_EQ(cores_of(rig.balancer, 2), std::vector<uint32_t>{core_2});
}

// Heavy chains share spare cores one at a time, most demanding first.
TEST(Balancer, SpareCoresAreDealtInTurn) {
  Rig rig(setup_of({4, 4, 1}, {0, 1, 2, 3, 4, 5}));
  rig.load.set_tps(0, 100'000);
  rig.load.set_tps(1, 200'000);
  rig.load.set_tps(2, 10);
  rig.step();
  EXPECT_EQ(rig.balancer.status(1).dedicated_cores, 3u);  // 5 spare cores: 3 and 2
  EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 2u);
  EXPECT_EQ(cores_of(rig.balancer, 2).size(), 1u);
}

// When a heavy chain calms down, its cores go back to the shared group and the other
// chains spread over them again, once the imbalance is large.
TEST(Balancer, CoresReturnWhenAChainCalms) {
  Rig rig(setup_of({2, 1, 1}, {0, 1, 2}));
  rig.load.set_tps(0, 120'000);
  rig.load.set_tps(1, 30'000);
  rig.load.set_tps(2, 30'000);
  rig.step();
  ASSERT_EQ(rig.balancer.status(0).dedicated_cores, 2u);
  EXPECT_EQ(cores_of(rig.balancer, 1), cores_of(rig.balancer, 2));  // the one shared core
  rig.load.set_tps(0, 2'000);
  for (int window = 0; window < 30; ++window) rig.step();
  EXPECT_EQ(rig.tier(0), Tier::light);
  EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 0u);
  EXPECT_NE(cores_of(rig.balancer, 1), cores_of(rig.balancer, 2));
}

// The same knobs, setup and script give the same decisions, bit for bit.
TEST(Balancer, DecisionsAreDeterministic) {
  const uint64_t seed = test_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::vector<std::string> transcripts;
  for (int copy = 0; copy < 2; ++copy) {
    std::mt19937_64 random(seed);
    Rig rig(setup_of({3, 2, 1, 1, 2}, {4, 2, 9, 5}));
    std::string transcript;
    for (int window = 0; window < 300; ++window) {
      if (window % 25 == 0) {
        for (uint32_t chain = 0; chain < 5; ++chain)
          rig.load.set_tps(chain, 100.0 * std::pow(2'000.0, std::uniform_real_distribution<double>(0, 1)(random)));
      }
      const BalanceDecision decision = rig.step(window_ns, noise_of(random, 5, 0.3));
      for (const TierChange& change : decision.tier_changes)
        transcript += "t" + std::to_string(change.chain) + std::string(to_string(change.to)) + " ";
      for (const ShardMove& move : decision.moves)
        transcript += "m" + std::to_string(move.shard) + ":" + std::to_string(move.to_core) + " ";
      for (const ShardPlacement& at : decision.placement)
        transcript += std::to_string(at.core) + "/" + std::to_string(at.weight) + " ";
      transcript += "\n";
    }
    transcripts.push_back(transcript);
  }
  EXPECT_EQ(transcripts[0], transcripts[1]);
}

// Disabled, the balancer measures and classifies for the operator but never moves a
// shard or changes a weight.
TEST(Balancer, DisabledMeasuresButNeverMoves) {
  BalancerKnobs knobs;
  knobs.enabled = false;
  const BalancerSetup setup = setup_of({2, 1}, {0, 1, 2});
  Rig rig(setup, knobs);
  rig.load.set_tps(0, 200'000);
  for (int window = 0; window < 10; ++window) {
    const BalanceDecision decision = rig.step();
    EXPECT_FALSE(decision.slices_changed);
    EXPECT_TRUE(decision.moves.empty());
    EXPECT_TRUE(decision.weight_changes.empty());
    EXPECT_EQ(decision.placement, setup.placement);
  }
  EXPECT_EQ(rig.tier(0), Tier::heavy);
  EXPECT_EQ(rig.balancer.status(0).dedicated_cores, 0u);
}

TEST(Balancer, CreateRejectsBadKnobsAndSetups) {
  auto error_of = [](const BalancerKnobs& knobs, const BalancerSetup& setup) {
    Result<Balancer> balancer = Balancer::create(knobs, setup);
    return balancer ? std::string("created") : balancer.error().message;
  };
  const BalancerSetup good = setup_of({2, 1}, {0, 1});
  BalancerKnobs knobs;
  knobs.medium_tps = knobs.heavy_tps;
  EXPECT_EQ(error_of(knobs, good), "balancer: heavy_tps (50000) must be greater than medium_tps (50000)");
  knobs = {};
  knobs.half_life_ms = 0;
  EXPECT_EQ(error_of(knobs, good), "balancer: half_life_ms must be at least 1");
  knobs = {};
  knobs.margin_percent = 100;
  EXPECT_EQ(error_of(knobs, good), "balancer: margin_percent must be below 100, got 100");
  knobs = {};
  knobs.windows_to_change = 0;
  EXPECT_EQ(error_of(knobs, good), "balancer: windows_to_change must be at least 1");
  knobs = {};
  knobs.min_share_percent = 101;
  EXPECT_EQ(error_of(knobs, good), "balancer: min_share_percent must be at most 100, got 101");
  knobs = {};
  knobs.weight_max = 1001;
  EXPECT_EQ(error_of(knobs, good), "balancer: weight_max must be from 1 to 1000, got 1001");

  BalancerSetup setup = good;
  setup.chains[1].shards = 0;
  EXPECT_EQ(error_of({}, setup), "balancer: chain \"c1\" has no shards");
  setup = good;
  setup.cores = {0, 1, 0};
  EXPECT_EQ(error_of({}, setup), "balancer: core 0 is listed twice");
  setup = good;
  setup.cores.clear();
  EXPECT_EQ(error_of({}, setup), "balancer: no cores for 3 shards");
  setup = good;
  setup.placement.pop_back();
  EXPECT_EQ(error_of({}, setup), "balancer: the placement holds 2 shards, the chains 3");
  setup = good;
  setup.placement[1].core = 5;
  EXPECT_EQ(error_of({}, setup), "balancer: shard 1 is placed on core 5, which is not one of the cores given");
  setup = good;
  setup.placement[2].weight = 0;
  EXPECT_EQ(error_of({}, setup), "balancer: shard 2 has weight 0");
  setup = good;
  setup.cores_with_other_tiles = {1, 2};
  EXPECT_EQ(error_of({}, setup), "balancer: core 2 runs other tiles but is not one of the cores given");
  EXPECT_EQ(error_of({}, BalancerSetup{}), "created");  // no chains: nothing to balance
}

}  // namespace
}  // namespace keel::balance
