// engine/cli/balance_commands.h: `keel balance history`, the balancer's audit trail.
//
//   keel balance history --config perf/default.toml [--chain payments] [--json]
//
// Reads the system chain's log from the config's data directory (node/balance_history.h),
// engine running or not, and prints every change of a chain's tier or CPU slice the
// balancer recorded: the system block holding it, when, the chain, the change, and the
// figures that decided it. Exit status 0, 2 on a bad config or unreadable data (one line).
#pragma once

#include <string>

namespace keel::cli {

struct BalanceHistoryRequest {
  std::string config_file = "perf/default.toml";
  std::string chain;  // empty: every chain
  bool json = false;
};

int balance_history_command(const BalanceHistoryRequest& request);

}  // namespace keel::cli
