#include "perf/bench_balance.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/core/engine_plan.h"
#include "engine/node/ledger_run.h"
#include "engine/node/run_timeline.h"
#include "engine/node/shard_table.h"
#include "engine/node/status_table.h"
#include "perf/bench_report.h"
#include "shm/segment.h"

namespace keel::perf {

namespace {

// The load (see the header). Chains in config order; the system chain comes after them.
struct ChainLoad {
  const char* name;
  uint32_t shards;
};
constexpr std::array<ChainLoad, 4> chains = {{{"payments", 2}, {"settlement", 1}, {"cards", 1}, {"treasury", 1}}};
constexpr uint32_t payments = 0, settlement = 1, cards = 2, treasury = 3;
constexpr uint32_t first_surge = cards, second_surge = payments;
constexpr std::array<uint32_t, 2> light_chains = {settlement, treasury};
constexpr uint64_t light_rate_per_second = 2'000;
constexpr uint64_t surge_rate_per_second = 10'000'000;
constexpr uint32_t load_clients = 2;
// Each client's window (submitted, receipt not back). At 4,096 (the engine's default) the
// two clients held 8,192 transactions in flight, which at ~4 ms from submission to receipt
// capped every mode near 2 M tx/s: a system-wide profile of the balancer run found the
// two cores 28 % idle. At 8,192 each the balancer runs CPU-bound (perf/RESULTS.md, run 13).
constexpr uint32_t client_in_flight_max = 8192;
constexpr uint64_t watch_interval_ns = 2'000'000;

enum class Mode { balancer, static_split, equal_weights, os_threads, unloaded };
// In this order in every round: the light-only run right after the balancer's, so that the
// pair whose ratio is a target runs on the same disk and the same neighbours.
constexpr std::array<Mode, 5> modes = {Mode::balancer, Mode::unloaded, Mode::static_split, Mode::equal_weights,
                                       Mode::os_threads};
constexpr size_t mode_count = modes.size();
// In the tables: the balancer, its baselines, then the light-only run.
constexpr std::array<Mode, 5> modes_shown = {Mode::balancer, Mode::static_split, Mode::equal_weights,
                                             Mode::os_threads, Mode::unloaded};

const char* mode_key(Mode mode) {
  switch (mode) {
    case Mode::balancer: return "balancer";
    case Mode::static_split: return "static_split";
    case Mode::equal_weights: return "equal_weights";
    case Mode::os_threads: return "os_threads";
    case Mode::unloaded: return "unloaded";
  }
  return "?";
}

const char* mode_label(Mode mode) {
  switch (mode) {
    case Mode::balancer: return "keel balancer";
    case Mode::static_split: return "static equal split (cap)";
    case Mode::equal_weights: return "equal weights, no cap (ref)";
    case Mode::os_threads: return "unpinned OS threads";
    case Mode::unloaded: return "light load only";
  }
  return "?";
}

// The run's times, from when the engine starts its load generators.
struct Timing {
  uint64_t run_ms = 0;
  uint64_t warm_up_ms = 0;  // not measured
  uint64_t shift_ms = 0;    // the first surge ends and the second begins
};

Timing timing_of(double seconds, Mode mode) {
  Timing timing;
  uint64_t full_ms = uint64_t(seconds * 1000);
  timing.warm_up_ms = full_ms / 7;
  // Half way through a balancer window, not on its edge: the balancer's windows and the
  // generators' clocks both start with the run, a few milliseconds apart, so a shift on
  // an edge falls in whichever window that skew gives it and the settling counts move by
  // one window from run to run. (The bench sets no window_ms: the default is in effect.)
  const uint64_t window_ms = config::BalancerSection{}.window_ms;
  timing.shift_ms = full_ms / 2 / window_ms * window_ms + window_ms / 2;
  timing.run_ms = mode == Mode::unloaded ? full_ms / 2 : full_ms;
  return timing;
}

std::string config_text(Mode mode, const std::string& instance, const std::string& data_dir, const Timing& timing,
                        const std::string& synthetic_topology) {
  std::string text;
  text += "[engine]\ninstance = \"" + instance + "\"\n";
  if (!synthetic_topology.empty())
    text += "[topology]\nsource = \"synthetic\"\nsynthetic = \"" + synthetic_topology + "\"\n";
  for (const ChainLoad& chain : chains)
    text += "[[chain]]\nname = \"" + std::string(chain.name) + "\"\nshards = " + std::to_string(chain.shards) + "\n";
  text += "[ledger]\ndata_dir = \"" + data_dir + "\"\nfsync = \"always\"\nsnapshot_every_blocks = 0\nclient_in_flight_max = " +
          std::to_string(client_in_flight_max) + "\n";
  text += "[load]\nclients = " + std::to_string(load_clients) +
          "\naccounts_per_chain = 1000\ncompute_percent = 0\nchain_rate_per_second = " +
          std::to_string(light_rate_per_second) + "\n";
  if (mode != Mode::unloaded) {
    text += "[[load.shape]]\nchain = \"" + std::string(chains[first_surge].name) + "\"\nfrom_ms = 0\nto_ms = " +
            std::to_string(timing.shift_ms) + "\nrate_per_second = " + std::to_string(surge_rate_per_second) + "\n";
    text += "[[load.shape]]\nchain = \"" + std::string(chains[second_surge].name) + "\"\nfrom_ms = " +
            std::to_string(timing.shift_ms) + "\nrate_per_second = " + std::to_string(surge_rate_per_second) + "\n";
  }
  bool balancer = mode == Mode::balancer || mode == Mode::unloaded;
  text += std::string("[balancer]\nenabled = ") + (balancer ? "true" : "false") + "\n";
  return text;
}

// What the watcher saw of one run. Times are from when it started (the load's start).
struct ChainCounters {
  uint64_t committed = 0;
  std::vector<uint64_t> buckets;  // commit latency, shard_table.h
};
struct Snapshot {
  uint64_t time_ns = 0;
  std::vector<ChainCounters> chains;  // client chains
};
struct SliceEvent {
  uint64_t time_ns;
  uint64_t window;
  uint32_t chain;
  uint32_t tier;  // 0 light, 1 medium, 2 heavy
  uint32_t cores_dedicated;
};
struct WindowTick {
  uint64_t time_ns;
  uint64_t window;
};
struct Observations {
  std::vector<uint64_t> marks_ns;   // when to snapshot
  std::vector<Snapshot> snapshots;  // one per mark reached
  std::vector<SliceEvent> events;   // changes of tier or dedicated cores (the first reading included)
  std::vector<WindowTick> windows;  // each new balancer window, when first seen
  std::string error;
};

// A thread beside the engine reading its segment: counters at the marks, slices always.
class Watcher final : public node::RunCompanion {
 public:
  Watcher(node::ShardTableView shards, node::StatusTableView status, Observations* observations)
      : shards_(shards), status_(status), observations_(observations), start_ns_(shm::monotonic_ns()) {
    thread_ = std::thread([this] { run(); });
  }
  ~Watcher() override {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }

 private:
  void run() {
    std::vector<node::ChainSliceStatus> last(chains.size());
    std::vector<bool> seen(chains.size(), false);
    uint64_t last_window = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      uint64_t now_ns = shm::monotonic_ns() - start_ns_;
      if (observations_->snapshots.size() < observations_->marks_ns.size() &&
          now_ns >= observations_->marks_ns[observations_->snapshots.size()])
        observations_->snapshots.push_back(snapshot(now_ns));
      for (uint32_t chain = 0; chain < chains.size(); ++chain) {
        node::ChainSliceStatus slice = status_.read_slice(chain);
        if (slice.window == 0) continue;  // not decided yet
        if (slice.window != last_window) {
          observations_->windows.push_back({now_ns, slice.window});
          last_window = slice.window;
        }
        if (!seen[chain] || slice.tier != last[chain].tier || slice.cores_dedicated != last[chain].cores_dedicated)
          observations_->events.push_back({now_ns, slice.window, chain, slice.tier, slice.cores_dedicated});
        last[chain] = slice;
        seen[chain] = true;
      }
      timespec pause{0, long(watch_interval_ns)};
      nanosleep(&pause, nullptr);
    }
  }

  Snapshot snapshot(uint64_t now_ns) const {
    Snapshot taken;
    taken.time_ns = now_ns;
    uint32_t global = 0;
    for (const ChainLoad& chain : chains) {
      ChainCounters counters;
      counters.buckets.assign(node::commit_latency_bucket_count, 0);
      for (uint32_t shard = 0; shard < chain.shards; ++shard, ++global) {
        const node::ShardControl& control = shards_.control(global);
        counters.committed += control.committed_txs.load(std::memory_order_acquire);
        for (uint32_t bucket = 0; bucket < node::commit_latency_bucket_count; ++bucket)
          counters.buckets[bucket] += control.commit_latency_buckets[bucket].load(std::memory_order_relaxed);
      }
      taken.chains.push_back(std::move(counters));
    }
    return taken;
  }

  node::ShardTableView shards_;
  node::StatusTableView status_;
  Observations* observations_;
  uint64_t start_ns_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

node::RunCompanionFactory watcher_factory(Observations* observations) {
  return [observations](const shm::Segment& segment) -> std::unique_ptr<node::RunCompanion> {
    Result<shm::SegmentObject> shards = segment.find(node::shard_table_object_name, shm::SegmentObjectKind::counters);
    Result<shm::SegmentObject> status = segment.find(node::status_table_object_name, shm::SegmentObjectKind::counters);
    if (!shards || !status) {
      observations->error = "the segment has no shard or status table";
      return nullptr;
    }
    Result<node::ShardTableView> shard_view = node::ShardTableView::join(segment.base(), shards->offset);
    Result<node::StatusTableView> status_view = node::StatusTableView::join(segment.base(), status->offset);
    if (!shard_view || !status_view) {
      observations->error = !shard_view ? shard_view.error().message : status_view.error().message;
      return nullptr;
    }
    return std::make_unique<Watcher>(*shard_view, *status_view, observations);
  };
}

// One run's figures.
struct RunFigures {
  double aggregate_tps = 0;
  std::array<double, 2> aggregate_tps_phase{};  // before and after the shift (loaded runs)
  std::array<double, chains.size()> tps{};
  std::array<double, chains.size()> p99_us{};
  std::array<double, chains.size()> cap_periods_throttled{};
  // The persist tile over the whole run (LedgerReport): poll to poll while a commit was in
  // flight (p99, max), a group commit (p99), a block sealed to durable (p99), a group commit
  // (max); microseconds.
  std::array<double, 5> persist_us{};
  // The balancer run: windows after the shift (see the header), and tier changes.
  double settle_heavy = 0, settle_out_of_heavy = 0, settle_core = 0, settle_final = 0;
  uint32_t settles_missed = 0;  // events that never came (counted as the windows to the end + 1)
  double steady_windows = 0, steady_changes_per_10_max = 0, whole_changes_per_10_max = 0;
  std::string plan;
};

double rate(uint64_t count, uint64_t from_ns, uint64_t to_ns) {
  return to_ns > from_ns ? double(count) / (double(to_ns - from_ns) / 1e9) : 0;
}

void fill_throughput(const Observations& seen, RunFigures& figures) {
  const Snapshot& first = seen.snapshots.front();
  const Snapshot& last = seen.snapshots.back();
  for (uint32_t chain = 0; chain < chains.size(); ++chain) {
    uint64_t committed = last.chains[chain].committed - first.chains[chain].committed;
    figures.tps[chain] = rate(committed, first.time_ns, last.time_ns);
    figures.aggregate_tps += figures.tps[chain];
    std::vector<uint64_t> buckets(node::commit_latency_bucket_count);
    for (size_t bucket = 0; bucket < buckets.size(); ++bucket)
      buckets[bucket] = last.chains[chain].buckets[bucket] - first.chains[chain].buckets[bucket];
    figures.p99_us[chain] = double(node::commit_latency_quantile_us(buckets, 0.99));
  }
  if (seen.snapshots.size() == 3) {
    for (size_t phase = 0; phase < 2; ++phase) {
      const Snapshot& from = seen.snapshots[phase];
      const Snapshot& to = seen.snapshots[phase + 1];
      uint64_t committed = 0;
      for (uint32_t chain = 0; chain < chains.size(); ++chain)
        committed += to.chains[chain].committed - from.chains[chain].committed;
      figures.aggregate_tps_phase[phase] = rate(committed, from.time_ns, to.time_ns);
    }
  }
}

// The balancer window in effect at time_ns: the last one decided at or before it (0: none).
uint64_t window_at(const Observations& seen, uint64_t time_ns) {
  uint64_t window = 0;
  for (const WindowTick& tick : seen.windows)
    if (tick.time_ns <= time_ns) window = tick.window;
  return window;
}

// Most tier changes of one chain in any `span` consecutive windows from window `from`
// (excluded: the change it shows happened before) to window `to` (included).
double changes_per_span_max(const Observations& seen, uint64_t from, uint64_t to, uint64_t span) {
  std::vector<std::vector<uint64_t>> changes(chains.size());  // windows of each chain's tier changes
  std::vector<int64_t> tier(chains.size(), -1);
  for (const SliceEvent& event : seen.events) {
    if (tier[event.chain] >= 0 && uint32_t(tier[event.chain]) != event.tier && event.window > from && event.window <= to)
      changes[event.chain].push_back(event.window);
    tier[event.chain] = event.tier;
  }
  size_t most = 0;
  for (const std::vector<uint64_t>& windows : changes)
    for (size_t first = 0; first < windows.size(); ++first) {
      size_t in_span = 0;
      for (size_t next = first; next < windows.size() && windows[next] < windows[first] + span; ++next) ++in_span;
      most = std::max(most, in_span);
    }
  return double(most);
}

void fill_settling(const Observations& seen, const config::BalancerSection& knobs, const Timing& timing,
                   RunFigures& figures) {
  const uint64_t shift_ns = timing.shift_ms * 1'000'000;
  const uint64_t shift_window = window_at(seen, shift_ns);
  const uint64_t end_window = window_at(seen, seen.snapshots.back().time_ns);
  const uint64_t warm_window = window_at(seen, seen.snapshots.front().time_ns);
  // The first event after the shift that matches, in windows after it.
  auto windows_until = [&](auto matches) {
    for (const SliceEvent& event : seen.events)
      if (event.window > shift_window && matches(event)) return double(event.window - shift_window);
    ++figures.settles_missed;
    return double(end_window - shift_window + 1);
  };
  figures.settle_heavy = windows_until([](const SliceEvent& event) { return event.chain == second_surge && event.tier == 2; });
  figures.settle_out_of_heavy =
      windows_until([](const SliceEvent& event) { return event.chain == first_surge && event.tier != 2; });
  figures.settle_core =
      windows_until([](const SliceEvent& event) { return event.chain == second_surge && event.cores_dedicated > 0; });
  // Every chain's last tier change after the shift.
  std::vector<int64_t> tier(chains.size(), -1);
  uint64_t final_window = shift_window;
  for (const SliceEvent& event : seen.events) {
    if (tier[event.chain] >= 0 && uint32_t(tier[event.chain]) != event.tier && event.window > shift_window)
      final_window = std::max(final_window, event.window);
    tier[event.chain] = event.tier;
  }
  figures.settle_final = double(final_window - shift_window);
  // Steady load: after the warm-up to the shift, and from the transition's end to the end.
  const uint64_t transition_windows = knobs.downgrade_interval_ms / knobs.window_ms + 4;
  const uint64_t steady_from = std::min(shift_window + transition_windows, end_window);
  figures.steady_windows = double((shift_window - std::min(warm_window, shift_window)) + (end_window - steady_from));
  figures.steady_changes_per_10_max = std::max(changes_per_span_max(seen, warm_window, shift_window, 10),
                                               changes_per_span_max(seen, steady_from, end_window, 10));
  figures.whole_changes_per_10_max = changes_per_span_max(seen, warm_window, end_window, 10);
}

// The synthetic topology that gives every tile of the host's plan a thread of its own.
Result<std::string> one_core_per_tile(const config::PerfConfig& config) {
  Result<numa::Topology> host = engine::load_topology(config, "host");
  if (!host) return host.error();
  Result<numa::Plan> plan = numa::make_plan(*host, engine::plan_request(config));
  if (!plan) return plan.error();
  size_t tiles = 0;
  for (const numa::PlannedCore& core : plan->cores) tiles += core.tiles.size();
  return "numa:1 core:" + std::to_string(tiles) + " pu:1";
}


Result<config::PerfConfig> write_and_load(const std::string& path, const std::string& text) {
  std::ofstream file(path);
  file << text;
  file.close();
  if (!file) return make_error(path, "cannot write the bench's config");
  return config::load_perf_config(path);
}

struct RunSetup {
  Mode mode;
  double seconds;
  std::string folder;  // the run's files: its config and its data
  std::string instance;
};

Result<RunFigures> run_once(const RunSetup& setup, double* cap_cores) {
  const Timing timing = timing_of(setup.seconds, setup.mode);
  std::error_code error;
  std::filesystem::create_directories(setup.folder, error);
  if (error) return make_error(setup.folder, "cannot create: " + error.message());
  const std::string config_path = setup.folder + "/bench-balance.toml";
  const std::string data_dir = setup.folder + "/data";
  std::string synthetic;
  if (setup.mode == Mode::os_threads) {
    Result<config::PerfConfig> host_config =
        write_and_load(config_path, config_text(Mode::equal_weights, setup.instance, data_dir, timing, ""));
    if (!host_config) return host_config.error();
    Result<std::string> topology = one_core_per_tile(*host_config);
    if (!topology) return topology.error();
    synthetic = *topology;
  }
  Result<config::PerfConfig> config =
      write_and_load(config_path, config_text(setup.mode, setup.instance, data_dir, timing, synthetic));
  if (!config) return config.error();
  Result<numa::Topology> topology = engine::load_topology(*config, "");
  if (!topology) return topology.error();
  Result<numa::Plan> plan = numa::make_plan(*topology, engine::plan_request(*config));
  if (!plan) return plan.error();

  Observations seen;
  seen.marks_ns = {timing.warm_up_ms * 1'000'000};
  if (setup.mode != Mode::unloaded) seen.marks_ns.push_back(timing.shift_ms * 1'000'000);
  seen.marks_ns.push_back(timing.run_ms * 1'000'000);
  node::LedgerRunOptions options;
  options.duration_ms = timing.run_ms;
  options.config_path = config_path;
  options.companions.push_back(watcher_factory(&seen));
  if (setup.mode == Mode::static_split) {
    // The engine's cores, not the shards' alone: on 2 cores the plan gives the shards one
    // and the services the other, and a split of one core would halve the baseline.
    *cap_cores = double(plan->cores.size()) / double(chains.size());
    options.chain_cpu_cap = node::ChainCpuCap{.cores = *cap_cores, .period_us = 20'000};
  }
  Result<node::LedgerReport> report = node::run_ledger(*config, *topology, *plan, options);
  shm::Segment::remove("keel-" + setup.instance);  // run_ledger removes it; a failure half-way might not
  if (!report) return report.error();
  if (report->stopped_by_signal) return make_error("keel bench balance", "stopped by a signal");
  if (!seen.error.empty()) return make_error("keel bench balance", seen.error);
  if (seen.snapshots.size() != seen.marks_ns.size())
    return make_error("keel bench balance", std::string(mode_key(setup.mode)) + " run: the watcher missed its marks");

  RunFigures figures;
  figures.plan = plan->topology_description;
  fill_throughput(seen, figures);
  for (uint32_t chain = 0; chain < chains.size(); ++chain)
    figures.cap_periods_throttled[chain] = double(report->chains.at(chain).cpu_cap_periods_throttled);
  figures.persist_us = {double(report->persist_poll_gap.p99_us), double(report->persist_poll_gap.max_us),
                        double(report->persist_commit.p99_us), double(report->persist_sealed_to_durable.p99_us),
                        double(report->persist_commit.max_us)};
  if (setup.mode == Mode::balancer) fill_settling(seen, config->balancer, timing, figures);
  return figures;
}

// Every figure over the rounds.
struct ModeResults {
  Figure aggregate_tps;
  std::array<Figure, 2> aggregate_tps_phase;
  std::array<Figure, chains.size()> tps, p99_us, cap_periods_throttled;
  std::array<Figure, 5> persist_us;  // RunFigures::persist_us
};
struct BalanceResults {
  std::array<ModeResults, mode_count> modes;
  Figure settle_heavy, settle_out_of_heavy, settle_core, settle_final;
  Figure steady_windows, steady_changes_per_10_max, whole_changes_per_10_max;
  uint32_t settles_missed = 0;
  double cap_cores = 0;
  std::string host_plan, os_plan;
  ModeResults& of(Mode mode) { return modes[size_t(mode)]; }
  const ModeResults& of(Mode mode) const { return modes[size_t(mode)]; }
};

void add(BalanceResults& results, Mode mode, const RunFigures& run) {
  ModeResults& figures = results.of(mode);
  figures.aggregate_tps.samples.push_back(run.aggregate_tps);
  for (size_t phase = 0; phase < 2; ++phase) figures.aggregate_tps_phase[phase].samples.push_back(run.aggregate_tps_phase[phase]);
  for (uint32_t chain = 0; chain < chains.size(); ++chain) {
    figures.tps[chain].samples.push_back(run.tps[chain]);
    figures.p99_us[chain].samples.push_back(run.p99_us[chain]);
    figures.cap_periods_throttled[chain].samples.push_back(run.cap_periods_throttled[chain]);
  }
  for (size_t index = 0; index < run.persist_us.size(); ++index)
    figures.persist_us[index].samples.push_back(run.persist_us[index]);
  if (mode == Mode::os_threads) results.os_plan = run.plan;
  if (mode != Mode::balancer) return;
  results.host_plan = run.plan;
  results.settle_heavy.samples.push_back(run.settle_heavy);
  results.settle_out_of_heavy.samples.push_back(run.settle_out_of_heavy);
  results.settle_core.samples.push_back(run.settle_core);
  results.settle_final.samples.push_back(run.settle_final);
  results.settles_missed += run.settles_missed;
  results.steady_windows.samples.push_back(run.steady_windows);
  results.steady_changes_per_10_max.samples.push_back(run.steady_changes_per_10_max);
  results.whole_changes_per_10_max.samples.push_back(run.whole_changes_per_10_max);
}

std::vector<Target> targets_of(const BalanceResults& results) {
  const ModeResults& balancer = results.of(Mode::balancer);
  std::vector<Target> targets = {
      {"aggregate tx/s: balancer / static equal split", paired_ratio(balancer.aggregate_tps,
                                                                     results.of(Mode::static_split).aggregate_tps),
       1.5},
      {"aggregate tx/s: balancer / unpinned OS threads",
       paired_ratio(balancer.aggregate_tps, results.of(Mode::os_threads).aggregate_tps), 0},
      {"aggregate tx/s: balancer / equal weights, no cap",
       paired_ratio(balancer.aggregate_tps, results.of(Mode::equal_weights).aggregate_tps), 0}};
  for (uint32_t chain : light_chains) {
    const Figure& unloaded = results.of(Mode::unloaded).p99_us[chain];
    targets.push_back({std::string(chains[chain].name) + " commit p99: balancer / unloaded",
                       paired_ratio(balancer.p99_us[chain], unloaded), 2.0, true});
    for (Mode mode : {Mode::static_split, Mode::os_threads})
      targets.push_back({std::string(chains[chain].name) + " commit p99: " + mode_label(mode) + " / unloaded",
                         paired_ratio(results.of(mode).p99_us[chain], unloaded), 0});
  }
  targets.push_back({"windows until the surging chain is heavy (worst round)", results.settle_heavy.max(), 3.0, true});
  targets.push_back(
      {"windows until the calmed chain leaves heavy (worst round)", results.settle_out_of_heavy.max(), 3.0, true});
  targets.push_back({"windows until the surging chain has its own core (worst)", results.settle_core.max(), 0});
  targets.push_back({"windows until every chain is in its final tier (worst)", results.settle_final.max(), 0});
  targets.push_back(
      {"steady load: tier changes of a chain in 10 windows (most)", results.steady_changes_per_10_max.max(), 1.0, true});
  targets.push_back(
      {"whole run, shift included: the same (most)", results.whole_changes_per_10_max.max(), 0});
  return targets;
}

nlohmann::json mode_json(const ModeResults& figures, Mode mode) {
  nlohmann::json json;
  json["aggregate_tps"] = figures.aggregate_tps.json();
  if (mode != Mode::unloaded) {
    json["aggregate_tps_before_shift"] = figures.aggregate_tps_phase[0].json();
    json["aggregate_tps_after_shift"] = figures.aggregate_tps_phase[1].json();
  }
  for (uint32_t chain = 0; chain < chains.size(); ++chain) {
    nlohmann::json& row = json["chains"][chains[chain].name];
    row["tps"] = figures.tps[chain].json();
    row["commit_p99_us"] = figures.p99_us[chain].json();
    if (mode == Mode::static_split) row["cap_periods_throttled"] = figures.cap_periods_throttled[chain].json();
  }
  json["persist"] = {{"poll_gap_p99_us", figures.persist_us[0].json()},
                     {"poll_gap_max_us", figures.persist_us[1].json()},
                     {"commit_p99_us", figures.persist_us[2].json()},
                     {"commit_max_us", figures.persist_us[4].json()},
                     {"sealed_to_durable_p99_us", figures.persist_us[3].json()}};
  return json;
}

void print_json(const BalanceBenchOptions& options, const std::string& directory, const BalanceResults& results,
                const std::vector<Target>& targets) {
  nlohmann::json json;
  json["benchmark"] = "balance";
  json["machine"] = machine_line();
  json["topology"] = results.host_plan;
  json["os_threads_topology"] = results.os_plan;
  json["directory"] = directory;
  json["repetitions"] = options.repetitions;
  json["seconds_per_run"] = options.seconds;
  Timing timing = timing_of(options.seconds, Mode::balancer);
  json["warm_up_s"] = double(timing.warm_up_ms) / 1000;
  json["shift_s"] = double(timing.shift_ms) / 1000;
  json["unloaded_seconds_per_run"] = double(timing_of(options.seconds, Mode::unloaded).run_ms) / 1000;
  json["fsync"] = "always";
  json["load"] = {{"clients", load_clients},
                  {"light_rate_per_second", light_rate_per_second},
                  {"surge_rate_per_second", surge_rate_per_second},
                  {"surging_before_shift", chains[first_surge].name},
                  {"surging_after_shift", chains[second_surge].name},
                  {"light_chains", {chains[settlement].name, chains[treasury].name}}};
  json["static_split_cap_cores_per_chain"] = results.cap_cores;
  for (Mode mode : modes_shown) json["modes"][mode_key(mode)] = mode_json(results.of(mode), mode);
  json["settle_windows"] = {{"surging_chain_heavy", results.settle_heavy.json()},
                            {"calmed_chain_out_of_heavy", results.settle_out_of_heavy.json()},
                            {"surging_chain_own_core", results.settle_core.json()},
                            {"every_chain_final_tier", results.settle_final.json()},
                            {"events_missed", results.settles_missed}};
  json["tier_changes"] = {{"steady_windows", results.steady_windows.json()},
                          {"steady_most_per_10_windows", results.steady_changes_per_10_max.json()},
                          {"whole_run_most_per_10_windows", results.whole_changes_per_10_max.json()}};
  add_targets_json(json, targets);
  std::printf("%s\n", json.dump().c_str());
}

Figure scaled(const Figure& figure, double factor) {
  Figure result;
  for (double sample : figure.samples) result.samples.push_back(sample * factor);
  return result;
}

std::string cell(const Figure& figure, double scale, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f (%.*f-%.*f)", decimals, figure.median() / scale, decimals,
                figure.min() / scale, decimals, figure.max() / scale);
  return text;
}

void print_mode_table(const BalanceResults& results, const char* title, bool latency) {
  std::printf("\n%s\n%-28s", title, "mode");
  if (!latency) std::printf(" %-22s", "all chains");
  for (const ChainLoad& chain : chains) std::printf(" %-22s", chain.name);
  std::printf("\n");
  for (Mode mode : modes_shown) {
    const ModeResults& figures = results.of(mode);
    std::printf("%-28s", mode_label(mode));
    if (!latency) std::printf(" %-22s", cell(figures.aggregate_tps, 1000, 1).c_str());
    for (uint32_t chain = 0; chain < chains.size(); ++chain)
      std::printf(" %-22s", latency ? cell(figures.p99_us[chain], 1000, 2).c_str() : cell(figures.tps[chain], 1000, 1).c_str());
    std::printf("\n");
  }
}

void print_text(const BalanceBenchOptions& options, const std::string& directory, const BalanceResults& results,
                const std::vector<Target>& targets) {
  Timing timing = timing_of(options.seconds, Mode::balancer);
  std::printf("machine: %s\ntopology: %s (OS threads: %s); files in %s\n", machine_line().c_str(),
              results.host_plan.c_str(), results.os_plan.c_str(), directory.c_str());
  std::printf("load: 4 client chains at %llu tx/s each; %s offered %llu tx/s until %.1f s, then %s; %u generators; "
              "fsync always\n",
              (unsigned long long)light_rate_per_second, chains[first_surge].name,
              (unsigned long long)surge_rate_per_second, double(timing.shift_ms) / 1000, chains[second_surge].name,
              load_clients);
  std::printf("runs of %.1f s (light load only: %.1f s), measured from %.1f s; static split: %.2f core per chain; "
              "median (min-max) of %u rounds, modes interleaved\n",
              options.seconds, double(timing_of(options.seconds, Mode::unloaded).run_ms) / 1000,
              double(timing.warm_up_ms) / 1000, results.cap_cores, options.repetitions);
  print_mode_table(results, "committed tx/s (thousands)", false);
  print_mode_table(results, "commit latency p99 (ms)", true);
  std::printf("\npersist tile, whole run (ms)  %-22s %-22s %-22s %-22s %-22s\n", "poll gap p99 (commit)",
              "poll gap max (commit)", "group commit p99", "group commit max", "sealed -> durable p99");
  for (Mode mode : modes_shown) {
    const ModeResults& figures = results.of(mode);
    std::printf("%-28s", mode_label(mode));
    for (size_t index : {0, 1, 2, 4, 3}) std::printf(" %-22s", cell(figures.persist_us[index], 1000, 2).c_str());
    std::printf("\n");
  }
  std::printf("\n%-58s %8s %8s %8s\n", "balancer run", "median", "min", "max");
  auto row = [](const char* name, const Figure& figure) {
    std::printf("%-58s %8.1f %8.1f %8.1f\n", name, figure.median(), figure.min(), figure.max());
  };
  const ModeResults& balancer = results.of(Mode::balancer);
  row("aggregate k tx/s before the shift", scaled(balancer.aggregate_tps_phase[0], 1e-3));
  row("aggregate k tx/s after the shift", scaled(balancer.aggregate_tps_phase[1], 1e-3));
  row("windows until the surging chain is heavy", results.settle_heavy);
  row("windows until the calmed chain leaves heavy", results.settle_out_of_heavy);
  row("windows until the surging chain has its own core", results.settle_core);
  row("windows until every chain is in its final tier", results.settle_final);
  row("steady windows", results.steady_windows);
  row("steady: most tier changes of a chain in 10 windows", results.steady_changes_per_10_max);
  row("whole run: most tier changes of a chain in 10 windows", results.whole_changes_per_10_max);
  if (results.settles_missed > 0)
    std::printf("settling events that never came: %u (counted as the windows to the end + 1)\n", results.settles_missed);
  // The pairs behind the ratios, round by round: a round whose unloaded run was slow (the
  // disk: see its group commit p99) shows here, where the medians would hide it.
  const ModeResults& unloaded = results.of(Mode::unloaded);
  const ModeResults& static_split = results.of(Mode::static_split);
  std::printf("\nround by round   aggregate k tx/s: balancer / static    commit p99 ms, balancer / unloaded: settlement "
              "treasury    unloaded group commit p99 ms\n");
  for (size_t round = 0; round < balancer.aggregate_tps.samples.size(); ++round) {
    std::printf("round %zu          %7.1f / %7.1f = %4.2f            %6.2f / %6.2f   %6.2f / %6.2f         %6.2f\n",
                round + 1, balancer.aggregate_tps.samples[round] / 1e3, static_split.aggregate_tps.samples[round] / 1e3,
                balancer.aggregate_tps.samples[round] / static_split.aggregate_tps.samples[round],
                balancer.p99_us[settlement].samples[round] / 1e3, unloaded.p99_us[settlement].samples[round] / 1e3,
                balancer.p99_us[treasury].samples[round] / 1e3, unloaded.p99_us[treasury].samples[round] / 1e3,
                unloaded.persist_us[2].samples[round] / 1e3);
  }
  std::printf("static split: periods of 20 ms a chain ran out of its cap:");
  for (uint32_t chain = 0; chain < chains.size(); ++chain)
    std::printf(" %s %.0f", chains[chain].name, results.of(Mode::static_split).cap_periods_throttled[chain].median());
  std::printf("\n");
  print_targets(targets);
}

}  // namespace

int run_balance_bench(const BalanceBenchOptions& options) {
  if (options.repetitions == 0 || options.seconds < 1.0) {
    std::fprintf(stderr, "keel bench balance: --repetitions must be above 0 and --seconds at least 1\n");
    return 2;
  }
  ScratchFolder scratch(options.directory, "data/bench-balance");
  if (auto created = scratch.create(); !created) {
    std::fprintf(stderr, "keel bench balance: %s\n", created.error().message.c_str());
    return 1;
  }
  if (!options.json) {
    std::fprintf(stderr, "keel bench balance: %u rounds of %zu runs, files in %s\n", options.repetitions, mode_count,
                 scratch.path().c_str());
  }
  BalanceResults results;
  const std::string instance = "bench-balance-" + std::to_string(getpid());
  for (uint32_t repetition = 0; repetition < options.repetitions; ++repetition) {
    for (Mode mode : modes) {
      std::string path = std::filesystem::absolute(scratch.run_path(mode_key(mode))).string();
      Result<RunFigures> run = run_once({mode, options.seconds, path, instance}, &results.cap_cores);
      scratch.remove_run(path);
      if (!run) {
        std::fprintf(stderr, "keel bench balance: %s\n", run.error().message.c_str());
        return 1;
      }
      add(results, mode, *run);
    }
    if (!options.json) std::fprintf(stderr, "  round %u of %u done\n", repetition + 1, options.repetitions);
  }
  std::vector<Target> targets = targets_of(results);
  if (options.json)
    print_json(options, scratch.path(), results, targets);
  else
    print_text(options, scratch.path(), results, targets);
  return 0;
}

}  // namespace keel::perf
