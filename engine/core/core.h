// engine/core/core.h: a core is one engine thread, pinned to one processing unit per the
// placement plan, running a deficit-round-robin loop over the tiles placed on it.
//
//   Core core({.name = "core0", .idle = {IdleStrategy::adaptive, 256, 1000}, .tile_budget = 64,
//              .doorbell = bell, .binding = CoreBinding{&topology, pu, node}},
//             {{&source, 2}, {&sink, 2}});
//   if (auto started = core.start(); !started) fail(started.error());
//   ...
//   core.begin_drain();   // tiles finish what is in flight
//   core.join();          // returns once every tile is quiescent
//
// Each round gives every tile a quantum of weight × tile_budget work units; a tile that
// does less keeps no credit (it was idle), one that is cut short carries the rest of its
// deficit into the next round. A round in which no tile did work is idle: the core then
// spins, yields or sleeps on its futex doorbell according to its idle strategy, and the
// rings that feed its tiles ring that doorbell when they publish.
//
// Tiles that may move (shard tiles, re-sliced by the balancer) are handed from core to
// core between rounds — a safe point: the tile is between two polls, so a shard tile is
// between batches, and one thread at a time ever polls it:
//
//   MovableTile shard{&shard_tile, planned_core_doorbell, &control.busy_ns};
//   Core a({... .index = 0 ...}, {{&shard_tile, 4, &shard}}), b({... .index = 1 ...}, {});
//   a.loop().request_move(&shard, &b.loop(), /*weight=*/8);  // from any thread
//   ... shard.core_index becomes 1 once b runs it
//
// A moved tile's input rings still ring the doorbell of the core it was planned on, so a
// core running moved tiles sleeps on its own doorbell and theirs at once (futex_waitv).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/core/tile.h"
#include "error/result.h"
#include "numa/topology.h"
#include "shm/doorbell.h"

namespace keel::engine {

struct IdlePolicy {
  config::IdleStrategy strategy = config::IdleStrategy::adaptive;
  uint32_t spin_polls = 256;     // idle rounds spent spinning before yielding (adaptive)
  uint32_t sleep_us_max = 1000;  // longest doorbell sleep
};

struct CoreBinding {
  const numa::Topology* topology = nullptr;
  uint32_t pu_os_index = 0;
  uint32_t node_os_index = 0;
};

// What a core publishes as it runs, for the operator's view (the engine places these in
// the segment: node/status_table.h). Written by the core's own thread only.
struct CoreCounters {
  std::atomic<uint64_t> busy_ns;       // time in rounds that did work
  std::atomic<uint64_t> rounds;
  std::atomic<uint64_t> sleeps;        // futex sleeps when idle
  std::atomic<uint64_t> work_done;     // work units its tiles reported
  std::atomic<uint64_t> tiles_moved_in;
  std::atomic<uint64_t> tiles_moved_out;
  std::atomic<uint32_t> tile_count;    // tiles it runs now
  std::atomic<uint32_t> reserved;
};
static_assert(sizeof(CoreCounters) == 56);

struct CoreOptions {
  std::string name;
  uint32_t index = 0;                      // the planned core index (what MovableTile::core_index holds)
  IdlePolicy idle;
  uint32_t tile_budget = 64;
  shm::Doorbell* doorbell = nullptr;       // required unless idle is spin
  std::optional<CoreBinding> binding;      // none: the thread is not pinned (synthetic plans)
  CoreCounters* counters = nullptr;        // published counters; none: only stats()
};

// A tile that may move between cores. Whichever core runs it keeps `core_index` and
// `weight` current, so the balancer can read where each tile is from any thread.
struct MovableTile {
  MovableTile(Tile* tile_, shm::Doorbell* home_doorbell_, std::atomic<uint64_t>* busy_ns_)
      : tile(tile_), home_doorbell(home_doorbell_), busy_ns(busy_ns_) {}
  Tile* tile;
  shm::Doorbell* home_doorbell;     // the doorbell its input rings ring (its planned core's); may be null
  std::atomic<uint64_t>* busy_ns;   // where the time of its polls that did work is added; may be null
  std::atomic<uint32_t> core_index{0};
  std::atomic<uint32_t> weight{0};
  std::atomic<uint64_t> moves{0};   // times it changed cores
};

struct WeightedTile {
  Tile* tile;
  uint32_t weight;
  MovableTile* movable = nullptr;   // set when the tile may move; then movable->tile == tile
};

struct CoreStats {
  uint64_t rounds = 0;
  uint64_t idle_rounds = 0;
  uint64_t sleeps = 0;
  uint64_t work_done = 0;
  uint64_t tiles_moved_in = 0;
  uint64_t tiles_moved_out = 0;
  uint64_t moves_refused = 0;  // requests for a tile this core did not run, or made while draining
};

// The loop itself, usable on any thread (a worker process runs it on its main thread).
// Nanoseconds per tick of the time stamp counter, measured once per process against
// CLOCK_MONOTONIC over 2 ms (the first call spins for them). A core times every poll with
// the counter: ~10 ns a read here, where clock_gettime costs ~25 ns, and a spinning core
// makes a read per tile per round. Only intervals within one round on one thread are
// measured, so counters that differ between cores do no harm.
double tsc_ns_per_tick();

class CoreLoop {
 public:
  CoreLoop(CoreOptions options, std::vector<WeightedTile> tiles);
  // Polls the tiles until drain was requested and every tile is quiescent, or until
  // stop_now() is called.
  void run();
  void begin_drain();   // thread-safe
  void stop_now();      // thread-safe: leave at once (a fatal error elsewhere)
  // Thread-safe. Asks this core to hand `tile` to `destination` with `weight` at its next
  // safe point. Refused (counted in moves_refused) if this core is not running the tile
  // by then, if either core has been asked to drain, or if destination has stopped; the
  // tile then stays where it is. Check tile->core_index to see where it went.
  void request_move(MovableTile* tile, CoreLoop* destination, uint32_t weight);
  // Thread-safe. Sets the weight of a tile this core runs, at its next safe point.
  void request_weight(MovableTile* tile, uint32_t weight);
  // Valid once run() has returned (or from the loop's own thread).
  const CoreStats& stats() const { return stats_; }
  // The tiles it ran last that are not quiescent: what kept a drain from ending. Only once
  // run() has returned (stop_now after a drain that took too long).
  std::vector<std::string> tiles_not_quiescent() const;
  const CoreOptions& options() const { return options_; }
  // True once a sleep needed futex_waitv and the kernel lacked it (the core then slept
  // on its own doorbell only, for at most 100 us). Thread-safe.
  bool waitv_missing() const { return waitv_missing_.load(std::memory_order_relaxed); }

 private:
  struct MoveRequest {
    MovableTile* tile;
    CoreLoop* destination;  // null: only the weight changes
    uint32_t weight;
  };

  size_t run_round();
  void idle(uint32_t& idle_streak);
  void post(MoveRequest request);
  // Takes a tile handed over by another core; false if this core has stopped or drains.
  bool adopt(const WeightedTile& entry);
  void take_mail();
  void update_sleep_doorbells();
  // True (and closed to adoptions) unless a tile is on its way here.
  bool close_if_nothing_arriving();

  CoreOptions options_;
  std::vector<WeightedTile> tiles_;
  std::vector<uint64_t> deficits_;
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> stop_now_{false};
  bool draining_ = false;
  CoreStats stats_;
  size_t timed_tiles_ = 0;  // hosted tiles with a busy_ns counter: the round reads the TSC
  double ns_per_tick_ = 0;  // the time stamp counter's period (tsc_ns_per_tick)
  // An interval of counter ticks in ns. An unpinned thread that the OS moved to a core
  // whose counter is behind would see time run back: that interval counts as 0.
  uint64_t ticks_to_ns(uint64_t from_ticks, uint64_t to_ticks) const {
    return to_ticks > from_ticks ? uint64_t(double(to_ticks - from_ticks) * ns_per_tick_) : 0;
  }
  // The doorbells an idle sleep waits on: its own first, then its moved tiles' homes.
  std::vector<shm::Doorbell*> sleep_doorbells_;
  std::atomic<bool> waitv_missing_{false};
  // The mailbox: in-process only (never in the segment), touched a few times a second.
  std::mutex mail_mutex_;
  std::atomic<bool> mail_pending_{false};
  std::vector<MoveRequest> requests_;  // under mail_mutex_
  std::vector<WeightedTile> arriving_;  // under mail_mutex_
  bool closed_ = false;                 // under mail_mutex_: run() has returned
};

// A CoreLoop on its own pinned thread.
class Core {
 public:
  Core(CoreOptions options, std::vector<WeightedTile> tiles) : loop_(std::move(options), std::move(tiles)) {}
  ~Core();
  // Starts the thread, binds it (CPU and memory) if a binding is given and reads the
  // binding back; returns the binding error, in which case no thread keeps running.
  Result<void> start();
  void begin_drain() { loop_.begin_drain(); }
  void stop_now() { loop_.stop_now(); }
  void join();
  // True once the loop has returned (every tile quiescent after a drain, or stop_now).
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  CoreLoop& loop() { return loop_; }
  const CoreLoop& loop() const { return loop_; }
  const CoreStats& stats() const { return loop_.stats(); }
  const std::string& name() const { return loop_.options().name; }

 private:
  CoreLoop loop_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
};

}  // namespace keel::engine
