// var_mc: compute type "var_mc", Monte-Carlo value at risk (VaR) and expected shortfall
// (ES) of a portfolio over a horizon, with a seeded generator implemented here so that
// the same input gives bit-identical output (for a given build: log, sqrt, sin, cos and
// exp are the C library's).
//
// Model: each position's value follows geometric Brownian motion, independently of the
// others (no correlation), over t = horizon_days / 252 years (trading days):
//   end_value = value * exp((drift - volatility^2 / 2) * t + volatility * sqrt(t) * Z),
// with Z ~ N(0, 1). A path's loss is the sum over positions of (value - end_value).
// With the losses of all paths in ascending order (1-based), k = ceil(confidence * paths):
//   value_at_risk      = the k-th loss
//   expected_shortfall = the mean of the k-th to the largest loss
// Both are losses in the positions' currency (positive = money lost).
//
// Generator: xoshiro256** seeded from `seed` through splitmix64; a uniform is the top
// 53 bits of one output; normals come in pairs from Box-Muller, drawn for path 0's
// positions in order, then path 1's, and so on.
//
// Input (little-endian, 32 + 24 * position_count bytes exactly):
//   offset 0   uint64  seed
//   offset 8   uint32  paths            1 .. 10,000,000
//   offset 12  uint32  horizon_days     1 .. 3650
//   offset 16  float64 confidence       0.9 <= confidence < 1 (0.99 = 99%)
//   offset 24  uint32  position_count   1 .. 256, and paths * position_count <= 100,000,000
//   offset 28  uint32  reserved         must be 0
//   offset 32  position_count records of 24 bytes:
//                +0  float64 value       current value, |value| <= 1e15 (negative: short)
//                +8  float64 drift       annual expected return, |drift| <= 5 (0.05 = 5%)
//                +16 float64 volatility  annual volatility, 0 <= volatility <= 5 (0.2 = 20%)
// Output (little-endian, 16 bytes):
//   +0 float64 value_at_risk
//   +8 float64 expected_shortfall
//
// BAD_INPUT when the length is wrong, the reserved field is not 0, or any field is
// outside its range (NaN included); FAILED when the tail buffer (8 bytes per tail path,
// at most 8 MB) cannot be allocated; OUTPUT_TOO_SMALL below 16 bytes. Takes no config.
#include <keel/plugin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <functional>
#include <new>
#include <numbers>
#include <vector>

namespace {

constexpr size_t header_bytes = 32;
constexpr size_t position_bytes = 24;
constexpr size_t result_bytes = 16;
constexpr uint32_t paths_max = 10'000'000;
constexpr uint32_t horizon_days_max = 3650;
constexpr uint32_t position_count_max = 256;
constexpr uint64_t path_positions_max = 100'000'000;  // bounds one task's work (~2 s)
constexpr double trading_days_per_year = 252.0;
constexpr double value_abs_max = 1e15, drift_abs_max = 5.0, volatility_max = 5.0;
constexpr double confidence_min = 0.9;

const char* const compute_types[] = {"var_mc"};

uint32_t load_u32_le(const uint8_t* bytes) {
  return uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 | uint32_t(bytes[2]) << 16 | uint32_t(bytes[3]) << 24;
}

uint64_t load_u64_le(const uint8_t* bytes) { return uint64_t(load_u32_le(bytes)) | uint64_t(load_u32_le(bytes + 4)) << 32; }

double load_f64_le(const uint8_t* bytes) { return std::bit_cast<double>(load_u64_le(bytes)); }

void store_f64_le(uint8_t* bytes, double value) {
  uint64_t bits = std::bit_cast<uint64_t>(value);
  for (int index = 0; index < 8; ++index) bytes[index] = uint8_t(bits >> (8 * index));
}

// splitmix64 (Steele, Lea, Flood 2014): expands one 64-bit seed into xoshiro's state.
uint64_t splitmix64_next(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman, Vigna 2018) with Box-Muller normals.
class NormalGenerator {
 public:
  explicit NormalGenerator(uint64_t seed) {
    for (uint64_t& word : state_) word = splitmix64_next(&seed);
  }

  double next_normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1).
    double u1 = double((next_u64() >> 11) + 1) * 0x1.0p-53;
    double u2 = double(next_u64() >> 11) * 0x1.0p-53;
    double radius = std::sqrt(-2.0 * std::log(u1));
    double angle = 2.0 * std::numbers::pi * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  uint64_t next_u64() {
    uint64_t result = std::rotl(state_[1] * 5, 7) * 9;
    uint64_t shifted = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= shifted;
    state_[3] = std::rotl(state_[3], 45);
    return result;
  }

  uint64_t state_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// One position, reduced to end_value = value * exp(log_drift + log_scale * Z).
struct Position {
  double value, log_drift, log_scale;
};

struct Simulation {
  uint64_t seed;
  uint32_t paths;
  uint32_t tail_paths;  // paths - k + 1: the losses the ES averages
  std::vector<Position> positions;
};

bool in_range(double value, double low, double high) { return value >= low && value <= high; }  // false for NaN

// Reads and checks the input; false for anything malformed.
bool parse_simulation(const uint8_t* input, size_t input_bytes, Simulation* simulation) {
  if (input == nullptr || input_bytes < header_bytes) return false;
  simulation->seed = load_u64_le(input);
  simulation->paths = load_u32_le(input + 8);
  uint32_t horizon_days = load_u32_le(input + 12);
  double confidence = load_f64_le(input + 16);
  uint32_t position_count = load_u32_le(input + 24);
  if (simulation->paths < 1 || simulation->paths > paths_max) return false;
  if (horizon_days < 1 || horizon_days > horizon_days_max) return false;
  if (!(confidence >= confidence_min && confidence < 1.0)) return false;
  if (position_count < 1 || position_count > position_count_max || load_u32_le(input + 28) != 0) return false;
  if (uint64_t(simulation->paths) * position_count > path_positions_max) return false;
  if (input_bytes != header_bytes + size_t(position_count) * position_bytes) return false;
  double years = double(horizon_days) / trading_days_per_year;
  simulation->positions.resize(position_count);
  for (uint32_t index = 0; index < position_count; ++index) {
    const uint8_t* record = input + header_bytes + size_t(index) * position_bytes;
    double value = load_f64_le(record), drift = load_f64_le(record + 8), volatility = load_f64_le(record + 16);
    if (!in_range(value, -value_abs_max, value_abs_max) || !in_range(drift, -drift_abs_max, drift_abs_max) ||
        !in_range(volatility, 0.0, volatility_max)) {
      return false;
    }
    simulation->positions[index] = {value, (drift - volatility * volatility / 2) * years, volatility * std::sqrt(years)};
  }
  uint64_t k = uint64_t(std::ceil(confidence * double(simulation->paths)));
  k = std::clamp<uint64_t>(k, 1, simulation->paths);
  simulation->tail_paths = uint32_t(simulation->paths - k + 1);
  return true;
}

// Simulates every path, keeping the tail_paths largest losses in a min-heap (so memory
// is the tail, not all paths), and writes VaR (the smallest kept loss) and ES.
void simulate(const Simulation& simulation, std::vector<double>& tail, double* value_at_risk,
              double* expected_shortfall) {
  NormalGenerator generator(simulation.seed);
  std::greater<double> min_heap;
  for (uint32_t path = 0; path < simulation.paths; ++path) {
    double loss = 0;
    for (const Position& position : simulation.positions) {
      double end_value = position.value * std::exp(position.log_drift + position.log_scale * generator.next_normal());
      loss += position.value - end_value;
    }
    if (tail.size() < simulation.tail_paths) {
      tail.push_back(loss);
      std::push_heap(tail.begin(), tail.end(), min_heap);
    } else if (loss > tail.front()) {
      std::pop_heap(tail.begin(), tail.end(), min_heap);
      tail.back() = loss;
      std::push_heap(tail.begin(), tail.end(), min_heap);
    }
  }
  // Summed in ascending order, so the result does not depend on the heap's layout.
  std::sort_heap(tail.begin(), tail.end(), min_heap);  // descending
  double sum = 0;
  for (auto loss = tail.rbegin(); loss != tail.rend(); ++loss) sum += *loss;
  *value_at_risk = tail.back();
  *expected_shortfall = sum / double(tail.size());
}

int32_t var_mc_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) noexcept {
  if (config->count != 0) {
    std::snprintf(error, error_bytes, "unknown config key '%s' (var_mc takes no config)", config->entries[0].key);
    return KEEL_STATUS_BAD_INPUT;
  }
  *instance = nullptr;
  return KEEL_STATUS_OK;
}

int32_t var_mc_run(void*, uint32_t, const uint8_t* input, size_t input_bytes, uint8_t* output, size_t output_capacity,
                   size_t* output_bytes) noexcept {
  try {
    Simulation simulation;
    if (!parse_simulation(input, input_bytes, &simulation)) return KEEL_STATUS_BAD_INPUT;
    *output_bytes = result_bytes;
    if (output_capacity < result_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
    std::vector<double> tail;
    tail.reserve(simulation.tail_paths);
    double value_at_risk = 0, expected_shortfall = 0;
    simulate(simulation, tail, &value_at_risk, &expected_shortfall);
    store_f64_le(output, value_at_risk);
    store_f64_le(output + 8, expected_shortfall);
    return KEEL_STATUS_OK;
  } catch (const std::bad_alloc&) {
    return KEEL_STATUS_FAILED;  // transient: another attempt may find the memory
  }
}

const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "var_mc", compute_types, 1,
                                var_mc_init,             var_mc_run,          nullptr};

}  // namespace

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
