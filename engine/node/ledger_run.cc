#include "engine/node/ledger_run.h"

#include <sys/wait.h>

#include <map>
#include <memory>
#include <new>

#include <nlohmann/json.hpp>

#include "engine/client/client_table.h"
#include "engine/client/gateway.h"
#include "engine/core/core.h"
#include "engine/core/process.h"
#include "engine/node/persist_tile.h"
#include "engine/node/recovery.h"
#include "engine/node/shard_table.h"
#include "engine/node/shard_tile.h"
#include "engine/node/snapshot_writer.h"
#include "shm/segment.h"

namespace keel::node {

namespace {

// The gateway, telling the shards when it has stopped routing (see drain_state.h).
class DrainingGateway final : public engine::Tile {
 public:
  DrainingGateway(std::unique_ptr<client::GatewayTile> gateway, DrainState* drain)
      : gateway_(std::move(gateway)), drain_(drain) {}
  std::string_view name() const override { return gateway_->name(); }
  size_t poll(size_t budget) override { return gateway_->poll(budget); }
  void begin_drain() override {
    gateway_->begin_drain();
    drain_->gateway_stopped.store(true, std::memory_order_release);
  }
  bool quiescent() override { return gateway_->quiescent(); }

 private:
  std::unique_ptr<client::GatewayTile> gateway_;
  DrainState* drain_;
};

struct Layout {
  std::map<uint32_t, shm::Doorbell*> doorbells;  // by planned core index
  uint64_t client_table = 0;
  uint64_t shard_table = 0;
};

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
  return layout;
}

Result<uint64_t> segment_bytes(const config::PerfConfig& config, const numa::Plan& plan) {
  Result<uint64_t> clients = client::client_table_footprint(client_options(config));
  if (!clients) return clients.error();
  Result<uint64_t> shards = shard_table_footprint(shard_options(config));
  if (!shards) return shards.error();
  return sizeof(shm::SegmentHeader) + plan.cores.size() * 256 + *clients + *shards + (1 << 20);
}

persist::PersisterOptions persister_options(const config::PerfConfig& config) {
  persist::PersisterOptions options;
  options.backend = config.ledger.persist_backend == config::PersistBackend::io_uring ? persist::Backend::io_uring
                                                                                     : persist::Backend::psync;
  options.fsync = config.ledger.fsync == config::FsyncPolicy::always ? persist::FsyncPolicy::always
                                                                     : persist::FsyncPolicy::none;
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
  std::unique_ptr<PersistTile> persist;
  std::unique_ptr<DrainingGateway> gateway;
  std::vector<std::unique_ptr<engine::Core>> cores;
  std::vector<std::unique_ptr<engine::ChildProcess>> loads;
};

std::vector<RecoveryChain> recovery_chains(const config::PerfConfig& config) {
  std::vector<RecoveryChain> chains;
  for (const config::ChainConfig& chain : config.chains)
    chains.push_back({chain.name, chain.shards, ledger::BlockLimits{chain.block_txs_max, 4u << 20}});
  return chains;
}

// Recovers the chains, then builds the persist tile, the shard tiles and the gateway.
Result<void> build_tiles(Engine& engine, const config::PerfConfig& config, const numa::Plan& plan,
                         LedgerReport& report) {
  std::byte* base = engine.segment->base();
  Result<std::vector<RecoveredShard>> recovered = recover_chains(recovery_chains(config), config.ledger.data_dir,
                                                                 &report.notes);
  if (!recovered) return recovered.error();
  Result<ShardTableView> table = ShardTableView::join(base, engine.layout.shard_table);
  Result<const client::ClientTable*> clients = client::check_client_table(base, engine.layout.client_table);
  if (!table) return table.error();
  if (!clients) return clients.error();
  const auto* ports = reinterpret_cast<const client::ShardPorts*>(base + (*clients)->ports_offset);
  uint32_t snapshot_every_blocks = config.ledger.snapshot_every_blocks;
  if (snapshot_every_blocks > 0) engine.snapshots = std::make_unique<SnapshotWriter>(*table);
  std::vector<PersistedShard> persisted;
  bool buffered_noted = false;
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
      SnapshotPolicy snapshots{snapshot_every_blocks, engine.snapshots.get(), from.directory, global};
      engine.shards.push_back(std::make_unique<ShardTile>(std::move(from.executor), std::move(*joined), &control,
                                                          chain, chain_config.block_us_max, &engine.drain,
                                                          std::move(from.credits_to_send), std::move(snapshots)));
    }
  }
  engine.drain.shard_count = global;
  std::string fallback_note;
  Result<std::unique_ptr<persist::Persister>> persister =
      persist::Persister::create(persister_options(config), &fallback_note);
  if (!persister) return persister.error();
  if (!fallback_note.empty()) report.notes.push_back(fallback_note);
  report.persist_backend = (*persister)->backend() == persist::Backend::io_uring ? "io_uring" : "psync";
  engine.persist = std::make_unique<PersistTile>(std::move(*persister), std::move(persisted), &engine.drain,
                                                 snapshot_every_blocks);
  Result<std::unique_ptr<client::GatewayTile>> gateway = client::GatewayTile::create(base, engine.layout.client_table);
  if (!gateway) return gateway.error();
  engine.gateway = std::make_unique<DrainingGateway>(std::move(*gateway), &engine.drain);
  return {};
}

// One core per planned core that hosts a tile the ledger runs.
Result<void> start_cores(Engine& engine, const config::PerfConfig& config, const numa::Topology& topology,
                         const numa::Plan& plan) {
  std::map<std::string, engine::Tile*> tiles_by_name = {{"gateway", engine.gateway.get()},
                                                        {"persist", engine.persist.get()}};
  for (const std::unique_ptr<ShardTile>& shard : engine.shards) tiles_by_name[std::string(shard->name())] = shard.get();
  for (const numa::PlannedCore& planned : plan.cores) {
    std::vector<engine::WeightedTile> tiles;
    for (const numa::PlannedTile& tile : planned.tiles)
      if (auto found = tiles_by_name.find(tile.name); found != tiles_by_name.end())
        tiles.push_back({found->second, tile.weight});
    if (tiles.empty()) continue;
    engine::CoreOptions options;
    options.name = "core" + std::to_string(planned.core_index);
    options.idle = {config.engine.idle, config.engine.idle_spin_polls, config.engine.idle_sleep_us_max};
    options.tile_budget = config.engine.tile_budget;
    auto bell = engine.layout.doorbells.find(planned.core_index);
    options.doorbell = bell == engine.layout.doorbells.end() ? nullptr : bell->second;
    if (plan.bindable) options.binding = engine::CoreBinding{&topology, planned.pu_os_index, planned.node_os_index};
    engine.cores.push_back(std::make_unique<engine::Core>(options, std::move(tiles)));
    if (Result<void> started = engine.cores.back()->start(); !started) return started.error();
  }
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

void stop_now(Engine& engine) {
  for (auto& core : engine.cores) core->stop_now();
  for (auto& core : engine.cores) core->join();
}

// Runs until the duration ends (and the load generators have finished) or a stop signal.
Result<void> run_until_stop(Engine& engine, const engine::BlockedStopSignals& stop_signals, uint64_t duration_ms,
                            LedgerReport& report) {
  uint64_t deadline_ns = shm::monotonic_ns() + duration_ms * 1'000'000;
  // Load generators stop at the same deadline and then wait for their last receipts.
  uint64_t grace_ns = 20'000'000'000ull;
  for (;;) {
    if (stop_signals.wait(50)) {
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
    bool loads_running = false;
    for (auto& load : engine.loads) {
      int status = 0;
      load->read_output();
      if (!load->exited(status)) loads_running = true;
    }
    uint64_t now_ns = shm::monotonic_ns();
    if (now_ns >= deadline_ns && (!loads_running || now_ns >= deadline_ns + grace_ns)) return {};
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
    bool all_finished = true;
    for (auto& core : engine.cores) all_finished = all_finished && core->finished();
    if (all_finished) break;
    if (shm::monotonic_ns() > deadline_ns) {
      stop_now(engine);
      return make_error("drain", "the ledger did not drain within 30 s");
    }
    usleep(1000);
  }
  for (auto& core : engine.cores) core->join();
  return {};
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
  report.commits = engine.persist->stats().commits;
  report.segments_dropped = engine.persist->stats().segments_dropped;
  SegmentCounts segments = engine.persist->segment_counts();
  report.segments_preallocated = segments.preallocated;
  report.segments_unprepared = segments.unprepared + segments.preallocation_failures;
  if (engine.snapshots) {
    engine.snapshots->stop();  // the shards are done: write what they handed over
    report.snapshots_written = engine.snapshots->written();
    report.snapshot_write_us_max = engine.snapshots->write_us_max();
  }
  for (uint32_t shard = 0; shard < table->shard_count(); ++shard)
    report.snapshots_skipped += table->control(shard).snapshots_skipped.load();
}

}  // namespace

Result<LedgerReport> run_ledger(const config::PerfConfig& config, const numa::Topology& topology,
                                const numa::Plan& plan, const LedgerRunOptions& options) {
  LedgerReport report;
  report.fsync = std::string(config::to_string(config.ledger.fsync));
  if (config.ledger.fsync == config::FsyncPolicy::none)
    report.notes.push_back("fsync = \"none\": receipts do NOT mean durable (benchmark setting)");
  if (!plan.bindable) report.notes.push_back("topology is not this host's: threads and memory are not bound");
  Engine engine;
  Result<uint64_t> bytes = segment_bytes(config, plan);
  if (!bytes) return bytes.error();
  Result<shm::Segment> segment = shm::Segment::create({"keel-" + config.engine.instance, *bytes});
  if (!segment) return segment.error();
  engine.segment = std::make_unique<shm::Segment>(std::move(*segment));
  for (const std::string& note : engine.segment->notes()) report.notes.push_back(note);
  Result<Layout> layout = lay_out(*engine.segment, config, plan);
  if (!layout) return layout.error();
  engine.layout = std::move(*layout);
  if (Result<void> built = build_tiles(engine, config, plan, report); !built) return built.error();
  engine.segment->seal();
  engine::BlockedStopSignals stop_signals;
  if (Result<void> started = start_cores(engine, config, topology, plan); !started) {
    stop_now(engine);
    return started.error();
  }
  uint64_t start_ns = shm::monotonic_ns();
  if (Result<void> started = start_load(engine, config, options); !started) {
    stop_now(engine);
    return started.error();
  }
  if (Result<void> ran = run_until_stop(engine, stop_signals, options.duration_ms, report); !ran) return ran.error();
  report.duration_s = double(shm::monotonic_ns() - start_ns) / 1e9;
  if (Result<void> drained = drain(engine); !drained) return drained.error();
  fill_report(engine, config, report);
  return report;
}

}  // namespace keel::node
