// credit_score: compute type "credit_score", logistic scoring of loan applicants.
//
// For each applicant, z = bias + sum(weights[i] * feature[i]) (summed in feature order),
// probability = 1 / (1 + exp(-z)), the modelled probability that the applicant repays,
// and score = score_min + floor(probability * (score_max - score_min) + 0.5).
//
// Input (little-endian, 8 + 48 * applicant_count bytes exactly):
//   offset 0  uint32 applicant_count
//   offset 4  uint32 reserved, must be 0
//   offset 8  applicant_count records of 6 IEEE-754 float64 features (48 bytes), in order:
//               0 debt_to_income        monthly debt payments / monthly income (0.35)
//               1 credit_utilization    revolving credit used / credit limit (0.30)
//               2 credit_history_years  years since the first credit line (8)
//               3 delinquencies_24m     payments 30+ days late in the last 24 months (0)
//               4 inquiries_12m         hard credit inquiries in the last 12 months (1)
//               5 income_log10          log10 of annual income (50,000 -> 4.699)
// Output (little-endian, 16 * applicant_count bytes), in input order:
//   +0 float64 probability   of repayment, in [0, 1]
//   +8 uint32  score         in [score_min, score_max]
//   +12 uint32 reserved      0
//
// Config ([pool.config]; every key optional, unknown keys fail init):
//   weights   = 6 numbers, an array or a comma-separated string
//               (default [-2.5, -1.8, 0.08, -0.9, -0.25, 0.6])
//   bias      = a number (default -0.5)
//   score_min = an integer (default 300), score_max = an integer (default 850),
//               0 <= score_min < score_max <= 100000
//
// BAD_INPUT when the length is not 8 + 48 * applicant_count, the reserved field is not
// 0, a feature is NaN or infinite, or an applicant's z is not finite. OUTPUT_TOO_SMALL
// below 16 * applicant_count bytes. Deterministic for a given build: the same input gives
// the same bits (exp is the C library's).
#include <keel/plugin.h>

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <new>
#include <string_view>

namespace {

constexpr size_t feature_count = 6;
constexpr size_t header_bytes = 8;
constexpr size_t applicant_bytes = feature_count * sizeof(double);
constexpr size_t result_bytes = 16;
constexpr uint32_t score_limit = 100000;

struct CreditModel {
  std::array<double, feature_count> weights{-2.5, -1.8, 0.08, -0.9, -0.25, 0.6};
  double bias = -0.5;
  uint32_t score_min = 300;
  uint32_t score_max = 850;
};

const char* const compute_types[] = {"credit_score"};

uint32_t load_u32_le(const uint8_t* bytes) {
  return uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 | uint32_t(bytes[2]) << 16 | uint32_t(bytes[3]) << 24;
}

uint64_t load_u64_le(const uint8_t* bytes) { return uint64_t(load_u32_le(bytes)) | uint64_t(load_u32_le(bytes + 4)) << 32; }

void store_u32_le(uint8_t* bytes, uint32_t value) {
  for (int index = 0; index < 4; ++index) bytes[index] = uint8_t(value >> (8 * index));
}

void store_u64_le(uint8_t* bytes, uint64_t value) {
  for (int index = 0; index < 8; ++index) bytes[index] = uint8_t(value >> (8 * index));
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// A finite number, the whole of `text` (surrounding blanks allowed). from_chars ignores
// the locale, unlike strtod.
bool parse_number(std::string_view text, double* value) {
  text = trimmed(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return !text.empty() && error == std::errc() && end == text.data() + text.size() && std::isfinite(*value);
}

bool parse_score_bound(std::string_view text, uint32_t* value) {
  text = trimmed(text);
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return !text.empty() && error == std::errc() && end == text.data() + text.size() && *value <= score_limit;
}

// Reads "w0,w1,...,w5" into weights; false (with a reason) unless exactly 6 finite numbers.
bool parse_weights(std::string_view text, std::array<double, feature_count>* weights, char* error, size_t error_bytes) {
  size_t count = 0;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    double weight = 0;
    if (!parse_number(item, &weight)) {
      std::snprintf(error, error_bytes, "weights: item %zu '%.*s' is not a finite number", count + 1, int(item.size()),
                    item.data());
      return false;
    }
    if (count < feature_count) (*weights)[count] = weight;
    ++count;
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (count != feature_count) {
    std::snprintf(error, error_bytes, "weights: expected %zu numbers, got %zu", feature_count, count);
    return false;
  }
  return true;
}

bool apply_config_entry(const keel_plugin_config_entry& entry, CreditModel* model, char* error, size_t error_bytes) {
  std::string_view key = entry.key;
  if (key == "weights") return parse_weights(entry.value, &model->weights, error, error_bytes);
  if (key == "bias") {
    if (parse_number(entry.value, &model->bias)) return true;
    std::snprintf(error, error_bytes, "bias: '%s' is not a finite number", entry.value);
    return false;
  }
  if (key == "score_min" || key == "score_max") {
    uint32_t* bound = key == "score_min" ? &model->score_min : &model->score_max;
    if (parse_score_bound(entry.value, bound)) return true;
    std::snprintf(error, error_bytes, "%s: '%s' is not an integer from 0 to %u", entry.key, entry.value, score_limit);
    return false;
  }
  std::snprintf(error, error_bytes, "unknown config key '%s' (credit_score takes weights, bias, score_min, score_max)",
                entry.key);
  return false;
}

int32_t credit_score_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) noexcept {
  CreditModel model;
  for (size_t index = 0; index < config->count; ++index) {
    if (!apply_config_entry(config->entries[index], &model, error, error_bytes)) return KEEL_STATUS_BAD_INPUT;
  }
  if (model.score_min >= model.score_max) {
    std::snprintf(error, error_bytes, "score_min (%u) must be below score_max (%u)", model.score_min, model.score_max);
    return KEEL_STATUS_BAD_INPUT;
  }
  CreditModel* kept = new (std::nothrow) CreditModel(model);
  if (kept == nullptr) {
    std::snprintf(error, error_bytes, "out of memory");
    return KEEL_STATUS_FAILED;
  }
  *instance = kept;
  return KEEL_STATUS_OK;
}

// The logistic function, evaluated so that exp never overflows.
double logistic(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  double e = std::exp(z);
  return e / (1.0 + e);
}

int32_t credit_score_run(void* instance, uint32_t, const uint8_t* input, size_t input_bytes, uint8_t* output,
                         size_t output_capacity, size_t* output_bytes) noexcept {
  const CreditModel& model = *static_cast<const CreditModel*>(instance);
  if (input == nullptr || input_bytes < header_bytes) return KEEL_STATUS_BAD_INPUT;
  uint32_t applicant_count = load_u32_le(input);
  if (load_u32_le(input + 4) != 0) return KEEL_STATUS_BAD_INPUT;
  if (input_bytes != header_bytes + size_t(applicant_count) * applicant_bytes) return KEEL_STATUS_BAD_INPUT;
  *output_bytes = size_t(applicant_count) * result_bytes;
  if (output_capacity < *output_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
  double score_range = double(model.score_max - model.score_min);
  for (size_t applicant = 0; applicant < applicant_count; ++applicant) {
    const uint8_t* features = input + header_bytes + applicant * applicant_bytes;
    double z = model.bias;
    for (size_t feature = 0; feature < feature_count; ++feature) {
      double value = std::bit_cast<double>(load_u64_le(features + feature * sizeof(double)));
      if (!std::isfinite(value)) return KEEL_STATUS_BAD_INPUT;
      z += model.weights[feature] * value;
    }
    if (!std::isfinite(z)) return KEEL_STATUS_BAD_INPUT;
    double probability = logistic(z);
    uint32_t score = model.score_min + uint32_t(std::floor(probability * score_range + 0.5));
    uint8_t* result = output + applicant * result_bytes;
    store_u64_le(result, std::bit_cast<uint64_t>(probability));
    store_u32_le(result + 8, score);
    store_u32_le(result + 12, 0);
  }
  return KEEL_STATUS_OK;
}

void credit_score_shutdown(void* instance) noexcept { delete static_cast<CreditModel*>(instance); }

const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "credit_score", compute_types, 1,
                                credit_score_init,       credit_score_run,    credit_score_shutdown};

}  // namespace

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
