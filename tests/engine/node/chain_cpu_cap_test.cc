// The static split's per-chain CPU cap (engine/node/chain_cpu_cap.h): a budget refills
// every period, a chain out of budget is not polled until the next one, each period out of
// budget is counted once, and draining lifts the cap.
#include "engine/node/chain_cpu_cap.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace keel::node {
namespace {

constexpr uint64_t ms = 1'000'000;

TEST(ChainCpuBudget, RunsUntilTheQuotaIsSpentThenWaitsForTheNextPeriod) {
  ChainCpuBudget budget({.cores = 0.5, .period_us = 10'000});  // 5 ms in every 10 ms
  EXPECT_EQ(budget.quota_ns(), 5 * ms);
  const uint64_t period = 1000 * 10 * ms;
  EXPECT_TRUE(budget.may_run(period));
  budget.charge(4 * ms);
  EXPECT_TRUE(budget.may_run(period + 3 * ms));
  budget.charge(1 * ms);
  EXPECT_FALSE(budget.may_run(period + 5 * ms));
  EXPECT_FALSE(budget.may_run(period + 9 * ms));
  EXPECT_EQ(budget.periods_throttled(), 1u) << "a period is counted once";
  EXPECT_TRUE(budget.may_run(period + 10 * ms)) << "the next period refills it";
  budget.charge(6 * ms);
  EXPECT_FALSE(budget.may_run(period + 11 * ms));
  EXPECT_EQ(budget.periods_throttled(), 2u);
  EXPECT_TRUE(budget.may_run(period + 35 * ms)) << "periods may pass unseen";
}

TEST(ChainCpuBudget, ShardsOfOneChainShareTheBudget) {
  ChainCpuBudget budget({.cores = 1.0, .period_us = 1'000});
  const uint64_t period = 5000 * ms;
  std::thread other([&] {
    for (int poll = 0; poll < 1000; ++poll)
      if (budget.may_run(period)) budget.charge(1000);
  });
  for (int poll = 0; poll < 1000; ++poll)
    if (budget.may_run(period)) budget.charge(1000);
  other.join();
  // 1 ms a period: the two shards together get about 1,000 polls of 1 us in, never both 1,000.
  EXPECT_FALSE(budget.may_run(period));
  EXPECT_EQ(budget.periods_throttled(), 1u);
}

class CountingTile final : public engine::Tile {
 public:
  std::string_view name() const override { return "shard.test.0"; }
  size_t poll(size_t budget) override {
    ++polls;
    // Work that takes measurable time, so that each poll is charged.
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
    while (std::chrono::steady_clock::now() < until) {
    }
    return budget;
  }
  void begin_drain() override { drained = true; }
  bool quiescent() override { return true; }
  int polls = 0;
  bool drained = false;
};

TEST(CappedTile, IsNotPolledOutOfBudgetUntilItDrains) {
  // A quota of 1 us in a period of 100 s: the first poll spends it (the chance that a
  // period boundary falls within this test is about one in ten million).
  ChainCpuBudget budget({.cores = 1e-8, .period_us = 100'000'000});
  CountingTile inner;
  CappedTile capped(&inner, &budget);
  EXPECT_EQ(capped.name(), "shard.test.0");
  EXPECT_EQ(capped.poll(64), 64u);
  EXPECT_EQ(capped.poll(64), 0u);
  EXPECT_EQ(capped.poll(64), 0u);
  EXPECT_EQ(inner.polls, 1);
  EXPECT_EQ(budget.periods_throttled(), 1u);
  capped.begin_drain();
  EXPECT_TRUE(inner.drained);
  EXPECT_EQ(capped.poll(64), 64u) << "a drain is never held up by the cap";
  EXPECT_EQ(inner.polls, 2);
  EXPECT_TRUE(capped.quiescent());
}

}  // namespace
}  // namespace keel::node
