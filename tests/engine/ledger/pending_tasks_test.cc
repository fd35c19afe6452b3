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
// growth, long chains and slots reused many times over.
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
      PendingTask task{random(), random() % 2 ? "hash" : "credit_score", {}};
      task.input = input_of(task.subject, random() % 300);
      // Reused slots hold settled tasks' bytes: the insert must replace every one.
      ASSERT_EQ(table.insert(mark, task.subject, task.compute_type, task.input), task) << "seed " << seed;
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
  EXPECT_FALSE(table.emplace(0, PendingTask{2, "hash", {}}));  // no task mark is 0
  table.insert(9, 3, "hash", {});
  EXPECT_EQ(table.at(9), (PendingTask{3, "hash", {}}));
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
  copy.insert(11, 4, "noop", {});  // and usable again
  EXPECT_EQ(copy.at(11).subject, 4u);
  table = std::move(moved);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(moved.size(), 0u);  // NOLINT(bugprone-use-after-move)
}

// A settled task's slot serves the next one: none of its bytes show in the new task, a
// short buffer is kept (the next short input allocates nothing) and a big one is given
// back when its task settles.
TEST(PendingTaskTable, AReusedSlotHoldsOnlyTheNewTaskAndABigBufferIsGivenBack) {
  PendingTaskTable table;
  std::vector<std::byte> long_input = input_of(7, 64);
  table.insert(1, 7, "credit_score_long_name", long_input);
  table.erase(1);
  std::vector<std::byte> short_input = input_of(8, 3);
  PendingTask& next = table.insert(2, 8, "hash", short_input);
  EXPECT_EQ(next, (PendingTask{8, "hash", short_input}));
  EXPECT_GE(next.input.capacity(), 64u);  // the first task's buffer, kept
  const std::byte* kept_buffer = next.input.data();
  table.erase(2);
  EXPECT_EQ(table.insert(3, 9, "hash", short_input).input.data(), kept_buffer);
  table.erase(3);

  std::vector<std::byte> big_input = input_of(9, 100000);
  table.insert(4, 9, "hash", big_input);
  EXPECT_GE(table.input_bytes_held(), 100000u);
  table.erase(4);
  EXPECT_LT(table.input_bytes_held(), 1000u);  // given back as its task settled
  PendingTask& after_big = table.insert(5, 10, "noop", {});
  EXPECT_EQ(after_big, (PendingTask{10, "noop", {}}));
  EXPECT_LT(after_big.input.capacity(), 100000u);

  // A copy holds the live tasks and none of the free slots' leftover bytes.
  table.insert(7, 13, "noop", long_input);
  table.erase(7);  // a free slot with a kept 64-byte buffer
  PendingTaskTable copy = table;
  EXPECT_EQ(copy, table);
  EXPECT_EQ(copy.input_bytes_held(), table.at(5).input.size());  // the one live task's
  EXPECT_EQ(copy.insert(8, 14, "noop", short_input), (PendingTask{14, "noop", short_input}));

  // A buffer grown through at() is given back when its slot is next used (whichever
  // insert that is: every free slot is used by the next inserts).
  table.at(5).input = input_of(11, 100000);
  table.erase(5);
  EXPECT_GE(table.input_bytes_held(), 100000u);
  for (uint64_t mark = 10; mark < 14; ++mark) table.insert(mark, 12, "noop", short_input);
  EXPECT_LT(table.input_bytes_held(), 1000u);

  // Copy-assigned, the same: live tasks equal, free slots empty.
  table.erase(10);
  PendingTaskTable assigned;
  assigned.insert(99, 1, "hash", long_input);
  assigned = table;
  EXPECT_EQ(assigned, table);
  EXPECT_FALSE(assigned.contains(99));
  EXPECT_EQ(assigned.input_bytes_held(), 3 * short_input.size());
}

// Slots are reused in the order they were freed, so a block's tasks keep neighbouring
// slots: tasks issued after a settled run land where that run's were, in its order.
TEST(PendingTaskTable, SlotsAreReusedInTheOrderTheyWereFreed) {
  PendingTaskTable table;
  for (uint64_t index = 0; index < 200; ++index) table.insert(1 << 16 | index, index, "noop", {});
  std::vector<const PendingTask*> first_run;  // where each task sits, once the slab stopped growing
  for (uint64_t index = 0; index < 200; ++index) first_run.push_back(&table.at(1 << 16 | index));
  for (uint64_t index = 0; index < 200; ++index) ASSERT_EQ(table.erase(1 << 16 | index), 1u);
  for (uint64_t index = 0; index < 200; ++index)
    ASSERT_EQ(&table.insert(2 << 16 | index, index, "noop", {}), first_run[index]) << "index " << index;
  EXPECT_EQ(table.size(), 200u);
}

}  // namespace
}  // namespace keel::ledger
