// Cron timers on the shard executor (shard.h, transaction.h's timer_fire): a deploy makes
// the contract's schedules timers on one shard of the chain, the tile's first fire arms a
// timer with its clock, each fire starts the flows its misfire policy keeps under keys
// that name the fire time and records the next fire time in the same transaction, a
// repeated or early fire is never ordered, and replay and the state's bytes reproduce it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/flow/cron.h"
#include "engine/flow/flow_model.h"
#include "engine/ledger/shard.h"
#include "engine/ledger/snapshot.h"
#include "tests/engine/ledger/ledger_test_support.h"

namespace keel::ledger {
namespace {

using testing::submit;
using testing::submit_internal;

// 2026-11-25T00:00:00Z.
constexpr uint64_t midnight_s = 1795564800;

flow::FlowModel every_five_minutes(std::string misfire, uint32_t catch_up_max = 0) {
  flow::FlowModel model;
  model.name = "sweep";
  model.product = "ops";
  model.schedules.push_back(flow::FlowSchedule{"*/5 * * * *", std::move(misfire), catch_up_max, 60, {}});
  flow::FlowStep step;
  step.id = "run";
  step.compute_type = "noop";
  model.steps.push_back(step);
  EXPECT_TRUE(flow::validate_flow_model(model, std::nullopt));
  return model;
}

const flow::FlowTimer& only_timer(const ShardExecutor& shard) {
  EXPECT_EQ(shard.state().flows.timers().size(), 1u);
  return shard.state().flows.timers().begin()->second;
}

TxStatus fire(ShardExecutor& shard, uint64_t due_s, uint64_t now_s) {
  return submit_internal(shard, encode_timer_fire(shard.identity().shard, only_timer(shard).id, due_s, now_s));
}

bool has_flow(const ShardExecutor& shard, uint64_t fire_s) {
  return shard.state().flows.flow_of_key(scheduled_flow_key("sweep", 0, fire_s)).has_value();
}

TEST(Timer, ArmsWithTheTilesClockThenFiresEachTimeOnceAndRecordsTheNext) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(every_five_minutes("fire_once")))),
            TxStatus::applied);
  EXPECT_EQ(only_timer(shard).next_fire_s, flow::timer_unarmed);
  ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 61), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 300);
  EXPECT_EQ(shard.state().flows.live_flows(), 0u) << "arming starts nothing";
  EXPECT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 62), TxStatus::timer_stale) << "armed already";
  EXPECT_EQ(fire(shard, midnight_s + 300, midnight_s + 299), TxStatus::timer_stale) << "not due yet";
  uint32_t ordered = shard.open_tx_count();
  ASSERT_EQ(fire(shard, midnight_s + 300, midnight_s + 301), TxStatus::applied);
  EXPECT_EQ(shard.open_tx_count(), ordered + 1);
  EXPECT_TRUE(has_flow(shard, midnight_s + 300));
  EXPECT_EQ(shard.open_tasks().size(), 1u) << "the flow's root job is issued in the same transaction";
  EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 600);
  EXPECT_EQ(only_timer(shard).flows_started, 1u);
  // The same fire again (a tile that did not see the first one land) is not ordered.
  EXPECT_EQ(fire(shard, midnight_s + 300, midnight_s + 302), TxStatus::timer_stale);
  EXPECT_EQ(shard.open_tx_count(), ordered + 1);
  EXPECT_EQ(submit_internal(shard, encode_timer_fire(0, 99, midnight_s + 600, midnight_s + 601)),
            TxStatus::unknown_timer);
  // Clients cannot fire timers.
  EXPECT_EQ(submit(shard, encode_timer_fire(0, only_timer(shard).id, midnight_s + 600, midnight_s + 601)),
            TxStatus::internal_type);
}

// After downtime: the timer waited for 00:10 and the clock says 01:00:30, so the fires at
// 00:10, 00:15, ..., 01:00 (11 of them) were missed.
struct MisfireCase {
  std::string misfire;
  uint32_t catch_up_max;
  std::vector<uint64_t> started_s;  // after midnight
};

TEST(Timer, AfterDowntimeEachMisfirePolicyStartsWhatItSays) {
  const std::vector<MisfireCase> cases = {
      {"skip", 0, {}},
      {"fire_once", 0, {3600}},
      {"", 0, {3600}},  // fire_once is the default
      {"catch_up", 3, {3000, 3300, 3600}},
      {"catch_up", 20, {600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600}},
  };
  for (const MisfireCase& test : cases) {
    SCOPED_TRACE(test.misfire + " " + std::to_string(test.catch_up_max));
    ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
    ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0,
                                               flow::encode_flow_model(every_five_minutes(test.misfire, test.catch_up_max)))),
              TxStatus::applied);
    ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 301), TxStatus::applied);
    ASSERT_EQ(fire(shard, midnight_s + 600, midnight_s + 3630), TxStatus::applied);
    EXPECT_EQ(shard.state().flows.live_flows(), test.started_s.size());
    for (uint64_t started : test.started_s) EXPECT_TRUE(has_flow(shard, midnight_s + started)) << started;
    EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 3900) << "the first fire after now";
    EXPECT_EQ(only_timer(shard).misfires_dropped, test.started_s.size() == 11 ? 0u : 1u);
  }
  // A fire within the grace (60 s) is on time whatever the policy.
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(every_five_minutes("skip")))),
            TxStatus::applied);
  ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 1), TxStatus::applied);
  ASSERT_EQ(fire(shard, midnight_s + 300, midnight_s + 359), TxStatus::applied);
  EXPECT_TRUE(has_flow(shard, midnight_s + 300));
}

TEST(Timer, OneShardOfAChainFiresEachScheduleAndOwnsItsFlows) {
  constexpr uint32_t shard_count = 4;
  std::vector<ShardExecutor> shards;
  for (uint32_t shard = 0; shard < shard_count; ++shard) shards.emplace_back(ShardIdentity{"bank", shard, shard_count}, BlockLimits{});
  std::vector<std::byte> model = flow::encode_flow_model(every_five_minutes("fire_once"));
  uint32_t timers = 0, home = shard_count;
  for (uint32_t shard = 0; shard < shard_count; ++shard) {
    ASSERT_EQ(submit(shards[shard], encode_flow_deploy(1, shard, model)), TxStatus::applied);
    if (!shards[shard].state().flows.timers().empty()) {
      ++timers;
      home = shard;
    }
  }
  ASSERT_EQ(timers, 1u);
  EXPECT_EQ(home, timer_home_shard("sweep", 0, shard_count));
  ShardExecutor& owner = shards[home];
  ASSERT_EQ(fire(owner, flow::timer_unarmed, midnight_s), TxStatus::applied);
  ASSERT_EQ(fire(owner, midnight_s + 300, midnight_s + 300), TxStatus::applied);
  // The flow's key routes to the timer's shard, so it can be paused like any other flow.
  std::string key = scheduled_flow_key("sweep", 0, midnight_s + 300);
  EXPECT_EQ(key, "@sweep/0/2026-11-25T00:05:00Z");
  EXPECT_EQ(flow_key_home_shard(std::as_bytes(std::span(key)), shard_count), home);
  EXPECT_EQ(submit(owner, encode_flow_control(2, FlowAction::pause, key)), TxStatus::applied);
  // A client cannot take a timer's key.
  EXPECT_EQ(submit(owner, encode_flow_start(3, "sweep", 0, key, {})), TxStatus::bad_flags);
}

TEST(Timer, ARedeployRepointsOrRemovesTheTimers) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  flow::FlowModel model = every_five_minutes("fire_once");
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(model))), TxStatus::applied);
  ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s), TxStatus::applied);
  uint64_t id = only_timer(shard).id;
  // Version 2 keeps the schedule (another step timeout): the timer keeps its fire time and
  // starts version 2's flows.
  model.version = 2;
  model.steps[0].timeout_ms += 1;
  ASSERT_EQ(submit(shard, encode_flow_deploy(2, 0, flow::encode_flow_model(model))), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).id, id);
  EXPECT_EQ(only_timer(shard).plan, 1u);
  EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 300);
  ASSERT_EQ(fire(shard, midnight_s + 300, midnight_s + 300), TxStatus::applied);
  EXPECT_EQ(shard.state().flows.summary(*shard.state().flows.flow_of_key(scheduled_flow_key("sweep", 0, midnight_s + 300)))->plan,
            1u);
  // Version 3 fires hourly: the old time belongs to the old schedule, so it is armed again.
  model.version = 3;
  model.schedules[0].cron = "0 * * * *";
  ASSERT_EQ(submit(shard, encode_flow_deploy(3, 0, flow::encode_flow_model(model))), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).next_fire_s, flow::timer_unarmed);
  EXPECT_EQ(fire(shard, midnight_s + 600, midnight_s + 601), TxStatus::timer_stale) << "the old time is gone";
  ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 601), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 3600);
  // A schedule that never fires again waits at timer_never; a version that fixes it revives it.
  model.version = 4;
  model.schedules[0].cron = "0 0 30 2 *";
  ASSERT_EQ(submit(shard, encode_flow_deploy(4, 0, flow::encode_flow_model(model))), TxStatus::applied);
  ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 602), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).next_fire_s, flow::timer_never);
  model.version = 5;
  model.schedules[0].cron = "0 0 28 2 *";
  ASSERT_EQ(submit(shard, encode_flow_deploy(5, 0, flow::encode_flow_model(model))), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).next_fire_s, flow::timer_unarmed);
  // Deploying an older version changes nothing; a version without schedules removes the timer.
  model.version = 1;
  model.steps[0].timeout_ms -= 1;
  model.schedules[0].cron = "*/5 * * * *";
  ASSERT_EQ(submit(shard, encode_flow_deploy(6, 0, flow::encode_flow_model(model))), TxStatus::applied);
  EXPECT_EQ(only_timer(shard).plan, 4u);
  model.version = 6;
  model.schedules.clear();
  ASSERT_EQ(submit(shard, encode_flow_deploy(7, 0, flow::encode_flow_model(model))), TxStatus::applied);
  EXPECT_TRUE(shard.state().flows.timers().empty());
  EXPECT_EQ(submit_internal(shard, encode_timer_fire(0, id, midnight_s + 3600, midnight_s + 3600)),
            TxStatus::unknown_timer);
}

TEST(Timer, AFireOnAShardFullOfLiveFlowsKeepsItsTimeAndCountsWhatItStarted) {
  // A shard that holds at most two live flows (the limits are fixed in the engine; a
  // restored state may bring any).
  ShardState small(0, 1);
  flow::FlowTableLimits limits = shard_flow_limits;
  limits.live_flows_max = 2;
  small.flows = flow::FlowTable(limits);
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  shard.restore(std::move(small));
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(every_five_minutes("catch_up", 3)))),
            TxStatus::applied);
  ASSERT_EQ(fire(shard, flow::timer_unarmed, midnight_s + 1), TxStatus::applied);
  // Down until 00:15:30: 00:05, 00:10 and 00:15 are due; the third does not fit.
  uint32_t ordered = shard.open_tx_count();
  EXPECT_EQ(fire(shard, midnight_s + 300, midnight_s + 930), TxStatus::flows_full);
  EXPECT_EQ(shard.open_tx_count(), ordered + 1) << "ordered, like any refusal: replay refuses it again";
  EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 300) << "the fire time stays";
  EXPECT_EQ(only_timer(shard).flows_started, 2u);
  EXPECT_TRUE(has_flow(shard, midnight_s + 300));
  EXPECT_TRUE(has_flow(shard, midnight_s + 600));
  // One flow ends (cancelled): the retry finds the first two and starts the third.
  ASSERT_EQ(submit(shard, encode_flow_control(2, FlowAction::cancel, scheduled_flow_key("sweep", 0, midnight_s + 300))),
            TxStatus::applied);
  ASSERT_EQ(fire(shard, midnight_s + 300, midnight_s + 931), TxStatus::applied);
  EXPECT_TRUE(has_flow(shard, midnight_s + 900));
  EXPECT_EQ(only_timer(shard).flows_started, 3u) << "each flow counted once";
  EXPECT_EQ(only_timer(shard).next_fire_s, midnight_s + 1200);
}

TEST(Timer, ReplayAndTheStatesBytesReproduceEveryFire) {
  ShardExecutor live({"bank", 0, 1}, BlockLimits{});
  std::vector<std::vector<std::byte>> records;
  ASSERT_EQ(submit(live, encode_flow_deploy(1, 0, flow::encode_flow_model(every_five_minutes("catch_up", 2)))),
            TxStatus::applied);
  ASSERT_EQ(fire(live, flow::timer_unarmed, midnight_s + 10), TxStatus::applied);
  records.push_back(live.seal(1).record);
  uint64_t due = midnight_s + 300;
  for (uint64_t late_s : {0, 5, 1000, 0, 30}) {
    uint64_t now = due + late_s;
    ASSERT_EQ(fire(live, due, now), TxStatus::applied);
    due = only_timer(live).next_fire_s;
    records.push_back(live.seal(now * 1'000'000'000).record);
  }
  EXPECT_GT(only_timer(live).flows_started, 5u);
  ShardExecutor replayed({"bank", 0, 1}, BlockLimits{});
  for (const std::vector<std::byte>& record : records) ASSERT_TRUE(replayed.replay(record));
  EXPECT_EQ(replayed.state().digest(), live.state().digest());
  EXPECT_EQ(replayed.state().flows.timers(), live.state().flows.timers());
  Result<ShardState> read = ShardState::deserialize(live.state().serialize());
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->flows.timers(), live.state().flows.timers());
  EXPECT_EQ(read->serialize(), live.state().serialize());
}

TEST(Timer, AScheduledFlowStartsWithTheArgumentsItsScheduleGives) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  Result<flow::FlowModel> nightly =
      flow::load_flow_model(std::string(KEEL_SOURCE_DIR) + "/perf/flows/nightly_interest.toml", std::nullopt);
  ASSERT_TRUE(nightly) << nightly.error().message;
  ASSERT_EQ(submit(shard, encode_flow_deploy(1, 0, flow::encode_flow_model(*nightly))), TxStatus::applied);
  const flow::FlowTimer& timer = only_timer(shard);
  ASSERT_EQ(submit_internal(shard, encode_timer_fire(0, timer.id, flow::timer_unarmed, midnight_s)), TxStatus::applied);
  uint64_t night = midnight_s + 5400;  // 01:30
  EXPECT_EQ(only_timer(shard).next_fire_s, night);
  ASSERT_EQ(submit_internal(shard, encode_timer_fire(0, timer.id, night, night + 2)), TxStatus::applied);
  ASSERT_EQ(shard.open_tasks().size(), 64u);
  const flow::ScheduleArgument& ranges = nightly->schedules[0].args.at(0);
  ASSERT_EQ(ranges.parts.size(), 64u);
  for (uint32_t sub_job = 0; sub_job < 64; ++sub_job) {
    const std::vector<std::byte>& input = shard.open_tasks()[sub_job].input;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(input.data()), input.size()), ranges.parts[sub_job]);
  }
}

}  // namespace
}  // namespace keel::ledger
