// Tests for plugins/credit_score: scores against hand computations, config parsing and
// its errors, and malformed input.
#include <cmath>
#include <limits>

#include "tests/plugins/loaded_plugin.h"

namespace keel::plugins {
namespace {

using Features = std::array<double, 6>;
using Config = std::vector<std::pair<std::string, std::string>>;

std::vector<uint8_t> applicants_input(const std::vector<Features>& applicants) {
  LittleEndianWriter writer;
  writer.u32(uint32_t(applicants.size())).u32(0);
  for (const Features& features : applicants) {
    for (double feature : features) writer.f64(feature);
  }
  return writer.bytes();
}

struct Scored {
  double probability;
  uint32_t score;
};

std::vector<Scored> scored(const RunOutcome& outcome) {
  EXPECT_EQ(outcome.status, KEEL_STATUS_OK);
  EXPECT_EQ(outcome.output.size() % 16, 0u);
  std::vector<Scored> results;
  for (size_t offset = 0; offset + 16 <= outcome.output.size(); offset += 16) {
    EXPECT_EQ(read_u32(outcome.output, offset + 12), 0u) << "reserved field";
    results.push_back({read_f64(outcome.output, offset), read_u32(outcome.output, offset + 8)});
  }
  return results;
}

std::string init_error(const Config& config) {
  Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(KEEL_PLUGIN_PATH);
  EXPECT_TRUE(library) << library.error().message;
  if (!library) return "";
  Result<sched::PluginInstance> instance = (*library)->init(config);
  return instance ? "init succeeded" : instance.error().message;
}

TEST(CreditScorePlugin, ScoresAsComputedByHand) {
  // z = 0.1 + 0.5 * 2 - 1 * 0.3 + 0.25 * 4 = 1.8 (the last three features weigh nothing);
  // p = 1 / (1 + e^-1.8) = 0.858148935099512; score = 300 + round(550 p = 471.98) = 772.
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "credit_score", {{"weights", "0.5,-1,0.25,0,0,0"}, {"bias", "0.1"}});
  ASSERT_TRUE(plugin.ok());
  std::vector<Scored> results = scored(plugin.run(applicants_input({{2, 0.3, 4, 7, 9, 11}})));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NEAR(results[0].probability, 0.858148935099512, 1e-14);
  EXPECT_EQ(results[0].score, 772u);
}

TEST(CreditScorePlugin, DefaultModelScoresATypicalApplicantAndKeepsInputOrder) {
  // Defaults: weights -2.5, -1.8, 0.08, -0.9, -0.25, 0.6 and bias -0.5. For the typical
  // applicant z = -0.5 - 0.875 - 0.54 + 0.64 - 0 - 0.25 + 2.819382 = 1.294382,
  // p = 0.784887964590961, score = 300 + round(431.69) = 732.
  // A risky one: z = -0.5 - 2.5 - 1.8 + 0.04 - 4.5 - 1.5 + 2.4 = -8.36, p = 2.3399e-4, score 300.
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "credit_score");
  ASSERT_TRUE(plugin.ok());
  std::vector<Scored> results =
      scored(plugin.run(applicants_input({{0.35, 0.30, 8, 0, 1, 4.69897}, {1.0, 1.0, 0.5, 5, 6, 4.0}})));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_NEAR(results[0].probability, 0.784887964590961, 1e-14);
  EXPECT_EQ(results[0].score, 732u);
  EXPECT_NEAR(results[1].probability, 1.0 / (1.0 + std::exp(8.36)), 1e-15);
  EXPECT_NEAR(results[1].probability, 2.3399e-4, 1e-8);
  EXPECT_EQ(results[1].score, 300u);
}

TEST(CreditScorePlugin, ExtremeScoresStayInRangeAndScoreBoundsComeFromConfig) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "credit_score",
                      {{"weights", " 1, 0, 0, 0, 0, 0 "}, {"bias", "0"}, {"score_min", "0"}, {"score_max", "1000"}});
  ASSERT_TRUE(plugin.ok());
  std::vector<Scored> results = scored(plugin.run(applicants_input({{800, 0, 0, 0, 0, 0},  // exp(-800) underflows
                                                                     {-800, 0, 0, 0, 0, 0},
                                                                     {0, 0, 0, 0, 0, 0}})));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].probability, 1.0);
  EXPECT_EQ(results[0].score, 1000u);
  EXPECT_EQ(results[1].probability, 0.0);
  EXPECT_EQ(results[1].score, 0u);
  EXPECT_EQ(results[2].probability, 0.5);
  EXPECT_EQ(results[2].score, 500u);
}

TEST(CreditScorePlugin, NoApplicantsGiveNoOutput) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "credit_score");
  ASSERT_TRUE(plugin.ok());
  RunOutcome outcome = plugin.run(applicants_input({}), 0);
  EXPECT_EQ(outcome.status, KEEL_STATUS_OK);
  EXPECT_EQ(outcome.output_bytes, 0u);
}

TEST(CreditScorePlugin, BadConfigFailsInitWithAClearReason) {
  std::string prefix = std::string(KEEL_PLUGIN_PATH) + ": init failed: ";
  EXPECT_EQ(init_error({{"weights", "1,2,3,4,5"}}), prefix + "weights: expected 6 numbers, got 5");
  EXPECT_EQ(init_error({{"weights", "1,2,3,4,5,6,7"}}), prefix + "weights: expected 6 numbers, got 7");
  EXPECT_EQ(init_error({{"weights", "1,2,x,4,5,6"}}), prefix + "weights: item 3 'x' is not a finite number");
  EXPECT_EQ(init_error({{"weights", "1,2,,4,5,6"}}), prefix + "weights: item 3 '' is not a finite number");
  EXPECT_EQ(init_error({{"weights", "1,2,inf,4,5,6"}}), prefix + "weights: item 3 'inf' is not a finite number");
  EXPECT_EQ(init_error({{"bias", "0.5x"}}), prefix + "bias: '0.5x' is not a finite number");
  EXPECT_EQ(init_error({{"bias", "nan"}}), prefix + "bias: 'nan' is not a finite number");
  EXPECT_EQ(init_error({{"score_min", "-1"}}), prefix + "score_min: '-1' is not an integer from 0 to 100000");
  EXPECT_EQ(init_error({{"score_max", "100001"}}), prefix + "score_max: '100001' is not an integer from 0 to 100000");
  EXPECT_EQ(init_error({{"score_min", "900"}}), prefix + "score_min (900) must be below score_max (850)");
  EXPECT_EQ(init_error({{"intercept", "1"}}),
            prefix + "unknown config key 'intercept' (credit_score takes weights, bias, score_min, score_max)");
}

TEST(CreditScorePlugin, RefusesMalformedInput) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "credit_score");
  ASSERT_TRUE(plugin.ok());
  std::vector<uint8_t> two = applicants_input({{0.3, 0.3, 5, 0, 0, 4.5}, {0.3, 0.3, 5, 0, 0, 4.5}});
  ASSERT_EQ(plugin.status_of(two), KEEL_STATUS_OK);
  EXPECT_EQ(plugin.status_of(truncated(two)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(oversized(two)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of({}), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(std::vector<uint8_t>(two.begin(), two.begin() + 8)), KEEL_STATUS_BAD_INPUT);
  std::vector<uint8_t> reserved = two;
  reserved[4] = 1;
  EXPECT_EQ(plugin.status_of(reserved), KEEL_STATUS_BAD_INPUT);
  std::vector<uint8_t> count_too_high = two;
  count_too_high[0] = 3;
  EXPECT_EQ(plugin.status_of(count_too_high), KEEL_STATUS_BAD_INPUT);
  double nan = std::numeric_limits<double>::quiet_NaN(), infinity = std::numeric_limits<double>::infinity();
  EXPECT_EQ(plugin.status_of(applicants_input({{0.3, nan, 5, 0, 0, 4.5}})), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(applicants_input({{0.3, 0.3, 5, 0, 0, -infinity}})), KEEL_STATUS_BAD_INPUT);
  // Finite weights and features whose products are not: 1e308 * 1e308 overflows.
  LoadedPlugin big(KEEL_PLUGIN_PATH, "credit_score", {{"weights", "0,0,0,0,1e308,1e308"}});
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big.status_of(applicants_input({{0, 0, 0, 0, 1e308, 1e308}})), KEEL_STATUS_BAD_INPUT);
}

TEST(CreditScorePlugin, AsksForSixteenBytesPerApplicant) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "credit_score");
  ASSERT_TRUE(plugin.ok());
  RunOutcome outcome = plugin.run(applicants_input({{0.3, 0.3, 5, 0, 0, 4.5}, {0.3, 0.3, 5, 0, 0, 4.5}}), 31);
  EXPECT_EQ(outcome.status, KEEL_STATUS_OUTPUT_TOO_SMALL);
  EXPECT_EQ(outcome.output_bytes, 32u);
}

}  // namespace
}  // namespace keel::plugins
