#include "engine/cli/balance_commands.h"

#include <time.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "engine/balance/balancer.h"
#include "engine/config/perf_config.h"
#include "engine/node/balance_history.h"

namespace keel::cli {

namespace {

int fail(const Error& error) {
  std::fprintf(stderr, "keel: %s\n", error.message.c_str());
  return 2;
}

// "2026-11-25T03:50:12.250Z"
std::string utc_text(uint64_t time_ms) {
  time_t seconds = time_t(time_ms / 1000);
  tm parts{};
  gmtime_r(&seconds, &parts);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, unsigned(time_ms % 1000));
  return text;
}

std::string tier_text(uint8_t tier) { return std::string(balance::tier_name(tier)); }

}  // namespace

int balance_history_command(const BalanceHistoryRequest& request) {
  Result<config::PerfConfig> config = config::load_perf_config(request.config_file);
  if (!config) return fail(config.error());
  if (!request.chain.empty()) {
    bool known = false;
    for (const config::ChainConfig& chain : config->chains) known = known || chain.name == request.chain;
    if (!known) return fail(make_error("--chain", "the config has no chain " + request.chain));
  }
  Result<std::vector<node::BalanceEvent>> events = node::read_balance_history(config->ledger.data_dir);
  if (!events) return fail(events.error());
  nlohmann::json json_events = nlohmann::json::array();
  if (!request.json)
    std::printf("%8s  %-24s  %-16s  %-6s  %-15s  %10s  %10s  %5s  %6s\n", "block", "decided (UTC)", "chain", "change",
                "tier", "tx/s", "ns/tx", "cores", "share");
  size_t shown = 0;
  for (const node::BalanceEvent& event : *events) {
    const ledger::BalanceRecordBody& record = event.record;
    std::string chain(record.chain_name);
    if (!request.chain.empty() && chain != request.chain) continue;
    ++shown;
    bool tier_change = record.kind == uint8_t(ledger::BalanceRecordKind::tier);
    std::string tier = tier_change ? tier_text(record.tier_from) + " -> " + tier_text(record.tier_to)
                                   : tier_text(record.tier_to);
    if (request.json) {
      json_events.push_back({{"height", event.height},
                             {"time_ms", record.time_ms},
                             {"time", utc_text(record.time_ms)},
                             {"window", record.window},
                             {"chain", chain},
                             {"kind", tier_change ? "tier" : "slice"},
                             {"tier_from", tier_text(record.tier_from)},
                             {"tier_to", tier_text(record.tier_to)},
                             {"tps_smoothed", record.tps_smoothed},
                             {"cost_ns_per_tx", record.cost_ns_per_tx},
                             {"cores_dedicated", record.cores_dedicated},
                             {"shares_permille", record.shares_permille}});
      continue;
    }
    std::printf("%8llu  %-24s  %-16s  %-6s  %-15s  %10llu  %10llu  %5u  %5.1f%%\n", (unsigned long long)event.height,
                utc_text(record.time_ms).c_str(), chain.c_str(), tier_change ? "tier" : "slice", tier.c_str(),
                (unsigned long long)record.tps_smoothed, (unsigned long long)record.cost_ns_per_tx,
                record.cores_dedicated, record.shares_permille / 10.0);
  }
  if (request.json) {
    std::printf("%s\n", nlohmann::json{{"data_dir", config->ledger.data_dir}, {"events", json_events}}.dump().c_str());
  } else {
    std::printf("%zu change(s) recorded on the system chain\n", shown);
  }
  return 0;
}

}  // namespace keel::cli
