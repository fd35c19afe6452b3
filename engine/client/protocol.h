// engine/client/protocol.h: how clients and the engine talk through the segment.
//
// A client process attaches to the engine's segment, claims one slot of the client
// table and from then on owns that slot's ring pair: a submit ring (client -> engine)
// and a receipt ring (engine -> client). Nobody else reads its receipts. The engine's
// gateway tile polls every attached slot, checks each transaction, routes it to the
// shard that owns it, and returns receipts — only once the transaction's block is
// durable (or at once, with height 0, when it was refused before ordering).
//
//   clients ──submit ring──▶ gateway ──shard submit ring──▶ shard tile
//           ◀─receipt ring──          ◀─shard receipt ring──
//
// The table, every client's rings and arena, and the gateway's rings to and from the
// shards all live inside one segment object ("ledger.clients" for the table part); the
// table records their offsets, so the segment directory stays small however many
// clients and shards there are.
//
// Identity: a client attaches with a client id (ledger::is_client_id), which the claimer
// writes into the slot's ClientIdentity (a parallel array: ClientSlot is a full 128 bytes)
// before it publishes attached. The gateway refuses every submission of a slot whose id is
// not valid (bad_client_id) and checks credit grants against it; a shard reads it by the
// RoutedSubmit's client_slot to charge access credits. The gateway frees a slot only once
// no receipt is owed, so the id stays put while a submission of its owner is in flight.
// It is an identity, not an authentication: the segment is mode 0600, so only processes of
// the engine's user attach, and any of them may claim any id.
//
// Slot life: free -> claiming (a client won the compare-exchange) -> attached (owner pid,
// start ticks, epoch and heartbeat set) -> detached (the client left) or, when the owner
// died (the gateway saw its pid gone, a zombie, or different start ticks), straight on
// -> reclaiming (the gateway discards what is left in the rings and waits for receipts
// still owed from the shards) -> free. A slot left in claiming by a claimer that died is
// taken back the same way. Only the gateway moves a slot back to free, so a new owner
// never sees an old owner's receipts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace keel::client {

inline constexpr char client_table_object_name[] = "ledger.clients";
inline constexpr uint64_t client_table_magic = 0x31304c4254434b4bULL;  // "KKCTBL01"
// 2: ClientTable::identities_offset and the ClientIdentity array.
inline constexpr uint32_t client_table_version = 2;
inline constexpr uint32_t chains_max = 64;
inline constexpr uint32_t chain_name_bytes_max = 47;
inline constexpr uint32_t client_slots_max = 256;
inline constexpr uint32_t shards_per_chain_max = 256;

enum class ClientSlotState : uint32_t { free = 0, claiming = 1, attached = 2, detached = 3, reclaiming = 4 };

struct ChainEntry {
  char name[chain_name_bytes_max + 1];  // NUL-terminated
  uint32_t shard_count;
  uint32_t first_shard_port;  // index of shard 0's ShardPorts in ClientTable's port array
};
static_assert(sizeof(ChainEntry) == 56);

// The gateway's rings to and from one shard (offsets from the segment base).
struct ShardPorts {
  uint64_t submit_ring;   // gateway -> shard, RoutedSubmit slots
  uint64_t submit_arena;  // transactions too large for a slot
  uint64_t receipt_ring;  // shard -> gateway, ReceiptMessage slots
};
static_assert(sizeof(ShardPorts) == 24);

struct alignas(128) ClientSlot {
  std::atomic<uint32_t> state;          // ClientSlotState
  uint32_t epoch;                       // bumped by each claim
  std::atomic<int32_t> owner_pid;
  uint32_t reserved0;
  std::atomic<uint64_t> owner_start_ticks;  // tells pid reuse apart
  std::atomic<uint64_t> heartbeat_ns;       // CLOCK_MONOTONIC_COARSE (up to a tick behind CLOCK_MONOTONIC), beaten by the owner
  uint64_t submit_ring;                 // client -> gateway, SubmitMessage slots
  uint64_t submit_arena;                // transactions larger than submit_inline_bytes_max
  uint64_t receipt_ring;                // gateway -> client, ReceiptMessage slots
  uint64_t doorbell;                    // the gateway rings it after pushing receipts
  uint32_t in_flight_max;               // submissions without a receipt yet, at most
  uint32_t reserved1;
  // Counters for monitors, written by the gateway.
  std::atomic<uint64_t> submitted;
  std::atomic<uint64_t> receipts_sent;
};
static_assert(sizeof(ClientSlot) == 128);
static_assert(offsetof(ClientSlot, owner_start_ticks) == 16);
static_assert(offsetof(ClientSlot, submit_ring) == 32);
static_assert(offsetof(ClientSlot, in_flight_max) == 64);
static_assert(offsetof(ClientSlot, submitted) == 72);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// Who a slot's owner says it is: ledger::make_client_id's form, written by the claimer
// while the slot is claiming, read by the gateway and the shards once it is attached.
struct ClientIdentity {
  char client_id[32];  // ledger::ClientId
};
static_assert(sizeof(ClientIdentity) == 32);

struct ClientTable {
  uint64_t magic;
  uint32_t version;
  uint32_t slot_count;
  uint32_t chain_count;
  uint32_t port_count;
  uint64_t gateway_doorbell;  // clients ring it after submitting (the gateway's core may sleep)
  uint64_t slots_offset;      // from the segment base: ClientSlot[slot_count]
  uint64_t ports_offset;      // from the segment base: ShardPorts[port_count]
  uint64_t identities_offset; // from the segment base: ClientIdentity[slot_count]
  ChainEntry chains[chains_max];
};
static_assert(offsetof(ClientTable, identities_offset) == 48);
static_assert(offsetof(ClientTable, chains) == 56);
static_assert(sizeof(ClientTable) == 56 + chains_max * sizeof(ChainEntry));

inline constexpr uint32_t submit_slot_bytes = 128;
inline constexpr uint32_t submit_inline_bytes_max = 104;

// One submit ring slot. Transactions up to submit_inline_bytes_max travel inline; longer
// ones (up to ledger::tx_bytes_max) in the submitter's arena at arena_position.
struct SubmitMessage {
  uint64_t request_id;      // chosen by the client, echoed in the receipt
  uint32_t chain;           // index into ClientTable::chains
  uint32_t tx_bytes;
  uint64_t arena_position;  // when tx_bytes > submit_inline_bytes_max
  std::byte inline_tx[submit_inline_bytes_max];
};
static_assert(sizeof(SubmitMessage) == submit_slot_bytes);
static_assert(offsetof(SubmitMessage, inline_tx) == 24);

// One gateway -> shard slot: a checked transaction and where its receipt goes.
//
// The producer (the gateway, or the engine's compute source) may hash the transaction as
// a Merkle leaf (ledger::hash_leaf) and pass the hash along, so the shard, the one core
// that orders the chain, does not: a transaction of up to routed_hashed_tx_bytes_max bytes
// travels inline with its leaf hash in the slot's last 32 bytes and routed_flag_leaf_hash
// set. The shard takes the hash as it takes the producer's check of the transaction: both
// are the engine's own tiles, and this ring is theirs. Replay (recovery, `keel verify`)
// hashes every leaf from its bytes, so a block ordered under a wrong hash would stop
// recovery there: the shard hashes the first 1,024 routed transactions again and one in
// 256 after, and at a mismatch says so in one line and hashes everything itself.
struct RoutedSubmit {
  uint64_t request_id;
  uint16_t client_slot;
  uint16_t flags;  // routed_flag_*
  uint32_t tx_bytes;
  uint64_t arena_position;  // in the shard port's submit_arena when not inline
  std::byte inline_tx[submit_inline_bytes_max];
};
static_assert(sizeof(RoutedSubmit) == submit_slot_bytes);
static_assert(offsetof(RoutedSubmit, inline_tx) == 24);

inline constexpr uint16_t routed_flag_leaf_hash = 1;  // inline_tx ends with the tx's leaf hash
inline constexpr uint32_t routed_leaf_hash_bytes = 32;
inline constexpr uint32_t routed_hashed_tx_bytes_max = submit_inline_bytes_max - routed_leaf_hash_bytes;
// Where the leaf hash sits in inline_tx (after the longest transaction that has one).
inline constexpr uint32_t routed_leaf_hash_at = routed_hashed_tx_bytes_max;

inline constexpr uint32_t receipt_slot_bytes = 64;

// One receipt (shard -> gateway -> client). `status` is a ledger::TxStatus.
struct ReceiptMessage {
  uint64_t request_id;
  uint64_t height;       // the durable block holding it; 0 when refused before ordering
  uint16_t status;
  uint16_t client_slot;  // used between shard and gateway; the client sees its own index
  uint32_t chain;
  uint8_t tx_hash[32];   // zero when refused before it could be hashed
  uint32_t index;        // its place in that block (from 0): with height, a compute task's id
  uint32_t reserved;
};
static_assert(sizeof(ReceiptMessage) == receipt_slot_bytes);
static_assert(offsetof(ReceiptMessage, tx_hash) == 24);

}  // namespace keel::client
