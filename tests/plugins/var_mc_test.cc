// Tests for plugins/var_mc: bit-identical reproducibility for a seed, agreement with the
// closed-form VaR and ES of a single lognormal position, and every input bound.
#include <cmath>
#include <limits>
#include <thread>

#include "tests/plugins/loaded_plugin.h"

namespace keel::plugins {
namespace {

struct Position {
  double value, drift, volatility;
};

struct Request {
  uint64_t seed = 1;
  uint32_t paths = 10'000;
  uint32_t horizon_days = 10;
  double confidence = 0.99;
  std::vector<Position> positions = {{1e6, 0.05, 0.2}};
  uint32_t reserved = 0;
};

std::vector<uint8_t> request_input(const Request& request) {
  LittleEndianWriter writer;
  writer.u64(request.seed).u32(request.paths).u32(request.horizon_days).f64(request.confidence);
  writer.u32(uint32_t(request.positions.size())).u32(request.reserved);
  for (const Position& position : request.positions) writer.f64(position.value).f64(position.drift).f64(position.volatility);
  return writer.bytes();
}

struct Risk {
  double value_at_risk, expected_shortfall;
};

Risk risk_of(const RunOutcome& outcome) {
  EXPECT_EQ(outcome.status, KEEL_STATUS_OK);
  if (outcome.output.size() != 16) {
    ADD_FAILURE() << "output of " << outcome.output.size() << " bytes";
    return {0, 0};
  }
  return {read_f64(outcome.output, 0), read_f64(outcome.output, 8)};
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

constexpr double z_99 = 2.3263478740408408;  // the standard normal's 99% quantile

TEST(VarMcPlugin, SameSeedGivesBitIdenticalOutputAndAnotherSeedDoesNot) {
  Request request;
  request.seed = 20240601;
  request.paths = 50'000;
  request.positions = {{1e6, 0.05, 0.2}, {-3e5, 0.02, 0.35}, {2.5e6, 0.07, 0.1}};
  LoadedPlugin first(KEEL_PLUGIN_PATH, "var_mc");
  LoadedPlugin second(KEEL_PLUGIN_PATH, "var_mc");
  ASSERT_TRUE(first.ok() && second.ok());
  RunOutcome reference = first.run(request_input(request));
  ASSERT_EQ(reference.status, KEEL_STATUS_OK);
  EXPECT_EQ(first.run(request_input(request)).output, reference.output);
  EXPECT_EQ(second.run(request_input(request)).output, reference.output);
  // And from two threads at once on one instance.
  std::vector<uint8_t> concurrent[2];
  std::thread other([&] { concurrent[0] = first.run(request_input(request)).output; });
  concurrent[1] = first.run(request_input(request)).output;
  other.join();
  EXPECT_EQ(concurrent[0], reference.output);
  EXPECT_EQ(concurrent[1], reference.output);

  request.seed = 20240602;
  RunOutcome reseeded = first.run(request_input(request));
  ASSERT_EQ(reseeded.status, KEEL_STATUS_OK);
  EXPECT_NE(reseeded.output, reference.output);
  Risk a = risk_of(reference), b = risk_of(reseeded);
  EXPECT_NE(a.value_at_risk, b.value_at_risk);
  EXPECT_NE(a.expected_shortfall, b.expected_shortfall);
}

// One position: the loss is V (1 - e^X) with X ~ N(m, s^2), m = (mu - sigma^2 / 2) t,
// s = sigma sqrt(t), t = days / 252. So VaR = V (1 - e^(m - s z)) exactly, and
// ES = V (1 - e^(m + s^2 / 2) Phi(-z - s) / (1 - c)).
TEST(VarMcPlugin, ASinglePositionMatchesTheClosedFormLognormalVaRAndShortfall) {
  Request request;
  request.seed = 7;
  request.paths = 1'000'000;
  request.horizon_days = 10;
  request.confidence = 0.99;
  double value = 1e6, drift = 0.05, volatility = 0.2;
  request.positions = {{value, drift, volatility}};
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "var_mc");
  ASSERT_TRUE(plugin.ok());
  Risk risk = risk_of(plugin.run(request_input(request)));

  double years = 10.0 / 252.0, m = (drift - volatility * volatility / 2) * years, s = volatility * std::sqrt(years);
  double exact_var = value * (1 - std::exp(m - s * z_99));
  double exact_es = value * (1 - std::exp(m + s * s / 2) * normal_cdf(-z_99 - s) / 0.01);
  // With 10,000 paths in the 1% tail, the estimates' standard errors are about 0.3%.
  EXPECT_NEAR(risk.value_at_risk, exact_var, 0.01 * exact_var);
  EXPECT_NEAR(risk.expected_shortfall, exact_es, 0.015 * exact_es);
  EXPECT_GT(risk.expected_shortfall, risk.value_at_risk);
}

// Over one day, the delta-normal VaR V (sigma sqrt(t) z - mu t) is within a few tenths of
// a percent of the lognormal one, so the simulation must land near it too.
TEST(VarMcPlugin, OverOneDayASinglePositionIsCloseToTheNormalVaR) {
  Request request;
  request.seed = 11;
  request.paths = 1'000'000;
  request.horizon_days = 1;
  double value = 2e6, drift = 0.08, volatility = 0.25;
  request.positions = {{value, drift, volatility}};
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "var_mc");
  ASSERT_TRUE(plugin.ok());
  Risk risk = risk_of(plugin.run(request_input(request)));
  double years = 1.0 / 252.0;
  double normal_var = value * (volatility * std::sqrt(years) * z_99 - drift * years);
  EXPECT_NEAR(risk.value_at_risk, normal_var, 0.02 * normal_var);
}

TEST(VarMcPlugin, WithoutVolatilityTheLossIsTheDriftExactly) {
  Request request;
  request.paths = 1000;
  request.horizon_days = 252;  // one year
  request.positions = {{1e6, 0.0, 0.0}, {5e5, 0.1, 0.0}};
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "var_mc");
  ASSERT_TRUE(plugin.ok());
  Risk risk = risk_of(plugin.run(request_input(request)));
  double gain = 5e5 * (std::exp(0.1) - 1);  // every path the same: a gain, a negative loss
  EXPECT_NEAR(risk.value_at_risk, -gain, 1e-6);
  EXPECT_NEAR(risk.expected_shortfall, -gain, 1e-6);
}

TEST(VarMcPlugin, RefusesEveryFieldOutOfRange) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "var_mc");
  ASSERT_TRUE(plugin.ok());
  auto status_with = [&](auto change) {
    Request request;
    request.paths = 100;
    change(request);
    return plugin.status_of(request_input(request));
  };
  double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(status_with([](Request&) {}), KEEL_STATUS_OK);
  EXPECT_EQ(status_with([](Request& r) { r.paths = 0; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.paths = 10'000'001; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.horizon_days = 0; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.horizon_days = 3651; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.confidence = 0.89; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.confidence = 1.0; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([&](Request& r) { r.confidence = nan; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions.clear(); }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions.assign(257, {1, 0, 0.1}); }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions.assign(256, {1, 0, 0.1}); }), KEEL_STATUS_OK);
  // 400,000 paths x 256 positions is past the 100,000,000 path-position bound.
  EXPECT_EQ(status_with([](Request& r) { r.paths = 400'000; r.positions.assign(256, {1, 0, 0.1}); }),
            KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.reserved = 1; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions[0].value = 1.5e15; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([&](Request& r) { r.positions[0].value = nan; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions[0].drift = -5.5; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions[0].volatility = -0.1; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([](Request& r) { r.positions[0].volatility = 5.1; }), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(status_with([&](Request& r) { r.positions[0].volatility = nan; }), KEEL_STATUS_BAD_INPUT);
  // Extreme but allowed: the largest values, drifts and volatilities over ten years stay finite.
  EXPECT_EQ(status_with([](Request& r) {
              r.horizon_days = 3650;
              r.positions = {{1e15, 5, 5}, {-1e15, -5, 5}};
            }),
            KEEL_STATUS_OK);
}

TEST(VarMcPlugin, RefusesTruncatedAndOversizedInput) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "var_mc");
  ASSERT_TRUE(plugin.ok());
  Request request;
  request.paths = 100;
  request.positions = {{1e6, 0.05, 0.2}, {1e6, 0.05, 0.2}};
  std::vector<uint8_t> input = request_input(request);
  ASSERT_EQ(plugin.status_of(input), KEEL_STATUS_OK);
  EXPECT_EQ(plugin.status_of(truncated(input)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(oversized(input)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(std::vector<uint8_t>(input.begin(), input.begin() + 32)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of({}), KEEL_STATUS_BAD_INPUT);
  RunOutcome small = plugin.run(input, 15);
  EXPECT_EQ(small.status, KEEL_STATUS_OUTPUT_TOO_SMALL);
  EXPECT_EQ(small.output_bytes, 16u);
}

}  // namespace
}  // namespace keel::plugins
