// Tests for engine/flow/flow_model.h: the shipped contracts parse and compile to their
// exact topology; each bad model fails with its exact message (people and scripts read
// them); the encoded form round-trips exactly, is pinned byte for byte, and decoding
// refuses anything else without crashing, under random corruption too.
#include "engine/flow/flow_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace keel::flow {
namespace {

constexpr std::string_view test_path = "t.toml";

// The compute types of the shipped plugins, as an engine with one pool each knows them.
const KnownComputeTypes shipped_types =
    std::set<std::string>{"credit_score", "hash", "interest", "noop", "var_mc"};

// The three keys every model needs, ahead of the steps a test writes (lines 1 to 3).
constexpr std::string_view header = "name = \"loan\"\nversion = 1\nproduct = \"retail\"\n";

std::string error_of(std::string_view text, const KnownComputeTypes& known = std::nullopt) {
  Result<FlowModel> model = parse_flow_model(text, test_path, known);
  if (model) {
    ADD_FAILURE() << "parsed without an error:\n" << text;
    return "";
  }
  return model.error().message;
}

FlowModel parsed(std::string_view text) {
  Result<FlowModel> model = parse_flow_model(text, test_path, std::nullopt);
  if (!model) {
    ADD_FAILURE() << model.error().message;
    return FlowModel{};
  }
  return std::move(model).value();
}

CompiledFlow compiled(const FlowModel& model) {
  Result<CompiledFlow> flow = compile_flow_model(model);
  if (!flow) {
    ADD_FAILURE() << flow.error().message;
    return CompiledFlow{};
  }
  return std::move(flow).value();
}

FlowModel shipped(std::string_view file) {
  Result<FlowModel> model =
      load_flow_model(std::string(KEEL_SOURCE_DIR "/perf/flows/") + std::string(file), shipped_types);
  if (!model) {
    ADD_FAILURE() << model.error().message;
    return FlowModel{};
  }
  return std::move(model).value();
}

using Indices = std::vector<uint16_t>;

TEST(FlowModel, ShippedLoanApprovalParsesAndCompiles) {
  const FlowModel model = shipped("loan_approval.toml");
  EXPECT_EQ(model.name, "loan_approval");
  EXPECT_EQ(model.version, 1u);
  EXPECT_EQ(model.product, "retail_loans");
  EXPECT_EQ(model.arguments, (std::vector<std::string>{"document", "applicants", "portfolio"}));
  EXPECT_TRUE(model.schedules.empty());
  ASSERT_EQ(model.steps.size(), 4u);
  const FlowStep& hash = model.steps[0];
  EXPECT_EQ(hash.id, "hash");
  EXPECT_EQ(hash.compute_type, "hash");
  EXPECT_TRUE(hash.after.empty());
  EXPECT_EQ(hash.input, (std::vector<InputSource>{{InputKind::argument, "document"}}));
  EXPECT_EQ(hash.timeout_ms, 5000u);
  EXPECT_EQ(hash.split, 1u);
  const FlowStep& risk = model.steps[2];
  EXPECT_EQ(risk.id, "risk");
  EXPECT_EQ(risk.compute_type, "var_mc");
  EXPECT_EQ(risk.after, std::vector<std::string>{"hash"});
  EXPECT_EQ(risk.input,
            (std::vector<InputSource>{{InputKind::split_index, ""}, {InputKind::argument, "portfolio"}}));
  EXPECT_EQ(risk.split, 16u);
  EXPECT_EQ(risk.split_failures_max, 0u);
  EXPECT_EQ(risk.timeout_ms, 30000u);
  EXPECT_EQ(risk.retries_max, 2u);
  EXPECT_EQ(risk.backoff_ms, 100u);  // the default
  EXPECT_EQ(model.steps[1].compute_type, "credit_score");
  EXPECT_EQ(model.steps[3].id, "decision");
  EXPECT_EQ(model.steps[3].compute_type, "noop");
  EXPECT_EQ(model.steps[3].after, (std::vector<std::string>{"score", "risk"}));
  EXPECT_TRUE(model.steps[3].input.empty());

  const CompiledFlow flow = compiled(model);
  EXPECT_EQ(flow.order, (Indices{0, 1, 2, 3}));
  EXPECT_EQ(flow.roots, (Indices{0}));
  ASSERT_EQ(flow.steps.size(), 4u);
  EXPECT_EQ(flow.steps[0].dependency_count, 0u);
  EXPECT_EQ(flow.steps[1].dependency_count, 1u);
  EXPECT_EQ(flow.steps[2].dependency_count, 1u);
  EXPECT_EQ(flow.steps[3].dependency_count, 2u);
  EXPECT_EQ(flow.steps[0].successors, (Indices{1, 2}));
  EXPECT_EQ(flow.steps[1].successors, (Indices{3}));
  EXPECT_EQ(flow.steps[2].successors, (Indices{3}));
  EXPECT_EQ(flow.steps[3].successors, Indices{});
  EXPECT_EQ(flow.steps[0].inputs, (std::vector<CompiledInput>{{InputKind::argument, 0}}));
  EXPECT_EQ(flow.steps[1].inputs, (std::vector<CompiledInput>{{InputKind::argument, 1}}));
  EXPECT_EQ(flow.steps[2].inputs,
            (std::vector<CompiledInput>{{InputKind::split_index, 0}, {InputKind::argument, 2}}));
  EXPECT_TRUE(flow.steps[3].inputs.empty());
  EXPECT_EQ(flow.argument_parts, (std::vector<uint32_t>{0, 0, 0}));
}

TEST(FlowModel, ShippedNightlyInterestParsesAndCompiles) {
  const FlowModel model = shipped("nightly_interest.toml");
  EXPECT_EQ(model.name, "nightly_interest");
  EXPECT_EQ(model.product, "savings_accounts");
  EXPECT_EQ(model.arguments, std::vector<std::string>{"account_ranges"});
  ASSERT_EQ(model.schedules.size(), 1u);
  const FlowSchedule& nightly = model.schedules[0];
  EXPECT_EQ(nightly.cron, "30 1 * * *");
  EXPECT_EQ(nightly.misfire, "fire_once");
  EXPECT_EQ(nightly.catch_up_max, 0u);
  EXPECT_EQ(nightly.grace_s, 60u);
  const MisfireRule rule = misfire_rule_of(nightly);
  EXPECT_EQ(rule.policy, MisfirePolicy::fire_once);
  EXPECT_EQ(rule.grace_s, 60u);
  ASSERT_EQ(nightly.args.size(), 1u);
  EXPECT_EQ(nightly.args[0].name, "account_ranges");
  EXPECT_TRUE(nightly.args[0].in_parts);
  EXPECT_EQ(nightly.args[0].parts.size(), 64u);
  ASSERT_EQ(model.steps.size(), 1u);
  const FlowStep& accrue = model.steps[0];
  EXPECT_EQ(accrue.id, "accrue");
  EXPECT_EQ(accrue.compute_type, "interest");
  EXPECT_EQ(accrue.input, (std::vector<InputSource>{{InputKind::argument_part, "account_ranges"}}));
  EXPECT_EQ(accrue.split, 64u);
  EXPECT_EQ(accrue.split_failures_max, 0u);
  EXPECT_EQ(accrue.timeout_ms, 60000u);
  EXPECT_EQ(accrue.retries_max, 5u);
  EXPECT_EQ(accrue.backoff_ms, 1000u);

  const CompiledFlow flow = compiled(model);
  EXPECT_EQ(flow.order, (Indices{0}));
  EXPECT_EQ(flow.roots, (Indices{0}));
  ASSERT_EQ(flow.steps.size(), 1u);
  EXPECT_EQ(flow.steps[0].dependency_count, 0u);
  EXPECT_TRUE(flow.steps[0].successors.empty());
  EXPECT_EQ(flow.steps[0].inputs, (std::vector<CompiledInput>{{InputKind::argument_part, 0}}));
  EXPECT_EQ(flow.argument_parts, (std::vector<uint32_t>{64}));
}

uint64_t little_endian(std::string_view bytes, size_t at, size_t count) {
  uint64_t value = 0;
  for (size_t index = 0; index < count; ++index) value |= uint64_t(uint8_t(bytes[at + index])) << (8 * index);
  return value;
}

// Each part the shipped schedule gives is an input the interest plugin accepts
// (plugins/interest/interest.c): 8 + 24 * account_count bytes, reserved fields 0. Here one
// day on one account each, accounts 1 to 64 in part order.
TEST(FlowModel, ShippedNightlyScheduleGivesInterestInputs) {
  const FlowModel model = shipped("nightly_interest.toml");
  ASSERT_EQ(model.schedules.size(), 1u);
  ASSERT_EQ(model.schedules[0].args.size(), 1u);
  const std::vector<std::string>& parts = model.schedules[0].args[0].parts;
  ASSERT_EQ(parts.size(), 64u);
  for (size_t part = 0; part < parts.size(); ++part) {
    SCOPED_TRACE("part " + std::to_string(part));
    const std::string& input = parts[part];
    ASSERT_GE(input.size(), 8u);
    const uint64_t account_count = little_endian(input, 4, 4);
    ASSERT_EQ(input.size(), 8 + 24 * account_count);
    EXPECT_EQ(little_endian(input, 0, 4), 1u) << "day_count";
    EXPECT_EQ(account_count, 1u);
    EXPECT_EQ(little_endian(input, 8, 8), part + 1) << "account id";
    EXPECT_EQ(int64_t(little_endian(input, 16, 8)), int64_t(part + 1) * 100000) << "balance";
    EXPECT_EQ(int32_t(little_endian(input, 24, 4)), 350) << "rate_bp";
    EXPECT_EQ(little_endian(input, 28, 4), 0u) << "reserved";
  }
  // 64 parts of 4 + 32 bytes, and the name's header and bytes.
  EXPECT_EQ(schedule_args_encoded_bytes(model.schedules[0]), 8 + 14 + 64 * (4 + 32u));
}

TEST(FlowModel, LeftOutKeysKeepTheirDefaults) {
  const FlowModel model = parsed(std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n");
  ASSERT_EQ(model.steps.size(), 1u);
  const FlowStep& step = model.steps[0];
  EXPECT_TRUE(step.after.empty());
  EXPECT_TRUE(step.input.empty());
  EXPECT_EQ(step.timeout_ms, 10000u);
  EXPECT_EQ(step.retries_max, 3u);
  EXPECT_EQ(step.backoff_ms, 100u);
  EXPECT_EQ(step.split, 1u);
  EXPECT_EQ(step.split_failures_max, 0u);
  EXPECT_TRUE(model.arguments.empty());
  EXPECT_TRUE(model.schedules.empty());
}

TEST(FlowModel, EveryInputFormAndScheduleFormParses) {
  const FlowModel model = parsed(
      std::string(header) +
      "arguments = [\"a\", \"b\"]\n"
      "[[schedule]]\ncron = \"0 2 * * MON-FRI\"\nargs = { a = \"x\", b = [\"0\", \"1\", \"2\", \"3\"] }\n"
      "[[schedule]]\ncron = \"@monthly\"\nmisfire = \"skip\"\n"
      "[schedule.args]\nb = [\"4\", \"5\", \"6\", \"7\"]\na = \"y\"\n"
      "[[step]]\nid = \"one\"\ncompute_type = \"noop\"\ninput = [\"args.a\"]\n"
      "[[step]]\nid = \"two\"\ncompute_type = \"noop\"\nafter = [\"one\"]\nsplit = 4\n"
      "split_failures_max = 3\n"
      "input = [\"split.index\", \"args.b[split]\", \"steps.one.output\", \"args.a\"]\n");
  EXPECT_EQ(model.schedules,
            (std::vector<FlowSchedule>{
                {"0 2 * * MON-FRI", "", 0, 60, {{"a", false, {"x"}}, {"b", true, {"0", "1", "2", "3"}}}},
                {"@monthly", "skip", 0, 60, {{"a", false, {"y"}}, {"b", true, {"4", "5", "6", "7"}}}}}));
  ASSERT_EQ(model.steps.size(), 2u);
  EXPECT_EQ(model.steps[1].input, (std::vector<InputSource>{{InputKind::split_index, ""},
                                                            {InputKind::argument_part, "b"},
                                                            {InputKind::step_output, "one"},
                                                            {InputKind::argument, "a"}}));
  const CompiledFlow flow = compiled(model);
  EXPECT_EQ(flow.argument_parts, (std::vector<uint32_t>{0, 4}));
  EXPECT_EQ(flow.steps[1].inputs, (std::vector<CompiledInput>{{InputKind::split_index, 0},
                                                              {InputKind::argument_part, 1},
                                                              {InputKind::step_output, 0},
                                                              {InputKind::argument, 0}}));
  std::vector<std::string> written;
  for (const InputSource& source : model.steps[1].input) written.push_back(to_string(source));
  EXPECT_EQ(written,
            (std::vector<std::string>{"split.index", "args.b[split]", "steps.one.output", "args.a"}));
}

// A model whose schedules must give two arguments: ranges, taken in 3 parts, and doc, taken
// whole (lines 1 to 9; a test's schedule starts on line 10).
constexpr std::string_view with_arguments =
    "name = \"loan\"\nversion = 1\nproduct = \"retail\"\n"        // 1-3
    "arguments = [\"ranges\", \"doc\"]\n"                         // 4
    "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\nsplit = 3\n"  // 5-8
    "input = [\"args.doc\", \"args.ranges[split]\"]\n";           // 9

// Arguments that with_arguments's schedules may give.
constexpr std::string_view good_args = "args = { ranges = [\"r0\", \"r1\", \"r2\"], doc = \"d\" }\n";

TEST(FlowModel, ScheduleWithEveryKeyParses) {
  const FlowModel model =
      parsed(std::string(with_arguments) +
             "[schedule]\ncron = \"*/15 9-17 * * MON-FRI\"\nmisfire = \"catch_up\"\ncatch_up_max = 3\n"
             "misfire_grace_s = 120\n"
             // The file's order is not the model's: args keep the model's.
             "args = { doc = \"hex:C0ffEE\", ranges = [\"r0\", \"hex:00ff\", \"\"] }\n");
  const FlowSchedule expected{
      "*/15 9-17 * * MON-FRI",
      "catch_up",
      3,
      120,
      {{"ranges", true, {"r0", std::string("\x00\xff", 2), ""}}, {"doc", false, {"\xc0\xff\xee"}}}};
  ASSERT_EQ(model.schedules, std::vector<FlowSchedule>{expected});
  const MisfireRule rule = misfire_rule_of(model.schedules[0]);
  EXPECT_EQ(rule.policy, MisfirePolicy::catch_up);
  EXPECT_EQ(rule.catch_up_max, 3u);
  EXPECT_EQ(rule.grace_s, 120u);
  // ranges: 8 + 6, then 3 parts of 4 + 2, 4 + 2 and 4 + 0 bytes; doc: 8 + 3 + 3.
  EXPECT_EQ(schedule_args_encoded_bytes(model.schedules[0]), 14 + 16 + 14u);

  // Left out: misfire "" (fire_once), no catch_up_max, a grace of 60 s. A [schedule.args]
  // table is the same as an inline one.
  const FlowModel plain = parsed(std::string(with_arguments) +
                                 "[schedule]\ncron = \"@daily\"\n"
                                 "[schedule.args]\nranges = [\"a\", \"b\", \"c\"]\ndoc = \"plain text\"\n");
  ASSERT_EQ(plain.schedules,
            (std::vector<FlowSchedule>{
                {"@daily", "", 0, 60, {{"ranges", true, {"a", "b", "c"}}, {"doc", false, {"plain text"}}}}}));
  const MisfireRule default_rule = misfire_rule_of(plain.schedules[0]);
  EXPECT_EQ(default_rule.policy, MisfirePolicy::fire_once);
  EXPECT_EQ(default_rule.grace_s, 60u);
  // A model without arguments: a schedule gives none.
  const FlowModel no_arguments =
      parsed(std::string(header) +
             "[schedule]\ncron = \"@hourly\"\nmisfire = \"skip\"\nmisfire_grace_s = 0\n"
             "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n");
  ASSERT_EQ(no_arguments.schedules, (std::vector<FlowSchedule>{{"@hourly", "skip", 0, 0, {}}}));
  EXPECT_EQ(misfire_rule_of(no_arguments.schedules[0]).policy, MisfirePolicy::skip);
}

// Only cycles are wrong: a step may name a step written after it, and the order then
// puts the later-written step first.
TEST(FlowModel, AfterMayNameALaterStep) {
  const FlowModel model = parsed(std::string(header) +
                                 "[[step]]\nid = \"report\"\ncompute_type = \"noop\"\nafter = [\"load\"]\n"
                                 "input = [\"steps.load.output\"]\n"
                                 "[[step]]\nid = \"audit\"\ncompute_type = \"noop\"\n"
                                 "[[step]]\nid = \"load\"\ncompute_type = \"noop\"\n");
  const CompiledFlow flow = compiled(model);
  // Ready at first: audit (1) and load (2); the one written first goes first.
  EXPECT_EQ(flow.order, (Indices{1, 2, 0}));
  EXPECT_EQ(flow.roots, (Indices{1, 2}));
  EXPECT_EQ(flow.steps[2].successors, (Indices{0}));
  EXPECT_EQ(flow.steps[0].dependency_count, 1u);
}

// A diamond with a transitive input: d may take a's output through b.
TEST(FlowModel, InputsMayComeFromAnyEarlierStep) {
  const FlowModel model = parsed(std::string(header) +
                                 "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"
                                 "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nafter = [\"a\"]\n"
                                 "[[step]]\nid = \"c\"\ncompute_type = \"noop\"\nafter = [\"a\"]\n"
                                 "[[step]]\nid = \"d\"\ncompute_type = \"noop\"\nafter = [\"c\", \"b\"]\n"
                                 "input = [\"steps.a.output\", \"steps.b.output\"]\n");
  const CompiledFlow flow = compiled(model);
  EXPECT_EQ(flow.order, (Indices{0, 1, 2, 3}));
  EXPECT_EQ(flow.steps[0].successors, (Indices{1, 2}));
  EXPECT_EQ(flow.steps[1].successors, (Indices{3}));
  EXPECT_EQ(flow.steps[2].successors, (Indices{3}));
  EXPECT_EQ(flow.steps[3].dependency_count, 2u);
}

// ---------------------------------------------------------------------------------------
// Bad models: one exact message each

TEST(FlowModelErrors, Cycle) {
  // risk comes after decision, which comes after risk; reported at risk, written first.
  EXPECT_EQ(error_of(std::string(header) +
                     "[[step]]\nid = \"hash\"\ncompute_type = \"hash\"\n"                            // 4-6
                     "[[step]]\nid = \"risk\"\ncompute_type = \"var_mc\"\n"                          // 7-9
                     "after = [\"hash\", \"decision\"]\n"                                            // 10
                     "[[step]]\nid = \"decision\"\ncompute_type = \"noop\"\nafter = [\"risk\"]\n"),  // 11-14
            "t.toml:10:18: step[1].after[1]: a cycle: risk -> decision -> risk (each comes after the next)");
  // A longer cycle, entered from a step outside it.
  EXPECT_EQ(error_of(std::string(header) +
                     "[[step]]\nid = \"x\"\ncompute_type = \"noop\"\nafter = [\"c\"]\n"    // 4-7
                     "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\nafter = [\"b\"]\n"    // 8-11
                     "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nafter = [\"c\"]\n"    // 12-15
                     "[[step]]\nid = \"c\"\ncompute_type = \"noop\"\nafter = [\"a\"]\n"),  // 16-19
            "t.toml:11:10: step[1].after[0]: a cycle: a -> b -> c -> a (each comes after the next)");
}

TEST(FlowModelErrors, SelfDependency) {
  EXPECT_EQ(
      error_of(std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\nafter = [\"a\"]\n"),
      "t.toml:7:10: step[0].after[0]: a step cannot come after itself");
}

TEST(FlowModelErrors, DuplicateStepId) {
  EXPECT_EQ(error_of(std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"
                                           "[[step]]\nid = \"a\"\ncompute_type = \"hash\"\n"),
            "t.toml:8:6: step[1].id: duplicate step id \"a\" (first at step[0])");
}

TEST(FlowModelErrors, DuplicateAfterEntry) {
  EXPECT_EQ(error_of(std::string(header) +
                     "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"
                     "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nafter = [\"a\", \"a\"]\n"),
            "t.toml:10:15: step[1].after[1]: duplicate step \"a\" (also at step[1].after[0])");
}

TEST(FlowModelErrors, UnknownAfter) {
  EXPECT_EQ(error_of(std::string(header) +
                     "[[step]]\nid = \"hash\"\ncompute_type = \"hash\"\n"
                     "[[step]]\nid = \"score\"\ncompute_type = \"credit_score\"\n"
                     "[[step]]\nid = \"risk\"\ncompute_type = \"var_mc\"\n"
                     "[[step]]\nid = \"decision\"\ncompute_type = \"noop\"\nafter = [\"score\", \"riks\"]\n"),
            "t.toml:16:19: step[3].after[1]: unknown step \"riks\" (steps: hash, score, risk, decision)");
}

TEST(FlowModelErrors, UnknownComputeType) {
  const std::string text = std::string(header) + "[[step]]\nid = \"s\"\ncompute_type = \"scoring\"\n";
  EXPECT_EQ(error_of(text, shipped_types),
            "t.toml:6:16: step[0].compute_type: unknown compute type \"scoring\" "
            "(known: credit_score, hash, interest, noop, var_mc)");
  EXPECT_EQ(error_of(text, std::set<std::string>{}),
            "t.toml:6:16: step[0].compute_type: unknown compute type \"scoring\" (no pool serves any)");
  // Without a list of known types, any well-formed name passes.
  EXPECT_TRUE(parse_flow_model(text, test_path, std::nullopt));
  EXPECT_EQ(
      error_of(std::string(header) + "[[step]]\nid = \"s\"\ncompute_type = \"credit-score\"\n"),
      "t.toml:6:16: step[0].compute_type: must be 1 to 32 characters of [a-z0-9_], got \"credit-score\"");
}

TEST(FlowModelErrors, BadInputReference) {
  const std::string step =
      std::string(header) + "arguments = [\"doc\"]\n[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n";
  EXPECT_EQ(error_of(step + "input = [\"step.a.output\"]\n"),
            "t.toml:8:10: step[0].input[0]: must be \"args.<name>\", \"args.<name>[split]\", "
            "\"steps.<id>.output\" or \"split.index\", got \"step.a.output\"");
  EXPECT_EQ(error_of(step + "input = [\"args.doc\", \"args.\"]\n"),
            "t.toml:8:22: step[0].input[1]: must be \"args.<name>\", \"args.<name>[split]\", "
            "\"steps.<id>.output\" or \"split.index\", got \"args.\"");
  EXPECT_EQ(error_of(step + "input = [\"args.dco\"]\n"),
            "t.toml:8:10: step[0].input[0]: unknown argument \"dco\" (arguments: doc)");
  EXPECT_EQ(error_of(std::string(header) +
                     "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\ninput = [\"args.doc\"]\n"),
            "t.toml:7:10: step[0].input[0]: unknown argument \"doc\" (the model declares no arguments)");
  EXPECT_EQ(error_of(step + "input = [\"steps.b.output\"]\n"),
            "t.toml:8:10: step[0].input[0]: unknown step \"b\" (steps: a)");
  EXPECT_EQ(error_of(step + "input = [\"steps.a.output\"]\n"),
            "t.toml:8:10: step[0].input[0]: a step cannot take its own output");
  EXPECT_EQ(error_of(step + "input = [\"args.doc\", \"split.index\", \"args.doc\"]\n"),
            "t.toml:8:37: step[0].input[2]: duplicate input \"args.doc\" (also at step[0].input[0])");
}

TEST(FlowModelErrors, InputFromAStepThatDoesNotComeFirst) {
  // score and risk both come after hash, but not after each other.
  EXPECT_EQ(
      error_of(std::string(header) +
               "[[step]]\nid = \"hash\"\ncompute_type = \"hash\"\n"                               // 4-6
               "[[step]]\nid = \"score\"\ncompute_type = \"credit_score\"\nafter = [\"hash\"]\n"  // 7-10
               "input = [\"steps.hash.output\", \"steps.risk.output\"]\n"                         // 11
               "[[step]]\nid = \"risk\"\ncompute_type = \"var_mc\"\nafter = [\"hash\"]\n"),
      "t.toml:11:31: step[1].input[1]: step \"risk\" does not come before this step (it is not in "
      "its after, directly or through other steps), so its output may not exist yet");
}

TEST(FlowModelErrors, ArgumentTakenBothWholeAndInParts) {
  const std::string start = std::string(header) + "arguments = [\"accounts\"]\n";
  EXPECT_EQ(error_of(start + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\ninput = [\"args.accounts\"]\n"
                             "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nsplit = 4\n"
                             "input = [\"args.accounts[split]\"]\n"),
            "t.toml:13:10: step[1].input[0]: argument \"accounts\" is taken whole at step[0].input[0], "
            "so it cannot also be taken in parts");
  EXPECT_EQ(error_of(start + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\nsplit = 8\n"
                             "input = [\"args.accounts[split]\"]\n"
                             "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nsplit = 4\n"
                             "input = [\"args.accounts[split]\"]\n"),
            "t.toml:14:10: step[1].input[0]: argument \"accounts\" is taken in 8 parts at step[0].input[0] "
            "but in 4 here (steps taking an argument in parts must have the same split)");
}

TEST(FlowModelErrors, SplitOutOfRange) {
  const std::string step = std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n";
  EXPECT_EQ(error_of(step + "split = 0\n"), "t.toml:7:9: step[0].split: must be from 1 to 65536, got 0");
  EXPECT_EQ(error_of(step + "split = 65537\n"),
            "t.toml:7:9: step[0].split: must be from 1 to 65536, got 65537");
  EXPECT_EQ(
      error_of(step + "split = 16\nsplit_failures_max = 16\n"),
      "t.toml:8:22: step[0].split_failures_max: must be from 0 to 15, got 16 (it must be below split, 16)");
  EXPECT_EQ(
      error_of(step + "split_failures_max = 1\n"),
      "t.toml:7:22: step[0].split_failures_max: must be from 0 to 0, got 1 (it must be below split, 1)");
}

TEST(FlowModelErrors, TooManySubJobsInAll) {
  std::string text(header);
  for (int step = 0; step < 17; ++step) {
    text += "[[step]]\nid = \"s" + std::to_string(step) + "\"\ncompute_type = \"noop\"\nsplit = 65536\n";
  }
  // Step 16's split is on line 4 + 16 * 4 + 3.
  EXPECT_EQ(error_of(text),
            "t.toml:71:9: step[16].split: the steps up to this one split into 1114112 "
            "sub-jobs in all, more than the 1048576 a flow may run");
}

TEST(FlowModelErrors, TimeoutRetriesBackoffOutOfRange) {
  const std::string step = std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n";
  EXPECT_EQ(error_of(step + "timeout_ms = 0\n"),
            "t.toml:7:14: step[0].timeout_ms: must be from 1 to 3600000, got 0");
  EXPECT_EQ(error_of(step + "timeout_ms = 3600001\n"),
            "t.toml:7:14: step[0].timeout_ms: must be from 1 to 3600000, got 3600001");
  EXPECT_EQ(error_of(step + "retries_max = 101\n"),
            "t.toml:7:15: step[0].retries_max: must be from 0 to 100, got 101");
  EXPECT_EQ(error_of(step + "retries_max = -1\n"),
            "t.toml:7:15: step[0].retries_max: must be from 0 to 100, got -1");
  EXPECT_EQ(error_of(step + "backoff_ms = 60001\n"),
            "t.toml:7:14: step[0].backoff_ms: must be from 0 to 60000, got 60001");
  // Larger than any 32-bit field: refused, not truncated into range.
  EXPECT_EQ(error_of(step + "timeout_ms = 4294967297\n"),
            "t.toml:7:14: step[0].timeout_ms: must be from 1 to 3600000, got 4294967297");
}

TEST(FlowModelErrors, HeaderValues) {
  EXPECT_EQ(error_of("name = \"loan\"\nversion = 0\nproduct = \"retail\"\n"),
            "t.toml:2:11: version: must be from 1 to 4294967295, got 0");
  EXPECT_EQ(error_of("name = \"loan\"\nversion = 4294967296\nproduct = \"retail\"\n"),
            "t.toml:2:11: version: must be from 1 to 4294967295, got 4294967296");
  EXPECT_EQ(error_of("name = \"loan\"\nproduct = \"retail\"\n"),
            "t.toml:1:1: version: required key is missing");
  EXPECT_EQ(error_of("name = \"Loan Approval\"\nversion = 1\nproduct = \"retail\"\n"
                     "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"),
            "t.toml:1:8: name: must be 1 to 32 characters of [a-z0-9_], got \"Loan Approval\"");
  EXPECT_EQ(
      error_of(
          "name = \"loan\"\nversion = 1\nproduct = \"\"\n[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"),
      "t.toml:3:11: product: must be 1 to 32 characters of [a-z0-9_], got \"\"");
}

TEST(FlowModelErrors, BadNameCharacters) {
  EXPECT_EQ(error_of(std::string(header) + "[[step]]\nid = \"Hash\"\ncompute_type = \"hash\"\n"),
            "t.toml:5:6: step[0].id: must be 1 to 32 characters of [a-z0-9_], got \"Hash\"");
  EXPECT_EQ(error_of(std::string(header) + "[[step]]\nid = \"" + std::string(33, 'a') +
                     "\"\ncompute_type = \"hash\"\n"),
            "t.toml:5:6: step[0].id: must be 1 to 32 characters of [a-z0-9_], got \"" + std::string(33, 'a') +
                "\"");
  EXPECT_EQ(error_of(std::string(header) +
                     "arguments = [\"doc\", \"d\\u00f6c\"]\n[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"),
            "t.toml:4:21: arguments[1]: must be 1 to 32 characters of [a-z0-9_], got \"d\\xc3\\xb6c\"");
  EXPECT_EQ(error_of(std::string(header) +
                     "arguments = [\"doc\", \"doc\"]\n[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"),
            "t.toml:4:21: arguments[1]: duplicate argument \"doc\" (first at arguments[0])");
}

TEST(FlowModelErrors, UnknownKeys) {
  EXPECT_EQ(error_of(std::string(header) + "owner = \"x\"\n"), "t.toml:4:9: owner: unknown key");
  EXPECT_EQ(error_of(std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\nretry_max = 3\n"),
            "t.toml:7:13: step[0].retry_max: unknown key");
  EXPECT_EQ(error_of(std::string(header) + "[schedule]\ncron = \"* * * * *\"\ntimezone = \"UTC\"\n"),
            "t.toml:6:12: schedule.timezone: unknown key");
  EXPECT_EQ(
      error_of(std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n\"after.x\" = 1\n"),
      "t.toml:7:13: step[0].\"after.x\": unknown key");
}

TEST(FlowModelErrors, WrongTypes) {
  const std::string step = std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n";
  EXPECT_EQ(error_of(step + "timeout_ms = \"5s\"\n"),
            "t.toml:7:14: step[0].timeout_ms: expected an integer, got a string");
  EXPECT_EQ(error_of(step + "split = 1.5\n"),
            "t.toml:7:9: step[0].split: expected an integer, got a floating-point number");
  EXPECT_EQ(error_of(step + "after = \"b\"\n"),
            "t.toml:7:9: step[0].after: expected an array of strings, got a string");
  EXPECT_EQ(error_of(step + "input = [\"args.a\", 2]\n"),
            "t.toml:7:20: step[0].input[1]: expected a string, got an integer");
  EXPECT_EQ(error_of(std::string(header) + "[[step]]\nid = 7\ncompute_type = \"noop\"\n"),
            "t.toml:5:6: step[0].id: expected a string, got an integer");
  EXPECT_EQ(error_of(std::string(header) + "[step]\nid = \"a\"\n"),
            "t.toml:4:1: step: expected an array of tables ([[step]]), got a table");
  EXPECT_EQ(error_of(std::string(header) + "step = [1]\n"),
            "t.toml:4:9: step[0]: expected a table, got an integer");
  EXPECT_EQ(error_of(std::string(header) + "schedule = \"daily\"\n"),
            "t.toml:4:12: schedule: expected a table or an array of tables, got a string");
  EXPECT_EQ(error_of(std::string(header) + "[[step]]\nid = \"a\"\n"),
            "t.toml:4:1: step[0].compute_type: required key is missing");
}

TEST(FlowModelErrors, NoSteps) {
  EXPECT_EQ(error_of(header), "t.toml:1:1: step: a flow model needs at least one step");
  EXPECT_EQ(error_of(std::string(header) + "step = []\n"),
            "t.toml:4:8: step: a flow model needs at least one step");
}

TEST(FlowModelErrors, TooManySteps) {
  std::string text(header);
  for (int step = 0; step < 257; ++step)
    text += "[[step]]\nid = \"s" + std::to_string(step) + "\"\ncompute_type = \"noop\"\n";
  EXPECT_EQ(error_of(text), "t.toml:4:1: step: at most 256 steps, got 257");
}

TEST(FlowModelErrors, TooManyInputsOrAfterEntries) {
  std::string inputs = "input = [\"split.index\"";
  for (int index = 0; index < 16; ++index) inputs += ", \"args.a\"";
  EXPECT_EQ(
      error_of(std::string(header) + "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n" + inputs + "]\n"),
      "t.toml:7:9: step[0].input: must hold at most 16 sources, got 17");
  EXPECT_EQ(error_of(std::string(header) +
                     "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"
                     "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nafter = [\"a\", \"a\", \"a\"]\n"),
            "t.toml:10:9: step[1].after: must hold at most 2 step ids (the model's steps), got 3");
}

TEST(FlowModelErrors, Schedules) {
  EXPECT_EQ(error_of(std::string(header) + "[schedule]\ncron = \"\"\n"),
            "t.toml:5:8: schedule.cron: must be 1 to 64 bytes long, got 0");
  EXPECT_EQ(error_of(std::string(header) + "[[schedule]]\ncron = \"@daily\"\n[[schedule]]\ncron = \"" +
                     std::string(65, '*') + "\"\n"),
            "t.toml:7:8: schedule[1].cron: must be 1 to 64 bytes long, got 65");
  EXPECT_EQ(error_of(std::string(header) + "[schedule]\nmisfire = \"skip\"\n"),
            "t.toml:4:1: schedule.cron: required key is missing");
  EXPECT_EQ(error_of(std::string(header) + "[schedule]\ncron = \"@daily\"\nmisfire = \"" +
                     std::string(33, 'x') + "\"\n"),
            "t.toml:6:11: schedule.misfire: must be at most 32 bytes long, got 33");
}

// The cron text and misfire settings, with cron.h's reasons (lines 10 on).
TEST(FlowModelErrors, ScheduleTiming) {
  const std::string start = std::string(with_arguments) + "[schedule]\n" + std::string(good_args);  // 10-11
  EXPECT_EQ(error_of(start + "cron = \"61 * * * *\"\n"),
            "t.toml:12:8: schedule.cron: cron '61 * * * *': minute: 61 is out of range 0-59");
  EXPECT_EQ(
      error_of(std::string(header) + "[[schedule]]\ncron = \"@daily\"\n[[schedule]]\ncron = \"@often\"\n"),
      "t.toml:7:8: schedule[1].cron: cron '@often': unknown macro '@often' (@yearly, @annually, "
      "@monthly, @weekly, @daily, @midnight or @hourly)");
  const std::string daily = start + "cron = \"@daily\"\n";  // line 12
  EXPECT_EQ(
      error_of(daily + "misfire = \"sometimes\"\n"),
      "t.toml:13:11: schedule.misfire: \"sometimes\" is not a misfire policy (skip, fire_once or catch_up)");
  EXPECT_EQ(error_of(daily + "misfire = \"catch_up\"\n"),
            "t.toml:10:1: schedule.catch_up_max: required by misfire policy catch_up");
  EXPECT_EQ(error_of(daily + "misfire = \"fire_once\"\ncatch_up_max = 5\n"),
            "t.toml:14:16: schedule.catch_up_max: only applies to misfire policy catch_up");
  EXPECT_EQ(error_of(daily + "catch_up_max = 5\n"),  // misfire "" is fire_once
            "t.toml:13:16: schedule.catch_up_max: only applies to misfire policy catch_up");
  EXPECT_EQ(error_of(daily + "misfire = \"catch_up\"\ncatch_up_max = 0\n"),
            "t.toml:14:16: schedule.catch_up_max: must be from 1 to 1024, got 0");
  EXPECT_EQ(error_of(daily + "misfire = \"catch_up\"\ncatch_up_max = 1025\n"),
            "t.toml:14:16: schedule.catch_up_max: must be from 1 to 1024, got 1025");
  EXPECT_EQ(error_of(daily + "misfire_grace_s = 3601\n"),
            "t.toml:13:19: schedule.misfire_grace_s: must be from 0 to 3600, got 3601");
  EXPECT_EQ(error_of(daily + "misfire_grace_s = -1\n"),
            "t.toml:13:19: schedule.misfire_grace_s: must be from 0 to 3600, got -1");
  EXPECT_EQ(error_of(daily + "misfire_grace_s = \"60s\"\n"),
            "t.toml:13:19: schedule.misfire_grace_s: expected an integer, got a string");
}

// The arguments a schedule gives (line 12 on, after [schedule] and its cron).
TEST(FlowModelErrors, ScheduleArguments) {
  const std::string start = std::string(with_arguments) + "[schedule]\ncron = \"@daily\"\n";  // 10-11
  EXPECT_EQ(error_of(start),
            "t.toml:10:1: schedule.args: missing argument \"ranges\" (a scheduled flow starts with every "
            "argument; arguments: ranges, doc)");
  EXPECT_EQ(error_of(start + "args = { ranges = [\"r0\", \"r1\", \"r2\"] }\n"),
            "t.toml:12:8: schedule.args: missing argument \"doc\" (a scheduled flow starts with every "
            "argument; arguments: ranges, doc)");
  EXPECT_EQ(error_of(start + "args = { ranges = [\"r0\", \"r1\", \"r2\"], doc = \"d\", extra = \"x\" }\n"),
            "t.toml:12:58: schedule.args.extra: unknown argument \"extra\" (arguments: ranges, doc)");
  EXPECT_EQ(error_of(std::string(header) + "[schedule]\ncron = \"@daily\"\nargs = { doc = \"d\" }\n" +
                     "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"),
            "t.toml:6:16: schedule.args.doc: unknown argument \"doc\" (the model declares no arguments)");
  EXPECT_EQ(error_of(start + "args = { ranges = [\"r0\", \"r1\", \"r2\"], doc = [\"d\"] }\n"),
            "t.toml:12:45: schedule.args.doc: argument \"doc\" is taken whole, so it is given as one "
            "string, not in parts");
  EXPECT_EQ(error_of(start + "args = { ranges = \"r\", doc = \"d\" }\n"),
            "t.toml:12:19: schedule.args.ranges: argument \"ranges\" is taken in 3 parts (\"[split]\"), so "
            "it is given as an array of 3 strings, not as one");
  EXPECT_EQ(error_of(start + "args = { ranges = [\"r0\", \"r1\"], doc = \"d\" }\n"),
            "t.toml:12:19: schedule.args.ranges: argument \"ranges\" is taken in 3 parts (\"[split]\"), "
            "got 2");
  // The second of two schedules, with the [schedule.args] form.
  EXPECT_EQ(
      error_of(std::string(with_arguments) + "[[schedule]]\ncron = \"@daily\"\n" + std::string(good_args) +
               "[[schedule]]\ncron = \"@weekly\"\n[schedule.args]\nranges = []\ndoc = \"d\"\n"),
      "t.toml:16:10: schedule[1].args.ranges: argument \"ranges\" is taken in 3 parts (\"[split]\"), "
      "got 0");
}

TEST(FlowModelErrors, ScheduleArgumentValues) {
  const std::string start = std::string(with_arguments) + "[schedule]\ncron = \"@daily\"\n";  // 10-11
  const std::string ranges = "ranges = [\"r0\", \"r1\", \"r2\"]";
  EXPECT_EQ(error_of(start + "args = { " + ranges + ", doc = \"hex:0g\" }\n"),
            "t.toml:12:45: schedule.args.doc: bad hex after \"hex:\": \"g\" at digit 2 is not a hex digit");
  EXPECT_EQ(error_of(start + "args = { " + ranges + ", doc = \"hex:abc\" }\n"),
            "t.toml:12:45: schedule.args.doc: bad hex after \"hex:\": an odd number of digits (3)");
  EXPECT_EQ(
      error_of(start + "args = { ranges = [\"r0\", \"hex: 00\", \"r2\"], doc = \"d\" }\n"),
      "t.toml:12:26: schedule.args.ranges[1]: bad hex after \"hex:\": \" \" at digit 1 is not a hex digit");
  EXPECT_EQ(error_of(start + "args = \"d\"\n"),
            "t.toml:12:8: schedule.args: expected a table of argument names, got a string");
  EXPECT_EQ(error_of(start + "args = { " + ranges + ", doc = 5 }\n"),
            "t.toml:12:45: schedule.args.doc: expected a string or an array of strings, got an integer");
  EXPECT_EQ(error_of(start + "args = { ranges = [\"r0\", 1, \"r2\"], doc = \"d\" }\n"),
            "t.toml:12:26: schedule.args.ranges[1]: expected a string, got an integer");
  // Three parts of 5500 bytes: 8 + 6 + 3 * (4 + 5500) for ranges, 8 + 3 + 1 for doc.
  const std::string part = "\"" + std::string(5500, 'r') + "\"";
  EXPECT_EQ(error_of(start + "args = { ranges = [" + part + ", " + part + ", " + part + "], doc = \"d\" }\n"),
            "t.toml:12:8: schedule.args: the arguments encode to 16538 bytes, more than the 16384 a flow's "
            "start carries");
  // At the bound exactly: ranges 8 + 6 + 3 * 4 and doc 8 + 3 + 3 take 40 bytes, the parts
  // the rest. One byte more is refused.
  const size_t part_bytes = (flow_schedule_args_bytes_max - 40) / 3;
  ASSERT_EQ(40 + 3 * part_bytes, flow_schedule_args_bytes_max);
  const std::string fits = "\"" + std::string(part_bytes, 'r') + "\"";
  const std::string at_bound = start + "args = { ranges = [" + fits + ", " + fits + ", " + fits + "], doc = ";
  EXPECT_TRUE(parse_flow_model(at_bound + "\"ddd\" }\n", test_path, std::nullopt));
  EXPECT_EQ(error_of(at_bound + "\"dddd\" }\n"),
            "t.toml:12:8: schedule.args: the arguments encode to 16385 bytes, more than the 16384 a flow's "
            "start carries");
}

// Each schedule's arguments fit a flow start, but three of them do not fit a deploy.
TEST(FlowModelErrors, SchedulesTooBigToEncode) {
  const std::string part = "\"" + std::string(5000, 'r') + "\"";
  std::string text(with_arguments);
  for (int schedule = 0; schedule < 3; ++schedule) {
    text += "[[schedule]]\ncron = \"@daily\"\nargs = { ranges = [" + part + ", " + part + ", " + part +
            "], doc = \"d\" }\n";
  }
  EXPECT_EQ(
      error_of(text),
      "t.toml:10:1: schedule: the model encodes to 45231 bytes (45166 of them its schedules), more than "
      "the 32768 a deploy carries (fewer schedules, or smaller schedule arguments)");
}

TEST(FlowModelErrors, TooBigToEncode) {
  // 200 steps with the longest names, each after every step before it: more than a
  // deploy carries, though every count is within its own bound.
  std::string text(header);
  for (int step = 0; step < 200; ++step) {
    char id[40];
    std::snprintf(id, sizeof id, "step_%027d", step);
    text += "[[step]]\nid = \"" + std::string(id) + "\"\ncompute_type = \"" + std::string(32, 't') +
            "\"\nafter = [";
    for (int before = 0; before < step; ++before) {
      std::snprintf(id, sizeof id, "step_%027d", before);
      text += std::string(before == 0 ? "" : ", ") + "\"" + id + "\"";
    }
    text += "]\n";
  }
  EXPECT_EQ(error_of(text),
            "t.toml:4:1: step: the model encodes to 36925 bytes, more than the 32768 a deploy "
            "carries (fewer steps, shorter names, fewer after or input entries)");
}

TEST(FlowModelErrors, TomlSyntax) {
  EXPECT_EQ(error_of(std::string(header) + "[[step]\n"),
            "t.toml:4:8: TOML syntax: Error while parsing table header: expected ']', saw '\\n'");
  // toml++ quotes the raw text it stopped at, which may hold a line break: escaped.
  EXPECT_EQ(error_of("name = \"loan\"\nversion = n\n"),
            "t.toml:2:12: TOML syntax: Error while parsing floating-point: expected 'nan', saw 'n\\x0a'");
}

TEST(FlowModel, LoadRefusesMissingAndHugeFiles) {
  Result<FlowModel> missing = load_flow_model("/nonexistent/flow.toml", std::nullopt);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "/nonexistent/flow.toml: cannot read: No such file or directory");
  const std::string path = testing::TempDir() + "keel_flow_model_huge.toml";
  {
    std::ofstream file(path);
    file << header << std::string(flow_file_bytes_max, '#') << "\n";
  }
  Result<FlowModel> huge = load_flow_model(path, std::nullopt);
  std::filesystem::remove(path);
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().message, path + ": cannot read: larger than 262144 bytes");
}

// A model made in code passes the same checks, named by key alone.
TEST(FlowModel, ValidateChecksModelsMadeInCode) {
  FlowModel model = shipped("loan_approval.toml");
  EXPECT_TRUE(validate_flow_model(model, shipped_types));
  model.steps[1].after = {"decision"};
  Result<void> cycle = validate_flow_model(model, shipped_types);
  ASSERT_FALSE(cycle);
  EXPECT_EQ(cycle.error().message,
            "step[1].after[0]: a cycle: score -> decision -> score (each comes after the next)");
  model = shipped("loan_approval.toml");
  model.steps[2].compute_type = "gpu_risk";
  Result<void> unknown = validate_flow_model(model, shipped_types);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message,
            "step[2].compute_type: unknown compute type \"gpu_risk\" (known: credit_score, hash, interest, "
            "noop, var_mc)");
  EXPECT_TRUE(validate_flow_model(model, std::nullopt));
  model.steps[0].input.push_back(InputSource{InputKind::split_index, "x"});
  Result<CompiledFlow> flow = compile_flow_model(model);
  ASSERT_FALSE(flow);
  EXPECT_EQ(flow.error().message, "step[0].input[1]: split.index takes no name");
}

// Schedules made in code: the shapes a TOML file cannot write (a duplicate, args out of
// order, a whole value in two parts, a catch_up_max of 0) are refused too.
TEST(FlowModel, ValidateChecksSchedulesMadeInCode) {
  const FlowModel good =
      parsed(std::string(with_arguments) + "[schedule]\ncron = \"@daily\"\n" + std::string(good_args));
  ASSERT_TRUE(validate_flow_model(good, std::nullopt));
  const auto error_after = [&](auto edit) {
    FlowModel model = good;
    edit(model.schedules[0]);
    Result<void> valid = validate_flow_model(model, std::nullopt);
    return valid ? std::string("valid") : valid.error().message;
  };
  EXPECT_EQ(
      error_after([](FlowSchedule& s) { std::swap(s.args[0], s.args[1]); }),
      "schedule[0].args.doc: out of order: args come in the order of the model's arguments (ranges, doc)");
  EXPECT_EQ(error_after([](FlowSchedule& s) { s.args.push_back(s.args[1]); }),
            "schedule[0].args.doc: argument \"doc\" given twice");
  EXPECT_EQ(error_after([](FlowSchedule& s) { s.args[1].parts.push_back("more"); }),
            "schedule[0].args.doc: a whole value is one part, got 2");
  EXPECT_EQ(error_after([](FlowSchedule& s) { s.args[1].name = "Doc"; }),
            "schedule[0].args.Doc: unknown argument \"Doc\" (arguments: ranges, doc)");
  EXPECT_EQ(error_after([](FlowSchedule& s) { s.misfire = "catch_up"; }),
            "schedule[0].catch_up_max: required by misfire policy catch_up");
  EXPECT_EQ(error_after([](FlowSchedule& s) {
              s.misfire = "catch_up";
              s.catch_up_max = 1025;
            }),
            "schedule[0].catch_up_max: 1025 is out of range 1-1024");
  EXPECT_EQ(error_after([](FlowSchedule& s) { s.grace_s = 3601; }),
            "schedule[0].misfire_grace_s: 3601 is out of range 0-3600");
  EXPECT_EQ(error_after([](FlowSchedule& s) { s.misfire = "Skip"; }),
            "schedule[0].misfire: \"Skip\" is not a misfire policy (skip, fire_once or catch_up)");
  EXPECT_EQ(
      error_after([](FlowSchedule& s) { s.cron = "0 0 * *"; }),
      "schedule[0].cron: cron '0 0 * *': expected 5 fields (minute hour day-of-month month day-of-week), "
      "found 4");
  EXPECT_EQ(error_after([](FlowSchedule& s) {
              s.misfire = "catch_up";
              s.catch_up_max = 1024;
              s.grace_s = 3600;
            }),
            "valid");
}

// The seed of a randomized test: KEEL_TEST_SEED when set (to replay a failure), else a
// fresh one. Printed either way.
uint64_t test_seed() {
  const char* seed_text = std::getenv("KEEL_TEST_SEED");
  const uint64_t seed = seed_text != nullptr ? std::strtoull(seed_text, nullptr, 10) : std::random_device{}();
  std::printf("seed %" PRIu64 "\n", seed);
  return seed;
}

// Random edits of a shipped model's text never crash the parser: each gives a model
// that validates or one line placed in the file.
TEST(FlowModelErrors, RandomEditsOfTextGiveOneLine) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  std::ifstream file(KEEL_SOURCE_DIR "/perf/flows/loan_approval.toml");
  const std::string original((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(original.empty());
  constexpr std::string_view alphabet = "[]{}=\",.#\n 0123456789abcdefghijklmnopqrstuvwxyz_-";
  for (int round = 0; round < 2000; ++round) {
    std::string text = original;
    for (int edit = 0; edit < 1 + int(random() % 3); ++edit) {
      const size_t at = random() % text.size();
      const char c = alphabet[random() % alphabet.size()];
      switch (random() % 3) {
        case 0: text[at] = c; break;
        case 1: text.insert(text.begin() + at, c); break;
        case 2: text.erase(at, 1 + random() % 8); break;
      }
    }
    Result<FlowModel> model = parse_flow_model(text, test_path, shipped_types);
    if (model) {
      ASSERT_TRUE(validate_flow_model(*model, shipped_types)) << text;
      continue;
    }
    const std::string& message = model.error().message;
    ASSERT_TRUE(message.starts_with("t.toml:")) << message;
    ASSERT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// ---------------------------------------------------------------------------------------
// The encoded form

std::string hex(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::byte byte : bytes) {
    out += digits[uint8_t(byte) >> 4];
    out += digits[uint8_t(byte) & 0xf];
  }
  return out;
}

std::vector<std::byte> bytes_of(std::string_view hex_text) {
  std::vector<std::byte> out;
  for (size_t index = 0; index + 1 < hex_text.size(); index += 2) {
    out.push_back(std::byte(std::stoi(std::string(hex_text.substr(index, 2)), nullptr, 16)));
  }
  return out;
}

std::string decode_error(std::span<const std::byte> bytes) {
  Result<FlowModel> model = decode_flow_model(bytes);
  if (model) {
    ADD_FAILURE() << "decoded without an error: " << hex(bytes);
    return "";
  }
  return model.error().message;
}

// A schedule with an argument in parts and one whole, and every misfire setting.
TEST(FlowModelEncoding, SchedulesRoundTrip) {
  const FlowModel model =
      parsed(std::string(with_arguments) +
             "[[schedule]]\ncron = \"*/15 9-17 * * MON-FRI\"\nmisfire = \"catch_up\"\ncatch_up_max = 3\n"
             "misfire_grace_s = 120\nargs = { doc = \"hex:C0ffEE\", ranges = [\"r0\", \"hex:00ff\", \"\"] }\n"
             "[[schedule]]\ncron = \"@daily\"\n" +
             std::string(good_args));
  ASSERT_EQ(model.schedules.size(), 2u);
  const std::vector<std::byte> bytes = encode_flow_model(model);
  Result<FlowModel> decoded = decode_flow_model(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  ASSERT_EQ(*decoded, model);
  EXPECT_EQ(decoded->schedules[0].args[0].parts[1], std::string("\x00\xff", 2));
  EXPECT_EQ(encode_flow_model(*decoded), bytes);
}

TEST(FlowModelEncoding, RoundTripIsExactAndDeterministic) {
  for (std::string_view file : {"loan_approval.toml", "nightly_interest.toml"}) {
    SCOPED_TRACE(file);
    const FlowModel model = shipped(file);
    const std::vector<std::byte> bytes = encode_flow_model(model);
    EXPECT_LE(bytes.size(), flow_model_bytes_max);
    EXPECT_EQ(encode_flow_model(model), bytes);
    // A copy made apart from the first encodes the same.
    const FlowModel copy = shipped(file);
    EXPECT_EQ(encode_flow_model(copy), bytes);
    Result<FlowModel> decoded = decode_flow_model(bytes);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(*decoded, model);
    EXPECT_EQ(encode_flow_model(*decoded), bytes);
  }
}

// The encoded form goes into the ledger: these bytes must not change without a new
// format version.
TEST(FlowModelEncoding, BytesArePinned) {
  const FlowModel model = parsed(
      "name = \"f\"\nversion = 258\nproduct = \"p\"\narguments = [\"a\", \"b\"]\n"
      "[schedule]\ncron = \"@daily\"\nmisfire = \"catch_up\"\ncatch_up_max = 2\nmisfire_grace_s = 30\n"
      "args = { b = [\"\", \"p\", \"hex:0001\", \"q\"], a = \"A\" }\n"
      "[[step]]\nid = \"x\"\ncompute_type = \"noop\"\ninput = [\"args.a\"]\n"
      "[[step]]\nid = \"y\"\ncompute_type = \"hash\"\nafter = [\"x\"]\nsplit = 4\nsplit_failures_max = 1\n"
      "input = [\"split.index\", \"steps.x.output\", \"args.b[split]\"]\n");
  const std::vector<std::byte> bytes = encode_flow_model(model);
  // clang-format off
  EXPECT_EQ(hex(bytes),
            "4b464c57"            // magic "KFLW"
            "02"                  // format version 2
            "0166" "02010000" "0170"  // name "f", version 258, product "p"
            "02" "0161" "0162"    // 2 arguments: "a", "b"
            "01"                  // 1 schedule:
            "06406461696c79"      //   cron "@daily"
            "0863617463685f7570"  //   misfire "catch_up"
            "02000000" "1e000000" //   catch_up_max 2, grace_s 30
            "02"                  //   2 arguments:
            "0161" "00" "01000000" "01000000" "41"  // a, whole: 1 part, "A"
            "0162" "01" "04000000"                  // b, in 4 parts:
            "00000000" "01000000" "70" "02000000" "0001" "01000000" "71"  // "", "p", 00 01, "q"
            "0200"                // 2 steps
            "0178" "046e6f6f70"   // x: id "x", compute type "noop"
            "10270000" "03" "64000000"  // timeout_ms 10000, retries_max 3, backoff_ms 100
            "01000000" "00000000" //    split 1, split_failures_max 0
            "00" "01" "0100"      //    no after; 1 input: argument 0
            "0179" "0468617368"   // y: id "y", compute type "hash"
            "10270000" "03" "64000000"  // timeout_ms 10000, retries_max 3, backoff_ms 100
            "04000000" "01000000" //    split 4, split_failures_max 1
            "01" "00"             //    after: step 0
            "03" "0400" "0300" "0201");  // 3 inputs: split.index, step 0's output, argument 1 in parts
  // clang-format on
  Result<FlowModel> decoded = decode_flow_model(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, model);
}

// A model in format version 1 (the bytes that version's pinned test held: schedules
// without misfire settings or arguments) is refused, not misread.
TEST(FlowModelEncoding, DecodeRefusesFormatVersion1) {
  const std::vector<std::byte> version_1 = bytes_of(
      "4b464c57"
      "01"
      "0166"
      "02010000"
      "0170"
      "02"
      "0161"
      "0162"
      "01"
      "06406461696c79"
      "00"
      "0200"
      "0178"
      "046e6f6f70"
      "10270000"
      "03"
      "64000000"
      "01000000"
      "00000000"
      "00"
      "01"
      "0100"
      "0179"
      "0468617368"
      "10270000"
      "03"
      "64000000"
      "04000000"
      "01000000"
      "01"
      "00"
      "03"
      "0400"
      "0300"
      "0201");
  EXPECT_EQ(decode_error(version_1), "flow model bytes: format version 1, this keel reads 2");
}

// Edits to a schedule's bytes, each refused with its reason: the layout's own rules
// (in_parts 0 or 1, a whole value in one part) and validation's.
TEST(FlowModelEncoding, DecodeChecksSchedules) {
  const FlowModel model = parsed(std::string(header) +
                                 "arguments = [\"a\"]\n[schedule]\ncron = \"@daily\"\n"
                                 "args = { a = \"v\" }\n[[step]]\nid = \"s\"\ncompute_type = \"noop\"\n"
                                 "input = [\"args.a\"]\n");
  const std::vector<std::byte> good = encode_flow_model(model);
  // ... grace_s 60 | 1 argument | "a" | whole | 1 part | 1 byte "v"
  const std::vector<std::byte> tail = bytes_of(
      "3c000000"
      "01"
      "0161"
      "00"
      "01000000"
      "01000000"
      "76");
  auto at = std::search(good.begin(), good.end(), tail.begin(), tail.end());
  ASSERT_NE(at, good.end());
  const size_t grace = size_t(at - good.begin()), name = grace + 6, in_parts = grace + 7,
               part_count = grace + 8;

  std::vector<std::byte> bytes = good;
  bytes[in_parts] = std::byte{2};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: schedule[0].args[0]: in_parts must be 0 or 1, got 2");
  bytes[in_parts] = std::byte{1};
  EXPECT_EQ(
      decode_error(bytes),
      "flow model bytes: schedule[0].args.a: argument \"a\" is taken whole, so it is given as one string, "
      "not in parts");
  bytes = good;
  bytes[part_count] = std::byte{2};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: schedule[0].args[0]: a whole value is one part, got 2");
  bytes = good;
  bytes[name] = std::byte{'b'};
  EXPECT_EQ(decode_error(bytes),
            "flow model bytes: schedule[0].args.b: unknown argument \"b\" (arguments: a)");
  bytes = good;
  bytes[grace] = std::byte{0x11};
  bytes[grace + 1] = std::byte{0x0e};  // 3601
  EXPECT_EQ(decode_error(bytes),
            "flow model bytes: schedule[0].misfire_grace_s: 3601 is out of range 0-3600");
  // A part count of 2^32 - 1 runs out of bytes at once.
  bytes = good;
  bytes[in_parts] = std::byte{1};
  for (size_t index = 0; index < 4; ++index) bytes[part_count + index] = std::byte{0xff};
  EXPECT_TRUE(decode_error(bytes).starts_with("flow model bytes: truncated: schedule[0].args[0].parts["))
      << decode_error(bytes);
}

TEST(FlowModelEncoding, DecodeRefusesBadBytes) {
  const std::vector<std::byte> good = encode_flow_model(shipped("loan_approval.toml"));
  EXPECT_EQ(decode_error({}), "flow model bytes: truncated: magic at byte 0 needs 1 byte, 0 left");
  std::vector<std::byte> bytes = good;
  bytes[0] = std::byte{'X'};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: not a flow model (no \"KFLW\" magic)");
  bytes = good;
  bytes[4] = std::byte{3};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: format version 3, this keel reads 2");
  bytes = good;
  bytes.push_back(std::byte{0});
  EXPECT_EQ(decode_error(bytes),
            "flow model bytes: 1 byte after the model's end at byte " + std::to_string(good.size()));
  EXPECT_EQ(decode_error(std::vector<std::byte>(flow_model_bytes_max + 1)),
            "flow model bytes: 32769 bytes, more than 32768");
  // Every strict prefix is refused.
  for (size_t size = 0; size < good.size(); ++size) {
    EXPECT_FALSE(decode_flow_model(std::span(good).first(size))) << size;
  }
}

// Edits to a small model's bytes at known offsets, each refused with its reason.
TEST(FlowModelEncoding, DecodeChecksEveryRuleAgain) {
  // Two steps: a (noop), b (noop, after a, input steps.a.output and split.index).
  const FlowModel model = parsed(std::string(header) +
                                 "[[step]]\nid = \"a\"\ncompute_type = \"noop\"\n"
                                 "[[step]]\nid = \"b\"\ncompute_type = \"noop\"\nafter = [\"a\"]\n"
                                 "input = [\"steps.a.output\", \"split.index\"]\n");
  const std::vector<std::byte> good = encode_flow_model(model);
  // The layout's tail: ... b's after (count 1, index 0), input count 2, (3, 0), (4, 0).
  const size_t end = good.size();
  ASSERT_EQ(hex(std::span(good).subspan(end - 7)),
            "0100"
            "02"
            "0300"
            "0400");
  const size_t after_index = end - 6, first_kind = end - 4, first_index = end - 3, second_index = end - 1;

  std::vector<std::byte> bytes = good;
  bytes[after_index] = std::byte{1};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: step[1].after[0]: a step cannot come after itself");
  bytes[after_index] = std::byte{2};
  EXPECT_EQ(decode_error(bytes),
            "flow model bytes: step[1].after[0]: step index 2, but the model has 2 steps");
  bytes = good;
  bytes[first_kind] = std::byte{9};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: step[1].input[0]: unknown input kind 9");
  bytes[first_kind] = std::byte{1};
  EXPECT_EQ(decode_error(bytes),
            "flow model bytes: step[1].input[0]: index 0, but the model has 0 arguments");
  bytes = good;
  bytes[first_index] = std::byte{1};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: step[1].input[0]: a step cannot take its own output");
  bytes = good;
  bytes[second_index] = std::byte{1};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: step[1].input[1]: split.index with index 1 (must be 0)");
  bytes = good;
  bytes.resize(end - 2);
  EXPECT_EQ(decode_error(bytes), "flow model bytes: truncated: step[1].input[1] at byte " +
                                     std::to_string(end - 2) + " needs 1 byte, 0 left");
  // Step a's id (right after the step count) made "b": a duplicate.
  bytes = good;
  const std::vector<std::byte> id_a = bytes_of("0161");  // length 1, "a"
  auto at = std::search(bytes.begin() + 5, bytes.end(), id_a.begin(), id_a.end());
  ASSERT_NE(at, bytes.end());
  *(at + 1) = std::byte{'b'};
  EXPECT_EQ(decode_error(bytes), "flow model bytes: step[1].id: duplicate step id \"b\" (first at step[0])");
}

// Random edits of valid bytes never crash decoding; whatever it accepts is a valid model
// that encodes back to exactly those bytes. Replay a failure with KEEL_TEST_SEED=<seed>.
TEST(FlowModelEncoding, RandomCorruptionNeverCrashes) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  const std::vector<std::vector<std::byte>> originals = {encode_flow_model(shipped("loan_approval.toml")),
                                                         encode_flow_model(shipped("nightly_interest.toml"))};
  size_t accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<std::byte> bytes = originals[round % originals.size()];
    const int edits = 1 + int(random() % 4);
    for (int edit = 0; edit < edits && !bytes.empty(); ++edit) {
      const size_t at = random() % bytes.size();
      switch (random() % 5) {
        case 0: bytes[at] ^= std::byte(1u << (random() % 8)); break;
        case 1: bytes[at] = std::byte(random() % 256); break;
        case 2: bytes.erase(bytes.begin() + at); break;
        case 3: bytes.insert(bytes.begin() + at, std::byte(random() % 256)); break;
        case 4: bytes.resize(at); break;
      }
    }
    Result<FlowModel> model = decode_flow_model(bytes);
    if (!model) {
      ASSERT_TRUE(model.error().message.starts_with("flow model bytes: ")) << model.error().message;
      continue;
    }
    ++accepted;
    ASSERT_TRUE(validate_flow_model(*model, std::nullopt));
    ASSERT_EQ(encode_flow_model(*model), bytes) << "round " << round;
  }
  std::printf("%zu of 20000 corrupted encodings decoded (each a valid model, re-encoded exactly)\n",
              accepted);
}

}  // namespace
}  // namespace keel::flow
