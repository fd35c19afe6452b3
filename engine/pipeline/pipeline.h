// engine/pipeline/pipeline.h: the synthetic pipeline that `keel run` drives until the
// ledger and scheduler replace it (issues 3 and 4):
//
//   source tile ──ring──▶ relay tile (a child process attached to the segment) ──ring──▶ sink tile
//
// Every message carries its sequence number and the times it entered and left each
// ring, so the sink measures the latency of each ring and checks that nothing was lost,
// reordered or corrupted. Payloads that do not fit in a slot travel in the payload arena
// paired with each ring.
//
//   PipelineShape shape = pipeline_shape(config);
//   lay_out_pipeline(segment, shape, relay_doorbell, sink_doorbell);   // before seal()
//   PipelineTiles tiles = join_engine_side(segment).value();           // source and sink
//   // in the child: run_relay_process(segment_name, binding)
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/config/perf_config.h"
#include "engine/core/core.h"
#include "engine/core/latency_histogram.h"
#include "engine/core/tile.h"
#include "error/result.h"
#include "shm/arena.h"
#include "shm/ring.h"
#include "shm/segment.h"

namespace keel::engine::pipeline {

inline constexpr char source_to_relay_ring[] = "pipeline.source_to_relay";
inline constexpr char relay_to_sink_ring[] = "pipeline.relay_to_sink";
inline constexpr char source_to_relay_arena[] = "pipeline.source_to_relay.arena";
inline constexpr char relay_to_sink_arena[] = "pipeline.relay_to_sink.arena";
inline constexpr char relay_doorbell[] = "pipeline.relay.doorbell";
inline constexpr char shape_object[] = "pipeline.shape";
// Messages moved per ring operation; a tile's poll repeats batches until its budget is
// spent or its ring runs dry, so DRR weights hold whatever the batch size.
inline constexpr uint32_t batch_max = 32;

// Runs `batch(count)` in batches of at most batch_max until `budget` is spent or a
// batch comes back short.
template <class Batch>
size_t poll_in_batches(size_t budget, Batch&& batch) {
  size_t done = 0;
  while (done < budget) {
    size_t wanted = std::min<size_t>(budget - done, batch_max);
    size_t moved = batch(wanted);
    done += moved;
    if (moved < wanted) break;
  }
  return done;
}

// The first bytes of every pipeline slot.
struct MessageHeader {
  uint64_t sequence;
  uint64_t source_push_ns;
  uint64_t relay_pop_ns;
  uint64_t relay_push_ns;
};
static_assert(sizeof(MessageHeader) == 32);

// Where a payload lives when it travels in the arena; follows the header in the slot.
struct ArenaReference {
  uint64_t position;
  uint64_t length;
};

// Everything the relay process needs to know, written into the segment by the engine
// so that the child needs no config file.
struct PipelineShape {
  uint64_t magic;
  uint32_t slot_bytes;
  uint32_t payload_bytes;
  uint32_t payload_in_arena;  // 1 when payload_bytes > slot_bytes - sizeof(MessageHeader)
  uint32_t ring_capacity;
  uint64_t arena_bytes;
  uint64_t rate_per_second;   // 0: as fast as back-pressure allows
  uint32_t idle_strategy;     // config::IdleStrategy
  uint32_t idle_spin_polls;
  uint32_t idle_sleep_us_max;
  uint32_t tile_budget;
  int32_t engine_pid;         // the relay leaves if its engine dies
  uint32_t reserved;
};
inline constexpr uint64_t shape_magic = 0x3150495045454b4bULL;  // "KKEEPIP1"

PipelineShape pipeline_shape(const config::PerfConfig& config);

// Bytes the pipeline's objects need in the segment.
uint64_t pipeline_footprint(const PipelineShape& shape);

// Lays out both rings (each ringing its consumer's doorbell; 0 = spinning consumer),
// their arenas, the relay's doorbell and the shape block. Call before seal().
Result<void> lay_out_pipeline(shm::Segment& segment, const PipelineShape& shape,
                              uint64_t sink_doorbell_offset, bool relay_sleeps);

// The first bytes of a payload are a function of the sequence, so the sink can check
// every byte without a copy of what was sent.
void fill_payload(uint64_t sequence, std::span<std::byte> payload);
bool payload_matches(uint64_t sequence, std::span<const std::byte> payload);

class SourceTile final : public Tile {
 public:
  static Result<std::unique_ptr<SourceTile>> join(shm::Segment& segment);
  std::string_view name() const override { return "pipeline.source"; }
  size_t poll(size_t budget) override;
  void begin_drain() override { draining_ = true; }
  bool quiescent() override { return closed_; }
  uint64_t sent() const { return sent_; }
  uint64_t first_push_ns() const { return first_push_ns_; }

 private:
  size_t poll_batch(size_t count);

  PipelineShape shape_{};
  shm::RingProducer output_;
  std::optional<shm::ArenaWriter> arena_;
  bool draining_ = false;
  bool closed_ = false;
  uint64_t sent_ = 0;
  uint64_t first_push_ns_ = 0;
};

class RelayTile final : public Tile {
 public:
  static Result<std::unique_ptr<RelayTile>> join(shm::Segment& segment);
  std::string_view name() const override { return "pipeline.relay"; }
  size_t poll(size_t budget) override;
  bool quiescent() override { return closed_; }
  uint64_t relayed() const { return relayed_; }
  bool engine_died() const { return engine_died_; }

 private:
  size_t poll_batch(size_t count);

  PipelineShape shape_{};
  shm::RingConsumer input_;
  shm::RingProducer output_;
  std::optional<shm::ArenaReader> input_arena_;
  std::optional<shm::ArenaWriter> output_arena_;
  bool closed_ = false;
  bool engine_died_ = false;
  uint64_t relayed_ = 0;
  uint64_t idle_polls_ = 0;
};

class SinkTile final : public Tile {
 public:
  static Result<std::unique_ptr<SinkTile>> join(shm::Segment& segment);
  std::string_view name() const override { return "pipeline.sink"; }
  size_t poll(size_t budget) override;
  bool quiescent() override { return input_.finished(); }

  uint64_t received() const { return received_; }
  uint64_t sequence_errors() const { return sequence_errors_; }
  uint64_t payload_errors() const { return payload_errors_; }
  uint64_t last_pop_ns() const { return last_pop_ns_; }
  const LatencyHistogram& source_to_relay() const { return source_to_relay_; }
  const LatencyHistogram& relay_to_sink() const { return relay_to_sink_; }
  const LatencyHistogram& end_to_end() const { return end_to_end_; }

 private:
  size_t poll_batch(size_t count);

  PipelineShape shape_{};
  shm::RingConsumer input_;
  std::optional<shm::ArenaReader> arena_;
  uint64_t received_ = 0;
  uint64_t expected_sequence_ = 0;
  uint64_t sequence_errors_ = 0;
  uint64_t payload_errors_ = 0;
  uint64_t last_pop_ns_ = 0;
  LatencyHistogram source_to_relay_;
  LatencyHistogram relay_to_sink_;
  LatencyHistogram end_to_end_;
};

// The child process's whole life: attach the segment by name, bind if asked, relay
// until the source closes its ring (or the engine dies), close the output, return the
// process exit code (0 on a clean drain). Errors are printed as one line.
int run_relay_process(const std::string& segment_name, std::optional<uint32_t> pu_os_index,
                      std::optional<uint32_t> node_os_index);

}  // namespace keel::engine::pipeline
