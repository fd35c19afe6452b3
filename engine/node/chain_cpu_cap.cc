#include "engine/node/chain_cpu_cap.h"

#include <time.h>

#include <cassert>

#include "shm/segment.h"

namespace keel::node {

namespace {

// CPU time of the calling thread: what a cgroup charges, so that time the thread spends
// preempted (by the load generators on a small host) does not count against its chain.
uint64_t thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000ull + uint64_t(now.tv_nsec);
}

}  // namespace

ChainCpuBudget::ChainCpuBudget(ChainCpuCap cap)
    : period_ns_(uint64_t(cap.period_us) * 1000), quota_ns_(uint64_t(cap.cores * double(period_ns_))) {
  assert(cap.period_us > 0 && cap.cores > 0);
}

bool ChainCpuBudget::may_run(uint64_t now_ns) {
  const uint64_t period = now_ns / period_ns_;
  uint64_t counting = period_.load(std::memory_order_acquire);
  if (counting < period && period_.compare_exchange_strong(counting, period, std::memory_order_acq_rel))
    used_ns_.store(0, std::memory_order_relaxed);
  if (used_ns_.load(std::memory_order_relaxed) < quota_ns_) return true;
  // Count each period once, whichever shard finds it spent first.
  if (throttled_period_.exchange(period + 1, std::memory_order_relaxed) != period + 1)
    periods_throttled_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

size_t CappedTile::poll(size_t budget) {
  if (draining_) return tile_->poll(budget);
  if (!budget_->may_run(shm::monotonic_ns())) return 0;
  const uint64_t cpu_start_ns = thread_cpu_ns();
  const size_t done = tile_->poll(budget);
  budget_->charge(thread_cpu_ns() - cpu_start_ns);
  return done;
}

void CappedTile::begin_drain() {
  draining_ = true;
  tile_->begin_drain();
}

}  // namespace keel::node
