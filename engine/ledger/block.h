// engine/ledger/block.h: a shard's block as it is hashed, logged and verified.
//
//   Result<BlockView> block = parse_block(record_payload);    // header + body, checked
//   Hash32 hash = block_hash(block->header);                   // what the next block chains to
//   for_each_transaction(block->body, [&](std::span<const std::byte> tx) { ... });
//
// A block record is its 128-byte header followed by its body: the transactions, each
// starting with its own length (TxHeader::length), back to back. Receipts are not
// stored: replaying the block reproduces them, and every status with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "engine/ledger/hash.h"
#include "error/result.h"

namespace keel::ledger {

inline constexpr uint32_t block_magic = 0x314b424b;  // "KBK1"
// 3: a compute_request past the backlog bound is refused unordered (shard.h); 2: the
// wide Merkle tree (merkle.h); 1: RFC 6962's binary one. All are read and replayed.
inline constexpr uint16_t block_format_version = 3;
inline constexpr uint16_t block_format_version_oldest_readable = 1;

struct BlockHeader {
  uint32_t magic = block_magic;
  uint16_t version = block_format_version;
  uint16_t reserved0 = 0;
  uint32_t shard = 0;
  uint32_t tx_count = 0;
  uint64_t chain_id = 0;    // chain_id_of(chain name)
  uint64_t height = 0;      // 1 for a shard's first block
  uint64_t time_ns = 0;     // wall clock (CLOCK_REALTIME) when sealed
  uint64_t body_bytes = 0;
  Hash32 previous_hash;     // zero for height 1
  Hash32 merkle_root;       // block_merkle_root(version, the transactions' leaf hashes)
  // The bound on pending compute tasks the block was executed under
  // (BlockLimits::compute_pending_max). Whether a compute_request is refused as
  // compute_backlog_full depends on it (formats 1 and 2 ordered the refusal; from format
  // 3 a request in the block was accepted under it), so replay takes it from here rather
  // than from today's config. Blocks written before compute tasks hold
  // 0 here (the bytes were reserved and zero), which is right: they hold no requests.
  uint32_t compute_pending_max = 0;
  uint8_t reserved1[12] = {};
};
static_assert(sizeof(BlockHeader) == 128);
static_assert(offsetof(BlockHeader, chain_id) == 16);
static_assert(offsetof(BlockHeader, previous_hash) == 48);
static_assert(offsetof(BlockHeader, merkle_root) == 80);
static_assert(offsetof(BlockHeader, compute_pending_max) == 112);

struct BlockView {
  BlockHeader header;
  std::span<const std::byte> body;
};

// The first 8 bytes of SHA-256(name), little-endian: a chain's id in every header.
uint64_t chain_id_of(std::string_view chain_name);

// SHA-256 of the header's 128 bytes.
Hash32 block_hash(const BlockHeader& header);

// Checks magic, version, sizes and that the body splits exactly into tx_count
// length-framed transactions. The error says what is wrong (the caller adds the place).
Result<BlockView> parse_block(std::span<const std::byte> payload);

// Calls `visit(tx_bytes)` for each transaction of a body that parse_block accepted.
template <class Visit>
void for_each_transaction(std::span<const std::byte> body, Visit&& visit) {
  size_t offset = 0;
  while (offset < body.size()) {
    uint32_t length;
    std::memcpy(&length, body.data() + offset, sizeof length);
    visit(body.subspan(offset, length));
    offset += length;
  }
}

}  // namespace keel::ledger
