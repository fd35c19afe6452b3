// shm/doorbell.h: a futex doorbell in shared memory, so a consumer that has nothing to
// do can sleep and its producers (in any process) wake it.
//
//   // consumer (one per doorbell: a core's run loop)
//   uint32_t sequence = doorbell_prepare_sleep(bell);
//   if (!anything_to_do()) doorbell_sleep(bell, sequence, 1000 /*us*/);
//   doorbell_finish_sleep(bell);
//   // producer, after publishing to a ring whose consumer owns `bell`
//   doorbell_ring(bell);
//
// Correctness is the Dekker pattern: the consumer announces itself as a sleeper
// (seq_cst) before re-checking its rings; the producer publishes, fences (seq_cst), then
// looks for sleepers. One of the two always sees the other, so no wake-up is lost. The
// timeout only bounds how long an idle core stays asleep; it is not needed for safety.
#pragma once

#include <atomic>
#include <cstdint>

namespace keel::shm {

struct alignas(128) Doorbell {
  std::atomic<uint32_t> sequence;  // the futex word: bumped by every ring that finds a sleeper
  std::atomic<uint32_t> sleepers;
  std::atomic<uint64_t> wakes;     // times a producer had to make a futex_wake call
};
static_assert(sizeof(Doorbell) == 128);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Consumer: announce the intent to sleep; returns the sequence to wait on.
uint32_t doorbell_prepare_sleep(Doorbell* bell);
// Consumer: sleeps until rung or `timeout_us` passes (returns at once if rung since
// doorbell_prepare_sleep).
void doorbell_sleep(Doorbell* bell, uint32_t sequence, uint32_t timeout_us);
// Consumer: no longer a sleeper.
void doorbell_finish_sleep(Doorbell* bell);

// Consumer: sleeps on several doorbells at once (futex_waitv, Linux 5.16+) until any of
// them is rung or `timeout_us` passes; `sequences[i]` comes from doorbell_prepare_sleep on
// `bells[i]`. A core sleeps this way when it runs tiles moved from other cores: their
// rings still ring the doorbell of the core they were planned on. At most
// doorbell_wait_many_max bells. Returns false if futex_waitv is missing or refused (an
// old kernel, a seccomp filter): then it slept on bells[0] alone, for at most
// `fallback_timeout_us` (the caller says so once).
inline constexpr size_t doorbell_wait_many_max = 16;
bool doorbell_sleep_any(Doorbell* const* bells, const uint32_t* sequences, size_t count, uint32_t timeout_us,
                        uint32_t fallback_timeout_us);

// The slow half of doorbell_ring: bump the sequence and futex_wake the sleeper.
void doorbell_wake(Doorbell* bell);

// Producer: wakes the consumer if it sleeps. Costs one fence when nobody sleeps.
inline void doorbell_ring(Doorbell* bell) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (bell->sleepers.load(std::memory_order_relaxed) != 0) doorbell_wake(bell);
}

}  // namespace keel::shm
