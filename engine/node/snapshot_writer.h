// engine/node/snapshot_writer.h: writes shard snapshots on a thread of its own, so a
// shard core never waits for a file to be serialized, written and fdatasynced.
//
//   SnapshotWriter writer(table);                       // one per engine
//   if (writer.accepting(global_shard)) capture = executor.state();   // at a due seal
//   ... once that block is durable:
//   writer.submit({global_shard, directory, ShardSnapshot{capture, unconfirmed_credits}});
//   writer.stop();                                      // writes what was submitted, joins
//
// Order of a job: serialize, write the file atomically (persist/snapshot_file.h: .tmp,
// fdatasync, rename, directory fsync), delete all but the newest two snapshots, then
// publish ShardControl::snapshot_height and snapshot_oldest_height. Only then may the
// persist tile drop the log segments whose blocks are all at or below the older kept
// snapshot: two are kept so that a damaged newest snapshot still leaves one to start
// from, with its whole log behind it.
//
// One job per shard at a time: while a shard's snapshot is queued or being written,
// accepting() is false and a due snapshot is skipped (ShardControl::snapshots_skipped).
// A failed write is not fatal — the log still holds everything — so it is said in one
// line on stderr, counted, and the log is kept until a later snapshot succeeds.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/ledger/snapshot.h"
#include "engine/node/shard_table.h"

namespace keel::node {

// How many snapshots each shard keeps (see the header).
inline constexpr size_t snapshots_kept = 2;

struct SnapshotJob {
  uint32_t global_shard = 0;
  std::string directory;  // the shard's data directory
  ledger::ShardSnapshot snapshot;
};

class SnapshotWriter {
 public:
  explicit SnapshotWriter(ShardTableView table);
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // False while this shard's previous snapshot is queued or being written.
  bool accepting(uint32_t global_shard) const;
  // Queues a job; false (and nothing queued) when !accepting(job.global_shard).
  bool submit(SnapshotJob job);
  // Writes every queued job, then stops the thread. Idempotent.
  void stop();

  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  uint64_t write_us_max() const { return write_us_max_.load(std::memory_order_relaxed); }

 private:
  void run();
  void write(SnapshotJob& job);

  ShardTableView table_;
  std::unique_ptr<std::atomic<bool>[]> busy_;  // per global shard
  std::mutex mutex_;                           // guards queue_ and stopping_
  std::condition_variable wake_;
  std::deque<SnapshotJob> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> written_{0}, failed_{0}, write_us_max_{0};
  std::thread thread_;
};

}  // namespace keel::node
