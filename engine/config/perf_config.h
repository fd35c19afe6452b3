// keel::config: the perf config (TOML) that says how an engine lays itself out: idle
// strategy, topology, tiles, rings, chains, worker pools, the balancer and the synthetic
// pipeline.
// The parser is strict: an unknown key, a wrong type or a value out of range is an error
// naming the file, line, column and dotted key. perf/README.md lists every knob.
//
//   Result<PerfConfig> config = load_perf_config("perf/default.toml");
//   if (!config) { std::fprintf(stderr, "keel: %s\n", config.error().message.c_str()); return 2; }
//   for (const ChainConfig& chain : config->chains) start_chain(chain.name, chain.shards);
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error/result.h"

namespace keel::config {

// What a core does when none of its tiles found work: keep polling, poll
// idle_spin_polls more times and then sleep, or sleep at once.
enum class IdleStrategy { spin, adaptive, sleep };

// Where the NUMA topology comes from: the machine itself (hwloc), an hwloc synthetic
// description, or an hwloc XML export.
enum class TopologySource { host, synthetic, xml };

// How one class of tile is run: on a core of its own that busy-polls, or sharing a core
// with other tiles in proportion to weight.
struct TileClass {
  bool busy_poll = false;
  uint32_t weight = 1;
};

// Whether a chain's client submissions cost access credits (ledger/shard.h).
enum class CreditsMode { off, required };

// The chain the balancer records its decisions on (ledger/transaction.h: balance_record).
// Every config has it: listed last unless the file declares it (to tune its blocks), one
// shard, and clients cannot submit to it.
inline constexpr char system_chain_name[] = "system";

// One ledger ("chain"), how many shards split it by key, and when a shard seals a block:
// once it holds block_txs_max transactions (the credit_spends a block appends included)
// or its first one is block_us_max old.
struct ChainConfig {
  std::string name;
  uint32_t shards = 1;
  uint32_t block_txs_max = 8192;
  uint32_t block_us_max = 2000;
  bool is_system() const { return name == system_chain_name; }
  // Access credits: with "required", every client submission but a credit_grant costs
  // credits_per_tx (1..1,000,000; only given with "required") from the submitting client's
  // account on the shard that executes it. credit_granters: the client ids (1..64 of them,
  // each 1..32 characters of [a-z0-9_.-], unique) whose credit_grants the gateway routes,
  // on any chain.
  CreditsMode credits = CreditsMode::off;
  uint32_t credits_per_tx = 1;
  std::vector<std::string> credit_granters = {"operator"};
};

// A product's job queue on every shard of every chain (flow_table.h): jobs of flows of
// the product's contracts wait in it, and are dispatched while fewer than running_max of
// them run on the shard, higher priority first. The engine orders a product_set on each
// shard whose ledger holds other settings when it starts (a transaction, so the ledger
// and its replays agree); a product not listed keeps what the ledger holds (by default
// priority 0, running_max 1024).
struct ProductConfig {
  std::string name;            // 1..32 of [a-z0-9_], unique
  uint32_t priority = 0;       // higher first
  uint32_t running_max = 1024; // 1..2^20
};

// A business-process contract the engine deploys itself when it starts (a flow model
// file, perf/flows/README.md), on every shard of the listed chains (all chains when none
// are listed), where the ledger does not hold that version already: so its cron
// schedules run without anyone sending a deploy. The file is read and checked against the
// [[pool]]s' compute types at start; a bad one stops the engine with one line.
struct ContractConfig {
  std::string file;                 // absolute (relative paths are taken from the config's directory)
  std::vector<std::string> chains;  // names of [[chain]]s; empty: every chain
};

// Whether a group commit ends in fdatasync (always) or not (none: benchmarks only; receipts
// then say nothing about durability, and the engine says so when it starts).
enum class FsyncPolicy { always, none };
// How the persist tile writes: io_uring, or pwritev + fdatasync where io_uring is blocked.
enum class PersistBackend { io_uring, psync };

struct LedgerSection {
  std::string data_dir = "data";         // resolved against the working directory
  FsyncPolicy fsync = FsyncPolicy::always;
  PersistBackend persist_backend = PersistBackend::io_uring;
  uint64_t segment_bytes_max = 64 << 20;  // a log segment file is rotated past this size
  bool segment_preallocate = true;        // segment files are written full of zeros ahead of use
  uint32_t segment_spare_at_percent = 25;  // a log's first spare waits for this fill of its first file
  uint32_t segment_zero_mb_per_s = 64;     // spares' zeros, all logs together, at most this fast (0: unpaced)
  uint32_t segment_recycled_max = 2;      // dropped segment files kept per shard to reuse (0: delete)
  uint32_t commits_in_flight = 2;         // group commits in flight at once (1 or 2)
  bool log_buffer_huge_pages = true;      // log write buffers on transparent huge pages
  bool direct_io = true;                  // log writes past the page cache (O_DIRECT)
  uint32_t commit_stall_warn_ms = 1000;   // say so when a group commit waits longer in the kernel
  uint32_t snapshot_every_blocks = 1024;  // 0 = no snapshots
  uint32_t clients_max = 16;              // client slots in the segment
  uint32_t client_in_flight_max = 4096;   // submissions without a receipt, per client
  uint32_t compute_pending_max = 4096;    // compute tasks one shard holds without a result
};

// A shape's to_ms when the file gives none: the window lasts to the end of the run.
inline constexpr uint64_t load_shape_open_end_ms = UINT64_MAX;

// One window of a client chain's offered load ([[load.shape]], perf/README.md): from
// from_ms to to_ms after the run starts (to_ms excluded), the chain is offered
// rate_per_second transactions a second by all the load generators together (each sends
// its even part); 0 offers none. Outside its shapes a chain gets chain_rate_per_second.
// Shapes of one chain do not overlap; the system chain has none.
struct LoadShape {
  std::string chain;
  uint64_t from_ms = 0;
  uint64_t to_ms = load_shape_open_end_ms;
  uint64_t rate_per_second = 0;
};

// The load generator `keel run` starts (child processes using the client library).
struct LoadSection {
  bool enabled = true;
  uint32_t clients = 2;                  // generator processes, each spread over every chain
  uint32_t accounts_per_chain = 10000;
  uint32_t cross_shard_percent = 10;     // transfers whose accounts live on different shards
  uint64_t rate_per_second = 0;          // per client; 0 = as fast as backpressure allows
  // Pacing per chain (the load of `make run`): each client chain is offered this many
  // transactions a second by all clients together, except inside its [[load.shape]]s. With
  // either set, rate_per_second must be 0; with neither, the clients submit over all chains
  // in turn (rate_per_second or as fast as backpressure allows).
  uint64_t chain_rate_per_second = 0;
  std::vector<LoadShape> shapes;         // in file order
  bool paced_per_chain() const { return chain_rate_per_second != 0 || !shapes.empty(); }
  // Submissions that are compute_requests instead of transfers, cycling over every compute
  // type of the [[pool]]s; none when there are no pools.
  uint32_t compute_percent = 5;
  // Flows: contracts (flow model files, made absolute against the config's directory) the
  // generators deploy on every shard of every chain, and the submissions that are
  // flow_starts of them instead of transfers, the contracts in turn; none without contracts.
  std::vector<std::string> flow_contracts;
  uint32_t flow_percent = 0;
};

// One worker pool: on every NUMA node, a process (`keel worker`) that loads the plugin
// library and runs threads_per_node threads for the pool's compute types. perf/README.md
// explains each knob.
struct PoolConfig {
  std::vector<std::string> compute_types;  // 1..64 names of [a-z0-9_], unique across pools
  std::string plugin;                      // as written: a bare name or a path
  std::string plugin_path;                 // resolved and absolute: what the pool dlopens
  uint32_t threads_per_node = 1;
  uint32_t in_flight_max = 1024;      // tasks dispatched to one pool process and not completed
  uint32_t timeout_ms = 10000;        // a task's lease
  uint32_t retries_max = 3;           // attempts after the first
  uint32_t backoff_ms = 10;           // before the first retry; doubles per retry, at most timeout_ms
  uint32_t output_bytes_max = 16384;  // largest output a task may produce
  // [pool.config] flattened as keel/plugin.h describes, sorted by key (bytewise), keys unique.
  std::vector<std::pair<std::string, std::string>> plugin_config;
};

// The pool's name in plans and messages: its compute types joined by '+' ("hash",
// "score+rank"). Unique across pools, since compute types are.
std::string pool_name(const PoolConfig& pool);

// The scheduler tiles and the supervision of pool processes. perf/README.md explains each.
struct SchedulerSection {
  uint32_t leases_max = 16384;          // tasks one scheduler tile holds at once
  uint32_t spill_percent = 100;         // local pool in-flight share before tasks cross nodes
  uint32_t restart_backoff_ms = 100;    // after a pool crash; doubles per crash in a row
  uint32_t restart_backoff_ms_max = 5000;
  uint32_t heartbeat_timeout_ms = 1000; // a pool silent this long is killed and restarted
  uint32_t ready_timeout_ms = 10000;    // a pool not ready this long after start is quarantined
  uint32_t crashes_max = 5;             // crashes within crash_window_ms that quarantine a pool
  uint32_t crash_window_ms = 30000;
  // Pool credit by the balancer's tiers: when tasks wait for a pool, they are dispatched in
  // turns of this many light, medium and heavy chains' tasks (sched/scheduler.h).
  std::array<uint32_t, 3> tier_weights = {1, 2, 4};
};

// The balancer tile: every window_ms it smooths each chain's committed-transaction rate and
// CPU time, classifies chains heavy / medium / light with hysteresis, and re-sizes their CPU
// slices (engine/balance/balancer.h, which takes this section as its BalancerKnobs).
// perf/README.md explains each knob and its range.
struct BalancerSection {
  bool enabled = true;              // false: measure and classify, never move a shard or change a weight
  uint32_t window_ms = 250;         // how often the balancer reads the counters and decides
  uint32_t half_life_ms = 250;      // of the EWMA over each window's rate
  uint64_t heavy_tps = 50'000;      // smoothed committed tx/s at which a chain is heavy
  uint64_t medium_tps = 5'000;      // ... medium; below it a chain is light
  uint32_t margin_percent = 25;     // hysteresis: up past threshold x (1 + m), down below x (1 - m)
  uint32_t windows_to_change = 2;   // consecutive windows past the band before a tier changes
  uint32_t downgrade_interval_ms = 2500;  // a chain steps down at most once per interval after any change
  uint32_t min_share_percent = 10;  // each shard's guaranteed share of its shared core's shard weight
  uint32_t heavy_cores_max = 0;     // dedicated cores one heavy chain may take; 0 = one per shard
  uint32_t weight_max = 32;         // the shard weights on one core add up to about this (<= 1000)
};

struct EngineSection {
  std::string instance = "default";  // names the shared segment "keel-<instance>"
  IdleStrategy idle = IdleStrategy::adaptive;
  uint32_t idle_spin_polls = 256;
  uint32_t idle_sleep_us_max = 1000;
  uint32_t idle_commit_poll_us = 50;  // an idle core's longest sleep while a commit is in flight
  uint32_t tile_budget = 64;  // work items per weight unit per round-robin round
};

struct TopologySection {
  TopologySource source = TopologySource::host;
  std::string synthetic;  // hwloc synthetic syntax, e.g. "pack:2 numa:2 core:32 pu:2"
  std::string xml_path;   // resolved against the config file's directory
};

struct LayoutSection {
  uint32_t compute_cores_per_node = 0;  // 0 = pools share the engine's cores
};

struct TilesSection {
  TileClass shard{false, 4}, scheduler{false, 2}, persist{false, 2}, balancer{false, 1},
      timer{false, 1}, pipeline{false, 2}, gateway{false, 2};
};

struct RingsSection {
  uint32_t capacity = 4096;  // slots
  uint32_t slot_bytes = 64;
  uint64_t arena_bytes = 1 << 20;  // payload arena per ring; 0 = none
};

struct PipelineSection {
  bool enabled = false;  // true: `keel run` runs the synthetic pipeline instead of the ledger
  uint32_t payload_bytes = 32;
  uint64_t rate_per_second = 0;  // 0 = as fast as backpressure allows
};

// The engine's Prometheus endpoint (GET /metrics, engine/status/metrics_server.h): a TCP
// listener on a loopback address, served by a thread of `keel run` off the cores. A port
// that is taken is said in one line and the engine runs on without it.
struct MetricsSection {
  bool enabled = false;
  std::string listen = "127.0.0.1:9464";  // as written
  std::string address = "127.0.0.1";      // its IPv4 loopback address
  uint16_t port = 9464;                   // 0: any free port (the engine prints which)
};

struct PerfConfig {
  std::string path;  // the file it came from (or the name given to parse_perf_config)
  EngineSection engine;
  TopologySection topology;
  LayoutSection layout;
  TilesSection tiles;
  RingsSection rings;
  std::vector<ChainConfig> chains;
  std::vector<PoolConfig> pools;
  std::vector<ProductConfig> products;
  std::vector<ContractConfig> contracts;
  SchedulerSection scheduler;
  BalancerSection balancer;
  PipelineSection pipeline;
  LedgerSection ledger;
  LoadSection load;
  MetricsSection metrics;
};

// What parsing needs to know beyond the text and its path.
struct ParseOptions {
  // The directory a bare plugin name is found under: pool.plugin = "hash" gives
  // <binary_directory>/plugins/keel_hash.so. Empty: the directory of the running program
  // (/proc/self/exe), read only when a bare name needs it; that is where `keel` and the
  // plugins/ folder of its build sit. Tests pass their own.
  std::string binary_directory;
};

// Reads the file at path and parses it as parse_perf_config does, with path in every
// message. Fails with "<path>: cannot read: <strerror>" when the file cannot be read
// (or "... cannot read: larger than 1048576 bytes"), else as parse_perf_config.
Result<PerfConfig> load_perf_config(const std::string& path, const ParseOptions& options = {});

// Parses and checks a perf config held in text. path names it in messages, and a relative
// topology.xml_path or pool plugin path is resolved against path's directory (a plugin path
// is made absolute, against the working directory when path is relative). No file named
// by the config is opened. Every key is optional and defaults as in the structs above,
// except a pool's compute types and plugin. Fails on the first problem found, with one line
// "<path>:<line>:<column>: <dotted.key>: <reason>" (or "... TOML syntax: <reason>").
Result<PerfConfig> parse_perf_config(std::string_view text, std::string_view path,
                                     const ParseOptions& options = {});

// The spelling used in the config file: "spin", "adaptive", "sleep".
std::string_view to_string(IdleStrategy idle);

// The spelling used in the config file: "host", "synthetic", "xml".
std::string_view to_string(TopologySource source);
std::string_view to_string(FsyncPolicy fsync);
std::string_view to_string(CreditsMode credits);
std::string_view to_string(PersistBackend backend);

}  // namespace keel::config
