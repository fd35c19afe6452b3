#include "engine/node/shard_table.h"

#include <cassert>
#include <new>

#include "shm/arena.h"
#include "shm/ring.h"

namespace keel::node {

namespace {

constexpr uint64_t alignment = 128;

uint64_t align_up(uint64_t value) { return (value + alignment - 1) & ~(alignment - 1); }

// Every part's size, in layout order; footprint and lay-out walk the same plan.
struct Plan {
  uint64_t controls_offset = 0, credit_offsets_offset = 0, credit_marks_offset = 0, parts_offset = 0, total = 0;
  uint64_t block_ring_bytes = 0, block_arena_bytes = 0, credit_ring_bytes = 0;
  uint32_t shard_count = 0, credit_ring_slots = 0, credit_ring_count = 0;
};

Result<Plan> make_plan(const ShardTableOptions& options) {
  if (options.chains.empty()) return make_error("ledger", "no chains configured");
  Plan plan;
  for (const ShardTableChain& chain : options.chains) {
    if (options.block_arena_bytes < 2ull * (chain.block_bytes_max + 256))
      return make_error("ledger", "block arena of " + std::to_string(options.block_arena_bytes) +
                                      " bytes cannot hold two blocks of chain " + chain.name);
    plan.shard_count += chain.shards;
    plan.credit_ring_slots += chain.shards * chain.shards;
    plan.credit_ring_count += chain.shards * (chain.shards - 1);
  }
  Result<uint64_t> block_ring = shm::ring_footprint(options.block_ring_capacity, sizeof(BlockMessage));
  if (!block_ring) return block_ring.error();
  Result<uint64_t> block_arena = shm::arena_footprint(options.block_arena_bytes);
  if (!block_arena) return block_arena.error();
  Result<uint64_t> credit_ring = shm::ring_footprint(options.credit_ring_capacity, sizeof(CreditMessage));
  if (!credit_ring) return credit_ring.error();
  plan.block_ring_bytes = align_up(*block_ring);
  plan.block_arena_bytes = align_up(*block_arena);
  plan.credit_ring_bytes = align_up(*credit_ring);
  plan.controls_offset = align_up(sizeof(ShardTableHeader));
  plan.credit_offsets_offset = plan.controls_offset + uint64_t(plan.shard_count) * sizeof(ShardControl);
  plan.credit_marks_offset = align_up(plan.credit_offsets_offset + uint64_t(plan.credit_ring_slots) * sizeof(uint64_t));
  plan.parts_offset = align_up(plan.credit_marks_offset + uint64_t(plan.credit_ring_slots) * sizeof(uint64_t));
  plan.total = plan.parts_offset + uint64_t(plan.shard_count) * (plan.block_ring_bytes + plan.block_arena_bytes) +
               uint64_t(plan.credit_ring_count) * plan.credit_ring_bytes;
  return plan;
}

}  // namespace

Result<uint64_t> shard_table_footprint(const ShardTableOptions& options) {
  Result<Plan> plan = make_plan(options);
  if (!plan) return plan.error();
  return plan->total;
}

Result<uint64_t> lay_out_shard_table(shm::Segment& segment, const ShardTableOptions& options) {
  Result<Plan> plan = make_plan(options);
  if (!plan) return plan.error();
  if (!options.shard_doorbells.empty() && options.shard_doorbells.size() != plan->shard_count)
    return make_error("ledger", "one doorbell per shard expected");
  Result<uint64_t> table = segment.allocate(shard_table_object_name, shm::SegmentObjectKind::counters, plan->total,
                                            alignment);
  if (!table) return table.error();
  std::byte* base = segment.base();
  auto* header = new (base + *table) ShardTableHeader{shard_table_magic, shard_table_version, plan->shard_count,
                                                      *table + plan->controls_offset,
                                                      *table + plan->credit_offsets_offset,
                                                      *table + plan->credit_marks_offset};
  for (uint32_t slot = 0; slot < plan->credit_ring_slots; ++slot)
    new (base + header->durable_credit_marks_offset + uint64_t(slot) * sizeof(uint64_t)) std::atomic<uint64_t>(0);
  auto* credit_offsets = reinterpret_cast<uint64_t*>(base + header->credit_rings_offset);
  uint64_t next = *table + plan->parts_offset;
  uint32_t global = 0, credit_index = 0;
  auto shard_doorbell = [&](uint32_t shard) {
    return options.shard_doorbells.empty() ? uint64_t(0) : options.shard_doorbells[shard];
  };
  for (uint32_t chain = 0; chain < options.chains.size(); ++chain) {
    uint32_t shards = options.chains[chain].shards;
    for (uint32_t shard = 0; shard < shards; ++shard) {
      auto* control = new (base + header->controls_offset + uint64_t(global + shard) * sizeof(ShardControl)) ShardControl{};
      control->chain = chain;
      control->shard = shard;
      control->shard_count = shards;
      control->first_global_shard = global;
      control->credit_ring_index_first = credit_index;
      control->block_ring = next;
      Result<void> ring = shm::ring_construct(base, next, {options.block_ring_capacity, sizeof(BlockMessage),
                                                          options.persist_doorbell});
      if (!ring) return ring.error();
      next += plan->block_ring_bytes;
      control->block_arena = next;
      if (Result<void> arena = shm::arena_construct(base, next, options.block_arena_bytes); !arena) return arena.error();
      next += plan->block_arena_bytes;
    }
    for (uint32_t origin = 0; origin < shards; ++origin)
      for (uint32_t destination = 0; destination < shards; ++destination) {
        uint64_t& slot = credit_offsets[credit_index + origin * shards + destination];
        slot = 0;
        if (origin == destination) continue;
        Result<void> ring = shm::ring_construct(base, next, {options.credit_ring_capacity, sizeof(CreditMessage),
                                                            shard_doorbell(global + destination)});
        if (!ring) return ring.error();
        slot = next;
        next += plan->credit_ring_bytes;
      }
    global += shards;
    credit_index += shards * shards;
  }
  return *table;
}

Result<ShardTableView> ShardTableView::join(std::byte* segment_base, uint64_t offset) {
  auto* header = reinterpret_cast<ShardTableHeader*>(segment_base + offset);
  if (header->magic != shard_table_magic || header->version != shard_table_version)
    return make_error("ledger.shards", "not a shard table of this keel version");
  ShardTableView view;
  view.base_ = segment_base;
  view.header_ = header;
  return view;
}

ShardControl& ShardTableView::control(uint32_t global_shard) const {
  assert(global_shard < header_->shard_count);
  return reinterpret_cast<ShardControl*>(base_ + header_->controls_offset)[global_shard];
}

uint64_t ShardTableView::credit_ring(uint32_t origin_global, uint32_t destination_global) const {
  const ShardControl& origin = control(origin_global);
  uint32_t first = origin.first_global_shard, count = origin.shard_count;
  assert(destination_global >= first && destination_global < first + count && origin_global != destination_global);
  const auto* offsets = reinterpret_cast<const uint64_t*>(base_ + header_->credit_rings_offset);
  return offsets[origin.credit_ring_index_first + (origin_global - first) * count + (destination_global - first)];
}

std::atomic<uint64_t>& ShardTableView::durable_credit_mark(uint32_t origin_global, uint32_t destination_global) const {
  const ShardControl& origin = control(origin_global);
  uint32_t first = origin.first_global_shard, count = origin.shard_count;
  assert(destination_global >= first && destination_global < first + count && origin_global != destination_global);
  auto* marks = reinterpret_cast<std::atomic<uint64_t>*>(base_ + header_->durable_credit_marks_offset);
  return marks[origin.credit_ring_index_first + (origin_global - first) * count + (destination_global - first)];
}

}  // namespace keel::node
