// engine/node/balance_history.h: the balancer's decisions as the system chain recorded
// them (ledger/transaction.h: balance_record), read back from a data directory — the
// audit trail of which chain was which tier and had which cores when.
//
//   Result<std::vector<BalanceEvent>> events = read_balance_history(config.ledger.data_dir);
//   for (const BalanceEvent& event : *events) print(event.height, event.record.chain_name);
//
// Reads the system shard's log files directly (no engine needed; with a running engine,
// every acknowledged block and perhaps the group commit being written). Blocks older
// than the oldest log segment kept are gone with it (the system chain writes a block
// only for a change, so its 64 MiB segments last a very long time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/ledger/transaction.h"
#include "error/result.h"

namespace keel::node {

struct BalanceEvent {
  uint64_t height = 0;        // the system chain block holding it
  uint64_t block_time_ns = 0; // when that block was sealed
  ledger::BalanceRecordBody record{};
};

// Every balance_record in the system chain's retained log, in log order. An error names
// the file and the problem (a damaged record, a block that does not parse).
Result<std::vector<BalanceEvent>> read_balance_history(const std::string& data_dir);

}  // namespace keel::node
