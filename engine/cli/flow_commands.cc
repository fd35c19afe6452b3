#include "engine/cli/flow_commands.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/client/client.h"
#include "engine/config/perf_config.h"
#include "engine/flow/flow_model.h"
#include "engine/ledger/transaction.h"
#include "engine/node/verify.h"
#include "error/result.h"
#include "shm/ring.h"

namespace keel::cli {

namespace {

int fail(const Error& error) {
  std::fprintf(stderr, "keel: %s\n", error.message.c_str());
  return 2;
}

// "name=value" split at the first '='.
Result<std::pair<std::string, std::string>> split_argument(const std::string& option, const std::string& text) {
  size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0)
    return make_error(option, "expected name=value, got '" + text + "'");
  return std::pair{text.substr(0, equals), text.substr(equals + 1)};
}

Result<std::string> from_hex(const std::string& option, const std::string& hex) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return make_error(option, "an odd number of hex digits");
  std::string bytes;
  for (size_t at = 0; at < hex.size(); at += 2) {
    int high = digit(hex[at]), low = digit(hex[at + 1]);
    if (high < 0 || low < 0) return make_error(option, "not hex: '" + hex + "'");
    bytes.push_back(char(high * 16 + low));
  }
  return bytes;
}

// Every --arg*, checked: names by the contract rule, each once, the whole under the
// transaction's bound.
Result<std::vector<std::byte>> flow_arguments(const FlowRequest& request) {
  std::map<std::string, std::string> args;
  auto add = [&](const std::string& option, const std::string& name, std::string value) -> Result<void> {
    if (!ledger::is_compute_type_name(name))
      return make_error(option, "argument name '" + name + "' must be 1 to 32 characters of [a-z0-9_]");
    if (!args.emplace(name, std::move(value)).second) return make_error(option, "argument '" + name + "' given twice");
    return {};
  };
  for (const std::string& text : request.args_text) {
    Result<std::pair<std::string, std::string>> pair = split_argument("--arg", text);
    if (!pair) return pair.error();
    if (Result<void> added = add("--arg", pair->first, pair->second); !added) return added.error();
  }
  for (const std::string& text : request.args_file) {
    Result<std::pair<std::string, std::string>> pair = split_argument("--arg-file", text);
    if (!pair) return pair.error();
    std::ifstream in(pair->second, std::ios::binary);
    if (!in) return make_error("--arg-file", "cannot read '" + pair->second + "'");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.size() > ledger::flow_args_bytes_max)
      return make_error("--arg-file", "'" + pair->second + "' is over " + std::to_string(ledger::flow_args_bytes_max) + " bytes");
    if (Result<void> added = add("--arg-file", pair->first, std::move(bytes)); !added) return added.error();
  }
  for (const std::string& text : request.args_hex) {
    Result<std::pair<std::string, std::string>> pair = split_argument("--arg-hex", text);
    if (!pair) return pair.error();
    Result<std::string> bytes = from_hex("--arg-hex", pair->second);
    if (!bytes) return bytes.error();
    if (Result<void> added = add("--arg-hex", pair->first, std::move(*bytes)); !added) return added.error();
  }
  std::vector<std::byte> encoded = ledger::encode_flow_args(args);
  if (encoded.size() > ledger::flow_args_bytes_max)
    return make_error("--arg", "the arguments take " + std::to_string(encoded.size()) + " bytes, at most " +
                                   std::to_string(ledger::flow_args_bytes_max));
  return encoded;
}

// The transactions to send: a deploy goes to every shard of the chain.
Result<std::vector<std::vector<std::byte>>> flow_transactions(const FlowRequest& request, uint32_t shard_count,
                                                              uint64_t nonce) {
  std::vector<std::vector<std::byte>> txs;
  if (request.action == "deploy") {
    flow::KnownComputeTypes known;
    if (!request.config_file.empty()) {
      Result<config::PerfConfig> config = config::load_perf_config(request.config_file);
      if (!config) return config.error();
      known.emplace();
      for (const config::PoolConfig& pool : config->pools) known->insert(pool.compute_types.begin(), pool.compute_types.end());
    }
    Result<flow::FlowModel> model = flow::load_flow_model(request.model_file, known);
    if (!model) return model.error();
    if (!known)
      std::printf("note: compute types not checked against any pool (give --config to check them)\n");
    std::vector<std::byte> bytes = flow::encode_flow_model(*model);
    for (uint32_t shard = 0; shard < shard_count; ++shard) txs.push_back(ledger::encode_flow_deploy(nonce + shard, shard, bytes));
    return txs;
  }
  if (request.key.empty() || request.key.size() > ledger::flow_key_bytes_max)
    return make_error("--key", "must be 1 to " + std::to_string(ledger::flow_key_bytes_max) + " bytes");
  if (request.action == "start") {
    if (!ledger::is_compute_type_name(request.contract))
      return make_error("contract", "'" + request.contract + "' must be 1 to 32 characters of [a-z0-9_]");
    Result<std::vector<std::byte>> args = flow_arguments(request);
    if (!args) return args.error();
    txs.push_back(ledger::encode_flow_start(nonce, request.contract, request.version, request.key, *args));
    return txs;
  }
  ledger::FlowAction action = request.action == "pause"    ? ledger::FlowAction::pause
                              : request.action == "resume" ? ledger::FlowAction::resume
                                                           : ledger::FlowAction::cancel;
  txs.push_back(ledger::encode_flow_control(nonce, action, request.key));
  return txs;
}

}  // namespace

int flow_command(const FlowRequest& request) {
  Result<std::unique_ptr<client::Client>> client = client::Client::attach("keel-" + request.instance, request.client_id);
  if (!client) return fail(client.error());
  Result<uint32_t> chain = (*client)->chain_index(request.chain);
  if (!chain) return fail(chain.error());
  uint64_t nonce = shm::monotonic_ns();
  Result<std::vector<std::vector<std::byte>>> txs = flow_transactions(request, (*client)->shard_count(*chain), nonce);
  if (!txs) return fail(txs.error());
  uint64_t deadline_ns = shm::monotonic_ns() + uint64_t(request.timeout_ms) * 1'000'000;
  for (size_t index = 0; index < txs->size(); ++index) {
    for (;;) {
      Result<bool> queued = (*client)->try_submit(*chain, index, (*txs)[index]);
      if (!queued) return fail(queued.error());
      if (*queued) break;
      if (shm::monotonic_ns() > deadline_ns) return fail(make_error("keel flow", "the engine did not take the transaction in time"));
    }
  }
  int exit_status = 0;
  for (size_t answered = 0; answered < txs->size();) {
    client::ReceiptMessage receipt{};
    if ((*client)->wait_receipts(std::span(&receipt, 1), 100) == 0) {
      if (shm::monotonic_ns() > deadline_ns || !(*client)->engine_alive())
        return fail(make_error("keel flow", "no receipt within " + std::to_string(request.timeout_ms) + " ms"));
      continue;
    }
    ++answered;
    ledger::TxStatus status = ledger::TxStatus(receipt.status);
    bool stands = status == ledger::TxStatus::applied || status == ledger::TxStatus::flow_exists;
    std::string what = request.action == "deploy" ? "shard " + std::to_string(receipt.request_id) : request.key;
    std::printf("%s %s: %s (block %llu)\n", request.action.c_str(), what.c_str(),
                std::string(ledger::status_text(status)).c_str(), (unsigned long long)receipt.height);
    if (!stands) exit_status = 3;
  }
  return exit_status;
}

namespace {

nlohmann::json summary_json(const flow::FlowTable& flows, const flow::FlowSummary& summary, uint32_t shard) {
  const flow::FlowPlan& plan = flows.plan(summary.plan);
  nlohmann::json json = {{"key", summary.key},
                         {"flow", summary.flow},
                         {"shard", shard},
                         {"status", flow::flow_status_text(summary.status)},
                         {"contract", plan.contract},
                         {"version", plan.version},
                         {"product", plan.product},
                         {"jobs_running", summary.jobs_running},
                         {"jobs_succeeded", summary.jobs_succeeded},
                         {"jobs_failed", summary.jobs_failed}};
  if (!summary.steps.empty()) {
    const flow::FlowModel& model = flows.model(summary.plan);
    nlohmann::json steps = nlohmann::json::object();
    for (size_t step = 0; step < summary.steps.size(); ++step)
      steps[model.steps[step].id] = flow::job_status_text(summary.steps[step]);
    json["steps"] = steps;
  }
  return json;
}

std::string summary_line(const nlohmann::json& flow) {
  std::string line = flow["key"].get<std::string>() + ": " + flow["status"].get<std::string>() + ", " +
                     flow["contract"].get<std::string>() + " v" + std::to_string(flow["version"].get<uint32_t>()) +
                     ", jobs " + std::to_string(flow["jobs_succeeded"].get<uint64_t>()) + " succeeded, " +
                     std::to_string(flow["jobs_failed"].get<uint64_t>()) + " failed, " +
                     std::to_string(flow["jobs_running"].get<uint32_t>()) + " running";
  return line;
}

}  // namespace

int flow_query_command(const FlowQuery& query) {
  Result<config::PerfConfig> config = config::load_perf_config(query.config_file);
  if (!config) return fail(config.error());
  const config::ChainConfig* chain = nullptr;
  for (const config::ChainConfig& candidate : config->chains)
    if (candidate.name == query.chain) chain = &candidate;
  if (chain == nullptr) return fail(make_error(query.config_file, "no chain '" + query.chain + "' in [[chain]]"));
  auto read = [&](uint32_t shard) {
    return node::read_shard_state(config->ledger.data_dir, chain->name, shard, chain->shards);
  };
  if (query.action == "status") {
    std::span<const std::byte> key = std::as_bytes(std::span(query.key));
    uint32_t shard = ledger::flow_key_home_shard(key, chain->shards);
    Result<ledger::ShardState> state = read(shard);
    if (!state) return fail(state.error());
    std::optional<uint64_t> flow_id = state->flows.flow_of_key(query.key);
    if (!flow_id) {
      std::fprintf(stderr, "keel: flow '%s': no such flow on chain %s (shard %u, height %llu)\n", query.key.c_str(),
                   chain->name.c_str(), shard, (unsigned long long)state->height);
      return 3;
    }
    nlohmann::json flow = summary_json(state->flows, *state->flows.summary(*flow_id), shard);
    flow["height"] = state->height;
    if (query.json) {
      std::printf("%s\n", flow.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    std::printf("%s\n", summary_line(flow).c_str());
    std::printf("  product %s, chain %s shard %u, flow id %llu, as of block %llu in the log\n",
                flow["product"].get<std::string>().c_str(), chain->name.c_str(), shard,
                (unsigned long long)flow["flow"].get<uint64_t>(), (unsigned long long)state->height);
    if (flow.contains("steps"))
      for (const auto& [step, status] : flow["steps"].items())
        std::printf("  step %s: %s\n", step.c_str(), status.get<std::string>().c_str());
    return 0;
  }
  // list
  nlohmann::json flows = nlohmann::json::array();
  nlohmann::json shards = nlohmann::json::array();
  std::map<std::string, uint64_t> by_status;
  uint64_t total = 0;
  for (uint32_t shard = 0; shard < chain->shards; ++shard) {
    Result<ledger::ShardState> state = read(shard);
    if (!state) return fail(state.error());
    const flow::FlowTable& table = state->flows;
    // A product no plan or product_set has named yet has the defaults.
    flow::ProductSettings settings = table.product_settings(query.product).value_or(flow::ProductSettings{});
    shards.push_back({{"shard", shard},
                      {"height", state->height},
                      {"priority", settings.priority},
                      {"running_max", settings.running_max},
                      {"jobs_queued", table.product_queued(query.product)},
                      {"jobs_running", table.product_running(query.product)}});
    for (uint64_t flow_id : table.flow_ids()) {
      std::optional<flow::FlowSummary> summary = table.summary(flow_id);
      if (!summary || table.plan(summary->plan).product != query.product) continue;
      ++total;
      ++by_status[std::string(flow::flow_status_text(summary->status))];
      flows.push_back(summary_json(table, *summary, shard));
    }
  }
  // Newest first: flow ids grow with each start on a shard.
  std::stable_sort(flows.begin(), flows.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a["flow"].get<uint64_t>() > b["flow"].get<uint64_t>();
  });
  if (flows.size() > query.limit) flows.erase(flows.begin() + query.limit, flows.end());
  if (query.json) {
    nlohmann::json out = {{"chain", chain->name}, {"product", query.product}, {"flows_total", total},
                          {"by_status", by_status},  {"shards", shards},         {"flows", flows}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("product %s on chain %s: %llu flows", query.product.c_str(), chain->name.c_str(), (unsigned long long)total);
  for (const auto& [status, count] : by_status) std::printf(", %llu %s", (unsigned long long)count, status.c_str());
  std::printf("\n");
  for (const nlohmann::json& shard : shards)
    std::printf("  shard %u (block %llu): priority %u, running_max %u; %llu jobs queued, %u running\n",
                shard["shard"].get<uint32_t>(), (unsigned long long)shard["height"].get<uint64_t>(),
                shard["priority"].get<uint32_t>(), shard["running_max"].get<uint32_t>(),
                (unsigned long long)shard["jobs_queued"].get<uint64_t>(), shard["jobs_running"].get<uint32_t>());
  for (const nlohmann::json& flow : flows) std::printf("  %s\n", summary_line(flow).c_str());
  if (total > flows.size()) std::printf("  ... %llu more (--limit)\n", (unsigned long long)(total - flows.size()));
  return 0;
}

}  // namespace keel::cli
