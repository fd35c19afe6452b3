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

// Idle, but waiting on something no doorbell rings (as the persist tile waits on the
// kernel's commit) while `waiting` holds.
class WaitingTile final : public Tile {
 public:
  std::string_view name() const override { return "waiting"; }
  size_t poll(size_t) override {
    polls_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  bool quiescent() override { return true; }
  uint32_t wake_within_us() const override { return waiting.load(std::memory_order_relaxed) ? 200 : 0; }
  uint64_t polls() const { return polls_.load(std::memory_order_relaxed); }
  std::atomic<bool> waiting{true};

 private:
  std::atomic<uint64_t> polls_{0};
};

TEST(CoreLoop, AnIdleCoreSleepsNoLongerThanItsTilesAskWhileTheyWait) {
  shm::Doorbell doorbell{};
  WaitingTile waiting;
  IdleTile idle;
  CoreLoop loop(sleeping_options(&doorbell, 1'000'000), {{&idle, 1}, {&waiting, 1}});
  LoopThread runner(loop);
  // 200 us sleeps: 50 polls in a few ms; the core's own 1 s cap would take 25 s.
  EXPECT_TRUE(eventually([&] { return waiting.polls() >= 50; }, 5000ms)) << waiting.polls() << " polls";
  waiting.waiting.store(false);
  std::this_thread::sleep_for(20ms);  // the last short sleep ends; then 1 s ones
  uint64_t polls_after = idle.polls();
  std::this_thread::sleep_for(200ms);
  EXPECT_LE(idle.polls() - polls_after, 2u) << "the core still wakes often with nothing to wait for";
  runner.join_now();
  // It slept between those polls (two polls a sleep: the last look before it, the round
  // after), it did not spin.
  EXPECT_GE(loop.stats().sleeps, 20u);
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

// ---- moving tiles between cores ------------------------------------------------------

// Pops sequence numbers from a ring and checks each is the next one; trips a flag if two
// threads ever poll it at once.
class SequenceTile final : public Tile {
 public:
  explicit SequenceTile(shm::RingConsumer input) : input_(input) {}
  std::string_view name() const override { return "sequence"; }
  size_t poll(size_t budget) override {
    if (in_poll_.exchange(true, std::memory_order_acquire)) overlapped_.store(true);
    size_t done = 0;
    Message64 message;
    while (done < budget && input_.pop(message)) {
      if (message.words[0] != next_) out_of_order_.fetch_add(1, std::memory_order_relaxed);
      next_ = message.words[0] + 1;
      checksum_ += message.words[0] * 0x9E3779B97F4A7C15ull + message.words[1];
      ++done;
    }
    received_.fetch_add(done, std::memory_order_release);
    in_poll_.store(false, std::memory_order_release);
    return done;
  }
  void begin_drain() override { drain_orders_.fetch_add(1, std::memory_order_relaxed); }
  bool quiescent() override { return true; }
  uint64_t received() const { return received_.load(std::memory_order_acquire); }
  uint64_t out_of_order() const { return out_of_order_.load(); }
  bool overlapped() const { return overlapped_.load(); }
  uint64_t checksum() const { return checksum_; }  // read after the loops returned
  uint32_t drain_orders() const { return drain_orders_.load(); }

 private:
  shm::RingConsumer input_;
  uint64_t next_ = 0;
  uint64_t checksum_ = 0;
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> out_of_order_{0};
  std::atomic<bool> in_poll_{false};
  std::atomic<bool> overlapped_{false};
  std::atomic<uint32_t> drain_orders_{0};
};

// Three doorbells and a 4,096-slot ring that rings the first, in a real segment.
struct ThreeCores {
  shm::Segment segment;
  shm::Doorbell* doorbells[3];
  uint64_t ring_offset;

  static ThreeCores make(const std::string& purpose) {
    Result<shm::Segment> segment = shm::Segment::create({shm::testing::unique_segment_name(purpose), 4 << 20});
    EXPECT_TRUE(segment) << segment.error().message;
    ThreeCores made{std::move(*segment), {}, 0};
    uint64_t bells[3];
    for (int index = 0; index < 3; ++index) {
      bells[index] = *made.segment.allocate("bell" + std::to_string(index), shm::SegmentObjectKind::doorbell,
                                            sizeof(shm::Doorbell), 128);
      made.doorbells[index] = new (made.segment.base() + bells[index]) shm::Doorbell{};
    }
    made.ring_offset = *made.segment.allocate("ring", shm::SegmentObjectKind::ring, *shm::ring_footprint(4096, 64), 128);
    EXPECT_TRUE(shm::ring_construct(made.segment.base(), made.ring_offset, {4096, 64, bells[0]}));
    made.segment.seal();
    return made;
  }
};

CoreOptions indexed_options(shm::Doorbell* doorbell, uint32_t index, config::IdleStrategy idle, uint32_t sleep_us_max) {
  CoreOptions options;
  options.name = "core" + std::to_string(index);
  options.index = index;
  options.idle = {idle, 64, sleep_us_max};
  options.doorbell = doorbell;
  return options;
}

TEST(CoreLoop, MovedTileIsPolledByItsNewCoreWithItsNewWeight) {
  ThreeCores shared = ThreeCores::make("core-move");
  SequenceTile tile(*shm::RingConsumer::join(shared.segment.base(), shared.ring_offset));
  std::atomic<uint64_t> busy_ns{0};
  MovableTile movable(&tile, shared.doorbells[0], &busy_ns);
  IdleTile other;
  CoreLoop from(indexed_options(shared.doorbells[0], 0, config::IdleStrategy::sleep, 1000), {{&tile, 4, &movable}});
  CoreLoop to(indexed_options(shared.doorbells[1], 1, config::IdleStrategy::sleep, 1000), {{&other, 1}});
  EXPECT_EQ(movable.core_index.load(), 0u);
  EXPECT_EQ(movable.weight.load(), 4u);
  LoopThread from_runner(from), to_runner(to);
  from.request_move(&movable, &to, 7);
  ASSERT_TRUE(eventually([&] { return movable.core_index.load() == 1; }, 2000ms));
  EXPECT_EQ(movable.weight.load(), 7u);
  EXPECT_EQ(movable.moves.load(), 1u);
  shm::RingProducer producer = *shm::RingProducer::join(shared.segment.base(), shared.ring_offset);
  for (uint64_t sequence = 0; sequence < 100; ++sequence) ASSERT_TRUE(producer.push(Message64{{sequence}}));
  EXPECT_TRUE(eventually([&] { return tile.received() == 100; }, 2000ms));
  to.request_weight(&movable, 9);
  EXPECT_TRUE(eventually([&] { return movable.weight.load() == 9; }, 2000ms));
  from_runner.join_now();
  to_runner.join_now();
  EXPECT_EQ(from.stats().tiles_moved_out, 1u);
  EXPECT_EQ(to.stats().tiles_moved_in, 1u);
  EXPECT_EQ(tile.out_of_order(), 0u);
  EXPECT_GT(busy_ns.load(), 0u) << "the polls that took messages were not timed";
}

TEST(CoreLoop, AMoveRequestForATileTheCoreDoesNotRunIsRefused) {
  ThreeCores shared = ThreeCores::make("core-refuse");
  SequenceTile tile(*shm::RingConsumer::join(shared.segment.base(), shared.ring_offset));
  MovableTile movable(&tile, shared.doorbells[0], nullptr);
  IdleTile other;
  CoreLoop host(indexed_options(shared.doorbells[0], 0, config::IdleStrategy::sleep, 1000), {{&tile, 1, &movable}});
  CoreLoop stranger(indexed_options(shared.doorbells[1], 1, config::IdleStrategy::sleep, 1000), {{&other, 1}});
  LoopThread host_runner(host), stranger_runner(stranger);
  stranger.request_move(&movable, &host, 3);  // a stale view: the tile is on `host`
  std::this_thread::sleep_for(50ms);
  stranger_runner.join_now();
  host_runner.join_now();
  EXPECT_EQ(stranger.stats().moves_refused, 1u);
  EXPECT_EQ(movable.core_index.load(), 0u);
  EXPECT_EQ(movable.moves.load(), 0u);
}

// The moved tile's ring still rings its home core's doorbell; its new core sleeps on both.
TEST(CoreLoop, ACoreRunningAMovedTileWakesOnTheTilesHomeDoorbell) {
  ThreeCores shared = ThreeCores::make("core-home-bell");
  SequenceTile tile(*shm::RingConsumer::join(shared.segment.base(), shared.ring_offset));
  MovableTile movable(&tile, shared.doorbells[0], nullptr);
  IdleTile other;
  // 10 s sleeps: only a doorbell ends one within the test's 2 s.
  CoreLoop home(indexed_options(shared.doorbells[0], 0, config::IdleStrategy::sleep, 10'000'000), {{&tile, 1, &movable}});
  CoreLoop away(indexed_options(shared.doorbells[1], 1, config::IdleStrategy::sleep, 10'000'000), {{&other, 1}});
  LoopThread home_runner(home), away_runner(away);
  home.request_move(&movable, &away, 1);
  ASSERT_TRUE(eventually([&] { return movable.core_index.load() == 1; }, 2000ms));
  // Both asleep again (each core's sleep counts on its own doorbell, the away core's on both).
  ASSERT_TRUE(eventually([&] { return shared.doorbells[0]->sleepers.load() == 2 && shared.doorbells[1]->sleepers.load() == 1; },
                         2000ms))
      << shared.doorbells[0]->sleepers.load() << " " << shared.doorbells[1]->sleepers.load();
  shm::RingProducer producer = *shm::RingProducer::join(shared.segment.base(), shared.ring_offset);
  ASSERT_TRUE(producer.push(Message64{{0}}));
  bool woke = eventually([&] { return tile.received() == 1; }, 2000ms);
  home_runner.join_now();
  away_runner.join_now();
  EXPECT_TRUE(woke) << "the away core slept through the moved tile's home doorbell";
  EXPECT_FALSE(away.waitv_missing());
}

// Under load, the consuming tile hops between three cores thousands of times: every
// message arrives once, in order, and no two cores ever poll it at once.
TEST(CoreLoop, ATileMovedBetweenCoresUnderLoadLosesDuplicatesAndReordersNothing) {
  ThreeCores shared = ThreeCores::make("core-move-load");
  SequenceTile tile(*shm::RingConsumer::join(shared.segment.base(), shared.ring_offset));
  std::atomic<uint64_t> busy_ns{0};
  MovableTile movable(&tile, shared.doorbells[0], &busy_ns);
  IdleTile idles[3];
  std::vector<std::unique_ptr<CoreLoop>> loops;
  config::IdleStrategy strategies[3] = {config::IdleStrategy::adaptive, config::IdleStrategy::sleep,
                                        config::IdleStrategy::adaptive};
  for (uint32_t index = 0; index < 3; ++index) {
    std::vector<WeightedTile> tiles = {{&idles[index], 1}};
    if (index == 0) tiles.push_back({&tile, 2, &movable});
    loops.push_back(std::make_unique<CoreLoop>(indexed_options(shared.doorbells[index], index, strategies[index], 500),
                                               std::move(tiles)));
  }
  std::vector<std::unique_ptr<LoopThread>> runners;
  for (auto& loop : loops) runners.push_back(std::make_unique<LoopThread>(*loop));
  // Paced (a pause after each batch of 32), so that the tile moves thousands of times
  // while messages flow, not after they have all arrived.
  constexpr uint64_t messages = 1'000'000;
  uint64_t expected_checksum = 0;
  for (uint64_t sequence = 0; sequence < messages; ++sequence)
    expected_checksum += sequence * 0x9E3779B97F4A7C15ull + (sequence ^ 0x5555);
  std::thread producer_thread([&] {
    shm::RingProducer producer = *shm::RingProducer::join(shared.segment.base(), shared.ring_offset);
    Message64 batch[32];
    for (uint64_t sequence = 0; sequence < messages;) {
      size_t count = size_t(std::min<uint64_t>(32, messages - sequence));
      for (size_t index = 0; index < count; ++index) batch[index] = Message64{{sequence + index, (sequence + index) ^ 0x5555}};
      size_t pushed = producer.push(std::span<const Message64>(batch, count));
      sequence += pushed;
      std::this_thread::sleep_for(std::chrono::microseconds(pushed == 0 ? 1 : 10));
    }
  });
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 random(seed);
  uint64_t requests = 0;
  while (tile.received() < messages && requests < 1'000'000) {
    uint32_t where = movable.core_index.load(std::memory_order_acquire);
    uint32_t to = (where + 1 + uint32_t(random() % 2)) % 3;
    loops[where]->request_move(&movable, loops[to].get(), 1 + uint32_t(random() % 8));
    ++requests;
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 100));
  }
  producer_thread.join();
  bool all_arrived = eventually([&] { return tile.received() == messages; }, 10'000ms);
  for (auto& loop : loops) loop->begin_drain();
  for (auto& runner : runners) EXPECT_TRUE(eventually([&] { return runner->returned(); }, 5000ms));
  runners.clear();
  EXPECT_TRUE(all_arrived) << tile.received() << " of " << messages << " (seed " << seed << ")";
  EXPECT_EQ(tile.out_of_order(), 0u) << "seed " << seed;
  EXPECT_EQ(tile.checksum(), expected_checksum) << "seed " << seed;
  EXPECT_FALSE(tile.overlapped()) << "two cores polled the tile at once (seed " << seed << ")";
  EXPECT_GT(movable.moves.load(), 1000u) << "too few moves to mean anything (seed " << seed << ")";
  EXPECT_EQ(tile.drain_orders(), 1u) << "begin_drain reached the tile " << tile.drain_orders() << " times";
  uint64_t moved_in = 0, moved_out = 0;
  for (auto& loop : loops) {
    moved_in += loop->stats().tiles_moved_in;
    moved_out += loop->stats().tiles_moved_out;
  }
  EXPECT_EQ(moved_in, movable.moves.load());
  EXPECT_EQ(moved_out, moved_in);
  std::printf("%llu moves over %llu requests\n", static_cast<unsigned long long>(movable.moves.load()),
              static_cast<unsigned long long>(requests));
}

// Drain while a tile is in transit: it ends on exactly one core, told to drain once, and
// every core returns.
TEST(CoreLoop, DrainDuringMovesEndsEveryCoreWithTheTileDrainedOnce) {
  for (int round = 0; round < 50; ++round) {
    ThreeCores shared = ThreeCores::make("core-move-drain");
    SequenceTile tile(*shm::RingConsumer::join(shared.segment.base(), shared.ring_offset));
    MovableTile movable(&tile, shared.doorbells[0], nullptr);
    IdleTile idle_a, idle_b;
    CoreLoop a(indexed_options(shared.doorbells[0], 0, config::IdleStrategy::adaptive, 200), {{&idle_a, 1}, {&tile, 1, &movable}});
    CoreLoop b(indexed_options(shared.doorbells[1], 1, config::IdleStrategy::adaptive, 200), {{&idle_b, 1}});
    LoopThread a_runner(a), b_runner(b);
    std::this_thread::sleep_for(std::chrono::microseconds(round * 20));
    a.request_move(&movable, &b, 1);
    std::this_thread::sleep_for(std::chrono::microseconds(round % 7));
    a.begin_drain();
    b.begin_drain();
    ASSERT_TRUE(eventually([&] { return a_runner.returned() && b_runner.returned(); }, 5000ms)) << "round " << round;
    EXPECT_EQ(tile.drain_orders(), 1u) << "round " << round;
    EXPECT_EQ(a.stats().tiles_moved_out, b.stats().tiles_moved_in) << "round " << round;
    EXPECT_EQ(movable.core_index.load(), a.stats().tiles_moved_out == 1 ? 1u : 0u) << "round " << round;
  }
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
