#include "engine/node/shard_tile.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "shm/segment.h"

namespace keel::node {

namespace {

// Credits waiting for room in the rings to other shards, at most; past this the shard
// takes no more input (a transfer may add one more credit).
constexpr size_t outbound_credits_max = 1 << 16;

// Every schedule of every plan a shard can hold could be a timer of this shard.
constexpr uint32_t timer_wheel_capacity = ledger::shard_flow_limits.plans_max * flow::flow_schedules_max;
// A fire the ledger did not record (the shard was full of live flows) is tried again after this.
constexpr uint64_t timer_retry_ms = 1000;

uint64_t wall_clock_ns() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000ull + uint64_t(now.tv_nsec);
}

// CLOCK_REALTIME_COARSE: the wall time of the last scheduler tick (up to one tick old). Timers
// fire on whole milliseconds of schedules minutes apart, and fire_timers reads this on
// every poll of every shard: the full-resolution clock cost 1.6% of the engine's CPU.
uint64_t wall_clock_coarse_ns() {
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000ull + uint64_t(now.tv_nsec);
}

void add_max(std::atomic<uint64_t>& counter, uint64_t value) {
  if (value > counter.load(std::memory_order_relaxed)) counter.store(value, std::memory_order_relaxed);
}

void add(std::atomic<uint64_t>& counter, uint64_t value) {
  counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
}

// Where a credit sits in its origin's history, packed as CreditMark::pack.
uint64_t credit_position(const ledger::OutboundCredit& credit) {
  ledger::CreditBody body = credit.body();
  return ledger::CreditMark::pack(body.origin_height, body.origin_index);
}

}  // namespace

Result<ShardPortsJoined> join_shard_ports(std::byte* base, const ShardTableView& table,
                                          const client::ShardPorts& gateway_ports, uint32_t global_shard) {
  ShardPortsJoined ports;
  const ShardControl& control = table.control(global_shard);
  auto submit = shm::RingConsumer::join(base, gateway_ports.submit_ring);
  auto submit_arena = shm::ArenaReader::join(base, gateway_ports.submit_arena);
  auto receipts = shm::RingProducer::join(base, gateway_ports.receipt_ring);
  auto blocks = shm::RingProducer::join(base, control.block_ring);
  auto block_arena = shm::ArenaWriter::join(base, control.block_arena);
  if (!submit) return submit.error();
  if (!submit_arena) return submit_arena.error();
  if (!receipts) return receipts.error();
  if (!blocks) return blocks.error();
  if (!block_arena) return block_arena.error();
  ports.submit = *submit;
  ports.submit_arena = *submit_arena;
  ports.receipts = *receipts;
  ports.blocks = *blocks;
  ports.block_arena = *block_arena;
  ports.credits_in.resize(control.shard_count);
  ports.credits_out.resize(control.shard_count);
  ports.marks_published.resize(control.shard_count, nullptr);
  ports.marks_observed.resize(control.shard_count, nullptr);
  for (uint32_t other = 0; other < control.shard_count; ++other) {
    if (other == control.shard) continue;
    uint32_t other_global = control.first_global_shard + other;
    auto in = shm::RingConsumer::join(base, table.credit_ring(other_global, global_shard));
    auto out = shm::RingProducer::join(base, table.credit_ring(global_shard, other_global));
    if (!in) return in.error();
    if (!out) return out.error();
    ports.credits_in[other] = *in;
    ports.credits_out[other] = *out;
    ports.marks_published[other] = &table.durable_credit_mark(other_global, global_shard);
    ports.marks_observed[other] = &table.durable_credit_mark(global_shard, other_global);
  }
  return ports;
}

Result<ShardComputePorts> join_compute_ports(std::byte* base, const sched::TaskTableView& table, uint32_t global_shard,
                                             const sched::ComputeTypeTable* types) {
  if (global_shard >= table.shard_count()) return make_error("sched.tasks", "no task ports for shard " + std::to_string(global_shard));
  const sched::ShardTaskPorts& where = table.shard(global_shard);
  auto requests = shm::RingProducer::join(base, where.request_ring);
  auto inputs = shm::ArenaWriter::join(base, where.request_arena);
  auto results = shm::RingConsumer::join(base, where.result_ring);
  auto result_txs = shm::ArenaReader::join(base, where.result_arena);
  if (!requests) return requests.error();
  if (!inputs) return inputs.error();
  if (!results) return results.error();
  if (!result_txs) return result_txs.error();
  return ShardComputePorts{*requests, *inputs, *results, *result_txs, types};
}

ShardTile::ShardTile(ledger::ShardExecutor executor, ShardPortsJoined ports, ShardControl* control,
                     uint32_t chain_index, uint32_t block_us_max, DrainState* drain,
                     std::vector<ledger::OutboundCredit> pending_credits, SnapshotPolicy snapshots,
                     TimerClock timer_clock, std::vector<std::vector<std::byte>> startup_txs)
    : executor_(std::move(executor)),
      ports_(std::move(ports)),
      control_(control),
      chain_index_(chain_index),
      block_ns_max_(uint64_t(block_us_max) * 1000),
      drain_(drain),
      name_("shard." + executor_.identity().chain + "." + std::to_string(executor_.identity().shard)),
      outbound_(executor_.identity().shard_count),
      snapshots_(std::move(snapshots)),
      timer_clock_(timer_clock),
      timer_wheel_(timer_wheel_capacity, timer_clock_.now_ms()),
      startup_txs_(std::make_move_iterator(startup_txs.begin()), std::make_move_iterator(startup_txs.end())) {
  // Recovery's credits come from durable blocks (or a snapshot): they are unconfirmed
  // until their destination's durable mark covers them.
  for (ledger::OutboundCredit& credit : pending_credits) {
    outbound_[credit.destination_shard].credits.push_back(credit);
    ++unsent_count_;
  }
  executor_.set_flow_metrics_clock(&shm::monotonic_ns);
  control_->sealed_height.store(executor_.state().height, std::memory_order_relaxed);
  control_->compute_tasks_pending.store(uint32_t(executor_.state().pending_tasks.size()), std::memory_order_relaxed);
  // Tasks without a durable result: their earlier leases died with the last engine.
  if (ports_.compute) {
    std::vector<ledger::OutboundTask> pending = executor_.pending_task_list();
    tasks_out_count_ += pending.size();
    if (!pending.empty()) tasks_out_.push_back(std::move(pending));
  }
}

size_t ShardTile::poll(size_t budget) {
  if (quiescent_latched_) return 0;
  size_t work = release_durable();
  work += send_credits();
  work += send_tasks();
  size_t taken = 0;
  if (!startup_txs_.empty()) work += order_startup_txs();
  if (unsent_count_ < outbound_credits_max && startup_txs_.empty()) {
    if (!draining_) taken += take_credits(budget);
    if (!draining_) taken += take_results(budget - std::min(budget, taken));
    if (!draining_) taken += fire_timers();
    taken += take_engine_txs(budget - std::min(budget, taken));
    taken += take_submissions(budget - std::min(budget, taken));
  }
  work += taken;
  if (executor_.open_tx_count() > 0) {
    bool old = shm::monotonic_ns() - open_first_tx_ns_ >= block_ns_max_;
    bool persist_idle = taken < budget && ports_.blocks.drained();
    if ((old || persist_idle) && try_seal()) ++work;
  }
  if (product_table_) {
    uint64_t now_ns = shm::monotonic_coarse_ns();  // a 100 ms interval: the tick's time will do
    if (now_ns - products_published_ns_ >= product_publish_interval_ms * 1'000'000) {
      products_published_ns_ = now_ns;
      executor_.state().flows.product_loads(product_loads_);
      product_table_->publish(global_shard_, product_loads_, now_ns);
    }
  }
  return work;
}

void ShardTile::publish_products_to(ProductTableView table, uint32_t global_shard) {
  product_table_ = table;
  global_shard_ = global_shard;
  products_published_ns_ = 0;  // the first poll publishes
}

bool ShardTile::quiescent() {
  if (quiescent_latched_) return true;
  bool done = drain_->gateway_stopped.load(std::memory_order_acquire) && !ports_.submit.has_messages() &&
              executor_.open_tx_count() == 0 && pending_.empty();
  if (done && ports_.engine_txs)
    done = drain_->engine_txs_stopped.load(std::memory_order_acquire) && !ports_.engine_txs->has_messages();
  if (!done) return false;
  quiescent_latched_ = true;
  drain_->shards_quiescent.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

size_t ShardTile::release_durable() {
  size_t work = 0;
  uint64_t durable = control_->durable_height.load(std::memory_order_acquire);
  while (!pending_.empty() && pending_.front().height <= durable) {
    PendingBlock& front = pending_.front();
    const std::vector<ledger::Receipt>& receipts = front.block.receipts;
    // Receipts go out in batches: one claim and one publish (one tail store, one
    // doorbell) for as many as the gateway's ring has room for.
    while (front.receipts_released < receipts.size()) {
      size_t wanted = receipts.size() - front.receipts_released;
      std::span<std::byte> slots = ports_.receipts.claim(wanted);
      size_t room = slots.size() / sizeof(client::ReceiptMessage);
      if (room == 0) return work;  // the gateway is behind: try again next poll
      size_t written = 0;
      for (; room > 0 && front.receipts_released < receipts.size(); ++front.receipts_released) {
        size_t index = front.receipts_released;
        if (front.routes[index].client_slot == no_client) continue;  // a credit: nobody to answer
        client::ReceiptMessage message{};
        message.request_id = front.routes[index].request_id;
        message.height = front.height;
        message.index = uint32_t(index);
        message.status = uint16_t(receipts[index].status);
        message.client_slot = front.routes[index].client_slot;
        message.chain = chain_index_;
        std::memcpy(message.tx_hash, receipts[index].tx_hash.bytes.data(), 32);
        std::memcpy(slots.data() + written * sizeof message, &message, sizeof message);
        ++written;
        --room;
      }
      ports_.receipts.publish(written);
      work += written;
    }
    uint64_t rejected = 0;
    for (const ledger::Receipt& receipt : receipts) rejected += receipt.status != ledger::TxStatus::applied;
    for (ledger::OutboundCredit& credit : front.block.credits) {
      outbound_[credit.destination_shard].credits.push_back(credit);
      ++unsent_count_;
    }
    publish_credit_marks(front);
    forget_confirmed_credits();
    if (front.snapshot_state) submit_snapshot(front);
    uint64_t latency_us = (shm::monotonic_ns() - front.first_tx_ns) / 1000;
    add(control_->committed_txs, receipts.size());
    add(control_->rejected_txs, rejected);
    add(control_->commit_latency_us_sum, latency_us * receipts.size());
    add_max(control_->commit_latency_us_max, latency_us);
    add(control_->commit_latency_buckets[commit_latency_bucket(latency_us)], receipts.size());
    pending_.pop_front();
    ++work;
  }
  return work;
}

void ShardTile::publish_credit_marks(const PendingBlock& block) {
  for (uint32_t origin = 0; origin < block.credit_marks.size(); ++origin)
    if (ports_.marks_published[origin] != nullptr)
      ports_.marks_published[origin]->store(block.credit_marks[origin], std::memory_order_release);
}

void ShardTile::forget_confirmed_credits() {
  for (uint32_t destination = 0; destination < outbound_.size(); ++destination) {
    CreditQueue& queue = outbound_[destination];
    if (queue.credits.empty()) continue;
    uint64_t mark = ports_.marks_observed[destination]->load(std::memory_order_acquire);
    while (!queue.credits.empty() && credit_position(queue.credits.front()) <= mark) {
      queue.credits.pop_front();
      // Only a sent credit can be applied, but an unsent one covered anyway is not sent.
      if (queue.sent > 0) --queue.sent;
      else --unsent_count_;
    }
  }
}

// The captured state is exactly the state at this block's height, and the block is now
// durable, so the snapshot can never be ahead of the log.
void ShardTile::submit_snapshot(PendingBlock& block) {
  snapshot_pending_ = false;
  SnapshotJob job{snapshots_.global_shard, snapshots_.directory, {std::move(*block.snapshot_state), {}}};
  block.snapshot_state.reset();
  for (const CreditQueue& queue : outbound_)
    job.snapshot.credits.insert(job.snapshot.credits.end(), queue.credits.begin(), queue.credits.end());
  if (!snapshots_.writer->submit(std::move(job))) add(control_->snapshots_skipped, 1);
}

size_t ShardTile::send_credits() {
  size_t sent = 0;
  for (uint32_t destination = 0; destination < outbound_.size(); ++destination) {
    CreditQueue& queue = outbound_[destination];
    while (queue.sent < queue.credits.size()) {
      std::span<std::byte> slots = ports_.credits_out[destination].claim(queue.credits.size() - queue.sent);
      size_t count = slots.size() / sizeof(CreditMessage);
      if (count == 0) break;
      for (size_t index = 0; index < count; ++index) {
        CreditMessage message{};
        std::memcpy(message.tx, queue.credits[queue.sent + index].tx.data(), ledger::credit_tx_bytes);
        std::memcpy(slots.data() + index * sizeof message, &message, sizeof message);
      }
      ports_.credits_out[destination].publish(count);
      queue.sent += count;
      unsent_count_ -= count;
      sent += count;
    }
  }
  return sent;
}

size_t ShardTile::take_credits(size_t budget) {
  size_t taken = 0;
  for (uint32_t origin = 0; origin < ports_.credits_in.size() && taken < budget; ++origin) {
    if (origin == executor_.identity().shard) continue;
    shm::RingConsumer& ring = ports_.credits_in[origin];
    while (taken < budget) {
      std::span<const std::byte> slot = ring.peek(1);
      if (slot.empty()) break;
      std::span<const std::byte> tx = slot.first(ledger::credit_tx_bytes);
      ledger::TxView view;
      ledger::TxStatus checked = ledger::check_transaction(tx, ledger::TxOrigin::engine, &view);
      assert(checked == ledger::TxStatus::applied && view.type == ledger::TxType::credit);
      (void)checked;
      if (!make_room(tx.size())) return taken;
      order(view, tx, ReceiptRoute{0, no_client});
      ring.release(1);
      ++taken;
    }
  }
  return taken;
}

size_t ShardTile::take_submissions(size_t budget) {
  size_t taken = 0;
  while (taken < budget) {
    std::span<const std::byte> slot = ports_.submit.peek(1);
    if (slot.empty()) break;
    client::RoutedSubmit submit;
    std::memcpy(&submit, slot.data(), sizeof submit);
    bool in_arena = submit.tx_bytes > client::submit_inline_bytes_max;
    std::span<const std::byte> tx = in_arena ? ports_.submit_arena.read(submit.arena_position, submit.tx_bytes)
                                             : std::span<const std::byte>(submit.inline_tx, submit.tx_bytes);
    ledger::TxView view;
    ledger::TxStatus status = tx.size() == submit.tx_bytes
                                  ? ledger::check_transaction(tx, ledger::TxOrigin::client, &view)
                                  : ledger::TxStatus::bad_length;
    if (status == ledger::TxStatus::applied && ledger::home_shard(view, executor_.identity().shard_count) !=
                                                   executor_.identity().shard)
      status = ledger::TxStatus::wrong_shard;
    std::optional<ledger::ClientId> payer;
    if (status == ledger::TxStatus::applied && executor_.access().credits_required) {
      payer = submitter(submit.client_slot);
      if (!payer) status = ledger::TxStatus::bad_client_id;
    }
    if (status != ledger::TxStatus::applied) {
      // The gateway checked and routed it, so this is an engine bug; answer, never crash.
      if (!answer_at_once(submit, status)) break;
    } else {
      const ledger::ClientId* charged = payer ? &*payer : nullptr;
      if (!make_room(tx.size(), charged)) break;
      // The producer hashed it (client/protocol.h): one SHA-256 block less on this core.
      ledger::Hash32 routed_leaf;
      bool hashed = routed_leaf_check_.trusting() && !in_arena &&
                    (submit.flags & client::routed_flag_leaf_hash) != 0 &&
                    submit.tx_bytes <= client::routed_hashed_tx_bytes_max;
      if (hashed) {
        std::memcpy(routed_leaf.bytes.data(), submit.inline_tx + client::routed_leaf_hash_at,
                    client::routed_leaf_hash_bytes);
        hashed = routed_leaf_check_.accept(tx, routed_leaf);
        if (!hashed)
          std::fprintf(stderr,
                       "keel: chain %s shard %u: a routed transaction's leaf hash does not match its bytes (an engine "
                       "bug); this shard hashes every transaction itself from now on\n",
                       executor_.identity().chain.c_str(), executor_.identity().shard);
      }
      ledger::TxStatus ordered = order(view, tx, ReceiptRoute{submit.request_id, submit.client_slot}, charged,
                                       hashed ? &routed_leaf : nullptr);
      // Refused unordered (no_credit, compute_backlog_full), nothing changed: with no room
      // for its receipt, it waits in the ring.
      if (!ledger::execute_ordered(ordered) && !answer_at_once(submit, ordered)) break;
    }
    if (in_arena) ports_.submit_arena.release(submit.arena_position, submit.tx_bytes);
    ports_.submit.release(1);
    ++taken;
  }
  return taken;
}

bool RoutedLeafCheck::accept(std::span<const std::byte> tx, const ledger::Hash32& routed) {
  if (!trusting_) return false;
  uint64_t taken = taken_++;
  if (taken >= checks_full && taken % check_every != 0) return true;
  if (ledger::hash_leaf(tx) == routed) return true;
  trusting_ = false;
  return false;
}

// Claimed in runs and published once per run: one release store and at most one doorbell
// ring for as many tasks as the ring has room for, and one clock read for all of them
// (they leave together).
size_t ShardTile::send_tasks() {
  if (!ports_.compute || tasks_out_count_ == 0) return 0;
  size_t sent = 0;
  size_t unpublished = 0;
  std::span<std::byte> claimed;
  uint64_t now_ns = shm::monotonic_ns();
  // Runs of tasks share a type: its index is looked up once per run, not hashed per task.
  // (A copy of the name: the task it came from may be gone with its block's list.)
  std::string type_name;
  uint32_t type_index = 0;
  bool type_known = false;
  while (tasks_out_count_ != 0) {
    const ledger::OutboundTask& task = tasks_out_.front()[tasks_out_front_sent_];
    if (claimed.size() < (unpublished + 1) * sizeof(sched::TaskRequestMessage)) {
      ports_.compute->requests.publish(unpublished);
      unpublished = 0;
      // No more than the producer knows are free (asking for more counts a full event).
      claimed = ports_.compute->requests.claim(
          std::max<size_t>(1, std::min<size_t>(tasks_out_count_, ports_.compute->requests.free_slots_cached())));
      if (claimed.empty()) break;  // the scheduler is behind (or every lease is taken)
    }
    std::span<std::byte> slot = claimed.subspan(unpublished * sizeof(sched::TaskRequestMessage));
    sched::TaskRequestMessage message;
    message.task_mark = task.task_mark;
    message.input_position = 0;
    message.issued_ns = now_ns;
    if (!type_known || task.compute_type != type_name) {
      type_name = task.compute_type;
      type_index = ports_.compute->types->index_of(type_name);
      type_known = true;
    }
    message.compute_type = type_index;
    message.input_bytes = uint32_t(task.input.size());
    message.timeout_ms = task.timeout_ms;
    message.retries_max = task.retries_max;
    message.backoff_ms = task.backoff_ms;
    message.reserved = 0;
    if (task.input.size() > sched::request_inline_bytes) {
      std::optional<shm::ArenaBlock> block = ports_.compute->request_inputs.reserve(task.input.size());
      if (!block) break;  // the claimed slot stays unwritten and unpublished: taken again next poll
      std::memcpy(block->bytes.data(), task.input.data(), task.input.size());
      message.input_position = block->position;
      std::memcpy(slot.data(), &message, offsetof(sched::TaskRequestMessage, input));
    } else {
      std::memcpy(slot.data(), &message, offsetof(sched::TaskRequestMessage, input));
      if (!task.input.empty())  // an empty vector's data() may be null, which memcpy may not take
        std::memcpy(slot.data() + offsetof(sched::TaskRequestMessage, input), task.input.data(), task.input.size());
    }
    ++unpublished;
    if (task.ready_ns != 0) ready_to_dispatch_.record(now_ns - std::min(task.ready_ns, now_ns));
    --tasks_out_count_;
    if (++tasks_out_front_sent_ == tasks_out_.front().size()) {
      executor_.reuse_task_list(std::move(tasks_out_.front()));
      tasks_out_.pop_front();
      tasks_out_front_sent_ = 0;
    }
    ++sent;
  }
  ports_.compute->requests.publish(unpublished);
  return sent;
}

size_t ShardTile::order_startup_txs() {
  size_t ordered = 0;
  while (!startup_txs_.empty()) {
    const std::vector<std::byte>& tx = startup_txs_.front();
    ledger::TxView view;
    ledger::TxStatus checked = ledger::check_transaction(tx, ledger::TxOrigin::engine, &view);
    assert(checked == ledger::TxStatus::applied);  // the engine built it from a checked config
    if (checked == ledger::TxStatus::applied) {
      if (!make_room(tx.size())) break;
      order(view, tx, ReceiptRoute{0, no_client});
    }
    startup_txs_.pop_front();
    ++ordered;
  }
  return ordered;
}

uint64_t TimerClock::now_ms() const {
  // A test's sped-up clock multiplies the tick's 4 ms by its rate: it reads the fine clock.
  uint64_t real_ms = (rate == 0 ? wall_clock_coarse_ns() : wall_clock_ns()) / 1'000'000;
  if (rate == 0) return real_ms;
  uint64_t since_anchor_ms = real_ms > anchor_s * 1000 ? real_ms - anchor_s * 1000 : 0;
  return virtual_start_s * 1000 + since_anchor_ms * rate;
}

Result<TimerClock> TimerClock::from_environment() {
  const char* text = std::getenv("KEEL_TIMER_CLOCK");
  if (text == nullptr || *text == '\0') return TimerClock{};
  TimerClock clock;
  unsigned long long anchor = 0, start = 0;
  unsigned rate = 0;
  int used = 0;
  if (std::sscanf(text, "%llu:%llu:%u%n", &anchor, &start, &rate, &used) != 3 || text[used] != '\0' || rate == 0 ||
      rate > 1'000'000 || start > flow::cron_time_s_max)
    return make_error("KEEL_TIMER_CLOCK", "\"" + std::string(text) +
                                              "\" is not anchor_s:virtual_start_s:rate (rate 1 to 1000000)");
  clock.anchor_s = anchor;
  clock.virtual_start_s = start;
  clock.rate = rate;
  return clock;
}

void ShardTile::rebuild_timer_wheel() {
  for (uint64_t id : timer_wheel_ids_) timer_wheel_.cancel(id);
  timer_wheel_ids_.clear();
  const flow::FlowTable& flows = executor_.state().flows;
  for (const auto& [id, timer] : flows.timers()) {
    if (timer.next_fire_s == flow::timer_never) continue;
    // An unarmed timer is due at once: its first transaction arms it with this clock.
    uint64_t due_ms = timer.next_fire_s == flow::timer_unarmed ? 0 : timer.next_fire_s * 1000;
    Result<void> inserted = timer_wheel_.insert(id, due_ms);
    assert(inserted);  // ids are unique and the wheel holds every timer a shard can have
    (void)inserted;
    timer_wheel_ids_.push_back(id);
  }
  timers_generation_seen_ = flows.timers_generation();
  timer_next_due_ms_ = timer_wheel_.next_due_ms().value_or(UINT64_MAX);
}

size_t ShardTile::fire_timers() {
  const flow::FlowTable& flows = executor_.state().flows;
  if (flows.timers_generation() != timers_generation_seen_) rebuild_timer_wheel();
  if (timer_next_due_ms_ == UINT64_MAX) return 0;
  uint64_t now_ms = timer_clock_.now_ms();
  if (now_ms < timer_wheel_.now_ms()) {
    // The wall clock stepped back: the wheel never moves back, so it starts again from now.
    timer_wheel_ = flow::TimerWheel(timer_wheel_capacity, now_ms);
    timer_wheel_ids_.clear();
    rebuild_timer_wheel();
  }
  if (now_ms < timer_next_due_ms_) return 0;
  timer_wheel_.advance(now_ms, timers_due_);
  size_t fired = 0;
  for (const flow::DueTimer& due : timers_due_) {
    std::erase(timer_wheel_ids_, due.id);
    const flow::FlowTimer* timer = flows.timer(due.id);
    if (timer == nullptr) continue;
    std::vector<std::byte> tx = ledger::encode_timer_fire(executor_.identity().shard, due.id, timer->next_fire_s,
                                                          now_ms / 1000);
    ledger::TxView view;
    ledger::TxStatus checked = ledger::check_transaction(tx, ledger::TxOrigin::engine, &view);
    assert(checked == ledger::TxStatus::applied);
    (void)checked;
    uint64_t generation = flows.timers_generation();
    if (make_room(tx.size())) order(view, tx, ReceiptRoute{0, no_client});
    if (flows.timers_generation() == generation) {
      // Not recorded: no room in the block, or the shard is full of live flows. Later.
      Result<void> inserted = timer_wheel_.insert(due.id, now_ms + timer_retry_ms);
      assert(inserted);
      (void)inserted;
      timer_wheel_ids_.push_back(due.id);
    }
    ++fired;
  }
  timer_next_due_ms_ = timer_wheel_.next_due_ms().value_or(UINT64_MAX);
  return fired;
}

size_t ShardTile::take_results(size_t budget) {
  size_t taken = 0;
  while (ports_.compute && taken < budget) {
    std::span<const std::byte> slot = ports_.compute->results.peek(1);
    if (slot.empty()) break;
    sched::TaskResultMessage message;
    std::memcpy(&message, slot.data(), offsetof(sched::TaskResultMessage, tx));
    bool in_arena = message.tx_bytes > sched::result_inline_bytes;
    std::span<const std::byte> tx = in_arena ? ports_.compute->result_txs.read(message.tx_position, message.tx_bytes)
                                             : slot.subspan(offsetof(sched::TaskResultMessage, tx), message.tx_bytes);
    ledger::TxView view;
    ledger::TxStatus checked = ledger::check_transaction(tx, ledger::TxOrigin::engine, &view);
    // The scheduler wrote it; a malformed one is an engine bug, dropped rather than ordered.
    bool result_type =
        view.type == ledger::TxType::compute_results || view.type == ledger::TxType::compute_result;
    assert(checked == ledger::TxStatus::applied && result_type);
    if (checked == ledger::TxStatus::applied && result_type) {
      if (!make_room(tx.size())) break;
      ledger::TxStatus status = order(view, tx, ReceiptRoute{0, no_client});
      if (!ledger::execute_ordered(status) && view.type == ledger::TxType::compute_results)
        order_settling_results(view);
    }
    if (in_arena) ports_.compute->result_txs.release(message.tx_position, message.tx_bytes);
    ports_.compute->results.release(1);
    // The budget counts tasks: a batch of results is that many tasks' work.
    bool batch = checked == ledger::TxStatus::applied && view.type == ledger::TxType::compute_results;
    taken += batch ? view.compute_results.count : 1;
  }
  return taken;
}

// A compute_results the ledger refused because some entry settles nothing (a late twin of
// a settled task, a job of a flow that ended): orders the entries that do settle, as a
// batch of their own, so the log holds only results that took effect. Called with room
// for the whole refused batch, which the kept part fits in.
void ShardTile::order_settling_results(const ledger::TxView& refused) {
  if (!executor_.settling_results(refused, kept_results_)) return;
  ledger::TxView view;
  ledger::TxStatus checked = ledger::check_transaction(kept_results_, ledger::TxOrigin::engine, &view);
  assert(checked == ledger::TxStatus::applied);
  if (checked != ledger::TxStatus::applied) return;
  ledger::TxStatus status = order(view, kept_results_, ReceiptRoute{0, no_client});
  assert(ledger::execute_ordered(status));
  (void)status;
}

// Taken while draining too: the balancer's last records must not be stranded (the tile
// stays non-quiescent until the balancer has stopped and the ring is empty).
size_t ShardTile::take_engine_txs(size_t budget) {
  size_t taken = 0;
  while (ports_.engine_txs && taken < budget) {
    std::span<const std::byte> slot = ports_.engine_txs->peek(1);
    if (slot.empty()) break;
    EngineTxMessage message;
    std::memcpy(&message, slot.data(), sizeof message);
    std::span<const std::byte> tx(message.tx, std::min<size_t>(message.tx_bytes, engine_tx_inline_bytes_max));
    ledger::TxView view;
    ledger::TxStatus checked = ledger::check_transaction(tx, ledger::TxOrigin::engine, &view);
    // The engine wrote it; a malformed one is an engine bug, dropped rather than ordered.
    assert(checked == ledger::TxStatus::applied);
    if (checked == ledger::TxStatus::applied) {
      if (!make_room(tx.size())) break;
      order(view, tx, ReceiptRoute{0, no_client});
    }
    ports_.engine_txs->release(1);
    ++taken;
  }
  return taken;
}

ledger::TxStatus ShardTile::order(const ledger::TxView& view, std::span<const std::byte> bytes, ReceiptRoute route,
                                  const ledger::ClientId* payer, const ledger::Hash32* leaf_hash) {
  bool was_empty = executor_.open_tx_count() == 0;
  ledger::TxStatus status = payer ? executor_.execute_charged(view, bytes, *payer, leaf_hash)
                                  : executor_.execute(view, bytes, leaf_hash);
  // Not ordered: a credit applied before a restart, a second result for a task, a result
  // for a task this shard does not hold, a submission without credit (answered by the
  // caller). Nobody awaits a block's receipt for any of them.
  if (!ledger::execute_ordered(status)) return status;
  if (was_empty) open_first_tx_ns_ = shm::monotonic_ns();
  open_routes_.push_back(route);
  return status;
}

std::optional<ledger::ClientId> ShardTile::submitter(uint16_t client_slot) const {
  if (ports_.client_identities == nullptr || client_slot >= ports_.client_slot_count) return std::nullopt;
  ledger::ClientId id;
  std::memcpy(id.data(), ports_.client_identities[client_slot].client_id, id.size());
  if (!ledger::client_id_text(id)) return std::nullopt;
  return id;
}

bool ShardTile::answer_at_once(const client::RoutedSubmit& submit, ledger::TxStatus status) {
  std::span<std::byte> slot = ports_.receipts.claim(1);
  if (slot.empty()) return false;
  client::ReceiptMessage message{};
  message.request_id = submit.request_id;
  message.status = uint16_t(status);
  message.client_slot = submit.client_slot;
  message.chain = chain_index_;
  std::memcpy(slot.data(), &message, sizeof message);
  ports_.receipts.publish(1);
  add(control_->refused_txs, 1);
  return true;
}

bool ShardTile::make_room(size_t tx_bytes, const ledger::ClientId* payer) {
  if (executor_.has_room(tx_bytes, payer)) return true;
  return try_seal() && executor_.has_room(tx_bytes, payer);
}

bool ShardTile::try_seal() {
  if (executor_.open_tx_count() == 0) return true;
  std::span<std::byte> slot = ports_.blocks.claim(1);
  uint64_t record_bytes = sizeof(ledger::BlockHeader) + executor_.open_body_bytes();
  std::optional<shm::ArenaBlock> space;
  if (!slot.empty()) space = ports_.block_arena.reserve(record_bytes);
  if (!space) {
    add(control_->blocks_backpressured, 1);
    return false;
  }
  ledger::SealedBlock block = executor_.seal(wall_clock_ns(), space->bytes.first(record_bytes));
  BlockMessage message{};
  message.height = block.header.height;
  message.arena_position = space->position;
  message.record_bytes = record_bytes;
  message.sealed_ns = shm::monotonic_ns();
  message.tx_count = block.header.tx_count;
  std::memcpy(slot.data(), &message, sizeof message);
  ports_.blocks.publish(1);
  control_->sealed_height.store(block.header.height, std::memory_order_release);
  control_->compute_tasks_pending.store(uint32_t(executor_.state().pending_tasks.size()), std::memory_order_relaxed);
  // The credit_spends seal() appended: nobody awaits their receipts.
  open_routes_.resize(block.receipts.size(), ReceiptRoute{0, no_client});
  if (ports_.compute && !block.tasks.empty()) {
    tasks_out_count_ += block.tasks.size();
    tasks_out_.push_back(std::move(block.tasks));
  }
  block.tasks = {};
  PendingBlock& pending =
      pending_.emplace_back(PendingBlock{message.height, open_first_tx_ns_, std::move(block), std::move(open_routes_), 0, {}, {}});
  open_routes_ = {};
  if (executor_.identity().shard_count > 1) {
    pending.credit_marks.reserve(executor_.identity().shard_count);
    for (const ledger::CreditMark& mark : executor_.state().credit_marks) pending.credit_marks.push_back(mark.packed());
  }
  if (snapshots_.every_blocks > 0 && message.height % snapshots_.every_blocks == 0) {
    // One capture at a time, and none while the writer is still busy with this shard's
    // last one. The copy is the shard core's whole cost of a snapshot.
    if (!snapshot_pending_ && snapshots_.writer->accepting(snapshots_.global_shard)) {
      pending.snapshot_state = std::make_unique<ledger::ShardState>(executor_.state());
      snapshot_pending_ = true;
    } else {
      add(control_->snapshots_skipped, 1);
    }
  }
  return true;
}

}  // namespace keel::node
