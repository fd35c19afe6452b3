#include "engine/client/gateway.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "engine/client/client.h"
#include "engine/ledger/hash.h"
#include "engine/ledger/transaction.h"
#include "tests/engine/client/test_engine.h"

namespace keel::client {
namespace {

using ledger::TxStatus;
using testing::FakeShard;
using testing::TestEngine;

using Clock = std::chrono::steady_clock;

std::unique_ptr<Client> attach_or_fail(const std::string& name, const std::string& client_id = "app") {
  Result<std::unique_ptr<Client>> client = Client::attach(name, client_id);
  EXPECT_TRUE(client.ok()) << client.error().message;
  return client.ok() ? std::move(*client) : nullptr;
}

// Polls the gateway (and lets the shards work when given) until `done` or 5 s pass.
template <class Done>
bool poll_until(TestEngine& engine, Done&& done, std::vector<std::unique_ptr<FakeShard>>* shards = nullptr) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    engine.gateway->poll(256);
    if (shards != nullptr) {
      for (auto& shard : *shards) shard->pump();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Takes receipts until `count` have come or 5 s pass, pumping engine and shards.
std::vector<ReceiptMessage> collect(TestEngine& engine, std::vector<std::unique_ptr<FakeShard>>& shards,
                                    Client& client, size_t count) {
  std::vector<ReceiptMessage> got;
  poll_until(
      engine,
      [&] {
        ReceiptMessage batch[64];
        size_t taken = client.poll_receipts(batch);
        got.insert(got.end(), batch, batch + taken);
        return got.size() >= count;
      },
      &shards);
  return got;
}

bool hash_is_zero(const ReceiptMessage& receipt) {
  return std::all_of(std::begin(receipt.tx_hash), std::end(receipt.tx_hash), [](uint8_t byte) { return byte == 0; });
}

bool hash_matches(const ReceiptMessage& receipt, std::span<const std::byte> tx) {
  ledger::Hash32 hash = ledger::hash_leaf(tx);
  return std::memcmp(receipt.tx_hash, hash.bytes.data(), 32) == 0;
}

std::vector<std::byte> bytes_of(std::string_view text) {
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

// A client that claims a slot by hand, to send what the client library refuses to.
struct RawClient {
  shm::RingProducer submits;
  shm::RingConsumer receipts;

  static RawClient claim(TestEngine& engine, uint32_t slot_index) {
    ClientSlot& slot = engine.slot(slot_index);
    slot.owner_pid.store(getpid());
    slot.owner_start_ticks.store(shm::process_start_ticks(getpid()));
    std::memcpy(engine.identity(slot_index).client_id, "raw", 3);
    slot.state.store(uint32_t(ClientSlotState::attached));
    return {*shm::RingProducer::join(engine.segment.base(), slot.submit_ring),
            *shm::RingConsumer::join(engine.segment.base(), slot.receipt_ring)};
  }
};

TEST(GatewayTest, RoundTripRoutesEachTransactionToItsHomeShard) {
  auto engine = TestEngine::make("round-trip", testing::small_options({{"payments", 2}, {"orders", 1}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  std::map<uint64_t, std::vector<std::byte>> sent;
  for (uint64_t account = 1; account <= 40; ++account) {
    sent[100 + account] = ledger::encode_transfer(account, account, account + 1000, 5);
    ASSERT_TRUE(*client->try_submit(0, 100 + account, sent[100 + account]));
  }
  for (uint64_t account = 1; account <= 5; ++account) {
    sent[500 + account] = ledger::encode_create_account(account, account, 1000);
    ASSERT_TRUE(*client->try_submit(1, 500 + account, sent[500 + account]));
  }
  EXPECT_EQ(client->in_flight(), 45u);
  engine->gateway->poll(1024);
  EXPECT_EQ(engine->gateway->stats().routed, 45u);
  EXPECT_EQ(engine->gateway->owed(client->slot()), 45u);
  size_t taken[3];
  for (int port = 0; port < 3; ++port) taken[port] = shards[port]->take();
  // Each shard checks that it is the home of what it got; both payments shards get some.
  for (auto& shard : shards) EXPECT_EQ(shard->errors(), 0u);
  EXPECT_GT(taken[0], 0u);
  EXPECT_GT(taken[1], 0u);
  EXPECT_EQ(taken[0] + taken[1], 40u);
  EXPECT_EQ(taken[2], 5u);
  for (auto& shard : shards) {
    for (const FakeShard::Routed& routed : shard->pending()) {
      EXPECT_EQ(routed.message.client_slot, client->slot());
      EXPECT_EQ(routed.tx, sent[routed.message.request_id]);
    }
    shard->answer();
  }

  std::vector<ReceiptMessage> receipts = collect(*engine, shards, *client, 45);
  ASSERT_EQ(receipts.size(), 45u);
  std::set<uint64_t> seen;
  for (const ReceiptMessage& receipt : receipts) {
    EXPECT_TRUE(seen.insert(receipt.request_id).second) << receipt.request_id;
    ASSERT_TRUE(sent.count(receipt.request_id));
    EXPECT_EQ(receipt.height, 1u);
    EXPECT_EQ(receipt.status, uint16_t(TxStatus::applied));
    EXPECT_EQ(receipt.chain, receipt.request_id > 500 ? 1u : 0u);
    EXPECT_EQ(receipt.client_slot, client->slot());
    EXPECT_TRUE(hash_matches(receipt, sent[receipt.request_id]));
  }
  EXPECT_EQ(client->in_flight(), 0u);
  EXPECT_EQ(engine->gateway->stats().receipts_forwarded, 45u);
  EXPECT_EQ(engine->gateway->owed(client->slot()), 0u);
  EXPECT_EQ(engine->slot(client->slot()).submitted.load(), 45u);
  EXPECT_EQ(engine->slot(client->slot()).receipts_sent.load(), 45u);
  ReceiptMessage extra[4];
  EXPECT_EQ(client->poll_receipts(extra), 0u);
}

TEST(GatewayTest, MalformedTransactionsAreAnsweredAtOnceWithHeightZero) {
  auto engine = TestEngine::make("malformed", testing::small_options({{"pay", 2}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  std::vector<std::byte> bad_version = ledger::encode_transfer(1, 2, 3, 4);
  bad_version[4] = std::byte{9};
  std::vector<std::byte> bad_length = ledger::encode_transfer(1, 2, 3, 4);
  bad_length[0] = std::byte{39};
  std::vector<std::byte> credit(ledger::credit_tx_bytes);
  ledger::write_credit(std::span<std::byte, ledger::credit_tx_bytes>(credit.data(), ledger::credit_tx_bytes),
                       ledger::CreditBody{1, 2, 3, 4, 0, 0}, false);
  std::map<uint64_t, TxStatus> expected = {{1, TxStatus::bad_version},
                                           {2, TxStatus::bad_length},
                                           {3, TxStatus::internal_type},
                                           {4, TxStatus::too_short}};
  ASSERT_TRUE(*client->try_submit(0, 1, bad_version));
  ASSERT_TRUE(*client->try_submit(0, 2, bad_length));
  ASSERT_TRUE(*client->try_submit(0, 3, credit));
  ASSERT_TRUE(*client->try_submit(0, 4, {}));
  engine->gateway->poll(1024);  // answered in this poll, without any shard
  ReceiptMessage receipts[8];
  ASSERT_EQ(client->poll_receipts(receipts), 4u);
  for (size_t index = 0; index < 4; ++index) {
    EXPECT_EQ(receipts[index].status, uint16_t(expected[receipts[index].request_id])) << receipts[index].request_id;
    EXPECT_EQ(receipts[index].height, 0u);
    EXPECT_EQ(receipts[index].chain, 0u);
    EXPECT_TRUE(hash_is_zero(receipts[index]));
  }
  EXPECT_EQ(engine->gateway->stats().refused, 4u);
  EXPECT_EQ(engine->gateway->stats().routed, 0u);
  for (auto& shard : shards) EXPECT_EQ(shard->take(), 0u);
}

TEST(GatewayTest, UnknownChainAndUnreadableSubmissionsAreRefused) {
  auto engine = TestEngine::make("unknown-chain", testing::small_options({{"pay", 1}}));
  auto shards = FakeShard::for_all_ports(*engine);
  RawClient raw = RawClient::claim(*engine, 1);
  std::vector<std::byte> tx = ledger::encode_transfer(1, 2, 3, 4);
  SubmitMessage message{};
  message.request_id = 7;
  message.chain = 5;
  message.tx_bytes = uint32_t(tx.size());
  std::memcpy(message.inline_tx, tx.data(), tx.size());
  ASSERT_TRUE(raw.submits.push(message));
  message.request_id = 8;  // an arena position that cannot be a payload
  message.chain = 0;
  message.tx_bytes = 500;
  message.arena_position = 1ULL << 40;
  ASSERT_TRUE(raw.submits.push(message));
  message.request_id = 9;  // longer than any transaction
  message.tx_bytes = ledger::tx_bytes_max + 1;
  ASSERT_TRUE(raw.submits.push(message));
  engine->gateway->poll(64);
  ReceiptMessage receipts[4];
  ASSERT_EQ(raw.receipts.pop(std::span<ReceiptMessage>(receipts)), 3u);
  EXPECT_EQ(receipts[0].request_id, 7u);
  EXPECT_EQ(receipts[0].status, uint16_t(TxStatus::unknown_chain));
  EXPECT_EQ(receipts[0].chain, 5u);
  EXPECT_EQ(receipts[0].height, 0u);
  EXPECT_EQ(receipts[0].client_slot, 1u);
  EXPECT_EQ(receipts[1].status, uint16_t(TxStatus::bad_length));
  EXPECT_EQ(receipts[2].status, uint16_t(TxStatus::bad_length));
  EXPECT_EQ(shards[0]->take(), 0u);
}

TEST(GatewayTest, OnlyTheChainsGrantersMayGrantCredits) {
  auto engine = TestEngine::make("granters", testing::small_options({{"pay", 2}, {"open", 1}}),
                                 {ChainAccess{{"treasury", "operator"}}, ChainAccess{}});
  auto shards = FakeShard::for_all_ports(*engine);
  auto app = attach_or_fail(engine->name(), "app");
  auto treasury = attach_or_fail(engine->name(), "treasury");
  ASSERT_NE(app, nullptr);
  ASSERT_NE(treasury, nullptr);
  EXPECT_EQ(std::string(engine->identity(treasury->slot()).client_id), "treasury");
  // A non-granter's grant is refused before ordering, on every chain; its other
  // transactions are routed as usual.
  ASSERT_TRUE(*app->try_submit(0, 1, ledger::encode_credit_grant(1, 1, "app", 100)));
  ASSERT_TRUE(*app->try_submit(1, 2, ledger::encode_credit_grant(2, 0, "app", 100)));
  ASSERT_TRUE(*app->try_submit(0, 3, ledger::encode_transfer(3, 1, 2, 5)));
  engine->gateway->poll(1024);
  std::vector<ReceiptMessage> got = collect(*engine, shards, *app, 3);
  ASSERT_EQ(got.size(), 3u);
  std::map<uint64_t, ReceiptMessage> by_request;
  for (const ReceiptMessage& receipt : got) by_request[receipt.request_id] = receipt;
  EXPECT_EQ(by_request[1].status, uint16_t(TxStatus::not_a_granter));
  EXPECT_EQ(by_request[1].height, 0u);
  EXPECT_EQ(by_request[2].status, uint16_t(TxStatus::not_a_granter));
  EXPECT_EQ(by_request[3].status, uint16_t(TxStatus::applied));
  EXPECT_EQ(engine->gateway->stats().routed, 1u);
  // A listed granter's grant goes to the shard it names; a shard past the chain's is refused.
  ASSERT_TRUE(*treasury->try_submit(0, 4, ledger::encode_credit_grant(4, 1, "app", 100)));
  ASSERT_TRUE(*treasury->try_submit(0, 5, ledger::encode_credit_grant(5, 2, "app", 100)));
  engine->gateway->poll(1024);
  EXPECT_EQ(shards[1]->take(), 1u);
  EXPECT_EQ(ledger::TxType(uint8_t(shards[1]->pending().front().tx[5])), ledger::TxType::credit_grant);
  shards[1]->answer();
  got = collect(*engine, shards, *treasury, 2);
  ASSERT_EQ(got.size(), 2u);
  for (const ReceiptMessage& receipt : got)
    EXPECT_EQ(receipt.status, uint16_t(receipt.request_id == 4 ? TxStatus::applied : TxStatus::no_such_shard));
  for (auto& shard : shards) EXPECT_EQ(shard->errors(), 0u);
}

TEST(GatewayTest, ASlotWithoutAValidClientIdIsRefused) {
  auto engine = TestEngine::make("no-identity", testing::small_options({{"pay", 1}}));
  auto shards = FakeShard::for_all_ports(*engine);
  RawClient raw = RawClient::claim(*engine, 0);
  std::memcpy(engine->identity(0).client_id, "Not Valid", 9);
  std::vector<std::byte> tx = ledger::encode_transfer(1, 2, 3, 4);
  SubmitMessage message{};
  message.request_id = 7;
  message.tx_bytes = uint32_t(tx.size());
  std::memcpy(message.inline_tx, tx.data(), tx.size());
  ASSERT_TRUE(raw.submits.push(message));
  engine->gateway->poll(64);
  ReceiptMessage receipt;
  ASSERT_EQ(raw.receipts.pop(std::span<ReceiptMessage>(&receipt, 1)), 1u);
  EXPECT_EQ(receipt.status, uint16_t(TxStatus::bad_client_id));
  EXPECT_EQ(receipt.height, 0u);
  EXPECT_EQ(shards[0]->take(), 0u);
}

TEST(GatewayTest, CreateRefusesAccessRulesForAnotherNumberOfChains) {
  auto engine = TestEngine::make("access-count", testing::small_options({{"pay", 1}}));
  Result<std::unique_ptr<GatewayTile>> second =
      GatewayTile::create(engine->segment.base(), engine->table_offset, {ChainAccess{}, ChainAccess{}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message, "client gateway: access rules for 2 chains, the table has 1");
}

// The gateway hashes what it routes when the slot has room for the hash, so the shard
// orders it without hashing (protocol.h): a 40-byte transfer comes with hash_leaf of its
// bytes, a put too long to leave the hash room (inline or not) comes without.
TEST(GatewayTest, ShortTransactionsTravelWithTheirLeafHashAndLongerOnesWithout) {
  auto engine = TestEngine::make("leaf-hash", testing::small_options({{"kv", 1}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  std::vector<std::byte> transfer = ledger::encode_transfer(1, 2, 3, 4);
  std::vector<std::byte> inline_put = ledger::encode_put(2, bytes_of("key"), std::vector<std::byte>(60, std::byte{7}));
  std::vector<std::byte> arena_put = ledger::encode_put(3, bytes_of("key"), std::vector<std::byte>(400, std::byte{9}));
  ASSERT_LE(transfer.size(), routed_hashed_tx_bytes_max);
  ASSERT_GT(inline_put.size(), routed_hashed_tx_bytes_max);
  ASSERT_LE(inline_put.size(), submit_inline_bytes_max);
  ASSERT_GT(arena_put.size(), submit_inline_bytes_max);
  ASSERT_TRUE(*client->try_submit(0, 1, transfer));
  ASSERT_TRUE(*client->try_submit(0, 2, inline_put));
  ASSERT_TRUE(*client->try_submit(0, 3, arena_put));
  engine->gateway->poll(64);
  ASSERT_EQ(shards[0]->take(), 3u);
  EXPECT_EQ(shards[0]->errors(), 0u);
  for (const FakeShard::Routed& routed : shards[0]->pending()) {
    SCOPED_TRACE("request " + std::to_string(routed.message.request_id));
    if (routed.message.request_id == 1) {
      ASSERT_EQ(routed.message.flags, routed_flag_leaf_hash);
      ledger::Hash32 leaf = ledger::hash_leaf(transfer);
      EXPECT_EQ(std::memcmp(routed.message.inline_tx + routed_leaf_hash_at, leaf.bytes.data(), routed_leaf_hash_bytes), 0);
    } else {
      EXPECT_EQ(routed.message.flags, 0u);
    }
  }
}

TEST(GatewayTest, LargeTransactionTravelsThroughBothArenasIntact) {
  auto engine = TestEngine::make("large", testing::small_options({{"kv", 3}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  std::vector<std::byte> value(1024);
  for (size_t index = 0; index < value.size(); ++index) value[index] = std::byte(uint8_t(index * 31 + 7));
  std::vector<std::byte> tx = ledger::encode_put(1, bytes_of("big-key"), value);
  ASSERT_GT(tx.size(), submit_inline_bytes_max);
  ASSERT_TRUE(*client->try_submit(0, 42, tx));
  engine->gateway->poll(64);
  size_t found = 0;
  for (auto& shard : shards) {
    found += shard->take();
    EXPECT_EQ(shard->errors(), 0u);  // the put's home shard, readable from the shard arena
    for (const FakeShard::Routed& routed : shard->pending()) {
      EXPECT_EQ(routed.message.tx_bytes, tx.size());
      EXPECT_EQ(routed.tx, tx);
    }
    shard->answer();
  }
  EXPECT_EQ(found, 1u);
  std::vector<ReceiptMessage> receipts = collect(*engine, shards, *client, 1);
  ASSERT_EQ(receipts.size(), 1u);
  EXPECT_EQ(receipts[0].request_id, 42u);
  EXPECT_EQ(receipts[0].height, 1u);
  EXPECT_TRUE(hash_matches(receipts[0], tx));
}

TEST(GatewayTest, FullShardRingPushesBackWithoutDropping) {
  ClientTableOptions options = testing::small_options({{"pay", 1}});
  options.shard_ring_capacity = 2;
  options.shard_arena_bytes = 65536;
  auto engine = TestEngine::make("shard-full", options);
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  for (uint64_t request = 0; request < 10; ++request) {
    ASSERT_TRUE(*client->try_submit(0, request, ledger::encode_transfer(request, 1, 2, 3)));
  }
  engine->gateway->poll(1024);
  EXPECT_EQ(engine->gateway->stats().routed, 2u);  // the shard ring holds two
  EXPECT_GE(engine->gateway->stats().backpressure_events, 1u);
  std::vector<ReceiptMessage> receipts = collect(*engine, shards, *client, 10);
  EXPECT_EQ(receipts.size(), 10u);
  std::set<uint64_t> ids;
  for (const ReceiptMessage& receipt : receipts) ids.insert(receipt.request_id);
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(shards[0]->errors(), 0u);
}

TEST(GatewayTest, FullShardArenaPushesBackWithoutDropping) {
  ClientTableOptions options = testing::small_options({{"kv", 1}});
  options.client_arena_bytes = 1 << 20;
  options.shard_arena_bytes = 65536;
  auto engine = TestEngine::make("shard-arena-full", options);
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  // Puts of 16664 bytes: the 64 KiB shard arena holds three at a time.
  std::vector<std::byte> key(256, std::byte{1}), value(ledger::put_value_bytes_max, std::byte{2});
  for (uint64_t request = 100; request < 108; ++request) {
    ASSERT_TRUE(*client->try_submit(0, request, ledger::encode_put(request, key, value)));
  }
  engine->gateway->poll(1024);
  EXPECT_EQ(engine->gateway->stats().routed, 3u);
  EXPECT_GE(engine->gateway->stats().backpressure_events, 1u);
  std::vector<ReceiptMessage> receipts = collect(*engine, shards, *client, 8);
  std::set<uint64_t> ids;
  for (const ReceiptMessage& receipt : receipts) ids.insert(receipt.request_id);
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_EQ(*ids.begin(), 100u);
  EXPECT_EQ(*ids.rbegin(), 107u);
  EXPECT_EQ(shards[0]->errors(), 0u);
}

TEST(GatewayTest, DrainAnswersEngineStoppingAndWaitsForTheShards) {
  auto engine = TestEngine::make("drain", testing::small_options({{"pay", 1}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  for (uint64_t request = 0; request < 3; ++request) {
    ASSERT_TRUE(*client->try_submit(0, request, ledger::encode_transfer(request, 1, 2, 3)));
  }
  engine->gateway->poll(64);
  EXPECT_EQ(shards[0]->take(), 3u);
  engine->gateway->begin_drain();
  EXPECT_TRUE(shards[0]->input_closed());
  EXPECT_FALSE(engine->gateway->quiescent());
  ASSERT_TRUE(*client->try_submit(0, 10, ledger::encode_transfer(10, 1, 2, 3)));
  ASSERT_TRUE(*client->try_submit(0, 11, ledger::encode_transfer(11, 1, 2, 3)));
  engine->gateway->poll(64);
  ReceiptMessage receipts[8];
  ASSERT_EQ(client->poll_receipts(receipts), 2u);
  for (int index = 0; index < 2; ++index) {
    EXPECT_EQ(receipts[index].status, uint16_t(TxStatus::engine_stopping));
    EXPECT_EQ(receipts[index].height, 0u);
  }
  EXPECT_FALSE(engine->gateway->quiescent());  // three receipts still owed by the shard
  EXPECT_EQ(shards[0]->answer(), 3u);
  engine->gateway->poll(64);
  EXPECT_TRUE(engine->gateway->quiescent());
  ASSERT_EQ(client->poll_receipts(receipts), 3u);
  for (int index = 0; index < 3; ++index) EXPECT_EQ(receipts[index].height, 1u);
}

TEST(GatewayTest, DetachedClientIsReclaimedOnceTheShardsHaveAnswered) {
  auto engine = TestEngine::make("detach", testing::small_options({{"pay", 1}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  for (uint64_t request = 0; request < 3; ++request) {
    ASSERT_TRUE(*client->try_submit(0, request, ledger::encode_transfer(request, 1, 2, 3)));
  }
  engine->gateway->poll(64);
  EXPECT_EQ(shards[0]->take(), 3u);
  client.reset();
  ASSERT_TRUE(poll_until(*engine, [&] { return engine->slot_state(0) == ClientSlotState::reclaiming; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  engine->gateway->poll(64);
  EXPECT_EQ(engine->slot_state(0), ClientSlotState::reclaiming);  // three receipts are still owed
  shards[0]->answer();
  ASSERT_TRUE(poll_until(*engine, [&] { return engine->slot_state(0) == ClientSlotState::free; }));
  EXPECT_EQ(engine->gateway->stats().receipts_discarded, 3u);
  EXPECT_EQ(engine->gateway->stats().clients_reclaimed, 1u);
}

// The child process: attach, submit, tell the parent, wait to be killed.
[[noreturn]] void run_doomed_client(const std::string& name, int to_parent, int to_child) {
  Result<std::unique_ptr<Client>> client = Client::attach(name, "app");
  if (!client) _exit(10);
  char byte = 'a';
  for (uint64_t request = 0; request < 10; ++request) {
    if (!*(*client)->try_submit(0, 1000 + request, ledger::encode_transfer(request, 1, 2, 3))) _exit(11);
  }
  if (write(to_parent, &byte, 1) != 1 || read(to_child, &byte, 1) != 1) _exit(12);
  for (uint64_t request = 10; request < 14; ++request) {
    if (!*(*client)->try_submit(0, 1000 + request, ledger::encode_transfer(request, 1, 2, 3))) _exit(13);
  }
  if (write(to_parent, &byte, 1) != 1) _exit(14);
  for (;;) pause();
}

TEST(GatewayTest, KilledClientSlotIsReclaimedAndItsReceiptsNeverReachTheNextOwner) {
  ClientTableOptions options = testing::small_options({{"pay", 1}});
  options.client_slots = 1;
  auto engine = TestEngine::make("killed", options);
  auto shards = FakeShard::for_all_ports(*engine);
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) run_doomed_client(engine->name(), to_parent[1], to_child[0]);
  char byte = 0;
  ASSERT_EQ(read(to_parent[0], &byte, 1), 1);
  // Route the first ten; the shard answers three, which wait unread in the child's ring.
  ASSERT_TRUE(poll_until(*engine, [&] { return engine->gateway->stats().routed == 10; }));
  EXPECT_EQ(shards[0]->take(), 10u);
  EXPECT_EQ(shards[0]->answer(3), 3u);
  ASSERT_TRUE(poll_until(*engine, [&] { return engine->gateway->stats().receipts_forwarded == 3; }));
  ASSERT_EQ(write(to_child[1], &byte, 1), 1);
  ASSERT_EQ(read(to_parent[0], &byte, 1), 1);  // four more wait in its submit ring
  ASSERT_EQ(kill(child, SIGKILL), 0);

  // Not reaped yet: a zombie counts as gone.
  ASSERT_TRUE(poll_until(*engine, [&] { return engine->slot_state(0) == ClientSlotState::reclaiming; }));
  const GatewayStats& stats = engine->gateway->stats();
  EXPECT_EQ(stats.routed + stats.submissions_discarded, 14u);
  EXPECT_EQ(engine->gateway->owed(0), stats.routed - 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  engine->gateway->poll(64);
  EXPECT_EQ(engine->slot_state(0), ClientSlotState::reclaiming);  // receipts still owed
  shards[0]->take();
  shards[0]->answer();
  ASSERT_TRUE(poll_until(*engine, [&] { return engine->slot_state(0) == ClientSlotState::free; }));
  EXPECT_EQ(stats.receipts_discarded, stats.routed - 3);
  EXPECT_EQ(stats.clients_reclaimed, 1u);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

  // The next owner of the slot sees its own receipt and nothing of the dead client's.
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->slot(), 0u);
  EXPECT_EQ(engine->slot(0).epoch, 2u);
  ASSERT_TRUE(*client->try_submit(0, 7777, ledger::encode_transfer(99, 1, 2, 3)));
  std::vector<ReceiptMessage> receipts = collect(*engine, shards, *client, 1);
  auto quiet_until = Clock::now() + std::chrono::milliseconds(300);
  while (Clock::now() < quiet_until) {
    testing::pump(*engine, shards, 1);
    ReceiptMessage batch[16];
    size_t got = client->poll_receipts(batch);
    receipts.insert(receipts.end(), batch, batch + got);
  }
  ASSERT_EQ(receipts.size(), 1u);
  EXPECT_EQ(receipts[0].request_id, 7777u);
  EXPECT_EQ(receipts[0].height, 1u);
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) close(fd);
}

// ---- many transactions from a forked client ----------------------------------------

constexpr uint64_t request_multiplier = 0x9E3779B97F4A7C15ULL;  // odd: a bijection of uint64

uint64_t request_id_of(uint64_t seed, uint64_t index) { return index * request_multiplier + seed; }

uint64_t index_of(uint64_t seed, uint64_t request_id) {
  uint64_t inverse = request_multiplier;  // Newton's iteration for the inverse mod 2^64
  for (int step = 0; step < 6; ++step) inverse *= 2 - request_multiplier * inverse;
  return (request_id - seed) * inverse;
}

struct Planned {
  uint32_t chain;
  std::vector<std::byte> tx;
  TxStatus status;
  uint64_t height;
};

// Transaction `index` of a seeded run: mostly transfers on "pay" (2 shards), puts of
// all sizes on "kv" (3 shards; many travel in the arenas), some with a bad version.
Planned plan(uint64_t seed, uint64_t index) {
  std::mt19937_64 random(seed ^ (index * 0xD1B54A32D192ED03ULL));
  uint32_t kind = uint32_t(random() % 100);
  if (kind < 85) {
    uint64_t from = random() % 1000 + 1;
    return {0, ledger::encode_transfer(index, from, from + 1, random() % 100 + 1), TxStatus::applied, 1};
  }
  if (kind < 95) {
    std::vector<std::byte> key(random() % 16 + 1), value(random() % 600);
    for (std::byte& byte : key) byte = std::byte(uint8_t(random()));
    for (std::byte& byte : value) byte = std::byte(uint8_t(random()));
    return {1, ledger::encode_put(index, key, value), TxStatus::applied, 1};
  }
  std::vector<std::byte> tx = ledger::encode_transfer(index, 1, 2, 3);
  tx[4] = std::byte{9};
  return {0, std::move(tx), TxStatus::bad_version, 0};
}

// Checks one receipt against the plan; returns an empty string when it is right.
std::string check_receipt(uint64_t seed, uint64_t count, uint32_t slot, const ReceiptMessage& receipt,
                          std::vector<uint8_t>& seen) {
  uint64_t index = index_of(seed, receipt.request_id);
  if (index >= count) return "unknown request id " + std::to_string(receipt.request_id);
  if (seen[index]++) return "second receipt for transaction " + std::to_string(index);
  Planned planned = plan(seed, index);
  bool right = receipt.status == uint16_t(planned.status) && receipt.height == planned.height &&
               receipt.chain == planned.chain && receipt.client_slot == slot &&
               (planned.height == 0 ? hash_is_zero(receipt) : hash_matches(receipt, planned.tx));
  return right ? "" : "wrong receipt for transaction " + std::to_string(index);
}

// The forked client: submits `count` planned transactions as fast as backpressure
// allows and checks that every receipt arrives exactly once. Returns the exit code.
int run_busy_client(const std::string& name, uint64_t seed, uint64_t count) {
  Result<std::unique_ptr<Client>> attached = Client::attach(name, "app");
  if (!attached) {
    std::fprintf(stderr, "child: %s\n", attached.error().message.c_str());
    return 10;
  }
  Client& client = **attached;
  std::vector<uint8_t> seen(count);
  uint64_t next = 0, received = 0;
  Planned planned = plan(seed, 0);
  ReceiptMessage receipts[256];
  auto deadline = Clock::now() + std::chrono::seconds(100);
  while (received < count) {
    bool submitted = false;
    while (next < count) {
      Result<bool> taken = client.try_submit(planned.chain, request_id_of(seed, next), planned.tx);
      if (!taken.ok() || !*taken) break;
      submitted = true;
      if (++next < count) planned = plan(seed, next);
    }
    size_t got = submitted ? client.poll_receipts(receipts) : client.wait_receipts(receipts, 100);
    for (size_t index = 0; index < got; ++index) {
      std::string wrong = check_receipt(seed, count, client.slot(), receipts[index], seen);
      if (!wrong.empty()) {
        std::fprintf(stderr, "child: %s\n", wrong.c_str());
        return 11;
      }
    }
    received += got;
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "child: %llu of %llu receipts after 100 s\n", (unsigned long long)received,
                   (unsigned long long)count);
      return 12;
    }
  }
  if (client.wait_receipts(receipts, 200) != 0) return 13;  // nothing beyond one each
  return 0;
}

TEST(GatewayTest, ForkedClientGetsEveryReceiptExactlyOnce) {
  constexpr uint64_t count = 100'000;
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // before fork: the child must not print it again
  ClientTableOptions options = testing::small_options({{"pay", 2}, {"kv", 3}});
  options.in_flight_max = 1024;
  options.submit_ring_capacity = 512;
  // Shard rings and arenas smaller than the client's window, so backpressure happens.
  options.shard_ring_capacity = 64;
  options.shard_arena_bytes = 65536;
  auto engine = TestEngine::make("busy", options);
  auto shards = FakeShard::for_all_ports(*engine);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(run_busy_client(engine->name(), seed, count));

  int status = 0;
  auto deadline = Clock::now() + std::chrono::seconds(120);
  uint64_t next_beat_ns = 0;
  for (;;) {
    engine->gateway->poll(512);
    for (auto& shard : shards) shard->pump();
    if (shm::monotonic_ns() > next_beat_ns) {
      engine->segment.beat_heartbeat();
      next_beat_ns = shm::monotonic_ns() + 100'000'000;
      if (waitpid(child, &status, WNOHANG) == child) break;
      if (Clock::now() > deadline) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        FAIL() << "the client did not finish in 120 s (seed " << seed << ")";
      }
    }
  }
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "seed " << seed;
  const GatewayStats& stats = engine->gateway->stats();
  EXPECT_EQ(stats.routed + stats.refused, count);
  EXPECT_EQ(stats.receipts_forwarded, stats.routed);
  std::vector<uint64_t> answered;
  for (auto& shard : shards) {
    EXPECT_EQ(shard->errors(), 0u);
    answered.insert(answered.end(), shard->answered().begin(), shard->answered().end());
  }
  EXPECT_EQ(answered.size(), stats.routed);
  std::sort(answered.begin(), answered.end());
  EXPECT_EQ(std::adjacent_find(answered.begin(), answered.end()), answered.end()) << "seed " << seed;
  std::printf("routed %llu, refused %llu, backpressure events %llu\n", (unsigned long long)stats.routed,
              (unsigned long long)stats.refused, (unsigned long long)stats.backpressure_events);
}

// Gateway, shards and client on three threads of one process: what TSan checks.
TEST(GatewayTest, ThreadedClientGatewayAndShards) {
  constexpr uint64_t count = 20'000;
  auto engine = TestEngine::make("threads", testing::small_options({{"pay", 2}, {"kv", 3}}));
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  std::atomic<bool> stop{false};
  std::thread gateway_thread([&] {
    while (!stop.load()) {
      if (engine->gateway->poll(256) == 0) std::this_thread::yield();
    }
  });
  std::thread shard_thread([&] {
    while (!stop.load()) {
      size_t moved = 0;
      for (auto& shard : shards) moved += shard->pump();
      if (moved == 0) std::this_thread::yield();
    }
  });
  uint64_t seed = 12345;
  std::vector<uint8_t> seen(count);
  uint64_t next = 0, received = 0;
  Planned planned = plan(seed, 0);
  ReceiptMessage receipts[128];
  auto deadline = Clock::now() + std::chrono::seconds(60);
  std::string wrong;
  while (received < count && wrong.empty() && Clock::now() < deadline) {
    while (next < count && *client->try_submit(planned.chain, request_id_of(seed, next), planned.tx)) {
      if (++next < count) planned = plan(seed, next);
    }
    size_t got = client->wait_receipts(receipts, 100);
    for (size_t index = 0; index < got && wrong.empty(); ++index) {
      wrong = check_receipt(seed, count, client->slot(), receipts[index], seen);
    }
    received += got;
  }
  stop.store(true);
  gateway_thread.join();
  shard_thread.join();
  EXPECT_EQ(wrong, "");
  EXPECT_EQ(received, count);
  for (auto& shard : shards) EXPECT_EQ(shard->errors(), 0u);
}

}  // namespace
}  // namespace keel::client
