#include "engine/status/status_format.h"

#include <cstdarg>
#include <cstdio>

namespace keel::status {

namespace {

std::string printf_string(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string printf_string(const char* format, ...) {
  char buffer[512];
  va_list arguments;
  va_start(arguments, format);
  int length = std::vsnprintf(buffer, sizeof buffer, format, arguments);
  va_end(arguments);
  if (length < 0) return {};
  if (size_t(length) < sizeof buffer) return std::string(buffer, size_t(length));
  std::string text(size_t(length) + 1, '\0');
  va_start(arguments, format);
  std::vsnprintf(text.data(), text.size(), format, arguments);
  va_end(arguments);
  text.resize(size_t(length));
  return text;
}

using ull = unsigned long long;

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : " ") + name;
  return text.empty() ? "-" : text;
}

std::string slice_text(const ChainFigures& chain) {
  if (!chain.balanced) return "-";
  if (chain.cores_dedicated > 0) return std::to_string(chain.cores_dedicated) + " cores";
  return printf_string("%.1f%% shared", double(chain.shares_permille) / 10.0);
}

std::string milliseconds(uint64_t microseconds) { return printf_string("%.2f", double(microseconds) / 1000.0); }

void chain_table(const StatusReport& report, std::string& out) {
  out += printf_string("%-16s %10s %7s %12s %9s %9s %8s %7s %12s %9s\n", "chain", "TPS", "tier", "slice", "p99 ms",
                       "lag blk", "lag ms", "busy %", "committed", "backpr");
  for (const ChainFigures& chain : report.chains)
    out += printf_string("%-16s %10.0f %7s %12s %9s %9llu %8s %7.1f %12llu %9llu\n", chain.name.c_str(),
                         chain.committed_per_second, chain.tier.c_str(), slice_text(chain).c_str(),
                         chain.commit_latency_us_p99 ? milliseconds(chain.commit_latency_us_p99).c_str() : "-",
                         ull(chain.durable_lag_blocks),
                         chain.durable_lag_ms_min ? (">" + std::to_string(chain.durable_lag_ms_min)).c_str() : "0",
                         chain.busy_percent, ull(chain.committed_txs), ull(chain.blocks_backpressured));
}

void core_table(const StatusReport& report, std::string& out) {
  out += printf_string("\n%-6s %5s %5s %7s %10s %8s %8s  %s\n", "core", "node", "pu", "busy %", "sleeps/s", "full",
                       "backpr", "tiles");
  for (const CoreFigures& core : report.cores)
    out += printf_string("%-6u %5u %5s %7.1f %10.0f %8llu %8llu  %s\n", core.core_index, core.node,
                         core.bound ? std::to_string(core.pu).c_str() : "-", core.busy_percent, core.sleeps_per_second,
                         ull(core.full_events), ull(core.blocks_backpressured), joined(core.tiles).c_str());
}

void ring_table(const StatusReport& report, std::string& out) {
  out += printf_string("\n%-18s %5s %8s %8s %12s %10s %8s  %s\n", "ring kind", "rings", "depth", "max", "pushed/s",
                       "full", "full now", "fullest / busiest");
  for (const RingFigures& ring : report.rings) {
    std::string where = ring.full_events_ring.empty() ? ring.depth_max_ring : ring.full_events_ring;
    out += printf_string("%-18s %5u %8llu %8llu %12.0f %10llu %8llu  %s\n", to_string(ring.kind), ring.rings,
                         ull(ring.depth), ull(ring.depth_max), ring.pushed_per_second, ull(ring.full_events),
                         ull(ring.full_events_interval), where.empty() ? "-" : where.c_str());
  }
}

void pool_table(const StatusReport& report, std::string& out) {
  if (report.pools.empty()) return;
  out += printf_string("\n%-24s %-11s %8s %10s %10s %9s %8s\n", "pool", "state", "in fl.", "sent/s", "done/s",
                       "retries", "restarts");
  for (const PoolFigures& pool : report.pools) {
    out += printf_string("%-24s %-11s %8llu %10.0f %10.0f %9llu %8llu\n", pool.name.c_str(), pool.state.c_str(),
                         ull(pool.tasks_in_flight), pool.dispatched_per_second, pool.completed_per_second,
                         ull(pool.tasks_retried), ull(pool.restarts));
    if (!pool.quarantine.empty()) out += "  quarantined: " + pool.quarantine + "\n";
  }
}

void product_table(const StatusReport& report, std::string& out) {
  if (report.products.empty()) return;
  out += printf_string("\n%-24s %8s %11s %10s %9s %7s\n", "product", "priority", "running max", "queued", "running",
                       "shards");
  for (const ProductFigures& product : report.products)
    out += printf_string("%-24s %8u %11u %10llu %9llu %7u\n", product.name.c_str(), product.priority,
                         product.running_max, ull(product.jobs_queued), ull(product.jobs_running), product.shards);
}

}  // namespace

std::string format_status_tables(const StatusReport& report) {
  std::string out = printf_string("keel: instance %s (pid %d), figures over %.2f s\n\n", report.instance.c_str(),
                                  report.engine_pid, report.interval_s);
  chain_table(report, out);
  core_table(report, out);
  ring_table(report, out);
  pool_table(report, out);
  product_table(report, out);
  const ComputeFigures& compute = report.compute;
  out += printf_string("\ncompute: %.0f tasks/s taken, %.0f results/s, %llu leases held, %llu retried, %llu expired, "
                       "%llu spilled, schedulers %.1f%% busy\n",
                       compute.tasks_taken_per_second, compute.results_per_second, ull(compute.leases_held),
                       ull(compute.tasks_retried), ull(compute.tasks_expired), ull(compute.tasks_spilled),
                       compute.scheduler_busy_percent);
  out += printf_string("clients: %u of %u slots attached, %llu submitted, %llu receipts\n", report.clients.attached,
                       report.clients.slots, ull(report.clients.submitted), ull(report.clients.receipts_sent));
  if (report.balancer.window_ms == 0)
    out += "balancer: not running (slices stay as planned)\n";
  else
    out += printf_string("balancer: %u ms windows, %llu run, %llu tile moves, %llu records (%llu waited for room)\n",
                         report.balancer.window_ms, ull(report.balancer.windows), ull(report.balancer.moves),
                         ull(report.balancer.records), ull(report.balancer.records_backpressured));
  return out;
}

nlohmann::json status_json(const StatusReport& report) {
  nlohmann::json json = {{"instance", report.instance},
                         {"engine_pid", report.engine_pid},
                         {"interval_s", report.interval_s},
                         {"chains", nlohmann::json::array()},
                         {"cores", nlohmann::json::array()},
                         {"rings", nlohmann::json::array()},
                         {"pools", nlohmann::json::array()},
                         {"products", nlohmann::json::array()}};
  for (const ChainFigures& chain : report.chains)
    json["chains"].push_back({{"name", chain.name},
                              {"shards", chain.shards},
                              {"committed_txs", chain.committed_txs},
                              {"rejected_txs", chain.rejected_txs},
                              {"refused_txs", chain.refused_txs},
                              {"committed_per_second", chain.committed_per_second},
                              {"commit_latency_us_p99", chain.commit_latency_us_p99},
                              {"commit_latency_us_mean", chain.commit_latency_us_mean},
                              {"sealed_height_max", chain.sealed_height_max},
                              {"durable_height_max", chain.durable_height_max},
                              {"durable_lag_blocks", chain.durable_lag_blocks},
                              {"durable_lag_ms_min", chain.durable_lag_ms_min},
                              {"busy_percent", chain.busy_percent},
                              {"blocks_backpressured", chain.blocks_backpressured},
                              {"compute_tasks_pending", chain.compute_tasks_pending},
                              {"moves", chain.moves},
                              {"balanced", chain.balanced},
                              {"tier", chain.tier},
                              {"cores_dedicated", chain.cores_dedicated},
                              {"shares_permille", chain.shares_permille},
                              {"tps_smoothed", chain.tps_smoothed},
                              {"cost_ns_per_tx", chain.cost_ns_per_tx},
                              {"tier_changes", chain.tier_changes},
                              {"slice_changes", chain.slice_changes}});
  for (const CoreFigures& core : report.cores)
    json["cores"].push_back({{"core_index", core.core_index},
                             {"node", core.node},
                             {"pu", core.pu},
                             {"bound", core.bound},
                             {"busy_percent", core.busy_percent},
                             {"rounds_per_second", core.rounds_per_second},
                             {"sleeps_per_second", core.sleeps_per_second},
                             {"tile_count", core.tile_count},
                             {"tiles", core.tiles},
                             {"tiles_moved_in", core.tiles_moved_in},
                             {"tiles_moved_out", core.tiles_moved_out},
                             {"full_events", core.full_events},
                             {"blocks_backpressured", core.blocks_backpressured}});
  for (const RingFigures& ring : report.rings)
    json["rings"].push_back({{"kind", to_string(ring.kind)},
                             {"rings", ring.rings},
                             {"capacity_max", ring.capacity_max},
                             {"depth", ring.depth},
                             {"depth_max", ring.depth_max},
                             {"depth_max_ring", ring.depth_max_ring},
                             {"pushed_per_second", ring.pushed_per_second},
                             {"full_events", ring.full_events},
                             {"full_events_interval", ring.full_events_interval},
                             {"full_events_ring", ring.full_events_ring}});
  for (const PoolFigures& pool : report.pools)
    json["pools"].push_back({{"name", pool.name},
                             {"node", pool.node},
                             {"pid", pool.pid},
                             {"state", pool.state},
                             {"quarantine", pool.quarantine},
                             {"tasks_in_flight", pool.tasks_in_flight},
                             {"dispatched_per_second", pool.dispatched_per_second},
                             {"completed_per_second", pool.completed_per_second},
                             {"retried_per_second", pool.retried_per_second},
                             {"tasks_retried", pool.tasks_retried},
                             {"restarts", pool.restarts}});
  for (const ProductFigures& product : report.products)
    json["products"].push_back({{"name", product.name},
                                {"priority", product.priority},
                                {"running_max", product.running_max},
                                {"shards", product.shards},
                                {"jobs_queued", product.jobs_queued},
                                {"jobs_running", product.jobs_running}});
  const ComputeFigures& compute = report.compute;
  json["compute"] = {{"tasks_taken_per_second", compute.tasks_taken_per_second},
                     {"results_per_second", compute.results_per_second},
                     {"leases_held", compute.leases_held},
                     {"tasks_retried", compute.tasks_retried},
                     {"tasks_expired", compute.tasks_expired},
                     {"tasks_spilled", compute.tasks_spilled},
                     {"tasks_redispatched", compute.tasks_redispatched},
                     {"scheduler_busy_percent", compute.scheduler_busy_percent}};
  json["clients"] = {{"slots", report.clients.slots},
                     {"attached", report.clients.attached},
                     {"submitted", report.clients.submitted},
                     {"receipts_sent", report.clients.receipts_sent}};
  json["balancer"] = {{"window_ms", report.balancer.window_ms},
                      {"windows", report.balancer.windows},
                      {"moves", report.balancer.moves},
                      {"records", report.balancer.records},
                      {"records_backpressured", report.balancer.records_backpressured}};
  return json;
}

// --- Prometheus ---

namespace {

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string escaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

class Exposition {
 public:
  // Starts a metric family: its HELP and TYPE lines (once per family, as the format asks).
  void family(const char* name, const char* type, const char* help) {
    text_ += printf_string("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    name_ = name;
  }
  void sample(const std::vector<std::pair<std::string, std::string>>& labels, double value,
              const char* suffix = "") {
    text_ += name_ + suffix;
    if (!labels.empty()) {
      text_ += '{';
      for (size_t index = 0; index < labels.size(); ++index)
        text_ += (index ? "," : "") + labels[index].first + "=\"" + escaped(labels[index].second) + "\"";
      text_ += '}';
    }
    // Integers print exactly (counters beyond 2^53 lose nothing that %.17g would keep).
    if (value >= 0 && value < 1.8e19 && value == double(uint64_t(value)))
      text_ += printf_string(" %llu\n", ull(value));
    else
      text_ += printf_string(" %.6g\n", value);
  }
  void sample_count(const std::vector<std::pair<std::string, std::string>>& labels, uint64_t value,
                    const char* suffix = "") {
    text_ += name_ + suffix;
    if (!labels.empty()) {
      text_ += '{';
      for (size_t index = 0; index < labels.size(); ++index)
        text_ += (index ? "," : "") + labels[index].first + "=\"" + escaped(labels[index].second) + "\"";
      text_ += '}';
    }
    text_ += printf_string(" %llu\n", ull(value));
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_, name_;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

void chain_metrics(const StatusReport& report, const StatusSample& later, Exposition& out) {
  auto each_chain = [&](const char* name, const char* type, const char* help, auto value) {
    out.family(name, type, help);
    for (size_t index = 0; index < report.chains.size(); ++index)
      out.sample({{"chain", report.chains[index].name}}, double(value(report.chains[index], later.chains[index])));
  };
  each_chain("keel_chain_committed_transactions_total", "counter",
             "Transactions in durable blocks (receipts released), rejected ones included.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.committed_txs; });
  each_chain("keel_chain_rejected_transactions_total", "counter", "Committed transactions the state rejected.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.rejected_txs; });
  each_chain("keel_chain_refused_transactions_total", "counter", "Submissions refused before ordering.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.refused_txs; });
  each_chain("keel_chain_tps", "gauge", "Committed transactions per second over the last interval.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.committed_per_second; });
  each_chain("keel_chain_commit_latency_p99_seconds", "gauge",
             "p99 commit latency (first transaction ordered -> block durable) over the last interval.",
             [](const ChainFigures& chain, const ChainSample&) { return double(chain.commit_latency_us_p99) / 1e6; });
  each_chain("keel_chain_durable_height", "gauge", "Highest durable block of any of the chain's shards.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.durable_height_max; });
  each_chain("keel_chain_durable_lag_blocks", "gauge", "Blocks sealed and not yet durable, on the worst shard.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.durable_lag_blocks; });
  each_chain("keel_chain_busy_seconds_total", "counter", "Time the chain's shard tiles spent in polls that did work.",
             [](const ChainFigures&, const ChainSample& sample) {
               uint64_t busy_ns = 0;
               for (const ShardSample& shard : sample.shards) busy_ns += shard.busy_ns;
               return double(busy_ns) / 1e9;
             });
  each_chain("keel_chain_blocks_backpressured_total", "counter", "Seals delayed by a full persist ring or arena.",
             [](const ChainFigures&, const ChainSample& sample) {
               uint64_t blocks = 0;
               for (const ShardSample& shard : sample.shards) blocks += shard.blocks_backpressured;
               return blocks;
             });
  each_chain("keel_chain_compute_tasks_pending", "gauge", "Compute tasks the chain's shards hold without a result.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.compute_tasks_pending; });
  each_chain("keel_chain_tier", "gauge", "The balancer's tier: 0 light, 1 medium, 2 heavy, -1 none decided.",
             [](const ChainFigures& chain, const ChainSample& sample) {
               return chain.balanced ? double(sample.slice.tier) : -1.0;
             });
  each_chain("keel_chain_cores_dedicated", "gauge", "Cores only the chain's shards run on.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.cores_dedicated; });
  each_chain("keel_chain_shares_permille", "gauge", "The chain's share of the shared cores' shard time, 1/1000.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.shares_permille; });
  each_chain("keel_chain_tier_changes_total", "counter", "Tier changes the balancer made.",
             [](const ChainFigures& chain, const ChainSample&) { return chain.tier_changes; });
  // A real histogram too, so Prometheus can take any quantile over any range.
  out.family("keel_chain_commit_latency_seconds", "histogram",
             "Commit latency (first transaction ordered -> block durable), one count per transaction.");
  for (const ChainSample& chain : later.chains) {
    uint64_t cumulative = 0, sum_us = 0;
    for (const ShardSample& shard : chain.shards) sum_us += shard.commit_latency_us_sum;
    for (uint32_t bucket = 0; bucket < node::commit_latency_bucket_count; ++bucket) {
      for (const ShardSample& shard : chain.shards) cumulative += shard.commit_latency_buckets[bucket];
      // Every fourth bound (4 per power of two): a cumulative histogram may merge
      // neighbouring buckets, and 384 series per chain would swell every scrape.
      if ((bucket + 1) % 4 != 0) continue;
      std::string le = bucket + 1 == node::commit_latency_bucket_count
                           ? "+Inf"
                           : printf_string("%.6f", double(node::commit_latency_bucket_upper_us(bucket)) / 1e6);
      out.sample_count({{"chain", chain.name}, {"le", le}}, cumulative, "_bucket");
    }
    out.sample({{"chain", chain.name}}, double(sum_us) / 1e6, "_sum");
    out.sample_count({{"chain", chain.name}}, cumulative, "_count");
  }
  out.family("keel_shard_durable_lag_blocks", "gauge", "Blocks a shard sealed and the persist tile has not made durable.");
  for (const ChainSample& chain : later.chains)
    for (const ShardSample& shard : chain.shards)
      out.sample_count({{"chain", chain.name}, {"shard", std::to_string(shard.shard)}},
                       shard.sealed_height - shard.durable_height);
  out.family("keel_shard_core", "gauge", "The planned core index a shard tile runs on now.");
  for (const ChainSample& chain : later.chains)
    for (const ShardSample& shard : chain.shards)
      out.sample_count({{"chain", chain.name}, {"shard", std::to_string(shard.shard)}}, shard.core_index);
}

void core_metrics(const StatusReport& report, const StatusSample& later, Exposition& out) {
  auto labels = [](const CoreSample& core) { return Labels{{"core", std::to_string(core.core_index)}, {"node", std::to_string(core.node)}}; };
  out.family("keel_core_busy_seconds_total", "counter", "Time the core spent in rounds that did work.");
  for (const CoreSample& core : later.cores) out.sample(labels(core), double(core.busy_ns) / 1e9);
  out.family("keel_core_busy_ratio", "gauge", "Busy share of the last interval (0..1).");
  for (size_t index = 0; index < report.cores.size(); ++index)
    out.sample(labels(later.cores[index]), report.cores[index].busy_percent / 100.0);
  out.family("keel_core_rounds_total", "counter", "Rounds of the core's loop over its tiles.");
  for (const CoreSample& core : later.cores) out.sample_count(labels(core), core.rounds);
  out.family("keel_core_sleeps_total", "counter", "Futex sleeps of the idle core.");
  for (const CoreSample& core : later.cores) out.sample_count(labels(core), core.sleeps);
  out.family("keel_core_tiles", "gauge", "Tiles the core runs now.");
  for (const CoreSample& core : later.cores) out.sample_count(labels(core), core.tile_count);
  out.family("keel_core_tiles_moved_in_total", "counter", "Tiles handed to this core.");
  for (const CoreSample& core : later.cores) out.sample_count(labels(core), core.tiles_moved_in);
}

void ring_metrics(const StatusSample& later, Exposition& out) {
  auto labels = [](const RingSample& ring) { return Labels{{"kind", to_string(ring.kind)}, {"ring", ring.name}}; };
  out.family("keel_ring_pushed_total", "counter", "Messages pushed into the ring.");
  for (const RingSample& ring : later.rings) out.sample_count(labels(ring), ring.pushed);
  out.family("keel_ring_depth", "gauge", "Messages in the ring now (pushed - popped).");
  for (const RingSample& ring : later.rings) out.sample_count(labels(ring), ring.pushed - ring.popped);
  out.family("keel_ring_capacity", "gauge", "Slots of the ring.");
  for (const RingSample& ring : later.rings) out.sample_count(labels(ring), ring.capacity);
  out.family("keel_ring_full_events_total", "counter", "Pushes that found the ring full (backpressure).");
  for (const RingSample& ring : later.rings) out.sample_count(labels(ring), ring.full_events);
}

void pool_metrics(const StatusReport& report, const StatusSample& later, Exposition& out) {
  auto labels = [](const PoolSample& pool) { return Labels{{"pool", pool.name}}; };
  out.family("keel_pool_tasks_in_flight", "gauge", "Tasks sent to the pool and not answered.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.tasks_in_flight);
  out.family("keel_pool_tasks_dispatched_total", "counter", "Sends to the pool, every attempt.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.tasks_dispatched);
  out.family("keel_pool_tasks_retried_total", "counter", "Sends that were attempts after the first.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.tasks_retried);
  out.family("keel_pool_tasks_completed_total", "counter", "Tasks the pool's processes finished.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.tasks_completed);
  out.family("keel_pool_tasks_run_inline_total", "counter",
             "Tasks the pool's main thread ran itself, too short to hand to a runner thread.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.tasks_run_inline);
  out.family("keel_pool_restarts_total", "counter", "Pool processes started again after a death.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.restarts);
  out.family("keel_pool_quarantined", "gauge", "1 when the engine gave up on the pool.");
  for (const PoolSample& pool : later.pools) out.sample_count(labels(pool), pool.quarantined ? 1 : 0);
  out.family("keel_pool_ready", "gauge", "1 when the pool's current process is ready.");
  for (size_t index = 0; index < report.pools.size(); ++index)
    out.sample_count(labels(later.pools[index]), report.pools[index].state == "ready" ? 1 : 0);
}

void product_and_engine_metrics(const StatusSample& later, Exposition& out) {
  out.family("keel_product_jobs_queued", "gauge", "Flow jobs waiting in the product's queues, over every shard.");
  for (const ProductSample& product : later.products) out.sample_count({{"product", product.name}}, product.jobs_queued);
  out.family("keel_product_jobs_running", "gauge", "Flow jobs of the product running, over every shard.");
  for (const ProductSample& product : later.products) out.sample_count({{"product", product.name}}, product.jobs_running);
  auto each_scheduler = [&](const char* name, const char* type, const char* help, auto value) {
    out.family(name, type, help);
    for (const SchedulerSample& scheduler : later.schedulers)
      out.sample({{"scheduler", scheduler.tile}}, double(value(scheduler)));
  };
  each_scheduler("keel_scheduler_tasks_taken_total", "counter", "Compute tasks taken from the shards.",
                 [](const SchedulerSample& s) { return s.tasks_taken; });
  each_scheduler("keel_scheduler_tasks_retried_total", "counter", "Attempts after the first.",
                 [](const SchedulerSample& s) { return s.tasks_retried; });
  each_scheduler("keel_scheduler_tasks_expired_total", "counter", "Leases that ran out.",
                 [](const SchedulerSample& s) { return s.tasks_expired; });
  each_scheduler("keel_scheduler_tasks_spilled_total", "counter", "Tasks sent to another node's pool.",
                 [](const SchedulerSample& s) { return s.tasks_spilled; });
  each_scheduler("keel_scheduler_leases_held", "gauge", "Tasks the scheduler holds now.",
                 [](const SchedulerSample& s) { return s.leases_held; });
  each_scheduler("keel_scheduler_busy_seconds_total", "counter", "Time in polls that did work.",
                 [](const SchedulerSample& s) { return double(s.busy_ns) / 1e9; });
  out.family("keel_clients_attached", "gauge", "Client processes attached to the engine.");
  out.sample_count({}, later.clients.attached);
  out.family("keel_balancer_windows_total", "counter", "Windows the balancer has run.");
  out.sample_count({}, later.balancer.windows);
  out.family("keel_balancer_moves_total", "counter", "Shard tiles the balancer moved.");
  out.sample_count({}, later.balancer.moves);
  out.family("keel_balancer_records_total", "counter", "balance_record transactions the balancer ordered.");
  out.sample_count({}, later.balancer.records);
}

}  // namespace

std::string prometheus_text(const StatusReport& report, const StatusSample& later) {
  Exposition out;
  out.family("keel_up", "gauge", "1: the engine instance answers.");
  out.sample({{"instance", later.instance}}, 1);
  chain_metrics(report, later, out);
  core_metrics(report, later, out);
  ring_metrics(later, out);
  pool_metrics(report, later, out);
  product_and_engine_metrics(later, out);
  return out.take();
}

}  // namespace keel::status
