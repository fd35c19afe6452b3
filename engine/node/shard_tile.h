// engine/node/shard_tile.h: the tile that runs one shard of a chain — takes routed
// transactions and credits, executes them, seals blocks, hands them to the persist tile,
// and answers clients and other shards once a block is durable.
//
//   ShardTile shard(std::move(executor), ports, drain);
//   core tiles: {&shard, weight}
//
// Per poll: (1) release what became durable: receipts to the gateway, credits to other
// shards, in block order; (2) send the compute tasks of sealed blocks to the scheduler;
// (3) take credits, compute results, due timer fires, then client transactions, into the
// open block;
// (4) seal when the block is full, its first transaction is block_us_max old, or
// input ran dry while the persist tile has nothing of this shard to write (sealing
// early then costs nothing: the next group commit has not started yet).
//
// Nothing is dropped: a full persist ring or arena delays sealing (counted), a full
// receipt or credit ring delays releasing, and a shard whose sealed-but-unanswered
// blocks pile up stops taking input.
//
// Compute tasks leave at seal, before their block is durable (ledger/shard.h says why
// that is safe), and on start every task pending in the recovered state is sent again.
// A compute_result(s) the ledger does not order (a duplicate, an unknown task) is dropped.
//
// Access credits (a chain whose policy requires them): a client's submission is charged to
// the client id of its slot (client/protocol.h), read from the segment when the shard
// orders it and checked (a slot without a valid id gets bad_client_id). The gateway does
// not free a slot while a receipt is owed, so the id cannot change under a submission in
// flight; the charge is the executor's (ledger/shard.h), and a refusal (no_credit) is
// answered at once with height 0. Copying the id into each RoutedSubmit instead would cost
// 32 of its 104 inline bytes on every chain; this costs one cache line read, on charged
// chains only.
//
// Timers: the tile keeps a timing wheel of the fire times the ledger records for the
// shard's cron timers (flow_table.h's FlowTimer), rebuilt whenever the ledger changes
// them, and orders a timer_fire transaction (ledger/transaction.h) when one passes on
// its clock. The wheel is only an index: after a crash it is rebuilt from the recovered
// state, and a fire whose block was lost is simply due again.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/client/protocol.h"
#include "engine/core/latency_histogram.h"
#include "engine/core/tile.h"
#include "engine/flow/timer_wheel.h"
#include "engine/ledger/shard.h"
#include "engine/node/drain_state.h"
#include "engine/node/product_table.h"
#include "engine/node/shard_table.h"
#include "engine/node/snapshot_writer.h"
#include "engine/sched/task_table.h"
#include "shm/arena.h"
#include "shm/ring.h"

namespace keel::node {

// Whether a shard takes its producers' leaf hashes (client/protocol.h). A block ordered
// under a wrong hash would be refused by replay, and recovery would stop there, so the
// first checks_full hashes and one in check_every after are hashed again from the bytes;
// the first that does not match ends the trust for good (an engine bug: the caller says
// so in one line), and the shard hashes every transaction itself from then on.
//
//   if (check.trusting() && check.accept(tx, routed)) order with `routed`; else hash it
class RoutedLeafCheck {
 public:
  static constexpr uint64_t checks_full = 1024;
  static constexpr uint64_t check_every = 256;
  bool trusting() const { return trusting_; }
  // True when `routed` may be used for `tx` (checked against it, or not due a check).
  // False once a check has failed, and from then on.
  bool accept(std::span<const std::byte> tx, const ledger::Hash32& routed);

 private:
  bool trusting_ = true;
  uint64_t taken_ = 0;
};

// The shard's ends of its scheduler rings (sched/task_table.h).
struct ShardComputePorts {
  shm::RingProducer requests;  // shard -> scheduler: the tasks its blocks issue
  shm::ArenaWriter request_inputs;
  shm::RingConsumer results;   // scheduler -> shard: compute_results transactions
  shm::ArenaReader result_txs;
  const sched::ComputeTypeTable* types = nullptr;  // outlives the tile
};

struct ShardPortsJoined {
  shm::RingConsumer submit;      // gateway -> shard
  shm::ArenaReader submit_arena;
  shm::RingProducer receipts;    // shard -> gateway
  shm::RingProducer blocks;      // shard -> persist tile
  shm::ArenaWriter block_arena;
  // Indexed by shard within the chain; the own shard's entries are unused.
  std::vector<shm::RingConsumer> credits_in;
  std::vector<shm::RingProducer> credits_out;
  // Indexed like the rings: marks_published[origin] is where this shard publishes its
  // durable credit mark for that origin; marks_observed[destination] is where that
  // destination publishes its durable mark for this shard's credits.
  std::vector<std::atomic<uint64_t>*> marks_published;
  std::vector<std::atomic<uint64_t>*> marks_observed;
  // Absent when the engine runs no scheduler: compute tasks then stay pending.
  std::optional<ShardComputePorts> compute;
  // The system chain's shard only: the engine's own transactions (EngineTxMessage slots).
  std::optional<shm::RingConsumer> engine_txs;
  // The client table's identities (client_slot_count of them), which a chain that requires
  // access credits charges by a RoutedSubmit's client_slot; none: every charge is refused
  // (bad_client_id).
  const client::ClientIdentity* client_identities = nullptr;
  uint32_t client_slot_count = 0;
};

// One slot of a shard's engine ring: a transaction the engine itself orders on the shard
// (the balancer's balance_record on the system chain), inline, checked as TxOrigin::engine.
inline constexpr uint32_t engine_tx_inline_bytes_max = 120;
struct EngineTxMessage {
  uint32_t tx_bytes;
  uint32_t reserved;
  std::byte tx[engine_tx_inline_bytes_max];
};
static_assert(sizeof(EngineTxMessage) == 128);

// Joins the shard's scheduler rings.
Result<ShardComputePorts> join_compute_ports(std::byte* segment_base, const sched::TaskTableView& table,
                                             uint32_t global_shard, const sched::ComputeTypeTable* types);

// The clock timers fire by: the wall clock (UTC), or for tests one that runs `rate` times
// as fast from virtual_start_s at real time anchor_s (KEEL_TIMER_CLOCK="anchor_s:
// virtual_start_s:rate", read by from_environment; the engine says so in one line when it
// is set), so a test sees a minute's cron fire every second or so, across restarts.
struct TimerClock {
  uint64_t anchor_s = 0;
  uint64_t virtual_start_s = 0;
  uint32_t rate = 0;  // 0: the wall clock
  uint64_t now_ms() const;
  // The environment's clock; an error names KEEL_TIMER_CLOCK and what is wrong with it.
  static Result<TimerClock> from_environment();
};

// When and where a shard snapshots (snapshot_writer.h). every_blocks = 0: never.
struct SnapshotPolicy {
  uint32_t every_blocks = 0;
  SnapshotWriter* writer = nullptr;
  std::string directory;  // the shard's data directory
  uint32_t global_shard = 0;
};

// Joins every ring and arena of one shard. chain_index: the chain's index in the client table.
Result<ShardPortsJoined> join_shard_ports(std::byte* segment_base, const ShardTableView& table,
                                          const client::ShardPorts& gateway_ports, uint32_t global_shard);

class ShardTile final : public engine::Tile {
 public:
  // `pending_credits` are credits whose debits are already durable but which the
  // destination may not have applied (recovery computes them); they are sent first.
  // `startup_txs` are transactions the engine itself orders before any client's (the
  // config's product settings, as product_set), each checked as TxOrigin::engine.
  ShardTile(ledger::ShardExecutor executor, ShardPortsJoined ports, ShardControl* control, uint32_t chain_index,
            uint32_t block_us_max, DrainState* drain, std::vector<ledger::OutboundCredit> pending_credits = {},
            SnapshotPolicy snapshots = {}, TimerClock timer_clock = {},
            std::vector<std::vector<std::byte>> startup_txs = {});

  std::string_view name() const override { return name_; }
  size_t poll(size_t budget) override;
  void begin_drain() override { draining_ = true; }
  bool quiescent() override;

  const ledger::ShardExecutor& executor() const { return executor_; }
  // Flow jobs: from the moment their step became ready (its dependencies done, or its
  // flow resumed) to the moment the tile handed them to the scheduler, queueing behind
  // their product's running limit included. Read once the cores are joined.
  const engine::LatencyHistogram& ready_to_dispatch() const { return ready_to_dispatch_; }
  // From then on the tile copies its product queues (queued and running jobs per product)
  // into the segment's product table every product_publish_interval_ms, for monitors.
  // Call before the tile runs.
  void publish_products_to(ProductTableView table, uint32_t global_shard);

 private:
  // Who gets the receipt of one ordered transaction.
  struct ReceiptRoute {
    uint64_t request_id;
    uint16_t client_slot;  // no_client for credits
  };
  static constexpr uint16_t no_client = 0xffff;
  struct PendingBlock {
    uint64_t height;
    uint64_t first_tx_ns;
    ledger::SealedBlock block;
    std::vector<ReceiptRoute> routes;
    size_t receipts_released = 0;
    // This shard's credit marks as of this block (packed, per origin), published once
    // it is durable; empty on a single-shard chain.
    std::vector<uint64_t> credit_marks;
    // The state right after this block, when a snapshot is due at it.
    std::unique_ptr<ledger::ShardState> snapshot_state;
  };

  size_t release_durable();
  void publish_credit_marks(const PendingBlock& block);
  void forget_confirmed_credits();
  void submit_snapshot(PendingBlock& block);
  size_t send_credits();
  size_t take_credits(size_t budget);
  size_t take_submissions(size_t budget);
  size_t send_tasks();
  size_t take_results(size_t budget);
  void order_settling_results(const ledger::TxView& refused);
  size_t take_engine_txs(size_t budget);
  size_t fire_timers();
  size_t order_startup_txs();
  void rebuild_timer_wheel();
  bool make_room(size_t tx_bytes, const ledger::ClientId* payer = nullptr);
  std::optional<ledger::ClientId> submitter(uint16_t client_slot) const;
  bool try_seal();
  bool answer_at_once(const client::RoutedSubmit& submit, ledger::TxStatus status);
  // Orders one transaction (charged to `payer` when set) and returns its status;
  // `leaf_hash` is its producer's hash_leaf(bytes) when it came with one.
  ledger::TxStatus order(const ledger::TxView& view, std::span<const std::byte> bytes, ReceiptRoute route,
                         const ledger::ClientId* payer = nullptr, const ledger::Hash32* leaf_hash = nullptr);

  ledger::ShardExecutor executor_;
  ShardPortsJoined ports_;
  ShardControl* control_;
  uint32_t chain_index_;
  uint64_t block_ns_max_;
  DrainState* drain_;
  std::string name_;
  std::vector<ReceiptRoute> open_routes_;
  std::vector<std::byte> kept_results_;  // order_settling_results' scratch
  RoutedLeafCheck routed_leaf_check_;
  uint64_t open_first_tx_ns_ = 0;
  std::deque<PendingBlock> pending_;
  // Per destination shard, in order: the credits of durable blocks that the destination
  // has not yet applied durably — what a snapshot must carry (ledger/snapshot.h). The
  // first `sent` are in the credit ring or past it; the rest wait for room in it.
  struct CreditQueue {
    std::deque<ledger::OutboundCredit> credits;
    size_t sent = 0;
  };
  std::vector<CreditQueue> outbound_;
  size_t unsent_count_ = 0;  // over all destinations
  // Tasks of sealed blocks (and pending ones at start) not yet in the scheduler's ring;
  // bounded by the ledger's compute_pending_max. Block by block, each list as the
  // executor sealed it (no per-task move), handed back to it once sent.
  std::deque<std::vector<ledger::OutboundTask>> tasks_out_;
  size_t tasks_out_front_sent_ = 0;  // of tasks_out_.front()
  size_t tasks_out_count_ = 0;       // not yet sent, in all
  SnapshotPolicy snapshots_;
  TimerClock timer_clock_;
  flow::TimerWheel timer_wheel_;
  std::vector<uint64_t> timer_wheel_ids_;  // what the wheel holds, to empty it
  uint64_t timers_generation_seen_ = UINT64_MAX;
  uint64_t timer_next_due_ms_ = UINT64_MAX;
  std::vector<flow::DueTimer> timers_due_;
  std::deque<std::vector<std::byte>> startup_txs_;
  engine::LatencyHistogram ready_to_dispatch_;
  std::optional<ProductTableView> product_table_;
  uint32_t global_shard_ = 0;
  uint64_t products_published_ns_ = 0;
  std::vector<flow::FlowTable::ProductLoad> product_loads_;  // reused: no allocation per publication
  bool snapshot_pending_ = false;  // a pending block holds a captured state
  bool draining_ = false;
  bool quiescent_latched_ = false;
};

}  // namespace keel::node
