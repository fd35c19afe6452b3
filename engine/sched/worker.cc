#include "engine/sched/worker.h"

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <thread>

#include "engine/sched/plugin_library.h"
#include "engine/sched/pool_table.h"
#include "numa/binding.h"
#include "numa/topology.h"
#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"

namespace keel::sched {

namespace {

std::atomic<bool> stop_requested{false};
void request_stop(int) { stop_requested.store(true, std::memory_order_relaxed); }

// Set once this process's runner jobs are enqueued (Worker::start_runners; a worker
// process runs one Worker).
std::atomic<bool> runners_published{false};

constexpr uint64_t heartbeat_interval_ns = 1'000'000;
constexpr uint32_t idle_sleep_us = 1000;
// The longest a runner with no batch sleeps before it looks again (it is woken when one
// is queued; this only bounds a sleep).
constexpr uint32_t runner_sleep_us = 100'000;

// Tasks go to the arena's threads in batches, so that a queue push and pop each way, a
// doorbell ring and the atomics are paid once per batch: for a noop task they cost more
// than the task (~800 ns of the worker's CPU per task when each task travelled alone).
// A batch holds about batch_work_ns of estimated work: long enough to spread those costs
// over dozens of short tasks, short enough that a finished task waits little for the rest
// of its batch. runner_batch_tasks_max bounds a batch of near-free tasks: 512 noop tasks
// are a few microseconds, about one hand-off's cost; at 64 the hand-offs were a fifth of
// the pool's CPU per task (alternated bench tasks runs: 130 against 100 ns per task).
constexpr uint64_t batch_work_ns = 20'000;
constexpr uint32_t runner_batch_tasks_max = 512;
// A runner whose batch has run this long (its estimate was wrong: the type's tasks got
// slower) hands back the tasks it has finished and queues the rest as a new batch, which
// an idle thread may take.
constexpr uint64_t batch_split_ns = 2 * batch_work_ns;
// A batch whose tasks' types are estimated at most WorkerOptions::inline_task_ns_max each
// (500 ns unless a test says otherwise), on average, runs on the main thread as soon as it
// is formed, not on a runner: handing a task over costs more than such a task. Its slot's
// cache lines cross to the runner's core and back (the runner writes the output and
// status the main thread then reads), on top of a queue push and pop and perhaps a wake-up
// per batch. 18 alternated bench tasks pairs: the pool's CPU per noop task 81-130 ns
// (median 99) handed over, 60-92 (median 78) on the main thread (perf/RESULTS.md,
// 2026-11-26, midday). A longer task is worth a thread of its own; a batch of unmeasured
// tasks never runs here.
//
// While the main thread runs a batch, a watchdog thread does what the main loop cannot:
// it looks every watchdog_interval_ms, and once one stretch of the batch has run longer
// than a heartbeat interval it exits the process when the slot is superseded or the
// engine gone, beats the heartbeat for a task still within task_hang_ms, and ends the
// process at task_hang_ms as a runner's hang would. So the heartbeat is never more than
// about watchdog_interval_ms late (the engine's heartbeat_timeout_ms is at least 50).
constexpr uint32_t watchdog_interval_ms = 10;
// The weight of a new run in a compute type's run-time estimate: 1/8, so the estimate
// follows a change in a few dozen tasks and one odd task moves it little.
constexpr int64_t estimate_weight_shift = 3;
// A held task's input and output are kept inline up to this size (a buffer allocated once
// per slot beyond it).
constexpr size_t held_inline_bytes = 32;
// A task whose type's estimate is below this is timed with its neighbours in stretches of
// up to stretch_tasks_max: a clock read costs ~25 ns here, as much as a noop task.
constexpr uint64_t timed_alone_ns = 1000;
constexpr uint32_t stretch_tasks_max = 16;
// No next task in a batch (HeldTask::next).
constexpr uint32_t no_task = ~uint32_t(0);

// One task held by the worker, from the ring to its completion. Owned by the main thread
// except while its batch is with an arena thread (from the push onto `to_run_` to the
// push onto `finished_`).
//
// Laid out for the cache: what the main thread reads when the task comes back (its entry,
// status, output size, run time, lane, batch link) is the first line, and a small input
// and output share the second. The main thread meets each task twice, milliseconds
// apart under load, and each line is a miss then.
struct alignas(64) HeldTask {
  TaskEntry task{};  // its input is input() below
  uint32_t lane = 0;  // the scheduler's lane it came from and its completion goes back to
  uint32_t plugin_type = 0;
  uint32_t next = no_task;  // the next task slot of its batch, run after this one
  int32_t status = 0;
  uint32_t output_bytes = 0;
  // Set when batched: its type's tasks are long enough (or unknown) to be timed alone;
  // shorter ones are timed in stretches (see run_batch).
  bool timed_alone = true;
  uint64_t run_ns = 0;
  // The output, copied out of the runner's scratch buffer: here when small, else into
  // `output` (output_bytes_max, allocated at the first such output and kept).
  std::byte output_inline[held_inline_bytes];
  // The input, copied out of the batch's arena block: here when small, else in input_big.
  std::byte input_inline[held_inline_bytes];
  std::vector<std::byte> input_big;
  std::vector<std::byte> output;

  std::span<const std::byte> input() const {
    return task.input_bytes <= held_inline_bytes ? std::span<const std::byte>(input_inline, task.input_bytes)
                                                 : std::span<const std::byte>(input_big.data(), task.input_bytes);
  }
  std::span<const std::byte> output_written() const {
    return output_bytes <= held_inline_bytes ? std::span<const std::byte>(output_inline, output_bytes)
                                             : std::span<const std::byte>(output.data(), output_bytes);
  }
};

// The buffer a runner thread hands the plugin for its output: one per arena thread, so a
// plugin writes into memory that thread touched for the task before. (One 16 KiB buffer
// per task slot, as before, put every noop task's 8-byte output on a cold page, and its
// copy and the completion's read of it were a third of the worker's time.)
std::span<std::byte> runner_scratch(size_t bytes) {
  thread_local std::vector<std::byte> scratch;
  if (scratch.size() < bytes) scratch.resize(bytes);
  return std::span<std::byte>(scratch.data(), bytes);
}

void report_failure(PoolControl& control, uint64_t epoch, const std::string& line, bool to_stderr) {
  size_t bytes = std::min(line.size(), pool_failure_bytes_max);
  std::memcpy(control.failure, line.data(), bytes);
  control.failure[bytes] = '\0';
  control.failed_epoch.store(epoch, std::memory_order_release);
  if (to_stderr) std::fprintf(stderr, "keel worker: %s\n", line.c_str());
}

// Pins the whole process as the options say (numa/binding.h reads the binding back).
Result<void> pin_process(const WorkerOptions& options) {
  Result<numa::Topology> topology = numa::Topology::load_host();
  if (!topology) return topology.error();
  return numa::bind_current_process(*topology, options.pu_os_indexes, options.node_os_index);
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

// What one runner (an arena job running batches, or the main thread running one itself)
// is doing, for task_hang_ms: the task it runs and when that task's stretch began
// (monotonic ns; 0 when it runs none). Written by the thread running the batch, read by
// the main thread (a runner's) or the watchdog (the main thread's).
struct alignas(64) RunnerSlot {
  std::atomic<uint32_t> task{no_task};
  std::atomic<uint64_t> started_ns{0};
};

// One scheduler's lane (pool_table.h), joined.
struct Lane {
  shm::RingConsumer tasks;
  shm::RingProducer completions;
  shm::ArenaReader inputs;
  shm::ArenaWriter outputs;
  std::deque<uint32_t> to_send;  // finished, waiting for room in the completion ring
};

class Worker {
 public:
  Worker(const WorkerOptions& options, shm::Segment& segment, PoolControl& control)
      : options_(options), segment_(segment), control_(control) {}

  int run() {
    std::byte* base = segment_.base();
    uint64_t output_arena_bytes = ~uint64_t(0);
    lanes_.resize(control_.lane_count);
    for (uint32_t index = 0; index < control_.lane_count; ++index) {
      const PoolLane& where = reinterpret_cast<const PoolLane*>(base + control_.lanes)[index];
      Result<shm::RingConsumer> tasks = shm::RingConsumer::join(base, where.task_ring);
      Result<shm::RingProducer> completions = shm::RingProducer::join(base, where.completion_ring);
      Result<shm::ArenaReader> inputs = shm::ArenaReader::join(base, where.input_arena);
      Result<shm::ArenaWriter> outputs = shm::ArenaWriter::join(base, where.output_arena);
      if (!tasks || !completions || !inputs || !outputs) {
        std::fprintf(stderr, "keel worker: %s: the pool slot's rings or arenas are damaged\n", control_.name);
        return worker_exit_usage;
      }
      Lane& lane = lanes_[index];
      lane.tasks = std::move(*tasks);
      lane.completions = std::move(*completions);
      lane.inputs = std::move(*inputs);
      lane.outputs = std::move(*outputs);
      output_arena_bytes = std::min(output_arena_bytes,
                                    reinterpret_cast<const shm::ArenaHeader*>(base + where.output_arena)->bytes);
    }
    if (lanes_.empty()) {
      std::fprintf(stderr, "keel worker: %s: the pool slot has no lanes\n", control_.name);
      return worker_exit_usage;
    }
    doorbell_ = reinterpret_cast<shm::Doorbell*>(base + control_.doorbell);
    // An output bigger than half the arena could wait for room forever.
    if (options_.output_bytes_max == 0 || options_.output_bytes_max > output_arena_bytes / 2) {
      std::fprintf(stderr, "keel worker: %s: --output-bytes-max %u must be from 1 to half the output arena (%llu)\n",
                   control_.name, options_.output_bytes_max, (unsigned long long)(output_arena_bytes / 2));
      return worker_exit_usage;
    }
    if (int failed = load_plugin(); failed != 0) return failed;

    held_.resize(options_.in_flight_max);
    taken_.reserve(options_.in_flight_max);
    estimate_ns_.assign(options_.compute_types.size(), 0);
    runner_slots_ = std::make_unique<RunnerSlot[]>(options_.threads);
    for (uint32_t index = options_.in_flight_max; index-- > 0;) free_.push_back(index);
    // TBB caps its worker threads at the PUs the process may use, less one for a main
    // thread that would join: a pool pinned to N PUs would get N - 1 threads, one pinned to
    // one PU a single thread whatever `threads` says. This main thread never joins, so the
    // cap is raised to `threads` workers (the limit counts the main thread too).
    parallelism_ = std::make_unique<oneapi::tbb::global_control>(
        oneapi::tbb::global_control::max_allowed_parallelism, size_t(options_.threads) + 1);
    // No slot reserved for an outside thread: the main thread enqueues (and runs near-free
    // batches itself, outside the arena), never joins.
    arena_ = std::make_unique<oneapi::tbb::task_arena>(int(options_.threads), 0);
    start_runners();
    watchdog_ = std::thread([this] { watch_main_thread(); });
    beat();
    control_.ready_epoch.store(options_.epoch, std::memory_order_release);

    bool stopping = false;
    for (;;) {
      // A newer incarnation owns the slot's rings now (the engine reaps this process
      // before it moves the epoch; this is the backstop): touch them no more, not even to
      // answer, and leave what is held to the scheduler's re-dispatch.
      // _exit: an arena thread may be inside the plugin, and only the process's end takes
      // it back.
      if (superseded()) ::_exit(worker_exit_stopped);
      bool worked = send_completions();
      uint64_t now_ns = shm::monotonic_ns();
      if (now_ns - last_beat_ns_ >= heartbeat_interval_ns) {
        if (owner_gone()) ::_exit(worker_exit_stopped);  // nobody reads the answers
        exit_if_hung(now_ns);
        last_beat_ns_ = now_ns;
        beat();
        stopping = stopping || stop_requested.load(std::memory_order_relaxed);
      }
      if (!stopping && take_tasks()) worked = true;
      if (stopping && free_.size() == held_.size()) break;
      if (!worked) idle();
    }
    // No arena thread may still be inside a task (the plugin, this object or the segment)
    // when they go away.
    stop_runners();
    watchdog_stop_.store(true, std::memory_order_relaxed);
    watchdog_.join();
    arena_.reset();
    instance_.reset();
    return worker_exit_stopped;
  }

 private:
  int load_plugin() {
    Result<std::unique_ptr<PluginLibrary>> library = PluginLibrary::load(options_.plugin_path);
    if (!library) {
      report_failure(control_, options_.epoch, library.error().message, options_.failure_to_stderr);
      return worker_exit_plugin_failed;
    }
    library_ = std::move(*library);
    for (const std::string& type : options_.compute_types) {
      std::optional<uint32_t> index = library_->compute_type_index(type);
      if (!index) {
        report_failure(control_, options_.epoch,
                       options_.plugin_path + ": does not serve compute type " + type + " (it serves " +
                           joined(library_->compute_types()) + ")",
                       options_.failure_to_stderr);
        return worker_exit_plugin_failed;
      }
      plugin_types_.push_back(*index);
    }
    Result<PluginInstance> instance = library_->init(options_.plugin_config);
    if (!instance) {
      report_failure(control_, options_.epoch, instance.error().message, options_.failure_to_stderr);
      return worker_exit_plugin_failed;
    }
    instance_.emplace(std::move(*instance));
    return 0;
  }

  // A task that has run task_hang_ms holds its arena thread for good (a thread cannot be
  // cancelled out of a plugin), and the scheduler gave up on it by then: the process
  // exits, and the engine starts a fresh incarnation, counting a crash (a plugin that
  // keeps hanging is quarantined like one that keeps crashing).
  void exit_if_hung(uint64_t now_ns) {
    for (uint32_t runner = 0; runner < options_.threads; ++runner) exit_if_hung(runner_slots_[runner], now_ns);
  }

  // Ends the process when the slot's task has run task_hang_ms (the main loop checks the
  // runners' slots, the watchdog the main thread's own). Never with task_hang_ms 0.
  void exit_if_hung(const RunnerSlot& slot, uint64_t now_ns) {
    if (options_.task_hang_ms == 0) return;
    uint64_t hang_ns = uint64_t(options_.task_hang_ms) * 1'000'000;
    uint64_t started_ns = slot.started_ns.load(std::memory_order_acquire);
    if (started_ns == 0 || now_ns <= started_ns || now_ns - started_ns < hang_ns) return;
    uint32_t index = slot.task.load(std::memory_order_acquire);  // stored after its slot was filled
    if (index >= held_.size()) return;
    std::fprintf(stderr, "keel worker: %s: a task (id %llu, attempt %u) has run %u ms (task_hang_ms): exiting\n",
                 control_.name, (unsigned long long)held_[index].task.task_id, held_[index].task.attempt,
                 options_.task_hang_ms);
    ::_exit(worker_exit_task_hung);
  }

  // The watchdog thread: see watchdog_interval_ms. It reads only atomics until the main
  // thread has been in one stretch of a batch for a heartbeat interval; the task slot it
  // then names is not written while the main thread is inside that task's plugin call.
  void watch_main_thread() {
    while (!watchdog_stop_.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(watchdog_interval_ms));
      uint64_t started_ns = main_slot_.started_ns.load(std::memory_order_acquire);
      uint64_t now_ns = shm::monotonic_ns();
      if (started_ns == 0 || now_ns <= started_ns || now_ns - started_ns < heartbeat_interval_ns) continue;
      if (superseded() || owner_gone()) ::_exit(worker_exit_stopped);
      if (options_.task_hang_ms == 0) continue;  // no beat: a main thread stuck for good is restarted on silence
      exit_if_hung(main_slot_, now_ns);
      beat();  // the main thread is busy with a task still within task_hang_ms, as a runner may be
    }
  }

  // From the main thread, and from the watchdog while the main thread is in a task.
  void beat() { control_.heartbeat_ns.store(shm::monotonic_ns(), std::memory_order_release); }

  bool superseded() const { return control_.epoch.load(std::memory_order_acquire) != options_.epoch; }

  // The engine that created the segment is gone (the parent-death signal covers a worker
  // started by it; this covers one that was not, as in tests).
  bool owner_gone() const {
    int owner = segment_.header().owner_pid;
    return owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH;
  }

  // Takes task batches while their tasks fit the free slots, a batch per lane in turn (so
  // no scheduler starves another), and queues them in runner batches for the arena. A big
  // burst is queued every `threads` full runner batches, so the threads start on it while
  // this thread copies the rest in.
  bool take_tasks() {
    bool took = false;
    for (bool took_in_round = true; took_in_round && !free_.empty();) {
      took_in_round = false;
      for (uint32_t index = 0; index < lanes_.size() && !free_.empty(); ++index) {
        if (take_batch(index)) took = took_in_round = true;
      }
      if (taken_.size() >= early_queue_tasks()) queue_batches();
    }
    queue_batches();
    return took;
  }

  // Taken tasks from which a burst is queued before the rest is copied in: a full batch
  // for every thread, but never more than half the slots (the taken tasks are bounded by
  // the free slots, and the threads must start before all are in).
  size_t early_queue_tasks() const {
    return std::max<size_t>(1, std::min<size_t>(size_t(options_.threads) * runner_batch_tasks_max,
                                                options_.in_flight_max / 2));
  }

  // One batch off a lane, when there is one and its tasks fit the free slots (else it
  // waits in the ring for tasks to finish: the scheduler's credit bounds what it sends).
  bool take_batch(uint32_t lane_index) {
    Lane& lane = lanes_[lane_index];
    std::span<const std::byte> slot = lane.tasks.peek(1);
    if (slot.empty()) return false;
    TaskBatchMessage batch;
    std::memcpy(&batch, slot.data(), sizeof batch);
    if (batch.epoch == options_.epoch && batch.task_count > free_.size() && batch.task_count <= held_.size())
      return false;
    std::span<const std::byte> block = lane.inputs.read(batch.entries_position, batch.entries_bytes);
    if (batch.epoch != options_.epoch) {  // left by a dead incarnation: dispatched again
      control_.tasks_skipped.fetch_add(batch.task_count, std::memory_order_relaxed);
    } else if (block.empty() || batch.task_count == 0 || batch.task_count > held_.size()) {
      // A scheduler bug or a damaged slot: no task in it can be named, so none is
      // answered; the scheduler's leases run out and send them again.
      std::fprintf(stderr, "keel worker: %s: a damaged task batch (%u tasks, %u bytes): skipped\n", control_.name,
                   batch.task_count, batch.entries_bytes);
      control_.tasks_skipped.fetch_add(batch.task_count, std::memory_order_relaxed);
    } else {
      take_entries(lane_index, batch, block);
    }
    if (!block.empty()) lane.inputs.release(batch.entries_position, batch.entries_bytes);
    lane.tasks.release(1);
    return true;
  }

  void take_entries(uint32_t lane_index, const TaskBatchMessage& batch, std::span<const std::byte> block) {
    Lane& lane = lanes_[lane_index];
    TaskEntries entries(block, batch.task_count);
    std::span<const std::byte> input;
    for (TaskEntry entry; entries.next(entry, input);) {
      uint32_t index = free_.back();
      free_.pop_back();
      HeldTask& held = held_[index];
      held.task = entry;
      held.lane = lane_index;
      held.output_bytes = 0;
      held.run_ns = 0;
      if (input.size() <= held_inline_bytes) {
        if (!input.empty()) std::memcpy(held.input_inline, input.data(), input.size());
      } else {
        held.input_big.assign(input.begin(), input.end());
      }
      if (entry.compute_type >= plugin_types_.size()) {  // a scheduler bug: answered, never run
        held.status = KEEL_STATUS_BAD_INPUT;
        lane.to_send.push_back(index);
        continue;
      }
      held.plugin_type = plugin_types_[entry.compute_type];
      taken_.push_back(index);
    }
    if (entries.malformed())
      std::fprintf(stderr, "keel worker: %s: a damaged task batch: its tasks past the damage were skipped\n",
                   control_.name);
  }

  // Groups the tasks taken since the last call into batches, in the order taken, and
  // queues them for the runners. A batch ends before the task that would take its
  // estimated work past batch_work_ns, at runner_batch_tasks_max tasks, and at
  // taken / min(threads, taken) tasks, so every thread gets a batch of the burst. A task
  // of a type with no estimate yet (none has finished) goes alone: it may be long. A batch
  // of tasks estimated at options_.inline_task_ns_max or less each runs here, on the main
  // thread, once the others are queued.
  void queue_batches() {
    size_t count = taken_.size();
    if (count == 0) return;
    size_t batches_min = std::min<size_t>(options_.threads, count);
    size_t tasks_max = std::min<size_t>(runner_batch_tasks_max, count / batches_min);
    bool queued = false;
    for (size_t first = 0; first < count;) {
      uint64_t work_ns = estimate_ns(taken_[first]);
      size_t end = first + 1;
      while (work_ns != 0 && end < count && end - first < tasks_max) {
        uint64_t next_ns = estimate_ns(taken_[end]);
        if (next_ns == 0 || work_ns + next_ns > batch_work_ns) break;
        work_ns += next_ns;
        ++end;
      }
      for (size_t at = first; at < end; ++at) {
        HeldTask& held = held_[taken_[at]];
        uint64_t estimate = estimate_ns(taken_[at]);
        held.timed_alone = estimate == 0 || estimate >= timed_alone_ns;
        held.next = at + 1 < end ? taken_[at + 1] : no_task;
      }
      if (work_ns != 0 && work_ns <= uint64_t(options_.inline_task_ns_max) * (end - first)) {
        run_here_.push_back(taken_[first]);
        count_run_inline(int64_t(end - first));
      } else {
        to_run_.push(taken_[first]);
        queued = true;
      }
      first = end;
    }
    taken_.clear();
    if (queued) wake_runners();
    for (uint32_t batch : run_here_) run_batch(batch, main_slot_);
    run_here_.clear();
  }

  // The estimated run time of a held task: its compute type's average; 0 when unknown.
  uint64_t estimate_ns(uint32_t index) const { return estimate_ns_[held_[index].task.compute_type]; }

  // Folds a finished task's run time into its compute type's estimate (an exponentially
  // weighted average; at least 1 ns, so that a measured type never reads as unknown).
  void learn_run_time(const HeldTask& held) {
    uint64_t& estimate = estimate_ns_[held.task.compute_type];
    int64_t run_ns = int64_t(std::max<uint64_t>(1, held.run_ns));
    int64_t known = int64_t(estimate);
    estimate = known == 0 ? uint64_t(run_ns)
                          : uint64_t(std::max<int64_t>(1, known + ((run_ns - known) >> estimate_weight_shift)));
  }

  // Runners: `threads` arena jobs, started with the arena and alive until the worker
  // stops, each running queued batches and sleeping on runner_bell_ when none is left.
  // They never return to TBB between bursts: a runner that returned spun in TBB's idle
  // loop (sched_yield, about 30 % of its thread's time under a noop load) before it slept,
  // CPU taken from the engine's tiles on a small host. A TBB enqueue per task would cost
  // more than a short task itself; a wake-up costs one futex call per burst, and none
  // while the runners are busy.
  void start_runners() {
    for (uint32_t runner = 0; runner < options_.threads; ++runner) {
      runners_alive_.fetch_add(1, std::memory_order_relaxed);
      arena_->enqueue([this, runner] {
        await_runners_published();
        run_queued(runner_slots_[runner]);
      });
    }
    runners_published.store(true, std::memory_order_release);
  }

  // A runner job reads its captures only once start_runners has published them. oneTBB
  // hands the job over correctly, but libtbb is not built for ThreadSanitizer, which then
  // sees the captures written by one thread and read by another with nothing between; this
  // release and acquire are what it can see (a few nanoseconds, once per runner).
  static void await_runners_published() {
    while (!runners_published.load(std::memory_order_acquire)) std::this_thread::yield();
  }

  // Wakes the sleeping runners after batches were queued (one fence when none sleeps).
  void wake_runners() { shm::doorbell_ring(&runner_bell_); }

  // Asks the runners to leave once the queue is empty, and waits until they have.
  void stop_runners() {
    runners_stop_.store(true, std::memory_order_seq_cst);
    shm::doorbell_wake(&runner_bell_);
    while (runners_alive_.load(std::memory_order_acquire) != 0) {
      shm::doorbell_wake(&runner_bell_);
      std::this_thread::yield();
    }
  }

  // One runner: takes batches off the queue and runs them; with none left it announces
  // its sleep, looks once more, and sleeps until a batch is queued (doorbell.h's pattern:
  // queue_batches pushes, then rings). The timeout only bounds a sleep; nothing relies on it.
  void run_queued(RunnerSlot& slot) {
    for (;;) {
      uint32_t first;
      while (to_run_.try_pop(first)) run_batch(first, slot);
      uint32_t sequence = shm::doorbell_prepare_sleep(&runner_bell_);
      if (to_run_.empty() && !runners_stop_.load(std::memory_order_seq_cst))
        shm::doorbell_sleep(&runner_bell_, sequence, runner_sleep_us);
      shm::doorbell_finish_sleep(&runner_bell_);
      if (to_run_.empty() && runners_stop_.load(std::memory_order_seq_cst)) break;
    }
    runners_alive_.fetch_sub(1, std::memory_order_release);  // this runner's last touch of the worker
  }

  // Runs a batch's tasks one after another, then hands them back together: one push onto
  // finished_ and one doorbell ring for the batch (a fence and a load while the main
  // thread is awake; a wake-up when it sleeps). On a runner, or on the main thread for a
  // batch of near-free tasks (slot is then main_slot_).
  //
  // Timing: a task of a type estimated at timed_alone_ns or more (or not estimated yet) is
  // timed alone, one clock read at its end (a task's end is the next one's start); shorter
  // ones are timed in stretches of up to stretch_tasks_max, each task of a stretch taking
  // its share of the stretch's time as its run time. The thread's slot names the running
  // task and when its stretch began, so task_hang_ms still names the task that hangs (a
  // stretch of short tasks is microseconds; a hang is seconds).
  //
  // A batch that overran batch_split_ns hands back what it has run and queues the rest,
  // which another thread may take: a finished task waits for about 20 us of its batch's
  // work, or 40 us plus one task when the estimate was wrong (a type's tasks got slower),
  // never for a whole batch of long tasks.
  void run_batch(uint32_t first, RunnerSlot& slot) {
    const uint64_t batch_start_ns = shm::monotonic_ns();
    uint64_t start_ns = batch_start_ns;  // when the current stretch began
    uint32_t stretch_first = first, stretch_count = 0;
    uint32_t last = no_task;  // the last task run
    const std::span<std::byte> scratch = runner_scratch(options_.output_bytes_max);  // this thread's
    slot.started_ns.store(start_ns, std::memory_order_release);
    for (uint32_t index = first; index != no_task;) {
      if (stretch_count == 0 && last != no_task && start_ns - batch_start_ns >= batch_split_ns) {
        held_[last].next = no_task;
        end_batch(slot);
        if (&slot == &main_slot_) {  // the rest goes to a runner after all
          int64_t handed_on = 0;
          for (uint32_t rest = index; rest != no_task; rest = held_[rest].next) ++handed_on;
          count_run_inline(-handed_on);
        }
        finished_.push(first);
        shm::doorbell_ring(doorbell_);
        to_run_.push(index);
        wake_runners();
        return;
      }
      HeldTask& running = held_[index];
      slot.task.store(index, std::memory_order_release);  // after the slot was filled, for exit_if_hung
      size_t output_bytes = 0;
      running.status = instance_->run(running.plugin_type, running.input(), scratch, &output_bytes);
      // At most output_bytes_max (the instance checks it; an overrun is a status), so it fits.
      running.output_bytes = uint32_t(output_bytes);
      if (running.status != KEEL_STATUS_OK) {
        running.output_bytes = 0;  // a failed task's output is not sent
      } else if (running.output_bytes <= held_inline_bytes) {
        if (running.output_bytes != 0) std::memcpy(running.output_inline, scratch.data(), running.output_bytes);
      } else {
        if (running.output.size() < options_.output_bytes_max) running.output.resize(options_.output_bytes_max);
        std::memcpy(running.output.data(), scratch.data(), running.output_bytes);
      }
      ++stretch_count;
      last = index;
      index = running.next;  // read before the batch is handed back
      if (running.timed_alone || stretch_count == stretch_tasks_max || index == no_task || held_[index].timed_alone) {
        const uint64_t end_ns = shm::monotonic_ns();
        const uint64_t share_ns = (end_ns - start_ns) / stretch_count;
        uint32_t timed = stretch_first;
        for (uint32_t left = stretch_count; left > 0; --left, timed = held_[timed].next) held_[timed].run_ns = share_ns;
        stretch_count = 0;
        stretch_first = index;
        start_ns = end_ns;
        slot.started_ns.store(start_ns, std::memory_order_release);
      }
    }
    end_batch(slot);
    finished_.push(first);
    shm::doorbell_ring(doorbell_);
  }

  // The thread running a batch is done with it: its slot names no task.
  static void end_batch(RunnerSlot& slot) {
    slot.started_ns.store(0, std::memory_order_relaxed);
    slot.task.store(no_task, std::memory_order_relaxed);
  }

  // tasks_run_inline counts a batch's tasks when the main thread begins it, less those it
  // hands on to a runner when the batch overruns (main thread only).
  void count_run_inline(int64_t tasks) {
    control_.tasks_run_inline.store(control_.tasks_run_inline.load(std::memory_order_relaxed) + uint64_t(tasks),
                                    std::memory_order_relaxed);
  }

  // Writes finished tasks into the completion ring, in the order they finished (batch by
  // batch, each in its running order); stops at a full ring or a full output arena
  // (backpressure) and goes on next round. Learns each type's run time on the way.
  bool send_completions() {
    uint32_t first;
    while (finished_.try_pop(first)) {
      for (uint32_t index = first; index != no_task; index = held_[index].next) {
        learn_run_time(held_[index]);
        lanes_[held_[index].lane].to_send.push_back(index);
      }
    }
    bool sent = false;
    for (Lane& lane : lanes_) sent = send_completions(lane) || sent;
    return sent;
  }

  // Writes the lane's finished tasks back in completion batches (pool_table.h), each up to
  // batch_tasks_max entries and batch_bytes_max bytes (one bigger entry goes alone), one
  // arena block per batch, then publishes them together: one release store and one
  // doorbell ring. Stops at a full ring or a full output arena (backpressure) and goes on
  // next round.
  bool send_completions(Lane& lane) {
    bool sent = false;
    size_t pending = 0;  // written, not yet published
    uint64_t completed = 0;
    std::span<std::byte> claimed;
    while (!lane.to_send.empty()) {
      size_t count = 0, bytes = 0;
      for (uint32_t index : lane.to_send) {
        size_t entry_bytes = completion_entry_bytes(output_of(held_[index]).size());
        if (count == batch_tasks_max || (count > 0 && bytes + entry_bytes > batch_bytes_max)) break;
        bytes += entry_bytes;
        ++count;
      }
      if (claimed.size() < (pending + 1) * sizeof(CompletionBatchMessage)) {
        lane.completions.publish(pending);
        pending = 0;
        // No more than the producer knows are free (asking for more would count a full
        // event), nor than the batches there are.
        claimed = lane.completions.claim(std::max<size_t>(
            1, std::min<size_t>((lane.to_send.size() + batch_tasks_max - 1) / batch_tasks_max,
                                lane.completions.free_slots_cached())));
        if (claimed.empty()) break;
      }
      std::optional<shm::ArenaBlock> block = lane.outputs.reserve(bytes);
      if (!block) break;  // the slot stays claimed, unpublished: taken again next round
      size_t offset = 0;
      for (size_t entry = 0; entry < count; ++entry) {
        HeldTask& held = held_[lane.to_send.front()];
        std::span<const std::byte> output = output_of(held);
        CompletionEntry completion{.task_id = held.task.task_id,
                                   .attempt = held.task.attempt,
                                   .status = held.status,
                                   .output_bytes = uint32_t(output.size()),
                                   .reserved = 0,
                                   .run_ns = held.run_ns};
        offset += write_completion_entry(block->bytes.subspan(offset), completion, output);
        free_.push_back(lane.to_send.front());
        lane.to_send.pop_front();
      }
      CompletionBatchMessage message{.epoch = options_.epoch,
                                     .entries_position = block->position,
                                     .entries_bytes = uint32_t(bytes),
                                     .task_count = uint32_t(count),
                                     .reserved = {}};
      std::memcpy(claimed.data() + pending * sizeof message, &message, sizeof message);
      ++pending;
      completed += count;
      sent = true;
    }
    lane.completions.publish(pending);
    if (completed != 0) control_.tasks_completed.fetch_add(completed, std::memory_order_relaxed);
    return sent;
  }

  static std::span<const std::byte> output_of(const HeldTask& held) {
    return held.status == KEEL_STATUS_OK ? held.output_written() : std::span<const std::byte>();
  }

  // Sleeps on the slot's doorbell until a task arrives, a task finishes, or a heartbeat
  // is due. (Announce, re-check, sleep: see shm/doorbell.h.)
  void idle() {
    uint32_t sequence = shm::doorbell_prepare_sleep(doorbell_);
    bool tasks_waiting = false;
    for (Lane& lane : lanes_) tasks_waiting = tasks_waiting || lane.tasks.has_messages();
    if (finished_.empty() && (free_.empty() || !tasks_waiting)) {
      shm::doorbell_sleep(doorbell_, sequence, idle_sleep_us);
    }
    shm::doorbell_finish_sleep(doorbell_);
  }

  const WorkerOptions& options_;
  shm::Segment& segment_;
  PoolControl& control_;
  std::vector<Lane> lanes_;
  shm::Doorbell* doorbell_ = nullptr;
  std::unique_ptr<PluginLibrary> library_;
  std::optional<PluginInstance> instance_;  // destroyed before library_
  std::vector<uint32_t> plugin_types_;      // config's compute type index -> plugin's
  std::unique_ptr<oneapi::tbb::global_control> parallelism_;  // outlives arena_
  std::unique_ptr<oneapi::tbb::task_arena> arena_;
  std::vector<HeldTask> held_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> taken_;  // taken, not yet in a batch (reserved: in_flight_max)
  // Config's compute type index -> estimated run time of one task (ns, weighted average of
  // the last few dozen); 0 until one has finished. Main thread only.
  std::vector<uint64_t> estimate_ns_;
  // Batches, each named by its first task slot (HeldTask::next links the rest).
  oneapi::tbb::concurrent_queue<uint32_t> finished_;  // run, back to the main thread
  oneapi::tbb::concurrent_queue<uint32_t> to_run_;    // waiting for a runner
  shm::Doorbell runner_bell_;                // runners sleep on it; rung when batches are queued
  std::atomic<bool> runners_stop_{false};    // the worker stops: runners leave once the queue is empty
  std::atomic<uint32_t> runners_alive_{0};   // runners enqueued and not yet returned
  std::unique_ptr<RunnerSlot[]> runner_slots_;  // `threads` of them
  RunnerSlot main_slot_;                 // the main thread's, while it runs a batch itself
  std::vector<uint32_t> run_here_;       // batches queue_batches runs on the main thread
  std::thread watchdog_;                 // watch_main_thread
  std::atomic<bool> watchdog_stop_{false};
  uint64_t last_beat_ns_ = 0;
};

}  // namespace

int run_worker(const WorkerOptions& options) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the engine that started this process died: stop
  ::signal(SIGTERM, request_stop);
  ::signal(SIGINT, request_stop);
  if (options.threads == 0 || options.in_flight_max == 0 || options.compute_types.empty()) {
    std::fprintf(stderr, "keel worker: --threads, --in-flight-max and --types must not be empty or 0\n");
    return worker_exit_usage;
  }
  Result<shm::Segment> segment = shm::Segment::attach(options.segment_name);
  if (!segment) {
    std::fprintf(stderr, "keel worker: %s\n", segment.error().message.c_str());
    return worker_exit_usage;
  }
  Result<PoolTableView> table = PoolTableView::find(*segment);
  if (!table) {
    std::fprintf(stderr, "keel worker: %s: %s\n", options.segment_name.c_str(), table.error().message.c_str());
    return worker_exit_usage;
  }
  if (options.slot >= table->slot_count()) {
    std::fprintf(stderr, "keel worker: %s has %u pool slots, no slot %u\n", options.segment_name.c_str(),
                 table->slot_count(), options.slot);
    return worker_exit_usage;
  }
  PoolControl& control = table->control(options.slot);
  uint64_t slot_epoch = control.epoch.load(std::memory_order_acquire);
  if (slot_epoch != options.epoch) {
    std::fprintf(stderr, "keel worker: %s: slot %u is at epoch %llu, not %llu: superseded\n",
                 options.segment_name.c_str(), options.slot, (unsigned long long)slot_epoch,
                 (unsigned long long)options.epoch);
    return worker_exit_stopped;
  }
  // Before anything can start a thread (the plugin's init, the TBB arena): Linux keeps the
  // memory policy per thread, and a thread inherits it only from the one that creates it.
  if (!options.pu_os_indexes.empty()) {
    if (Result<void> pinned = pin_process(options); !pinned) {
      report_failure(control, options.epoch, pinned.error().message, options.failure_to_stderr);
      return worker_exit_plugin_failed;
    }
  }
  Worker worker(options, *segment, control);
  return worker.run();
}

}  // namespace keel::sched
