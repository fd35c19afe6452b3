// Tests for engine/node/balancer_tile.h: the balancer tile over a real segment (shard
// controls, status table, the system shard's ring) and real core loops, with a fake clock
// and scripted counters: a surging chain gets a core of its own, its tier change is a
// balance_record on the system ring, records wait (never dropped) when that ring is full,
// and a drain waits for the last record.
#include "engine/node/balancer_tile.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "engine/node/shard_tile.h"
#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::node {
namespace {

using namespace std::chrono_literals;

std::atomic<uint64_t> fake_now_ns{1'000'000'000};
uint64_t fake_clock() { return fake_now_ns.load(); }
uint64_t fake_wall_ms() { return 1'764'000'000'000; }

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class NothingTile final : public engine::Tile {
 public:
  std::string_view name() const override { return "nothing"; }
  size_t poll(size_t) override { return 0; }
  bool quiescent() override { return true; }
};

// Chains a (2 shards), b (1) and system (1) on two spinning core loops, as a plan would
// lay them out: a.0 and b.0 on core 0, a.1 and system.0 on core 1.
class BalancerTileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<shm::Segment> created = shm::Segment::create({shm::testing::unique_segment_name("balancer-tile"), 8 << 20});
    ASSERT_TRUE(created) << created.error().message;
    segment_ = std::make_unique<shm::Segment>(std::move(*created));
    ShardTableOptions shards;
    shards.chains = {{"a", 2, 16 << 10}, {"b", 1, 16 << 10}, {"system", 1, 16 << 10}};
    shards.block_arena_bytes = 64 << 10;
    shards.block_ring_capacity = 16;
    shards.credit_ring_capacity = 16;
    Result<uint64_t> shard_table = lay_out_shard_table(*segment_, shards);
    ASSERT_TRUE(shard_table) << shard_table.error().message;
    Result<uint64_t> status_table = lay_out_status_table(*segment_, {{{0, 0, 0, false}, {1, 0, 1, false}}, {"a", "b", "system"}, 250});
    ASSERT_TRUE(status_table) << status_table.error().message;
    uint64_t ring_bytes = *shm::ring_footprint(ring_capacity, sizeof(EngineTxMessage));
    ring_offset_ = *segment_->allocate("system_ring", shm::SegmentObjectKind::ring, ring_bytes, 128);
    ASSERT_TRUE(shm::ring_construct(segment_->base(), ring_offset_, {ring_capacity, sizeof(EngineTxMessage), 0}));
    segment_->seal();
    shards_ = *ShardTableView::join(segment_->base(), *shard_table);
    status_ = *StatusTableView::join(segment_->base(), *status_table);
    for (int index = 0; index < 4; ++index)
      movable_.push_back(std::make_unique<engine::MovableTile>(&tiles_[index], nullptr, &shards_.control(index).busy_ns));
    engine::CoreOptions options;
    options.idle = {config::IdleStrategy::spin, 0, 0};
    options.index = 0;
    loops_.push_back(std::make_unique<engine::CoreLoop>(
        options, std::vector<engine::WeightedTile>{{&tiles_[0], 4, movable_[0].get()}, {&tiles_[2], 4, movable_[2].get()}}));
    options.index = 1;
    loops_.push_back(std::make_unique<engine::CoreLoop>(
        options, std::vector<engine::WeightedTile>{{&tiles_[1], 4, movable_[1].get()}, {&tiles_[3], 4, movable_[3].get()}}));
    for (uint32_t core = 0; core < 2; ++core) loops_by_core_[core] = loops_[core].get();
  }

  void TearDown() override {
    for (auto& loop : loops_) loop->stop_now();
    for (std::thread& thread : threads_) thread.join();
  }

  void start_loops() {
    for (auto& loop : loops_) threads_.emplace_back([&loop] { loop->run(); });
  }

  std::unique_ptr<BalancerTile> make_tile(size_t records_pending_max = 1024) {
    balance::BalancerSetup setup;
    setup.chains = {{"a", 2}, {"b", 1}, {"system", 1}};
    setup.cores = {0, 1};
    setup.placement = {{0, 4}, {1, 4}, {0, 4}, {1, 4}};
    Result<balance::Balancer> balancer = balance::Balancer::create(config::BalancerSection{}, setup);
    EXPECT_TRUE(balancer) << balancer.error().message;
    BalancerTileOptions options;
    options.window_ms = 250;
    options.shards = shards_;
    options.status = status_;
    for (auto& tile : movable_) options.shard_tiles.push_back(tile.get());
    options.loops = &loops_by_core_;
    options.system_ring = *shm::RingProducer::join(segment_->base(), ring_offset_);
    options.shard_core_count = 2;
    options.drain = &drain_;
    options.monotonic_now_ns = fake_clock;
    options.wall_now_ms = fake_wall_ms;
    options.records_pending_max = records_pending_max;
    return std::make_unique<BalancerTile>(std::move(*balancer), std::move(options));
  }

  // One window: chain a commits a_tps, b b_tps, each at 2 us of shard time per
  // transaction (split evenly over a chain's shards); then the tile polls.
  void window(BalancerTile& tile, uint64_t a_tps, uint64_t b_tps) {
    auto add = [&](uint32_t shard, uint64_t txs) {
      shards_.control(shard).committed_txs.fetch_add(txs);
      shards_.control(shard).busy_ns.fetch_add(txs * 2000);
    };
    add(0, a_tps / 8);
    add(1, a_tps / 8);
    add(2, b_tps / 4);
    fake_now_ns.fetch_add(250'000'000);
    tile.poll(64);
  }

  std::vector<ledger::BalanceRecordBody> take_records() {
    shm::RingConsumer consumer = *shm::RingConsumer::join(segment_->base(), ring_offset_);
    std::vector<ledger::BalanceRecordBody> records;
    EngineTxMessage message;
    while (consumer.pop(message)) {
      ledger::TxView view;
      std::span<const std::byte> tx(message.tx, message.tx_bytes);
      EXPECT_EQ(ledger::check_transaction(tx, ledger::TxOrigin::engine, &view), ledger::TxStatus::applied);
      EXPECT_EQ(view.type, ledger::TxType::balance_record);
      records.push_back(view.balance_record);
    }
    return records;
  }

  static constexpr uint64_t ring_capacity = 4;
  std::unique_ptr<shm::Segment> segment_;
  ShardTableView shards_;
  StatusTableView status_;
  uint64_t ring_offset_ = 0;
  NothingTile tiles_[4];
  std::vector<std::unique_ptr<engine::MovableTile>> movable_;
  std::vector<std::unique_ptr<engine::CoreLoop>> loops_;
  std::map<uint32_t, engine::CoreLoop*> loops_by_core_;
  std::vector<std::thread> threads_;
  DrainState drain_;
};

TEST_F(BalancerTileTest, ASurgingChainTurnsHeavyGetsACoreOfItsOwnAndTheChangeIsRecorded) {
  start_loops();
  std::unique_ptr<BalancerTile> tile = make_tile();
  EXPECT_FALSE(drain_.engine_txs_stopped.load()) << "the system shard must wait for the balancer at a drain";
  for (int step = 0; step < 4; ++step) window(*tile, 1'000, 1'000);  // both light
  EXPECT_EQ(status_.read_slice(0).tier, uint32_t(balance::Tier::light));
  take_records();  // the first classification
  for (int step = 0; step < 6; ++step) window(*tile, 200'000, 1'000);  // a surges
  EXPECT_EQ(tile->balancer().status(0).tier, balance::Tier::heavy);
  ChainSliceStatus slice = status_.read_slice(0);
  EXPECT_EQ(slice.tier, uint32_t(balance::Tier::heavy));
  EXPECT_EQ(slice.cores_dedicated, 1u);
  EXPECT_GT(slice.tps_smoothed, 100'000u);
  EXPECT_EQ(std::string(slice.name), "a");
  EXPECT_EQ(status_.read_slice(1).tier, uint32_t(balance::Tier::light));
  std::vector<ledger::BalanceRecordBody> records = take_records();
  bool tier_recorded = false, slice_recorded = false;
  for (const ledger::BalanceRecordBody& record : records) {
    if (std::string(record.chain_name) != "a") continue;
    if (record.kind == uint8_t(ledger::BalanceRecordKind::tier) && record.tier_to == uint8_t(balance::Tier::heavy))
      tier_recorded = true;
    if (record.kind == uint8_t(ledger::BalanceRecordKind::slice) && record.cores_dedicated == 1) slice_recorded = true;
    EXPECT_EQ(record.time_ms, fake_wall_ms());
  }
  EXPECT_TRUE(tier_recorded) << records.size() << " records";
  EXPECT_TRUE(slice_recorded) << records.size() << " records";
  // Both of a's shards end on one core, the others on the other.
  // (Moves land when each core reaches its next safe point: wait for all of them.)
  auto settled = [&] {
    uint32_t a = movable_[0]->core_index.load();
    return movable_[1]->core_index.load() == a && movable_[2]->core_index.load() != a &&
           movable_[3]->core_index.load() != a;
  };
  EXPECT_TRUE(eventually(settled, 2000ms)) << movable_[0]->core_index.load() << movable_[1]->core_index.load()
                                           << movable_[2]->core_index.load() << movable_[3]->core_index.load();
  window(*tile, 200'000, 1'000);  // the next window publishes where the tiles are
  EXPECT_EQ(shards_.control(0).core_index.load(), movable_[0]->core_index.load());
  EXPECT_GT(status_.header().balancer_windows.load(), 0u);
}

TEST_F(BalancerTileTest, RecordsWaitForRoomInTheSystemRingAndNoneIsDropped) {
  start_loops();
  std::unique_ptr<BalancerTile> tile = make_tile(/*records_pending_max=*/1);
  // The ring holds 4; nobody takes them while a and b swing between light and heavy.
  for (int step = 0; step < 60; ++step) window(*tile, step % 24 < 12 ? 300'000 : 100, step % 24 < 12 ? 100 : 300'000);
  const BalancerTileCounters& counters = tile->counters();
  EXPECT_GT(counters.windows_held, 0u) << "the full ring never held a decision back";
  uint64_t changes = tile->tier_changes(0) + tile->tier_changes(1) + tile->slice_changes(0) + tile->slice_changes(1) +
                     tile->slice_changes(2);
  EXPECT_GT(changes, ring_capacity);
  // Drain: the tile is not quiescent until the records are in; the ring is emptied bit by bit.
  tile->begin_drain();
  EXPECT_FALSE(tile->quiescent());
  EXPECT_FALSE(drain_.engine_txs_stopped.load());
  uint64_t taken = 0;
  for (int round = 0; round < 100 && !tile->quiescent(); ++round) {
    taken += take_records().size();
    tile->poll(64);
  }
  taken += take_records().size();
  EXPECT_TRUE(tile->quiescent());
  EXPECT_TRUE(drain_.engine_txs_stopped.load());
  EXPECT_EQ(taken, counters.records_ordered);
  EXPECT_EQ(taken, changes) << "every tier and slice change is one record";
}

}  // namespace
}  // namespace keel::node
