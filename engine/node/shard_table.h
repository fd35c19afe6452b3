// engine/node/shard_table.h: the shards' part of the segment — each shard's control
// block (watermarks and counters anyone can read), its ring and arena to the persist
// tile, and the shard-to-shard credit rings of every chain.
//
//   uint64_t table = lay_out_shard_table(segment, options).value();   // engine, before seal
//   ShardTableView view = ShardTableView::join(segment.base(), table).value();
//   ShardControl& control = view.control(global_shard);
//   uint64_t durable = control.durable_height.load(std::memory_order_acquire);
//
// Shards are numbered globally, chain after chain (chain 0's shards first). All of it is
// one segment object ("ledger.shards") whose header lists the offsets, so the segment
// directory stays small however many shards there are.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/ledger/transaction.h"
#include "error/result.h"
#include "shm/segment.h"

namespace keel::node {

inline constexpr char shard_table_object_name[] = "ledger.shards";
inline constexpr uint64_t shard_table_magic = 0x31304c4254484b4bULL;  // "KKHTBL01"
inline constexpr uint32_t shard_table_version = 5;

// Commit latency buckets: 16 exact ones for 0..15 us, then 16 per power of two up to
// 2^27 us (about 2 minutes; the last takes everything above), so a reader can take a p99
// over any interval from two copies. A bucket is at most 1/16 of its lower bound wide, so
// a quantile read as its bucket's upper bound is at most ~6 % high, and a ratio of two
// quantiles (bench balance's loaded / unloaded p99) is not decided by the table's steps
// (at 4 per power of two, two p99s in neighbouring buckets read 20-25 % apart whatever
// their true gap).
inline constexpr uint32_t commit_latency_sub_bucket_bits = 4;
inline constexpr uint32_t commit_latency_sub_buckets = 1u << commit_latency_sub_bucket_bits;
inline constexpr uint32_t commit_latency_bucket_count = commit_latency_sub_buckets * (28 - commit_latency_sub_bucket_bits);
constexpr uint32_t commit_latency_bucket(uint64_t latency_us) {
  constexpr uint32_t bits = commit_latency_sub_bucket_bits, subs = commit_latency_sub_buckets;
  if (latency_us < subs) return uint32_t(latency_us);
  uint32_t width = uint32_t(std::bit_width(latency_us));  // bits + 1 .. for subs and above
  uint32_t bucket = subs + (width - bits - 1) * subs + uint32_t((latency_us >> (width - bits - 1)) & (subs - 1));
  return bucket < commit_latency_bucket_count ? bucket : commit_latency_bucket_count - 1;
}
// The largest latency a bucket holds (its upper bound), in microseconds.
constexpr uint64_t commit_latency_bucket_upper_us(uint32_t bucket) {
  constexpr uint32_t bits = commit_latency_sub_bucket_bits, subs = commit_latency_sub_buckets;
  if (bucket < subs) return bucket;
  uint32_t width = (bucket - subs) / subs + bits + 1, sub = (bucket - subs) % subs;
  return (uint64_t(subs + sub + 1) << (width - bits - 1)) - 1;
}

static_assert(commit_latency_bucket(15) == 15 && commit_latency_bucket_upper_us(15) == 15);
static_assert(commit_latency_bucket(16) == 16 && commit_latency_bucket_upper_us(16) == 16);
static_assert(commit_latency_bucket(33) == 32 && commit_latency_bucket_upper_us(32) == 33);
static_assert(commit_latency_bucket(1000) < commit_latency_bucket_count &&
              commit_latency_bucket_upper_us(commit_latency_bucket(1000)) >= 1000 &&
              commit_latency_bucket_upper_us(commit_latency_bucket(1000)) < 1000 + 1000 / 16);
static_assert(commit_latency_bucket_count % 4 == 0);  // status_format.cc's coarser Prometheus bounds end on the last
static_assert(commit_latency_bucket_upper_us(commit_latency_bucket_count - 1) == (uint64_t(1) << 27) - 1);

// Watermarks and counters of one shard. Written by its shard tile, except
// durable_height, which the persist tile writes.
struct alignas(128) ShardControl {
  std::atomic<uint64_t> sealed_height;     // last block sealed
  std::atomic<uint64_t> durable_height;    // last block fdatasync'ed (persist tile)
  std::atomic<uint64_t> committed_txs;     // transactions in durable blocks, receipts released
  std::atomic<uint64_t> rejected_txs;      // of those, rejected by the state
  std::atomic<uint64_t> refused_txs;       // not ordered (malformed or refused), answered by the gateway
  std::atomic<uint64_t> blocks_backpressured;  // seals delayed by a full persist ring or arena
  std::atomic<uint64_t> commit_latency_us_sum;  // first tx of a block ordered -> block durable
  std::atomic<uint64_t> commit_latency_us_max;
  uint64_t block_ring;   // shard -> persist tile: BlockMessage slots
  uint64_t block_arena;  // the block records themselves
  uint32_t chain;
  uint32_t shard;        // within its chain
  uint32_t shard_count;  // of its chain
  uint32_t first_global_shard;  // of its chain
  uint32_t credit_ring_index_first;  // of its chain, in the table's credit ring array
  // Compute tasks the shard holds without a result as of its last sealed block; never
  // above the ledger's compute_pending_max.
  std::atomic<uint32_t> compute_tasks_pending;
  // Snapshots (the snapshot writer): the newest written, and the oldest still kept — the
  // persist tile may drop log segments holding only blocks at or below it.
  std::atomic<uint64_t> snapshot_height;
  std::atomic<uint64_t> snapshot_oldest_height;
  std::atomic<uint64_t> snapshots_skipped;  // due, but the previous one was still being written
  // CPU slices (the balancer tile). busy_ns: time of the shard tile's polls that did work,
  // added by whichever core runs it; core and weight: where it runs now and its
  // deficit-round-robin weight there; moves: times the balancer moved it.
  std::atomic<uint64_t> busy_ns;
  std::atomic<uint32_t> core_index;
  std::atomic<uint32_t> weight;
  std::atomic<uint64_t> moves;
  std::atomic<uint32_t> tier;  // its chain's tier (0 light, 1 medium, 2 heavy): the schedulers weigh pool credit by it
  // Transactions by commit latency (first tx of its block ordered -> block durable), one
  // count per receipt, like commit_latency_us_sum.
  std::atomic<uint64_t> commit_latency_buckets[commit_latency_bucket_count];
};
static_assert(sizeof(ShardControl) % 128 == 0 && sizeof(ShardControl) <= 4096);

// One block handed from a shard to the persist tile.
struct BlockMessage {
  uint64_t height;
  uint64_t arena_position;
  uint64_t record_bytes;
  uint64_t sealed_ns;   // CLOCK_MONOTONIC, for commit latency
  uint32_t tx_count;
  uint32_t reserved[7];
};
static_assert(sizeof(BlockMessage) == 64);

// One credit travelling between two shards of a chain.
struct CreditMessage {
  std::byte tx[ledger::credit_tx_bytes];
  uint64_t reserved;
};
static_assert(sizeof(CreditMessage) == 64);

struct ShardTableHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t shard_count;        // all chains
  uint64_t controls_offset;    // ShardControl[shard_count]
  uint64_t credit_rings_offset;  // uint64_t[sum over chains of n*n]: ring (origin -> destination), 0 on the diagonal
  // std::atomic<uint64_t>[same shape]: (origin -> destination) is the destination's
  // credit mark for that origin as of its durable height, CreditMark::packed(). The
  // origin drops a credit from its next snapshot once this covers it.
  uint64_t durable_credit_marks_offset;
};

struct ShardTableChain {
  std::string name;
  uint32_t shards = 1;
  uint32_t block_bytes_max = 4 << 20;
};

struct ShardTableOptions {
  std::vector<ShardTableChain> chains;
  uint32_t block_ring_capacity = 256;     // sealed blocks waiting for the persist tile
  uint64_t block_arena_bytes = 16 << 20;  // per shard; must hold at least two largest blocks
  uint32_t credit_ring_capacity = 4096;
  uint64_t persist_doorbell = 0;          // the persist tile's core doorbell (0: none)
  std::vector<uint64_t> shard_doorbells;  // per global shard: its core's doorbell (credit rings)
};

Result<uint64_t> shard_table_footprint(const ShardTableOptions& options);
// Allocates "ledger.shards" in the unsealed segment and builds everything in it.
Result<uint64_t> lay_out_shard_table(shm::Segment& segment, const ShardTableOptions& options);

// Process-local view of the table.
class ShardTableView {
 public:
  static Result<ShardTableView> join(std::byte* segment_base, uint64_t offset);
  uint32_t shard_count() const { return header_->shard_count; }
  ShardControl& control(uint32_t global_shard) const;
  // Offset of the credit ring from one shard of a chain to another (both global numbers).
  uint64_t credit_ring(uint32_t origin_global, uint32_t destination_global) const;
  // The destination's durable credit mark for credits from origin (see the header).
  std::atomic<uint64_t>& durable_credit_mark(uint32_t origin_global, uint32_t destination_global) const;
  std::byte* base() const { return base_; }

 private:
  std::byte* base_ = nullptr;
  ShardTableHeader* header_ = nullptr;
};

}  // namespace keel::node
