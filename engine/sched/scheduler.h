// engine/sched/scheduler.h: the scheduler tile of one NUMA node. It takes the compute
// tasks of the shards on its node (task_table.h), routes each by compute type to a pool
// process serving it (pool_table.h), holds it under a lease until the pool answers, and
// returns the tasks' outcomes to their shard in compute_results transactions, many at once.
//
//   SchedulerOptions options;   // node, shards, type routes, pools: see below
//   auto tile = SchedulerTile::create(segment.base(), task_table, pool_table, options).value();
//   core tiles: {tile.get(), weight}
//
// Tasks go to a pool in batches (pool_table.h): each dispatch round sends a slot what is
// ready for it, up to batch_tasks_max tasks and the slot's credit, as one ring message;
// the answers come back the same way. Each task keeps its own lease, attempt and deadline.
//
// Routing: a task goes to a usable slot of its pool (the incarnation started last is
// ready, not dead, not quarantined) on this node while that slot's in-flight count is
// below spill_percent of the pool's in_flight_max; past it, to another node's slot with
// credit, and only then to the local slot's remaining credit. Credit is counted per lane:
// a slot holds at most in_flight_max of this scheduler's tasks.
//
// Leases: a task sent to a pool is leased as (task id, attempt, deadline). The task id
// names the lease slot and its generation, so an answer to a finished task or to an
// earlier attempt is recognised and dropped (completions_stale). A lease is sent again as
// the next attempt, after backoff_ms doubling per attempt (at most timeout_ms), when
//   - its deadline passes (timeout_ms after it was sent),
//   - the pool incarnation holding it died (the supervisor set dead_epoch), or
//   - the plugin answered KEEL_STATUS_FAILED (transient),
// until retries_max retries are spent (timeout, retries and backoff are the task's own
// when it carries them, a flow step's, with the timeout capped at its pool's); then the
// task ends timed_out (every attempt timed
// out) or retries_exhausted. A permanent plugin status ends it plugin_failed at once; a
// quarantined pool ends it quarantined with the reason as output; a compute type no pool
// serves ends it no_pool. Whatever runs twice, the ledger orders one result per task.
//
// Memory is bounded: at most leases_max tasks are held (each owns its input and output);
// with every lease taken the tile stops reading the shards' request rings, which fill,
// and the shards keep their tasks (bounded by the ledger's compute_pending_max, past
// which clients get compute_backlog_full). Rings and arenas that are full are retried on
// the next poll; nothing is dropped.
//
// Draining: the tile stops at once. Leases die with the engine; after a restart the
// shards send their pending tasks (those without a durable result) again.
#pragma once

#include <cstddef>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "engine/core/latency_histogram.h"
#include "engine/core/tile.h"
#include "engine/ledger/transaction.h"
#include "engine/sched/pool_table.h"
#include "engine/sched/task_table.h"
#include "error/result.h"
#include "shm/arena.h"
#include "shm/ring.h"

namespace keel::sched {

inline constexpr uint32_t no_pool_index = 0xffffffffu;

// Where a compute type (ComputeTypeTable index) goes: its [[pool]] and the type's index
// within that pool's compute_types (TaskEntry::compute_type).
struct TypeRoute {
  uint32_t pool = no_pool_index;
  uint32_t type_in_pool = 0;
};

// One [[pool]] as the scheduler needs it.
struct SchedulerPool {
  std::string name;
  uint32_t in_flight_max = 1024;
  uint32_t timeout_ms = 10000;
  uint32_t retries_max = 3;
  uint32_t backoff_ms = 10;
  std::vector<uint32_t> slots;  // its pool-table slots, one per NUMA node
};

// One shard this scheduler serves.
struct SchedulerShard {
  uint32_t global_shard = 0;
  uint32_t shard_in_chain = 0;  // the compute_result's `shard`
  // Its chain's tier as the balancer last set it (0 light, 1 medium, 2 heavy; the shard's
  // control block in the segment); null: light.
  const std::atomic<uint32_t>* tier = nullptr;
};

// A lease by its index and the generation it had (a lease reused since is not this one).
struct LeaseRef {
  uint32_t index;
  uint32_t generation;
};

// The tasks waiting for one pool's credit, by their chain's tier, taken in weighted turns:
// `weights[tier]` tasks of a tier, then the next lower tier's, round and round (a tier
// with nothing waiting gives its turn away). When credit is short a heavy chain's tasks
// get that many times a light one's share of it — the same tiers the balancer sizes CPU
// slices by — and no tier ever waits for good.
class TieredReadyQueue {
 public:
  static constexpr uint32_t tiers = 3;
  explicit TieredReadyQueue(std::array<uint32_t, tiers> weights = {1, 2, 4}) : weights_(weights) {}
  void push_back(LeaseRef ref, uint32_t tier) { queues_[std::min(tier, tiers - 1)].push_back(ref); }
  bool empty() const { return queues_[0].empty() && queues_[1].empty() && queues_[2].empty(); }
  size_t size() const { return queues_[0].size() + queues_[1].size() + queues_[2].size(); }
  // The next task by the turns; the queue must not be empty. Stays the same until pop_front.
  LeaseRef front();
  void pop_front();

 private:
  std::array<std::deque<LeaseRef>, tiers> queues_;
  std::array<uint32_t, tiers> weights_;
  uint32_t turn_tier_ = 0;  // spent: the first front() moves on to heavy
  uint32_t turn_left_ = 0;
};

struct SchedulerOptions {
  uint32_t index = 0;  // the scheduler's number: its lane in every pool slot and its counters
  uint32_t node = 0;   // NUMA node (logical), compared with PoolControl::numa_node
  std::vector<SchedulerShard> shards;
  std::vector<TypeRoute> types;  // by ComputeTypeTable index
  std::vector<SchedulerPool> pools;
  uint32_t leases_max = 16384;
  uint32_t spill_percent = 100;  // local in-flight share of in_flight_max before spilling
  std::array<uint32_t, TieredReadyQueue::tiers> tier_weights = {1, 2, 4};  // light, medium, heavy
};

class SchedulerTile final : public engine::Tile {
 public:
  static Result<std::unique_ptr<SchedulerTile>> create(std::byte* segment_base, const TaskTableView& tasks,
                                                       const PoolTableView& pools, SchedulerOptions options);

  std::string_view name() const override { return name_; }
  size_t poll(size_t budget) override;
  void begin_drain() override { draining_ = true; }
  bool quiescent() override { return draining_; }

  // Shard sent the task -> its result handed back (this tile's thread only, or after
  // the core stopped).
  const engine::LatencyHistogram& dispatch_latency() const { return dispatch_latency_; }

 private:
  enum class LeaseState : uint8_t { free, queued, waiting_retry, dispatched, answering };
  // Laid out for the cache: what an answer checks and dispatch sets (generation, state,
  // attempt, epoch, slot, deadline) is the first line, the policy and buffers the second.
  // A lease is met three times milliseconds apart under load (taken, sent, answered), a
  // miss each time, and a 136-byte lease straddled three lines.
  struct alignas(64) Lease {
    uint32_t generation = 0;
    LeaseState state = LeaseState::free;
    bool only_timeouts = true;  // every failed attempt so far timed out
    uint32_t attempt = 0;      // of the last send (0: never sent)
    uint32_t slot = 0;         // while dispatched
    uint32_t pool = no_pool_index;
    uint32_t type = 0;         // ComputeTypeTable index
    uint32_t shard = 0;        // index into options_.shards
    uint32_t timeout_ms = 0;
    uint64_t epoch = 0;        // the incarnation it was sent to
    uint64_t deadline_ns = 0;  // while dispatched
    uint64_t task_mark = 0;
    uint64_t issued_ns = 0;
    // Its policy: the task's own (a flow step's) or its pool's, timeout at most the pool's.
    uint32_t retries_max = 0;
    uint32_t backoff_ms = 0;
    std::vector<std::byte> input;
    std::vector<std::byte> result_entry;  // while answering: its compute_results entry
  };
  static_assert(sizeof(Lease) == 128);
  struct Retry {
    uint64_t due_ns;
    LeaseRef lease;
    bool operator>(const Retry& other) const { return due_ns > other.due_ns; }
  };
  struct Slot {
    uint32_t pool = 0;
    uint32_t node = 0;
    PoolControl* control = nullptr;
    shm::RingProducer tasks;
    shm::RingConsumer completions;
    shm::ArenaWriter inputs;
    shm::ArenaReader outputs;
    uint64_t counted_epoch = 0;  // the incarnation in_flight counts for (0: none usable)
    uint32_t in_flight = 0;
    PoolLane* lane = nullptr;        // this scheduler's lane: where the counters below are published
    uint64_t tasks_dispatched = 0;   // sends to this slot, every attempt
    uint64_t tasks_retried = 0;      // of those, attempts after the first
    size_t unpublished = 0;  // batch messages written this dispatch round, not yet published
    bool quarantined = false;
  };
  struct ShardPorts {
    shm::RingConsumer requests;
    shm::ArenaReader request_inputs;
    shm::RingProducer results;
    shm::ArenaWriter result_txs;
    std::deque<LeaseRef> answers;  // results waiting for room in the ring
  };
  struct PoolState {
    TieredReadyQueue ready;      // waiting for credit
    bool quarantined = false;    // every slot is
    std::string quarantine;      // the first slot's reason
  };

  explicit SchedulerTile(SchedulerOptions options);
  void take_request(uint32_t shard_index, std::span<const std::byte> bytes);
  size_t take_completions(size_t budget);
  size_t take_completion_batch(Slot& slot, const CompletionBatchMessage& batch);
  void complete(Slot& slot, uint64_t epoch, const CompletionEntry& completion, std::span<const std::byte> output);
  void watch_pools(uint64_t now_ns);
  void lose_incarnations(uint32_t slot_index, uint64_t epoch_last, uint64_t now_ns);
  void scan_leases(uint64_t now_ns);
  size_t release_retries(uint64_t now_ns);
  size_t take_requests(size_t budget);
  size_t dispatch(size_t budget, uint64_t now_ns);
  void publish_lane_counters(uint64_t now_ns);
  Slot* pick_slot(uint32_t pool);
  uint32_t slot_room(uint32_t pool_index, const Slot& slot) const;
  size_t send_batch(uint32_t pool_index, Slot& slot, size_t budget, uint64_t now_ns);
  std::span<std::byte> claim_task_slot(Slot& slot);
  size_t send_results();
  void retry_or_fail(uint32_t index, bool timed_out, uint64_t now_ns);
  void answer(uint32_t index, ledger::ComputeOutcome outcome, int32_t plugin_status,
              std::span<const std::byte> output);
  void free_lease(uint32_t index);
  bool current(LeaseRef ref, LeaseState state) const;
  uint32_t tier_of_shard(uint32_t shard_index) const;
  bool usable(const Slot& slot) const;

  SchedulerOptions options_;
  std::string name_;
  SchedulerCounters* counters_ = nullptr;
  std::vector<Lease> leases_;
  std::vector<uint32_t> free_leases_;
  uint32_t leases_used_ = 0;  // high-water mark of lease indexes ever handed out
  std::vector<Slot> slots_;   // by pool-table slot
  std::vector<ShardPorts> shards_;
  std::vector<PoolState> pools_;
  std::priority_queue<Retry, std::vector<Retry>, std::greater<>> retries_;
  // Round-robin starts, moved on every poll, so that with a budget smaller than the work
  // no shard, pool-table slot or pool is always served first.
  uint32_t next_shard_ = 0;            // taking requests
  uint32_t next_completion_slot_ = 0;  // taking completions
  uint32_t next_dispatch_pool_ = 0;    // dispatching
  uint64_t last_scan_ns_ = 0;
  // No dispatched lease's deadline is earlier (a lower bound: answers only raise the true
  // one): scan_leases walks the leases only once it has passed, about once a timeout
  // rather than once a millisecond over every lease in use.
  uint64_t deadline_ns_min_ = UINT64_MAX;
  uint64_t last_lane_publish_ns_ = 0;
  bool draining_ = false;
  engine::LatencyHistogram dispatch_latency_;
};

}  // namespace keel::sched
