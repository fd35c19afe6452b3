// Tests for engine/pipeline/pipeline.h, in one process: the source, relay and sink tiles
// on three cores over a real segment (inline payloads and the arena path), the payload
// check, and the sink's sequence and payload error counts on a hand-made ring.
#include "engine/pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include "tests/shm/test_segment_name.h"

namespace keel::engine::pipeline {
namespace {

using namespace std::chrono_literals;

config::PerfConfig small_config(uint32_t payload_bytes) {
  config::PerfConfig config;
  config.engine.idle = config::IdleStrategy::adaptive;
  config.engine.idle_spin_polls = 256;
  config.engine.idle_sleep_us_max = 1000;
  config.engine.tile_budget = 64;
  config.rings.capacity = 1024;
  config.rings.slot_bytes = 64;
  config.rings.arena_bytes = 1 << 20;
  config.pipeline.payload_bytes = payload_bytes;
  return config;
}

// A sealed segment holding the pipeline, as run_pipeline lays it out: the sink's core
// has a doorbell of its own, the relay's lives in the pipeline's objects.
struct PipelineSegment {
  shm::Segment segment;
  shm::Doorbell* sink_doorbell = nullptr;
  shm::Doorbell* relay_doorbell = nullptr;

  static PipelineSegment make(const std::string& purpose, const PipelineShape& shape, bool with_doorbells) {
    uint64_t bytes = sizeof(shm::SegmentHeader) + pipeline_footprint(shape) + 65536;
    Result<shm::Segment> segment = shm::Segment::create({shm::testing::unique_segment_name(purpose), bytes});
    EXPECT_TRUE(segment) << segment.error().message;
    PipelineSegment made{std::move(*segment)};
    uint64_t sink_doorbell_offset = 0;
    if (with_doorbells) {
      sink_doorbell_offset = *made.segment.allocate("sink.doorbell", shm::SegmentObjectKind::doorbell,
                                                    sizeof(shm::Doorbell), 128);
      made.sink_doorbell = new (made.segment.base() + sink_doorbell_offset) shm::Doorbell{};
    }
    Result<void> laid_out = lay_out_pipeline(made.segment, shape, sink_doorbell_offset, with_doorbells);
    EXPECT_TRUE(laid_out) << laid_out.error().message;
    made.segment.seal();
    if (with_doorbells) {
      uint64_t relay_offset = made.segment.find(pipeline::relay_doorbell, shm::SegmentObjectKind::doorbell)->offset;
      made.relay_doorbell = reinterpret_cast<shm::Doorbell*>(made.segment.base() + relay_offset);
    }
    return made;
  }
  uint64_t ring_offset(const char* name) const {
    return segment.find(name, shm::SegmentObjectKind::ring)->offset;
  }
};

CoreOptions adaptive_core(const std::string& name, shm::Doorbell* doorbell) {
  CoreOptions options;
  options.name = name;
  options.idle = {config::IdleStrategy::adaptive, 256, 1000};
  options.tile_budget = 64;
  options.doorbell = doorbell;
  return options;
}

struct RunCounts {
  uint64_t sent = 0, relayed = 0, received = 0, sequence_errors = 0, payload_errors = 0;
  shm::RingStats source_to_relay{}, relay_to_sink{};
};

// True once the last ring is closed and empty, read from its shared counters.
bool drains_within(const PipelineSegment& shared, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    shm::RingStats last = shm::ring_stats(shared.segment.base(), shared.ring_offset(relay_to_sink_ring));
    if (last.closed && last.popped == last.pushed) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

// Runs source, relay and sink on three unpinned cores for `duration`, then drains.
RunCounts run_in_process(const std::string& purpose, const config::PerfConfig& config,
                         std::chrono::milliseconds duration) {
  PipelineShape shape = pipeline_shape(config);
  PipelineSegment shared = PipelineSegment::make(purpose, shape, true);
  std::unique_ptr<SourceTile> source = std::move(*SourceTile::join(shared.segment));
  std::unique_ptr<RelayTile> relay = std::move(*RelayTile::join(shared.segment));
  std::unique_ptr<SinkTile> sink = std::move(*SinkTile::join(shared.segment));
  shm::Doorbell source_doorbell{};
  Core source_core(adaptive_core("source", &source_doorbell), {{source.get(), 1}});
  Core relay_core(adaptive_core("relay", shared.relay_doorbell), {{relay.get(), 1}});
  Core sink_core(adaptive_core("sink", shared.sink_doorbell), {{sink.get(), 1}});
  for (Core* core : {&sink_core, &relay_core, &source_core}) EXPECT_TRUE(core->start());
  std::this_thread::sleep_for(duration);
  for (Core* core : {&source_core, &relay_core, &sink_core}) core->begin_drain();
  if (!drains_within(shared, 5s)) {
    ADD_FAILURE() << "the pipeline did not drain within 5 s";
    for (Core* core : {&source_core, &relay_core, &sink_core}) core->stop_now();
  }
  for (Core* core : {&source_core, &relay_core, &sink_core}) core->join();
  return {source->sent(), relay->relayed(), sink->received(), sink->sequence_errors(), sink->payload_errors(),
          shm::ring_stats(shared.segment.base(), shared.ring_offset(source_to_relay_ring)),
          shm::ring_stats(shared.segment.base(), shared.ring_offset(relay_to_sink_ring))};
}

void expect_everything_arrived_intact(const RunCounts& counts) {
  EXPECT_GT(counts.sent, 0u);
  EXPECT_EQ(counts.relayed, counts.sent);
  EXPECT_EQ(counts.received, counts.sent);
  EXPECT_EQ(counts.sequence_errors, 0u);
  EXPECT_EQ(counts.payload_errors, 0u);
  EXPECT_EQ(counts.source_to_relay.pushed, counts.sent);
  EXPECT_EQ(counts.source_to_relay.popped, counts.sent);
  EXPECT_TRUE(counts.source_to_relay.closed);
  EXPECT_EQ(counts.relay_to_sink.popped, counts.received);
  EXPECT_TRUE(counts.relay_to_sink.closed);
}

TEST(Pipeline, InlinePayloadsArriveIntactAfterDrain) {
  config::PerfConfig config = small_config(32);
  ASSERT_EQ(pipeline_shape(config).payload_in_arena, 0u);
  expect_everything_arrived_intact(run_in_process("pipeline-inline", config, 200ms));
}

TEST(Pipeline, ArenaPayloadsArriveIntactAfterDrain) {
  config::PerfConfig config = small_config(1000);
  ASSERT_EQ(pipeline_shape(config).payload_in_arena, 1u);
  expect_everything_arrived_intact(run_in_process("pipeline-arena", config, 200ms));
}

TEST(Pipeline, ShapeSaysWhenPayloadsNeedTheArena) {
  EXPECT_EQ(pipeline_shape(small_config(32)).payload_in_arena, 0u);   // 32 + 32-byte header = 64
  EXPECT_EQ(pipeline_shape(small_config(33)).payload_in_arena, 1u);
}

TEST(Payload, MatchesWhatWasFilledAndCatchesEveryFlippedByte) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  uint64_t sequence = random();
  std::vector<std::byte> payload(1000);
  fill_payload(sequence, payload);
  ASSERT_TRUE(payload_matches(sequence, payload));
  EXPECT_FALSE(payload_matches(sequence + 1, payload));
  for (size_t index = 0; index < payload.size(); ++index) {
    std::byte flip{uint8_t(std::uniform_int_distribution<int>(1, 255)(random))};
    payload[index] ^= flip;
    EXPECT_FALSE(payload_matches(sequence, payload)) << "byte " << index;
    payload[index] ^= flip;
  }
  EXPECT_TRUE(payload_matches(sequence, payload));
}

// A sink on a ring that the test writes by hand, standing in for the relay.
struct HandFedSink {
  PipelineSegment shared;
  std::unique_ptr<SinkTile> sink;
  shm::RingProducer input;

  static HandFedSink make(const std::string& purpose) {
    PipelineShape shape = pipeline_shape(small_config(32));
    PipelineSegment shared = PipelineSegment::make(purpose, shape, false);
    std::unique_ptr<SinkTile> sink = std::move(*SinkTile::join(shared.segment));
    shm::RingProducer input = *shm::RingProducer::join(shared.segment.base(), shared.ring_offset(relay_to_sink_ring));
    return {std::move(shared), std::move(sink), input};
  }
  // Pushes one message carrying `sequence` and the payload of `payload_sequence`.
  void push(uint64_t sequence, uint64_t payload_sequence) {
    std::span<std::byte> slot = input.claim(1);
    ASSERT_EQ(slot.size(), 64u);
    MessageHeader header{sequence, 0, 0, 0};
    std::memcpy(slot.data(), &header, sizeof header);
    fill_payload(payload_sequence, slot.subspan(sizeof header, 32));
    input.publish(1);
  }
};

TEST(SinkTile, CountsASequenceGap) {
  HandFedSink fed = HandFedSink::make("pipeline-gap");
  for (uint64_t sequence : {0, 1, 3}) fed.push(sequence, sequence);
  EXPECT_EQ(fed.sink->poll(64), 3u);
  EXPECT_EQ(fed.sink->received(), 3u);
  EXPECT_EQ(fed.sink->sequence_errors(), 1u);
  EXPECT_EQ(fed.sink->payload_errors(), 0u);
}

TEST(SinkTile, InOrderMessagesCountNoError) {
  HandFedSink fed = HandFedSink::make("pipeline-in-order");
  for (uint64_t sequence = 0; sequence < 100; ++sequence) fed.push(sequence, sequence);
  uint64_t polled = 0;
  while (polled < 100) {
    size_t got = fed.sink->poll(64);
    ASSERT_GT(got, 0u);
    polled += got;
  }
  EXPECT_EQ(fed.sink->sequence_errors(), 0u);
  EXPECT_EQ(fed.sink->payload_errors(), 0u);
  EXPECT_EQ(fed.sink->end_to_end().count(), 100u);
}

TEST(SinkTile, CountsAPayloadThatDoesNotMatchItsSequence) {
  HandFedSink fed = HandFedSink::make("pipeline-bad-payload");
  fed.push(0, 0);
  fed.push(1, 2);
  EXPECT_EQ(fed.sink->poll(64), 2u);
  EXPECT_EQ(fed.sink->sequence_errors(), 0u);
  EXPECT_EQ(fed.sink->payload_errors(), 1u);
}

TEST(SinkTile, IsQuiescentOnlyOnceItsRingIsClosedAndEmpty) {
  HandFedSink fed = HandFedSink::make("pipeline-quiescent");
  fed.push(0, 0);
  fed.sink->begin_drain();
  EXPECT_FALSE(fed.sink->quiescent());
  fed.input.close();
  EXPECT_FALSE(fed.sink->quiescent());  // one message still waits
  EXPECT_EQ(fed.sink->poll(64), 1u);
  EXPECT_TRUE(fed.sink->quiescent());
}

}  // namespace
}  // namespace keel::engine::pipeline
