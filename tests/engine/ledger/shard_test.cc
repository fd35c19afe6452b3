#include "engine/ledger/shard.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <deque>
#include <random>

#include "tests/engine/ledger/ledger_test_support.h"

namespace keel::ledger {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text.data(), text.size())); }

using testing::submit;

using testing::account_on;

TEST(ShardExecutor, AppliesAndRejectsByTheRules) {
  ShardExecutor shard({"payments", 0, 1}, BlockLimits{});
  EXPECT_EQ(submit(shard, encode_create_account(1, 1, 100)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_create_account(2, 2, 0)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_create_account(3, 3, 0, account_flag_allow_overdraft)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_create_account(4, 1, 5)), TxStatus::account_exists);
  EXPECT_EQ(submit(shard, encode_create_account(5, 4, -1)), TxStatus::negative_opening_balance);
  EXPECT_EQ(submit(shard, encode_transfer(6, 1, 2, 60)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_transfer(7, 1, 2, 41)), TxStatus::insufficient_funds);
  EXPECT_EQ(submit(shard, encode_transfer(8, 1, 1, 1)), TxStatus::same_account);
  EXPECT_EQ(submit(shard, encode_transfer(9, 1, 2, 0)), TxStatus::zero_amount);
  EXPECT_EQ(submit(shard, encode_transfer(10, 9, 2, 1)), TxStatus::no_such_account);
  EXPECT_EQ(submit(shard, encode_transfer(11, 1, 9, 1)), TxStatus::no_such_account);
  EXPECT_EQ(submit(shard, encode_transfer(12, 3, 2, 500)), TxStatus::applied);  // overdraft allowed
  EXPECT_EQ(submit(shard, encode_put(13, bytes_of("k"), bytes_of("v1"))), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_put(14, bytes_of("k"), bytes_of("v2"))), TxStatus::applied);
  const ShardState& state = shard.state();
  EXPECT_EQ(state.accounts.at(1).balance, 40);
  EXPECT_EQ(state.accounts.at(2).balance, 560);
  EXPECT_EQ(state.accounts.at(3).balance, -500);
  EXPECT_EQ(state.values.at("k"), "v2");
  EXPECT_EQ(state.total_balance(), 100);
}

TEST(ShardExecutor, RefusesWhatBelongsToAnotherShard) {
  ShardExecutor shard({"payments", 0, 2}, BlockLimits{});
  EXPECT_EQ(submit(shard, encode_create_account(1, account_on(1, 2), 5)), TxStatus::wrong_shard);
  EXPECT_EQ(shard.open_tx_count(), 0u);
}

TEST(ShardExecutor, SealsHashChainedBlocksWithReceipts) {
  ShardExecutor shard({"payments", 0, 1}, BlockLimits{});
  std::vector<std::byte> first = encode_create_account(1, 1, 100);
  std::vector<std::byte> second = encode_transfer(2, 1, 5, 1);
  std::vector<std::byte> third = encode_create_account(3, 2, 7);
  submit(shard, first);
  submit(shard, second);
  submit(shard, third);
  SealedBlock one = shard.seal(1000);
  EXPECT_EQ(one.header.height, 1u);
  EXPECT_TRUE(one.header.previous_hash.is_zero());
  EXPECT_EQ(one.header.tx_count, 3u);
  EXPECT_EQ(one.hash, block_hash(one.header));
  ASSERT_EQ(one.receipts.size(), 3u);
  EXPECT_EQ(one.receipts[0].tx_hash, hash_leaf(first));
  EXPECT_EQ(one.receipts[0].status, TxStatus::applied);
  EXPECT_EQ(one.receipts[1].status, TxStatus::no_such_account);
  EXPECT_EQ(one.receipts[1].height, 1u);
  // Three leaves: the wide tree's root and RFC 6962's differ from three on.
  std::vector<Hash32> leaves = {hash_leaf(first), hash_leaf(second), hash_leaf(third)}, scratch;
  EXPECT_EQ(one.header.version, block_format_version);
  EXPECT_EQ(one.header.merkle_root, merkle_root_wide(leaves, scratch));
  EXPECT_NE(one.header.merkle_root, merkle_root(leaves, scratch));
  ASSERT_TRUE(parse_block(one.record));
  submit(shard, encode_transfer(3, 1, 5, 1));
  SealedBlock two = shard.seal(2000);
  EXPECT_EQ(two.header.height, 2u);
  EXPECT_EQ(two.header.previous_hash, one.hash);
  EXPECT_EQ(two.receipts[0].height, 2u);
}

// A producer's leaf hash is taken as given (client/protocol.h), in the receipt and the
// root; replay hashes the logged bytes, so a block ordered under the right hash replays
// and one ordered under a wrong hash does not.
TEST(ShardExecutor, TakesAProducersLeafHashAndReplayChecksItAgainstTheBytes) {
  std::vector<std::byte> create = encode_create_account(1, 1, 100);
  std::vector<std::byte> transfer = encode_transfer(2, 1, 5, 1);
  auto order_with = [&](ShardExecutor& shard, const Hash32& create_leaf) {
    TxView view;
    EXPECT_EQ(check_transaction(create, TxOrigin::client, &view), TxStatus::applied);
    EXPECT_EQ(shard.execute(view, create, &create_leaf), TxStatus::applied);
    EXPECT_EQ(check_transaction(transfer, TxOrigin::client, &view), TxStatus::applied);
    shard.execute(view, transfer);
    return shard.seal(1000);
  };
  ShardExecutor right({"payments", 0, 1}, BlockLimits{});
  SealedBlock block = order_with(right, hash_leaf(create));
  std::vector<Hash32> leaves = {hash_leaf(create), hash_leaf(transfer)}, scratch;
  EXPECT_EQ(block.header.merkle_root, merkle_root_wide(leaves, scratch));
  ShardExecutor replica({"payments", 0, 1}, BlockLimits{});
  EXPECT_TRUE(replica.replay(block.record).ok());

  Hash32 wrong;
  wrong.bytes.fill(0xab);
  ShardExecutor trusting({"payments", 0, 1}, BlockLimits{});
  SealedBlock bad = order_with(trusting, wrong);
  EXPECT_EQ(bad.receipts[0].tx_hash, wrong);
  ShardExecutor checker({"payments", 0, 1}, BlockLimits{});
  EXPECT_FALSE(checker.replay(bad.record).ok());
}

TEST(ShardExecutor, BlockLimitsAreHonoured) {
  ShardExecutor shard({"payments", 0, 1}, BlockLimits{4, 1 << 20});
  for (int index = 0; index < 4; ++index) {
    ASSERT_TRUE(shard.has_room(40));
    submit(shard, encode_create_account(index, index + 1, 1));
  }
  EXPECT_FALSE(shard.has_room(40));
  ShardExecutor small({"payments", 0, 1}, BlockLimits{100, 100});
  EXPECT_TRUE(small.has_room(100));
  submit(small, encode_create_account(1, 1, 1));
  EXPECT_FALSE(small.has_room(61));
}

// A chain of `shard_count` executors; credits travel through per-pair FIFO queues and
// are delivered (like the engine does once their block is durable) at random moments.
struct TestChain {
  TestChain(uint32_t shard_count, uint64_t seed) : random(seed), links(shard_count * shard_count) {
    for (uint32_t shard = 0; shard < shard_count; ++shard)
      shards.emplace_back(ShardIdentity{"bank", shard, shard_count}, BlockLimits{64, 1 << 20});
  }
  std::mt19937_64 random;
  std::vector<ShardExecutor> shards;
  std::vector<std::deque<OutboundCredit>> links;  // [origin * n + destination]
  std::vector<std::vector<std::vector<std::byte>>> records{8};
  int64_t opened = 0;
  uint64_t time_ns = 1;

  uint32_t size() const { return uint32_t(shards.size()); }
  void client(const std::vector<std::byte>& bytes) {
    TxView view;
    ASSERT_EQ(check_transaction(bytes, TxOrigin::client, &view), TxStatus::applied);
    ShardExecutor& shard = shards[home_shard(view, size())];
    if (!shard.has_room(bytes.size())) seal(shard.identity().shard);
    TxStatus status = shard.execute(view, bytes);
    if (view.type == TxType::create_account && status == TxStatus::applied) opened += view.create_account.opening_balance;
  }
  void seal(uint32_t shard) {
    if (shards[shard].open_tx_count() == 0) return;
    SealedBlock block = shards[shard].seal(time_ns++);
    records[shard].push_back(block.record);
    for (const OutboundCredit& credit : block.credits) links[shard * size() + credit.destination_shard].push_back(credit);
  }
  // Delivers up to `count` credits from one link; with `repeat`, delivers the first again
  // (as after a restart) and expects it refused as a duplicate.
  void deliver(uint32_t origin, uint32_t destination, size_t count, bool repeat) {
    std::deque<OutboundCredit>& link = links[origin * size() + destination];
    ShardExecutor& shard = shards[destination];
    for (size_t sent = 0; sent < count && !link.empty(); ++sent) {
      TxView view;
      ASSERT_EQ(check_transaction(link.front().tx, TxOrigin::engine, &view), TxStatus::applied);
      if (!shard.has_room(credit_tx_bytes)) seal(destination);
      TxStatus status = shard.execute(view, link.front().tx);
      ASSERT_NE(status, TxStatus::duplicate_credit);
      if (repeat && sent == 0) {
        ASSERT_EQ(shard.execute(view, link.front().tx), TxStatus::duplicate_credit);
      }
      link.pop_front();
    }
  }
  bool links_empty() const {
    for (const auto& link : links)
      if (!link.empty()) return false;
    return true;
  }
  int64_t total() const {
    int64_t sum = 0;
    for (const ShardExecutor& shard : shards) sum += shard.state().total_balance();
    auto in_flight = [](const OutboundCredit& credit) {
      CreditBody body = credit.body();
      return int64_t(body.amount);
    };
    for (const auto& link : links)
      for (const OutboundCredit& credit : link) sum += in_flight(credit);
    for (const ShardExecutor& shard : shards)
      for (const OutboundCredit& credit : shard.open_credits()) sum += in_flight(credit);
    return sum;
  }
};

TEST(ShardExecutor, RandomCrossShardTransfersConserveTheChainTotal) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // seen even if an assertion aborts the test
  TestChain chain(4, seed);
  const uint64_t accounts = 200;  // accounts 1..200 exist; 201..220 do not (refunds)
  for (uint64_t account = 1; account <= accounts; ++account)
    chain.client(encode_create_account(account, account, int64_t(chain.random() % 1000),
                                       account % 17 == 0 ? account_flag_allow_overdraft : 0));
  for (uint64_t nonce = 1; nonce <= 20000; ++nonce) {
    uint64_t from = 1 + chain.random() % (accounts + 20), to = 1 + chain.random() % (accounts + 20);
    chain.client(encode_transfer(nonce, from, to, 1 + chain.random() % 300));
    if (chain.random() % 50 == 0) chain.seal(uint32_t(chain.random() % chain.size()));
    if (chain.random() % 10 == 0)
      chain.deliver(uint32_t(chain.random() % chain.size()), uint32_t(chain.random() % chain.size()),
                    chain.random() % 8, chain.random() % 20 == 0);
    ASSERT_EQ(chain.total(), chain.opened) << "seed " << seed << " nonce " << nonce;
  }
  while (!chain.links_empty()) {
    for (uint32_t shard = 0; shard < chain.size(); ++shard) chain.seal(shard);
    for (uint32_t origin = 0; origin < chain.size(); ++origin)
      for (uint32_t destination = 0; destination < chain.size(); ++destination)
        chain.deliver(origin, destination, SIZE_MAX, false);
    for (uint32_t shard = 0; shard < chain.size(); ++shard) chain.seal(shard);
  }
  EXPECT_EQ(chain.total(), chain.opened) << "seed " << seed;
  int64_t opened_totals = 0;
  for (const ShardExecutor& shard : chain.shards) opened_totals += shard.state().opened_total;
  EXPECT_EQ(opened_totals, chain.opened) << "the shards' opened totals must add up to the openings; seed " << seed;

  // Replaying every shard's blocks from nothing gives the same state and hashes.
  for (uint32_t shard = 0; shard < chain.size(); ++shard) {
    ShardExecutor replica({"bank", shard, chain.size()}, BlockLimits{64, 1 << 20});
    for (const std::vector<std::byte>& record : chain.records[shard]) {
      Result<SealedBlock> block = replica.replay(record);
      ASSERT_TRUE(block) << block.error().message;
    }
    EXPECT_EQ(replica.state().digest(), chain.shards[shard].state().digest()) << "shard " << shard << " seed " << seed;
  }
}

// `into_buffer`: each block sealed into a buffer of its own (as the shard tile seals into
// the persist arena) rather than into the returned record.
std::vector<std::vector<std::byte>> run_stream(uint64_t seed, bool into_buffer = false) {
  ShardExecutor shard({"payments", 0, 1}, BlockLimits{16, 1 << 20});
  std::mt19937_64 random(seed);
  std::vector<std::vector<std::byte>> records;
  auto seal = [&](uint64_t time_ns) {
    if (!into_buffer) return records.push_back(shard.seal(time_ns).record);
    std::vector<std::byte> buffer(sizeof(BlockHeader) + shard.open_body_bytes());
    EXPECT_TRUE(shard.seal(time_ns, buffer).record.empty());
    records.push_back(std::move(buffer));
  };
  for (uint64_t account = 1; account <= 20; ++account) {
    if (!shard.has_room(64)) seal(account);
    submit(shard, encode_create_account(account, account, 100));
  }
  for (uint64_t nonce = 100; nonce < 1000; ++nonce) {
    if (!shard.has_room(64)) seal(nonce);
    submit(shard, encode_transfer(nonce, 1 + random() % 20, 1 + random() % 20, 1 + random() % 50));
  }
  seal(5000);
  return records;
}

TEST(ShardExecutor, TheSameStreamGivesTheSameBlocks) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // seen even if an assertion aborts the test
  EXPECT_EQ(run_stream(seed), run_stream(seed)) << "seed " << seed;
  EXPECT_EQ(run_stream(seed), run_stream(seed, /*into_buffer=*/true)) << "seed " << seed;
}

TEST(ShardExecutor, ReplayRejectsDamagedOrMisplacedBlocks) {
  std::vector<std::vector<std::byte>> records = run_stream(7);
  ASSERT_GE(records.size(), 3u);
  {
    ShardExecutor replica({"payments", 0, 1}, BlockLimits{16, 1 << 20});
    ASSERT_TRUE(replica.replay(records[0]));
    std::vector<std::byte> flipped = records[1];
    flipped[sizeof(BlockHeader) + 30] ^= std::byte{4};  // inside the first transaction
    Result<SealedBlock> block = replica.replay(flipped);
    ASSERT_FALSE(block);
    EXPECT_EQ(block.error().message.rfind("chain payments shard 0 height 2: ", 0), 0u) << block.error().message;
  }
  {
    ShardExecutor replica({"payments", 0, 1}, BlockLimits{16, 1 << 20});
    Result<SealedBlock> block = replica.replay(records[1]);
    ASSERT_FALSE(block);
    EXPECT_EQ(block.error().message, "chain payments shard 0 height 1: log holds height 2 here");
  }
  {
    ShardExecutor replica({"payments", 0, 1}, BlockLimits{16, 1 << 20});
    ASSERT_TRUE(replica.replay(records[0]));
    std::vector<std::byte> relinked = records[1];
    relinked[offsetof(BlockHeader, previous_hash)] ^= std::byte{1};
    Result<SealedBlock> block = replica.replay(relinked);
    ASSERT_FALSE(block);
    EXPECT_EQ(block.error().message,
              "chain payments shard 0 height 2: hash chain broken: previous hash does not match block 1");
  }
  {
    ShardExecutor other({"receipts", 0, 1}, BlockLimits{16, 1 << 20});
    Result<SealedBlock> block = other.replay(records[0]);
    ASSERT_FALSE(block);
    EXPECT_EQ(block.error().message, "chain receipts shard 0 height 1: block belongs to another chain or shard");
  }
}

// Rewrites a stream's blocks as format version 1 wrote them (RFC 6962 roots), each
// linked to the rewritten block before it.
std::vector<std::vector<std::byte>> as_version_1(const std::vector<std::vector<std::byte>>& records) {
  std::vector<std::vector<std::byte>> rewritten;
  Hash32 previous;
  std::vector<Hash32> scratch;
  for (const std::vector<std::byte>& record : records) {
    Result<BlockView> block = parse_block(record);
    if (!block) {
      ADD_FAILURE() << block.error().message;
      return {};
    }
    std::vector<Hash32> leaves;
    for_each_transaction(block->body, [&](std::span<const std::byte> tx) { leaves.push_back(hash_leaf(tx)); });
    BlockHeader header = block->header;
    header.version = 1;
    header.previous_hash = previous;
    header.merkle_root = merkle_root(leaves, scratch);
    previous = block_hash(header);
    std::vector<std::byte> copy = record;
    std::memcpy(copy.data(), &header, sizeof header);
    rewritten.push_back(std::move(copy));
  }
  return rewritten;
}

// Logs written before the wide Merkle tree still replay, each block under its own
// version's root; a root of the other version, or a version this keel does not know, is
// refused.
TEST(ShardExecutor, BlocksOfTheOlderFormatReplayUnderTheirOwnRoot) {
  const std::vector<std::vector<std::byte>> records = as_version_1(run_stream(7));
  ASSERT_GE(records.size(), 3u);  // fewer: as_version_1 failed
  ShardExecutor replica({"payments", 0, 1}, BlockLimits{16, 1 << 20});
  for (const std::vector<std::byte>& record : records) {
    Result<SealedBlock> block = replica.replay(record);
    ASSERT_TRUE(block) << block.error().message;
    EXPECT_EQ(block->header.version, 1u);
    EXPECT_EQ(block->record, record);
  }
  // Live blocks after the replay are the current version again.
  submit(replica, encode_transfer(7000, 1, 2, 1));
  EXPECT_EQ(replica.seal(9000).header.version, block_format_version);

  // A version 1 header over a version 2 root: the block holds 16 transactions, where the
  // two trees differ.
  std::vector<std::byte> mislabelled = run_stream(7)[0];
  const uint16_t version_1 = 1;
  std::memcpy(mislabelled.data() + offsetof(BlockHeader, version), &version_1, sizeof version_1);
  ShardExecutor other({"payments", 0, 1}, BlockLimits{16, 1 << 20});
  Result<SealedBlock> refused = other.replay(mislabelled);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "chain payments shard 0 height 1: Merkle root does not match the transactions");

  std::vector<std::byte> future = run_stream(7)[0];
  const uint16_t next_version = block_format_version + 1;
  std::memcpy(future.data() + offsetof(BlockHeader, version), &next_version, sizeof next_version);
  Result<BlockView> parsed = parse_block(future);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message, "block format version 4, this keel reads 1 to 3");
}

TEST(ShardExecutor, RestoredStateContinuesTheChain) {
  std::vector<std::vector<std::byte>> records = run_stream(11);
  ShardExecutor first({"payments", 0, 1}, BlockLimits{16, 1 << 20});
  for (size_t index = 0; index < 2; ++index) ASSERT_TRUE(first.replay(records[index]));
  Result<ShardState> snapshot = ShardState::deserialize(first.state().serialize());
  ASSERT_TRUE(snapshot);
  ShardExecutor resumed({"payments", 0, 1}, BlockLimits{16, 1 << 20});
  resumed.restore(std::move(*snapshot));
  for (size_t index = 2; index < records.size(); ++index) {
    Result<SealedBlock> block = resumed.replay(records[index]);
    ASSERT_TRUE(block) << block.error().message;
  }
  EXPECT_EQ(resumed.state().height, records.size());
}

}  // namespace
}  // namespace keel::ledger
