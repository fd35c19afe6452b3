// Tests for engine/core/core.h: the deficit-round-robin loop, drain, stop, the idle
// strategies on a real shm doorbell, and Core's thread binding.
#include "engine/core/core.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <new>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "numa/binding.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::engine {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Runs a loop on its own thread; stops and joins it when the test leaves, even early.
class LoopThread {
 public:
  explicit LoopThread(CoreLoop& loop) : loop_(loop), thread_([this] {
    loop_.run();
    returned_.store(true, std::memory_order_release);
  }) {}
  ~LoopThread() { join_now(); }
  bool returned() const { return returned_.load(std::memory_order_acquire); }
  void join_now() {
    if (!thread_.joinable()) return;
    loop_.stop_now();
    thread_.join();
  }

 private:
  CoreLoop& loop_;
  std::atomic<bool> returned_{false};
  std::thread thread_;
};

CoreOptions spin_options(uint32_t tile_budget = 64) {
  CoreOptions options;
  options.name = "test";
  options.idle = {config::IdleStrategy::spin, 0, 0};
  options.tile_budget = tile_budget;
  return options;
}

CoreOptions sleeping_options(shm::Doorbell* doorbell, uint32_t sleep_us_max) {
  CoreOptions options;
  options.name = "test";
  options.idle = {config::IdleStrategy::sleep, 0, sleep_us_max};
  options.doorbell = doorbell;
  return options;
}

// Always busy: does its whole budget every poll and counts it.
class BusyTile final : public Tile {
 public:
  std::string_view name() const override { return "busy"; }
  size_t poll(size_t budget) override {
    work_.fetch_add(budget, std::memory_order_relaxed);
    polls_.fetch_add(1, std::memory_order_relaxed);
    return budget;
  }
  bool quiescent() override { return false; }  // never: only stop_now ends its loop
  uint64_t work() const { return work_.load(std::memory_order_relaxed); }
  uint64_t polls() const { return polls_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> work_{0};
  std::atomic<uint64_t> polls_{0};
};

// Never has work; quiescent as soon as drain begins.
class IdleTile final : public Tile {
 public:
  std::string_view name() const override { return "idle"; }
  size_t poll(size_t) override {
    polls_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  void begin_drain() override { draining_ = true; }
  bool quiescent() override { return draining_; }
  uint64_t polls() const { return polls_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> polls_{0};
  bool draining_ = false;
};

// Follows a script, one entry per poll: how much of the offered budget to do (nullopt:
// all of it). Records every budget offered; stops the loop when the script ends.
class ScriptedTile final : public Tile {
 public:
  explicit ScriptedTile(std::vector<std::optional<size_t>> script) : script_(std::move(script)) {}
  std::string_view name() const override { return "scripted"; }
  size_t poll(size_t budget) override {
    offered_.push_back(budget);
    if (offered_.size() > script_.size()) return 0;  // polled after it stopped the loop
    std::optional<size_t> step = script_[offered_.size() - 1];
    if (offered_.size() == script_.size()) loop->stop_now();
    return step ? std::min(*step, budget) : budget;
  }
  bool quiescent() override { return false; }
  const std::vector<size_t>& offered() const { return offered_; }
  CoreLoop* loop = nullptr;

 private:
  std::vector<std::optional<size_t>> script_;
  std::vector<size_t> offered_;
};

// Does a random part (1..budget) of each budget; stops the loop after `polls_max` polls.
class RandomWorkTile final : public Tile {
 public:
  RandomWorkTile(uint64_t seed, uint64_t polls_max) : random_(seed), polls_max_(polls_max) {}
  std::string_view name() const override { return "random"; }
  size_t poll(size_t budget) override {
    if (++polls_ == polls_max_ && loop != nullptr) loop->stop_now();
    size_t done = std::uniform_int_distribution<size_t>(1, budget)(random_);
    work_ += done;
    return done;
  }
  bool quiescent() override { return false; }
  uint64_t work() const { return work_; }
  CoreLoop* loop = nullptr;

 private:
  std::mt19937_64 random_;
  uint64_t polls_max_;
  uint64_t polls_ = 0;
  uint64_t work_ = 0;
};

// Becomes quiescent only after `polls_needed` polls that follow begin_drain.
class SlowDrainTile final : public Tile {
 public:
  explicit SlowDrainTile(uint64_t polls_needed) : polls_needed_(polls_needed) {}
  std::string_view name() const override { return "slow_drain"; }
  size_t poll(size_t) override {
    if (draining_) ++polls_after_drain_;
    return 0;
  }
  void begin_drain() override { draining_ = true; }
  bool quiescent() override {
    if (!draining_) asked_before_drain_ = true;
    return polls_after_drain_ >= polls_needed_;
  }
  uint64_t polls_after_drain() const { return polls_after_drain_; }
  bool asked_before_drain() const { return asked_before_drain_; }

 private:
  uint64_t polls_needed_;
  uint64_t polls_after_drain_ = 0;
  bool draining_ = false;
  bool asked_before_drain_ = false;
};

// ---- deficit round robin ------------------------------------------------------------

TEST(CoreLoop, BusyTilesShareWorkInProportionToWeight) {
  BusyTile light, heavy;
  CoreLoop loop(spin_options(), {{&light, 1}, {&heavy, 3}});
  LoopThread runner(loop);
  bool enough = eventually([&] { return light.work() >= 10'000'000; }, 5000ms);
  runner.join_now();
  ASSERT_TRUE(enough) << "light tile did only " << light.work() << " units";
  double ratio = double(heavy.work()) / double(light.work());
  EXPECT_NEAR(ratio, 3.0, 0.05) << "light " << light.work() << ", heavy " << heavy.work();
  EXPECT_EQ(loop.stats().work_done, light.work() + heavy.work());
}

TEST(CoreLoop, TilesDoingPartialWorkStillShareByWeight) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  RandomWorkTile light(seed, 0), heavy(seed + 1, 20'000);
  CoreLoop loop(spin_options(), {{&light, 1}, {&heavy, 3}});
  heavy.loop = &loop;
  loop.run();
  double ratio = double(heavy.work()) / double(light.work());
  EXPECT_NEAR(ratio, 3.0, 0.15) << "light " << light.work() << ", heavy " << heavy.work();
}

// A tile cut short carries its unused deficit into the next round (capped at one
// quantum); a tile that found nothing to do loses what it had.
TEST(CoreLoop, UnusedDeficitCarriesOverButAnIdleTileKeepsNoCredit) {
  ScriptedTile tile({10, 0, std::nullopt, 1, 1, 1, 0, std::nullopt});
  CoreLoop loop(spin_options(64), {{&tile, 1}});
  tile.loop = &loop;
  loop.run();
  // 64 (did 10, keeps 54) → 118 (idle: keeps 0) → 64 (all) → 64 (did 1, keeps 63)
  // → 127 (did 1, keeps 126, capped at 64) → 128 (did 1, capped) → 128 (idle) → 64.
  EXPECT_EQ(tile.offered(), (std::vector<size_t>{64, 118, 64, 64, 127, 128, 128, 64}));
}

TEST(CoreLoop, QuantumIsWeightTimesTileBudget) {
  ScriptedTile tile({std::nullopt, std::nullopt});
  CoreLoop loop(spin_options(16), {{&tile, 5}});
  tile.loop = &loop;
  loop.run();
  EXPECT_EQ(tile.offered(), (std::vector<size_t>{80, 80}));
}

// ---- drain and stop -------------------------------------------------------------------

TEST(CoreLoop, DrainReturnsOnlyOnceEveryTileIsQuiescent) {
  IdleTile quick;
  SlowDrainTile slow(50);
  CoreLoop loop(spin_options(), {{&quick, 1}, {&slow, 1}});
  loop.begin_drain();
  loop.run();
  EXPECT_GE(slow.polls_after_drain(), 50u);
  EXPECT_FALSE(slow.asked_before_drain());
  EXPECT_TRUE(quick.quiescent());
}

TEST(CoreLoop, DrainRequestedFromAnotherThreadWakesASleepingLoop) {
  shm::Doorbell doorbell{};
  IdleTile tile;
  CoreLoop loop(sleeping_options(&doorbell, 10'000'000), {{&tile, 1}});
  LoopThread runner(loop);
  ASSERT_TRUE(eventually([&] { return doorbell.sleepers.load() != 0; }, 2000ms));
  loop.begin_drain();
  EXPECT_TRUE(eventually([&] { return runner.returned(); }, 2000ms)) << "the loop slept through begin_drain";
}

// stop_now ends the loop at the end of the current round, drained or not.
TEST(CoreLoop, StopNowLeavesAtTheEndOfTheRound) {
  ScriptedTile stopper({0, 0, 0, 0, 0});
  BusyTile other;
  CoreLoop loop(spin_options(), {{&stopper, 1}, {&other, 1}});
  stopper.loop = &loop;
  loop.run();
  EXPECT_EQ(stopper.offered().size(), 5u);
  EXPECT_EQ(other.polls(), 5u);
}

TEST(CoreLoop, StopNowLeavesEvenWhenATileNeverQuiesces) {
  shm::Doorbell doorbell{};
  BusyTile busy;
  CoreLoop loop(sleeping_options(&doorbell, 10'000'000), {{&busy, 1}});
  LoopThread runner(loop);
  loop.begin_drain();
  ASSERT_TRUE(eventually([&] { return busy.polls() > 1000; }, 2000ms));
  EXPECT_FALSE(runner.returned()) << "drain ended although a tile was never quiescent";
  loop.stop_now();
  EXPECT_TRUE(eventually([&] { return runner.returned(); }, 2000ms));
}

TEST(CoreLoop, StopNowWakesASleepingLoop) {
  shm::Doorbell doorbell{};
  IdleTile tile;
  CoreLoop loop(sleeping_options(&doorbell, 10'000'000), {{&tile, 1}});
  LoopThread runner(loop);
  ASSERT_TRUE(eventually([&] { return doorbell.sleepers.load() != 0; }, 2000ms));
  loop.stop_now();
  EXPECT_TRUE(eventually([&] { return runner.returned(); }, 2000ms)) << "the loop slept through stop_now";
}

// ---- idle strategies ------------------------------------------------------------------

TEST(CoreLoop, SleepStrategySleepsWhenIdle) {
  shm::Doorbell doorbell{};
  IdleTile tile;
  CoreLoop loop(sleeping_options(&doorbell, 1000), {{&tile, 1}});
  LoopThread runner(loop);
  std::this_thread::sleep_for(100ms);
  runner.join_now();
  const CoreStats& stats = loop.stats();
  EXPECT_GT(stats.sleeps, 0u);
  // 100 ms of 1 ms sleeps is about 100 idle rounds; a loop that spun would do millions.
  EXPECT_LT(stats.idle_rounds, 5000u) << stats.sleeps << " sleeps";
  EXPECT_EQ(stats.work_done, 0u);
}

// A segment holding a doorbell and one ring that rings it, as the engine lays them out.
struct DoorbellRing {
  shm::Segment segment;
  shm::Doorbell* doorbell;
  uint64_t ring_offset;

  static DoorbellRing make(const std::string& purpose) {
    Result<shm::Segment> segment = shm::Segment::create({shm::testing::unique_segment_name(purpose), 1 << 20});
    EXPECT_TRUE(segment) << segment.error().message;
    uint64_t bell = *segment->allocate("bell", shm::SegmentObjectKind::doorbell, sizeof(shm::Doorbell), 128);
    auto* doorbell = new (segment->base() + bell) shm::Doorbell{};
    uint64_t ring = *segment->allocate("ring", shm::SegmentObjectKind::ring, *shm::ring_footprint(64, 64), 128);
    EXPECT_TRUE(shm::ring_construct(segment->base(), ring, {64, 64, bell}));
    segment->seal();
    return {std::move(*segment), doorbell, ring};
  }
};

struct Message64 {
  uint64_t words[8];
};

// Pops messages from a ring and counts them.
class RingCountingTile final : public Tile {
 public:
  explicit RingCountingTile(shm::RingConsumer input) : input_(input) {}
  std::string_view name() const override { return "ring_counter"; }
  size_t poll(size_t) override {
    Message64 message;
    if (!input_.pop(message)) return 0;
    received_.fetch_add(1, std::memory_order_relaxed);
    return 1;
  }
  bool quiescent() override { return true; }
  uint64_t received() const { return received_.load(std::memory_order_relaxed); }

 private:
  shm::RingConsumer input_;
  std::atomic<uint64_t> received_{0};
};

TEST(CoreLoop, RingPublishWakesASleepingLoopPromptly) {
  DoorbellRing shared = DoorbellRing::make("core-wake");
  RingCountingTile tile(*shm::RingConsumer::join(shared.segment.base(), shared.ring_offset));
  shm::RingProducer producer = *shm::RingProducer::join(shared.segment.base(), shared.ring_offset);
  Core core(sleeping_options(shared.doorbell, 10'000'000), {{&tile, 1}});
  ASSERT_TRUE(core.start());
  ASSERT_TRUE(eventually([&] { return shared.doorbell->sleepers.load() != 0; }, 2000ms));
  ASSERT_TRUE(producer.push(Message64{{42}}));
  bool woke = eventually([&] { return tile.received() == 1; }, 2000ms);
  core.stop_now();
  core.join();
  EXPECT_TRUE(woke) << "a 10 s sleep was not cut short by the ring's doorbell";
  EXPECT_GT(core.stats().sleeps, 0u);
  EXPECT_GT(shared.doorbell->wakes.load(), 0u);
}

// ---- Core: the thread and its binding -------------------------------------------------

// Reads its thread's binding on its first poll.
class BindingProbeTile final : public Tile {
 public:
  explicit BindingProbeTile(const numa::Topology& topology) : topology_(topology) {}
  std::string_view name() const override { return "binding_probe"; }
  size_t poll(size_t) override {
    polls_.fetch_add(1, std::memory_order_relaxed);
    if (!binding_) binding_.emplace(numa::read_current_thread_binding(topology_));
    return 0;
  }
  bool quiescent() override { return true; }
  const std::optional<Result<numa::ThreadBinding>>& binding() const { return binding_; }
  uint64_t polls() const { return polls_.load(std::memory_order_relaxed); }

 private:
  const numa::Topology& topology_;
  std::optional<Result<numa::ThreadBinding>> binding_;
  std::atomic<uint64_t> polls_{0};
};

size_t thread_count() {
  size_t count = 0;
  for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++count;
  return count;
}

TEST(Core, StartBindsTheThreadToItsPuOnTheHost) {
  Result<numa::Topology> topology = numa::Topology::load_host();
  ASSERT_TRUE(topology) << topology.error().message;
  const numa::NumaNode& node = topology->nodes()[0];
  uint32_t pu = node.cores[0].pu_os_indexes[0];  // PU 0 on an ordinary host
  BindingProbeTile probe(*topology);
  CoreOptions options = spin_options();
  options.binding = CoreBinding{&*topology, pu, node.os_index};
  Core core(options, {{&probe, 1}});
  Result<void> started = core.start();
  ASSERT_TRUE(started) << started.error().message;
  core.begin_drain();
  core.join();
  ASSERT_TRUE(probe.binding().has_value());
  const Result<numa::ThreadBinding>& binding = *probe.binding();
  ASSERT_TRUE(binding) << binding.error().message;
  EXPECT_EQ(binding->pu_os_indexes, std::vector<uint32_t>{pu});
  EXPECT_EQ(binding->memory_node_os_indexes, std::vector<uint32_t>{node.os_index});
}

TEST(Core, BindingOnASyntheticTopologyFailsAndLeavesNoThread) {
  Result<numa::Topology> synthetic = numa::Topology::load_synthetic("numa:1 core:2 pu:1");
  ASSERT_TRUE(synthetic) << synthetic.error().message;
  BindingProbeTile probe(*synthetic);
  CoreOptions options = spin_options();
  options.name = "core7";
  options.binding = CoreBinding{&*synthetic, 0, 0};
  size_t threads_before = thread_count();
  Core core(options, {{&probe, 1}});
  Result<void> started = core.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("core7"), std::string::npos) << started.error().message;
  EXPECT_TRUE(eventually([&] { return thread_count() == threads_before; }, 1000ms))
      << thread_count() << " threads, " << threads_before << " before start()";
  EXPECT_EQ(probe.polls(), 0u);
}

}  // namespace
}  // namespace keel::engine
