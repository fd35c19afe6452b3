// tests/engine/ledger/ledger_test_support.h: small helpers the ledger tests share.
#pragma once

#include <vector>

#include "engine/ledger/shard.h"

namespace keel::ledger::testing {

// Executes a client transaction on `shard`, as a shard tile would.
inline TxStatus submit(ShardExecutor& shard, const std::vector<std::byte>& bytes) {
  TxView view;
  TxStatus checked = check_transaction(bytes, TxOrigin::client, &view);
  if (checked != TxStatus::applied) return checked;
  return shard.execute(view, bytes);
}

// Executes an internal transaction (a credit or a compute result), as the engine would.
inline TxStatus submit_internal(ShardExecutor& shard, const std::vector<std::byte>& bytes) {
  TxView view;
  TxStatus checked = check_transaction(bytes, TxOrigin::engine, &view);
  if (checked != TxStatus::applied) return checked;
  return shard.execute(view, bytes);
}

// An account number whose home is `shard` of `shard_count`, the n-th such.
inline uint64_t account_on(uint32_t shard, uint32_t shard_count, int nth = 0) {
  for (uint64_t account = 1;; ++account)
    if (shard_of_account(account, shard_count) == shard && nth-- == 0) return account;
}

}  // namespace keel::ledger::testing
