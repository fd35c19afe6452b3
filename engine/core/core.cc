#include "engine/core/core.h"

#include <sched.h>

#include <future>

#include "numa/binding.h"

namespace keel::engine {

CoreLoop::CoreLoop(CoreOptions options, std::vector<WeightedTile> tiles)
    : options_(std::move(options)), tiles_(std::move(tiles)), deficits_(tiles_.size(), 0) {
  assert(!tiles_.empty());
  assert(options_.idle.strategy == config::IdleStrategy::spin || options_.doorbell != nullptr);
}

void CoreLoop::begin_drain() {
  drain_requested_.store(true, std::memory_order_release);
  if (options_.doorbell != nullptr) shm::doorbell_wake(options_.doorbell);
}

void CoreLoop::stop_now() {
  stop_now_.store(true, std::memory_order_release);
  if (options_.doorbell != nullptr) shm::doorbell_wake(options_.doorbell);
}

size_t CoreLoop::run_round() {
  size_t work_done = 0;
  for (size_t index = 0; index < tiles_.size(); ++index) {
    uint64_t quantum = uint64_t(tiles_[index].weight) * options_.tile_budget;
    deficits_[index] += quantum;
    size_t done = tiles_[index].tile->poll(deficits_[index]);
    // An idle tile keeps no credit; a busy one carries what it could not use, capped at
    // one quantum so that a long-idle tile cannot come back with a burst.
    deficits_[index] = done == 0 ? 0 : std::min<uint64_t>(deficits_[index] - std::min<uint64_t>(done, deficits_[index]), quantum);
    work_done += done;
  }
  ++stats_.rounds;
  stats_.work_done += work_done;
  return work_done;
}

void CoreLoop::idle(uint32_t& idle_streak) {
  ++stats_.idle_rounds;
  ++idle_streak;
  const IdlePolicy& policy = options_.idle;
  if (policy.strategy == config::IdleStrategy::spin) {
    __builtin_ia32_pause();
    return;
  }
  if (policy.strategy == config::IdleStrategy::adaptive && idle_streak <= policy.spin_polls) {
    __builtin_ia32_pause();
    return;
  }
  if (policy.strategy == config::IdleStrategy::adaptive && idle_streak <= policy.spin_polls + 16) {
    sched_yield();
    return;
  }
  // Announce the sleep, then look once more: a producer that published before seeing us
  // as a sleeper is caught by this last round; one that publishes after rings us.
  uint32_t sequence = shm::doorbell_prepare_sleep(options_.doorbell);
  bool leaving = stop_now_.load(std::memory_order_acquire) ||
                 (drain_requested_.load(std::memory_order_acquire) && !draining_);
  if (!leaving && run_round() == 0) {
    ++stats_.sleeps;
    shm::doorbell_sleep(options_.doorbell, sequence, policy.sleep_us_max);
  } else {
    idle_streak = 0;
  }
  shm::doorbell_finish_sleep(options_.doorbell);
}

void CoreLoop::run() {
  uint32_t idle_streak = 0;
  while (!stop_now_.load(std::memory_order_relaxed)) {
    if (!draining_ && drain_requested_.load(std::memory_order_acquire)) {
      draining_ = true;
      for (WeightedTile& entry : tiles_) entry.tile->begin_drain();
    }
    if (run_round() != 0) {
      idle_streak = 0;
      continue;
    }
    if (draining_) {
      bool all_quiescent = true;
      for (WeightedTile& entry : tiles_) all_quiescent = all_quiescent && entry.tile->quiescent();
      if (all_quiescent) return;
    }
    idle(idle_streak);
  }
}

Core::~Core() {
  if (thread_.joinable()) {
    loop_.stop_now();
    thread_.join();
  }
}

Result<void> Core::start() {
  std::promise<Result<void>> bound;
  std::future<Result<void>> bound_result = bound.get_future();
  thread_ = std::thread([this, &bound] {
    const CoreOptions& options = loop_.options();
    if (options.binding) {
      Result<void> binding = numa::bind_current_thread(*options.binding->topology, options.binding->pu_os_index,
                                                        options.binding->node_os_index);
      if (!binding) {
        bound.set_value(make_error("core " + options.name, binding.error().message));
        return;
      }
    }
    bound.set_value(Result<void>{});
    loop_.run();
    finished_.store(true, std::memory_order_release);
  });
  Result<void> result = bound_result.get();
  if (!result) thread_.join();
  return result;
}

void Core::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace keel::engine
