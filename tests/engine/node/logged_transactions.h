// tests/engine/node/logged_transactions.h: what the node tests look up in a chain's logs
// after an engine ran (and was killed): every transaction, by hash, with where it is.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "engine/ledger/block.h"
#include "engine/node/recovery.h"
#include "engine/persist/recovery.h"

namespace keel::node::testing {

struct LoggedTransaction {
  uint32_t shard = 0;
  uint64_t height = 0, batch = 0;
};

// Adds every transaction in the logs of `chain`'s shards under data_dir to *logged, keyed
// by its hash (32 raw bytes, as a ReceiptMessage carries it). Torn tails are included:
// scan_log passes the records before a tear. A log that cannot be read fails the test.
inline void read_logged_transactions(const std::filesystem::path& data_dir, const std::string& chain,
                                     uint32_t shard_count, std::map<std::string, LoggedTransaction>* logged) {
  for (uint32_t shard = 0; shard < shard_count; ++shard) {
    Result<persist::RecoveredLog> log = persist::scan_log(
        shard_directory(data_dir.string(), chain, shard), {chain, shard, shard_count},
        [&](const persist::LogRecordView& record) -> Result<void> {
          Result<ledger::BlockView> block = ledger::parse_block(record.payload);
          if (!block) return block.error();
          uint64_t height = block->header.height;
          ledger::for_each_transaction(block->body, [&](std::span<const std::byte> tx) {
            ledger::Hash32 hash = ledger::hash_leaf(tx);
            (*logged)[std::string(reinterpret_cast<const char*>(hash.bytes.data()), 32)] =
                LoggedTransaction{shard, height, record.batch};
          });
          return {};
        });
    EXPECT_TRUE(log) << log.error().message;
  }
}

}  // namespace keel::node::testing
