#include "engine/sched/scheduler.h"

#include <keel/plugin.h>

#include <algorithm>
#include <cstring>

#include "engine/sched/plugin_library.h"
#include "shm/segment.h"

namespace keel::sched {

namespace {

constexpr uint64_t scan_interval_ns = 1'000'000;
// A lease keeps the capacity of its buffers from task to task, up to this much; a larger
// one is given back when the lease is freed, so idle leases stay small.
constexpr size_t kept_buffer_bytes = 4096;
constexpr size_t message_run_max = 64;  // ring messages taken (peeked, then released) at once

void add(std::atomic<uint64_t>& counter, uint64_t value) {
  counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
}

uint64_t task_id_of(uint32_t index, uint32_t generation) { return uint64_t(generation) << 32 | index; }

std::span<const std::byte> text_bytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), std::min<size_t>(text.size(), 1024)));
}

}  // namespace

Result<std::unique_ptr<SchedulerTile>> SchedulerTile::create(std::byte* base, const TaskTableView& tasks,
                                                             const PoolTableView& pools, SchedulerOptions options) {
  if (options.index >= tasks.scheduler_count())
    return make_error("scheduler", "no counters for scheduler " + std::to_string(options.index));
  if (options.leases_max == 0) return make_error("scheduler", "leases_max must be at least 1");
  std::unique_ptr<SchedulerTile> tile(new SchedulerTile(std::move(options)));
  const SchedulerOptions& opts = tile->options_;
  tile->counters_ = &tasks.scheduler(opts.index);
  tile->slots_.resize(pools.slot_count());
  for (uint32_t pool = 0; pool < opts.pools.size(); ++pool)
    for (uint32_t slot_index : opts.pools[pool].slots) {
      if (slot_index >= pools.slot_count())
        return make_error("scheduler", "pool " + opts.pools[pool].name + " names no slot " + std::to_string(slot_index));
      PoolControl& control = pools.control(slot_index);
      if (opts.index >= control.lane_count)
        return make_error("scheduler", std::string(control.name) + " has no lane for scheduler " +
                                           std::to_string(opts.index));
      const PoolLane& lane = pools.lane(slot_index, opts.index);
      auto ring = shm::RingProducer::join(base, lane.task_ring);
      auto completions = shm::RingConsumer::join(base, lane.completion_ring);
      auto inputs = shm::ArenaWriter::join(base, lane.input_arena);
      auto outputs = shm::ArenaReader::join(base, lane.output_arena);
      if (!ring) return ring.error();
      if (!completions) return completions.error();
      if (!inputs) return inputs.error();
      if (!outputs) return outputs.error();
      Slot& slot = tile->slots_[slot_index];
      slot.pool = pool;
      slot.node = control.numa_node;
      slot.control = &control;
      slot.lane = &pools.lane(slot_index, opts.index);
      slot.tasks = *ring;
      slot.completions = *completions;
      slot.inputs = *inputs;
      slot.outputs = *outputs;
    }
  tile->shards_.resize(opts.shards.size());
  for (size_t index = 0; index < opts.shards.size(); ++index) {
    uint32_t global = opts.shards[index].global_shard;
    if (global >= tasks.shard_count()) return make_error("scheduler", "no task ports for shard " + std::to_string(global));
    const ShardTaskPorts& where = tasks.shard(global);
    auto requests = shm::RingConsumer::join(base, where.request_ring);
    auto inputs = shm::ArenaReader::join(base, where.request_arena);
    auto results = shm::RingProducer::join(base, where.result_ring);
    auto result_txs = shm::ArenaWriter::join(base, where.result_arena);
    if (!requests) return requests.error();
    if (!inputs) return inputs.error();
    if (!results) return results.error();
    if (!result_txs) return result_txs.error();
    ShardPorts& ports = tile->shards_[index];
    ports.requests = *requests;
    ports.request_inputs = *inputs;
    ports.results = *results;
    ports.result_txs = *result_txs;
  }
  return tile;
}

SchedulerTile::SchedulerTile(SchedulerOptions options)
    : options_(std::move(options)), name_("scheduler." + std::to_string(options_.node)) {
  leases_.resize(options_.leases_max);
  free_leases_.reserve(options_.leases_max);
  for (uint32_t index = options_.leases_max; index-- > 0;) free_leases_.push_back(index);
  for (size_t pool = 0; pool < options_.pools.size(); ++pool) pools_.push_back({TieredReadyQueue(options_.tier_weights)});
}

size_t SchedulerTile::poll(size_t budget) {
  if (draining_) return 0;
  uint64_t start_ns = shm::monotonic_ns();
  size_t work = take_completions(budget);
  watch_pools(start_ns);
  if (start_ns - last_scan_ns_ >= scan_interval_ns) {
    last_scan_ns_ = start_ns;
    scan_leases(start_ns);
  }
  work += release_retries(start_ns);
  work += take_requests(budget);
  work += dispatch(budget, start_ns);
  work += send_results();
  if (start_ns - last_lane_publish_ns_ >= pool_lane_publish_interval_ms * 1'000'000) {
    last_lane_publish_ns_ = start_ns;
    publish_lane_counters(start_ns);
  }
  if (work > 0) add(counters_->scheduler_busy_ns, shm::monotonic_ns() - start_ns);
  counters_->leases_held.store(options_.leases_max - free_leases_.size(), std::memory_order_relaxed);
  return work;
}

LeaseRef TieredReadyQueue::front() {
  assert(!empty());
  while (turn_left_ == 0 || queues_[turn_tier_].empty()) {
    turn_tier_ = turn_tier_ == 0 ? tiers - 1 : turn_tier_ - 1;
    turn_left_ = std::max<uint32_t>(1, weights_[turn_tier_]);
  }
  return queues_[turn_tier_].front();
}

void TieredReadyQueue::pop_front() {
  front();  // settles whose turn it is
  queues_[turn_tier_].pop_front();
  --turn_left_;
}

uint32_t SchedulerTile::tier_of_shard(uint32_t shard_index) const {
  const std::atomic<uint32_t>* tier = options_.shards[shard_index].tier;
  return tier == nullptr ? 0 : std::min(tier->load(std::memory_order_relaxed), TieredReadyQueue::tiers - 1);
}

bool SchedulerTile::current(LeaseRef ref, LeaseState state) const {
  const Lease& lease = leases_[ref.index];
  return lease.generation == ref.generation && lease.state == state;
}

bool SchedulerTile::usable(const Slot& slot) const {
  return slot.control != nullptr && !slot.quarantined && slot.counted_epoch != 0;
}

// --- answers from the pools ---

size_t SchedulerTile::take_completions(size_t budget) {
  size_t taken = 0;
  for (size_t turn = 0; turn < slots_.size(); ++turn) {
    Slot& slot = slots_[(next_completion_slot_ + turn) % slots_.size()];
    if (slot.control == nullptr) continue;
    while (taken < budget) {
      // A run of batches at once, the ring's head stored once for the run rather than
      // once a message under the pool's nose.
      std::span<const std::byte> run = slot.completions.peek(std::min<size_t>(budget - taken, message_run_max));
      const size_t count = run.size() / sizeof(CompletionBatchMessage);
      if (count == 0) break;
      size_t done = 0;
      while (done < count && taken < budget) {
        CompletionBatchMessage batch;
        std::memcpy(&batch, run.data() + done * sizeof batch, sizeof batch);
        taken += take_completion_batch(slot, batch);
        ++done;
      }
      slot.completions.release(done);
    }
  }
  if (!slots_.empty()) next_completion_slot_ = (next_completion_slot_ + 1) % uint32_t(slots_.size());
  return taken;
}

// One completion batch: its answers, in order. Returns the tasks it named.
size_t SchedulerTile::take_completion_batch(Slot& slot, const CompletionBatchMessage& batch) {
  // What a damaged message (a bug, or memory trodden on) cannot name: counted stale, its
  // slot's credit given back (no answer will), and its tasks' leases run out and are
  // sent again.
  auto unnamed = [&](uint32_t tasks) {
    add(counters_->completions_stale, tasks);
    if (batch.epoch == slot.counted_epoch) slot.in_flight -= std::min(slot.in_flight, tasks);
  };
  std::span<const std::byte> block = slot.outputs.read(batch.entries_position, batch.entries_bytes);
  if (block.empty()) {
    unnamed(batch.task_count);
    return batch.task_count;
  }
  // The batch's leases, last touched at dispatch and likely out of cache by now, are
  // fetched together before the first is needed.
  CompletionEntries prefetch(block, batch.task_count);
  std::span<const std::byte> output;
  for (CompletionEntry entry; prefetch.next(entry, output);)
    if (uint32_t(entry.task_id) < leases_.size()) __builtin_prefetch(&leases_[uint32_t(entry.task_id)]);
  CompletionEntries entries(block, batch.task_count);
  size_t named = 0;
  for (CompletionEntry entry; entries.next(entry, output); ++named) complete(slot, batch.epoch, entry, output);
  if (entries.malformed()) unnamed(batch.task_count - uint32_t(named));
  slot.outputs.release(batch.entries_position, batch.entries_bytes);
  return batch.task_count;
}

void SchedulerTile::complete(Slot& slot, uint64_t epoch, const CompletionEntry& completion,
                             std::span<const std::byte> output) {
  if (epoch == slot.counted_epoch && slot.in_flight > 0) --slot.in_flight;
  uint32_t index = uint32_t(completion.task_id);
  uint32_t generation = uint32_t(completion.task_id >> 32);
  bool leased = index < leases_.size() && current({index, generation}, LeaseState::dispatched) &&
                leases_[index].attempt == completion.attempt && leases_[index].epoch == epoch &&
                &slots_[leases_[index].slot] == &slot;
  if (!leased) {
    add(counters_->completions_stale, 1);
    return;
  }
  switch (completion.status) {
    case KEEL_STATUS_OK:
      if (output.size() > ledger::compute_output_bytes_max) {
        answer(index, ledger::ComputeOutcome::plugin_failed, status_output_overrun, {});
      } else {
        answer(index, ledger::ComputeOutcome::succeeded, KEEL_STATUS_OK, output);
      }
      return;
    case KEEL_STATUS_FAILED:
      leases_[index].only_timeouts = false;
      retry_or_fail(index, false, shm::monotonic_ns());
      return;
    default:  // permanent: bad input, output too small for output_bytes_max, overrun, the plugin's own
      answer(index, ledger::ComputeOutcome::plugin_failed, completion.status, {});
      return;
  }
}

// --- pool incarnations: ready, dead, quarantined ---

void SchedulerTile::watch_pools(uint64_t now_ns) {
  for (uint32_t slot_index = 0; slot_index < slots_.size(); ++slot_index) {
    Slot& slot = slots_[slot_index];
    if (slot.control == nullptr || slot.quarantined) continue;
    PoolControl& control = *slot.control;
    if (control.quarantined.load(std::memory_order_acquire) != 0) {
      slot.quarantined = true;
      PoolState& pool = pools_[slot.pool];
      if (pool.quarantine.empty()) pool.quarantine = std::string(control.name) + ": " + control.quarantine;
      bool all = true;
      for (uint32_t other : options_.pools[slot.pool].slots) all = all && slots_[other].quarantined;
      pool.quarantined = all;
    }
    // epoch and ready_epoch before dead_epoch: the supervisor stores dead_epoch before it
    // moves the epoch, so an epoch read here comes with at least its predecessor's death.
    uint64_t epoch = control.epoch.load(std::memory_order_acquire);
    uint64_t ready_epoch = control.ready_epoch.load(std::memory_order_acquire);
    uint64_t dead = control.dead_epoch.load(std::memory_order_acquire);
    if (slot.counted_epoch != 0 && dead >= slot.counted_epoch) lose_incarnations(slot_index, dead, now_ns);
    if (slot.quarantined) continue;
    if (epoch != slot.counted_epoch && epoch > dead && ready_epoch == epoch) {
      // A new incarnation: nothing of ours in it yet, and whatever an older one held is
      // lost (the backstop; its death was seen above).
      if (slot.counted_epoch != 0) lose_incarnations(slot_index, epoch - 1, now_ns);
      slot.counted_epoch = epoch;
      slot.in_flight = 0;
    }
  }
  // A pool with no slot left fails what waits for it.
  for (uint32_t pool_index = 0; pool_index < pools_.size(); ++pool_index) {
    PoolState& pool = pools_[pool_index];
    while (pool.quarantined && !pool.ready.empty()) {
      LeaseRef ref = pool.ready.front();
      pool.ready.pop_front();
      if (current(ref, LeaseState::queued))
        answer(ref.index, ledger::ComputeOutcome::quarantined, 0, text_bytes(pool.quarantine));
    }
  }
}

// Every task the slot's incarnations up to epoch_last held is lost with them: each is
// sent again (or fails, its retries spent).
void SchedulerTile::lose_incarnations(uint32_t slot_index, uint64_t epoch_last, uint64_t now_ns) {
  for (uint32_t index = 0; index < leases_used_; ++index) {
    Lease& lease = leases_[index];
    if (lease.state != LeaseState::dispatched || lease.slot != slot_index || lease.epoch > epoch_last) continue;
    add(counters_->tasks_redispatched, 1);
    lease.only_timeouts = false;
    retry_or_fail(index, false, now_ns);
  }
  slots_[slot_index].counted_epoch = 0;
  slots_[slot_index].in_flight = 0;
}

void SchedulerTile::scan_leases(uint64_t now_ns) {
  if (now_ns < deadline_ns_min_) return;
  uint64_t deadline_ns_min = UINT64_MAX;
  for (uint32_t index = 0; index < leases_used_; ++index) {
    Lease& lease = leases_[index];
    if (lease.state != LeaseState::dispatched) continue;
    if (lease.deadline_ns > now_ns) {
      deadline_ns_min = std::min(deadline_ns_min, lease.deadline_ns);
      continue;
    }
    // The pool may still answer; that answer is then stale, and the slot's credit comes
    // back with it.
    add(counters_->tasks_expired, 1);
    retry_or_fail(index, true, now_ns);
  }
  deadline_ns_min_ = deadline_ns_min;
}

void SchedulerTile::retry_or_fail(uint32_t index, bool timed_out, uint64_t now_ns) {
  Lease& lease = leases_[index];
  if (lease.attempt > lease.retries_max) {
    answer(index, lease.only_timeouts && timed_out ? ledger::ComputeOutcome::timed_out
                                                   : ledger::ComputeOutcome::retries_exhausted,
           0, {});
    return;
  }
  uint64_t backoff_ms = std::min<uint64_t>(uint64_t(lease.backoff_ms) << std::min<uint32_t>(lease.attempt - 1, 20),
                                           lease.timeout_ms);
  lease.state = LeaseState::waiting_retry;
  retries_.push({now_ns + backoff_ms * 1'000'000, {index, lease.generation}});
}

size_t SchedulerTile::release_retries(uint64_t now_ns) {
  size_t released = 0;
  while (!retries_.empty() && retries_.top().due_ns <= now_ns) {
    LeaseRef ref = retries_.top().lease;
    retries_.pop();
    if (!current(ref, LeaseState::waiting_retry)) continue;
    Lease& lease = leases_[ref.index];
    lease.state = LeaseState::queued;
    add(counters_->tasks_retried, 1);
    pools_[lease.pool].ready.push_back(ref, tier_of_shard(lease.shard));
    ++released;
  }
  return released;
}

// --- tasks from the shards ---

size_t SchedulerTile::take_requests(size_t budget) {
  size_t taken = 0;
  for (size_t turn = 0; turn < shards_.size() && taken < budget; ++turn) {
    uint32_t shard_index = uint32_t((next_shard_ + turn) % shards_.size());
    ShardPorts& ports = shards_[shard_index];
    while (taken < budget && !free_leases_.empty()) {
      // A run at once, the ring's head stored once for it (see take_completions).
      std::span<const std::byte> run =
          ports.requests.peek(std::min({budget - taken, free_leases_.size(), message_run_max}));
      const size_t count = run.size() / sizeof(TaskRequestMessage);
      if (count == 0) break;
      for (size_t index = 0; index < count; ++index)
        take_request(shard_index, run.subspan(index * sizeof(TaskRequestMessage), sizeof(TaskRequestMessage)));
      ports.requests.release(count);
      taken += count;
    }
  }
  if (!shards_.empty()) next_shard_ = (next_shard_ + 1) % uint32_t(shards_.size());
  return taken;
}

// One request (its ring slot, `bytes`) under a free lease: queued for its pool, or
// answered at once when no pool can take it.
void SchedulerTile::take_request(uint32_t shard_index, std::span<const std::byte> bytes) {
  ShardPorts& ports = shards_[shard_index];
  TaskRequestMessage request;
  std::memcpy(&request, bytes.data(), offsetof(TaskRequestMessage, input));
  bool in_arena = request.input_bytes > request_inline_bytes;
  std::span<const std::byte> input = in_arena ? ports.request_inputs.read(request.input_position, request.input_bytes)
                                              : bytes.subspan(offsetof(TaskRequestMessage, input), request.input_bytes);
  uint32_t index = free_leases_.back();
  free_leases_.pop_back();
  leases_used_ = std::max(leases_used_, index + 1);
  Lease& lease = leases_[index];
  lease.task_mark = request.task_mark;
  lease.issued_ns = request.issued_ns;
  lease.attempt = 0;
  lease.shard = shard_index;
  lease.type = request.compute_type;
  lease.only_timeouts = true;
  lease.input.assign(input.begin(), input.end());
  if (in_arena) ports.request_inputs.release(request.input_position, request.input_bytes);
  add(counters_->tasks_taken, 1);
  lease.pool =
      request.compute_type < options_.types.size() ? options_.types[request.compute_type].pool : no_pool_index;
  if (lease.pool == no_pool_index) {
    answer(index, ledger::ComputeOutcome::no_pool, 0, text_bytes("no [[pool]] serves this compute type"));
  } else if (pools_[lease.pool].quarantined) {
    answer(index, ledger::ComputeOutcome::quarantined, 0, text_bytes(pools_[lease.pool].quarantine));
  } else {
    const SchedulerPool& pool = options_.pools[lease.pool];
    bool own = request.timeout_ms != 0;
    lease.timeout_ms = own ? std::min(request.timeout_ms, pool.timeout_ms) : pool.timeout_ms;
    lease.retries_max = own ? request.retries_max : pool.retries_max;
    lease.backoff_ms = own ? request.backoff_ms : pool.backoff_ms;
    lease.state = LeaseState::queued;
    pools_[lease.pool].ready.push_back({index, lease.generation}, tier_of_shard(shard_index));
  }
}

// --- sending tasks to the pools ---

SchedulerTile::Slot* SchedulerTile::pick_slot(uint32_t pool_index) {
  const SchedulerPool& pool = options_.pools[pool_index];
  Slot* local = nullptr;
  for (uint32_t slot_index : pool.slots)
    if (slots_[slot_index].node == options_.node && usable(slots_[slot_index])) local = &slots_[slot_index];
  uint32_t local_limit = std::max<uint32_t>(1, uint32_t(uint64_t(pool.in_flight_max) * options_.spill_percent / 100));
  if (local != nullptr && local->in_flight < std::min(local_limit, pool.in_flight_max)) return local;
  for (uint32_t slot_index : pool.slots) {
    Slot& remote = slots_[slot_index];
    if (&remote != local && usable(remote) && remote.in_flight < pool.in_flight_max) return &remote;
  }
  if (local != nullptr && local->in_flight < pool.in_flight_max) return local;
  return nullptr;
}

// How many more tasks the slot takes before pick_slot would choose another: a local
// slot up to the spill share, then (when no remote slot has credit) up to in_flight_max;
// a remote slot up to in_flight_max.
uint32_t SchedulerTile::slot_room(uint32_t pool_index, const Slot& slot) const {
  const SchedulerPool& pool = options_.pools[pool_index];
  uint32_t limit = pool.in_flight_max;
  if (slot.node == options_.node) {
    uint32_t local_limit = std::max<uint32_t>(1, uint32_t(uint64_t(pool.in_flight_max) * options_.spill_percent / 100));
    if (slot.in_flight < local_limit) limit = std::min(limit, local_limit);
  }
  return limit > slot.in_flight ? limit - slot.in_flight : 0;
}

size_t SchedulerTile::dispatch(size_t budget, uint64_t now_ns) {
  size_t sent = 0;
  for (uint32_t turn = 0; turn < pools_.size(); ++turn) {
    uint32_t pool_index = (next_dispatch_pool_ + turn) % uint32_t(pools_.size());
    PoolState& pool = pools_[pool_index];
    while (sent < budget && !pool.ready.empty()) {
      LeaseRef ref = pool.ready.front();
      if (!current(ref, LeaseState::queued)) {
        pool.ready.pop_front();
        continue;
      }
      Slot* slot = pick_slot(pool_index);
      if (slot == nullptr) break;  // no credit anywhere: the tasks wait
      size_t batch = send_batch(pool_index, *slot, budget - sent, now_ns);
      if (batch == 0) break;  // the pool has not taken the earlier batches yet
      sent += batch;
    }
  }
  if (!pools_.empty()) next_dispatch_pool_ = (next_dispatch_pool_ + 1) % uint32_t(pools_.size());
  for (Slot& slot : slots_) {
    slot.tasks.publish(slot.unpublished);
    slot.unpublished = 0;
  }
  return sent;
}

// Sends the pool's ready tasks, from the front (which is current), to the slot as one
// batch: as many as the slot's room, the budget and the batch limits allow. The arena
// block is reserved for a full batch (or the first task alone when that does not fit)
// and shortened to what was written. Returns the tasks sent: 0 when the ring or the
// arena is full.
size_t SchedulerTile::send_batch(uint32_t pool_index, Slot& slot, size_t budget, uint64_t now_ns) {
  PoolState& pool = pools_[pool_index];
  std::span<std::byte> message_slot = claim_task_slot(slot);
  if (message_slot.empty()) return 0;
  const size_t count_max = std::min<size_t>({batch_tasks_max, slot_room(pool_index, slot), budget});
  const size_t first_bytes = task_entry_bytes(leases_[pool.ready.front().index].input.size());
  std::optional<shm::ArenaBlock> block;
  if (count_max > 1 && first_bytes < batch_bytes_max) block = slot.inputs.reserve(batch_bytes_max);
  if (!block) block = slot.inputs.reserve(first_bytes);
  if (!block) return 0;
  const uint32_t slot_index = uint32_t(&slot - slots_.data());
  size_t offset = 0, count = 0;
  while (count < count_max && !pool.ready.empty()) {
    LeaseRef ref = pool.ready.front();
    if (!current(ref, LeaseState::queued)) {
      pool.ready.pop_front();
      continue;
    }
    Lease& lease = leases_[ref.index];
    if (offset + task_entry_bytes(lease.input.size()) > block->bytes.size()) break;
    lease.attempt += 1;
    lease.epoch = slot.counted_epoch;
    lease.slot = slot_index;
    lease.deadline_ns = now_ns + uint64_t(lease.timeout_ms) * 1'000'000;
    deadline_ns_min_ = std::min(deadline_ns_min_, lease.deadline_ns);
    lease.state = LeaseState::dispatched;
    TaskEntry entry{.task_id = task_id_of(ref.index, ref.generation),
                    .attempt = lease.attempt,
                    .compute_type = options_.types[lease.type].type_in_pool,
                    .input_bytes = uint32_t(lease.input.size()),
                    .reserved = 0};
    offset += write_task_entry(block->bytes.subspan(offset), entry, lease.input);
    if (lease.attempt > 1) ++slot.tasks_retried;
    pool.ready.pop_front();
    ++count;
  }
  slot.inputs.shorten_last(*block, offset);
  TaskBatchMessage message{.epoch = slot.counted_epoch,
                           .dispatched_ns = now_ns,
                           .entries_position = block->position,
                           .entries_bytes = uint32_t(offset),
                           .task_count = uint32_t(count),
                           .reserved = {}};
  std::memcpy(message_slot.data(), &message, sizeof message);
  ++slot.unpublished;
  slot.in_flight += uint32_t(count);
  slot.tasks_dispatched += count;
  if (slot.node != options_.node) add(counters_->tasks_spilled, count);  // counted once they are sent
  add(counters_->tasks_dispatched, count);
  return count;
}

// What this scheduler has sent each pool, for monitors (pool_table.h's PoolLane): a few
// stores per slot a few times a second; the lane is this scheduler's alone.
void SchedulerTile::publish_lane_counters(uint64_t now_ns) {
  for (Slot& slot : slots_) {
    if (slot.lane == nullptr) continue;
    slot.lane->tasks_in_flight.store(slot.in_flight, std::memory_order_relaxed);
    slot.lane->tasks_dispatched.store(slot.tasks_dispatched, std::memory_order_relaxed);
    slot.lane->tasks_retried.store(slot.tasks_retried, std::memory_order_relaxed);
    slot.lane->published_ns.store(now_ns, std::memory_order_release);
  }
}

// The next slot of the slot's task ring, after the ones written this round and not yet
// published (dispatch publishes each ring once per round: one release store and at most
// one doorbell ring for the batch). Empty when the ring is full.
std::span<std::byte> SchedulerTile::claim_task_slot(Slot& slot) {
  std::span<std::byte> claimed = slot.tasks.claim(slot.unpublished + 1);
  if (claimed.size() < (slot.unpublished + 1) * sizeof(TaskBatchMessage)) {
    // Full, or the free slots wrap: publish what is written and ask for one slot.
    slot.tasks.publish(slot.unpublished);
    slot.unpublished = 0;
    claimed = slot.tasks.claim(1);
    if (claimed.empty()) return {};
  }
  return claimed.subspan(slot.unpublished * sizeof(TaskBatchMessage), sizeof(TaskBatchMessage));
}

// --- results back to the shards ---

void SchedulerTile::answer(uint32_t index, ledger::ComputeOutcome outcome, int32_t plugin_status,
                           std::span<const std::byte> output) {
  Lease& lease = leases_[index];
  const SchedulerShard& shard = options_.shards[lease.shard];
  lease.result_entry.resize(ledger::compute_result_entry_bytes(output.size()));
  ledger::write_compute_result_entry(lease.result_entry, lease.task_mark, shard.shard_in_chain,
                                     std::max<uint32_t>(lease.attempt, 1), outcome, plugin_status, output);
  lease.state = LeaseState::answering;
  if (outcome != ledger::ComputeOutcome::succeeded) add(counters_->results_failed, 1);
  shards_[lease.shard].answers.push_back({index, lease.generation});
}

// A shard's waiting answers go back as compute_results transactions of up to
// result_batch_entries_max entries and result_batch_bytes_max bytes of entries (one
// bigger entry goes alone): one ring message, one check, one leaf hash and one ledger
// transaction per batch rather than per task. Batches form from what is waiting when the
// tile polls, so a lone result is never held back for company.
size_t SchedulerTile::send_results() {
  size_t sent = 0;
  uint64_t now_ns = 0;
  for (ShardPorts& ports : shards_) {
    const SchedulerShard& shard = options_.shards[size_t(&ports - shards_.data())];
    size_t unpublished = 0;
    std::span<std::byte> claimed;
    while (!ports.answers.empty()) {
      size_t count = 0;
      size_t entry_bytes = 0;
      for (const LeaseRef& ref : ports.answers) {
        size_t bytes = leases_[ref.index].result_entry.size();
        if (count == result_batch_entries_max || (count > 0 && entry_bytes + bytes > result_batch_bytes_max)) break;
        entry_bytes += bytes;
        ++count;
      }
      // A batch's entries ascend by task mark (the ledger's rule: no task twice in one).
      // Answers mostly come back in the order their tasks went out, already ascending: the
      // check is one pass where the sort was a tenth of this function's time.
      auto by_mark = [this](const LeaseRef& a, const LeaseRef& b) {
        return leases_[a.index].task_mark < leases_[b.index].task_mark;
      };
      auto batch_end = ports.answers.begin() + std::ptrdiff_t(count);
      if (!std::is_sorted(ports.answers.begin(), batch_end, by_mark))
        std::sort(ports.answers.begin(), batch_end, by_mark);
      size_t tx_bytes = ledger::compute_results_tx_bytes(entry_bytes);
      // Claimed in runs and published once per shard: one release store and at most one
      // doorbell ring for the lot.
      if (claimed.size() < (unpublished + 1) * sizeof(TaskResultMessage)) {
        ports.results.publish(unpublished);
        unpublished = 0;
        // Never more than the producer knows are free (asking for more would count a full
        // event), nor than there are answers (an upper bound on the batches).
        claimed = ports.results.claim(
            std::max<size_t>(1, std::min<size_t>(ports.answers.size(), ports.results.free_slots_cached())));
        if (claimed.empty()) break;
      }
      std::span<std::byte> slot = claimed.subspan(unpublished * sizeof(TaskResultMessage), sizeof(TaskResultMessage));
      TaskResultMessage message;
      message.tx_bytes = uint32_t(tx_bytes);
      message.reserved = 0;
      message.tx_position = 0;
      std::span<std::byte> tx;
      if (tx_bytes > result_inline_bytes) {
        std::optional<shm::ArenaBlock> block = ports.result_txs.reserve(tx_bytes);
        if (!block) break;  // the shard has not ordered the earlier results yet
        message.tx_position = block->position;
        tx = block->bytes.first(tx_bytes);
      } else {
        tx = slot.subspan(offsetof(TaskResultMessage, tx), tx_bytes);
      }
      std::memcpy(slot.data(), &message, offsetof(TaskResultMessage, tx));
      ledger::write_compute_results_head(tx, shard.shard_in_chain, uint32_t(count),
                                         leases_[ports.answers.front().index].task_mark);
      size_t offset = ledger::compute_results_tx_bytes(0);
      if (now_ns == 0) now_ns = shm::monotonic_ns();
      for (size_t entry = 0; entry < count; ++entry) {
        LeaseRef ref = ports.answers.front();
        Lease& lease = leases_[ref.index];
        std::memcpy(tx.data() + offset, lease.result_entry.data(), lease.result_entry.size());
        offset += lease.result_entry.size();
        ports.answers.pop_front();
        uint64_t latency_ns = now_ns > lease.issued_ns ? now_ns - lease.issued_ns : 0;
        dispatch_latency_.record(latency_ns);
        add(counters_->dispatch_latency_ns_sum, latency_ns);
        free_lease(ref.index);
      }
      add(counters_->results_returned, count);
      ++unpublished;
      sent += count;
    }
    ports.results.publish(unpublished);
  }
  return sent;
}

void SchedulerTile::free_lease(uint32_t index) {
  Lease& lease = leases_[index];
  lease.state = LeaseState::free;
  ++lease.generation;
  if (lease.input.capacity() > kept_buffer_bytes) std::vector<std::byte>().swap(lease.input);
  if (lease.result_entry.capacity() > kept_buffer_bytes) std::vector<std::byte>().swap(lease.result_entry);
  free_leases_.push_back(index);
}

}  // namespace keel::sched
