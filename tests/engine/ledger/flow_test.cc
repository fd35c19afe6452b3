// Flows on the shard executor (shard.h): deploy, start by key, jobs issued as tasks with
// inputs built from arguments and earlier outputs, results releasing successors, pause,
// resume and cancel as transactions, stale results never ordered, and replay and the
// state's bytes reproducing it all.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>

#include "engine/flow/flow_model.h"
#include "engine/ledger/shard.h"
#include "tests/engine/ledger/ledger_test_support.h"

namespace keel::ledger {
namespace {

using testing::submit;
using testing::submit_internal;

std::vector<std::byte> bytes_of(std::string_view text) {
  const std::byte* raw = reinterpret_cast<const std::byte*>(text.data());
  return std::vector<std::byte>(raw, raw + text.size());
}

flow::FlowModel shipped_model(const std::string& file) {
  Result<flow::FlowModel> model = flow::load_flow_model(std::string(KEEL_SOURCE_DIR) + "/perf/flows/" + file, std::nullopt);
  EXPECT_TRUE(model) << model.error().message;
  return *model;
}

std::vector<std::byte> loan_args(const std::string& document) {
  return encode_flow_args({{"document", document}, {"applicants", "APPL"}, {"portfolio", "PORT"}});
}

std::vector<std::byte> result_for(const OutboundTask& task, std::string_view output,
                                  ComputeOutcome outcome = ComputeOutcome::succeeded) {
  return encode_compute_result(task.task_mark, 0, 1, outcome, 0, bytes_of(output));
}

std::string text_of(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(FlowExecutor, DeployIsIdempotentPerVersionAndRefusesAnotherModelUnderIt) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  flow::FlowModel loan = shipped_model("loan_approval.toml");
  std::vector<std::byte> model = flow::encode_flow_model(loan);
  EXPECT_EQ(submit(shard, encode_flow_deploy(1, 0, model)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_flow_deploy(2, 0, model)), TxStatus::applied) << "the same model again";
  flow::FlowModel changed = loan;
  changed.steps[0].timeout_ms += 1;
  EXPECT_EQ(submit(shard, encode_flow_deploy(3, 0, flow::encode_flow_model(changed))), TxStatus::contract_version_exists);
  changed.version = 2;
  EXPECT_EQ(submit(shard, encode_flow_deploy(4, 0, flow::encode_flow_model(changed))), TxStatus::applied);
  EXPECT_EQ(shard.state().flows.plan_count(), 2u);
  EXPECT_EQ(shard.state().flows.find_plan("loan_approval", 0), 1u) << "version 0 is the newest";
  // Bytes that are not a model are refused before ordering; another shard's deploy is not this one's.
  std::vector<std::byte> garbled = model;
  garbled[garbled.size() / 2] ^= std::byte(0x40);
  EXPECT_EQ(submit(shard, encode_flow_deploy(5, 0, garbled)), TxStatus::bad_flow_model);
  EXPECT_EQ(submit(shard, encode_flow_deploy(6, 1, model)), TxStatus::wrong_shard);
  EXPECT_EQ(shard.open_tx_count(), 4u);
}

TEST(FlowExecutor, ALoanFlowRunsItsJobsAsTasksAndSucceedsOnce) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(shipped_model("loan_approval.toml")))),
            TxStatus::applied);
  // Starts that cannot be: no such contract, arguments that do not match.
  EXPECT_EQ(submit(shard, encode_flow_start(2, "no_such", 0, "k", loan_args("d"))), TxStatus::unknown_contract);
  EXPECT_EQ(submit(shard, encode_flow_start(3, "loan_approval", 7, "k", loan_args("d"))), TxStatus::unknown_contract);
  EXPECT_EQ(submit(shard, encode_flow_start(4, "loan_approval", 0, "k", encode_flow_args({{"document", "d"}}))),
            TxStatus::flow_args_mismatch);
  EXPECT_EQ(submit(shard, encode_flow_start(5, "loan_approval", 0, "k",
                                            encode_flow_args({{"applicants", "a"}, {"document", "d"}, {"extra", "x"},
                                                              {"portfolio", "p"}}))),
            TxStatus::flow_args_mismatch);
  EXPECT_EQ(submit(shard, encode_flow_start(6, "loan_approval", 0, "k", bytes_of("xx"))), TxStatus::bad_flow_args);
  EXPECT_TRUE(shard.open_tasks().empty());

  ASSERT_EQ(submit(shard, encode_flow_start(7, "loan_approval", 0, "loan-17", loan_args("DOCUMENT"))), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_flow_start(8, "loan_approval", 0, "loan-17", loan_args("OTHER"))), TxStatus::flow_exists);
  SealedBlock one = shard.seal(1);
  ASSERT_EQ(one.tasks.size(), 1u);
  const OutboundTask hash = one.tasks[0];
  EXPECT_TRUE(is_flow_task_mark(hash.task_mark));
  EXPECT_EQ(hash.compute_type, "hash");
  EXPECT_EQ(text_of(hash.input), "DOCUMENT");
  EXPECT_EQ(hash.timeout_ms, 5000u);
  EXPECT_EQ(hash.retries_max, 3u);

  ASSERT_EQ(submit_internal(shard, result_for(hash, "digest")), TxStatus::applied);
  EXPECT_EQ(submit_internal(shard, result_for(hash, "digest")), TxStatus::duplicate_result);
  SealedBlock two = shard.seal(2);
  // score, then risk's 16 sub-jobs: split.index (sub-job, count) then the portfolio.
  ASSERT_EQ(two.tasks.size(), 17u);
  EXPECT_EQ(two.tasks[0].compute_type, "credit_score");
  EXPECT_EQ(text_of(two.tasks[0].input), "APPL");
  for (uint32_t sub_job = 0; sub_job < 16; ++sub_job) {
    const OutboundTask& risk = two.tasks[1 + sub_job];
    EXPECT_EQ(risk.compute_type, "var_mc");
    ASSERT_EQ(risk.input.size(), 12u);
    uint32_t index_and_count[2];
    std::memcpy(index_and_count, risk.input.data(), 8);
    EXPECT_EQ(index_and_count[0], sub_job);
    EXPECT_EQ(index_and_count[1], 16u);
    EXPECT_EQ(text_of(risk.input).substr(8), "PORT");
  }
  for (size_t index = two.tasks.size(); index-- > 0;)
    ASSERT_EQ(submit_internal(shard, result_for(two.tasks[index], "r")), TxStatus::applied);
  SealedBlock three = shard.seal(3);
  ASSERT_EQ(three.tasks.size(), 1u);
  EXPECT_EQ(three.tasks[0].compute_type, "noop");
  ASSERT_EQ(submit_internal(shard, result_for(three.tasks[0], "")), TxStatus::applied);
  SealedBlock four = shard.seal(4);
  std::optional<uint64_t> flow = shard.state().flows.flow_of_key("loan-17");
  ASSERT_TRUE(flow);
  EXPECT_EQ(shard.state().flows.summary(*flow)->status, flow::FlowStatus::succeeded);
  EXPECT_EQ(shard.state().flows.summary(*flow)->jobs_succeeded, 19u);

  // Replay of the four blocks gives the same state, flows included; so do its bytes.
  ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
  for (const SealedBlock* block : {&one, &two, &three, &four}) {
    Result<SealedBlock> replayed = replica.replay(block->record);
    ASSERT_TRUE(replayed) << replayed.error().message;
  }
  EXPECT_EQ(replica.state().digest(), shard.state().digest());
  Result<ShardState> read_back = ShardState::deserialize(shard.state().serialize());
  ASSERT_TRUE(read_back) << read_back.error().message;
  EXPECT_EQ(read_back->serialize(), shard.state().serialize());
}

TEST(FlowExecutor, PauseResumeAndCancelAreTransactionsAndCancelledJobsGoStale) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(shipped_model("loan_approval.toml")))),
            TxStatus::applied);
  ASSERT_EQ(submit(shard, encode_flow_start(2, "loan_approval", 0, "a", loan_args("A"))), TxStatus::applied);
  ASSERT_EQ(submit(shard, encode_flow_start(3, "loan_approval", 0, "b", loan_args("B"))), TxStatus::applied);
  SealedBlock one = shard.seal(1);
  ASSERT_EQ(one.tasks.size(), 2u);
  EXPECT_EQ(submit(shard, encode_flow_control(4, FlowAction::pause, "a")), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_flow_control(5, FlowAction::pause, "a")), TxStatus::flow_control_refused);
  EXPECT_EQ(submit(shard, encode_flow_control(6, FlowAction::resume, "nobody")), TxStatus::unknown_flow);
  // a's hash ends while a is paused: nothing more is issued for a until it resumes.
  ASSERT_EQ(submit_internal(shard, result_for(one.tasks[0], "h")), TxStatus::applied);
  EXPECT_TRUE(shard.open_tasks().empty());
  EXPECT_EQ(submit(shard, encode_flow_control(7, FlowAction::resume, "a")), TxStatus::applied);
  EXPECT_EQ(shard.open_tasks().size(), 17u);
  // b is cancelled with its hash running: the hash's result is stale, never ordered.
  EXPECT_EQ(submit(shard, encode_flow_control(8, FlowAction::cancel, "b")), TxStatus::applied);
  EXPECT_EQ(submit_internal(shard, result_for(one.tasks[1], "h")), TxStatus::duplicate_result);
  EXPECT_EQ(submit(shard, encode_flow_control(9, FlowAction::cancel, "b")), TxStatus::flow_control_refused);
  EXPECT_EQ(shard.state().flows.summary(*shard.state().flows.flow_of_key("b"))->status, flow::FlowStatus::cancelled);
  // Every running job is in the list an engine restarted from this state sends again.
  shard.seal(2);
  EXPECT_EQ(shard.pending_task_list().size(), 17u);
}

TEST(FlowExecutor, ASplitArgumentGivesEachSubJobItsPart) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(shipped_model("nightly_interest.toml")))),
            TxStatus::applied);
  auto parts_of = [](int count) {
    std::string value;
    for (int part = 0; part < count; ++part) {
      std::string bytes = "range-" + std::to_string(part);
      uint32_t size = uint32_t(bytes.size());
      value.append(reinterpret_cast<const char*>(&size), 4);
      value += bytes;
    }
    return value;
  };
  EXPECT_EQ(submit(shard, encode_flow_start(2, "nightly_interest", 0, "night", encode_flow_args({{"account_ranges",
                                                                                                  parts_of(63)}}))),
            TxStatus::flow_args_mismatch)
      << "63 parts for a split of 64";
  ASSERT_EQ(submit(shard, encode_flow_start(3, "nightly_interest", 0, "night",
                                            encode_flow_args({{"account_ranges", parts_of(64)}}))),
            TxStatus::applied);
  ASSERT_EQ(shard.open_tasks().size(), 64u);
  for (uint32_t sub_job = 0; sub_job < 64; ++sub_job)
    EXPECT_EQ(text_of(shard.open_tasks()[sub_job].input), "range-" + std::to_string(sub_job));
}


// A batch of results for every sub-job of a split, the first failed: whatever the first
// does to the flow, the batch is ordered whole, each later entry has the effect its own
// compute_result would have had at its turn, and replay gives the same state.
TEST(FlowExecutor, ABatchOfJobResultsAppliesInOrderEvenWhenAnEarlyOneEndsTheFlow) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ShardExecutor twin({"bank", 0, 1}, BlockLimits{});  // the same results, one transaction each
  std::vector<std::byte> deploy = encode_flow_deploy(1, 0, flow::encode_flow_model(shipped_model("nightly_interest.toml")));
  std::string parts;
  for (int part = 0; part < 64; ++part) {
    std::string bytes = "range-" + std::to_string(part);
    uint32_t size = uint32_t(bytes.size());
    parts.append(reinterpret_cast<const char*>(&size), 4);
    parts += bytes;
  }
  std::vector<std::byte> start = encode_flow_start(2, "nightly_interest", 0, "night", encode_flow_args({{"account_ranges", parts}}));
  for (ShardExecutor* executor : {&shard, &twin}) {
    ASSERT_EQ(submit(*executor, deploy), TxStatus::applied);
    ASSERT_EQ(submit(*executor, start), TxStatus::applied);
  }
  std::vector<OutboundTask> jobs(shard.open_tasks().begin(), shard.open_tasks().end());
  ASSERT_EQ(jobs.size(), 64u);
  SealedBlock one = shard.seal(1);
  twin.seal(1);
  std::sort(jobs.begin(), jobs.end(), [](const OutboundTask& a, const OutboundTask& b) { return a.task_mark < b.task_mark; });
  std::vector<std::vector<std::byte>> entries;
  size_t stale_singles = 0;
  for (size_t index = 0; index < jobs.size(); ++index) {
    ComputeOutcome outcome = index == 0 ? ComputeOutcome::plugin_failed : ComputeOutcome::succeeded;
    std::vector<std::byte> entry(compute_result_entry_bytes(2));
    write_compute_result_entry(entry, jobs[index].task_mark, 0, 1, outcome, 0, bytes_of("ok"));
    entries.push_back(entry);
    TxStatus single = submit_internal(twin, encode_compute_result(jobs[index].task_mark, 0, 1, outcome, 0, bytes_of("ok")));
    EXPECT_TRUE(single == TxStatus::applied || single == TxStatus::duplicate_result) << index;
    stale_singles += single == TxStatus::duplicate_result;
  }
  // The failure ended the flow: the other jobs' results went stale one by one.
  EXPECT_EQ(stale_singles, 63u);
  ASSERT_EQ(submit_internal(shard, encode_compute_results(0, entries)), TxStatus::applied);
  SealedBlock two = shard.seal(2);
  twin.seal(2);
  EXPECT_EQ(shard.state().flows.running_jobs().size(), twin.state().flows.running_jobs().size());
  std::vector<uint64_t> flows = shard.state().flows.flow_ids();
  ASSERT_EQ(flows, twin.state().flows.flow_ids());
  for (uint64_t flow : flows) {
    std::optional<flow::FlowSummary> batched = shard.state().flows.summary(flow), single = twin.state().flows.summary(flow);
    ASSERT_TRUE(batched && single);
    EXPECT_EQ(batched->jobs_running, single->jobs_running);
    EXPECT_EQ(batched->jobs_succeeded, single->jobs_succeeded);
    EXPECT_EQ(batched->jobs_failed, single->jobs_failed);
    EXPECT_EQ(int(batched->status), int(single->status));
  }
  EXPECT_EQ(shard.state().tasks_succeeded + shard.state().tasks_failed, 0u) << "flow jobs are not plain tasks";
  ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
  ASSERT_TRUE(replica.replay(one.record));
  ASSERT_TRUE(replica.replay(two.record));
  EXPECT_EQ(replica.state().digest(), shard.state().digest());
}

// Every flow transaction type, at random over 60 blocks (seed printed): deploys of three
// contracts (one with a timer, one whose sub-jobs take parts of an argument), product settings, starts (new and repeated keys), pause,
// resume and cancel, results of every outcome (and stale ones), and timer fires. Replaying
// the blocks from the start, and from a snapshot of the state taken halfway, must give the
// same state, byte for byte, the same summary for every flow, and the same tasks with the
// same inputs, though the live executor has a metrics clock and the replays none.
TEST(FlowExecutor, ReplayReproducesEveryFlowTransactionType) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  ShardExecutor live({"bank", 0, 1}, BlockLimits{});
  flow::FlowModel loan = shipped_model("loan_approval.toml");
  flow::FlowModel sweep;
  sweep.name = "sweep";
  sweep.product = "ops";
  sweep.schedules.push_back(flow::FlowSchedule{"*/5 * * * *", "catch_up", 3, 60, {}});
  flow::FlowStep run;
  run.id = "run";
  run.compute_type = "noop";
  run.split = 4;
  run.split_failures_max = 1;
  sweep.steps.push_back(run);
  ASSERT_TRUE(flow::validate_flow_model(sweep, std::nullopt));
  // Sub-jobs that each take a part of an argument, in a product that runs 3 at a time, so
  // the parts of several flows are read interleaved (the executor's part cursor).
  flow::FlowModel batch;
  batch.name = "batch";
  batch.product = "nightly";
  batch.arguments = {"ranges"};
  flow::FlowStep accrue;
  accrue.id = "accrue";
  accrue.compute_type = "noop";
  accrue.split = 8;
  accrue.input = {{flow::InputKind::argument_part, "ranges"}, {flow::InputKind::split_index, ""}};
  batch.steps.push_back(accrue);
  ASSERT_TRUE(flow::validate_flow_model(batch, std::nullopt));
  auto ranges_of = [](const std::string& key) {
    std::string value;
    for (uint32_t part = 0; part < 8; ++part) {
      std::string bytes = key + "/range-" + std::to_string(part);
      uint32_t size = uint32_t(bytes.size());
      value.append(reinterpret_cast<const char*>(&size), 4);
      value += bytes;
    }
    return encode_flow_args({{"ranges", value}});
  };
  // A metrics clock, as the engine's tiles set one: it must change nothing the ledger holds.
  live.set_flow_metrics_clock(+[]() -> uint64_t {
    static uint64_t tick = 0;
    return ++tick;
  });
  std::vector<SealedBlock> blocks;
  std::vector<OutboundTask> running;  // tasks issued, in no particular order
  std::vector<std::string> keys;
  uint64_t nonce = 1, clock_s = 1795564800;
  std::optional<ShardState> halfway;
  size_t halfway_blocks = 0;
  for (int block = 0; block < 60; ++block) {
    if (block == 0) {
      ASSERT_EQ(submit(live, encode_flow_deploy(nonce++, 0, flow::encode_flow_model(loan))), TxStatus::applied);
      ASSERT_EQ(submit(live, encode_flow_deploy(nonce++, 0, flow::encode_flow_model(sweep))), TxStatus::applied);
      ASSERT_EQ(submit(live, encode_product_set(nonce++, 0, "retail_loans", 5, 8)), TxStatus::applied);
      ASSERT_EQ(submit(live, encode_flow_deploy(nonce++, 0, flow::encode_flow_model(batch))), TxStatus::applied);
      ASSERT_EQ(submit(live, encode_product_set(nonce++, 0, "nightly", 1, 3)), TxStatus::applied);
    }
    for (int tx = 0; tx < 12; ++tx) {
      switch (random() % 6) {
        case 0: {  // a start, sometimes of a key used before
          std::string key = !keys.empty() && random() % 4 == 0 ? keys[random() % keys.size()]
                                                               : "k" + std::to_string(keys.size());
          if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
          if (random() % 2)
            submit(live, encode_flow_start(nonce++, "loan_approval", 0, key, loan_args(key)));
          else
            submit(live, encode_flow_start(nonce++, "batch", 0, key, ranges_of(key)));
          break;
        }
        case 1:
        case 2: {  // a result, of any outcome, for a task that may have gone stale
          if (running.empty()) break;
          size_t pick = random() % running.size();
          ComputeOutcome outcome = random() % 5 == 0 ? ComputeOutcome(1 + random() % 5) : ComputeOutcome::succeeded;
          submit_internal(live, result_for(running[pick], "out" + std::to_string(random() % 100), outcome));
          running.erase(running.begin() + long(pick));
          break;
        }
        case 3: {  // pause, resume or cancel
          if (keys.empty()) break;
          FlowAction action = FlowAction(1 + random() % 3);
          if (action == FlowAction::cancel && random() % 3 != 0) action = FlowAction::resume;
          submit(live, encode_flow_control(nonce++, action, keys[random() % keys.size()]));
          break;
        }
        case 4:  // a product setting
          submit(live, encode_product_set(nonce++, 0, random() % 2 ? "retail_loans" : "ops", uint32_t(random() % 10),
                                          uint32_t(1 + random() % 32)));
          break;
        case 5: {  // the timer, armed or fired, sometimes late
          const flow::FlowTimer& timer = live.state().flows.timers().begin()->second;
          clock_s += 60 + random() % 900;
          if (timer.next_fire_s != flow::timer_unarmed && timer.next_fire_s > clock_s) break;
          submit_internal(live, encode_timer_fire(0, timer.id, timer.next_fire_s, clock_s));
          break;
        }
      }
    }
    if (live.open_tx_count() == 0) continue;
    SealedBlock sealed = live.seal(uint64_t(block + 1));
    running.insert(running.end(), sealed.tasks.begin(), sealed.tasks.end());
    blocks.push_back(std::move(sealed));
    if (block == 30) {
      halfway = live.state();
      halfway_blocks = blocks.size();
    }
  }
  EXPECT_GT(live.state().flows.counters().flows_started, 20u) << "seed " << seed;
  EXPECT_GT(live.state().flows.timers().begin()->second.flows_started, 0u) << "seed " << seed;
  // The tasks a replayed block issues are the live block's, inputs included.
  auto same_tasks = [&](const SealedBlock& replayed, const SealedBlock& original) {
    ASSERT_EQ(replayed.tasks.size(), original.tasks.size()) << "seed " << seed;
    for (size_t index = 0; index < original.tasks.size(); ++index) {
      EXPECT_EQ(replayed.tasks[index].task_mark, original.tasks[index].task_mark) << "seed " << seed;
      EXPECT_EQ(replayed.tasks[index].compute_type, original.tasks[index].compute_type) << "seed " << seed;
      EXPECT_EQ(replayed.tasks[index].input, original.tasks[index].input) << "seed " << seed;
    }
  };
  size_t batch_parts_checked = 0;
  for (const SealedBlock& block : blocks)
    for (const OutboundTask& task : block.tasks)
      if (task.input.size() > 8 && text_of(task.input).find("/range-") != std::string::npos) {
        // Sub-job k of a batch flow got part k of its own flow's ranges.
        uint32_t index_and_count[2];
        std::memcpy(index_and_count, task.input.data() + task.input.size() - 8, 8);
        std::string part = text_of(task.input).substr(0, task.input.size() - 8);
        EXPECT_EQ(part.substr(part.find("/range-")), "/range-" + std::to_string(index_and_count[0])) << "seed " << seed;
        ++batch_parts_checked;
      }
  EXPECT_GT(batch_parts_checked, 4u) << "seed " << seed;
  ShardExecutor from_start({"bank", 0, 1}, BlockLimits{});
  for (const SealedBlock& block : blocks) {
    Result<SealedBlock> replayed = from_start.replay(block.record);
    ASSERT_TRUE(replayed) << "seed " << seed;
    same_tasks(*replayed, block);
  }
  ASSERT_TRUE(halfway);
  Result<ShardState> snapshot = ShardState::deserialize(halfway->serialize());
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ShardExecutor from_snapshot({"bank", 0, 1}, BlockLimits{});
  from_snapshot.restore(std::move(*snapshot));
  for (size_t index = halfway_blocks; index < blocks.size(); ++index) {
    Result<SealedBlock> replayed = from_snapshot.replay(blocks[index].record);
    ASSERT_TRUE(replayed) << "seed " << seed;
    same_tasks(*replayed, blocks[index]);
  }
  for (const ShardExecutor* replayed : {&from_start, &from_snapshot}) {
    EXPECT_EQ(replayed->state().serialize(), live.state().serialize()) << "seed " << seed;
    const flow::FlowTable& flows = replayed->state().flows;
    ASSERT_EQ(flows.flow_ids(), live.state().flows.flow_ids());
    for (uint64_t flow_id : flows.flow_ids()) {
      std::optional<flow::FlowSummary> mine = flows.summary(flow_id), theirs = live.state().flows.summary(flow_id);
      EXPECT_EQ(mine->status, theirs->status) << "flow " << flow_id << ", seed " << seed;
      EXPECT_EQ(mine->steps, theirs->steps) << "flow " << flow_id << ", seed " << seed;
      EXPECT_EQ(mine->jobs_succeeded, theirs->jobs_succeeded);
      EXPECT_EQ(mine->jobs_failed, theirs->jobs_failed);
    }
    EXPECT_EQ(flows.timers(), live.state().flows.timers());
  }
}

}  // namespace
}  // namespace keel::ledger
