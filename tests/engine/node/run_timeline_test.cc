// Tests for engine/node/run_timeline.h: the CSV, the SVG chart and the per-chain summary of
// a scripted timeline, and the p99 taken from commit latency buckets.
#include "engine/node/run_timeline.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "engine/node/shard_table.h"

namespace keel::node {
namespace {

// A minimal XML well-formedness check: tags balance and nest, attribute values are quoted
// and hold no '<', and every '&' starts an entity. Returns "" or what is wrong where.
std::string xml_problem(const std::string& text) {
  std::vector<std::string> open;
  size_t at = 0;
  auto entity_ok = [&](size_t position) {
    size_t end = text.find(';', position);
    if (end == std::string::npos) return false;
    std::string name = text.substr(position + 1, end - position - 1);
    return name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos";
  };
  while (at < text.size()) {
    if (text[at] == '&' && !entity_ok(at)) return "a bare '&' at " + std::to_string(at);
    if (text[at] != '<') {
      if (text[at] == '>') return "a bare '>' at " + std::to_string(at);
      ++at;
      continue;
    }
    size_t end = at + 1;
    char quote = 0;
    for (; end < text.size(); ++end) {
      char c = text[end];
      if (quote) {
        if (c == quote) quote = 0;
        else if (c == '<') return "a '<' inside an attribute at " + std::to_string(end);
        else if (c == '&' && !entity_ok(end)) return "a bare '&' in an attribute at " + std::to_string(end);
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        break;
      } else if (c == '<') {
        return "a '<' inside a tag at " + std::to_string(end);
      }
    }
    if (end >= text.size()) return "a tag that never ends at " + std::to_string(at);
    std::string tag = text.substr(at + 1, end - at - 1);
    if (tag.empty()) return "an empty tag at " + std::to_string(at);
    if (tag[0] == '/') {
      std::string name = tag.substr(1);
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes " + (open.empty() ? std::string("nothing") : "<" + open.back() + ">");
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
    }
    at = end + 1;
  }
  return open.empty() ? "" : "<" + open.back() + "> is never closed";
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// cards surges through medium to heavy and back down to medium; payments holds medium.
RunTimeline scripted_timeline() {
  RunTimeline timeline;
  timeline.chains = {"payments", "cards", "<odd & name>"};
  timeline.heavy_tps = 50000;
  timeline.medium_tps = 5000;
  struct Row {
    double cards_tps;
    uint32_t cards_tier;
    double cards_slice;
  };
  const Row rows[] = {{2000, 0, 0.3}, {2000, 0, 0.3}, {40000, 1, 0.5}, {150000, 2, 1.0},
                      {150000, 2, 1.0}, {9000, 1, 0.5}};
  double time_s = 0;
  for (const Row& row : rows) {
    TimelineSample sample;
    sample.interval_s = 1;
    time_s += 1;
    sample.time_s = time_s;
    sample.chains.push_back({20000, 20000, 1, 0.6, 3100});
    sample.chains.push_back({uint64_t(row.cards_tps), row.cards_tps, row.cards_tier, row.cards_slice, 4400});
    sample.chains.push_back({100, 100, 0, 0.1, 0});
    timeline.samples.push_back(sample);
  }
  return timeline;
}

TEST(RunTimeline, CsvHasALinePerSecondAndChain) {
  RunTimeline timeline = scripted_timeline();
  timeline.chains[2] = "settlement";
  std::vector<std::string> lines;
  std::istringstream stream(timeline_csv(timeline));
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1u + 6 * 3);
  EXPECT_EQ(lines[0], "time_s,chain,committed_txs,tps,tier,slice_cores,commit_p99_us");
  EXPECT_EQ(lines[1], "1.000,payments,20000,20000,medium,0.600,3100");
  EXPECT_EQ(lines[2], "1.000,cards,2000,2000,light,0.300,4400");
  EXPECT_EQ(lines[3], "1.000,settlement,100,100,light,0.100,0");
  EXPECT_EQ(lines[11], "4.000,cards,150000,150000,heavy,1.000,4400");
  // Without a balancer, tier and slice say nothing and are left empty.
  timeline.balancer = false;
  std::istringstream plain(timeline_csv(timeline));
  std::string header, first;
  std::getline(plain, header);
  std::getline(plain, first);
  EXPECT_EQ(first, "1.000,payments,20000,20000,,,3100");
}

TEST(RunTimeline, SvgIsOneWellFormedDocumentWithTwoLinesPerChainAndTheTierChanges) {
  RunTimeline timeline = scripted_timeline();
  std::string svg = timeline_svg(timeline);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u) << svg.substr(0, 80);
  ASSERT_GE(svg.size(), 7u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(count_of(svg, "<svg"), 1u);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  // One polyline per chain in each panel, each through every sample.
  EXPECT_EQ(count_of(svg, "<polyline class=\"tps\""), 3u);
  EXPECT_EQ(count_of(svg, "<polyline class=\"slice\""), 3u);
  for (const char* chain : {"payments", "cards", "&lt;odd &amp; name&gt;"}) {
    std::string tps_line = "<polyline class=\"tps\" data-chain=\"" + std::string(chain) + "\"";
    size_t at = svg.find(tps_line);
    ASSERT_NE(at, std::string::npos) << chain;
    size_t points = svg.find("points=\"", at) + 8;
    std::string coordinates = svg.substr(points, svg.find('"', points) - points);
    EXPECT_EQ(count_of(coordinates, ",") , 6u) << chain << ": " << coordinates;
    EXPECT_NE(svg.find("<polyline class=\"slice\" data-chain=\"" + std::string(chain) + "\""), std::string::npos);
    EXPECT_NE(svg.find(">" + std::string(chain) + "</text>"), std::string::npos) << chain << " is not in the legend";
  }
  // cards changed tier three times (light -> medium -> heavy -> medium); nobody else did.
  EXPECT_EQ(count_of(svg, "class=\"tier-change\""), 3u);
  EXPECT_EQ(count_of(svg, "class=\"tier-change\" data-chain=\"cards\""), 3u);
  EXPECT_NE(svg.find(">heavy</text></g>"), std::string::npos);
  // The balancer's thresholds, and the axes' titles.
  EXPECT_EQ(count_of(svg, "class=\"threshold\""), 2u);
  EXPECT_NE(svg.find("committed tx/s (log scale)</text>"), std::string::npos);
  for (const char* tick : {">100</text>", ">1k</text>", ">10k</text>", ">100k</text>", ">1M</text>"})
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  EXPECT_NE(svg.find("CPU slice (cores)</text>"), std::string::npos);
  EXPECT_NE(svg.find("time since the run started (s)</text>"), std::string::npos);
}

TEST(RunTimeline, SvgWithoutABalancerOrSamplesIsStillWellFormed) {
  RunTimeline timeline = scripted_timeline();
  timeline.balancer = false;
  std::string svg = timeline_svg(timeline);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_of(svg, "class=\"tier-change\""), 0u);
  EXPECT_EQ(count_of(svg, "<polyline class=\"slice\""), 3u);
  EXPECT_NE(svg.find("no balancer ran"), std::string::npos);
  timeline.samples.clear();
  svg = timeline_svg(timeline);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<polyline class=\"tps\""), 3u);
  // The checker itself catches what it should.
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"<\"/>"), "");
}

TEST(RunTimeline, SummaryHasPeakMeanTimePerTierAndChanges) {
  RunTimeline timeline = scripted_timeline();
  ChainSummary cards = summarize(timeline, 1);
  EXPECT_DOUBLE_EQ(cards.tps_peak, 150000);
  EXPECT_DOUBLE_EQ(cards.tps_mean, (2000 + 2000 + 40000 + 150000 + 150000 + 9000) / 6.0);
  EXPECT_DOUBLE_EQ(cards.seconds_in_tier[0], 2);
  EXPECT_DOUBLE_EQ(cards.seconds_in_tier[1], 2);
  EXPECT_DOUBLE_EQ(cards.seconds_in_tier[2], 2);
  EXPECT_EQ(cards.tier_changes, 3u);
  ChainSummary payments = summarize(timeline, 0);
  EXPECT_DOUBLE_EQ(payments.tps_peak, 20000);
  EXPECT_DOUBLE_EQ(payments.seconds_in_tier[1], 6);
  EXPECT_EQ(payments.tier_changes, 0u);
  EXPECT_DOUBLE_EQ(summarize(RunTimeline{{"a"}}, 0).tps_mean, 0);
}

TEST(CommitLatencyBuckets, EveryLatencyFallsInOneBucketAtMostASixteenthBelowItsBound) {
  uint32_t bucket_before = 0;
  for (uint64_t latency_us = 0; latency_us < (uint64_t(1) << 27); latency_us += 1 + latency_us / 512) {
    uint32_t bucket = commit_latency_bucket(latency_us);
    ASSERT_LT(bucket, commit_latency_bucket_count) << latency_us;
    ASSERT_GE(bucket, bucket_before) << latency_us;  // ordered, so quantiles read in order
    bucket_before = bucket;
    uint64_t upper_us = commit_latency_bucket_upper_us(bucket);
    ASSERT_GE(upper_us, latency_us);
    ASSERT_LE(upper_us, latency_us + latency_us / 16) << latency_us;
    if (bucket > 0) {
      ASSERT_LT(commit_latency_bucket_upper_us(bucket - 1), latency_us) << latency_us;
    }
  }
  EXPECT_EQ(commit_latency_bucket(uint64_t(1) << 40), commit_latency_bucket_count - 1);  // the last takes the rest
}

TEST(RunTimeline, QuantileIsTheUpperBoundOfTheBucketHoldingIt) {
  std::vector<uint64_t> buckets(commit_latency_bucket_count, 0);
  EXPECT_EQ(commit_latency_quantile_us(buckets, 0.99), 0u);
  buckets[commit_latency_bucket(3)] = 98;      // 98 at 3 us
  buckets[commit_latency_bucket(1000)] = 1;    // one at about 1 ms
  buckets[commit_latency_bucket(50000)] = 1;   // one at about 50 ms
  EXPECT_EQ(commit_latency_quantile_us(buckets, 0.5), 3u);
  EXPECT_EQ(commit_latency_quantile_us(buckets, 0.98), 3u);
  uint64_t p99 = commit_latency_quantile_us(buckets, 0.99);
  EXPECT_GE(p99, 1000u);
  EXPECT_LE(p99, 1000u + 1000u / 16);  // at most a sixteenth high
  EXPECT_GE(commit_latency_quantile_us(buckets, 1.0), 50000u);
}

}  // namespace
}  // namespace keel::node
