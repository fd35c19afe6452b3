#include "engine/core/engine_plan.h"

namespace keel::engine {

namespace {

numa::TileClassRequest tile_class(const config::TileClass& tile) { return {tile.busy_poll, tile.weight}; }

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

Result<numa::Topology> load_topology(const config::PerfConfig& config, const std::string& override_spec) {
  if (override_spec == "host") return numa::Topology::load_host();
  if (ends_with(override_spec, ".xml")) return numa::Topology::load_xml(override_spec);
  if (!override_spec.empty()) return numa::Topology::load_synthetic(override_spec);
  switch (config.topology.source) {
    case config::TopologySource::host: return numa::Topology::load_host();
    case config::TopologySource::synthetic: return numa::Topology::load_synthetic(config.topology.synthetic);
    case config::TopologySource::xml: return numa::Topology::load_xml(config.topology.xml_path);
  }
  return make_error(config.path, "unknown topology source");
}

numa::PlanRequest plan_request(const config::PerfConfig& config) {
  numa::PlanRequest request;
  for (const config::ChainConfig& chain : config.chains) {
    request.chains.push_back({chain.name, chain.shards, chain.is_system()});
  }
  for (const config::PoolConfig& pool : config.pools) {
    request.pools.push_back({config::pool_name(pool), pool.threads_per_node});
  }
  request.shard = tile_class(config.tiles.shard);
  request.scheduler = tile_class(config.tiles.scheduler);
  request.persist = tile_class(config.tiles.persist);
  request.balancer = tile_class(config.tiles.balancer);
  request.timer = tile_class(config.tiles.timer);
  request.compute_cores_per_node = config.layout.compute_cores_per_node;
  if (config.pipeline.enabled) {
    for (const char* name : {"pipeline.source", "pipeline.relay", "pipeline.sink"}) {
      request.extra_tiles.push_back({name, "pipeline", tile_class(config.tiles.pipeline)});
    }
  } else {
    request.extra_tiles.push_back({"gateway", "gateway", tile_class(config.tiles.gateway)});
  }
  return request;
}

bool tile_kind_is_implemented(std::string_view kind, bool pipeline_job) {
  if (pipeline_job) return kind == "pipeline";
  return kind == "shard" || kind == "persist" || kind == "gateway" || kind == "scheduler" || kind == "balancer";
}

}  // namespace keel::engine
