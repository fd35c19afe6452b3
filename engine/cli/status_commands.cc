#include "engine/cli/status_commands.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "engine/core/engine_plan.h"
#include "engine/status/engine_status.h"
#include "engine/status/metrics_server.h"
#include "engine/status/status_format.h"

namespace keel::cli {

namespace {

int fail(const Error& error) {
  std::fprintf(stderr, "keel: %s\n", error.message.c_str());
  return 2;
}

Result<status::EngineStatus> attach(const StatusRequest& request) {
  Result<config::PerfConfig> config = config::load_perf_config(request.config_path);
  if (!config) return config.error();
  Result<numa::Topology> topology = engine::load_topology(*config, request.topology_override);
  if (!topology) return topology.error();
  Result<numa::Plan> plan = numa::make_plan(*topology, engine::plan_request(*config));
  if (!plan) return make_error(request.config_path, plan.error().message);
  return status::EngineStatus::attach(*config, *plan);
}

std::atomic<bool> interrupted{false};

void on_interrupt(int) { interrupted.store(true, std::memory_order_relaxed); }

// Sleeps up to `milliseconds`, waking early on Ctrl-C.
void sleep_unless_interrupted(uint32_t milliseconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(milliseconds);
  while (!interrupted.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<uint32_t>(milliseconds, 20)));
}

Error engine_stopped(const status::EngineStatus& engine, const status::StatusSample& sample) {
  return make_error("segment '" + engine.segment_name() + "'", "its engine (pid " + std::to_string(sample.engine_pid) + ") has stopped");
}

// Serves the engine's own segment; held by run_ledger until just before its segment goes.
class MetricsCompanion final : public node::RunCompanion {
 public:
  explicit MetricsCompanion(std::unique_ptr<status::MetricsServer> server) : server_(std::move(server)) {}

 private:
  std::unique_ptr<status::MetricsServer> server_;
};

}  // namespace

int status_command(const StatusRequest& request) {
  Result<status::EngineStatus> engine = attach(request);
  if (!engine) return fail(engine.error());
  status::StatusSample earlier = engine->sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(request.interval_ms));
  status::StatusSample later = engine->sample();
  // Figures read after the engine left would be its last ones, not live ones.
  if (!engine->engine_running()) return fail(engine_stopped(*engine, later));
  status::StatusReport report = status::make_status_report(earlier, later);
  if (request.json)
    std::printf("%s\n", status::status_json(report).dump().c_str());
  else
    std::fputs(status::format_status_tables(report).c_str(), stdout);
  return 0;
}

int monitor_command(const StatusRequest& request) {
  Result<status::EngineStatus> engine = attach(request);
  if (!engine) return fail(engine.error());
  struct sigaction action{};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  bool terminal = isatty(STDOUT_FILENO) == 1;
  status::StatusSample earlier = engine->sample();
  for (;;) {
    sleep_unless_interrupted(request.interval_ms);
    if (interrupted.load(std::memory_order_relaxed)) break;
    status::StatusSample later = engine->sample();
    if (!engine->engine_running()) {
      std::printf("keel monitor: %s\n", engine_stopped(*engine, later).message.c_str());
      return 0;
    }
    // Clear and home: the view redraws in place on a terminal; piped, frames follow
    // each other with a blank line between.
    std::string frame = terminal ? "\x1b[H\x1b[2J" : "\n";
    frame += status::format_status_tables(status::make_status_report(earlier, later));
    frame += "(Ctrl-C to leave; every " + std::to_string(request.interval_ms) + " ms)\n";
    std::fputs(frame.c_str(), stdout);
    std::fflush(stdout);
    earlier = std::move(later);
  }
  return 0;
}

node::RunCompanionFactory metrics_companion(const config::PerfConfig& config, const numa::Plan& plan) {
  return [config, plan](const shm::Segment& segment) -> std::unique_ptr<node::RunCompanion> {
    if (!config.metrics.enabled) return nullptr;
    Result<status::EngineStatus> view = status::EngineStatus::over(segment, config, plan);
    if (!view) {
      std::fprintf(stderr, "keel: metrics: %s; running without /metrics\n", view.error().message.c_str());
      return nullptr;
    }
    Result<std::unique_ptr<status::MetricsServer>> server =
        status::MetricsServer::start(std::move(*view), config.metrics.address, config.metrics.port);
    if (!server) {
      std::fprintf(stderr, "keel: %s; running without /metrics\n", server.error().message.c_str());
      return nullptr;
    }
    std::fprintf(stderr, "keel: metrics on http://%s:%u/metrics\n", config.metrics.address.c_str(),
                 unsigned((*server)->port()));
    return std::make_unique<MetricsCompanion>(std::move(*server));
  };
}

}  // namespace keel::cli
