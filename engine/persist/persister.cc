#include "engine/persist/persister.h"

#include <liburing.h>
#include <sched.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>

#include "engine/persist/durable_io.h"

namespace keel::persist {

struct Persister::Ring {
  io_uring ring{};
  bool ready = false;
  ~Ring() {
    if (ready) io_uring_queue_exit(&ring);
  }
};

namespace {

// An operation's user_data: the commit's slot, the step's index, and whether it is the
// step's sync.
constexpr uint64_t operation_data(uint32_t slot, uint32_t step_index, bool is_sync) {
  return (uint64_t(slot) << 40) | (uint64_t(step_index) << 1) | (is_sync ? 1 : 0);
}

bool is_transient(int error_number) {
  return error_number == EINTR || error_number == EAGAIN || error_number == EBUSY;
}

}  // namespace

Persister::Persister(const PersisterOptions& options) : options_(options), backend_(options.backend) {}

Persister::~Persister() {
  if (active_commits_ > 0 && ring_ != nullptr) drain_kernel();
}

Result<std::unique_ptr<Persister>> Persister::create(PersisterOptions options, std::string* fallback_note) {
  if (fallback_note != nullptr) fallback_note->clear();
  if (options.ring_entries < 2 || options.ring_entries > ring_entries_max) {
    return make_error("persist", "ring_entries must be from 2 to " + std::to_string(ring_entries_max) +
                                     ", got " + std::to_string(options.ring_entries));
  }
  if (options.commits_in_flight_max < 1 || options.commits_in_flight_max > commits_in_flight_limit) {
    return make_error("persist", "commits_in_flight_max must be from 1 to " + std::to_string(commits_in_flight_limit) +
                                     ", got " + std::to_string(options.commits_in_flight_max));
  }
  std::unique_ptr<Persister> persister(new Persister(options));
  if (options.backend != Backend::io_uring) return persister;
  auto ring = std::make_unique<Ring>();
  int result = io_uring_queue_init(options.ring_entries, &ring->ring, 0);
  if (result < 0) {
    persister->backend_ = Backend::psync;
    if (fallback_note != nullptr) {
      *fallback_note = "persist: io_uring is not available (io_uring_queue_init: " + errno_text(-result) +
                       "); using psync instead: one blocking pwritev + fdatasync per log per commit";
    }
    return persister;
  }
  ring->ready = true;
  persister->ring_entries_ = ring->ring.sq.ring_entries;
  persister->ring_ = std::move(ring);
  return persister;
}

void Persister::add_log(ShardLog* log) {
  assert(log != nullptr && log->persister_ == nullptr && active_commits_ == 0);
  log->persister_ = this;
  logs_.push_back(log);
  // Batch numbers only grow across restarts: recovery tells batches apart by number.
  next_batch_ = std::max(next_batch_, log->last_batch() + 1);
  for (Commit& commit : commits_) {
    commit.steps.reserve(logs_.size());
    commit.logs.reserve(logs_.size());
    commit.operations.reserve(logs_.size());
    commit.step_states.reserve(logs_.size());
    commit.to_reissue.reserve(logs_.size());
  }
}

Error Persister::refusal() const {
  return make_error("persist", "no further commits after a failed one: " + failure_.message);
}

Result<bool> Persister::submit() {
  if (failed_) return refusal();
  if (active_commits_ >= options_.commits_in_flight_max) return false;
  const uint32_t slot = (oldest_commit_ + active_commits_) % commits_in_flight_limit;
  Commit& commit = commits_[slot];
  commit.steps.clear();
  commit.logs.clear();
  commit.operations.clear();
  commit.step_states.clear();
  commit.to_reissue.clear();
  commit.steps_issued = commit.steps_done = 0;
  for (ShardLog* log : logs_) {
    if (!log->can_begin_commit()) continue;
    Result<CommitPart> part = log->begin_commit(next_batch_);
    if (!part) {
      // Logs before this one already hold the batch: none of it may be written now, and
      // a batch still in flight is waited out (the kernel reads its buffers).
      commit.steps.clear();
      if (ring_ != nullptr && active_commits_ > 0) drain_kernel();
      failed_ = true;
      failure_ = part.error();
      counters_.failed_commits += 1 + active_commits_;
      active_commits_ = 0;
      return part.error();
    }
    commit.steps.emplace_back(*part, options_.fsync == FsyncPolicy::always);
    commit.logs.push_back(log);
    commit.operations.push_back(0);
    commit.step_states.push_back(step_running);
  }
  if (commit.steps.empty()) return false;
  commit.batch = next_batch_++;
  active_commits_ += 1;
  counters_.log_writes += commit.steps.size();
  if (backend_ == Backend::psync) {
    for (size_t index = 0; index < commit.steps.size(); ++index) {
      if (auto ran = run_psync(commit.steps[index]); !ran) return end_failed_commits(ran.error());
      commit.step_states[index] = step_done;
      commit.steps_done += 1;
    }
    return true;
  }
  queue_ready_steps();
  if (auto flushed = flush_submissions(); !flushed) {
    drain_kernel();
    return end_failed_commits(flushed.error());
  }
  return true;
}

// psync: the step's writes and sync, here and now, with io_uring's link semantics (the
// sync runs only after the whole write).
Result<void> Persister::run_psync(CommitStep& step) {
  int fd = step.part().fd;
  auto sync_file = [&] {
    counters_.fdatasyncs += 1;
    return ::fdatasync(fd) == 0 ? 0 : -errno;
  };
  for (;;) {
    StepAction action = step.next();
    switch (action) {
      case StepAction::write_and_sync:
      case StepAction::write: {
        ssize_t wrote = ::pwritev(fd, step.write_iovec(), 1, off_t(step.write_offset()));
        int64_t result = wrote < 0 ? -int64_t(errno) : int64_t(wrote);
        if (result > 0) counters_.bytes_written += uint64_t(result);
        step.on_write(result);
        if (action == StepAction::write_and_sync)
          step.on_sync(step.write_complete() ? sync_file() : -ECANCELED);
        break;
      }
      case StepAction::sync:
        step.on_sync(sync_file());
        break;
      case StepAction::done:
        return {};
      case StepAction::failed:
        return step.error();
    }
  }
}

Result<bool> Persister::poll(bool wait) {
  if (failed_) return refusal();
  if (active_commits_ == 0) return false;
  if (backend_ == Backend::psync) return finish_done_commits();
  for (;;) {
    reap_completions();
    queue_ready_steps();
    if (auto flushed = flush_submissions(); !flushed && !failing_) {
      failing_ = true;
      failing_error_ = flushed.error();
    }
    if (failing_) {
      drain_kernel();  // blocks, even without `wait`: the kernel may still read the buffers
      return end_failed_commits(failing_error_);
    }
    bool advanced = finish_done_steps();
    if (finish_done_commits() || (advanced && !wait)) return true;
    if (!wait) return false;
    if (auto waited = wait_for_completion(); !waited) {
      failing_ = true;
      failing_error_ = waited.error();
    }
  }
}

// Queues the operations of steps that need some, while the ring has room for a pair,
// oldest commit first: first steps to resubmit (after a short write), then steps not yet
// started (chunks).
void Persister::queue_ready_steps() {
  if (failing_) return;
  auto room_for_pair = [&] { return ring_entries_ - operations_outstanding_ >= 2; };
  for (uint32_t age = 0; age < active_commits_; ++age) {
    const uint32_t slot = (oldest_commit_ + age) % commits_in_flight_limit;
    Commit& commit = commits_[slot];
    while (!commit.to_reissue.empty() && room_for_pair()) {
      uint32_t index = commit.to_reissue.back();
      commit.to_reissue.pop_back();
      queue_step(slot, index);
    }
    while (commit.steps_issued < commit.steps.size() && room_for_pair()) queue_step(slot, commit.steps_issued++);
  }
}

// Queues what the step needs next: its write linked to its fdatasync, or one of the two.
void Persister::queue_step(uint32_t slot, uint32_t index) {
  Commit& commit = commits_[slot];
  CommitStep& step = commit.steps[index];
  StepAction action = step.next();
  int fd = step.part().fd;
  if (action == StepAction::write_and_sync || action == StepAction::write) {
    io_uring_sqe* write = io_uring_get_sqe(&ring_->ring);
    assert(write != nullptr);
    io_uring_prep_writev(write, fd, step.write_iovec(), 1, step.write_offset());
    io_uring_sqe_set_data64(write, operation_data(slot, index, false));
    if (action == StepAction::write_and_sync) write->flags |= IOSQE_IO_LINK;
    commit.operations[index] += 1;
    operations_outstanding_ += 1;
  }
  if (action == StepAction::write_and_sync || action == StepAction::sync) {
    io_uring_sqe* sync = io_uring_get_sqe(&ring_->ring);
    assert(sync != nullptr);
    io_uring_prep_fsync(sync, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sync, operation_data(slot, index, true));
    commit.operations[index] += 1;
    operations_outstanding_ += 1;
  }
}

// Hands queued entries to the kernel. EINTR, EAGAIN and EBUSY (completion queue full)
// leave them queued for the next try.
Result<void> Persister::flush_submissions() {
  while (io_uring_sq_ready(&ring_->ring) > 0) {
    int result = io_uring_submit(&ring_->ring);
    if (result > 0) {
      counters_.submit_calls += 1;
      continue;
    }
    if (result == 0 || is_transient(-result)) {
      counters_.submit_retries += 1;
      return {};
    }
    return make_error("persist", "io_uring_submit failed: " + errno_text(-result));
  }
  return {};
}

void Persister::reap_completions() {
  unsigned head;
  unsigned count = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_->ring, head, cqe) {
    on_completion(cqe->user_data, cqe->res);
    count += 1;
  }
  io_uring_cq_advance(&ring_->ring, count);
}

void Persister::on_completion(uint64_t user_data, int result) {
  uint32_t slot = uint32_t(user_data >> 40);
  uint32_t index = uint32_t((user_data & ((uint64_t(1) << 40) - 1)) >> 1);
  bool is_sync = (user_data & 1) != 0;
  assert(slot < commits_in_flight_limit);
  Commit& commit = commits_[slot];
  assert(index < commit.steps.size() && commit.operations[index] > 0);
  CommitStep& step = commit.steps[index];
  if (is_sync) {
    if (result != -ECANCELED) counters_.fdatasyncs += 1;
    step.on_sync(result);
  } else {
    if (result > 0) counters_.bytes_written += uint64_t(result);
    step.on_write(result);
  }
  commit.operations[index] -= 1;
  operations_outstanding_ -= 1;
  if (commit.operations[index] > 0) return;  // its linked sync is still to come
  switch (step.next()) {
    case StepAction::done:
      commit.step_states[index] = step_done;
      commit.steps_done += 1;
      break;
    case StepAction::failed:
      if (!failing_) {
        failing_ = true;
        failing_error_ = step.error();
      }
      break;
    default:
      commit.to_reissue.push_back(index);
      break;
  }
}

// Blocks until a completion arrives (or, when everything is still queued after a refused
// submit, yields so the next loop tries again).
Result<void> Persister::wait_for_completion() {
  uint32_t in_kernel = operations_outstanding_ - io_uring_sq_ready(&ring_->ring);
  if (in_kernel == 0) {
    sched_yield();
    return {};
  }
  io_uring_cqe* cqe = nullptr;
  int result = io_uring_wait_cqe(&ring_->ring, &cqe);
  if (result == 0) return {};
  if (is_transient(-result)) {
    counters_.submit_retries += 1;
    return {};
  }
  return make_error("persist", "io_uring_wait_cqe failed: " + errno_text(-result));
}

// Waits out every operation the kernel holds; entries still queued in the ring are
// dropped (nothing submits them any more).
void Persister::drain_kernel() {
  failing_ = true;
  operations_outstanding_ -= io_uring_sq_ready(&ring_->ring);
  while (operations_outstanding_ > 0) {
    reap_completions();
    if (operations_outstanding_ == 0) break;
    io_uring_cqe* cqe = nullptr;
    int result = io_uring_wait_cqe(&ring_->ring, &cqe);
    if (result < 0 && !is_transient(-result)) break;  // nothing more can be learnt
  }
}

// Tells each log whose step is done, oldest commit first, unless an older commit of the
// same log is still in flight (the log finishes its batches in order: a newer fdatasync
// does not cover an older write still in flight). A log thus never waits for another
// log's step, only for its own earlier ones. Returns true when any log was told.
bool Persister::finish_done_steps() {
  bool finished = false;
  for (uint32_t age = 0; age < active_commits_; ++age) {
    Commit& commit = commit_at(age);
    for (size_t index = 0; index < commit.steps.size(); ++index) {
      ShardLog* log = commit.logs[index];
      if (commit.step_states[index] != step_done || log->oldest_batch_in_flight() != commit.batch) continue;
      log->finish_commit();
      commit.step_states[index] = step_finished;
      finished = true;
    }
  }
  return finished;
}

// Makes the commits durable whose steps all ended, oldest first, stopping at the first
// that has not (a later one waits for it). True if any became durable.
bool Persister::finish_done_commits() {
  bool finished = false;
  while (active_commits_ > 0 && commits_[oldest_commit_].done()) {
    Commit& commit = commits_[oldest_commit_];
    // Every step is done and the older commits are finished: a log not told yet (psync)
    // is told now, in order.
    for (size_t index = 0; index < commit.steps.size(); ++index) {
      if (commit.step_states[index] == step_finished) continue;
      assert(commit.logs[index]->oldest_batch_in_flight() == commit.batch);
      commit.logs[index]->finish_commit();
      commit.step_states[index] = step_finished;
    }
    for (const CommitStep& step : commit.steps) {
      counters_.short_writes_resubmitted += step.short_writes();
      counters_.write_retries += step.retries();
    }
    durable_batch_ = commit.batch;
    counters_.commits += 1;
    oldest_commit_ = (oldest_commit_ + 1) % commits_in_flight_limit;
    active_commits_ -= 1;
    finished = true;
  }
  return finished;
}

// Every commit in flight fails with the first one's error: none of them is durable in every
// log (a log told of its part before, by finish_done_steps, has that part durable).
Error Persister::end_failed_commits(const Error& error) {
  uint64_t first_batch = commit_at(0).batch;
  uint64_t last_batch = commit_at(active_commits_ - 1).batch;
  for (uint32_t age = 0; age < active_commits_; ++age) {
    for (const CommitStep& step : commit_at(age).steps) {
      counters_.short_writes_resubmitted += step.short_writes();
      counters_.write_retries += step.retries();
    }
  }
  failed_ = true;
  counters_.failed_commits += active_commits_;
  active_commits_ = 0;
  std::string batches = first_batch == last_batch ? "batch " + std::to_string(first_batch) + " is"
                                                  : "batches " + std::to_string(first_batch) + " to " +
                                                        std::to_string(last_batch) + " are";
  failure_ = Error{error.message + " (" + batches + " not durable; no further commits)"};
  return failure_;
}

}  // namespace keel::persist
