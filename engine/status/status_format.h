// engine/status/status_format.h: a StatusReport for people (the tables `keel status`
// prints and `keel monitor` redraws), for scripts (`keel status --json`) and for
// Prometheus (the engine's GET /metrics). perf/METRICS.md documents every JSON field and
// metric name.
//
//   StatusReport report = make_status_report(before, after);
//   std::fputs(format_status_tables(report).c_str(), stdout);
//   std::string json = status_json(report).dump();
//   std::string exposition = prometheus_text(report, after);   // text format 0.0.4
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/status/engine_status.h"

namespace keel::status {

// One table per section: chains, cores, rings, pools, products, then one line each for
// compute, clients and the balancer. Ends with a newline.
std::string format_status_tables(const StatusReport& report);

// One JSON object with the report's fields under the names the structs give them.
nlohmann::json status_json(const StatusReport& report);

// The Prometheus text exposition: counters (`_total`) from `later`, gauges (rates,
// percentiles, depths) from the report, each with # HELP and # TYPE lines.
std::string prometheus_text(const StatusReport& report, const StatusSample& later);

// The HTTP content type of prometheus_text.
inline constexpr char prometheus_content_type[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace keel::status
