// Flows through the real engine: a `keel run` child with a pool of the sleep test plugin;
// a client deploys a contract on both shards and starts 200 flows (first -> 8 sub-jobs ->
// last); the engine is stopped mid-run and finishing runs restart it until no flow is
// live. Every flow must succeed with every one of its ten jobs applied exactly once,
// across the restarts (the jobs running at each stop are dispatched again).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "engine/flow/flow_model.h"
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

// `keel run --json` on the config for a moment: its report.
nlohmann::json run_once(const fs::path& config, const fs::path& directory, const fs::path& log) {
  fs::path report = directory / "finisher.json";
  std::string command = std::string(KEEL_BINARY) + " run --json --duration 1s --config " + config.string() + " > " +
                        report.string() + " 2>> " + log.string();
  if (std::system(command.c_str()) != 0) return {};
  std::ifstream in(report);
  return nlohmann::json::parse(in, nullptr, false);
}

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
  nlohmann::json report;
  for (int run = 0; run < 10; ++run) {
    report = run_once(config, directory, log);
    ASSERT_TRUE(report.is_object()) << "see " << log;
    if (report["compute"]["flows_live"] == 0 && report["compute"]["flow_jobs_running"] == 0) break;
  }
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

}  // namespace
}  // namespace keel::node
