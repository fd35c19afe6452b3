// Tests for engine/node/compute_source.h: which shards the benches' source loads.
#include "engine/node/compute_source.h"

#include <gtest/gtest.h>

#include <cstring>

#include "engine/client/client_table.h"
#include "engine/config/perf_config.h"
#include "engine/ledger/hash.h"
#include "engine/ledger/transaction.h"
#include "shm/ring.h"
#include "tests/engine/client/test_engine.h"

namespace keel::node {
namespace {

// What the source has put in one shard's submit ring, each checked as a client's
// compute_request at home on that shard.
size_t requests_waiting(client::testing::TestEngine& engine, uint32_t chain, uint32_t shard, uint32_t shard_count) {
  const client::ShardPorts& ports = client::shard_ports(engine.segment.base(), engine.table(), chain, shard);
  auto ring = client::join_table_ring<shm::RingConsumer>(engine.segment.base(), ports.submit_ring,
                                                         client::submit_slot_bytes);
  EXPECT_TRUE(ring.ok()) << ring.error().message;
  std::span<const std::byte> slots = ring->peek(1024);
  const size_t count = slots.size() / sizeof(client::RoutedSubmit);
  for (size_t index = 0; index < count; ++index) {
    client::RoutedSubmit submit;
    std::memcpy(&submit, slots.data() + index * sizeof submit, sizeof submit);
    std::span<const std::byte> tx(submit.inline_tx, submit.tx_bytes);
    ledger::TxView view;
    EXPECT_EQ(ledger::check_transaction(tx, ledger::TxOrigin::client, &view), ledger::TxStatus::applied);
    EXPECT_EQ(view.type, ledger::TxType::compute_request);
    EXPECT_EQ(ledger::home_shard(view, shard_count), shard);
    // With its leaf hash, which the shard takes instead of hashing (client/protocol.h).
    EXPECT_EQ(submit.flags, client::routed_flag_leaf_hash);
    ledger::Hash32 leaf = ledger::hash_leaf(tx);
    EXPECT_EQ(std::memcmp(submit.inline_tx + client::routed_leaf_hash_at, leaf.bytes.data(), leaf.bytes.size()), 0);
  }
  return count;
}

// The system chain takes no client transactions: loading its shard would measure a
// second working shard the config does not give the client chains (it did, until
// 2026-11-26: perf/RESULTS.md).
TEST(ComputeSource, LoadsEveryClientChainsShardsAndNeverTheSystemChains) {
  client::ClientTableOptions options =
      client::testing::small_options({{"bench", 2}, {config::system_chain_name, 1}, {"other", 1}});
  std::unique_ptr<client::testing::TestEngine> engine = client::testing::TestEngine::make("source", options);
  ComputeSourceOptions source_options{.compute_type = "noop", .input_bytes = 8, .requests_in_flight_max = 16};
  auto source = ComputeSourceTile::create(engine->segment.base(), engine->table_offset, source_options);
  ASSERT_TRUE(source.ok()) << source.error().message;
  (*source)->start();
  for (int round = 0; round < 8; ++round) (*source)->poll(64);
  EXPECT_GT(requests_waiting(*engine, 0, 0, 2), 0u);
  EXPECT_GT(requests_waiting(*engine, 0, 1, 2), 0u);
  EXPECT_EQ(requests_waiting(*engine, 1, 0, 1), 0u) << "the system chain's shard was loaded";
  EXPECT_GT(requests_waiting(*engine, 2, 0, 1), 0u);
}

}  // namespace
}  // namespace keel::node
