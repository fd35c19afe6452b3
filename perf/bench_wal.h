// perf/bench_wal.h: `keel bench wal`: durable commits/s and p99 commit latency of keel's
// group commit (engine/persist: ShardLog + Persister, io_uring) for 1, 8, 64 and 1024
// concurrent committers with 100-byte and 1 KiB records, in the same run as
//   (a) pwrite + fdatasync per commit (threads, one file),
//   (b) RocksDB (Debian's librocksdb-dev) with WriteOptions::sync = true, same concurrency,
//   (c) the device's ceiling: large sequential writes with one fdatasync each (8 MiB, O_DIRECT).
// Medians of `repetitions` interleaved runs with min and max; ratios pair by pair.
//
// keel with N committers is N commits in flight, closed loop: one thread drives one
// ShardLog + Persister with PersistTile::poll's steps — reap the commit in flight (its
// committers issue their next record at once), stage up to 128 issued records (the
// default persist weight x tile_budget), submit what is staged when no commit is in
// flight (one writev linked to one fdatasync). Records issued while a commit is in flight
// are staged meanwhile and form the next group, as in the engine; one commit is in flight
// at a time (recovery's tear rule depends on it). Latency runs from issue to durable. The
// baselines run N threads, each one commit at a time. Commits count when they become
// durable inside the run's window (its first tenth warms up).
//
// Estimate per commit (fdatasync ~0.15 ms on the dev VM):
//   keel: the record + its 32-byte header, and per group up to 4 KiB more (writes are
//     whole 4 KiB blocks, O_DIRECT: the partial block before and zeros after); 2/N
//     syscalls (one io_uring_enter submits the write and the fdatasync, one reaps them)
//     and 1/N device flush. So N / (stage + write time + fdatasync): ~6,500/s at N = 1,
//     ~300,000/s at 64 (6.6 or 67 KB per group), ~3 M/s at 1,024 x 100 B (135 KB per
//     group). Staging copies each record and takes its CRC32C (the copy in cache); the
//     commit then only stamps batch, flags and checksum into 32-byte headers (~10 us per
//     1,024 records). At 1,024 x 1 KiB a group is 1.05 MB: staging reads 1 MB of the
//     16 MiB pool, out of cache (~0.2 ms at ~5 GB/s on the dev VM, + ~0.08 ms of CRC32C),
//     and the device writes it in ~0.45-0.5 ms with its flush. With the tile's overlap the
//     1,024 committers settle into two alternating groups of ~450 and ~575 records: one
//     stages while the other is written, and the device, at queue depth one, writes ~0.5
//     MB per fdatasync (~0.6 ms): about 1 GB/s, ~0.5-0.6 of the 8 MiB ceiling. Reaching
//     0.8 would take two commits in flight (a deeper device queue), which the recovery's
//     rule that batch N+1 starts only once batch N is durable rules out today.
//   pwrite + fdatasync: the record, 2 syscalls and one journal commit + flush per commit
//     (ext4 merges concurrent fdatasyncs of one file into one journal commit).
//   RocksDB: the record + a 16-byte key + ~20 bytes of WAL framing; the leader of each
//     write group does one write + one fdatasync for the group, every other writer a futex
//     wait and wake: on 2 cores, 64 or 1,024 threads are bound by context switches.
//   ceiling: 8 MiB (O_DIRECT, past the page cache) and one fdatasync per chunk, both
//     appending to a new file and overwriting a file written full of zeros beforehand;
//     the target takes the higher. keel's log runs with preallocated segments (its first
//     spare is ready before the run, later ones are written during it), so its commits
//     overwrite too: no file size for fdatasync to journal (~100 us saved per commit).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace keel::perf {

struct WalBenchOptions {
  bool json = false;
  uint32_t repetitions = 5;
  double seconds_per_run = 0.8;   // each figure's run length (the first tenth warms up)
  std::string directory;          // where the files go; empty: a fresh folder under ./data/bench-wal
  // keel polls for each commit's completion without blocking, as a persist tile with a
  // core of its own does, instead of waiting in io_uring_wait_cqe.
  bool keel_busy_poll = false;
  // Only these committer counts and record sizes (empty: all of 1, 8, 64, 1024 and 100,
  // 1024 B). A target is judged only when both of its figures ran; the device ceiling
  // runs only with the 1,024 x 1 KiB figure it is compared with.
  std::vector<uint32_t> committers_only;
  std::vector<uint32_t> record_bytes_only;
};

// Runs the benchmark, prints a table (or one JSON object) and returns the exit code.
int run_wal_bench(const WalBenchOptions& options);

}  // namespace keel::perf
