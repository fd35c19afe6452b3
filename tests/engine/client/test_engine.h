// A segment laid out as an engine lays it out for clients, the gateway tile over it,
// and fake shards that play the shard tiles' part on their ports: each pops the
// RoutedSubmits of its port, checks that it is the transaction's home shard, and
// answers with status applied at height 1.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/client/client_table.h"
#include "engine/client/gateway.h"
#include "engine/client/protocol.h"
#include "engine/ledger/hash.h"
#include "engine/ledger/transaction.h"
#include "shm/arena.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::client::testing {

// Options small enough for a test segment: 2 slots of 64 in flight.
inline ClientTableOptions small_options(std::vector<ChainSpec> chains) {
  ClientTableOptions options;
  options.chains = std::move(chains);
  options.client_slots = 2;
  options.in_flight_max = 64;
  options.submit_ring_capacity = 64;
  options.client_arena_bytes = 1 << 17;
  options.shard_ring_capacity = 64;
  options.shard_arena_bytes = 1 << 17;
  return options;
}

struct TestEngine {
  shm::Segment segment;
  uint64_t table_offset = 0;
  std::unique_ptr<GatewayTile> gateway;

  // Creates the segment (named for `purpose` and this process), lays out the table,
  // seals it and creates the gateway.
  // `access`: the gateway's per-chain rules (none: ChainAccess{} for every chain).
  static std::unique_ptr<TestEngine> make(const std::string& purpose, const ClientTableOptions& options,
                                          std::vector<ChainAccess> access = {}) {
    Result<uint64_t> footprint = client_table_footprint(options);
    EXPECT_TRUE(footprint.ok()) << footprint.error().message;
    std::string name = shm::testing::unique_segment_name("client-" + purpose);
    Result<shm::Segment> segment = shm::Segment::create({name, sizeof(shm::SegmentHeader) + *footprint + 4096});
    EXPECT_TRUE(segment.ok()) << segment.error().message;
    auto engine = std::make_unique<TestEngine>(TestEngine{std::move(*segment)});
    Result<uint64_t> table = lay_out_client_table(engine->segment, options);
    EXPECT_TRUE(table.ok()) << table.error().message;
    engine->table_offset = *table;
    engine->segment.seal();
    Result<std::unique_ptr<GatewayTile>> gateway = GatewayTile::create(engine->segment.base(), *table, std::move(access));
    EXPECT_TRUE(gateway.ok()) << gateway.error().message;
    engine->gateway = std::move(*gateway);
    return engine;
  }

  const std::string& name() const { return segment.name(); }
  const ClientTable& table() const { return *reinterpret_cast<const ClientTable*>(segment.base() + table_offset); }
  ClientSlot& slot(uint32_t index) { return client_slot(segment.base(), table(), index); }
  ClientSlotState slot_state(uint32_t index) { return ClientSlotState(slot(index).state.load()); }
  ClientIdentity& identity(uint32_t index) { return client_identity(segment.base(), table(), index); }
};

class FakeShard {
 public:
  struct Routed {
    RoutedSubmit message;
    std::vector<std::byte> tx;
  };

  FakeShard(TestEngine& engine, uint32_t chain, uint32_t shard) : chain_(chain), shard_(shard) {
    std::byte* base = engine.segment.base();
    const ShardPorts& ports = shard_ports(base, engine.table(), chain, shard);
    shard_count_ = engine.table().chains[chain].shard_count;
    submits_ = *shm::RingConsumer::join(base, ports.submit_ring);
    arena_ = *shm::ArenaReader::join(base, ports.submit_arena);
    receipts_ = *shm::RingProducer::join(base, ports.receipt_ring);
  }

  // One fake shard per port of every chain of the engine.
  static std::vector<std::unique_ptr<FakeShard>> for_all_ports(TestEngine& engine) {
    std::vector<std::unique_ptr<FakeShard>> shards;
    for (uint32_t chain = 0; chain < engine.table().chain_count; ++chain) {
      for (uint32_t shard = 0; shard < engine.table().chains[chain].shard_count; ++shard) {
        shards.push_back(std::make_unique<FakeShard>(engine, chain, shard));
      }
    }
    return shards;
  }

  // Pops up to `count` routed submissions into pending(), checking each (copying its
  // bytes out of the arena when it came that way). Returns how many.
  size_t take(size_t count = SIZE_MAX) {
    size_t taken = 0;
    RoutedSubmit message;
    while (taken < count && submits_.pop(message)) {
      Routed routed{message, {}};
      if (message.tx_bytes <= submit_inline_bytes_max) {
        routed.tx.assign(message.inline_tx, message.inline_tx + message.tx_bytes);
      } else {
        std::span<const std::byte> bytes = arena_.read(message.arena_position, message.tx_bytes);
        if (bytes.size() != message.tx_bytes) ++errors_;
        routed.tx.assign(bytes.begin(), bytes.end());
        arena_.release(message.arena_position, message.tx_bytes);
      }
      ledger::TxView view;
      if (ledger::check_transaction(routed.tx, ledger::TxOrigin::client, &view) != ledger::TxStatus::applied ||
          ledger::home_shard(view, shard_count_) != shard_) {
        ++errors_;
      }
      pending_.push_back(std::move(routed));
      ++taken;
    }
    return taken;
  }

  // Answers up to `count` pending submissions, oldest first, applied at height 1.
  // Stops when the receipt ring is full. Returns how many.
  size_t answer(size_t count = SIZE_MAX) {
    size_t answered = 0;
    while (answered < count && !pending_.empty()) {
      const Routed& routed = pending_.front();
      ReceiptMessage receipt{};
      receipt.request_id = routed.message.request_id;
      receipt.height = 1;
      receipt.status = uint16_t(ledger::TxStatus::applied);
      receipt.client_slot = routed.message.client_slot;
      receipt.chain = chain_;
      ledger::Hash32 hash = ledger::hash_leaf(routed.tx);
      std::memcpy(receipt.tx_hash, hash.bytes.data(), sizeof receipt.tx_hash);
      if (!receipts_.push(receipt)) break;
      answered_.push_back(pending_.front().message.request_id);
      pending_.pop_front();
      ++answered;
    }
    return answered;
  }

  size_t pump() {
    size_t taken = take();
    return taken + answer();
  }

  const std::deque<Routed>& pending() const { return pending_; }
  const std::vector<uint64_t>& answered() const { return answered_; }
  uint64_t errors() const { return errors_; }  // misrouted, malformed or unreadable
  bool input_closed() { return submits_.finished(); }

 private:
  uint32_t chain_, shard_, shard_count_ = 0;
  shm::RingConsumer submits_;
  shm::ArenaReader arena_;
  shm::RingProducer receipts_;
  std::deque<Routed> pending_;
  std::vector<uint64_t> answered_;
  uint64_t errors_ = 0;
};

// Polls the gateway and lets every shard take and answer everything, `rounds` times.
inline void pump(TestEngine& engine, std::vector<std::unique_ptr<FakeShard>>& shards, int rounds = 4) {
  for (int round = 0; round < rounds; ++round) {
    engine.gateway->poll(1024);
    for (auto& shard : shards) shard->pump();
  }
  engine.gateway->poll(1024);
}

}  // namespace keel::client::testing
