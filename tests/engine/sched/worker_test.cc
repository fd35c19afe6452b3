// Tests for engine/sched/worker.h and pool_table.h: a real `keel worker` process on a
// segment this test lays out; the test plays the scheduler's part of the rings.
#include "engine/sched/worker.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/sched/plugin_library.h"
#include "engine/sched/pool_table.h"
#include "shm/arena.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::sched {
namespace {

namespace fs = std::filesystem;

// Bounds on waiting for the worker: a hang guard, not a timing assertion.
constexpr auto wait_limit = std::chrono::seconds(30);

template <class Predicate>
bool wait_until(Predicate predicate) {
  auto deadline = std::chrono::steady_clock::now() + wait_limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

struct WorkerArgs {
  std::string plugin;
  std::vector<std::string> types;
  std::vector<std::string> config;
  uint32_t threads = 2;
  uint32_t in_flight_max = 64;
  uint64_t epoch = 1;
  uint32_t task_hang_ms = 0;
  // 0: every batch goes to a runner thread, the path these tests were written for; the
  // main thread's own runs are asked for where they are the point.
  uint32_t inline_task_ns_max = 0;
};

std::vector<std::byte> bytes_of(uint64_t value) {
  std::vector<std::byte> bytes(sizeof value);
  std::memcpy(bytes.data(), &value, sizeof value);
  return bytes;
}

// One pool slot in a fresh segment, and the scheduler's ends of its rings and arenas.
class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = shm::testing::unique_segment_name("worker");
    shm::Segment::remove(name_);
    PoolTableOptions options{.slots = {{.name = "test@0"}}, .ring_capacity = 1024,
                             .input_arena_bytes = 1 << 20, .output_arena_bytes = 1 << 20};
    uint64_t bytes = pool_table_footprint(options).value() + (1 << 20);
    Result<shm::Segment> segment = shm::Segment::create({.name = name_, .bytes = bytes});
    ASSERT_TRUE(segment.ok()) << segment.error().message;
    segment_.emplace(std::move(*segment));
    Result<uint64_t> table = lay_out_pool_table(*segment_, options);
    ASSERT_TRUE(table.ok()) << table.error().message;
    segment_->seal();
    view_ = PoolTableView::join(segment_->base(), *table).value();
    control_ = &view_.control(0);
    std::byte* base = segment_->base();
    const PoolLane& lane = view_.lane(0, 0);
    tasks_ = shm::RingProducer::join(base, lane.task_ring).value();
    completions_ = shm::RingConsumer::join(base, lane.completion_ring).value();
    inputs_ = shm::ArenaWriter::join(base, lane.input_arena).value();
    outputs_ = shm::ArenaReader::join(base, lane.output_arena).value();
    log_ = fs::temp_directory_path() / ("keel-worker-test-" + std::to_string(getpid()) + ".err");
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    segment_.reset();
    shm::Segment::remove(name_);
    fs::remove(log_);
  }

  // Starts `keel worker` for the slot at args.epoch (stored in the slot first, as the
  // engine does).
  void start(const WorkerArgs& args) {
    control_->epoch.store(args.epoch);
    std::vector<std::string> argv = {"keel", "worker", "--segment", name_, "--slot", "0",
                                     "--epoch", std::to_string(args.epoch), "--plugin", args.plugin,
                                     "--threads", std::to_string(args.threads),
                                     "--in-flight-max", std::to_string(args.in_flight_max),
                                     "--task-hang-ms", std::to_string(args.task_hang_ms),
                                     "--inline-task-ns-max", std::to_string(args.inline_task_ns_max)};
    for (const std::string& type : args.types) argv.insert(argv.end(), {"--type", type});
    for (const std::string& entry : args.config) argv.insert(argv.end(), {"--config", entry});
    start_process(argv);
  }

  // Runs the keel binary with `argv` (argv[0] included), its stderr into log_.
  void start_process(std::vector<std::string> argv) {
    std::fflush(stdout);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      FILE* err = std::freopen(log_.c_str(), "w", stderr);
      (void)err;
      std::vector<char*> raw;
      for (std::string& arg : argv) raw.push_back(arg.data());
      raw.push_back(nullptr);
      ::execv(KEEL_BINARY, raw.data());
      _exit(127);
    }
  }

  // Waits for the worker to exit; returns its exit code (-1: killed by a signal).
  int wait_exit() {
    int status = 0;
    bool exited = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; });
    EXPECT_TRUE(exited) << "the worker did not exit";
    if (!exited) return -2;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  bool wait_ready(uint64_t epoch = 1) {
    return wait_until([&] {
      return control_->ready_epoch.load() == epoch || control_->failed_epoch.load() == epoch;
    }) && control_->ready_epoch.load() == epoch;
  }

  std::string log_text() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Pushes one task, alone in its batch; false when the ring (or the input arena) is full.
  bool push(uint64_t task_id, uint32_t attempt, uint64_t epoch, uint32_t type, std::span<const std::byte> input) {
    return push_batch(epoch, {{task_id, attempt, type, std::vector<std::byte>(input.begin(), input.end())}});
  }

  struct Task {
    uint64_t task_id;
    uint32_t attempt;
    uint32_t type;
    std::vector<std::byte> input;
  };
  // Pushes the tasks as one batch; false when the ring (or the input arena) is full.
  bool push_batch(uint64_t epoch, const std::vector<Task>& tasks) {
    if (tasks_.free_slots_cached() == 0 && tasks_.claim(1).empty()) return false;
    size_t bytes = 0;
    for (const Task& task : tasks) bytes += task_entry_bytes(task.input.size());
    std::optional<shm::ArenaBlock> block = inputs_.reserve(bytes);
    if (!block) return false;
    size_t offset = 0;
    for (const Task& task : tasks) {
      TaskEntry entry{.task_id = task.task_id,
                      .attempt = task.attempt,
                      .compute_type = task.type,
                      .input_bytes = uint32_t(task.input.size()),
                      .reserved = 0};
      offset += write_task_entry(block->bytes.subspan(offset), entry, task.input);
    }
    TaskBatchMessage batch{.epoch = epoch,
                           .dispatched_ns = 0,
                           .entries_position = block->position,
                           .entries_bytes = uint32_t(bytes),
                           .task_count = uint32_t(tasks.size()),
                           .reserved = {}};
    return tasks_.push(batch);
  }

  struct Completed {
    uint32_t attempt;
    int32_t status;
    std::vector<std::byte> output;
    uint64_t run_ns = 0;
  };

  // Takes every completion there is now.
  size_t drain(std::map<uint64_t, std::vector<Completed>>& done) {
    size_t got = 0;
    CompletionBatchMessage batch;
    while (completions_.pop(batch)) {
      EXPECT_GE(batch.task_count, 1u);
      EXPECT_LE(batch.task_count, batch_tasks_max);
      std::span<const std::byte> block = outputs_.read(batch.entries_position, batch.entries_bytes);
      EXPECT_EQ(block.size(), batch.entries_bytes);
      CompletionEntries entries(block, batch.task_count);
      std::span<const std::byte> output;
      size_t count = 0;
      for (CompletionEntry entry; entries.next(entry, output); ++count)
        done[entry.task_id].push_back(
            {entry.attempt, entry.status, std::vector<std::byte>(output.begin(), output.end()), entry.run_ns});
      EXPECT_EQ(count, batch.task_count) << "a batch's entries do not fit its block";
      outputs_.release(batch.entries_position, batch.entries_bytes);
      got += count;
    }
    return got;
  }

  // Pushes sleep tasks of 0 ms (as short as a noop's) one at a time, each answered before
  // the next, until the worker has run 100 on its main thread (their type's estimate has
  // come down from its first, cold runs, and stays down); false if it has not after
  // 5,000. Task ids from first_id on.
  bool run_quick_tasks(uint64_t first_id) {
    std::map<uint64_t, std::vector<Completed>> done;
    const std::vector<std::byte> no_sleep(4, std::byte{0});
    for (uint64_t id = first_id; id < first_id + 5000; ++id) {
      if (!push(id, 1, 1, 0, no_sleep)) return false;
      if (!wait_until([&] {
            drain(done);
            return done.count(id) == 1;
          }))
        return false;
      if (control_->tasks_run_inline.load() >= 100) return true;
    }
    return false;
  }

  // Pushes task_count noop tasks (ids from 0, attempt 3, input id * 7) as fast as the ring
  // takes them and checks each is completed exactly once with its own output.
  void expect_every_noop_task_completed_once(uint64_t task_count) {
    std::map<uint64_t, std::vector<Completed>> done;
    uint64_t pushed = 0;
    bool finished = wait_until([&] {
      while (pushed < task_count && push(pushed, 3, 1, 0, bytes_of(pushed * 7))) ++pushed;
      drain(done);
      return done.size() == task_count;
    });
    ASSERT_TRUE(finished) << done.size() << " of " << task_count << " completed\n" << log_text();
    for (const auto& [task_id, completions] : done) {
      ASSERT_EQ(completions.size(), 1u) << "task " << task_id;
      EXPECT_EQ(completions[0].attempt, 3u);
      EXPECT_EQ(completions[0].status, KEEL_STATUS_OK);
      EXPECT_EQ(completions[0].output, bytes_of(task_id * 7)) << "task " << task_id;
    }
    EXPECT_EQ(control_->tasks_completed.load(), task_count);
    EXPECT_EQ(control_->tasks_skipped.load(), 0u);
  }

  std::string name_;
  std::optional<shm::Segment> segment_;
  PoolTableView view_;
  PoolControl* control_ = nullptr;
  shm::RingProducer tasks_;
  shm::RingConsumer completions_;
  shm::ArenaWriter inputs_;
  shm::ArenaReader outputs_;
  fs::path log_;
  pid_t pid_ = -1;
};

TEST_F(WorkerTest, EveryTaskIsCompletedOnceWithItsOutputAndTheWorkerStopsOnSigterm) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_NOOP, .types = {"noop"}}));
  ASSERT_TRUE(wait_ready()) << log_text();
  uint64_t beat_at_ready = control_->heartbeat_ns.load();
  constexpr uint64_t task_count = 20000;
  ASSERT_NO_FATAL_FAILURE(expect_every_noop_task_completed_once(task_count));
  EXPECT_EQ(control_->tasks_run_inline.load(), 0u);  // asked for none
  EXPECT_TRUE(wait_until([&] { return control_->heartbeat_ns.load() > beat_at_ready; })) << "no heartbeat";
  ::kill(pid_, SIGTERM);
  EXPECT_EQ(wait_exit(), worker_exit_stopped) << log_text();
}

// The same on the main thread: once the noop type is measured, its batches run there (the
// engine's 500 ns is raised to 1 ms so that sanitizer builds take that path too).
TEST_F(WorkerTest, TasksTheMainThreadRunsItselfAreEachCompletedOnceWithTheirOutput) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_NOOP, .types = {"noop"}, .inline_task_ns_max = 1'000'000}));
  ASSERT_TRUE(wait_ready()) << log_text();
  constexpr uint64_t task_count = 20000;
  ASSERT_NO_FATAL_FAILURE(expect_every_noop_task_completed_once(task_count));
  // All but the first, unmeasured ones (each alone on a runner) and any batch that overran.
  EXPECT_GT(control_->tasks_run_inline.load(), task_count / 2);
  EXPECT_LE(control_->tasks_run_inline.load(), task_count);
  ::kill(pid_, SIGTERM);
  EXPECT_EQ(wait_exit(), worker_exit_stopped) << log_text();
}

TEST_F(WorkerTest, ABatchIsAnsweredTaskByTaskAndAnOlderIncarnationsBatchIsSkippedWhole) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_NOOP, .types = {"noop"}}));
  ASSERT_TRUE(wait_ready()) << log_text();
  std::vector<Task> stale;
  for (uint64_t id = 0; id < 5; ++id) stale.push_back({id, 1, 0, bytes_of(id)});
  ASSERT_TRUE(push_batch(0, stale));  // left in the ring by incarnation 0
  constexpr uint64_t first_id = 100, count = 50, bad_type_id = 120;
  std::vector<Task> batch;
  for (uint64_t id = first_id; id < first_id + count; ++id)
    batch.push_back({id, 2, id == bad_type_id ? 9u : 0u, bytes_of(id * 3)});
  ASSERT_TRUE(push_batch(1, batch));
  std::map<uint64_t, std::vector<Completed>> done;
  ASSERT_TRUE(wait_until([&] {
    drain(done);
    return done.size() == count;
  })) << done.size() << " of " << count << " completed\n" << log_text();
  for (uint64_t id = first_id; id < first_id + count; ++id) {
    ASSERT_EQ(done[id].size(), 1u) << "task " << id;
    EXPECT_EQ(done[id][0].attempt, 2u);
    if (id == bad_type_id) {
      EXPECT_EQ(done[id][0].status, KEEL_STATUS_BAD_INPUT);
      EXPECT_TRUE(done[id][0].output.empty());
    } else {
      EXPECT_EQ(done[id][0].status, KEEL_STATUS_OK) << "task " << id;
      EXPECT_EQ(done[id][0].output, bytes_of(id * 3)) << "task " << id;
    }
  }
  EXPECT_EQ(control_->tasks_skipped.load(), 5u);
  EXPECT_EQ(control_->tasks_completed.load(), count);
}

TEST_F(WorkerTest, BigInputsAndOutputsTravelThroughTheArenas) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_HASH, .types = {"hash"}}));
  ASSERT_TRUE(wait_ready()) << log_text();
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  std::vector<std::vector<std::byte>> documents(50);
  for (auto& document : documents) {
    document.resize(1 + random() % 20000);
    for (std::byte& byte : document) byte = std::byte(random());
  }
  std::map<uint64_t, std::vector<Completed>> done;
  size_t pushed = 0;
  ASSERT_TRUE(wait_until([&] {
    while (pushed < documents.size() && push(pushed, 1, 1, 0, documents[pushed])) ++pushed;
    drain(done);
    return done.size() == documents.size();
  })) << log_text();
  for (size_t index = 0; index < documents.size(); ++index) {
    std::vector<std::byte> digest(SHA256_DIGEST_LENGTH);
    SHA256(reinterpret_cast<const unsigned char*>(documents[index].data()), documents[index].size(),
           reinterpret_cast<unsigned char*>(digest.data()));
    ASSERT_EQ(done[index].size(), 1u);
    EXPECT_EQ(done[index][0].output, digest) << "document " << index << ", seed " << seed;
  }

  // interest: 24 bytes per account in, 16 out, so 100 accounts use both arenas.
  ::kill(pid_, SIGTERM);
  ASSERT_EQ(wait_exit(), worker_exit_stopped) << log_text();
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_INTEREST, .types = {"interest"}, .epoch = 2}));
  ASSERT_TRUE(wait_ready(2)) << log_text();
  std::vector<std::byte> input(8 + 100 * 24);
  uint32_t day_count = 365, accounts = 100;
  std::memcpy(input.data(), &day_count, 4);
  std::memcpy(input.data() + 4, &accounts, 4);
  for (uint32_t account = 0; account < accounts; ++account) {
    uint64_t id = 1000 + account;
    int64_t balance = 1'000'000;  // 10% a year for 365 days: 100,000 exactly
    int32_t rate_bp = 1000;
    std::memcpy(input.data() + 8 + account * 24, &id, 8);
    std::memcpy(input.data() + 16 + account * 24, &balance, 8);
    std::memcpy(input.data() + 24 + account * 24, &rate_bp, 4);
  }
  done.clear();
  ASSERT_TRUE(wait_until([&] { return push(7, 1, 2, 0, input); }));
  ASSERT_TRUE(wait_until([&] { return drain(done) > 0; })) << log_text();
  ASSERT_EQ(done[7].size(), 1u);
  ASSERT_EQ(done[7][0].status, KEEL_STATUS_OK);
  ASSERT_EQ(done[7][0].output.size(), 100u * 16);
  for (uint32_t account = 0; account < accounts; ++account) {
    uint64_t id;
    int64_t interest;
    std::memcpy(&id, done[7][0].output.data() + account * 16, 8);
    std::memcpy(&interest, done[7][0].output.data() + account * 16 + 8, 8);
    EXPECT_EQ(id, 1000u + account);
    EXPECT_EQ(interest, 100'000);
  }
}

TEST_F(WorkerTest, TasksOfAnOlderEpochAreSkippedAndASupersededWorkerStops) {
  // A dead incarnation's tasks (epoch 1) are still in the ring when epoch 2 starts.
  for (uint64_t task = 0; task < 10; ++task) ASSERT_TRUE(push(task, 1, 1, 0, bytes_of(task)));
  std::vector<std::byte> big(3000, std::byte{1});
  ASSERT_TRUE(push(10, 1, 1, 0, big));  // its arena bytes must be released too
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_NOOP, .types = {"noop"}, .epoch = 2}));
  ASSERT_TRUE(wait_ready(2)) << log_text();
  for (uint64_t task = 100; task < 110; ++task) ASSERT_TRUE(push(task, 2, 2, 0, bytes_of(task)));
  std::map<uint64_t, std::vector<Completed>> done;
  ASSERT_TRUE(wait_until([&] {
    drain(done);
    return done.size() == 10;
  })) << log_text();
  for (uint64_t task = 100; task < 110; ++task) EXPECT_EQ(done.count(task), 1u) << task;
  EXPECT_EQ(control_->tasks_skipped.load(), 11u);

  control_->epoch.store(3);  // the engine restarted the pool: this incarnation is done
  EXPECT_EQ(wait_exit(), worker_exit_stopped) << log_text();
}

// A task of the sleep test plugin that sleeps 10 minutes: hung, as far as anyone waiting
// for it can tell.
std::vector<std::byte> hung_task_input() {
  const uint32_t sleep_ms = 600000;
  std::vector<std::byte> input(4);
  std::memcpy(input.data(), &sleep_ms, 4);
  return input;
}

TEST_F(WorkerTest, ASupersededWorkerExitsAtOnceEvenWithATaskStuckInItsPlugin) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}}));
  ASSERT_TRUE(wait_ready()) << log_text();
  ASSERT_TRUE(push(1, 1, 1, 0, hung_task_input()));
  ASSERT_TRUE(wait_until([&] { return tasks_.drained(); })) << log_text();  // taken
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // and in the plugin
  control_->epoch.store(2);
  EXPECT_EQ(wait_exit(), worker_exit_stopped) << log_text();
}

TEST_F(WorkerTest, AWorkerWhoseEngineIsGoneExitsAtOnceEvenWithATaskStuckInItsPlugin) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}}));
  ASSERT_TRUE(wait_ready()) << log_text();
  ASSERT_TRUE(push(1, 1, 1, 0, hung_task_input()));
  ASSERT_TRUE(wait_until([&] { return tasks_.drained(); })) << log_text();  // taken
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // and in the plugin
  // The segment's owner is a process that has exited (and been reaped): the engine is gone.
  pid_t gone = fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) _exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  const_cast<shm::SegmentHeader&>(segment_->header()).owner_pid = gone;
  EXPECT_EQ(wait_exit(), worker_exit_stopped) << log_text();
}

TEST_F(WorkerTest, ATaskPastTaskHangMsEndsTheWorkerEvenWhileItStopsOnSigterm) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}, .task_hang_ms = 300}));
  ASSERT_TRUE(wait_ready()) << log_text();
  // A short task is answered; the hung one ends the process once it is 300 ms old, though
  // SIGTERM asked it to answer what it holds first.
  std::vector<std::byte> quick(4, std::byte{0});
  ASSERT_TRUE(push(1, 1, 1, 0, quick));
  ASSERT_TRUE(push(2, 1, 1, 0, hung_task_input()));
  std::map<uint64_t, std::vector<Completed>> done;
  ASSERT_TRUE(wait_until([&] {
    drain(done);
    return done.size() == 1;
  })) << log_text();
  EXPECT_EQ(done.count(1), 1u);
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(wait_exit(), worker_exit_task_hung) << log_text();
  EXPECT_NE(log_text().find("test@0: a task (id 2, attempt 1) has run 300 ms (task_hang_ms): exiting"),
            std::string::npos)
      << log_text();
  drain(done);
  EXPECT_EQ(done.size(), 1u);  // nothing answered for the hung task
}

// A sleep task's input: sleep_ms, then the task id as its payload (echoed back).
std::vector<std::byte> sleep_task_input(uint32_t sleep_ms, uint64_t task_id) {
  std::vector<std::byte> input(4 + sizeof task_id);
  std::memcpy(input.data(), &sleep_ms, 4);
  std::memcpy(input.data() + 4, &task_id, sizeof task_id);
  return input;
}

// A batch of near-free tasks runs on the worker's main thread (a hand-off to a runner
// costs more). A task there that hangs still ends the process at task_hang_ms, named, and
// the heartbeat goes on until then, as with a runner's task: a watchdog thread does what
// the stuck main loop cannot.
TEST_F(WorkerTest, ATaskHungOnTheMainThreadStillEndsTheWorkerAtTaskHangMs) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}, .task_hang_ms = 600,
                                 .inline_task_ns_max = 1'000'000}));
  ASSERT_TRUE(wait_ready()) << log_text();
  ASSERT_TRUE(run_quick_tasks(1)) << "never ran on the main thread\n" << log_text();
  uint64_t inline_before = control_->tasks_run_inline.load();
  ASSERT_TRUE(push(9999, 1, 1, 0, hung_task_input()));
  // Taken into a batch the main thread runs itself.
  ASSERT_TRUE(wait_until([&] { return control_->tasks_run_inline.load() > inline_before; })) << log_text();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // past the watchdog's 10 ms
  uint64_t beat_while_stuck = control_->heartbeat_ns.load();
  EXPECT_TRUE(wait_until([&] { return control_->heartbeat_ns.load() > beat_while_stuck; }))
      << "no heartbeat while the main thread ran a task within task_hang_ms";
  EXPECT_EQ(wait_exit(), worker_exit_task_hung) << log_text();
  EXPECT_NE(log_text().find("test@0: a task (id 9999, attempt 1) has run 600 ms (task_hang_ms): exiting"),
            std::string::npos)
      << log_text();
}

// With task_hang_ms 0 nothing beats for a main thread stuck in a task (the engine restarts
// a silent pool; a runner's hung task leaves the main loop to go on), and a superseded
// worker still exits at once.
TEST_F(WorkerTest, AWorkerWhoseMainThreadIsInAHungTaskIsSilentAndStillExitsWhenSuperseded) {
  ASSERT_NO_FATAL_FAILURE(
      start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}, .inline_task_ns_max = 1'000'000}));
  ASSERT_TRUE(wait_ready()) << log_text();
  ASSERT_TRUE(run_quick_tasks(1)) << "never ran on the main thread\n" << log_text();
  uint64_t inline_before = control_->tasks_run_inline.load();
  ASSERT_TRUE(push(9999, 1, 1, 0, hung_task_input()));
  ASSERT_TRUE(wait_until([&] { return control_->tasks_run_inline.load() > inline_before; })) << log_text();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // into the plugin
  uint64_t beat_while_stuck = control_->heartbeat_ns.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // 20 of the watchdog's looks
  EXPECT_EQ(control_->heartbeat_ns.load(), beat_while_stuck);
  control_->epoch.store(2);
  EXPECT_EQ(wait_exit(), worker_exit_stopped) << log_text();
}

// A task's run time comes back with it: a noop's is its share of a stretch of its
// neighbours (one clock read per stretch, not per task), a long one's its own (timed alone).
TEST_F(WorkerTest, ShortTasksRunTimesAreSharesOfTheirStretch) {
  {
    ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_NOOP, .types = {"noop"}}));
    ASSERT_TRUE(wait_ready()) << log_text();
    constexpr uint64_t task_count = 5000;
    std::map<uint64_t, std::vector<Completed>> done;
    uint64_t pushed = 0;
    ASSERT_TRUE(wait_until([&] {
      while (pushed < task_count && push(pushed, 1, 1, 0, bytes_of(pushed))) ++pushed;
      drain(done);
      return done.size() == task_count;
    })) << log_text();
    uint64_t run_ns_sum = 0;
    for (const auto& [task_id, completions] : done) {
      EXPECT_LT(completions[0].run_ns, 10'000'000u) << "a noop task took 10 ms: task " << task_id;
      run_ns_sum += completions[0].run_ns;
    }
    EXPECT_GT(run_ns_sum, 0u) << "no run time came back";
  }
}

TEST_F(WorkerTest, ALongTasksRunTimeIsItsOwn) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}}));
  ASSERT_TRUE(wait_ready()) << log_text();
  for (uint64_t id = 0; id < 4; ++id) ASSERT_TRUE(push(id, 1, 1, 0, sleep_task_input(20, id)));
  std::map<uint64_t, std::vector<Completed>> done;
  ASSERT_TRUE(wait_until([&] {
    drain(done);
    return done.size() == 4;
  })) << log_text();
  for (const auto& [task_id, completions] : done) {
    EXPECT_GE(completions[0].run_ns, 20'000'000u) << "task " << task_id;
    EXPECT_LT(completions[0].run_ns, 20'000'000'000u) << "task " << task_id;
  }
}

TEST_F(WorkerTest, ShortTasksBatchedOnOneThreadCompleteWhileASlowTaskHoldsTheOther) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_TEST_PLUGIN_SLEEP, .types = {"sleep"}, .threads = 2,
                                 .in_flight_max = 512}));
  ASSERT_TRUE(wait_ready()) << log_text();
  // The slow task goes first, while the type has no run-time estimate: it must run alone,
  // and every short task after it on the other thread, in batches of up to 64 once the
  // worker has measured them. (A short task asks for more than the plugin's longest sleep:
  // refused in a few ns, as a noop runs; nanosleep(0) would take the timer slack, 50 us.)
  // A batch holding a short task behind the slow one, a batch lost between the queue and
  // the runners, or a task run twice would fail here.
  constexpr uint64_t slow_id = 0;
  constexpr uint32_t slow_ms = 3000;
  constexpr uint32_t short_ms = 600001;
  constexpr uint64_t short_count = 4000;
  ASSERT_TRUE(push(slow_id, 1, 1, 0, sleep_task_input(slow_ms, slow_id)));
  std::map<uint64_t, std::vector<Completed>> done;
  uint64_t pushed = 0;
  ASSERT_TRUE(wait_until([&] {
    while (pushed < short_count && push(1 + pushed, 1, 1, 0, sleep_task_input(short_ms, 1 + pushed))) ++pushed;
    drain(done);
    return done.size() - done.count(slow_id) == short_count;
  })) << done.size() << " completed\n" << log_text();
  EXPECT_EQ(done.count(slow_id), 0u) << "short tasks waited for the slow one";
  ASSERT_TRUE(wait_until([&] {
    drain(done);
    return done.count(slow_id) == 1;
  })) << log_text();
  ASSERT_EQ(done.size(), short_count + 1);
  for (const auto& [task_id, completions] : done) {
    ASSERT_EQ(completions.size(), 1u) << "task " << task_id;
    if (task_id == slow_id) {
      EXPECT_EQ(completions[0].status, KEEL_STATUS_OK);
      EXPECT_EQ(completions[0].output, sleep_task_input(slow_ms, slow_id));
    } else {
      EXPECT_EQ(completions[0].status, KEEL_STATUS_BAD_INPUT) << "task " << task_id;
    }
  }
  EXPECT_EQ(control_->tasks_completed.load(), short_count + 1);
}

TEST_F(WorkerTest, AFullCompletionRingStopsTheWorkerTakingTasksAndNothingIsLost) {
  ASSERT_NO_FATAL_FAILURE(start({.plugin = KEEL_PLUGIN_NOOP, .types = {"noop"}, .in_flight_max = 16}));
  ASSERT_TRUE(wait_ready()) << log_text();
  // Nobody reads completions: the worker fills the completion ring (1,024 batches of one
  // to 16 tasks) and holds 16 finished in its slots; the task ring holds 1,024 more; then
  // pushes are refused.
  const auto& completion_ring =
      *reinterpret_cast<const shm::RingHeader*>(segment_->base() + view_.lane(0, 0).completion_ring);
  uint64_t pushed = 0;
  auto push_all_that_fit = [&] {
    while (push(pushed, 1, 1, 0, bytes_of(pushed))) ++pushed;
  };
  uint64_t completed = 0;
  ASSERT_TRUE(wait_until([&] {
    push_all_that_fit();
    completed = control_->tasks_completed.load();
    return completion_ring.tail.load() - completion_ring.head.load() == 1024 && pushed == completed + 16 + 1024;
  })) << pushed << " pushed, " << completed << " completed";
  EXPECT_GE(completed, 1024u);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  push_all_that_fit();
  EXPECT_EQ(pushed, completed + 16 + 1024) << "the worker took tasks it could not answer";
  EXPECT_EQ(control_->tasks_completed.load(), completed);
  // Reading the completions lets everything through, each exactly once.
  std::map<uint64_t, std::vector<Completed>> done;
  ASSERT_TRUE(wait_until([&] {
    drain(done);
    return done.size() == pushed;
  }));
  for (const auto& [task_id, completions] : done) EXPECT_EQ(completions.size(), 1u) << task_id;
}

TEST_F(WorkerTest, APluginThatCannotStartIsReportedInTheSlotInOneLine) {
  struct Case {
    WorkerArgs args;
    std::string failure;
  };
  std::string missing = (fs::temp_directory_path() / "keel-no-such-plugin.so").string();
  std::vector<Case> cases = {
      {{.plugin = KEEL_TEST_PLUGIN_INIT_FAILS, .types = {"never"}, .config = {"reason=no licence key"}},
       std::string(KEEL_TEST_PLUGIN_INIT_FAILS) + ": init failed: no licence key"},
      {{.plugin = KEEL_PLUGIN_NOOP, .types = {"noop", "nosuch"}},
       std::string(KEEL_PLUGIN_NOOP) + ": does not serve compute type nosuch (it serves noop)"},
      {{.plugin = missing, .types = {"noop"}},
       missing + ": cannot load plugin: " + missing + ": cannot open shared object file: No such file or directory"},
  };
  uint64_t epoch = 1;
  for (const Case& failing : cases) {
    WorkerArgs args = failing.args;
    args.epoch = epoch;
    ASSERT_NO_FATAL_FAILURE(start(args));
    EXPECT_EQ(wait_exit(), worker_exit_plugin_failed) << log_text();
    EXPECT_EQ(control_->failed_epoch.load(), epoch);
    EXPECT_NE(control_->ready_epoch.load(), epoch);
    EXPECT_EQ(std::string(control_->failure), failing.failure);
    EXPECT_EQ(log_text(), "keel worker: " + failing.failure + "\n");
    ++epoch;
  }
}

TEST_F(WorkerTest, AWorkerStartedForAnotherEpochStopsAtOnce) {
  control_->epoch.store(5);
  ASSERT_NO_FATAL_FAILURE(start_process({"keel", "worker", "--segment", name_, "--slot", "0", "--epoch", "4",
                                         "--plugin", KEEL_PLUGIN_NOOP, "--type", "noop"}));
  EXPECT_EQ(wait_exit(), worker_exit_stopped);
  EXPECT_EQ(log_text(), "keel worker: " + name_ + ": slot 0 is at epoch 5, not 4: superseded\n");
  EXPECT_EQ(control_->ready_epoch.load(), 0u);
}

}  // namespace
}  // namespace keel::sched
