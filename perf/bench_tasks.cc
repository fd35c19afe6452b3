#include "perf/bench_tasks.h"

#include <oneapi/tbb/flow_graph.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/core/engine_plan.h"
#include "engine/node/ledger_run.h"
#include "engine/sched/plugin_library.h"
#include "perf/bench_report.h"
#include "shm/segment.h"

namespace keel::perf {

namespace {

constexpr double target_tasks_per_second = 500'000;
constexpr uint32_t task_input_bytes = 8;
constexpr uint32_t tasks_pending_max = 16384;  // per shard: see config_text

// The engine's config for one end-to-end run: one chain, a noop pool, no load
// generators, fsync always. Two nodes: a synthetic topology of two NUMA nodes of one
// core each, and two shards.
std::string config_text(const std::string& instance, const std::string& data_dir, bool two_nodes) {
  std::string text;
  text += "[engine]\ninstance = \"" + instance + "\"\n";
  // Rounds of 1,024 items per weight unit instead of the engine's 64: a throughput run
  // has no light chain waiting behind a busy tile, and longer turns spend less on each
  // tile's poll (its clock reads, ring indexes and doorbells). Alternated against 64:
  // the scheduler's time per task 120-140 ns against 160-200, two nodes 2.1-2.5 M
  // tasks/s against 1.4-1.7 (perf/RESULTS.md, 2026-11-26, morning).
  text += "tile_budget = 1024\n";
  if (two_nodes) text += "[topology]\nsource = \"synthetic\"\nsynthetic = \"numa:2 core:1 pu:1\"\n";
  text += "[[chain]]\nname = \"bench\"\nshards = " + std::string(two_nodes ? "2" : "1") +
          "\nblock_txs_max = 8192\nblock_us_max = 1000\n";
  // A task is pending from its request's execution to its result's (its block's formation
  // and seal, the scheduler and the pool's round trip, the result's wait for the shard's
  // next poll), ~3.5 ms at the engine's default of 4,096 pending per shard: by Little's law
  // that default capped the run near 4,096 / 3.5 ms = 1.2 M tasks/s, and the requests the
  // source sent past it were ordered only to be refused. The bench holds tasks_pending_max
  // per shard (and the source's window and ring to match); the cores are then the limit,
  // and the extra pending tasks queue (dispatch p50 about 2 ms, perf/RESULTS.md).
  text += "[ledger]\ndata_dir = \"" + data_dir + "\"\nfsync = \"always\"\nsnapshot_every_blocks = 0\n" +
          "compute_pending_max = " + std::to_string(tasks_pending_max) +
          "\nclient_in_flight_max = " + std::to_string(tasks_pending_max) + "\n";
  text += "[load]\nenabled = false\n";
  // Leases for every pending task of both shards, which the two-node plan hands to one
  // scheduler.
  text += "[scheduler]\nleases_max = " + std::to_string(2 * tasks_pending_max) + "\n";
  // in_flight_max = the shards' compute_pending_max together: the pool never runs out of
  // credit before the ledgers run out of pending room. (The plan puts both shards of the
  // two-node run on node 1, next to scheduler.1: node 0 holds the persist tile and the
  // gateway.)
  text += "[[pool]]\ncompute_types = [\"noop\"]\nplugin = \"noop\"\nthreads_per_node = 1\nin_flight_max = " +
          std::to_string(tasks_pending_max * (two_nodes ? 2 : 1)) + "\n";
  return text;
}

struct EndToEndRun {
  double tasks_per_second = 0;
  double scheduler_ns_per_task = 0;
  // CPU time (user + system, every thread) per task ordered: the engine's (this process:
  // its tiles, io_uring workers included) and the pool processes' (reaped children).
  double engine_cpu_ns_per_task = 0;
  double pool_cpu_ns_per_task = 0;
  double shard_ns_per_task = 0;  // the shard tile's busy time per task ordered
  double dispatch_latency_us_p50 = 0;
  double dispatch_latency_us_p99 = 0;
  double local_share = 0;  // tasks dispatched to their own node's pool / all dispatched
  uint64_t results = 0;
  uint64_t failed = 0;
  uint64_t backlog_full = 0;
  std::string plan;
  std::string layout;  // cores and their tiles
};

// CPU time used so far (user + system) by this process (RUSAGE_SELF) or by its children
// that have ended and been waited for (RUSAGE_CHILDREN), in ns.
uint64_t cpu_ns(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  auto ns = [](const timeval& time) { return uint64_t(time.tv_sec) * 1'000'000'000 + uint64_t(time.tv_usec) * 1000; };
  return ns(usage.ru_utime) + ns(usage.ru_stime);
}

// The plan's cores and their tiles, one line: "core 0: a, b; core 1: c".
std::string layout_of(const numa::Plan& plan) {
  std::string text;
  for (const numa::PlannedCore& core : plan.cores) {
    text += (text.empty() ? "" : "; ") + std::string("core ") + std::to_string(core.core_index) + ":";
    for (size_t index = 0; index < core.tiles.size(); ++index) text += (index == 0 ? " " : ", ") + core.tiles[index].name;
  }
  return text;
}

Result<EndToEndRun> run_end_to_end(const std::string& data_dir, bool two_nodes, double seconds,
                                   std::string* plugin_path) {
  std::string instance = "bench-tasks-" + std::to_string(getpid());
  Result<config::PerfConfig> config =
      config::parse_perf_config(config_text(instance, data_dir, two_nodes), "keel bench tasks (built-in config)");
  if (!config) return config.error();
  *plugin_path = config->pools[0].plugin_path;
  Result<numa::Topology> topology = engine::load_topology(*config, "");
  if (!topology) return topology.error();
  Result<numa::Plan> plan = numa::make_plan(*topology, engine::plan_request(*config));
  if (!plan) return plan.error();
  node::LedgerRunOptions options;
  options.duration_ms = uint64_t(seconds * 1000);
  options.compute_source = node::ComputeSourceOptions{
      .compute_type = "noop", .input_bytes = task_input_bytes, .requests_in_flight_max = tasks_pending_max};
  const uint64_t engine_cpu_before_ns = cpu_ns(RUSAGE_SELF), pools_cpu_before_ns = cpu_ns(RUSAGE_CHILDREN);
  Result<node::LedgerReport> report = node::run_ledger(*config, *topology, *plan, options);
  const uint64_t engine_cpu_ns = cpu_ns(RUSAGE_SELF) - engine_cpu_before_ns;
  const uint64_t pools_cpu_ns = cpu_ns(RUSAGE_CHILDREN) - pools_cpu_before_ns;
  shm::Segment::remove("keel-" + instance);  // run_ledger removes it; a failure half-way might not
  if (!report) return report.error();
  if (report->stopped_by_signal) return make_error("keel bench tasks", "stopped by a signal");
  const node::ComputeReport& compute = report->compute;
  if (compute.pools_quarantined != 0) return make_error("keel bench tasks", "the noop pool was quarantined");
  EndToEndRun run;
  run.results = compute.ledger_tasks_succeeded + compute.ledger_tasks_failed;
  run.failed = compute.ledger_tasks_failed;
  run.backlog_full = report->source.requests_backlog_full;
  // Counted after the drain (every result ordered is durable then), so over the run and
  // the drain: a little low, never high.
  run.tasks_per_second = double(compute.ledger_tasks_succeeded) / report->duration_with_drain_s;
  run.scheduler_ns_per_task =
      compute.results_returned ? double(compute.scheduler_busy_ns) / double(compute.results_returned) : 0;
  if (run.results != 0) {
    run.shard_ns_per_task = double(compute.shard_busy_ns) / double(run.results);
    run.engine_cpu_ns_per_task = double(engine_cpu_ns) / double(run.results);
    run.pool_cpu_ns_per_task = double(pools_cpu_ns) / double(run.results);
  }
  run.dispatch_latency_us_p50 = double(compute.dispatch_latency_us_p50);
  run.dispatch_latency_us_p99 = double(compute.dispatch_latency_us_p99);
  run.local_share =
      compute.tasks_dispatched ? 1.0 - double(compute.tasks_spilled) / double(compute.tasks_dispatched) : 0;
  run.plan = plan->topology_description;
  run.layout = layout_of(*plan);
  return run;
}

// The same tasks in one process: a flow_graph input node making each task (its input),
// an unlimited function node running the noop plugin through the same PluginInstance as
// the worker, and a serial sink counting results. No ledger, no rings, no isolation.
Result<double> run_flow_graph(const std::string& plugin_path, uint64_t tasks) {
  Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(plugin_path);
  if (!library) return library.error();
  std::optional<uint32_t> type = (*library)->compute_type_index("noop");
  if (!type) return make_error(plugin_path, "serves no noop type");
  Result<sched::PluginInstance> instance = (*library)->init({});
  if (!instance) return instance.error();
  struct Task {
    uint64_t id;
    std::array<std::byte, task_input_bytes> input;
    int32_t status;
  };
  namespace flow = oneapi::tbb::flow;
  flow::graph graph;
  uint64_t next = 0, done = 0, failed = 0;
  flow::input_node<Task> source(graph, [&](oneapi::tbb::flow_control& control) -> Task {
    if (next == tasks) {
      control.stop();
      return {};
    }
    return Task{next++, {}, 0};
  });
  const sched::PluginInstance& plugin = *instance;
  uint32_t plugin_type = *type;
  flow::function_node<Task, Task> run(graph, flow::unlimited, [&](Task task) {
    thread_local std::vector<std::byte> output(16384);  // the pool's output_bytes_max
    size_t output_bytes = 0;
    task.status = plugin.run(plugin_type, task.input, output, &output_bytes);
    return task;
  });
  flow::function_node<Task> sink(graph, flow::serial, [&](const Task& task) {
    ++done;
    failed += task.status != 0;
  });
  flow::make_edge(source, run);
  flow::make_edge(run, sink);
  uint64_t start_ns = shm::monotonic_ns();
  source.activate();
  graph.wait_for_all();
  double seconds = double(shm::monotonic_ns() - start_ns) / 1e9;
  if (done != tasks || failed != 0) return make_error("flow_graph baseline", "lost or failed tasks");
  return double(tasks) / seconds;
}

struct TasksResults {
  Figure end_to_end, scheduler_ns, latency_p50, latency_p99, flow_graph, two_node_local_share, two_node_tasks,
      backlog_full, engine_cpu_ns, pool_cpu_ns, flow_graph_cpu_ns, shard_ns;
  uint64_t failed = 0;
  std::string plan;
  std::string layout, two_node_layout;  // the plan's cores and tiles (layout_of)
};

void print_report(const TasksBenchOptions& options, const std::string& directory, const TasksResults& results) {
  std::vector<Target> targets = {
      {"end-to-end tasks/s / 500,000", results.end_to_end.median() / target_tasks_per_second, 1.0},
      {"end to end / in-process flow_graph", paired_ratio(results.end_to_end, results.flow_graph), 0.5},
      {"two nodes: tasks on their own node", results.two_node_local_share.min(), 1.0}};
  if (options.json) {
    nlohmann::json json;
    json["benchmark"] = "tasks";
    json["machine"] = machine_line();
    json["topology"] = results.plan;
    json["layout"] = results.layout;
    json["two_node_layout"] = results.two_node_layout;
    json["directory"] = directory;
    json["repetitions"] = options.repetitions;
    json["seconds_per_run"] = options.seconds;
    json["baseline_tasks_per_run"] = options.baseline_tasks;
    json["tasks_per_second"] = {{"end_to_end", results.end_to_end.json()},
                                {"flow_graph_in_process", results.flow_graph.json()},
                                {"two_node_end_to_end", results.two_node_tasks.json()}};
    json["scheduler_ns_per_task"] = results.scheduler_ns.json();
    json["shard_ns_per_task"] = results.shard_ns.json();
    json["cpu_ns_per_task"] = {{"engine", results.engine_cpu_ns.json()},
                               {"pool_processes", results.pool_cpu_ns.json()},
                               {"flow_graph_in_process", results.flow_graph_cpu_ns.json()}};
    json["dispatch_latency_us_p50"] = results.latency_p50.json();
    json["dispatch_latency_us_p99"] = results.latency_p99.json();
    json["requests_backlog_full_per_run"] = results.backlog_full.json();
    json["two_node_local_share"] = results.two_node_local_share.json();
    json["tasks_failed"] = results.failed;
    add_targets_json(json, targets);
    std::printf("%s\n", json.dump().c_str());
    return;
  }
  std::printf("machine: %s\ntopology: %s; files in %s\n", machine_line().c_str(), results.plan.c_str(),
              directory.c_str());
  std::printf("layout: %s\ntwo nodes: %s\n", results.layout.c_str(), results.two_node_layout.c_str());
  std::printf("noop tasks (%u-byte input); end to end: %.1f s runs, fsync always; flow_graph: %llu tasks per run; "
              "medians of %u repetitions, interleaved\n\n",
              task_input_bytes, options.seconds, (unsigned long long)options.baseline_tasks, options.repetitions);
  std::printf("%-48s %12s %12s %12s\n", "figure", "median", "min", "max");
  auto row = [](const char* name, const Figure& figure, double scale) {
    std::printf("%-48s %12.3f %12.3f %12.3f\n", name, figure.median() / scale, figure.min() / scale,
                figure.max() / scale);
  };
  row("end to end, durable (M tasks/s)", results.end_to_end, 1e6);
  row("in-process flow_graph, baseline (M tasks/s)", results.flow_graph, 1e6);
  row("scheduler tile's time per task (ns)", results.scheduler_ns, 1);
  row("shard tile's time per task (ns)", results.shard_ns, 1);
  row("engine process CPU per task (ns)", results.engine_cpu_ns, 1);
  row("pool processes' CPU per task (ns)", results.pool_cpu_ns, 1);
  row("flow_graph baseline's CPU per task (ns)", results.flow_graph_cpu_ns, 1);
  row("dispatch latency p50 (us)", results.latency_p50, 1);
  row("dispatch latency p99 (us)", results.latency_p99, 1);
  row("requests refused compute_backlog_full per run", results.backlog_full, 1);
  row("two nodes: end to end (M tasks/s)", results.two_node_tasks, 1e6);
  row("two nodes: share of tasks on their node (%)", results.two_node_local_share, 0.01);
  std::printf("tasks that failed: %llu\n", (unsigned long long)results.failed);
  print_targets(targets);
}

}  // namespace

int run_tasks_bench(const TasksBenchOptions& options) {
  if (options.repetitions == 0 || options.seconds <= 0 || options.baseline_tasks == 0) {
    std::fprintf(stderr, "keel bench tasks: --repetitions, --seconds and --baseline-tasks must be above 0\n");
    return 2;
  }
  ScratchFolder scratch(options.directory, "data/bench-tasks");
  if (auto created = scratch.create(); !created) {
    std::fprintf(stderr, "keel bench tasks: %s\n", created.error().message.c_str());
    return 1;
  }
  if (!options.json) {
    std::fprintf(stderr, "keel bench tasks: %u repetitions, files in %s\n", options.repetitions,
                 scratch.path().c_str());
  }
  TasksResults results;
  for (uint32_t repetition = 0; repetition < options.repetitions; ++repetition) {
    std::string plugin_path;
    for (bool two_nodes : {false, true}) {
      std::string path = scratch.run_path(two_nodes ? "two-nodes" : "one-node");
      Result<EndToEndRun> run = run_end_to_end(std::filesystem::absolute(path).string(), two_nodes,
                                               options.seconds, &plugin_path);
      scratch.remove_run(path);
      if (!run) {
        std::fprintf(stderr, "keel bench tasks: %s\n", run.error().message.c_str());
        return 1;
      }
      results.failed += run->failed;
      if (two_nodes) {
        results.two_node_tasks.samples.push_back(run->tasks_per_second);
        results.two_node_local_share.samples.push_back(run->local_share);
        results.two_node_layout = run->layout;
      } else {
        results.end_to_end.samples.push_back(run->tasks_per_second);
        results.scheduler_ns.samples.push_back(run->scheduler_ns_per_task);
        results.shard_ns.samples.push_back(run->shard_ns_per_task);
        results.engine_cpu_ns.samples.push_back(run->engine_cpu_ns_per_task);
        results.pool_cpu_ns.samples.push_back(run->pool_cpu_ns_per_task);
        results.latency_p50.samples.push_back(run->dispatch_latency_us_p50);
        results.latency_p99.samples.push_back(run->dispatch_latency_us_p99);
        results.backlog_full.samples.push_back(double(run->backlog_full));
        results.plan = run->plan;
        results.layout = run->layout;
      }
    }
    const uint64_t baseline_cpu_before_ns = cpu_ns(RUSAGE_SELF);
    Result<double> baseline = run_flow_graph(plugin_path, options.baseline_tasks);
    if (!baseline) {
      std::fprintf(stderr, "keel bench tasks: %s\n", baseline.error().message.c_str());
      return 1;
    }
    results.flow_graph.samples.push_back(*baseline);
    results.flow_graph_cpu_ns.samples.push_back(double(cpu_ns(RUSAGE_SELF) - baseline_cpu_before_ns) /
                                                double(options.baseline_tasks));
    if (!options.json) std::fprintf(stderr, "  repetition %u of %u done\n", repetition + 1, options.repetitions);
  }
  print_report(options, scratch.path(), results);
  return results.failed == 0 ? 0 : 1;
}

}  // namespace keel::perf
