#include "shm/ring.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::shm {
namespace {

struct Message64 {
  uint64_t sequence;
  uint64_t words[7];
};
static_assert(sizeof(Message64) == 64);

Message64 make_message(uint64_t sequence) {
  Message64 message{sequence, {}};
  for (int index = 0; index < 7; ++index) message.words[index] = sequence * 0x9E3779B97F4A7C15ULL + index;
  return message;
}

uint64_t mix_checksum(uint64_t checksum, const Message64& message) {
  for (uint64_t word : message.words) checksum = (checksum ^ word) * 0x100000001B3ULL;
  return checksum ^ message.sequence;
}

// A segment with one ring, laid out as the engine would.
struct RingFixture {
  Segment segment;
  uint64_t ring_offset = 0;
  uint64_t doorbell_offset = 0;

  static RingFixture make(const std::string& purpose, uint64_t capacity, bool with_doorbell = false) {
    auto segment = Segment::create({testing::unique_segment_name(purpose), 1 << 24});
    EXPECT_TRUE(segment.ok()) << segment.error().message;
    RingFixture fixture{std::move(*segment)};
    if (with_doorbell) {
      fixture.doorbell_offset =
          *fixture.segment.allocate("bell", SegmentObjectKind::doorbell, sizeof(Doorbell), 128);
      new (fixture.segment.base() + fixture.doorbell_offset) Doorbell{};
    }
    uint64_t bytes = *ring_footprint(capacity, 64);
    fixture.ring_offset = *fixture.segment.allocate("ring", SegmentObjectKind::ring, bytes, 128);
    EXPECT_TRUE(ring_construct(fixture.segment.base(), fixture.ring_offset,
                               {capacity, 64, fixture.doorbell_offset})
                    .ok());
    fixture.segment.seal();
    return fixture;
  }
  RingProducer producer() { return *RingProducer::join(segment.base(), ring_offset); }
  RingConsumer consumer() { return *RingConsumer::join(segment.base(), ring_offset); }
};

TEST(RingTest, FootprintRejectsImpossibleShapes) {
  EXPECT_EQ(ring_footprint(100, 64).error().message,
            "ring: capacity must be a power of two from 2 to 16777216, got 100");
  EXPECT_EQ(ring_footprint(64, 96).error().message,
            "ring: slot_bytes must be a power of two from 64 to 65536, got 96");
  EXPECT_EQ(*ring_footprint(64, 64), sizeof(RingHeader) + 64 * 64);
}

TEST(RingTest, KeepsOrderAcrossManyWrapArounds) {
  RingFixture fixture = RingFixture::make("order", 8);
  RingProducer producer = fixture.producer();
  RingConsumer consumer = fixture.consumer();
  uint64_t next_pushed = 0, next_popped = 0;
  for (int round = 0; round < 1000; ++round) {
    for (int count = 0; count < 5; ++count) ASSERT_TRUE(producer.push(make_message(next_pushed++)));
    Message64 message;
    for (int count = 0; count < 5; ++count) {
      ASSERT_TRUE(consumer.pop(message));
      ASSERT_EQ(message.sequence, next_popped);
      ASSERT_EQ(mix_checksum(0, message), mix_checksum(0, make_message(next_popped)));
      ++next_popped;
    }
  }
  RingStats stats = ring_stats(fixture.segment.base(), fixture.ring_offset);
  EXPECT_EQ(stats.pushed, 5000u);
  EXPECT_EQ(stats.popped, 5000u);
  EXPECT_EQ(stats.full_events, 0u);
}

TEST(RingTest, FullRingPushesBackAndCountsEmptyRingGivesNothing) {
  RingFixture fixture = RingFixture::make("full", 8);
  RingProducer producer = fixture.producer();
  RingConsumer consumer = fixture.consumer();
  Message64 out[16];
  EXPECT_EQ(consumer.pop(std::span<Message64>(out)), 0u);
  std::vector<Message64> batch;
  for (uint64_t index = 0; index < 12; ++index) batch.push_back(make_message(index));
  EXPECT_EQ(producer.push(std::span<const Message64>(batch)), 8u);  // took what fits
  EXPECT_FALSE(producer.push(make_message(99)));
  EXPECT_EQ(ring_stats(fixture.segment.base(), fixture.ring_offset).full_events, 2u);
  EXPECT_EQ(consumer.pop(std::span<Message64>(out)), 8u);
  for (uint64_t index = 0; index < 8; ++index) EXPECT_EQ(out[index].sequence, index);
  EXPECT_EQ(consumer.pop(std::span<Message64>(out)), 0u);
  EXPECT_TRUE(producer.drained());
}

TEST(RingTest, ClaimAndPeekStopAtTheWrap) {
  RingFixture fixture = RingFixture::make("claim", 8);
  RingProducer producer = fixture.producer();
  RingConsumer consumer = fixture.consumer();
  for (uint64_t index = 0; index < 6; ++index) ASSERT_TRUE(producer.push(make_message(index)));
  Message64 sink[6];
  ASSERT_EQ(consumer.pop(std::span<Message64>(sink)), 6u);
  // Tail is at slot 6: a claim of 5 gets the 2 slots before the wrap, then 3 more.
  std::span<std::byte> first = producer.claim(5);
  EXPECT_EQ(first.size(), 2u * 64);
  for (size_t index = 0; index < 2; ++index) {
    Message64 message = make_message(100 + index);
    std::memcpy(first.data() + index * 64, &message, 64);
  }
  producer.publish(2);
  std::span<std::byte> second = producer.claim(3);
  EXPECT_EQ(second.size(), 3u * 64);
  for (size_t index = 0; index < 3; ++index) {
    Message64 message = make_message(102 + index);
    std::memcpy(second.data() + index * 64, &message, 64);
  }
  producer.publish(3);
  std::span<const std::byte> view = consumer.peek(8);
  EXPECT_EQ(view.size(), 2u * 64);
  Message64 message;
  std::memcpy(&message, view.data() + 64, 64);
  EXPECT_EQ(message.sequence, 101u);
  consumer.release(2);
  view = consumer.peek(8);
  ASSERT_EQ(view.size(), 3u * 64);
  std::memcpy(&message, view.data() + 128, 64);
  EXPECT_EQ(message.sequence, 104u);
  consumer.release(3);
  EXPECT_TRUE(producer.drained());
}

// Random batch sizes on both sides between two threads; the ThreadSanitizer build runs
// this to check the ring's memory ordering.
TEST(RingTest, RandomBatchesBetweenThreads) {
  uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  RingFixture fixture = RingFixture::make("threads", 64);
  constexpr uint64_t message_count = 1'000'000;
  uint64_t expected = 0;
  for (uint64_t sequence = 0; sequence < message_count; ++sequence) {
    expected = mix_checksum(expected, make_message(sequence));
  }
  std::thread producer_thread([&] {
    RingProducer producer = fixture.producer();
    std::mt19937 random(seed);
    std::vector<Message64> batch;
    uint64_t next = 0;
    while (next < message_count) {
      size_t wanted = std::min<uint64_t>(1 + random() % 40, message_count - next);
      if (random() % 2) {  // copy in
        batch.clear();
        for (size_t index = 0; index < wanted; ++index) batch.push_back(make_message(next + index));
        next += producer.push(std::span<const Message64>(batch));
      } else {             // zero-copy
        std::span<std::byte> slots = producer.claim(wanted);
        size_t claimed = slots.size() / 64;
        for (size_t index = 0; index < claimed; ++index) {
          Message64 message = make_message(next + index);
          std::memcpy(slots.data() + index * 64, &message, 64);
        }
        producer.publish(claimed);
        next += claimed;
      }
    }
  });
  RingConsumer consumer = fixture.consumer();
  std::mt19937 random(seed + 1);
  std::vector<Message64> out(40);
  uint64_t received = 0, checksum = 0;
  while (received < message_count) {
    size_t got = consumer.pop(std::span<Message64>(out.data(), 1 + random() % 40));
    for (size_t index = 0; index < got; ++index) {
      ASSERT_EQ(out[index].sequence, received + index) << "seed " << seed;
      checksum = mix_checksum(checksum, out[index]);
    }
    received += got;
  }
  producer_thread.join();
  EXPECT_EQ(checksum, expected) << "seed " << seed;
}

// Waits for a child, failing the test if it does not exit 0 within `timeout`.
void expect_child_succeeds(pid_t child, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      FAIL() << "child did not finish within " << timeout.count() << " s";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(WIFEXITED(status)) << "child died by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Ten million messages from this process to a forked child that attaches the segment by
// name and checks the order and a checksum of every payload.
TEST(RingTest, TenMillionMessagesBetweenProcesses) {
  RingFixture fixture = RingFixture::make("process", 4096);
  constexpr uint64_t message_count = 10'000'000;
  uint64_t expected = 0;
  for (uint64_t sequence = 0; sequence < message_count; ++sequence) {
    expected = mix_checksum(expected, make_message(sequence));
  }
  std::string name = fixture.segment.name();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto attached = Segment::attach(name);
    if (!attached) _exit(10);
    auto object = attached->find("ring", SegmentObjectKind::ring);
    if (!object) _exit(11);
    RingConsumer consumer = *RingConsumer::join(attached->base(), object->offset);
    Message64 out[32];
    uint64_t received = 0, checksum = 0;
    while (received < message_count) {
      size_t got = consumer.pop(std::span<Message64>(out));
      for (size_t index = 0; index < got; ++index) {
        if (out[index].sequence != received + index) _exit(12);
        checksum = mix_checksum(checksum, out[index]);
      }
      received += got;
    }
    _exit(checksum == expected ? 0 : 13);
  }
  RingProducer producer = fixture.producer();
  Message64 batch[32];
  uint64_t next = 0;
  while (next < message_count) {
    size_t count = std::min<uint64_t>(32, message_count - next);
    for (size_t index = 0; index < count; ++index) batch[index] = make_message(next + index);
    size_t taken = 0;
    while (taken < count) taken += producer.push(std::span<const Message64>(batch + taken, count - taken));
    next += count;
  }
  expect_child_succeeds(child, std::chrono::seconds(300));
  RingStats stats = ring_stats(fixture.segment.base(), fixture.ring_offset);
  EXPECT_EQ(stats.pushed, message_count);
  EXPECT_EQ(stats.popped, message_count);
}

// A consumer in another process sleeps on the doorbell with a long timeout; the
// producer's push must wake it (a lost wake-up would leave it asleep for 60 s).
TEST(RingTest, DoorbellWakesASleepingConsumerInAnotherProcess) {
  RingFixture fixture = RingFixture::make("doorbell", 64, /*with_doorbell=*/true);
  std::string name = fixture.segment.name();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto attached = Segment::attach(name);
    if (!attached) _exit(10);
    RingConsumer consumer =
        *RingConsumer::join(attached->base(), attached->find("ring", SegmentObjectKind::ring)->offset);
    auto* bell = reinterpret_cast<Doorbell*>(
        attached->base() + attached->find("bell", SegmentObjectKind::doorbell)->offset);
    Message64 message;
    for (;;) {
      uint32_t sequence = doorbell_prepare_sleep(bell);
      if (consumer.has_messages()) {
        doorbell_finish_sleep(bell);
        break;
      }
      doorbell_sleep(bell, sequence, 60'000'000);
      doorbell_finish_sleep(bell);
    }
    _exit(consumer.pop(message) && message.sequence == 7 ? 0 : 12);
  }
  auto* bell = reinterpret_cast<Doorbell*>(fixture.segment.base() + fixture.doorbell_offset);
  while (bell->sleepers.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  RingProducer producer = fixture.producer();
  ASSERT_TRUE(producer.push(make_message(7)));
  expect_child_succeeds(child, std::chrono::seconds(10));
  EXPECT_GE(bell->wakes.load(), 1u);
}

TEST(RingTest, JoinRejectsSomethingThatIsNotARing) {
  RingFixture fixture = RingFixture::make("notring", 8);
  auto joined = RingProducer::join(fixture.segment.base(), 0);  // the segment header
  ASSERT_FALSE(joined.ok());
  EXPECT_EQ(joined.error().message, "ring at offset 0: bad magic");
}

}  // namespace
}  // namespace keel::shm
