// engine/core/latency_histogram.h: a fixed-size log-linear histogram of nanosecond
// latencies (about 3% relative error), cheap enough to record every message.
//
//   LatencyHistogram histogram;
//   histogram.record(latency_ns);
//   uint64_t p99_ns = histogram.percentile(0.99);
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace keel::engine {

class LatencyHistogram {
 public:
  // 32 linear sub-buckets per power of two from 1 ns up to 2^40 ns (about 18 minutes).
  static constexpr uint32_t sub_bucket_bits = 5;
  static constexpr uint32_t sub_buckets = 1u << sub_bucket_bits;
  static constexpr uint32_t magnitudes = 41;

  void record(uint64_t value_ns) {
    ++counts_[bucket_of(value_ns)];
    ++count_;
    max_ns_ = std::max(max_ns_, value_ns);
  }

  void merge(const LatencyHistogram& other) {
    for (size_t index = 0; index < counts_.size(); ++index) counts_[index] += other.counts_[index];
    count_ += other.count_;
    max_ns_ = std::max(max_ns_, other.max_ns_);
  }

  uint64_t count() const { return count_; }
  uint64_t max_ns() const { return max_ns_; }

  // The smallest bucket bound below which `quantile` (0..1] of the values fall; 0 when empty.
  uint64_t percentile(double quantile) const {
    if (count_ == 0) return 0;
    uint64_t rank = std::max<uint64_t>(1, uint64_t(quantile * double(count_) + 0.5));
    uint64_t seen = 0;
    for (size_t index = 0; index < counts_.size(); ++index) {
      seen += counts_[index];
      if (seen >= rank) return std::min(upper_bound_of(index), max_ns_);
    }
    return max_ns_;
  }

 private:
  static size_t bucket_of(uint64_t value) {
    if (value < sub_buckets) return size_t(value);
    uint32_t magnitude = uint32_t(std::bit_width(value)) - sub_bucket_bits;  // >= 1
    if (magnitude >= magnitudes) return size_t(magnitudes) * sub_buckets - 1;
    uint64_t sub = (value >> (magnitude - 1)) - sub_buckets;  // 0..31
    return size_t(magnitude) * sub_buckets + size_t(sub);
  }
  static uint64_t upper_bound_of(size_t bucket) {
    uint64_t magnitude = bucket / sub_buckets, sub = bucket % sub_buckets;
    if (magnitude == 0) return sub;
    return ((sub_buckets + sub + 1) << (magnitude - 1)) - 1;
  }

  std::array<uint64_t, size_t(magnitudes) * sub_buckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ns_ = 0;
};

}  // namespace keel::engine
