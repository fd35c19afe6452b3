#include "engine/node/ledger_run.h"

#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <memory>
#include <new>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/client/client_table.h"
#include "engine/client/gateway.h"
#include "engine/node/balancer_tile.h"
#include "engine/node/compute_source.h"
#include "engine/flow/flow_model.h"
#include "engine/core/core.h"
#include "engine/core/process.h"
#include "engine/node/persist_tile.h"
#include "engine/node/product_table.h"
#include "engine/node/recovery.h"
#include "engine/node/shard_table.h"
#include "engine/node/shard_tile.h"
#include "engine/node/snapshot_writer.h"
#include "engine/node/status_table.h"
#include "engine/sched/pool_supervisor.h"
#include "engine/sched/pool_table.h"
#include "engine/sched/scheduler.h"
#include "engine/sched/task_table.h"
#include "shm/segment.h"

namespace keel::node {

namespace {

// The gateway (or the compute source in its place), telling the shards when it has
// stopped routing (see drain_state.h).
class DrainingGateway final : public engine::Tile {
 public:
  DrainingGateway(std::unique_ptr<engine::Tile> gateway, DrainState* drain)
      : gateway_(std::move(gateway)), drain_(drain) {}
  std::string_view name() const override { return gateway_->name(); }
  size_t poll(size_t budget) override { return gateway_->poll(budget); }
  void begin_drain() override {
    gateway_->begin_drain();
    drain_->gateway_stopped.store(true, std::memory_order_release);
  }
  bool quiescent() override { return gateway_->quiescent(); }

 private:
  std::unique_ptr<engine::Tile> gateway_;
  DrainState* drain_;
};

struct Layout {
  std::map<uint32_t, shm::Doorbell*> doorbells;  // by planned core index
  uint64_t client_table = 0;
  uint64_t shard_table = 0;
  uint64_t task_table = 0;
  uint64_t pool_table = 0;
  uint64_t status_table = 0;
  uint64_t system_ring = 0;  // the balancer -> the system shard (EngineTxMessage slots)
  uint64_t product_table = 0;
};

constexpr char system_ring_object_name[] = "balance.system_ring";
constexpr uint64_t system_ring_capacity = 256;

// The system chain's only shard, as a global shard index.
uint32_t system_global_shard(const config::PerfConfig& config) {
  uint32_t global = 0;
  for (const config::ChainConfig& chain : config.chains) {
    if (chain.is_system()) return global;
    global += chain.shards;
  }
  return global;  // every config has one (perf_config.h)
}

// The cores the plan puts shard tiles on: the cores the balancer slices.
uint32_t shard_core_count(const numa::Plan& plan) {
  std::set<uint32_t> cores;
  for (const numa::PlannedCore& core : plan.cores)
    for (const numa::PlannedTile& tile : core.tiles)
      if (tile.kind == "shard") cores.insert(core.core_index);
  return uint32_t(cores.size());
}

uint64_t offset_of(const shm::Segment& segment, const void* object) {
  return object == nullptr ? 0 : uint64_t(static_cast<const std::byte*>(object) - segment.base());
}

// The planned core index of a tile (every tile the ledger runs is in the plan).
Result<uint32_t> core_of(const numa::Plan& plan, const std::string& tile) {
  const numa::PlannedCore* core = numa::find_tile(plan, tile);
  if (core == nullptr) return make_error("plan", "has no tile '" + tile + "'");
  return core->core_index;
}

client::ClientTableOptions client_options(const config::PerfConfig& config) {
  client::ClientTableOptions options;
  for (const config::ChainConfig& chain : config.chains) options.chains.push_back({chain.name, chain.shards});
  options.client_slots = config.ledger.clients_max;
  options.in_flight_max = config.ledger.client_in_flight_max;
  options.submit_ring_capacity = config.ledger.client_in_flight_max;
  return options;
}

ShardTableOptions shard_options(const config::PerfConfig& config) {
  ShardTableOptions options;
  for (const config::ChainConfig& chain : config.chains)
    options.chains.push_back({chain.name, chain.shards, 4u << 20});
  return options;
}

// The compute side of the plan: one scheduler tile per node that has cores ("scheduler.<node>",
// numbered in plan order: its lane in every pool slot), each shard served by its own
// node's, and one pool slot per planned pool ([[pool]] x node).
struct ComputePlan {
  std::vector<uint32_t> scheduler_nodes;     // by scheduler index
  std::vector<uint32_t> shard_schedulers;    // by global shard
  std::vector<uint32_t> slot_pools;          // by pool slot: the [[pool]] index
  std::vector<uint32_t> slot_nodes;          // by pool slot
};

Result<ComputePlan> compute_plan(const config::PerfConfig& config, const numa::Plan& plan) {
  ComputePlan compute;
  std::map<uint32_t, uint32_t> scheduler_of_node;
  for (const numa::PlannedCore& core : plan.cores)
    for (const numa::PlannedTile& tile : core.tiles)
      if (tile.kind == "scheduler" && !scheduler_of_node.count(core.node)) {
        scheduler_of_node[core.node] = uint32_t(compute.scheduler_nodes.size());
        compute.scheduler_nodes.push_back(core.node);
      }
  if (compute.scheduler_nodes.empty()) return make_error("plan", "has no scheduler tile");
  for (const config::ChainConfig& chain : config.chains)
    for (uint32_t shard = 0; shard < chain.shards; ++shard) {
      std::string tile = "shard." + chain.name + "." + std::to_string(shard);
      const numa::PlannedCore* core = numa::find_tile(plan, tile);
      if (core == nullptr) return make_error("plan", "has no tile '" + tile + "'");
      auto found = scheduler_of_node.find(core->node);
      compute.shard_schedulers.push_back(found == scheduler_of_node.end() ? 0 : found->second);
    }
  for (const numa::PlannedPool& pool : plan.pools) {
    uint32_t index = 0;
    while (index < config.pools.size() && config::pool_name(config.pools[index]) != pool.compute_type) ++index;
    if (index == config.pools.size()) return make_error("plan", "plans an unknown pool '" + pool.compute_type + "'");
    compute.slot_pools.push_back(index);
    compute.slot_nodes.push_back(pool.node);
  }
  return compute;
}

uint64_t pool_ring_capacity(const config::PerfConfig& config) {
  uint64_t capacity = 16;
  for (const config::PoolConfig& pool : config.pools) capacity = std::max<uint64_t>(capacity, pool.in_flight_max);
  return std::bit_ceil(capacity);
}

sched::PoolTableOptions pool_options(const config::PerfConfig& config, const ComputePlan& compute) {
  sched::PoolTableOptions options;
  for (size_t slot = 0; slot < compute.slot_pools.size(); ++slot)
    options.slots.push_back({config::pool_name(config.pools[compute.slot_pools[slot]]) + "@" +
                                 std::to_string(compute.slot_nodes[slot]),
                             compute.slot_pools[slot], compute.slot_nodes[slot]});
  options.lane_doorbells.assign(compute.scheduler_nodes.size(), 0);
  options.ring_capacity = pool_ring_capacity(config);
  // Every task's entry crosses the arenas (32 bytes for a small one): room for a lane's
  // whole in-flight credit of small tasks at 64 bytes each, so only big payloads ever wait
  // for arena room.
  const uint64_t entries_bytes = options.ring_capacity * 64;
  options.input_arena_bytes = std::max<uint64_t>(1 << 20, entries_bytes);
  uint64_t output_max = 16;
  for (const config::PoolConfig& pool : config.pools) output_max = std::max<uint64_t>(output_max, pool.output_bytes_max);
  // The worker refuses an output limit above half its output arena.
  options.output_arena_bytes = std::max<uint64_t>({1 << 20, entries_bytes, std::bit_ceil(output_max) * 4});
  return options;
}

uint32_t shard_count(const config::PerfConfig& config) {
  uint32_t shards = 0;
  for (const config::ChainConfig& chain : config.chains) shards += chain.shards;
  return shards;
}

// One status entry per planned core (in plan order) and per chain.
StatusTableOptions status_options(const config::PerfConfig& config, const numa::Plan& plan) {
  StatusTableOptions options;
  for (const numa::PlannedCore& core : plan.cores)
    options.cores.push_back({core.core_index, core.node_os_index, core.pu_os_index, plan.bindable});
  for (const config::ChainConfig& chain : config.chains) options.chains.push_back(chain.name);
  options.balancer_window_ms = config.balancer.window_ms;
  return options;
}

sched::TaskTableOptions task_options(const ComputePlan& compute) {
  sched::TaskTableOptions options;
  options.scheduler_count = uint32_t(compute.scheduler_nodes.size());
  for (uint32_t scheduler : compute.shard_schedulers) options.shards.push_back({scheduler, 0, 0});
  return options;
}

Result<Layout> lay_out(shm::Segment& segment, const config::PerfConfig& config, const numa::Plan& plan) {
  Layout layout;
  bool sleeps = config.engine.idle != config::IdleStrategy::spin;
  for (const numa::PlannedCore& core : plan.cores) {
    if (!sleeps) break;
    Result<uint64_t> offset = segment.allocate("core." + std::to_string(core.core_index) + ".doorbell",
                                               shm::SegmentObjectKind::doorbell, sizeof(shm::Doorbell), 128);
    if (!offset) return offset.error();
    layout.doorbells[core.core_index] = new (segment.base() + *offset) shm::Doorbell{};
  }
  auto doorbell_of = [&](const std::string& tile) -> uint64_t {
    Result<uint32_t> core = core_of(plan, tile);
    return core && layout.doorbells.count(*core) ? offset_of(segment, layout.doorbells[*core]) : 0;
  };
  client::ClientTableOptions clients = client_options(config);
  ShardTableOptions shards = shard_options(config);
  clients.gateway_doorbell = doorbell_of("gateway");
  shards.persist_doorbell = doorbell_of("persist");
  for (const config::ChainConfig& chain : config.chains)
    for (uint32_t shard = 0; shard < chain.shards; ++shard) {
      uint64_t bell = doorbell_of("shard." + chain.name + "." + std::to_string(shard));
      clients.shard_doorbells.push_back(bell);
      shards.shard_doorbells.push_back(bell);
    }
  Result<uint64_t> client_table = client::lay_out_client_table(segment, clients);
  if (!client_table) return client_table.error();
  Result<uint64_t> shard_table = lay_out_shard_table(segment, shards);
  if (!shard_table) return shard_table.error();
  layout.client_table = *client_table;
  layout.shard_table = *shard_table;
  Result<ComputePlan> compute = compute_plan(config, plan);
  if (!compute) return compute.error();
  sched::TaskTableOptions tasks = task_options(*compute);
  for (size_t global = 0; global < tasks.shards.size(); ++global) {
    tasks.shards[global].shard_doorbell = shards.shard_doorbells[global];
    tasks.shards[global].scheduler_doorbell =
        doorbell_of("scheduler." + std::to_string(compute->scheduler_nodes[tasks.shards[global].scheduler]));
  }
  sched::PoolTableOptions pools = pool_options(config, *compute);
  for (size_t scheduler = 0; scheduler < compute->scheduler_nodes.size(); ++scheduler)
    pools.lane_doorbells[scheduler] = doorbell_of("scheduler." + std::to_string(compute->scheduler_nodes[scheduler]));
  Result<uint64_t> task_table = sched::lay_out_task_table(segment, tasks);
  if (!task_table) return task_table.error();
  layout.task_table = *task_table;
  {
    uint32_t system = system_global_shard(config);
    Result<uint64_t> ring_bytes = shm::ring_footprint(system_ring_capacity, sizeof(EngineTxMessage));
    if (!ring_bytes) return ring_bytes.error();
    Result<uint64_t> ring = segment.allocate(system_ring_object_name, shm::SegmentObjectKind::ring, *ring_bytes, 128);
    if (!ring) return ring.error();
    if (auto made = shm::ring_construct(segment.base(), *ring,
                                        {system_ring_capacity, sizeof(EngineTxMessage), shards.shard_doorbells.empty() ? 0 : shards.shard_doorbells[system]});
        !made)
      return made.error();
    layout.system_ring = *ring;
  }
  Result<uint64_t> status_table = lay_out_status_table(segment, status_options(config, plan));
  if (!status_table) return status_table.error();
  layout.status_table = *status_table;
  Result<uint64_t> product_table =
      lay_out_product_table(segment, shard_count(config), ledger::shard_flow_limits.products_max);
  if (!product_table) return product_table.error();
  layout.product_table = *product_table;
  if (!pools.slots.empty()) {
    Result<uint64_t> pool_table = sched::lay_out_pool_table(segment, pools);
    if (!pool_table) return pool_table.error();
    layout.pool_table = *pool_table;
  }
  return layout;
}

Result<uint64_t> segment_bytes(const config::PerfConfig& config, const numa::Plan& plan) {
  Result<uint64_t> clients = client::client_table_footprint(client_options(config));
  if (!clients) return clients.error();
  Result<uint64_t> shards = shard_table_footprint(shard_options(config));
  if (!shards) return shards.error();
  Result<ComputePlan> compute = compute_plan(config, plan);
  if (!compute) return compute.error();
  Result<uint64_t> tasks = sched::task_table_footprint(task_options(*compute));
  if (!tasks) return tasks.error();
  uint64_t pools_bytes = 0;
  if (!compute->slot_pools.empty()) {
    Result<uint64_t> pools = sched::pool_table_footprint(pool_options(config, *compute));
    if (!pools) return pools.error();
    pools_bytes = *pools;
  }
  Result<uint64_t> status = status_table_footprint(status_options(config, plan));
  if (!status) return status.error();
  Result<uint64_t> system_ring = shm::ring_footprint(system_ring_capacity, sizeof(EngineTxMessage));
  if (!system_ring) return system_ring.error();
  *status += *system_ring + 256;
  Result<uint64_t> products = product_table_footprint(shard_count(config), ledger::shard_flow_limits.products_max);
  if (!products) return products.error();
  return sizeof(shm::SegmentHeader) + plan.cores.size() * 256 + *clients + *shards + *tasks + pools_bytes + *status +
         *products + (1 << 20);
}

static_assert(persist::commits_in_flight_limit == 2, "perf_config.cc bounds [ledger] commits_in_flight by it");

persist::PersisterOptions persister_options(const config::PerfConfig& config) {
  persist::PersisterOptions options;
  options.backend = config.ledger.persist_backend == config::PersistBackend::io_uring ? persist::Backend::io_uring
                                                                                     : persist::Backend::psync;
  options.fsync = config.ledger.fsync == config::FsyncPolicy::always ? persist::FsyncPolicy::always
                                                                     : persist::FsyncPolicy::none;
  options.commits_in_flight_max = config.ledger.commits_in_flight;
  return options;
}

}  // namespace

namespace {

struct Engine {
  std::unique_ptr<shm::Segment> segment;
  Layout layout;
  DrainState drain;
  std::unique_ptr<SnapshotWriter> snapshots;       // before the shards that use it
  std::vector<std::unique_ptr<ShardTile>> shards;  // by global shard
  // LedgerRunOptions::chain_cpu_cap: a budget per chain (null for uncapped chains) and the
  // capped tiles the cores run in the shard tiles' place (before the cores: outlive them).
  std::vector<std::unique_ptr<ChainCpuBudget>> cpu_budgets;  // by chain
  std::vector<std::unique_ptr<CappedTile>> capped_shards;
  std::unique_ptr<PersistTile> persist;
  std::unique_ptr<DrainingGateway> gateway;
  ComputeSourceTile* compute_source = nullptr;  // inside `gateway`, when it takes the gateway's place
  std::unique_ptr<sched::ComputeTypeTable> compute_types;         // the shards keep a pointer
  std::vector<std::unique_ptr<sched::SchedulerTile>> schedulers;  // by scheduler index
  std::unique_ptr<sched::PoolSupervisor> supervisor;
  // Each shard tile's handle for moving between cores (by global shard), and the core
  // loops by planned core index (null where no core runs): what the balancer re-slices.
  // Before `cores`, like every tile: the cores are joined before what they poll goes.
  std::vector<std::unique_ptr<engine::MovableTile>> movable_shards;
  std::map<uint32_t, engine::CoreLoop*> loops_by_core;
  std::unique_ptr<BalancerTile> balancer;
  std::vector<std::unique_ptr<engine::Core>> cores;
  std::vector<std::unique_ptr<engine::ChildProcess>> loads;
  uint64_t pool_events = 0;  // supervisor events seen (the report keeps the first few)
  flow::FlowTableCounters flows_at_start;  // summed over the shards, before the cores start
};

flow::FlowTableCounters flow_counters(const Engine& engine) {
  flow::FlowTableCounters sum;
  for (const std::unique_ptr<ShardTile>& shard : engine.shards) {
    const flow::FlowTableCounters& counters = shard->executor().state().flows.counters();
    sum.flows_started += counters.flows_started;
    sum.flows_succeeded += counters.flows_succeeded;
    sum.flows_failed += counters.flows_failed;
    sum.flows_cancelled += counters.flows_cancelled;
    sum.jobs_succeeded += counters.jobs_succeeded;
    sum.jobs_failed += counters.jobs_failed;
    sum.jobs_timed_out += counters.jobs_timed_out;
  }
  return sum;
}

// Every product's flows and queue over all shards (walks every flow: for the report).
std::vector<ProductProgress> product_progress(const Engine& engine) {
  std::map<std::string, ProductProgress> products;
  for (const std::unique_ptr<ShardTile>& shard : engine.shards) {
    const flow::FlowTable& flows = shard->executor().state().flows;
    auto progress_of = [&](const std::string& name) -> ProductProgress& {
      auto [entry, created] = products.try_emplace(name);
      if (created) {
        entry->second.name = name;
        flow::ProductSettings settings = flows.product_settings(name).value_or(flow::ProductSettings{});
        entry->second.priority = settings.priority;
        entry->second.running_max = settings.running_max;
      }
      return entry->second;
    };
    std::set<std::string> seen;
    for (uint32_t plan = 0; plan < flows.plan_count(); ++plan) {
      const std::string& name = flows.plan(plan).product;
      if (!seen.insert(name).second) continue;
      ProductProgress& progress = progress_of(name);
      progress.jobs_queued += flows.product_queued(name);
      progress.jobs_running += flows.product_running(name);
    }
    for (uint64_t flow_id : flows.flow_ids()) {
      std::optional<flow::FlowSummary> summary = flows.summary(flow_id);
      ProductProgress& progress = progress_of(flows.plan(summary->plan).product);
      switch (summary->status) {
        case flow::FlowStatus::succeeded: ++progress.flows_succeeded; break;
        case flow::FlowStatus::failed: ++progress.flows_failed; break;
        case flow::FlowStatus::cancelled: ++progress.flows_cancelled; break;
        default: ++progress.flows_live; break;
      }
    }
  }
  std::vector<ProductProgress> out;
  for (auto& [name, progress] : products) out.push_back(std::move(progress));
  return out;
}

// The report keeps this many pool supervisor events; stderr has them all.
constexpr uint64_t pool_event_notes_max = 32;

void log_pool_events(Engine& engine, std::vector<std::string>& events, LedgerReport& report) {
  for (const std::string& event : events) {
    std::fprintf(stderr, "keel: %s\n", event.c_str());  // live, for the operator
    ++engine.pool_events;
    if (engine.pool_events <= pool_event_notes_max) report.notes.push_back(event);
    if (engine.pool_events == pool_event_notes_max + 1)
      report.notes.push_back("more pool events than " + std::to_string(pool_event_notes_max) + ": see stderr");
  }
  events.clear();
}

std::vector<RecoveryChain> recovery_chains(const config::PerfConfig& config) {
  std::vector<RecoveryChain> chains;
  for (const config::ChainConfig& chain : config.chains)
    chains.push_back({chain.name, chain.shards,
                      ledger::BlockLimits{chain.block_txs_max, 4u << 20, config.ledger.compute_pending_max},
                      ledger::AccessPolicy{chain.credits == config::CreditsMode::required, chain.credits_per_tx}});
  return chains;
}

// One scheduler tile per node, routing every configured compute type to its [[pool]].
Result<void> build_schedulers(Engine& engine, const config::PerfConfig& config, const numa::Plan& plan,
                              const sched::TaskTableView& tasks) {
  Result<ComputePlan> compute = compute_plan(config, plan);
  if (!compute) return compute.error();
  std::optional<sched::PoolTableView> pools;
  if (engine.layout.pool_table != 0) {
    Result<sched::PoolTableView> joined = sched::PoolTableView::join(engine.segment->base(), engine.layout.pool_table);
    if (!joined) return joined.error();
    pools = *joined;
  }
  std::vector<sched::TypeRoute> routes;
  std::vector<sched::SchedulerPool> scheduler_pools;
  for (uint32_t pool_index = 0; pool_index < config.pools.size(); ++pool_index) {
    const config::PoolConfig& pool = config.pools[pool_index];
    for (uint32_t type = 0; type < pool.compute_types.size(); ++type) routes.push_back({pool_index, type});
    sched::SchedulerPool entry{config::pool_name(pool), pool.in_flight_max, pool.timeout_ms, pool.retries_max,
                               pool.backoff_ms, {}};
    for (uint32_t slot = 0; slot < compute->slot_pools.size(); ++slot)
      if (compute->slot_pools[slot] == pool_index) entry.slots.push_back(slot);
    scheduler_pools.push_back(std::move(entry));
  }
  Result<ShardTableView> shard_table = ShardTableView::join(engine.segment->base(), engine.layout.shard_table);
  if (!shard_table) return shard_table.error();
  std::vector<uint32_t> shard_in_chain;
  for (const config::ChainConfig& chain : config.chains)
    for (uint32_t shard = 0; shard < chain.shards; ++shard) shard_in_chain.push_back(shard);
  for (uint32_t scheduler = 0; scheduler < compute->scheduler_nodes.size(); ++scheduler) {
    sched::SchedulerOptions options;
    options.index = scheduler;
    options.node = compute->scheduler_nodes[scheduler];
    for (uint32_t global = 0; global < compute->shard_schedulers.size(); ++global)
      if (compute->shard_schedulers[global] == scheduler)
        options.shards.push_back({global, shard_in_chain[global], &shard_table->control(global).tier});
    options.tier_weights = config.scheduler.tier_weights;
    options.types = routes;
    options.pools = scheduler_pools;
    options.leases_max = config.scheduler.leases_max;
    options.spill_percent = config.scheduler.spill_percent;
    sched::PoolTableView view = pools ? *pools : sched::PoolTableView{};
    Result<std::unique_ptr<sched::SchedulerTile>> tile =
        sched::SchedulerTile::create(engine.segment->base(), tasks, view, std::move(options));
    if (!tile) return tile.error();
    engine.schedulers.push_back(std::move(*tile));
  }
  return {};
}

// Recovers the chains, then builds the persist tile, the shard tiles and the gateway.
Result<void> build_tiles(Engine& engine, const config::PerfConfig& config, const numa::Plan& plan,
                         const LedgerRunOptions& options, LedgerReport& report) {
  std::byte* base = engine.segment->base();
  Result<std::vector<RecoveredShard>> recovered = recover_chains(recovery_chains(config), config.ledger.data_dir,
                                                                 &report.notes);
  if (!recovered) return recovered.error();
  Result<ShardTableView> table = ShardTableView::join(base, engine.layout.shard_table);
  Result<const client::ClientTable*> clients = client::check_client_table(base, engine.layout.client_table);
  if (!table) return table.error();
  if (!clients) return clients.error();
  const auto* ports = reinterpret_cast<const client::ShardPorts*>(base + (*clients)->ports_offset);
  Result<sched::TaskTableView> tasks = sched::TaskTableView::join(base, engine.layout.task_table);
  if (!tasks) return tasks.error();
  std::vector<std::string> type_names;
  for (const config::PoolConfig& pool : config.pools)
    type_names.insert(type_names.end(), pool.compute_types.begin(), pool.compute_types.end());
  engine.compute_types = std::make_unique<sched::ComputeTypeTable>(std::move(type_names));
  uint32_t snapshot_every_blocks = config.ledger.snapshot_every_blocks;
  if (snapshot_every_blocks > 0) engine.snapshots = std::make_unique<SnapshotWriter>(*table);
  // The contracts the config deploys: read and checked against the pools before anything runs.
  std::vector<flow::FlowModel> contract_models;
  {
    std::set<std::string> served;
    for (const config::PoolConfig& pool : config.pools) served.insert(pool.compute_types.begin(), pool.compute_types.end());
    for (const config::ContractConfig& contract : config.contracts) {
      Result<flow::FlowModel> model = flow::load_flow_model(contract.file, served);
      if (!model) return make_error(config.path, "[[contract]] " + model.error().message);
      contract_models.push_back(std::move(*model));
    }
  }
  Result<TimerClock> timer_clock = TimerClock::from_environment();
  if (!timer_clock) return timer_clock.error();
  if (timer_clock->rate != 0)
    std::fprintf(stderr, "keel: KEEL_TIMER_CLOCK is set: cron timers run %ux as fast as the wall clock (a test clock)\n",
                 timer_clock->rate);
  std::vector<PersistedShard> persisted;
  bool buffered_noted = false;
  if (config.ledger.log_buffer_huge_pages) {
    // Still works, with 4 KiB pages: large log writes cost more CPU and more requests.
    if (std::string problem = persist::huge_pages_problem(); !problem.empty()) {
      report.notes.push_back("[ledger] log_buffer_huge_pages: " + problem + ": log buffers use 4 KiB pages");
    }
  }
  uint32_t global = 0;
  for (uint32_t chain = 0; chain < config.chains.size(); ++chain) {
    const config::ChainConfig& chain_config = config.chains[chain];
    for (uint32_t shard = 0; shard < chain_config.shards; ++shard, ++global) {
      RecoveredShard& from = (*recovered)[global];
      report.blocks_recovered += from.blocks_replayed;
      ShardControl& control = table->control(global);
      control.sealed_height.store(from.executor.state().height);
      control.durable_height.store(from.executor.state().height);
      persist::LogOptions log_options;
      log_options.segment_bytes_max = config.ledger.segment_bytes_max;
      log_options.preallocate_segments = config.ledger.segment_preallocate;
      log_options.spare_at_fill_percent = config.ledger.segment_spare_at_percent;
      log_options.spare_zero_bytes_per_second_max = uint64_t(config.ledger.segment_zero_mb_per_s) * 1'000'000;
      log_options.recycled_segments_max = config.ledger.segment_recycled_max;
      log_options.huge_page_buffers = config.ledger.log_buffer_huge_pages;
      log_options.direct_io = config.ledger.direct_io;
      auto log = persist::ShardLog::open(from.directory, {chain_config.name, shard, chain_config.shards}, log_options,
                                         from.log);
      auto blocks = shm::RingConsumer::join(base, control.block_ring);
      auto arena = shm::ArenaReader::join(base, control.block_arena);
      if (!log) return log.error();
      if (!(*log)->direct_io() && log_options.direct_io && !buffered_noted) {
        // Not a durability loss (every commit still ends in fdatasync), but a slower path.
        report.notes.push_back(config.ledger.data_dir + ": the file system refuses O_DIRECT (tmpfs?): log writes go "
                               "through the page cache, still fdatasync'ed");
        buffered_noted = true;
      }
      if (!blocks) return blocks.error();
      if (!arena) return arena.error();
      Result<uint32_t> core = core_of(plan, "shard." + chain_config.name + "." + std::to_string(shard));
      shm::Doorbell* bell = core && engine.layout.doorbells.count(*core) ? engine.layout.doorbells[*core] : nullptr;
      persisted.push_back({std::move(*log), *blocks, *arena, &control, bell});
      Result<ShardPortsJoined> joined = join_shard_ports(base, *table, ports[global], global);
      if (!joined) return joined.error();
      Result<ShardComputePorts> compute = join_compute_ports(base, *tasks, global, engine.compute_types.get());
      if (!compute) return compute.error();
      joined->compute = std::move(*compute);
      if (chain_config.is_system()) {
        auto engine_txs = shm::RingConsumer::join(base, engine.layout.system_ring);
        if (!engine_txs) return engine_txs.error();
        joined->engine_txs = *engine_txs;
      }
      joined->client_identities = &client::client_identity(base, **clients, 0);
      joined->client_slot_count = (*clients)->slot_count;
      SnapshotPolicy snapshots{snapshot_every_blocks, engine.snapshots.get(), from.directory, global};
      // The config's products, where the ledger holds other settings: ordered first.
      std::vector<std::vector<std::byte>> startup_txs;
      const flow::FlowTable& flows = from.executor.state().flows;
      uint32_t products_held = flows.product_count();
      for (const config::ProductConfig& product : config.products) {
        if (chain_config.is_system()) break;  // flows never run on the system chain
        std::optional<flow::ProductSettings> held = flows.product_settings(product.name);
        if (held && held->priority == product.priority && held->running_max == product.running_max) continue;
        if (!held && products_held >= ledger::shard_flow_limits.products_max) {
          // The ledger would refuse it (flow_limit_reached) in a block nobody reads: say so.
          report.notes.push_back("[[product]] " + product.name + ": not set on chain " + chain_config.name +
                                 " shard " + std::to_string(shard) + ", which holds its most products (" +
                                 std::to_string(ledger::shard_flow_limits.products_max) + ")");
          continue;
        }
        products_held += !held;
        startup_txs.push_back(ledger::encode_product_set(0, shard, product.name, product.priority, product.running_max));
      }
      // The config's contracts, where this shard does not hold that version yet.
      for (size_t index = 0; index < config.contracts.size(); ++index) {
        const std::vector<std::string>& chains = config.contracts[index].chains;
        if (chains.empty() && chain_config.is_system()) continue;  // "every chain" means every client chain
        if (!chains.empty() && std::find(chains.begin(), chains.end(), chain_config.name) == chains.end()) continue;
        const flow::FlowModel& model = contract_models[index];
        std::string where = "chain " + chain_config.name + " shard " + std::to_string(shard);
        if (std::optional<uint32_t> plan = flows.find_plan(model.name, model.version)) {
          if (flows.model(*plan) != model)
            report.notes.push_back("[[contract]] " + config.contracts[index].file + ": " + where + " holds another " +
                                   model.name + " version " + std::to_string(model.version) +
                                   " (a changed contract needs a new version): not deployed");
          continue;
        }
        if (!flows.can_add_plan(model)) {
          report.notes.push_back("[[contract]] " + config.contracts[index].file + ": " + where +
                                 " holds its most contract versions or products: not deployed");
          continue;
        }
        startup_txs.push_back(ledger::encode_flow_deploy(0, shard, flow::encode_flow_model(model)));
      }
      engine.shards.push_back(std::make_unique<ShardTile>(std::move(from.executor), std::move(*joined), &control,
                                                          chain, chain_config.block_us_max, &engine.drain,
                                                          std::move(from.credits_to_send), std::move(snapshots),
                                                          *timer_clock, std::move(startup_txs)));
    }
  }
  engine.drain.shard_count = global;
  Result<ProductTableView> products = ProductTableView::join(base, engine.layout.product_table);
  if (!products) return products.error();
  for (uint32_t shard = 0; shard < engine.shards.size(); ++shard) engine.shards[shard]->publish_products_to(*products, shard);
  std::string fallback_note;
  Result<std::unique_ptr<persist::Persister>> persister =
      persist::Persister::create(persister_options(config), &fallback_note);
  if (!persister) return persister.error();
  if (!fallback_note.empty()) report.notes.push_back(fallback_note);
  report.persist_backend = (*persister)->backend() == persist::Backend::io_uring ? "io_uring" : "psync";
  engine.persist = std::make_unique<PersistTile>(std::move(*persister), std::move(persisted), &engine.drain,
                                                 snapshot_every_blocks, config.ledger.commit_stall_warn_ms,
                                                 config.engine.idle_commit_poll_us);
  if (options.compute_source) {
    Result<std::unique_ptr<ComputeSourceTile>> source =
        ComputeSourceTile::create(base, engine.layout.client_table, *options.compute_source);
    if (!source) return source.error();
    engine.compute_source = source->get();
    engine.gateway = std::make_unique<DrainingGateway>(std::move(*source), &engine.drain);
  } else {
    std::vector<client::ChainAccess> access;
    for (const config::ChainConfig& chain : config.chains) access.push_back({chain.credit_granters});
    Result<std::unique_ptr<client::GatewayTile>> gateway =
        client::GatewayTile::create(base, engine.layout.client_table, std::move(access));
    if (!gateway) return gateway.error();
    engine.gateway = std::make_unique<DrainingGateway>(std::move(*gateway), &engine.drain);
  }
  return build_schedulers(engine, config, plan, *tasks);
}

// One core per planned core that hosts a tile the ledger runs.
Result<void> start_cores(Engine& engine, const config::PerfConfig& config, const numa::Topology& topology,
                         const numa::Plan& plan, const std::optional<ChainCpuCap>& cpu_cap) {
  std::map<std::string, engine::Tile*> tiles_by_name = {{"gateway", engine.gateway.get()},
                                                        {"persist", engine.persist.get()}};
  std::map<std::string, engine::MovableTile*> movable_by_name;
  std::map<std::string, uint32_t> global_of_name;
  Result<ShardTableView> table = ShardTableView::join(engine.segment->base(), engine.layout.shard_table);
  if (!table) return table.error();
  for (const config::ChainConfig& chain : config.chains)
    engine.cpu_budgets.push_back(cpu_cap && !chain.is_system() ? std::make_unique<ChainCpuBudget>(*cpu_cap) : nullptr);
  for (uint32_t global = 0; global < engine.shards.size(); ++global) {
    engine::Tile* shard = engine.shards[global].get();
    std::string name(shard->name());
    if (ChainCpuBudget* budget = engine.cpu_budgets.at(table->control(global).chain).get()) {
      engine.capped_shards.push_back(std::make_unique<CappedTile>(shard, budget));
      shard = engine.capped_shards.back().get();
    }
    tiles_by_name[name] = shard;
    // Its input rings ring the doorbell of the core the plan put it on, wherever it runs.
    Result<uint32_t> core = core_of(plan, name);
    if (!core) return core.error();
    auto bell = engine.layout.doorbells.find(*core);
    ShardControl& control = table->control(global);
    engine.movable_shards.push_back(std::make_unique<engine::MovableTile>(
        shard, bell == engine.layout.doorbells.end() ? nullptr : bell->second, &control.busy_ns));
    movable_by_name[name] = engine.movable_shards.back().get();
    global_of_name[name] = global;
    control.core_index.store(*core, std::memory_order_relaxed);
  }
  for (const std::unique_ptr<sched::SchedulerTile>& scheduler : engine.schedulers)
    tiles_by_name[std::string(scheduler->name())] = scheduler.get();
  Result<StatusTableView> status = StatusTableView::join(engine.segment->base(), engine.layout.status_table);
  if (!status) return status.error();
  if (numa::find_tile(plan, "balancer") != nullptr) {
    // The balancer starts from the plan: chains in config order, the cores the plan put
    // shard tiles on (where they may move), and each shard's planned core and weight.
    std::map<std::string, balance::ShardPlacement> planned_shards;
    std::set<uint32_t> shard_cores;
    for (const numa::PlannedCore& core : plan.cores)
      for (const numa::PlannedTile& tile : core.tiles)
        if (tile.kind == "shard") {
          planned_shards[tile.name] = {core.core_index, tile.weight};
          shard_cores.insert(core.core_index);
        }
    balance::BalancerSetup setup;
    for (const config::ChainConfig& chain : config.chains) setup.chains.push_back({chain.name, chain.shards});
    setup.cores.assign(shard_cores.begin(), shard_cores.end());
    // Shard cores that also run a tile that stays put (the persist tile, the gateway, a
    // scheduler) are never dedicated to a heavy chain. The balancer tile itself does not
    // count: it works once a window.
    for (const numa::PlannedCore& core : plan.cores) {
      if (!shard_cores.contains(core.core_index)) continue;
      bool others = std::any_of(core.tiles.begin(), core.tiles.end(), [&](const numa::PlannedTile& tile) {
        return tile.kind != "shard" && tile.kind != "balancer" && tiles_by_name.contains(tile.name);
      });
      if (others) setup.cores_with_other_tiles.push_back(core.core_index);
    }
    std::vector<engine::MovableTile*> shard_tiles;
    for (uint32_t global = 0; global < engine.shards.size(); ++global) {
      std::string name(engine.shards[global]->name());
      setup.placement.push_back(planned_shards[name]);
      shard_tiles.push_back(movable_by_name[name]);
    }
    Result<balance::Balancer> balancer = balance::Balancer::create(config.balancer, std::move(setup));
    if (!balancer) return make_error(config.path, "[balancer] " + balancer.error().message);
    BalancerTileOptions options;
    options.window_ms = config.balancer.window_ms;
    options.shards = *table;
    options.status = *status;
    options.shard_tiles = std::move(shard_tiles);
    options.loops = &engine.loops_by_core;
    auto system_ring = shm::RingProducer::join(engine.segment->base(), engine.layout.system_ring);
    if (!system_ring) return system_ring.error();
    options.system_ring = *system_ring;
    options.shard_core_count = uint32_t(shard_cores.size());
    options.shard_cores.assign(shard_cores.begin(), shard_cores.end());
    options.drain = &engine.drain;
    if (const char* shuffle = std::getenv("KEEL_BALANCER_SHUFFLE_MS"); shuffle != nullptr && *shuffle != 0) {
      char* end = nullptr;
      unsigned long every_ms = std::strtoul(shuffle, &end, 10);
      if (*end != 0 || every_ms == 0 || every_ms > 60'000)
        return make_error("KEEL_BALANCER_SHUFFLE_MS", "must be a whole number of milliseconds from 1 to 60000, got \"" +
                                                          std::string(shuffle) + "\"");
      options.shuffle_every_ms = uint32_t(every_ms);
      options.shuffle_seed = shm::monotonic_ns();
      std::fprintf(stderr,
                   "keel: KEEL_BALANCER_SHUFFLE_MS is set: a random shard tile moves to another core every %lu ms "
                   "(a test hook)\n",
                   every_ms);
    }
    engine.balancer = std::make_unique<BalancerTile>(std::move(*balancer), std::move(options));
    tiles_by_name["balancer"] = engine.balancer.get();
  }
  for (size_t planned_position = 0; planned_position < plan.cores.size(); ++planned_position) {
    const numa::PlannedCore& planned = plan.cores[planned_position];
    std::vector<engine::WeightedTile> tiles;
    for (const numa::PlannedTile& tile : planned.tiles)
      if (auto found = tiles_by_name.find(tile.name); found != tiles_by_name.end()) {
        auto movable = movable_by_name.find(tile.name);
        tiles.push_back({found->second, tile.weight, movable == movable_by_name.end() ? nullptr : movable->second});
        if (movable != movable_by_name.end())
          table->control(global_of_name[tile.name]).weight.store(tile.weight, std::memory_order_relaxed);
      }
    if (tiles.empty()) continue;
    engine::CoreOptions options;
    options.name = "core" + std::to_string(planned.core_index);
    options.index = planned.core_index;
    options.counters = &status->core(uint32_t(planned_position)).counters;
    options.idle = {config.engine.idle, config.engine.idle_spin_polls, config.engine.idle_sleep_us_max};
    options.tile_budget = config.engine.tile_budget;
    auto bell = engine.layout.doorbells.find(planned.core_index);
    options.doorbell = bell == engine.layout.doorbells.end() ? nullptr : bell->second;
    if (plan.bindable) options.binding = engine::CoreBinding{&topology, planned.pu_os_index, planned.node_os_index};
    engine.cores.push_back(std::make_unique<engine::Core>(options, std::move(tiles)));
    engine.loops_by_core[planned.core_index] = &engine.cores.back()->loop();
  }
  // Every loop exists before any starts: the balancer may hand a tile to any of them.
  for (std::unique_ptr<engine::Core>& core : engine.cores)
    if (Result<void> started = core->start(); !started) return started.error();
  return {};
}

Result<void> start_load(Engine& engine, const config::PerfConfig& config, const LedgerRunOptions& options) {
  if (!config.load.enabled) return {};
  for (uint32_t index = 0; index < config.load.clients; ++index) {
    auto child = std::make_unique<engine::ChildProcess>();
    std::vector<std::string> arguments = {"keel", "load", "--segment", engine.segment->name(), "--config",
                                          options.config_path, "--client", std::to_string(index), "--duration",
                                          std::to_string(options.duration_ms) + "ms"};
    if (Result<void> started = child->start(options.self_executable, arguments,
                                            "load generator " + std::to_string(index), true);
        !started)
      return started.error();
    engine.loads.push_back(std::move(child));
  }
  return {};
}

// Starts one `keel worker` per planned pool (pinned to the pool's PUs when the plan is
// the host's) and waits until each is ready or quarantined, so the load meets live pools.
Result<void> start_pools(Engine& engine, const config::PerfConfig& config, const numa::Plan& plan,
                         const engine::BlockedStopSignals& stop_signals,
                         const LedgerRunOptions& options, LedgerReport& report) {
  if (engine.layout.pool_table == 0) return {};
  Result<sched::PoolTableView> table = sched::PoolTableView::join(engine.segment->base(), engine.layout.pool_table);
  if (!table) return table.error();
  Result<ComputePlan> compute = compute_plan(config, plan);
  if (!compute) return compute.error();
  std::vector<sched::SupervisedPool> pools;
  for (uint32_t slot = 0; slot < compute->slot_pools.size(); ++slot) {
    const config::PoolConfig& pool = config.pools[compute->slot_pools[slot]];
    const numa::PlannedPool& planned = plan.pools[slot];
    sched::SupervisedPool supervised;
    supervised.slot = slot;
    supervised.plugin_path = pool.plugin_path;
    supervised.compute_types = pool.compute_types;
    supervised.plugin_config = pool.plugin_config;
    supervised.threads = planned.threads;
    supervised.in_flight_max = pool.in_flight_max;
    supervised.output_bytes_max = pool.output_bytes_max;
    // A task still running this long has outlived its attempt's lease (its answer would
    // be stale: the scheduler has sent it again or failed it), with a heartbeat's margin:
    // its thread serves nobody, and the next hang would take another.
    supervised.task_hang_ms = uint32_t(
        std::min<uint64_t>(uint64_t(pool.timeout_ms) + config.scheduler.heartbeat_timeout_ms, 0xffffffffu));
    if (plan.bindable) {
      supervised.pu_os_indexes = planned.pu_os_indexes;
      supervised.node_os_index = planned.node_os_index;
    }
    pools.push_back(std::move(supervised));
  }
  sched::SupervisorOptions supervisor_options;
  supervisor_options.executable = options.self_executable;
  supervisor_options.segment_name = engine.segment->name();
  supervisor_options.restart_backoff_ms = config.scheduler.restart_backoff_ms;
  supervisor_options.restart_backoff_ms_max = config.scheduler.restart_backoff_ms_max;
  supervisor_options.heartbeat_timeout_ms = config.scheduler.heartbeat_timeout_ms;
  supervisor_options.ready_timeout_ms = config.scheduler.ready_timeout_ms;
  supervisor_options.crashes_max = config.scheduler.crashes_max;
  supervisor_options.crash_window_ms = config.scheduler.crash_window_ms;
  engine.supervisor = std::make_unique<sched::PoolSupervisor>(supervisor_options, *table, std::move(pools));
  if (Result<void> started = engine.supervisor->start(); !started) return started.error();
  // ready_timeout_ms bounds this: a pool that is not ready by then is quarantined. A stop
  // signal ends the wait (and the run: see run_ledger).
  std::vector<std::string> events;
  while (!engine.supervisor->all_ready()) {
    // The segment is sealed and clients may attach: they judge the engine alive by this.
    engine.segment->beat_heartbeat();
    engine.supervisor->poll(shm::monotonic_ns(), &events);
    log_pool_events(engine, events, report);
    if (stop_signals.wait(1)) {
      report.stopped_by_signal = true;
      break;
    }
  }
  return {};
}

void stop_now(Engine& engine) {
  for (auto& core : engine.cores) core->stop_now();
  for (auto& core : engine.cores) core->join();
  if (engine.supervisor) engine.supervisor->stop();
}

// Each second of the run, a timeline sample of every client chain: its committed
// transactions and commit latency buckets summed over its shards' controls, and its tier
// and slice from the status table, where the balancer publishes them every window (a
// seqlock, so reading costs the engine nothing).
class TimelineSampler {
 public:
  TimelineSampler(const config::PerfConfig& config, ShardTableView shards, StatusTableView status,
                  uint32_t shard_core_count, uint64_t start_ns)
      : shards_(shards), status_(status), shard_core_count_(shard_core_count), start_ns_(start_ns),
        last_ns_(start_ns) {
    uint32_t global = 0;
    for (uint32_t index = 0; index < config.chains.size(); ++index) {
      const config::ChainConfig& chain = config.chains[index];
      if (!chain.is_system()) chains_.push_back({index, global, chain.shards, 0, {}});
      global += chain.shards;
    }
    for (Chain& chain : chains_) read_counters(chain, chain.committed_last, chain.buckets_last);
  }

  std::vector<std::string> chain_names(const config::PerfConfig& config) const {
    std::vector<std::string> names;
    for (const Chain& chain : chains_) names.push_back(config.chains[chain.config_index].name);
    return names;
  }

  // Adds a sample once a second has passed since the last one; with `last`, adds what is
  // left too when it is at least a tenth of a second. True when it added one.
  bool sample(uint64_t now_ns, bool last, RunTimeline& timeline) {
    uint64_t since_ns = now_ns - last_ns_;
    if (since_ns < (last ? 100'000'000ull : 1'000'000'000ull)) return false;
    TimelineSample sample;
    sample.time_s = double(now_ns - start_ns_) / 1e9;
    sample.interval_s = double(since_ns) / 1e9;
    double dedicated_total = 0;
    std::vector<ChainSliceStatus> slices;
    for (uint32_t index = 0; index < status_.chain_count(); ++index) {
      slices.push_back(status_.read_slice(index));
      dedicated_total += slices.back().cores_dedicated;
    }
    double shared_cores = std::max(0.0, double(shard_core_count_) - dedicated_total);
    for (Chain& chain : chains_) {
      uint64_t committed = 0;
      std::vector<uint64_t> buckets;
      read_counters(chain, committed, buckets);
      ChainSample figures;
      figures.committed_txs = committed - chain.committed_last;
      figures.tps = double(figures.committed_txs) / sample.interval_s;
      std::vector<uint64_t> interval_buckets(buckets.size());
      for (size_t bucket = 0; bucket < buckets.size(); ++bucket)
        interval_buckets[bucket] = buckets[bucket] - chain.buckets_last[bucket];
      figures.commit_latency_us_p99 = commit_latency_quantile_us(interval_buckets, 0.99);
      const ChainSliceStatus& slice = slices.at(chain.config_index);
      figures.tier = slice.tier;
      figures.slice_cores = slice.cores_dedicated + shared_cores * slice.shares_permille / 1000.0;
      chain.committed_last = committed;
      chain.buckets_last = std::move(buckets);
      sample.chains.push_back(figures);
    }
    timeline.samples.push_back(std::move(sample));
    last_ns_ = now_ns;
    return true;
  }

 private:
  struct Chain {
    uint32_t config_index, first_global, shards;
    uint64_t committed_last;
    std::vector<uint64_t> buckets_last;
  };

  void read_counters(const Chain& chain, uint64_t& committed, std::vector<uint64_t>& buckets) const {
    committed = 0;
    buckets.assign(commit_latency_bucket_count, 0);
    for (uint32_t shard = chain.first_global; shard < chain.first_global + chain.shards; ++shard) {
      const ShardControl& control = shards_.control(shard);
      committed += control.committed_txs.load(std::memory_order_acquire);
      for (uint32_t bucket = 0; bucket < commit_latency_bucket_count; ++bucket)
        buckets[bucket] += control.commit_latency_buckets[bucket].load(std::memory_order_relaxed);
    }
  }

  ShardTableView shards_;
  StatusTableView status_;
  uint32_t shard_core_count_;
  uint64_t start_ns_, last_ns_;
  std::vector<Chain> chains_;
};

// Runs until the duration ends (and the load generators have finished) or a stop signal.
Result<void> run_until_stop(Engine& engine, const engine::BlockedStopSignals& stop_signals, uint64_t duration_ms,
                            TimelineSampler& sampler, const LedgerRunOptions& options, LedgerReport& report) {
  uint64_t deadline_ns = shm::monotonic_ns() + duration_ms * 1'000'000;
  // Load generators stop at the same deadline and then wait for their last receipts.
  uint64_t grace_ns = 20'000'000'000ull;
  std::vector<std::string> events;
  for (;;) {
    // Short waits: the pool supervisor's reaction time (a dead pool's restart) is this.
    if (stop_signals.wait(5)) {
      report.stopped_by_signal = true;
      for (auto& load : engine.loads)
        if (load->pid() > 0) kill(load->pid(), SIGTERM);
      deadline_ns = shm::monotonic_ns();
    }
    engine.segment->beat_heartbeat();
    if (engine.drain.fatal.load(std::memory_order_acquire)) {
      stop_now(engine);
      return Error{engine.drain.fatal_message};
    }
    if (engine.supervisor) {
      engine.supervisor->poll(shm::monotonic_ns(), &events);
      log_pool_events(engine, events, report);
    }
    bool loads_running = false;
    for (auto& load : engine.loads) {
      int status = 0;
      load->read_output();
      if (!load->exited(status)) loads_running = true;
    }
    uint64_t now_ns = shm::monotonic_ns();
    bool ending = now_ns >= deadline_ns && (!loads_running || now_ns >= deadline_ns + grace_ns);
    if (sampler.sample(now_ns, ending, report.timeline) && options.on_sample) options.on_sample(report.timeline);
    if (ending) return {};
  }
}

// Drains: the gateway stops, shards finish and wait for durability, persist stops.
Result<void> drain(Engine& engine) {
  for (auto& core : engine.cores) core->begin_drain();
  uint64_t deadline_ns = shm::monotonic_ns() + 30'000'000'000ull;
  for (;;) {
    if (engine.drain.fatal.load(std::memory_order_acquire)) {
      stop_now(engine);
      return Error{engine.drain.fatal_message};
    }
    engine.segment->beat_heartbeat();  // draining is alive too
    bool all_finished = true;
    for (auto& core : engine.cores) all_finished = all_finished && core->finished();
    if (all_finished) break;
    if (shm::monotonic_ns() > deadline_ns) {
      std::vector<bool> finished;
      for (auto& core : engine.cores) finished.push_back(core->finished());
      stop_now(engine);
      // The cores are joined: their tiles can be asked from here.
      std::string busy;
      for (size_t index = 0; index < engine.cores.size(); ++index) {
        if (finished[index]) continue;
        for (const std::string& tile : engine.cores[index]->loop().tiles_not_quiescent())
          busy += (busy.empty() ? "" : ", ") + tile + " on " + engine.cores[index]->name();
      }
      return make_error("drain", "the ledger did not drain within 30 s (not quiescent: " +
                                     (busy.empty() ? std::string("none") : busy) + ")");
    }
    usleep(1000);
  }
  for (auto& core : engine.cores) core->join();
  if (engine.supervisor) engine.supervisor->stop();  // the schedulers are done with the pools
  return {};
}

void fill_compute_report(Engine& engine, ComputeReport& compute) {
  Result<sched::TaskTableView> tasks = sched::TaskTableView::join(engine.segment->base(), engine.layout.task_table);
  engine::LatencyHistogram latency;
  for (uint32_t index = 0; index < engine.schedulers.size(); ++index) {
    const sched::SchedulerCounters& counters = tasks->scheduler(index);
    compute.tasks_taken += counters.tasks_taken.load();
    compute.results_returned += counters.results_returned.load();
    compute.results_failed += counters.results_failed.load();
    compute.tasks_retried += counters.tasks_retried.load();
    compute.tasks_expired += counters.tasks_expired.load();
    compute.tasks_redispatched += counters.tasks_redispatched.load();
    compute.completions_stale += counters.completions_stale.load();
    compute.tasks_spilled += counters.tasks_spilled.load();
    compute.tasks_dispatched += counters.tasks_dispatched.load();
    compute.scheduler_busy_ns += counters.scheduler_busy_ns.load();
    latency.merge(engine.schedulers[index]->dispatch_latency());  // the cores are joined
  }
  compute.dispatch_latency_us_p50 = latency.percentile(0.5) / 1000;
  compute.dispatch_latency_us_p99 = latency.percentile(0.99) / 1000;
  engine::LatencyHistogram ready;
  for (const std::unique_ptr<ShardTile>& shard : engine.shards) ready.merge(shard->ready_to_dispatch());
  compute.ready_to_dispatch_us_p50 = ready.percentile(0.5) / 1000;
  compute.ready_to_dispatch_us_p99 = ready.percentile(0.99) / 1000;
  if (engine.supervisor) {
    compute.pool_restarts = engine.supervisor->restarts();
    compute.pools_quarantined = engine.supervisor->quarantined_count();
  }
  if (engine.layout.pool_table != 0) {
    Result<sched::PoolTableView> pools = sched::PoolTableView::join(engine.segment->base(), engine.layout.pool_table);
    if (pools) compute.pools = pools->slot_count();
  }
  if (Result<ShardTableView> table = ShardTableView::join(engine.segment->base(), engine.layout.shard_table)) {
    for (uint32_t global = 0; global < engine.shards.size(); ++global)
      compute.shard_busy_ns += table->control(global).busy_ns.load(std::memory_order_relaxed);
  }
  for (const std::unique_ptr<ShardTile>& shard : engine.shards) {
    const ledger::ShardState& state = shard->executor().state();
    compute.ledger_tasks_issued += state.tasks_issued;
    compute.ledger_tasks_succeeded += state.tasks_succeeded;
    compute.ledger_tasks_failed += state.tasks_failed;
    compute.ledger_tasks_pending += state.pending_tasks.size();
    const flow::FlowTableCounters& flows = state.flows.counters();
    compute.flows_started += flows.flows_started;
    compute.flows_succeeded += flows.flows_succeeded;
    compute.flows_failed += flows.flows_failed;
    compute.flows_cancelled += flows.flows_cancelled;
    compute.flows_live += state.flows.live_flows();
    compute.flow_jobs_dispatched += flows.jobs_dispatched;
    compute.flow_jobs_succeeded += flows.jobs_succeeded;
    compute.flow_jobs_failed += flows.jobs_failed + flows.jobs_timed_out;
    compute.flow_jobs_running += state.flows.running_job_count();
    flow::FlowTableMemory memory = state.flows.memory();
    compute.flow_live_bytes += memory.live_bytes;
    compute.flow_finished_bytes += memory.finished_bytes;
    compute.flows_finished_kept += state.flows.finished_kept();
    for (const auto& [id, timer] : state.flows.timers()) {
      ++compute.timers;
      compute.timer_flows_started += timer.flows_started;
      compute.timer_misfires_dropped += timer.misfires_dropped;
    }
  }
}

// Per-chain figures from the shard controls and the load generators' reports (one JSON
// object per line: {"chains": [{"name", "receipts", "latency_us_p50", "latency_us_p99"}]}).
void fill_report(Engine& engine, const config::PerfConfig& config, LedgerReport& report) {
  Result<ShardTableView> table = ShardTableView::join(engine.segment->base(), engine.layout.shard_table);
  uint32_t global = 0;
  for (const config::ChainConfig& chain : config.chains) {
    ChainReport row;
    row.name = chain.name;
    row.shards = chain.shards;
    uint64_t latency_sum = 0;
    for (uint32_t shard = 0; shard < chain.shards; ++shard, ++global) {
      const ShardControl& control = table->control(global);
      row.height_max = std::max(row.height_max, control.durable_height.load());
      row.committed_txs += control.committed_txs.load();
      row.rejected_txs += control.rejected_txs.load();
      latency_sum += control.commit_latency_us_sum.load();
      row.commit_latency_us_max = std::max(row.commit_latency_us_max, control.commit_latency_us_max.load());
    }
    if (engine.balancer) {
      uint32_t chain_index = uint32_t(report.chains.size());
      const balance::ChainStatus& status = engine.balancer->balancer().status(chain_index);
      row.tier = std::string(balance::to_string(status.tier));
      row.tps_smoothed = status.tps_smoothed;
      row.cost_ns_per_tx = status.cost_ns_per_tx;
      row.cores_dedicated = status.dedicated_cores;
      row.slice_cores = status.slice_cores;
      row.tier_changes = engine.balancer->tier_changes(chain_index);
      row.slice_changes = engine.balancer->slice_changes(chain_index);
      for (uint32_t shard = global - chain.shards; shard < global; ++shard)
        row.shard_moves += engine.movable_shards[shard]->moves.load();
    }
    if (const ChainCpuBudget* budget = engine.cpu_budgets.empty() ? nullptr : engine.cpu_budgets.at(report.chains.size()).get())
      row.cpu_cap_periods_throttled = budget->periods_throttled();
    std::vector<uint64_t> buckets(commit_latency_bucket_count, 0);
    for (uint32_t shard = global - chain.shards; shard < global; ++shard)
      for (uint32_t bucket = 0; bucket < commit_latency_bucket_count; ++bucket)
        buckets[bucket] += table->control(shard).commit_latency_buckets[bucket].load();
    row.commit_latency_us_p99 = commit_latency_quantile_us(buckets, 0.99);
    const std::vector<std::string>& sampled = report.timeline.chains;
    if (auto found = std::find(sampled.begin(), sampled.end(), chain.name); found != sampled.end()) {
      ChainSummary summary = summarize(report.timeline, uint32_t(found - sampled.begin()));
      row.tps_peak = summary.tps_peak;
      row.seconds_in_tier = summary.seconds_in_tier;
    }
    row.committed_per_second = report.duration_s > 0 ? double(row.committed_txs) / report.duration_s : 0;
    row.commit_latency_us_mean = row.committed_txs ? double(latency_sum) / double(row.committed_txs) : 0;
    report.chains.push_back(row);
  }
  for (auto& load : engine.loads) {
    const std::string& output = load->read_output();
    nlohmann::json parsed = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.contains("chains")) {
      report.notes.push_back(load->what() + " printed no report");
      continue;
    }
    for (const nlohmann::json& entry : parsed["chains"])
      for (ChainReport& row : report.chains) {
        if (row.name != entry.value("name", "")) continue;
        uint64_t receipts = entry.value("receipts", uint64_t(0));
        // Across clients: p50 weighted by receipts, p99 the worst client's.
        uint64_t total = row.client_receipts + receipts;
        if (total > 0)
          row.client_latency_us_p50 =
              (row.client_latency_us_p50 * row.client_receipts + entry.value("latency_us_p50", uint64_t(0)) * receipts) /
              total;
        row.client_latency_us_p99 = std::max(row.client_latency_us_p99, entry.value("latency_us_p99", uint64_t(0)));
        row.client_receipts = total;
      }
  }
  if (engine.balancer) {
    const BalancerTileCounters& counters = engine.balancer->counters();
    report.balancer = {true, counters.windows, counters.moves_requested, counters.weight_changes_requested,
                       counters.records_ordered, counters.windows_held, counters.placement_mismatches,
                       counters.shuffles_requested};
  }
  report.commits = engine.persist->stats().commits;
  report.commits_stalled = engine.persist->stats().commits_stalled;
  report.commit_stall_warn_ms = config.ledger.commit_stall_warn_ms;
  auto summary = [](const engine::LatencyHistogram& histogram) {
    return LatencySummary{histogram.count(), histogram.percentile(0.50) / 1000, histogram.percentile(0.99) / 1000,
                          histogram.max_ns() / 1000};
  };
  report.persist_poll_gap = summary(engine.persist->stats().poll_gap_ns);
  report.persist_commit = summary(engine.persist->stats().commit_ns);
  report.persist_sealed_to_durable = summary(engine.persist->stats().sealed_to_durable_ns);
  report.segments_dropped = engine.persist->stats().segments_dropped;
  SegmentCounts segments = engine.persist->segment_counts();
  report.segments_recycled = segments.recycled;
  report.segments_preallocated = segments.preallocated;
  report.segments_unprepared = segments.unprepared + segments.preallocation_failures;
  if (engine.snapshots) {
    engine.snapshots->stop();  // the shards are done: write what they handed over
    report.snapshots_written = engine.snapshots->written();
    report.snapshot_write_us_max = engine.snapshots->write_us_max();
  }
  for (uint32_t shard = 0; shard < table->shard_count(); ++shard)
    report.snapshots_skipped += table->control(shard).snapshots_skipped.load();
  fill_compute_report(engine, report.compute);
  flow::FlowTableCounters flows_now = flow_counters(engine);
  auto ended = [](const flow::FlowTableCounters& counters) {
    return counters.flows_succeeded + counters.flows_failed + counters.flows_cancelled;
  };
  auto jobs_ended = [](const flow::FlowTableCounters& counters) {
    return counters.jobs_succeeded + counters.jobs_failed + counters.jobs_timed_out;
  };
  ComputeReport& compute = report.compute;
  compute.run_flows_started = flows_now.flows_started - engine.flows_at_start.flows_started;
  compute.run_flows_ended = ended(flows_now) - ended(engine.flows_at_start);
  compute.run_flow_jobs_ended = jobs_ended(flows_now) - jobs_ended(engine.flows_at_start);
  // The counts include what ended during the drain, so the rates are over the drain too.
  if (report.duration_with_drain_s > 0) {
    compute.flows_ended_per_second = double(compute.run_flows_ended) / report.duration_with_drain_s;
    compute.flow_jobs_per_second = double(compute.run_flow_jobs_ended) / report.duration_with_drain_s;
  }
  report.products = product_progress(engine);
  if (engine.compute_source) {
    const ComputeSourceCounters& counters = engine.compute_source->counters();
    report.source.requests_sent = counters.requests_sent.load();
    report.source.requests_accepted = counters.requests_accepted.load();
    report.source.requests_backlog_full = counters.requests_backlog_full.load();
    report.source.requests_refused = counters.requests_refused.load();
    report.source.setup_refused = counters.setup_refused.load();
  }
}

}  // namespace

Result<LedgerReport> run_ledger(const config::PerfConfig& config, const numa::Topology& topology,
                                const numa::Plan& plan, const LedgerRunOptions& options) {
  LedgerReport report;
  report.fsync = std::string(config::to_string(config.ledger.fsync));
  if (config.ledger.fsync == config::FsyncPolicy::none)
    report.notes.push_back("fsync = \"none\": receipts do NOT mean durable (benchmark setting)");
  if (!plan.bindable) report.notes.push_back("topology is not this host's: threads and memory are not bound");
  // Before any thread starts (a thread takes its signal mask from the one that makes it),
  // and outliving the engine's threads: SIGINT or SIGTERM sent to the process went to any
  // thread that did not block it, and the snapshot writer, started while the tiles are
  // built, did not, so a stop arriving while this thread was not in sigtimedwait killed
  // the engine instead of draining it (exit 130, seen under ASan in CI).
  engine::BlockedStopSignals stop_signals;
  Engine engine;
  std::vector<std::unique_ptr<RunCompanion>> companions;  // declared after the engine: destroyed before its segment
  Result<uint64_t> bytes = segment_bytes(config, plan);
  if (!bytes) return bytes.error();
  Result<shm::Segment> segment = shm::Segment::create({"keel-" + config.engine.instance, *bytes});
  if (!segment) return segment.error();
  engine.segment = std::make_unique<shm::Segment>(std::move(*segment));
  for (const std::string& note : engine.segment->notes()) report.notes.push_back(note);
  Result<Layout> layout = lay_out(*engine.segment, config, plan);
  if (!layout) return layout.error();
  engine.layout = std::move(*layout);
  if (Result<void> built = build_tiles(engine, config, plan, options, report); !built) return built.error();
  engine.segment->seal();
  engine.segment->beat_heartbeat();  // recovery may have taken a while
  engine.flows_at_start = flow_counters(engine);  // the recovered state, before any tile runs
  if (Result<void> started = start_cores(engine, config, topology, plan, options.chain_cpu_cap); !started) {
    stop_now(engine);
    return started.error();
  }
  // Watching starts with the cores, so an operator sees the pools come up.
  for (const RunCompanionFactory& factory : options.companions)
    if (std::unique_ptr<RunCompanion> companion = factory(*engine.segment)) companions.push_back(std::move(companion));
  if (Result<void> started = start_pools(engine, config, plan, stop_signals, options, report); !started) {
    stop_now(engine);
    return started.error();
  }
  uint64_t start_ns = shm::monotonic_ns();
  Result<ShardTableView> shard_table = ShardTableView::join(engine.segment->base(), engine.layout.shard_table);
  Result<StatusTableView> status_table = StatusTableView::join(engine.segment->base(), engine.layout.status_table);
  if (!shard_table || !status_table) {
    stop_now(engine);
    return !shard_table ? shard_table.error() : status_table.error();
  }
  TimelineSampler sampler(config, *shard_table, *status_table, shard_core_count(plan), start_ns);
  report.timeline.chains = sampler.chain_names(config);
  report.timeline.balancer = engine.balancer != nullptr;
  report.timeline.heavy_tps = config.balancer.heavy_tps;
  report.timeline.medium_tps = config.balancer.medium_tps;
  if (!report.stopped_by_signal) {  // stopped while the pools started: no load, straight to the drain
    if (engine.compute_source) engine.compute_source->start();  // the pools are ready: go
    if (Result<void> started = start_load(engine, config, options); !started) {
      stop_now(engine);
      return started.error();
    }
    if (Result<void> ran = run_until_stop(engine, stop_signals, options.duration_ms, sampler, options, report); !ran)
      return ran.error();
  }
  report.duration_s = double(shm::monotonic_ns() - start_ns) / 1e9;
  if (Result<void> drained = drain(engine); !drained) return drained.error();
  report.duration_with_drain_s = double(shm::monotonic_ns() - start_ns) / 1e9;
  fill_report(engine, config, report);
  return report;
}

}  // namespace keel::node
