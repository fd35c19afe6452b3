#include "engine/client/client_table.h"

#include <gtest/gtest.h>

#include <string>

#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "tests/engine/client/test_engine.h"

namespace keel::client {
namespace {

ClientTableOptions tiny_options() {
  ClientTableOptions options;
  options.chains = {{"a", 1}};
  options.client_slots = 1;
  options.in_flight_max = 2;
  options.submit_ring_capacity = 2;
  options.client_arena_bytes = 65536;
  options.shard_ring_capacity = 2;
  options.shard_arena_bytes = 65536;
  return options;
}

std::string footprint_error(const ClientTableOptions& options) {
  Result<uint64_t> footprint = client_table_footprint(options);
  return footprint.ok() ? "no error" : footprint.error().message;
}

TEST(ClientTableTest, FootprintIsTheSumOfAlignedPieces) {
  // Table 3640 -> 3712, one slot 128, one port 24 -> 128, identities 32 per slot -> 128; per slot a submit ring
  // (384 + 2 * 128), a receipt ring (384 + 2 * 64), an arena (384 + 65536) and a doorbell
  // (128); per port the two rings and the arena again.
  uint64_t slot_bytes = 640 + 512 + 65920 + 128, port_bytes = 640 + 512 + 65920;
  EXPECT_EQ(*client_table_footprint(tiny_options()), 3712 + 128 + 128 + 128 + slot_bytes + port_bytes);
  ClientTableOptions options = tiny_options();
  options.client_slots = 3;
  options.chains = {{"a", 1}, {"b", 2}};
  EXPECT_EQ(*client_table_footprint(options), 3712 + 3 * 128 + 128 + 128 + 3 * slot_bytes + 3 * port_bytes);
}

TEST(ClientTableTest, RejectsEachBadOptionByName) {
  ClientTableOptions options = tiny_options();
  options.chains = {};
  EXPECT_EQ(footprint_error(options), "client table: chains: 1 to 64 chains, got 0");
  options.chains = std::vector<ChainSpec>(65, ChainSpec{"x", 1});
  EXPECT_EQ(footprint_error(options), "client table: chains: 1 to 64 chains, got 65");
  options.chains = {{std::string(48, 'n'), 1}};
  EXPECT_EQ(footprint_error(options), "client table: chains[0].name: 1 to 47 bytes without NUL, got 48 bytes");
  options.chains = {{"pay", 1}, {"", 1}};
  EXPECT_EQ(footprint_error(options), "client table: chains[1].name: 1 to 47 bytes without NUL, got 0 bytes");
  options.chains = {{"pay", 1}, {"pay", 2}};
  EXPECT_EQ(footprint_error(options), "client table: chains[1].name: 'pay' is also chains[0].name");
  options.chains = {{"pay", 0}};
  EXPECT_EQ(footprint_error(options), "client table: chains[0].shard_count (chain 'pay'): 1 to 256, got 0");
  options.chains = {{"pay", 257}};
  EXPECT_EQ(footprint_error(options), "client table: chains[0].shard_count (chain 'pay'): 1 to 256, got 257");

  options = tiny_options();
  options.client_slots = 0;
  EXPECT_EQ(footprint_error(options), "client table: client_slots: 1 to 256, got 0");
  options.client_slots = 257;
  EXPECT_EQ(footprint_error(options), "client table: client_slots: 1 to 256, got 257");
  options = tiny_options();
  options.in_flight_max = 3;
  EXPECT_EQ(footprint_error(options), "client table: in_flight_max: a power of two from 2 to 16777216, got 3");
  options = tiny_options();
  options.submit_ring_capacity = 1;
  EXPECT_EQ(footprint_error(options),
            "client table: submit_ring_capacity: a power of two from 2 to 16777216, got 1");
  options = tiny_options();
  options.shard_ring_capacity = 1000;
  EXPECT_EQ(footprint_error(options),
            "client table: shard_ring_capacity: a power of two from 2 to 16777216, got 1000");
  options = tiny_options();
  options.client_arena_bytes = 4096;
  EXPECT_EQ(footprint_error(options),
            "client table: client_arena_bytes: a power of two from 65536 to 4294967296, got 4096");
  options = tiny_options();
  options.shard_arena_bytes = 3 << 20;
  EXPECT_EQ(footprint_error(options),
            "client table: shard_arena_bytes: a power of two from 65536 to 4294967296, got 3145728");
  options = tiny_options();
  options.gateway_doorbell = 100;
  EXPECT_EQ(footprint_error(options), "client table: gateway_doorbell: a doorbell offset is 128-byte aligned, got 100");
  options = tiny_options();
  options.chains = {{"a", 1}, {"b", 2}};
  options.shard_doorbells = {128};
  EXPECT_EQ(footprint_error(options), "client table: shard_doorbells: 1 offsets for 3 shard ports");
  options.shard_doorbells = {128, 256, 200};
  EXPECT_EQ(footprint_error(options),
            "client table: shard_doorbells[2]: a doorbell offset is 128-byte aligned, got 200");
}

TEST(ClientTableTest, LaysOutSlotsPortsRingsAndDoorbells) {
  ClientTableOptions options = testing::small_options({{"payments", 2}, {"orders", 1}});
  std::string name = shm::testing::unique_segment_name("client-table-layout");
  // Three core doorbells first, as an engine would lay them out.
  Result<shm::Segment> segment = shm::Segment::create({name, 8u << 20});
  ASSERT_TRUE(segment.ok()) << segment.error().message;
  uint64_t bells[4];
  for (int index = 0; index < 4; ++index) {
    bells[index] = *segment->allocate("core." + std::to_string(index) + ".doorbell", shm::SegmentObjectKind::doorbell,
                                      sizeof(shm::Doorbell), 128);
    new (segment->base() + bells[index]) shm::Doorbell{};
  }
  options.gateway_doorbell = bells[0];
  options.shard_doorbells = {bells[1], bells[2], bells[3]};
  Result<uint64_t> offset = lay_out_client_table(*segment, options);
  ASSERT_TRUE(offset.ok()) << offset.error().message;
  std::byte* base = segment->base();
  Result<const ClientTable*> table = check_client_table(base, *offset);
  ASSERT_TRUE(table.ok()) << table.error().message;
  EXPECT_EQ((*table)->slot_count, 2u);
  EXPECT_EQ((*table)->chain_count, 2u);
  EXPECT_EQ((*table)->port_count, 3u);
  EXPECT_STREQ((*table)->chains[1].name, "orders");
  EXPECT_EQ((*table)->chains[1].first_shard_port, 2u);
  EXPECT_EQ(segment->find(client_table_object_name, shm::SegmentObjectKind::counters)->bytes,
            *client_table_footprint(options));

  for (uint32_t index = 0; index < 2; ++index) {
    ClientSlot& slot = client_slot(base, **table, index);
    EXPECT_EQ(ClientSlotState(slot.state.load()), ClientSlotState::free);
    EXPECT_EQ(slot.in_flight_max, 64u);
    ASSERT_TRUE(shm::ring_check(base, slot.submit_ring).ok());
    EXPECT_EQ((*shm::ring_check(base, slot.submit_ring))->doorbell_offset, bells[0]);
    EXPECT_EQ((*shm::ring_check(base, slot.receipt_ring))->capacity, 64u);
    EXPECT_TRUE(shm::ArenaReader::join(base, slot.submit_arena).ok());
    EXPECT_EQ(slot.doorbell % 128, 0u);
  }
  for (uint32_t port = 0; port < 3; ++port) {
    const ShardPorts& ports = shard_ports(base, **table, port < 2 ? 0 : 1, port < 2 ? port : 0);
    EXPECT_EQ((*shm::ring_check(base, ports.submit_ring))->doorbell_offset, bells[1 + port]);
    EXPECT_EQ((*shm::ring_check(base, ports.receipt_ring))->doorbell_offset, bells[0]);
    EXPECT_EQ((*shm::ring_check(base, ports.receipt_ring))->slot_bytes, receipt_slot_bytes);
    EXPECT_TRUE(shm::ArenaWriter::join(base, ports.submit_arena).ok());
  }

  Result<uint64_t> again = lay_out_client_table(*segment, options);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, "segment '" + name + "' object 'ledger.clients': already laid out");
  segment->seal();
  Result<shm::Segment> attached = shm::Segment::attach(name);
  ASSERT_TRUE(attached.ok());
  EXPECT_EQ(*find_client_table(*attached), *offset);
}

TEST(ClientTableTest, CheckRejectsWhatIsNotATable) {
  std::string name = shm::testing::unique_segment_name("client-table-check");
  Result<shm::Segment> segment = shm::Segment::create({name, 1 << 20});
  ASSERT_TRUE(segment.ok());
  uint64_t offset = *segment->allocate("junk", shm::SegmentObjectKind::counters, 8192, 128);
  Result<const ClientTable*> table = check_client_table(segment->base(), offset);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message, "client table at offset " + std::to_string(offset) + ": bad magic");
  auto* fake = reinterpret_cast<ClientTable*>(segment->base() + offset);
  fake->magic = client_table_magic;
  fake->version = 9;
  EXPECT_EQ(check_client_table(segment->base(), offset).error().message,
            "client table at offset " + std::to_string(offset) + ": version 9, this keel reads version 2");
  fake->version = client_table_version;
  fake->slot_count = 1;
  fake->chain_count = 1;
  fake->chains[0].shard_count = 2;
  fake->port_count = 3;
  EXPECT_EQ(check_client_table(segment->base(), offset).error().message,
            "client table at offset " + std::to_string(offset) + ": corrupt counts");
  segment->seal();
  Result<shm::Segment> attached = shm::Segment::attach(name);
  EXPECT_EQ(find_client_table(*attached).error().message, "segment '" + name + "' object 'ledger.clients': not found");
}

}  // namespace
}  // namespace keel::client
