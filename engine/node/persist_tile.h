// engine/node/persist_tile.h: the tile that makes sealed blocks durable — takes them from
// every shard's block ring, stages them into that shard's log, runs group commits through
// the Persister (io_uring or psync), and publishes each shard's durable height in the
// segment, which is what lets the shard release receipts.
//
//   PersistTile persist(std::move(persister), std::move(shards), &drain);
//
// Up to the Persister's commits_in_flight_max commits are in flight at once (two by
// default, [ledger] commits_in_flight); everything sealed meanwhile goes into the next one
// (group commit). While a commit is in flight the tile asks its core to sleep no longer
// than commit_poll_us when idle, so the completion is seen soon though no doorbell rings
// for it. (It used to report work instead, which kept a core of a 2-core host spinning
// through every fdatasync, CPU the shard and the worker pools were short of.) A
// failed write or fdatasync is fatal: the tile sets DrainState::fatal and stops, and no
// receipt is ever released for the blocks of that commit.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/latency_histogram.h"
#include "engine/core/tile.h"
#include "engine/node/drain_state.h"
#include "engine/node/shard_table.h"
#include "engine/persist/persister.h"
#include "engine/persist/shard_log.h"
#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"

namespace keel::node {

inline constexpr uint16_t record_type_block = 2;

struct PersistedShard {
  std::unique_ptr<persist::ShardLog> log;
  shm::RingConsumer blocks;
  shm::ArenaReader block_arena;
  ShardControl* control = nullptr;
  shm::Doorbell* shard_doorbell = nullptr;  // rung when its durable height moves; may be null
};

struct PersistStats {
  uint64_t blocks_staged = 0;
  uint64_t commits = 0;
  uint64_t stage_backpressure = 0;  // a block waited because its log's batch was full
  uint64_t segments_dropped = 0;    // behind the oldest kept snapshot
  // Group commits that took commit_stall_warn_ms or longer in the kernel (io_uring: seen
  // in flight past it, or ending past it; psync: submit to durable); each is counted and
  // said on stderr once (see PersistTile::report_stalled_commit).
  uint64_t commits_stalled = 0;
  // Where a block's time in the persist tile goes (CLOCK_MONOTONIC, ns). poll_gap: from the
  // end of one poll to the start of the next while a group commit was in flight, which is
  // how long a completion may wait to be seen when the tile's core is busy with other
  // tiles or, idle, sleeps (at most commit_poll_us); commit: a group commit from its submission (after staging) to the poll that saw
  // it durable; sealed_to_durable: each block from
  // its shard sealing it to its durable height being published.
  engine::LatencyHistogram poll_gap_ns;
  engine::LatencyHistogram commit_ns;
  engine::LatencyHistogram sealed_to_durable_ns;
};

// What became of the logs' new segment files (persist::ShardLogCounters, all shards).
struct SegmentCounts {
  uint64_t recycled = 0;                // a dropped segment file, kept and overwritten
  uint64_t preallocated = 0;            // a spare written full of zeros ahead
  uint64_t unprepared = 0;              // created empty: the spare was not ready yet
  uint64_t preallocation_failures = 0;  // spares that could not be written
};

class PersistTile final : public engine::Tile {
 public:
  // snapshot_every_blocks: the shards' snapshot interval (0: none); blocks at those
  // heights are where a log can later be cut, once the snapshot writer publishes
  // ShardControl::snapshot_oldest_height at or past them.
  // commit_stall_warn_ms: a group commit still in the kernel this long after its
  // submission is counted and said once on stderr ([ledger] commit_stall_warn_ms).
  // commit_poll_us: while a commit is in flight, how long the tile's core may sleep when
  // it has nothing else to do ([engine] idle_commit_poll_us; see wake_within_us).
  PersistTile(std::unique_ptr<persist::Persister> persister, std::vector<PersistedShard> shards, DrainState* drain,
              uint32_t snapshot_every_blocks = 0, uint32_t commit_stall_warn_ms = 1000, uint32_t commit_poll_us = 50);

  std::string_view name() const override { return "persist"; }
  size_t poll(size_t budget) override;
  // Nothing rings a doorbell when the kernel completes a commit, so while one is in
  // flight an idle core wakes every commit_poll_us to look (an adaptive or sleeping core;
  // a spinning one looks all the time).
  uint32_t wake_within_us() const override { return persister_->in_flight() ? commit_poll_us_ : 0; }
  void begin_drain() override { draining_ = true; }
  bool quiescent() override;

  const PersistStats& stats() const { return stats_; }
  // Sums the logs' counters: call when the tile is not running (after the drain).
  SegmentCounts segment_counts() const;
  const persist::Persister& persister() const { return *persister_; }

 private:
  // The sequence one past a staged block's record, and the block's height.
  struct StagedBlock {
    uint64_t sequence_end;
    uint64_t height;
    uint64_t sealed_ns = 0;
  };
  size_t stage_blocks(size_t budget);
  void publish_durable();
  void drop_segments_behind_snapshots();
  void report_preallocation_failures();
  void report_stalled_commit(uint64_t now_ns);
  void note_slow_commit(uint64_t batch, uint64_t waited_ns, bool still_in_flight);
  void fail(const Error& error);

  std::unique_ptr<persist::Persister> persister_;
  std::vector<PersistedShard> shards_;
  std::vector<std::deque<StagedBlock>> staged_;
  // Per shard, the staged blocks at snapshot heights, oldest first: where its log may be
  // cut once a kept snapshot covers them.
  std::vector<std::deque<StagedBlock>> cut_points_;
  std::vector<uint64_t> preallocation_failures_reported_;  // per shard
  uint32_t snapshot_every_blocks_;
  uint64_t commit_stall_warn_ns_;
  uint32_t commit_poll_us_;
  DrainState* drain_;
  PersistStats stats_;
  uint64_t last_poll_ns_ = 0;
  // Commits in flight: batch number and submission time, oldest first.
  struct Submitted {
    uint64_t batch;
    uint64_t submitted_ns;
    bool stall_reported = false;
  };
  std::deque<Submitted> submitted_;
  bool in_flight_at_last_poll_ = false;
  bool draining_ = false;
  bool failed_ = false;
};

}  // namespace keel::node
