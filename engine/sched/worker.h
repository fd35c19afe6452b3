// engine/sched/worker.h: a worker-pool process (`keel worker`). It attaches the engine's
// segment, takes over its pool slot (pool_table.h) for one epoch, loads the plugin, and
// runs tasks from the slot's task rings (one lane per scheduler tile) on a oneTBB arena of
// `threads` threads, returning each result through the completion ring of the lane it
// came from.
//
//   WorkerOptions options{.segment_name = "keel-default", .slot = 0, .epoch = 7,
//                         .plugin_path = "build/plugins/keel_hash.so", .compute_types = {"hash"},
//                         .threads = 4};
//   return run_worker(options);   // the process's exit code (pool_table.h)
//
// The main thread is the only one touching the rings and arenas (they are single-producer
// single-consumer): tasks arrive in batches (pool_table.h: one ring message naming an
// arena block of entries), and it copies each entry and its input out of the segment into
// one of in_flight_max task slots (taking a batch only when all of it fits), hands the
// slots to the arena in runner batches, and writes the completions the arena's threads
// hand back in completion batches. A plugin writes its output into its thread's own buffer
// of output_bytes_max; the thread copies it into the task's slot (into the slot itself
// when it is small). So a plugin never sees shared memory, a slow task never
// blocks the ring, and memory is bounded: in_flight_max x (input + output_bytes_max) at
// most, plus a buffer per thread. A batch holds about 20 us of work by the compute type's
// measured average run time (at most 512 tasks; a type not yet measured goes one task at a
// time), and a burst makes at least `threads` batches: the per-hand-off costs (queue
// operations, a doorbell ring, a thread's wake-up) are paid per batch, not per noop task,
// and long tasks still spread over the threads. The arena runs `threads` long-lived
// runner jobs that sleep on a doorbell of their own between bursts, rather than jobs
// enqueued per burst: a job that returned left its thread spinning in TBB's idle loop.
// A batch of tasks measured at 500 ns or less each (inline_task_ns_max) is not handed
// over at all: the main thread runs it itself (the hand-off, a task slot's cache lines
// crossing cores and back, cost more than such a task), and a watchdog thread covers the
// main loop's duties while it does (superseded, engine gone, task_hang_ms, the heartbeat
// for a task still within it).
// When every slot is busy or the completion ring is full, the worker stops taking tasks
// (backpressure on the scheduler), and nothing is dropped.
//
// It stops on SIGTERM/SIGINT after answering the tasks it holds (the engine's stop grace
// bounds that, and so does task_hang_ms). It exits at once, answering nothing more, when
// the engine that owns the segment is gone (the parent-death signal, and a check of the
// segment owner's pid: nobody would read the answers), and when its slot's epoch moves
// past its own: a newer incarnation owns the rings then. The engine must reap an
// incarnation (SIGKILL, waitpid) before it moves the epoch, since the rings take one
// producer and one consumer; the check here is the backstop.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace keel::sched {

struct WorkerOptions {
  std::string segment_name;
  uint32_t slot = 0;
  uint64_t epoch = 0;
  std::string plugin_path;
  // The [[pool]]'s compute types, in config order: TaskEntry::compute_type indexes this.
  std::vector<std::string> compute_types;
  std::vector<std::pair<std::string, std::string>> plugin_config;  // flattened [pool.config]
  uint32_t threads = 1;
  uint32_t in_flight_max = 1024;
  uint32_t output_bytes_max = 16384;
  // A task still running this long after it started is hung: the plugin holds one of the
  // arena's threads and nothing can take it back, so the process exits
  // (worker_exit_task_hung) and the engine restarts it, counting a crash. 0: never. The
  // engine passes the pool's timeout_ms (the attempt's lease: its answer is stale after
  // it) plus heartbeat_timeout_ms.
  uint32_t task_hang_ms = 0;
  // A batch of tasks whose types are measured at this or less each runs on the main
  // thread, not on a runner (the hand-off costs more than such a task). 0: every batch goes
  // to a runner. The engine leaves it at 500; tests set it to pin down either path.
  uint32_t inline_task_ns_max = 500;
  // False when the engine's supervisor started the worker (--supervised): the engine
  // prints the failure line itself, once, with the pool's name; the worker only writes
  // it into the slot.
  bool failure_to_stderr = true;
  // When not empty, the whole process is pinned to these PUs and its memory bound to
  // node_os_index (numa/binding.h) before any thread starts. Empty: not pinned.
  std::vector<uint32_t> pu_os_indexes;
  uint32_t node_os_index = 0;
};

// Runs the worker until it stops; returns the exit code (worker_exit_*). A plugin that
// cannot be loaded or initialised, or does not serve a configured compute type, and a
// pinning the host refuses, are reported in the slot's failure line (and on stderr) and
// give worker_exit_plugin_failed: the engine quarantines the pool rather than run it
// unpinned or restart it into the same failure.
int run_worker(const WorkerOptions& options);

}  // namespace keel::sched
