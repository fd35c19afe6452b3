#include "engine/node/run_timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/balance/balancer.h"
#include "engine/node/shard_table.h"

namespace keel::node {

namespace {

// The chart's geometry, in SVG user units (pixels at 100 %).
constexpr double chart_width = 960, chart_height = 600;
constexpr double plot_left = 80, plot_right = 790;  // the legend sits right of the plots
constexpr double tps_top = 50, tps_bottom = 310;
constexpr double slice_top = 360, slice_bottom = 530;
constexpr int y_ticks = 5;

// Distinct on white and for the common kinds of colour blindness (Okabe-Ito).
constexpr const char* chain_colours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                         "#E69F00", "#56B4E9", "#000000", "#F0E442"};

const char* colour_of(size_t chain) { return chain_colours[chain % std::size(chain_colours)]; }

std::string xml_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The smallest of 1, 2, 2.5, 5 x 10^k at or above value (1 for anything up to 1), so that
// ticks at fifths of it are round numbers.
double round_ceiling(double value) {
  if (value <= 1) return 1;
  double power = std::pow(10.0, std::floor(std::log10(value)));
  for (double step : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (step * power >= value * (1 - 1e-12)) return step * power;
  return 10 * power;
}

// 1500 -> "1.5k", 250000 -> "250k", 2000000 -> "2M": tick labels of tx/s.
std::string rate_label(double value) {
  auto trimmed = [](double scaled, const char* suffix) {
    std::string text = number(scaled, std::fabs(scaled - std::round(scaled)) < 1e-9 ? 0 : 1);
    return text + suffix;
  };
  if (value >= 1e6) return trimmed(value / 1e6, "M");
  if (value >= 1e3) return trimmed(value / 1e3, "k");
  return trimmed(value, "");
}

// A panel's vertical scale: linear from 0 to max, or logarithmic from min to max (both
// powers of ten), where anything at or below min sits on the bottom line.
struct Axis {
  double top, bottom, max;
  double min = 0;  // > 0: logarithmic
  double y(double value) const {
    double fraction = min > 0 ? (value <= min ? 0 : std::log10(value / min) / std::log10(max / min)) : value / max;
    return bottom - (bottom - top) * std::clamp(fraction, 0.0, 1.0);
  }
  std::vector<double> ticks() const {
    std::vector<double> values;
    if (min > 0)
      for (double value = min; value <= max * (1 + 1e-9); value *= 10) values.push_back(value);
    else
      for (int tick = 0; tick <= y_ticks; ++tick) values.push_back(max * tick / y_ticks);
    return values;
  }
};

double power_of_ten_below(double value) { return std::pow(10.0, std::floor(std::log10(value))); }
double power_of_ten_above(double value) { return std::pow(10.0, std::ceil(std::log10(value))); }

// The horizontal grid, y tick labels and the panel's title.
void draw_panel(std::string& svg, const Axis& axis, const std::string& title, bool rate_ticks) {
  svg += "<g class=\"panel\">\n";
  for (double value : axis.ticks()) {
    std::string y = number(axis.y(value), 1);
    svg += "<line x1=\"" + number(plot_left, 1) + "\" y1=\"" + y + "\" x2=\"" + number(plot_right, 1) + "\" y2=\"" + y +
           "\" stroke=\"#e0e0e0\"/>\n";
    svg += "<text x=\"" + number(plot_left - 6, 1) + "\" y=\"" + number(axis.y(value) + 4, 1) +
           "\" text-anchor=\"end\">" + (rate_ticks ? rate_label(value) : number(value, value < 10 ? 1 : 0)) +
           "</text>\n";
  }
  svg += "<line x1=\"" + number(plot_left, 1) + "\" y1=\"" + number(axis.top, 1) + "\" x2=\"" + number(plot_left, 1) +
         "\" y2=\"" + number(axis.bottom, 1) + "\" stroke=\"#404040\"/>\n";
  double middle = (axis.top + axis.bottom) / 2;
  svg += "<text x=\"20\" y=\"" + number(middle, 1) + "\" text-anchor=\"middle\" transform=\"rotate(-90 20 " +
         number(middle, 1) + ")\">" + xml_escaped(title) + "</text>\n";
  svg += "</g>\n";
}

// The time axis under the lower panel, with a tick every "nice" number of seconds.
void draw_time_axis(std::string& svg, double time_max_s) {
  auto x_of = [&](double time_s) { return plot_left + (plot_right - plot_left) * time_s / time_max_s; };
  double step = round_ceiling(time_max_s / 10);
  svg += "<g class=\"time-axis\">\n";
  svg += "<line x1=\"" + number(plot_left, 1) + "\" y1=\"" + number(slice_bottom, 1) + "\" x2=\"" +
         number(plot_right, 1) + "\" y2=\"" + number(slice_bottom, 1) + "\" stroke=\"#404040\"/>\n";
  for (double time_s = 0; time_s <= time_max_s * (1 + 1e-9); time_s += step) {
    std::string x = number(x_of(time_s), 1);
    svg += "<line x1=\"" + x + "\" y1=\"" + number(tps_top, 1) + "\" x2=\"" + x + "\" y2=\"" +
           number(slice_bottom + 4, 1) + "\" stroke=\"#f0f0f0\"/>\n";
    svg += "<text x=\"" + x + "\" y=\"" + number(slice_bottom + 18, 1) + "\" text-anchor=\"middle\">" +
           number(time_s, step < 1 ? 1 : 0) + "</text>\n";
  }
  svg += "<text x=\"" + number((plot_left + plot_right) / 2, 1) + "\" y=\"" + number(slice_bottom + 40, 1) +
         "\" text-anchor=\"middle\">time since the run started (s)</text>\n";
  svg += "</g>\n";
}

// A dashed line across the tx/s panel at a balancer threshold, labelled at its right end.
void draw_threshold(std::string& svg, const Axis& axis, double tps, const std::string& label) {
  if (tps <= axis.min || tps > axis.max) return;
  std::string y = number(axis.y(tps), 1);
  svg += "<g class=\"threshold\"><line x1=\"" + number(plot_left, 1) + "\" y1=\"" + y + "\" x2=\"" +
         number(plot_right, 1) + "\" y2=\"" + y + "\" stroke=\"#808080\" stroke-dasharray=\"6 4\"/>";
  svg += "<text x=\"" + number(plot_right - 4, 1) + "\" y=\"" + number(axis.y(tps) - 4, 1) +
         "\" text-anchor=\"end\" fill=\"#606060\">" + xml_escaped(label) + "</text></g>\n";
}

}  // namespace

ChainSummary summarize(const RunTimeline& timeline, uint32_t chain) {
  ChainSummary summary;
  uint64_t committed = 0;
  double seconds = 0;
  for (size_t index = 0; index < timeline.samples.size(); ++index) {
    const TimelineSample& sample = timeline.samples[index];
    const ChainSample& figures = sample.chains.at(chain);
    committed += figures.committed_txs;
    seconds += sample.interval_s;
    summary.tps_peak = std::max(summary.tps_peak, figures.tps);
    if (figures.tier < timeline_tier_count) summary.seconds_in_tier[figures.tier] += sample.interval_s;
    if (index > 0 && timeline.samples[index - 1].chains.at(chain).tier != figures.tier) ++summary.tier_changes;
  }
  summary.tps_mean = seconds > 0 ? double(committed) / seconds : 0;
  return summary;
}

std::string timeline_csv(const RunTimeline& timeline) {
  std::string csv = "time_s,chain,committed_txs,tps,tier,slice_cores,commit_p99_us\n";
  for (const TimelineSample& sample : timeline.samples)
    for (size_t chain = 0; chain < timeline.chains.size(); ++chain) {
      const ChainSample& figures = sample.chains.at(chain);
      csv += number(sample.time_s, 3) + "," + timeline.chains[chain] + "," + std::to_string(figures.committed_txs) +
             "," + number(figures.tps, 0) + ",";
      if (timeline.balancer) csv += std::string(balance::tier_name(figures.tier)) + "," + number(figures.slice_cores, 3);
      else csv += ",";
      // Appended piece by piece: GCC 12 warns (-Wrestrict, wrongly) about "," + std::string.
      csv += ',';
      csv += std::to_string(figures.commit_latency_us_p99);
      csv += '\n';
    }
  return csv;
}

namespace {

// The chart's scales: time across; tx/s and slice cores up, each in its panel.
struct ChartScales {
  double time_max_s = 1;
  Axis tps{tps_top, tps_bottom, 10};
  Axis slice{slice_top, slice_bottom, 1};
  double x(double time_s) const { return plot_left + (plot_right - plot_left) * time_s / time_max_s; }
};

ChartScales scales_of(const RunTimeline& timeline) {
  ChartScales scales;
  double tps_min = 1e300, tps_max = 0, slice_max = 1;
  for (const TimelineSample& sample : timeline.samples) {
    scales.time_max_s = std::max(scales.time_max_s, sample.time_s);
    for (const ChainSample& figures : sample.chains) {
      if (figures.tps >= 1) tps_min = std::min(tps_min, figures.tps);
      tps_max = std::max(tps_max, figures.tps);
      slice_max = std::max(slice_max, figures.slice_cores);
    }
  }
  // Rates span orders of magnitude (a light chain's thousands beside a heavy one's hundreds
  // of thousands), so tx/s go on a logarithmic scale from a power of ten at or below the
  // lowest rate and threshold to one at or above the highest.
  if (timeline.balancer && timeline.medium_tps > 0) tps_min = std::min(tps_min, double(timeline.medium_tps));
  if (timeline.balancer) tps_max = std::max(tps_max, double(timeline.heavy_tps));
  if (tps_min > tps_max) tps_min = 1;  // no rate at all
  scales.tps.max = power_of_ten_above(std::max(tps_max * 1.05, 10.0));
  scales.tps.min = std::min(power_of_ten_below(std::max(tps_min, 1.0)), scales.tps.max / 10);
  scales.slice.max = round_ceiling(slice_max * 1.05);
  return scales;
}

// One polyline per chain in each panel, in the chain's colour; without a balancer the
// slice lines are there but empty, so every chain still has its two.
void draw_chain_lines(std::string& svg, const RunTimeline& timeline, const ChartScales& scales) {
  for (size_t chain = 0; chain < timeline.chains.size(); ++chain) {
    std::string tps_points, slice_points;
    for (const TimelineSample& sample : timeline.samples) {
      const ChainSample& figures = sample.chains.at(chain);
      std::string x = number(scales.x(sample.time_s), 1);
      tps_points += (tps_points.empty() ? "" : " ") + x + "," + number(scales.tps.y(figures.tps), 1);
      slice_points += (slice_points.empty() ? "" : " ") + x + "," + number(scales.slice.y(figures.slice_cores), 1);
    }
    if (!timeline.balancer) slice_points.clear();
    std::string name = xml_escaped(timeline.chains[chain]);
    std::string stroke = "\" fill=\"none\" stroke=\"" + std::string(colour_of(chain)) + "\" stroke-width=\"2\" points=\"";
    svg += "<polyline class=\"tps\" data-chain=\"" + name + stroke + tps_points + "\"/>\n";
    svg += "<polyline class=\"slice\" data-chain=\"" + name + stroke + slice_points + "\"/>\n";
  }
}

// A circle on the tx/s line, labelled with the new tier, wherever a chain's tier differs
// from the sample before.
void draw_tier_changes(std::string& svg, const RunTimeline& timeline, const ChartScales& scales) {
  for (size_t chain = 0; chain < timeline.chains.size(); ++chain)
    for (size_t index = 1; index < timeline.samples.size(); ++index) {
      const ChainSample& figures = timeline.samples[index].chains.at(chain);
      if (figures.tier == timeline.samples[index - 1].chains.at(chain).tier) continue;
      std::string x = number(scales.x(timeline.samples[index].time_s), 1);
      double y = scales.tps.y(figures.tps);
      svg += "<g class=\"tier-change\" data-chain=\"" + xml_escaped(timeline.chains[chain]) + "\"><circle cx=\"" + x +
             "\" cy=\"" + number(y, 1) + "\" r=\"5\" fill=\"#ffffff\" stroke=\"" + colour_of(chain) +
             "\" stroke-width=\"2\"/><text x=\"" + x + "\" y=\"" + number(y - 9, 1) +
             "\" text-anchor=\"middle\" fill=\"" + colour_of(chain) + "\">" + std::string(balance::tier_name(figures.tier)) +
             "</text></g>\n";
    }
}

void draw_legend(std::string& svg, const RunTimeline& timeline) {
  svg += "<g class=\"legend\">\n";
  for (size_t chain = 0; chain < timeline.chains.size(); ++chain) {
    std::string y = number(tps_top + 10 + 20 * double(chain), 1);
    svg += "<line x1=\"" + number(plot_right + 20, 1) + "\" y1=\"" + y + "\" x2=\"" + number(plot_right + 44, 1) +
           "\" y2=\"" + y + "\" stroke=\"" + colour_of(chain) + "\" stroke-width=\"3\"/>";
    svg += "<text x=\"" + number(plot_right + 50, 1) + "\" y=\"" + number(tps_top + 14 + 20 * double(chain), 1) +
           "\">" + xml_escaped(timeline.chains[chain]) + "</text>\n";
  }
  svg += "</g>\n";
}

}  // namespace

std::string timeline_svg(const RunTimeline& timeline) {
  const ChartScales scales = scales_of(timeline);
  std::string width = number(chart_width, 0), height = number(chart_height, 0);
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + width + "\" height=\"" + height +
                    "\" viewBox=\"0 0 " + width + " " + height + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<title>keel run: committed tx/s and CPU slice per chain</title>\n";
  svg += "<rect x=\"0\" y=\"0\" width=\"" + width + "\" height=\"" + height + "\" fill=\"#ffffff\"/>\n";
  svg += "<text x=\"" + number(plot_left, 1) + "\" y=\"28\" font-size=\"16\">Committed tx/s and CPU slice per chain"
         "</text>\n";
  draw_panel(svg, scales.tps, "committed tx/s (log scale)", true);
  draw_panel(svg, scales.slice, "CPU slice (cores)", false);
  draw_time_axis(svg, scales.time_max_s);
  if (timeline.balancer) {
    draw_threshold(svg, scales.tps, double(timeline.heavy_tps), "heavy " + rate_label(double(timeline.heavy_tps)));
    draw_threshold(svg, scales.tps, double(timeline.medium_tps), "medium " + rate_label(double(timeline.medium_tps)));
  } else {
    svg += "<text x=\"" + number((plot_left + plot_right) / 2, 1) + "\" y=\"" +
           number((slice_top + slice_bottom) / 2, 1) + "\" text-anchor=\"middle\" fill=\"#606060\">no balancer ran: "
           "slices stayed as planned</text>\n";
  }
  draw_chain_lines(svg, timeline, scales);
  if (timeline.balancer) draw_tier_changes(svg, timeline, scales);  // on top of the lines
  draw_legend(svg, timeline);
  svg += "</svg>\n";
  return svg;
}

uint64_t commit_latency_quantile_us(std::span<const uint64_t> bucket_counts, double q) {
  uint64_t total = 0;
  for (uint64_t count : bucket_counts) total += count;
  if (total == 0) return 0;
  uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(total))));
  uint64_t seen = 0;
  for (uint32_t bucket = 0; bucket < bucket_counts.size(); ++bucket) {
    seen += bucket_counts[bucket];
    if (seen >= rank) return commit_latency_bucket_upper_us(bucket);
  }
  return commit_latency_bucket_upper_us(uint32_t(bucket_counts.size()) - 1);
}

}  // namespace keel::node
