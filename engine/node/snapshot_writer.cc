#include "engine/node/snapshot_writer.h"

#include <cstdio>

#include "engine/persist/snapshot_file.h"
#include "shm/segment.h"

namespace keel::node {

SnapshotWriter::SnapshotWriter(ShardTableView table)
    : table_(table), busy_(std::make_unique<std::atomic<bool>[]>(table.shard_count())) {
  for (uint32_t shard = 0; shard < table_.shard_count(); ++shard) busy_[shard].store(false);
  thread_ = std::thread([this] { run(); });
}

SnapshotWriter::~SnapshotWriter() { stop(); }

bool SnapshotWriter::accepting(uint32_t global_shard) const {
  return !busy_[global_shard].load(std::memory_order_acquire);
}

bool SnapshotWriter::submit(SnapshotJob job) {
  uint32_t shard = job.global_shard;
  if (busy_[shard].exchange(true, std::memory_order_acq_rel)) return false;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void SnapshotWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void SnapshotWriter::run() {
  for (;;) {
    SnapshotJob job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything submitted is written
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    write(job);
    busy_[job.global_shard].store(false, std::memory_order_release);
  }
}

void SnapshotWriter::write(SnapshotJob& job) {
  uint64_t started_ns = shm::monotonic_ns();
  uint64_t height = job.snapshot.state.height;
  auto failed = [&](const Error& error) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "keel: snapshot of %s at height %llu not written, its log is kept whole: %s\n",
                 job.directory.c_str(), (unsigned long long)height, error.message.c_str());
  };
  std::vector<std::byte> payload = job.snapshot.serialize();
  if (Result<void> written = persist::write_snapshot(job.directory, height, payload); !written)
    return failed(written.error());
  Result<std::vector<uint64_t>> heights = persist::list_snapshot_heights(job.directory);
  if (!heights) return failed(heights.error());
  uint64_t oldest_kept = heights->size() >= snapshots_kept ? (*heights)[heights->size() - snapshots_kept] : 0;
  if (oldest_kept > 0)
    if (Result<void> dropped = persist::drop_snapshots_before(job.directory, oldest_kept); !dropped)
      return failed(dropped.error());
  ShardControl& control = table_.control(job.global_shard);
  control.snapshot_height.store(height, std::memory_order_relaxed);
  control.snapshot_oldest_height.store(oldest_kept, std::memory_order_release);
  written_.fetch_add(1, std::memory_order_relaxed);
  uint64_t write_us = (shm::monotonic_ns() - started_ns) / 1000;
  if (write_us > write_us_max_.load(std::memory_order_relaxed)) write_us_max_.store(write_us, std::memory_order_relaxed);
}

}  // namespace keel::node
