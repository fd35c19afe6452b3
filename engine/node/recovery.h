// engine/node/recovery.h: bringing every shard of every chain back from its data
// directory before the engine starts taking transactions.
//
//   std::vector<std::string> notes;
//   Result<std::vector<RecoveredShard>> shards = recover_chains(chains, data_dir, &notes);
//
// For each shard (data_dir/<chain>/<shard>/): load its newest valid snapshot (snapshots
// of a shard are in the same directory as its log), scan its log, replay every block after
// the snapshot through
// the shard executor (which checks heights, the hash chain and Merkle roots, and
// re-executes the transactions), then decide about torn tails across all logs at once:
// a torn batch older than the newest batch found in any log was acknowledged, so it is
// damage and the engine refuses to start; otherwise each torn tail is cut, with a note
// naming file and offset. Nothing is cut until every log has been checked.
//
// Credits: every credit a replayed block emitted whose destination has not applied it
// (by the destination's recovered credit mark) is returned for the shard to send again,
// because credits are only ever sent after their block is durable and may have been in a
// ring when the engine stopped.
#pragma once

#include <string>
#include <vector>

#include "engine/ledger/shard.h"
#include "engine/persist/recovery.h"
#include "error/result.h"

namespace keel::node {

struct RecoveryChain {
  std::string name;
  uint32_t shards = 1;
  ledger::BlockLimits limits;
  ledger::AccessPolicy access;  // what the recovered executor charges from then on
};

struct RecoveredShard {
  ledger::ShardExecutor executor;
  persist::RecoveredLog log;
  std::string directory;
  std::vector<ledger::OutboundCredit> credits_to_send;
  uint64_t blocks_replayed = 0;
  uint64_t snapshot_height = 0;  // the snapshot recovery started from (0: none, from the first block)
};

// Restores the newest snapshot of `directory` that checks out into the executor (a damaged
// newer one is skipped with a line in *notes) and returns its height, 0 if there is none.
// Its credits go to *credits (may be null). An error names the file: a snapshot that
// checks out as a file but not as this shard's state.
Result<uint64_t> start_from_snapshot(ledger::ShardExecutor& executor, const std::string& directory,
                                     std::vector<ledger::OutboundCredit>* credits, std::vector<std::string>* notes);

// For replaying a log after start_from_snapshot: true for a block the snapshot already
// holds (the log's first segment may begin before it); checks that the snapshot's own
// block matches its last block hash, and that the log does not resume past the next
// height (blocks in between missing). false: replay this block.
Result<bool> skip_block_below_snapshot(const ledger::ShardExecutor& executor, uint64_t snapshot_height,
                                       const persist::LogRecordView& record);

// Recovers every shard of `chains` (in order, shard by shard). Errors name chain, shard
// and height (damage, broken chain), or the file and the reason (foreign or other-version
// data, a layout that differs from the config).
Result<std::vector<RecoveredShard>> recover_chains(const std::vector<RecoveryChain>& chains,
                                                   const std::string& data_dir, std::vector<std::string>* notes);

// data_dir/<chain>/<shard>
std::string shard_directory(const std::string& data_dir, const std::string& chain, uint32_t shard);

}  // namespace keel::node
