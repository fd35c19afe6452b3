// Tests for engine/sched/pool_supervisor.h: real `keel worker` processes on a pool table
// this test lays out, started, killed, stopped and pinned through the supervisor; the test
// plays the engine's main thread (it polls) and, where a task is needed, the scheduler.
#include "engine/sched/pool_supervisor.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/sched/pool_table.h"
#include "numa/topology.h"
#include "shm/arena.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::sched {
namespace {

namespace fs = std::filesystem;

// Bounds on waiting for a worker: a hang guard, not a timing assertion.
constexpr auto wait_limit = std::chrono::seconds(30);

std::string text_of(const char* field) { return std::string(field, strnlen(field, pool_failure_bytes_max + 1)); }

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// True once `pid` is no child of this process any more (reaped by the supervisor).
bool reaped(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD; }

// Two pool slots in a fresh segment, and the scheduler's end of slot 0's task ring.
class PoolSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = shm::testing::unique_segment_name("supervisor");
    shm::Segment::remove(name_);
    PoolTableOptions options{.slots = {{.name = "test@0"}, {.name = "test@1", .pool_index = 1}},
                             .ring_capacity = 1024, .input_arena_bytes = 1 << 16, .output_arena_bytes = 1 << 16};
    uint64_t bytes = pool_table_footprint(options).value() + (1 << 20);
    Result<shm::Segment> segment = shm::Segment::create({.name = name_, .bytes = bytes});
    ASSERT_TRUE(segment.ok()) << segment.error().message;
    segment_.emplace(std::move(*segment));
    Result<uint64_t> table = lay_out_pool_table(*segment_, options);
    ASSERT_TRUE(table.ok()) << table.error().message;
    segment_->seal();
    view_ = PoolTableView::join(segment_->base(), *table).value();
    tasks_ = shm::RingProducer::join(segment_->base(), view_.lane(0, 0).task_ring).value();
    inputs_ = shm::ArenaWriter::join(segment_->base(), view_.lane(0, 0).input_arena).value();
  }

  void TearDown() override {
    supervisor_.reset();  // stops its workers before the segment goes
    segment_.reset();
    shm::Segment::remove(name_);
  }

  SupervisorOptions options() const { return {.executable = KEEL_BINARY, .segment_name = name_}; }

  static SupervisedPool noop_pool(uint32_t slot = 0) {
    return {.slot = slot, .plugin_path = KEEL_PLUGIN_NOOP, .compute_types = {"noop"}, .threads = 1,
            .in_flight_max = 16, .output_bytes_max = 4096};
  }

  void start(SupervisorOptions options, std::vector<SupervisedPool> pools) {
    supervisor_.emplace(std::move(options), view_, std::move(pools));
    Result<void> started = supervisor_->start();
    ASSERT_TRUE(started.ok()) << started.error().message;
  }

  // Polls (as the engine's main thread does) until `predicate` holds; false after
  // wait_limit. The supervisor's clock runs clock_offset_ns ahead of the real one.
  template <class Predicate>
  bool poll_until(Predicate predicate, uint64_t clock_offset_ns = 0) {
    auto deadline = std::chrono::steady_clock::now() + wait_limit;
    for (;;) {
      supervisor_->poll(shm::monotonic_ns() + clock_offset_ns, &events_);
      if (predicate()) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  bool has_event(const std::string& line) const {
    return std::find(events_.begin(), events_.end(), line) != events_.end();
  }

  std::string events_text() const {
    std::string text;
    for (const std::string& line : events_) text += "  " + line + "\n";
    return "events:\n" + text;
  }

  PoolControl& control(uint32_t slot = 0) { return view_.control(slot); }

  // Pushes one task for slot 0 at `epoch`, alone in its batch; false when the ring or
  // the input arena is full.
  bool push(uint64_t task_id, uint64_t epoch, std::string_view input) {
    if (tasks_.free_slots_cached() == 0 && tasks_.claim(1).empty()) return false;
    size_t bytes = task_entry_bytes(input.size());
    std::optional<shm::ArenaBlock> block = inputs_.reserve(bytes);
    if (!block) return false;
    TaskEntry entry{.task_id = task_id, .attempt = 1, .compute_type = 0, .input_bytes = uint32_t(input.size()), .reserved = 0};
    write_task_entry(block->bytes, entry, std::as_bytes(std::span<const char>(input.data(), input.size())));
    TaskBatchMessage batch{.epoch = epoch,
                           .dispatched_ns = 0,
                           .entries_position = block->position,
                           .entries_bytes = uint32_t(bytes),
                           .task_count = 1,
                           .reserved = {}};
    return tasks_.push(batch);
  }

  std::string name_;
  std::optional<shm::Segment> segment_;
  PoolTableView view_;
  shm::RingProducer tasks_;
  shm::ArenaWriter inputs_;
  std::optional<PoolSupervisor> supervisor_;
  std::vector<std::string> events_;
};

TEST_F(PoolSupervisorTest, APoolStartsAtEpochOneAndBecomesReady) {
  ASSERT_NO_FATAL_FAILURE(start(options(), {noop_pool()}));
  EXPECT_EQ(control().epoch.load(), 1u);
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready(); })) << events_text();
  EXPECT_EQ(control().ready_epoch.load(), 1u);
  EXPECT_GT(control().pid.load(), 0);
  EXPECT_FALSE(process_gone(control().pid.load()));
  EXPECT_EQ(control().dead_epoch.load(), 0u);
  EXPECT_EQ(supervisor_->restarts(), 0u);
  EXPECT_EQ(supervisor_->quarantined_count(), 0u);
  EXPECT_TRUE(events_.empty()) << events_text();
}

TEST_F(PoolSupervisorTest, AKilledWorkerIsReapedBeforeItsEpochIsDeadAndRestartedAtTheNextEpoch) {
  ASSERT_NO_FATAL_FAILURE(start(options(), {noop_pool()}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready(); })) << events_text();
  pid_t first = control().pid.load();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // Each poll is checked: the dead epoch is published, and the epoch moves, only once the
  // dead process is reaped.
  bool ordered = true;
  ASSERT_TRUE(poll_until([&] {
    if ((control().dead_epoch.load() == 1 || control().epoch.load() == 2) && !reaped(first)) ordered = false;
    return control().ready_epoch.load() == 2 && supervisor_->all_ready();
  })) << events_text();
  EXPECT_TRUE(ordered) << "dead_epoch or the epoch moved before the dead incarnation was reaped";
  EXPECT_EQ(control().dead_epoch.load(), 1u);
  EXPECT_EQ(control().epoch.load(), 2u);
  EXPECT_EQ(control().restarts.load(), 1u);
  EXPECT_EQ(supervisor_->restarts(), 1u);
  pid_t second = control().pid.load();
  EXPECT_NE(second, first);
  EXPECT_TRUE(has_event("pool test@0: incarnation 1 (pid " + std::to_string(first) +
                        ") died (signal Killed); restarting in 100 ms"))
      << events_text();
  EXPECT_TRUE(has_event("pool test@0: restarted as incarnation 2 (pid " + std::to_string(second) + ")"))
      << events_text();
  EXPECT_EQ(supervisor_->quarantined_count(), 0u);
}

TEST_F(PoolSupervisorTest, APluginThatCannotLoadQuarantinesItsPoolWithTheWorkersLineAndNoOther) {
  std::string missing = (fs::temp_directory_path() / "keel-no-such-plugin.so").string();
  SupervisedPool broken = noop_pool(0);
  broken.plugin_path = missing;
  ASSERT_NO_FATAL_FAILURE(start(options(), {broken, noop_pool(1)}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->quarantined_count() == 1 && supervisor_->all_ready(); }))
      << events_text();
  std::string line =
      missing + ": cannot load plugin: " + missing + ": cannot open shared object file: No such file or directory";
  EXPECT_EQ(control(0).quarantined.load(), 1u);
  EXPECT_EQ(text_of(control(0).quarantine), line);
  EXPECT_EQ(control(0).dead_epoch.load(), 1u);
  EXPECT_EQ(control(0).restarts.load(), 0u);
  EXPECT_TRUE(has_event("pool test@0: quarantined: " + line)) << events_text();
  // The healthy pool is untouched.
  EXPECT_EQ(control(1).quarantined.load(), 0u);
  EXPECT_EQ(control(1).ready_epoch.load(), 1u);
  EXPECT_EQ(events_.size(), 1u) << events_text();
}

TEST_F(PoolSupervisorTest, APoolThatKeepsCrashingIsQuarantinedAfterCrashesMaxWithDoublingBackoff) {
  SupervisorOptions supervision = options();
  supervision.crashes_max = 3;
  supervision.restart_backoff_ms = 10;
  SupervisedPool crashing{.slot = 0, .plugin_path = KEEL_TEST_PLUGIN_CRASH, .compute_types = {"crash"}};
  ASSERT_NO_FATAL_FAILURE(start(supervision, {crashing}));
  // Each incarnation, once ready, gets one task of its own epoch that makes it crash.
  uint64_t pushed_epoch = 0;
  ASSERT_TRUE(poll_until([&] {
    uint64_t ready = control().ready_epoch.load();
    if (ready == control().epoch.load() && ready != pushed_epoch && control().dead_epoch.load() != ready) {
      EXPECT_TRUE(push(ready, ready, "boom"));
      pushed_epoch = ready;
    }
    return supervisor_->quarantined_count() == 1;
  })) << events_text();
  std::string reason = text_of(control().quarantine);
  EXPECT_EQ(reason.rfind("crashed 3 times in 30 s (last: ", 0), 0u) << reason;
  EXPECT_EQ(control().dead_epoch.load(), 3u);
  EXPECT_EQ(control().epoch.load(), 3u);
  EXPECT_EQ(control().restarts.load(), 2u);
  EXPECT_EQ(supervisor_->restarts(), 2u);
  EXPECT_TRUE(has_event("pool test@0: quarantined: " + reason)) << events_text();
  auto mentions = [&](const std::string& part) {
    return std::any_of(events_.begin(), events_.end(),
                       [&](const std::string& line) { return line.find(part) != std::string::npos; });
  };
  EXPECT_TRUE(mentions("died") && mentions("; restarting in 10 ms")) << events_text();
  EXPECT_TRUE(mentions("; restarting in 20 ms")) << events_text();
  EXPECT_TRUE(supervisor_->all_ready());  // nothing left that is not quarantined
}

TEST_F(PoolSupervisorTest, TheBackoffDoublesPerConsecutiveCrashAndStartsOverAfterALongHealthyRun) {
  ASSERT_NO_FATAL_FAILURE(start(options(), {noop_pool()}));
  for (uint64_t epoch = 1; epoch <= 2; ++epoch) {
    ASSERT_TRUE(poll_until([&] { return control().ready_epoch.load() == epoch && supervisor_->all_ready(); }))
        << events_text();
    ASSERT_EQ(::kill(control().pid.load(), SIGKILL), 0);
  }
  ASSERT_TRUE(poll_until([&] { return control().ready_epoch.load() == 3 && supervisor_->all_ready(); }))
      << events_text();
  auto restart_delays = [&] {
    std::vector<std::string> delays;
    for (const std::string& line : events_) {
      if (size_t at = line.find("; restarting in "); at != std::string::npos) delays.push_back(line.substr(at + 16));
    }
    return delays;
  };
  EXPECT_EQ(restart_delays(), (std::vector<std::string>{"100 ms", "200 ms"})) << events_text();
  // Incarnation 3 dies after a healthy crash window: poll's clock is moved on past it
  // (which also makes the worker's heartbeat look old: that is a crash either way).
  pid_t third = control().pid.load();
  ASSERT_EQ(::kill(third, SIGKILL), 0);
  const uint64_t later_ns = 31'000'000'000;
  ASSERT_TRUE(poll_until([&] { return control().dead_epoch.load() == 3; }, later_ns)) << events_text();
  EXPECT_EQ(restart_delays(), (std::vector<std::string>{"100 ms", "200 ms", "100 ms"})) << events_text();
  EXPECT_EQ(supervisor_->quarantined_count(), 0u);
}

TEST_F(PoolSupervisorTest, ASilentWorkerIsKilledAfterTheHeartbeatTimeoutAndRestarted) {
  SupervisorOptions supervision = options();
  supervision.heartbeat_timeout_ms = 300;
  ASSERT_NO_FATAL_FAILURE(start(supervision, {noop_pool()}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready(); })) << events_text();
  pid_t first = control().pid.load();
  ASSERT_EQ(::kill(first, SIGSTOP), 0);
  ASSERT_TRUE(poll_until([&] { return control().ready_epoch.load() == 2 && supervisor_->all_ready(); }))
      << events_text();
  EXPECT_TRUE(reaped(first));
  EXPECT_EQ(control().dead_epoch.load(), 1u);
  EXPECT_EQ(supervisor_->restarts(), 1u);
  EXPECT_TRUE(has_event("pool test@0: incarnation 1 (pid " + std::to_string(first) +
                        ") died (no heartbeat for 300 ms, killed); restarting in 100 ms"))
      << events_text();
}

TEST_F(PoolSupervisorTest, ATaskThatHangsPastTaskHangMsEndsItsIncarnationAsACrash) {
  SupervisedPool sleeping{.slot = 0, .plugin_path = KEEL_TEST_PLUGIN_SLEEP, .compute_types = {"sleep"},
                          .threads = 2, .in_flight_max = 4, .output_bytes_max = 4096, .task_hang_ms = 200};
  ASSERT_NO_FATAL_FAILURE(start(options(), {sleeping}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready(); })) << events_text();
  pid_t first = control().pid.load();
  // 10 minutes: hung, as far as anyone waiting for it can tell. The heartbeat goes on
  // (the main thread is fine); only the task's age ends the process.
  const uint32_t sleep_ms = 600000;
  std::string input(reinterpret_cast<const char*>(&sleep_ms), 4);
  ASSERT_TRUE(push(1, 1, input));
  ASSERT_TRUE(poll_until([&] { return control().ready_epoch.load() == 2 && supervisor_->all_ready(); }))
      << events_text();
  EXPECT_TRUE(reaped(first));
  EXPECT_EQ(control().dead_epoch.load(), 1u);
  EXPECT_TRUE(has_event("pool test@0: incarnation 1 (pid " + std::to_string(first) +
                        ") died (a task ran past task_hang_ms, 200 ms); restarting in 100 ms"))
      << events_text();
}

TEST_F(PoolSupervisorTest, AWorkerNeverReadyIsKilledAndItsPoolQuarantined) {
  // A FIFO nobody writes to: the worker's dlopen blocks in open(), before it is ready.
  fs::path fifo = fs::temp_directory_path() / ("keel-supervisor-test-" + std::to_string(getpid()) + ".so");
  fs::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  SupervisorOptions supervision = options();
  supervision.ready_timeout_ms = 300;
  SupervisedPool hanging = noop_pool();
  hanging.plugin_path = fifo.string();
  ASSERT_NO_FATAL_FAILURE(start(supervision, {hanging}));
  pid_t pid = control().pid.load();
  bool quarantined = poll_until([&] { return supervisor_->quarantined_count() == 1; });
  fs::remove(fifo);
  ASSERT_TRUE(quarantined) << events_text();
  EXPECT_TRUE(reaped(pid));
  EXPECT_EQ(control().dead_epoch.load(), 1u);
  EXPECT_EQ(text_of(control().quarantine), "not ready within 300 ms");
  EXPECT_TRUE(has_event("pool test@0: quarantined: not ready within 300 ms")) << events_text();
}

TEST_F(PoolSupervisorTest, StopLeavesNoChildEvenAStoppedOne) {
  ASSERT_NO_FATAL_FAILURE(start(options(), {noop_pool(0), noop_pool(1)}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready(); })) << events_text();
  pid_t pids[] = {control(0).pid.load(), control(1).pid.load()};
  // A stopped process leaves SIGTERM pending: stop() must go on to SIGKILL.
  ASSERT_EQ(::kill(pids[1], SIGSTOP), 0);
  supervisor_->stop();
  for (pid_t pid : pids) EXPECT_TRUE(process_gone(pid)) << pid;
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(control(0).dead_epoch.load(), 1u);
  EXPECT_EQ(control(1).dead_epoch.load(), 1u);
  EXPECT_FALSE(supervisor_->all_ready());
  supervisor_->poll(shm::monotonic_ns(), &events_);  // nothing is restarted after stop
  EXPECT_EQ(control(0).epoch.load(), 1u);
  EXPECT_TRUE(events_.empty()) << events_text();
  supervisor_->stop();  // idempotent
}

// The first PU this process may run on, from its affinity mask.
std::optional<uint32_t> first_allowed_pu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return std::nullopt;
  for (uint32_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return std::nullopt;
}

// The node (OS index) of the PU pu_os_index.
std::optional<uint32_t> node_of(const numa::Topology& topology, uint32_t pu_os_index) {
  for (const numa::NumaNode& node : topology.nodes()) {
    for (const numa::Core& core : node.cores) {
      if (std::count(core.pu_os_indexes.begin(), core.pu_os_indexes.end(), pu_os_index) != 0) return node.os_index;
    }
  }
  return std::nullopt;
}

// "Cpus_allowed_list:\t3" -> "3", for every thread of `pid`.
std::vector<std::string> cpus_allowed_of_threads(pid_t pid) {
  std::vector<std::string> lists;
  for (const fs::directory_entry& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) lists.push_back(line.substr(line.find_first_not_of(" \t", 18)));
    }
  }
  return lists;
}

TEST_F(PoolSupervisorTest, APinnedWorkerRunsOnItsPUsAndAnImpossiblePinningQuarantinesItsPool) {
  std::optional<uint32_t> pu = first_allowed_pu();
  ASSERT_TRUE(pu.has_value());
  Result<numa::Topology> topology = numa::Topology::load_host();
  ASSERT_TRUE(topology.ok()) << topology.error().message;
  std::optional<uint32_t> node = node_of(*topology, *pu);
  ASSERT_TRUE(node.has_value()) << "PU " << *pu << " is in no node of " << topology->describe();
  SupervisedPool pinned = noop_pool(0);
  pinned.threads = 2;
  pinned.pu_os_indexes = {*pu};
  pinned.node_os_index = *node;
  SupervisedPool impossible = noop_pool(1);
  impossible.pu_os_indexes = {4095};
  impossible.node_os_index = *node;
  ASSERT_NO_FATAL_FAILURE(start(options(), {pinned, impossible}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready() && supervisor_->quarantined_count() == 1; }))
      << events_text();

  // Every thread of the pinned worker, the TBB arena's included once a task ran.
  ASSERT_TRUE(push(1, 1, "pin"));
  ASSERT_TRUE(poll_until([&] { return control(0).tasks_completed.load() == 1; }));
  std::vector<std::string> lists = cpus_allowed_of_threads(control(0).pid.load());
  ASSERT_FALSE(lists.empty());
  for (const std::string& list : lists) EXPECT_EQ(list, std::to_string(*pu));
  EXPECT_EQ(control(0).quarantined.load(), 0u);

  std::string line = text_of(control(1).quarantine);
  EXPECT_NE(line.find("PU 4095"), std::string::npos) << line;
  EXPECT_EQ(line, text_of(control(1).failure));
  EXPECT_EQ(control(1).failed_epoch.load(), 1u);
  EXPECT_TRUE(has_event("pool test@1: quarantined: " + line)) << events_text();
}

size_t thread_count(pid_t pid) {
  size_t count = 0;
  std::error_code error;
  for (fs::directory_iterator task("/proc/" + std::to_string(pid) + "/task", error), end; !error && task != end;
       task.increment(error)) {
    ++count;
  }
  return count;
}

TEST_F(PoolSupervisorTest, APoolPinnedToOnePURunsAllItsThreads) {
  // TBB sizes its workers from the PUs the process may use: pinned to one PU, it would
  // run a pool of 2 threads on one. Two long tasks at once show both threads.
  std::optional<uint32_t> pu = first_allowed_pu();
  ASSERT_TRUE(pu.has_value());
  Result<numa::Topology> topology = numa::Topology::load_host();
  ASSERT_TRUE(topology.ok()) << topology.error().message;
  std::optional<uint32_t> node = node_of(*topology, *pu);
  ASSERT_TRUE(node.has_value());
  SupervisedPool pinned{.slot = 0, .plugin_path = KEEL_TEST_PLUGIN_SLEEP, .compute_types = {"sleep"}, .threads = 2,
                        .pu_os_indexes = {*pu}, .node_os_index = *node};
  ASSERT_NO_FATAL_FAILURE(start(options(), {pinned}));
  ASSERT_TRUE(poll_until([&] { return supervisor_->all_ready(); })) << events_text();
  const uint32_t sleep_ms = 2000;
  std::string input(reinterpret_cast<const char*>(&sleep_ms), 4);  // little-endian hosts only, as keel
  ASSERT_TRUE(push(1, 1, input));
  ASSERT_TRUE(push(2, 1, input));
  pid_t pid = control().pid.load();
  size_t threads_most = 0;
  ASSERT_TRUE(poll_until([&] {
    if (control().tasks_completed.load() == 0) threads_most = std::max(threads_most, thread_count(pid));
    return control().tasks_completed.load() == 2;
  }));
  EXPECT_GE(threads_most, 3u) << "the main thread and two arena threads, while both tasks ran";
}

TEST_F(PoolSupervisorTest, BadOptionsAreRefusedBeforeAnythingStarts) {
  struct Case {
    SupervisorOptions options;
    std::vector<SupervisedPool> pools;
    std::string error;
  };
  SupervisorOptions no_crashes = options();
  no_crashes.crashes_max = 0;
  std::vector<Case> cases = {
      {options(), {noop_pool(2)}, "pool slot 2: the pool table has 2 slots"},
      {options(), {noop_pool(1), noop_pool(1)}, "pool slot 1: supervised twice"},
      {no_crashes, {noop_pool(0)}, "pool supervisor: crashes_max, crash_window_ms and the timeouts must not be 0"},
  };
  for (Case& refused : cases) {
    PoolSupervisor supervisor(refused.options, view_, refused.pools);
    Result<void> started = supervisor.start();
    ASSERT_FALSE(started.ok());
    EXPECT_EQ(started.error().message, refused.error);
    EXPECT_EQ(control(0).epoch.load(), 0u);
    EXPECT_EQ(control(1).epoch.load(), 0u);
  }
}

TEST_F(PoolSupervisorTest, AnExecutableThatCannotStartIsAnErrorOfStart) {
  SupervisorOptions supervision = options();
  supervision.executable = "/nonexistent/keel";
  PoolSupervisor supervisor(supervision, view_, {noop_pool()});
  Result<void> started = supervisor.start();
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().message,
            "pool test@0: keel worker: cannot start /nonexistent/keel: No such file or directory");
  EXPECT_EQ(control().dead_epoch.load(), control().epoch.load());  // nothing runs that epoch
  std::vector<std::string> events;
  supervisor.poll(shm::monotonic_ns(), &events);  // after a failed start(), nothing to watch
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(control().epoch.load(), 1u);
}

}  // namespace
}  // namespace keel::sched
