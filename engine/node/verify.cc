#include "engine/node/verify.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <deque>
#include <filesystem>

#include "engine/ledger/shard.h"
#include "engine/ledger/snapshot.h"
#include "engine/node/persist_tile.h"
#include "engine/node/recovery.h"
#include "engine/persist/recovery.h"
#include "engine/persist/snapshot_file.h"

namespace keel::node {

bool VerifyReport::ok() const {
  return std::all_of(chains.begin(), chains.end(), [](const ChainVerdict& chain) { return chain.problems.empty(); });
}

namespace {

// Sub-directory names of `path` (chains), or numeric ones only (shards).
Result<std::vector<std::string>> list_directories(const std::string& path, bool numeric_only) {
  DIR* listing = opendir(path.c_str());
  if (listing == nullptr) return make_error(path, std::string("cannot read: ") + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* entry = readdir(listing)) {
    std::string name = entry->d_name;
    if (name == "." || name == ".." || entry->d_type != DT_DIR) continue;
    if (numeric_only && name.find_first_not_of("0123456789") != std::string::npos) continue;
    names.push_back(name);
  }
  closedir(listing);
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    // Shorter digit strings first puts "2" before "10" without parsing (no overflow).
    return numeric_only && a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return names;
}

// Replays one shard's log from its oldest kept snapshot (or its first block), checks that
// every later snapshot equals the replayed state at its height, and collects the credits
// its blocks (and the starting snapshot) carry towards other shards.
void verify_shard(const std::string& data_dir, ChainVerdict& chain, uint32_t shard, uint32_t shard_count,
                  std::vector<ledger::OutboundCredit>& credits, std::vector<ledger::ShardState>& states) {
  ShardVerdict verdict;
  verdict.shard = shard;
  size_t problems_before = chain.problems.size();
  std::string directory = shard_directory(data_dir, chain.name, shard);
  std::string place = "chain " + chain.name + " shard " + std::to_string(shard);
  ledger::ShardExecutor executor({chain.name, shard, shard_count}, ledger::BlockLimits{ledger::block_txs_limit, 1u << 30});
  Result<std::vector<uint64_t>> heights = persist::list_snapshot_heights(directory);
  std::deque<uint64_t> later;  // snapshots still to compare, ascending
  if (!heights) {
    chain.problems.push_back(heights.error().message);
  } else if (!heights->empty()) {
    verdict.snapshots = heights->size();
    later.assign(heights->begin() + 1, heights->end());
    Result<persist::SnapshotFile> oldest = persist::load_snapshot(directory, heights->front());
    Result<ledger::ShardSnapshot> snapshot =
        oldest ? ledger::ShardSnapshot::deserialize(oldest->payload) : Result<ledger::ShardSnapshot>(oldest.error());
    if (!snapshot) {
      chain.problems.push_back(place + ": the oldest snapshot cannot be used: " + snapshot.error().message);
    } else if (snapshot->state.shard != shard || snapshot->state.shard_count != shard_count ||
               snapshot->state.height != heights->front()) {
      chain.problems.push_back(place + ": " + oldest->path + " holds another shard or height");
    } else {
      credits.insert(credits.end(), snapshot->credits.begin(), snapshot->credits.end());
      executor.restore(std::move(snapshot->state));
      verdict.start_height = heights->front();
    }
  }
  auto compare_snapshot = [&](uint64_t height) {
    Result<persist::SnapshotFile> file = persist::load_snapshot(directory, height);
    Result<ledger::ShardSnapshot> snapshot =
        file ? ledger::ShardSnapshot::deserialize(file->payload) : Result<ledger::ShardSnapshot>(file.error());
    if (!snapshot) {
      chain.problems.push_back(place + " height " + std::to_string(height) + ": " + snapshot.error().message);
    } else if (snapshot->state.serialize() != executor.state().serialize()) {
      chain.problems.push_back(place + " height " + std::to_string(height) + ": " + file->path +
                               " differs from the state the log replays to");
    } else {
      ++verdict.snapshots_matched;
    }
  };
  auto replay = [&](const persist::LogRecordView& record) -> Result<void> {
    if (record.type != record_type_block)
      return make_error(std::string(record.file), "offset " + std::to_string(record.offset) + ": not a block record");
    Result<bool> skip = skip_block_below_snapshot(executor, verdict.start_height, record);
    if (!skip) return skip.error();
    if (*skip) return {};
    Result<ledger::SealedBlock> block = executor.replay(record.payload);
    if (!block) return block.error();
    ++verdict.blocks;
    verdict.transactions += block->header.tx_count;
    credits.insert(credits.end(), block->credits.begin(), block->credits.end());
    while (!later.empty() && later.front() <= block->header.height) {
      if (later.front() == block->header.height) compare_snapshot(later.front());
      later.pop_front();
    }
    return {};
  };
  bool usable_start = chain.problems.size() == problems_before;
  Result<persist::RecoveredLog> log =
      usable_start ? persist::scan_log(directory, {chain.name, shard, shard_count}, replay)
                   : Result<persist::RecoveredLog>(persist::RecoveredLog{});
  if (!log) {
    chain.problems.push_back(log.error().message);
  } else {
    if (log->torn) verdict.torn_tail = log->torn->file + " at offset " + std::to_string(log->torn->offset);
    // A snapshot is written only after its block is durable: one past the log is damage.
    if (usable_start)
      for (uint64_t height : later)
        chain.problems.push_back(place + ": snapshot at height " + std::to_string(height) + " is past the log's end (height " +
                                 std::to_string(executor.state().height) + ")");
  }
  verdict.height = executor.state().height;
  verdict.last_block_hash = ledger::to_hex(executor.state().last_block_hash);
  chain.opened_total += executor.state().opened_total;
  states.push_back(executor.state());
  chain.shards.push_back(verdict);
}

ChainVerdict verify_chain(const std::string& data_dir, const std::string& name) {
  ChainVerdict chain;
  chain.name = name;
  Result<std::vector<std::string>> shard_names = list_directories(data_dir + "/" + name, true);
  if (!shard_names) {
    chain.problems.push_back(shard_names.error().message);
    return chain;
  }
  uint32_t shard_count = uint32_t(shard_names->size());
  for (uint32_t shard = 0; shard < shard_count; ++shard)
    if ((*shard_names)[shard] != std::to_string(shard))
      chain.problems.push_back(data_dir + "/" + name + ": shard directories are not 0.." + std::to_string(shard_count - 1));
  if (!chain.problems.empty()) return chain;
  std::vector<ledger::OutboundCredit> credits;
  std::vector<ledger::ShardState> states;
  for (uint32_t shard = 0; shard < shard_count; ++shard) verify_shard(data_dir, chain, shard, shard_count, credits, states);
  for (const ledger::ShardState& state : states) chain.balance_total += state.total_balance();
  for (const ledger::OutboundCredit& credit : credits) {
    ledger::CreditBody body = credit.body();
    if (!states[credit.destination_shard].credit_marks[body.origin_shard].covers(body.origin_height, body.origin_index))
      chain.credits_in_flight += int64_t(body.amount);
  }
  if (chain.problems.empty() && chain.balance_total + chain.credits_in_flight != chain.opened_total)
    chain.problems.push_back("chain " + name + ": balances " + std::to_string(chain.balance_total) + " + credits in flight " +
                             std::to_string(chain.credits_in_flight) + " != openings " + std::to_string(chain.opened_total));
  return chain;
}

}  // namespace

static Result<ledger::ShardState> read_shard_state_once(const std::string& data_dir, const std::string& chain, uint32_t shard,
                                            uint32_t shard_count) {
  std::string directory = shard_directory(data_dir, chain, shard);
  if (!std::filesystem::is_directory(directory))
    return make_error(directory, "no such directory: the chain has not run with this data directory");
  ledger::ShardExecutor executor({chain, shard, shard_count}, ledger::BlockLimits{ledger::block_txs_limit, 1u << 30});
  std::vector<std::string> notes;  // a damaged newer snapshot is skipped, as recovery does
  Result<uint64_t> start = start_from_snapshot(executor, directory, nullptr, &notes);
  if (!start) return start.error();
  auto replay = [&](const persist::LogRecordView& record) -> Result<void> {
    if (record.type != record_type_block)
      return make_error(std::string(record.file), "offset " + std::to_string(record.offset) + ": not a block record");
    Result<bool> skip = skip_block_below_snapshot(executor, *start, record);
    if (!skip) return skip.error();
    if (*skip) return {};
    Result<ledger::SealedBlock> block = executor.replay(record.payload);
    if (!block) return block.error();
    return {};
  };
  Result<persist::RecoveredLog> log = persist::scan_log(directory, {chain, shard, shard_count}, replay);
  if (!log) return log.error();
  return executor.state();
}

Result<ledger::ShardState> read_shard_state(const std::string& data_dir, const std::string& chain, uint32_t shard,
                                            uint32_t shard_count) {
  // A running engine may write a newer snapshot and drop the log segments behind it while
  // this reads: the read then misses a segment (or finds a gap) and starts again.
  constexpr int attempts_max = 5;
  Result<ledger::ShardState> state = read_shard_state_once(data_dir, chain, shard, shard_count);
  for (int attempt = 1; !state && attempt < attempts_max; ++attempt) {
    usleep(20'000);
    state = read_shard_state_once(data_dir, chain, shard, shard_count);
  }
  return state;
}

Result<VerifyReport> verify_data_dir(const std::string& data_dir) {
  Result<std::vector<std::string>> chains = list_directories(data_dir, false);
  if (!chains) return chains.error();
  VerifyReport report;
  report.data_dir = data_dir;
  for (const std::string& chain : *chains) report.chains.push_back(verify_chain(data_dir, chain));
  return report;
}

}  // namespace keel::node
