// Tests of the operator's view through the real `keel` binary: `keel status --json`
// against a running engine (every documented field there, and the figures the ledger
// gives after the run), the table form, `keel monitor` until the engine stops, GET
// /metrics over a real socket, a taken metrics port, and no engine at all.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <set>

#include "tests/engine/cli/keel_process.h"

namespace keel::cli {
namespace {

// The fields perf/METRICS.md documents, per object of `keel status --json`.
const std::vector<std::string> top_fields = {"instance", "engine_pid", "interval_s", "chains", "cores", "rings",
                                             "pools",    "products",   "compute",    "clients", "balancer"};
const std::vector<std::string> chain_fields = {
    "name",           "shards",          "committed_txs",     "rejected_txs",         "refused_txs",
    "committed_per_second", "commit_latency_us_p99", "commit_latency_us_mean", "sealed_height_max",
    "durable_height_max", "durable_lag_blocks", "durable_lag_ms_min", "busy_percent", "blocks_backpressured",
    "compute_tasks_pending", "moves", "balanced", "tier", "cores_dedicated", "shares_permille", "tps_smoothed",
    "cost_ns_per_tx", "tier_changes", "slice_changes"};
const std::vector<std::string> core_fields = {"core_index",     "node",           "pu",
                                              "bound",          "busy_percent",   "rounds_per_second",
                                              "sleeps_per_second", "tile_count",  "tiles",
                                              "tiles_moved_in", "tiles_moved_out", "full_events",
                                              "blocks_backpressured"};
const std::vector<std::string> ring_fields = {"kind",      "rings",           "capacity_max",
                                              "depth",     "depth_max",       "depth_max_ring",
                                              "pushed_per_second", "full_events", "full_events_interval",
                                              "full_events_ring"};
const std::vector<std::string> pool_fields = {"name", "node", "pid", "state", "quarantine", "tasks_in_flight",
                                              "dispatched_per_second", "completed_per_second", "retried_per_second",
                                              "tasks_retried", "restarts"};
const std::vector<std::string> product_fields = {"name", "priority", "running_max", "shards", "jobs_queued",
                                                 "jobs_running"};
const std::vector<std::string> compute_fields = {"tasks_taken_per_second", "results_per_second", "leases_held",
                                                 "tasks_retried", "tasks_expired", "tasks_spilled",
                                                 "tasks_redispatched", "scheduler_busy_percent"};
const std::vector<std::string> clients_fields = {"slots", "attached", "submitted", "receipts_sent"};
const std::vector<std::string> balancer_fields = {"window_ms", "windows", "moves", "records", "records_backpressured"};

void expect_fields(const nlohmann::json& object, const std::vector<std::string>& fields, const std::string& where) {
  for (const std::string& field : fields) EXPECT_TRUE(object.contains(field)) << where << " lacks " << field;
  EXPECT_EQ(object.size(), fields.size()) << where << " has fields perf/METRICS.md does not name: " << object.dump();
}

// GET `path` from 127.0.0.1:port; the whole response, or "" when it could not connect.
std::string http_get(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return "";
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), ssize_t(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t got; (got = recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, size_t(got));
  close(fd);
  return response;
}

// The value of the one sample line that starts with `series` (name and labels).
std::optional<uint64_t> metric_value(const std::string& exposition, const std::string& series) {
  for (const std::string& line : lines_of(exposition))
    if (line.rfind(series + " ", 0) == 0) return std::stoull(line.substr(series.size() + 1));
  return std::nullopt;
}

// Waits for the engine's "keel: metrics on http://127.0.0.1:<port>/metrics" line.
uint16_t metrics_port(const fs::path& engine_stderr) {
  const std::string prefix = "keel: metrics on http://127.0.0.1:";
  for (Clock::time_point deadline = Clock::now() + 10s; Clock::now() < deadline; std::this_thread::sleep_for(20ms))
    for (const std::string& line : lines_of(read_file(engine_stderr)))
      if (line.rfind(prefix, 0) == 0) return uint16_t(std::stoul(line.substr(prefix.size())));
  ADD_FAILURE() << "the engine never said where /metrics is: " << read_file(engine_stderr);
  return 0;
}

class StatusCli : public KeelCli {
 protected:
  fs::path subdirectory(const std::string& name) {
    fs::path path = directory_ / name;
    fs::create_directories(path);
    return path;
  }
};

TEST_F(StatusCli, StatusMonitorAndMetricsAgreeWithTheLedger) {
  std::string name = instance("status");
  // No load and no snapshots: what the run commits is exactly what keel submit sends
  // (plus the engine's own startup transactions), and verify counts every block.
  fs::path config = default_config_copy(
      name, {{"[load]\nenabled = true", "[load]\nenabled = false"}, {"snapshot_every_blocks = 1024", "snapshot_every_blocks = 0"}});
  fs::path engine_directory = subdirectory("engine");
  Clock::time_point started = Clock::now();
  KeelProcess engine(engine_directory, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  uint16_t port = metrics_port(engine_directory / "stderr");
  // A generous receipt timeout: the first group commit's fdatasync can take seconds on a
  // machine whose disk other builds keep busy.
  for (std::string account : {"1", "2", "3"}) {
    Outcome opened = keel({"submit", "--instance", name, "--chain", "payments", "--timeout-ms", "30000",
                           "create-account", "--account", account},
                          40s);
    ASSERT_EQ(opened.exit_code, 0) << opened.out << opened.err;
  }
  Outcome put = keel({"submit", "--instance", name, "--chain", "settlement", "--timeout-ms", "30000", "put", "--key",
                      "k", "--value", "v"},
                     40s);
  ASSERT_EQ(put.exit_code, 0) << put.out << put.err;

  Outcome status = keel({"status", "--config", config, "--json", "--interval-ms", "300"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  nlohmann::json report = parse_report(status);
  expect_fields(report, top_fields, "status");
  EXPECT_EQ(report.value("instance", ""), name);
  EXPECT_EQ(report.value("engine_pid", 0), engine.pid());
  EXPECT_NEAR(report.value("interval_s", 0.0), 0.3, 0.2);
  ASSERT_EQ(report["chains"].size(), 5u);
  EXPECT_EQ(report["chains"][0].value("name", ""), "payments");
  EXPECT_EQ(report["chains"][0].value("shards", 0), 2);
  EXPECT_EQ(report["chains"][1].value("name", ""), "settlement");
  EXPECT_EQ(report["chains"][4].value("name", ""), "system");  // the balancer's records
  for (const nlohmann::json& chain : report["chains"]) {
    expect_fields(chain, chain_fields, "chain");
    EXPECT_EQ(chain.value("durable_lag_blocks", 1), 0) << chain.dump();  // idle: everything sealed is durable
    EXPECT_EQ(chain.value("tier", ""), "light") << chain.dump();         // a few transactions: light
    if (chain.value("name", "") == "payments" || chain.value("name", "") == "settlement") {  // the ones submitted to
      EXPECT_GE(chain.value("committed_txs", 0), 1) << chain.dump();
    }
  }
  // As many cores as `keel plan` places, each with the tiles the plan puts there.
  Outcome plan = keel({"plan", "--config", config, "--json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  nlohmann::json planned = parse_report(plan);
  ASSERT_EQ(report["cores"].size(), planned["cores"].size());
  std::set<std::string> tiles;
  for (const nlohmann::json& core : report["cores"]) {
    expect_fields(core, core_fields, "core");
    for (const nlohmann::json& tile : core["tiles"]) EXPECT_TRUE(tiles.insert(tile.get<std::string>()).second) << tile;
  }
  for (const char* tile : {"gateway", "persist", "scheduler.0", "shard.payments.0", "shard.payments.1", "shard.settlement.0"})
    EXPECT_TRUE(tiles.count(tile)) << tile << " is on no core";
  std::set<std::string> kinds;
  for (const nlohmann::json& ring : report["rings"]) {
    expect_fields(ring, ring_fields, "ring");
    kinds.insert(ring.value("kind", ""));
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"client_submit", "client_receipt", "shard_submit", "shard_receipt", "block",
                                          "credit", "scheduler_request", "scheduler_result", "pool_task",
                                          "pool_completion"}));
  ASSERT_EQ(report["pools"].size(), planned["pools"].size());
  for (const nlohmann::json& pool : report["pools"]) {
    expect_fields(pool, pool_fields, "pool");
    EXPECT_EQ(pool.value("state", ""), "ready") << pool.dump();
  }
  std::set<std::string> products;
  for (const nlohmann::json& product : report["products"]) {
    expect_fields(product, product_fields, "product");
    products.insert(product.value("name", ""));
    EXPECT_EQ(product.value("shards", 0), 5) << product.dump();  // set on every client chain's shard at start
  }
  EXPECT_EQ(products, (std::set<std::string>{"retail_loans", "savings_accounts"}));
  expect_fields(report["compute"], compute_fields, "compute");
  expect_fields(report["clients"], clients_fields, "clients");
  expect_fields(report["balancer"], balancer_fields, "balancer");
  EXPECT_EQ(report["clients"].value("attached", 1), 0);  // the keel submits have left
  EXPECT_EQ(report["clients"].value("slots", 0), 16);

  // /metrics: the same counters, over a real socket.
  std::string metrics = http_get(port, "/metrics");
  ASSERT_EQ(metrics.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << metrics.substr(0, 200);
  EXPECT_NE(metrics.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  for (const nlohmann::json& chain : report["chains"])
    EXPECT_EQ(metric_value(metrics, "keel_chain_committed_transactions_total{chain=\"" + chain.value("name", "") + "\"}"),
              chain.value("committed_txs", uint64_t(0)));
  EXPECT_EQ(metric_value(metrics, "keel_pool_restarts_total{pool=\"noop@0\"}"), 0u);
  EXPECT_TRUE(metric_value(metrics, "keel_core_tiles{core=\"0\",node=\"0\"}").has_value()) << metrics;
  EXPECT_EQ(http_get(port, "/other").rfind("HTTP/1.1 404 ", 0), 0u);

  Outcome tables = keel({"status", "--config", config, "--interval-ms", "100"});
  ASSERT_EQ(tables.exit_code, 0) << tables.err;
  for (const char* text : {"instance " , "payments", "settlement", "ring kind", "retail_loans", "balancer: 250 ms windows"})
    EXPECT_NE(tables.out.find(text), std::string::npos) << text << "\n" << tables.out;

  // monitor redraws until the engine stops, then says so in one line.
  KeelProcess monitor(subdirectory("monitor"), {"monitor", "--config", config, "--interval-ms", "100"});
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(kill(engine.pid(), SIGINT), 0);
  Outcome stopped = engine.wait(30s);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  Outcome watched = monitor.wait(10s);
  EXPECT_EQ(watched.exit_code, 0) << watched.err;
  EXPECT_NE(watched.out.find("payments"), std::string::npos) << watched.out;
  std::vector<std::string> monitor_lines = lines_of(watched.out);
  ASSERT_FALSE(monitor_lines.empty());
  EXPECT_EQ(monitor_lines.back(), "keel monitor: segment 'keel-" + name + "': its engine (pid " +
                                      std::to_string(report.value("engine_pid", 0)) + ") has stopped");

  // The ledger agrees: nothing was committed after the status sample.
  nlohmann::json run = parse_report(stopped);
  ASSERT_EQ(run["chains"].size(), 5u);
  for (size_t chain = 0; chain < 2; ++chain) {
    EXPECT_EQ(run["chains"][chain].value("committed_txs", uint64_t(0)),
              report["chains"][chain].value("committed_txs", uint64_t(1)))
        << run["chains"][chain].dump();
  }
  Outcome verified = keel({"verify", "--data-dir", (directory_ / ("data-" + name)).string(), "--json"});
  ASSERT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  nlohmann::json verdict = parse_report(verified);
  for (const nlohmann::json& chain : verdict["chains"]) {
    uint64_t in_blocks = 0;
    for (const nlohmann::json& shard : chain["shards"]) in_blocks += shard.value("transactions", uint64_t(0));
    for (const nlohmann::json& reported : report["chains"]) {
      if (reported.value("name", "") == chain.value("name", "")) {
        EXPECT_EQ(in_blocks, reported.value("committed_txs", uint64_t(0))) << chain.value("name", "");
      }
    }
  }

  // No engine: one line, exit status 2.
  Outcome absent = keel({"status", "--config", config});
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_EQ(absent.err, "keel: segment 'keel-" + name + "': not found; is the engine running?\n");
}

TEST_F(StatusCli, ATakenMetricsPortIsSaidOnceAndTheEngineRunsOn) {
  int taken = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length), 0);
  std::string port = std::to_string(ntohs(address.sin_port));
  std::string name = instance("taken-port");
  fs::path config = default_config_copy(name, {{"[load]\nenabled = true", "[load]\nenabled = false"},
                                               {"listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:" + port + "\""}});
  Outcome run = keel({"run", "--config", config, "--duration", "300ms", "--json"}, 60s);
  close(taken);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_FALSE(parse_report(run).is_discarded());
  size_t mentions = 0;
  for (const std::string& line : lines_of(run.err)) mentions += line.find("metrics") != std::string::npos;
  EXPECT_EQ(mentions, 1u) << run.err;
  EXPECT_NE(run.err.find("keel: metrics: 127.0.0.1:" + port + ": cannot listen: Address already in use; running "
                         "without /metrics\n"),
            std::string::npos)
      << run.err;
}

}  // namespace
}  // namespace keel::cli
