// engine/cli/ledger_commands.h: the `keel` subcommands of the ledger — `run` (when the
// config runs the ledger), `load` (the generator `run` starts) and `submit`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/config/perf_config.h"
#include "numa/placement.h"
#include "numa/topology.h"

namespace keel::cli {

// Where `keel run` leaves its results, and whether it checks the data afterwards.
struct RunOutputs {
  std::string out_dir;  // --out: the run's folder; empty: runs/<UTC start> beside the data directory
  bool verify = false;  // --verify: `keel verify` on the data directory once the engine has drained
};

// Runs the ledger engine. Without json it prints, once a second, each client chain's
// committed tx/s, tier, slice and commit p99, then the report, a summary per chain and the
// run folder's path; with json, stdout is one JSON object (the report, with "run_dir" and,
// with verify, "verify"). The run folder gets report.json, timeline.csv and chart.svg
// (engine/node/run_timeline.h). With verify the data directory is checked after the drain
// (the engine has closed every log) and its verdict printed. Exit 0; 1 when verify found a
// problem; 2 when the run, or writing its folder, failed (one line on stderr).
int run_ledger_command(const config::PerfConfig& config, const numa::Topology& topology, const numa::Plan& plan,
                       const std::string& config_path, uint64_t duration_ms, bool json, const RunOutputs& outputs);

// `keel load`: the load generator (an ordinary client process).
int load_command(const std::string& config_path, const std::string& segment, uint32_t client_index,
                 uint64_t duration_ms);

struct SubmitRequest {
  std::string instance = "default";
  std::string chain;
  std::string kind;  // "create-account", "transfer", "put" or "compute"
  uint64_t account = 0, from = 0, to = 0, amount = 0;
  int64_t balance = 0;
  bool overdraft = false;
  std::string key, value;
  // compute: the compute type, the subject (picks the shard) and exactly one of the three
  // ways to give the input: as text, as a file's bytes, or in hex.
  std::string compute_type;
  uint64_t subject = 0;
  std::optional<std::string> input_text, input_file, input_hex;
  uint64_t nonce = 0;  // 0: derived from the clock
  std::string client_id = "cli";  // attached as (access credits are charged to it)
  uint32_t timeout_ms = 10'000;
  bool json = false;
};

// `keel verify`: checks every chain under data_dir; exit 0 when all verify, 1 otherwise.
int verify_command(const std::string& data_dir, bool json);

// `keel submit`: one transaction, then its durable receipt. Exit 0 when applied, 3 when
// rejected, 2 when it could not be submitted or no receipt came in time. Arguments are
// checked before attaching to the engine: a bad one (a client id not of [a-z0-9_.-], a put key too long; a compute
// type name not of [a-z0-9_], an input file that cannot be read, bad hex, an input over
// ledger::compute_input_bytes_max) is one line "keel: --<option>: <reason>", exit 2.
//
// A compute request's receipt names its block and, computed from the subject, its shard;
// the receipt does not carry the request's index within the block, which with those two
// identifies the task (ledger::CreditMark::pack(height, index)).
int submit_command(const SubmitRequest& request);

}  // namespace keel::cli
