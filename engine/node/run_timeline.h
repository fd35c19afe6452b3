// engine/node/run_timeline.h: what `keel run` saw each second, per client chain — committed
// tx/s, the balancer's tier and the chain's CPU slice, commit latency p99 — and the files
// made from it: timeline.csv and chart.svg in the run's folder, and the per-chain summary.
//
//   RunTimeline timeline{.chains = {"payments", "cards"}, .heavy_tps = 50000, .medium_tps = 5000};
//   timeline.samples.push_back(sample);                  // once a second, from the segment
//   write(folder / "timeline.csv", timeline_csv(timeline));
//   write(folder / "chart.svg", timeline_svg(timeline));
//   ChainSummary cards = summarize(timeline, 1);        // peak and mean tx/s, time per tier
//
// The writers are pure functions of the timeline (no clock, no I/O), so a test can script
// a timeline and check the files.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace keel::node {

// Tier as the status table holds it (balance::Tier): 0 light, 1 medium, 2 heavy.
inline constexpr uint32_t timeline_tier_count = 3;

// One chain over one interval.
struct ChainSample {
  uint64_t committed_txs = 0;  // in blocks made durable during the interval
  double tps = 0;              // committed_txs / the interval's length
  uint32_t tier = 0;           // at the interval's end
  double slice_cores = 0;      // dedicated cores plus its share of the shared ones, at the end
  uint64_t commit_latency_us_p99 = 0;  // of those transactions (0: none committed)
};

// One interval, ending time_s after the run started.
struct TimelineSample {
  double time_s = 0;
  double interval_s = 0;
  std::vector<ChainSample> chains;  // as RunTimeline::chains
};

struct RunTimeline {
  std::vector<std::string> chains;   // client chains, in config order
  bool balancer = true;              // false: no balancer ran; tiers and slices mean nothing
  uint64_t heavy_tps = 0, medium_tps = 0;  // the balancer's thresholds, drawn on the chart (0: not drawn)
  std::vector<TimelineSample> samples;     // in time order
};

struct ChainSummary {
  double tps_peak = 0;   // the highest interval's
  double tps_mean = 0;   // committed over the timeline / its length
  std::array<double, timeline_tier_count> seconds_in_tier{};  // by tier index
  uint64_t tier_changes = 0;  // between consecutive samples
};

// The figures of chain `chain` (an index into timeline.chains) over the timeline.
ChainSummary summarize(const RunTimeline& timeline, uint32_t chain);

// timeline.csv: a header line, then one line per sample and chain:
//   time_s,chain,committed_txs,tps,tier,slice_cores,commit_p99_us
// (tier and slice_cores empty when no balancer ran).
std::string timeline_csv(const RunTimeline& timeline);

// chart.svg: a standalone SVG document (no scripts, no external references). Two panels
// share the time axis: committed tx/s above, on a logarithmic scale (light and heavy chains
// differ a hundredfold), with the heavy and medium thresholds as dashed lines, and CPU
// slice in cores below; one polyline per chain in each panel, in the same
// colour, a legend naming the chains, and each tier change marked on the tx/s line by a
// circle with the new tier's name (class "tier-change"). Without a balancer the slice
// panel holds no lines and says so.
std::string timeline_svg(const RunTimeline& timeline);

// The latency of the q-quantile (0 < q <= 1) of transactions counted in commit latency
// buckets (shard_table.h: commit_latency_bucket): the upper bound of the bucket holding it,
// in microseconds; 0 when the counts are all zero.
uint64_t commit_latency_quantile_us(std::span<const uint64_t> bucket_counts, double q);

}  // namespace keel::node
