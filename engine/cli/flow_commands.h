// engine/cli/flow_commands.h: `keel flow …`, business-process contracts on a running
// engine, through the client library.
//
//   keel flow deploy perf/flows/loan_approval.toml --chain loans [--config perf/default.toml]
//   keel flow start loan_approval --chain loans --key order-17 --arg-file document=doc.pdf
//   keel flow pause|resume|cancel order-17 --chain loans
//   keel flow status order-17 --chain loans [--config perf/default.toml] [--json]
//   keel flow list --product retail_loans --chain loans [--config ...] [--limit 100] [--json]
//
// Each waits for the durable receipts and prints one line per outcome. Exit status: 0
// when every receipt says applied (flow_exists for a start counts: the key's flow stands),
// 3 when one was rejected, 2 when the arguments or files are bad (one line "keel:
// <place>: <reason>") or the engine did not answer in time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace keel::cli {

struct FlowRequest {
  std::string action;  // "deploy", "start", "pause", "resume" or "cancel"
  std::string instance = "default";
  std::string chain;
  uint32_t timeout_ms = 10'000;
  std::string client_id = "cli";  // attached as (access credits are charged to it)
  // deploy: the model's file, and a perf config whose [[pool]]s' compute types it must use
  // (empty: the types are not checked, and the command says so).
  std::string model_file;
  std::string config_file;
  // start: the contract, its version (0: the newest deployed), the key, and arguments as
  // name=text, name=path (the file's bytes) or name=hex.
  std::string contract;
  uint32_t version = 0;
  std::string key;  // start, pause, resume, cancel
  std::vector<std::string> args_text, args_file, args_hex;
};

int flow_command(const FlowRequest& request);

// status and list read the chain's state from the config's data directory (node/verify.h's
// read_shard_state: newest snapshot, then the log), without the engine and without
// changing anything, so they answer whether the engine runs or not: every acknowledged
// block, and with a running engine perhaps the group commit being written. status: one
// flow by key (its home shard only); list: the flows of one product on every shard, live
// and kept finished, with the product's queue per shard. Exit status 0, 3 when the key
// names no flow, 2 on a bad config or unreadable data (one line).
struct FlowQuery {
  std::string action;  // "status" or "list"
  std::string config_file = "perf/default.toml";
  std::string chain;
  std::string key;      // status
  std::string product;  // list
  uint32_t limit = 100; // list: at most this many flows printed (newest first); the counts cover all
  bool json = false;
};

int flow_query_command(const FlowQuery& query);

}  // namespace keel::cli
