// Tests for engine/ledger/snapshot.h: a snapshot's bytes, and restarting from one.
#include "engine/ledger/snapshot.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/engine/ledger/ledger_test_support.h"

namespace keel::ledger {
namespace {

using testing::account_on;
using testing::submit;

// Shard 0 of a two-shard chain after some blocks, with the credits they emitted.
struct Sample {
  ShardExecutor shard{{"bank", 0, 2}, BlockLimits{16, 1 << 20}};
  std::vector<SealedBlock> blocks;
  std::vector<OutboundCredit> credits;
  Sample() {
    uint64_t here = account_on(0, 2), there = account_on(1, 2);
    EXPECT_EQ(submit(shard, encode_create_account(1, here, 1000)), TxStatus::applied);
    seal();
    for (uint64_t nonce = 2; nonce < 40; ++nonce) {
      EXPECT_EQ(submit(shard, encode_transfer(nonce, here, there, 3)), TxStatus::applied);
      if (nonce % 7 == 0) seal();
    }
    seal();
  }
  void seal() {
    if (shard.open_tx_count() == 0) return;
    blocks.push_back(shard.seal(blocks.size() + 1));
    credits.insert(credits.end(), blocks.back().credits.begin(), blocks.back().credits.end());
  }
};

TEST(ShardSnapshot, RoundTripsStateAndCredits) {
  Sample sample;
  ASSERT_EQ(sample.credits.size(), 38u);
  ShardSnapshot snapshot{sample.shard.state(), sample.credits};
  std::vector<std::byte> bytes = snapshot.serialize();
  Result<ShardSnapshot> back = ShardSnapshot::deserialize(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->state.serialize(), sample.shard.state().serialize());
  EXPECT_EQ(back->state.opened_total, 1000);
  ASSERT_EQ(back->credits.size(), sample.credits.size());
  for (size_t index = 0; index < sample.credits.size(); ++index) {
    EXPECT_EQ(back->credits[index].destination_shard, 1u);
    EXPECT_EQ(back->credits[index].tx, sample.credits[index].tx) << "credit " << index;
  }
  EXPECT_EQ(back->serialize(), bytes);
}

TEST(ShardSnapshot, ReplayFromASnapshotReachesTheSameStateAsFromTheStart) {
  Sample sample;
  ASSERT_GT(sample.blocks.size(), 4u);
  // A replica that replays the first three blocks, snapshots, and a fresh executor that
  // restores that snapshot and replays the rest, must both end where the original did.
  ShardExecutor replica({"bank", 0, 2}, BlockLimits{16, 1 << 20});
  for (size_t index = 0; index < 3; ++index) ASSERT_TRUE(replica.replay(sample.blocks[index].record));
  Result<ShardSnapshot> snapshot = ShardSnapshot::deserialize(ShardSnapshot{replica.state(), {}}.serialize());
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ShardExecutor restarted({"bank", 0, 2}, BlockLimits{16, 1 << 20});
  restarted.restore(std::move(snapshot->state));
  EXPECT_FALSE(restarted.replay(sample.blocks[2].record)) << "a block the snapshot holds cannot be replayed again";
  ShardExecutor fresh({"bank", 0, 2}, BlockLimits{16, 1 << 20});
  fresh.restore(ShardSnapshot::deserialize(ShardSnapshot{replica.state(), {}}.serialize())->state);
  for (size_t index = 3; index < sample.blocks.size(); ++index) {
    Result<SealedBlock> block = fresh.replay(sample.blocks[index].record);
    ASSERT_TRUE(block) << block.error().message;
    EXPECT_EQ(block->hash, sample.blocks[index].hash);
  }
  EXPECT_EQ(fresh.state().digest(), sample.shard.state().digest());
}

TEST(ShardSnapshot, DamagedOrForeignBytesGiveAnError) {
  Sample sample;
  std::vector<std::byte> bytes = ShardSnapshot{sample.shard.state(), sample.credits}.serialize();
  for (size_t cut = 0; cut < bytes.size(); cut += 13)
    EXPECT_FALSE(ShardSnapshot::deserialize(std::span(bytes).first(cut))) << "cut at " << cut;
  std::vector<std::byte> bad_magic = bytes;
  bad_magic[0] ^= std::byte{1};
  Result<ShardSnapshot> back = ShardSnapshot::deserialize(bad_magic);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().message, "shard snapshot: offset 0: not a keel shard snapshot (bad magic)");

  // A credit this shard could not have emitted: to itself, or from a block past its height.
  auto with_credit = [&](const OutboundCredit& credit) {
    return ShardSnapshot{sample.shard.state(), {credit}}.serialize();
  };
  OutboundCredit to_itself = sample.credits[0];
  to_itself.destination_shard = 0;
  back = ShardSnapshot::deserialize(with_credit(to_itself));
  ASSERT_FALSE(back);
  EXPECT_NE(back.error().message.find("credit 0 does not belong to shard 0 at height"), std::string::npos)
      << back.error().message;
  OutboundCredit from_the_future = sample.credits[0];
  CreditBody body = from_the_future.body();
  body.origin_height = sample.shard.state().height + 1;
  write_credit(from_the_future.tx, body, false);
  EXPECT_FALSE(ShardSnapshot::deserialize(with_credit(from_the_future)));
  OutboundCredit garbage = sample.credits[0];
  garbage.tx[4] = std::byte{0x7f};  // the version byte
  back = ShardSnapshot::deserialize(with_credit(garbage));
  ASSERT_FALSE(back);
  EXPECT_NE(back.error().message.find("is not a credit transaction"), std::string::npos) << back.error().message;
}

TEST(ShardState, OpenedTotalCountsAppliedOpeningsAndNeverOverflows) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  EXPECT_EQ(submit(shard, encode_create_account(1, 1, 500)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_create_account(2, 1, 700)), TxStatus::account_exists);
  EXPECT_EQ(submit(shard, encode_create_account(3, 2, INT64_MAX - 500)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_create_account(4, 3, 1)), TxStatus::balance_overflow);
  EXPECT_EQ(shard.state().opened_total, INT64_MAX);
  EXPECT_EQ(shard.state().accounts.count(3), 0u);
}

}  // namespace
}  // namespace keel::ledger
