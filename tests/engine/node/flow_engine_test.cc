// Flows through the real engine: a `keel run` child with a pool of the sleep test plugin;
// a client deploys a contract on both shards and starts 200 flows (first -> 8 sub-jobs ->
// last); the engine is stopped mid-run and finishing runs restart it until no flow is
// live. Every flow must succeed with every one of its ten jobs applied exactly once,
// across the restarts (the jobs running at each stop are dispatched again). The crash
// tests kill the engine 20 times while it runs flows started by clients, and while a cron
// timer starts them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include "engine/flow/cron.h"
#include "engine/flow/flow_model.h"
#include "engine/ledger/shard.h"
#include "engine/node/recovery.h"
#include "tests/engine/node/compute_engine.h"

namespace keel::node {
namespace {

using namespace testing;

const std::string sleep_pool = "[[pool]]\ncompute_types = [\"sleep\"]\nplugin = \"" KEEL_TEST_PLUGIN_SLEEP
                               "\"\nthreads_per_node = 2\nin_flight_max = 64\ntimeout_ms = 5000\nretries_max = 3\n"
                               "backoff_ms = 1\n";

const char fan_model[] = R"(name = "fan"
version = 1
product = "work"
arguments = ["tag"]
[[step]]
id = "first"
compute_type = "sleep"
input = ["args.tag"]
[[step]]
id = "fan"
compute_type = "sleep"
after = ["first"]
split = 8
input = ["args.tag"]
[[step]]
id = "last"
compute_type = "sleep"
after = ["fan"]
input = ["args.tag"]
)";

// `keel run --json` on the config for two seconds: its report.
nlohmann::json run_once(const fs::path& config, const fs::path& directory, const fs::path& log) {
  fs::path report = directory / "finisher.json";
  std::string command = std::string(KEEL_BINARY) + " run --json --duration 2s --config " + config.string() + " > " +
                        report.string() + " 2>> " + log.string();
  if (std::system(command.c_str()) != 0) return {};
  std::ifstream in(report);
  return nlohmann::json::parse(in, nullptr, false);
}

// Runs `keel run` again until no flow is live and no flow job runs (each run sends the
// jobs the last left running again), at most ten times: the last report, or null when a
// run failed.
nlohmann::json run_until_settled(const fs::path& config, const fs::path& directory, const fs::path& log) {
  nlohmann::json report;
  for (int run = 0; run < 10; ++run) {
    report = run_once(config, directory, log);
    if (!report.is_object()) return {};
    if (report["compute"]["flows_live"] == 0 && report["compute"]["flow_jobs_running"] == 0) break;
  }
  return report;
}

// Deploys the model on every shard of chain `work` and checks each receipt says applied.
void deploy_on_every_shard(client::Client& client, uint64_t& nonce, const std::vector<std::byte>& model_bytes) {
  uint32_t chain = *client.chain_index("work");
  for (uint32_t shard = 0; shard < shards; ++shard) {
    ++nonce;
    Result<bool> queued = client.try_submit(chain, nonce, ledger::encode_flow_deploy(nonce, shard, model_bytes));
    ASSERT_TRUE(queued && *queued);
    std::vector<client::ReceiptMessage> receipt(1);
    ASSERT_EQ(client.wait_receipts(receipt, 30'000), 1u);
    ASSERT_EQ(receipt[0].status, uint16_t(ledger::TxStatus::applied));
  }
}

// What a crash test of flows starts from: a printed seed and its generator, a fresh
// folder with a config of the sleep pool that snapshots every 8 blocks (so recoveries
// start from flow tables in snapshots), and the contract's encoded model (empty, with a
// test failure, when the model does not parse).
struct CrashRun {
  CrashRun(const std::string& name, std::string_view model_text)
      : seed(std::random_device{}()),
        random(seed),
        directory(fs::temp_directory_path() / ("keel-" + name + "-" + std::to_string(getpid()))),
        instance(name + "-" + std::to_string(getpid())),
        config(directory / "engine.toml"),
        log(directory / "engine.log") {
    std::printf("seed %llu\n", (unsigned long long)seed);
    fs::create_directories(directory);
    ExtraKeys extra;
    extra.snapshot_every_blocks = 8;
    std::ofstream(config) << config_text(instance, directory / "data", sleep_pool, extra);
    Result<flow::FlowModel> model = flow::parse_flow_model(model_text, name + ".toml", std::nullopt);
    EXPECT_TRUE(model) << model.error().message;
    if (model) model_bytes = flow::encode_flow_model(*model);
  }
  uint64_t seed;
  std::mt19937_64 random;
  fs::path directory;
  std::string instance;
  fs::path config, log;
  std::vector<std::byte> model_bytes;
};

TEST(FlowEngine, TwoHundredFlowsSucceedWithEveryJobOnceAcrossRestarts) {
  RunningEngine running;
  ASSERT_NO_FATAL_FAILURE(start_running_engine("flow-engine", sleep_pool, running));
  auto& [directory, instance, config, log, engine, client, view, chain] = running;
  Result<flow::FlowModel> model = flow::parse_flow_model(fan_model, "fan.toml", std::nullopt);
  ASSERT_TRUE(model) << model.error().message;
  std::vector<std::byte> model_bytes = flow::encode_flow_model(*model);

  uint64_t nonce = 0;
  std::vector<client::ReceiptMessage> receipts(256);
  // Submits and waits for the receipt's status.
  auto submit_one = [&](const std::vector<std::byte>& tx) -> uint16_t {
    ++nonce;
    Result<bool> queued = client->try_submit(chain, nonce, tx);
    if (!queued || !*queued) return 0xffff;
    std::vector<client::ReceiptMessage> receipt(1);
    if (client->wait_receipts(receipt, 30'000) != 1) return 0xfffe;
    return receipt[0].status;
  };
  for (uint32_t shard = 0; shard < shards; ++shard)
    ASSERT_EQ(submit_one(ledger::encode_flow_deploy(0, shard, model_bytes)), uint16_t(ledger::TxStatus::applied));
  EXPECT_EQ(submit_one(ledger::encode_flow_deploy(0, shards, model_bytes)), uint16_t(ledger::TxStatus::no_such_shard));

  constexpr int flows = 200;
  uint64_t answered = 0, applied = 0, first_nonce = nonce + 1;
  for (int index = 0; index < flows; ++index) {
    std::string tag(4, '\0');  // sleep 0 ms
    tag += "flow-" + std::to_string(index);
    std::vector<std::byte> tx =
        ledger::encode_flow_start(0, "fan", 0, "flow-" + std::to_string(index), ledger::encode_flow_args({{"tag", tag}}));
    ++nonce;
    Result<bool> queued = client->try_submit(chain, nonce, tx);
    ASSERT_TRUE(queued && *queued);
  }
  while (answered < flows) {
    size_t got = client->wait_receipts(receipts, 30'000);
    ASSERT_GT(got, 0u) << "receipts missing; see " << log;
    for (size_t index = 0; index < got; ++index) {
      EXPECT_GE(receipts[index].request_id, first_nonce);
      applied += receipts[index].status == uint16_t(ledger::TxStatus::applied);
    }
    answered += got;
  }
  EXPECT_EQ(applied, uint64_t(flows));
  EXPECT_EQ(submit_one(ledger::encode_flow_start(0, "fan", 0, "flow-7", ledger::encode_flow_args({{"tag", "xxxx"}}))),
            uint16_t(ledger::TxStatus::flow_exists));
  // Stop at once, with flows still running; then restart until none is live.
  kill(engine, SIGTERM);
  int status = 0;
  waitpid(engine, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "see " << log;
  client.reset();
  view.reset();
  nlohmann::json report = run_until_settled(config, directory, log);
  ASSERT_TRUE(report.is_object()) << "see " << log;
  shm::Segment::remove("keel-" + instance);
  const nlohmann::json& compute = report["compute"];
  std::printf("%s\n", compute.dump().c_str());
  EXPECT_EQ(compute["flows_live"], 0);
  EXPECT_EQ(compute["flows_started"], flows);
  EXPECT_EQ(compute["flows_succeeded"], flows);
  EXPECT_EQ(compute["flows_failed"], 0);
  // Ten jobs a flow, each applied once however often it ran.
  EXPECT_EQ(compute["flow_jobs_succeeded"], flows * 10);
  EXPECT_EQ(compute["flow_jobs_failed"], 0);
  if (!HasFailure()) fs::remove_all(directory);
}

// The crash test of flows: while a client starts flows, the engine is killed with SIGKILL
// at random moments 20 times (seed printed) and restarted on the same data, snapshots
// every 8 blocks (so recovery starts from flow tables in snapshots). Afterwards, once a
// last run has nothing live: every flow whose start was acknowledged exists, every flow
// succeeded, and the log holds exactly one result for every flow job (ten a flow), so no
// job was lost or applied twice across the crashes.
TEST(FlowEngine, FlowsFinishWithEveryJobOnceAcrossTwentyKills) {
  CrashRun run("flow-crash", fan_model);
  ASSERT_FALSE(run.model_bytes.empty());
  auto& [seed, random, directory, instance, config, log, model_bytes] = run;

  std::set<std::string> acknowledged, submitted;
  int next_key = 0;
  uint64_t nonce = 0;
  for (int round = 0; round < 20; ++round) {
    pid_t engine = start_engine(config, log);
    std::unique_ptr<client::Client> client = attach_when_up("keel-" + instance, engine);
    ASSERT_NE(client, nullptr) << "round " << round << ": the engine did not come up; seed " << seed << "; see " << log;
    uint32_t chain = *client->chain_index("work");
    std::map<uint64_t, std::string> keys;  // by request id, this round
    std::vector<client::ReceiptMessage> receipts(256);
    auto collect = [&](uint32_t wait_ms) {
      size_t got = wait_ms ? client->wait_receipts(receipts, wait_ms) : client->poll_receipts(receipts);
      for (size_t index = 0; index < got; ++index) {
        auto found = keys.find(receipts[index].request_id);
        if (found == keys.end()) continue;  // a deploy's
        uint16_t status = receipts[index].status;
        // A start already in the log before the last kill, acknowledged or not, stands.
        if (status == uint16_t(ledger::TxStatus::applied) || status == uint16_t(ledger::TxStatus::flow_exists))
          acknowledged.insert(found->second);
        else
          EXPECT_EQ(status, uint16_t(ledger::TxStatus::engine_stopping)) << "seed " << seed;
        keys.erase(found);
      }
    };
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(deploy_on_every_shard(*client, nonce, model_bytes));
    }
    // Starts for the keys never acknowledged first (a crash may have lost them, or not),
    // then up to 25 new ones, until the kill: every round has flows running when it ends.
    std::vector<std::string> to_start;
    for (const std::string& key : submitted)
      if (!acknowledged.count(key)) to_start.push_back(key);
    uint64_t deadline = shm::monotonic_ns() + (50 + random() % 400) * 1'000'000;
    size_t next_retry = 0;
    int new_keys = 0;
    while (shm::monotonic_ns() < deadline) {
      if (keys.size() >= 128 || (next_retry == to_start.size() && new_keys == 25)) {
        collect(1);
        continue;
      }
      if (next_retry == to_start.size()) ++new_keys;
      std::string key = next_retry < to_start.size() ? to_start[next_retry++] : "f-" + std::to_string(next_key++);
      submitted.insert(key);
      std::string tag(4, '\0');
      // Jobs of 1 or 10 ms: a round's jobs take about as long as the round, so kills land
      // with jobs running, results in flight and blocks not yet durable.
      tag[0] = char(random() % 4 == 0 ? 10 : 1);
      tag += key;
      ++nonce;
      keys[nonce] = key;
      Result<bool> queued =
          client->try_submit(chain, nonce, ledger::encode_flow_start(nonce, "fan", 0, key, ledger::encode_flow_args({{"tag", tag}})));
      ASSERT_TRUE(queued);
      if (!*queued) {
        keys.erase(nonce);
        collect(1);
      }
      collect(0);
    }
    kill(engine, SIGKILL);
    waitpid(engine, nullptr, 0);
    client.reset();
  }
  // Runs until nothing is live: the jobs running at the last kill are dispatched again.
  nlohmann::json report = run_until_settled(config, directory, log);
  ASSERT_TRUE(report.is_object()) << "see " << log;
  shm::Segment::remove("keel-" + instance);
  const nlohmann::json& compute = report["compute"];
  std::printf("%zu starts acknowledged of %zu keys submitted; %s\n", acknowledged.size(), submitted.size(),
              compute.dump().c_str());
  EXPECT_GT(acknowledged.size(), 300u) << "too little load to mean anything";
  uint64_t started = compute["flows_started"];
  EXPECT_GE(started, acknowledged.size()) << "an acknowledged start was lost; seed " << seed;
  EXPECT_LE(started, submitted.size()) << "a key started two flows; seed " << seed;
  EXPECT_EQ(compute["flows_live"], 0);
  EXPECT_EQ(compute["flows_succeeded"], started) << "seed " << seed;
  EXPECT_EQ(compute["flow_jobs_succeeded"], started * 10) << "seed " << seed;
  // The log itself: one result per flow job, never two.
  LedgerTasks tasks = read_ledger_tasks(directory / "data");
  size_t flow_results = 0, twice = 0;
  for (const auto& [key, results] : tasks.results) {
    if (!ledger::is_flow_task_mark(key.second)) continue;
    ++flow_results;
    twice += results.size() > 1;
  }
  EXPECT_EQ(twice, 0u) << "flow jobs with two results; seed " << seed;
  EXPECT_EQ(flow_results, started * 10) << "seed " << seed;
  if (!HasFailure()) fs::remove_all(directory);
}

// A contract started by a cron timer every minute, each flow one sleep job of 0 ms.
const char tick_model[] = R"(name = "tick"
version = 1
product = "work"
arguments = ["tag"]
[schedule]
cron = "* * * * *"
misfire = "catch_up"
catch_up_max = 1024
args = { tag = "hex:000000007469636b" }
[[step]]
id = "run"
compute_type = "sleep"
input = ["args.tag"]
)";

// The crash test of timers: the engine runs on a test clock 600 times as fast as the wall
// clock (a minute's fire every tenth of a second), deploys a contract whose timer fires every
// minute with catch-up, and is killed with SIGKILL at random moments 20 times (seed
// printed). Afterwards the recovered ledger must hold exactly one flow for every minute
// from the timer's first fire up to the fire it waits for next (none lost, even those
// due while the engine was down), its counter must agree (none fired twice), and the log
// must hold at most one result for every flow job.
TEST(FlowEngine, TimersFireEveryMinuteOnceAcrossTwentyKills) {
  CrashRun run("timer-crash", tick_model);
  ASSERT_FALSE(run.model_bytes.empty());
  auto& [seed, random, directory, instance, config, log, model_bytes] = run;
  // The test clock: 2026-11-25T00:00:00Z now, 600 times as fast.
  const uint64_t start_s = 1795564800;
  std::string clock = std::to_string(uint64_t(time(nullptr))) + ":" + std::to_string(start_s) + ":600";
  ASSERT_EQ(setenv("KEEL_TIMER_CLOCK", clock.c_str(), 1), 0);
  // Whatever ends the test, the clock goes and no engine is left running.
  pid_t engine = 0;
  struct Cleanup {
    pid_t& engine;
    ~Cleanup() {
      unsetenv("KEEL_TIMER_CLOCK");
      if (engine > 0 && kill(engine, SIGKILL) == 0) waitpid(engine, nullptr, 0);
    }
  } cleanup{engine};

  uint64_t nonce = 0;
  for (int round = 0; round < 20; ++round) {
    engine = start_engine(config, log);
    std::unique_ptr<client::Client> client = attach_when_up("keel-" + instance, engine);
    ASSERT_NE(client, nullptr) << "round " << round << ": the engine did not come up; seed " << seed << "; see " << log;
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(deploy_on_every_shard(*client, nonce, model_bytes));
    }
    usleep(useconds_t(100'000 + random() % 600'000));
    kill(engine, SIGKILL);
    waitpid(engine, nullptr, 0);
    engine = 0;
    client.reset();
  }
  unsetenv("KEEL_TIMER_CLOCK");
  shm::Segment::remove("keel-" + instance);

  std::vector<std::string> notes;
  std::vector<RecoveryChain> chains = {{"work", shards, {}}};
  Result<std::vector<RecoveredShard>> recovered = recover_chains(chains, (directory / "data").string(), &notes);
  ASSERT_TRUE(recovered) << recovered.error().message;
  uint32_t home = ledger::timer_home_shard("tick", 0, shards);
  const flow::FlowTable& flows = (*recovered)[home].executor.state().flows;
  ASSERT_EQ(flows.timers().size(), 1u);
  const flow::FlowTimer& timer = flows.timers().begin()->second;
  ASSERT_NE(timer.next_fire_s, flow::timer_unarmed) << "the timer never armed; see " << log;
  // The first fire: the earliest minute with a flow.
  uint64_t first_s = 0;
  for (uint64_t minute = start_s; minute < timer.next_fire_s; minute += 60) {
    if (flows.flow_of_key(ledger::scheduled_flow_key("tick", 0, minute))) {
      first_s = minute;
      break;
    }
  }
  ASSERT_NE(first_s, 0u) << "no fire at all; see " << log;
  uint64_t minutes = (timer.next_fire_s - first_s) / 60, missing = 0;
  for (uint64_t minute = first_s; minute < timer.next_fire_s; minute += 60)
    missing += !flows.flow_of_key(ledger::scheduled_flow_key("tick", 0, minute));
  std::printf("%llu minutes fired from %s to %s, %llu flows started by the timer\n", (unsigned long long)minutes,
              flow::iso_string(first_s).c_str(), flow::iso_string(timer.next_fire_s).c_str(),
              (unsigned long long)timer.flows_started);
  EXPECT_GT(minutes, 40u) << "too few fires to mean anything";
  EXPECT_EQ(missing, 0u) << "fires lost; seed " << seed;
  EXPECT_EQ(timer.flows_started, minutes) << "a fire started twice or was lost; seed " << seed;
  EXPECT_EQ(timer.misfires_dropped, 0u) << "catch-up never drops fewer than 1024 missed minutes";
  LedgerTasks tasks = read_ledger_tasks(directory / "data");
  size_t twice = 0;
  for (const auto& [key, results] : tasks.results) twice += ledger::is_flow_task_mark(key.second) && results.size() > 1;
  EXPECT_EQ(twice, 0u) << "flow jobs with two results; seed " << seed;
  if (!HasFailure()) fs::remove_all(directory);
}

}  // namespace
}  // namespace keel::node
