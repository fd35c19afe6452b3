#include "perf/bench_flows.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/config/perf_config.h"
#include "engine/core/engine_plan.h"
#include "engine/flow/flow_model.h"
#include "engine/node/ledger_run.h"
#include "perf/bench_report.h"
#include "shm/segment.h"

namespace keel::perf {

namespace {

constexpr double target_jobs_per_second = 100'000;

std::string config_text(const std::string& instance, const std::string& data_dir) {
  std::string text;
  text += "[engine]\ninstance = \"" + instance + "\"\n";
  text += "[[chain]]\nname = \"bench\"\nshards = 1\nblock_txs_max = 8192\nblock_us_max = 1000\n";
  text += "[ledger]\ndata_dir = \"" + data_dir + "\"\nfsync = \"always\"\nsnapshot_every_blocks = 0\n";
  text += "[load]\nenabled = false\n";
  // The pool's credit covers the flow table's running limit (16,384 jobs a shard).
  text += "[[pool]]\ncompute_types = [\"noop\"]\nplugin = \"noop\"\nthreads_per_node = 1\nin_flight_max = 16384\n";
  return text;
}

flow::FlowStep noop_step(const std::string& id, std::vector<std::string> after, uint32_t split) {
  flow::FlowStep step;
  step.id = id;
  step.compute_type = "noop";
  step.after = std::move(after);
  step.input = {{flow::InputKind::split_index, ""}};
  step.split = split;
  return step;
}

flow::FlowModel loan_shape() {
  return {"bench_loan", 1, "bench", {}, {},
          {noop_step("hash", {}, 1), noop_step("score", {"hash"}, 1), noop_step("risk", {"hash"}, 16),
           noop_step("decision", {"score", "risk"}, 1)}};
}

flow::FlowModel split_shape() { return {"bench_split", 1, "bench", {}, {}, {noop_step("fan", {}, 10'000)}}; }

struct Run {
  double jobs_per_second = 0;  // flow jobs, or plain tasks for the baseline
  double flows_per_second = 0;
  double latency_us_p50 = 0, latency_us_p99 = 0;  // the scheduler's: shard sent -> result back
  double ready_us_p50 = 0, ready_us_p99 = 0;      // the shards': step ready -> sent to the scheduler
  uint64_t failed = 0, live_left = 0, setup_refused = 0;
  double bytes_per_live_flow = 0, bytes_per_finished_flow = 0;
  std::string plan;
};

// One engine run with a source of flows of `model` (or of plain compute tasks without one).
Result<Run> run_engine(const std::string& data_dir, double seconds, const flow::FlowModel* model,
                       uint64_t flows_per_second = 0) {
  std::string instance = "bench-flows-" + std::to_string(getpid());
  Result<config::PerfConfig> config =
      config::parse_perf_config(config_text(instance, data_dir), "keel bench flows (built-in config)");
  if (!config) return config.error();
  Result<numa::Topology> topology = engine::load_topology(*config, "");
  if (!topology) return topology.error();
  Result<numa::Plan> plan = numa::make_plan(*topology, engine::plan_request(*config));
  if (!plan) return plan.error();
  node::LedgerRunOptions options;
  options.duration_ms = uint64_t(seconds * 1000);
  node::ComputeSourceOptions source{.compute_type = "noop", .input_bytes = 8};
  if (model) {
    source.flow_model = flow::encode_flow_model(*model);
    // A split flow holds 10,000 jobs: a few in flight keep the table full.
    source.requests_in_flight_max = model->steps.size() == 1 ? 8 : 4096;
    source.requests_per_second = flows_per_second;
  }
  options.compute_source = source;
  Result<node::LedgerReport> report = node::run_ledger(*config, *topology, *plan, options);
  shm::Segment::remove("keel-" + instance);
  if (!report) return report.error();
  if (report->stopped_by_signal) return make_error("keel bench flows", "stopped by a signal");
  const node::ComputeReport& compute = report->compute;
  if (compute.pools_quarantined != 0) return make_error("keel bench flows", "the noop pool was quarantined");
  Run run;
  double seconds_run = report->duration_with_drain_s;
  if (model) {
    run.jobs_per_second = double(compute.flow_jobs_succeeded) / seconds_run;
    run.flows_per_second = double(compute.flows_succeeded) / seconds_run;
    run.failed = compute.flow_jobs_failed + compute.flows_failed;
    run.live_left = compute.flows_live;
    run.setup_refused = report->source.setup_refused;
    if (compute.flows_live) run.bytes_per_live_flow = double(compute.flow_live_bytes) / double(compute.flows_live);
    if (compute.flows_finished_kept)
      run.bytes_per_finished_flow = double(compute.flow_finished_bytes) / double(compute.flows_finished_kept);
  } else {
    run.jobs_per_second = double(compute.ledger_tasks_succeeded) / seconds_run;
    run.failed = compute.ledger_tasks_failed;
  }
  run.latency_us_p50 = double(compute.dispatch_latency_us_p50);
  run.latency_us_p99 = double(compute.dispatch_latency_us_p99);
  run.ready_us_p50 = double(compute.ready_to_dispatch_us_p50);
  run.ready_us_p99 = double(compute.ready_to_dispatch_us_p99);
  run.plan = plan->topology_description;
  return run;
}

// One shape's figures over the repetitions.
struct ShapeFigures {
  Figure jobs, flows, p50, p99, ready_p50, ready_p99, live_bytes, finished_bytes;
  void add(const Run& run) {
    jobs.samples.push_back(run.jobs_per_second);
    flows.samples.push_back(run.flows_per_second);
    p50.samples.push_back(run.latency_us_p50);
    p99.samples.push_back(run.latency_us_p99);
    ready_p50.samples.push_back(run.ready_us_p50);
    ready_p99.samples.push_back(run.ready_us_p99);
    live_bytes.samples.push_back(run.bytes_per_live_flow);
    finished_bytes.samples.push_back(run.bytes_per_finished_flow);
  }
};

struct FlowsResults {
  ShapeFigures loan, split, paced;  // paced: the loan at a fixed rate
  Figure tasks;
  uint64_t failed = 0, setup_refused = 0;
  std::string plan;
};

void print_report(const FlowsBenchOptions& options, const std::string& directory, const FlowsResults& results) {
  std::vector<Target> targets = {
      {"loan-shape jobs/s / 100,000", results.loan.jobs.median() / target_jobs_per_second, 1.0},
      {"10,000-way split jobs/s / 100,000", results.split.jobs.median() / target_jobs_per_second, 1.0}};
  if (options.json) {
    nlohmann::json json;
    json["benchmark"] = "flows";
    json["machine"] = machine_line();
    json["topology"] = results.plan;
    json["directory"] = directory;
    json["repetitions"] = options.repetitions;
    json["seconds_per_run"] = options.seconds;
    json["jobs_per_second"] = {{"loan", results.loan.jobs.json()},
                               {"split_10000", results.split.jobs.json()},
                               {"plain_tasks_baseline", results.tasks.json()}};
    json["flows_per_second"] = {{"loan", results.loan.flows.json()}, {"split_10000", results.split.flows.json()}};
    json["ratio_loan_jobs_to_plain_tasks"] = paired_ratio(results.loan.jobs, results.tasks);
    json["ratio_split_jobs_to_plain_tasks"] = paired_ratio(results.split.jobs, results.tasks);
    json["dispatch_latency_us_p50"] = {{"loan", results.loan.p50.json()}, {"split_10000", results.split.p50.json()}};
    json["dispatch_latency_us_p99"] = {{"loan", results.loan.p99.json()}, {"split_10000", results.split.p99.json()}};
    json["ready_to_dispatched_us_p50"] = {{"loan", results.loan.ready_p50.json()},
                                          {"split_10000", results.split.ready_p50.json()}};
    json["ready_to_dispatched_us_p99"] = {{"loan", results.loan.ready_p99.json()},
                                          {"split_10000", results.split.ready_p99.json()}};
    json["loan_at_fixed_rate"] = {{"flows_per_second_offered", options.latency_flows_per_second},
                                  {"jobs_per_second", results.paced.jobs.json()},
                                  {"ready_to_dispatched_us_p50", results.paced.ready_p50.json()},
                                  {"ready_to_dispatched_us_p99", results.paced.ready_p99.json()},
                                  {"dispatch_latency_us_p50", results.paced.p50.json()},
                                  {"dispatch_latency_us_p99", results.paced.p99.json()}};
    json["bytes_per_live_flow"] = {{"loan", results.loan.live_bytes.json()},
                                   {"split_10000", results.split.live_bytes.json()}};
    json["bytes_per_finished_flow"] = results.loan.finished_bytes.json();
    json["failed"] = results.failed;
    add_targets_json(json, targets);
    std::printf("%s\n", json.dump().c_str());
    return;
  }
  std::printf("machine: %s\ntopology: %s; files in %s\n", machine_line().c_str(), results.plan.c_str(),
              directory.c_str());
  std::printf("noop jobs (8-byte input), fsync always, %.1f s runs; medians of %u repetitions, interleaved\n\n",
              options.seconds, options.repetitions);
  std::printf("%-52s %12s %12s %12s\n", "figure", "median", "min", "max");
  auto row = [](const char* name, const Figure& figure, double scale) {
    std::printf("%-52s %12.3f %12.3f %12.3f\n", name, figure.median() / scale, figure.min() / scale,
                figure.max() / scale);
  };
  row("loan shape: jobs/s (k)", results.loan.jobs, 1e3);
  row("loan shape: flows/s (k)", results.loan.flows, 1e3);
  row("loan shape: dispatch latency p50 (us)", results.loan.p50, 1);
  row("loan shape: dispatch latency p99 (us)", results.loan.p99, 1);
  row("loan shape: ready -> dispatched p50 (us)", results.loan.ready_p50, 1);
  row("loan shape: ready -> dispatched p99 (us)", results.loan.ready_p99, 1);
  std::printf("%s\n", ("loan shape at " + std::to_string(options.latency_flows_per_second) + " flows/s offered:").c_str());
  row("  jobs/s (k)", results.paced.jobs, 1e3);
  row("  ready -> dispatched p50 (us)", results.paced.ready_p50, 1);
  row("  ready -> dispatched p99 (us)", results.paced.ready_p99, 1);
  row("  dispatch latency p50 (us)", results.paced.p50, 1);
  row("  dispatch latency p99 (us)", results.paced.p99, 1);
  row("10,000-way split: jobs/s (k)", results.split.jobs, 1e3);
  row("10,000-way split: flows/s", results.split.flows, 1);
  row("10,000-way split: dispatch latency p50 (us)", results.split.p50, 1);
  row("10,000-way split: dispatch latency p99 (us)", results.split.p99, 1);
  row("10,000-way split: ready -> dispatched p50 (us)", results.split.ready_p50, 1);
  row("10,000-way split: ready -> dispatched p99 (us)", results.split.ready_p99, 1);
  row("loan shape: bytes per live flow", results.loan.live_bytes, 1);
  row("10,000-way split: bytes per live flow (its running jobs)", results.split.live_bytes, 1);
  row("bytes per finished flow kept", results.loan.finished_bytes, 1);
  row("baseline: plain compute tasks/s (k)", results.tasks, 1e3);
  std::printf("loan jobs / plain tasks: %.2f; split jobs / plain tasks: %.2f; failed: %llu\n",
              paired_ratio(results.loan.jobs, results.tasks), paired_ratio(results.split.jobs, results.tasks),
              (unsigned long long)results.failed);
  print_targets(targets);
}

}  // namespace

int run_flows_bench(const FlowsBenchOptions& options) {
  if (options.repetitions == 0 || options.seconds <= 0) {
    std::fprintf(stderr, "keel bench flows: --repetitions and --seconds must be above 0\n");
    return 2;
  }
  ScratchFolder scratch(options.directory, "data/bench-flows");
  if (auto created = scratch.create(); !created) {
    std::fprintf(stderr, "keel bench flows: %s\n", created.error().message.c_str());
    return 1;
  }
  if (!options.json)
    std::fprintf(stderr, "keel bench flows: %u repetitions, files in %s\n", options.repetitions, scratch.path().c_str());
  flow::FlowModel loan = loan_shape(), split = split_shape();
  FlowsResults results;
  for (uint32_t repetition = 0; repetition < options.repetitions; ++repetition) {
    // Full speed: the loan, the split, plain tasks; then the loan again at a fixed rate,
    // which measures latency without a backlog.
    struct Kind {
      const flow::FlowModel* model;
      bool paced;
    };
    for (Kind kind : {Kind{&loan, false}, Kind{&split, false}, Kind{nullptr, false}, Kind{&loan, true}}) {
      const flow::FlowModel* model = kind.model;
      bool is_paced = kind.paced;
      std::string path = scratch.run_path(model ? model->name : "tasks");
      Result<Run> run = run_engine(std::filesystem::absolute(path).string(), options.seconds, model,
                                   is_paced ? options.latency_flows_per_second : 0);
      scratch.remove_run(path);
      if (!run) {
        std::fprintf(stderr, "keel bench flows: %s\n", run.error().message.c_str());
        return 1;
      }
      results.failed += run->failed;
      results.setup_refused += run->setup_refused;
      results.plan = run->plan;
      if (!model) results.tasks.samples.push_back(run->jobs_per_second);
      else (is_paced ? results.paced : model == &loan ? results.loan : results.split).add(*run);
    }
    if (!options.json) std::fprintf(stderr, "  repetition %u of %u done\n", repetition + 1, options.repetitions);
  }
  if (results.setup_refused != 0) {
    std::fprintf(stderr, "keel bench flows: the engine refused the contract's deploy or product setting\n");
    return 1;
  }
  print_report(options, scratch.path(), results);
  return results.failed == 0 ? 0 : 1;
}

}  // namespace keel::perf
