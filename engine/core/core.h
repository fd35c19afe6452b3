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
#pragma once

#include <atomic>
#include <cstdint>
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

struct CoreOptions {
  std::string name;
  IdlePolicy idle;
  uint32_t tile_budget = 64;
  shm::Doorbell* doorbell = nullptr;       // required unless idle is spin
  std::optional<CoreBinding> binding;      // none: the thread is not pinned (synthetic plans)
};

struct WeightedTile {
  Tile* tile;
  uint32_t weight;
};

struct CoreStats {
  uint64_t rounds = 0;
  uint64_t idle_rounds = 0;
  uint64_t sleeps = 0;
  uint64_t work_done = 0;
};

// The loop itself, usable on any thread (a worker process runs it on its main thread).
class CoreLoop {
 public:
  CoreLoop(CoreOptions options, std::vector<WeightedTile> tiles);
  // Polls the tiles until drain was requested and every tile is quiescent, or until
  // stop_now() is called.
  void run();
  void begin_drain();   // thread-safe
  void stop_now();      // thread-safe: leave at once (a fatal error elsewhere)
  const CoreStats& stats() const { return stats_; }
  const CoreOptions& options() const { return options_; }

 private:
  size_t run_round();
  void idle(uint32_t& idle_streak);

  CoreOptions options_;
  std::vector<WeightedTile> tiles_;
  std::vector<uint64_t> deficits_;
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> stop_now_{false};
  bool draining_ = false;
  CoreStats stats_;
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
  const CoreStats& stats() const { return loop_.stats(); }
  const std::string& name() const { return loop_.options().name; }

 private:
  CoreLoop loop_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
};

}  // namespace keel::engine
