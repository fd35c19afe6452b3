#include "engine/cli/flow_commands.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>

#include "engine/client/client.h"
#include "engine/config/perf_config.h"
#include "engine/flow/flow_model.h"
#include "engine/ledger/transaction.h"
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
  Result<std::unique_ptr<client::Client>> client = client::Client::attach("keel-" + request.instance);
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

}  // namespace keel::cli
