#include "engine/core/core.h"

#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <cassert>
#include <future>

#include "numa/binding.h"
#include "shm/segment.h"

namespace keel::engine {

double tsc_ns_per_tick() {
  static const double ns_per_tick = [] {
    const uint64_t start_ns = shm::monotonic_ns(), start_ticks = __rdtsc();
    uint64_t now_ns = start_ns;
    while (now_ns - start_ns < 2'000'000) now_ns = shm::monotonic_ns();
    const uint64_t ticks = __rdtsc() - start_ticks;
    return ticks == 0 ? 1.0 : double(now_ns - start_ns) / double(ticks);
  }();
  return ns_per_tick;
}

CoreLoop::CoreLoop(CoreOptions options, std::vector<WeightedTile> tiles)
    : options_(std::move(options)), tiles_(std::move(tiles)), deficits_(tiles_.size(), 0),
      ns_per_tick_(tsc_ns_per_tick()) {
  assert(options_.idle.strategy == config::IdleStrategy::spin || options_.doorbell != nullptr);
  for (WeightedTile& entry : tiles_)
    if (entry.movable != nullptr) {
      assert(entry.movable->tile == entry.tile);
      entry.movable->core_index.store(options_.index, std::memory_order_relaxed);
      entry.movable->weight.store(entry.weight, std::memory_order_relaxed);
    }
  update_sleep_doorbells();
}

void CoreLoop::begin_drain() {
  drain_requested_.store(true, std::memory_order_seq_cst);
  if (options_.doorbell != nullptr) shm::doorbell_wake(options_.doorbell);
}

void CoreLoop::stop_now() {
  stop_now_.store(true, std::memory_order_release);
  if (options_.doorbell != nullptr) shm::doorbell_wake(options_.doorbell);
}

void CoreLoop::request_move(MovableTile* tile, CoreLoop* destination, uint32_t weight) {
  post({tile, destination, weight});
}

void CoreLoop::request_weight(MovableTile* tile, uint32_t weight) { post({tile, nullptr, weight}); }

void CoreLoop::post(MoveRequest request) {
  {
    std::lock_guard lock(mail_mutex_);
    requests_.push_back(request);
    mail_pending_.store(true, std::memory_order_release);
  }
  // Unconditional: the wake bumps the futex word, so a sleep prepared before the post
  // returns at once (doorbell_ring's sleeper check would race with a sleep being prepared).
  if (options_.doorbell != nullptr) shm::doorbell_wake(options_.doorbell);
}

bool CoreLoop::adopt(const WeightedTile& entry) {
  {
    std::lock_guard lock(mail_mutex_);
    // A draining core finishes what it has; a tile moved in now would miss its begin_drain
    // order or keep the core from quiescing. The sender keeps it and drains it itself.
    if (closed_ || drain_requested_.load(std::memory_order_seq_cst)) return false;
    arriving_.push_back(entry);
    mail_pending_.store(true, std::memory_order_release);
  }
  if (options_.doorbell != nullptr) shm::doorbell_wake(options_.doorbell);
  return true;
}

void CoreLoop::take_mail() {
  std::vector<MoveRequest> requests;
  std::vector<WeightedTile> arriving;
  {
    std::lock_guard lock(mail_mutex_);
    requests.swap(requests_);
    arriving.swap(arriving_);
    mail_pending_.store(false, std::memory_order_relaxed);
  }
  for (const WeightedTile& entry : arriving) {
    tiles_.push_back(entry);
    deficits_.push_back(0);
    entry.movable->core_index.store(options_.index, std::memory_order_release);
    entry.movable->weight.store(entry.weight, std::memory_order_relaxed);
    entry.movable->moves.fetch_add(1, std::memory_order_relaxed);
    // Drain was asked after the sender handed it over (adopt refuses it afterwards): the
    // tile has not been told yet, and only its new core can tell it.
    if (draining_) entry.tile->begin_drain();
    ++stats_.tiles_moved_in;
  }
  for (const MoveRequest& request : requests) {
    size_t index = 0;
    while (index < tiles_.size() && tiles_[index].movable != request.tile) ++index;
    if (index == tiles_.size()) {
      ++stats_.moves_refused;  // not here (any more): the requester's view was stale
      continue;
    }
    uint32_t weight = std::max<uint32_t>(request.weight, 1);
    if (request.destination == nullptr || request.destination == this) {
      tiles_[index].weight = weight;
      request.tile->weight.store(weight, std::memory_order_relaxed);
      continue;
    }
    // Asked to drain (perhaps not noticed yet at the top of run()): the tile stays and
    // drains here, as request_move promises.
    if (draining_ || drain_requested_.load(std::memory_order_acquire)) {
      ++stats_.moves_refused;
      continue;
    }
    WeightedTile entry = tiles_[index];
    entry.weight = weight;
    // The hand-over: from here on this core never polls the tile again. The destination's
    // mutex orders everything this thread did to the tile before its first poll there.
    if (!request.destination->adopt(entry)) {
      ++stats_.moves_refused;
      continue;
    }
    tiles_.erase(tiles_.begin() + ptrdiff_t(index));
    deficits_.erase(deficits_.begin() + ptrdiff_t(index));
    ++stats_.tiles_moved_out;
  }
  update_sleep_doorbells();
  if (options_.counters != nullptr) {
    options_.counters->tiles_moved_in.store(stats_.tiles_moved_in, std::memory_order_relaxed);
    options_.counters->tiles_moved_out.store(stats_.tiles_moved_out, std::memory_order_relaxed);
  }
}

void CoreLoop::update_sleep_doorbells() {
  if (options_.counters != nullptr) options_.counters->tile_count.store(uint32_t(tiles_.size()), std::memory_order_relaxed);
  sleep_doorbells_.clear();
  timed_tiles_ = 0;
  if (options_.doorbell != nullptr) sleep_doorbells_.push_back(options_.doorbell);
  for (const WeightedTile& entry : tiles_) {
    if (entry.movable == nullptr) continue;
    if (entry.movable->busy_ns != nullptr) ++timed_tiles_;
    shm::Doorbell* home = entry.movable->home_doorbell;
    if (home == nullptr || sleep_doorbells_.empty()) continue;
    if (std::find(sleep_doorbells_.begin(), sleep_doorbells_.end(), home) == sleep_doorbells_.end())
      sleep_doorbells_.push_back(home);
  }
}

std::vector<std::string> CoreLoop::tiles_not_quiescent() const {
  std::vector<std::string> names;
  for (const WeightedTile& entry : tiles_)
    if (!entry.tile->quiescent()) names.emplace_back(entry.tile->name());
  return names;
}

bool CoreLoop::close_if_nothing_arriving() {
  std::lock_guard lock(mail_mutex_);
  if (!arriving_.empty()) return false;
  closed_ = true;
  return true;
}

namespace {

// The counters have one writer (the core's thread): a plain load and store, no lock prefix.
void bump(std::atomic<uint64_t>& counter, uint64_t amount) {
  counter.store(counter.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
}

}  // namespace

size_t CoreLoop::run_round() {
  size_t work_done = 0;
  CoreCounters* counters = options_.counters;
  uint64_t round_start_ns = counters != nullptr ? shm::monotonic_ns() : 0;
  // Poll time per tile, for the balancer's cost per transaction: one counter read per poll,
  // charged only to polls that did work (an idle poll costs next to nothing, but a
  // spinning core makes millions of them).
  const uint64_t round_start_ticks = timed_tiles_ > 0 ? __rdtsc() : 0;
  uint64_t before_ticks = round_start_ticks;
  for (size_t index = 0; index < tiles_.size(); ++index) {
    uint64_t quantum = uint64_t(tiles_[index].weight) * options_.tile_budget;
    deficits_[index] += quantum;
    size_t done = tiles_[index].tile->poll(deficits_[index]);
    // An idle tile keeps no credit; a busy one carries what it could not use, capped at
    // one quantum so that a long-idle tile cannot come back with a burst.
    deficits_[index] = done == 0 ? 0 : std::min<uint64_t>(deficits_[index] - std::min<uint64_t>(done, deficits_[index]), quantum);
    work_done += done;
    if (timed_tiles_ > 0) {
      uint64_t after_ticks = __rdtsc();
      MovableTile* movable = tiles_[index].movable;
      if (done > 0 && movable != nullptr && movable->busy_ns != nullptr)
        movable->busy_ns->fetch_add(ticks_to_ns(before_ticks, after_ticks), std::memory_order_relaxed);
      before_ticks = after_ticks;
    }
  }
  ++stats_.rounds;
  stats_.work_done += work_done;
  if (counters != nullptr) {
    bump(counters->rounds, 1);
    if (work_done > 0) {
      // The last tile's counter read ends the round when tiles were timed.
      uint64_t busy_ns = timed_tiles_ > 0 ? ticks_to_ns(round_start_ticks, before_ticks)
                                          : shm::monotonic_ns() - round_start_ns;
      bump(counters->busy_ns, busy_ns);
      bump(counters->work_done, work_done);
    }
  }
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
  size_t bells = std::min(sleep_doorbells_.size(), shm::doorbell_wait_many_max);
  uint32_t sequences[shm::doorbell_wait_many_max];
  for (size_t index = 0; index < bells; ++index) sequences[index] = shm::doorbell_prepare_sleep(sleep_doorbells_[index]);
  bool leaving = stop_now_.load(std::memory_order_acquire) ||
                 (drain_requested_.load(std::memory_order_acquire) && !draining_) ||
                 mail_pending_.load(std::memory_order_acquire);
  if (!leaving && run_round() == 0) {
    ++stats_.sleeps;
    if (options_.counters != nullptr) bump(options_.counters->sleeps, 1);
    // More distinct home doorbells than one wait takes: cap the sleep so none waits long.
    uint32_t sleep_us = sleep_doorbells_.size() > bells ? std::min<uint32_t>(policy.sleep_us_max, 100) : policy.sleep_us_max;
    for (const WeightedTile& entry : tiles_)
      if (uint32_t wake_us = entry.tile->wake_within_us(); wake_us != 0) sleep_us = std::min(sleep_us, wake_us);
    if (!shm::doorbell_sleep_any(sleep_doorbells_.data(), sequences, bells, sleep_us, 100))
      waitv_missing_.store(true, std::memory_order_relaxed);
  } else {
    idle_streak = 0;
  }
  for (size_t index = 0; index < bells; ++index) shm::doorbell_finish_sleep(sleep_doorbells_[index]);
}

void CoreLoop::run() {
  uint32_t idle_streak = 0;
  while (!stop_now_.load(std::memory_order_relaxed)) {
    if (!draining_ && drain_requested_.load(std::memory_order_acquire)) {
      draining_ = true;
      for (WeightedTile& entry : tiles_) entry.tile->begin_drain();
    }
    if (mail_pending_.load(std::memory_order_acquire)) take_mail();
    if (run_round() != 0) {
      idle_streak = 0;
      continue;
    }
    if (draining_) {
      // Every tile is asked, not just up to the first busy one: a tile's quiescence may wait
      // on another's (persist on the shards'), and one asked later in the list — a tile
      // moved here is last — would otherwise never be asked.
      bool all_quiescent = true;
      for (WeightedTile& entry : tiles_) all_quiescent = entry.tile->quiescent() && all_quiescent;
      if (all_quiescent && close_if_nothing_arriving()) return;
    }
    idle(idle_streak);
  }
  std::lock_guard lock(mail_mutex_);
  closed_ = true;
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
