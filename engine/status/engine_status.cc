#include "engine/status/engine_status.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "engine/balance/balancer.h"
#include "engine/client/client_table.h"
#include "engine/core/engine_plan.h"
#include "engine/node/product_table.h"
#include "engine/sched/pool_table.h"
#include "engine/sched/task_table.h"
#include "shm/ring.h"

namespace keel::status {

const char* to_string(RingKind kind) {
  switch (kind) {
    case RingKind::client_submit: return "client_submit";
    case RingKind::client_receipt: return "client_receipt";
    case RingKind::shard_submit: return "shard_submit";
    case RingKind::shard_receipt: return "shard_receipt";
    case RingKind::block: return "block";
    case RingKind::credit: return "credit";
    case RingKind::scheduler_request: return "scheduler_request";
    case RingKind::scheduler_result: return "scheduler_result";
    case RingKind::pool_task: return "pool_task";
    case RingKind::pool_completion: return "pool_completion";
  }
  return "unknown";
}

// --- where everything is: found once, read by every sample ---

namespace {

struct RingPlace {
  RingKind kind;
  std::string name, producer;
  uint64_t offset;
};

struct ChainPlace {
  std::string name;
  uint32_t first_global_shard = 0, shard_count = 0;
};

}  // namespace

struct EngineStatus::Layout {
  std::unique_ptr<shm::Segment> owned;  // when attached here
  const shm::Segment* segment = nullptr;
  std::string instance;
  std::vector<ChainPlace> chains;
  std::vector<std::string> shard_tiles;                 // by global shard
  std::vector<std::vector<std::string>> core_fixed_tiles;  // by status core: its planned tiles other than shards
  node::ShardTableView shards;
  node::StatusTableView status;
  std::optional<node::ProductTableView> products;
  std::optional<sched::PoolTableView> pools;
  std::optional<sched::TaskTableView> tasks;
  std::vector<std::string> scheduler_tiles;  // by scheduler index
  const client::ClientTable* clients = nullptr;
  std::vector<RingPlace> rings;
};

namespace {

std::string shard_tile_name(const std::string& chain, uint32_t shard) {
  return "shard." + chain + "." + std::to_string(shard);
}

// Scheduler tiles in plan order, one per node: the order ledger_run numbers them in (its
// compute_plan), which is their lane in every pool slot and their index in the task table.
std::vector<std::string> scheduler_tiles_of(const numa::Plan& plan) {
  std::vector<std::string> tiles;
  std::set<uint32_t> nodes;
  for (const numa::PlannedCore& core : plan.cores)
    for (const numa::PlannedTile& tile : core.tiles)
      if (tile.kind == "scheduler" && nodes.insert(core.node).second) tiles.push_back(tile.name);
  return tiles;
}

// The engine runs the chains the config names, in its order, with as many shards each.
Result<void> check_chains(const client::ClientTable& table, const config::PerfConfig& config,
                          const std::string& segment) {
  std::string engine_chains, config_chains;
  for (uint32_t chain = 0; chain < table.chain_count; ++chain)
    engine_chains += std::string(chain ? ", " : "") + table.chains[chain].name + "/" +
                     std::to_string(table.chains[chain].shard_count);
  for (size_t chain = 0; chain < config.chains.size(); ++chain)
    config_chains += std::string(chain ? ", " : "") + config.chains[chain].name + "/" +
                     std::to_string(config.chains[chain].shards);
  if (engine_chains != config_chains)
    return make_error(segment, "its engine runs chains " + engine_chains + " (name/shards), but " + config.path +
                                   " names " + config_chains + ": give the config the engine was started with");
  return {};
}

Result<void> find_rings(EngineStatus::Layout& layout, std::byte* base);

}  // namespace

EngineStatus::EngineStatus() : layout_(std::make_unique<Layout>()) {}
EngineStatus::EngineStatus(EngineStatus&&) noexcept = default;
EngineStatus& EngineStatus::operator=(EngineStatus&&) noexcept = default;
EngineStatus::~EngineStatus() = default;

const std::string& EngineStatus::segment_name() const { return layout_->segment->name(); }

Result<EngineStatus> EngineStatus::attach(const config::PerfConfig& config, const numa::Plan& plan) {
  Result<shm::Segment> segment = shm::Segment::attach("keel-" + config.engine.instance, shm::Segment::Access::read_only);
  if (!segment) return segment.error();  // names the segment and says why: not found, stale, half made
  auto owned = std::make_unique<shm::Segment>(std::move(*segment));
  const shm::Segment& reference = *owned;
  return build(std::move(owned), reference, config, plan);
}

Result<EngineStatus> EngineStatus::over(const shm::Segment& segment, const config::PerfConfig& config,
                                        const numa::Plan& plan) {
  return build(nullptr, segment, config, plan);
}

Result<EngineStatus> EngineStatus::build(std::unique_ptr<shm::Segment> owned, const shm::Segment& segment,
                                         const config::PerfConfig& config, const numa::Plan& plan) {
  EngineStatus status;
  Layout& layout = *status.layout_;
  layout.owned = std::move(owned);
  layout.segment = &segment;
  layout.instance = config.engine.instance;
  std::byte* base = segment.base();
  const std::string name = "segment '" + segment.name() + "'";  // as shm::Segment names it in messages
  // Every object but the pool table (none without [[pool]]s) is laid out by every engine.
  auto find = [&](const char* object) { return segment.find(object, shm::SegmentObjectKind::counters); };
  Result<uint64_t> clients = client::find_client_table(segment);
  if (!clients) return clients.error();
  Result<const client::ClientTable*> client_table = client::check_client_table(base, *clients);
  if (!client_table) return client_table.error();
  layout.clients = *client_table;
  if (Result<void> same = check_chains(**client_table, config, name); !same) return same.error();
  Result<shm::SegmentObject> shards = find(node::shard_table_object_name);
  Result<shm::SegmentObject> status_table = find(node::status_table_object_name);
  if (!shards) return shards.error();
  if (!status_table) return status_table.error();
  Result<node::ShardTableView> shard_view = node::ShardTableView::join(base, shards->offset);
  Result<node::StatusTableView> status_view = node::StatusTableView::join(base, status_table->offset);
  if (!shard_view) return shard_view.error();
  if (!status_view) return status_view.error();
  layout.shards = *shard_view;
  layout.status = *status_view;
  if (Result<shm::SegmentObject> products = find(node::product_table_object_name)) {
    Result<node::ProductTableView> view = node::ProductTableView::join(base, products->offset);
    if (!view) return view.error();
    layout.products = *view;
  }
  if (Result<shm::SegmentObject> pools = find(sched::pool_table_object_name)) {
    Result<sched::PoolTableView> view = sched::PoolTableView::join(base, pools->offset);
    if (!view) return view.error();
    layout.pools = *view;
  }
  Result<sched::TaskTableView> tasks = sched::TaskTableView::find(segment);
  if (!tasks) return tasks.error();
  layout.tasks = *tasks;
  // Names from the config and plan, checked against what the engine laid out.
  uint32_t global = 0;
  for (const config::ChainConfig& chain : config.chains) {
    layout.chains.push_back({chain.name, global, chain.shards});
    for (uint32_t shard = 0; shard < chain.shards; ++shard, ++global)
      layout.shard_tiles.push_back(shard_tile_name(chain.name, shard));
  }
  if (layout.shards.shard_count() != global || layout.status.chain_count() != config.chains.size())
    return make_error(name, "its shard or status table does not match the chains of " + config.path);
  if (layout.status.core_count() != plan.cores.size())
    return make_error(name, "its engine runs " + std::to_string(layout.status.core_count()) + " cores, but " +
                                config.path + " plans " + std::to_string(plan.cores.size()) +
                                " on this topology: give the config (and --topology) the engine was started with");
  for (uint32_t index = 0; index < plan.cores.size(); ++index) {
    if (layout.status.core(index).core_index != plan.cores[index].core_index)
      return make_error(name, "its engine's core " + std::to_string(index) + " is core " +
                                  std::to_string(layout.status.core(index).core_index) + ", the plan's is core " +
                                  std::to_string(plan.cores[index].core_index));
    std::vector<std::string> fixed;
    for (const numa::PlannedTile& tile : plan.cores[index].tiles)
      if (tile.kind != "shard" && engine::tile_kind_is_implemented(tile.kind, false)) fixed.push_back(tile.name);
    layout.core_fixed_tiles.push_back(std::move(fixed));
  }
  layout.scheduler_tiles = scheduler_tiles_of(plan);
  if (layout.scheduler_tiles.size() != layout.tasks->scheduler_count())
    return make_error(name, "its engine runs " + std::to_string(layout.tasks->scheduler_count()) +
                                " scheduler tiles, the plan " + std::to_string(layout.scheduler_tiles.size()));
  if (Result<void> found = find_rings(layout, base); !found) return found.error();
  return status;
}

namespace {

void add_ring(EngineStatus::Layout& layout, RingKind kind, std::string name, std::string producer, uint64_t offset) {
  if (offset == 0) return;
  layout.rings.push_back({kind, std::move(name), std::move(producer), offset});
}

// Every ring the engine laid out, named, with the tile (or process) that pushes into it.
Result<void> find_rings(EngineStatus::Layout& layout, std::byte* base) {
  const client::ClientTable& clients = *layout.clients;
  for (uint32_t slot = 0; slot < clients.slot_count; ++slot) {
    const client::ClientSlot& entry = client::client_slot(base, clients, slot);
    std::string name = "client." + std::to_string(slot);
    add_ring(layout, RingKind::client_submit, name + ".submit", name, entry.submit_ring);
    add_ring(layout, RingKind::client_receipt, name + ".receipt", "gateway", entry.receipt_ring);
  }
  for (const ChainPlace& chain : layout.chains)
    for (uint32_t shard = 0; shard < chain.shard_count; ++shard) {
      uint32_t global = chain.first_global_shard + shard;
      const std::string& tile = layout.shard_tiles[global];
      const client::ShardPorts& ports = client::shard_ports(base, clients, uint32_t(&chain - layout.chains.data()), shard);
      add_ring(layout, RingKind::shard_submit, tile + ".submit", "gateway", ports.submit_ring);
      add_ring(layout, RingKind::shard_receipt, tile + ".receipt", tile, ports.receipt_ring);
      add_ring(layout, RingKind::block, tile + ".block", tile, layout.shards.control(global).block_ring);
      for (uint32_t to = 0; to < chain.shard_count; ++to)
        if (to != shard)
          add_ring(layout, RingKind::credit,
                   "credit." + chain.name + "." + std::to_string(shard) + "-" + std::to_string(to), tile,
                   layout.shards.credit_ring(global, chain.first_global_shard + to));
      if (global < layout.tasks->shard_count()) {
        const sched::ShardTaskPorts& task_ports = layout.tasks->shard(global);
        std::string scheduler = task_ports.scheduler < layout.scheduler_tiles.size()
                                    ? layout.scheduler_tiles[task_ports.scheduler]
                                    : "scheduler";
        add_ring(layout, RingKind::scheduler_request, tile + ".task_request", tile, task_ports.request_ring);
        add_ring(layout, RingKind::scheduler_result, tile + ".task_result", scheduler, task_ports.result_ring);
      }
    }
  if (layout.pools) {
    for (uint32_t slot = 0; slot < layout.pools->slot_count(); ++slot) {
      const sched::PoolControl& control = layout.pools->control(slot);
      std::string pool = std::string(control.name, strnlen(control.name, sizeof control.name));
      for (uint32_t lane = 0; lane < control.lane_count; ++lane) {
        const sched::PoolLane& where = layout.pools->lane(slot, lane);
        std::string scheduler = lane < layout.scheduler_tiles.size() ? layout.scheduler_tiles[lane] : "scheduler";
        std::string name = "pool." + pool + ".lane" + std::to_string(lane);
        add_ring(layout, RingKind::pool_task, name + ".task", scheduler, where.task_ring);
        add_ring(layout, RingKind::pool_completion, name + ".completion", "pool." + pool, where.completion_ring);
      }
    }
  }
  for (const RingPlace& ring : layout.rings)
    if (Result<const shm::RingHeader*> checked = shm::ring_check(base, ring.offset); !checked)
      return make_error(ring.name, checked.error().message);
  return {};
}

ShardSample sample_shard(const node::ShardControl& control, uint32_t global, uint32_t shard, const std::string& tile) {
  constexpr auto relaxed = std::memory_order_relaxed;
  ShardSample out;
  out.global_shard = global;
  out.shard = shard;
  out.tile = tile;
  // Durable before sealed: durable never passes sealed, so the lag read is never negative.
  out.durable_height = control.durable_height.load(std::memory_order_acquire);
  out.sealed_height = std::max(control.sealed_height.load(std::memory_order_acquire), out.durable_height);
  out.committed_txs = control.committed_txs.load(relaxed);
  out.rejected_txs = control.rejected_txs.load(relaxed);
  out.refused_txs = control.refused_txs.load(relaxed);
  out.blocks_backpressured = control.blocks_backpressured.load(relaxed);
  out.commit_latency_us_sum = control.commit_latency_us_sum.load(relaxed);
  out.commit_latency_us_max = control.commit_latency_us_max.load(relaxed);
  for (uint32_t bucket = 0; bucket < node::commit_latency_bucket_count; ++bucket)
    out.commit_latency_buckets[bucket] = control.commit_latency_buckets[bucket].load(relaxed);
  out.busy_ns = control.busy_ns.load(relaxed);
  out.core_index = control.core_index.load(relaxed);
  out.weight = control.weight.load(relaxed);
  out.moves = control.moves.load(relaxed);
  out.compute_tasks_pending = control.compute_tasks_pending.load(relaxed);
  out.snapshot_height = control.snapshot_height.load(relaxed);
  return out;
}

PoolSample sample_pool(const sched::PoolTableView& pools, uint32_t slot) {
  constexpr auto relaxed = std::memory_order_relaxed;
  const sched::PoolControl& control = pools.control(slot);
  PoolSample out;
  out.name.assign(control.name, strnlen(control.name, sizeof control.name));
  out.node = control.numa_node;
  out.pid = control.pid.load(relaxed);
  out.epoch = control.epoch.load(relaxed);
  out.ready_epoch = control.ready_epoch.load(relaxed);
  out.dead_epoch = control.dead_epoch.load(relaxed);
  out.restarts = control.restarts.load(relaxed);
  // quarantined is stored (release) after the reason is written.
  out.quarantined = control.quarantined.load(std::memory_order_acquire) != 0;
  if (out.quarantined) out.quarantine.assign(control.quarantine, strnlen(control.quarantine, sizeof control.quarantine));
  out.tasks_completed = control.tasks_completed.load(relaxed);
  out.tasks_skipped = control.tasks_skipped.load(relaxed);
  out.tasks_run_inline = control.tasks_run_inline.load(relaxed);
  for (uint32_t lane = 0; lane < control.lane_count; ++lane) {
    const sched::PoolLane& where = pools.lane(slot, lane);
    out.tasks_in_flight += where.tasks_in_flight.load(relaxed);
    out.tasks_dispatched += where.tasks_dispatched.load(relaxed);
    out.tasks_retried += where.tasks_retried.load(relaxed);
  }
  return out;
}

SchedulerSample sample_scheduler(const sched::SchedulerCounters& counters, const std::string& tile) {
  constexpr auto relaxed = std::memory_order_relaxed;
  SchedulerSample out;
  out.tile = tile;
  out.tasks_taken = counters.tasks_taken.load(relaxed);
  out.tasks_dispatched = counters.tasks_dispatched.load(relaxed);
  out.tasks_spilled = counters.tasks_spilled.load(relaxed);
  out.tasks_retried = counters.tasks_retried.load(relaxed);
  out.tasks_expired = counters.tasks_expired.load(relaxed);
  out.tasks_redispatched = counters.tasks_redispatched.load(relaxed);
  out.completions_stale = counters.completions_stale.load(relaxed);
  out.results_returned = counters.results_returned.load(relaxed);
  out.results_failed = counters.results_failed.load(relaxed);
  out.leases_held = counters.leases_held.load(relaxed);
  out.busy_ns = counters.scheduler_busy_ns.load(relaxed);
  return out;
}

}  // namespace

StatusSample EngineStatus::sample() const {
  constexpr auto relaxed = std::memory_order_relaxed;
  const Layout& layout = *layout_;
  std::byte* base = layout.segment->base();
  StatusSample out;
  out.instance = layout.instance;
  out.engine_pid = layout.segment->header().owner_pid;
  out.taken_ns = shm::monotonic_ns();
  for (uint32_t chain = 0; chain < layout.chains.size(); ++chain) {
    const ChainPlace& place = layout.chains[chain];
    ChainSample sample;
    sample.name = place.name;
    for (uint32_t shard = 0; shard < place.shard_count; ++shard) {
      uint32_t global = place.first_global_shard + shard;
      sample.shards.push_back(sample_shard(layout.shards.control(global), global, shard, layout.shard_tiles[global]));
    }
    sample.slice = layout.status.read_slice(chain);
    out.chains.push_back(std::move(sample));
  }
  for (uint32_t index = 0; index < layout.status.core_count(); ++index) {
    const node::CoreStatus& core = layout.status.core(index);
    CoreSample sample;
    sample.core_index = core.core_index;
    sample.node = core.node;
    sample.pu = core.pu;
    sample.bound = core.bound != 0;
    sample.busy_ns = core.counters.busy_ns.load(relaxed);
    sample.rounds = core.counters.rounds.load(relaxed);
    sample.sleeps = core.counters.sleeps.load(relaxed);
    sample.work_done = core.counters.work_done.load(relaxed);
    sample.tiles_moved_in = core.counters.tiles_moved_in.load(relaxed);
    sample.tiles_moved_out = core.counters.tiles_moved_out.load(relaxed);
    sample.tile_count = core.counters.tile_count.load(relaxed);
    sample.tiles = layout.core_fixed_tiles[index];
    for (const ChainSample& chain : out.chains)
      for (const ShardSample& shard : chain.shards)
        if (shard.core_index == core.core_index) sample.tiles.push_back(shard.tile);
    out.cores.push_back(std::move(sample));
  }
  for (const RingPlace& ring : layout.rings) {
    shm::RingStats stats = shm::ring_stats(base, ring.offset);
    out.rings.push_back({ring.kind, ring.name, ring.producer, stats.capacity, stats.pushed,
                         std::min(stats.popped, stats.pushed), stats.full_events});
  }
  if (layout.pools)
    for (uint32_t slot = 0; slot < layout.pools->slot_count(); ++slot) out.pools.push_back(sample_pool(*layout.pools, slot));
  if (layout.products) {
    std::map<std::string, ProductSample> products;
    for (uint32_t shard = 0; shard < layout.products->shard_count(); ++shard)
      for (const node::ProductStatus& product : layout.products->read(shard)) {
        auto [entry, created] = products.try_emplace(product.name);
        ProductSample& sum = entry->second;
        if (created) {
          sum.name = product.name;
          sum.priority = product.priority;
          sum.running_max = product.running_max;
        }
        sum.jobs_queued += product.jobs_queued;
        sum.jobs_running += product.jobs_running;
        ++sum.shards;
      }
    for (auto& [name, product] : products) out.products.push_back(std::move(product));
  }
  for (uint32_t index = 0; index < layout.tasks->scheduler_count(); ++index)
    out.schedulers.push_back(sample_scheduler(layout.tasks->scheduler(index), layout.scheduler_tiles[index]));
  const client::ClientTable& clients = *layout.clients;
  out.clients.slots = clients.slot_count;
  for (uint32_t slot = 0; slot < clients.slot_count; ++slot) {
    const client::ClientSlot& entry = client::client_slot(base, clients, slot);
    if (entry.state.load(relaxed) == uint32_t(client::ClientSlotState::attached)) ++out.clients.attached;
    out.clients.submitted += entry.submitted.load(relaxed);
    out.clients.receipts_sent += entry.receipts_sent.load(relaxed);
  }
  const node::StatusTableHeader& header = layout.status.header();
  out.balancer.window_ms = header.balancer_window_ms;
  out.balancer.windows = header.balancer_windows.load(relaxed);
  out.balancer.moves = header.balancer_moves.load(relaxed);
  out.balancer.records = header.balancer_records.load(relaxed);
  out.balancer.records_backpressured = header.balancer_records_backpressured.load(relaxed);
  return out;
}

bool EngineStatus::engine_running() const {
  const shm::SegmentHeader& header = layout_->segment->header();
  uint64_t ticks = shm::process_start_ticks(header.owner_pid);
  return ticks != 0 && ticks == header.owner_start_ticks;
}

}  // namespace keel::status

// --- the report ---

namespace keel::status {

namespace {

// A counter's growth; one that went down (another engine under the same name) is 0.
uint64_t delta(uint64_t earlier, uint64_t later) { return later >= earlier ? later - earlier : 0; }

struct Interval {
  double seconds;
  double per_second(uint64_t earlier, uint64_t later) const {
    return seconds > 0 ? double(delta(earlier, later)) / seconds : 0;
  }
  double percent_of_core(uint64_t earlier_ns, uint64_t later_ns) const {
    return seconds > 0 ? double(delta(earlier_ns, later_ns)) / (seconds * 1e9) * 100.0 : 0;
  }
};

// The earlier sample's entry of the same name, or an empty one (a new entry counts from 0).
template <class Entry>
const Entry& same_named(const std::vector<Entry>& earlier, size_t index, const std::string& name, const Entry& none) {
  if (index < earlier.size() && earlier[index].name == name) return earlier[index];
  for (const Entry& entry : earlier)
    if (entry.name == name) return entry;
  return none;
}

ChainFigures chain_figures(const ChainSample& earlier, const ChainSample& later, const Interval& interval,
                           uint64_t interval_ms) {
  ChainFigures out;
  out.name = later.name;
  out.shards = uint32_t(later.shards.size());
  std::array<uint64_t, node::commit_latency_bucket_count> counted{};
  uint64_t committed_earlier = 0, latency_sum = 0, busy_earlier = 0, busy_later = 0;
  for (size_t index = 0; index < later.shards.size(); ++index) {
    const ShardSample& now = later.shards[index];
    ShardSample zero;
    const ShardSample& then = index < earlier.shards.size() ? earlier.shards[index] : zero;
    out.committed_txs += now.committed_txs;
    out.rejected_txs += now.rejected_txs;
    out.refused_txs += now.refused_txs;
    committed_earlier += then.committed_txs;
    latency_sum += delta(then.commit_latency_us_sum, now.commit_latency_us_sum);
    for (uint32_t bucket = 0; bucket < node::commit_latency_bucket_count; ++bucket)
      counted[bucket] += delta(then.commit_latency_buckets[bucket], now.commit_latency_buckets[bucket]);
    busy_earlier += then.busy_ns;
    busy_later += now.busy_ns;
    out.sealed_height_max = std::max(out.sealed_height_max, now.sealed_height);
    out.durable_height_max = std::max(out.durable_height_max, now.durable_height);
    uint64_t lag = now.sealed_height - now.durable_height;
    out.durable_lag_blocks = std::max(out.durable_lag_blocks, lag);
    // The next block to become durable was sealed by the earlier sample: it has waited
    // the whole interval at least.
    if (lag > 0 && then.sealed_height > now.durable_height) out.durable_lag_ms_min = interval_ms;
    out.blocks_backpressured += delta(then.blocks_backpressured, now.blocks_backpressured);
    out.compute_tasks_pending += now.compute_tasks_pending;
    out.moves += now.moves;
  }
  uint64_t committed = delta(committed_earlier, out.committed_txs);
  out.committed_per_second = interval.per_second(committed_earlier, out.committed_txs);
  out.commit_latency_us_p99 = commit_latency_us_percentile(counted, 0.99);
  out.commit_latency_us_mean = committed ? double(latency_sum) / double(committed) : 0;
  out.busy_percent = interval.percent_of_core(busy_earlier, busy_later);
  const node::ChainSliceStatus& slice = later.slice;
  out.balanced = slice.window != 0;
  out.tier = out.balanced ? std::string(balance::tier_name(slice.tier)) : "none";
  out.cores_dedicated = slice.cores_dedicated;
  out.shares_permille = slice.shares_permille;
  out.tps_smoothed = slice.tps_smoothed;
  out.cost_ns_per_tx = slice.cost_ns_per_tx;
  out.tier_changes = slice.tier_changes;
  out.slice_changes = slice.slice_changes;
  return out;
}

std::vector<RingFigures> ring_figures(const StatusSample& earlier, const StatusSample& later, const Interval& interval,
                                      std::map<std::string, uint64_t>& full_events_by_producer) {
  std::map<std::string, const RingSample*> before;
  for (const RingSample& ring : earlier.rings) before[ring.name] = &ring;
  std::vector<RingFigures> kinds(ring_kind_count);
  std::vector<uint64_t> pushed(ring_kind_count, 0), full_most(ring_kind_count, 0);
  for (uint32_t kind = 0; kind < ring_kind_count; ++kind) kinds[kind].kind = RingKind(kind);
  for (const RingSample& ring : later.rings) {
    RingSample zero;
    auto found = before.find(ring.name);
    const RingSample& then = found == before.end() ? zero : *found->second;
    RingFigures& figures = kinds[uint32_t(ring.kind)];
    uint32_t kind = uint32_t(ring.kind);
    ++figures.rings;
    figures.capacity_max = std::max(figures.capacity_max, ring.capacity);
    uint64_t depth = ring.pushed - ring.popped;
    figures.depth += depth;
    if (depth > figures.depth_max) {
      figures.depth_max = depth;
      figures.depth_max_ring = ring.name;
    }
    pushed[kind] += delta(then.pushed, ring.pushed);
    figures.full_events += ring.full_events;
    uint64_t full = delta(then.full_events, ring.full_events);
    figures.full_events_interval += full;
    if (full > full_most[kind]) {
      full_most[kind] = full;
      figures.full_events_ring = ring.name;
    }
    full_events_by_producer[ring.producer] += full;
  }
  std::vector<RingFigures> out;
  for (uint32_t kind = 0; kind < ring_kind_count; ++kind) {
    if (kinds[kind].rings == 0) continue;
    kinds[kind].pushed_per_second = interval.seconds > 0 ? double(pushed[kind]) / interval.seconds : 0;
    out.push_back(std::move(kinds[kind]));
  }
  return out;
}

PoolFigures pool_figures(const PoolSample& then, const PoolSample& now, const Interval& interval) {
  PoolFigures out;
  out.name = now.name;
  out.node = now.node;
  out.pid = now.pid;
  out.quarantine = now.quarantine;
  if (now.quarantined) out.state = "quarantined";
  else if (now.epoch != 0 && now.ready_epoch == now.epoch && now.dead_epoch != now.epoch) out.state = "ready";
  else if (now.dead_epoch != 0 && now.dead_epoch == now.epoch) out.state = "restarting";
  else out.state = "starting";
  out.tasks_in_flight = now.tasks_in_flight;
  out.dispatched_per_second = interval.per_second(then.tasks_dispatched, now.tasks_dispatched);
  out.completed_per_second = interval.per_second(then.tasks_completed, now.tasks_completed);
  out.retried_per_second = interval.per_second(then.tasks_retried, now.tasks_retried);
  out.tasks_retried = now.tasks_retried;
  out.restarts = now.restarts;
  return out;
}

}  // namespace

uint64_t commit_latency_us_percentile(const std::array<uint64_t, node::commit_latency_bucket_count>& counted,
                                      double quantile) {
  uint64_t total = 0;
  for (uint64_t count : counted) total += count;
  if (total == 0) return 0;
  // The smallest bucket at which at least `quantile` of the latencies are counted.
  uint64_t rank = uint64_t(std::ceil(quantile * double(total)));
  rank = std::clamp<uint64_t>(rank, 1, total);
  uint64_t seen = 0;
  for (uint32_t bucket = 0; bucket < node::commit_latency_bucket_count; ++bucket) {
    seen += counted[bucket];
    if (seen >= rank) return node::commit_latency_bucket_upper_us(bucket);
  }
  return node::commit_latency_bucket_upper_us(node::commit_latency_bucket_count - 1);
}

StatusReport make_status_report(const StatusSample& earlier, const StatusSample& later) {
  StatusReport report;
  report.instance = later.instance;
  report.engine_pid = later.engine_pid;
  uint64_t interval_ns = delta(earlier.taken_ns, later.taken_ns);
  Interval interval{double(interval_ns) / 1e9};
  report.interval_s = interval.seconds;
  ChainSample no_chain;
  for (size_t index = 0; index < later.chains.size(); ++index)
    report.chains.push_back(chain_figures(same_named(earlier.chains, index, later.chains[index].name, no_chain),
                                          later.chains[index], interval, interval_ns / 1'000'000));
  std::map<std::string, uint64_t> full_events_by_producer;
  report.rings = ring_figures(earlier, later, interval, full_events_by_producer);
  std::map<std::string, uint64_t> backpressured_by_shard;
  for (size_t chain = 0; chain < later.chains.size(); ++chain)
    for (size_t shard = 0; shard < later.chains[chain].shards.size(); ++shard) {
      const ShardSample& now = later.chains[chain].shards[shard];
      uint64_t before = 0;
      if (chain < earlier.chains.size() && shard < earlier.chains[chain].shards.size())
        before = earlier.chains[chain].shards[shard].blocks_backpressured;
      backpressured_by_shard[now.tile] = delta(before, now.blocks_backpressured);
    }
  for (size_t index = 0; index < later.cores.size(); ++index) {
    const CoreSample& now = later.cores[index];
    CoreSample zero;
    const CoreSample& then = index < earlier.cores.size() && earlier.cores[index].core_index == now.core_index
                                 ? earlier.cores[index]
                                 : zero;
    CoreFigures core;
    core.core_index = now.core_index;
    core.node = now.node;
    core.pu = now.pu;
    core.bound = now.bound;
    core.busy_percent = interval.percent_of_core(then.busy_ns, now.busy_ns);
    core.rounds_per_second = interval.per_second(then.rounds, now.rounds);
    core.sleeps_per_second = interval.per_second(then.sleeps, now.sleeps);
    core.tile_count = now.tile_count;
    core.tiles = now.tiles;
    core.tiles_moved_in = now.tiles_moved_in;
    core.tiles_moved_out = now.tiles_moved_out;
    for (const std::string& tile : now.tiles) {
      if (auto found = full_events_by_producer.find(tile); found != full_events_by_producer.end())
        core.full_events += found->second;
      if (auto found = backpressured_by_shard.find(tile); found != backpressured_by_shard.end())
        core.blocks_backpressured += found->second;
    }
    report.cores.push_back(std::move(core));
  }
  PoolSample no_pool;
  for (size_t index = 0; index < later.pools.size(); ++index)
    report.pools.push_back(
        pool_figures(same_named(earlier.pools, index, later.pools[index].name, no_pool), later.pools[index], interval));
  for (const ProductSample& product : later.products)
    report.products.push_back({product.name, product.priority, product.running_max, product.shards,
                               product.jobs_queued, product.jobs_running});
  ComputeFigures& compute = report.compute;
  uint64_t taken_earlier = 0, taken_later = 0, results_earlier = 0, results_later = 0, busy_earlier = 0, busy_later = 0;
  for (size_t index = 0; index < later.schedulers.size(); ++index) {
    const SchedulerSample& now = later.schedulers[index];
    SchedulerSample zero;
    const SchedulerSample& then = index < earlier.schedulers.size() ? earlier.schedulers[index] : zero;
    taken_earlier += then.tasks_taken;
    taken_later += now.tasks_taken;
    results_earlier += then.results_returned;
    results_later += now.results_returned;
    busy_earlier += then.busy_ns;
    busy_later += now.busy_ns;
    compute.leases_held += now.leases_held;
    compute.tasks_retried += now.tasks_retried;
    compute.tasks_expired += now.tasks_expired;
    compute.tasks_spilled += now.tasks_spilled;
    compute.tasks_redispatched += now.tasks_redispatched;
  }
  compute.tasks_taken_per_second = interval.per_second(taken_earlier, taken_later);
  compute.results_per_second = interval.per_second(results_earlier, results_later);
  compute.scheduler_busy_percent = interval.percent_of_core(busy_earlier, busy_later);
  report.clients = later.clients;
  report.balancer = later.balancer;
  return report;
}

}  // namespace keel::status
