// engine/cli/credit_commands.h: `keel credits …`, access credits of a chain.
//
//   keel credits grant --config perf/default.toml --chain payments --client app-7 --amount 1000 [--shard 1] [--as operator]
//   keel credits show --config perf/default.toml --chain payments [--client app-7] [--json]
//
// grant attaches to the config's running engine as the client id given by --as (default
// "operator"; it must be one of the chain's credit_granters, or every grant is refused with
// not_a_granter) and sends credit_grants: to --shard only, or split evenly over the chain's
// shards, the remainder to the lowest shards (a shard whose share is 0 gets none). It
// waits for the durable receipts and prints one line per grant. Exit status 0 when every
// grant was applied, 3 when one was rejected or refused, 2 on bad arguments or when the
// engine did not answer in time (one line "keel: <place>: <reason>").
//
// show reads the chain's state from the config's data directory (node/verify.h's
// read_shard_state: newest snapshot, then the log), engine running or not, and prints each
// client's balance per shard and in total (only --client's when given; every client
// holding credit otherwise). Exit status 0, 2 on a bad config or unreadable data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace keel::cli {

struct CreditsRequest {
  std::string action;  // "grant" or "show"
  std::string config_file = "perf/default.toml";
  std::string chain;
  std::string client;  // grant: who receives; show: whose balances (empty: everyone's)
  uint64_t amount = 0;             // grant: 1.. in all
  std::optional<uint32_t> shard;   // grant: one shard only
  std::string as = "operator";     // grant: the granter's client id
  uint32_t timeout_ms = 10'000;
  bool json = false;
};

int credits_command(const CreditsRequest& request);

}  // namespace keel::cli
