// engine/ledger/state.h: what one shard of a chain holds — accounts, keys and values,
// which cross-shard credits it has applied, and its pending compute tasks — and its
// canonical serialization.
//
//   ShardState state(/*shard=*/0, /*shard_count=*/4);
//   state.accounts[42] = Account{100, 0};
//   std::vector<std::byte> bytes = state.serialize();          // sorted: the same state,
//   Result<ShardState> back = ShardState::deserialize(bytes);  // the same bytes
//
// The serialization is canonical (accounts, keys and tasks sorted, fixed-width
// little-endian integers), so two shards with equal state produce equal bytes and equal
// digests: this is what snapshots store and what `keel verify` compares after replay.
//
// Format version 4 (this keel writes it): version 3's, then the access credit section —
// the account count (u64), then per account, by ascending client id (bytewise over the
// padded form): the id (32 bytes, NUL-padded), the balance (u64, > 0). Version 3: version
// 2's, then the flow section (FlowTable's serialize). Versions 1 to 3 are still read, as a
// state without credit accounts. Format version 2: version 1's fields, then the compute section —
// tasks_issued, tasks_succeeded, tasks_failed, task_mark_max (u64 each), the pending task
// count (u64) and per task, by ascending mark: mark u64, subject u64, compute type bytes
// u16, reserved u16 (0), input bytes u32, the name, the input. Version 1 (before compute
// tasks) is still read, as a state with no tasks.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/flow/flow_table.h"
#include "engine/ledger/hash.h"
#include "engine/ledger/pending_tasks.h"
#include "engine/ledger/transaction.h"
#include "error/result.h"

namespace keel::ledger {

struct Account {
  int64_t balance = 0;
  uint32_t flags = 0;  // account_flag_allow_overdraft
};

// The last credit applied from one origin shard: credits from an origin arrive in
// (height, index) order, so anything at or below this mark is a repeat.
struct CreditMark {
  uint64_t height = 0;
  uint32_t index = 0;
  bool covers(uint64_t origin_height, uint32_t origin_index) const {
    return origin_height < height || (origin_height == height && origin_index <= index);
  }
  // One 64-bit number that orders positions as covers() does, so a mark can be published
  // to another thread in one atomic store: pack(h, i) <= packed() iff covers(h, i). Holds
  // because a block has at most block_txs_limit transactions (index < 2^16) and heights
  // stay below 2^48.
  static uint64_t pack(uint64_t origin_height, uint32_t origin_index) {
    return origin_height << 16 | origin_index;
  }
  uint64_t packed() const { return pack(height, index); }
};

// The most transactions a block can hold (the config's limit): credit positions pack in
// 16 bits (CreditMark::pack).
inline constexpr uint32_t block_txs_limit = 65536;

// The bounds of a shard's flow table. Fixed, not configured: they decide which starts are
// refused (flows_full) and which finished flows' keys are forgotten, so replay must use
// the same ones. A live flow costs about 300 bytes plus its arguments (at most 16 KiB)
// and kept outputs (at most 16 KiB a step), a kept finished one about 100 bytes plus its
// key; at most 16,384 flow jobs run at once (each task holds its input, at most 16 KiB).
inline constexpr flow::FlowTableLimits shard_flow_limits{
    .live_flows_max = 1 << 18, .finished_kept_max = 1 << 18, .output_bytes_max = compute_input_bytes_max,
    .running_jobs_max = 16384, .products_max = 256, .plans_max = 1024};

// The most access credit accounts one shard holds: a grant to a new client past it is
// credit_accounts_full. Fixed, not configured, since replay must refuse the same grants. An
// account costs about 100 bytes; one whose balance reaches zero is forgotten (zero and
// absent mean the same), so the bound counts clients holding credit, not every one ever seen.
inline constexpr uint32_t credit_accounts_max = 4096;

struct ShardState {
  ShardState() = default;
  ShardState(uint32_t shard, uint32_t shard_count)
      : shard(shard), shard_count(shard_count), credit_marks(shard_count) {}

  uint32_t shard = 0;
  uint32_t shard_count = 1;
  uint64_t height = 0;          // of the last block executed (0 before the first)
  Hash32 last_block_hash;       // zero before the first block
  std::unordered_map<uint64_t, Account> accounts;
  std::unordered_map<std::string, std::string> values;
  std::vector<CreditMark> credit_marks;  // one per origin shard
  // Refunds that could not land (the refunded account would overflow): kept, so the
  // chain's total still adds up, and visible to an operator.
  int64_t suspense_balance = 0;
  // The opening balances of every account created here: the money that entered the chain
  // through this shard. A chain's balances plus its credits in flight always equal the sum
  // of this over its shards (`keel verify` checks it), and a snapshot carries it, so the
  // check holds after old log segments are dropped.
  int64_t opened_total = 0;

  // Compute tasks, keyed by task mark: CreditMark::pack(height, index) of the request in
  // this shard's log, so marks are issued in ascending order and never reused. A hash
  // table (pending_tasks.h): every request inserts and every result looks up and erases;
  // whatever needs them in mark order (the snapshot's canonical bytes, the list recovery
  // dispatches) uses pending_task_marks().
  PendingTaskTable pending_tasks;
  // Every task ever issued here ends in exactly one of: succeeded, failed, still pending
  // (tasks_issued == tasks_succeeded + tasks_failed + pending_tasks.size()).
  uint64_t tasks_issued = 0;
  uint64_t tasks_succeeded = 0;  // results with outcome succeeded
  uint64_t tasks_failed = 0;     // results with any other outcome
  // The largest mark ever issued (0 before the first): a result for a mark at or below it
  // that is not pending is a duplicate; one above it is for a task never issued.
  uint64_t task_mark_max = 0;

  // Access credits held on this shard, by client id; every balance is above zero.
  std::map<ClientId, uint64_t> credit_accounts;

  // Business-process contracts deployed here and the flows and jobs this shard owns.
  flow::FlowTable flows{shard_flow_limits};

  // Sum of all balances on this shard, suspense included.
  int64_t total_balance() const;
  // The pending tasks' marks, ascending (the order they were issued in).
  std::vector<uint64_t> pending_task_marks() const;

  // Canonical bytes (see above).
  std::vector<std::byte> serialize() const;
  // SHA-256 of serialize().
  Hash32 digest() const;
  // Parses serialize()'s bytes (format version 1 to 4) and checks them: sizes against the
  // bytes left, tasks in strictly ascending marks at or below task_mark_max and from
  // blocks at or below the state's height, compute type names' length and characters,
  // input sizes, reserved fields, that the task counters add up, the flow table, and credit
  // accounts (at most credit_accounts_max, ids valid and strictly ascending, balances above
  // zero). An error names the offset and what was wrong; a newer format's names its version.
  static Result<ShardState> deserialize(std::span<const std::byte> bytes);
};

}  // namespace keel::ledger
