// engine/client/client_table.h: the engine lays out the client table (protocol.h) once,
// before sealing its segment; clients and the gateway find it by name and check it.
//
//   ClientTableOptions options{.chains = {{"payments", 2}, {"orders", 1}}, .client_slots = 16};
//   uint64_t bytes = client_table_footprint(options).value();     // add to the segment size
//   uint64_t table = lay_out_client_table(segment, options).value();  // before segment.seal()
//   // any process that attached the segment
//   const ClientTable* checked = check_client_table(segment.base(), table).value();
//   const ShardPorts& ports = shard_ports(segment.base(), *checked, /*chain=*/0, /*shard=*/1);
//
// Everything the table names (client slots, shard ports, every ring, arena and doorbell)
// lives inside the one "ledger.clients" segment object, so the segment directory holds a
// single entry however many clients and shards there are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/client/protocol.h"
#include "error/result.h"
#include "shm/segment.h"

namespace keel::client {

struct ChainSpec {
  std::string name;  // 1..chain_name_bytes_max bytes, unique
  uint32_t shard_count = 1;
};

struct ClientTableOptions {
  std::vector<ChainSpec> chains;          // 1..chains_max
  uint32_t client_slots = 16;             // 1..client_slots_max
  uint32_t in_flight_max = 4096;          // per client; the receipt ring has exactly this capacity (power of two)
  uint32_t submit_ring_capacity = 4096;   // power of two
  uint64_t client_arena_bytes = 1 << 20;  // per client, for transactions > submit_inline_bytes_max
  uint32_t shard_ring_capacity = 8192;    // gateway<->shard rings, both directions
  uint64_t shard_arena_bytes = 4 << 20;   // per shard
  uint64_t gateway_doorbell = 0;          // offset of the doorbell of the core the gateway runs on (0: none)
  // Offset of the doorbell of the core each shard tile runs on, indexed like the ports
  // (chain by chain, shard by shard); empty = none.
  std::vector<uint64_t> shard_doorbells;
};

// Bytes the whole object needs (table, slots, every ring, arena, doorbell, ports).
// Validates the options; the error names the bad option and the allowed range.
Result<uint64_t> client_table_footprint(const ClientTableOptions& options);

// Allocates "ledger.clients" in the (unsealed) segment and constructs everything in it:
// every slot free, every ring empty. Returns the table's offset from the segment base.
Result<uint64_t> lay_out_client_table(shm::Segment& segment, const ClientTableOptions& options);

// Checks magic, version and the counts of the table at base + offset (for attachers).
Result<const ClientTable*> check_client_table(const std::byte* base, uint64_t offset);

// Finds "ledger.clients" in an attached segment and checks it (also that its slot and
// port arrays lie inside the object); returns its offset.
Result<uint64_t> find_client_table(const shm::Segment& segment);

// The slot at `index` (< table.slot_count). The table must have been checked.
inline ClientSlot& client_slot(std::byte* base, const ClientTable& table, uint32_t index) {
  return reinterpret_cast<ClientSlot*>(base + table.slots_offset)[index];
}

// The identity of the slot at `index` (< table.slot_count). The table must have been checked.
inline ClientIdentity& client_identity(std::byte* base, const ClientTable& table, uint32_t index) {
  return reinterpret_cast<ClientIdentity*>(base + table.identities_offset)[index];
}
inline const ClientIdentity& client_identity(const std::byte* base, const ClientTable& table, uint32_t index) {
  return reinterpret_cast<const ClientIdentity*>(base + table.identities_offset)[index];
}

// The gateway's rings to and from one shard of one chain (both in range).
const ShardPorts& shard_ports(const std::byte* base, const ClientTable& table, uint32_t chain, uint32_t shard);

// Joins a ring the table names as Handle (shm::RingProducer or shm::RingConsumer) and
// checks that its slots are `slot_bytes` wide (submit_slot_bytes or receipt_slot_bytes),
// so a push or pop of the protocol's messages can never straddle slots.
template <class Handle>
Result<Handle> join_table_ring(std::byte* base, uint64_t offset, uint32_t slot_bytes) {
  Result<Handle> ring = Handle::join(base, offset);
  if (!ring) return ring.error();
  if (ring->slot_bytes() != slot_bytes) {
    return make_error("ring at offset " + std::to_string(offset), "has " + std::to_string(ring->slot_bytes()) +
                                                                      "-byte slots; the client protocol needs " +
                                                                      std::to_string(slot_bytes));
  }
  return ring;
}

}  // namespace keel::client
