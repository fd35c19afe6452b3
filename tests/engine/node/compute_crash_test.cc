// The crash test of compute: a real `keel run` child runs a pool of the `sleep` test
// plugin while a client in this process submits compute requests; the pool's worker
// process is killed with SIGKILL 20 times at random moments (the seed is printed). The
// chain must keep committing through every kill, and once a last engine run has finished
// the pending tasks, every request in the ledger has exactly one result, carrying the
// plugin's output for that request's input: a task may run more than once, but its effect
// lands once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <set>
#include <string>

#include "tests/engine/node/compute_engine.h"

namespace keel::node {
namespace {

using namespace testing;

// The sleep pool of the kill test; the crash test's pool.
const std::string sleep_pool = "[[pool]]\ncompute_types = [\"sleep\"]\nplugin = \"" KEEL_TEST_PLUGIN_SLEEP
                               "\"\nthreads_per_node = 2\nin_flight_max = 64\ntimeout_ms = 5000\nretries_max = 30\n"
                               "backoff_ms = 1\n";
const std::string crash_pool = "[[pool]]\ncompute_types = [\"crash\"]\nplugin = \"" KEEL_TEST_PLUGIN_CRASH
                               "\"\nthreads_per_node = 2\nin_flight_max = 64\ntimeout_ms = 5000\nretries_max = 2\n"
                               "backoff_ms = 1\n";

TEST(ComputeCrash, EveryTaskLandsOnceAcrossTwentyPoolKills) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  RunningEngine running;
  ASSERT_NO_FATAL_FAILURE(start_running_engine("compute-crash", sleep_pool, running));
  auto& [directory, instance, config, log, engine, client, view, chain] = running;

  std::set<std::string> acknowledged;
  uint64_t backlog_full = 0, stopping_refused = 0, nonce = 0, answered = 0;
  std::vector<client::ReceiptMessage> receipts(256);
  auto collect = [&](uint32_t wait_ms) {
    size_t got = wait_ms ? client->wait_receipts(receipts, wait_ms) : client->poll_receipts(receipts);
    answered += got;
    for (size_t index = 0; index < got; ++index) {
      if (receipts[index].status == uint16_t(ledger::TxStatus::applied))
        acknowledged.insert(std::string(reinterpret_cast<const char*>(receipts[index].tx_hash), 32));
      else if (receipts[index].status == uint16_t(ledger::TxStatus::compute_backlog_full))
        ++backlog_full;
      // Submissions still queued when the test stops the engine are answered this way:
      // refused, never ordered, nothing acknowledged.
      else if (receipts[index].status == uint16_t(ledger::TxStatus::engine_stopping))
        ++stopping_refused;
      else
        ADD_FAILURE() << "receipt status " << receipts[index].status;
    }
  };
  // Submits for `run_ms`, keeping the pool busy with tasks of 0 or 1 ms: a few hundred
  // requests without a receipt at most, so the backlog stays far from full.
  auto drive = [&](uint64_t run_ms) {
    uint64_t deadline = shm::monotonic_ns() + run_ms * 1'000'000;
    while (shm::monotonic_ns() < deadline) {
      if (nonce - answered >= 256) {
        collect(1);
        continue;
      }
      ++nonce;
      std::vector<std::byte> tx =
          ledger::encode_compute_request(nonce, random(), "sleep", sleep_input(random() % 8 == 0 ? 1 : 0, nonce));
      Result<bool> queued = client->try_submit(chain, nonce, tx);
      ASSERT_TRUE(queued);
      if (!*queued) collect(1);
      collect(0);
    }
  };

  for (int kill_round = 0; kill_round < 20; ++kill_round) {
    drive(30 + random() % 200);
    ASSERT_TRUE(wait_until([&] { return view->pool_ready(); }))
        << "kill " << kill_round << ": the pool was not restarted; seed " << seed << "; see " << log;
    pid_t worker = view->pools.control(0).pid.load();
    ASSERT_GT(worker, 0);
    uint64_t durable_before = view->durable_total();
    ASSERT_EQ(kill(worker, SIGKILL), 0);
    drive(20);
    // The chain commits on while the pool is dead and restarting.
    ASSERT_TRUE(wait_until([&] {
      collect(0);
      return view->durable_total() > durable_before;
    })) << "kill " << kill_round << ": the chain stopped committing; seed " << seed;
  }
  drive(100);
  uint64_t restarts = view->pools.control(0).restarts.load();
  EXPECT_GE(restarts, 20u);
  // Stop (a drain: every accepted request is durable and answered), then run once more
  // with no load, so the tasks still pending get their results.
  kill(engine, SIGTERM);
  int status = 0;
  waitpid(engine, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "see " << log;
  collect(0);
  std::printf("%llu submissions refused: engine stopping\n", (unsigned long long)stopping_refused);
  client.reset();
  view.reset();
  EXPECT_EQ(finish_pending(config, directory, log), 0u) << "tasks still pending after ten finishing runs; see " << log;
  shm::Segment::remove("keel-" + instance);

  LedgerTasks tasks = read_ledger_tasks(directory / "data");
  std::printf("%zu requests acknowledged (%llu refused: backlog full), %zu in the ledger, %zu results, %llu pool "
              "restarts\n",
              acknowledged.size(), (unsigned long long)backlog_full, tasks.requests.size(), tasks.results.size(),
              (unsigned long long)restarts);
  EXPECT_GT(acknowledged.size(), 500u) << "too little load to mean anything";
  size_t missing = 0, without_result = 0, wrong = 0;
  for (const std::string& hash : acknowledged) {
    auto request = tasks.requests.find(hash);
    if (request == tasks.requests.end()) {
      ++missing;
      continue;
    }
    auto found = tasks.results.find({request->second.shard, request->second.task_mark});
    if (found == tasks.results.end()) {
      ++without_result;
      continue;
    }
    const auto& [outcome, output] = found->second.front();
    wrong += outcome != uint16_t(ledger::ComputeOutcome::succeeded) || output != request->second.input;
  }
  size_t twice = 0, orphans = 0;
  for (const auto& [key, results] : tasks.results) {
    twice += results.size() > 1;
    orphans += tasks.request_marks.count(key) == 0;
  }
  EXPECT_EQ(missing, 0u) << "acknowledged requests missing from the ledger (seed " << seed << ")";
  EXPECT_EQ(without_result, 0u) << "acknowledged requests with no result (seed " << seed << ")";
  EXPECT_EQ(twice, 0u) << "requests with more than one result (seed " << seed << ")";
  EXPECT_EQ(wrong, 0u) << "results that are not the plugin's output for the request (seed " << seed << ")";
  EXPECT_EQ(orphans, 0u) << "results for no request (seed " << seed << ")";
  if (!HasFailure()) fs::remove_all(directory);
}

// A task whose plugin call segfaults kills its pool process on every attempt: the engine
// restarts the pool each time, the task ends retries_exhausted after its last attempt,
// the pool is not quarantined (3 crashes, crashes_max 1000), and healthy tasks of the same
// type before and after it succeed with their own output.
TEST(ComputeCrash, APoisonTaskThatSegfaultsItsPoolEndsRetriesExhaustedAndTheRestSucceed) {
  RunningEngine running;
  ASSERT_NO_FATAL_FAILURE(start_running_engine("compute-poison", crash_pool, running));
  auto& [directory, instance, config, log, engine, client, view, chain] = running;
  std::set<std::string> healthy_inputs;
  uint64_t nonce = 0;
  auto submit = [&](const std::string& input) {
    ++nonce;
    std::vector<std::byte> bytes(input.size());
    std::memcpy(bytes.data(), input.data(), input.size());
    std::vector<std::byte> tx = ledger::encode_compute_request(nonce, nonce, "crash", bytes);
    std::vector<client::ReceiptMessage> receipt(1);
    Result<bool> queued = client->try_submit(chain, nonce, tx);
    ASSERT_TRUE(queued && *queued);
    ASSERT_EQ(client->wait_receipts(receipt, 30'000), 1u);
    ASSERT_EQ(receipt[0].status, uint16_t(ledger::TxStatus::applied));
  };
  const sched::PoolControl& pool = view->pools.control(0);
  // Healthy tasks, all completed before the poison goes in (so no crash catches them).
  for (int task = 0; task < 40; ++task) {
    healthy_inputs.insert("ok-before-" + std::to_string(task));
    ASSERT_NO_FATAL_FAILURE(submit("ok-before-" + std::to_string(task)));
  }
  ASSERT_TRUE(wait_until([&] { return pool.tasks_completed.load() >= 40; })) << "see " << log;
  ASSERT_NO_FATAL_FAILURE(submit("poison"));
  // Three attempts (retries_max 2), three dead incarnations, three restarts.
  ASSERT_TRUE(wait_until([&] { return pool.restarts.load() >= 3 && view->pool_ready(); })) << "see " << log;
  for (int task = 0; task < 40; ++task) {
    healthy_inputs.insert("ok-after-" + std::to_string(task));
    ASSERT_NO_FATAL_FAILURE(submit("ok-after-" + std::to_string(task)));
  }
  EXPECT_EQ(pool.quarantined.load(), 0u);
  kill(engine, SIGTERM);
  int status = 0;
  waitpid(engine, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "see " << log;
  client.reset();
  view.reset();
  // Healthy tasks still pending at the stop get their results in a finishing run.
  EXPECT_EQ(finish_pending(config, directory, log), 0u) << "see " << log;
  shm::Segment::remove("keel-" + instance);

  LedgerTasks tasks = read_ledger_tasks(directory / "data");
  ASSERT_EQ(tasks.requests.size(), 81u);
  size_t succeeded = 0, exhausted = 0;
  for (const auto& [hash, request] : tasks.requests) {
    auto found = tasks.results.find({request.shard, request.task_mark});
    ASSERT_NE(found, tasks.results.end()) << request.input << " has no result";
    ASSERT_EQ(found->second.size(), 1u) << request.input << " has more than one result";
    const auto& [outcome, output] = found->second.front();
    if (request.input == "poison") {
      EXPECT_EQ(outcome, uint16_t(ledger::ComputeOutcome::retries_exhausted));
      ++exhausted;
    } else {
      EXPECT_EQ(healthy_inputs.count(request.input), 1u) << request.input;
      EXPECT_EQ(outcome, uint16_t(ledger::ComputeOutcome::succeeded)) << request.input;
      EXPECT_EQ(output, request.input);
      succeeded += outcome == uint16_t(ledger::ComputeOutcome::succeeded);
    }
  }
  EXPECT_EQ(exhausted, 1u);
  EXPECT_EQ(succeeded, 80u);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("quarantined:"), std::string::npos) << text;  // the supervisor's event
  EXPECT_NE(text.find("pool crash@0: incarnation 1 (pid "), std::string::npos) << text;
  if (!HasFailure()) fs::remove_all(directory);
}

}  // namespace
}  // namespace keel::node
