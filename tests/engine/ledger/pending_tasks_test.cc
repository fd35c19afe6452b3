#include "engine/ledger/pending_tasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <unordered_map>

namespace keel::ledger {
namespace {

std::vector<std::byte> input_of(uint64_t value, size_t bytes) {
  std::vector<std::byte> input(bytes);
  for (size_t index = 0; index < bytes; ++index) input[index] = std::byte(uint8_t(value + index));
  return input;
}

// Every operation against a std::unordered_map doing the same, with marks as the ledger
// issues them (ascending, clustered by block) and settled in a shuffled order, through
// growth, long probe runs and backward-shift deletions.
TEST(PendingTaskTable, MatchesAMapThroughRandomInsertsAndErases) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);
  std::mt19937_64 random(seed);
  PendingTaskTable table;
  std::unordered_map<uint64_t, PendingTask> model;
  std::vector<uint64_t> live;
  uint64_t height = 1;
  uint32_t index = 0;
  for (int step = 0; step < 200000; ++step) {
    bool add = live.empty() || random() % 100 < (model.size() < 3000 ? 60 : 40);
    if (add) {
      if (random() % 64 == 0) {
        ++height;
        index = 0;
      }
      uint64_t mark = height << 16 | index++;
      PendingTask& task = table.insert(mark);
      ASSERT_TRUE(task.input.empty() && task.compute_type.empty() && task.subject == 0) << "seed " << seed;
      task.subject = random();
      task.compute_type = random() % 2 ? "hash" : "credit_score";
      task.input = input_of(task.subject, random() % 300);
      model[mark] = task;
      live.push_back(mark);
    } else {
      size_t at = random() % live.size();
      uint64_t mark = live[at];
      live[at] = live.back();
      live.pop_back();
      ASSERT_EQ(table.erase(mark), 1u) << "seed " << seed;
      model.erase(mark);
      ASSERT_EQ(table.erase(mark), 0u) << "seed " << seed;
    }
    ASSERT_EQ(table.size(), model.size()) << "seed " << seed;
    if (step % 97 == 0) {
      for (const auto& [mark, task] : model) {
        const PendingTask* found = table.find(mark);
        ASSERT_NE(found, nullptr) << "seed " << seed << ", mark " << mark;
        ASSERT_EQ(*found, task) << "seed " << seed << ", mark " << mark;
      }
      ASSERT_FALSE(table.contains(height << 16 | index)) << "seed " << seed;  // not issued yet
    }
  }
  std::vector<uint64_t> marks = table.marks();
  std::sort(marks.begin(), marks.end());
  std::sort(live.begin(), live.end());
  EXPECT_EQ(marks, live) << "seed " << seed;
}

TEST(PendingTaskTable, AMapsAccessAndEquality) {
  PendingTaskTable table;
  EXPECT_TRUE(table.empty());
  EXPECT_FALSE(table.contains(5));
  EXPECT_THROW(table.at(5), std::out_of_range);
  EXPECT_TRUE(table.emplace(5, PendingTask{1, "noop", input_of(1, 4)}));
  EXPECT_FALSE(table.emplace(5, PendingTask{2, "hash", {}}));  // the first stays
  EXPECT_EQ(table.at(5).subject, 1u);
  table[9].subject = 3;  // added empty, then filled
  EXPECT_EQ(table.size(), 2u);
  PendingTaskTable copy = table;
  EXPECT_EQ(copy, table);
  copy.at(9).input.push_back(std::byte{1});
  EXPECT_NE(copy, table);
  copy.erase(9);
  EXPECT_NE(copy, table);
  table.erase(9);
  EXPECT_EQ(copy, table);
  table.clear();
  EXPECT_TRUE(table.empty());
  EXPECT_FALSE(table.contains(5));

  // Moved, the tasks go with the table and the one left behind is empty.
  PendingTaskTable moved = std::move(copy);
  EXPECT_EQ(moved.size(), 1u);
  EXPECT_TRUE(moved.contains(5));
  EXPECT_EQ(copy.size(), 0u);  // NOLINT(bugprone-use-after-move): the state after a move is the point
  EXPECT_FALSE(copy.contains(5));
  copy.insert(11).subject = 4;  // and usable again
  EXPECT_EQ(copy.at(11).subject, 4u);
  table = std::move(moved);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(moved.size(), 0u);  // NOLINT(bugprone-use-after-move)
}

// A settled task's slot serves the next one with its buffer emptied: no bytes of one task
// can show in another's input, and a big buffer is not kept.
TEST(PendingTaskTable, AReusedSlotStartsEmptyAndGivesBackABigBuffer) {
  PendingTaskTable table;
  table.insert(1) = PendingTask{7, "hash", input_of(7, 64)};
  table.erase(1);
  PendingTask& next = table.insert(2);
  EXPECT_TRUE(next.input.empty());
  EXPECT_TRUE(next.compute_type.empty());
  EXPECT_EQ(next.subject, 0u);
  EXPECT_GE(next.input.capacity(), 64u);  // kept: the next short input allocates nothing
  next.input = input_of(8, 100000);
  table.erase(2);
  EXPECT_LT(table.insert(3).input.capacity(), 100000u);
}

}  // namespace
}  // namespace keel::ledger
