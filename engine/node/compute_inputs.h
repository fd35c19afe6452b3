// engine/node/compute_inputs.h: small, valid inputs for the compute types of the shipped
// plugins, made from a seed — what the load generator and the benchmarks put in the
// compute_requests they submit.
//
//   uint64_t seed = uint64_t(client_index) << 32 | request_counter;
//   std::vector<std::byte> input = sample_compute_input("var_mc", seed);
//   ledger::encode_compute_request(nonce, subject, "var_mc", input);
//
// Each input follows its plugin's format (plugins/README.md) and is cheap to run, so a
// load made of them measures keel rather than the plugins. The same type and seed always
// give the same bytes, on any host (fields are written little-endian byte by byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace keel::node {

// Bounds of the samples, so that a test (and a reader estimating a load) can rely on them.
inline constexpr size_t sample_hash_document_bytes_min = 64;
inline constexpr size_t sample_hash_document_bytes_max = 512;
inline constexpr uint32_t sample_credit_score_applicants_max = 4;
inline constexpr uint32_t sample_var_mc_paths_max = 1000;
inline constexpr uint32_t sample_var_mc_positions_max = 4;
inline constexpr uint32_t sample_interest_accounts_max = 8;
inline constexpr size_t sample_noop_bytes = 8;
inline constexpr size_t sample_unknown_bytes = 16;

// An input for one task of compute type `type`, deterministic in (type, seed):
//   hash          a document of 64..512 bytes
//   credit_score  1..4 applicants with plausible, finite features
//   var_mc        100..1000 paths over 1..4 positions, 1..20 days, 95% or 99% confidence
//   interest      1..8 accounts, 1..365 days, rates from -1% to 15%
//   noop          8 bytes (its maximum)
//   anything else 16 bytes (a type keel ships no plugin for: its format is unknown)
// Every sample is at most ledger::compute_input_bytes_max bytes, and each shipped plugin
// (with its default config) runs its type's sample to KEEL_STATUS_OK with an output of at
// most ledger::compute_output_bytes_max bytes.
std::vector<std::byte> sample_compute_input(std::string_view type, uint64_t seed);

}  // namespace keel::node
