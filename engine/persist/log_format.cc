#include "engine/persist/log_format.h"

#include <cassert>
#include <cstdio>
#include <cstring>

#include "engine/persist/crc32c.h"

namespace keel::persist {

namespace {

constexpr std::string_view segment_prefix = "log-";
constexpr std::string_view segment_suffix = ".klog";
constexpr size_t sequence_digits = 20;

template <class T>
T load(const std::byte* from) {
  T value;
  std::memcpy(&value, from, sizeof value);
  return value;
}

template <class T>
void store(std::byte* to, T value) {
  std::memcpy(to, &value, sizeof value);
}

}  // namespace

std::string identity_problem(const LogIdentity& identity) {
  if (identity.chain.empty()) return "chain name is empty";
  if (identity.chain.size() > chain_name_bytes_max) {
    return "chain name has " + std::to_string(identity.chain.size()) + " bytes, at most " +
           std::to_string(chain_name_bytes_max) + " fit a segment header";
  }
  if (identity.shard_count == 0) return "shard count is 0";
  if (identity.shard >= identity.shard_count) {
    return "shard " + std::to_string(identity.shard) + " is not below the shard count " +
           std::to_string(identity.shard_count);
  }
  return "";
}

void encode_segment_header(const LogIdentity& identity, std::span<std::byte> out) {
  assert(out.size() == segment_header_payload_bytes(identity));
  store<uint32_t>(out.data() + 0, log_format_version);
  store<uint32_t>(out.data() + 4, identity.shard);
  store<uint32_t>(out.data() + 8, identity.shard_count);
  store<uint16_t>(out.data() + 12, uint16_t(identity.chain.size()));
  std::memcpy(out.data() + segment_header_fixed_bytes, identity.chain.data(), identity.chain.size());
}

std::optional<SegmentHeaderFields> decode_segment_header(std::span<const std::byte> payload) {
  if (payload.size() < segment_header_fixed_bytes) return std::nullopt;
  SegmentHeaderFields fields;
  fields.format_version = load<uint32_t>(payload.data() + 0);
  fields.identity.shard = load<uint32_t>(payload.data() + 4);
  fields.identity.shard_count = load<uint32_t>(payload.data() + 8);
  size_t chain_bytes = load<uint16_t>(payload.data() + 12);
  if (payload.size() != segment_header_fixed_bytes + chain_bytes) return std::nullopt;
  fields.identity.chain.assign(reinterpret_cast<const char*>(payload.data()) + segment_header_fixed_bytes,
                               chain_bytes);
  return fields;
}

uint32_t record_checksum(const RecordHeader& header, std::span<const std::byte> payload) {
  RecordHeader zeroed = header;
  zeroed.checksum = 0;
  uint32_t crc = crc32c(std::as_bytes(std::span(&zeroed, 1)));
  return crc32c_extend(crc, payload);
}

uint32_t record_checksum_from_payload_crc(const RecordHeader& header, uint32_t payload_crc) {
  RecordHeader zeroed = header;
  zeroed.checksum = 0;
  uint32_t crc = crc32c(std::as_bytes(std::span(&zeroed, 1)));
  return crc32c_combine(crc, payload_crc, header.payload_bytes);
}

std::string segment_file_name(uint64_t first_sequence) {
  char name[64];
  std::snprintf(name, sizeof name, "log-%020llu.klog", (unsigned long long)first_sequence);
  return name;
}

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
  if (name.size() != segment_prefix.size() + sequence_digits + segment_suffix.size()) return std::nullopt;
  if (!name.starts_with(segment_prefix) || !name.ends_with(segment_suffix)) return std::nullopt;
  std::string_view digits = name.substr(segment_prefix.size(), sequence_digits);
  uint64_t value = 0;
  for (char digit : digits) {
    if (digit < '0' || digit > '9') return std::nullopt;
    if (__builtin_mul_overflow(value, 10, &value)) return std::nullopt;
    if (__builtin_add_overflow(value, uint64_t(digit - '0'), &value)) return std::nullopt;
  }
  return value;
}

}  // namespace keel::persist
