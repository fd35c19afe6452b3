// engine/persist/commit_step.h: one log's part of a group commit, as a small state machine
// that both backends drive: write the bytes, resubmitting the rest after a short write or
// an EINTR, then one fdatasync. Kept apart from the I/O so that short writes, retries and
// failed syncs are tested without a disk that misbehaves on cue.
//
//   CommitStep step(part, /*sync_wanted=*/true);
//   for (;;) {
//     switch (step.next()) {
//       case StepAction::write_and_sync:   // io_uring: write SQE linked to an fsync SQE
//         step.on_write(pwritev(part.fd, step.write_iovec(), 1, step.write_offset()));
//         step.on_sync(step.write_complete() ? fdatasync(part.fd) : -ECANCELED);
//         break;
//       ...
//       case StepAction::done: return ok;
//       case StepAction::failed: return step.error();
//     }
//   }
//
// io_uring semantics are the model: a short write breaks the link, so the fdatasync comes
// back -ECANCELED (it never ran) and the remainder is issued again with its own sync. A
// failed fdatasync is final: after one, the page cache's state is unknown ("fsyncgate"),
// so it is never retried and nothing of the commit is reported durable.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "error/result.h"

namespace keel::persist {

// Writes that come back EINTR or EAGAIN are issued again, at most this often per part.
inline constexpr uint32_t commit_write_retries_max = 16;

// One log's bytes for one commit: a contiguous run at a file offset.
struct CommitPart {
  int fd = -1;
  std::string_view path;     // for errors; owned by the log
  uint64_t file_offset = 0;  // where data[0] goes
  const std::byte* data = nullptr;
  uint64_t bytes = 0;
};

enum class StepAction {
  write_and_sync,  // write write_iovec() at write_offset(), then (linked) fdatasync
  write,           // the same, no sync wanted (FsyncPolicy::none)
  sync,            // every byte is written; only the fdatasync is missing
  done,            // written, and synced if wanted
  failed,          // error() says why; issue nothing more for this commit
};

class CommitStep {
 public:
  CommitStep() = default;
  CommitStep(const CommitPart& part, bool sync_wanted) : part_(part), sync_wanted_(sync_wanted) {}

  // What to issue next; call it once every issued operation has been fed back.
  StepAction next() const;

  // The bytes still to write and where they go. The iovec lives in this object: io_uring
  // reads it after submission, so the step must not move while a write is in flight.
  const iovec* write_iovec();
  uint64_t write_offset() const { return part_.file_offset + written_; }

  // Feeds back a write's result: bytes written (maybe fewer than asked), or -errno.
  void on_write(int64_t result);
  // Feeds back the fdatasync's result: 0, -ECANCELED (it never ran), or -errno.
  void on_sync(int result);

  bool write_complete() const { return written_ == part_.bytes; }
  const CommitPart& part() const { return part_; }
  const Error& error() const { return error_; }
  uint64_t short_writes() const { return short_writes_; }
  uint64_t retries() const { return retries_; }

 private:
  void fail(Error error);

  CommitPart part_;
  bool sync_wanted_ = true;
  uint64_t written_ = 0;
  bool synced_ = false;
  bool failed_ = false;
  Error error_;
  iovec iovec_{};
  uint32_t retries_ = 0;
  uint32_t short_writes_ = 0;
};

}  // namespace keel::persist
