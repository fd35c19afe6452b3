#include "engine/client/client_table.h"

#include <bit>
#include <cassert>
#include <cstring>
#include <new>

#include "engine/ledger/transaction.h"
#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"

namespace keel::client {

namespace {

constexpr char place[] = "client table";
// A slot's identity is a ledger client id, copied as is into what the shards charge.
static_assert(sizeof(ClientIdentity::client_id) == sizeof(ledger::ClientId));
constexpr uint64_t piece_alignment = 128;  // rings, arenas and doorbells all want 128

// The footprint of each kind of piece, computed once the options are known to be valid.
struct PieceBytes {
  uint64_t client_submit_ring;
  uint64_t client_receipt_ring;
  uint64_t client_arena;
  uint64_t shard_submit_ring;
  uint64_t shard_receipt_ring;
  uint64_t shard_arena;
  uint32_t port_count;
};

// Hands out consecutive 128-byte aligned pieces of the object.
struct Cursor {
  uint64_t next = 0;
  uint64_t take(uint64_t bytes) {
    uint64_t at = next;
    next = (next + bytes + piece_alignment - 1) & ~(piece_alignment - 1);
    return at;
  }
};

std::string power_of_two_range(uint64_t low, uint64_t high, uint64_t got) {
  return "a power of two from " + std::to_string(low) + " to " + std::to_string(high) + ", got " +
         std::to_string(got);
}

Result<void> check_ring_capacity(const char* option, uint64_t capacity) {
  if (!shm::ring_footprint(capacity, receipt_slot_bytes)) {
    return make_error(place, std::string(option) + ": " +
                                 power_of_two_range(shm::ring_capacity_min, shm::ring_capacity_max, capacity));
  }
  return {};
}

// Arenas must hold the largest transaction, or a submit of one would never fit.
Result<void> check_arena_bytes(const char* option, uint64_t bytes) {
  if (bytes < ledger::tx_bytes_max || !shm::arena_footprint(bytes)) {
    return make_error(place, std::string(option) + ": " +
                                 power_of_two_range(ledger::tx_bytes_max, shm::arena_bytes_max, bytes));
  }
  return {};
}

Result<void> check_doorbell(const std::string& option, uint64_t offset) {
  if (offset % alignof(shm::Doorbell) != 0) {
    return make_error(place, option + ": a doorbell offset is 128-byte aligned, got " + std::to_string(offset));
  }
  return {};
}

Result<uint32_t> check_chains(const std::vector<ChainSpec>& chains) {
  if (chains.empty() || chains.size() > chains_max) {
    return make_error(place, "chains: 1 to " + std::to_string(chains_max) + " chains, got " +
                                 std::to_string(chains.size()));
  }
  uint32_t port_count = 0;
  for (size_t index = 0; index < chains.size(); ++index) {
    const ChainSpec& chain = chains[index];
    std::string option = "chains[" + std::to_string(index) + "]";
    if (chain.name.empty() || chain.name.size() > chain_name_bytes_max || chain.name.find('\0') != std::string::npos) {
      return make_error(place, option + ".name: 1 to " + std::to_string(chain_name_bytes_max) +
                                   " bytes without NUL, got " + std::to_string(chain.name.size()) + " bytes");
    }
    for (size_t earlier = 0; earlier < index; ++earlier) {
      if (chains[earlier].name == chain.name) {
        return make_error(place, option + ".name: '" + chain.name + "' is also chains[" +
                                     std::to_string(earlier) + "].name");
      }
    }
    if (chain.shard_count < 1 || chain.shard_count > shards_per_chain_max) {
      return make_error(place, option + ".shard_count (chain '" + chain.name + "'): 1 to " +
                                   std::to_string(shards_per_chain_max) + ", got " + std::to_string(chain.shard_count));
    }
    port_count += chain.shard_count;
  }
  return port_count;
}

Result<PieceBytes> check_options(const ClientTableOptions& options) {
  Result<uint32_t> port_count = check_chains(options.chains);
  if (!port_count) return port_count.error();
  if (options.client_slots < 1 || options.client_slots > client_slots_max) {
    return make_error(place, "client_slots: 1 to " + std::to_string(client_slots_max) + ", got " +
                                 std::to_string(options.client_slots));
  }
  if (auto checked = check_ring_capacity("in_flight_max", options.in_flight_max); !checked) return checked.error();
  if (auto checked = check_ring_capacity("submit_ring_capacity", options.submit_ring_capacity); !checked) {
    return checked.error();
  }
  if (auto checked = check_ring_capacity("shard_ring_capacity", options.shard_ring_capacity); !checked) {
    return checked.error();
  }
  if (auto checked = check_arena_bytes("client_arena_bytes", options.client_arena_bytes); !checked) return checked.error();
  if (auto checked = check_arena_bytes("shard_arena_bytes", options.shard_arena_bytes); !checked) return checked.error();
  if (auto checked = check_doorbell("gateway_doorbell", options.gateway_doorbell); !checked) return checked.error();
  if (!options.shard_doorbells.empty() && options.shard_doorbells.size() != *port_count) {
    return make_error(place, "shard_doorbells: " + std::to_string(options.shard_doorbells.size()) +
                                 " offsets for " + std::to_string(*port_count) + " shard ports");
  }
  for (size_t index = 0; index < options.shard_doorbells.size(); ++index) {
    std::string option = "shard_doorbells[" + std::to_string(index) + "]";
    if (auto checked = check_doorbell(option, options.shard_doorbells[index]); !checked) return checked.error();
  }
  return PieceBytes{*shm::ring_footprint(options.submit_ring_capacity, submit_slot_bytes),
                    *shm::ring_footprint(options.in_flight_max, receipt_slot_bytes),
                    *shm::arena_footprint(options.client_arena_bytes),
                    *shm::ring_footprint(options.shard_ring_capacity, submit_slot_bytes),
                    *shm::ring_footprint(options.shard_ring_capacity, receipt_slot_bytes),
                    *shm::arena_footprint(options.shard_arena_bytes),
                    *port_count};
}

void construct_ring(std::byte* base, uint64_t offset, uint64_t capacity, uint32_t slot_bytes, uint64_t doorbell) {
  Result<void> built = shm::ring_construct(base, offset, {capacity, slot_bytes, doorbell});
  assert(built.ok());  // the options were checked
  (void)built;
}

void construct_arena(std::byte* base, uint64_t offset, uint64_t bytes) {
  Result<void> built = shm::arena_construct(base, offset, bytes);
  assert(built.ok());
  (void)built;
}

// Writes the table's counts, offsets and chains, then its magic (last: a table with a
// valid magic is complete).
void fill_table(ClientTable& table, const ClientTableOptions& options, uint64_t slots_at, uint64_t ports_at,
                uint64_t identities_at, uint32_t port_count) {
  table.version = client_table_version;
  table.slot_count = options.client_slots;
  table.chain_count = uint32_t(options.chains.size());
  table.port_count = port_count;
  table.gateway_doorbell = options.gateway_doorbell;
  table.slots_offset = slots_at;
  table.ports_offset = ports_at;
  table.identities_offset = identities_at;
  uint32_t first_port = 0;
  for (size_t index = 0; index < options.chains.size(); ++index) {
    ChainEntry& entry = table.chains[index];
    std::memcpy(entry.name, options.chains[index].name.data(), options.chains[index].name.size());
    entry.shard_count = options.chains[index].shard_count;
    entry.first_shard_port = first_port;
    first_port += entry.shard_count;
  }
  std::atomic_thread_fence(std::memory_order_release);
  table.magic = client_table_magic;
}

// Walks the layout in order and, when `base` is set, builds each piece in place at
// base + object + its position. Returns the bytes the object needs. One walk serves
// both the footprint and the construction, so the two cannot disagree.
uint64_t walk_layout(const ClientTableOptions& options, const PieceBytes& bytes, std::byte* base, uint64_t object) {
  Cursor cursor;
  uint64_t table_at = object + cursor.take(sizeof(ClientTable));
  uint64_t slots_at = object + cursor.take(uint64_t(options.client_slots) * sizeof(ClientSlot));
  uint64_t ports_at = object + cursor.take(uint64_t(bytes.port_count) * sizeof(ShardPorts));
  uint64_t identities_at = object + cursor.take(uint64_t(options.client_slots) * sizeof(ClientIdentity));
  ClientTable* table = base ? new (base + table_at) ClientTable{} : nullptr;
  if (base)
    for (uint32_t index = 0; index < options.client_slots; ++index)
      new (base + identities_at + uint64_t(index) * sizeof(ClientIdentity)) ClientIdentity{};
  for (uint32_t index = 0; index < options.client_slots; ++index) {
    uint64_t submit_ring = object + cursor.take(bytes.client_submit_ring);
    uint64_t receipt_ring = object + cursor.take(bytes.client_receipt_ring);
    uint64_t arena = object + cursor.take(bytes.client_arena);
    uint64_t doorbell = object + cursor.take(sizeof(shm::Doorbell));
    if (!base) continue;
    construct_ring(base, submit_ring, options.submit_ring_capacity, submit_slot_bytes, options.gateway_doorbell);
    // The gateway rings the client's doorbell once per batch of receipts, not per push.
    construct_ring(base, receipt_ring, options.in_flight_max, receipt_slot_bytes, 0);
    construct_arena(base, arena, options.client_arena_bytes);
    new (base + doorbell) shm::Doorbell{};
    auto* slot = new (base + slots_at + uint64_t(index) * sizeof(ClientSlot)) ClientSlot{};
    slot->submit_ring = submit_ring;
    slot->submit_arena = arena;
    slot->receipt_ring = receipt_ring;
    slot->doorbell = doorbell;
    slot->in_flight_max = options.in_flight_max;
  }
  for (uint32_t index = 0; index < bytes.port_count; ++index) {
    uint64_t submit_ring = object + cursor.take(bytes.shard_submit_ring);
    uint64_t receipt_ring = object + cursor.take(bytes.shard_receipt_ring);
    uint64_t arena = object + cursor.take(bytes.shard_arena);
    if (!base) continue;
    uint64_t shard_doorbell = options.shard_doorbells.empty() ? 0 : options.shard_doorbells[index];
    construct_ring(base, submit_ring, options.shard_ring_capacity, submit_slot_bytes, shard_doorbell);
    construct_ring(base, receipt_ring, options.shard_ring_capacity, receipt_slot_bytes, options.gateway_doorbell);
    construct_arena(base, arena, options.shard_arena_bytes);
    new (base + ports_at + uint64_t(index) * sizeof(ShardPorts)) ShardPorts{submit_ring, arena, receipt_ring};
  }
  if (table != nullptr) fill_table(*table, options, slots_at, ports_at, identities_at, bytes.port_count);
  return cursor.next;
}

}  // namespace

Result<uint64_t> client_table_footprint(const ClientTableOptions& options) {
  Result<PieceBytes> bytes = check_options(options);
  if (!bytes) return bytes.error();
  return walk_layout(options, *bytes, nullptr, 0);
}

Result<uint64_t> lay_out_client_table(shm::Segment& segment, const ClientTableOptions& options) {
  Result<PieceBytes> bytes = check_options(options);
  if (!bytes) return bytes.error();
  uint64_t footprint = walk_layout(options, *bytes, nullptr, 0);
  Result<uint64_t> object = segment.allocate(client_table_object_name, shm::SegmentObjectKind::counters, footprint,
                                             piece_alignment);
  if (!object) return object.error();
  uint64_t built = walk_layout(options, *bytes, segment.base(), *object);
  assert(built == footprint);
  (void)built;
  return *object;  // the table is the object's first piece
}

Result<const ClientTable*> check_client_table(const std::byte* base, uint64_t offset) {
  auto* table = reinterpret_cast<const ClientTable*>(base + offset);
  std::string table_place = std::string(place) + " at offset " + std::to_string(offset);
  if (offset % piece_alignment != 0) return make_error(table_place, "not 128-byte aligned");
  if (table->magic != client_table_magic) return make_error(table_place, "bad magic");
  if (table->version != client_table_version) {
    return make_error(table_place, "version " + std::to_string(table->version) + ", this keel reads version " +
                                       std::to_string(client_table_version));
  }
  bool counts_fit = table->slot_count >= 1 && table->slot_count <= client_slots_max && table->chain_count >= 1 &&
                    table->chain_count <= chains_max && table->slots_offset % piece_alignment == 0;
  uint32_t ports = 0;
  for (uint32_t index = 0; counts_fit && index < table->chain_count; ++index) {
    const ChainEntry& chain = table->chains[index];
    counts_fit = chain.first_shard_port == ports && chain.shard_count >= 1 &&
                 chain.shard_count <= shards_per_chain_max && chain.name[chain_name_bytes_max] == '\0';
    ports += chain.shard_count;
  }
  if (!counts_fit || ports != table->port_count) return make_error(table_place, "corrupt counts");
  return table;
}

Result<uint64_t> find_client_table(const shm::Segment& segment) {
  Result<shm::SegmentObject> object = segment.find(client_table_object_name, shm::SegmentObjectKind::counters);
  if (!object) return object.error();
  if (object->bytes < sizeof(ClientTable)) {
    return make_error(std::string(place) + " at offset " + std::to_string(object->offset),
                      "the object is only " + std::to_string(object->bytes) + " bytes");
  }
  Result<const ClientTable*> table = check_client_table(segment.base(), object->offset);
  if (!table) return table.error();
  uint64_t end = object->offset + object->bytes;
  uint64_t slots_end = (*table)->slots_offset + uint64_t((*table)->slot_count) * sizeof(ClientSlot);
  uint64_t ports_end = (*table)->ports_offset + uint64_t((*table)->port_count) * sizeof(ShardPorts);
  uint64_t identities_end = (*table)->identities_offset + uint64_t((*table)->slot_count) * sizeof(ClientIdentity);
  if ((*table)->slots_offset < object->offset || slots_end > end || (*table)->ports_offset < object->offset ||
      ports_end > end || (*table)->identities_offset < object->offset || identities_end > end) {
    return make_error(std::string(place) + " at offset " + std::to_string(object->offset),
                      "slots, ports or identities lie outside the object");
  }
  return object->offset;
}

const ShardPorts& shard_ports(const std::byte* base, const ClientTable& table, uint32_t chain, uint32_t shard) {
  assert(chain < table.chain_count && shard < table.chains[chain].shard_count);
  auto* ports = reinterpret_cast<const ShardPorts*>(base + table.ports_offset);
  return ports[table.chains[chain].first_shard_port + shard];
}

}  // namespace keel::client
