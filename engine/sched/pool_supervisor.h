// engine/sched/pool_supervisor.h: the engine's side of the worker-pool processes. It
// starts one `keel worker` per supervised pool slot, watches it, restarts it after a
// crash (with backoff), and gives up on a pool (quarantine) whose plugin cannot start or
// that keeps crashing, so that the scheduler fails that pool's tasks with a reason
// instead of waiting on a process that will never answer.
//
//   PoolSupervisor supervisor({.executable = "/proc/self/exe", .segment_name = name}, table,
//                             {{.slot = 0, .plugin_path = "plugins/keel_hash.so", .compute_types = {"hash"}}});
//   if (Result<void> started = supervisor.start(); !started) return started.error();
//   std::vector<std::string> events;
//   while (running) {                                  // the engine's main thread
//     supervisor.poll(shm::monotonic_ns(), &events);   // every few milliseconds
//     for (const std::string& line : events) log(line);
//     events.clear();
//   }
//   supervisor.stop();                                 // also done by the destructor
//
// Incarnations (pool_table.h). Each start of a worker for a slot is a new incarnation
// with the next epoch, stored in PoolControl::epoch before the process starts (a worker
// started for another epoch stops at once) and its pid in PoolControl::pid after. A
// death is always reaped (waitpid) before its epoch is stored in dead_epoch and before
// the epoch moves again: until then the dead process might still be touching the slot's
// single-producer single-consumer rings.
//
// What happens to an incarnation:
//   - it exits with worker_exit_plugin_failed and its epoch in failed_epoch: its plugin
//     cannot start (or the host refused its pinning), and a restart would fail the same
//     way. Quarantined with the worker's failure line.
//   - it is not ready (ready_epoch) within ready_timeout_ms: killed (SIGKILL), reaped,
//     quarantined ("not ready within N ms"). A worker hung in its plugin's init is not
//     worth restarting either.
//   - it is ready but its heartbeat stays silent for heartbeat_timeout_ms: killed
//     (SIGKILL) and counted as a crash. A stopped or wedged process answers nothing.
//   - it exits with worker_exit_task_hung: a task ran past task_hang_ms. A crash ("a
//     task ran past task_hang_ms, N ms"), so a plugin that keeps hanging is quarantined.
//   - any other death (a signal, any other exit status, worker_exit_stopped while the
//     supervisor is not stopping) is a crash. crashes_max crashes within crash_window_ms
//     quarantine the pool ("crashed N times in M s (last: <how>)"); fewer restart it after
//     a backoff of restart_backoff_ms, doubled per consecutive crash up to
//     restart_backoff_ms_max, and back to restart_backoff_ms once an incarnation had
//     been ready and alive for crash_window_ms.
//
// One thread only (the engine's main thread, which must be the one that called start(),
// since a worker's parent-death signal follows the thread that started it); no locks.
// The worker's stderr is the engine's, so a failing worker's own line lands there too. A
// worker also inherits the calling thread's CPU affinity and memory policy (posix_spawn):
// an unpinned pool started from a pinned thread would share that thread's one PU, so call
// this from a thread that is not pinned, or pin every pool.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/process.h"
#include "engine/sched/pool_table.h"
#include "error/result.h"

namespace keel::sched {

// One pool slot to run a worker in, and the worker's arguments (worker.h).
struct SupervisedPool {
  uint32_t slot = 0;  // in the pool table
  std::string plugin_path;
  std::vector<std::string> compute_types;
  std::vector<std::pair<std::string, std::string>> plugin_config;
  uint32_t threads = 1, in_flight_max = 1024, output_bytes_max = 16384;
  uint32_t task_hang_ms = 0;  // worker.h; 0: never
  std::vector<uint32_t> pu_os_indexes;  // empty: not pinned (the topology is not the host's)
  uint32_t node_os_index = 0;
};

struct SupervisorOptions {
  std::string executable;  // the keel binary ("/proc/self/exe" in the engine)
  std::string segment_name;
  uint32_t restart_backoff_ms = 100;  // the first restart's delay after a crash; doubles per consecutive crash
  uint32_t restart_backoff_ms_max = 5000;
  uint32_t heartbeat_timeout_ms = 1000;  // a ready incarnation silent this long is killed: a crash
  uint32_t ready_timeout_ms = 10000;     // an incarnation not ready this long after its start: quarantined
  uint32_t crashes_max = 5;              // this many crashes within crash_window_ms: quarantined
  uint32_t crash_window_ms = 30000;
};

class PoolSupervisor {
 public:
  // Takes the table's view (its segment must outlive the supervisor) and the pools to run,
  // one per slot. Starts nothing: see start().
  PoolSupervisor(SupervisorOptions options, PoolTableView table, std::vector<SupervisedPool> pools);
  PoolSupervisor(const PoolSupervisor&) = delete;
  PoolSupervisor& operator=(const PoolSupervisor&) = delete;
  ~PoolSupervisor();  // stop()

  // Checks the options and pools (a slot in the table, once each; non-zero limits), then
  // starts every pool's first incarnation, at the slot's epoch + 1. Error naming the pool
  // for bad options or a process that cannot be started; poll() then does nothing, and
  // stop() (or the destructor) takes down the pools already started. Call once.
  Result<void> start();

  // Call every few milliseconds from the thread that called start(), with now_ns from
  // CLOCK_MONOTONIC (shm::monotonic_ns(), the workers' heartbeat clock). Reaps exited
  // incarnations (waitpid WNOHANG), kills silent or never-ready ones, restarts after the
  // backoff, quarantines; never blocks. Appends one line per event worth telling a
  // person ("pool <name>: ...": a death and its planned restart, a restart, a
  // quarantine with its reason) to *events. Does nothing after stop().
  void poll(uint64_t now_ns, std::vector<std::string>* events);

  // Sends SIGTERM to every live incarnation (a worker answers the tasks it holds, then
  // exits), waits up to stop_grace_ms for them, sends SIGKILL to the rest and reaps them
  // all, storing each dead epoch. Nothing is restarted after. Idempotent.
  void stop();

  // Incarnations started after a death, over all pools.
  uint64_t restarts() const { return restarts_; }
  uint32_t quarantined_count() const;
  // True when every pool not quarantined has a live incarnation that is ready.
  bool all_ready() const;

  static constexpr uint32_t stop_grace_ms = 2000;

 private:
  enum class Phase { running, waiting_restart, quarantined, stopped };
  enum class KillReason { none, silent, not_ready };

  struct Pool {
    SupervisedPool config;
    PoolControl* control = nullptr;
    std::string name;                             // "pool <control.name>", the events' prefix
    std::unique_ptr<engine::ChildProcess> child;  // the live incarnation's process, if any
    pid_t pid = -1;                               // kept for events after the child is reaped
    uint64_t epoch = 0;                           // the current (or last) incarnation
    Phase phase = Phase::running;
    uint64_t started_ns = 0;
    bool ready = false;
    KillReason killed = KillReason::none;  // why this supervisor sent SIGKILL, if it did
    uint64_t restart_at_ns = 0;            // when waiting_restart
    uint32_t backoff_ms = 0;               // the delay before the next restart
    std::deque<uint64_t> crashes_ns;       // in the window, crashes_max at most
  };

  Result<void> check() const;
  Result<void> spawn(Pool& pool, uint64_t now_ns);
  std::vector<std::string> worker_arguments(const Pool& pool) const;
  void watch(Pool& pool, uint64_t now_ns, std::vector<std::string>* events);
  void kill_incarnation(Pool& pool, KillReason reason);
  void reaped(Pool& pool, int status, uint64_t now_ns, std::vector<std::string>* events);
  // `what` is the event's text, `how` the death alone, for a quarantine's reason.
  void crashed(Pool& pool, const std::string& what, const std::string& how, uint64_t now_ns,
               std::vector<std::string>* events);
  void restart(Pool& pool, uint64_t now_ns, std::vector<std::string>* events);
  void quarantine(Pool& pool, const std::string& reason, std::vector<std::string>* events);
  void bury(Pool& pool);

  SupervisorOptions options_;
  PoolTableView table_;
  std::vector<Pool> pools_;
  uint64_t restarts_ = 0;
  bool start_called_ = false;
  bool started_ = false;  // start() succeeded
  bool stopped_ = false;
};

}  // namespace keel::sched
