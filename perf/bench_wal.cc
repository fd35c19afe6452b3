#include "perf/bench_wal.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "engine/persist/durable_io.h"
#include "engine/persist/persister.h"
#include "engine/persist/recovery.h"
#include "engine/persist/shard_log.h"
#include "perf/bench_report.h"
#include "shm/segment.h"

namespace keel::perf {
namespace {

constexpr uint32_t committer_counts[] = {1, 8, 64, 1024};
constexpr uint32_t record_sizes[] = {100, 1024};
constexpr uint64_t ceiling_chunk_bytes = 8ULL << 20;
// The overwrite ceiling cycles through a file this big, written full of zeros once.
constexpr uint64_t ceiling_overwrite_file_bytes = 256ULL << 20;
constexpr uint16_t record_type_bench = persist::record_type_first_opaque;
// The first tenth of every run warms up (threads start, files grow, RocksDB's memtable
// fills); only commits that become durable after it count.
constexpr double warm_up_share = 0.1;
// Records the modelled persist tile stages per pass: the default [tiles.persist] weight (2)
// times [engine] tile_budget (64), as the engine's core gives it per round.
constexpr uint32_t persist_poll_budget = 128;

enum class System { keel, pwrite, rocksdb };

std::string system_name(System system) {
  switch (system) {
    case System::keel: return "keel";
    case System::pwrite: return "pwrite_fdatasync";
    case System::rocksdb: return "rocksdb_sync";
  }
  return "?";
}

std::string figure_key(System system, uint32_t record_bytes, uint32_t committers) {
  return system_name(system) + "." + std::to_string(record_bytes) + "B.committers" + std::to_string(committers);
}

// ---- one run's result ---------------------------------------------------------------

// Commit latencies as (latency, commits): keel's group commit makes a whole group durable
// at once, so one entry stands for every commit of the group.
struct LatencySamples {
  std::vector<std::pair<uint64_t, uint64_t>> entries;
  uint64_t commits = 0;

  void add(uint64_t latency_ns, uint64_t count) {
    entries.push_back({latency_ns, count});
    commits += count;
  }
  void merge(const LatencySamples& other) {
    entries.insert(entries.end(), other.entries.begin(), other.entries.end());
    commits += other.commits;
  }
  // The smallest latency at or below which `share` of the commits lie.
  double percentile_ns(double share) {
    if (commits == 0) return 0;
    std::sort(entries.begin(), entries.end());
    uint64_t wanted = std::max<uint64_t>(1, uint64_t(double(commits) * share + 0.5)), seen = 0;
    for (const auto& [latency_ns, count] : entries) {
      seen += count;
      if (seen >= wanted) return double(latency_ns);
    }
    return double(entries.back().first);
  }
};

struct CommitRun {
  double commits_per_second = 0;
  double p50_us = 0, p99_us = 0;
  double payload_megabytes_per_second = 0;  // records' bytes only, no framing
  // keel only: mean time per group commit staging the records, in submit() (stamping
  // and checksumming them, io_uring_enter) and waiting for the write and fdatasync.
  double stage_us = 0, submit_us = 0, wait_us = 0;
  double group_records = 0;  // commits per group commit
};

// Commits become durable for the figure only inside [start_ns, end_ns).
struct Window {
  uint64_t start_ns = 0, end_ns = 0;
  static Window starting_now(double seconds) {
    uint64_t now = shm::monotonic_ns();
    return {now + uint64_t(seconds * warm_up_share * 1e9), now + uint64_t(seconds * 1e9)};
  }
  bool holds(uint64_t ns) const { return ns >= start_ns && ns < end_ns; }
  double seconds() const { return double(end_ns - start_ns) / 1e9; }
};

CommitRun finish_run(LatencySamples& samples, const Window& window, uint32_t record_bytes) {
  CommitRun run;
  run.commits_per_second = double(samples.commits) / window.seconds();
  run.p50_us = samples.percentile_ns(0.50) / 1e3;
  run.p99_us = samples.percentile_ns(0.99) / 1e3;
  run.payload_megabytes_per_second = run.commits_per_second * record_bytes / 1e6;
  return run;
}

// Incompressible bytes that records are cut from, each record at another offset: no two
// records and no two 4 KiB blocks on disk alike, so that storage that compresses or
// deduplicates gains nothing. 16 MiB, made once, page-aligned for O_DIRECT. The records
// come from 4 KiB pages, as a client's memory would; the device's own figures write from
// huge pages (persist::allocate_io_buffer), their best.
class PayloadPool {
 public:
  static constexpr size_t pool_bytes = 16ULL << 20;
  static constexpr size_t alignment = 4096;
  explicit PayloadPool(bool huge_pages = false, uint64_t seed = 42)
      : bytes_(persist::allocate_io_buffer(pool_bytes, huge_pages)) {
    std::mt19937_64 random(seed);
    for (size_t offset = 0; offset < pool_bytes; offset += 8) {
      uint64_t word = random();
      std::memcpy(bytes_.get() + offset, &word, 8);
    }
  }
  // Record `index` of `length` bytes (at most pool_bytes / 2). A prime stride, not a
  // multiple of 4 KiB, walks every offset in turn.
  std::span<const std::byte> record(uint64_t index, size_t length) const {
    return {bytes_.get() + (index * 1'000'003) % (pool_bytes - length), length};
  }
  // The same, starting on a 4 KiB boundary.
  std::span<const std::byte> aligned_record(uint64_t index, size_t length) const {
    size_t offset = (index * 1'000'003) % (pool_bytes - length);
    return {bytes_.get() + offset / alignment * alignment, length};
  }

 private:
  persist::IoBuffer bytes_;
};

// ---- keel: one ShardLog + Persister driven from one thread ----------------------------

// The persist tile's loop (engine/node/persist_tile.cc) with `committers` closed-loop
// clients, each with one commit in flight: a committer issues its next record the moment
// its previous one is durable. Each pass does what PersistTile::poll does: reap the
// commits that completed (their committers issue again), stage up to persist_poll_budget
// issued records, and submit what is staged when fewer than the Persister's
// commits_in_flight_max (2) commits are in flight (one writev linked to one fdatasync on
// io_uring). So, as in the engine, records issued while commits are in flight are staged
// meanwhile and form the next group. A commit's latency runs from its issue to the end of
// the group that made it durable. With nothing to stage or submit the thread waits for a
// completion in io_uring_wait_cqe, or, with busy_poll, keeps polling as a persist tile
// with a core of its own does (on a 2-core machine that poller takes the core the
// kernel's io-wq worker running the fdatasync would use, so blocking is the default).
Result<CommitRun> run_keel(const PayloadPool& pool, const std::string& directory, uint32_t committers,
                           uint32_t record_bytes, const WalBenchOptions& options, std::string* backend) {
  double seconds = options.seconds_per_run;
  bool busy_poll = options.keel_busy_poll;
  persist::RecoveredLog empty;  // a fresh directory: nothing to recover
  // As the engine runs it ([ledger] segment_preallocate, segment_recycled_max): commits
  // overwrite written blocks, of a dropped segment file kept for reuse, or else of a spare
  // written full of zeros ahead. The engine drops the files behind its snapshots; here
  // every whole file behind the durable end is dropped after each commit, the steady state
  // of a log whose snapshots keep up (its first spare is zeroed at set-up and one more
  // during the run, before the first dropped file is at hand).
  persist::LogOptions log_options{.preallocate_segments = true,
                                  .recycled_segments_max = 2,
                                  .huge_page_buffers = !options.keel_small_pages};
  Result<std::unique_ptr<persist::ShardLog>> opened =
      persist::ShardLog::open(directory, {"bench-wal", 0, 1}, log_options, empty);
  if (!opened) return opened.error();
  persist::ShardLog& log = **opened;
  // Set-up, as RocksDB's open is: a running engine has its spare ready. The spares after
  // it are written during the run, competing with the commits, as in the engine.
  while (!log.spare_ready()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::string note;
  Result<std::unique_ptr<persist::Persister>> created = persist::Persister::create({.commits_in_flight_max = options.keel_commits_in_flight}, &note);
  if (!created) return created.error();
  persist::Persister& persister = **created;
  *backend = persister.backend() == persist::Backend::io_uring ? "io_uring" : "psync (" + note + ")";
  persister.add_log(&log);
  // Committers that issued at the same moment travel together.
  struct Cohort {
    uint64_t issued_ns;
    uint32_t count;
  };
  LatencySamples samples;
  samples.entries.reserve(1 << 16);
  uint64_t groups = 0, stage_ns = 0, submit_ns = 0, wait_ns = 0, record_index = 0;
  Window window = Window::starting_now(seconds);
  std::deque<Cohort> issued{{shm::monotonic_ns(), committers}};
  std::vector<Cohort> staged;
  // Commits in flight, oldest first: the sequence their records end at, and who waits.
  struct Group {
    uint64_t end_sequence;
    std::vector<Cohort> cohorts;
  };
  std::deque<Group> in_flight;
  for (;;) {
    uint64_t now_ns = shm::monotonic_ns();
    bool issuing = now_ns < window.end_ns;
    if (!issuing && in_flight.empty()) break;
    if (!in_flight.empty()) {
      // Nothing to stage and nothing to submit: wait for a completion (or poll for one).
      bool idle = (issued.empty() || !issuing) &&
                  (staged.empty() || !persister.can_submit() || !log.can_begin_commit());
      Result<bool> durable = persister.poll(idle && !busy_poll);
      if (!durable) return durable.error();
      uint64_t reaped_ns = shm::monotonic_ns();
      if (idle && window.holds(reaped_ns)) wait_ns += reaped_ns - now_ns;
      while (!in_flight.empty() && log.durable_sequence() >= in_flight.front().end_sequence) {
        if (window.holds(reaped_ns)) ++groups;
        for (const Cohort& cohort : in_flight.front().cohorts) {
          if (window.holds(reaped_ns)) samples.add(reaped_ns - cohort.issued_ns, cohort.count);
          issued.push_back({reaped_ns, cohort.count});
        }
        in_flight.pop_front();
      }
      if (*durable && log.segment_count() > 1) {
        if (Result<void> dropped = log.drop_segments_before(log.durable_sequence()); !dropped) return dropped.error();
      }
    }
    uint64_t stage_start_ns = shm::monotonic_ns();
    uint32_t budget = persist_poll_budget;
    while (issuing && budget > 0 && !issued.empty() && log.fits(record_bytes)) {
      Cohort& cohort = issued.front();
      std::span<const std::byte> record = pool.record(record_index++, record_bytes);
      if (Result<uint64_t> sequence = log.stage(record_type_bench, record); !sequence) return sequence.error();
      if (staged.empty() || staged.back().issued_ns != cohort.issued_ns) staged.push_back({cohort.issued_ns, 0});
      staged.back().count += 1;
      --budget;
      if (--cohort.count == 0) issued.pop_front();
    }
    uint64_t staged_ns = shm::monotonic_ns();
    if (window.holds(staged_ns)) stage_ns += staged_ns - stage_start_ns;
    // Beside a commit in flight, the next one goes only once everything issued is staged
    // (as the persist tile does): a second commit that takes a pass's worth of records
    // would split the group, and the device does better with fewer, larger writes.
    bool more_to_stage = issuing && !issued.empty() && log.fits(record_bytes);
    if (persister.can_submit() && !staged.empty() && (!persister.in_flight() || !more_to_stage)) {
      uint64_t end_sequence = log.next_sequence();
      Result<bool> started = persister.submit();
      if (!started) return started.error();
      // Not taken: the batch needs a new segment file while one is in flight; next pass.
      if (!*started && !persister.in_flight())
        return make_error("bench wal", "the persister took no commit with records staged");
      if (*started) {
        uint64_t submitted_ns = shm::monotonic_ns();
        if (window.holds(submitted_ns)) submit_ns += submitted_ns - staged_ns;
        in_flight.push_back({end_sequence, std::move(staged)});
        staged.clear();
      }
    }
  }
  CommitRun run = finish_run(samples, window, record_bytes);
  if (groups > 0) {
    run.stage_us = double(stage_ns) / double(groups) / 1e3;
    run.submit_us = double(submit_ns) / double(groups) / 1e3;
    run.wait_us = double(wait_ns) / double(groups) / 1e3;
    run.group_records = double(samples.commits) / double(groups);
  }
  return run;
}

// ---- the threaded baselines ---------------------------------------------------------

// Runs `commit(thread, count)` (one durable commit, or an Error) in `threads` threads,
// each a closed loop, for `seconds`; latency is measured around each call.
template <class Commit>
Result<CommitRun> run_threads(uint32_t threads, uint32_t record_bytes, double seconds, const Commit& commit) {
  struct PerThread {
    LatencySamples samples;
    std::optional<Error> error;
  };
  std::vector<PerThread> results(threads);
  std::atomic<uint32_t> ready{0};
  std::atomic<bool> go{false};
  Window window;
  std::vector<std::thread> workers;
  workers.reserve(threads);
  auto run_one = [&](uint32_t thread) {
    PerThread& mine = results[thread];
    mine.samples.entries.reserve(1024);
    ready.fetch_add(1);
    go.wait(false);
    for (uint64_t count = 0;; ++count) {
      uint64_t begin_ns = shm::monotonic_ns();
      if (begin_ns >= window.end_ns) break;
      if (Result<void> done = commit(thread, count); !done) {
        mine.error = done.error();
        break;
      }
      uint64_t end_ns = shm::monotonic_ns();
      if (window.holds(end_ns)) mine.samples.add(end_ns - begin_ns, 1);
    }
  };
  std::optional<Error> start_failure;
  for (uint32_t thread = 0; thread < threads && !start_failure; ++thread) {
    try {
      workers.emplace_back(run_one, thread);
    } catch (const std::system_error& error) {
      start_failure = make_error("bench wal", "cannot start thread " + std::to_string(thread) + " of " +
                                                  std::to_string(threads) + ": " + error.what());
    }
  }
  while (ready.load() < workers.size()) std::this_thread::yield();
  // After a failed start the window is already over: the started threads leave at once.
  window = start_failure ? Window{} : Window::starting_now(seconds);
  go.store(true);
  go.notify_all();
  for (std::thread& thread : workers) thread.join();
  if (start_failure) return *start_failure;
  LatencySamples all;
  for (PerThread& result : results) {
    if (result.error) return *result.error;
    all.merge(result.samples);
  }
  return finish_run(all, window, record_bytes);
}

// (a) Each thread appends its record at a position taken from an atomic counter (pwrite,
// one shared file) and fdatasyncs: the durable write without group commit.
Result<CommitRun> run_pwrite(const PayloadPool& pool, const std::string& directory, uint32_t threads,
                             uint32_t record_bytes, double seconds) {
  if (auto made = persist::create_directories(directory); !made) return made.error();
  std::string path = directory + "/wal";
  persist::UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!file.valid()) return persist::errno_error(path, "cannot create");
  std::atomic<uint64_t> file_end{0};
  auto commit = [&](uint32_t, uint64_t) -> Result<void> {
    uint64_t offset = file_end.fetch_add(record_bytes);
    std::span<const std::byte> record = pool.record(offset / record_bytes, record_bytes);
    if (auto written = persist::write_all(file.get(), offset, record, path); !written) return written.error();
    if (::fdatasync(file.get()) != 0) return persist::errno_error(path, "fdatasync failed");
    return {};
  };
  return run_threads(threads, record_bytes, seconds, commit);
}

// (b) RocksDB, default options but for create_if_missing and no compression (keel does not
// compress either), every Put with WriteOptions::sync: RocksDB's own group commit, in
// which a leader writes and fdatasyncs the WAL for the writers queued behind it.
Result<CommitRun> run_rocksdb(const PayloadPool& pool, const std::string& directory, uint32_t threads,
                              uint32_t record_bytes, double seconds) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression;
  rocksdb::DB* opened = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(options, directory, &opened);
  if (!status.ok()) return make_error(directory, "RocksDB open failed: " + status.ToString());
  std::unique_ptr<rocksdb::DB> db(opened);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  auto commit = [&](uint32_t thread, uint64_t count) -> Result<void> {
    // 16-byte keys, thread then count, big-endian: each thread appends its own range.
    uint64_t key_words[2] = {__builtin_bswap64(thread), __builtin_bswap64(count)};
    rocksdb::Slice key(reinterpret_cast<const char*>(key_words), sizeof key_words);
    std::span<const std::byte> record = pool.record(count * threads + thread, record_bytes);
    rocksdb::Slice value(reinterpret_cast<const char*>(record.data()), record.size());
    rocksdb::Status put = db->Put(write_options, key, value);
    if (!put.ok()) return make_error(directory, "RocksDB Put failed: " + put.ToString());
    return {};
  };
  Result<CommitRun> run = run_threads(threads, record_bytes, seconds, commit);
  status = db->Close();
  db.reset();
  if (run && !status.ok()) return make_error(directory, "RocksDB close failed: " + status.ToString());
  rocksdb::DestroyDB(directory, options);
  return run;
}

// (c) The device's ceiling for synchronous writes: 8 MiB sequential writes with one
// fdatasync after each, for `seconds`, with O_DIRECT, from huge pages (`pool` is a huge-page
// pool): the device's own bandwidth. From 4 KiB pages an 8 MiB write is cut into 9
// requests (254 segments each on virtio) and pinned page by page, and measured only
// 0.54-0.67 of this in a C loop here (perf/RESULTS.md): a ceiling that low would flatter
// keel. (Through
// the page cache, one 8 MiB write() costs more than the device: buffered writes that big
// measured 360-840 MB/s here, far under the device and under keel's 1 MB commits.)
// Appending, as a log without preallocation does (each fdatasync also commits the file's
// new size and extents to the journal); or overwriting `overwrite_path`, a file written
// full of zeros beforehand, cycling through it, as keel's preallocated segments do (data
// only). Returns MB/s.
Result<double> run_ceiling(const PayloadPool& pool, const std::string& directory, double seconds,
                           const std::string& overwrite_path = "") {
  std::string path = overwrite_path;
  persist::UniqueFd file;
  if (overwrite_path.empty()) {
    if (auto made = persist::create_directories(directory); !made) return made.error();
    path = directory + "/ceiling";
    file.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644));
    if (!file.valid()) return persist::errno_error(path, "cannot create with O_DIRECT");
  } else {
    file.reset(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT));
    if (!file.valid()) return persist::errno_error(path, "cannot open with O_DIRECT");
  }
  uint64_t start_ns = shm::monotonic_ns(), end_ns = start_ns + uint64_t(seconds * 1e9), now_ns = start_ns;
  uint64_t bytes = 0;
  while (now_ns < end_ns) {
    std::span<const std::byte> chunk = pool.aligned_record(bytes / ceiling_chunk_bytes, ceiling_chunk_bytes);
    uint64_t offset = overwrite_path.empty() ? bytes : bytes % ceiling_overwrite_file_bytes;
    if (auto written = persist::write_all(file.get(), offset, chunk, path); !written) return written.error();
    if (::fdatasync(file.get()) != 0) return persist::errno_error(path, "fdatasync failed");
    bytes += chunk.size();
    now_ns = shm::monotonic_ns();
  }
  return double(bytes) / (double(now_ns - start_ns) / 1e9) / 1e6;
}

// (d) The device alone with what N closed-loop committers can keep in flight:
// `write_bytes` at a time, `depth` writes in flight (each linked to its fdatasync, on
// io_uring), overwriting `overwrite_path` from huge pages, no CPU work between. No log can
// beat it at that concurrency: each committer waits for its commit before issuing the next,
// so at most N records are ever on their way to the device. Returns MB/s.
Result<double> run_device_in_flight(const PayloadPool& pool, const std::string& overwrite_path, uint64_t write_bytes,
                                    uint32_t depth, double seconds) {
  persist::UniqueFd file(::open(overwrite_path.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT));
  if (!file.valid()) return persist::errno_error(overwrite_path, "cannot open with O_DIRECT");
  io_uring ring;
  if (int failed = io_uring_queue_init(8, &ring, 0); failed < 0) {
    return make_error(overwrite_path, "io_uring_queue_init: " + persist::errno_text(-failed));
  }
  struct RingGuard {
    io_uring* ring;
    ~RingGuard() { io_uring_queue_exit(ring); }
  } guard{&ring};
  uint64_t start_ns = shm::monotonic_ns(), end_ns = start_ns + uint64_t(seconds * 1e9), now_ns = start_ns;
  uint64_t offset = 0, bytes = 0, writes = 0;
  uint32_t in_flight = 0;
  for (;;) {
    while (in_flight < depth && now_ns < end_ns) {
      if (offset + write_bytes > ceiling_overwrite_file_bytes) offset = 0;
      std::span<const std::byte> chunk = pool.aligned_record(writes++, write_bytes);
      io_uring_sqe* write = io_uring_get_sqe(&ring);
      io_uring_prep_write(write, file.get(), chunk.data(), unsigned(chunk.size()), offset);
      write->flags |= IOSQE_IO_LINK;
      write->user_data = 0;
      io_uring_sqe* sync = io_uring_get_sqe(&ring);
      io_uring_prep_fsync(sync, file.get(), IORING_FSYNC_DATASYNC);
      sync->user_data = 1;
      if (int submitted = io_uring_submit(&ring); submitted < 0) {
        return make_error(overwrite_path, "io_uring_submit: " + persist::errno_text(-submitted));
      }
      offset += write_bytes;
      ++in_flight;
    }
    if (in_flight == 0) break;
    io_uring_cqe* completion = nullptr;
    if (int waited = io_uring_wait_cqe(&ring, &completion); waited < 0) {
      return make_error(overwrite_path, "io_uring_wait_cqe: " + persist::errno_text(-waited));
    }
    int32_t result = completion->res;
    bool synced = completion->user_data == 1;
    io_uring_cqe_seen(&ring, completion);
    // A short O_DIRECT write of an allocated file does not happen here; count it as an
    // error rather than resubmit, this loop measures the device, not a log.
    if (result < 0 || (!synced && uint64_t(result) != write_bytes)) {
      return make_error(overwrite_path, "write or fdatasync failed: " +
                                            (result < 0 ? persist::errno_text(-result) : "short write"));
    }
    if (synced) {
      --in_flight;
      bytes += write_bytes;
    }
    now_ns = shm::monotonic_ns();
  }
  return double(bytes) / (double(now_ns - start_ns) / 1e9) / 1e6;
}

Result<CommitRun> run_system(const PayloadPool& pool, ScratchFolder& scratch, System system, uint32_t committers,
                             uint32_t record_bytes, const WalBenchOptions& options, std::string* keel_backend) {
  double seconds = options.seconds_per_run;
  std::string path = scratch.run_path(system_name(system));
  Result<CommitRun> run = make_error("bench wal", "no such system");
  switch (system) {
    case System::keel: run = run_keel(pool, path, committers, record_bytes, options, keel_backend); break;
    case System::pwrite: run = run_pwrite(pool, path, committers, record_bytes, seconds); break;
    case System::rocksdb: run = run_rocksdb(pool, path, committers, record_bytes, seconds); break;
  }
  scratch.remove_run(path);
  return run;
}

// ---- aggregation and report ---------------------------------------------------------

struct Series {
  Figure commits_per_second, p50_us, p99_us, payload_megabytes_per_second;
  Figure stage_us, submit_us, wait_us, group_records;  // keel only
  void add(const CommitRun& run) {
    stage_us.samples.push_back(run.stage_us);
    submit_us.samples.push_back(run.submit_us);
    wait_us.samples.push_back(run.wait_us);
    group_records.samples.push_back(run.group_records);
    commits_per_second.samples.push_back(run.commits_per_second);
    p50_us.samples.push_back(run.p50_us);
    p99_us.samples.push_back(run.p99_us);
    payload_megabytes_per_second.samples.push_back(run.payload_megabytes_per_second);
  }
};

struct WalResults {
  std::vector<std::string> order;  // keys in report order
  std::map<std::string, Series> series;
  Figure ceiling_megabytes_per_second;            // O_DIRECT, appending
  Figure ceiling_overwrite_megabytes_per_second;  // O_DIRECT, overwriting a zeroed file
  Figure ceiling_best_megabytes_per_second;       // the higher of the two, per repetition
  // (d) for 1,024 x 1 KiB: the device with the bytes 1,024 committers keep in flight, as
  // one write at a time or two halves at a time, and the higher, per repetition.
  Figure in_flight_one_megabytes_per_second, in_flight_two_megabytes_per_second, in_flight_best_megabytes_per_second;
  std::string keel_backend;
};

bool selected(const std::vector<uint32_t>& only, uint32_t value) {
  return only.empty() || std::find(only.begin(), only.end(), value) != only.end();
}

std::vector<Target> wal_targets(const WalBenchOptions& options, WalResults& results) {
  std::vector<Target> targets;
  auto cps = [&](System system, uint32_t bytes, uint32_t committers) -> const Figure& {
    return results.series[figure_key(system, bytes, committers)].commits_per_second;
  };
  for (uint32_t bytes : record_sizes) {
    if (!selected(options.record_bytes_only, bytes)) continue;
    std::string size = std::to_string(bytes) + "B";
    for (uint32_t committers : committer_counts) {
      if (!selected(options.committers_only, committers)) continue;
      double threshold_rocksdb = committers == 64 ? 3.0 : 0.0, threshold_pwrite = committers == 64 ? 10.0 : 0.0;
      std::string at = std::to_string(committers) + " committers, " + size;
      targets.push_back({"keel / RocksDB sync, " + at, paired_ratio(cps(System::keel, bytes, committers), cps(System::rocksdb, bytes, committers)), threshold_rocksdb});
      targets.push_back({"keel / pwrite+fdatasync, " + at, paired_ratio(cps(System::keel, bytes, committers), cps(System::pwrite, bytes, committers)), threshold_pwrite});
    }
  }
  if (!selected(options.record_bytes_only, 1024) || !selected(options.committers_only, 1024)) return targets;
  const Figure& keel_bandwidth = results.series[figure_key(System::keel, 1024, 1024)].payload_megabytes_per_second;
  targets.push_back({"keel MB/s (1024 committers, 1024B) / device ceiling", paired_ratio(keel_bandwidth, results.ceiling_best_megabytes_per_second), 0.8});
  if (results.in_flight_best_megabytes_per_second.samples.empty()) return targets;  // not measured here
  // For reference: how much of the ceiling 1,024 commits in flight can use at all, and how
  // much of that keel does (payload against payload: the device's bytes there include each
  // record's 32-byte header, which keel's MB/s leaves out).
  Figure in_flight_payload = results.in_flight_best_megabytes_per_second;
  for (double& sample : in_flight_payload.samples) sample *= 1024.0 / (1024.0 + sizeof(persist::RecordHeader));
  targets.push_back({"device, 1024 commits of 1024B in flight / device ceiling", paired_ratio(results.in_flight_best_megabytes_per_second, results.ceiling_best_megabytes_per_second), 0});
  targets.push_back({"keel MB/s (1024 committers, 1024B) / device with them in flight", paired_ratio(keel_bandwidth, in_flight_payload), 0});
  return targets;
}

void print_json(const WalBenchOptions& options, const std::string& directory, WalResults& results,
                const std::vector<Target>& targets) {
  nlohmann::json json;
  json["benchmark"] = "wal";
  json["machine"] = machine_line();
  json["directory"] = directory;
  json["keel_backend"] = results.keel_backend;
  json["repetitions"] = options.repetitions;
  json["seconds_per_run"] = options.seconds_per_run;
  for (const std::string& key : results.order) {
    Series& series = results.series[key];
    json["commits_per_second"][key] = series.commits_per_second.json();
    json["latency_us"][key] = {{"p50_median", series.p50_us.median()}, {"p50_min", series.p50_us.min()},
                               {"p50_max", series.p50_us.max()}, {"p99_median", series.p99_us.median()},
                               {"p99_min", series.p99_us.min()}, {"p99_max", series.p99_us.max()}};
    json["payload_megabytes_per_second"][key] = series.payload_megabytes_per_second.json();
    if (key.rfind("keel.", 0) == 0) {
      json["keel_group_commit_us"][key] = {{"stage_median", series.stage_us.median()},
                                           {"submit_median", series.submit_us.median()},
                                           {"wait_median", series.wait_us.median()},
                                           {"records_per_group_median", series.group_records.median()}};
    }
  }
  json["ceiling_megabytes_per_second"] = results.ceiling_megabytes_per_second.json();
  json["ceiling_overwrite_megabytes_per_second"] = results.ceiling_overwrite_megabytes_per_second.json();
  json["ceiling_best_megabytes_per_second"] = results.ceiling_best_megabytes_per_second.json();
  json["device_in_flight_one_write_megabytes_per_second"] = results.in_flight_one_megabytes_per_second.json();
  json["device_in_flight_two_writes_megabytes_per_second"] = results.in_flight_two_megabytes_per_second.json();
  json["device_in_flight_best_megabytes_per_second"] = results.in_flight_best_megabytes_per_second.json();
  add_targets_json(json, targets);
  std::printf("%s\n", json.dump().c_str());
}

void print_table(const WalBenchOptions& options, const std::string& directory, WalResults& results,
                 const std::vector<Target>& targets) {
  std::printf("machine: %s\nfiles in %s; keel persister: %s\n", machine_line().c_str(), directory.c_str(),
              results.keel_backend.c_str());
  std::printf("medians of %u repetitions of %.2f s, keel and baselines interleaved\n\n", options.repetitions,
              options.seconds_per_run);
  std::printf("%-40s %11s %11s %11s %10s %10s %9s\n", "durable commits/s", "median", "min", "max", "p50 us",
              "p99 us", "MB/s");
  for (const std::string& key : results.order) {
    Series& series = results.series[key];
    std::printf("%-40s %11.0f %11.0f %11.0f %10.1f %10.1f %9.1f\n", key.c_str(), series.commits_per_second.median(),
                series.commits_per_second.min(), series.commits_per_second.max(), series.p50_us.median(),
                series.p99_us.median(), series.payload_megabytes_per_second.median());
  }
  std::printf("\n%-40s %11s %11s %11s %11s\n", "keel per group commit (us, medians)", "stage", "submit", "wait",
              "records");
  for (const std::string& key : results.order) {
    if (key.rfind("keel.", 0) != 0) continue;
    Series& series = results.series[key];
    std::printf("%-40s %11.1f %11.1f %11.1f %11.1f\n", key.c_str(), series.stage_us.median(), series.submit_us.median(),
                series.wait_us.median(), series.group_records.median());
  }
  const Figure& ceiling = results.ceiling_megabytes_per_second;
  const Figure& overwrite = results.ceiling_overwrite_megabytes_per_second;
  const Figure& best = results.ceiling_best_megabytes_per_second;
  std::printf("\n%-40s %11.1f %11.1f %11.1f\n", "device ceiling MB/s, 8 MiB appends", ceiling.median(), ceiling.min(),
              ceiling.max());
  std::printf("%-40s %11.1f %11.1f %11.1f\n", "  8 MiB overwrites of a zeroed file", overwrite.median(), overwrite.min(),
              overwrite.max());
  std::printf("%-40s %11.1f %11.1f %11.1f\n", "  the higher, per repetition", best.median(), best.min(), best.max());
  auto row = [](const char* name, const Figure& figure) {
    std::printf("%-40s %11.1f %11.1f %11.1f\n", name, figure.median(), figure.min(), figure.max());
  };
  row("device, 1024 x 1 KiB in flight: 1 write", results.in_flight_one_megabytes_per_second);
  row("  as 2 writes of half, both in flight", results.in_flight_two_megabytes_per_second);
  row("  the higher, per repetition", results.in_flight_best_megabytes_per_second);
  print_targets(targets);
}

}  // namespace

int run_wal_bench(const WalBenchOptions& options) {
  if (options.repetitions == 0 || !(options.seconds_per_run >= 0.05)) {
    std::fprintf(stderr, "keel bench wal: --repetitions must be at least 1 and --seconds at least 0.05\n");
    return 2;
  }
  for (uint32_t committers : options.committers_only) {
    if (std::find(std::begin(committer_counts), std::end(committer_counts), committers) == std::end(committer_counts)) {
      std::fprintf(stderr, "keel bench wal: --committers %u is not one of 1, 8, 64, 1024\n", committers);
      return 2;
    }
  }
  for (uint32_t bytes : options.record_bytes_only) {
    if (std::find(std::begin(record_sizes), std::end(record_sizes), bytes) == std::end(record_sizes)) {
      std::fprintf(stderr, "keel bench wal: --record-bytes %u is not one of 100, 1024\n", bytes);
      return 2;
    }
  }
  ScratchFolder scratch(options.directory, "data/bench-wal");
  if (auto created = scratch.create(); !created) {
    std::fprintf(stderr, "keel bench wal: %s\n", created.error().message.c_str());
    return 1;
  }
  WalResults results;
  PayloadPool pool;
  PayloadPool device_pool(true, 43);
  bool in_flight_noted = false;
  // Written once, overwritten by every repetition's overwrite ceiling.
  std::string overwrite_path = scratch.path() + "/ceiling-overwrite";
  if (auto zeroed = persist::write_zero_file(overwrite_path, ceiling_overwrite_file_bytes, true); !zeroed) {
    std::fprintf(stderr, "keel bench wal: %s\n", zeroed.error().message.c_str());
    return 1;
  }
  if (!options.json) {
    std::fprintf(stderr, "keel bench wal: %u repetitions of %.2f s per figure, files in %s\n", options.repetitions,
                 options.seconds_per_run, scratch.path().c_str());
  }
  for (uint32_t repetition = 0; repetition < options.repetitions; ++repetition) {
    for (uint32_t bytes : record_sizes) {
      if (!selected(options.record_bytes_only, bytes)) continue;
      for (uint32_t committers : committer_counts) {
        if (!selected(options.committers_only, committers)) continue;
        // keel and its baselines back to back, so drift in the device hits all alike.
        for (System system : {System::keel, System::pwrite, System::rocksdb}) {
          std::string key = figure_key(system, bytes, committers);
          Result<CommitRun> run = run_system(pool, scratch, system, committers, bytes, options, &results.keel_backend);
          if (!run) {
            std::fprintf(stderr, "keel bench wal: %s: %s\n", key.c_str(), run.error().message.c_str());
            return 1;
          }
          if (repetition == 0) results.order.push_back(key);
          results.series[key].add(*run);
          // The ceiling right after the run it is compared with: this device's bandwidth
          // drifts within a minute.
          if (system == System::keel && bytes == 1024 && committers == 1024) {
            std::string path = scratch.run_path("ceiling");
            Result<double> ceiling = run_ceiling(device_pool, path, options.seconds_per_run);
            scratch.remove_run(path);
            Result<double> overwrite =
                ceiling ? run_ceiling(device_pool, "", options.seconds_per_run, overwrite_path) : ceiling;
            if (!ceiling || !overwrite) {
              std::fprintf(stderr, "keel bench wal: ceiling: %s\n",
                           (ceiling ? overwrite : ceiling).error().message.c_str());
              return 1;
            }
            results.ceiling_megabytes_per_second.samples.push_back(*ceiling);
            results.ceiling_overwrite_megabytes_per_second.samples.push_back(*overwrite);
            results.ceiling_best_megabytes_per_second.samples.push_back(std::max(*ceiling, *overwrite));
            // Every committer's record and header in flight, in whole 4 KiB blocks.
            uint64_t in_flight_bytes = (uint64_t(committers) * (bytes + sizeof(persist::RecordHeader)) + 4095) / 4096 * 4096;
            uint64_t half_bytes = (in_flight_bytes / 2 + 4095) / 4096 * 4096;
            Result<double> one = run_device_in_flight(device_pool, overwrite_path, in_flight_bytes, 1, options.seconds_per_run);
            Result<double> two =
                one ? run_device_in_flight(device_pool, overwrite_path, half_bytes, 2, options.seconds_per_run) : one;
            if (!one || !two) {
              // Not fatal: only this reference figure needs io_uring (keel may have fallen
              // back to psync); said once.
              if (!in_flight_noted) {
                std::fprintf(stderr, "keel bench wal: device in flight not measured: %s\n",
                             (one ? two : one).error().message.c_str());
                in_flight_noted = true;
              }
              continue;
            }
            results.in_flight_one_megabytes_per_second.samples.push_back(*one);
            results.in_flight_two_megabytes_per_second.samples.push_back(*two);
            results.in_flight_best_megabytes_per_second.samples.push_back(std::max(*one, *two));
          }
        }
      }
    }
    if (!options.json) std::fprintf(stderr, "  repetition %u of %u done\n", repetition + 1, options.repetitions);
  }
  std::vector<Target> targets = wal_targets(options, results);
  if (options.json) {
    print_json(options, scratch.path(), results, targets);
  } else {
    print_table(options, scratch.path(), results, targets);
  }
  return 0;
}

}  // namespace keel::perf
