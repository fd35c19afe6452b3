// Tests for engine/sched/scheduler.h: one scheduler tile polled by the test, which plays
// the shard (request and result rings) and the pool processes (lanes, epochs) itself, so
// every routing, lease and retry rule is checked exactly. The tests with real pool
// processes are in tests/engine/node/compute_run_test.cc.
#include "engine/sched/scheduler.h"

#include <gtest/gtest.h>
#include <keel/plugin.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/ledger/transaction.h"
#include "engine/sched/pool_table.h"
#include "engine/sched/task_table.h"
#include "shm/arena.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::sched {
namespace {

constexpr uint32_t type_a = 0, type_b = 1, type_unknown = 7;

// ---- pool credit by tier ----------------------------------------------------------------

// Which tier each of `count` pops came from (the lease index encodes it).
std::string pop_tiers(TieredReadyQueue& queue, size_t count) {
  std::string tiers;
  for (size_t pop = 0; pop < count && !queue.empty(); ++pop) {
    LeaseRef first = queue.front();
    EXPECT_EQ(queue.front().index, first.index) << "front moved without a pop";
    tiers += "LMH"[first.index / 1000];
    queue.pop_front();
  }
  return tiers;
}

TEST(TieredReadyQueue, TiersTakeWeightedTurnsHeavyFirstAndAnEmptyTierGivesItsTurnAway) {
  TieredReadyQueue queue({1, 2, 4});
  for (uint32_t tier = 0; tier < 3; ++tier)
    for (uint32_t task = 0; task < 20; ++task) queue.push_back({tier * 1000 + task, 0}, tier);
  EXPECT_EQ(queue.size(), 60u);
  EXPECT_EQ(pop_tiers(queue, 14), "HHHHMMLHHHHMML");
  // Within a tier, first in first out.
  TieredReadyQueue fifo({1, 1, 1});
  for (uint32_t task = 0; task < 3; ++task) fifo.push_back({task, 0}, 0);
  for (uint32_t task = 0; task < 3; ++task) {
    EXPECT_EQ(fifo.front().index, task);
    fifo.pop_front();
  }
  // Only light tasks: they take every turn (no credit is held back for absent tiers).
  TieredReadyQueue light({1, 2, 4});
  for (uint32_t task = 0; task < 5; ++task) light.push_back({task, 0}, 0);
  EXPECT_EQ(pop_tiers(light, 5), "LLLLL");
  EXPECT_TRUE(light.empty());
  // A tier past heavy counts as heavy.
  TieredReadyQueue clamped({1, 1, 1});
  clamped.push_back({2000, 0}, 7);
  EXPECT_EQ(pop_tiers(clamped, 1), "H");
}

TEST(TieredReadyQueue, UnderSteadyPressureEachTierGetsItsWeightsShare) {
  TieredReadyQueue queue({1, 2, 4});
  // Every tier has more waiting than the credit that frees up.
  for (uint32_t tier = 0; tier < 3; ++tier)
    for (uint32_t task = 0; task < 999; ++task) queue.push_back({tier * 1000 + task, 0}, tier);
  std::map<char, int> taken;
  for (char tier : pop_tiers(queue, 700)) ++taken[tier];
  EXPECT_EQ(taken['H'], 400);
  EXPECT_EQ(taken['M'], 200);
  EXPECT_EQ(taken['L'], 100);
}

// What the shard gets back, decoded.
struct TaskResult {
  uint64_t task_mark = 0;
  uint32_t attempt = 0;
  ledger::ComputeOutcome outcome{};
  int32_t plugin_status = 0;
  std::string output;
};

struct PoolSetup {
  std::string name;
  std::vector<uint32_t> slot_nodes;  // one slot per entry
  uint32_t in_flight_max = 8;
  uint32_t timeout_ms = 10'000;
  uint32_t retries_max = 2;
  uint32_t backoff_ms = 1;
};

// A task as a pool sees it: its entry and its batch's epoch.
struct SentTask {
  uint64_t task_id = 0;
  uint64_t epoch = 0;
  uint32_t attempt = 0;
  uint32_t compute_type = 0;
};

class SchedulerTest : public ::testing::Test {
 protected:
  // Pools: "a" (type a), "b" (type b), one slot each on node 0 unless a test says otherwise.
  void build(std::vector<PoolSetup> pools, uint32_t lanes = 1, uint32_t leases_max = 64,
             uint32_t spill_percent = 100) {
    name_ = shm::testing::unique_segment_name("scheduler");
    shm::Segment::remove(name_);
    PoolTableOptions pool_options;
    pool_options.ring_capacity = 64;
    pool_options.lane_doorbells.assign(lanes, 0);
    std::vector<SchedulerPool> scheduler_pools;
    for (uint32_t pool = 0; pool < pools.size(); ++pool) {
      SchedulerPool entry{pools[pool].name, pools[pool].in_flight_max, pools[pool].timeout_ms,
                          pools[pool].retries_max, pools[pool].backoff_ms, {}};
      for (uint32_t node : pools[pool].slot_nodes) {
        entry.slots.push_back(uint32_t(pool_options.slots.size()));
        pool_options.slots.push_back({pools[pool].name + "@" + std::to_string(node), pool, node});
      }
      scheduler_pools.push_back(entry);
    }
    TaskTableOptions task_options;
    task_options.shards = {{0, 0, 0}};
    task_options.scheduler_count = lanes;
    task_options.ring_capacity = 64;
    uint64_t bytes = pool_table_footprint(pool_options).value() + task_table_footprint(task_options).value() + (1 << 20);
    Result<shm::Segment> segment = shm::Segment::create({.name = name_, .bytes = bytes});
    ASSERT_TRUE(segment.ok()) << segment.error().message;
    segment_.emplace(std::move(*segment));
    uint64_t pool_table = lay_out_pool_table(*segment_, pool_options).value();
    uint64_t task_table = lay_out_task_table(*segment_, task_options).value();
    segment_->seal();
    std::byte* base = segment_->base();
    pools_ = PoolTableView::join(base, pool_table).value();
    tasks_ = TaskTableView::join(base, task_table).value();
    const ShardTaskPorts& ports = tasks_.shard(0);
    requests_ = shm::RingProducer::join(base, ports.request_ring).value();
    request_inputs_ = shm::ArenaWriter::join(base, ports.request_arena).value();
    results_ = shm::RingConsumer::join(base, ports.result_ring).value();
    result_txs_ = shm::ArenaReader::join(base, ports.result_arena).value();
    for (uint32_t slot = 0; slot < pools_.slot_count(); ++slot) {
      const PoolLane& lane = pools_.lane(slot, 0);
      lane_tasks_.push_back(shm::RingConsumer::join(base, lane.task_ring).value());
      lane_completions_.push_back(shm::RingProducer::join(base, lane.completion_ring).value());
      lane_inputs_.push_back(shm::ArenaReader::join(base, lane.input_arena).value());
      lane_outputs_.push_back(shm::ArenaWriter::join(base, lane.output_arena).value());
      start_incarnation(slot, 1);
    }
    SchedulerOptions options;
    options.index = 0;
    options.node = 0;
    options.shards = {{0, 3}};
    // Type a -> pool 0, type b -> pool 1 (second type of that pool) when it exists.
    options.types = {{0, 0}};
    if (pools.size() > 1) options.types.push_back({1, 1});
    options.pools = scheduler_pools;
    options.leases_max = leases_max;
    options.spill_percent = spill_percent;
    auto tile = SchedulerTile::create(base, tasks_, pools_, options);
    ASSERT_TRUE(tile.ok()) << tile.error().message;
    tile_ = std::move(*tile);
  }

  void TearDown() override {
    tile_.reset();
    segment_.reset();
    if (!name_.empty()) shm::Segment::remove(name_);
  }

  void start_incarnation(uint32_t slot, uint64_t epoch) {
    PoolControl& control = pools_.control(slot);
    control.epoch.store(epoch);
    control.ready_epoch.store(epoch);
  }

  // A task with its own lease policy (a flow step's) when policy_timeout_ms is not 0.
  void send_request(uint64_t task_mark, uint32_t type, const std::string& input, uint32_t policy_timeout_ms = 0,
                    uint32_t policy_retries_max = 0) {
    TaskRequestMessage message{};
    message.task_mark = task_mark;
    message.timeout_ms = policy_timeout_ms;
    message.retries_max = policy_retries_max;
    message.backoff_ms = 1;
    message.compute_type = type;
    message.input_bytes = uint32_t(input.size());
    message.issued_ns = shm::monotonic_ns();
    if (input.size() > request_inline_bytes) {
      std::optional<shm::ArenaBlock> block = request_inputs_.reserve(input.size());
      ASSERT_TRUE(block.has_value());
      std::memcpy(block->bytes.data(), input.data(), input.size());
      message.input_position = block->position;
    } else {
      std::memcpy(message.input, input.data(), input.size());
    }
    ASSERT_TRUE(requests_.push(message));
  }

  // Polls the tile until `done` or the hang guard (30 s) runs out.
  template <class Done>
  bool poll_until(Done done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done()) {
      tile_->poll(64);
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
    return true;
  }

  // The tasks waiting in a slot's lane, batch by batch (batches_taken_ counts them).
  std::vector<std::pair<SentTask, std::string>> take_tasks(uint32_t slot) {
    std::vector<std::pair<SentTask, std::string>> taken;
    TaskBatchMessage batch;
    while (lane_tasks_[slot].pop(batch)) {
      ++batches_taken_;
      EXPECT_GE(batch.task_count, 1u);
      EXPECT_LE(batch.task_count, batch_tasks_max);
      std::span<const std::byte> block = lane_inputs_[slot].read(batch.entries_position, batch.entries_bytes);
      EXPECT_EQ(block.size(), batch.entries_bytes) << "a batch names no block of the arena";
      TaskEntries entries(block, batch.task_count);
      std::span<const std::byte> input;
      size_t count = 0;
      for (TaskEntry entry; entries.next(entry, input); ++count)
        taken.emplace_back(SentTask{entry.task_id, batch.epoch, entry.attempt, entry.compute_type},
                           std::string(reinterpret_cast<const char*>(input.data()), input.size()));
      EXPECT_EQ(count, batch.task_count) << "a batch's entries do not fit its block";
      lane_inputs_[slot].release(batch.entries_position, batch.entries_bytes);
    }
    return taken;
  }

  // Answers one task, alone in its completion batch.
  void complete(uint32_t slot, const SentTask& task, int32_t status, const std::string& output) {
    complete_batch(slot, {{task, status, output}});
  }

  struct Answer {
    SentTask task;
    int32_t status;
    std::string output;
  };
  // Answers the tasks together in one completion batch (all of one epoch).
  void complete_batch(uint32_t slot, const std::vector<Answer>& answers) {
    size_t bytes = 0;
    for (const Answer& answer : answers) bytes += completion_entry_bytes(answer.output.size());
    std::optional<shm::ArenaBlock> block = lane_outputs_[slot].reserve(bytes);
    ASSERT_TRUE(block.has_value());
    size_t offset = 0;
    for (const Answer& answer : answers) {
      CompletionEntry entry{.task_id = answer.task.task_id,
                            .attempt = answer.task.attempt,
                            .status = answer.status,
                            .output_bytes = uint32_t(answer.output.size()),
                            .reserved = 0,
                            .run_ns = 0};
      offset += write_completion_entry(block->bytes.subspan(offset), entry,
                                       std::as_bytes(std::span<const char>(answer.output.data(), answer.output.size())));
    }
    CompletionBatchMessage message{.epoch = answers.front().task.epoch,
                                   .entries_position = block->position,
                                   .entries_bytes = uint32_t(bytes),
                                   .task_count = uint32_t(answers.size()),
                                   .reserved = {}};
    ASSERT_TRUE(lane_completions_[slot].push(message));
  }

  // Takes up to `batches_max` result batches waiting in the shard's ring.
  std::vector<TaskResult> take_results(size_t batches_max = SIZE_MAX) {
    std::vector<TaskResult> taken;
    for (size_t batch = 0; batch < batches_max; ++batch) {
      std::span<const std::byte> slot = results_.peek(1);
      if (slot.empty()) break;
      TaskResultMessage message;
      std::memcpy(&message, slot.data(), sizeof message);
      bool in_arena = message.tx_bytes > result_inline_bytes;
      std::span<const std::byte> tx = in_arena ? result_txs_.read(message.tx_position, message.tx_bytes)
                                               : slot.subspan(offsetof(TaskResultMessage, tx), message.tx_bytes);
      ledger::TxView view;
      EXPECT_EQ(ledger::check_transaction(tx, ledger::TxOrigin::engine, &view), ledger::TxStatus::applied);
      EXPECT_EQ(view.type, ledger::TxType::compute_results);
      EXPECT_EQ(view.compute_results.shard, 3u);  // the shard's number within its chain
      ++result_batches_;
      ledger::ComputeResultEntries entries(view.results);
      for (ledger::ComputeResultEntry entry; entries.next(entry);) {
        taken.push_back({entry.body.task_mark, entry.body.attempt, ledger::ComputeOutcome(entry.body.outcome),
                         entry.body.plugin_status,
                         std::string(reinterpret_cast<const char*>(entry.output.data()), entry.output.size())});
      }
      if (in_arena) result_txs_.release(message.tx_position, message.tx_bytes);
      results_.release(1);
    }
    return taken;
  }

  // Polls until `count` results came back; returns them.
  std::vector<TaskResult> await_results(size_t count) {
    std::vector<TaskResult> all;
    EXPECT_TRUE(poll_until([&] {
      for (TaskResult& result : take_results()) all.push_back(result);
      return all.size() >= count;
    })) << "only " << all.size() << " of " << count << " results came back";
    return all;
  }

  SchedulerCounters& counters() { return tasks_.scheduler(0); }

  std::string name_;
  std::optional<shm::Segment> segment_;
  PoolTableView pools_;
  TaskTableView tasks_;
  shm::RingProducer requests_;
  shm::ArenaWriter request_inputs_;
  shm::RingConsumer results_;
  shm::ArenaReader result_txs_;
  size_t result_batches_ = 0;  // compute_results transactions taken
  size_t batches_taken_ = 0;  // task batches taken from the lanes
  std::vector<shm::RingConsumer> lane_tasks_;
  std::vector<shm::RingProducer> lane_completions_;
  std::vector<shm::ArenaReader> lane_inputs_;
  std::vector<shm::ArenaWriter> lane_outputs_;
  std::unique_ptr<SchedulerTile> tile_;
};

TEST_F(SchedulerTest, RoutesEachTaskByComputeTypeAndReturnsItsResult) {
  build({{"a", {0}}, {"b", {0}}});
  send_request(101, type_a, "alpha");
  send_request(102, type_b, "beta");
  std::vector<std::pair<SentTask, std::string>> a, b;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) a.push_back(task);
    for (auto& task : take_tasks(1)) b.push_back(task);
    return a.size() + b.size() == 2;
  }));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].second, "alpha");
  EXPECT_EQ(a[0].first.compute_type, 0u);
  EXPECT_EQ(a[0].first.attempt, 1u);
  EXPECT_EQ(a[0].first.epoch, 1u);
  EXPECT_EQ(b[0].second, "beta");
  EXPECT_EQ(b[0].first.compute_type, 1u);  // type b is the pool's second type
  complete(0, a[0].first, KEEL_STATUS_OK, "A!");
  complete(1, b[0].first, KEEL_STATUS_OK, "B!");
  std::vector<TaskResult> results = await_results(2);
  std::map<uint64_t, TaskResult> by_mark;
  for (const TaskResult& result : results) by_mark[result.task_mark] = result;
  EXPECT_EQ(by_mark[101].outcome, ledger::ComputeOutcome::succeeded);
  EXPECT_EQ(by_mark[101].output, "A!");
  EXPECT_EQ(by_mark[101].attempt, 1u);
  EXPECT_EQ(by_mark[102].output, "B!");
  EXPECT_EQ(counters().results_returned.load(), 2u);
  EXPECT_EQ(counters().results_failed.load(), 0u);
}

// Tasks cross a lane in batches: what one poll dispatches goes as one batch, never past
// the pool's credit; a completion batch's answers are taken one by one (a transient
// failure is sent again, a permanent one ends the task, the rest succeed).
TEST_F(SchedulerTest, TasksGoToAPoolInBatchesWithinItsCreditAndEachAnswerOfABatchCounts) {
  PoolSetup pool{"a", {0}};
  pool.in_flight_max = 100;
  build({pool}, 1, 256);
  for (uint64_t mark = 1; mark <= 60; ++mark) send_request(mark, type_a, "in" + std::to_string(mark));
  std::vector<std::pair<SentTask, std::string>> tasks;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() == 60;
  }));
  EXPECT_EQ(batches_taken_, 1u) << "60 tasks taken in one poll went out in more than one batch";
  for (uint64_t mark = 61; mark <= 120; ++mark) send_request(mark, type_a, "in" + std::to_string(mark));
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() >= 100;
  }));
  for (int poll = 0; poll < 10; ++poll) tile_->poll(64);
  for (auto& task : take_tasks(0)) tasks.push_back(task);
  ASSERT_EQ(tasks.size(), 100u) << "the pool was sent more than its in_flight_max";
  EXPECT_EQ(batches_taken_, 2u);

  std::vector<Answer> answers;
  for (size_t index = 0; index < tasks.size(); ++index) {
    int32_t status = index == 0 ? KEEL_STATUS_FAILED : index == 1 ? KEEL_STATUS_BAD_INPUT : KEEL_STATUS_OK;
    answers.push_back({tasks[index].first, status, "out" + tasks[index].second.substr(2)});
  }
  const uint64_t retried_id = tasks[0].first.task_id;
  complete_batch(0, answers);
  // The credit freed lets the 20 waiting tasks out, and the transient failure again.
  std::vector<std::pair<SentTask, std::string>> rest;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) rest.push_back(task);
    return rest.size() == 21;
  }));
  bool retry_seen = false;
  for (auto& [task, input] : rest) {
    if (task.task_id == retried_id) {
      retry_seen = true;
      EXPECT_EQ(task.attempt, 2u);
    }
    complete(0, task, KEEL_STATUS_OK, "out" + input.substr(2));
  }
  EXPECT_TRUE(retry_seen) << "the transient failure in a batch was not sent again";
  std::vector<TaskResult> results = await_results(120);
  ASSERT_EQ(results.size(), 120u);
  std::map<uint64_t, TaskResult> by_mark;
  for (const TaskResult& result : results) EXPECT_TRUE(by_mark.emplace(result.task_mark, result).second);
  const uint64_t failed_mark = std::stoull(tasks[1].second.substr(2));
  for (const auto& [mark, result] : by_mark) {
    if (mark == failed_mark) {
      EXPECT_EQ(result.outcome, ledger::ComputeOutcome::plugin_failed);
      EXPECT_EQ(result.plugin_status, KEEL_STATUS_BAD_INPUT);
    } else {
      EXPECT_EQ(result.outcome, ledger::ComputeOutcome::succeeded) << "mark " << mark;
      EXPECT_EQ(result.output, "out" + std::to_string(mark));
    }
  }
  EXPECT_EQ(counters().results_failed.load(), 1u);
  EXPECT_EQ(counters().tasks_retried.load(), 1u);
  EXPECT_EQ(counters().completions_stale.load(), 0u);
}

// A completion batch whose block cannot be read names no task: its tasks count stale and
// its credit comes back (no answer will), so the pool is not left looking full.
TEST_F(SchedulerTest, ADamagedCompletionBatchGivesItsCreditBack) {
  PoolSetup pool{"a", {0}};
  pool.in_flight_max = 2;
  build({pool});
  send_request(1, type_a, "one");
  send_request(2, type_a, "two");
  send_request(3, type_a, "three");
  std::vector<std::pair<SentTask, std::string>> tasks;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() == 2;
  }));
  for (int poll = 0; poll < 10; ++poll) tile_->poll(64);
  EXPECT_TRUE(take_tasks(0).empty()) << "the third task went past the pool's credit";
  CompletionBatchMessage damaged{.epoch = tasks[0].first.epoch,
                                 .entries_position = uint64_t(1) << 40,  // no block of the arena
                                 .entries_bytes = 64,
                                 .task_count = 2,
                                 .reserved = {}};
  ASSERT_TRUE(lane_completions_[0].push(damaged));
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() == 3;
  })) << "the damaged batch's credit never came back";
  EXPECT_EQ(tasks[2].second, "three");
  EXPECT_EQ(counters().completions_stale.load(), 2u);
}

TEST_F(SchedulerTest, LargeInputsAndOutputsTravelThroughTheArenas) {
  build({{"a", {0}}});
  std::string input(5000, 'i'), output(9000, 'o');
  input[4999] = 'z';
  send_request(7, type_a, input);
  std::vector<std::pair<SentTask, std::string>> tasks;
  ASSERT_TRUE(poll_until([&] {
    tasks = take_tasks(0);
    return !tasks.empty();
  }));
  EXPECT_EQ(tasks[0].second, input);
  complete(0, tasks[0].first, KEEL_STATUS_OK, output);
  std::vector<TaskResult> results = await_results(1);
  EXPECT_EQ(results[0].output, output);
}

// Results go back many to a compute_results, entries ascending by task mark whatever
// order the pool finished them in (take_results checks each batch as the shard would),
// and two outputs that together pass result_batch_bytes_max go in batches of their own.
TEST_F(SchedulerTest, ResultsGoBackBatchedInAscendingMarkOrder) {
  PoolSetup pool{"a", {0}};
  pool.in_flight_max = 40;
  build({pool});
  for (uint64_t mark = 140; mark > 100; --mark) send_request(mark, type_a, "in" + std::to_string(mark));
  std::vector<std::pair<SentTask, std::string>> tasks;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() == 40;
  }));
  // Answered in the order taken (descending marks), all before the tile polls again.
  for (auto& [task, input] : tasks) complete(0, task, KEEL_STATUS_OK, "out" + input.substr(2));
  std::vector<TaskResult> results = await_results(40);
  ASSERT_EQ(results.size(), 40u);
  std::set<uint64_t> marks;
  for (const TaskResult& result : results) {
    EXPECT_TRUE(marks.insert(result.task_mark).second) << "mark " << result.task_mark << " came back twice";
    EXPECT_EQ(result.output, "out" + std::to_string(result.task_mark));
  }
  EXPECT_EQ(marks.size(), 40u);
  EXPECT_LE(result_batches_, 4u) << "40 results answered at once came back one by one";
  EXPECT_EQ(counters().results_returned.load(), 40u);

  size_t batches_before = result_batches_;
  std::string big(10'000, 'b');
  send_request(200, type_a, "x");
  send_request(201, type_a, "y");
  tasks.clear();
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() == 2;
  }));
  for (auto& [task, input] : tasks) complete(0, task, KEEL_STATUS_OK, big);
  results = await_results(2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].output, big);
  EXPECT_EQ(results[1].output, big);
  EXPECT_EQ(result_batches_ - batches_before, 2u);  // 2 x 10,032 entry bytes > result_batch_bytes_max
}

TEST_F(SchedulerTest, ATypeNoPoolServesEndsNoPool) {
  build({{"a", {0}}});
  send_request(5, type_unknown, "x");
  send_request(6, unknown_compute_type, "x");
  std::vector<TaskResult> results = await_results(2);
  for (const TaskResult& result : results) EXPECT_EQ(result.outcome, ledger::ComputeOutcome::no_pool);
  EXPECT_TRUE(take_tasks(0).empty());
}

TEST_F(SchedulerTest, TasksStayOnTheirNodeWhileTheLocalPoolHasCreditThenSpill) {
  PoolSetup pool{"a", {0, 1}};
  pool.in_flight_max = 4;
  build({pool});
  for (uint64_t mark = 1; mark <= 4; ++mark) send_request(mark, type_a, "local");
  size_t local = 0;
  ASSERT_TRUE(poll_until([&] {
    local += take_tasks(0).size();
    return local == 4;
  }));
  for (int round = 0; round < 100; ++round) tile_->poll(64);
  EXPECT_TRUE(take_tasks(1).empty()) << "a task left its node while the local pool had credit";
  EXPECT_EQ(counters().tasks_spilled.load(), 0u);
  // The local pool holds in_flight_max tasks now: the next ones cross to node 1.
  for (uint64_t mark = 5; mark <= 7; ++mark) send_request(mark, type_a, "spill");
  size_t remote = 0;
  ASSERT_TRUE(poll_until([&] {
    remote += take_tasks(1).size();
    return remote == 3;
  }));
  EXPECT_EQ(counters().tasks_spilled.load(), 3u);
}

TEST_F(SchedulerTest, SpillPercentLetsTasksCrossBeforeTheLocalPoolIsFull) {
  PoolSetup pool{"a", {0, 1}};
  pool.in_flight_max = 4;
  build({pool}, 1, 64, /*spill_percent=*/50);
  for (uint64_t mark = 1; mark <= 4; ++mark) send_request(mark, type_a, "x");
  size_t local = 0, remote = 0;
  ASSERT_TRUE(poll_until([&] {
    local += take_tasks(0).size();
    remote += take_tasks(1).size();
    return local + remote == 4;
  }));
  EXPECT_EQ(local, 2u);
  EXPECT_EQ(remote, 2u);
}

TEST_F(SchedulerTest, AnExpiredLeaseIsSentAgainAndTheStaleAnswerDropped) {
  PoolSetup pool{"a", {0}};
  pool.timeout_ms = 20;
  build({pool});
  send_request(9, type_a, "slow");
  std::vector<std::pair<SentTask, std::string>> first, second;
  ASSERT_TRUE(poll_until([&] {
    first = take_tasks(0);
    return !first.empty();
  }));
  ASSERT_TRUE(poll_until([&] {
    second = take_tasks(0);
    return !second.empty();
  }));
  EXPECT_EQ(second[0].first.attempt, 2u);
  EXPECT_EQ(second[0].first.task_id, first[0].first.task_id);
  EXPECT_GE(counters().tasks_expired.load(), 1u);
  complete(0, first[0].first, KEEL_STATUS_OK, "late");  // attempt 1: no longer leased
  ASSERT_TRUE(poll_until([&] { return counters().completions_stale.load() == 1; }));
  EXPECT_TRUE(take_results().empty());
  complete(0, second[0].first, KEEL_STATUS_OK, "on time");
  std::vector<TaskResult> results = await_results(1);
  EXPECT_EQ(results[0].attempt, 2u);
  EXPECT_EQ(results[0].output, "on time");
}

TEST_F(SchedulerTest, EveryAttemptTimingOutEndsTimedOut) {
  PoolSetup pool{"a", {0}};
  pool.timeout_ms = 5;
  pool.retries_max = 2;
  build({pool});
  send_request(11, type_a, "never answered");
  std::vector<TaskResult> results = await_results(1);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::timed_out);
  EXPECT_EQ(results[0].attempt, 3u);  // the first and two retries
  EXPECT_EQ(take_tasks(0).size(), 3u);
  EXPECT_EQ(counters().tasks_retried.load(), 2u);
}

TEST_F(SchedulerTest, ATasksOwnPolicyReplacesItsPools) {
  PoolSetup pool{"a", {0}};
  pool.timeout_ms = 60'000;  // never reached by the first task
  pool.retries_max = 5;
  build({pool});
  // A flow step's policy: 5 ms leases, one retry.
  send_request(21, type_a, "step", 5, 1);
  std::vector<TaskResult> results = await_results(1);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::timed_out);
  EXPECT_EQ(results[0].attempt, 2u);  // the first and its one retry, not the pool's five
  EXPECT_EQ(take_tasks(0).size(), 2u);
}

TEST_F(SchedulerTest, ATasksOwnTimeoutIsCappedByItsPools) {
  PoolSetup pool{"a", {0}};
  pool.timeout_ms = 5;
  build({pool});
  send_request(22, type_a, "long step", 3'600'000, 0);  // an hour asked for, 5 ms allowed
  std::vector<TaskResult> results = await_results(1);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::timed_out);
  EXPECT_EQ(results[0].attempt, 1u);
}

TEST_F(SchedulerTest, ATransientFailureIsRetriedAndAPermanentOneIsNot) {
  build({{"a", {0}}});
  send_request(1, type_a, "flaky");
  send_request(2, type_a, "bad");
  std::vector<std::pair<SentTask, std::string>> tasks;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    return tasks.size() == 2;
  }));
  for (auto& [task, input] : tasks)
    complete(0, task, input == "flaky" ? KEEL_STATUS_FAILED : KEEL_STATUS_PLUGIN_MIN + 1, "");
  std::vector<std::pair<SentTask, std::string>> again;
  std::vector<TaskResult> results;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) again.push_back(task);
    for (TaskResult& result : take_results()) results.push_back(result);
    return again.size() == 1 && results.size() == 1;
  }));
  EXPECT_EQ(again[0].second, "flaky");
  EXPECT_EQ(again[0].first.attempt, 2u);
  EXPECT_EQ(results[0].task_mark, 2u);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::plugin_failed);
  EXPECT_EQ(results[0].plugin_status, KEEL_STATUS_PLUGIN_MIN + 1);
  // Failing on every retry too: retries_exhausted after 1 + retries_max attempts.
  complete(0, again[0].first, KEEL_STATUS_FAILED, "");
  std::vector<std::pair<SentTask, std::string>> third;
  ASSERT_TRUE(poll_until([&] {
    third = take_tasks(0);
    return !third.empty();
  }));
  complete(0, third[0].first, KEEL_STATUS_FAILED, "");
  results = await_results(1);
  EXPECT_EQ(results[0].task_mark, 1u);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::retries_exhausted);
  EXPECT_EQ(results[0].attempt, 3u);
}

TEST_F(SchedulerTest, TasksOfADeadIncarnationGoToTheNextOne) {
  build({{"a", {0}}});
  for (uint64_t mark = 1; mark <= 3; ++mark) send_request(mark, type_a, "x");
  size_t sent = 0;
  ASSERT_TRUE(poll_until([&] {
    sent += take_tasks(0).size();
    return sent == 3;
  }));
  // The supervisor reaped epoch 1 and started epoch 2.
  PoolControl& control = pools_.control(0);
  control.dead_epoch.store(1);
  std::vector<std::pair<SentTask, std::string>> resent;
  for (int round = 0; round < 50; ++round) tile_->poll(64);
  EXPECT_TRUE(take_tasks(0).empty()) << "sent to a pool with no live incarnation";
  start_incarnation(0, 2);
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(0)) resent.push_back(task);
    return resent.size() == 3;
  }));
  for (auto& [task, input] : resent) {
    EXPECT_EQ(task.epoch, 2u);
    EXPECT_EQ(task.attempt, 2u);
    complete(0, task, KEEL_STATUS_OK, "done");
  }
  std::vector<TaskResult> results = await_results(3);
  for (const TaskResult& result : results) EXPECT_EQ(result.outcome, ledger::ComputeOutcome::succeeded);
  EXPECT_EQ(counters().tasks_redispatched.load(), 3u);
}

TEST_F(SchedulerTest, ANewIncarnationSeenBeforeItsPredecessorsDeathStillGetsItsTasksAgain) {
  build({{"a", {0}}});  // timeout 10 s: a lost task found only by its lease would take that long
  for (uint64_t mark = 1; mark <= 3; ++mark) send_request(mark, type_a, "x");
  size_t sent = 0;
  ASSERT_TRUE(poll_until([&] {
    sent += take_tasks(0).size();
    return sent == 3;
  }));
  start_incarnation(0, 2);  // dead_epoch not (yet) seen at 1
  std::vector<std::pair<SentTask, std::string>> resent;
  // Well before the leases would expire (backoff is 1 ms).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (resent.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    tile_->poll(64);
    for (auto& task : take_tasks(0)) resent.push_back(task);
  }
  ASSERT_EQ(resent.size(), 3u);
  for (auto& [task, input] : resent) {
    EXPECT_EQ(task.epoch, 2u);
    EXPECT_EQ(task.attempt, 2u);
  }
  EXPECT_EQ(counters().tasks_redispatched.load(), 3u);
}

TEST_F(SchedulerTest, WithABudgetOfOneEveryPoolIsServedInTurn) {
  build({{"a", {0}}, {"b", {0}}});
  for (uint32_t slot = 0; slot < 2; ++slot) pools_.control(slot).ready_epoch.store(0);  // not ready yet
  for (uint64_t mark = 1; mark <= 4; ++mark) {
    send_request(mark, type_a, "a");
    send_request(100 + mark, type_b, "b");
  }
  for (int round = 0; round < 10; ++round) tile_->poll(64);  // all taken, none sendable
  ASSERT_TRUE(take_tasks(0).empty());
  for (uint32_t slot = 0; slot < 2; ++slot) start_incarnation(slot, 1);
  tile_->poll(1);
  tile_->poll(1);
  EXPECT_EQ(take_tasks(0).size(), 1u);
  EXPECT_EQ(take_tasks(1).size(), 1u);
}

TEST_F(SchedulerTest, AQuarantinedPoolFailsItsTasksWithTheReason) {
  build({{"a", {0}}, {"b", {0}}});
  PoolControl& control = pools_.control(0);
  std::strcpy(control.quarantine, "keel_x.so: cannot load: no such file");
  control.quarantined.store(1);
  send_request(1, type_a, "x");
  send_request(2, type_b, "y");
  std::vector<std::pair<SentTask, std::string>> b_tasks;
  std::vector<TaskResult> results;
  ASSERT_TRUE(poll_until([&] {
    for (auto& task : take_tasks(1)) b_tasks.push_back(task);
    for (TaskResult& result : take_results()) results.push_back(result);
    return results.size() == 1 && b_tasks.size() == 1;
  }));
  EXPECT_EQ(results[0].task_mark, 1u);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::quarantined);
  EXPECT_EQ(results[0].output, "a@0: keel_x.so: cannot load: no such file");
  complete(1, b_tasks[0].first, KEEL_STATUS_OK, "fine");  // the other pool keeps going
  results = await_results(1);
  EXPECT_EQ(results[0].outcome, ledger::ComputeOutcome::succeeded);
}

TEST_F(SchedulerTest, HeldTasksAreBoundedByLeasesAndTheRestWaitInTheRing) {
  PoolSetup pool{"a", {0}};
  pool.in_flight_max = 2;
  build({pool}, 1, /*leases_max=*/4);
  for (uint64_t mark = 1; mark <= 10; ++mark) send_request(mark, type_a, "x");
  for (int round = 0; round < 100; ++round) tile_->poll(64);
  EXPECT_EQ(counters().tasks_taken.load(), 4u);
  EXPECT_EQ(counters().leases_held.load(), 4u);
  std::vector<std::pair<SentTask, std::string>> tasks = take_tasks(0);
  EXPECT_EQ(tasks.size(), 2u);  // the pool's credit
  // Answering frees leases and credit: everything completes in the end.
  size_t done = 0;
  ASSERT_TRUE(poll_until([&] {
    for (auto& [task, input] : tasks) complete(0, task, KEEL_STATUS_OK, "");
    tasks = take_tasks(0);
    done += take_results().size();
    return done == 10;
  }));
  EXPECT_EQ(counters().tasks_taken.load(), 10u);
}

// The shard takes no results for a while: the answers wait in the tile (the ring and the
// result arena full) and go back whole, each once, as the shard takes what was sent.
TEST_F(SchedulerTest, ResultsTheShardCannotTakeYetWaitAndAllGoBackOnce) {
  PoolSetup pool{"a", {0}};
  pool.in_flight_max = 256;
  build({pool}, 1, /*leases_max=*/256);
  const uint64_t task_count = 200;
  const std::string output(9000, 'r');  // one entry a batch (result_batch_bytes_max): 200 batches, 64 ring slots
  uint64_t next_mark = 1, completed = 0;
  std::vector<std::pair<SentTask, std::string>> tasks;
  ASSERT_TRUE(poll_until([&] {
    for (size_t sent = 0; next_mark <= task_count && sent < 16; ++sent, ++next_mark)
      send_request(next_mark, type_a, "in" + std::to_string(next_mark));
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    // A few at a time: the completion ring and the pool's output arena are small.
    for (size_t index = 0; index < 8 && !tasks.empty(); ++index, ++completed) {
      complete(0, tasks.back().first, KEEL_STATUS_OK, output);
      tasks.pop_back();
    }
    return completed == task_count;
  }));
  for (int round = 0; round < 50; ++round) tile_->poll(64);
  ASSERT_LT(counters().results_returned.load(), task_count) << "nothing waited: the test shows nothing";
  std::set<uint64_t> marks;
  ASSERT_TRUE(poll_until([&] {
    for (const TaskResult& result : take_results()) {
      EXPECT_TRUE(marks.insert(result.task_mark).second) << "mark " << result.task_mark << " came back twice";
      EXPECT_EQ(result.output, output);
    }
    return marks.size() == task_count;
  }));
  EXPECT_EQ(*marks.begin(), 1u);
  EXPECT_EQ(*marks.rbegin(), task_count);
  EXPECT_EQ(counters().results_returned.load(), task_count);
  EXPECT_EQ(counters().leases_held.load(), 0u);
}

// A shard that takes its results a little at a time while answers keep coming: answers
// wait (the result arena is full) beside ones being sent, round after round, and each
// must still come back once, with its own output.
TEST_F(SchedulerTest, ResultsTakenSlowlyWhileAnswersKeepComingEachKeepTheirOwnOutput) {
  PoolSetup pool{"a", {0}};
  pool.in_flight_max = 256;
  build({pool}, 1, /*leases_max=*/256);
  const uint64_t task_count = 1000;
  auto output_of = [](uint64_t mark) { return std::string(9000, char('a' + mark % 26)) + std::to_string(mark); };
  uint64_t next_mark = 1, completed = 0;
  std::vector<std::pair<SentTask, std::string>> tasks;
  std::set<uint64_t> marks;
  ASSERT_TRUE(poll_until([&] {
    // No more out than the leases hold (the request ring would overflow).
    for (size_t sent = 0; next_mark <= task_count && sent < 16 && next_mark - 1 - marks.size() < 240; ++sent, ++next_mark)
      send_request(next_mark, type_a, "in" + std::to_string(next_mark));
    for (auto& task : take_tasks(0)) tasks.push_back(task);
    // More answers each round than one batch of results carries: answers keep waiting.
    for (size_t index = 0; index < 24 && !tasks.empty(); ++index, ++completed) {
      const auto& [task, input] = tasks.back();
      complete(0, task, KEEL_STATUS_OK, output_of(std::stoull(input.substr(2))));
      tasks.pop_back();
    }
    tile_->poll(64);
    for (const TaskResult& result : take_results(/*batches_max=*/1)) {
      EXPECT_TRUE(marks.insert(result.task_mark).second) << "mark " << result.task_mark << " came back twice";
      EXPECT_EQ(result.output, output_of(result.task_mark)) << "mark " << result.task_mark;
    }
    return marks.size() == task_count;
  }));
  EXPECT_EQ(counters().leases_held.load(), 0u);
}

}  // namespace
}  // namespace keel::sched
