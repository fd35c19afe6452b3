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
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
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

struct BlockLimits {
  uint32_t block_txs_max = 8192;
  uint32_t block_bytes_max = 4 << 20;  // body bytes
};

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
};

class ShardExecutor {
 public:
  ShardExecutor(ShardIdentity identity, BlockLimits limits);

  const ShardIdentity& identity() const { return identity_; }
  const ShardState& state() const { return state_; }
  uint64_t chain_id() const { return chain_id_; }
  // Replaces the state with a snapshot's (before any block is opened).
  void restore(ShardState state);

  // True if the open block can take one more transaction of `tx_bytes`.
  bool has_room(size_t tx_bytes) const;
  uint32_t open_tx_count() const { return uint32_t(open_receipts_.size()); }
  uint64_t open_body_bytes() const { return body_.size(); }
  // Credits emitted by the open block (they leave with it when it is sealed).
  std::span<const OutboundCredit> open_credits() const { return open_credits_; }

  // Orders one well-formed transaction (check_transaction passed) into the open block
  // and applies it. Returns its status; duplicate_credit and wrong_shard are not ordered.
  // Assumes has_room(bytes.size()) for anything that will be ordered.
  TxStatus execute(const TxView& view, std::span<const std::byte> bytes);

  // Seals the open block (at least one transaction) and starts the next one.
  SealedBlock seal(uint64_t time_ns);

  // Re-executes a logged block record: checks chain, shard, height and previous hash,
  // executes its transactions, and checks the result matches the logged header. The
  // error names chain, shard and height. On success the block is applied to the state;
  // after an error the executor is left mid-block and must not be used again (recovery
  // and verify stop at the first damaged block).
  Result<SealedBlock> replay(std::span<const std::byte> record);

 private:
  TxStatus apply(const TxView& view, uint32_t index);
  TxStatus apply_create_account(const CreateAccountBody& body);
  TxStatus apply_transfer(const TransferBody& body, uint32_t index);
  TxStatus apply_credit(const TxView& view, uint32_t index);
  void emit_credit(uint32_t destination, const CreditBody& body, bool refund);
  std::string place(uint64_t height) const;

  ShardIdentity identity_;
  BlockLimits limits_;
  uint64_t chain_id_;
  ShardState state_;
  // The open block, reused from block to block.
  std::vector<std::byte> body_;
  std::vector<Hash32> leaf_hashes_;
  std::vector<Receipt> open_receipts_;
  std::vector<OutboundCredit> open_credits_;
  std::vector<Hash32> merkle_scratch_;
};

}  // namespace keel::ledger
