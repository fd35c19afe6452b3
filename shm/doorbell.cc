#include "shm/doorbell.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

void doorbell_finish_sleep(Doorbell* bell) {
  bell->sleepers.fetch_sub(1, std::memory_order_seq_cst);
}

void doorbell_wake(Doorbell* bell) {
  bell->sequence.fetch_add(1, std::memory_order_seq_cst);
  bell->wakes.fetch_add(1, std::memory_order_relaxed);
  futex(&bell->sequence, FUTEX_WAKE, INT_MAX, nullptr);
}

}  // namespace keel::shm
