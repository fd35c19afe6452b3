#include "engine/node/compute_inputs.h"

#include <bit>
#include <cassert>

#include "engine/ledger/transaction.h"

namespace keel::node {

namespace {

// splitmix64: a seed gives a well-mixed stream, so neighbouring seeds (counter + 1) give
// unrelated inputs.
class SampleRandom {
 public:
  explicit SampleRandom(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [low, high] (inclusive); high - low is small, so the modulo bias is nil.
  uint64_t between(uint64_t low, uint64_t high) { return low + next() % (high - low + 1); }
  // Uniform in [low, high): the top 53 bits as a fraction.
  double uniform(double low, double high) { return low + (high - low) * double(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// Appends little-endian fields byte by byte, so the sample is the same on any host.
class SampleWriter {
 public:
  SampleWriter& u32(uint32_t value) { return append(value, 4); }
  SampleWriter& i32(int32_t value) { return append(uint32_t(value), 4); }
  SampleWriter& u64(uint64_t value) { return append(value, 8); }
  SampleWriter& i64(int64_t value) { return append(uint64_t(value), 8); }
  SampleWriter& f64(double value) { return append(std::bit_cast<uint64_t>(value), 8); }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  SampleWriter& append(uint64_t value, int width) {
    for (int index = 0; index < width; ++index) bytes_.push_back(std::byte(value >> (8 * index)));
    return *this;
  }
  std::vector<std::byte> bytes_;
};

std::vector<std::byte> random_bytes(SampleRandom& random, size_t count) {
  std::vector<std::byte> bytes(count);
  for (std::byte& byte : bytes) byte = std::byte(random.next());
  return bytes;
}

// plugins/credit_score: uint32 count, uint32 reserved, then six float64 features each.
std::vector<std::byte> credit_score_input(SampleRandom& random) {
  uint32_t applicants = uint32_t(random.between(1, sample_credit_score_applicants_max));
  SampleWriter writer;
  writer.u32(applicants).u32(0);
  for (uint32_t applicant = 0; applicant < applicants; ++applicant) {
    writer.f64(random.uniform(0.05, 0.6))          // debt to income
        .f64(random.uniform(0.0, 1.0))             // credit utilization
        .f64(double(random.between(0, 30)))        // years of credit history
        .f64(double(random.between(0, 3)))         // delinquencies, last 24 months
        .f64(double(random.between(0, 6)))         // hard inquiries, last 12 months
        .f64(random.uniform(4.3, 5.7));            // log10 of annual income (20k .. 500k)
  }
  return writer.take();
}

// plugins/var_mc: seed, paths, horizon, confidence, position count, reserved, then
// (value, drift, volatility) per position. At most 1000 paths of 4 positions: ~0.1 ms.
std::vector<std::byte> var_mc_input(SampleRandom& random) {
  uint32_t positions = uint32_t(random.between(1, sample_var_mc_positions_max));
  SampleWriter writer;
  writer.u64(random.next())
      .u32(uint32_t(random.between(100, sample_var_mc_paths_max)))
      .u32(uint32_t(random.between(1, 20)))
      .f64(random.next() % 2 == 0 ? 0.95 : 0.99)
      .u32(positions)
      .u32(0);
  for (uint32_t position = 0; position < positions; ++position) {
    double value = random.uniform(1e3, 1e6) * (random.next() % 8 == 0 ? -1.0 : 1.0);  // a few are short
    writer.f64(value).f64(random.uniform(-0.05, 0.15)).f64(random.uniform(0.05, 0.6));
  }
  return writer.take();
}

// plugins/interest: day count, account count, then (id, balance, rate_bp, reserved) per
// account: a run of consecutive account numbers, as a bank would accrue a range.
std::vector<std::byte> interest_input(SampleRandom& random) {
  uint32_t accounts = uint32_t(random.between(1, sample_interest_accounts_max));
  uint64_t first_account = random.between(1, 1'000'000'000);
  SampleWriter writer;
  writer.u32(uint32_t(random.between(1, 365))).u32(accounts);
  for (uint32_t account = 0; account < accounts; ++account) {
    int64_t balance = int64_t(random.between(0, 1'000'000'000)) - 1'000'000;  // minor units, some overdrawn
    writer.u64(first_account + account).i64(balance).i32(int32_t(random.between(0, 1600)) - 100).u32(0);
  }
  return writer.take();
}

}  // namespace

std::vector<std::byte> sample_compute_input(std::string_view type, uint64_t seed) {
  SampleRandom random(seed);
  std::vector<std::byte> input;
  if (type == "hash") {
    input = random_bytes(random, random.between(sample_hash_document_bytes_min, sample_hash_document_bytes_max));
  } else if (type == "credit_score") {
    input = credit_score_input(random);
  } else if (type == "var_mc") {
    input = var_mc_input(random);
  } else if (type == "interest") {
    input = interest_input(random);
  } else if (type == "noop") {
    input = random_bytes(random, sample_noop_bytes);
  } else {
    input = random_bytes(random, sample_unknown_bytes);
  }
  assert(input.size() <= ledger::compute_input_bytes_max);
  return input;
}

}  // namespace keel::node
