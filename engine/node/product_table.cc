#include "engine/node/product_table.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>

namespace keel::node {

namespace {

constexpr uint64_t alignment = 128;

uint64_t align_up(uint64_t value) { return (value + alignment - 1) & ~(alignment - 1); }

uint64_t area_bytes(uint32_t products_max) {
  return align_up(sizeof(ShardProductArea) + uint64_t(products_max) * sizeof(ProductStatusEntry));
}

// The seqlock's payload is plain memory another thread may be writing, so both sides go
// through relaxed atomic word accesses (no data race in the C++ sense); the sequence
// stores and fences order them.
void store_words(void* to, const void* from, size_t bytes) {
  assert(bytes % 8 == 0);
  auto* out = static_cast<uint64_t*>(to);
  const auto* in = static_cast<const uint64_t*>(from);
  for (size_t index = 0; index < bytes / 8; ++index)
    std::atomic_ref<uint64_t>(out[index]).store(in[index], std::memory_order_relaxed);
}

void load_words(void* to, void* from, size_t bytes) {
  assert(bytes % 8 == 0);
  auto* out = static_cast<uint64_t*>(to);
  auto* in = static_cast<uint64_t*>(from);
  for (size_t index = 0; index < bytes / 8; ++index)
    out[index] = std::atomic_ref<uint64_t>(in[index]).load(std::memory_order_relaxed);
}

}  // namespace

Result<uint64_t> product_table_footprint(uint32_t shard_count, uint32_t products_max) {
  if (shard_count == 0) return make_error("ledger.products", "needs at least one shard");
  if (products_max == 0) return make_error("ledger.products", "needs room for at least one product per shard");
  return align_up(sizeof(ProductTableHeader)) + uint64_t(shard_count) * area_bytes(products_max);
}

Result<uint64_t> lay_out_product_table(shm::Segment& segment, uint32_t shard_count, uint32_t products_max) {
  Result<uint64_t> bytes = product_table_footprint(shard_count, products_max);
  if (!bytes) return bytes.error();
  Result<uint64_t> table =
      segment.allocate(product_table_object_name, shm::SegmentObjectKind::counters, *bytes, alignment);
  if (!table) return table.error();
  std::byte* base = segment.base();
  auto* header = new (base + *table) ProductTableHeader{};
  header->magic = product_table_magic;
  header->version = product_table_version;
  header->shard_count = shard_count;
  header->products_max = products_max;
  header->areas_offset = *table + align_up(sizeof(ProductTableHeader));
  header->area_bytes = area_bytes(products_max);
  for (uint32_t shard = 0; shard < shard_count; ++shard) {
    std::byte* area = base + header->areas_offset + uint64_t(shard) * header->area_bytes;
    new (area) ShardProductArea{};
    new (area + sizeof(ShardProductArea)) ProductStatusEntry[products_max]{};
  }
  return *table;
}

Result<ProductTableView> ProductTableView::join(std::byte* segment_base, uint64_t table_offset) {
  auto* header = reinterpret_cast<ProductTableHeader*>(segment_base + table_offset);
  if (header->magic != product_table_magic || header->version != product_table_version)
    return make_error("ledger.products", "not a product table of this keel version");
  if (header->area_bytes < sizeof(ShardProductArea) + uint64_t(header->products_max) * sizeof(ProductStatusEntry))
    return make_error("ledger.products", "its areas are too small for its products_max");
  ProductTableView view;
  view.base_ = segment_base;
  view.header_ = header;
  return view;
}

ShardProductArea& ProductTableView::area(uint32_t global_shard) const {
  assert(global_shard < header_->shard_count);
  return *reinterpret_cast<ShardProductArea*>(base_ + header_->areas_offset + uint64_t(global_shard) * header_->area_bytes);
}

ProductStatusEntry* ProductTableView::entries(ShardProductArea& area) const {
  return reinterpret_cast<ProductStatusEntry*>(reinterpret_cast<std::byte*>(&area) + sizeof(ShardProductArea));
}

void ProductTableView::publish(uint32_t global_shard, std::span<const flow::FlowTable::ProductLoad> loads,
                               uint64_t now_ns) const {
  ShardProductArea& target = area(global_shard);
  uint32_t count = uint32_t(std::min<size_t>(loads.size(), header_->products_max));
  uint64_t sequence = target.sequence.load(std::memory_order_relaxed);
  target.sequence.store(sequence + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  ProductStatusEntry* out = entries(target);
  for (uint32_t index = 0; index < count; ++index) {
    ProductStatusEntry entry{};
    size_t name_bytes = std::min<size_t>(loads[index].name.size(), product_status_name_bytes - 1);
    std::memcpy(entry.name, loads[index].name.data(), name_bytes);
    entry.priority = loads[index].settings.priority;
    entry.running_max = loads[index].settings.running_max;
    entry.jobs_queued = loads[index].queued;
    entry.jobs_running = loads[index].running;
    store_words(&out[index], &entry, sizeof entry);
  }
  std::atomic_ref<uint64_t>(target.published_ns).store(now_ns, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(target.product_count).store(count, std::memory_order_relaxed);
  target.sequence.store(sequence + 2, std::memory_order_release);
}

std::vector<ProductStatus> ProductTableView::read(uint32_t global_shard, uint64_t* published_ns) const {
  ShardProductArea& source = area(global_shard);
  std::vector<ProductStatusEntry> copy;
  uint64_t published = 0;
  // The writer holds the sequence odd for a few hundred stores; a writer that died
  // mid-write (the whole engine then died) leaves it odd for good, so the reader gives up
  // after a while and returns nothing rather than spin.
  for (uint32_t attempt = 0;; ++attempt) {
    if (attempt == 1'000'000) {
      copy.clear();
      published = 0;
      break;
    }
    uint64_t before = source.sequence.load(std::memory_order_acquire);
    if (before & 1) continue;
    uint32_t count = std::min(std::atomic_ref<uint32_t>(source.product_count).load(std::memory_order_relaxed),
                              header_->products_max);
    published = std::atomic_ref<uint64_t>(source.published_ns).load(std::memory_order_relaxed);
    copy.resize(count);
    if (count > 0) load_words(copy.data(), entries(source), count * sizeof(ProductStatusEntry));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (source.sequence.load(std::memory_order_relaxed) == before) break;
  }
  if (published_ns != nullptr) *published_ns = published;
  std::vector<ProductStatus> out;
  out.reserve(copy.size());
  for (const ProductStatusEntry& entry : copy) {
    ProductStatus status;
    status.name.assign(entry.name, strnlen(entry.name, product_status_name_bytes));
    status.priority = entry.priority;
    status.running_max = entry.running_max;
    status.jobs_queued = entry.jobs_queued;
    status.jobs_running = entry.jobs_running;
    out.push_back(std::move(status));
  }
  return out;
}

}  // namespace keel::node
