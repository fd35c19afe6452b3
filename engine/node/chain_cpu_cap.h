// engine/node/chain_cpu_cap.h: a hard cap on each chain's CPU time: the static split that
// `keel bench balance` measures the balancer against, the way an operator would set one
// up by hand with a cgroup's cpu.max per chain. In every period a chain's shard tiles
// together run for at most cores × period. Once the chain has used that much, its tiles are
// not polled again until the next period starts, even when their core has nothing else to
// do: unlike the core loop's weights, a cap is not work-conserving.
//
//   ChainCpuBudget budget({.cores = 0.5, .period_us = 20'000});  // one per chain
//   CappedTile capped(&shard_tile, &budget);  // the core runs `capped` where the shard would be
//   ...
//   uint64_t throttled = budget.periods_throttled();
//
// Periods run on the monotonic clock. What a chain is charged is its threads' CPU time in
// its polls (CLOCK_THREAD_CPUTIME_ID), as a cgroup counts it, so a poll preempted by
// another process costs its chain only the time it ran. Each poll of a capped tile costs
// a monotonic clock read and two reads of the thread's CPU clock (system calls, about
// 0.1-0.3 us each). A poll's time is charged to its chain when the poll ends, so a chain
// overruns its cap by at most one poll per shard per period (a shard poll is at most
// weight × tile_budget transactions: tens of microseconds).
// The chain's shards may run on different cores and share one budget: at the turn of a
// period the first one to see it resets the budget, and time charged just before that reset
// by the other shard may be lost. This error is bounded by one poll.
#pragma once

#include <atomic>
#include <cstdint>

#include "engine/core/tile.h"

namespace keel::node {

struct ChainCpuCap {
  double cores = 1.0;           // a chain's share: CPU seconds per second, > 0
  uint32_t period_us = 20'000;  // how often the budget refills (cgroup cpu.max's period is 100 ms)
};

// One chain's budget, shared by its shard tiles (thread-safe).
class ChainCpuBudget {
 public:
  explicit ChainCpuBudget(ChainCpuCap cap);
  // True while the chain has budget left in the period holding now_ns (CLOCK_MONOTONIC).
  bool may_run(uint64_t now_ns);
  // Adds the CPU time of one poll.
  void charge(uint64_t busy_ns) { used_ns_.fetch_add(busy_ns, std::memory_order_relaxed); }
  // Periods in which the chain ran out of budget.
  uint64_t periods_throttled() const { return periods_throttled_.load(std::memory_order_relaxed); }
  uint64_t quota_ns() const { return quota_ns_; }

 private:
  uint64_t period_ns_;
  uint64_t quota_ns_;
  std::atomic<uint64_t> period_{0};            // the period the budget is counting
  std::atomic<uint64_t> used_ns_{0};           // in that period
  std::atomic<uint64_t> throttled_period_{0};  // the last period found out of budget, plus 1
  std::atomic<uint64_t> periods_throttled_{0};
};

// A tile polled only while its chain's budget lasts. Draining lifts the cap, so that a
// stop never waits on it.
class CappedTile final : public engine::Tile {
 public:
  CappedTile(engine::Tile* tile, ChainCpuBudget* budget) : tile_(tile), budget_(budget) {}
  std::string_view name() const override { return tile_->name(); }
  size_t poll(size_t budget) override;
  void begin_drain() override;
  bool quiescent() override { return tile_->quiescent(); }

 private:
  engine::Tile* tile_;
  ChainCpuBudget* budget_;
  bool draining_ = false;
};

}  // namespace keel::node
