#include "engine/persist/commit_step.h"

#include <cassert>
#include <cerrno>
#include <string>

#include "engine/persist/durable_io.h"

namespace keel::persist {

StepAction CommitStep::next() const {
  if (failed_) return StepAction::failed;
  if (!write_complete()) return sync_wanted_ ? StepAction::write_and_sync : StepAction::write;
  if (sync_wanted_ && !synced_) return StepAction::sync;
  return StepAction::done;
}

const iovec* CommitStep::write_iovec() {
  assert(!write_complete());
  iovec_.iov_base = const_cast<std::byte*>(part_.data + written_);
  iovec_.iov_len = size_t(part_.bytes - written_);
  return &iovec_;
}

void CommitStep::on_write(int64_t result) {
  uint64_t left = part_.bytes - written_;
  if (result > 0) {
    assert(uint64_t(result) <= left);
    written_ += uint64_t(result);
    if (!write_complete()) short_writes_ += 1;
    return;
  }
  // Errors only from here on: the strings are built off the common path.
  std::string path(part_.path);
  std::string where = "offset " + std::to_string(write_offset()) + ": ";
  if (result == -EINTR || result == -EAGAIN) {
    retries_ += 1;
    if (retries_ > commit_write_retries_max) {
      fail(make_error(path, where + "write still interrupted after " +
                                std::to_string(commit_write_retries_max) +
                                " retries: " + errno_text(int(-result))));
    }
  } else if (result == 0) {
    fail(make_error(path, where + "write of " + std::to_string(left) + " bytes made no progress"));
  } else {
    fail(make_error(path,
                    where + "cannot write " + std::to_string(left) + " bytes: " + errno_text(int(-result))));
  }
}

void CommitStep::on_sync(int result) {
  if (result == -ECANCELED) return;  // never ran: the linked write was short or failed
  if (result == 0) {
    assert(write_complete());
    synced_ = true;
    return;
  }
  fail(make_error(std::string(part_.path),
                  "fdatasync after writing bytes " + std::to_string(part_.file_offset) + " to " +
                      std::to_string(part_.file_offset + part_.bytes) + " failed: " + errno_text(-result) +
                      " (not retried: what reached the disk is unknown)"));
}

void CommitStep::fail(Error error) {
  if (failed_) return;  // the first error is the one that explains
  failed_ = true;
  error_ = std::move(error);
}

}  // namespace keel::persist
