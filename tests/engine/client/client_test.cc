#include "engine/client/client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "engine/ledger/transaction.h"
#include "tests/engine/client/test_engine.h"

namespace keel::client {
namespace {

using testing::FakeShard;
using testing::TestEngine;

std::unique_ptr<Client> attach_or_fail(const std::string& name, const std::string& client_id = "app") {
  Result<std::unique_ptr<Client>> client = Client::attach(name, client_id);
  EXPECT_TRUE(client.ok()) << client.error().message;
  return client.ok() ? std::move(*client) : nullptr;
}

// Polls the gateway until the slot reaches `state` (the sweep runs every 100 ms).
bool wait_for_state(TestEngine& engine, uint32_t slot, ClientSlotState state) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (engine.slot_state(slot) != state) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    engine.gateway->poll(64);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(ClientTest, AttachToAMissingEngineSaysSo) {
  std::string name = shm::testing::unique_segment_name("client-missing");
  Result<std::unique_ptr<Client>> client = Client::attach(name, "app");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().message, "keel client: no keel engine named '" + name + "' is running");
}

TEST(ClientTest, AttachChecksTheClientIdAndRecordsItInItsSlot) {
  auto engine = TestEngine::make("client-id", testing::small_options({{"pay", 1}}));
  for (std::string bad : {std::string(), std::string("Upper"), std::string("a b"), std::string(33, 'x')}) {
    Result<std::unique_ptr<Client>> client = Client::attach(engine->name(), bad);
    ASSERT_FALSE(client.ok()) << bad;
    EXPECT_EQ(client.error().message, "keel client: client id '" + bad + "' must be 1 to 32 characters of [a-z0-9_.-]");
  }
  EXPECT_EQ(engine->slot_state(0), ClientSlotState::free) << "a bad id claims no slot";
  std::string longest(32, 'z');
  auto client = attach_or_fail(engine->name(), longest);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->client_id(), longest);
  EXPECT_EQ(std::string_view(engine->identity(client->slot()).client_id, 32), longest);
}

TEST(ClientTest, AttachToAnEngineWithoutClientTableSaysSo) {
  std::string name = shm::testing::unique_segment_name("client-no-table");
  Result<shm::Segment> segment = shm::Segment::create({name, 1 << 16});
  ASSERT_TRUE(segment.ok());
  segment->seal();
  Result<std::unique_ptr<Client>> client = Client::attach(name, "app");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().message, "keel client: engine '" + name + "' takes no clients (segment '" + name +
                                        "' object 'ledger.clients': not found)");
}

TEST(ClientTest, AttachRefusesAnEngineWhoseHeartbeatIsStale) {
  auto engine = TestEngine::make("stale", testing::small_options({{"pay", 1}}));
  auto& header = *reinterpret_cast<shm::SegmentHeader*>(engine->segment.base());
  header.owner_heartbeat_ns.store(shm::monotonic_ns() - 6'000'000'000ULL);
  Result<std::unique_ptr<Client>> client = Client::attach(engine->name(), "app");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().message, "keel client: engine pid " + std::to_string(getpid()) + " of segment '" +
                                        engine->name() + "' has not beaten its heartbeat for 6.0 s; is it stuck?");
  engine->segment.beat_heartbeat();
  auto attached = attach_or_fail(engine->name());
  ASSERT_NE(attached, nullptr);
  EXPECT_TRUE(attached->engine_alive());
  header.owner_heartbeat_ns.store(shm::monotonic_ns() - 6'000'000'000ULL);
  EXPECT_FALSE(attached->engine_alive());
}

TEST(ClientTest, ClientsGetDifferentSlotsUntilNoneIsLeft) {
  auto engine = TestEngine::make("slots", testing::small_options({{"pay", 1}}));
  auto first = attach_or_fail(engine->name());
  auto second = attach_or_fail(engine->name());
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(first->slot(), 0u);
  EXPECT_EQ(second->slot(), 1u);
  for (uint32_t slot = 0; slot < 2; ++slot) {
    EXPECT_EQ(engine->slot_state(slot), ClientSlotState::attached);
    EXPECT_EQ(engine->slot(slot).owner_pid.load(), getpid());
    EXPECT_EQ(engine->slot(slot).owner_start_ticks.load(), shm::process_start_ticks(getpid()));
    EXPECT_EQ(engine->slot(slot).epoch, 1u);
  }
  Result<std::unique_ptr<Client>> third = Client::attach(engine->name(), "app");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().message, "keel client: all 2 client slots of engine '" + engine->name() + "' are taken");

  // A client that leaves frees its slot (through the gateway), and the next claim of it
  // is a new epoch.
  first.reset();
  EXPECT_EQ(engine->slot_state(0), ClientSlotState::detached);
  ASSERT_TRUE(wait_for_state(*engine, 0, ClientSlotState::free));
  EXPECT_EQ(engine->slot(0).owner_pid.load(), 0);
  auto again = attach_or_fail(engine->name());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->slot(), 0u);
  EXPECT_EQ(engine->slot(0).epoch, 2u);
  EXPECT_EQ(engine->gateway->stats().clients_reclaimed, 1u);
}

TEST(ClientTest, ChainsByNameAndSubmitErrors) {
  auto engine = TestEngine::make("chains", testing::small_options({{"payments", 2}, {"orders", 3}}));
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(*client->chain_index("payments"), 0u);
  EXPECT_EQ(*client->chain_index("orders"), 1u);
  EXPECT_EQ(client->shard_count(1), 3u);
  EXPECT_EQ(client->chain_index("nope").error().message,
            "chain 'nope': this engine runs no such chain; its chains: payments, orders");

  std::vector<std::byte> tx = ledger::encode_transfer(1, 2, 3, 4);
  EXPECT_EQ(client->try_submit(2, 1, tx).error().message, "chain index 2: out of range: this engine runs 2 chains");
  std::vector<std::byte> huge(ledger::tx_bytes_max + 1);
  EXPECT_EQ(client->try_submit(0, 1, huge).error().message, "transaction: is 65537 bytes; at most 65536");
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(ClientTest, InFlightLimitPushesBackUntilReceiptsArrive) {
  ClientTableOptions options = testing::small_options({{"pay", 1}});
  options.in_flight_max = 4;
  auto engine = TestEngine::make("in-flight", options);
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->in_flight_max(), 4u);
  std::vector<std::byte> tx = ledger::encode_transfer(1, 2, 3, 4);
  for (uint64_t request = 0; request < 4; ++request) EXPECT_TRUE(*client->try_submit(0, request, tx));
  EXPECT_EQ(client->in_flight(), 4u);
  EXPECT_FALSE(*client->try_submit(0, 4, tx));
  testing::pump(*engine, shards);
  // The receipts are in the client's ring, but in flight until the client takes them.
  EXPECT_FALSE(*client->try_submit(0, 4, tx));
  ReceiptMessage receipts[8];
  EXPECT_EQ(client->poll_receipts(receipts), 4u);
  EXPECT_EQ(client->in_flight(), 0u);
  EXPECT_TRUE(*client->try_submit(0, 4, tx));
}

TEST(ClientTest, FullSubmitRingOrArenaPushesBack) {
  ClientTableOptions options = testing::small_options({{"pay", 1}});
  options.submit_ring_capacity = 4;
  options.client_arena_bytes = 65536;
  auto engine = TestEngine::make("submit-full", options);
  auto shards = FakeShard::for_all_ports(*engine);
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  std::vector<std::byte> small = ledger::encode_transfer(1, 2, 3, 4);
  for (uint64_t request = 0; request < 4; ++request) EXPECT_TRUE(*client->try_submit(0, request, small));
  EXPECT_FALSE(*client->try_submit(0, 4, small));  // the ring holds 4
  testing::pump(*engine, shards);
  ReceiptMessage receipts[8];
  EXPECT_EQ(client->poll_receipts(receipts), 4u);

  // Two 30000-byte transactions fill most of the 64 KiB arena; a third does not fit
  // (payloads never wrap) until the gateway has copied the first one out.
  std::vector<std::byte> big(30000, std::byte{0x5a});
  EXPECT_TRUE(*client->try_submit(0, 10, big));
  EXPECT_TRUE(*client->try_submit(0, 11, big));
  EXPECT_FALSE(*client->try_submit(0, 12, big));  // the ring has room, the arena has not
  EXPECT_EQ(client->in_flight(), 2u);
  engine->gateway->poll(1);  // takes one and frees its arena bytes
  EXPECT_TRUE(*client->try_submit(0, 12, big));
  EXPECT_FALSE(*client->try_submit(0, 13, big));
  testing::pump(*engine, shards);
  EXPECT_EQ(client->poll_receipts(receipts), 3u);
  EXPECT_TRUE(*client->try_submit(0, 13, big));
}

TEST(ClientTest, WaitReceiptsTimesOutWhenNothingComes) {
  auto engine = TestEngine::make("wait", testing::small_options({{"pay", 1}}));
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  ReceiptMessage receipts[4];
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client->wait_receipts(receipts, 50), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
}

TEST(ClientTest, HeartbeatIsBeatenFromPolls) {
  auto engine = TestEngine::make("heartbeat", testing::small_options({{"pay", 1}}));
  auto client = attach_or_fail(engine->name());
  ASSERT_NE(client, nullptr);
  uint64_t first_ns = engine->slot(0).heartbeat_ns.load();
  EXPECT_NE(first_ns, 0u);
  ReceiptMessage receipts[4];
  client->poll_receipts(receipts);
  if (shm::monotonic_ns() - first_ns < client_heartbeat_interval_ns) {
    EXPECT_EQ(engine->slot(0).heartbeat_ns.load(), first_ns);  // not yet 100 ms: not beaten again
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  client->poll_receipts(receipts);
  EXPECT_GE(engine->slot(0).heartbeat_ns.load(), first_ns + client_heartbeat_interval_ns);
}

}  // namespace
}  // namespace keel::client
