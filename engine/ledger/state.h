// engine/ledger/state.h: what one shard of a chain holds — accounts, keys and values,
// and which cross-shard credits it has applied — and its canonical serialization.
//
//   ShardState state(/*shard=*/0, /*shard_count=*/4);
//   state.accounts[42] = Account{100, 0};
//   std::vector<std::byte> bytes = state.serialize();          // sorted: the same state,
//   Result<ShardState> back = ShardState::deserialize(bytes);  // the same bytes
//
// The serialization is canonical (accounts and keys sorted, fixed-width little-endian
// integers), so two shards with equal state produce equal bytes and equal digests: this
// is what snapshots store and what `keel verify` compares after replay.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/ledger/hash.h"
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

  // Sum of all balances on this shard, suspense included.
  int64_t total_balance() const;

  // Canonical bytes (see above).
  std::vector<std::byte> serialize() const;
  // SHA-256 of serialize().
  Hash32 digest() const;
  // Parses serialize()'s bytes; an error names the offset and what was wrong.
  static Result<ShardState> deserialize(std::span<const std::byte> bytes);
};

}  // namespace keel::ledger
