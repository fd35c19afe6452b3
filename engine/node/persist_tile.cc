#include "engine/node/persist_tile.h"

#include <cassert>
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "shm/segment.h"

namespace keel::node {

PersistTile::PersistTile(std::unique_ptr<persist::Persister> persister, std::vector<PersistedShard> shards,
                         DrainState* drain, uint32_t snapshot_every_blocks, uint32_t commit_stall_warn_ms,
                         uint32_t commit_poll_us)
    : persister_(std::move(persister)),
      shards_(std::move(shards)),
      staged_(shards_.size()),
      cut_points_(shards_.size()),
      preallocation_failures_reported_(shards_.size(), 0),
      snapshot_every_blocks_(snapshot_every_blocks),
      commit_stall_warn_ns_(uint64_t(commit_stall_warn_ms) * 1'000'000),
      commit_poll_us_(commit_poll_us),
      drain_(drain) {
  for (PersistedShard& shard : shards_) persister_->add_log(shard.log.get());
}

size_t PersistTile::poll(size_t budget) {
  if (failed_) return 0;
  size_t work = 0;
  // The clock is read only around a commit in flight: an idle persist tile reads none.
  uint64_t now_ns = 0;
  if (in_flight_at_last_poll_) {
    now_ns = shm::monotonic_ns();
    stats_.poll_gap_ns.record(now_ns - last_poll_ns_);
  }
  if (persister_->in_flight()) {
    Result<bool> durable = persister_->poll(false);
    if (!durable) {
      fail(durable.error());
      return 0;
    }
    if (*durable) {
      if (now_ns == 0) now_ns = shm::monotonic_ns();
      while (!submitted_.empty() && submitted_.front().batch <= persister_->durable_batch()) {
        // Slow, but it ended before a poll saw it in flight past the threshold (this core
        // was busy or starved): counted now.
        const Submitted& ended = submitted_.front();
        if (!ended.stall_reported && now_ns - ended.submitted_ns >= commit_stall_warn_ns_)
          note_slow_commit(ended.batch, now_ns - ended.submitted_ns, false);
        ++stats_.commits;
        stats_.commit_ns.record(now_ns - submitted_.front().submitted_ns);
        submitted_.pop_front();
      }
      publish_durable();
      ++work;
    }
    if (now_ns != 0) report_stalled_commit(now_ns);
  }
  const size_t staged = stage_blocks(budget);
  work += staged;
  // With nothing in flight a commit goes at once (latency). Beside a commit in flight the
  // next goes only when this poll staged everything waiting (its budget was not used up):
  // a commit of one poll's budget would split the group, and the device does better with
  // fewer, larger writes.
  const bool more_may_wait = staged >= budget;
  if (persister_->can_submit() && (!persister_->in_flight() || !more_may_wait)) {
    // psync commits inside submit(): its time is submit()'s.
    const bool commits_in_submit = persister_->backend() != persist::Backend::io_uring;
    const uint64_t before_submit_ns = commits_in_submit ? shm::monotonic_ns() : 0;
    Result<bool> started = persister_->submit();
    if (!started) {
      fail(started.error());
      return 0;
    }
    if (*started && commits_in_submit) {
      // psync: durable already; poll() reports it.
      Result<bool> durable = persister_->poll(false);
      if (!durable) {
        fail(durable.error());
        return 0;
      }
      ++stats_.commits;
      const uint64_t took_ns = shm::monotonic_ns() - before_submit_ns;
      stats_.commit_ns.record(took_ns);
      if (took_ns >= commit_stall_warn_ns_) note_slow_commit(persister_->durable_batch(), took_ns, false);
      publish_durable();
    } else if (*started) {
      submitted_.push_back({persister_->next_batch() - 1, shm::monotonic_ns()});  // after staging
    }
    if (*started) ++work;
  }
  // Even with commits in flight: those write a log's current file only (a log rotates
  // only with none of its commits in flight), and the current file is never dropped.
  drop_segments_behind_snapshots();
  report_preallocation_failures();
  in_flight_at_last_poll_ = persister_->in_flight();
  // The gap runs from the end of this poll to the start of the next: the time the
  // commit's completion waits behind the other tiles of this core.
  if (in_flight_at_last_poll_) last_poll_ns_ = shm::monotonic_ns();
  return work;
}

// A spare segment that could not be written (a full disk) is not fatal: the log appends to
// a new empty file instead, with slower commits. Said once per failure, in one line.
void PersistTile::report_preallocation_failures() {
  for (size_t index = 0; index < shards_.size(); ++index) {
    const persist::ShardLog& log = *shards_[index].log;
    uint64_t failures = log.counters().preallocation_failures;
    if (failures == preallocation_failures_reported_[index]) continue;
    preallocation_failures_reported_[index] = failures;
    std::fprintf(stderr, "keel: %s (segment not preallocated: its commits append, and journal, instead)\n",
                 log.preallocation_error().c_str());
  }
}

// The oldest commit in flight, once it has waited commit_stall_warn_ns_, is said while it
// still waits (the operator sees the stall as it happens); one that ended first is said
// when it ends (poll). Seen on a 2-core VM whose scheduler starved the per-CPU kernel
// workers while other processes kept both CPUs busy: an O_DIRECT write completes in such a
// worker (the file system's dio workqueue), so its commit waited there for seconds with
// the device idle; buffered writes complete without one (perf/TUNING.md).
void PersistTile::report_stalled_commit(uint64_t now_ns) {
  if (submitted_.empty()) return;
  Submitted& oldest = submitted_.front();
  if (oldest.stall_reported || now_ns - oldest.submitted_ns < commit_stall_warn_ns_) return;
  oldest.stall_reported = true;
  note_slow_commit(oldest.batch, now_ns - oldest.submitted_ns, true);
}

void PersistTile::note_slow_commit(uint64_t batch, uint64_t waited_ns, bool still_in_flight) {
  ++stats_.commits_stalled;
  bool direct_io = std::any_of(shards_.begin(), shards_.end(),
                               [](const PersistedShard& shard) { return shard.log->direct_io(); });
  const char* hint = direct_io ? "; an O_DIRECT write completes in a per-CPU kernel worker, which a busy host "
                                 "can starve (perf/TUNING.md)"
                               : " (perf/TUNING.md)";
  unsigned long long waited_ms = waited_ns / 1'000'000;
  if (still_in_flight) {
    std::fprintf(stderr,
                 "keel: persist: group commit %llu has waited %llu ms in the kernel so far (%u writes and "
                 "fdatasyncs of the commits in flight not completed)%s\n",
                 (unsigned long long)batch, waited_ms, persister_->operations_outstanding(), hint);
  } else {
    std::fprintf(stderr, "keel: persist: group commit %llu took %llu ms in the kernel%s\n", (unsigned long long)batch,
                 waited_ms, hint);
  }
}

SegmentCounts PersistTile::segment_counts() const {
  SegmentCounts counts;
  for (const PersistedShard& shard : shards_) {
    const persist::ShardLogCounters& counters = shard.log->counters();
    counts.recycled += counters.segments_recycled;
    counts.preallocated += counters.segments_preallocated;
    counts.unprepared += counters.segments_unprepared;
    counts.preallocation_failures += counters.preallocation_failures;
  }
  return counts;
}

// Segment files go (deleted, or kept for reuse) only whole, when all their blocks are at
// or below the oldest snapshot the writer keeps (snapshot_writer.h); commits in flight
// write a log's current file only, which never goes.
void PersistTile::drop_segments_behind_snapshots() {
  for (size_t index = 0; index < shards_.size(); ++index) {
    std::deque<StagedBlock>& points = cut_points_[index];
    if (points.empty()) continue;
    uint64_t oldest_kept = shards_[index].control->snapshot_oldest_height.load(std::memory_order_acquire);
    uint64_t cut_before = 0;
    while (!points.empty() && points.front().height <= oldest_kept) {
      cut_before = points.front().sequence_end;
      points.pop_front();
    }
    if (cut_before == 0) continue;
    persist::ShardLog& log = *shards_[index].log;
    uint64_t dropped_before = log.counters().segments_dropped;
    if (Result<void> dropped = log.drop_segments_before(std::min(cut_before, log.durable_sequence())); !dropped) {
      // Not fatal: the files stay and recovery reads past them; say it once per failure.
      std::fprintf(stderr, "keel: %s\n", dropped.error().message.c_str());
    }
    stats_.segments_dropped += log.counters().segments_dropped - dropped_before;
  }
}

size_t PersistTile::stage_blocks(size_t budget) {
  size_t staged = 0;
  for (size_t index = 0; index < shards_.size() && staged < budget; ++index) {
    PersistedShard& shard = shards_[index];
    while (staged < budget) {
      std::span<const std::byte> slot = shard.blocks.peek(1);
      if (slot.empty()) break;
      BlockMessage message;
      std::memcpy(&message, slot.data(), sizeof message);
      if (!shard.log->fits(message.record_bytes)) {
        ++stats_.stage_backpressure;
        break;
      }
      std::span<const std::byte> record = shard.block_arena.read(message.arena_position, message.record_bytes);
      assert(record.size() == message.record_bytes);
      Result<uint64_t> sequence = shard.log->stage(record_type_block, record);
      if (!sequence) {
        fail(sequence.error());
        return staged;
      }
      staged_[index].push_back(StagedBlock{*sequence + 1, message.height, message.sealed_ns});
      if (snapshot_every_blocks_ > 0 && message.height % snapshot_every_blocks_ == 0)
        cut_points_[index].push_back(StagedBlock{*sequence + 1, message.height});
      shard.block_arena.release(message.arena_position, message.record_bytes);
      shard.blocks.release(1);
      ++stats_.blocks_staged;
      ++staged;
    }
  }
  return staged;
}

void PersistTile::publish_durable() {
  const uint64_t now_ns = shm::monotonic_ns();
  for (size_t index = 0; index < shards_.size(); ++index) {
    PersistedShard& shard = shards_[index];
    uint64_t durable_sequence = shard.log->durable_sequence();
    uint64_t height = 0;
    std::deque<StagedBlock>& staged = staged_[index];
    while (!staged.empty() && staged.front().sequence_end <= durable_sequence) {
      height = staged.front().height;
      if (staged.front().sealed_ns != 0 && staged.front().sealed_ns <= now_ns)
        stats_.sealed_to_durable_ns.record(now_ns - staged.front().sealed_ns);
      staged.pop_front();
    }
    if (height == 0) continue;
    shard.control->durable_height.store(height, std::memory_order_release);
    if (shard.shard_doorbell != nullptr) shm::doorbell_ring(shard.shard_doorbell);
  }
}

void PersistTile::fail(const Error& error) {
  failed_ = true;
  drain_->fatal_message = "persist: " + error.message;
  drain_->fatal.store(true, std::memory_order_release);
}

bool PersistTile::quiescent() {
  if (failed_) return true;
  if (drain_->shards_quiescent.load(std::memory_order_acquire) < drain_->shard_count) return false;
  if (persister_->in_flight()) return false;
  for (size_t index = 0; index < shards_.size(); ++index)
    if (shards_[index].blocks.has_messages() || !staged_[index].empty()) return false;
  return true;
}

}  // namespace keel::node
