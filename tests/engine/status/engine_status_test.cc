// Tests for engine/status: the report's math over scripted samples (rates, p99 from
// latency bucket deltas, durable lag and its age, busy %, ring and pool figures), the
// Prometheus text's shape, and the segment's product table (engine/node/product_table.h)
// that the samples read.
#include "engine/status/engine_status.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "engine/node/product_table.h"
#include "engine/status/status_format.h"

namespace keel::status {
namespace {

constexpr uint64_t second_ns = 1'000'000'000;

// One chain of `shards` shards, one core, one ring, one pool: the smallest engine.
StatusSample base_sample(uint64_t taken_ns, uint32_t shards = 2) {
  StatusSample sample;
  sample.instance = "test";
  sample.engine_pid = 42;
  sample.taken_ns = taken_ns;
  ChainSample chain;
  chain.name = "payments";
  for (uint32_t shard = 0; shard < shards; ++shard) {
    ShardSample entry;
    entry.global_shard = shard;
    entry.shard = shard;
    entry.tile = "shard.payments." + std::to_string(shard);
    chain.shards.push_back(entry);
  }
  sample.chains.push_back(chain);
  CoreSample core;
  core.core_index = 0;
  core.tiles = {"gateway"};
  for (const ShardSample& shard : chain.shards) core.tiles.push_back(shard.tile);
  sample.cores.push_back(core);
  sample.rings.push_back({RingKind::block, "shard.payments.0.block", "shard.payments.0", 256, 0, 0, 0});
  sample.rings.push_back({RingKind::block, "shard.payments.1.block", "shard.payments.1", 256, 0, 0, 0});
  PoolSample pool;
  pool.name = "noop@0";
  sample.pools.push_back(pool);
  return sample;
}

// Counts `count` latencies of `latency_us` into a shard's buckets and sum.
void commit(ShardSample& shard, uint64_t count, uint64_t latency_us) {
  shard.committed_txs += count;
  shard.commit_latency_us_sum += count * latency_us;
  shard.commit_latency_buckets[node::commit_latency_bucket(latency_us)] += count;
}

TEST(StatusReport, RatesAreCounterDeltasOverTheInterval) {
  StatusSample earlier = base_sample(10 * second_ns);
  commit(earlier.chains[0].shards[0], 5'000, 100);  // before the interval: not in its rates
  StatusSample later = earlier;
  later.taken_ns = earlier.taken_ns + 2 * second_ns;
  commit(later.chains[0].shards[0], 3'000, 100);
  commit(later.chains[0].shards[1], 1'000, 100);
  later.cores[0].busy_ns = earlier.cores[0].busy_ns + second_ns / 2;  // 0.5 s busy of 2 s
  later.cores[0].sleeps = 400;
  later.rings[0].pushed = 1'000;
  later.rings[0].popped = 990;
  StatusReport report = make_status_report(earlier, later);
  EXPECT_DOUBLE_EQ(report.interval_s, 2.0);
  ASSERT_EQ(report.chains.size(), 1u);
  EXPECT_DOUBLE_EQ(report.chains[0].committed_per_second, 2'000.0);
  EXPECT_EQ(report.chains[0].committed_txs, 9'000u);
  EXPECT_DOUBLE_EQ(report.chains[0].commit_latency_us_mean, 100.0);
  ASSERT_EQ(report.cores.size(), 1u);
  EXPECT_DOUBLE_EQ(report.cores[0].busy_percent, 25.0);
  EXPECT_DOUBLE_EQ(report.cores[0].sleeps_per_second, 200.0);
  ASSERT_EQ(report.rings.size(), 1u);  // one entry per kind that has rings
  EXPECT_EQ(report.rings[0].kind, RingKind::block);
  EXPECT_EQ(report.rings[0].rings, 2u);
  EXPECT_EQ(report.rings[0].depth, 10u);
  EXPECT_EQ(report.rings[0].depth_max_ring, "shard.payments.0.block");
  EXPECT_DOUBLE_EQ(report.rings[0].pushed_per_second, 500.0);
}

TEST(StatusReport, P99ComesFromTheIntervalsBucketsOnly) {
  StatusSample earlier = base_sample(second_ns);
  // Slow transactions before the interval must not colour its p99.
  commit(earlier.chains[0].shards[0], 1'000, 90'000);
  StatusSample later = earlier;
  later.taken_ns += second_ns;
  commit(later.chains[0].shards[0], 990, 50);     // 99 % at 50 us
  commit(later.chains[0].shards[1], 10, 20'000);  // 1 % at 20 ms, on the other shard
  StatusReport report = make_status_report(earlier, later);
  uint64_t p99 = report.chains[0].commit_latency_us_p99;
  EXPECT_GE(p99, 50u);
  EXPECT_EQ(p99, node::commit_latency_bucket_upper_us(node::commit_latency_bucket(50)));
  // One more slow transaction puts the 99th percentile among the slow ones.
  commit(later.chains[0].shards[1], 1, 20'000);
  report = make_status_report(earlier, later);
  EXPECT_EQ(report.chains[0].commit_latency_us_p99, node::commit_latency_bucket_upper_us(node::commit_latency_bucket(20'000)));
  EXPECT_GE(report.chains[0].commit_latency_us_p99, 20'000u);
  EXPECT_LE(report.chains[0].commit_latency_us_p99, 20'000u * 113 / 100);  // buckets are ~12 % wide
  // Nothing committed in the interval: no p99 (0), not the old one.
  report = make_status_report(later, later);
  EXPECT_EQ(report.chains[0].commit_latency_us_p99, 0u);
  EXPECT_EQ(report.chains[0].commit_latency_us_mean, 0.0);
}

TEST(StatusReport, PercentileOfRandomLatenciesIsWithinOneBucket) {
  std::random_device device;
  uint32_t seed = device();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  for (int round = 0; round < 50; ++round) {
    std::vector<uint64_t> latencies(1 + random() % 5'000);
    std::array<uint64_t, node::commit_latency_bucket_count> counted{};
    for (uint64_t& latency : latencies) {
      latency = random() % (uint64_t(1) << (random() % 26));
      ++counted[node::commit_latency_bucket(latency)];
    }
    std::sort(latencies.begin(), latencies.end());
    size_t rank = size_t(std::ceil(0.99 * double(latencies.size())));
    uint64_t exact = latencies[rank - 1];
    uint64_t reported = commit_latency_us_percentile(counted, 0.99);
    EXPECT_EQ(reported, node::commit_latency_bucket_upper_us(node::commit_latency_bucket(exact)));
  }
}

TEST(StatusReport, DurableLagAndItsAge) {
  StatusSample earlier = base_sample(second_ns);
  earlier.chains[0].shards[0].sealed_height = 10;
  earlier.chains[0].shards[0].durable_height = 8;
  earlier.chains[0].shards[1].sealed_height = 4;
  earlier.chains[0].shards[1].durable_height = 4;
  StatusSample later = earlier;
  later.taken_ns += second_ns / 2;
  // Shard 0 made 9 durable: block 10 was sealed at the earlier sample and still waits.
  later.chains[0].shards[0].sealed_height = 12;
  later.chains[0].shards[0].durable_height = 9;
  StatusReport report = make_status_report(earlier, later);
  EXPECT_EQ(report.chains[0].durable_lag_blocks, 3u);
  EXPECT_EQ(report.chains[0].durable_lag_ms_min, 500u);
  EXPECT_EQ(report.chains[0].sealed_height_max, 12u);
  EXPECT_EQ(report.chains[0].durable_height_max, 9u);
  // Everything sealed by the earlier sample is durable now: the lag is younger than the interval.
  later.chains[0].shards[0].durable_height = 10;
  report = make_status_report(earlier, later);
  EXPECT_EQ(report.chains[0].durable_lag_blocks, 2u);
  EXPECT_EQ(report.chains[0].durable_lag_ms_min, 0u);
}

TEST(StatusReport, BackpressureIsChargedToTheCoreOfTheProducingTile) {
  StatusSample earlier = base_sample(second_ns);
  CoreSample other;
  other.core_index = 1;
  other.tiles = {"persist"};
  earlier.cores.push_back(other);
  StatusSample later = earlier;
  later.taken_ns += second_ns;
  later.rings[1].full_events = 7;  // shard.payments.1 pushes into it
  later.chains[0].shards[1].blocks_backpressured = 3;
  later.chains[0].shards[1].busy_ns = second_ns / 4;
  StatusReport report = make_status_report(earlier, later);
  EXPECT_EQ(report.cores[0].full_events, 7u);
  EXPECT_EQ(report.cores[0].blocks_backpressured, 3u);
  EXPECT_EQ(report.cores[1].full_events, 0u);
  EXPECT_EQ(report.rings[0].full_events_interval, 7u);
  EXPECT_EQ(report.rings[0].full_events_ring, "shard.payments.1.block");
  EXPECT_EQ(report.chains[0].blocks_backpressured, 3u);
  EXPECT_DOUBLE_EQ(report.chains[0].busy_percent, 25.0);
}

TEST(StatusReport, PoolStatesAndRates) {
  StatusSample earlier = base_sample(second_ns);
  PoolSample& pool = earlier.pools[0];
  pool.epoch = 1;
  pool.ready_epoch = 1;
  pool.tasks_dispatched = 100;
  pool.tasks_retried = 1;
  StatusSample later = earlier;
  later.taken_ns += second_ns;
  later.pools[0].tasks_dispatched = 350;
  later.pools[0].tasks_retried = 11;
  later.pools[0].tasks_in_flight = 9;
  StatusReport report = make_status_report(earlier, later);
  EXPECT_EQ(report.pools[0].state, "ready");
  EXPECT_DOUBLE_EQ(report.pools[0].dispatched_per_second, 250.0);
  EXPECT_DOUBLE_EQ(report.pools[0].retried_per_second, 10.0);
  EXPECT_EQ(report.pools[0].tasks_in_flight, 9u);
  later.pools[0].dead_epoch = 1;  // reaped, not yet started again
  EXPECT_EQ(make_status_report(earlier, later).pools[0].state, "restarting");
  later.pools[0].epoch = 2;
  later.pools[0].restarts = 1;
  EXPECT_EQ(make_status_report(earlier, later).pools[0].state, "starting");
  later.pools[0].quarantined = true;
  later.pools[0].quarantine = "crashed 5 times in 30000 ms";
  report = make_status_report(earlier, later);
  EXPECT_EQ(report.pools[0].state, "quarantined");
  EXPECT_EQ(report.pools[0].restarts, 1u);
}

TEST(StatusReport, ACounterThatWentDownCountsAsNothing) {
  // Another engine started under the same name between the samples.
  StatusSample earlier = base_sample(second_ns);
  commit(earlier.chains[0].shards[0], 1'000, 10);
  earlier.cores[0].busy_ns = 5 * second_ns;
  StatusSample later = base_sample(2 * second_ns);
  commit(later.chains[0].shards[0], 10, 10);
  StatusReport report = make_status_report(earlier, later);
  EXPECT_EQ(report.chains[0].committed_per_second, 0.0);
  EXPECT_EQ(report.cores[0].busy_percent, 0.0);
  EXPECT_EQ(report.chains[0].committed_txs, 10u);
}

TEST(StatusReport, TierComesFromTheBalancersSlice) {
  StatusSample sample = base_sample(second_ns);
  EXPECT_EQ(make_status_report(sample, sample).chains[0].tier, "none");
  sample.chains[0].slice.window = 3;
  sample.chains[0].slice.tier = 2;
  sample.chains[0].slice.cores_dedicated = 1;
  ChainFigures chain = make_status_report(sample, sample).chains[0];
  EXPECT_TRUE(chain.balanced);
  EXPECT_EQ(chain.tier, "heavy");
  EXPECT_EQ(chain.cores_dedicated, 1u);
}

// Every line of the exposition is a comment or `name{labels} value`; families are
// announced once; the histogram is cumulative and ends at +Inf with the count.
TEST(StatusFormat, PrometheusTextIsWellFormed) {
  StatusSample earlier = base_sample(second_ns);
  StatusSample later = earlier;
  later.taken_ns += second_ns;
  later.chains[0].name = "pay\"ments";  // escaped in labels
  commit(later.chains[0].shards[0], 100, 30);
  commit(later.chains[0].shards[1], 1, 5'000);
  later.products.push_back({"retail_loans", 10, 512, 7, 3, 2});
  std::string text = prometheus_text(make_status_report(earlier, later), later);
  std::istringstream lines(text);
  std::set<std::string> typed;
  uint64_t previous_bucket = 0, last_bucket = 0, count = 0;
  for (std::string line; std::getline(lines, line);) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(typed.insert(family).second) << "announced twice: " << family;
      continue;
    }
    if (line[0] == '#') continue;
    size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    std::string value = line.substr(space + 1);
    char* end = nullptr;
    std::strtod(value.c_str(), &end);
    EXPECT_EQ(*end, '\0') << "not a number: " << line;
    if (line.rfind("keel_chain_commit_latency_seconds_bucket", 0) == 0) {
      uint64_t cumulative = std::stoull(value);
      EXPECT_GE(cumulative, previous_bucket) << line;
      previous_bucket = last_bucket = cumulative;
      if (line.find("le=\"+Inf\"") != std::string::npos) {
        EXPECT_EQ(cumulative, 101u);
      }
    }
    if (line.rfind("keel_chain_commit_latency_seconds_count", 0) == 0) count = std::stoull(value);
  }
  EXPECT_EQ(last_bucket, 101u);
  EXPECT_EQ(count, 101u);
  EXPECT_NE(text.find("keel_chain_committed_transactions_total{chain=\"pay\\\"ments\"} 101\n"), std::string::npos);
  EXPECT_NE(text.find("keel_product_jobs_queued{product=\"retail_loans\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("keel_ring_full_events_total{kind=\"block\",ring=\"shard.payments.0.block\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("keel_pool_restarts_total{pool=\"noop@0\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("keel_chain_tps{chain=\"pay\\\"ments\"} 101\n"), std::string::npos);
}

TEST(StatusFormat, JsonAndTablesCarryEverySection) {
  StatusSample sample = base_sample(second_ns);
  StatusReport report = make_status_report(sample, sample);
  nlohmann::json json = status_json(report);
  for (const char* key : {"instance", "engine_pid", "interval_s", "chains", "cores", "rings", "pools", "products",
                          "compute", "clients", "balancer"})
    EXPECT_TRUE(json.contains(key)) << key;
  std::string tables = format_status_tables(report);
  for (const char* header : {"chain ", "core ", "ring kind", "pool ", "compute:", "clients:", "balancer:"})
    EXPECT_NE(tables.find(header), std::string::npos) << header << "\n" << tables;
}

// --- the product table the shard tiles publish into ---

class ProductTable : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "keel-product-table-test-" + std::to_string(getpid());
    shm::Segment::remove(name_);
    Result<shm::Segment> segment = shm::Segment::create({name_, 4 << 20});
    ASSERT_TRUE(segment) << segment.error().message;
    segment_ = std::make_unique<shm::Segment>(std::move(*segment));
    Result<uint64_t> table = node::lay_out_product_table(*segment_, 3, 4);
    ASSERT_TRUE(table) << table.error().message;
    Result<node::ProductTableView> view = node::ProductTableView::join(segment_->base(), *table);
    ASSERT_TRUE(view) << view.error().message;
    view_ = *view;
  }
  std::string name_;
  std::unique_ptr<shm::Segment> segment_;
  node::ProductTableView view_;
};

TEST_F(ProductTable, PublishedListsReadBackPerShardAndBounded) {
  uint64_t published = 1;
  EXPECT_TRUE(view_.read(1, &published).empty());
  EXPECT_EQ(published, 0u);
  std::vector<flow::FlowTable::ProductLoad> loads = {{"retail_loans", {10, 512}, 7, 3},
                                                     {"savings_accounts", {1, 256}, 0, 2}};
  view_.publish(1, loads, 1234);
  std::vector<node::ProductStatus> read = view_.read(1, &published);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(published, 1234u);
  EXPECT_EQ(read[0].name, "retail_loans");
  EXPECT_EQ(read[0].priority, 10u);
  EXPECT_EQ(read[0].running_max, 512u);
  EXPECT_EQ(read[0].jobs_queued, 7u);
  EXPECT_EQ(read[0].jobs_running, 3u);
  EXPECT_EQ(read[1].name, "savings_accounts");
  EXPECT_TRUE(view_.read(0).empty());
  EXPECT_TRUE(view_.read(2).empty());
  // More than products_max (4): the first four are kept, nothing written past the area.
  std::vector<std::string> names = {"a", "b", "c", "d", "e", "f"};
  loads.clear();
  for (const std::string& name : names) loads.push_back({name, {}, 1, 1});
  view_.publish(0, loads, 5);
  EXPECT_EQ(view_.read(0).size(), 4u);
  EXPECT_EQ(view_.read(1).size(), 2u);  // the neighbour is untouched
  EXPECT_EQ(node::product_table_footprint(0, 4).error().message, "ledger.products: needs at least one shard");
}

// A reader never sees a list half written: every entry of one copy carries the same
// generation, while a writer thread republishes as fast as it can.
TEST_F(ProductTable, ReadersSeeWholePublications) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::vector<flow::FlowTable::ProductLoad> loads(4);
    std::vector<std::string> names = {"p0", "p1", "p2", "p3"};
    for (uint64_t generation = 1; !stop.load(std::memory_order_relaxed); ++generation) {
      for (size_t index = 0; index < loads.size(); ++index) loads[index] = {names[index], {}, generation, 1};
      view_.publish(2, loads, generation);
    }
  });
  for (int read = 0; read < 20'000; ++read) {
    uint64_t published = 0;
    std::vector<node::ProductStatus> copy = view_.read(2, &published);
    if (copy.empty()) continue;
    ASSERT_EQ(copy.size(), 4u);
    for (const node::ProductStatus& product : copy) ASSERT_EQ(product.jobs_queued, published);
  }
  stop = true;
  writer.join();
}

}  // namespace
}  // namespace keel::status
