#include "engine/sched/pool_supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "shm/segment.h"

namespace keel::sched {

namespace {

constexpr uint64_t ns_per_ms = 1'000'000;

// Milliseconds from since_ns to now_ns; 0 if now_ns is earlier (a caller's clock read
// before the supervisor's own).
uint64_t elapsed_ms(uint64_t since_ns, uint64_t now_ns) { return now_ns > since_ns ? (now_ns - since_ns) / ns_per_ms : 0; }

// "30 s", "2.5 s", "0.25 s".
std::string seconds_text(uint32_t ms) {
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, ".%03u", ms % 1000);
    std::string digits(fraction);
    while (digits.back() == '0') digits.pop_back();
    text += digits;
  }
  return text + " s";
}

// The worker's failure line (pool_table.h), bounded even if the slot were damaged.
std::string failure_line(const PoolControl& control) {
  return std::string(control.failure, strnlen(control.failure, pool_failure_bytes_max));
}

std::string pu_list(const std::vector<uint32_t>& pu_os_indexes) {
  std::string text;
  for (uint32_t pu : pu_os_indexes) {
    if (!text.empty()) text += ',';
    text += std::to_string(pu);
  }
  return text;
}

}  // namespace

PoolSupervisor::PoolSupervisor(SupervisorOptions options, PoolTableView table, std::vector<SupervisedPool> pools)
    : options_(std::move(options)), table_(table) {
  pools_.reserve(pools.size());
  for (SupervisedPool& config : pools) {
    Pool& pool = pools_.emplace_back();
    pool.config = std::move(config);
    pool.backoff_ms = options_.restart_backoff_ms;
  }
}

PoolSupervisor::~PoolSupervisor() { stop(); }

Result<void> PoolSupervisor::check() const {
  const SupervisorOptions& o = options_;
  if (o.executable.empty() || o.segment_name.empty())
    return make_error("pool supervisor", "the keel executable and the segment name must be given");
  if (o.crashes_max == 0 || o.crash_window_ms == 0 || o.heartbeat_timeout_ms == 0 || o.ready_timeout_ms == 0)
    return make_error("pool supervisor", "crashes_max, crash_window_ms and the timeouts must not be 0");
  if (o.restart_backoff_ms > o.restart_backoff_ms_max)
    return make_error("pool supervisor", "restart_backoff_ms " + std::to_string(o.restart_backoff_ms) +
                                             " is above restart_backoff_ms_max " +
                                             std::to_string(o.restart_backoff_ms_max));
  std::set<uint32_t> slots;
  for (const Pool& pool : pools_) {
    const SupervisedPool& config = pool.config;
    std::string place = "pool slot " + std::to_string(config.slot);
    if (config.slot >= table_.slot_count())
      return make_error(place, "the pool table has " + std::to_string(table_.slot_count()) + " slots");
    if (!slots.insert(config.slot).second) return make_error(place, "supervised twice");
    if (config.compute_types.empty() || config.threads == 0 || config.in_flight_max == 0)
      return make_error(place, "compute types, threads and in_flight_max must not be empty or 0");
  }
  return {};
}

Result<void> PoolSupervisor::start() {
  assert(!start_called_ && "PoolSupervisor::start is called once");
  start_called_ = true;
  if (Result<void> checked = check(); !checked) return checked;
  uint64_t now_ns = shm::monotonic_ns();
  for (Pool& pool : pools_) {
    pool.control = &table_.control(pool.config.slot);
    pool.name = "pool " + std::string(pool.control->name, strnlen(pool.control->name, pool_name_bytes_max));
    if (Result<void> spawned = spawn(pool, now_ns); !spawned) return make_error(pool.name, spawned.error().message);
  }
  started_ = true;  // only now may poll() watch: every pool has its incarnation
  return {};
}

std::vector<std::string> PoolSupervisor::worker_arguments(const Pool& pool) const {
  const SupervisedPool& config = pool.config;
  // "--option=value" for text from the config, so a value starting with '-' is not taken
  // for an option.
  std::vector<std::string> arguments = {"keel", "worker", "--segment=" + options_.segment_name,
                                        "--slot", std::to_string(config.slot),
                                        "--epoch", std::to_string(pool.epoch),
                                        "--plugin=" + config.plugin_path};
  for (const std::string& type : config.compute_types) arguments.push_back("--type=" + type);
  for (const auto& [key, value] : config.plugin_config) arguments.push_back("--config=" + key + "=" + value);
  arguments.insert(arguments.end(), {"--threads", std::to_string(config.threads),
                                     "--in-flight-max", std::to_string(config.in_flight_max),
                                     "--output-bytes-max", std::to_string(config.output_bytes_max),
                                     "--task-hang-ms", std::to_string(config.task_hang_ms), "--supervised"});
  if (!config.pu_os_indexes.empty()) {
    arguments.insert(arguments.end(), {"--pus", pu_list(config.pu_os_indexes),
                                       "--node", std::to_string(config.node_os_index)});
  }
  return arguments;
}

// Starts the slot's next incarnation. The epoch moves before the process exists (the
// worker checks it on start), and only after the previous incarnation was reaped.
Result<void> PoolSupervisor::spawn(Pool& pool, uint64_t now_ns) {
  assert(pool.child == nullptr && "the previous incarnation is reaped before the epoch moves");
  PoolControl& control = *pool.control;
  pool.epoch = control.epoch.load(std::memory_order_acquire) + 1;
  pool.pid = -1;
  pool.started_ns = now_ns;
  pool.ready = false;
  pool.killed = KillReason::none;
  control.epoch.store(pool.epoch, std::memory_order_release);
  auto child = std::make_unique<engine::ChildProcess>();
  Result<void> started = child->start(options_.executable, worker_arguments(pool), "keel worker");
  if (!started) {
    // Nothing to reap: the incarnation is dead as it stands.
    control.dead_epoch.store(pool.epoch, std::memory_order_release);
    pool.phase = Phase::waiting_restart;
    return started;
  }
  pool.pid = child->pid();
  pool.child = std::move(child);
  control.pid.store(pool.pid, std::memory_order_release);
  pool.phase = Phase::running;
  return {};
}

void PoolSupervisor::poll(uint64_t now_ns, std::vector<std::string>* events) {
  assert(events != nullptr);
  if (!started_ || stopped_) return;
  for (Pool& pool : pools_) watch(pool, now_ns, events);
}

void PoolSupervisor::watch(Pool& pool, uint64_t now_ns, std::vector<std::string>* events) {
  if (pool.phase == Phase::waiting_restart) {
    if (now_ns >= pool.restart_at_ns) restart(pool, now_ns, events);
    return;
  }
  if (pool.phase != Phase::running) return;
  int status = 0;
  if (pool.child->exited(status)) {
    reaped(pool, status, now_ns, events);
    return;
  }
  if (pool.killed != KillReason::none) return;  // SIGKILL sent: reaped on a later poll
  const PoolControl& control = *pool.control;
  if (!pool.ready) {
    pool.ready = control.ready_epoch.load(std::memory_order_acquire) == pool.epoch;
    if (!pool.ready && elapsed_ms(pool.started_ns, now_ns) >= options_.ready_timeout_ms)
      kill_incarnation(pool, KillReason::not_ready);
    return;
  }
  // The worker beat before it stored ready_epoch, so a ready worker's heartbeat is real.
  if (elapsed_ms(control.heartbeat_ns.load(std::memory_order_acquire), now_ns) >= options_.heartbeat_timeout_ms)
    kill_incarnation(pool, KillReason::silent);
}

// SIGKILL, never SIGTERM: a worker that is silent or stuck in init would not answer
// SIGTERM either, and the slot must be free before the next incarnation takes its rings.
void PoolSupervisor::kill_incarnation(Pool& pool, KillReason reason) {
  pool.killed = reason;
  if (pool.child->pid() > 0) ::kill(pool.child->pid(), SIGKILL);  // never kill(-1) or a group
}

// The incarnation's process is reaped (child->exited returned true).
void PoolSupervisor::reaped(Pool& pool, int status, uint64_t now_ns, std::vector<std::string>* events) {
  bury(pool);
  const PoolControl& control = *pool.control;
  bool plugin_failed = WIFEXITED(status) && WEXITSTATUS(status) == worker_exit_plugin_failed &&
                       control.failed_epoch.load(std::memory_order_acquire) == pool.epoch;
  if (plugin_failed) {
    quarantine(pool, failure_line(control), events);
    return;
  }
  if (pool.killed == KillReason::not_ready) {
    quarantine(pool, "not ready within " + std::to_string(options_.ready_timeout_ms) + " ms", events);
    return;
  }
  std::string how = engine::describe_exit(status);
  if (pool.killed == KillReason::silent && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
    how = "no heartbeat for " + std::to_string(options_.heartbeat_timeout_ms) + " ms, killed";
  if (WIFEXITED(status) && WEXITSTATUS(status) == worker_exit_task_hung)
    how = "a task ran past task_hang_ms, " + std::to_string(pool.config.task_hang_ms) + " ms";
  crashed(pool, "incarnation " + std::to_string(pool.epoch) + " (pid " + std::to_string(pool.pid) + ") died (" + how + ")",
          how, now_ns, events);
}

void PoolSupervisor::crashed(Pool& pool, const std::string& what, const std::string& how, uint64_t now_ns,
                             std::vector<std::string>* events) {
  // A crash after a long healthy run is not part of a crash loop: the backoff starts over
  // (and the window holds no earlier crash by then).
  if (pool.ready && elapsed_ms(pool.started_ns, now_ns) >= options_.crash_window_ms)
    pool.backoff_ms = options_.restart_backoff_ms;
  while (!pool.crashes_ns.empty() && elapsed_ms(pool.crashes_ns.front(), now_ns) >= options_.crash_window_ms)
    pool.crashes_ns.pop_front();
  pool.crashes_ns.push_back(now_ns);
  if (pool.crashes_ns.size() >= options_.crashes_max) {
    events->push_back(pool.name + ": " + what);
    quarantine(pool,
               "crashed " + std::to_string(pool.crashes_ns.size()) + " times in " +
                   seconds_text(options_.crash_window_ms) + " (last: " + how + ")",
               events);
    return;
  }
  uint32_t delay_ms = pool.backoff_ms;
  pool.backoff_ms = uint32_t(std::min<uint64_t>(uint64_t(delay_ms) * 2, options_.restart_backoff_ms_max));
  pool.phase = Phase::waiting_restart;
  pool.restart_at_ns = now_ns + delay_ms * ns_per_ms;
  events->push_back(pool.name + ": " + what + "; restarting in " + std::to_string(delay_ms) + " ms");
}

void PoolSupervisor::restart(Pool& pool, uint64_t now_ns, std::vector<std::string>* events) {
  Result<void> spawned = spawn(pool, now_ns);
  if (!spawned) {
    crashed(pool, "incarnation " + std::to_string(pool.epoch) + " could not start (" + spawned.error().message + ")",
            spawned.error().message, now_ns, events);
    return;
  }
  ++restarts_;
  pool.control->restarts.fetch_add(1, std::memory_order_release);
  events->push_back(pool.name + ": restarted as incarnation " + std::to_string(pool.epoch) + " (pid " +
                    std::to_string(pool.pid) + ")");
}

void PoolSupervisor::quarantine(Pool& pool, const std::string& reason, std::vector<std::string>* events) {
  PoolControl& control = *pool.control;
  size_t bytes = std::min(reason.size(), pool_failure_bytes_max);
  std::memcpy(control.quarantine, reason.data(), bytes);
  control.quarantine[bytes] = '\0';
  control.quarantined.store(1, std::memory_order_release);  // publishes the reason
  pool.phase = Phase::quarantined;
  events->push_back(pool.name + ": quarantined: " + reason);
}

// Reaps the incarnation if it still runs (SIGKILL, waitpid: ChildProcess's destructor),
// then tells the scheduler it is dead. In that order: once dead_epoch says so, the
// scheduler dispatches the incarnation's tasks again and the rings get a new consumer.
void PoolSupervisor::bury(Pool& pool) {
  pool.child.reset();
  pool.control->dead_epoch.store(pool.epoch, std::memory_order_release);
}

void PoolSupervisor::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (Pool& pool : pools_) {
    if (pool.child && pool.child->pid() > 0) ::kill(pool.child->pid(), SIGTERM);
  }
  // A worker answers the tasks it holds before it exits; the grace bounds that.
  uint64_t deadline_ns = shm::monotonic_ns() + uint64_t(stop_grace_ms) * ns_per_ms;
  for (;;) {
    bool live = false;
    for (Pool& pool : pools_) {
      int status = 0;
      if (!pool.child) continue;
      if (pool.child->exited(status)) {
        bury(pool);
      } else {
        live = true;
      }
    }
    if (!live || shm::monotonic_ns() >= deadline_ns) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (Pool& pool : pools_) {
    if (pool.child) bury(pool);  // SIGKILL and reap
    if (pool.phase != Phase::quarantined) pool.phase = Phase::stopped;
  }
}

uint32_t PoolSupervisor::quarantined_count() const {
  return uint32_t(std::count_if(pools_.begin(), pools_.end(),
                                [](const Pool& pool) { return pool.phase == Phase::quarantined; }));
}

bool PoolSupervisor::all_ready() const {
  for (const Pool& pool : pools_) {
    if (pool.phase == Phase::quarantined) continue;
    if (pool.phase != Phase::running || pool.child == nullptr || pool.killed != KillReason::none) return false;
    if (pool.control->ready_epoch.load(std::memory_order_acquire) != pool.epoch) return false;
  }
  return true;
}

}  // namespace keel::sched
