// Tests for engine/core/latency_histogram.h: percentiles within the bucket error on known
// and random distributions, exact maximum, merge, and the empty histogram.
#include "engine/core/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace keel::engine {
namespace {

// 32 sub-buckets per power of two: a bucket is at most 1/32 of its lower bound wide.
constexpr double relative_error_max = 1.0 / 32 + 1e-9;

constexpr double quantiles[] = {0.0001, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0};

// The value of rank round(quantile × count) (at least 1) in sorted values, the rank
// percentile() looks for.
uint64_t exact_percentile(const std::vector<uint64_t>& sorted, double quantile) {
  uint64_t rank = std::max<uint64_t>(1, uint64_t(quantile * double(sorted.size()) + 0.5));
  return sorted[rank - 1];
}

// The histogram's answer is never below the true value and at most one bucket above it.
void expect_close_to(const LatencyHistogram& histogram, const std::vector<uint64_t>& sorted) {
  for (double quantile : quantiles) {
    uint64_t exact = exact_percentile(sorted, quantile);
    uint64_t reported = histogram.percentile(quantile);
    SCOPED_TRACE("quantile " + std::to_string(quantile) + ": exact " + std::to_string(exact) + ", reported " +
                 std::to_string(reported));
    EXPECT_GE(reported, exact);
    EXPECT_LE(double(reported - exact), relative_error_max * double(exact));
  }
}

TEST(LatencyHistogram, UniformOneToAMillion) {
  LatencyHistogram histogram;
  std::vector<uint64_t> values;
  for (uint64_t value = 1; value <= 1'000'000; ++value) values.push_back(value);
  for (uint64_t value : values) histogram.record(value);
  EXPECT_EQ(histogram.count(), 1'000'000u);
  EXPECT_EQ(histogram.max_ns(), 1'000'000u);
  expect_close_to(histogram, values);
  EXPECT_EQ(histogram.percentile(1.0), 1'000'000u);
}

TEST(LatencyHistogram, RandomLogUniformValuesStayWithinBucketError) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> exponent(0.0, 40.0);  // 1 ns .. 2^40 ns
  LatencyHistogram histogram;
  std::vector<uint64_t> values;
  for (int index = 0; index < 200'000; ++index) values.push_back(uint64_t(std::exp2(exponent(random))));
  for (uint64_t value : values) histogram.record(value);
  std::sort(values.begin(), values.end());
  expect_close_to(histogram, values);
  EXPECT_EQ(histogram.max_ns(), values.back());
}

TEST(LatencyHistogram, ConstantIsReportedExactly) {
  for (uint64_t constant : {uint64_t(0), uint64_t(7), uint64_t(31), uint64_t(32), uint64_t(12'345), uint64_t(987'654'321)}) {
    SCOPED_TRACE("constant " + std::to_string(constant));
    LatencyHistogram histogram;
    for (int index = 0; index < 1000; ++index) histogram.record(constant);
    for (double quantile : quantiles) EXPECT_EQ(histogram.percentile(quantile), constant);
    EXPECT_EQ(histogram.max_ns(), constant);
  }
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram histogram;
  for (uint64_t value = 0; value < 32; ++value) histogram.record(value);
  EXPECT_EQ(histogram.percentile(0.5), 15u);  // rank 16 of 0..31
  EXPECT_EQ(histogram.percentile(1.0 / 32), 0u);
  EXPECT_EQ(histogram.percentile(1.0), 31u);
}

TEST(LatencyHistogram, MaxIsExactNotABucketBound) {
  LatencyHistogram histogram;
  histogram.record(100);
  histogram.record(1'000'003);
  histogram.record(5000);
  EXPECT_EQ(histogram.max_ns(), 1'000'003u);
  EXPECT_EQ(histogram.percentile(1.0), 1'000'003u);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<uint64_t> first_values(1, 10'000), second_values(5'000, 50'000'000);
  LatencyHistogram first, second, together;
  for (int index = 0; index < 10'000; ++index) {
    uint64_t value = first_values(random);
    first.record(value);
    together.record(value);
  }
  for (int index = 0; index < 3'000; ++index) {
    uint64_t value = second_values(random);
    second.record(value);
    together.record(value);
  }
  first.merge(second);
  EXPECT_EQ(first.count(), together.count());
  EXPECT_EQ(first.max_ns(), together.max_ns());
  for (double quantile : quantiles) EXPECT_EQ(first.percentile(quantile), together.percentile(quantile)) << quantile;
}

TEST(LatencyHistogram, MergingAnEmptyHistogramChangesNothing) {
  LatencyHistogram histogram, empty;
  histogram.record(777);
  histogram.merge(empty);
  EXPECT_EQ(histogram.count(), 1u);
  EXPECT_EQ(histogram.max_ns(), 777u);
  EXPECT_EQ(histogram.percentile(0.5), 777u);
}

TEST(LatencyHistogram, EmptyReportsZero) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.max_ns(), 0u);
  for (double quantile : quantiles) EXPECT_EQ(histogram.percentile(quantile), 0u);
}

}  // namespace
}  // namespace keel::engine
