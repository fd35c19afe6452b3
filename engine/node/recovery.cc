#include "engine/node/recovery.h"

#include <dirent.h>

#include <cstring>

#include "engine/ledger/snapshot.h"
#include "engine/node/persist_tile.h"
#include "engine/persist/snapshot_file.h"

namespace keel::node {

std::string shard_directory(const std::string& data_dir, const std::string& chain, uint32_t shard) {
  return data_dir + "/" + chain + "/" + std::to_string(shard);
}

namespace {

// A chain directory holding shard folders beyond the configured count was written with
// more shards: starting with fewer would silently orphan those accounts.
Result<void> check_no_extra_shards(const std::string& data_dir, const RecoveryChain& chain) {
  std::string directory = data_dir + "/" + chain.name;
  DIR* listing = opendir(directory.c_str());
  if (listing == nullptr) return {};
  Result<void> result;
  while (dirent* entry = readdir(listing)) {
    std::string name = entry->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (name.size() > 9 || std::stoul(name) >= chain.shards) {  // more digits than any shard count
      result = make_error(directory + "/" + name, "chain layout differs: the data has shard " + name + " but the config gives chain " +
                                                      chain.name + " " + std::to_string(chain.shards) + " shard(s)");
      break;
    }
  }
  closedir(listing);
  return result;
}

}  // namespace

Result<uint64_t> start_from_snapshot(ledger::ShardExecutor& executor, const std::string& directory,
                                     std::vector<ledger::OutboundCredit>* credits, std::vector<std::string>* notes) {
  Result<std::optional<persist::SnapshotFile>> newest = persist::load_newest_snapshot(directory, notes);
  if (!newest) return newest.error();
  if (!*newest) return uint64_t(0);
  const persist::SnapshotFile& file = **newest;
  Result<ledger::ShardSnapshot> snapshot = ledger::ShardSnapshot::deserialize(file.payload);
  if (!snapshot) return make_error(file.path, snapshot.error().message);
  const ledger::ShardIdentity& identity = executor.identity();
  if (snapshot->state.shard_count != identity.shard_count)
    return make_error(file.path, "chain layout differs: the snapshot was written with " +
                                     std::to_string(snapshot->state.shard_count) + " shard(s), the config gives chain " +
                                     identity.chain + " " + std::to_string(identity.shard_count));
  if (snapshot->state.shard != identity.shard || snapshot->state.height != file.height)
    return make_error(file.path, "holds shard " + std::to_string(snapshot->state.shard) + " of " +
                                     std::to_string(snapshot->state.shard_count) + " at height " +
                                     std::to_string(snapshot->state.height) + ", not shard " +
                                     std::to_string(identity.shard) + " of " + std::to_string(identity.shard_count) +
                                     " at height " + std::to_string(file.height));
  if (credits != nullptr) *credits = std::move(snapshot->credits);
  executor.restore(std::move(snapshot->state));
  return file.height;
}

Result<bool> skip_block_below_snapshot(const ledger::ShardExecutor& executor, uint64_t snapshot_height,
                                       const persist::LogRecordView& record) {
  const ledger::ShardState& state = executor.state();
  if (state.height != snapshot_height) return false;  // replaying past the start already
  Result<ledger::BlockView> block = ledger::parse_block(record.payload);
  if (!block) return false;  // replay names the problem
  const ledger::BlockHeader& header = block->header;
  if (header.height > snapshot_height) {
    if (header.height == snapshot_height + 1) return false;
    std::string start = snapshot_height == 0 ? std::string("there is no usable snapshot")
                                             : "the snapshot ends at height " + std::to_string(snapshot_height);
    return make_error(std::string(record.file), "offset " + std::to_string(record.offset) +
                                                    ": the log resumes at height " + std::to_string(header.height) +
                                                    " but " + start + ": the blocks in between are missing");
  }
  if (header.height == snapshot_height && ledger::block_hash(header) != state.last_block_hash)
    return make_error(std::string(record.file), "offset " + std::to_string(record.offset) + ": block " +
                                                    std::to_string(header.height) +
                                                    " does not match the snapshot's last block hash");
  return true;
}

namespace {

Result<RecoveredShard> recover_shard(const RecoveryChain& chain, uint32_t shard, const std::string& data_dir,
                                     std::vector<std::string>* notes) {
  RecoveredShard recovered{ledger::ShardExecutor({chain.name, shard, chain.shards}, chain.limits, chain.access), {},
                           shard_directory(data_dir, chain.name, shard), {}, 0, 0};
  persist::LogIdentity identity{chain.name, shard, chain.shards};
  std::vector<ledger::OutboundCredit>& credits = recovered.credits_to_send;
  Result<uint64_t> snapshot = start_from_snapshot(recovered.executor, recovered.directory, &credits, notes);
  if (!snapshot) return snapshot.error();
  recovered.snapshot_height = *snapshot;
  bool replay_failed = false;
  auto replay = [&](const persist::LogRecordView& record) -> Result<void> {
    replay_failed = true;
    if (record.type != record_type_block)
      return make_error(std::string(record.file), "offset " + std::to_string(record.offset) + ": record type " +
                                                      std::to_string(record.type) + " is not a block");
    Result<bool> skip = skip_block_below_snapshot(recovered.executor, recovered.snapshot_height, record);
    if (!skip) return skip.error();
    if (*skip) {
      replay_failed = false;
      return {};
    }
    Result<ledger::SealedBlock> block = recovered.executor.replay(record.payload);
    if (!block) return block.error();
    credits.insert(credits.end(), block->credits.begin(), block->credits.end());
    ++recovered.blocks_replayed;
    replay_failed = false;
    return {};
  };
  Result<persist::RecoveredLog> log = persist::scan_log(recovered.directory, identity, replay);
  if (!log && replay_failed) return log.error();  // names chain, shard and height already
  if (!log) {
    uint64_t height = recovered.executor.state().height + 1;
    return make_error("chain " + chain.name + " shard " + std::to_string(shard) + " height " + std::to_string(height),
                      log.error().message);
  }
  recovered.log = std::move(*log);
  return recovered;
}

// Keeps the credits the destination has not applied yet.
void drop_applied_credits(std::vector<RecoveredShard>& shards, size_t first, uint32_t count) {
  for (uint32_t origin = 0; origin < count; ++origin) {
    std::vector<ledger::OutboundCredit>& credits = shards[first + origin].credits_to_send;
    std::vector<ledger::OutboundCredit> kept;
    for (const ledger::OutboundCredit& credit : credits) {
      ledger::CreditBody body = credit.body();
      const ledger::CreditMark& mark =
          shards[first + credit.destination_shard].executor.state().credit_marks[body.origin_shard];
      if (!mark.covers(body.origin_height, body.origin_index)) kept.push_back(credit);
    }
    credits = std::move(kept);
  }
}

}  // namespace

Result<std::vector<RecoveredShard>> recover_chains(const std::vector<RecoveryChain>& chains,
                                                   const std::string& data_dir, std::vector<std::string>* notes) {
  std::vector<RecoveredShard> shards;
  for (const RecoveryChain& chain : chains) {
    if (Result<void> checked = check_no_extra_shards(data_dir, chain); !checked) return checked.error();
    size_t first = shards.size();
    for (uint32_t shard = 0; shard < chain.shards; ++shard) {
      Result<RecoveredShard> recovered = recover_shard(chain, shard, data_dir, notes);
      if (!recovered) return recovered.error();
      shards.push_back(std::move(*recovered));
    }
    drop_applied_credits(shards, first, chain.shards);
  }
  std::vector<const persist::RecoveredLog*> logs;
  std::vector<std::string> names;
  for (const RecoveredShard& shard : shards) {
    logs.push_back(&shard.log);
    names.push_back(shard.directory);
  }
  if (Result<void> checked = persist::check_torn_batches(logs, names); !checked) return checked.error();
  for (RecoveredShard& shard : shards) {
    if (!shard.log.torn) continue;
    if (Result<void> cut = persist::truncate_torn_tail(shard.log); !cut) return cut.error();
    notes->push_back(shard.log.torn->file + ": torn tail cut at offset " + std::to_string(shard.log.torn->offset) +
                     " (" + std::to_string(shard.log.torn->bytes_cut) + " bytes of an unacknowledged commit)");
  }
  return shards;
}

}  // namespace keel::node
