#include "shm/arena.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "shm/segment.h"
#include "tests/shm/test_segment_name.h"

namespace keel::shm {
namespace {

struct ArenaFixture {
  Segment segment;
  uint64_t offset;
  static ArenaFixture make(uint64_t bytes) {
    auto segment = Segment::create({testing::unique_segment_name("arena"), 1 << 22});
    EXPECT_TRUE(segment.ok());
    uint64_t offset = *segment->allocate("arena", SegmentObjectKind::arena, *arena_footprint(bytes), 128);
    EXPECT_TRUE(arena_construct(segment->base(), offset, bytes).ok());
    return {std::move(*segment), offset};
  }
};

TEST(ArenaTest, FootprintRejectsImpossibleSizes) {
  EXPECT_EQ(arena_footprint(5000).error().message,
            "arena: bytes must be a power of two from 4096 to 4294967296, got 5000");
}

TEST(ArenaTest, FillsPushesBackAndNeverWrapsAPayload) {
  ArenaFixture fixture = ArenaFixture::make(4096);
  ArenaWriter writer = *ArenaWriter::join(fixture.segment.base(), fixture.offset);
  ArenaReader reader = *ArenaReader::join(fixture.segment.base(), fixture.offset);
  auto first = writer.reserve(3000);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->position, 0u);
  EXPECT_FALSE(writer.reserve(2000).has_value());  // only 1096 left
  EXPECT_FALSE(writer.reserve(5000).has_value());  // larger than the arena
  reader.release(first->position, 3000);
  auto second = writer.reserve(2000);              // would wrap: skips to the start
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->position, 4096u);
  EXPECT_EQ(second->bytes.data(), first->bytes.data());
  EXPECT_EQ(reader.read(second->position, 2000).size(), 2000u);
  EXPECT_TRUE(reader.read(second->position, 5000).empty());  // a corrupt slot
  EXPECT_TRUE(reader.read(0, 100).empty());                  // already released
}

// A producer that reserved for the most it might write gives the unwritten tail back:
// the next block starts where the shortened one ends, and a writer joining later (a new
// incarnation) carries on from there too.
TEST(ArenaTest, AShortenedBlockGivesItsTailBack) {
  ArenaFixture fixture = ArenaFixture::make(4096);
  ArenaWriter writer = *ArenaWriter::join(fixture.segment.base(), fixture.offset);
  auto block = writer.reserve(4000);
  ASSERT_TRUE(block.has_value());
  EXPECT_FALSE(writer.reserve(200).has_value());  // only 96 left
  writer.shorten_last(*block, 100);
  auto next = writer.reserve(200);
  ASSERT_TRUE(next.has_value()) << "the shortened block's tail was not given back";
  EXPECT_EQ(next->position, 100u);
  writer.shorten_last(*next, 8);
  ArenaWriter rejoined = *ArenaWriter::join(fixture.segment.base(), fixture.offset);
  auto after = rejoined.reserve(16);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->position, 108u);
}

TEST(ArenaTest, RandomPayloadsRoundTripInOrder) {
  uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 random(seed);
  ArenaFixture fixture = ArenaFixture::make(1 << 16);
  ArenaWriter writer = *ArenaWriter::join(fixture.segment.base(), fixture.offset);
  ArenaReader reader = *ArenaReader::join(fixture.segment.base(), fixture.offset);
  struct InFlight { uint64_t position, length; uint8_t fill; };
  std::deque<InFlight> in_flight;
  uint64_t written = 0, read = 0;
  while (read < 20000) {
    if (random() % 2 && written < 20000) {
      uint64_t length = 1 + random() % 9000;
      if (auto block = writer.reserve(length)) {
        uint8_t fill = uint8_t(written);
        std::memset(block->bytes.data(), fill, length);
        in_flight.push_back({block->position, length, fill});
        ++written;
      } else {
        ASSERT_FALSE(in_flight.empty()) << "arena refused with nothing in flight, seed " << seed;
      }
    } else if (!in_flight.empty()) {
      InFlight next = in_flight.front();
      in_flight.pop_front();
      std::span<const std::byte> payload = reader.read(next.position, next.length);
      ASSERT_EQ(payload.size(), next.length) << "seed " << seed;
      for (std::byte value : payload) ASSERT_EQ(uint8_t(value), next.fill) << "seed " << seed;
      reader.release(next.position, next.length);
      ++read;
    }
  }
}

}  // namespace
}  // namespace keel::shm
