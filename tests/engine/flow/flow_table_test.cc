#include "engine/flow/flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>

namespace keel::flow {
namespace {

// A step of a test model: the steps it runs after and whose outputs it reads, by index.
struct StepSpec {
  std::vector<uint16_t> after;
  uint32_t split = 1;
  uint32_t failures_max = 0;
  std::vector<uint16_t> reads;
};

StepSpec step(std::vector<uint16_t> after, uint32_t split = 1, uint32_t failures_max = 0,
              std::vector<uint16_t> reads = {}) {
  return StepSpec{std::move(after), split, failures_max, std::move(reads)};
}

// A valid model of noop steps s0, s1, ...
FlowModel model_of(std::string name, std::string product, const std::vector<StepSpec>& steps, uint32_t version = 1) {
  FlowModel model{std::move(name), version, std::move(product), {}, {}, {}};
  for (size_t index = 0; index < steps.size(); ++index) {
    FlowStep step;
    step.id = "s" + std::to_string(index);
    step.compute_type = "noop";
    for (uint16_t after : steps[index].after) step.after.push_back("s" + std::to_string(after));
    for (uint16_t read : steps[index].reads) step.input.push_back({InputKind::step_output, "s" + std::to_string(read)});
    step.split = steps[index].split;
    step.split_failures_max = steps[index].failures_max;
    model.steps.push_back(std::move(step));
  }
  Result<void> valid = validate_flow_model(model, std::nullopt);
  EXPECT_TRUE(valid) << valid.error().message;
  return model;
}

// The loan approval's shape: hash -> (score, risk split 16) -> decision, which reads risk.
FlowModel loan_plan(std::string product = "loans") {
  return model_of("loan_approval", std::move(product), {step({}), step({0}), step({0}, 16), step({1, 2}, 1, 0, {2})});
}

std::vector<uint16_t> steps_of(const std::vector<JobDispatch>& jobs) {
  std::vector<uint16_t> steps;
  for (const JobDispatch& job : jobs) steps.push_back(job.step);
  return steps;
}

TEST(FlowTable, AChainRunsStepByStepAndSucceeds) {
  FlowTable table;
  uint32_t plan = table.add_plan(model_of("chain", "p", {step({}), step({0}), step({1})}));
  std::vector<JobDispatch> out;
  StartResult started = table.start("k1", plan, out);
  ASSERT_EQ(started.outcome, StartOutcome::started);
  ASSERT_EQ(steps_of(out), (std::vector<uint16_t>{0}));
  EXPECT_EQ(table.summary(started.flow)->status, FlowStatus::running);
  for (uint16_t expected = 1; expected <= 3; ++expected) {
    JobDispatch job = out.back();
    out.clear();
    ASSERT_EQ(table.complete(job.job_mark, JobOutcome::succeeded, "", out), CompleteOutcome::applied);
    if (expected < 3) ASSERT_EQ(steps_of(out), (std::vector<uint16_t>{expected}));
    else EXPECT_TRUE(out.empty());
  }
  FlowSummary done = *table.summary(started.flow);
  EXPECT_EQ(done.status, FlowStatus::succeeded);
  EXPECT_EQ(done.jobs_succeeded, 3u);
  EXPECT_EQ(table.live_flows(), 0u);
  EXPECT_EQ(table.running_job_count(), 0u);
  EXPECT_EQ(table.counters().flows_succeeded, 1u);
}

TEST(FlowTable, ParallelBranchesAndASplitFanInOnce) {
  FlowTable table;
  uint32_t plan = table.add_plan(loan_plan());
  std::vector<JobDispatch> out;
  uint64_t flow = table.start("loan-1", plan, out).flow;
  ASSERT_EQ(out.size(), 1u);
  JobDispatch hash = out[0];
  out.clear();
  table.complete(hash.job_mark, JobOutcome::succeeded, "", out);
  // score, then the 16 risk sub-jobs, 0..15.
  ASSERT_EQ(out.size(), 17u);
  EXPECT_EQ(out[0].step, 1);
  for (uint32_t sub_job = 0; sub_job < 16; ++sub_job) {
    EXPECT_EQ(out[1 + sub_job].step, 2);
    EXPECT_EQ(out[1 + sub_job].sub_job, sub_job);
    EXPECT_EQ(out[1 + sub_job].split, 16u);
  }
  std::vector<JobDispatch> parallel = out;
  // Finish them in reverse order; the decision is released by the last one only.
  std::vector<JobDispatch> released;
  for (size_t index = parallel.size(); index-- > 0;) {
    out.clear();
    table.complete(parallel[index].job_mark, JobOutcome::succeeded,
                   parallel[index].step == 2 ? std::string(1, char('a' + parallel[index].sub_job)) : "", out);
    if (index > 0) {
      EXPECT_TRUE(out.empty()) << "released before all of its dependencies finished";
    }
    released.insert(released.end(), out.begin(), out.end());
  }
  ASSERT_EQ(steps_of(released), (std::vector<uint16_t>{3}));
  // The split's kept output is its sub-jobs' outputs in sub-job order, whatever order they ended in.
  EXPECT_EQ(table.output(flow, 2), std::optional<std::string>("abcdefghijklmnop"));
  EXPECT_EQ(table.output(flow, 1), std::nullopt);  // not kept: nobody reads it
  EXPECT_EQ(table.summary(flow)->steps,
            (std::vector<JobStatus>{JobStatus::succeeded, JobStatus::succeeded, JobStatus::succeeded, JobStatus::running}));
  out.clear();
  table.complete(released[0].job_mark, JobOutcome::succeeded, "", out);
  EXPECT_EQ(table.summary(flow)->status, FlowStatus::succeeded);
  EXPECT_EQ(table.summary(flow)->jobs_succeeded, 19u);
}

TEST(FlowTable, AFailedSubJobFailsTheFlowAndItsRunningJobsGoStale) {
  FlowTable table;
  uint32_t plan = table.add_plan(model_of("split", "p", {step({}, 4), step({0})}));
  std::vector<JobDispatch> out;
  uint64_t flow = table.start("k", plan, out).flow;
  ASSERT_EQ(out.size(), 4u);
  std::vector<JobDispatch> jobs = out;
  out.clear();
  EXPECT_EQ(table.complete(jobs[0].job_mark, JobOutcome::succeeded, "", out), CompleteOutcome::applied);
  EXPECT_EQ(table.complete(jobs[1].job_mark, JobOutcome::failed, "", out), CompleteOutcome::applied);
  EXPECT_TRUE(out.empty());
  FlowSummary failed = *table.summary(flow);
  EXPECT_EQ(failed.status, FlowStatus::failed);
  EXPECT_EQ(failed.jobs_failed, 1u);
  EXPECT_EQ(table.running_job_count(), 0u);
  // The other attempts still come back: each is stale, with no effect.
  EXPECT_EQ(table.complete(jobs[2].job_mark, JobOutcome::succeeded, "", out), CompleteOutcome::stale);
  EXPECT_EQ(table.complete(jobs[3].job_mark, JobOutcome::failed, "", out), CompleteOutcome::stale);
  EXPECT_EQ(table.complete(jobs[0].job_mark, JobOutcome::succeeded, "", out), CompleteOutcome::stale);
  EXPECT_EQ(table.counters().results_stale, 3u);
  EXPECT_EQ(table.summary(flow)->jobs_succeeded, 1u);
}

TEST(FlowTable, ASplitToleratesUpToItsFailuresMax) {
  FlowTable table;
  uint32_t tolerant = table.add_plan(model_of("tolerant", "p", {step({}, 5, 2)}));
  for (uint32_t failures : {2u, 3u}) {
    std::vector<JobDispatch> out;
    uint64_t flow = table.start("k" + std::to_string(failures), tolerant, out).flow;
    ASSERT_EQ(out.size(), 5u);
    std::vector<JobDispatch> jobs = out;
    for (uint32_t index = 0; index < 5; ++index) {
      if (!table.summary(flow) || flow_finished(table.summary(flow)->status)) break;
      table.complete(jobs[index].job_mark, index < failures ? JobOutcome::failed : JobOutcome::succeeded, "", out);
    }
    EXPECT_EQ(table.summary(flow)->status, failures <= 2 ? FlowStatus::succeeded : FlowStatus::failed) << failures;
  }
}

TEST(FlowTable, ATimedOutJobEndsItsStepTimedOut) {
  FlowTable table;
  uint32_t plan = table.add_plan(model_of("one", "p", {step({}), step({0})}));
  std::vector<JobDispatch> out;
  uint64_t flow = table.start("k", plan, out).flow;
  // Keep the flow's summary reachable once finished: it stays in the kept FIFO.
  table.complete(out[0].job_mark, JobOutcome::timed_out, "", out);
  EXPECT_EQ(table.summary(flow)->status, FlowStatus::failed);
  EXPECT_EQ(table.counters().jobs_timed_out, 1u);
}

TEST(FlowTable, PauseHoldsNewJobsAndResumeReleasesThem) {
  FlowTable table;
  uint32_t plan = table.add_plan(model_of("chain", "p", {step({}), step({0})}));
  std::vector<JobDispatch> out;
  uint64_t flow = table.start("k", plan, out).flow;
  JobDispatch first = out[0];
  out.clear();
  EXPECT_EQ(table.pause(flow), ControlOutcome::applied);
  EXPECT_EQ(table.pause(flow), ControlOutcome::not_allowed);
  EXPECT_EQ(table.summary(flow)->status, FlowStatus::paused);
  // The running job finishes and counts, but its successor waits.
  EXPECT_EQ(table.complete(first.job_mark, JobOutcome::succeeded, "", out), CompleteOutcome::applied);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(table.summary(flow)->steps[1], JobStatus::pending);
  EXPECT_EQ(table.resume(flow, out), ControlOutcome::applied);
  EXPECT_EQ(table.resume(flow, out), ControlOutcome::not_allowed);
  ASSERT_EQ(steps_of(out), (std::vector<uint16_t>{1}));
  EXPECT_EQ(table.summary(flow)->status, FlowStatus::running);
  JobDispatch second = out[0];
  out.clear();
  table.complete(second.job_mark, JobOutcome::succeeded, "", out);
  EXPECT_EQ(table.summary(flow)->status, FlowStatus::succeeded);
  EXPECT_EQ(table.pause(flow), ControlOutcome::not_allowed);
  EXPECT_EQ(table.resume(flow, out), ControlOutcome::not_allowed);
  EXPECT_EQ(table.pause(999), ControlOutcome::unknown_flow);
}

TEST(FlowTable, CancelEndsTheFlowAndFreesItsProductsSlots) {
  FlowTable table;
  std::vector<JobDispatch> out;
  table.set_product("p", {.priority = 0, .running_max = 2}, out);
  uint32_t plan = table.add_plan(model_of("split", "p", {step({}, 3), step({0})}));
  uint64_t first = table.start("a", plan, out).flow;
  uint64_t second = table.start("b", plan, out).flow;
  ASSERT_EQ(out.size(), 2u);  // the product's two slots, both the first flow's
  EXPECT_EQ(table.summary(second)->status, FlowStatus::created);
  EXPECT_EQ(table.product_queued("p"), 4u);
  std::vector<JobDispatch> running = out;
  out.clear();
  EXPECT_EQ(table.cancel(first, out), ControlOutcome::applied);
  EXPECT_EQ(table.summary(first)->status, FlowStatus::cancelled);
  // The freed slots go to the second flow.
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].flow, second);
  EXPECT_EQ(out[1].flow, second);
  EXPECT_EQ(table.product_running("p"), 2u);
  EXPECT_EQ(table.complete(running[0].job_mark, JobOutcome::succeeded, "", out), CompleteOutcome::stale);
  EXPECT_EQ(table.cancel(first, out), ControlOutcome::not_allowed);
  EXPECT_EQ(table.cancel(12345, out), ControlOutcome::unknown_flow);
}

TEST(FlowTable, TheSameKeyReturnsTheSameFlowWhileItIsKept) {
  FlowTable table(FlowTableLimits{.live_flows_max = 2, .finished_kept_max = 1});
  uint32_t plan = table.add_plan(model_of("one", "p", {step({})}));
  std::vector<JobDispatch> out;
  StartResult first = table.start("order-1", plan, out);
  ASSERT_EQ(out.size(), 1u);
  StartResult again = table.start("order-1", plan, out);
  EXPECT_EQ(again.outcome, StartOutcome::existing);
  EXPECT_EQ(again.flow, first.flow);
  EXPECT_EQ(out.size(), 1u) << "a repeated start dispatched a job";
  EXPECT_EQ(table.start("order-2", plan, out).outcome, StartOutcome::started);
  EXPECT_EQ(table.start("order-3", plan, out).outcome, StartOutcome::flows_full);
  EXPECT_EQ(table.start("order-4", 7, out).outcome, StartOutcome::unknown_plan);
  // Finished, and kept: still the same flow.
  table.complete(out[0].job_mark, JobOutcome::succeeded, "", out);
  EXPECT_EQ(table.start("order-1", plan, out).flow, first.flow);
  EXPECT_EQ(table.flow_of_key("order-1"), first.flow);
  // A second finished flow pushes the first out of the kept FIFO: its key is free again.
  table.complete(out[1].job_mark, JobOutcome::succeeded, "", out);
  EXPECT_EQ(table.summary(first.flow), std::nullopt);
  EXPECT_EQ(table.flow_of_key("order-1"), std::nullopt);
  StartResult reused = table.start("order-1", plan, out);
  EXPECT_EQ(reused.outcome, StartOutcome::started);
  EXPECT_NE(reused.flow, first.flow);
}

TEST(FlowTable, ABatchProductCannotTakeAnInteractiveProductsSlots) {
  FlowTable table;
  std::vector<JobDispatch> out;
  table.set_product("batch", {.priority = 0, .running_max = 4}, out);
  table.set_product("interactive", {.priority = 10, .running_max = 8}, out);
  uint32_t nightly = table.add_plan(model_of("nightly", "batch", {step({}, 1000)}));
  uint32_t loan = table.add_plan(loan_plan("interactive"));
  table.start("night", nightly, out);
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(table.product_queued("batch"), 996u);
  out.clear();
  for (int index = 0; index < 8; ++index) table.start("loan-" + std::to_string(index), loan, out);
  EXPECT_EQ(out.size(), 8u) << "the interactive product's slots";
  EXPECT_EQ(table.product_running("batch"), 4u);
  EXPECT_EQ(table.product_running("interactive"), 8u);
  // A batch job ends: its slot goes to the next batch job, never past the batch limit.
  std::vector<JobDispatch> batch_running = table.running_jobs();  // mark order: batch first
  ASSERT_EQ(batch_running[0].flow, 1u);
  out.clear();
  table.complete(batch_running[0].job_mark, JobOutcome::succeeded, "", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flow, 1u);
  EXPECT_EQ(table.product_running("batch"), 4u);
  // An interactive job ends: its slot goes to that product's queue, not to the batch.
  out.clear();
  for (const JobDispatch& job : table.running_jobs())
    if (job.flow > 1) {
      table.complete(job.job_mark, JobOutcome::succeeded, "", out);  // a loan's hash: releases score and risk
      break;
    }
  ASSERT_FALSE(out.empty());
  EXPECT_NE(out[0].flow, 1u);
  // Raising the batch limit dispatches more at once.
  out.clear();
  table.set_product("batch", {.priority = 0, .running_max = 6}, out);
  EXPECT_EQ(out.size(), 2u);
}

TEST(FlowTable, AKeptOutputPastItsBoundFailsTheStep) {
  FlowTable table(FlowTableLimits{.output_bytes_max = 8});
  uint32_t plan = table.add_plan(model_of("big", "p", {step({}, 2), step({0}, 1, 0, {0})}));
  std::vector<JobDispatch> out;
  uint64_t flow = table.start("k", plan, out).flow;
  std::vector<JobDispatch> jobs = out;
  table.complete(jobs[0].job_mark, JobOutcome::succeeded, "12345", out);
  table.complete(jobs[1].job_mark, JobOutcome::succeeded, "67890", out);
  EXPECT_EQ(table.summary(flow)->status, FlowStatus::failed);
}

TEST(FlowTable, ProductsAndPlansStopAtTheirLimits) {
  FlowTable table(FlowTableLimits{.products_max = 2, .plans_max = 3});
  std::vector<JobDispatch> out;
  EXPECT_TRUE(table.set_product("a", {}, out));
  EXPECT_TRUE(table.set_product("b", {}, out));
  EXPECT_FALSE(table.set_product("c", {}, out)) << "a third product";
  EXPECT_TRUE(table.set_product("a", {.priority = 3, .running_max = 5}, out)) << "changing one is fine";
  EXPECT_TRUE(table.can_add_plan(model_of("x", "a", {step({})})));
  EXPECT_FALSE(table.can_add_plan(model_of("x", "c", {step({})}))) << "its product would be a third";
  table.add_plan(model_of("x", "a", {step({})}));
  table.add_plan(model_of("x", "b", {step({})}, 2));
  table.add_plan(model_of("x", "a", {step({})}, 3));
  EXPECT_FALSE(table.can_add_plan(model_of("x", "a", {step({})}, 4))) << "a fourth plan";
}

TEST(FlowTable, EndedFlowsDoNotPileUpInAFullProductsQueue) {
  FlowTable table;
  std::vector<JobDispatch> out;
  table.set_product("p", {.priority = 0, .running_max = 1}, out);
  uint32_t plan = table.add_plan(model_of("one", "p", {step({})}));
  table.start("long", plan, out);  // holds the product's one slot
  ASSERT_EQ(out.size(), 1u);
  std::vector<std::byte> before;
  table.serialize(before);
  for (int index = 0; index < 1000; ++index) {
    uint64_t flow = table.start("k" + std::to_string(index), plan, out).flow;
    ASSERT_EQ(table.cancel(flow, out), ControlOutcome::applied);
  }
  EXPECT_EQ(out.size(), 1u);
  std::vector<std::byte> after;
  table.serialize(after);
  // 1000 kept finished summaries (36 bytes and the key each) are expected; 1000 dead
  // queue entries (10 bytes each) would add 10 KB more: at most 130 may await compaction.
  size_t summaries = 0;
  for (int index = 0; index < 1000; ++index) summaries += 36 + ("k" + std::to_string(index)).size();
  EXPECT_LE(after.size() - before.size(), summaries + 130 * 10);
  // The slot frees: the queue has nothing live left to send.
  table.complete(out[0].job_mark, JobOutcome::succeeded, "", out);
  EXPECT_EQ(out.size(), 1u);
}

// Random DAGs, random outcomes, random completion order and random pause/resume/cancel,
// against the rules: a job is dispatched only after every sub-job of each dependency of
// its step ended, each mark's result applies once, no product runs past its limit nor the
// table past running_jobs_max. Two tables fed the same events dispatch the same jobs
// (determinism, which replay relies on).
TEST(FlowTable, RandomFlowsKeepEveryRule) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  FlowTableLimits limits{.running_jobs_max = 12};
  FlowTable table(limits), twin(limits);
  std::vector<JobDispatch> out, twin_out;
  table.set_product("p0", {.priority = 1, .running_max = 8}, out);
  twin.set_product("p0", {.priority = 1, .running_max = 8}, twin_out);
  table.set_product("p1", {.priority = 0, .running_max = 6}, out);
  twin.set_product("p1", {.priority = 0, .running_max = 6}, twin_out);
  std::vector<uint32_t> plans;
  for (int plan_index = 0; plan_index < 6; ++plan_index) {
    std::vector<StepSpec> steps;
    for (size_t index = 0, count = 1 + random() % 8; index < count; ++index) {
      std::vector<uint16_t> after;
      for (size_t earlier = 0; earlier < index; ++earlier)
        if (random() % 3 == 0) after.push_back(uint16_t(earlier));
      uint32_t split = random() % 4 == 0 ? uint32_t(1 + random() % 6) : 1;
      steps.push_back(step(after, split, split > 1 ? uint32_t(random() % 2) : 0));
    }
    FlowModel model = model_of("c" + std::to_string(plan_index), plan_index % 2 ? "p0" : "p1", steps);
    plans.push_back(table.add_plan(model));
    twin.add_plan(model);
  }
  std::map<uint64_t, JobDispatch> running;           // by mark
  std::map<uint64_t, std::set<uint16_t>> succeeded;  // steps whose every job ended, per flow
  std::map<std::pair<uint64_t, uint16_t>, uint32_t> step_successes;
  auto take = [&](std::vector<JobDispatch>& jobs, std::vector<JobDispatch>& twin_jobs) {
    ASSERT_EQ(jobs.size(), twin_jobs.size());
    for (size_t index = 0; index < jobs.size(); ++index) {
      const JobDispatch& job = jobs[index];
      ASSERT_EQ(job.job_mark, twin_jobs[index].job_mark);
      ASSERT_EQ(job.flow, twin_jobs[index].flow);
      ASSERT_EQ(job.step, twin_jobs[index].step);
      ASSERT_EQ(job.sub_job, twin_jobs[index].sub_job);
      const FlowPlan& plan = table.plan(table.summary(job.flow)->plan);
      for (uint16_t dependency : plan.steps[job.step].dependencies)
        ASSERT_TRUE(succeeded[job.flow].count(dependency)) << "dispatched before its dependency; seed " << seed;
      ASSERT_TRUE(running.emplace(job.job_mark, job).second);
    }
    jobs.clear();
    twin_jobs.clear();
    ASSERT_LE(table.product_running("p0"), 8u);
    ASSERT_LE(table.product_running("p1"), 6u);
    ASSERT_LE(table.running_job_count(), 12u);
  };
  uint64_t flows_started = 0;
  for (int event = 0; event < 4000; ++event) {
    uint64_t choice = random() % 10;
    if (choice < 2 || running.empty()) {
      std::string key = "k" + std::to_string(random() % 200);
      uint32_t plan = plans[random() % plans.size()];
      StartResult started = table.start(key, plan, out);
      ASSERT_EQ(twin.start(key, plan, twin_out).flow, started.flow);
      flows_started += started.outcome == StartOutcome::started;
    } else if (choice < 9) {
      auto picked = std::next(running.begin(), long(random() % running.size()));
      JobDispatch job = picked->second;
      running.erase(picked);
      JobOutcome outcome = random() % 12 == 0 ? JobOutcome::failed : JobOutcome::succeeded;
      bool live_before = table.summary(job.flow) && !flow_finished(table.summary(job.flow)->status);
      CompleteOutcome applied = table.complete(job.job_mark, outcome, "", out);
      ASSERT_EQ(twin.complete(job.job_mark, outcome, "", twin_out), applied);
      ASSERT_EQ(applied == CompleteOutcome::applied, live_before) << "seed " << seed;
      if (applied == CompleteOutcome::applied) {
        // A second result for the same mark never applies.
        std::vector<JobDispatch> none;
        ASSERT_EQ(table.complete(job.job_mark, JobOutcome::succeeded, "", none), CompleteOutcome::stale);
        ASSERT_EQ(twin.complete(job.job_mark, JobOutcome::succeeded, "", none), CompleteOutcome::stale);
        // Every sub-job of a step ended (some may have failed within its tolerance).
        if (++step_successes[{job.flow, job.step}] == job.split) succeeded[job.flow].insert(job.step);
      }
    } else {
      if (running.empty()) continue;
      uint64_t flow = std::next(running.begin(), long(random() % running.size()))->second.flow;
      uint64_t action = random() % 3;
      ControlOutcome done = action == 0 ? table.pause(flow) : action == 1 ? table.resume(flow, out) : table.cancel(flow, out);
      ControlOutcome twin_done =
          action == 0 ? twin.pause(flow) : action == 1 ? twin.resume(flow, twin_out) : twin.cancel(flow, twin_out);
      ASSERT_EQ(done, twin_done);
    }
    ASSERT_NO_FATAL_FAILURE(take(out, twin_out));
    // Resume every paused flow now and then, so the run drains.
    if (event % 50 == 49)
      for (const auto& [mark, job] : std::map<uint64_t, JobDispatch>(running)) {
        if (table.resume(job.flow, out) == ControlOutcome::applied) {
          ASSERT_EQ(twin.resume(job.flow, twin_out), ControlOutcome::applied);
        }
        ASSERT_NO_FATAL_FAILURE(take(out, twin_out));
      }
  }
  EXPECT_GT(flows_started, 100u);
  const FlowTableCounters& counters = table.counters();
  EXPECT_EQ(counters.flows_started, flows_started);
  EXPECT_GT(counters.flows_succeeded, 0u);
  EXPECT_LE(counters.flows_succeeded + counters.flows_failed + counters.flows_cancelled, flows_started);
  EXPECT_EQ(table.running_job_count(), twin.running_job_count());
}

}  // namespace
}  // namespace keel::flow

namespace keel::flow {
namespace {

std::vector<std::byte> bytes_of(const FlowTable& table) {
  std::vector<std::byte> bytes;
  table.serialize(bytes);
  return bytes;
}

FlowTable read_back(const std::vector<std::byte>& bytes) {
  ledger::ByteReader in{bytes, "flow table"};
  Result<FlowTable> table = FlowTable::deserialize(in, FlowTableLimits{});
  EXPECT_TRUE(table) << table.error().message;
  EXPECT_TRUE(in.at_end());
  return std::move(*table);
}

// A table mid-run: products (one named before any plan), queued and running jobs, a
// paused flow, kept outputs, finished flows.
FlowTable busy_table(std::vector<JobDispatch>& running) {
  FlowTable table;
  std::vector<JobDispatch> out;
  table.set_product("zeta", {.priority = 1, .running_max = 3}, out);
  uint32_t loan = table.add_plan(loan_plan("alpha"));
  uint32_t nightly = table.add_plan(model_of("nightly", "zeta", {step({}, 10)}, 2));
  table.start("n1", nightly, out);
  for (int index = 0; index < 4; ++index) table.start("loan-" + std::to_string(index), loan, out);
  // Finish the first loan's hash and some of its risk sub-jobs (kept outputs).
  table.complete(out[3].job_mark, JobOutcome::succeeded, "", out);
  for (size_t index = 7; index < out.size() && index < 12; ++index)
    table.complete(out[index].job_mark, JobOutcome::succeeded, "part" + std::to_string(index), out);
  table.complete(out[4].job_mark, JobOutcome::failed, "", out);  // the second loan fails
  table.pause(5);
  for (const JobDispatch& job : table.running_jobs()) running.push_back(job);
  return table;
}

TEST(FlowTableBytes, ATableReadBackHasTheSameBytesAndBehavesTheSame) {
  std::vector<JobDispatch> running;
  FlowTable table = busy_table(running);
  std::vector<std::byte> bytes = bytes_of(table);
  FlowTable copy = read_back(bytes);
  EXPECT_EQ(bytes_of(copy), bytes);
  // The same events from here give the same dispatches and the same bytes.
  std::vector<JobDispatch> out, copy_out;
  ASSERT_FALSE(running.empty());
  for (const JobDispatch& job : running) {
    ASSERT_EQ(table.complete(job.job_mark, JobOutcome::succeeded, "x", out),
              copy.complete(job.job_mark, JobOutcome::succeeded, "x", copy_out));
  }
  EXPECT_EQ(table.resume(5, out), copy.resume(5, copy_out));
  EXPECT_EQ(table.start("late", 0, out).flow, copy.start("late", 0, copy_out).flow);
  ASSERT_EQ(out.size(), copy_out.size());
  ASSERT_FALSE(out.empty());
  for (size_t index = 0; index < out.size(); ++index) {
    EXPECT_EQ(out[index].job_mark, copy_out[index].job_mark);
    EXPECT_EQ(out[index].flow, copy_out[index].flow);
    EXPECT_EQ(out[index].step, copy_out[index].step);
    EXPECT_EQ(out[index].sub_job, copy_out[index].sub_job);
  }
  EXPECT_EQ(bytes_of(copy), bytes_of(table));
  EXPECT_EQ(copy.flow_of_key("loan-1"), table.flow_of_key("loan-1"));
  EXPECT_EQ(copy.summary(3)->status, FlowStatus::failed);
}

TEST(FlowTableBytes, DamagedBytesAreAnErrorNeverACrash) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  std::vector<JobDispatch> running;
  std::vector<std::byte> bytes = bytes_of(busy_table(running));
  // Every truncation is an error.
  for (size_t size = 0; size < bytes.size(); ++size) {
    ledger::ByteReader in{std::span(bytes.data(), size), "flow table"};
    Result<FlowTable> table = FlowTable::deserialize(in, FlowTableLimits{});
    if (table) {
      ADD_FAILURE() << "a table cut to " << size << " of " << bytes.size() << " bytes was read";
      break;
    }
  }
  // Random bit flips: an error, or a table that serializes to exactly what was read.
  size_t accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::byte> damaged = bytes;
    for (int flips = 1 + random() % 3; flips > 0; --flips)
      damaged[random() % damaged.size()] ^= std::byte(1u << (random() % 8));
    ledger::ByteReader in{damaged, "flow table"};
    Result<FlowTable> table = FlowTable::deserialize(in, FlowTableLimits{});
    if (!table) {
      EXPECT_NE(table.error().message.find("flow table: offset "), std::string::npos) << table.error().message;
      continue;
    }
    if (!in.at_end()) continue;  // bytes left over: the reader's caller refuses them
    ++accepted;
    std::vector<std::byte> written = bytes_of(*table);
    if (written != damaged) {
      size_t at = 0;
      while (at < std::min(written.size(), damaged.size()) && written[at] == damaged[at]) ++at;
      ADD_FAILURE() << "a table read back does not write what was read: from offset " << at << " of "
                    << damaged.size() << " (seed " << seed << ")";
      break;
    }
  }
  std::printf("%zu of 3000 damaged tables were still well formed\n", accepted);
}

}  // namespace
}  // namespace keel::flow
