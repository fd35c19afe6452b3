// engine/node/recovery.h: bringing every shard of every chain back from its data
// directory before the engine starts taking transactions.
//
//   std::vector<std::string> notes;
//   Result<std::vector<RecoveredShard>> shards = recover_chains(chains, data_dir, &notes);
//
// For each shard (data_dir/<chain>/<shard>/): scan its log, replay every block through
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
};

struct RecoveredShard {
  ledger::ShardExecutor executor;
  persist::RecoveredLog log;
  std::string directory;
  std::vector<ledger::OutboundCredit> credits_to_send;
  uint64_t blocks_replayed = 0;
};

// Recovers every shard of `chains` (in order, shard by shard). Errors name chain, shard
// and height (damage, broken chain), or the file and the reason (foreign or other-version
// data, a layout that differs from the config).
Result<std::vector<RecoveredShard>> recover_chains(const std::vector<RecoveryChain>& chains,
                                                   const std::string& data_dir, std::vector<std::string>* notes);

// data_dir/<chain>/<shard>
std::string shard_directory(const std::string& data_dir, const std::string& chain, uint32_t shard);

}  // namespace keel::node
