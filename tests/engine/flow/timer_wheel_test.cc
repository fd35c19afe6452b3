// Tests for engine/flow/timer_wheel.h: the order of due timers, cancelling, timers far in
// the future, the capacity bound, and a randomized run against a std::multimap model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

#include "engine/flow/timer_wheel.h"

namespace keel::flow {
namespace {

void insert_ok(TimerWheel& wheel, uint64_t id, uint64_t due_ms) {
  Result<void> inserted = wheel.insert(id, due_ms);
  ASSERT_TRUE(inserted.ok()) << inserted.error().message;
}

TEST(TimerWheel, DueTimersComeInDueTimeThenIdOrder) {
  TimerWheel wheel(64, 1000);
  // Inserted in an order that is neither by due time nor by id.
  insert_ok(wheel, 7, 1500);
  insert_ok(wheel, 3, 1200);
  insert_ok(wheel, 9, 1200);
  insert_ok(wheel, 1, 1500);
  insert_ok(wheel, 5, 1200);
  insert_ok(wheel, 2, 1001);
  insert_ok(wheel, 8, 70000);  // in a higher level: must not come out early
  EXPECT_EQ(wheel.size(), 7u);
  EXPECT_EQ(wheel.next_due_ms(), std::optional<uint64_t>(1001));
  EXPECT_EQ(wheel.advance(1000), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.advance(1200), (std::vector<DueTimer>{{1001, 2}, {1200, 3}, {1200, 5}, {1200, 9}}));
  EXPECT_EQ(wheel.now_ms(), 1200u);
  EXPECT_EQ(wheel.advance(1499), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.advance(69999), (std::vector<DueTimer>{{1500, 1}, {1500, 7}}));
  EXPECT_EQ(wheel.next_due_ms(), std::optional<uint64_t>(70000));
  EXPECT_EQ(wheel.advance(70000), (std::vector<DueTimer>{{70000, 8}}));
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.next_due_ms(), std::nullopt);

  // The same timers inserted in reverse come out the same.
  TimerWheel reversed(64, 1000);
  for (uint64_t id : {8, 2, 5, 1, 9, 3, 7}) {
    const uint64_t due_ms = id == 8 ? 70000 : id == 2 ? 1001 : (id == 1 || id == 7) ? 1500 : 1200;
    insert_ok(reversed, id, due_ms);
  }
  EXPECT_EQ(reversed.advance(100000), (std::vector<DueTimer>{{1001, 2}, {1200, 3}, {1200, 5}, {1200, 9}, {1500, 1},
                                                             {1500, 7}, {70000, 8}}));
}

TEST(TimerWheel, CancelRemovesATimer) {
  TimerWheel wheel(8);
  insert_ok(wheel, 1, 100);
  insert_ok(wheel, 2, 100);
  insert_ok(wheel, 3, 5000000);
  EXPECT_TRUE(wheel.cancel(2));
  EXPECT_FALSE(wheel.cancel(2)) << "already cancelled";
  EXPECT_FALSE(wheel.cancel(42)) << "never set";
  EXPECT_TRUE(wheel.cancel(3));
  EXPECT_EQ(wheel.due_of(1), std::optional<uint64_t>(100));
  EXPECT_EQ(wheel.due_of(2), std::nullopt);
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(wheel.advance(10000000), (std::vector<DueTimer>{{100, 1}}));
  EXPECT_FALSE(wheel.cancel(1)) << "already fired";
  // An id is free again once cancelled or fired.
  insert_ok(wheel, 2, 10000001);
  insert_ok(wheel, 1, 10000001);
  EXPECT_EQ(wheel.advance(10000001), (std::vector<DueTimer>{{10000001, 1}, {10000001, 2}}));
}

TEST(TimerWheel, FarFutureTimersSurfaceOnTime) {
  const uint64_t now_ms = 1704067200000;  // 2024-01-01T00:00:00Z
  TimerWheel wheel(16, now_ms);
  const uint64_t year_ms = 365ull * 24 * 3600 * 1000;
  insert_ok(wheel, 1, now_ms + year_ms);
  insert_ok(wheel, 2, now_ms + 100 * year_ms);
  insert_ok(wheel, 3, UINT64_MAX);
  insert_ok(wheel, 4, now_ms + 1);
  insert_ok(wheel, 5, uint64_t(1) << 62);
  EXPECT_EQ(wheel.advance(now_ms + 1), (std::vector<DueTimer>{{now_ms + 1, 4}}));
  // One millisecond short of each, then exactly at it, across every level.
  EXPECT_EQ(wheel.advance(now_ms + year_ms - 1), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.next_due_ms(), std::optional<uint64_t>(now_ms + year_ms));
  EXPECT_EQ(wheel.advance(now_ms + year_ms), (std::vector<DueTimer>{{now_ms + year_ms, 1}}));
  EXPECT_EQ(wheel.advance(now_ms + 100 * year_ms - 1), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.advance(now_ms + 100 * year_ms), (std::vector<DueTimer>{{now_ms + 100 * year_ms, 2}}));
  EXPECT_EQ(wheel.advance((uint64_t(1) << 62) - 1), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.advance(uint64_t(1) << 62), (std::vector<DueTimer>{{uint64_t(1) << 62, 5}}));
  EXPECT_EQ(wheel.advance(UINT64_MAX - 1), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.advance(UINT64_MAX), (std::vector<DueTimer>{{UINT64_MAX, 3}}));
  EXPECT_EQ(wheel.size(), 0u);

  // A timer a year out, passed by one leap of the clock.
  TimerWheel leap(4, now_ms);
  insert_ok(leap, 9, now_ms + year_ms + 12345);
  EXPECT_EQ(leap.advance(now_ms + 10 * year_ms), (std::vector<DueTimer>{{now_ms + year_ms + 12345, 9}}));
}

TEST(TimerWheel, OverdueTimersFireAtTheNextAdvance) {
  TimerWheel wheel(4, 5000);
  insert_ok(wheel, 2, 4000);  // already past: reported with its own due time
  insert_ok(wheel, 1, 5000);
  EXPECT_EQ(wheel.next_due_ms(), std::optional<uint64_t>(5000));
  // Time does not run backwards: an earlier now_ms still returns what is due.
  EXPECT_EQ(wheel.advance(10), (std::vector<DueTimer>{{4000, 2}, {5000, 1}}));
  EXPECT_EQ(wheel.now_ms(), 5000u);
  insert_ok(wheel, 3, 5001);
  EXPECT_EQ(wheel.advance(4999), std::vector<DueTimer>{});
  EXPECT_EQ(wheel.advance(5001), (std::vector<DueTimer>{{5001, 3}}));
}

TEST(TimerWheel, CapacityAndDuplicateIdsAreErrors) {
  TimerWheel wheel(3);
  EXPECT_EQ(wheel.capacity(), 3u);
  insert_ok(wheel, 10, 100);
  insert_ok(wheel, 11, 200);
  insert_ok(wheel, 12, 300);
  Result<void> full = wheel.insert(13, 400);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().message, "timer wheel: full (capacity 3 timers)");
  Result<void> duplicate = wheel.insert(11, 999);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.error().message, "timer 11: already set, due at 200 ms");
  // Neither failure changed anything.
  EXPECT_EQ(wheel.size(), 3u);
  EXPECT_EQ(wheel.due_of(11), std::optional<uint64_t>(200));
  EXPECT_EQ(wheel.due_of(13), std::nullopt);
  // Room again after a cancel, and after timers fire.
  EXPECT_TRUE(wheel.cancel(12));
  insert_ok(wheel, 13, 400);
  EXPECT_EQ(wheel.advance(250), (std::vector<DueTimer>{{100, 10}, {200, 11}}));
  insert_ok(wheel, 14, 500);
  insert_ok(wheel, 15, 500);
  EXPECT_FALSE(wheel.insert(16, 500).ok());
  EXPECT_EQ(wheel.advance(1000), (std::vector<DueTimer>{{400, 13}, {500, 14}, {500, 15}}));
}

// Random inserts, cancels and advances (small steps and leaps) against a std::multimap of
// due time to id; every answer must match exactly.
TEST(TimerWheel, MatchesAMultimapModel) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  constexpr uint32_t capacity = 300;
  for (int run = 0; run < 20; ++run) {
    const uint64_t start_ms = random() % 2 ? 0 : random() >> 8;
    TimerWheel wheel(capacity, start_ms);
    std::multimap<uint64_t, uint64_t> model;  // due_ms -> id
    uint64_t model_now_ms = start_ms;
    // model_now_ms + delta_ms, held at UINT64_MAX rather than wrapping.
    auto later_ms = [&](uint64_t delta_ms) { return model_now_ms + std::min(delta_ms, UINT64_MAX - model_now_ms); };
    auto find_in_model = [&](uint64_t id) {
      return std::find_if(model.begin(), model.end(), [&](const auto& entry) { return entry.second == id; });
    };
    // A due time at a random scale: the same millisecond, within a slot, a level, or far out.
    auto random_due_ms = [&]() -> uint64_t {
      switch (random() % 7) {
        case 0: return model_now_ms;
        case 1: return later_ms(random() % 64);
        case 2: return later_ms(random() % 5000);
        case 3: return later_ms(random() % 10000000);
        case 4: return model_now_ms - std::min<uint64_t>(model_now_ms, random() % 100);  // overdue
        case 5: return later_ms(random() >> (random() % 64));
        default: return later_ms(1000 * (random() % 4));  // collisions on purpose
      }
    };
    std::vector<DueTimer> due;
    for (int step = 0; step < 3000; ++step) {
      uint32_t action = random() % 10;
      if (action < 5) {
        uint64_t id = random() % 2 ? random() % 500 : random();
        uint64_t due_ms = random_due_ms();
        Result<void> inserted = wheel.insert(id, due_ms);
        bool expected_ok = find_in_model(id) == model.end() && model.size() < capacity;
        ASSERT_EQ(inserted.ok(), expected_ok) << "step " << step << " id " << id;
        if (expected_ok) model.emplace(due_ms, id);
      } else if (action < 7) {
        uint64_t id = random() % 500;
        auto entry = find_in_model(id);
        ASSERT_EQ(wheel.cancel(id), entry != model.end()) << "step " << step << " id " << id;
        if (entry != model.end()) model.erase(entry);
      } else {
        uint64_t now_ms = random() % 8 == 0 ? model_now_ms - std::min<uint64_t>(model_now_ms, 50)  // backwards
                          : random() % 4 == 0 ? later_ms(random() >> (random() % 64))              // a leap
                                              : later_ms(random() % 3000);
        model_now_ms = std::max(model_now_ms, now_ms);
        std::vector<DueTimer> expected;
        while (!model.empty() && model.begin()->first <= model_now_ms) {
          expected.push_back({model.begin()->first, model.begin()->second});
          model.erase(model.begin());
        }
        std::sort(expected.begin(), expected.end(), [](const DueTimer& a, const DueTimer& b) {
          return a.due_ms != b.due_ms ? a.due_ms < b.due_ms : a.id < b.id;
        });
        wheel.advance(now_ms, due);
        ASSERT_EQ(due, expected) << "step " << step << " advance to " << now_ms;
        ASSERT_EQ(wheel.now_ms(), model_now_ms);
      }
      ASSERT_EQ(wheel.size(), model.size());
      std::optional<uint64_t> expected_next_ms;
      if (!model.empty()) expected_next_ms = std::max(model.begin()->first, model_now_ms);
      ASSERT_EQ(wheel.next_due_ms(), expected_next_ms) << "step " << step;
      if (!model.empty()) {
        auto entry = std::next(model.begin(), random() % model.size());
        ASSERT_EQ(wheel.due_of(entry->second), std::optional<uint64_t>(entry->first));
      }
    }
  }
}

}  // namespace
}  // namespace keel::flow
