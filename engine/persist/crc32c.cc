#include "engine/persist/crc32c.h"

#include <array>
#include <cassert>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>
#endif

namespace keel::persist {

namespace {

// The reflected Castagnoli polynomial 0x1EDC6F41. In the reflected representation bit 31
// of a value is the coefficient of x^0 and bit 0 that of x^31.
constexpr uint32_t castagnoli_reflected = 0x82F63B78u;
constexpr uint32_t x_to_the_0 = 1u << 31;

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t index = 0; index < 256; ++index) {
    uint32_t value = index;
    for (int bit = 0; bit < 8; ++bit) value = (value >> 1) ^ (castagnoli_reflected & (0u - (value & 1)));
    table[index] = value;
  }
  return table;
}

constexpr std::array<uint32_t, 256> crc_table = make_table();

// a * b modulo the polynomial, bit by bit (as zlib's multmodp).
constexpr uint32_t multiply_modulo(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t mask = x_to_the_0; mask != 0; mask >>= 1) {
    if ((a & mask) != 0) product ^= b;
    b = (b & 1) != 0 ? (b >> 1) ^ castagnoli_reflected : b >> 1;
  }
  return product;
}

// x^(2^k) modulo the polynomial, k = 0..63.
constexpr std::array<uint32_t, 64> make_x_to_the_power_of_two() {
  std::array<uint32_t, 64> table{};
  uint32_t value = x_to_the_0 >> 1;  // x^1
  for (uint32_t& entry : table) {
    entry = value;
    value = multiply_modulo(value, value);
  }
  return table;
}

constexpr std::array<uint32_t, 64> x_to_the_power_of_two = make_x_to_the_power_of_two();

// x^exponent modulo the polynomial.
constexpr uint32_t x_to_the(uint64_t exponent) {
  uint32_t value = x_to_the_0;
  for (uint32_t bit = 0; exponent != 0; ++bit, exponent >>= 1) {
    if ((exponent & 1) != 0) value = multiply_modulo(x_to_the_power_of_two[bit], value);
  }
  return value;
}

// The carry-less multiply below returns a * b * x^32, so the constants it multiplies by
// carry x^-32 in advance: entry k is x^(8 * 2^k - 32), a shift by 2^k bytes (k >= 2; byte
// counts stay below 2^56).
constexpr uint32_t shift_table_entries = 56;
constexpr std::array<uint32_t, shift_table_entries> make_shift_table() {
  std::array<uint32_t, shift_table_entries> table{};
  for (uint32_t k = 2; k < shift_table_entries; ++k) table[k] = x_to_the((uint64_t(8) << k) - 32);
  return table;
}

constexpr std::array<uint32_t, shift_table_entries> shift_table = make_shift_table();

bool detect_hardware() {
#if defined(__x86_64__)
  // Needed when called during static initialisation, before the runtime has done it.
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

bool detect_carryless_multiply() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
#else
  return false;
#endif
}

bool carryless_multiply_available() {
  static const bool available = detect_carryless_multiply();
  return available;
}

// A CRC value (or raw state) times x^(8 * bytes): the effect of `bytes` zero bytes.
uint32_t shift_table_version(uint32_t crc, uint64_t bytes) {
  return multiply_modulo(x_to_the(bytes * 8), crc);
}

#if defined(__x86_64__)
// a * b * x^32 modulo the polynomial: the 63-bit carry-less product, moved up one bit so
// that it reads as a reflected 64-bit value, is reduced by the crc32 instruction (which
// multiplies by x^32 on the way).
__attribute__((target("sse4.2,pclmul"))) inline uint32_t multiply_shifted(uint32_t a, uint32_t b) {
  __m128i product = _mm_clmulepi64_si128(_mm_cvtsi32_si128(int(a)), _mm_cvtsi32_si128(int(b)), 0);
  return uint32_t(_mm_crc32_u64(0, uint64_t(_mm_cvtsi128_si64(product)) << 1));
}

// x^(8 * bytes - 32) for bytes a positive multiple of 4: the constant multiply_shifted
// needs to shift by `bytes`.
__attribute__((target("sse4.2,pclmul"))) uint32_t shift_constant(uint64_t bytes) {
  assert(bytes >= 4 && bytes % 4 == 0 && bytes < (uint64_t(1) << shift_table_entries));
  uint32_t constant = 0;
  bool first = true;
  for (uint32_t k = 2; (bytes >> k) != 0; ++k) {
    if (((bytes >> k) & 1) == 0) continue;
    // x^(a - 32) * x^(b - 32) * x^32 = x^(a + b - 32): products stay in the same form.
    constant = first ? shift_table[k] : multiply_shifted(constant, shift_table[k]);
    first = false;
  }
  return constant;
}

__attribute__((target("sse4.2,pclmul"))) uint32_t shift_hardware_version(uint32_t crc, uint64_t bytes) {
  for (; bytes % 4 != 0; --bytes) crc = _mm_crc32_u8(crc, 0);  // one zero byte: times x^8
  if (bytes == 0) return crc;
  return multiply_shifted(crc, shift_constant(bytes));
}

// Below this, three streams gain less than joining them costs.
constexpr size_t streams_bytes_min = 256;

// The SSE4.2 loop. Long inputs run as three streams over consecutive thirds, whose states
// are joined by multiplying.
__attribute__((target("sse4.2,pclmul"))) uint32_t crc32c_hardware_loop(uint32_t crc, const std::byte* from,
                                                                       size_t left) {
  uint64_t state = uint32_t(~crc);
  if (left >= streams_bytes_min && carryless_multiply_available()) {
    size_t block = left / 24 * 8;
    uint64_t state_b = 0, state_c = 0;
    for (size_t offset = 0; offset < block; offset += 8) {
      uint64_t word_a, word_b, word_c;
      std::memcpy(&word_a, from + offset, 8);
      std::memcpy(&word_b, from + block + offset, 8);
      std::memcpy(&word_c, from + 2 * block + offset, 8);
      state = _mm_crc32_u64(state, word_a);
      state_b = _mm_crc32_u64(state_b, word_b);
      state_c = _mm_crc32_u64(state_c, word_c);
    }
    // The raw state is linear: state(A + B) = state(A) * x^(8 |B|) + state_from_0(B).
    uint32_t constant = shift_constant(block);
    state = multiply_shifted(multiply_shifted(uint32_t(state), constant) ^ uint32_t(state_b), constant) ^
            uint32_t(state_c);
    from += 3 * block;
    left -= 3 * block;
  }
  for (; left >= 8; left -= 8, from += 8) {
    uint64_t word;
    std::memcpy(&word, from, 8);
    state = _mm_crc32_u64(state, word);
  }
  uint32_t state32 = uint32_t(state);
  for (; left > 0; --left, ++from) state32 = _mm_crc32_u8(state32, uint8_t(*from));
  return ~state32;
}
#endif

}  // namespace

bool crc32c_hardware_available() {
  // A function-local static: safe to call from other files' static initialisers.
  static const bool available = detect_hardware();
  return available;
}

uint32_t crc32c_extend_table(uint32_t crc, std::span<const std::byte> bytes) {
  uint32_t state = ~crc;
  for (std::byte byte : bytes) state = (state >> 8) ^ crc_table[(state ^ uint32_t(byte)) & 0xFF];
  return ~state;
}

#if defined(__x86_64__)
uint32_t crc32c_extend_hardware(uint32_t crc, std::span<const std::byte> bytes) {
  return crc32c_hardware_loop(crc, bytes.data(), bytes.size());
}
#else
uint32_t crc32c_extend_hardware(uint32_t crc, std::span<const std::byte> bytes) {
  return crc32c_extend_table(crc, bytes);
}
#endif

uint32_t crc32c_extend(uint32_t crc, std::span<const std::byte> bytes) {
  return crc32c_hardware_available() ? crc32c_extend_hardware(crc, bytes) : crc32c_extend_table(crc, bytes);
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t bytes_b) {
  // crc32c_extend(crc_a, B) = crc_a * x^(8 |B|) + crc32c(B): the pre- and post-inversions
  // cancel out.
#if defined(__x86_64__)
  if (carryless_multiply_available()) return shift_hardware_version(crc_a, bytes_b) ^ crc_b;
#endif
  return shift_table_version(crc_a, bytes_b) ^ crc_b;
}

}  // namespace keel::persist
