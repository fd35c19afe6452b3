// perf/bench_ledger.h: `keel bench ledger`: transfers/s on one shard (ledger executor +
// Merkle + block sealing + durable group commit through engine/persist), with blocks of
// 8,192 transfers, and the share of the time spent hashing; in the same run as the same
// stream with durability off (fsync none) and hashing alone, so the ratios explain
// where the time goes.
//
// One thread plays the shard core (and its persist tile): check_transaction, execute, seal
// every block_txs transfers, stage the block record into a ShardLog and group-commit it
// through the Persister without waiting; it polls between blocks and waits only when a
// sealed block would be the second one queued behind the commit in flight. A run ends
// when its last block is durable. 100,000 accounts are in the state before the clock
// starts; the transfers are encoded beforehand.
//
// Estimate per transfer: 40 bytes (16 header + 24 body) in the block body, plus 1/8192 of
// the 128-byte block header and 32-byte record header: ~40 bytes written, 2/8192 syscalls
// (one io_uring_enter submits a block's write + fdatasync, one reaps it). Hashes: one
// leaf (SHA-256 of 41 bytes: one compression block) and a seventh of an 8-child inner
// node (1,171 per block; 257 bytes: five blocks): ~1.7 compression blocks, ~90 ns with
// SHA-NI, so hashing alone ~11 M/s (RFC 6962's binary tree, block format 1, had ~3
// blocks and ~6-7 M/s). Executing: two hash-map lookups among 100,000 accounts (~6 MB of nodes, cache
// misses) ~100 ns, checks, body append and receipt ~30 ns. Total ~300 ns: ~3 M/s per core.
#pragma once

#include <cstdint>
#include <string>

namespace keel::perf {

struct LedgerBenchOptions {
  bool json = false;
  uint32_t repetitions = 5;
  uint64_t transfers = 2'000'000;  // per run
  uint32_t block_txs = 8192;
  std::string directory;           // empty: a fresh folder under ./data/bench-ledger
};

int run_ledger_bench(const LedgerBenchOptions& options);

}  // namespace keel::perf
