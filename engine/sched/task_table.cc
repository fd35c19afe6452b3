#include "engine/sched/task_table.h"

#include <new>

#include "shm/arena.h"
#include "shm/ring.h"

namespace keel::sched {

namespace {

constexpr uint64_t alignment = 128;

uint64_t align_up(uint64_t value) { return (value + alignment - 1) & ~(alignment - 1); }

struct TaskTableHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t shard_count;
  uint32_t scheduler_count;
  uint32_t reserved;
  uint64_t shards_offset;      // from the table: ShardTaskPorts[shard_count]
  uint64_t schedulers_offset;  // from the table: SchedulerCounters[scheduler_count]
};

// Every part's size, in layout order; footprint and lay-out walk the same plan.
struct Plan {
  uint64_t shards_offset = 0, schedulers_offset = 0, parts_offset = 0, per_shard_bytes = 0, total = 0;
  uint64_t request_ring_bytes = 0, request_arena_bytes = 0, result_ring_bytes = 0, result_arena_bytes = 0;
};

Result<Plan> make_plan(const TaskTableOptions& options) {
  if (options.scheduler_count == 0) return make_error("sched.tasks", "no scheduler tile");
  for (const TaskShardOptions& shard : options.shards)
    if (shard.scheduler >= options.scheduler_count)
      return make_error("sched.tasks", "a shard is served by scheduler " + std::to_string(shard.scheduler) +
                                           " of " + std::to_string(options.scheduler_count));
  Plan plan;
  Result<uint64_t> request_ring = shm::ring_footprint(options.ring_capacity, sizeof(TaskRequestMessage));
  if (!request_ring) return request_ring.error();
  Result<uint64_t> result_ring = shm::ring_footprint(options.ring_capacity, sizeof(TaskResultMessage));
  if (!result_ring) return result_ring.error();
  Result<uint64_t> request_arena = shm::arena_footprint(options.request_arena_bytes);
  if (!request_arena) return request_arena.error();
  Result<uint64_t> result_arena = shm::arena_footprint(options.result_arena_bytes);
  if (!result_arena) return result_arena.error();
  plan.request_ring_bytes = align_up(*request_ring);
  plan.result_ring_bytes = align_up(*result_ring);
  plan.request_arena_bytes = align_up(*request_arena);
  plan.result_arena_bytes = align_up(*result_arena);
  plan.shards_offset = align_up(sizeof(TaskTableHeader));
  plan.schedulers_offset = align_up(plan.shards_offset + options.shards.size() * sizeof(ShardTaskPorts));
  plan.parts_offset = align_up(plan.schedulers_offset + options.scheduler_count * sizeof(SchedulerCounters));
  plan.per_shard_bytes =
      plan.request_ring_bytes + plan.result_ring_bytes + plan.request_arena_bytes + plan.result_arena_bytes;
  plan.total = plan.parts_offset + options.shards.size() * plan.per_shard_bytes;
  return plan;
}

}  // namespace

ComputeTypeTable::ComputeTypeTable(std::vector<std::string> names) : names_(std::move(names)) {
  for (uint32_t index = 0; index < names_.size(); ++index) indexes_.emplace(names_[index], index);
}

uint32_t ComputeTypeTable::index_of(std::string_view name) const {
  auto found = indexes_.find(name);
  return found == indexes_.end() ? unknown_compute_type : found->second;
}

Result<uint64_t> task_table_footprint(const TaskTableOptions& options) {
  Result<Plan> plan = make_plan(options);
  if (!plan) return plan.error();
  return plan->total;
}

Result<uint64_t> lay_out_task_table(shm::Segment& segment, const TaskTableOptions& options) {
  Result<Plan> plan = make_plan(options);
  if (!plan) return plan.error();
  Result<uint64_t> table = segment.allocate(task_table_object_name, shm::SegmentObjectKind::counters, plan->total,
                                            alignment);
  if (!table) return table.error();
  std::byte* base = segment.base();
  new (base + *table) TaskTableHeader{task_table_magic, task_table_version, uint32_t(options.shards.size()),
                                      options.scheduler_count, 0, plan->shards_offset, plan->schedulers_offset};
  for (uint32_t index = 0; index < options.scheduler_count; ++index)
    new (base + *table + plan->schedulers_offset + index * sizeof(SchedulerCounters)) SchedulerCounters{};
  uint64_t next = *table + plan->parts_offset;
  for (size_t index = 0; index < options.shards.size(); ++index) {
    const TaskShardOptions& shard = options.shards[index];
    auto* ports = new (base + *table + plan->shards_offset + index * sizeof(ShardTaskPorts)) ShardTaskPorts{};
    ports->scheduler = shard.scheduler;
    ports->request_ring = next;
    if (auto ring = shm::ring_construct(base, next, {options.ring_capacity, sizeof(TaskRequestMessage),
                                                     shard.scheduler_doorbell});
        !ring)
      return ring.error();
    next += plan->request_ring_bytes;
    ports->request_arena = next;
    if (auto arena = shm::arena_construct(base, next, options.request_arena_bytes); !arena) return arena.error();
    next += plan->request_arena_bytes;
    ports->result_ring = next;
    if (auto ring = shm::ring_construct(base, next, {options.ring_capacity, sizeof(TaskResultMessage),
                                                     shard.shard_doorbell});
        !ring)
      return ring.error();
    next += plan->result_ring_bytes;
    ports->result_arena = next;
    if (auto arena = shm::arena_construct(base, next, options.result_arena_bytes); !arena) return arena.error();
    next += plan->result_arena_bytes;
  }
  return *table;
}

Result<TaskTableView> TaskTableView::join(std::byte* segment_base, uint64_t offset) {
  auto* header = reinterpret_cast<TaskTableHeader*>(segment_base + offset);
  if (header->magic != task_table_magic || header->version != task_table_version)
    return make_error(task_table_object_name, "not a task table of this keel version");
  TaskTableView view;
  view.shards_ = reinterpret_cast<ShardTaskPorts*>(segment_base + offset + header->shards_offset);
  view.schedulers_ = reinterpret_cast<SchedulerCounters*>(segment_base + offset + header->schedulers_offset);
  view.shard_count_ = header->shard_count;
  view.scheduler_count_ = header->scheduler_count;
  return view;
}

Result<TaskTableView> TaskTableView::find(const shm::Segment& segment) {
  Result<shm::SegmentObject> object = segment.find(task_table_object_name, shm::SegmentObjectKind::counters);
  if (!object) return object.error();
  return join(segment.base(), object->offset);
}

}  // namespace keel::sched
