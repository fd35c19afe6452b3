// The `keel` command: version, plan, run, bench, and the hidden pipeline-relay that
// `keel run` starts as its child process.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/cli/balance_commands.h"
#include "engine/cli/credit_commands.h"
#include "engine/cli/flow_commands.h"
#include "engine/cli/ledger_commands.h"
#include "engine/cli/plugin_command.h"
#include "engine/cli/status_commands.h"
#include "engine/cli/version.h"
#include "engine/config/perf_config.h"
#include "engine/core/engine_plan.h"
#include "engine/sched/worker.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/pipeline_run.h"
#include "numa/placement.h"
#include "perf/bench_balance.h"
#include "perf/bench_ledger.h"
#include "perf/bench_flows.h"
#include "perf/bench_tasks.h"
#include "perf/bench_ring.h"
#include "perf/bench_wal.h"

namespace keel::cli {
namespace {

int fail(const Error& error) {
  std::fprintf(stderr, "keel: %s\n", error.message.c_str());
  return 2;
}

// "10s", "250ms", "2m", "1h" or a bare number of seconds.
Result<uint64_t> parse_duration_ms(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  uint64_t scale = unit.empty() || unit == "s" ? 1000 : unit == "ms" ? 1 : unit == "m" ? 60'000 : unit == "h" ? 3'600'000 : 0;
  if (digits == 0 || digits > 9 || scale == 0) {
    return make_error("--duration", "expected a number with unit ms, s, m or h (e.g. 10s), got '" + text + "'");
  }
  return std::stoull(text.substr(0, digits)) * scale;
}

struct Planned {
  config::PerfConfig config;
  numa::Topology topology;
  numa::Plan plan;
};

Result<Planned> load_and_plan(const std::string& config_path, const std::string& topology_override) {
  Result<config::PerfConfig> config = config::load_perf_config(config_path);
  if (!config) return config.error();
  Result<numa::Topology> topology = engine::load_topology(*config, topology_override);
  if (!topology) return topology.error();
  Result<numa::Plan> plan = numa::make_plan(*topology, engine::plan_request(*config));
  if (!plan) return make_error(config_path, plan.error().message);
  return Planned{std::move(*config), std::move(*topology), std::move(*plan)};
}

double ns_to_us(uint64_t ns) { return double(ns) / 1000.0; }

nlohmann::json latency_json(const engine::LatencyHistogram& histogram) {
  return {{"latency_us_p50", ns_to_us(histogram.percentile(0.50))},
          {"latency_us_p99", ns_to_us(histogram.percentile(0.99))},
          {"latency_us_max", ns_to_us(histogram.max_ns())}};
}

nlohmann::json report_json(const engine::pipeline::PipelineReport& report) {
  nlohmann::json json = {{"messages", report.messages},
                         {"duration_s", report.duration_s},
                         {"messages_per_second", report.messages_per_second},
                         {"sequence_errors", report.sequence_errors},
                         {"payload_errors", report.payload_errors},
                         {"stopped_by_signal", report.stopped_by_signal},
                         {"end_to_end", latency_json(report.end_to_end)},
                         {"notes", report.notes}};
  for (const engine::pipeline::RingReport& ring : report.rings) {
    nlohmann::json entry = latency_json(ring.latency);
    entry["name"] = ring.name;
    entry["pushed"] = ring.stats.pushed;
    entry["popped"] = ring.stats.popped;
    entry["full_events"] = ring.stats.full_events;
    entry["arena_full_events"] = ring.arena_full_events;
    json["rings"].push_back(entry);
  }
  for (const engine::pipeline::CoreReport& core : report.cores) {
    json["cores"].push_back({{"name", core.name}, {"tiles", core.tiles}, {"pu_os_index", core.pu_os_index},
                             {"rounds", core.stats.rounds}, {"idle_rounds", core.stats.idle_rounds},
                             {"sleeps", core.stats.sleeps}});
  }
  return json;
}

void print_report(const engine::pipeline::PipelineReport& report) {
  std::printf("pipeline: %llu messages in %.3f s = %.2f M messages/s%s\n", (unsigned long long)report.messages,
              report.duration_s, report.messages_per_second / 1e6, report.stopped_by_signal ? " (stopped by signal)" : "");
  std::printf("%-28s %12s %12s %10s %10s %10s\n", "ring", "messages", "full events", "p50 us", "p99 us", "max us");
  for (const engine::pipeline::RingReport& ring : report.rings) {
    std::printf("%-28s %12llu %12llu %10.1f %10.1f %10.1f\n", ring.name.c_str(), (unsigned long long)ring.stats.popped,
                (unsigned long long)(ring.stats.full_events + ring.arena_full_events), ns_to_us(ring.latency.percentile(0.5)),
                ns_to_us(ring.latency.percentile(0.99)), ns_to_us(ring.latency.max_ns()));
  }
  std::printf("%-28s %12llu %12s %10.1f %10.1f %10.1f\n", "end to end", (unsigned long long)report.end_to_end.count(), "",
              ns_to_us(report.end_to_end.percentile(0.5)), ns_to_us(report.end_to_end.percentile(0.99)),
              ns_to_us(report.end_to_end.max_ns()));
  for (const engine::pipeline::CoreReport& core : report.cores) {
    std::string tiles;
    for (const std::string& tile : core.tiles) tiles += (tiles.empty() ? "" : ", ") + tile;
    std::printf("%s (PU %s): %s; %llu rounds, %llu idle, %llu sleeps\n", core.name.c_str(),
                core.pu_os_index < 0 ? "unbound" : std::to_string(core.pu_os_index).c_str(), tiles.c_str(),
                (unsigned long long)core.stats.rounds, (unsigned long long)core.stats.idle_rounds,
                (unsigned long long)core.stats.sleeps);
  }
  std::printf("integrity: %llu sequence errors, %llu payload errors\n", (unsigned long long)report.sequence_errors,
              (unsigned long long)report.payload_errors);
}

int run_command(const std::string& config_path, const std::string& topology_override, const std::string& duration,
                bool json, const RunOutputs& outputs) {
  Result<uint64_t> duration_ms = parse_duration_ms(duration);
  if (!duration_ms) return fail(duration_ms.error());
  Result<Planned> planned = load_and_plan(config_path, topology_override);
  if (!planned) return fail(planned.error());
  bool pipeline_job = planned->config.pipeline.enabled;
  size_t waiting = 0;
  for (const numa::PlannedCore& core : planned->plan.cores) {
    for (const numa::PlannedTile& tile : core.tiles) waiting += !engine::tile_kind_is_implemented(tile.kind, pipeline_job);
  }
  if (!json) {
    std::printf("keel run: %s on %s\n", config_path.c_str(), planned->plan.topology_description.c_str());
    if (waiting != 0) {
      std::printf("note: %zu planned tiles are placed but not run yet (%s)\n", waiting,
                  pipeline_job ? "this config runs the synthetic pipeline" : "cron timers run inside the shard tiles, whose ledgers hold them, so the timer tile has nothing to do");
    }
  }
  if (!pipeline_job)
    return run_ledger_command(planned->config, planned->topology, planned->plan, config_path, *duration_ms, json,
                              outputs);
  Result<engine::pipeline::PipelineReport> report =
      engine::pipeline::run_pipeline(planned->config, planned->topology, planned->plan, {*duration_ms, "/proc/self/exe"});
  if (!report) return fail(report.error());
  if (json) {
    std::printf("%s\n", report_json(*report).dump().c_str());
  } else {
    for (const std::string& note : report->notes) std::printf("note: %s\n", note.c_str());
    print_report(*report);
  }
  bool intact = report->sequence_errors == 0 && report->payload_errors == 0;
  if (!intact) std::fprintf(stderr, "keel: the pipeline lost, reordered or corrupted messages\n");
  return intact ? 0 : 1;
}

int plan_command(const std::string& config_path, const std::string& topology_override, bool json) {
  Result<Planned> planned = load_and_plan(config_path, topology_override);
  if (!planned) return fail(planned.error());
  std::fputs((json ? numa::format_plan_json(planned->plan) + "\n" : numa::format_plan_table(planned->plan)).c_str(), stdout);
  return 0;
}

}  // namespace
}  // namespace keel::cli

int main(int argc, char** argv) {
  using namespace keel::cli;
  CLI::App app{"keel: many ledgers and their business-process contracts on one big host"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "print keel's version and its libraries'");

  std::string config_path = "perf/default.toml", topology_override, duration = "20s";
  bool json = false;
  CLI::App* version = app.add_subcommand("version", "print keel's version and its libraries'");
  CLI::App* plan = app.add_subcommand("plan", "print the placement plan for a perf config");
  plan->add_option("--config", config_path, "perf config (TOML)")->required();
  plan->add_option("--topology", topology_override, "host, an hwloc XML file, or a synthetic description");
  plan->add_flag("--json", json, "print one JSON object");
  CLI::App* run = app.add_subcommand("run", "run the engine");
  run->add_option("--config", config_path, "perf config (TOML)")->capture_default_str();
  run->add_option("--topology", topology_override, "host, an hwloc XML file, or a synthetic description");
  run->add_option("--duration", duration, "how long to run (ms, s, m, h)")->capture_default_str();
  run->add_flag("--json", json, "print one JSON object");
  keel::cli::StatusRequest status_request;
  CLI::App* status = app.add_subcommand("status", "a running engine's chains, cores, rings, pools and products, over an interval");
  CLI::App* monitor = app.add_subcommand("monitor", "the same view as status, redrawn every interval until Ctrl-C or the engine stops");
  for (CLI::App* command : {status, monitor}) {
    command->add_option("--config", status_request.config_path, "the perf config the engine runs")->required();
    command->add_option("--topology", status_request.topology_override, "as given to keel run, if it was");
    command->add_option("--interval-ms", status_request.interval_ms, "figures over this interval")
        ->capture_default_str()
        ->check(CLI::Range(10u, 3'600'000u));
  }
  status->add_flag("--json", status_request.json, "print one JSON object (perf/METRICS.md names its fields)");
  RunOutputs run_outputs;
  run->add_option("--out", run_outputs.out_dir,
                  "the run's folder (report.json, timeline.csv, chart.svg); default runs/<UTC start> beside the data directory");
  run->add_flag("--verify", run_outputs.verify, "run `keel verify` on the data directory after the drain");
  CLI::App* bench = app.add_subcommand("bench", "benchmarks, each against its baselines in the same run");
  bench->require_subcommand(1);
  keel::perf::RingBenchOptions ring_options;
  CLI::App* bench_ring = bench->add_subcommand("ring", "SPSC ring vs boost::lockfree::spsc_queue and a mutex queue");
  bench_ring->add_flag("--json", ring_options.json, "print one JSON object");
  bench_ring->add_option("--repetitions", ring_options.repetitions, "repetitions per figure (median reported)")->capture_default_str();
  bench_ring->add_option("--messages", ring_options.messages, "messages per throughput measurement")->capture_default_str();
  keel::perf::WalBenchOptions wal_options;
  CLI::App* bench_wal = bench->add_subcommand("wal", "durable commits/s: group commit vs pwrite+fdatasync, RocksDB sync and the device");
  bench_wal->add_flag("--json", wal_options.json, "print one JSON object");
  bench_wal->add_option("--repetitions", wal_options.repetitions, "repetitions per figure (median reported)")->capture_default_str()->check(CLI::Range(1u, 1000u));
  bench_wal->add_option("--seconds", wal_options.seconds_per_run, "length of each run, seconds")->capture_default_str()->check(CLI::Range(0.05, 600.0));
  bench_wal->add_option("--directory", wal_options.directory, "where to write (default: a fresh folder under data/bench-wal)");
  bench_wal->add_option("--committers", wal_options.committers_only, "only these committer counts (of 1 8 64 1024; default all)");
  bench_wal->add_option("--record-bytes", wal_options.record_bytes_only, "only these record sizes (of 100 1024; default both)");
  bench_wal->add_option("--keel-commits-in-flight", wal_options.keel_commits_in_flight, "keel's group commits in flight at once ([ledger] commits_in_flight)")->capture_default_str()->check(CLI::Range(1u, 2u));
  bench_wal->add_flag("--keel-small-pages", wal_options.keel_small_pages, "keel's log buffers on 4 KiB pages ([ledger] log_buffer_huge_pages = false)");
  bench_wal->add_flag("--keel-busy-poll", wal_options.keel_busy_poll, "keel polls for each commit without blocking (as a persist tile on its own core) instead of waiting in io_uring_wait_cqe");
  keel::perf::LedgerBenchOptions ledger_options;
  CLI::App* bench_ledger = bench->add_subcommand("ledger", "transfers/s on one shard with durable blocks, and the share spent hashing");
  bench_ledger->add_flag("--json", ledger_options.json, "print one JSON object");
  bench_ledger->add_option("--repetitions", ledger_options.repetitions, "repetitions per figure (median reported)")->capture_default_str()->check(CLI::Range(1u, 1000u));
  bench_ledger->add_option("--transfers", ledger_options.transfers, "transfers per run")->capture_default_str()->check(CLI::Range(uint64_t(1), uint64_t(100'000'000)));
  bench_ledger->add_option("--block-txs", ledger_options.block_txs, "transfers per block")->capture_default_str()->check(CLI::Range(1u, 65536u));
  bench_ledger->add_option("--directory", ledger_options.directory, "where to write (default: a fresh folder under data/bench-ledger)");
  std::string segment_name;
  std::optional<uint32_t> pu, node;
  keel::perf::TasksBenchOptions tasks_options;
  CLI::App* bench_tasks = bench->add_subcommand("tasks", "noop compute tasks/s end to end through the engine vs an in-process oneTBB flow_graph");
  bench_tasks->add_flag("--json", tasks_options.json, "print one JSON object");
  bench_tasks->add_option("--repetitions", tasks_options.repetitions, "repetitions per figure (median reported)")->capture_default_str()->check(CLI::Range(1u, 1000u));
  bench_tasks->add_option("--seconds", tasks_options.seconds, "length of each end-to-end run, seconds")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  bench_tasks->add_option("--baseline-tasks", tasks_options.baseline_tasks, "tasks per flow_graph run")->capture_default_str()->check(CLI::Range(uint64_t(1), uint64_t(1'000'000'000)));
  bench_tasks->add_option("--directory", tasks_options.directory, "where the engine writes (default: a fresh folder under data/bench-tasks)");
  keel::perf::FlowsBenchOptions flows_options;
  CLI::App* bench_flows = bench->add_subcommand("flows", "flow jobs/s and flows/s end to end through the engine (loan shape, 10,000-way split) vs plain compute tasks");
  bench_flows->add_flag("--json", flows_options.json, "print one JSON object");
  bench_flows->add_option("--repetitions", flows_options.repetitions, "repetitions per figure (median reported)")->capture_default_str()->check(CLI::Range(1u, 1000u));
  bench_flows->add_option("--seconds", flows_options.seconds, "length of each run, seconds")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  bench_flows->add_option("--latency-flows-per-second", flows_options.latency_flows_per_second, "loan flows/s offered in the run that measures latency below capacity")->capture_default_str()->check(CLI::Range(1u, 10'000'000u));
  bench_flows->add_option("--directory", flows_options.directory, "where the engine writes (default: a fresh folder under data/bench-flows)");
  keel::perf::BalanceBenchOptions balance_options;
  CLI::App* bench_balance = bench->add_subcommand("balance", "committed tx/s and light chains' commit p99 under a skewed, shifting load: the balancer vs a static equal split and unpinned OS threads");
  bench_balance->add_flag("--json", balance_options.json, "print one JSON object");
  bench_balance->add_option("--repetitions", balance_options.repetitions, "rounds, each running every mode once (median reported)")->capture_default_str()->check(CLI::Range(1u, 1000u));
  bench_balance->add_option("--seconds", balance_options.seconds, "length of each loaded run, seconds (the shift is half way; the light-only run is half as long)")->capture_default_str()->check(CLI::Range(1.0, 600.0));
  bench_balance->add_option("--directory", balance_options.directory, "where the engine writes (default: a fresh folder under data/bench-balance)");

  CLI::App* relay = app.add_subcommand("pipeline-relay", "(internal) the pipeline's relay process");
  relay->group("");
  relay->add_option("--segment", segment_name)->required();
  relay->add_option("--pu", pu);
  relay->add_option("--node", node);

  CLI::App* load = app.add_subcommand("load", "(internal) the load generator `keel run` starts");
  load->group("");
  std::string load_duration = "10s";
  uint32_t client_index = 0;
  load->add_option("--segment", segment_name)->required();
  load->add_option("--config", config_path)->required();
  load->add_option("--client", client_index);
  load->add_option("--duration", load_duration);

  // Started by the engine's pool supervision, one process per pool and NUMA node.
  CLI::App* worker = app.add_subcommand("worker", "(internal) a compute worker-pool process");
  worker->group("");
  keel::sched::WorkerOptions worker_options;
  std::vector<std::string> worker_config_entries;
  worker->add_option("--segment", worker_options.segment_name)->required();
  worker->add_option("--slot", worker_options.slot)->required();
  worker->add_option("--epoch", worker_options.epoch)->required();
  worker->add_option("--plugin", worker_options.plugin_path)->required();
  worker->add_option("--type", worker_options.compute_types, "a compute type, in [[pool]] order; repeat")->required();
  worker->add_option("--config", worker_config_entries, "key=value of the flattened [pool.config]; repeat");
  worker->add_option("--threads", worker_options.threads);
  worker->add_option("--in-flight-max", worker_options.in_flight_max);
  worker->add_option("--output-bytes-max", worker_options.output_bytes_max);
  worker->add_option("--task-hang-ms", worker_options.task_hang_ms,
                     "exit when a task has run this long (its thread is lost); 0: never");
  worker->add_option("--inline-task-ns-max", worker_options.inline_task_ns_max,
                     "run a batch of tasks measured at this or less each on the main thread; 0: never");
  bool worker_supervised = false;
  worker->add_flag("--supervised", worker_supervised,
                   "started by the engine: a plugin failure goes into the pool slot only (the engine prints it)");
  CLI::Option* worker_pus = worker->add_option("--pus", worker_options.pu_os_indexes,
                                               "PU OS indexes to pin the whole process to, e.g. 0,2,5")
                                ->delimiter(',')
                                ->allow_extra_args(false);
  worker->add_option("--node", worker_options.node_os_index, "the NUMA node (OS index) to bind memory to")
      ->needs(worker_pus);

  std::string data_dir = "data/default";
  CLI::App* verify = app.add_subcommand("verify", "check every chain in a data directory (checksums, hash chain, Merkle roots, replay)");
  verify->add_option("--data-dir", data_dir, "the [ledger] data_dir to check")->capture_default_str();
  verify->add_flag("--json", json, "print one JSON object");

  SubmitRequest submit_request;
  CLI::App* submit = app.add_subcommand("submit", "submit one transaction to a running engine and wait for its durable receipt");
  submit->add_option("--instance", submit_request.instance, "engine instance ([engine] instance)")->capture_default_str();
  submit->add_option("--chain", submit_request.chain, "chain name")->required();
  submit->add_option("--timeout-ms", submit_request.timeout_ms, "how long to wait for the receipt")->capture_default_str();
  submit->add_option("--nonce", submit_request.nonce, "transaction nonce (default: from the clock)");
  submit->add_flag("--json", submit_request.json, "print the receipt as JSON");
  submit->add_option("--client-id", submit_request.client_id,
                     "the client id to attach as: access credits are charged to it (1 to 32 of [a-z0-9_.-])")
      ->capture_default_str();
  submit->require_subcommand(1);
  CLI::App* create_account = submit->add_subcommand("create-account", "open an account");
  create_account->add_option("--account", submit_request.account)->required();
  create_account->add_option("--balance", submit_request.balance, "opening balance")->capture_default_str();
  create_account->add_flag("--overdraft", submit_request.overdraft, "allow the balance to go negative");
  CLI::App* transfer = submit->add_subcommand("transfer", "move an amount between two accounts");
  transfer->add_option("--from", submit_request.from)->required();
  transfer->add_option("--to", submit_request.to)->required();
  transfer->add_option("--amount", submit_request.amount)->required();
  CLI::App* put = submit->add_subcommand("put", "set a key to a value");
  put->add_option("--key", submit_request.key)->required();
  put->add_option("--value", submit_request.value)->capture_default_str();
  CLI::App* compute = submit->add_subcommand("compute", "ask for one compute task (a compute_request)");
  compute->add_option("--type", submit_request.compute_type, "compute type, 1 to 32 characters of [a-z0-9_]")->required();
  compute->add_option("--subject", submit_request.subject, "the account (or any 64-bit key) the task is about; picks its shard")
      ->capture_default_str();
  // Exactly one of the three is checked by submit_command, so that a mistake gets the same
  // one-line message and exit status 2 as every other bad input.
  compute->add_option("--input", submit_request.input_text, "the input as text");
  compute->add_option("--input-file", submit_request.input_file, "the input: this file's bytes");
  compute->add_option("--input-hex", submit_request.input_hex, "the input in hex (e.g. 68656c6c6f)");

  PluginCheckRequest plugin_check_request;
  CLI::App* plugin_check = add_plugin_check_command(app, plugin_check_request);

  keel::cli::FlowRequest flow_request;
  CLI::App* flow = app.add_subcommand("flow", "business-process contracts on a running engine");
  flow->require_subcommand(1);
  auto flow_common = [&](CLI::App* command) {
    command->add_option("--instance", flow_request.instance, "engine instance ([engine] instance)")->capture_default_str();
    command->add_option("--chain", flow_request.chain, "chain name")->required();
    command->add_option("--timeout-ms", flow_request.timeout_ms, "how long to wait for the receipts")->capture_default_str();
    command->add_option("--client-id", flow_request.client_id,
                        "the client id to attach as: access credits are charged to it (1 to 32 of [a-z0-9_.-])")
        ->capture_default_str();
  };
  CLI::App* flow_deploy = flow->add_subcommand("deploy", "deploy a contract (a flow model file) on every shard of a chain");
  flow_deploy->add_option("file", flow_request.model_file, "the flow model (TOML)")->required();
  flow_deploy->add_option("--config", flow_request.config_file, "check compute types against this perf config's [[pool]]s");
  flow_common(flow_deploy);
  CLI::App* flow_start = flow->add_subcommand("start", "start a flow of a deployed contract under an idempotency key");
  flow_start->add_option("contract", flow_request.contract, "the contract's name")->required();
  flow_start->add_option("--key", flow_request.key, "idempotency key: the same key is the same flow")->required();
  flow_start->add_option("--version", flow_request.version, "contract version (0: the newest deployed)")->capture_default_str();
  flow_start->add_option("--arg", flow_request.args_text, "an argument as name=text");
  flow_start->add_option("--arg-file", flow_request.args_file, "an argument as name=path: the file's bytes");
  flow_start->add_option("--arg-hex", flow_request.args_hex, "an argument as name=hex");
  flow_common(flow_start);
  std::vector<CLI::App*> flow_controls;
  for (const char* action : {"pause", "resume", "cancel"}) {
    CLI::App* control = flow->add_subcommand(action, std::string(action) + " a flow, named by its key");
    control->add_option("key", flow_request.key, "the flow's key")->required();
    flow_common(control);
    flow_controls.push_back(control);
  }

  keel::cli::FlowQuery flow_query;
  CLI::App* flow_status = flow->add_subcommand("status", "one flow's state, read from the chain's log and snapshots");
  flow_status->add_option("key", flow_query.key, "the flow's key")->required();
  CLI::App* flow_list = flow->add_subcommand("list", "the flows of a product and its job queues, from the chain's log and snapshots");
  flow_list->add_option("--product", flow_query.product, "the product")->required();
  flow_list->add_option("--limit", flow_query.limit, "flows printed at most (newest first)")->capture_default_str();
  for (CLI::App* command : {flow_status, flow_list}) {
    command->add_option("--chain", flow_query.chain, "chain name")->required();
    command->add_option("--config", flow_query.config_file, "the perf config (its data_dir and chains)")->capture_default_str();
    command->add_flag("--json", flow_query.json, "print one JSON object");
  }

  keel::cli::CreditsRequest credits_request;
  CLI::App* credits = app.add_subcommand("credits", "access credits of a chain");
  credits->require_subcommand(1);
  CLI::App* credits_grant = credits->add_subcommand("grant", "grant access credits to a client on a running engine");
  credits_grant->add_option("--client", credits_request.client, "the client id receiving them")->required();
  credits_grant->add_option("--amount", credits_request.amount, "credits in all (split evenly over the shards without --shard)")
      ->required();
  credits_grant->add_option("--shard", credits_request.shard, "grant on this shard only");
  credits_grant->add_option("--as", credits_request.as, "the granter's client id (one of the chain's credit_granters)")
      ->capture_default_str();
  credits_grant->add_option("--timeout-ms", credits_request.timeout_ms, "how long to wait for the receipts")
      ->capture_default_str();
  CLI::App* credits_show = credits->add_subcommand("show", "balances per shard and in total, from the chain's log and snapshots");
  credits_show->add_option("--client", credits_request.client, "only this client's balances");
  for (CLI::App* command : {credits_grant, credits_show}) {
    command->add_option("--config", credits_request.config_file, "the perf config (its engine instance, data_dir and chains)")
        ->capture_default_str();
    command->add_option("--chain", credits_request.chain, "chain name")->required();
    command->add_flag("--json", credits_request.json, "print one JSON object");
  }

  keel::cli::BalanceHistoryRequest balance_history_request;
  CLI::App* balance = app.add_subcommand("balance", "the balancer's CPU slices");
  balance->require_subcommand(1);
  CLI::App* balance_history =
      balance->add_subcommand("history", "every tier and slice change the balancer recorded on the system chain");
  balance_history->add_option("--config", balance_history_request.config_file, "the perf config (its data_dir)")
      ->capture_default_str();
  balance_history->add_option("--chain", balance_history_request.chain, "only this chain's changes");
  balance_history->add_flag("--json", balance_history_request.json, "print one JSON object");

  CLI11_PARSE(app, argc, argv);
  if (show_version || version->parsed()) {
    std::fputs(version_report().c_str(), stdout);
    return 0;
  }
  if (plan->parsed()) return plan_command(config_path, topology_override, json);
  if (run->parsed()) return run_command(config_path, topology_override, duration, json, run_outputs);
  if (status->parsed()) return status_command(status_request);
  if (monitor->parsed()) return monitor_command(status_request);
  if (bench_ring->parsed()) return keel::perf::run_ring_bench(ring_options);
  if (bench_wal->parsed()) return keel::perf::run_wal_bench(wal_options);
  if (bench_ledger->parsed()) return keel::perf::run_ledger_bench(ledger_options);
  if (bench_tasks->parsed()) return keel::perf::run_tasks_bench(tasks_options);
  if (bench_flows->parsed()) return keel::perf::run_flows_bench(flows_options);
  if (bench_balance->parsed()) return keel::perf::run_balance_bench(balance_options);
  if (relay->parsed()) return keel::engine::pipeline::run_relay_process(segment_name, pu, node);
  if (load->parsed()) {
    keel::Result<uint64_t> load_duration_ms = parse_duration_ms(load_duration);
    if (!load_duration_ms) return fail(load_duration_ms.error());
    return load_command(config_path, segment_name, client_index, *load_duration_ms);
  }
  if (worker->parsed()) {
    for (const std::string& entry : worker_config_entries) {
      size_t equals = entry.find('=');
      if (equals == std::string::npos || equals == 0)
        return fail(keel::make_error("keel worker --config", "expected key=value, got '" + entry + "'"));
      worker_options.plugin_config.emplace_back(entry.substr(0, equals), entry.substr(equals + 1));
    }
    worker_options.failure_to_stderr = !worker_supervised;
    return keel::sched::run_worker(worker_options);
  }
  if (verify->parsed()) return verify_command(data_dir, json);
  if (plugin_check->parsed()) return plugin_check_command(plugin_check_request);
  if (flow_status->parsed() || flow_list->parsed()) {
    flow_query.action = flow_status->parsed() ? "status" : "list";
    return keel::cli::flow_query_command(flow_query);
  }
  if (flow->parsed()) {
    for (CLI::App* command : flow->get_subcommands())
      if (command->parsed()) flow_request.action = command->get_name();
    return keel::cli::flow_command(flow_request);
  }
  if (credits->parsed()) {
    credits_request.action = credits_grant->parsed() ? "grant" : "show";
    return keel::cli::credits_command(credits_request);
  }
  if (balance_history->parsed()) return keel::cli::balance_history_command(balance_history_request);
  if (submit->parsed()) {
    for (CLI::App* kind : {create_account, transfer, put, compute})
      if (kind->parsed()) submit_request.kind = kind->get_name();
    return submit_command(submit_request);
  }
  std::fputs(app.help().c_str(), stdout);
  return 0;
}
