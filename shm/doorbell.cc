#include "shm/doorbell.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace keel::shm {

namespace {

// FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the word lives in memory shared between
// processes, so the kernel must key the wait on the page, not on this process's mm.
long futex(std::atomic<uint32_t>* word, int operation, uint32_t value, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), operation, value, timeout,
                 nullptr, 0);
}

}  // namespace

uint32_t doorbell_prepare_sleep(Doorbell* bell) {
  bell->sleepers.fetch_add(1, std::memory_order_seq_cst);
  return bell->sequence.load(std::memory_order_seq_cst);
}

void doorbell_sleep(Doorbell* bell, uint32_t sequence, uint32_t timeout_us) {
  timespec timeout{time_t(timeout_us / 1'000'000), long(timeout_us % 1'000'000) * 1000};
  // EAGAIN (rung already), EINTR (a signal) and ETIMEDOUT all mean: go and look again.
  futex(&bell->sequence, FUTEX_WAIT, sequence, &timeout);
}

bool doorbell_sleep_any(Doorbell* const* bells, const uint32_t* sequences, size_t count, uint32_t timeout_us,
                        uint32_t fallback_timeout_us) {
  if (count <= 1) {
    if (count == 1) doorbell_sleep(bells[0], sequences[0], timeout_us);
    return true;
  }
  futex_waitv waiters[doorbell_wait_many_max] = {};
  count = count < doorbell_wait_many_max ? count : doorbell_wait_many_max;
  for (size_t index = 0; index < count; ++index) {
    waiters[index].val = sequences[index];
    waiters[index].uaddr = reinterpret_cast<uint64_t>(&bells[index]->sequence);
    waiters[index].flags = FUTEX_32;  // not FUTEX_PRIVATE_FLAG: the words are shared between processes
  }
  // futex_waitv's timeout is absolute, on the clock named last.
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_nsec += long(timeout_us % 1'000'000) * 1000;
  deadline.tv_sec += time_t(timeout_us / 1'000'000) + deadline.tv_nsec / 1'000'000'000;
  deadline.tv_nsec %= 1'000'000'000;
  long woken = syscall(SYS_futex_waitv, waiters, unsigned(count), 0u, &deadline, CLOCK_MONOTONIC);
  // ENOSYS on an old kernel; EPERM (or another error) where a sandbox's seccomp filter
  // refuses the call: either way no sleep happened, so sleep on the first bell instead
  // rather than spin.
  if (woken < 0 && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) {
    doorbell_sleep(bells[0], sequences[0], timeout_us < fallback_timeout_us ? timeout_us : fallback_timeout_us);
    return false;
  }
  // A woken index, EAGAIN (one was rung already), EINTR or ETIMEDOUT: go and look again.
  return true;
}

void doorbell_finish_sleep(Doorbell* bell) {
  bell->sleepers.fetch_sub(1, std::memory_order_seq_cst);
}

void doorbell_wake(Doorbell* bell) {
  bell->sequence.fetch_add(1, std::memory_order_seq_cst);
  bell->wakes.fetch_add(1, std::memory_order_relaxed);
  futex(&bell->sequence, FUTEX_WAKE, INT_MAX, nullptr);
}

}  // namespace keel::shm
