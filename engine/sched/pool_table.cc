#include "engine/sched/pool_table.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"

namespace keel::sched {

namespace {

template <class Entry>
size_t write_entry(std::span<std::byte> at, const Entry& entry, std::span<const std::byte> bytes) {
  size_t padded = entry_padded_bytes(bytes.size());
  std::memcpy(at.data(), &entry, sizeof entry);
  if (!bytes.empty()) std::memcpy(at.data() + sizeof entry, bytes.data(), bytes.size());
  if (padded != bytes.size()) std::memset(at.data() + sizeof entry + bytes.size(), 0, padded - bytes.size());
  return sizeof entry + padded;
}

constexpr uint64_t alignment = 128;

uint64_t align_up(uint64_t value) { return (value + alignment - 1) & ~(alignment - 1); }

struct PoolTableHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t slot_count;
  uint64_t controls_offset;  // from the table; PoolControl[slot_count]
};

// Every part's size, in layout order; footprint and lay-out walk the same plan.
struct Plan {
  uint64_t controls_offset = 0, parts_offset = 0, slot_bytes = 0, total = 0;
  uint64_t task_ring_bytes = 0, completion_ring_bytes = 0, input_arena_bytes = 0, output_arena_bytes = 0;
};

Result<Plan> make_plan(const PoolTableOptions& options) {
  Plan plan;
  Result<uint64_t> task_ring = shm::ring_footprint(options.ring_capacity, sizeof(TaskBatchMessage));
  if (!task_ring) return task_ring.error();
  Result<uint64_t> completion_ring = shm::ring_footprint(options.ring_capacity, sizeof(CompletionBatchMessage));
  if (!completion_ring) return completion_ring.error();
  Result<uint64_t> input_arena = shm::arena_footprint(options.input_arena_bytes);
  if (!input_arena) return input_arena.error();
  Result<uint64_t> output_arena = shm::arena_footprint(options.output_arena_bytes);
  if (!output_arena) return output_arena.error();
  for (const PoolSlotOptions& slot : options.slots) {
    if (slot.name.empty() || slot.name.size() > pool_name_bytes_max)
      return make_error("sched.pools", "pool name '" + slot.name + "' must be 1 to " +
                                           std::to_string(pool_name_bytes_max) + " bytes");
  }
  plan.task_ring_bytes = align_up(*task_ring);
  plan.completion_ring_bytes = align_up(*completion_ring);
  plan.input_arena_bytes = align_up(*input_arena);
  plan.output_arena_bytes = align_up(*output_arena);
  plan.controls_offset = align_up(sizeof(PoolTableHeader));
  plan.parts_offset = align_up(plan.controls_offset + options.slots.size() * sizeof(PoolControl));
  if (options.lane_doorbells.empty() || options.lane_doorbells.size() > pool_lanes_max)
    return make_error("sched.pools", "a pool needs 1 to " + std::to_string(pool_lanes_max) + " lanes, not " +
                                         std::to_string(options.lane_doorbells.size()));
  plan.slot_bytes = align_up(sizeof(shm::Doorbell)) + align_up(options.lane_doorbells.size() * sizeof(PoolLane)) +
                    options.lane_doorbells.size() * (plan.task_ring_bytes + plan.completion_ring_bytes +
                                                     plan.input_arena_bytes + plan.output_arena_bytes);
  plan.total = plan.parts_offset + options.slots.size() * plan.slot_bytes;
  return plan;
}

}  // namespace

Result<uint64_t> pool_table_footprint(const PoolTableOptions& options) {
  Result<Plan> plan = make_plan(options);
  if (!plan) return plan.error();
  return plan->total;
}

Result<uint64_t> lay_out_pool_table(shm::Segment& segment, const PoolTableOptions& options) {
  Result<Plan> plan = make_plan(options);
  if (!plan) return plan.error();
  Result<uint64_t> table = segment.allocate(pool_table_object_name, shm::SegmentObjectKind::counters, plan->total,
                                            alignment);
  if (!table) return table.error();
  std::byte* base = segment.base();
  new (base + *table) PoolTableHeader{pool_table_magic, pool_table_version, uint32_t(options.slots.size()),
                                      plan->controls_offset};
  uint64_t next = *table + plan->parts_offset;
  for (size_t index = 0; index < options.slots.size(); ++index) {
    const PoolSlotOptions& slot = options.slots[index];
    auto* control = new (base + *table + plan->controls_offset + index * sizeof(PoolControl)) PoolControl{};
    std::memcpy(control->name, slot.name.data(), slot.name.size());
    control->pool_index = slot.pool_index;
    control->numa_node = slot.numa_node;
    control->doorbell = next;
    new (base + next) shm::Doorbell{};
    next += align_up(sizeof(shm::Doorbell));
    control->lane_count = uint32_t(options.lane_doorbells.size());
    control->lanes = next;
    auto* lanes = new (base + next) PoolLane[control->lane_count]{};
    next += align_up(control->lane_count * sizeof(PoolLane));
    for (uint32_t index = 0; index < control->lane_count; ++index) {
      PoolLane& lane = lanes[index];
      lane.task_ring = next;
      if (auto ring = shm::ring_construct(base, next, {options.ring_capacity, sizeof(TaskBatchMessage), control->doorbell});
          !ring)
        return ring.error();
      next += plan->task_ring_bytes;
      lane.completion_ring = next;
      if (auto ring = shm::ring_construct(base, next, {options.ring_capacity, sizeof(CompletionBatchMessage),
                                                       options.lane_doorbells[index]});
          !ring)
        return ring.error();
      next += plan->completion_ring_bytes;
      lane.input_arena = next;
      if (auto arena = shm::arena_construct(base, next, options.input_arena_bytes); !arena) return arena.error();
      next += plan->input_arena_bytes;
      lane.output_arena = next;
      if (auto arena = shm::arena_construct(base, next, options.output_arena_bytes); !arena) return arena.error();
      next += plan->output_arena_bytes;
    }
  }
  return *table;
}

Result<PoolTableView> PoolTableView::join(std::byte* segment_base, uint64_t offset) {
  auto* header = reinterpret_cast<PoolTableHeader*>(segment_base + offset);
  if (header->magic != pool_table_magic || header->version != pool_table_version)
    return make_error(pool_table_object_name, "not a pool table of this keel version");
  PoolTableView view;
  view.base_ = segment_base;
  view.controls_ = reinterpret_cast<PoolControl*>(segment_base + offset + header->controls_offset);
  view.slot_count_ = header->slot_count;
  return view;
}

Result<PoolTableView> PoolTableView::find(const shm::Segment& segment) {
  Result<shm::SegmentObject> object = segment.find(pool_table_object_name, shm::SegmentObjectKind::counters);
  if (!object) return object.error();
  return join(segment.base(), object->offset);
}

size_t write_task_entry(std::span<std::byte> at, const TaskEntry& entry, std::span<const std::byte> input) {
  return write_entry(at, entry, input);
}

size_t write_completion_entry(std::span<std::byte> at, const CompletionEntry& entry, std::span<const std::byte> output) {
  return write_entry(at, entry, output);
}

}  // namespace keel::sched
