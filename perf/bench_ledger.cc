#include "perf/bench_ledger.h"

#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/ledger/hash.h"
#include "engine/ledger/merkle.h"
#include "engine/ledger/shard.h"
#include "engine/ledger/snapshot.h"
#include "engine/ledger/transaction.h"
#include "engine/persist/persister.h"
#include "engine/persist/recovery.h"
#include "engine/persist/shard_log.h"
#include "perf/bench_report.h"
#include "shm/segment.h"

namespace keel::perf {
namespace {

constexpr uint64_t account_count = 100'000;
constexpr int64_t opening_balance = int64_t(1) << 50;  // no transfer of the stream can run dry
constexpr uint16_t record_type_block = persist::record_type_first_opaque;  // as the persist tile logs blocks
constexpr double target_transfers_per_second = 1'000'000;

// The transfers, encoded once (not timed) and run through every measurement.
struct TransferStream {
  std::vector<std::byte> bytes;
  uint32_t tx_bytes = 0;  // every transfer encodes to the same size
  uint64_t count = 0;
  std::span<const std::byte> transfer(uint64_t index) const { return {bytes.data() + index * tx_bytes, tx_bytes}; }
};

// Uniformly random pairs of distinct accounts, amounts 1 to 100.
TransferStream make_stream(uint64_t count) {
  TransferStream stream;
  std::mt19937_64 random(7);
  std::uniform_int_distribution<uint64_t> account(1, account_count), amount(1, 100);
  for (uint64_t index = 0; index < count; ++index) {
    uint64_t from = account(random), to = account(random);
    while (to == from) to = account(random);
    std::vector<std::byte> transfer = ledger::encode_transfer(/*nonce=*/index, from, to, amount(random));
    if (index == 0) {
      stream.tx_bytes = uint32_t(transfer.size());
      stream.bytes.reserve(count * transfer.size());
    }
    stream.bytes.insert(stream.bytes.end(), transfer.begin(), transfer.end());
  }
  stream.count = count;
  return stream;
}

// Accounts 1 .. account_count on the one shard, as if created before the run.
ledger::ShardState make_accounts() {
  ledger::ShardState state(/*shard=*/0, /*shard_count=*/1);
  state.accounts.reserve(account_count);
  for (uint64_t account = 1; account <= account_count; ++account) state.accounts[account] = {opening_balance, 0};
  return state;
}

uint64_t wall_clock_ns() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000 + uint64_t(now.tv_nsec);
}

struct ShardRun {
  double transfers_per_second = 0;
  double seconds = 0;
  uint64_t blocks = 0;
  uint64_t commits = 0;
  uint64_t waits = 0;          // sealed blocks that had to wait for the commit in flight
  double wait_seconds = 0;     // time spent in those waits (and in the final one)
};

// The shard core: check, execute, seal every `block_txs`, and hand each block to the
// group commit without waiting for it, as the shard and persist tiles do. The log holds
// two batches (one in flight, one staging); only when a block is sealed while the
// previous one still waits in staging behind a commit in flight does the core wait.
class ShardCore {
 public:
  ShardCore(persist::ShardLog* log, persist::Persister* persister, uint32_t block_txs, ledger::ShardState accounts)
      : executor_({"bench-ledger", 0, 1}, {block_txs, std::max<uint32_t>(4u << 20, block_txs * 64)}),
        log_(log),
        persister_(persister) {
    executor_.restore(std::move(accounts));
  }

  Result<void> run(const TransferStream& stream, uint32_t block_txs, ShardRun& run) {
    for (uint64_t index = 0; index < stream.count; ++index) {
      std::span<const std::byte> bytes = stream.transfer(index);
      ledger::TxView view;
      if (ledger::check_transaction(bytes, ledger::TxOrigin::client, &view) != ledger::TxStatus::applied) {
        return make_error("bench ledger", "transfer " + std::to_string(index) + " is malformed");
      }
      if (!executor_.has_room(bytes.size())) {
        if (auto sealed = seal_and_commit(run); !sealed) return sealed;
      }
      if (ledger::TxStatus status = executor_.execute(view, bytes); status != ledger::TxStatus::applied) {
        return make_error("bench ledger",
                          "transfer " + std::to_string(index) + ": " + std::string(ledger::status_text(status)));
      }
      if (executor_.open_tx_count() == block_txs) {
        if (auto sealed = seal_and_commit(run); !sealed) return sealed;
      }
    }
    if (executor_.open_tx_count() > 0) {
      if (auto sealed = seal_and_commit(run); !sealed) return sealed;
    }
    return drain(run);
  }

 private:
  Result<void> seal_and_commit(ShardRun& run) {
    ledger::SealedBlock block = executor_.seal(wall_clock_ns());
    run.blocks += 1;
    if (auto polled = poll(false, run); !polled) return polled;
    if (persister_->in_flight() && log_->staged_bytes() > 0) {
      // A block already waits behind the commit in flight: this one would be a second.
      uint64_t start_ns = shm::monotonic_ns();
      if (auto polled = poll(true, run); !polled) return polled;
      run.waits += 1;
      run.wait_seconds += double(shm::monotonic_ns() - start_ns) / 1e9;
    }
    if (Result<uint64_t> staged = log_->stage(record_type_block, block.record); !staged) return staged.error();
    return submit();
  }

  Result<void> poll(bool wait, ShardRun& run) {
    if (!persister_->in_flight()) return {};
    Result<bool> durable = persister_->poll(wait);
    if (!durable) return durable.error();
    if (*durable) run.commits += 1;
    if (wait && !*durable) return make_error("bench ledger", "a waited-for commit did not end");
    return {};
  }

  Result<void> submit() {
    if (persister_->in_flight()) return {};
    Result<bool> started = persister_->submit();
    if (!started) return started.error();
    return {};
  }

  // Waits until every sealed block is durable.
  Result<void> drain(ShardRun& run) {
    uint64_t start_ns = shm::monotonic_ns();
    while (log_->durable_sequence() < log_->next_sequence()) {
      if (auto polled = poll(true, run); !polled) return polled;
      if (auto submitted = submit(); !submitted) return submitted;
    }
    run.wait_seconds += double(shm::monotonic_ns() - start_ns) / 1e9;
    if (log_->durable_sequence() != run.blocks) return make_error("bench ledger", "blocks sealed and logged differ");
    return {};
  }

  ledger::ShardExecutor executor_;
  persist::ShardLog* log_;
  persist::Persister* persister_;
};

// One measured run on a fresh log in `directory`: from the first transfer until the last
// block is durable (written, with fsync always also fdatasynced).
Result<ShardRun> run_shard(const TransferStream& stream, const ledger::ShardState& accounts, uint32_t block_txs,
                           persist::FsyncPolicy fsync, const std::string& directory, std::string* backend) {
  persist::RecoveredLog empty;  // a fresh directory: nothing to recover
  Result<std::unique_ptr<persist::ShardLog>> log =
      persist::ShardLog::open(directory, {"bench-ledger", 0, 1}, persist::LogOptions{}, empty);
  if (!log) return log.error();
  persist::PersisterOptions persister_options;
  persister_options.fsync = fsync;
  std::string note;
  Result<std::unique_ptr<persist::Persister>> persister = persist::Persister::create(persister_options, &note);
  if (!persister) return persister.error();
  *backend = (*persister)->backend() == persist::Backend::io_uring ? "io_uring" : "psync (" + note + ")";
  (*persister)->add_log(log->get());
  ShardCore core(log->get(), persister->get(), block_txs, accounts);
  ShardRun run;
  uint64_t start_ns = shm::monotonic_ns();
  if (auto ran = core.run(stream, block_txs, run); !ran) return ran.error();
  run.seconds = double(shm::monotonic_ns() - start_ns) / 1e9;
  run.transfers_per_second = double(stream.count) / run.seconds;
  return run;
}

// Hashing alone over the same stream: each transfer's leaf hash, and the Merkle root of
// every block. Returns seconds.
double run_hashing(const TransferStream& stream, uint32_t block_txs) {
  std::vector<ledger::Hash32> leaves, scratch;
  leaves.reserve(block_txs);
  uint8_t sink = 0;
  uint64_t start_ns = shm::monotonic_ns();
  for (uint64_t index = 0; index < stream.count; ++index) {
    leaves.push_back(ledger::hash_leaf(stream.transfer(index)));
    if (leaves.size() == block_txs || index + 1 == stream.count) {
      sink ^= ledger::block_merkle_root(ledger::block_format_version, leaves, scratch).bytes[0];
      leaves.clear();
    }
  }
  double seconds = double(shm::monotonic_ns() - start_ns) / 1e9;
  asm volatile("" : : "r"(sink));  // the roots are used
  return seconds;
}

// ---- aggregation and report ---------------------------------------------------------

struct LedgerResults {
  Figure durable, no_fsync, hashing;  // transfers/s
  Figure hashing_share;               // hashing seconds / durable seconds, run by run
  Figure durable_waits, durable_wait_ms, commits;
  // A snapshot's cost (engine/node/snapshot_writer.h): the shard core copies its state;
  // the writer thread serializes it (sorted, canonical) before writing.
  Figure snapshot_copy_ms, snapshot_serialize_ms;
  uint64_t blocks = 0;
  std::string backend;
};

void print_report(const LedgerBenchOptions& options, const std::string& directory, uint32_t tx_bytes,
                  LedgerResults& results) {
  // The target is an absolute rate, so its ratio is the median over 1,000,000/s.
  std::vector<Target> targets = {
      {"durable transfers/s / 1,000,000 per shard core", results.durable.median() / target_transfers_per_second, 1.0},
      {"durable / fsync none", paired_ratio(results.durable, results.no_fsync), 0.0}};
  if (options.json) {
    nlohmann::json json;
    json["benchmark"] = "ledger";
    json["machine"] = machine_line();
    json["directory"] = directory;
    json["persister_backend"] = results.backend;
    json["repetitions"] = options.repetitions;
    json["transfers_per_run"] = options.transfers;
    json["block_txs"] = options.block_txs;
    json["accounts"] = account_count;
    json["transfer_bytes"] = tx_bytes;
    json["blocks_per_run"] = results.blocks;
    json["transfers_per_second"] = {{"durable_fsync_always", results.durable.json()},
                                    {"fsync_none", results.no_fsync.json()},
                                    {"hashing_only", results.hashing.json()}};
    json["hashing_share_of_durable_time"] = results.hashing_share.json();
    json["durable_commits_per_run"] = results.commits.json();
    json["durable_blocks_that_waited_per_run"] = results.durable_waits.json();
    json["durable_wait_ms_per_run"] = results.durable_wait_ms.json();
    json["snapshot_state_copy_ms"] = results.snapshot_copy_ms.json();
    json["snapshot_serialize_ms"] = results.snapshot_serialize_ms.json();
    json["snapshot_copy_ns_per_transfer_at_1024_blocks"] =
        results.snapshot_copy_ms.median() * 1e6 / (1024.0 * options.block_txs);
    add_targets_json(json, targets);
    std::printf("%s\n", json.dump().c_str());
    return;
  }
  std::printf("machine: %s\nfiles in %s; persister: %s\n", machine_line().c_str(), directory.c_str(),
              results.backend.c_str());
  std::printf("one shard, %llu accounts, %llu transfers of %u bytes per run, blocks of %u; medians of %u repetitions, interleaved\n\n",
              (unsigned long long)account_count, (unsigned long long)options.transfers, tx_bytes, options.block_txs,
              options.repetitions);
  std::printf("%-44s %12s %12s %12s\n", "transfers/s (M)", "median", "min", "max");
  auto row = [](const char* name, const Figure& figure, double scale) {
    std::printf("%-44s %12.3f %12.3f %12.3f\n", name, figure.median() / scale, figure.min() / scale, figure.max() / scale);
  };
  row("durable (fsync always)", results.durable, 1e6);
  row("fsync none (baseline)", results.no_fsync, 1e6);
  row("hashing only (leaf + Merkle)", results.hashing, 1e6);
  std::printf("\n%-44s %12s %12s %12s\n", "per durable run", "median", "min", "max");
  row("hashing share of the time (%)", results.hashing_share, 0.01);
  row("group commits", results.commits, 1);
  row("sealed blocks that waited for a commit", results.durable_waits, 1);
  row("time waiting for commits (ms)", results.durable_wait_ms, 1);
  std::printf("\n%-44s %12s %12s %12s\n", "snapshot of the 100,000-account state", "median", "min", "max");
  row("state copy on the shard core (ms)", results.snapshot_copy_ms, 1);
  row("serialize on the writer thread (ms)", results.snapshot_serialize_ms, 1);
  std::printf("the copy amortized at snapshot_every_blocks = 1024: %.2f ns per transfer\n",
              results.snapshot_copy_ms.median() * 1e6 / (1024.0 * options.block_txs));
  print_targets(targets);
}

}  // namespace

int run_ledger_bench(const LedgerBenchOptions& options) {
  if (options.repetitions == 0 || options.transfers == 0 || options.block_txs == 0 || options.block_txs > 65536) {
    std::fprintf(stderr, "keel bench ledger: --repetitions and --transfers must be at least 1, --block-txs from 1 to 65536\n");
    return 2;
  }
  ScratchFolder scratch(options.directory, "data/bench-ledger");
  if (auto created = scratch.create(); !created) {
    std::fprintf(stderr, "keel bench ledger: %s\n", created.error().message.c_str());
    return 1;
  }
  if (!options.json) {
    std::fprintf(stderr, "keel bench ledger: %u repetitions of %llu transfers, files in %s\n", options.repetitions,
                 (unsigned long long)options.transfers, scratch.path().c_str());
  }
  TransferStream stream = make_stream(options.transfers);
  ledger::ShardState accounts = make_accounts();
  LedgerResults results;
  for (uint32_t repetition = 0; repetition < options.repetitions; ++repetition) {
    ShardRun durable, no_fsync;
    for (persist::FsyncPolicy fsync : {persist::FsyncPolicy::always, persist::FsyncPolicy::none}) {
      std::string path = scratch.run_path(fsync == persist::FsyncPolicy::always ? "durable" : "no-fsync");
      Result<ShardRun> run = run_shard(stream, accounts, options.block_txs, fsync, path, &results.backend);
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
      if (!run) {
        std::fprintf(stderr, "keel bench ledger: %s\n", run.error().message.c_str());
        return 1;
      }
      (fsync == persist::FsyncPolicy::always ? durable : no_fsync) = *run;
    }
    double hashing_seconds = run_hashing(stream, options.block_txs);
    results.durable.samples.push_back(durable.transfers_per_second);
    results.no_fsync.samples.push_back(no_fsync.transfers_per_second);
    results.hashing.samples.push_back(double(stream.count) / hashing_seconds);
    results.hashing_share.samples.push_back(hashing_seconds / durable.seconds);
    results.commits.samples.push_back(double(durable.commits));
    results.durable_waits.samples.push_back(double(durable.waits));
    results.durable_wait_ms.samples.push_back(durable.wait_seconds * 1e3);
    results.blocks = durable.blocks;
    {
      uint64_t started_ns = shm::monotonic_ns();
      ledger::ShardState copy = accounts;
      uint64_t copied_ns = shm::monotonic_ns();
      std::vector<std::byte> bytes = ledger::ShardSnapshot{std::move(copy), {}}.serialize();
      uint64_t serialized_ns = shm::monotonic_ns();
      results.snapshot_copy_ms.samples.push_back(double(copied_ns - started_ns) / 1e6);
      results.snapshot_serialize_ms.samples.push_back(double(serialized_ns - copied_ns) / 1e6);
    }
    if (!options.json) std::fprintf(stderr, "  repetition %u of %u done\n", repetition + 1, options.repetitions);
  }
  print_report(options, scratch.path(), stream.tx_bytes, results);
  return 0;
}

}  // namespace keel::perf
