#include "engine/pipeline/pipeline_run.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <new>

#include "engine/core/process.h"
#include "engine/pipeline/pipeline.h"
#include "numa/binding.h"
#include "shm/segment.h"

namespace keel::engine::pipeline {

namespace {

Result<const numa::PlannedCore*> planned_core(const numa::Plan& plan, const char* tile) {
  const numa::PlannedCore* core = numa::find_tile(plan, tile);
  if (core == nullptr) return make_error("plan", std::string("has no tile '") + tile + "' ([pipeline] enabled = false?)");
  return core;
}

}  // namespace

Result<PipelineReport> run_pipeline(const config::PerfConfig& config, const numa::Topology& topology,
                                    const numa::Plan& plan, const RunOptions& options) {
  PipelineReport report;
  Result<const numa::PlannedCore*> source_core = planned_core(plan, "pipeline.source");
  Result<const numa::PlannedCore*> relay_core = planned_core(plan, "pipeline.relay");
  Result<const numa::PlannedCore*> sink_core = planned_core(plan, "pipeline.sink");
  if (!source_core) return source_core.error();
  if (!relay_core) return relay_core.error();
  if (!sink_core) return sink_core.error();
  bool bind = plan.bindable;
  if (!bind) report.notes.push_back("topology is not this host's: threads and memory are not bound");
  bool sleeps = config.engine.idle != config::IdleStrategy::spin;

  // The engine-side cores: the planned cores that host the source or the sink.
  std::map<uint32_t, const numa::PlannedCore*> engine_cores;
  engine_cores[(*source_core)->core_index] = *source_core;
  engine_cores[(*sink_core)->core_index] = *sink_core;

  PipelineShape shape = pipeline_shape(config);
  uint64_t segment_bytes = sizeof(shm::SegmentHeader) + engine_cores.size() * 256 + pipeline_footprint(shape) + 65536;
  Result<shm::Segment> segment = shm::Segment::create({"keel-" + config.engine.instance, segment_bytes});
  if (!segment) return segment.error();
  for (const std::string& note : segment->notes()) report.notes.push_back(note);
  std::map<uint32_t, shm::Doorbell*> doorbells;
  if (sleeps) {
    for (auto& [index, core] : engine_cores) {
      Result<uint64_t> offset = segment->allocate("core." + std::to_string(index) + ".doorbell",
                                                  shm::SegmentObjectKind::doorbell, sizeof(shm::Doorbell), 128);
      if (!offset) return offset.error();
      doorbells[index] = new (segment->base() + *offset) shm::Doorbell{};
    }
  }
  uint64_t sink_doorbell_offset =
      sleeps ? uint64_t(reinterpret_cast<std::byte*>(doorbells[(*sink_core)->core_index]) - segment->base()) : 0;
  if (Result<void> laid_out = lay_out_pipeline(*segment, shape, sink_doorbell_offset, sleeps); !laid_out) {
    return laid_out.error();
  }
  segment->seal();
  if (bind) {
    // A ring's slots are read far more than written back: keep them on the consumer's node.
    std::pair<const char*, const numa::PlannedCore*> ring_consumers[] = {{source_to_relay_ring, *relay_core},
                                                                         {relay_to_sink_ring, *sink_core}};
    for (auto& [ring, consumer] : ring_consumers) {
      shm::SegmentObject object = *segment->find(ring, shm::SegmentObjectKind::ring);
      Result<void> bound = numa::bind_memory_area(topology, segment->base() + object.offset, object.bytes,
                                                  consumer->node_os_index);
      if (!bound) return bound.error();
    }
  }

  Result<std::unique_ptr<SourceTile>> source = SourceTile::join(*segment);
  if (!source) return source.error();
  Result<std::unique_ptr<SinkTile>> sink = SinkTile::join(*segment);
  if (!sink) return sink.error();

  BlockedStopSignals stop_signals;
  ChildProcess relay;
  std::vector<std::string> arguments = {"keel", "pipeline-relay", "--segment", segment->name()};
  if (bind) {
    arguments.insert(arguments.end(), {"--pu", std::to_string((*relay_core)->pu_os_index), "--node",
                                       std::to_string((*relay_core)->node_os_index)});
  }
  if (Result<void> started = relay.start(options.self_executable, arguments, "relay process"); !started) {
    return started.error();
  }
  std::vector<std::unique_ptr<Core>> cores;
  for (auto& [index, planned] : engine_cores) {
    CoreOptions core_options;
    core_options.name = "core" + std::to_string(index);
    core_options.idle = {config.engine.idle, config.engine.idle_spin_polls, config.engine.idle_sleep_us_max};
    core_options.tile_budget = config.engine.tile_budget;
    core_options.doorbell = sleeps ? doorbells[index] : nullptr;
    if (bind) core_options.binding = CoreBinding{&topology, planned->pu_os_index, planned->node_os_index};
    std::vector<WeightedTile> tiles;
    CoreReport core_report{core_options.name, {}, bind ? int(planned->pu_os_index) : -1, {}};
    for (const numa::PlannedTile& tile : planned->tiles) {
      if (tile.name == "pipeline.source") tiles.push_back({source->get(), tile.weight});
      if (tile.name == "pipeline.sink") tiles.push_back({sink->get(), tile.weight});
      if (tile.name == "pipeline.source" || tile.name == "pipeline.sink") core_report.tiles.push_back(tile.name);
    }
    cores.push_back(std::make_unique<Core>(core_options, std::move(tiles)));
    report.cores.push_back(core_report);
    if (Result<void> started = cores.back()->start(); !started) return started.error();
  }

  // Run until the duration ends or a stop signal comes, watching the relay.
  uint64_t start_ns = shm::monotonic_ns(), deadline_ns = start_ns + options.duration_ms * 1'000'000;
  int relay_status = 0;
  for (uint64_t now_ns = start_ns; now_ns < deadline_ns; now_ns = shm::monotonic_ns()) {
    if (stop_signals.wait(std::min<uint64_t>(100, (deadline_ns - now_ns) / 1'000'000 + 1))) {
      report.stopped_by_signal = true;
      break;
    }
    segment->beat_heartbeat();
    if (relay.exited(relay_status)) {
      for (auto& core : cores) core->stop_now();
      return make_error("relay process", "exited before the drain (" + describe_exit(relay_status) + ")");
    }
  }

  // Drain: the source closes its ring, the relay forwards the rest and closes its own,
  // the sink takes the last message. Then every core is quiescent.
  for (auto& core : cores) core->begin_drain();
  uint64_t drain_deadline_ns = shm::monotonic_ns() + 10'000'000'000ULL;
  while (!relay.exited(relay_status)) {
    if (shm::monotonic_ns() > drain_deadline_ns) {
      for (auto& core : cores) core->stop_now();
      return make_error("relay process", "pid " + std::to_string(relay.pid()) + " did not drain within 10 s");
    }
    stop_signals.wait(1);
  }
  if (!WIFEXITED(relay_status) || WEXITSTATUS(relay_status) != 0) {
    for (auto& core : cores) core->stop_now();
    return make_error("relay process", "failed during the drain (" + describe_exit(relay_status) + ")");
  }
  for (auto& core : cores) core->join();
  for (size_t index = 0; index < cores.size(); ++index) report.cores[index].stats = cores[index]->stats();

  const SinkTile& sink_tile = **sink;
  report.messages = sink_tile.received();
  report.duration_s = double(sink_tile.last_pop_ns() - (*source)->first_push_ns()) / 1e9;
  report.messages_per_second = report.duration_s > 0 ? double(report.messages) / report.duration_s : 0;
  // Messages sent but never received are lost; reordered or duplicated ones are gaps.
  report.sequence_errors = sink_tile.sequence_errors() + ((*source)->sent() - sink_tile.received());
  report.payload_errors = sink_tile.payload_errors();
  report.end_to_end = sink_tile.end_to_end();
  const char* rings[2][2] = {{source_to_relay_ring, source_to_relay_arena}, {relay_to_sink_ring, relay_to_sink_arena}};
  const LatencyHistogram* latencies[2] = {&sink_tile.source_to_relay(), &sink_tile.relay_to_sink()};
  for (int index = 0; index < 2; ++index) {
    uint64_t ring_offset = segment->find(rings[index][0], shm::SegmentObjectKind::ring)->offset;
    report.rings[index] = {rings[index][0], shm::ring_stats(segment->base(), ring_offset), *latencies[index], 0};
    // Arena full events live in the segment, counted by whichever process produced.
    if (Result<shm::SegmentObject> arena = segment->find(rings[index][1], shm::SegmentObjectKind::arena)) {
      auto* header = reinterpret_cast<const shm::ArenaHeader*>(segment->base() + arena->offset);
      report.rings[index].arena_full_events = header->full_events.load(std::memory_order_relaxed);
    }
  }
  return report;
}

}  // namespace keel::engine::pipeline
