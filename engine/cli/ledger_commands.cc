#include "engine/cli/ledger_commands.h"
#include "engine/cli/status_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/balance/balancer.h"
#include "engine/client/client.h"
#include "engine/ledger/hash.h"
#include "engine/ledger/transaction.h"
#include "engine/node/ledger_run.h"
#include "engine/node/load_generator.h"
#include "engine/node/verify.h"
#include "engine/persist/durable_io.h"
#include "shm/segment.h"

namespace keel::cli {

namespace {

int fail(const Error& error) {
  std::fprintf(stderr, "keel: %s\n", error.message.c_str());
  return 2;
}

nlohmann::json report_json(const node::LedgerReport& report) {
  nlohmann::json json = {{"duration_s", report.duration_s},     {"persist_backend", report.persist_backend},
                         {"fsync", report.fsync},               {"group_commits", report.commits},
                         {"group_commits_stalled", report.commits_stalled},
                         {"commit_stall_warn_ms", report.commit_stall_warn_ms},
                         {"blocks_recovered", report.blocks_recovered},
                         {"snapshots_written", report.snapshots_written},
                         {"snapshots_skipped", report.snapshots_skipped},
                         {"snapshot_write_us_max", report.snapshot_write_us_max},
                         {"segments_dropped", report.segments_dropped},
                         {"segments_recycled", report.segments_recycled},
                         {"segments_preallocated", report.segments_preallocated},
                         {"segments_unprepared", report.segments_unprepared},
                         {"stopped_by_signal", report.stopped_by_signal}, {"notes", report.notes}};
  const node::ComputeReport& compute = report.compute;
  json["compute"] = {{"tasks_taken", compute.tasks_taken},
                     {"results_returned", compute.results_returned},
                     {"results_per_second", report.duration_s > 0 ? double(compute.results_returned) / report.duration_s : 0.0},
                     {"results_failed", compute.results_failed},
                     {"tasks_retried", compute.tasks_retried},
                     {"tasks_expired", compute.tasks_expired},
                     {"tasks_redispatched", compute.tasks_redispatched},
                     {"completions_stale", compute.completions_stale},
                     {"tasks_spilled", compute.tasks_spilled},
                     {"dispatch_latency_us_p50", compute.dispatch_latency_us_p50},
                     {"dispatch_latency_us_p99", compute.dispatch_latency_us_p99},
                     {"pools", compute.pools},
                     {"pool_restarts", compute.pool_restarts},
                     {"pools_quarantined", compute.pools_quarantined},
                     {"ledger_tasks_issued", compute.ledger_tasks_issued},
                     {"ledger_tasks_succeeded", compute.ledger_tasks_succeeded},
                     {"ledger_tasks_failed", compute.ledger_tasks_failed},
                     {"ledger_tasks_pending", compute.ledger_tasks_pending},
                     {"flows_started", compute.flows_started},
                     {"flows_succeeded", compute.flows_succeeded},
                     {"flows_failed", compute.flows_failed},
                     {"flows_cancelled", compute.flows_cancelled},
                     {"flows_live", compute.flows_live},
                     {"flow_jobs_dispatched", compute.flow_jobs_dispatched},
                     {"flow_jobs_succeeded", compute.flow_jobs_succeeded},
                     {"flow_jobs_failed", compute.flow_jobs_failed},
                     {"flow_jobs_running", compute.flow_jobs_running},
                     {"flows_finished_kept", compute.flows_finished_kept},
                     {"flow_live_bytes", compute.flow_live_bytes},
                     {"flow_finished_bytes", compute.flow_finished_bytes},
                     {"timers", compute.timers},
                     {"timer_flows_started", compute.timer_flows_started},
                     {"timer_misfires_dropped", compute.timer_misfires_dropped},
                     {"run_flows_started", compute.run_flows_started},
                     {"run_flows_ended", compute.run_flows_ended},
                     {"run_flow_jobs_ended", compute.run_flow_jobs_ended},
                     {"flows_ended_per_second", compute.flows_ended_per_second},
                     {"flow_jobs_per_second", compute.flow_jobs_per_second},
                     {"ready_to_dispatch_us_p50", compute.ready_to_dispatch_us_p50},
                     {"ready_to_dispatch_us_p99", compute.ready_to_dispatch_us_p99}};
  json["products"] = nlohmann::json::array();
  for (const node::ProductProgress& product : report.products)
    json["products"].push_back({{"name", product.name},
                                {"priority", product.priority},
                                {"running_max", product.running_max},
                                {"flows_live", product.flows_live},
                                {"flows_succeeded", product.flows_succeeded},
                                {"flows_failed", product.flows_failed},
                                {"flows_cancelled", product.flows_cancelled},
                                {"jobs_queued", product.jobs_queued},
                                {"jobs_running", product.jobs_running}});
  json["chains"] = nlohmann::json::array();
  for (const node::ChainReport& chain : report.chains)
    json["chains"].push_back({{"name", chain.name},
                              {"shards", chain.shards},
                              {"height_max", chain.height_max},
                              {"committed_txs", chain.committed_txs},
                              {"rejected_txs", chain.rejected_txs},
                              {"committed_per_second", chain.committed_per_second},
                              {"commit_latency_us_mean", chain.commit_latency_us_mean},
                              {"commit_latency_us_max", chain.commit_latency_us_max},
                              {"client_receipts", chain.client_receipts},
                              {"client_latency_us_p50", chain.client_latency_us_p50},
                              {"client_latency_us_p99", chain.client_latency_us_p99},
                              {"tier", chain.tier},
                              {"tps_smoothed", chain.tps_smoothed},
                              {"cost_ns_per_tx", chain.cost_ns_per_tx},
                              {"cores_dedicated", chain.cores_dedicated},
                              {"slice_cores", chain.slice_cores},
                              {"tier_changes", chain.tier_changes},
                              {"slice_changes", chain.slice_changes},
                              {"shard_moves", chain.shard_moves},
                              {"commit_latency_us_p99", chain.commit_latency_us_p99},
                              {"tps_peak", chain.tps_peak},
                              {"seconds_light", chain.seconds_in_tier[0]},
                              {"seconds_medium", chain.seconds_in_tier[1]},
                              {"seconds_heavy", chain.seconds_in_tier[2]}});
  const node::BalancerReport& balancer = report.balancer;
  json["balancer"] = {{"ran", balancer.ran},
                      {"windows", balancer.windows},
                      {"moves_requested", balancer.moves_requested},
                      {"weight_changes_requested", balancer.weight_changes_requested},
                      {"records_ordered", balancer.records_ordered},
                      {"windows_held", balancer.windows_held},
                      {"placement_mismatches", balancer.placement_mismatches},
                      {"shuffles_requested", balancer.shuffles_requested}};
  const node::RunTimeline& timeline = report.timeline;
  nlohmann::json samples = nlohmann::json::array();
  for (const node::TimelineSample& sample : timeline.samples) {
    nlohmann::json chains = nlohmann::json::array();
    for (size_t chain = 0; chain < timeline.chains.size(); ++chain) {
      const node::ChainSample& figures = sample.chains[chain];
      chains.push_back({{"name", timeline.chains[chain]},
                        {"committed_txs", figures.committed_txs},
                        {"tps", figures.tps},
                        {"tier", std::string(balance::tier_name(figures.tier))},
                        {"slice_cores", figures.slice_cores},
                        {"commit_latency_us_p99", figures.commit_latency_us_p99}});
    }
    samples.push_back({{"time_s", sample.time_s}, {"interval_s", sample.interval_s}, {"chains", chains}});
  }
  json["timeline"] = {{"chains", timeline.chains}, {"balancer", timeline.balancer}, {"samples", samples}};
  return json;
}

// Seconds as the summary shows them: "-" for none.
std::string seconds_text(double seconds) {
  if (seconds < 0.05) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs", seconds);
  return text;
}

// Microseconds as milliseconds with one decimal; "-" for none.
std::string latency_ms_text(uint64_t latency_us) {
  if (latency_us == 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", double(latency_us) / 1000);
  return text;
}

// The run per client chain, from its timeline and the balancer: how busy it was, how fast
// its blocks became durable, and how long it spent in each tier.
void print_chain_summary(const node::LedgerReport& report) {
  if (report.timeline.chains.empty()) return;
  std::printf("\nper chain over the run (%zu samples of a second):\n", report.timeline.samples.size());
  std::printf("%-16s %10s %10s %11s  %-6s %6s %7s %8s %8s %8s %5s\n", "chain", "tx/s mean", "tx/s peak", "commit p99",
              "tier", "slice", "changes", "light", "medium", "heavy", "moves");
  for (const node::ChainReport& chain : report.chains) {
    const std::vector<std::string>& sampled = report.timeline.chains;
    if (std::find(sampled.begin(), sampled.end(), chain.name) == sampled.end()) continue;
    std::printf("%-16s %10.0f %10.0f %11s  %-6s %6.2f %7llu %8s %8s %8s %5llu\n", chain.name.c_str(),
                chain.committed_per_second, chain.tps_peak, latency_ms_text(chain.commit_latency_us_p99).c_str(),
                chain.tier.c_str(), chain.slice_cores, (unsigned long long)chain.tier_changes,
                seconds_text(chain.seconds_in_tier[0]).c_str(), seconds_text(chain.seconds_in_tier[1]).c_str(),
                seconds_text(chain.seconds_in_tier[2]).c_str(), (unsigned long long)chain.shard_moves);
  }
}

// One block per second while the run lasts: each client chain's committed tx/s over that
// second, its tier (with '*' when it changed that second), its slice and commit p99.
void print_progress(const node::RunTimeline& timeline) {
  const node::TimelineSample& sample = timeline.samples.back();
  const node::TimelineSample* previous =
      timeline.samples.size() > 1 ? &timeline.samples[timeline.samples.size() - 2] : nullptr;
  for (size_t chain = 0; chain < timeline.chains.size(); ++chain) {
    const node::ChainSample& figures = sample.chains[chain];
    char time_text[16] = "";
    if (chain == 0) std::snprintf(time_text, sizeof time_text, "%5.1fs", sample.time_s);
    std::string tier = "-";
    if (timeline.balancer) {
      tier = balance::tier_name(figures.tier);
      if (previous != nullptr && previous->chains[chain].tier != figures.tier) tier += "*";
    }
    std::printf("%6s  %-14s %9.0f tx/s  %-7s slice %5.2f  p99 %9s\n", time_text, timeline.chains[chain].c_str(),
                figures.tps, tier.c_str(), figures.slice_cores, latency_ms_text(figures.commit_latency_us_p99).c_str());
  }
  std::fflush(stdout);
}

void print_report(const node::LedgerReport& report) {
  std::string stalled;
  if (report.commits_stalled > 0) {
    stalled = " (" + std::to_string(report.commits_stalled) + " waited over " +
              std::to_string(report.commit_stall_warn_ms) + " ms in the kernel)";
  }
  std::printf("ledger: %.1f s, persist %s, fsync %s, %llu group commits%s, %llu blocks recovered at start%s\n",
              report.duration_s, report.persist_backend.c_str(), report.fsync.c_str(),
              (unsigned long long)report.commits, stalled.c_str(), (unsigned long long)report.blocks_recovered,
              report.stopped_by_signal ? " (stopped by signal)" : "");
  std::printf("snapshots: %llu written (slowest %llu us), %llu skipped while one was being written; %llu log segments "
              "dropped\n",
              (unsigned long long)report.snapshots_written, (unsigned long long)report.snapshot_write_us_max,
              (unsigned long long)report.snapshots_skipped, (unsigned long long)report.segments_dropped);
  std::printf("log segments: %llu new ones were dropped files reused, %llu preallocated, %llu created empty (spare not "
              "ready or not written)\n",
              (unsigned long long)report.segments_recycled, (unsigned long long)report.segments_preallocated,
              (unsigned long long)report.segments_unprepared);
  const node::ComputeReport& compute = report.compute;
  std::printf("compute: %llu results (%.0f/s, %llu failed), dispatch p50 %llu us p99 %llu us; %llu retried, %llu "
              "expired, %llu re-sent after a pool died, %llu stale answers dropped, %llu spilled to another node\n",
              (unsigned long long)compute.results_returned,
              report.duration_s > 0 ? double(compute.results_returned) / report.duration_s : 0.0,
              (unsigned long long)compute.results_failed, (unsigned long long)compute.dispatch_latency_us_p50,
              (unsigned long long)compute.dispatch_latency_us_p99, (unsigned long long)compute.tasks_retried,
              (unsigned long long)compute.tasks_expired, (unsigned long long)compute.tasks_redispatched,
              (unsigned long long)compute.completions_stale, (unsigned long long)compute.tasks_spilled);
  std::printf("pools: %u processes, %llu restarts, %u quarantined; ledgers: %llu tasks issued, %llu succeeded, %llu "
              "failed, %llu pending\n",
              compute.pools, (unsigned long long)compute.pool_restarts, compute.pools_quarantined,
              (unsigned long long)compute.ledger_tasks_issued, (unsigned long long)compute.ledger_tasks_succeeded,
              (unsigned long long)compute.ledger_tasks_failed, (unsigned long long)compute.ledger_tasks_pending);
  if (compute.flows_started != 0)
    std::printf("flows: %llu started, %llu succeeded, %llu failed, %llu cancelled, %llu live; jobs: %llu dispatched, "
                "%llu succeeded, %llu failed, %llu running\n",
                (unsigned long long)compute.flows_started, (unsigned long long)compute.flows_succeeded,
                (unsigned long long)compute.flows_failed, (unsigned long long)compute.flows_cancelled,
                (unsigned long long)compute.flows_live, (unsigned long long)compute.flow_jobs_dispatched,
                (unsigned long long)compute.flow_jobs_succeeded, (unsigned long long)compute.flow_jobs_failed,
                (unsigned long long)compute.flow_jobs_running);
  if (compute.run_flows_started != 0 || compute.run_flow_jobs_ended != 0)
    std::printf("flows this run: %llu started, %llu ended (%.0f/s); %llu flow jobs ended (%.0f/s), step ready -> "
                "dispatched p50 %llu us p99 %llu us\n",
                (unsigned long long)compute.run_flows_started, (unsigned long long)compute.run_flows_ended,
                compute.flows_ended_per_second, (unsigned long long)compute.run_flow_jobs_ended,
                compute.flow_jobs_per_second, (unsigned long long)compute.ready_to_dispatch_us_p50,
                (unsigned long long)compute.ready_to_dispatch_us_p99);
  for (const node::ProductProgress& product : report.products)
    std::printf("product %s (priority %u, running_max %u): flows %llu live, %llu succeeded, %llu failed, %llu "
                "cancelled; jobs %llu queued, %llu running\n",
                product.name.c_str(), product.priority, product.running_max, (unsigned long long)product.flows_live,
                (unsigned long long)product.flows_succeeded, (unsigned long long)product.flows_failed,
                (unsigned long long)product.flows_cancelled, (unsigned long long)product.jobs_queued,
                (unsigned long long)product.jobs_running);
  if (compute.timers != 0)
    std::printf("timers: %llu, %llu flows started by their fires, %llu fires dropped missed times\n",
                (unsigned long long)compute.timers, (unsigned long long)compute.timer_flows_started,
                (unsigned long long)compute.timer_misfires_dropped);
  if (report.balancer.ran)
    std::printf("balancer: %llu windows, %llu shard moves, %llu weight changes, %llu records on the system chain%s\n",
                (unsigned long long)report.balancer.windows, (unsigned long long)report.balancer.moves_requested,
                (unsigned long long)report.balancer.weight_changes_requested,
                (unsigned long long)report.balancer.records_ordered,
                report.balancer.windows_held ? " (some decisions held while records waited)" : "");
  std::printf("%-16s %6s %10s %12s %10s %12s %12s %12s %12s  %-6s %6s %5s\n", "chain", "shards", "height", "committed",
              "tx/s", "commit mean", "commit max", "client p50", "client p99", "tier", "slice", "moves");
  for (const node::ChainReport& chain : report.chains)
    std::printf("%-16s %6u %10llu %12llu %10.0f %10.0fus %10lluus %10lluus %10lluus  %-6s %6.2f %5llu\n", chain.name.c_str(),
                chain.shards, (unsigned long long)chain.height_max, (unsigned long long)chain.committed_txs,
                chain.committed_per_second, chain.commit_latency_us_mean,
                (unsigned long long)chain.commit_latency_us_max, (unsigned long long)chain.client_latency_us_p50,
                (unsigned long long)chain.client_latency_us_p99, chain.tier.c_str(), chain.slice_cores,
                (unsigned long long)chain.shard_moves);
}

// The end of every "input too large" message.
std::string input_limit_text() {
  return "more than compute_input_bytes_max (" + std::to_string(ledger::compute_input_bytes_max) + " bytes)";
}

// Hex digits (either case, no separators) as bytes.
Result<std::vector<std::byte>> decode_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return make_error("--input-hex", "odd number of hex digits (" + std::to_string(hex.size()) + ")");
  if (hex.size() / 2 > ledger::compute_input_bytes_max)
    return make_error("--input-hex", std::to_string(hex.size() / 2) + " bytes, " + input_limit_text());
  auto value_of = [](char digit) {
    if (digit >= '0' && digit <= '9') return digit - '0';
    if (digit >= 'a' && digit <= 'f') return digit - 'a' + 10;
    if (digit >= 'A' && digit <= 'F') return digit - 'A' + 10;
    return -1;
  };
  std::vector<std::byte> bytes(hex.size() / 2);
  for (size_t position = 0; position < hex.size(); ++position) {
    int value = value_of(hex[position]);
    if (value < 0) {
      // Built by appending: GCC 12 warns (-Wrestrict, wrongly) about "'" + std::string.
      std::string reason(1, '\'');
      reason += hex[position];
      reason += "' at position " + std::to_string(position + 1) + " is not a hex digit";
      return make_error("--input-hex", reason);
    }
    bytes[position / 2] |= std::byte(position % 2 == 0 ? value << 4 : value);
  }
  return bytes;
}

// The whole file, refusing one over compute_input_bytes_max. Reads at most one byte past
// the limit, so a huge file (or an endless one, like /dev/zero) costs nothing.
Result<std::vector<std::byte>> read_input_file(const std::string& path) {
  auto failed = [&](int error_number) {
    return make_error("--input-file", "cannot read '" + path + "': " + persist::errno_text(error_number));
  };
  persist::UniqueFd file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file.valid()) return failed(errno);
  std::vector<std::byte> bytes(ledger::compute_input_bytes_max + 1);
  size_t filled = 0;
  while (filled < bytes.size()) {
    ssize_t got = read(file.get(), bytes.data() + filled, bytes.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return failed(errno);
    if (got == 0) break;
    filled += size_t(got);
  }
  if (filled > ledger::compute_input_bytes_max)
    return make_error("--input-file", "'" + path + "' holds " + input_limit_text());
  bytes.resize(filled);
  return bytes;
}

// The input of a compute request, from whichever one of --input, --input-file and
// --input-hex was given.
Result<std::vector<std::byte>> compute_input(const SubmitRequest& request) {
  int given = request.input_text.has_value() + request.input_file.has_value() + request.input_hex.has_value();
  if (given == 0) return make_error("--input", "missing: give one of --input, --input-file and --input-hex");
  if (given > 1) return make_error("--input", "give only one of --input, --input-file and --input-hex");
  if (request.input_file) return read_input_file(*request.input_file);
  if (request.input_hex) return decode_hex(*request.input_hex);
  const std::string& text = *request.input_text;
  if (text.size() > ledger::compute_input_bytes_max)
    return make_error("--input", std::to_string(text.size()) + " bytes, " + input_limit_text());
  auto bytes = std::as_bytes(std::span(text.data(), text.size()));
  return std::vector<std::byte>(bytes.begin(), bytes.end());
}

Result<std::vector<std::byte>> build_compute_request(const SubmitRequest& request, uint64_t nonce) {
  if (!ledger::is_compute_type_name(request.compute_type))
    return make_error("--type", "must be 1 to " + std::to_string(ledger::compute_type_bytes_max) +
                                    " characters of [a-z0-9_], got '" + request.compute_type + "'");
  Result<std::vector<std::byte>> input = compute_input(request);
  if (!input) return input.error();
  return ledger::encode_compute_request(nonce, request.subject, request.compute_type, *input);
}

// One line (or one JSON object) for `keel submit`'s receipt; compute_shard is set for a
// compute request.
void print_receipt(const SubmitRequest& request, const client::ReceiptMessage& receipt,
                   std::optional<uint32_t> compute_shard) {
  ledger::Hash32 hash;
  std::memcpy(hash.bytes.data(), receipt.tx_hash, 32);
  auto status = ledger::TxStatus(receipt.status);
  // Refused before ordering (height 0), a request is in no block and names no task.
  bool ordered_compute = compute_shard.has_value() && receipt.height != 0;
  if (request.json) {
    nlohmann::json json = {{"tx_hash", ledger::to_hex(hash)},
                           {"height", receipt.height},
                           {"status", std::string(ledger::status_text(status))},
                           {"applied", status == ledger::TxStatus::applied}};
    if (ordered_compute) {
      json["shard"] = *compute_shard;
      json["index"] = receipt.index;
      json["task"] = std::to_string(receipt.height) + "." + std::to_string(receipt.index);
    }
    std::printf("%s\n", json.dump().c_str());
    return;
  }
  std::printf("%s %s: %s (block %llu", request.kind.c_str(), ledger::to_hex(hash).c_str(),
              std::string(ledger::status_text(status)).c_str(), (unsigned long long)receipt.height);
  if (ordered_compute) std::printf(" on shard %u", *compute_shard);
  std::printf(")\n");
  if (ordered_compute && status == ledger::TxStatus::applied)
    std::printf("task %llu.%u on shard %u: its result is an entry of a compute_results in a later block of that shard\n",
                (unsigned long long)receipt.height, receipt.index, *compute_shard);
}

Result<std::vector<std::byte>> build_transaction(const SubmitRequest& request, uint64_t nonce) {
  auto bytes = [](const std::string& text) { return std::as_bytes(std::span(text.data(), text.size())); };
  if (request.kind == "create-account")
    return ledger::encode_create_account(nonce, request.account, request.balance,
                                         request.overdraft ? ledger::account_flag_allow_overdraft : 0);
  if (request.kind == "transfer") return ledger::encode_transfer(nonce, request.from, request.to, request.amount);
  if (request.kind == "put") {
    if (request.key.empty() || request.key.size() > ledger::put_key_bytes_max)
      return make_error("--key", "must be 1 to " + std::to_string(ledger::put_key_bytes_max) + " bytes");
    if (request.value.size() > ledger::put_value_bytes_max)
      return make_error("--value", "must be at most " + std::to_string(ledger::put_value_bytes_max) + " bytes");
    return ledger::encode_put(nonce, bytes(request.key), bytes(request.value));
  }
  if (request.kind == "compute") return build_compute_request(request, nonce);
  return make_error("keel submit", "unknown transaction kind '" + request.kind + "'");
}

nlohmann::json verify_json(const node::VerifyReport& report, const std::string& data_dir) {
  nlohmann::json chains = nlohmann::json::array();
  for (const node::ChainVerdict& chain : report.chains) {
    nlohmann::json shards = nlohmann::json::array();
    for (const node::ShardVerdict& shard : chain.shards)
      shards.push_back({{"shard", shard.shard}, {"height", shard.height}, {"blocks", shard.blocks},
                        {"transactions", shard.transactions}, {"last_block_hash", shard.last_block_hash},
                        {"torn_tail", shard.torn_tail}, {"snapshots", shard.snapshots},
                        {"start_height", shard.start_height}, {"snapshots_matched", shard.snapshots_matched}});
    chains.push_back({{"name", chain.name}, {"ok", chain.problems.empty()}, {"problems", chain.problems},
                      {"opened_total", chain.opened_total}, {"balance_total", chain.balance_total},
                      {"credits_in_flight", chain.credits_in_flight}, {"shards", shards}});
  }
  return {{"data_dir", data_dir}, {"ok", report.ok()}, {"chains", chains}};
}

// A line per chain (and its notes and problems), then the one-line verdict.
void print_verify(const node::VerifyReport& report, const std::string& data_dir) {
  size_t failed = 0;
  for (const node::ChainVerdict& chain : report.chains) {
    uint64_t blocks = 0, transactions = 0, snapshots_matched = 0;
    for (const node::ShardVerdict& shard : chain.shards) {
      blocks += shard.blocks;
      transactions += shard.transactions;
      snapshots_matched += shard.snapshots_matched;
    }
    failed += !chain.problems.empty();
    std::printf("%-16s %s: %zu shard(s), %llu blocks and %llu transactions replayed, %llu later snapshot(s) matched, "
                "balances %lld + in flight %lld = openings %lld\n",
                chain.name.c_str(), chain.problems.empty() ? "ok" : "FAILED", chain.shards.size(),
                (unsigned long long)blocks, (unsigned long long)transactions, (unsigned long long)snapshots_matched,
                (long long)chain.balance_total, (long long)chain.credits_in_flight, (long long)chain.opened_total);
    for (const node::ShardVerdict& shard : chain.shards)
      if (shard.start_height > 0)
        std::printf("  shard %u: replayed from its snapshot at height %llu to height %llu\n", shard.shard,
                    (unsigned long long)shard.start_height, (unsigned long long)shard.height);
    for (const node::ShardVerdict& shard : chain.shards)
      if (!shard.torn_tail.empty()) std::printf("  note: shard %u has a torn tail (cut at the next start): %s\n", shard.shard, shard.torn_tail.c_str());
    for (const std::string& problem : chain.problems) std::printf("  problem: %s\n", problem.c_str());
  }
  if (report.chains.empty()) std::printf("%s: no chains\n", data_dir.c_str());
  else if (failed == 0) std::printf("verify: %s: all %zu chains ok\n", data_dir.c_str(), report.chains.size());
  else std::printf("verify: %s: %zu of %zu chains FAILED\n", data_dir.c_str(), failed, report.chains.size());
}

// "20250314-093000": a run folder's name, from the UTC time the run started.
std::string utc_stamp(std::time_t when) {
  std::tm utc{};
  gmtime_r(&when, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d-%H%M%S", &utc);
  return text;
}

Result<void> write_text_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (file) file.write(text.data(), std::streamsize(text.size()));
  if (file) file.close();
  if (!file) return make_error(path.string(), std::string("cannot write: ") + std::strerror(errno));
  return {};
}

// The run's folder: --out as given, else runs/<UTC start> beside the data directory (a
// second run in the same second gets "-2", and so on). Writes report.json, timeline.csv and
// chart.svg into it; returns its path.
Result<std::string> write_run_folder(const config::PerfConfig& config, const std::string& out_dir,
                                     const std::string& started_utc, const node::LedgerReport& report,
                                     const nlohmann::json& json_report) {
  namespace fs = std::filesystem;
  fs::path folder = out_dir;
  if (folder.empty()) {
    fs::path runs = fs::path(config.ledger.data_dir).parent_path() / "runs";
    folder = runs / started_utc;
    for (int suffix = 2; fs::exists(folder); ++suffix) folder = runs / (started_utc + "-" + std::to_string(suffix));
  }
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) return make_error(folder.string(), "cannot create the run folder: " + error.message());
  nlohmann::json stored = json_report;
  stored["run_dir"] = folder.string();
  if (Result<void> written = write_text_file(folder / "report.json", stored.dump(2) + "\n"); !written)
    return written.error();
  if (Result<void> written = write_text_file(folder / "timeline.csv", node::timeline_csv(report.timeline)); !written)
    return written.error();
  if (Result<void> written = write_text_file(folder / "chart.svg", node::timeline_svg(report.timeline)); !written)
    return written.error();
  return folder.string();
}

}  // namespace

int run_ledger_command(const config::PerfConfig& config, const numa::Topology& topology, const numa::Plan& plan,
                       const std::string& config_path, uint64_t duration_ms, bool json, const RunOutputs& outputs) {
  std::string started_utc = utc_stamp(std::time(nullptr));
  node::LedgerRunOptions options{duration_ms, "/proc/self/exe", config_path};
  options.companions.push_back(metrics_companion(config, plan));
  if (!json) options.on_sample = print_progress;  // with --json, stdout is the one JSON object
  Result<node::LedgerReport> report = node::run_ledger(config, topology, plan, options);
  if (!report) return fail(report.error());
  nlohmann::json json_report = report_json(*report);
  std::optional<node::VerifyReport> verified;
  if (outputs.verify) {
    Result<node::VerifyReport> checked = node::verify_data_dir(config.ledger.data_dir);
    if (!checked) return fail(checked.error());
    verified = std::move(*checked);
    json_report["verify"] = verify_json(*verified, config.ledger.data_dir);
  }
  Result<std::string> folder = write_run_folder(config, outputs.out_dir, started_utc, *report, json_report);
  if (folder) json_report["run_dir"] = *folder;
  if (json) {
    std::printf("%s\n", json_report.dump().c_str());
  } else {
    for (const std::string& note : report->notes) std::printf("note: %s\n", note.c_str());
    print_report(*report);
    print_chain_summary(*report);
    if (folder) std::printf("\nrun folder: %s (report.json, timeline.csv, chart.svg)\n", folder->c_str());
    if (verified) {
      std::printf("\nkeel verify --data-dir %s\n", config.ledger.data_dir.c_str());
      print_verify(*verified, config.ledger.data_dir);
    }
  }
  std::fflush(stdout);
  if (!folder) return fail(folder.error());
  return verified && !verified->ok() ? 1 : 0;
}

int load_command(const std::string& config_path, const std::string& segment, uint32_t client_index,
                 uint64_t duration_ms) {
  Result<config::PerfConfig> config = config::load_perf_config(config_path);
  if (!config) return fail(config.error());
  return node::run_load_process(*config, {segment, client_index, duration_ms});
}

int verify_command(const std::string& data_dir, bool json) {
  Result<node::VerifyReport> report = node::verify_data_dir(data_dir);
  if (!report) return fail(report.error());
  if (json) std::printf("%s\n", verify_json(*report, data_dir).dump().c_str());
  else print_verify(*report, data_dir);
  return report->ok() ? 0 : 1;
}

int submit_command(const SubmitRequest& request) {
  // The arguments first: a bad one is the user's to fix whether or not an engine runs.
  uint64_t nonce = request.nonce != 0 ? request.nonce : shm::monotonic_ns();
  Result<std::vector<std::byte>> tx = build_transaction(request, nonce);
  if (!tx) return fail(tx.error());
  if (!ledger::is_client_id(request.client_id))
    return fail(make_error("--client-id", "'" + request.client_id + "' must be 1 to 32 characters of [a-z0-9_.-]"));
  Result<std::unique_ptr<client::Client>> client = client::Client::attach("keel-" + request.instance, request.client_id);
  if (!client) return fail(client.error());
  Result<uint32_t> chain = (*client)->chain_index(request.chain);
  if (!chain) return fail(chain.error());
  uint64_t deadline_ns = shm::monotonic_ns() + uint64_t(request.timeout_ms) * 1'000'000;
  for (;;) {
    Result<bool> queued = (*client)->try_submit(*chain, 1, *tx);
    if (!queued) return fail(queued.error());
    if (*queued) break;
    if (shm::monotonic_ns() > deadline_ns) return fail(make_error("keel submit", "the engine did not take the transaction in time"));
  }
  client::ReceiptMessage receipt{};
  while ((*client)->wait_receipts(std::span(&receipt, 1), 100) == 0) {
    if (shm::monotonic_ns() > deadline_ns || !(*client)->engine_alive())
      return fail(make_error("keel submit", "no receipt within " + std::to_string(request.timeout_ms) + " ms"));
  }
  // A compute request's shard follows from its subject; with the height and the request's
  // index in the block (not in the receipt) it names the task.
  std::optional<uint32_t> compute_shard;
  if (request.kind == "compute")
    compute_shard = ledger::shard_of_account(request.subject, (*client)->shard_count(*chain));
  print_receipt(request, receipt, compute_shard);
  return ledger::TxStatus(receipt.status) == ledger::TxStatus::applied ? 0 : 3;
}

}  // namespace keel::cli
