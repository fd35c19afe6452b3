#include "engine/cli/credit_commands.h"

#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/client/client.h"
#include "engine/config/perf_config.h"
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

Result<void> check_client_id(const std::string& option, const std::string& id) {
  if (ledger::is_client_id(id)) return {};
  return make_error(option, "'" + id + "' must be 1 to " + std::to_string(ledger::client_id_bytes_max) +
                                " characters of [a-z0-9_.-]");
}

// The amount each shard gets: all of it on --shard, else an even split with the remainder
// on the lowest shards. Shards whose share is 0 are left out.
std::vector<std::pair<uint32_t, uint64_t>> grant_shares(const CreditsRequest& request, uint32_t shard_count) {
  if (request.shard) return {{*request.shard, request.amount}};
  std::vector<std::pair<uint32_t, uint64_t>> shares;
  uint64_t each = request.amount / shard_count, remainder = request.amount % shard_count;
  for (uint32_t shard = 0; shard < shard_count; ++shard) {
    uint64_t share = each + (shard < remainder ? 1 : 0);
    if (share != 0) shares.push_back({shard, share});
  }
  return shares;
}

int grant(const CreditsRequest& request, const config::PerfConfig& config) {
  if (Result<void> checked = check_client_id("--as", request.as); !checked) return fail(checked.error());
  if (request.amount == 0) return fail(make_error("--amount", "must be at least 1"));
  Result<std::unique_ptr<client::Client>> client =
      client::Client::attach("keel-" + config.engine.instance, request.as);
  if (!client) return fail(client.error());
  Result<uint32_t> chain = (*client)->chain_index(request.chain);
  if (!chain) return fail(chain.error());
  uint32_t shard_count = (*client)->shard_count(*chain);
  if (request.shard && *request.shard >= shard_count)
    return fail(make_error("--shard", std::to_string(*request.shard) + ": chain " + request.chain + " has " +
                                          std::to_string(shard_count) + " shards (0 to " +
                                          std::to_string(shard_count - 1) + ")"));
  std::vector<std::pair<uint32_t, uint64_t>> shares = grant_shares(request, shard_count);
  uint64_t nonce = shm::monotonic_ns();
  uint64_t deadline_ns = shm::monotonic_ns() + uint64_t(request.timeout_ms) * 1'000'000;
  for (size_t index = 0; index < shares.size(); ++index) {
    std::vector<std::byte> tx =
        ledger::encode_credit_grant(nonce + index, shares[index].first, request.client, shares[index].second);
    for (;;) {
      Result<bool> queued = (*client)->try_submit(*chain, index, tx);
      if (!queued) return fail(queued.error());
      if (*queued) break;
      if (shm::monotonic_ns() > deadline_ns)
        return fail(make_error("keel credits grant", "the engine did not take the grant in time"));
    }
  }
  std::vector<client::ReceiptMessage> receipts(shares.size());
  for (size_t answered = 0; answered < shares.size();) {
    client::ReceiptMessage receipt{};
    if ((*client)->wait_receipts(std::span(&receipt, 1), 100) == 0) {
      if (shm::monotonic_ns() > deadline_ns || !(*client)->engine_alive())
        return fail(make_error("keel credits grant", "no receipt within " + std::to_string(request.timeout_ms) + " ms"));
      continue;
    }
    receipts[receipt.request_id] = receipt;
    ++answered;
  }
  int exit_status = 0;
  nlohmann::json out = nlohmann::json::array();
  for (size_t index = 0; index < shares.size(); ++index) {
    ledger::TxStatus status = ledger::TxStatus(receipts[index].status);
    if (status != ledger::TxStatus::applied) exit_status = 3;
    if (request.json) {
      out.push_back({{"shard", shares[index].first},
                     {"amount", shares[index].second},
                     {"status", std::string(ledger::status_text(status))},
                     {"applied", status == ledger::TxStatus::applied},
                     {"height", receipts[index].height}});
      continue;
    }
    std::printf("grant %llu to %s on shard %u: %s (block %llu)\n", (unsigned long long)shares[index].second,
                request.client.c_str(), shares[index].first, std::string(ledger::status_text(status)).c_str(),
                (unsigned long long)receipts[index].height);
  }
  if (request.json)
    std::printf("%s\n", nlohmann::json{{"chain", request.chain}, {"client", request.client}, {"grants", out}}.dump().c_str());
  return exit_status;
}

int show(const CreditsRequest& request, const config::PerfConfig& config, const config::ChainConfig& chain) {
  std::optional<ledger::ClientId> only;
  if (!request.client.empty()) only = ledger::make_client_id(request.client);
  // Per client, its balance on each shard; std::map: clients in ascending id order.
  std::map<std::string, std::vector<uint64_t>> balances;
  if (!request.client.empty()) balances[request.client].assign(chain.shards, 0);
  nlohmann::json shards = nlohmann::json::array();
  for (uint32_t shard = 0; shard < chain.shards; ++shard) {
    Result<ledger::ShardState> state = node::read_shard_state(config.ledger.data_dir, chain.name, shard, chain.shards);
    if (!state) return fail(state.error());
    shards.push_back({{"shard", shard}, {"height", state->height}, {"accounts", state->credit_accounts.size()}});
    for (const auto& [id, balance] : state->credit_accounts) {
      if (only && id != *only) continue;
      std::vector<uint64_t>& of_client = balances[std::string(*ledger::client_id_text(id))];
      of_client.resize(chain.shards, 0);
      of_client[shard] = balance;
    }
  }
  // Totals are summed in 128 bits: per-shard balances may each be near 2^64.
  auto total_of = [](const std::vector<uint64_t>& per_shard) {
    unsigned __int128 total = 0;
    for (uint64_t balance : per_shard) total += balance;
    return total;
  };
  auto text_of = [](unsigned __int128 value) {
    std::string text;
    do text.insert(text.begin(), char('0' + int(value % 10)));
    while ((value /= 10) != 0);
    return text;
  };
  if (request.json) {
    nlohmann::json clients = nlohmann::json::array();
    for (const auto& [id, per_shard] : balances) {
      unsigned __int128 total = total_of(per_shard);
      nlohmann::json entry = {{"client", id}, {"balances", per_shard}};
      // A JSON number above 2^64 - 1 would not read back in most parsers: give it as text then.
      if (total <= UINT64_MAX) entry["total"] = uint64_t(total);
      else entry["total"] = text_of(total);
      clients.push_back(entry);
    }
    nlohmann::json out = {{"chain", chain.name},
                          {"credits", std::string(config::to_string(chain.credits))},
                          {"credits_per_tx", chain.credits_per_tx},
                          {"shards", shards},
                          {"clients", clients}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("chain %s: credits %s", chain.name.c_str(), std::string(config::to_string(chain.credits)).c_str());
  if (chain.credits == config::CreditsMode::required) std::printf(", %u per transaction", chain.credits_per_tx);
  std::printf("; %u shard(s), as of block", chain.shards);
  for (const nlohmann::json& shard : shards) std::printf(" %llu", (unsigned long long)shard["height"].get<uint64_t>());
  std::printf("\n");
  if (balances.empty()) std::printf("  no client holds credit\n");
  for (const auto& [id, per_shard] : balances) {
    std::printf("  %s: %s (", id.c_str(), text_of(total_of(per_shard)).c_str());
    for (uint32_t shard = 0; shard < per_shard.size(); ++shard)
      std::printf("%sshard %u: %llu", shard == 0 ? "" : ", ", shard, (unsigned long long)per_shard[shard]);
    std::printf(")\n");
  }
  return 0;
}

}  // namespace

int credits_command(const CreditsRequest& request) {
  // The arguments first: a bad one is the user's to fix whether or not an engine runs.
  if ((request.action == "grant" || !request.client.empty()))
    if (Result<void> checked = check_client_id("--client", request.client); !checked) return fail(checked.error());
  Result<config::PerfConfig> config = config::load_perf_config(request.config_file);
  if (!config) return fail(config.error());
  const config::ChainConfig* chain = nullptr;
  for (const config::ChainConfig& candidate : config->chains)
    if (candidate.name == request.chain) chain = &candidate;
  if (chain == nullptr) return fail(make_error(request.config_file, "no chain '" + request.chain + "' in [[chain]]"));
  return request.action == "grant" ? grant(request, *config) : show(request, *config, *chain);
}

}  // namespace keel::cli
