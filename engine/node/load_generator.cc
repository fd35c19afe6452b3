#include "engine/node/load_generator.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/client/client.h"
#include "engine/core/latency_histogram.h"
#include "engine/flow/flow_model.h"
#include "engine/ledger/transaction.h"
#include "engine/node/compute_inputs.h"
#include "engine/node/load_schedule.h"
#include "engine/node/request_table.h"
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
  uint64_t compute_submitted = 0, compute_accepted = 0, compute_backlog_full = 0;
  uint64_t flows_submitted = 0, flows_accepted = 0, flows_refused = 0;
  engine::LatencyHistogram latency;
};

// What a submission was, for the counters its receipt adds to.
enum class SentKind : uint8_t { transfer, compute, flow, setup };

// A submission waiting for its receipt.
struct Sent {
  uint32_t chain = 0;
  SentKind kind = SentKind::transfer;
  uint64_t sent_ns = 0;
};

// xoshiro256** (Blackman and Vigna): the load's choices of accounts and amounts. About a
// nanosecond a draw where std::mt19937_64 took several (it was 8% of the generator's time),
// and as reproducible from its seed.
class LoadRandom {
 public:
  explicit LoadRandom(uint64_t seed) {
    for (uint64_t& word : state_) {  // splitmix64 spreads the seed over the state
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t mixed = seed;
      mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ull;
      mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebull;
      word = mixed ^ (mixed >> 31);
    }
  }
  uint64_t operator()() {
    const uint64_t result = rotate_left(state_[1] * 5, 7) * 9;
    const uint64_t shifted = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= shifted;
    state_[3] = rotate_left(state_[3], 45);
    return result;
  }

 private:
  static uint64_t rotate_left(uint64_t value, int bits) { return (value << bits) | (value >> (64 - bits)); }
  uint64_t state_[4];
};

struct Generator {
  client::Client* client;
  std::vector<ChainLoad> chains;
  RequestTable<Sent> in_flight{client->in_flight_max()};
  uint64_t next_request = 1;
  std::vector<client::ReceiptMessage> receipts = std::vector<client::ReceiptMessage>(1024);
  // The clock as a submission reads it: read in collect(), which runs at least every 64
  // submissions, and by the loops between bursts. A submission's latency then starts up to
  // 64 submissions (some 20 us) early, against milliseconds to durable; a clock read per
  // submission was a fifth of the generator's time.
  uint64_t now_ns = shm::monotonic_ns();
  uint64_t next_alive_check_ns = 0;  // engine_alive(): when /proc is read next

  // Takes whatever receipts are there (waiting up to wait_ms when there are none).
  void collect(uint32_t wait_ms) {
    size_t got = wait_ms ? client->wait_receipts(receipts, wait_ms) : client->poll_receipts(receipts);
    const uint64_t now = now_ns = shm::monotonic_ns();
    for (size_t index = 0; index < got; ++index) {
      std::optional<Sent> taken = in_flight.take(receipts[index].request_id);
      if (!taken) continue;
      const Sent& sent = *taken;
      ChainLoad& chain = chains[sent.chain];
      auto status = ledger::TxStatus(receipts[index].status);
      ++chain.receipts;
      chain.applied += status == ledger::TxStatus::applied;
      if (sent.kind == SentKind::compute) {
        chain.compute_accepted += status == ledger::TxStatus::applied;
        chain.compute_backlog_full += status == ledger::TxStatus::compute_backlog_full;
      }
      if (sent.kind == SentKind::flow) {
        chain.flows_accepted += status == ledger::TxStatus::applied;
        chain.flows_refused += status != ledger::TxStatus::applied;
      }
      if (sent.kind == SentKind::setup && status != ledger::TxStatus::applied) {
        // A deploy the ledger refused (another model under the same version, or the
        // shard's limit): flows then run whatever that version is, and the operator is told.
        std::fprintf(stderr, "keel load: chain %s: a contract's deploy was refused: %s\n", chain.name.c_str(),
                     std::string(ledger::status_text(status)).c_str());
      }
      chain.latency.record(now - sent.sent_ns);
    }
  }
  // Client::engine_alive reads /proc, which the push-back loop below met on most
  // submissions of a saturating generator: once per 100 ms of the cached clock is enough.
  bool engine_alive() {
    if (now_ns < next_alive_check_ns) return true;
    next_alive_check_ns = now_ns + 100'000'000;
    return client->engine_alive();
  }

  // Submits one transaction, taking receipts while the client pushes back.
  bool submit(uint32_t chain, const std::vector<std::byte>& tx, SentKind kind = SentKind::transfer) {
    for (;;) {
      Result<bool> queued = client->try_submit(chains[chain].index, next_request, tx);
      if (!queued) {
        std::fprintf(stderr, "keel load: %s\n", queued.error().message.c_str());
        return false;
      }
      if (*queued) break;
      collect(1);
      if (!engine_alive()) return false;
    }
    in_flight.insert(next_request++, {chain, kind, now_ns});
    ++chains[chain].submitted;
    chains[chain].compute_submitted += kind == SentKind::compute;
    chains[chain].flows_submitted += kind == SentKind::flow;
    return true;
  }
};

// The compute types the load cycles over: every type of every pool, in config order.
std::vector<std::string> compute_types_of(const config::PerfConfig& config) {
  std::vector<std::string> types;
  for (const config::PoolConfig& pool : config.pools)
    types.insert(types.end(), pool.compute_types.begin(), pool.compute_types.end());
  return types;
}

// Arguments for a flow of `model`, made from a seed: each argument is what the first step
// reading it takes as input — sample_compute_input of that step's compute type — less 8
// bytes for each "split.index" before it in the step's input (the loan contract's risk step
// reads its var_mc seed from the sub-job index), and an argument taken "[split]" gets one
// such sample per sub-job. An argument no step reads is empty.
std::vector<std::byte> sample_flow_args(const flow::FlowModel& model, uint64_t seed) {
  std::map<std::string, std::string> args;
  for (const std::string& name : model.arguments) {
    const flow::FlowStep* reader = nullptr;
    size_t skip_bytes = 0;
    bool in_parts = false;
    for (const flow::FlowStep& step : model.steps) {
      size_t before = 0;
      for (const flow::InputSource& source : step.input) {
        bool takes = (source.kind == flow::InputKind::argument || source.kind == flow::InputKind::argument_part) &&
                     source.name == name;
        if (takes) {
          reader = &step;
          skip_bytes = before;
          in_parts = source.kind == flow::InputKind::argument_part;
          break;
        }
        if (source.kind == flow::InputKind::split_index) before += 8;
      }
      if (reader != nullptr) break;
    }
    auto sample = [&](uint64_t sample_seed) {
      std::vector<std::byte> bytes = sample_compute_input(reader->compute_type, sample_seed);
      size_t skip = std::min(skip_bytes, bytes.size());
      return std::string(reinterpret_cast<const char*>(bytes.data()) + skip, bytes.size() - skip);
    };
    std::string& value = args[name];
    if (reader == nullptr) continue;
    if (!in_parts) {
      value = sample(seed);
      continue;
    }
    for (uint32_t part = 0; part < reader->split; ++part) {
      std::string bytes = sample(seed * 1'000'003 + part);
      uint32_t size = uint32_t(bytes.size());
      value.append(reinterpret_cast<const char*>(&size), sizeof size);
      value += bytes;
    }
  }
  return ledger::encode_flow_args(args);
}

// A contract the load starts flows of.
struct FlowContract {
  flow::FlowModel model;
  std::vector<std::byte> encoded;
};

// What one client submits after opening its accounts: transfers, compute_percent of the
// time a compute_request and flow_percent of the time a flow_start.
struct Workload {
  const config::LoadSection& load;
  std::vector<std::string> compute_types;
  uint32_t client_index = 0;
  uint64_t first_account = 0;  // the client's accounts: first_account .. + accounts_per_chain - 1
  std::vector<FlowContract> contracts;
  uint64_t run_id = 0;  // in the flows' keys, so a later run's keys are new
  LoadRandom random{uint64_t(client_index) * 7919 + 1};
  uint64_t compute_count = 0;  // compute_requests made so far
  uint64_t flow_count = 0;     // flow_starts made so far

  // True when submission `count` (from 0) is a compute_request: exactly compute_percent
  // of every 100 submissions, evenly spread rather than bunched (5 is every 20th).
  bool is_compute_turn(uint64_t count) const {
    return !compute_types.empty() && (count + 1) * load.compute_percent / 100 != count * load.compute_percent / 100;
  }
  // The same for flow_starts, half a hundred apart from the compute turns, which win a tie
  // (so the flows' share is flow_percent or a little below).
  bool is_flow_turn(uint64_t count) const {
    uint64_t shifted = count + 50;
    return !contracts.empty() && (shifted + 1) * load.flow_percent / 100 != shifted * load.flow_percent / 100;
  }

  // Submits submission `count`; false when the engine went away.
  bool submit_next(Generator& generator, uint64_t count) {
    if (is_compute_turn(count)) return submit_compute_request(generator);
    if (is_flow_turn(count)) return submit_flow_start(generator);
    return submit_transfer(generator, uint32_t(count % generator.chains.size()));
  }

  // Paced per chain: submission `count` of that chain (its own count, so each chain gets
  // its compute and flow shares whatever the others' rates).
  bool submit_to_chain(Generator& generator, uint32_t chain_index, uint64_t count) {
    if (is_compute_turn(count)) return submit_compute_request(generator, chain_index);
    if (is_flow_turn(count)) return submit_flow_start(generator, chain_index);
    return submit_transfer(generator, chain_index);
  }

  bool submit_transfer(Generator& generator, uint32_t chain_index) {
    ChainLoad& chain = generator.chains[chain_index];
    uint32_t from_shard = uint32_t(random() % chain.shards), to_shard = from_shard;
    if (chain.shards > 1 && random() % 100 < load.cross_shard_percent)
      to_shard = (from_shard + 1 + uint32_t(random() % (chain.shards - 1))) % chain.shards;
    const auto& from_accounts = chain.accounts_by_shard[from_shard];
    const auto& to_accounts = chain.accounts_by_shard[to_shard];
    if (from_accounts.empty() || to_accounts.empty()) return true;  // a shard none of ours live on
    uint64_t from = from_accounts[random() % from_accounts.size()], to = to_accounts[random() % to_accounts.size()];
    return generator.submit(chain_index, ledger::encode_transfer(generator.next_request, from, to, 1 + random() % 100));
  }

  // The next compute_request: chains in turn, and on each chain every type in turn (so
  // every chain sees every type, whatever the two counts), about a random account of ours.
  bool submit_compute_request(Generator& generator, std::optional<uint32_t> on_chain = std::nullopt) {
    uint64_t chains = generator.chains.size();
    uint32_t chain_index = on_chain.value_or(uint32_t(compute_count % chains));
    const std::string& type = compute_types[(compute_count / chains) % compute_types.size()];
    // The seed tells clients apart in its high half, so no two clients send the same input.
    uint64_t seed = uint64_t(client_index) << 32 | (compute_count & 0xffffffffu);
    std::vector<std::byte> input = sample_compute_input(type, seed);
    ++compute_count;
    uint64_t subject = first_account + random() % load.accounts_per_chain;
    return generator.submit(chain_index, ledger::encode_compute_request(generator.next_request, subject, type, input),
                            SentKind::compute);
  }

  // The next flow_start: chains in turn, contracts in turn on each, under a key no other
  // client or run uses; the arguments from sample_flow_args.
  bool submit_flow_start(Generator& generator, std::optional<uint32_t> on_chain = std::nullopt) {
    uint64_t chains = generator.chains.size();
    uint32_t chain_index = on_chain.value_or(uint32_t(flow_count % chains));
    const FlowContract& contract = contracts[(flow_count / chains) % contracts.size()];
    std::string key = "load-" + std::to_string(client_index) + "-" + std::to_string(run_id) + "-" + std::to_string(flow_count);
    std::vector<std::byte> args = sample_flow_args(contract.model, uint64_t(client_index) << 32 | (flow_count & 0xffffffffu));
    ++flow_count;
    return generator.submit(chain_index,
                            ledger::encode_flow_start(generator.next_request, contract.model.name, 0, key, args),
                            SentKind::flow);
  }
};

// Deploys every contract on every shard of every chain (a contract already deployed with
// the same model is applied again, changing nothing) and waits for the receipts, so the
// flows started next find their contract. False when the engine went away.
bool deploy_contracts(Generator& generator, const std::vector<FlowContract>& contracts) {
  for (uint32_t chain = 0; chain < generator.chains.size(); ++chain)
    for (const FlowContract& contract : contracts)
      for (uint32_t shard = 0; shard < generator.chains[chain].shards; ++shard)
        if (!generator.submit(chain, ledger::encode_flow_deploy(generator.next_request, shard, contract.encoded),
                              SentKind::setup))
          return false;
  uint64_t deadline_ns = shm::monotonic_ns() + 30'000'000'000ull;
  while (!generator.in_flight.empty()) {
    generator.collect(10);
    if (!generator.client->engine_alive() || stop_requested.load()) return false;
    if (shm::monotonic_ns() > deadline_ns) {
      std::fprintf(stderr, "keel load: the contracts' deploys got no receipt within 30 s\n");
      return false;
    }
  }
  return true;
}

void print_report(const Generator& generator, uint32_t client_index) {
  nlohmann::json chains = nlohmann::json::array();
  for (const ChainLoad& chain : generator.chains)
    chains.push_back({{"name", chain.name},
                      {"submitted", chain.submitted},
                      {"receipts", chain.receipts},
                      {"applied", chain.applied},
                      {"latency_us_p50", chain.latency.percentile(0.50) / 1000},
                      {"latency_us_p99", chain.latency.percentile(0.99) / 1000},
                      {"latency_us_max", chain.latency.max_ns() / 1000},
                      {"compute_submitted", chain.compute_submitted},
                      {"compute_accepted", chain.compute_accepted},
                      {"compute_backlog_full", chain.compute_backlog_full},
                      {"flows_submitted", chain.flows_submitted},
                      {"flows_accepted", chain.flows_accepted},
                      {"flows_refused", chain.flows_refused}});
  std::printf("%s\n", nlohmann::json{{"client", client_index}, {"chains", chains}}.dump().c_str());
  std::fflush(stdout);
}

// At most this much of a chain's schedule is made up after the generator fell behind it
// (its ring pushed back, or the accounts were still being opened): a surge the engine
// could not take ends when its window does instead of spilling over the calm after it.
constexpr uint64_t catch_up_ms_max = 100;
// Submissions to one chain in a row before the others get their turn.
constexpr uint64_t chain_burst_max = 256;

// Paced per chain (LoadSchedule): each chain gets what its schedule says is due, chains
// in turn; with nothing due the generator waits for receipts up to a millisecond, so a
// light load costs little CPU on a small machine.
void run_paced_per_chain(Generator& generator, Workload& workload, const LoadSchedule& schedule, uint64_t start_ns,
                         uint64_t deadline_ns, uint32_t client_index, uint32_t clients, uint64_t accounts_per_chain) {
  std::vector<uint64_t> offered(generator.chains.size(), 0);  // sent, or given up as too late
  std::vector<uint64_t> opened(generator.chains.size(), 0);   // accounts, the first submissions
  std::vector<uint64_t> sent(generator.chains.size(), 0);     // after the accounts
  auto submit_next = [&](uint32_t chain) {
    if (opened[chain] == accounts_per_chain) return workload.submit_to_chain(generator, chain, sent[chain]++);
    uint64_t account = workload.first_account + opened[chain]++;
    return generator.submit(chain, ledger::encode_create_account(account, account, 1'000'000'000));
  };
  uint64_t since_collect = 0, next_alive_check_ns = 0;
  for (uint64_t now_ns = shm::monotonic_ns(); !stop_requested.load() && now_ns < deadline_ns;
       now_ns = shm::monotonic_ns()) {
    uint64_t elapsed_ns = now_ns - start_ns;
    generator.now_ns = now_ns;
    bool any_due = false;
    for (uint32_t chain = 0; chain < generator.chains.size(); ++chain) {
      uint64_t due = schedule.due_for_client(chain, elapsed_ns, client_index, clients);
      uint64_t rate = schedule.rate_per_second(chain, elapsed_ns / 1'000'000);
      uint64_t lag_max = std::max<uint64_t>(64, rate * catch_up_ms_max / 1000 / clients);
      if (due > offered[chain] + lag_max) offered[chain] = due - lag_max;
      for (uint64_t burst = 0; offered[chain] < due && burst < chain_burst_max; ++burst) {
        if (!submit_next(chain)) return;
        ++offered[chain];
        if (++since_collect == 64) {
          generator.collect(0);
          since_collect = 0;
        }
        any_due = true;
      }
    }
    if (!any_due) generator.collect(1);
    // engine_alive reads /proc: ten times a second is enough to notice a dead engine.
    if (now_ns >= next_alive_check_ns) {
      if (!generator.client->engine_alive()) return;
      next_alive_check_ns = now_ns + 100'000'000;
    }
  }
}

}  // namespace

int run_load_process(const config::PerfConfig& config, const LoadOptions& options) {
  // The shapes' times count from here: `keel run` starts its generators as the run starts.
  uint64_t start_ns = shm::monotonic_ns();
  signal(SIGINT, on_stop_signal);
  signal(SIGTERM, on_stop_signal);
  Result<std::unique_ptr<client::Client>> client = client::Client::attach(options.segment_name, "load-" + std::to_string(options.client_index));
  if (!client) {
    std::fprintf(stderr, "keel load: %s\n", client.error().message.c_str());
    return 1;
  }
  Generator generator{client->get(), {}};
  uint64_t first_account = uint64_t(options.client_index) * 1'000'000'000ull + 1;
  for (const config::ChainConfig& chain_config : config.chains) {
    if (chain_config.is_system()) continue;  // the engine's own records only
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
  // Open the accounts (after a restart they exist already: account_exists is fine). Paced
  // per chain, the openings are each chain's first submissions, at its rate, so that they
  // do not make every chain look busy to the balancer at the start.
  if (!config.load.paced_per_chain())
    for (uint32_t chain = 0; chain < generator.chains.size(); ++chain)
      for (const auto& accounts : generator.chains[chain].accounts_by_shard)
        for (uint64_t account : accounts)
          if (!generator.submit(chain, ledger::encode_create_account(account, account, 1'000'000'000))) return 1;
  Workload workload{config.load, compute_types_of(config), options.client_index, first_account};
  if (config.load.flow_percent > 0) {
    std::vector<std::string> types = compute_types_of(config);
    flow::KnownComputeTypes known = std::set<std::string>(types.begin(), types.end());
    for (const std::string& path : config.load.flow_contracts) {
      Result<flow::FlowModel> model = flow::load_flow_model(path, known);
      if (!model) {
        std::fprintf(stderr, "keel load: %s\n", model.error().message.c_str());
        return 1;
      }
      // The arguments the load would give its flows must fit a flow_start.
      size_t args_bytes = sample_flow_args(*model, 0).size();
      if (args_bytes > ledger::flow_args_bytes_max) {
        std::fprintf(stderr, "keel load: %s: the sample arguments of a flow take %zu bytes, more than a flow_start's %u\n",
                     path.c_str(), args_bytes, ledger::flow_args_bytes_max);
        return 1;
      }
      std::vector<std::byte> encoded = flow::encode_flow_model(*model);
      workload.contracts.push_back({std::move(*model), std::move(encoded)});
    }
    workload.run_id = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
    if (!deploy_contracts(generator, workload.contracts)) return 1;
  }
  uint64_t deadline_ns = start_ns + options.duration_ms * 1'000'000;
  if (config.load.paced_per_chain()) {
    std::vector<std::string> names;
    for (const ChainLoad& chain : generator.chains) names.push_back(chain.name);
    run_paced_per_chain(generator, workload, LoadSchedule(config.load, names), start_ns, deadline_ns,
                        options.client_index, config.load.clients, config.load.accounts_per_chain);
  } else {
    uint64_t interval_ns = config.load.rate_per_second ? 1'000'000'000ull / config.load.rate_per_second : 0;
    uint64_t next_send_ns = shm::monotonic_ns();
    bool anything_to_load = !generator.chains.empty();
    for (uint64_t count = 0; anything_to_load && !stop_requested.load(); ++count) {
      generator.now_ns = shm::monotonic_ns();
      if (generator.now_ns >= deadline_ns) break;
      if (!workload.submit_next(generator, count)) break;
      if ((count & 63) == 0) generator.collect(0);
      if (interval_ns) {
        next_send_ns += interval_ns;
        while (shm::monotonic_ns() < next_send_ns) generator.collect(0);
      }
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
