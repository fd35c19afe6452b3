#include "engine/node/load_generator.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/client/client.h"
#include "engine/core/latency_histogram.h"
#include "engine/ledger/transaction.h"
#include "shm/segment.h"

namespace keel::node {

namespace {

std::atomic<bool> stop_requested{false};
void on_stop_signal(int) { stop_requested.store(true); }

struct ChainLoad {
  std::string name;
  uint32_t index = 0;  // in the client table
  uint32_t shards = 1;
  std::vector<std::vector<uint64_t>> accounts_by_shard;
  uint64_t submitted = 0, receipts = 0, applied = 0;
  engine::LatencyHistogram latency;
};

struct Generator {
  client::Client* client;
  std::vector<ChainLoad> chains;
  std::unordered_map<uint64_t, std::pair<uint32_t, uint64_t>> in_flight;  // request -> (chain, sent ns)
  uint64_t next_request = 1;
  std::vector<client::ReceiptMessage> receipts = std::vector<client::ReceiptMessage>(1024);

  // Takes whatever receipts are there (waiting up to wait_ms when there are none).
  void collect(uint32_t wait_ms) {
    size_t got = wait_ms ? client->wait_receipts(receipts, wait_ms) : client->poll_receipts(receipts);
    uint64_t now = shm::monotonic_ns();
    for (size_t index = 0; index < got; ++index) {
      auto found = in_flight.find(receipts[index].request_id);
      if (found == in_flight.end()) continue;
      ChainLoad& chain = chains[found->second.first];
      ++chain.receipts;
      chain.applied += receipts[index].status == uint16_t(ledger::TxStatus::applied);
      chain.latency.record(now - found->second.second);
      in_flight.erase(found);
    }
  }
  // Submits one transaction, taking receipts while the client pushes back.
  bool submit(uint32_t chain, const std::vector<std::byte>& tx) {
    for (;;) {
      Result<bool> queued = client->try_submit(chains[chain].index, next_request, tx);
      if (!queued) return false;
      if (*queued) break;
      collect(1);
      if (!client->engine_alive()) return false;
    }
    in_flight[next_request++] = {chain, shm::monotonic_ns()};
    ++chains[chain].submitted;
    return true;
  }
};

void print_report(const Generator& generator, uint32_t client_index) {
  nlohmann::json chains = nlohmann::json::array();
  for (const ChainLoad& chain : generator.chains)
    chains.push_back({{"name", chain.name},
                      {"submitted", chain.submitted},
                      {"receipts", chain.receipts},
                      {"applied", chain.applied},
                      {"latency_us_p50", chain.latency.percentile(0.50) / 1000},
                      {"latency_us_p99", chain.latency.percentile(0.99) / 1000},
                      {"latency_us_max", chain.latency.max_ns() / 1000}});
  std::printf("%s\n", nlohmann::json{{"client", client_index}, {"chains", chains}}.dump().c_str());
  std::fflush(stdout);
}

}  // namespace

int run_load_process(const config::PerfConfig& config, const LoadOptions& options) {
  signal(SIGINT, on_stop_signal);
  signal(SIGTERM, on_stop_signal);
  Result<std::unique_ptr<client::Client>> client = client::Client::attach(options.segment_name);
  if (!client) {
    std::fprintf(stderr, "keel load: %s\n", client.error().message.c_str());
    return 1;
  }
  Generator generator{client->get(), {}};
  uint64_t first_account = uint64_t(options.client_index) * 1'000'000'000ull + 1;
  for (const config::ChainConfig& chain_config : config.chains) {
    Result<uint32_t> index = (*client)->chain_index(chain_config.name);
    if (!index) {
      std::fprintf(stderr, "keel load: %s\n", index.error().message.c_str());
      return 1;
    }
    ChainLoad& chain = generator.chains.emplace_back();
    chain.name = chain_config.name;
    chain.index = *index;
    chain.shards = (*client)->shard_count(*index);
    chain.accounts_by_shard.resize(chain.shards);
    for (uint64_t account = first_account; account < first_account + config.load.accounts_per_chain; ++account)
      chain.accounts_by_shard[ledger::shard_of_account(account, chain.shards)].push_back(account);
  }
  // Open the accounts (after a restart they exist already: account_exists is fine).
  for (uint32_t chain = 0; chain < generator.chains.size(); ++chain)
    for (const auto& accounts : generator.chains[chain].accounts_by_shard)
      for (uint64_t account : accounts)
        if (!generator.submit(chain, ledger::encode_create_account(account, account, 1'000'000'000))) return 1;
  std::mt19937_64 random(options.client_index * 7919 + 1);
  uint64_t deadline_ns = shm::monotonic_ns() + options.duration_ms * 1'000'000;
  uint64_t interval_ns = config.load.rate_per_second ? 1'000'000'000ull / config.load.rate_per_second : 0;
  uint64_t next_send_ns = shm::monotonic_ns();
  for (uint64_t count = 0; !stop_requested.load() && shm::monotonic_ns() < deadline_ns; ++count) {
    ChainLoad& chain = generator.chains[count % generator.chains.size()];
    uint32_t from_shard = uint32_t(random() % chain.shards), to_shard = from_shard;
    if (chain.shards > 1 && random() % 100 < config.load.cross_shard_percent)
      to_shard = (from_shard + 1 + uint32_t(random() % (chain.shards - 1))) % chain.shards;
    const auto& from_accounts = chain.accounts_by_shard[from_shard];
    const auto& to_accounts = chain.accounts_by_shard[to_shard];
    if (from_accounts.empty() || to_accounts.empty()) continue;
    uint64_t from = from_accounts[random() % from_accounts.size()], to = to_accounts[random() % to_accounts.size()];
    if (!generator.submit(uint32_t(count % generator.chains.size()),
                          ledger::encode_transfer(generator.next_request, from, to, 1 + random() % 100)))
      break;
    if ((count & 63) == 0) generator.collect(0);
    if (interval_ns) {
      next_send_ns += interval_ns;
      while (shm::monotonic_ns() < next_send_ns) generator.collect(0);
    }
  }
  // The last receipts: every submitted transaction gets one (durable or refused).
  uint64_t wait_deadline_ns = shm::monotonic_ns() + 15'000'000'000ull;
  while (!generator.in_flight.empty() && shm::monotonic_ns() < wait_deadline_ns && (*client)->engine_alive())
    generator.collect(10);
  print_report(generator, options.client_index);
  return 0;
}

}  // namespace keel::node
