#include "engine/flow/flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "engine/ledger/transaction.h"  // FlowArgHeader (header-only)

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

// A flow start's arguments in the ledger's form (ledger::encode_flow_args: per argument a
// FlowArgHeader, the name, the value), in the order given.
std::string args_of(const std::vector<std::pair<std::string, std::string>>& args) {
  std::string out;
  for (const auto& [name, value] : args) {
    ledger::FlowArgHeader header{uint16_t(name.size()), 0, uint32_t(value.size())};
    out.append(reinterpret_cast<const char*>(&header), sizeof header);
    out += name;
    out += value;
  }
  return out;
}

// An argument's value in parts: per part a u32 length, then the bytes.
std::string parts_of(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) {
    uint32_t size = uint32_t(part.size());
    out.append(reinterpret_cast<const char*>(&size), sizeof size);
    out += part;
  }
  return out;
}

// The model with arguments its steps read: "doc" whole by its first step and, when a step
// is split, "rows" in parts by the first split step.
FlowModel with_arguments(FlowModel model) {
  model.arguments.push_back("doc");
  model.steps[0].input.push_back({InputKind::argument, "doc"});
  for (FlowStep& step : model.steps)
    if (step.split > 1) {
      model.arguments.push_back("rows");
      step.input.push_back({InputKind::argument_part, "rows"});
      break;
    }
  Result<void> valid = validate_flow_model(model, std::nullopt);
  EXPECT_TRUE(valid) << valid.error().message;
  return model;
}

// Arguments a flow of the model starts with: each declared one, in as many parts as its
// steps take.
std::string args_for(const FlowModel& model) {
  Result<CompiledFlow> compiled = compile_flow_model(model);
  EXPECT_TRUE(compiled);
  std::map<std::string, std::string> args;  // ascending names
  for (size_t argument = 0; argument < model.arguments.size(); ++argument) {
    std::vector<std::string> parts;
    for (uint32_t part = 0; part < compiled->argument_parts[argument]; ++part)
      parts.push_back("r" + std::to_string(part));
    args[model.arguments[argument]] = parts.empty() ? "value" : parts_of(parts);
  }
  return args_of({args.begin(), args.end()});
}

std::vector<std::byte> bytes_of(const FlowTable& table) {
  std::vector<std::byte> bytes;
  table.serialize(bytes);
  return bytes;
}

// The table's bytes read back (with the limits it runs with) write the same bytes.
void expect_reads_back(const FlowTable& table, FlowTableLimits limits, uint64_t seed) {
  std::vector<std::byte> bytes = bytes_of(table);
  ledger::ByteReader in{bytes, "flow table"};
  Result<FlowTable> copy = FlowTable::deserialize(in, limits);
  ASSERT_TRUE(copy) << copy.error().message << " (seed " << seed << ")";
  EXPECT_TRUE(in.at_end());
  EXPECT_EQ(bytes_of(*copy), bytes) << "seed " << seed;
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
// (determinism, which replay relies on). Now and then the table is written and read back:
// every state the operations reach passes deserialize's checks.
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
  std::vector<std::string> plan_args;  // by plan
  for (int plan_index = 0; plan_index < 6; ++plan_index) {
    std::vector<StepSpec> steps;
    for (size_t index = 0, count = 1 + random() % 8; index < count; ++index) {
      std::vector<uint16_t> after;
      for (size_t earlier = 0; earlier < index; ++earlier)
        if (random() % 3 == 0) after.push_back(uint16_t(earlier));
      uint32_t split = random() % 4 == 0 ? uint32_t(1 + random() % 6) : 1;
      // Some steps read a dependency's output: the table keeps it while the flow lives.
      std::vector<uint16_t> reads;
      if (!after.empty() && random() % 2 == 0) reads.push_back(after[random() % after.size()]);
      steps.push_back(step(after, split, split > 1 ? uint32_t(random() % 2) : 0, reads));
    }
    FlowModel model = model_of("c" + std::to_string(plan_index), plan_index % 2 ? "p0" : "p1", steps);
    if (plan_index >= 3) model = with_arguments(std::move(model));
    plans.push_back(table.add_plan(model));
    twin.add_plan(model);
    plan_args.push_back(args_for(model));
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
      StartResult started = table.start(key, plan, out, plan_args[plan]);
      ASSERT_EQ(twin.start(key, plan, twin_out, plan_args[plan]).flow, started.flow);
      flows_started += started.outcome == StartOutcome::started;
    } else if (choice < 9) {
      auto picked = std::next(running.begin(), long(random() % running.size()));
      JobDispatch job = picked->second;
      running.erase(picked);
      JobOutcome outcome = random() % 12 == 0 ? JobOutcome::failed : JobOutcome::succeeded;
      bool live_before = table.summary(job.flow) && !flow_finished(table.summary(job.flow)->status);
      std::string output(random() % 4, 'o');
      CompleteOutcome applied = table.complete(job.job_mark, outcome, output, out);
      ASSERT_EQ(twin.complete(job.job_mark, outcome, output, twin_out), applied);
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
    if (event % 40 == 39) {
      ASSERT_NO_FATAL_FAILURE(expect_reads_back(table, limits, seed));
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

// Where each field of a table's bytes lies (serialize's layout, walked as deserialize
// reads it), so that a test can change exactly one.
struct StepFields {
  size_t dependencies_left = 0, status = 0, queued = 0, dispatched = 0, finished = 0, failed = 0;
  size_t outputs = 0, end = 0;  // the kept outputs: their count, then each part
};
struct LiveFields {
  size_t start = 0, args = 0, status = 0, steps_left = 0, jobs_succeeded = 0, jobs_failed = 0;
  std::vector<StepFields> steps;
};
struct TableFields {
  std::vector<size_t> queue_entries;  // each (u64 flow, u16 step), products in order
  std::map<uint64_t, LiveFields> live;
  std::vector<size_t> running;        // each job: u64 mark, u64 flow, u16 step, u32 sub-job
  size_t running_end = 0;             // where the kept finished flows start
};

TableFields fields_of(const FlowTable& table, const std::vector<std::byte>& bytes) {
  ledger::ByteReader in{bytes, "flow table"};
  TableFields fields;
  auto skip = [&](size_t size) { in.offset += size; };
  auto u32 = [&] {
    uint32_t value = 0;
    EXPECT_TRUE(in.get(value));
    return value;
  };
  auto u64 = [&] {
    uint64_t value = 0;
    EXPECT_TRUE(in.get(value));
    return value;
  };
  auto field = [&](size_t& at, size_t size) {
    at = in.offset;
    skip(size);
  };
  skip(4 + 4 + 8 + 8 + sizeof(FlowTableCounters));  // magic, version, sequences, counters
  for (uint32_t product = u32(); product > 0; --product) {
    skip(u32() + 8);  // name, priority, running_max
    for (uint64_t entry = u64(); entry > 0; --entry) {
      fields.queue_entries.push_back(in.offset);
      skip(10);
    }
  }
  for (uint32_t plan = u32(); plan > 0; --plan) skip(u32());
  for (uint64_t flow = u64(); flow > 0; --flow) {
    LiveFields live;
    live.start = in.offset;
    uint64_t id = u64();
    skip(u32());  // key
    live.args = in.offset;
    skip(u32());
    uint32_t plan = u32();
    field(live.status, 4);
    field(live.steps_left, 4);
    field(live.jobs_succeeded, 8);
    field(live.jobs_failed, 8);
    for (size_t index = 0; index < table.plan(plan).steps.size(); ++index) {
      StepFields step;
      field(step.dependencies_left, 2);
      field(step.status, 1);
      field(step.queued, 1);
      field(step.dispatched, 4);
      field(step.finished, 4);
      field(step.failed, 4);
      step.outputs = in.offset;
      for (uint32_t part = u32(); part > 0; --part) skip(u32());
      step.end = in.offset;
      live.steps.push_back(step);
    }
    fields.live.emplace(id, std::move(live));
  }
  for (uint64_t job = u64(); job > 0; --job) {
    fields.running.push_back(in.offset);
    skip(22);
  }
  fields.running_end = in.offset;
  return fields;
}

template <class T>
std::vector<std::byte> with(std::vector<std::byte> bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
  return bytes;
}

// The bytes with [from, to) replaced.
std::vector<std::byte> spliced(const std::vector<std::byte>& bytes, size_t from, size_t to,
                               const std::vector<std::byte>& replacement) {
  std::vector<std::byte> out(bytes.begin(), bytes.begin() + long(from));
  out.insert(out.end(), replacement.begin(), replacement.end());
  out.insert(out.end(), bytes.begin() + long(to), bytes.end());
  return out;
}

// A live flow's arguments replaced.
std::vector<std::byte> with_args(const std::vector<std::byte>& bytes, const LiveFields& flow, std::string_view args) {
  uint32_t old_size = 0;
  std::memcpy(&old_size, bytes.data() + flow.args, sizeof old_size);
  std::vector<std::byte> replacement;
  ledger::put_string32(replacement, args);
  return spliced(bytes, flow.args, flow.args + 4 + old_size, replacement);
}

// deserialize's error for the bytes, or "accepted".
std::string refusal(const std::vector<std::byte>& bytes, FlowTableLimits limits = {}) {
  ledger::ByteReader in{bytes, "flow table"};
  Result<FlowTable> table = FlowTable::deserialize(in, limits);
  if (!table) return table.error().message;
  return in.at_end() ? "accepted" : "accepted, with bytes left over";
}

std::string error_at(size_t offset, const std::string& what) {
  return "flow table: offset " + std::to_string(offset) + ": " + what;
}

// Product "p" runs at most 8 jobs. Flow 1 (loan_plan): s0 succeeded; s1 running; s2 (split
// 16, its output kept) has sent 8 sub-jobs, sub-job 0 finished with output "xy", and is
// queued for the rest; s3 waits for s1 and s2. Flow 2: created, s0 queued. Flow 3:
// created and paused, s0 queued. Flow 4: cancelled while queued (a dead queue entry).
FlowTable mid_run_table() {
  FlowTable table;
  std::vector<JobDispatch> out;
  table.set_product("p", {.priority = 0, .running_max = 8}, out);
  uint32_t plan = table.add_plan(loan_plan("p"));
  table.start("a", plan, out);
  table.complete(out[0].job_mark, JobOutcome::succeeded, "", out);    // sends s1 and s2's 0..6
  table.complete(out[2].job_mark, JobOutcome::succeeded, "xy", out);  // s2's 0; sends its 7
  table.start("b", plan, out);
  table.start("c", plan, out);
  table.pause(3);
  table.start("d", plan, out);
  table.cancel(4, out);
  return table;
}

TEST(FlowTableBytes, TheMidRunTableIsWhatTheTestsBelowAssume) {
  FlowTable table = mid_run_table();
  std::vector<std::byte> bytes = bytes_of(table);
  TableFields fields = fields_of(table, bytes);
  ASSERT_EQ(fields.live.size(), 3u);
  EXPECT_EQ(fields.queue_entries.size(), 4u);
  ASSERT_EQ(fields.running.size(), 8u);
  EXPECT_EQ(table.summary(1)->steps, (std::vector<JobStatus>{JobStatus::succeeded, JobStatus::running,
                                                             JobStatus::running, JobStatus::pending}));
  EXPECT_EQ(table.summary(1)->jobs_succeeded, 2u);
  EXPECT_EQ(table.summary(2)->status, FlowStatus::created);
  EXPECT_EQ(table.summary(3)->status, FlowStatus::paused);
  EXPECT_EQ(table.summary(4)->status, FlowStatus::cancelled);
  std::vector<JobDispatch> running = table.running_jobs();
  EXPECT_EQ(running[0].step, 1);
  EXPECT_EQ(running[1].step, 2);
  EXPECT_EQ(running[1].sub_job, 1u);
  EXPECT_EQ(running[2].sub_job, 2u);
  EXPECT_EQ(refusal(bytes), "accepted");
}

// Each rule deserialize checks, broken by changing one field of a table the operations
// left (or two or three, where the rule is only reached once the others hold): one
// error, naming the flow's offset (or the section's end) and the rule.
TEST(FlowTableBytes, ALiveFlowsFieldsMustAgree) {
  FlowTable table = mid_run_table();
  const std::vector<std::byte> bytes = bytes_of(table);
  TableFields fields = fields_of(table, bytes);
  const LiveFields& first = fields.live.at(1);
  const std::vector<StepFields>& steps = first.steps;
  auto flow_error = [&](uint64_t flow, const std::string& what) {
    return error_at(fields.live.at(flow).start, "live flow " + std::to_string(flow) + ": " + what);
  };
  EXPECT_EQ(refusal(with(bytes, first.steps_left, uint32_t(2))),
            flow_error(1, "steps_left is 2 but 3 steps have not succeeded"));
  EXPECT_EQ(refusal(with(bytes, steps[3].dependencies_left, uint16_t(1))),
            flow_error(1, "step 3: dependencies_left is 1 but 2 of its dependencies have not succeeded"));
  EXPECT_EQ(refusal(with(bytes, steps[1].dependencies_left, uint16_t(1))),
            flow_error(1, "step 1: dependencies_left is 1 but 0 of its dependencies have not succeeded"));
  for (JobStatus ended : {JobStatus::failed, JobStatus::timed_out, JobStatus::cancelled})
    EXPECT_EQ(refusal(with(bytes, steps[1].status, uint8_t(ended))),
              flow_error(1, "step 1: it ended " + std::string(job_status_text(ended)) + " but its flow is live"));
  EXPECT_EQ(refusal(with(bytes, steps[1].status, uint8_t(JobStatus::pending))),
            flow_error(1, "step 1: it is pending but sub-jobs were sent"));
  EXPECT_EQ(refusal(with(bytes, steps[3].status, uint8_t(JobStatus::running))),
            flow_error(1, "step 3: it is running but no sub-job was sent"));
  EXPECT_EQ(refusal(with(bytes, steps[0].status, uint8_t(JobStatus::running))),
            flow_error(1, "step 0: it is running but every sub-job finished"));
  EXPECT_EQ(refusal(with(bytes, steps[1].status, uint8_t(JobStatus::succeeded))),
            flow_error(1, "step 1: it succeeded but not every sub-job finished"));
  EXPECT_EQ(refusal(with(bytes, steps[2].failed, uint32_t(1))),
            flow_error(1, "step 2: more sub-jobs failed than it tolerates, yet it did not fail"));
  EXPECT_EQ(refusal(with(bytes, steps[1].queued, uint8_t(1))),
            flow_error(1, "step 1: it is queued but not ready (dependencies left, or every sub-job sent)"));
  EXPECT_EQ(refusal(with(bytes, steps[2].queued, uint8_t(0))),
            flow_error(1, "step 2: it is ready but not queued, and its flow is not paused"));
  EXPECT_EQ(refusal(with(bytes, fields.live.at(2).steps[0].queued, uint8_t(0))),
            flow_error(2, "step 0: it is ready but not queued, and its flow is not paused"));
  EXPECT_EQ(refusal(with(bytes, first.jobs_succeeded, uint64_t(3))),
            flow_error(1, "jobs_succeeded and jobs_failed are not its steps' finished sub-jobs"));
  EXPECT_EQ(refusal(with(bytes, first.jobs_failed, uint64_t(1))),
            flow_error(1, "jobs_succeeded and jobs_failed are not its steps' finished sub-jobs"));
  EXPECT_EQ(refusal(with(bytes, first.status, uint32_t(FlowStatus::created))),
            flow_error(1, "it is created but sub-jobs were sent"));
  EXPECT_EQ(refusal(with(bytes, fields.live.at(2).status, uint32_t(FlowStatus::running))),
            flow_error(2, "it is running but no sub-job was sent"));
  // Step 2's kept outputs (16 parts, one "xy") gone, though its sub-job 0 succeeded.
  EXPECT_EQ(refusal(spliced(bytes, steps[2].outputs, steps[2].end, std::vector<std::byte>(4))),
            flow_error(1, "step 2: its kept outputs do not match its succeeded sub-jobs"));
  // Step 1 running with step 0, which it runs after, not succeeded (so its count is 1).
  std::vector<std::byte> early = with(with(bytes, steps[0].status, uint8_t(JobStatus::running)), steps[0].finished, 0u);
  EXPECT_EQ(refusal(with(early, steps[1].dependencies_left, uint16_t(1))),
            flow_error(1, "step 1: sub-jobs were sent before its dependencies succeeded"));
}

TEST(FlowTableBytes, QueuesAndRunningJobsMustMatchTheSteps) {
  FlowTable table = mid_run_table();
  const std::vector<std::byte> bytes = bytes_of(table);
  TableFields fields = fields_of(table, bytes);
  size_t live_end = fields.running.front() - 8;  // the running jobs' count
  // Queue entries, in order: (1, 2), (2, 0), (3, 0), (4, 0) (flow 4 ended: dead).
  EXPECT_EQ(refusal(with(bytes, fields.queue_entries[2], uint64_t(2))),
            error_at(live_end, "a step is in its product's queue twice"));
  EXPECT_EQ(refusal(with(bytes, fields.queue_entries[2], uint64_t(4))),
            error_at(live_end, "live flow 3: step 0 is queued but in no queue"));
  // Running jobs by mark: step 1's, then step 2's sub-jobs 1 to 7.
  EXPECT_EQ(refusal(with(bytes, fields.running[2] + 18, uint32_t(1))),
            error_at(fields.running[2], "two running jobs of one sub-job"));
  EXPECT_EQ(refusal(with(bytes, fields.running[0] + 16, uint16_t(2))),
            error_at(fields.running_end,
                     "live flow 1: step 1 has 0 running jobs, but sent minus finished sub-jobs is 1"));
  // The last running job gone (and the count one less).
  std::vector<std::byte> one_less =
      with(spliced(bytes, fields.running[7], fields.running_end, {}), live_end, uint64_t(7));
  EXPECT_EQ(refusal(one_less),
            error_at(fields.running[7],
                     "live flow 1: step 2 has 6 running jobs, but sent minus finished sub-jobs is 7"));
}

// A kept output within output_bytes_max as each part arrives: a table of format 2 read
// with a smaller bound is refused; one of format 1 (whose writer may have bounded a kept
// output only as its step finished) is not.
TEST(FlowTableBytes, AKeptOutputPastItsBoundIsRefusedFromFormat2) {
  FlowTable table;
  std::vector<JobDispatch> out;
  uint32_t plan = table.add_plan(model_of("kept", "p", {step({}, 3), step({0}, 1, 0, {0})}));
  table.start("k", plan, out);
  table.complete(out[0].job_mark, JobOutcome::succeeded, std::string(15, 'a'), out);
  table.complete(out[1].job_mark, JobOutcome::succeeded, std::string(15, 'b'), out);
  std::vector<std::byte> bytes = bytes_of(table);
  EXPECT_EQ(refusal(bytes, {.output_bytes_max = 30}), "accepted");
  EXPECT_EQ(refusal(bytes, {.output_bytes_max = 29}),
            error_at(fields_of(table, bytes).live.at(1).start,
                     "live flow 1: step 0: its kept outputs are past output_bytes_max"));
  // Format 1: the same bytes without the timers (none: their sequence and a count of 0).
  std::vector<std::byte> format_1 = with(std::vector<std::byte>(bytes.begin(), bytes.end() - 12), 4, uint32_t(1));
  EXPECT_EQ(refusal(format_1, {.output_bytes_max = 29}), "accepted");
}

// A live flow's arguments are what the ledger's flow_start lets it start with: its plan's
// declared arguments in encode_flow_args's form, one taken in parts in that many parts.
TEST(FlowTableBytes, ALiveFlowsArgumentsAreItsPlans) {
  FlowTable table;
  std::vector<JobDispatch> out;
  FlowModel model = with_arguments(model_of("with_args", "p", {step({}), step({0}, 3)}));
  ASSERT_EQ(model.arguments, (std::vector<std::string>{"doc", "rows"}));
  uint32_t plan = table.add_plan(model);
  uint32_t bare = table.add_plan(model_of("bare", "p", {step({})}));
  std::string rows = parts_of({"r0", "r1", "r2"});
  ASSERT_EQ(args_for(model), args_of({{"doc", "value"}, {"rows", parts_of({"r0", "r1", "r2"})}}));
  table.start("a", plan, out, args_of({{"doc", "d"}, {"rows", rows}}));
  table.start("b", bare, out);
  const std::vector<std::byte> bytes = bytes_of(table);
  ASSERT_EQ(refusal(bytes), "accepted");
  TableFields fields = fields_of(table, bytes);
  auto refused = [&](uint64_t flow, std::string_view args) {
    return refusal(with_args(bytes, fields.live.at(flow), args));
  };
  auto flow_error = [&](uint64_t flow, const std::string& what) {
    return error_at(fields.live.at(flow).start, "live flow " + std::to_string(flow) + ": " + what);
  };
  EXPECT_EQ(refused(1, args_of({{"doc", ""}, {"rows", parts_of({"", "", "x"})}})), "accepted");
  EXPECT_EQ(refused(1, ""), flow_error(1, "its arguments lack 'doc'"));
  EXPECT_EQ(refused(1, args_of({{"doc", "d"}})), flow_error(1, "its arguments lack 'rows'"));
  EXPECT_EQ(refused(1, args_of({{"rows", rows}, {"doc", "d"}})),
            flow_error(1, "its arguments' names are not ascending"));
  EXPECT_EQ(refused(1, args_of({{"doc", "d"}, {"doc", "e"}})), flow_error(1, "its arguments' names are not ascending"));
  EXPECT_EQ(refused(1, args_of({{"doc", "d"}, {"rows", rows}, {"zebra", ""}})),
            flow_error(1, "its arguments are more than its plan declares"));
  EXPECT_EQ(refused(1, args_of({{"doc", "d"}, {"rows", parts_of({"r0", "r1"})}})),
            flow_error(1, "its argument 'rows' is not in 3 parts"));
  EXPECT_EQ(refused(1, args_of({{"doc", "d"}, {"rows", rows + "x"}})),
            flow_error(1, "its argument 'rows' is not in 3 parts"));
  std::string full = args_of({{"doc", "d"}, {"rows", rows}});
  EXPECT_EQ(refused(1, full.substr(0, full.size() - 1)), flow_error(1, "its arguments are cut short"));
  EXPECT_EQ(refused(1, full.substr(0, 5)), flow_error(1, "its arguments are cut short"));
  std::string reserved = full;
  reserved[2] = 1;  // the first FlowArgHeader's reserved field
  EXPECT_EQ(refused(1, reserved), flow_error(1, "an argument's reserved field is set"));
  // A plan that declares none: a flow of it starts with none.
  EXPECT_EQ(refused(2, args_of({{"doc", "d"}})), flow_error(2, "its arguments are more than its plan declares"));
}

}  // namespace
}  // namespace keel::flow
