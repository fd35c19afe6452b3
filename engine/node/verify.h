// engine/node/verify.h: `keel verify` — checks a data directory without changing it.
//
//   Result<VerifyReport> report = verify_data_dir("data/default");
//   for (const ChainVerdict& chain : report->chains) ... chain.problems.empty() ...
//
// For every chain directory (data_dir/<chain>/<shard>/...): every record's framing and
// checksum, every block's place in the hash chain, its Merkle root, and its transactions
// re-executed from the oldest kept snapshot (or the first block; replay checks the
// replayed header against the logged one); every later snapshot must equal the replayed
// state at its height, byte for byte. Then conservation: the chain's balances plus the
// credits still travelling between its shards equal what its account openings brought in. A torn tail (what a
// crash leaves; the engine cuts it at its next start) is reported but not a failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/ledger/state.h"
#include "error/result.h"

namespace keel::node {

struct ShardVerdict {
  uint32_t shard = 0;
  uint64_t height = 0;
  uint64_t blocks = 0;
  uint64_t transactions = 0;
  std::string last_block_hash;  // hex
  std::string torn_tail;        // empty, or where a crash left a torn tail
  uint64_t snapshots = 0;          // snapshot files kept
  uint64_t start_height = 0;       // replay started after this (the oldest snapshot; 0: the first block)
  uint64_t snapshots_matched = 0;  // later snapshots equal to the replayed state
};

struct ChainVerdict {
  std::string name;
  std::vector<ShardVerdict> shards;
  int64_t opened_total = 0;       // sum of applied account openings (ShardState::opened_total)
  int64_t balance_total = 0;      // balances (and suspense) over all shards
  int64_t credits_in_flight = 0;  // debited on one shard, not yet credited on another
  std::vector<std::string> problems;  // empty: the chain verified
};

struct VerifyReport {
  std::string data_dir;
  std::vector<ChainVerdict> chains;
  bool ok() const;
};

// The state of one shard as its files hold it, read without changing anything (a running
// engine may be appending to the log): its newest usable snapshot, then every whole block
// after it (a torn or half-written tail ends the read, as it would end recovery). For
// queries such as `keel flow status`: every block the shard has acknowledged, and with a
// running engine perhaps the blocks of the group commit in progress (written, not yet
// fdatasync'ed). Tries again, up to five times, when a running engine dropped a segment
// under the read. An error names the file and the problem.
Result<ledger::ShardState> read_shard_state(const std::string& data_dir, const std::string& chain, uint32_t shard,
                                            uint32_t shard_count);

// Verifies every chain under data_dir. An Error only when the directory cannot be read at
// all; problems with a chain's data are in its verdict.
Result<VerifyReport> verify_data_dir(const std::string& data_dir);

}  // namespace keel::node
