// engine/ledger/shard.h: one shard's deterministic executor — orders transactions into
// blocks, applies them to the shard's state, seals blocks and replays them.
//
//   ShardExecutor shard({"payments", /*shard=*/0, /*shard_count=*/2}, BlockLimits{});
//   TxView view;
//   if (check_transaction(bytes, TxOrigin::client, &view) == TxStatus::applied &&
//       shard.has_room(bytes.size()))
//     TxStatus status = shard.execute(view, bytes);      // ordered in the open block
//   SealedBlock block = shard.seal(wall_clock_ns);       // header, hash, record, receipts
//   persist(block.record); ... once durable: send block.receipts, then block.credits
//
// Determinism: the state after a block depends only on the state before it and the
// block's bytes (the seal time is an input, stored in the header). `replay` runs a logged
// block through the very same `execute` and `seal`, then checks it produced the logged
// header, so replay, recovery and `keel verify` cannot drift from live execution.
//
// Cross-shard transfers: the origin debits and emits a credit for the destination shard
// (SealedBlock::credits); the engine sends it only once the debit's block is durable, so
// a crash can never leave a credit without its debit. The destination applies each
// credit once (CreditMark), or refunds it when the account is missing.
//
// Compute tasks: a compute_request executed at (height, index) becomes a pending task
// in the state under task_mark = CreditMark::pack(height, index), and an OutboundTask in
// SealedBlock::tasks; past BlockLimits::compute_pending_max pending tasks it is refused
// as compute_backlog_full instead. From block format 3 on that refusal is unordered, as
// no_credit is: in no block, no hash, no log bytes, and its producer is answered at once
// instead of after a group commit (a producer probing the bound paid all of that for
// every refusal). Format 1 and 2 blocks hold ordered refusals, and replay keeps them. The engine
// answers with a compute_result (TxOrigin::engine) on the same shard:
//
//   for (const OutboundTask& task : block.tasks) scheduler.dispatch(shard, task);  // at seal
//   ... a pool ran it:
//   std::vector<std::byte> result = encode_compute_result(task.task_mark, shard, attempt,
//                                                         ComputeOutcome::succeeded, 0, output);
//   check_transaction(result, TxOrigin::engine, &view);
//   TxStatus status = shard.execute(view, result);   // applied once; then duplicate_result
//   if (!execute_ordered(status)) drop it: it is in no block and nobody awaits a receipt
//
// The first result ordered for a pending task settles it (whatever its attempt: stale
// attempts are the scheduler's to drop, the ledger only guarantees one effect); any later
// one is duplicate_result and unknown marks are unknown_task, neither ordered. The
// scheduler answers in compute_results (many tasks' results in one transaction): ordered
// only when every entry settles its task as the batch begins (else the first entry's
// reason, not ordered), its entries then apply in order as single results would (a flow
// job's has no effect once an earlier entry ended its flow); the tile orders the part
// that settles (settling_results()) in place of a refused batch.
//
// Access credits (a chain whose policy requires them): a client's submission is ordered
// through execute_charged, which refuses it as no_credit (unordered, in no block) unless
// the client's balance on this shard, less what the open block already charged it, covers
// credits_per_tx; otherwise it is ordered and its cost added to the client's charge for
// the open block. seal() then appends one credit_spend per charged client (ascending
// client id) at the end of the block, which debits the charges: the log holds every debit,
// so replay applies them like any transaction and never charges anything itself.
//
//   ShardExecutor shard(identity, limits, AccessPolicy{.credits_required = true, .credits_per_tx = 2});
//   if (shard.has_room(bytes.size(), &client))
//     TxStatus status = shard.execute_charged(view, bytes, client);   // no_credit: in no block
//   SealedBlock block = shard.seal(now);   // ... its last transactions: the credit_spends
//
// block_txs_max and block_bytes_max count the spends: a block keeps room for one spend per
// client it has charged (has_room), so a sealed block never exceeds its limits and replay
// (which checks them) accepts it.
//
// Tasks may be dispatched as soon as their block is sealed, before it is durable (unlike
// credits, which go to another shard's log): a task's only effect on the ledger is its
// compute_result, which this shard orders into a later block of its own log, and a log
// becomes durable in order, so a result can never be durable without its request. If the
// engine dies first, request and result vanish together; the task may have run, which
// at-least-once allows. But the mark of a lost block can then be issued again to another
// request, so a result must never cross an engine restart: the scheduler's leases die
// with the engine, and after recovery the engine dispatches pending_task_list() afresh
// (tasks whose result is not in the durable log).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "engine/ledger/block.h"
#include "engine/ledger/merkle.h"
#include "engine/ledger/state.h"
#include "engine/ledger/transaction.h"
#include "error/result.h"

namespace keel::ledger {

struct ShardIdentity {
  std::string chain;
  uint32_t shard = 0;
  uint32_t shard_count = 1;
};

// The bounds a shard executes under.
struct BlockLimits {
  uint32_t block_txs_max = 8192;
  uint32_t block_bytes_max = 4 << 20;  // body bytes
  // The most compute tasks pending on the shard at once; a compute_request beyond it is
  // compute_backlog_full. It bounds the task table: at most compute_pending_max times
  // about compute_input_bytes_max + 150 bytes, 67 MB at the default if every input were
  // 16 KiB (and a snapshot copies the table). 4,096 pending tasks cover a shard issuing
  // 500,000 tasks/s at 8 ms per task. Each block's header records the value it was
  // executed under and replay uses that, so the config may change it between runs.
  uint32_t compute_pending_max = 4096;
};

// Whether a chain's client submissions cost access credits, and how many each. Not part
// of replay: what was charged is in the log as credit_spends.
struct AccessPolicy {
  bool credits_required = false;
  uint64_t credits_per_tx = 1;  // 1..1,000,000 (the config's bound)
};

// A compute task for the scheduler, issued by a compute_request of the block that
// carries it. Owns its bytes: it must outlive both the block's record (the shard tile
// hands that to the persist arena) and the task's entry in the state (a result may
// settle the task while its block still waits to be durable).
struct OutboundTask {
  uint64_t task_mark = 0;  // CreditMark::pack(height, index), or flow_task_mark(job mark)
  uint64_t subject = 0;    // a flow job's: its flow id
  std::string compute_type;
  std::vector<std::byte> input;
  // A flow job's step's lease and retries (0: the pool's own).
  uint32_t timeout_ms = 0;
  uint32_t retries_max = 0;
  uint32_t backoff_ms = 0;
  // Metrics only: a flow job's step's ready time (flow::JobDispatch::ready_ns), 0 if unknown.
  uint64_t ready_ns = 0;
};

// Flow jobs' task marks: the table's job mark with the top bit set, apart from every
// compute_request's (height < 2^47).
inline constexpr uint64_t flow_task_bit = uint64_t(1) << 63;
inline uint64_t flow_task_mark(uint64_t job_mark) { return flow_task_bit | job_mark; }
inline bool is_flow_task_mark(uint64_t task_mark) { return (task_mark & flow_task_bit) != 0; }

// A credit to deliver to another shard of the chain once its block is durable.
struct OutboundCredit {
  uint32_t destination_shard = 0;
  std::array<std::byte, credit_tx_bytes> tx{};
  // The credit's body, read out of tx.
  CreditBody body() const {
    CreditBody body;
    std::memcpy(&body, tx.data() + sizeof(TxHeader), sizeof body);
    return body;
  }
};

// A receipt as the engine returns it: the transaction's hash, the block that holds it
// (0 when it was malformed and never ordered) and its status.
struct Receipt {
  Hash32 tx_hash;
  uint64_t height = 0;
  TxStatus status = TxStatus::applied;
};

struct SealedBlock {
  BlockHeader header;
  Hash32 hash;
  std::vector<std::byte> record;        // header then body: what the log stores
  std::vector<Receipt> receipts;        // in block order
  std::vector<OutboundCredit> credits;  // in block order
  std::vector<OutboundTask> tasks;      // in block order: the compute_requests it accepted
};

// False for the statuses execute() returns without ordering the transaction (it is in no
// block and gets no receipt from one): wrong_shard, duplicate_credit, duplicate_result,
// unknown_task, timer_stale, unknown_timer, no_credit, and from block format 3 on
// compute_backlog_full. True for every other status execute() returns into a block of
// that format.
bool execute_ordered(TxStatus status, uint16_t block_version = block_format_version);

class ShardExecutor {
 public:
  // Where the last argument part a flow job's input took ended, per (flow, argument). A
  // split step's sub-jobs are built in order, so each part is found from the one before
  // instead of from the argument's start (a 10,000-way split would otherwise walk 50
  // million part headers), even when several flows' sub-jobs are built interleaved. Flow
  // ids are never reused by a shard, so (flow, argument) names one value; its address and
  // size guard against a restore() in between. Not state: it only saves time.
  struct PartCursor {
    uint64_t flow = 0;
    uint16_t argument = 0;
    const char* value = nullptr;
    size_t size = 0;
    uint32_t next_part = 0;
    size_t next_offset = 0;
  };

  ShardExecutor(ShardIdentity identity, BlockLimits limits, AccessPolicy access = {});

  const ShardIdentity& identity() const { return identity_; }
  const AccessPolicy& access() const { return access_; }
  const ShardState& state() const { return state_; }
  uint64_t chain_id() const { return chain_id_; }
  // Replaces the state with a snapshot's (before any block is opened).
  void restore(ShardState state);
  // Metrics only (flow_table.h's set_metrics_clock): flow jobs issued from now on carry
  // the time their step became ready. Set again after restore().
  void set_flow_metrics_clock(uint64_t (*now_ns)()) { state_.flows.set_metrics_clock(now_ns); }

  // True if the open block can take one more transaction of `tx_bytes` besides the spends
  // it owes; with `payer` on a chain that requires credits, also the payer's spend when the
  // block has not charged it yet.
  bool has_room(size_t tx_bytes, const ClientId* payer = nullptr) const;
  uint32_t open_tx_count() const { return uint32_t(open_receipts_.size()); }
  // The body the open block will have once sealed: its credit_spends included.
  uint64_t open_body_bytes() const { return body_.size() + open_charges_.size() * client_credit_tx_bytes; }
  // Credits emitted by the open block (they leave with it when it is sealed).
  std::span<const OutboundCredit> open_credits() const { return open_credits_; }
  // Tasks issued by the open block (they leave with it when it is sealed).
  std::span<const OutboundTask> open_tasks() const { return std::span(open_tasks_).first(open_task_count_); }
  // A sealed block's task list, every task sent: kept as a later open block's, so a block's
  // tasks are written over tasks already there (their inputs' buffers too) rather than
  // into a fresh vector and a fresh buffer each.
  void reuse_task_list(std::vector<OutboundTask> list);
  // Of a checked compute_results, the entries that would settle their task now, as a
  // compute_results of their own written into `out`: what the tile orders in place of a
  // batch execute() refused because some entry settles nothing. False (and `out` left
  // unspecified) when no entry settles anything.
  bool settling_results(const TxView& results, std::vector<std::byte>& out) const;

  // Every pending task in mark order, as the engine dispatches them again after
  // recovery (state().pending_tasks, copied into OutboundTasks).
  std::vector<OutboundTask> pending_task_list() const;

  // Orders one well-formed transaction (check_transaction passed) into the open block
  // and applies it. Returns its status; wrong_shard, duplicate_credit, duplicate_result
  // and unknown_task are not ordered (execute_ordered). Assumes has_room(bytes.size())
  // for anything that will be ordered. `leaf_hash`, when given, is hash_leaf(bytes) as
  // the transaction's producer computed it on another core (client/protocol.h): the
  // executor takes it instead of hashing. Replay never passes one.
  TxStatus execute(const TxView& view, std::span<const std::byte> bytes, const Hash32* leaf_hash = nullptr);

  // Orders a client's submission from `payer` (a valid client id) as execute() does, first
  // charging it when the policy requires credits (a credit_grant is free): no_credit,
  // unordered, when the payer's balance less its charge in the open block is below
  // credits_per_tx. A transaction that is ordered pays, whatever its status. Assumes
  // has_room(bytes.size(), &payer).
  TxStatus execute_charged(const TxView& view, std::span<const std::byte> bytes, const ClientId& payer,
                           const Hash32* leaf_hash = nullptr);
  // What the open block has charged `payer` so far (0 when nothing).
  uint64_t open_charge(const ClientId& payer) const;
  // The balance of `client` on this shard (0 without an account).
  uint64_t credit_balance(const ClientId& client) const;

  // Seals the open block (at least one transaction) and starts the next one; first
  // appends the open block's credit_spends (see above). With `record_out` (exactly
  // sizeof(BlockHeader) + open_body_bytes() bytes, e.g. the persist arena's block) the
  // record is written there and the returned block's `record` is left empty: one copy of
  // the body less on the shard's core.
  SealedBlock seal(uint64_t time_ns, std::span<std::byte> record_out = {});

  // Re-executes a logged block record: checks chain, shard, height and previous hash,
  // executes its transactions (under the compute_pending_max its header records), and
  // checks the result matches the logged header. The error names chain, shard and
  // height. On success the block is applied to the state; the returned block's credits
  // and tasks are those it issued (recovery dispatches pending_task_list() instead, once
  // the whole log is replayed). After an error the executor is left mid-block and must
  // not be used again (recovery and verify stop at the first damaged block).
  Result<SealedBlock> replay(std::span<const std::byte> record);

 private:
  TxStatus apply(const TxView& view, uint32_t index);
  TxStatus apply_create_account(const CreateAccountBody& body);
  TxStatus apply_transfer(const TransferBody& body, uint32_t index);
  TxStatus apply_credit(const TxView& view, uint32_t index);
  TxStatus apply_compute_request(const TxView& view, uint32_t index);
  TxStatus apply_compute_result(const ComputeResultBody& body, std::span<const std::byte> output);
  TxStatus apply_flow_deploy(const TxView& view);
  TxStatus apply_flow_start(const TxView& view);
  TxStatus apply_flow_control(const TxView& view);
  TxStatus apply_product_set(const TxView& view);
  TxStatus apply_credit_grant(const ClientCreditBody& grant);
  void append_credit_spends();
  TxStatus check_timer_fire(const TimerFireBody& fire) const;
  TxStatus apply_timer_fire(const TimerFireBody& fire);
  // Turns the flow table's dispatches into open tasks (their inputs built from the
  // flow's arguments and kept outputs); a job whose input cannot be built fails at once.
  void issue_flow_jobs(std::vector<flow::JobDispatch>& jobs);
  OutboundTask flow_job_task(const flow::JobDispatch& job, bool* input_ok) const;
  // The open block's next task, to be written whole: a spent one kept from an earlier
  // block, or a new one.
  OutboundTask& next_open_task();
  TxStatus check_result_mark(uint64_t task_mark) const;
  TxStatus check_results_marks(const TxView& view) const;
  void emit_credit(uint32_t destination, const CreditBody& body, bool refund);
  std::string place(uint64_t height) const;

  ShardIdentity identity_;
  BlockLimits limits_;
  AccessPolicy access_;
  uint64_t chain_id_;
  ShardState state_;
  // The open block, reused from block to block.
  std::vector<std::byte> body_;
  std::vector<Hash32> leaf_hashes_;
  std::vector<Receipt> open_receipts_;
  std::vector<OutboundCredit> open_credits_;
  // The open block's tasks are the first open_task_count_; the rest are spent tasks of an
  // earlier block, kept to be written over (next_open_task).
  std::vector<OutboundTask> open_tasks_;
  size_t open_task_count_ = 0;
  std::vector<std::vector<OutboundTask>> spare_task_lists_;  // spent; see reuse_task_list
  // What the open block charged each client (execute_charged); its spends at seal.
  std::map<ClientId, uint64_t> open_charges_;
  // The compute backlog bound of the open block: limits_.compute_pending_max live, the
  // logged header's during replay.
  uint32_t open_compute_pending_max_;
  // The open block's format version: the current one live, the logged header's during
  // replay (its Merkle root follows it).
  uint16_t open_block_version_ = block_format_version;
  std::vector<Hash32> merkle_scratch_;
  // flow_job_task is const: the cursors only save time. At most part_cursors_max, then
  // forgotten all at once (flows that ended leave theirs behind until then).
  static constexpr size_t part_cursors_max = 256;
  mutable std::map<std::pair<uint64_t, uint16_t>, PartCursor> part_cursors_;
};

}  // namespace keel::ledger
