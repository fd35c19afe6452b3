// Tests for engine/node/load_schedule.h: which rate applies when, and how many submissions
// are due by a time, in all and per client.
#include "engine/node/load_schedule.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

namespace keel::node {
namespace {

constexpr uint64_t ms = 1'000'000;  // nanoseconds
constexpr uint64_t seconds = 1000 * ms;

config::LoadSection surge_load() {
  config::LoadSection load;
  load.clients = 2;
  load.chain_rate_per_second = 2000;
  load.shapes = {{"cards", 6000, 13000, 150000},
                 {"payments", 0, config::load_shape_open_end_ms, 20000},
                 {"treasury", 1000, 2000, 0},
                 {"elsewhere", 0, 1000, 7}};  // a chain this generator does not load
  return load;
}

TEST(LoadSchedule, TheShapeInForceGivesTheRate) {
  LoadSchedule schedule(surge_load(), {"payments", "settlement", "cards", "treasury"});
  ASSERT_EQ(schedule.chain_count(), 4u);
  // settlement has no shape: the base rate all the time.
  for (uint64_t at_ms : {0ull, 5999ull, 6000ull, 100'000ull}) EXPECT_EQ(schedule.rate_per_second(1, at_ms), 2000u);
  // cards: base, surge from 6000 (included) to 13000 (excluded), base again.
  EXPECT_EQ(schedule.rate_per_second(2, 0), 2000u);
  EXPECT_EQ(schedule.rate_per_second(2, 5999), 2000u);
  EXPECT_EQ(schedule.rate_per_second(2, 6000), 150000u);
  EXPECT_EQ(schedule.rate_per_second(2, 12999), 150000u);
  EXPECT_EQ(schedule.rate_per_second(2, 13000), 2000u);
  // payments: a whole-run shape; treasury: silent for one second.
  EXPECT_EQ(schedule.rate_per_second(0, 0), 20000u);
  EXPECT_EQ(schedule.rate_per_second(0, 86'000'000), 20000u);
  EXPECT_EQ(schedule.rate_per_second(3, 999), 2000u);
  EXPECT_EQ(schedule.rate_per_second(3, 1000), 0u);
  EXPECT_EQ(schedule.rate_per_second(3, 2000), 2000u);
}

TEST(LoadSchedule, DueIsTheRateIntegratedOverEachPiece) {
  LoadSchedule schedule(surge_load(), {"payments", "settlement", "cards", "treasury"});
  EXPECT_EQ(schedule.due_total(2, 0), 0u);
  EXPECT_EQ(schedule.due_total(2, 6 * seconds), 12'000u);
  EXPECT_EQ(schedule.due_total(2, 6 * seconds + 10 * ms), 12'000u + 1500u);
  EXPECT_EQ(schedule.due_total(2, 13 * seconds), 12'000u + 7 * 150'000u);
  EXPECT_EQ(schedule.due_total(2, 20 * seconds), 12'000u + 7 * 150'000u + 7 * 2000u);
  EXPECT_EQ(schedule.due_total(3, 3 * seconds), 4000u);  // 1 s of base, 1 s silent, 1 s of base
  EXPECT_EQ(schedule.due_total(0, 20 * seconds), 400'000u);
  // Rounding happens once, at the end, so no piece's fraction is lost.
  config::LoadSection slow;
  slow.chain_rate_per_second = 1;
  slow.shapes = {{"a", 500, 700, 3}};
  LoadSchedule trickle(slow, {"a"});
  EXPECT_EQ(trickle.due_total(0, 499 * ms), 0u);
  // 0.5 + 0.6 + 0.299 = 1.399: rounding each piece down would give 0.
  EXPECT_EQ(trickle.due_total(0, 999 * ms), 1u);
  EXPECT_EQ(trickle.due_total(0, 1000 * ms), 1u);
}

TEST(LoadSchedule, DueNeverFallsAsTimeGoesOnAndClientsShareItExactly) {
  unsigned seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937_64 random(seed);
  LoadSchedule schedule(surge_load(), {"payments", "settlement", "cards", "treasury"});
  for (uint32_t clients : {1u, 2u, 3u, 7u}) {
    uint64_t before = 0;
    for (uint64_t elapsed_ns = 0; elapsed_ns < 20 * seconds; elapsed_ns += random() % (50 * ms)) {
      uint64_t total = schedule.due_total(2, elapsed_ns), parts = 0;
      EXPECT_GE(total, before) << "at " << elapsed_ns << " ns";
      before = total;
      uint64_t smallest = UINT64_MAX, largest = 0;
      for (uint32_t client = 0; client < clients; ++client) {
        uint64_t part = schedule.due_for_client(2, elapsed_ns, client, clients);
        parts += part;
        smallest = std::min(smallest, part);
        largest = std::max(largest, part);
      }
      EXPECT_EQ(parts, total) << clients << " clients at " << elapsed_ns << " ns";
      EXPECT_LE(largest - smallest, 1u);
    }
  }
}

TEST(LoadSchedule, NoShapesAndNoBaseOffersNothing) {
  LoadSchedule schedule(config::LoadSection{}, {"a", "b"});
  EXPECT_EQ(schedule.rate_per_second(0, 1000), 0u);
  EXPECT_EQ(schedule.due_total(1, 10 * seconds), 0u);
}

}  // namespace
}  // namespace keel::node
