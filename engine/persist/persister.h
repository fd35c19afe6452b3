// engine/persist/persister.h: group commit over many shard logs, from one thread, without
// blocking (io_uring) or, where io_uring is not available, with blocking pwritev.
//
//   std::string note;
//   std::unique_ptr<Persister> persister = Persister::create({}, &note).value();
//   if (!note.empty()) print(note);                  // fell back to psync, and why
//   for (ShardLog* log : logs) persister->add_log(log);
//   for (;;) {                                        // the persist tile's loop
//     ... logs stage records ...
//     if (Result<bool> started = persister->submit(); !started) stop(started.error());
//     if (Result<bool> durable = persister->poll(); !durable) stop(durable.error());
//     else if (*durable) release the receipts up to each log's durable_sequence();
//   }
//
// A commit ("batch", numbered from 1 across all logs, continuing after the largest batch
// found at recovery) takes every log that has staged records: per log, one write of
// everything staged, linked (IOSQE_IO_LINK) to one fdatasync of that file. Up to
// commits_in_flight_max (at most commits_in_flight_limit, 2) batches are in flight at
// once, so the device always has the next write queued while one completes: batch N + 2
// is submitted only once batch N is durable in every log, which recovery relies on (a
// record of batch N + 2 on disk proves batch N completed everywhere). Batches become
// durable in order: a batch whose write and sync ended before its predecessor's waits for
// it (its fdatasync does not cover a write still in flight), so a log's durable sequence
// only ever covers a prefix. A log's part of a batch is durable as soon as its own write
// and fdatasync are, and is reported so at once (its durable_sequence() advances, in the
// log's own batch order): a light log does not wait for a heavy log's megabytes in the
// same batch. durable_batch() still advances only when a batch is durable in every log,
// and the rule for submitting batch N + 2 is unchanged. A log takes part in a batch only when it can
// (ShardLog::can_begin_commit: two of its batches in flight, or a new segment file wanted
// while one is, leave it out until the next).
//
// Estimate (2-core dev machine, DESIGN.md): one fdatasync is ~0.3 ms, so one log does
// ~3,000 commits/s whatever their size; a batch of 64 records of 100 B is 8.4 KB per
// commit, ~25 MB/s and ~200,000 records/s per log, where one pwrite + fdatasync per
// record gives ~3,000 records/s. Logs on the same device share its flushes. A quick check
// on the dev VM (ext4 on virtio, fdatasync ~0.14 ms) gave ~5,500 commits/s = ~350,000
// records/s for one log (io_uring and psync alike: one log has nothing to overlap),
// against ~7,000 records/s with one pwrite + fdatasync per record.
//
// Failures: a short write is resubmitted (the rest and its fdatasync); EINTR and EAGAIN
// are retried, boundedly. Any other write or fdatasync error fails the commit with one
// error naming the file, offset and errno text, and the Persister then refuses every
// further commit: after a failed fsync the page cache's state is unknown ("fsyncgate"), so
// nothing is retried and nothing of that commit is reported durable. Restart and recover.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/persist/commit_step.h"
#include "engine/persist/shard_log.h"
#include "error/result.h"

namespace keel::persist {

enum class Backend { io_uring, psync };
enum class FsyncPolicy { always, none };  // none: for benchmarks; nothing is durable

inline constexpr uint32_t ring_entries_max = 32768;

struct PersisterOptions {
  Backend backend = Backend::io_uring;
  FsyncPolicy fsync = FsyncPolicy::always;
  // io_uring submission entries (2 to ring_entries_max; the kernel rounds up to a power
  // of two). A log takes 2 per commit in flight; with more logs than fit, a commit is submitted in
  // chunks as entries free up.
  uint32_t ring_entries = 256;
  // Batches in flight at once, 1 to commits_in_flight_limit.
  uint32_t commits_in_flight_max = commits_in_flight_limit;
};

// Counters for benchmarks and the monitor; only grow.
struct PersisterCounters {
  uint64_t commits = 0;  // batches made durable
  uint64_t failed_commits = 0;
  uint64_t log_writes = 0;  // parts: one per log per commit
  uint64_t bytes_written = 0;
  uint64_t fdatasyncs = 0;  // that ran (not the ones a short write cancelled)
  uint64_t short_writes_resubmitted = 0;
  uint64_t write_retries = 0;   // writes that came back EINTR / EAGAIN
  uint64_t submit_retries = 0;  // io_uring submit or wait that said EINTR / EAGAIN / EBUSY
  uint64_t submit_calls = 0;    // io_uring_submit calls that sent entries
};

class Persister {
 public:
  // Sets up the backend. When io_uring is wanted but io_uring_queue_init fails (some
  // containers block it), uses psync and puts one line saying so and why in
  // *fallback_note (may be null). Errors: impossible options.
  static Result<std::unique_ptr<Persister>> create(PersisterOptions options, std::string* fallback_note);
  Persister(const Persister&) = delete;
  Persister& operator=(const Persister&) = delete;
  // Waits for the I/O of a commit still in flight (the kernel reads the logs' buffers);
  // the logs must outlive the Persister.
  ~Persister();

  Backend backend() const { return backend_; }

  // Adds a log to every later commit. Call it between commits. Later batches are numbered
  // above the log's last batch.
  void add_log(ShardLog* log);

  // If fewer than commits_in_flight_max commits are in flight and a log has staged records
  // it can commit now: starts the next batch over every such log and returns true.
  // io_uring: queues the writes and syncs and returns. psync: writes and fdatasyncs each
  // log here (blocking); poll() then reports it. Errors: a commit failed before (refused),
  // or starting a segment file failed.
  Result<bool> submit();

  // Reaps completions and resubmits what needs it. Without `wait` it never blocks (but
  // after a failure, until the kernel is done with the buffers) and returns true when a
  // log's durable_sequence() advanced: its part of a commit (and of every earlier commit
  // of that log) is durable. With `wait` it blocks until a commit is durable in every log
  // and returns true (logs' sequences advance on the way). durable_batch() is the newest
  // commit durable in every log. Returns the commit's Error if a write or fdatasync
  // failed: the batches it names are not durable in the failed log, nor reported durable
  // in any log whose part had not ended by then (parts reported before are durable: their
  // own fdatasync succeeded).
  Result<bool> poll(bool wait = false);

  // True while any commit is in flight.
  bool in_flight() const { return active_commits_ > 0; }
  uint32_t commits_in_flight() const { return active_commits_; }
  uint32_t commits_in_flight_max() const { return options_.commits_in_flight_max; }
  // True when submit() may start another commit (none failed, and room for one).
  bool can_submit() const { return !failed_ && active_commits_ < options_.commits_in_flight_max; }
  // The last batch this Persister made durable (0 before its first).
  uint64_t durable_batch() const { return durable_batch_; }
  // The number the next batch will get.
  uint64_t next_batch() const { return next_batch_; }
  // Writes and fdatasyncs queued in the ring or in the kernel, not yet completed.
  uint32_t operations_outstanding() const { return operations_outstanding_; }
  const PersisterCounters& counters() const { return counters_; }

 private:
  struct Ring;

  // Where one log's step of a batch is: writing and syncing, done (written and synced), or
  // finished (the log was told: ShardLog::finish_commit).
  enum StepState : uint8_t { step_running, step_done, step_finished };

  // One batch in flight: one step per log that takes part. Reserved for every log, so the
  // steps (whose iovecs the kernel reads) never move while it is in flight.
  struct Commit {
    std::vector<CommitStep> steps;
    std::vector<ShardLog*> logs;
    std::vector<uint8_t> operations;  // per step: its operations not yet completed
    std::vector<uint8_t> step_states;  // per step: StepState
    std::vector<uint32_t> to_reissue;
    uint32_t steps_issued = 0;  // steps [0, steps_issued) were issued once
    uint32_t steps_done = 0;
    uint64_t batch = 0;
    bool done() const { return steps_done == steps.size(); }
  };

  explicit Persister(const PersisterOptions& options);
  Commit& commit_at(uint32_t age) { return commits_[(oldest_commit_ + age) % commits_in_flight_limit]; }
  Result<void> run_psync(CommitStep& step);
  void queue_ready_steps();
  void queue_step(uint32_t slot, uint32_t index);
  Result<void> flush_submissions();
  void reap_completions();
  void on_completion(uint64_t user_data, int result);
  Result<void> wait_for_completion();
  bool finish_done_steps();
  bool finish_done_commits();
  Error end_failed_commits(const Error& error);
  void drain_kernel();
  Error refusal() const;

  PersisterOptions options_;
  Backend backend_;
  std::unique_ptr<Ring> ring_;
  uint32_t ring_entries_ = 0;
  std::vector<ShardLog*> logs_;

  // The commits in flight, a ring: active_commits_ of them from oldest_commit_ on.
  std::array<Commit, commits_in_flight_limit> commits_;
  uint32_t oldest_commit_ = 0;
  uint32_t active_commits_ = 0;
  uint32_t operations_outstanding_ = 0;  // queued in the ring or in the kernel
  bool failing_ = false;
  Error failing_error_;

  bool failed_ = false;
  Error failure_;
  uint64_t next_batch_ = 1;
  uint64_t durable_batch_ = 0;
  PersisterCounters counters_;
};

}  // namespace keel::persist
