#include "engine/persist/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace keel::persist {

namespace {

// The reflected Castagnoli polynomial 0x1EDC6F41.
constexpr uint32_t castagnoli_reflected = 0x82F63B78u;

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

bool detect_hardware() {
#if defined(__x86_64__)
  // Needed when called during static initialisation, before the runtime has done it.
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

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
__attribute__((target("sse4.2"))) uint32_t crc32c_extend_hardware(uint32_t crc,
                                                                  std::span<const std::byte> bytes) {
  // One dependent chain of 8-byte steps: simple, and fast enough that the checksum stays
  // a few percent of the time a commit spends writing (8 GB/s against 0.3 GB/s of disk).
  uint64_t state = ~crc;
  const std::byte* next = bytes.data();
  size_t left = bytes.size();
  for (; left >= 8; left -= 8, next += 8) {
    uint64_t word;
    std::memcpy(&word, next, 8);
    state = _mm_crc32_u64(state, word);
  }
  uint32_t state32 = uint32_t(state);
  for (; left > 0; --left, ++next) state32 = _mm_crc32_u8(state32, uint8_t(*next));
  return ~state32;
}
#else
uint32_t crc32c_extend_hardware(uint32_t crc, std::span<const std::byte> bytes) {
  return crc32c_extend_table(crc, bytes);
}
#endif

uint32_t crc32c_extend(uint32_t crc, std::span<const std::byte> bytes) {
  return crc32c_hardware_available() ? crc32c_extend_hardware(crc, bytes) : crc32c_extend_table(crc, bytes);
}

}  // namespace keel::persist
