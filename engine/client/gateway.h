// engine/client/gateway.h: the engine's end of the client table. One gateway tile per
// engine polls every attached client slot, checks each transaction, routes it to its
// home shard's port and forwards the shards' receipts back to the client that asked.
//
//   uint64_t table = lay_out_client_table(segment, options).value();   // before seal()
//   auto gateway = GatewayTile::create(segment.base(), table).value();
//   CoreLoop loop(core_options, {{gateway.get(), 1}, ...});              // or poll() it yourself
//   // a shard tile, for its port: pop RoutedSubmit from ports.submit_ring (the transaction
//   // inline or in ports.submit_arena), push one ReceiptMessage per submit, with the same
//   // request_id and client_slot, to ports.receipt_ring once its block is durable.
//
// Bounds: the gateway takes a submission from a client only while the receipts it owes
// that client (routed, not yet answered) plus the receipts waiting in the client's
// receipt ring fit in that ring, so a receipt always has room and is never dropped for
// a live client. A full shard ring or arena stops that client for the poll (counted as
// backpressure); nothing is dropped.
//
// Slots whose owner detached or died (pid gone, zombie, or pid reused: start ticks
// differ) are reclaimed: their unread submissions are discarded, the receipts still
// owed by shards are dropped as they arrive, and once none is owed the receipt ring is
// emptied and the slot is free again, so a new owner never sees an old owner's receipts.
//
// Drain: after begin_drain() every new submission is answered at once with
// engine_stopping (height 0) and the shard submit rings are closed; receipts keep being
// forwarded, and the tile is quiescent once no shard owes a receipt.
//
// Identity and grants: a submission from a slot whose client id (protocol.h) is not valid
// is refused with bad_client_id, and a credit_grant from a client its chain's
// credit_granters do not list with not_a_granter, both at once (height 0).
//
// One gateway per table for the table's life: what each slot is owed is counted in the
// gateway's process, not in the segment. Transactions travelling in a client's arena are
// checked there and then copied, so a client that rewrites them in between can hand a
// shard other bytes than were checked: shards check what they execute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "engine/client/protocol.h"
#include "engine/core/tile.h"
#include "engine/ledger/transaction.h"
#include "error/result.h"
#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"

namespace keel::client {

// How often the gateway looks for detached and dead clients.
inline constexpr uint64_t gateway_sweep_interval_ns = 100'000'000ULL;
// A slot left in claiming this long by a claimer that is gone is taken back.
inline constexpr uint64_t gateway_claim_timeout_ns = 2'000'000'000ULL;

struct GatewayStats {
  uint64_t routed = 0;               // transactions handed to a shard port
  uint64_t refused = 0;              // answered at once with height 0 (malformed, unknown chain, stopping, not a granter)
  uint64_t receipts_forwarded = 0;   // shard receipts pushed to their client
  uint64_t receipts_discarded = 0;   // shard receipts whose client had left (reclaiming slot)
  uint64_t submissions_discarded = 0;  // unread submissions of a client that left
  uint64_t clients_reclaimed = 0;    // slots returned to free
  uint64_t backpressure_events = 0;  // a client's read stopped by a full shard ring or arena
};

// What the gateway enforces on one chain (the config's [[chain]]).
struct ChainAccess {
  // Client ids whose credit_grants are routed; anyone else's are not_a_granter.
  std::vector<std::string> credit_granters = {"operator"};
};

// Sets a routed slot's flags once its tx_bytes and inline bytes are written: a transaction
// of up to routed_hashed_tx_bytes_max bytes gets its Merkle leaf hash (ledger::hash_leaf of
// the slot's own copy) in the slot and routed_flag_leaf_hash; any other, no flag (the shard
// hashes it). Every producer into a shard's submit ring calls it (protocol.h).
void hash_routed_leaf(RoutedSubmit& slot);

class GatewayTile final : public engine::Tile {
 public:
  // Joins the table at segment_base + table_offset and every ring and arena it names.
  // `access` has one entry per chain of the table, or none (every chain: ChainAccess{}).
  // Errors: a table or ring that fails its magic/version check, an access list of
  // another length.
  static Result<std::unique_ptr<GatewayTile>> create(std::byte* segment_base, uint64_t table_offset,
                                                     std::vector<ChainAccess> access = {});

  std::string_view name() const override { return "client.gateway"; }
  // Forwards shard receipts first, then takes submissions, up to `budget` of both in
  // all; every ~100 ms also sweeps the slots for clients that left. Returns work done.
  size_t poll(size_t budget) override;
  // Stops routing: new submissions get engine_stopping at once; receipts still flow.
  void begin_drain() override;
  // Draining, and no shard owes a receipt to anyone.
  bool quiescent() override { return draining_ && owed_total_ == 0; }

  const GatewayStats& stats() const { return stats_; }
  // Receipts shards owe to a slot (routed, not yet answered).
  uint32_t owed(uint32_t slot) const { return slots_[slot].owed; }

 private:
  // The gateway's handles on one client slot. The ring and arena handles outlive owners:
  // each new owner continues the indexes where the last one left them.
  struct SlotLink {
    ClientSlot* shared = nullptr;
    ClientIdentity* identity = nullptr;
    shm::RingConsumer submits;
    shm::ArenaReader arena;
    shm::ArenaHeader* arena_header = nullptr;
    shm::RingProducer receipts;
    uint64_t receipt_ring = 0;      // offset, for the consumer joined when reclaiming
    shm::RingHeader* receipt_header = nullptr;
    shm::Doorbell* doorbell = nullptr;
    uint32_t owed = 0;              // routed to shards, receipt not yet back
    bool reclaiming = false;
    bool touched = false;           // got receipts this poll: ring its doorbell once
    bool blocked = false;           // hit a full shard ring or arena this poll
    uint64_t claiming_since_ns = 0;
  };
  struct PortLink {
    shm::RingProducer submits;
    shm::ArenaWriter arena;
    shm::RingConsumer receipts;
    uint32_t pending = 0;           // claimed and written, published at the end of the poll
    bool dirty = false;             // in dirty_ports_
  };
  struct ChainRoute {
    uint32_t first_port;
    uint32_t shard_count;
    std::vector<std::string> credit_granters;
    bool system = false;  // the system chain: clients may read it, never submit to it
  };

  GatewayTile() = default;
  size_t forward_receipts(size_t budget);
  size_t forward_port_receipts(PortLink& port, size_t wanted);
  size_t take_submissions(size_t budget);
  size_t take_client_submissions(uint32_t slot_index, size_t wanted);
  // client_id: the slot's, when valid.
  bool take_submission(uint32_t slot_index, const SubmitMessage& message, std::optional<std::string_view> client_id);
  ledger::TxStatus check_access(const ledger::TxView& view, uint32_t chain,
                                std::optional<std::string_view> client_id) const;
  bool route(uint32_t port_index, uint32_t slot_index, const SubmitMessage& message, std::span<const std::byte> tx);
  void answer_now(uint32_t slot_index, const SubmitMessage& message, uint16_t status);
  void push_receipt(uint32_t slot_index, const ReceiptMessage& receipt);
  uint64_t receipt_room(const SlotLink& slot) const;
  void publish_ports();
  void ring_touched_doorbells();
  size_t sweep_slots(uint64_t now_ns);
  bool claim_abandoned(SlotLink& slot, uint64_t now_ns);
  void begin_reclaim(uint32_t slot_index, uint32_t seen_state);
  void discard_submissions(SlotLink& slot);
  void finish_reclaim(SlotLink& slot);

  std::byte* base_ = nullptr;
  std::vector<ChainRoute> chains_;
  std::vector<SlotLink> slots_;
  std::vector<PortLink> ports_;
  std::vector<uint32_t> touched_slots_;
  std::vector<uint32_t> dirty_ports_;
  GatewayStats stats_;
  uint64_t owed_total_ = 0;
  uint64_t next_sweep_ns_ = 0;
  uint32_t next_slot_ = 0;
  uint32_t next_port_ = 0;
  bool draining_ = false;
};

}  // namespace keel::client
