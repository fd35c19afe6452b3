// perf/bench_wal.h: `keel bench wal`: durable commits/s and p99 commit latency of keel's
// group commit (engine/persist: ShardLog + Persister, io_uring) for 1, 8, 64 and 1024
// concurrent committers with 100-byte and 1 KiB records, in the same run as
//   (a) pwrite + fdatasync per commit (threads, one file),
//   (b) RocksDB (Debian's librocksdb-dev) with WriteOptions::sync = true, same concurrency,
//   (c) the device's ceiling: large sequential writes with one fdatasync each (8 MiB, O_DIRECT,
//       from huge pages),
//   (d) for 1,024 x 1 KiB, the device alone with the bytes 1,024 commits can keep in flight
//       (one 1.03 MiB write + fdatasync at a time, or two halves at a time; the higher):
//       the most any log can do at that concurrency, and how much of the ceiling that is.
// Medians of `repetitions` interleaved runs with min and max; ratios pair by pair.
//
// keel with N committers is N commits in flight, closed loop: one thread drives one
// ShardLog + Persister with PersistTile::poll's steps — reap the commits that completed
// (their committers issue their next record at once), stage up to 128 issued records (the
// default persist weight x tile_budget), submit what is staged (one writev linked to one
// fdatasync) when no commit is in flight, or when one is and nothing issued is left to
// stage (up to two in flight, [ledger] commits_in_flight). Records issued while commits
// are in flight are staged meanwhile and form the next group, as in the engine. After
// each completion every whole segment file behind the durable end is dropped, as a
// running engine's snapshots let go of them, so new segments are reused files
// ([ledger] segment_recycled_max). Latency runs from issue to durable. The baselines run
// N threads, each one commit at a time. Commits count when they become durable inside the
// run's window (its first tenth warms up).
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
//     and the device writes it in ~0.45-0.5 ms with its flush. With two commits in flight
//     the 1,024 committers settle into groups of ~470 records (~0.5 MB): one stages while
//     two are written. The persist thread then spends ~0.44 ms per MB (staging ~0.33,
//     submitting ~0.11: the kernel pins the pages and kicks the virtio queue inline), so
//     one core bounds it near 2.2 GB/s, and the device at queue depth two with 0.5 MB
//     writes measured 2.0-2.3 GB/s in a C loop (its 8 MiB ceiling 1.4-2.5 GB/s the same
//     minutes): about 0.6-0.8 of the 4 KiB-page ceiling. From huge pages the device
//     takes 8 MiB writes 1.5-1.8x as fast (3.3-3.7 GB/s), while 1,024 commits in flight
//     (1.03 MiB) reach only ~0.75 of that even with no CPU work at all: each committer waits
//     for its commit, so the device never has more than one group's worth to write. (d)
//     measures that bound in the same run.
//   pwrite + fdatasync: the record, 2 syscalls and one journal commit + flush per commit
//     (ext4 merges concurrent fdatasyncs of one file into one journal commit).
//   RocksDB: the record + a 16-byte key + ~20 bytes of WAL framing; the leader of each
//     write group does one write + one fdatasync for the group, every other writer a futex
//     wait and wake: on 2 cores, 64 or 1,024 threads are bound by context switches.
//   ceiling: 8 MiB (O_DIRECT, past the page cache, from huge pages: about 5 pins and 2-3
//     requests instead of 2,048 pins and 9 requests) and one fdatasync per chunk, both
//     appending to a new file and overwriting a file written full of zeros beforehand;
//     the target takes the higher. keel's log overwrites too: reused segment files, and
//     zeroed spares before the first reused one is at hand (its first spare is ready
//     before the run, one more is written during it): no file size for fdatasync to
//     journal (~100 us saved per commit), and no second write of every segment.
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
  // keel's group commits in flight at once ([ledger] commits_in_flight, 1 or 2).
  uint32_t keel_commits_in_flight = 2;
  // keel's log buffers on 4 KiB pages instead of huge pages ([ledger] log_buffer_huge_pages).
  bool keel_small_pages = false;
  // Only these committer counts and record sizes (empty: all of 1, 8, 64, 1024 and 100,
  // 1024 B). A target is judged only when both of its figures ran; the device ceiling
  // runs only with the 1,024 x 1 KiB figure it is compared with.
  std::vector<uint32_t> committers_only;
  std::vector<uint32_t> record_bytes_only;
};

// Runs the benchmark, prints a table (or one JSON object) and returns the exit code.
int run_wal_bench(const WalBenchOptions& options);

}  // namespace keel::perf
