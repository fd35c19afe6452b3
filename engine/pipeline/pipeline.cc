#include "engine/pipeline/pipeline.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>

#include "numa/binding.h"
#include "numa/topology.h"

namespace keel::engine::pipeline {

namespace {

constexpr uint64_t inline_payload_offset = sizeof(MessageHeader);

Result<uint64_t> find(const shm::Segment& segment, const char* name, shm::SegmentObjectKind kind) {
  Result<shm::SegmentObject> object = segment.find(name, kind);
  if (!object) return object.error();
  return object->offset;
}

// Finds `name` in the segment and joins it with Handle (a ring end or an arena end).
template <class Handle>
Result<Handle> join_object(shm::Segment& segment, const char* name, shm::SegmentObjectKind kind) {
  Result<uint64_t> offset = find(segment, name, kind);
  if (!offset) return offset.error();
  return Handle::join(segment.base(), *offset);
}

template <class Handle>
Result<Handle> join_ring(shm::Segment& segment, const char* name) {
  return join_object<Handle>(segment, name, shm::SegmentObjectKind::ring);
}

template <class Handle>
Result<Handle> join_arena(shm::Segment& segment, const char* name) {
  return join_object<Handle>(segment, name, shm::SegmentObjectKind::arena);
}

Result<PipelineShape> read_shape(const shm::Segment& segment) {
  Result<uint64_t> offset = find(segment, shape_object, shm::SegmentObjectKind::counters);
  if (!offset) return offset.error();
  PipelineShape shape;
  std::memcpy(&shape, segment.base() + *offset, sizeof shape);
  if (shape.magic != shape_magic) return make_error("segment '" + segment.name() + "'", "bad pipeline shape block");
  return shape;
}

Result<uint64_t> allocate_ring(shm::Segment& segment, const char* name, const PipelineShape& shape,
                               uint64_t doorbell_offset) {
  Result<uint64_t> bytes = shm::ring_footprint(shape.ring_capacity, shape.slot_bytes);
  if (!bytes) return bytes.error();
  Result<uint64_t> offset = segment.allocate(name, shm::SegmentObjectKind::ring, *bytes, 128);
  if (!offset) return offset.error();
  Result<void> built = shm::ring_construct(segment.base(), *offset,
                                           {shape.ring_capacity, shape.slot_bytes, doorbell_offset});
  if (!built) return built.error();
  return *offset;
}

Result<void> allocate_arena(shm::Segment& segment, const char* name, const PipelineShape& shape) {
  Result<uint64_t> bytes = shm::arena_footprint(shape.arena_bytes);
  if (!bytes) return bytes.error();
  Result<uint64_t> offset = segment.allocate(name, shm::SegmentObjectKind::arena, *bytes, 128);
  if (!offset) return offset.error();
  return shm::arena_construct(segment.base(), *offset, shape.arena_bytes);
}

}  // namespace

PipelineShape pipeline_shape(const config::PerfConfig& config) {
  PipelineShape shape{};
  shape.magic = shape_magic;
  shape.slot_bytes = config.rings.slot_bytes;
  shape.payload_bytes = config.pipeline.payload_bytes;
  shape.payload_in_arena = config.pipeline.payload_bytes + sizeof(MessageHeader) > config.rings.slot_bytes;
  shape.ring_capacity = config.rings.capacity;
  shape.arena_bytes = config.rings.arena_bytes;
  shape.rate_per_second = config.pipeline.rate_per_second;
  shape.idle_strategy = uint32_t(config.engine.idle);
  shape.idle_spin_polls = config.engine.idle_spin_polls;
  shape.idle_sleep_us_max = config.engine.idle_sleep_us_max;
  shape.tile_budget = config.engine.tile_budget;
  shape.engine_pid = getpid();
  return shape;
}

uint64_t pipeline_footprint(const PipelineShape& shape) {
  uint64_t ring_bytes = *shm::ring_footprint(shape.ring_capacity, shape.slot_bytes) + 128;
  uint64_t arena_bytes = shape.payload_in_arena ? *shm::arena_footprint(shape.arena_bytes) + 128 : 0;
  return 2 * (ring_bytes + arena_bytes) + sizeof(shm::Doorbell) + sizeof(PipelineShape) + 256;
}

Result<void> lay_out_pipeline(shm::Segment& segment, const PipelineShape& shape,
                              uint64_t sink_doorbell_offset, bool relay_sleeps) {
  uint64_t relay_doorbell_offset = 0;
  if (relay_sleeps) {
    Result<uint64_t> offset = segment.allocate(relay_doorbell, shm::SegmentObjectKind::doorbell,
                                               sizeof(shm::Doorbell), 128);
    if (!offset) return offset.error();
    new (segment.base() + *offset) shm::Doorbell{};
    relay_doorbell_offset = *offset;
  }
  if (auto ring = allocate_ring(segment, source_to_relay_ring, shape, relay_doorbell_offset); !ring) return ring.error();
  if (auto ring = allocate_ring(segment, relay_to_sink_ring, shape, sink_doorbell_offset); !ring) return ring.error();
  if (shape.payload_in_arena) {
    if (auto arena = allocate_arena(segment, source_to_relay_arena, shape); !arena) return arena;
    if (auto arena = allocate_arena(segment, relay_to_sink_arena, shape); !arena) return arena;
  }
  Result<uint64_t> shape_offset = segment.allocate(shape_object, shm::SegmentObjectKind::counters,
                                                   sizeof(PipelineShape), 64);
  if (!shape_offset) return shape_offset.error();
  std::memcpy(segment.base() + *shape_offset, &shape, sizeof shape);
  return {};
}

void fill_payload(uint64_t sequence, std::span<std::byte> payload) {
  for (size_t index = 0; index < payload.size(); ++index) payload[index] = std::byte(uint8_t(sequence + index * 7));
}

bool payload_matches(uint64_t sequence, std::span<const std::byte> payload) {
  for (size_t index = 0; index < payload.size(); ++index) {
    if (payload[index] != std::byte(uint8_t(sequence + index * 7))) return false;
  }
  return true;
}

// ---- source ---------------------------------------------------------------------

Result<std::unique_ptr<SourceTile>> SourceTile::join(shm::Segment& segment) {
  auto tile = std::make_unique<SourceTile>();
  Result<PipelineShape> shape = read_shape(segment);
  if (!shape) return shape.error();
  tile->shape_ = *shape;
  Result<shm::RingProducer> output = join_ring<shm::RingProducer>(segment, source_to_relay_ring);
  if (!output) return output.error();
  tile->output_ = *output;
  if (tile->shape_.payload_in_arena) {
    Result<shm::ArenaWriter> writer = join_arena<shm::ArenaWriter>(segment, source_to_relay_arena);
    if (!writer) return writer.error();
    tile->arena_ = *writer;
  }
  return tile;
}

size_t SourceTile::poll(size_t budget) {
  if (draining_) {
    if (!closed_) {
      output_.close();
      closed_ = true;
    }
    return 0;
  }
  return poll_in_batches(budget, [this](size_t count) { return poll_batch(count); });
}

size_t SourceTile::poll_batch(size_t wanted) {
  uint64_t now_ns = shm::monotonic_ns();
  if (first_push_ns_ == 0) first_push_ns_ = now_ns;
  if (shape_.rate_per_second != 0) {
    // Send what the rate allows since the first push, never a burst beyond one batch.
    unsigned __int128 allowed = (unsigned __int128)(now_ns - first_push_ns_) * shape_.rate_per_second / 1'000'000'000u + 1;
    wanted = allowed > sent_ ? std::min<size_t>(wanted, size_t(allowed - sent_)) : 0;
  }
  std::span<std::byte> slots = output_.claim(wanted);
  size_t claimed = slots.size() / shape_.slot_bytes, filled = 0;
  for (; filled < claimed; ++filled) {
    std::byte* slot = slots.data() + filled * shape_.slot_bytes;
    uint64_t sequence = sent_ + filled;
    MessageHeader header{sequence, now_ns, 0, 0};
    std::memcpy(slot, &header, sizeof header);
    if (!shape_.payload_in_arena) {
      fill_payload(sequence, {slot + inline_payload_offset, shape_.payload_bytes});
      continue;
    }
    std::optional<shm::ArenaBlock> block = arena_->reserve(shape_.payload_bytes);
    if (!block) break;  // arena full (counted in the arena): back-pressure, like a full ring
    fill_payload(sequence, block->bytes);
    ArenaReference reference{block->position, shape_.payload_bytes};
    std::memcpy(slot + inline_payload_offset, &reference, sizeof reference);
  }
  output_.publish(filled);
  sent_ += filled;
  return filled;
}

// ---- relay ----------------------------------------------------------------------

Result<std::unique_ptr<RelayTile>> RelayTile::join(shm::Segment& segment) {
  auto tile = std::make_unique<RelayTile>();
  Result<PipelineShape> shape = read_shape(segment);
  if (!shape) return shape.error();
  tile->shape_ = *shape;
  Result<shm::RingConsumer> consumer = join_ring<shm::RingConsumer>(segment, source_to_relay_ring);
  if (!consumer) return consumer.error();
  Result<shm::RingProducer> producer = join_ring<shm::RingProducer>(segment, relay_to_sink_ring);
  if (!producer) return producer.error();
  tile->input_ = *consumer;
  tile->output_ = *producer;
  if (tile->shape_.payload_in_arena) {
    Result<shm::ArenaReader> reader = join_arena<shm::ArenaReader>(segment, source_to_relay_arena);
    if (!reader) return reader.error();
    Result<shm::ArenaWriter> writer = join_arena<shm::ArenaWriter>(segment, relay_to_sink_arena);
    if (!writer) return writer.error();
    tile->input_arena_ = *reader;
    tile->output_arena_ = *writer;
  }
  return tile;
}

size_t RelayTile::poll(size_t budget) {
  if (closed_) return 0;
  return poll_in_batches(budget, [this](size_t count) { return poll_batch(count); });
}

size_t RelayTile::poll_batch(size_t wanted) {
  std::span<const std::byte> in = input_.peek(wanted);
  size_t available = in.size() / shape_.slot_bytes;
  if (available == 0) {
    if (input_.finished()) {
      output_.close();
      closed_ = true;
    } else if ((++idle_polls_ & 1023) == 0 && kill(shape_.engine_pid, 0) != 0) {
      engine_died_ = true;  // nobody will ever close our input
      output_.close();
      closed_ = true;
    }
    return 0;
  }
  uint64_t pop_ns = shm::monotonic_ns();
  std::span<std::byte> out = output_.claim(available);
  size_t count = out.size() / shape_.slot_bytes, moved = 0;
  size_t copy_bytes = shape_.payload_in_arena ? sizeof(MessageHeader) + sizeof(ArenaReference)
                                              : sizeof(MessageHeader) + shape_.payload_bytes;
  ArenaReference last_in{};
  for (; moved < count; ++moved) {
    const std::byte* from = in.data() + moved * shape_.slot_bytes;
    std::byte* to = out.data() + moved * shape_.slot_bytes;
    std::memcpy(to, from, copy_bytes);
    if (!shape_.payload_in_arena) continue;
    ArenaReference reference;
    std::memcpy(&reference, from + inline_payload_offset, sizeof reference);
    std::optional<shm::ArenaBlock> block = output_arena_->reserve(reference.length);
    if (!block) break;  // downstream arena full: back-pressure
    std::span<const std::byte> payload = input_arena_->read(reference.position, reference.length);
    assert(payload.size() == reference.length);
    std::memcpy(block->bytes.data(), payload.data(), payload.size());
    ArenaReference forwarded{block->position, reference.length};
    std::memcpy(to + inline_payload_offset, &forwarded, sizeof forwarded);
    last_in = reference;
  }
  uint64_t push_ns = shm::monotonic_ns();
  for (size_t index = 0; index < moved; ++index) {
    auto* header = reinterpret_cast<MessageHeader*>(out.data() + index * shape_.slot_bytes);
    header->relay_pop_ns = pop_ns;
    header->relay_push_ns = push_ns;
  }
  output_.publish(moved);
  if (moved != 0 && shape_.payload_in_arena) input_arena_->release(last_in.position, last_in.length);
  input_.release(moved);
  relayed_ += moved;
  return moved;
}

// ---- sink -----------------------------------------------------------------------

Result<std::unique_ptr<SinkTile>> SinkTile::join(shm::Segment& segment) {
  auto tile = std::make_unique<SinkTile>();
  Result<PipelineShape> shape = read_shape(segment);
  if (!shape) return shape.error();
  tile->shape_ = *shape;
  Result<shm::RingConsumer> input = join_ring<shm::RingConsumer>(segment, relay_to_sink_ring);
  if (!input) return input.error();
  tile->input_ = *input;
  if (tile->shape_.payload_in_arena) {
    Result<shm::ArenaReader> reader = join_arena<shm::ArenaReader>(segment, relay_to_sink_arena);
    if (!reader) return reader.error();
    tile->arena_ = *reader;
  }
  return tile;
}

size_t SinkTile::poll(size_t budget) {
  return poll_in_batches(budget, [this](size_t count) { return poll_batch(count); });
}

size_t SinkTile::poll_batch(size_t wanted) {
  std::span<const std::byte> in = input_.peek(wanted);
  size_t count = in.size() / shape_.slot_bytes;
  if (count == 0) return 0;
  uint64_t now_ns = shm::monotonic_ns();
  ArenaReference last{};
  for (size_t index = 0; index < count; ++index) {
    const std::byte* slot = in.data() + index * shape_.slot_bytes;
    MessageHeader header;
    std::memcpy(&header, slot, sizeof header);
    // One gap is one error: resynchronise on what arrived.
    if (header.sequence != expected_sequence_) ++sequence_errors_;
    expected_sequence_ = header.sequence + 1;
    std::span<const std::byte> payload{slot + inline_payload_offset, shape_.payload_bytes};
    if (shape_.payload_in_arena) {
      std::memcpy(&last, slot + inline_payload_offset, sizeof last);
      payload = arena_->read(last.position, last.length);
    }
    if (payload.size() != shape_.payload_bytes || !payload_matches(header.sequence, payload)) ++payload_errors_;
    source_to_relay_.record(header.relay_pop_ns - header.source_push_ns);
    relay_to_sink_.record(now_ns - header.relay_push_ns);
    end_to_end_.record(now_ns - header.source_push_ns);
  }
  if (shape_.payload_in_arena) arena_->release(last.position, last.length);
  input_.release(count);
  received_ += count;
  last_pop_ns_ = now_ns;
  return count;
}

// ---- the relay process ------------------------------------------------------------

int run_relay_process(const std::string& segment_name, std::optional<uint32_t> pu_os_index,
                      std::optional<uint32_t> node_os_index) {
  // Ctrl-C (and a service manager's SIGTERM) reach the whole process group; the engine
  // drains the relay through its ring, so the relay must not die of them first. It
  // still leaves by itself if the engine dies.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  Result<shm::Segment> segment = shm::Segment::attach(segment_name);
  if (!segment) {
    std::fprintf(stderr, "keel relay: %s\n", segment.error().message.c_str());
    return 2;
  }
  Result<std::unique_ptr<RelayTile>> relay = RelayTile::join(*segment);
  if (!relay) {
    std::fprintf(stderr, "keel relay: %s\n", relay.error().message.c_str());
    return 2;
  }
  Result<PipelineShape> shape = read_shape(*segment);
  CoreOptions options;
  options.name = "relay";
  options.idle = {config::IdleStrategy(shape->idle_strategy), shape->idle_spin_polls, shape->idle_sleep_us_max};
  options.tile_budget = shape->tile_budget;
  if (options.idle.strategy != config::IdleStrategy::spin) {
    options.doorbell = reinterpret_cast<shm::Doorbell*>(
        segment->base() + segment->find(relay_doorbell, shm::SegmentObjectKind::doorbell)->offset);
  }
  std::optional<numa::Topology> topology;
  if (pu_os_index && node_os_index) {
    Result<numa::Topology> host = numa::Topology::load_host();
    if (!host) {
      std::fprintf(stderr, "keel relay: %s\n", host.error().message.c_str());
      return 2;
    }
    topology.emplace(std::move(*host));
    if (Result<void> bound = numa::bind_current_thread(*topology, *pu_os_index, *node_os_index); !bound) {
      std::fprintf(stderr, "keel relay: %s\n", bound.error().message.c_str());
      return 2;
    }
  }
  CoreLoop loop(options, {{relay->get(), 1}});
  loop.begin_drain();  // the relay ends when its input is closed and drained
  loop.run();
  if ((*relay)->engine_died()) {
    std::fprintf(stderr, "keel relay: engine pid %d is gone; leaving\n", shape->engine_pid);
    return 3;
  }
  return 0;
}

}  // namespace keel::engine::pipeline
