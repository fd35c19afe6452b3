#include "engine/node/chain_cpu_cap.h"

#include <cassert>

#include "shm/segment.h"

namespace keel::node {

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
  const uint64_t start_ns = shm::monotonic_ns();
  if (!budget_->may_run(start_ns)) return 0;
  const size_t done = tile_->poll(budget);
  budget_->charge(shm::monotonic_ns() - start_ns);
  return done;
}

void CappedTile::begin_drain() {
  draining_ = true;
  tile_->begin_drain();
}

}  // namespace keel::node
