// Tests for engine/node/request_table.h: every value comes back exactly once under its own
// id, whatever the order of the receipts, the lagging ones included.
#include "engine/node/request_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

namespace keel::node {
namespace {

TEST(RequestTable, GivesEachValueBackOnceUnderItsId) {
  RequestTable<uint64_t> table(16);
  table.insert(1, 100);
  table.insert(2, 200);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.take(2), std::optional<uint64_t>(200));
  EXPECT_EQ(table.take(2), std::nullopt);  // a second receipt for the same request
  EXPECT_EQ(table.take(3), std::nullopt);  // a request never sent
  EXPECT_EQ(table.take(0), std::nullopt);  // the free slots' id
  EXPECT_EQ(table.take(1), std::optional<uint64_t>(100));
  EXPECT_TRUE(table.empty());
}

TEST(RequestTable, AnIdWhoseSlotIsTakenWaitsInTheOverflow) {
  RequestTable<uint64_t> table(16);  // 64 slots
  table.insert(1, 1);
  table.insert(65, 65);  // slot 1 is still id 1's
  EXPECT_EQ(table.overflowed(), 1u);
  EXPECT_EQ(table.take(65), std::optional<uint64_t>(65));
  EXPECT_EQ(table.take(1), std::optional<uint64_t>(1));
  table.insert(129, 129);  // slot 1 is free again
  EXPECT_EQ(table.overflowed(), 0u);
  EXPECT_EQ(table.take(129), std::optional<uint64_t>(129));
  EXPECT_TRUE(table.empty());
}

// A client's life: up to in_flight_max requests out, receipts in random order, a few held
// back for a long time (a stalled shard) so that later ids land on their slots.
TEST(RequestTable, RandomReceiptOrderLosesAndInventsNothing) {
  const uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 random(seed);
  constexpr uint32_t in_flight_max = 32;
  RequestTable<uint64_t> table(in_flight_max);
  std::map<uint64_t, uint64_t> expected;  // id -> value, the requests out
  uint64_t next_id = 1, lagging_taken = 0;
  size_t overflowed_most = 0;
  for (int step = 0; step < 200'000; ++step) {
    if (expected.size() < in_flight_max && random() % 2 == 0) {
      uint64_t value = random();
      table.insert(next_id, value);
      expected[next_id++] = value;
    } else if (!expected.empty()) {
      // Mostly a recent request's receipt; the oldest (the laggard) only now and then.
      auto pick = expected.begin();
      if (expected.size() > 1 && random() % 1000 != 0) std::advance(pick, 1 + random() % (expected.size() - 1));
      lagging_taken += pick == expected.begin();
      ASSERT_EQ(table.take(pick->first), std::optional<uint64_t>(pick->second)) << "id " << pick->first;
      expected.erase(pick);
    }
    ASSERT_EQ(table.size(), expected.size());
    overflowed_most = std::max(overflowed_most, table.overflowed());
  }
  for (const auto& [id, value] : expected) ASSERT_EQ(table.take(id), std::optional<uint64_t>(value));
  EXPECT_TRUE(table.empty());
  EXPECT_GT(lagging_taken, 0u);
  EXPECT_GT(overflowed_most, 0u);  // the laggards did push ids into the overflow
}

}  // namespace
}  // namespace keel::node
