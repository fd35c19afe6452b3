// Tests for access credits in engine/ledger: credit_grant and credit_spend (transaction.h),
// the charge a shard takes when it orders a client's submission and the spends it appends
// at seal (shard.h), and credit accounts in the shard state and its snapshots (state.h).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "engine/ledger/shard.h"
#include "engine/ledger/snapshot.h"
#include "tests/engine/ledger/ledger_test_support.h"

namespace keel::ledger {
namespace {

using testing::submit;
using testing::submit_internal;

const ClientId alice = make_client_id("alice");
const ClientId bob = make_client_id("bob.2-x_y");

constexpr AccessPolicy two_per_tx{.credits_required = true, .credits_per_tx = 2};

// A client's submission as a shard tile orders it: charged to `payer`.
TxStatus submit_as(ShardExecutor& shard, const ClientId& payer, const std::vector<std::byte>& bytes) {
  TxView view;
  TxStatus checked = check_transaction(bytes, TxOrigin::client, &view);
  if (checked != TxStatus::applied) return checked;
  EXPECT_TRUE(shard.has_room(bytes.size(), &payer));
  return shard.execute_charged(view, bytes, payer);
}

// The credit_spend a view holds, or nullopt for any other transaction.
std::optional<ClientCreditBody> spend_in(std::span<const std::byte> tx) {
  TxView view;
  if (check_transaction(tx, TxOrigin::engine, &view) != TxStatus::applied || view.type != TxType::credit_spend)
    return std::nullopt;
  return view.client_credit;
}

std::vector<std::vector<std::byte>> transactions_of(const SealedBlock& block) {
  Result<BlockView> parsed = parse_block(block.record);
  EXPECT_TRUE(parsed);
  std::vector<std::vector<std::byte>> txs;
  for_each_transaction(parsed->body, [&](std::span<const std::byte> tx) { txs.emplace_back(tx.begin(), tx.end()); });
  return txs;
}

TEST(CreditTransaction, GrantAndSpendCheckTheirClientIdAndOrigin) {
  std::vector<std::byte> grant = encode_credit_grant(1, 0, "alice", 10);
  TxView view;
  ASSERT_EQ(check_transaction(grant, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::credit_grant);
  EXPECT_EQ(client_id_text(view.client_credit.client), "alice");
  EXPECT_EQ(home_shard(view, 4), 0u);
  EXPECT_EQ(check_transaction(encode_credit_grant(1, 0, "Alice", 10), TxOrigin::client, &view), TxStatus::bad_client_id);
  EXPECT_EQ(check_transaction(encode_credit_grant(1, 0, "", 10), TxOrigin::client, &view), TxStatus::bad_client_id);
  // Bytes after the id's NUL padding must stay NUL: one id, one encoding.
  std::vector<std::byte> trailing = grant;
  trailing[16 + 16 + 7] = std::byte{'x'};
  EXPECT_EQ(check_transaction(trailing, TxOrigin::client, &view), TxStatus::bad_client_id);
  std::vector<std::byte> reserved = grant;
  reserved[16 + 4] = std::byte{1};
  EXPECT_EQ(check_transaction(reserved, TxOrigin::client, &view), TxStatus::bad_flags);
  std::vector<std::byte> spend = encode_credit_spend(3, 1, alice, 4);
  EXPECT_EQ(check_transaction(spend, TxOrigin::client, &view), TxStatus::internal_type);
  ASSERT_EQ(check_transaction(spend, TxOrigin::engine, &view), TxStatus::applied);
  EXPECT_EQ(home_shard(view, 4), 1u);
  EXPECT_EQ(view.header.nonce, 3u);
  EXPECT_EQ(status_text(TxStatus::no_credit), "no access credit on this shard");
  EXPECT_TRUE(status_is_unordered(TxStatus::no_credit));
  EXPECT_TRUE(status_is_unordered(TxStatus::not_a_granter));
  EXPECT_FALSE(execute_ordered(TxStatus::no_credit));
  EXPECT_TRUE(is_client_id("load-0"));
  EXPECT_FALSE(is_client_id(std::string(33, 'a')));
}

TEST(Credits, GrantThenSpendChargesEachOrderedSubmissionAndAppendsOneSpendPerClient) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{}, two_per_tx);
  // Grants are free, even from a client that holds nothing.
  EXPECT_EQ(submit_as(shard, bob, encode_credit_grant(1, 0, "alice", 5)), TxStatus::applied);
  EXPECT_EQ(submit_as(shard, bob, encode_credit_grant(2, 0, "bob.2-x_y", 2)), TxStatus::applied);
  EXPECT_EQ(submit_as(shard, alice, encode_create_account(3, 7, 100)), TxStatus::applied);
  // Rejected in the block, still ordered: it pays.
  EXPECT_EQ(submit_as(shard, alice, encode_transfer(4, 7, 8, 1000)), TxStatus::insufficient_funds);
  EXPECT_EQ(shard.open_charge(alice), 4u);
  // 5 - 4 < 2: refused, in no block.
  EXPECT_EQ(submit_as(shard, alice, encode_put(5, std::as_bytes(std::span("k", 1)), {})), TxStatus::no_credit);
  EXPECT_EQ(submit_as(shard, bob, encode_put(6, std::as_bytes(std::span("k", 1)), {})), TxStatus::applied);
  EXPECT_EQ(shard.open_tx_count(), 5u);
  EXPECT_EQ(shard.credit_balance(alice), 5u) << "charges are debited at seal";
  SealedBlock block = shard.seal(1);
  ASSERT_EQ(block.header.tx_count, 7u);
  std::vector<std::vector<std::byte>> txs = transactions_of(block);
  // The spends close the block, by ascending client id, nonce = height.
  std::optional<ClientCreditBody> first = spend_in(txs[5]), second = spend_in(txs[6]);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->client, alice);
  EXPECT_EQ(first->amount, 4u);
  EXPECT_EQ(second->client, bob);
  EXPECT_EQ(second->amount, 2u);
  EXPECT_EQ(block.receipts[5].status, TxStatus::applied);
  EXPECT_EQ(shard.credit_balance(alice), 1u);
  EXPECT_EQ(shard.credit_balance(bob), 0u);
  EXPECT_FALSE(shard.state().credit_accounts.contains(bob)) << "an account at zero is forgotten";
  EXPECT_EQ(shard.open_charge(alice), 0u);
}

TEST(Credits, AClientWithoutCreditIsRefusedAndNothingIsOrdered) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{}, two_per_tx);
  Hash32 before = shard.state().digest();
  EXPECT_EQ(submit_as(shard, alice, encode_create_account(1, 7, 100)), TxStatus::no_credit);
  EXPECT_EQ(submit_as(shard, alice, encode_transfer(2, 7, 8, 1)), TxStatus::no_credit);
  EXPECT_EQ(shard.open_tx_count(), 0u);
  EXPECT_EQ(shard.open_body_bytes(), 0u);
  EXPECT_EQ(shard.state().digest(), before);
  // One credit is not enough for a submission costing two.
  EXPECT_EQ(submit_as(shard, bob, encode_credit_grant(3, 0, "alice", 1)), TxStatus::applied);
  EXPECT_EQ(submit_as(shard, alice, encode_create_account(4, 7, 100)), TxStatus::no_credit);
  EXPECT_EQ(shard.open_tx_count(), 1u);
  // A spend the account cannot cover is never ordered (replay of such a log fails).
  EXPECT_EQ(submit_internal(shard, encode_credit_spend(1, 0, alice, 2)), TxStatus::no_credit);
  EXPECT_EQ(shard.open_tx_count(), 1u);
}

TEST(Credits, AChainWithoutCreditsChargesNothing) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  EXPECT_EQ(submit_as(shard, alice, encode_create_account(1, 7, 100)), TxStatus::applied);
  EXPECT_EQ(shard.open_charge(alice), 0u);
  SealedBlock block = shard.seal(1);
  EXPECT_EQ(block.header.tx_count, 1u) << "no credit_spend";
}

TEST(Credits, GrantOverflowZeroAndAFullShardAreRejectionsInTheBlock) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{65536, 1 << 30});
  EXPECT_EQ(submit(shard, encode_credit_grant(1, 0, "alice", UINT64_MAX - 1)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_credit_grant(2, 0, "alice", 2)), TxStatus::balance_overflow);
  EXPECT_EQ(submit(shard, encode_credit_grant(3, 0, "alice", 1)), TxStatus::applied);
  EXPECT_EQ(shard.credit_balance(alice), UINT64_MAX);
  EXPECT_EQ(submit(shard, encode_credit_grant(4, 0, "bob.2-x_y", 0)), TxStatus::zero_amount);
  EXPECT_EQ(shard.open_tx_count(), 4u);
  for (uint32_t client = 1; client < credit_accounts_max; ++client)
    ASSERT_EQ(submit(shard, encode_credit_grant(10 + client, 0, "c" + std::to_string(client), 1)), TxStatus::applied);
  EXPECT_EQ(shard.state().credit_accounts.size(), credit_accounts_max);
  EXPECT_EQ(submit(shard, encode_credit_grant(9, 0, "one-too-many", 1)), TxStatus::credit_accounts_full);
  EXPECT_EQ(submit(shard, encode_credit_grant(8, 0, "c1", 1)), TxStatus::applied) << "an existing account still takes grants";
  SealedBlock block = shard.seal(1);
  EXPECT_EQ(block.receipts[1].status, TxStatus::balance_overflow);
}

TEST(Credits, BlockTxsMaxCountsTheSpendsABlockOwes) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{3, 1 << 20}, AccessPolicy{true, 1});
  EXPECT_EQ(submit(shard, encode_credit_grant(1, 0, "alice", 10)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_credit_grant(2, 0, "bob.2-x_y", 10)), TxStatus::applied);
  // One transaction and its spend do not fit the one place left.
  EXPECT_FALSE(shard.has_room(40, &alice));
  EXPECT_TRUE(shard.has_room(40));
  shard.seal(1);
  ASSERT_TRUE(shard.has_room(40, &alice));
  EXPECT_EQ(submit_as(shard, alice, encode_create_account(3, 7, 1)), TxStatus::applied);
  EXPECT_TRUE(shard.has_room(40, &alice)) << "alice's spend has its place already";
  EXPECT_FALSE(shard.has_room(40, &bob));
  EXPECT_EQ(shard.open_body_bytes(), 40u + client_credit_tx_bytes);
  EXPECT_EQ(submit_as(shard, alice, encode_create_account(4, 8, 1)), TxStatus::applied);
  EXPECT_FALSE(shard.has_room(40, &alice));
  SealedBlock block = shard.seal(2);
  EXPECT_EQ(block.header.tx_count, 3u);
  EXPECT_EQ(block.record.size(), sizeof(BlockHeader) + 2 * 40 + client_credit_tx_bytes);
}

// Random grants and charged submissions from a few clients over many blocks.
std::vector<SealedBlock> run_credit_stream(ShardExecutor& shard, uint64_t seed) {
  std::mt19937_64 random(seed);
  const ClientId clients[] = {alice, bob, make_client_id("carol")};
  std::vector<SealedBlock> blocks;
  uint64_t nonce = 1, refused = 0;
  for (int step = 0; step < 1500; ++step) {
    const ClientId& client = clients[random() % 3];
    std::vector<std::byte> tx;
    if (random() % 8 == 0)
      tx = encode_credit_grant(nonce++, shard.identity().shard, *client_id_text(client), 1 + random() % 9);
    else
      tx = encode_transfer(nonce++, 1 + random() % 5, 1 + random() % 5, 1 + random() % 3);
    if (!shard.has_room(tx.size(), &client)) blocks.push_back(shard.seal(blocks.size() + 1));
    if (submit_as(shard, client, tx) == TxStatus::no_credit) ++refused;
    if (random() % 40 == 0 && shard.open_tx_count() > 0) blocks.push_back(shard.seal(blocks.size() + 1));
  }
  if (shard.open_tx_count() > 0) blocks.push_back(shard.seal(blocks.size() + 1));
  EXPECT_GT(refused, 50u) << "seed " << seed << ": the stream should exhaust credit often";
  return blocks;
}

TEST(Credits, ReplayReproducesBalancesAndBlocksBitForBitWithoutChargingAgain) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  ShardExecutor live({"bank", 0, 1}, BlockLimits{64, 1 << 20}, AccessPolicy{true, 3});
  for (uint64_t account = 1; account <= 5; ++account) {
    ASSERT_EQ(submit(live, encode_create_account(1000 + account, account, 50)), TxStatus::applied);
  }
  std::vector<SealedBlock> blocks = run_credit_stream(live, seed);
  ASSERT_GT(blocks.size(), 10u);
  uint64_t spends = 0;
  for (const SealedBlock& block : blocks)
    for (const std::vector<std::byte>& tx : transactions_of(block)) spends += spend_in(tx).has_value();
  EXPECT_GT(spends, 10u);
  // Replay charges nothing itself, whatever the replica's policy: the log holds the spends.
  for (AccessPolicy policy : {AccessPolicy{}, AccessPolicy{true, 3}, AccessPolicy{true, 7}}) {
    ShardExecutor replica({"bank", 0, 1}, BlockLimits{64, 1 << 20}, policy);
    for (const SealedBlock& block : blocks) {
      Result<SealedBlock> replayed = replica.replay(block.record);
      ASSERT_TRUE(replayed) << replayed.error().message;
      EXPECT_EQ(replayed->hash, block.hash);
    }
    EXPECT_EQ(replica.state().serialize(), live.state().serialize());
    EXPECT_EQ(replica.state().credit_accounts, live.state().credit_accounts);
  }
}

TEST(Credits, ReplayRefusesASpendItsAccountCannotCover) {
  ShardExecutor live({"bank", 0, 1}, BlockLimits{}, AccessPolicy{true, 1});
  ASSERT_EQ(submit(live, encode_credit_grant(1, 0, "alice", 5)), TxStatus::applied);
  SealedBlock first = live.seal(1);
  ASSERT_EQ(submit_as(live, alice, encode_create_account(2, 7, 1)), TxStatus::applied);
  SealedBlock second = live.seal(2);
  // A replica whose state says alice holds nothing after block 1 (a tampered snapshot).
  ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
  ASSERT_TRUE(replica.replay(first.record));
  ShardState tampered = replica.state();
  tampered.credit_accounts.clear();
  ShardExecutor restarted({"bank", 0, 1}, BlockLimits{});
  restarted.restore(std::move(tampered));
  Result<SealedBlock> replayed = restarted.replay(second.record);
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().message,
            "chain bank shard 0 height 2: transaction 1 cannot be in this block: no access credit on this shard");
}

TEST(Credits, SnapshotsCarryCreditAccounts) {
  ShardExecutor shard({"bank", 1, 2}, BlockLimits{}, AccessPolicy{true, 1});
  ASSERT_EQ(submit(shard, encode_credit_grant(1, 1, "alice", 500)), TxStatus::applied);
  ASSERT_EQ(submit(shard, encode_credit_grant(2, 1, "bob.2-x_y", 7)), TxStatus::applied);
  ASSERT_EQ(submit_as(shard, bob, encode_create_account(3, testing::account_on(1, 2), 1)), TxStatus::applied);
  shard.seal(1);
  std::vector<std::byte> bytes = ShardSnapshot{shard.state(), {}}.serialize();
  Result<ShardSnapshot> back = ShardSnapshot::deserialize(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->state.credit_accounts, shard.state().credit_accounts);
  EXPECT_EQ(back->state.credit_accounts.at(bob), 6u);
  EXPECT_EQ(back->serialize(), bytes);
  ShardExecutor restarted({"bank", 1, 2}, BlockLimits{}, AccessPolicy{true, 1});
  restarted.restore(std::move(back->state));
  EXPECT_EQ(restarted.credit_balance(alice), 500u);
  EXPECT_EQ(restarted.state().digest(), shard.state().digest());
}

// The state bytes with the version field set to `version`.
std::vector<std::byte> with_version(std::vector<std::byte> bytes, uint32_t version) {
  std::memcpy(bytes.data() + 4, &version, 4);
  return bytes;
}

TEST(Credits, OlderStatesLoadWithoutAccountsAndDamagedAccountsAreNamed) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_create_account(1, 7, 100)), TxStatus::applied);
  shard.seal(1);
  // A version 3 state is a version 4 one without the credit section (its count, 8 bytes).
  std::vector<std::byte> current = shard.state().serialize();
  std::vector<std::byte> version3 = with_version({current.begin(), current.end() - 8}, 3);
  Result<ShardState> old = ShardState::deserialize(version3);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_TRUE(old->credit_accounts.empty());
  EXPECT_EQ(old->serialize(), current);
  Result<ShardState> newer = ShardState::deserialize(with_version(current, 5));
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().message, "state snapshot: offset 8: state format version 5, this keel reads 1 to 4");

  ShardState state = shard.state();
  state.credit_accounts[alice] = 0;
  Result<ShardState> zero = ShardState::deserialize(state.serialize());
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message.find("credit account 'alice': zero balance"), std::string::npos) << zero.error().message;
  state.credit_accounts[alice] = 3;
  std::vector<std::byte> bytes = state.serialize();
  bytes[bytes.size() - 40] = std::byte{'A'};  // the id's first character
  Result<ShardState> bad_id = ShardState::deserialize(bytes);
  ASSERT_FALSE(bad_id);
  EXPECT_NE(bad_id.error().message.find("credit account 0: client id is not 1 to 32 characters of [a-z0-9_.-]"),
            std::string::npos)
      << bad_id.error().message;
  state.credit_accounts[bob] = 4;
  bytes = state.serialize();
  // Swap the two entries: out of order.
  std::vector<std::byte> first(bytes.end() - 80, bytes.end() - 40), second(bytes.end() - 40, bytes.end());
  std::copy(second.begin(), second.end(), bytes.end() - 80);
  std::copy(first.begin(), first.end(), bytes.end() - 40);
  Result<ShardState> swapped = ShardState::deserialize(bytes);
  ASSERT_FALSE(swapped);
  EXPECT_NE(swapped.error().message.find("credit account 'alice': ids out of order or repeated"), std::string::npos)
      << swapped.error().message;
}

}  // namespace
}  // namespace keel::ledger
