#include "engine/ledger/small_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

namespace keel::ledger {
namespace {

std::vector<std::byte> bytes_counting(size_t count, uint8_t first) {
  std::vector<std::byte> out(count);
  for (size_t index = 0; index < count; ++index) out[index] = std::byte(uint8_t(first + index));
  return out;
}

TEST(SmallBytes, KeepsShortValuesInlineAndLongOnesOnTheHeap) {
  SmallBytes<8> small(bytes_counting(8, 1));
  EXPECT_FALSE(small.on_heap());
  EXPECT_GE(reinterpret_cast<const void*>(small.data()), reinterpret_cast<const void*>(&small));
  EXPECT_LT(reinterpret_cast<const void*>(small.data()), reinterpret_cast<const void*>(&small + 1));
  SmallBytes<8> big(bytes_counting(9, 1));
  EXPECT_TRUE(big.on_heap());
  EXPECT_EQ(big, SmallBytes<8>(bytes_counting(9, 1)));
  EXPECT_NE(big, small);
}

TEST(SmallBytes, CopiesAndMovesKeepTheBytesWhereverTheyLive) {
  for (size_t count : {0, 5, 8, 9, 100}) {
    SmallBytes<8> original(bytes_counting(count, 7));
    SmallBytes<8> copy = original;
    EXPECT_EQ(copy, original) << count;
    SmallBytes<8> moved = std::move(copy);
    EXPECT_EQ(moved, original) << count;
    EXPECT_EQ(std::vector<std::byte>(moved.begin(), moved.end()), bytes_counting(count, 7)) << count;
  }
}

// Random assigns, appends, resizes and clears across the inline bound, against a vector.
TEST(SmallBytes, AgreesWithAVectorUnderRandomChanges) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  SmallBytes<16> bytes;
  std::vector<std::byte> model;
  for (int step = 0; step < 20000; ++step) {
    size_t count = random() % 40;
    uint8_t first = uint8_t(random());
    switch (random() % 4) {
      case 0:
        bytes.assign(bytes_counting(count, first));
        model = bytes_counting(count, first);
        break;
      case 1: {
        std::vector<std::byte> more = bytes_counting(count % 20, first);
        bytes.append(more);
        model.insert(model.end(), more.begin(), more.end());
        break;
      }
      case 2: {
        size_t kept = std::min(count, model.size());
        bytes.resize(count);
        model.resize(count);
        // The first `kept` bytes must survive; the new ones are unspecified: written so
        // both agree.
        for (size_t index = kept; index < count; ++index) bytes.data()[index] = model[index];
        break;
      }
      default:
        bytes.clear(random() % 2 ? 0 : SIZE_MAX);
        model.clear();
    }
    ASSERT_EQ(bytes.size(), model.size()) << "seed " << seed << " step " << step;
    ASSERT_EQ(bytes.on_heap(), model.size() > 16) << "seed " << seed << " step " << step;
    ASSERT_EQ(std::vector<std::byte>(bytes.begin(), bytes.end()), model) << "seed " << seed << " step " << step;
  }
}

}  // namespace
}  // namespace keel::ledger
