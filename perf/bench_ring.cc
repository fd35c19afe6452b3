#include "perf/bench_ring.h"

#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "numa/binding.h"
#include "perf/bench_report.h"
#include "numa/topology.h"
#include "shm/ring.h"
#include "shm/segment.h"

namespace keel::perf {
namespace {

constexpr uint64_t queue_capacity = 4096;

template <size_t Bytes>
struct alignas(64) Message {
  uint64_t sequence;
  uint64_t words[Bytes / 8 - 1];
};
static_assert(sizeof(Message<64>) == 64 && sizeof(Message<256>) == 256);

// The producer writes the whole message, as a real producer would.
template <size_t Bytes>
inline void fill(Message<Bytes>& message, uint64_t sequence) {
  message.sequence = sequence;
  for (uint64_t& word : message.words) word = sequence;
}

template <size_t Bytes>
inline uint64_t digest(const Message<Bytes>& message) {
  return message.sequence + message.words[Bytes / 8 - 2];
}

uint64_t expected_digest(uint64_t count) { return count * (count - 1); }  // sum of 2 × sequence

// Where the two sides run: the first PUs of two different cores (or the same PU on a
// one-PU machine, which the report then says).
struct Pins {
  std::optional<numa::Topology> topology;
  uint32_t producer_pu = 0, consumer_pu = 0, producer_node = 0, consumer_node = 0;
  std::string description;
};

Pins choose_pins() {
  Pins pins;
  Result<numa::Topology> topology = numa::Topology::load_host();
  if (!topology) {
    pins.description = "unpinned (" + topology.error().message + ")";
    return pins;
  }
  std::vector<std::pair<uint32_t, uint32_t>> cores;  // (first PU, node os index)
  for (const numa::NumaNode& node : topology->nodes()) {
    for (const numa::Core& core : node.cores) cores.push_back({core.pu_os_indexes.front(), node.os_index});
  }
  pins.producer_pu = cores.front().first;
  pins.producer_node = cores.front().second;
  pins.consumer_pu = cores.size() > 1 ? cores[1].first : cores.front().first;
  pins.consumer_node = cores.size() > 1 ? cores[1].second : cores.front().second;
  pins.description = "producer on PU " + std::to_string(pins.producer_pu) + ", consumer on PU " +
                     std::to_string(pins.consumer_pu) + (cores.size() > 1 ? " (different cores)" : " (ONE core only)");
  pins.topology.emplace(std::move(*topology));
  return pins;
}

void pin(const Pins& pins, bool producer) {
  if (!pins.topology) return;
  Result<void> bound = producer ? numa::bind_current_thread(*pins.topology, pins.producer_pu, pins.producer_node)
                                : numa::bind_current_thread(*pins.topology, pins.consumer_pu, pins.consumer_node);
  if (!bound) std::fprintf(stderr, "keel bench: %s\n", bound.error().message.c_str());
}

// A bounded queue behind one mutex and two condition variables: the baseline that
// rings exist to beat.
template <class T>
class MutexQueue {
 public:
  explicit MutexQueue(size_t capacity) : slots_(capacity) {}
  size_t push(const T* messages, size_t count) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return size_ < slots_.size(); });
    size_t taken = std::min(count, slots_.size() - size_);
    for (size_t index = 0; index < taken; ++index) slots_[(head_ + size_ + index) % slots_.size()] = messages[index];
    size_ += taken;
    lock.unlock();
    not_empty_.notify_one();
    return taken;
  }
  size_t pop(T* out, size_t count) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return size_ > 0; });
    size_t taken = std::min(count, size_);
    for (size_t index = 0; index < taken; ++index) out[index] = slots_[(head_ + index) % slots_.size()];
    head_ = (head_ + taken) % slots_.size();
    size_ -= taken;
    lock.unlock();
    not_full_.notify_one();
    return taken;
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::vector<T> slots_;
  size_t head_ = 0, size_ = 0;
};

// Results the consumer hands back, in memory both sides can see (shared for processes).
struct alignas(64) Handoff {
  std::atomic<uint32_t> consumer_ready;
  std::atomic<uint64_t> end_ns;
  std::atomic<uint64_t> digest;
};

// A segment holding one or two keel rings and the handoff block.
struct RingSpace {
  shm::Segment segment;
  uint64_t ring_offsets[2];
  Handoff* handoff;
};

RingSpace make_ring_space(uint32_t slot_bytes) {
  std::string name = "keel-bench-" + std::to_string(getpid());
  uint64_t ring_bytes = *shm::ring_footprint(queue_capacity, slot_bytes);
  shm::Segment segment = std::move(*shm::Segment::create({name, 2 * ring_bytes + (1 << 20)}));
  RingSpace space{std::move(segment), {}, nullptr};
  for (int index = 0; index < 2; ++index) {
    space.ring_offsets[index] = *space.segment.allocate("ring" + std::to_string(index), shm::SegmentObjectKind::ring, ring_bytes, 128);
    (void)shm::ring_construct(space.segment.base(), space.ring_offsets[index], {queue_capacity, slot_bytes, 0});
  }
  uint64_t handoff = *space.segment.allocate("handoff", shm::SegmentObjectKind::counters, sizeof(Handoff), 64);
  space.handoff = new (space.segment.base() + handoff) Handoff{};
  space.segment.seal();
  return space;
}

// Runs `consumer` on another pinned thread or in a forked, pinned child and `producer`
// here (pinned); returns messages per second from the producer's start to the
// consumer's last message. Aborts the benchmark if the digest is wrong.
double run_pair(const Pins& pins, bool processes, Handoff* handoff, uint64_t messages,
                const std::function<uint64_t()>& consumer, const std::function<void()>& producer) {
  handoff->consumer_ready.store(0);
  handoff->end_ns.store(0);
  auto consumer_side = [&] {
    pin(pins, false);
    handoff->consumer_ready.store(1, std::memory_order_release);
    uint64_t result = consumer();
    handoff->end_ns.store(shm::monotonic_ns(), std::memory_order_relaxed);
    handoff->digest.store(result, std::memory_order_release);
  };
  pin(pins, true);
  pid_t child = -1;
  std::thread thread;
  if (processes) {
    child = fork();
    if (child == 0) {
      consumer_side();
      _exit(0);
    }
  } else {
    thread = std::thread(consumer_side);
  }
  while (handoff->consumer_ready.load(std::memory_order_acquire) == 0) __builtin_ia32_pause();
  uint64_t start_ns = shm::monotonic_ns();
  producer();
  if (processes) {
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "keel bench: consumer process failed\n");
      std::exit(1);
    }
  } else {
    thread.join();
  }
  if (handoff->digest.load(std::memory_order_acquire) != expected_digest(messages)) {
    std::fprintf(stderr, "keel bench: wrong digest: messages lost or corrupted\n");
    std::exit(1);
  }
  return double(messages) * 1e9 / double(handoff->end_ns.load() - start_ns);
}

// mutex: the classic mutex + condition-variable queue, one lock per message (the target
// baseline); mutex_bulk: the same queue taking one lock per batch, shown for reference.
enum class Queue { keel_copy, keel_zero_copy, boost, mutex, mutex_bulk };

std::string queue_name(Queue queue) {
  switch (queue) {
    case Queue::keel_copy: return "keel";
    case Queue::keel_zero_copy: return "keel_zero_copy";
    case Queue::boost: return "boost_spsc";
    case Queue::mutex: return "mutex_queue";
    case Queue::mutex_bulk: return "mutex_queue_bulk";
  }
  return "?";
}

template <size_t Bytes>
double throughput_keel(const Pins& pins, bool processes, bool zero_copy, uint32_t batch, uint64_t messages) {
  using M = Message<Bytes>;
  RingSpace space = make_ring_space(Bytes);
  std::byte* base = space.segment.base();
  uint64_t offset = space.ring_offsets[0];
  auto consumer = [&]() -> uint64_t {
    shm::RingConsumer ring = *shm::RingConsumer::join(base, offset);
    uint64_t received = 0, sum = 0;
    M out[32];
    while (received < messages) {
      size_t got;
      if (zero_copy) {
        std::span<const std::byte> view = ring.peek(batch);
        got = view.size() / Bytes;
        const M* slots = reinterpret_cast<const M*>(view.data());
        for (size_t index = 0; index < got; ++index) sum += digest(slots[index]);
        ring.release(got);
      } else {
        got = ring.pop(std::span<M>(out, batch));
        for (size_t index = 0; index < got; ++index) sum += digest(out[index]);
      }
      received += got;
    }
    return sum;
  };
  auto producer = [&] {
    shm::RingProducer ring = *shm::RingProducer::join(base, offset);
    M buffer[32];
    for (uint64_t sequence = 0; sequence < messages;) {
      size_t count = std::min<uint64_t>(batch, messages - sequence);
      if (zero_copy) {
        std::span<std::byte> view = ring.claim(count);
        size_t claimed = view.size() / Bytes;
        M* slots = reinterpret_cast<M*>(view.data());
        for (size_t index = 0; index < claimed; ++index) fill(slots[index], sequence + index);
        ring.publish(claimed);
        sequence += claimed;
      } else {
        for (size_t index = 0; index < count; ++index) fill(buffer[index], sequence + index);
        for (size_t pushed = 0; pushed < count;) pushed += ring.push(std::span<const M>(buffer + pushed, count - pushed));
        sequence += count;
      }
    }
  };
  return run_pair(pins, processes, space.handoff, messages, consumer, producer);
}

// The cross-core ceiling: what any SPSC queue between these two cores could carry. The
// same messages go through a buffer the size of the ring (4,096 slots) in chunks, each
// chunk handed over by a flag on a line of its own (one release store and one acquire
// load per chunk), so signalling costs next to nothing and what is left is the producer
// writing each message and the consumer reading it: the cross-core cache-line transfer
// rate. The best chunk depends on the message size (small chunks keep the lines in
// flight closer to L1, big ones signal less), so the ceiling is the best of 16, 64 and
// 256 messages per chunk. It is a reference, not a strict bound: keel's zero-copy path at
// batch 32 reaches it, and at 256 B passes it by a few percent; a target well above it asks
// for more than any way of moving messages between these cores was seen to do.
template <size_t Bytes>
double throughput_chunked(const Pins& pins, uint64_t messages, uint64_t chunk_messages) {
  using M = Message<Bytes>;
  const uint64_t chunks = queue_capacity / chunk_messages;
  struct alignas(128) Flag {
    std::atomic<uint64_t> lap{0};  // the last lap of this chunk filled (or emptied)
  };
  std::vector<M> slots(queue_capacity);
  std::unique_ptr<Flag[]> filled(new Flag[chunks]), emptied(new Flag[chunks]);
  messages -= messages % chunk_messages;
  Handoff handoff{};
  auto consumer = [&]() -> uint64_t {
    const uint64_t per_chunk = chunk_messages, chunk_count = chunks;
    const uint64_t chunk_total = messages / per_chunk;
    M* const buffer = slots.data();
    Flag* const filled_flags = filled.get();
    Flag* const emptied_flags = emptied.get();
    uint64_t sum = 0;
    for (uint64_t chunk = 0; chunk < chunk_total; ++chunk) {
      uint64_t index = chunk % chunk_count, lap = chunk / chunk_count + 1;
      while (filled_flags[index].lap.load(std::memory_order_acquire) < lap) __builtin_ia32_pause();
      for (uint64_t slot = 0; slot < per_chunk; ++slot) sum += digest(buffer[index * per_chunk + slot]);
      emptied_flags[index].lap.store(lap, std::memory_order_release);
    }
    return sum;
  };
  auto producer = [&] {
    const uint64_t per_chunk = chunk_messages, chunk_count = chunks;
    const uint64_t chunk_total = messages / per_chunk;
    M* const buffer = slots.data();
    Flag* const filled_flags = filled.get();
    Flag* const emptied_flags = emptied.get();
    for (uint64_t chunk = 0; chunk < chunk_total; ++chunk) {
      uint64_t index = chunk % chunk_count, lap = chunk / chunk_count + 1;
      while (emptied_flags[index].lap.load(std::memory_order_acquire) + 1 < lap) __builtin_ia32_pause();
      for (uint64_t slot = 0; slot < per_chunk; ++slot) fill(buffer[index * per_chunk + slot], chunk * per_chunk + slot);
      filled_flags[index].lap.store(lap, std::memory_order_release);
    }
  };
  return run_pair(pins, false, &handoff, messages, consumer, producer);
}

template <size_t Bytes>
double throughput_ceiling(const Pins& pins, uint64_t messages) {
  double best = 0;
  for (uint64_t chunk_messages : {16, 64, 256}) best = std::max(best, throughput_chunked<Bytes>(pins, messages, chunk_messages));
  return best;
}

// The copying baselines share one harness: `push(messages, count)` returns how many it
// took, `pop(out, count_max)` how many it gave; both sides work in batches of `batch`.
template <size_t Bytes, class Push, class Pop>
double throughput_copying(const Pins& pins, uint32_t batch, uint64_t messages, Push push, Pop pop) {
  using M = Message<Bytes>;
  Handoff handoff{};
  auto consumer = [&]() -> uint64_t {
    uint64_t received = 0, sum = 0;
    M out[32];
    while (received < messages) {
      size_t got = pop(out, batch);
      for (size_t index = 0; index < got; ++index) sum += digest(out[index]);
      received += got;
    }
    return sum;
  };
  auto producer = [&] {
    M buffer[32];
    for (uint64_t sequence = 0; sequence < messages;) {
      size_t count = std::min<uint64_t>(batch, messages - sequence);
      for (size_t index = 0; index < count; ++index) fill(buffer[index], sequence + index);
      for (size_t pushed = 0; pushed < count;) pushed += push(buffer + pushed, count - pushed);
      sequence += count;
    }
  };
  return run_pair(pins, false, &handoff, messages, consumer, producer);
}

// boost's single push/pop at batch 1, its bulk push/pop above.
template <size_t Bytes>
double throughput_boost(const Pins& pins, uint32_t batch, uint64_t messages) {
  using M = Message<Bytes>;
  auto queue = std::make_unique<boost::lockfree::spsc_queue<M>>(queue_capacity);
  auto push = [&](const M* buffer, size_t count) -> size_t {
    return batch == 1 ? size_t(queue->push(buffer[0])) : queue->push(buffer, count);
  };
  auto pop = [&](M* out, size_t count) -> size_t {
    return batch == 1 ? size_t(queue->pop(out[0])) : queue->pop(out, count);
  };
  return throughput_copying<Bytes>(pins, batch, messages, push, pop);
}

// One lock per message (classic), or per batch (bulk, for reference).
template <size_t Bytes>
double throughput_mutex(const Pins& pins, uint32_t batch, uint64_t messages, bool bulk) {
  using M = Message<Bytes>;
  MutexQueue<M> queue(queue_capacity);
  auto push = [&](const M* buffer, size_t count) { return queue.push(buffer, bulk ? count : 1); };
  auto pop = [&](M* out, size_t count) { return queue.pop(out, bulk ? count : 1); };
  return throughput_copying<Bytes>(pins, batch, messages, push, pop);
}

double throughput(const Pins& pins, Queue queue, bool processes, uint32_t bytes, uint32_t batch, uint64_t messages) {
  bool zero_copy = queue == Queue::keel_zero_copy;
  if (bytes == 64) {
    if (queue == Queue::boost) return throughput_boost<64>(pins, batch, messages);
    if (queue == Queue::mutex || queue == Queue::mutex_bulk) {
      return throughput_mutex<64>(pins, batch, messages / 10, queue == Queue::mutex_bulk);
    }
    return throughput_keel<64>(pins, processes, zero_copy, batch, messages);
  }
  if (queue == Queue::boost) return throughput_boost<256>(pins, batch, messages);
  if (queue == Queue::mutex || queue == Queue::mutex_bulk) {
    return throughput_mutex<256>(pins, batch, messages / 10, queue == Queue::mutex_bulk);
  }
  return throughput_keel<256>(pins, processes, zero_copy, batch, messages);
}

// ---- round-trip latency -----------------------------------------------------------

struct Percentiles {
  double p50_ns, p99_ns;
};

Percentiles percentiles(std::vector<uint64_t>& samples) {
  std::sort(samples.begin(), samples.end());
  return {double(samples[samples.size() / 2]), double(samples[samples.size() * 99 / 100])};
}

// Ping-pong of 64-byte messages: here pushes a message and waits for it to come back.
Percentiles round_trip_keel(const Pins& pins, bool processes, uint64_t round_trips) {
  using M = Message<64>;
  RingSpace space = make_ring_space(64);
  std::byte* base = space.segment.base();
  uint64_t there = space.ring_offsets[0], back = space.ring_offsets[1];
  uint64_t total = round_trips + round_trips / 10;  // the first tenth warms up
  auto echo = [&]() -> uint64_t {
    shm::RingConsumer in = *shm::RingConsumer::join(base, there);
    shm::RingProducer out = *shm::RingProducer::join(base, back);
    M message;
    for (uint64_t count = 0; count < total; ++count) {
      while (!in.pop(message)) __builtin_ia32_pause();
      while (!out.push(message)) __builtin_ia32_pause();
    }
    return expected_digest(total);
  };
  std::vector<uint64_t> samples;
  samples.reserve(total);
  auto ping = [&] {
    shm::RingProducer out = *shm::RingProducer::join(base, there);
    shm::RingConsumer in = *shm::RingConsumer::join(base, back);
    M message;
    for (uint64_t count = 0; count < total; ++count) {
      fill(message, count);
      uint64_t start_ns = shm::monotonic_ns();
      while (!out.push(message)) __builtin_ia32_pause();
      while (!in.pop(message)) __builtin_ia32_pause();
      if (count >= round_trips / 10) samples.push_back(shm::monotonic_ns() - start_ns);
    }
  };
  run_pair(pins, processes, space.handoff, total, echo, ping);
  return percentiles(samples);
}

Percentiles round_trip_boost(const Pins& pins, uint64_t round_trips) {
  using M = Message<64>;
  boost::lockfree::spsc_queue<M> there(queue_capacity), back(queue_capacity);
  Handoff handoff{};
  uint64_t total = round_trips + round_trips / 10;
  auto echo = [&]() -> uint64_t {
    M message;
    for (uint64_t count = 0; count < total; ++count) {
      while (!there.pop(message)) __builtin_ia32_pause();
      while (!back.push(message)) __builtin_ia32_pause();
    }
    return expected_digest(total);
  };
  std::vector<uint64_t> samples;
  samples.reserve(total);
  auto ping = [&] {
    M message;
    for (uint64_t count = 0; count < total; ++count) {
      fill(message, count);
      uint64_t start_ns = shm::monotonic_ns();
      while (!there.push(message)) __builtin_ia32_pause();
      while (!back.pop(message)) __builtin_ia32_pause();
      if (count >= round_trips / 10) samples.push_back(shm::monotonic_ns() - start_ns);
    }
  };
  run_pair(pins, false, &handoff, total, echo, ping);
  return percentiles(samples);
}

// ---- aggregation and report ---------------------------------------------------------

std::string throughput_key(Queue queue, bool processes, uint32_t bytes, uint32_t batch) {
  return queue_name(queue) + (processes ? ".processes" : ".threads") + "." + std::to_string(bytes) + "B.batch" +
         std::to_string(batch);
}

std::string ceiling_key(uint32_t bytes) { return "cross_core_ceiling.threads." + std::to_string(bytes) + "B"; }

}  // namespace

int run_ring_bench(const RingBenchOptions& options) {
  Pins pins = choose_pins();
  std::map<std::string, Figure> figures;
  std::map<std::string, Figure> latency_p50, latency_p99;
  const uint32_t sizes[] = {64, 256}, batches[] = {1, 8, 32};
  if (!options.json) std::fprintf(stderr, "keel bench ring: %u repetitions, %s\n", options.repetitions, pins.description.c_str());
  for (uint32_t repetition = 0; repetition < options.repetitions; ++repetition) {
    for (uint32_t bytes : sizes) {
      for (uint32_t batch : batches) {
        // keel and its baselines interleaved within each repetition, so drift in the
        // machine's speed hits all of them alike.
        for (Queue queue : {Queue::keel_copy, Queue::boost, Queue::keel_zero_copy, Queue::mutex, Queue::mutex_bulk}) {
          figures[throughput_key(queue, false, bytes, batch)].samples.push_back(
              throughput(pins, queue, false, bytes, batch, options.messages));
        }
        for (Queue queue : {Queue::keel_copy, Queue::keel_zero_copy}) {
          figures[throughput_key(queue, true, bytes, batch)].samples.push_back(
              throughput(pins, queue, true, bytes, batch, options.messages));
        }
      }
      figures[ceiling_key(bytes)].samples.push_back(bytes == 64 ? throughput_ceiling<64>(pins, options.messages)
                                                                : throughput_ceiling<256>(pins, options.messages));
    }
    Percentiles keel_threads = round_trip_keel(pins, false, options.round_trips);
    Percentiles boost_threads = round_trip_boost(pins, options.round_trips);
    Percentiles keel_processes = round_trip_keel(pins, true, options.round_trips);
    latency_p50["keel.threads"].samples.push_back(keel_threads.p50_ns);
    latency_p99["keel.threads"].samples.push_back(keel_threads.p99_ns);
    latency_p50["boost_spsc.threads"].samples.push_back(boost_threads.p50_ns);
    latency_p99["boost_spsc.threads"].samples.push_back(boost_threads.p99_ns);
    latency_p50["keel.processes"].samples.push_back(keel_processes.p50_ns);
    latency_p99["keel.processes"].samples.push_back(keel_processes.p99_ns);
    if (!options.json) std::fprintf(stderr, "  repetition %u of %u done\n", repetition + 1, options.repetitions);
  }

  auto key = [](Queue queue, bool processes, uint32_t bytes, uint32_t batch) {
    return throughput_key(queue, processes, bytes, batch);
  };
  std::vector<Target> targets;
  for (uint32_t bytes : sizes) {
    std::string size = std::to_string(bytes) + "B";
    targets.push_back({"keel / boost, batch 1, " + size, paired_ratio(figures[key(Queue::keel_copy, false, bytes, 1)], figures[key(Queue::boost, false, bytes, 1)]), 1.0});
    targets.push_back({"keel copy / boost bulk, batch 32, " + size, paired_ratio(figures[key(Queue::keel_copy, false, bytes, 32)], figures[key(Queue::boost, false, bytes, 32)]), 1.0});
    targets.push_back({"keel zero-copy / boost bulk, batch 32, " + size, paired_ratio(figures[key(Queue::keel_zero_copy, false, bytes, 32)], figures[key(Queue::boost, false, bytes, 32)]), 1.3});
    for (uint32_t batch : batches) {
      targets.push_back({"keel / mutex queue, batch " + std::to_string(batch) + ", " + size, paired_ratio(figures[key(Queue::keel_copy, false, bytes, batch)], figures[key(Queue::mutex, false, bytes, batch)]), 10.0});
      targets.push_back({"keel / mutex queue bulk (reference), batch " + std::to_string(batch) + ", " + size, paired_ratio(figures[key(Queue::keel_copy, false, bytes, batch)], figures[key(Queue::mutex_bulk, false, bytes, batch)]), 0.0});
      targets.push_back({"keel processes / threads, batch " + std::to_string(batch) + ", " + size, paired_ratio(figures[key(Queue::keel_copy, true, bytes, batch)], figures[key(Queue::keel_copy, false, bytes, batch)]), 0.85});
    }
    // Whether 10× the mutex queue is within reach at all: above 1, it asks for more than
    // the cores can move. Shown for reference, with how close keel's best mode comes.
    for (uint32_t batch : batches) {
      Figure ten_mutex = figures[key(Queue::mutex, false, bytes, batch)];
      for (double& sample : ten_mutex.samples) sample *= 10;
      targets.push_back({"10 x mutex queue, batch " + std::to_string(batch) + ", " + size + " / cross-core ceiling", paired_ratio(ten_mutex, figures[ceiling_key(bytes)]), 0.0});
    }
    Figure boost_bulk_scaled = figures[key(Queue::boost, false, bytes, 32)];
    for (double& sample : boost_bulk_scaled.samples) sample *= 1.3;
    targets.push_back({"1.3 x boost bulk, batch 32, " + size + " / cross-core ceiling", paired_ratio(boost_bulk_scaled, figures[ceiling_key(bytes)]), 0.0});
    targets.push_back({"keel zero-copy batch 32 / cross-core ceiling, " + size, paired_ratio(figures[key(Queue::keel_zero_copy, false, bytes, 32)], figures[ceiling_key(bytes)]), 0.0});
  }
  // Lower latency is better: boost p50 / keel p50 >= 1 means keel is no worse.
  targets.push_back({"round trip p50: boost / keel (threads)", paired_ratio(latency_p50["boost_spsc.threads"], latency_p50["keel.threads"]), 1.0});


  if (options.json) {
    nlohmann::json json;
    json["benchmark"] = "ring";
    json["machine"] = machine_line();
    json["pinning"] = pins.description;
    json["repetitions"] = options.repetitions;
    json["messages_per_run"] = options.messages;
    for (auto& [name, figure] : figures) {
      json["throughput_messages_per_second"][name] = {{"median", figure.median()}, {"min", figure.min()}, {"max", figure.max()}};
    }
    for (auto& [name, figure] : latency_p50) {
      json["round_trip_ns"][name] = {{"p50_median", figure.median()}, {"p50_min", figure.min()}, {"p50_max", figure.max()},
                                     {"p99_median", latency_p99[name].median()}};
    }
    add_targets_json(json, targets);
    std::printf("%s\n", json.dump().c_str());
    return 0;
  }
  std::printf("machine: %s\n%s; medians of %u repetitions, keel and baselines interleaved\n\n", machine_line().c_str(),
              pins.description.c_str(), options.repetitions);
  std::printf("%-44s %12s %12s %12s\n", "throughput (M messages/s)", "median", "min", "max");
  for (auto& [name, figure] : figures) {
    std::printf("%-44s %12.2f %12.2f %12.2f\n", name.c_str(), figure.median() / 1e6, figure.min() / 1e6, figure.max() / 1e6);
  }
  std::printf("\n%-44s %12s %12s %12s\n", "round trip, 64 B (ns)", "p50", "p50 min", "p99");
  for (auto& [name, figure] : latency_p50) {
    std::printf("%-44s %12.0f %12.0f %12.0f\n", name.c_str(), figure.median(), figure.min(), latency_p99[name].median());
  }
  print_targets(targets);
  return 0;
}

}  // namespace keel::perf
