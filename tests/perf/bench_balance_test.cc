// `keel bench balance --json` in its shortest form (one round of 2-second runs): the JSON
// object holds every mode's figures, the settling and tier-change figures, and every
// ratio with its target. The figures themselves are not judged: a benchmark's targets are
// for perf/RESULTS.md, not for a test on a shared machine.
#include <map>

#include "tests/engine/cli/keel_process.h"

namespace keel::cli {
namespace {

void expect_figure(const nlohmann::json& figure, const std::string& where) {
  ASSERT_TRUE(figure.is_object()) << where;
  for (const char* key : {"median", "min", "max"}) {
    ASSERT_TRUE(figure.contains(key)) << where << "." << key;
    EXPECT_TRUE(figure[key].is_number()) << where << "." << key;
  }
  EXPECT_LE(figure["min"].get<double>(), figure["median"].get<double>()) << where;
  EXPECT_LE(figure["median"].get<double>(), figure["max"].get<double>()) << where;
}

TEST_F(KeelCli, BenchBalanceJsonHasEveryFigureAndRatio) {
  Outcome outcome = keel({"bench", "balance", "--json", "--seconds", "2", "--repetitions", "1", "--directory",
                          (directory_ / "bench").string()},
                         60s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  nlohmann::json json = nlohmann::json::parse(outcome.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(json.is_discarded()) << outcome.out;
  EXPECT_EQ(json["benchmark"], "balance");
  EXPECT_EQ(json["repetitions"], 1);
  EXPECT_EQ(json["fsync"], "always");
  for (const char* key : {"machine", "topology", "os_threads_topology"}) EXPECT_TRUE(json[key].is_string()) << key;
  EXPECT_GT(json["static_split_cap_cores_per_chain"].get<double>(), 0);
  EXPECT_EQ(json["load"]["surging_before_shift"], "cards");
  EXPECT_EQ(json["load"]["surging_after_shift"], "payments");

  for (const char* mode : {"balancer", "static_split", "equal_weights", "os_threads", "unloaded"}) {
    const nlohmann::json& figures = json["modes"][mode];
    std::string where = std::string("modes.") + mode;
    expect_figure(figures["aggregate_tps"], where + ".aggregate_tps");
    EXPECT_GT(figures["aggregate_tps"]["median"].get<double>(), 0) << where << ": nothing committed";
    bool loaded = std::string(mode) != "unloaded";
    EXPECT_EQ(figures.contains("aggregate_tps_before_shift"), loaded) << where;
    EXPECT_EQ(figures.contains("aggregate_tps_after_shift"), loaded) << where;
    for (const char* chain : {"payments", "settlement", "cards", "treasury"}) {
      expect_figure(figures["chains"][chain]["tps"], where + "." + chain + ".tps");
      expect_figure(figures["chains"][chain]["commit_p99_us"], where + "." + chain + ".commit_p99_us");
      EXPECT_EQ(figures["chains"][chain].contains("cap_periods_throttled"), std::string(mode) == "static_split");
    }
    for (const char* key : {"poll_gap_p99_us", "poll_gap_max_us", "commit_p99_us", "commit_max_us",
                            "sealed_to_durable_p99_us"})
      expect_figure(figures["persist"][key], where + ".persist." + key);
  }
  for (const char* key : {"surging_chain_heavy", "calmed_chain_out_of_heavy", "surging_chain_own_core",
                          "every_chain_final_tier"})
    expect_figure(json["settle_windows"][key], std::string("settle_windows.") + key);
  EXPECT_TRUE(json["settle_windows"]["events_missed"].is_number());
  for (const char* key : {"steady_windows", "steady_most_per_10_windows", "whole_run_most_per_10_windows"})
    expect_figure(json["tier_changes"][key], std::string("tier_changes.") + key);

  // Every ratio of the targets, with its bound, and the ones shown for reference.
  std::map<std::string, std::string> bounds;  // name -> "at_least" / "at_most" / "reference"
  for (const nlohmann::json& ratio : json["ratios"]) {
    ASSERT_TRUE(ratio["ratio"].is_number()) << ratio.dump();
    ASSERT_TRUE(ratio["met"].is_boolean()) << ratio.dump();
    std::string bound = ratio.contains("target_at_most") ? "at_most" : "at_least";
    if (bound == "at_least" && ratio["target_at_least"].get<double>() == 0) bound = "reference";
    bounds[ratio["name"]] = bound;
  }
  std::map<std::string, std::string> expected = {
      {"aggregate tx/s: balancer / static equal split", "at_least"},
      {"aggregate tx/s: balancer / unpinned OS threads", "reference"},
      {"aggregate tx/s: balancer / equal weights, no cap", "reference"},
      {"settlement commit p99: balancer / unloaded", "at_most"},
      {"treasury commit p99: balancer / unloaded", "at_most"},
      {"windows until the surging chain is heavy (worst round)", "at_most"},
      {"windows until the calmed chain leaves heavy (worst round)", "at_most"},
      {"steady load: tier changes of a chain in 10 windows (most)", "at_most"}};
  for (const auto& [name, bound] : expected) {
    ASSERT_TRUE(bounds.contains(name)) << "no ratio \"" << name << "\" in " << json["ratios"].dump();
    EXPECT_EQ(bounds[name], bound) << name;
  }
  EXPECT_TRUE(json["all_targets_met"].is_boolean());
  EXPECT_FALSE(fs::exists(directory_ / "bench")) << "the bench's scratch folder is removed";
}

}  // namespace
}  // namespace keel::cli
