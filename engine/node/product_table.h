// engine/node/product_table.h: each shard's product queues as monitors see them — per
// product, the flow jobs queued behind its running limit and the jobs running. The flow
// table holding them lives inside the shard tile (engine/flow/flow_table.h); the tile
// copies these figures here at most every product_publish_interval_ms, so `keel status`,
// `keel monitor` and /metrics can read them from outside the process.
//
//   uint64_t table = lay_out_product_table(segment, shard_count).value();    // engine, before seal
//   ProductTableView view = ProductTableView::join(segment.base(), table).value();
//   view.publish(global_shard, loads, now_ns);                 // the shard tile
//   std::vector<ProductStatus> products = view.read(global_shard);  // anyone: a consistent copy
//
// One segment object ("ledger.products"), one area per shard (global numbering, as in
// shard_table.h) bounded by the ledger's products_max (ledger::shard_flow_limits). An
// area is written by its shard tile only (whichever core runs it) behind a seqlock, so
// a reader never sees a half-written list and the writer never waits.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/flow/flow_table.h"
#include "error/result.h"
#include "shm/segment.h"

namespace keel::node {

inline constexpr char product_table_object_name[] = "ledger.products";
inline constexpr uint64_t product_table_magic = 0x31304c4254504b4bULL;  // "KKPTBL01"
inline constexpr uint32_t product_table_version = 1;
inline constexpr uint32_t product_status_name_bytes = 40;  // flow names are 32 chars at most, NUL-terminated
inline constexpr uint64_t product_publish_interval_ms = 100;

// One product's queue on one shard.
struct ProductStatusEntry {
  char name[product_status_name_bytes];
  uint32_t priority;
  uint32_t running_max;
  uint64_t jobs_queued;   // ready and not dispatched (a split step counts each sub-job)
  uint32_t jobs_running;  // dispatched and not answered
  uint32_t reserved;
};
static_assert(sizeof(ProductStatusEntry) == 64);

struct alignas(128) ShardProductArea {
  std::atomic<uint64_t> sequence;   // seqlock: odd while the shard tile writes
  uint64_t published_ns;            // CLOCK_MONOTONIC_COARSE of the last publication (0: none yet)
  uint32_t product_count;           // entries in use, at most the table's products_max
  uint32_t reserved;
  // ProductStatusEntry[products_max] follow, right after the area's 128 bytes.
};
static_assert(sizeof(ShardProductArea) == 128);
static_assert(offsetof(ShardProductArea, published_ns) == 8 && offsetof(ShardProductArea, product_count) == 16);

struct ProductTableHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t shard_count;
  uint32_t products_max;       // entries per shard
  uint32_t reserved;
  uint64_t areas_offset;       // from the segment base: the first shard's area
  uint64_t area_bytes;         // one shard's area with its entries
};
static_assert(sizeof(ProductTableHeader) == 40);

// A product's figures as read back.
struct ProductStatus {
  std::string name;
  uint32_t priority = 0, running_max = 0;
  uint64_t jobs_queued = 0;
  uint32_t jobs_running = 0;
};

// Bytes the table needs; rejects shard_count 0 or products_max 0.
Result<uint64_t> product_table_footprint(uint32_t shard_count, uint32_t products_max);
// Allocates "ledger.products" in the unsealed segment; every area starts empty.
Result<uint64_t> lay_out_product_table(shm::Segment& segment, uint32_t shard_count, uint32_t products_max);

class ProductTableView {
 public:
  ProductTableView() = default;
  // Checks magic and version; the error names what is wrong.
  static Result<ProductTableView> join(std::byte* segment_base, uint64_t table_offset);
  uint32_t shard_count() const { return header_->shard_count; }
  uint32_t products_max() const { return header_->products_max; }
  // The shard tile (one writer per shard): replaces the shard's list. Products past
  // products_max are left out (the ledger never holds more).
  void publish(uint32_t global_shard, std::span<const flow::FlowTable::ProductLoad> loads, uint64_t now_ns) const;
  // Anyone: a consistent copy of one shard's list, retried while a write is under way;
  // published_ns (optional) gets when it was written (0: never).
  std::vector<ProductStatus> read(uint32_t global_shard, uint64_t* published_ns = nullptr) const;

 private:
  ShardProductArea& area(uint32_t global_shard) const;
  ProductStatusEntry* entries(ShardProductArea& area) const;

  std::byte* base_ = nullptr;
  ProductTableHeader* header_ = nullptr;
};

}  // namespace keel::node
