// engine/persist/crc32c.h: CRC32C (Castagnoli), the checksum of every log record and
// snapshot file.
//
//   uint32_t checksum = crc32c(bytes);                   // a whole buffer
//   uint32_t running = crc32c(header_bytes);             // or piece by piece:
//   running = crc32c_extend(running, payload_bytes);     // == crc32c(header + payload)
//   crc32c_combine(crc32c(header_bytes), crc32c(payload_bytes), payload_bytes.size())
//                                                        // == crc32c(header + payload)
//
// Uses the SSE4.2 crc32 instruction when the CPU has it and a table otherwise; both give
// the same values (crc32c("123456789") == 0xE3069283, RFC 3720 appendix B.4). With
// PCLMULQDQ as well, long inputs run as three interleaved streams joined by
// crc32c_combine (the crc32 instruction takes 3 cycles but issues every cycle), and
// crc32c_combine costs a few carry-less multiplies instead of a 32-step loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace keel::persist {

// Continues a CRC32C: `crc` is the value of the bytes before `bytes` (0 for none).
// Picks the hardware or the table version once, at start-up.
uint32_t crc32c_extend(uint32_t crc, std::span<const std::byte> bytes);

// CRC32C of `bytes`.
inline uint32_t crc32c(std::span<const std::byte> bytes) { return crc32c_extend(0, bytes); }

// The CRC32C of A followed by B, from crc32c(A), crc32c(B) and B's length: CRC32C is
// affine in its input, so A's value only needs multiplying by x^(8 * bytes_b) modulo the
// polynomial. O(log bytes_b) multiplies.
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t bytes_b);

// The byte-at-a-time table version, on any CPU (about 0.5 GB/s: a fallback, not a path
// keel expects to run).
uint32_t crc32c_extend_table(uint32_t crc, std::span<const std::byte> bytes);

// The SSE4.2 version (one crc32 instruction per 8 bytes; about 8 GB/s in one stream,
// about 3 times that in three when PCLMULQDQ is there too). Only call it when
// crc32c_hardware_available() says so.
uint32_t crc32c_extend_hardware(uint32_t crc, std::span<const std::byte> bytes);

// True when this CPU has the SSE4.2 crc32 instruction.
bool crc32c_hardware_available();

}  // namespace keel::persist
