#include "engine/node/balance_history.h"

#include <unistd.h>

#include <filesystem>

#include "engine/config/perf_config.h"
#include "engine/ledger/block.h"
#include "engine/node/persist_tile.h"
#include "engine/node/recovery.h"
#include "engine/persist/recovery.h"

namespace keel::node {

namespace {

Result<std::vector<BalanceEvent>> read_balance_history_once(const std::string& data_dir) {
  std::string directory = shard_directory(data_dir, config::system_chain_name, 0);
  if (!std::filesystem::is_directory(directory))
    return make_error(directory, "no such directory: no engine has run with this data directory since the balancer came");
  std::vector<BalanceEvent> events;
  auto visit = [&](const persist::LogRecordView& record) -> Result<void> {
    if (record.type != record_type_block)
      return make_error(std::string(record.file), "offset " + std::to_string(record.offset) + ": not a block record");
    Result<ledger::BlockView> block = ledger::parse_block(record.payload);
    if (!block)
      return make_error(std::string(record.file), "offset " + std::to_string(record.offset) + ": " + block.error().message);
    ledger::for_each_transaction(block->body, [&](std::span<const std::byte> tx) {
      ledger::TxView view;
      if (ledger::check_transaction(tx, ledger::TxOrigin::engine, &view) != ledger::TxStatus::applied) return;
      if (view.type != ledger::TxType::balance_record) return;
      events.push_back({block->header.height, block->header.time_ns, view.balance_record});
    });
    return {};
  };
  Result<persist::RecoveredLog> log = persist::scan_log(directory, {config::system_chain_name, 0, 1}, visit);
  if (!log) return log.error();
  return events;
}

}  // namespace

Result<std::vector<BalanceEvent>> read_balance_history(const std::string& data_dir) {
  // A running engine may be writing the tail (a reader can see a later page of a write
  // before an earlier one) or drop a segment under the read: read again, a few times.
  constexpr int attempts_max = 5;
  Result<std::vector<BalanceEvent>> events = read_balance_history_once(data_dir);
  for (int attempt = 1; !events && attempt < attempts_max; ++attempt) {
    usleep(20'000);
    events = read_balance_history_once(data_dir);
  }
  return events;
}

}  // namespace keel::node
