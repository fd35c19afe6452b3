// Tests of engine/node/compute_inputs.h: every shipped plugin, loaded through the host's
// loader (engine/sched/plugin_library.h) as a worker pool loads it and initialised with
// its default config, runs the samples of its type to KEEL_STATUS_OK.
#include "engine/node/compute_inputs.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "engine/ledger/transaction.h"
#include "engine/sched/plugin_library.h"

namespace keel::node {
namespace {

struct ShippedType {
  const char* type;
  const char* plugin_path;
};

const ShippedType shipped_types[] = {{"hash", KEEL_PLUGIN_HASH},
                                     {"credit_score", KEEL_PLUGIN_CREDIT_SCORE},
                                     {"var_mc", KEEL_PLUGIN_VAR_MC},
                                     {"interest", KEEL_PLUGIN_INTEREST},
                                     {"noop", KEEL_PLUGIN_NOOP}};

// Seeds near zero (what a load client's counter starts at) and random ones, printed.
std::vector<uint64_t> seeds_to_try() {
  uint64_t base = std::random_device{}() | uint64_t(std::random_device{}()) << 32;
  std::printf("random seed base: %llu\n", (unsigned long long)base);
  std::vector<uint64_t> seeds;
  for (uint64_t seed = 0; seed < 100; ++seed) seeds.push_back(seed);
  for (uint64_t client = 0; client < 4; ++client) seeds.push_back(client << 32 | 7);
  std::mt19937_64 random(base);
  for (int index = 0; index < 200; ++index) seeds.push_back(random());
  seeds.push_back(~uint64_t(0));
  return seeds;
}

TEST(ComputeInputs, EveryShippedPluginAcceptsItsSamples) {
  std::vector<uint64_t> seeds = seeds_to_try();
  for (const ShippedType& shipped : shipped_types) {
    SCOPED_TRACE(shipped.type);
    Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(shipped.plugin_path);
    ASSERT_TRUE(library) << library.error().message;
    std::optional<uint32_t> type = (*library)->compute_type_index(shipped.type);
    ASSERT_TRUE(type.has_value());
    Result<sched::PluginInstance> instance = (*library)->init({});
    ASSERT_TRUE(instance) << instance.error().message;
    // The largest output a ledger compute result can carry (and a pool's default limit).
    std::vector<std::byte> output(ledger::compute_output_bytes_max);
    for (uint64_t seed : seeds) {
      std::vector<std::byte> input = sample_compute_input(shipped.type, seed);
      ASSERT_LE(input.size(), ledger::compute_input_bytes_max);
      size_t output_bytes = 0;
      ASSERT_EQ(instance->run(*type, input, output, &output_bytes), KEEL_STATUS_OK)
          << "seed " << seed << ", " << input.size() << " input bytes";
      EXPECT_LE(output_bytes, output.size());
    }
  }
}

TEST(ComputeInputs, SamplesAreDeterministicAndVary) {
  for (const char* type : {"hash", "credit_score", "var_mc", "interest", "noop", "someone_elses"}) {
    SCOPED_TRACE(type);
    EXPECT_EQ(sample_compute_input(type, 42), sample_compute_input(type, 42));
    EXPECT_NE(sample_compute_input(type, 42), sample_compute_input(type, 43));
  }
}

uint32_t read_u32(const std::vector<std::byte>& bytes, size_t offset) {
  uint32_t value = 0;
  for (int index = 3; index >= 0; --index) value = value << 8 | uint32_t(bytes.at(offset + index));
  return value;
}

// The bounds the header promises, which keep a load of samples cheap.
TEST(ComputeInputs, SamplesStayWithinTheirStatedSizes) {
  for (uint64_t seed : seeds_to_try()) {
    SCOPED_TRACE(seed);
    size_t document_bytes = sample_compute_input("hash", seed).size();
    EXPECT_GE(document_bytes, sample_hash_document_bytes_min);
    EXPECT_LE(document_bytes, sample_hash_document_bytes_max);
    std::vector<std::byte> applicants = sample_compute_input("credit_score", seed);
    EXPECT_GE(read_u32(applicants, 0), 1u);
    EXPECT_LE(read_u32(applicants, 0), sample_credit_score_applicants_max);
    std::vector<std::byte> simulation = sample_compute_input("var_mc", seed);
    EXPECT_LE(read_u32(simulation, 8), sample_var_mc_paths_max);  // paths
    EXPECT_LE(read_u32(simulation, 24), sample_var_mc_positions_max);
    std::vector<std::byte> accounts = sample_compute_input("interest", seed);
    EXPECT_GE(read_u32(accounts, 4), 1u);
    EXPECT_LE(read_u32(accounts, 4), sample_interest_accounts_max);
    EXPECT_EQ(sample_compute_input("noop", seed).size(), sample_noop_bytes);
    EXPECT_EQ(sample_compute_input("someone_elses", seed).size(), sample_unknown_bytes);
  }
}

}  // namespace
}  // namespace keel::node
