// tests/plugins/loaded_plugin.h: a shipped plugin loaded and initialised through the
// host's loader (engine/sched/plugin_library.h), as a worker pool would, plus
// little-endian builders and readers for the plugins' binary formats.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/sched/plugin_library.h"

namespace keel::plugins {

struct RunOutcome {
  int32_t status = -1;
  std::vector<uint8_t> output;  // the bytes written (status OK) or empty
  size_t output_bytes = 0;      // as the plugin set it
};

class LoadedPlugin {
 public:
  // Loads `path`, checks it serves `type`, and inits it with `config`; failures are
  // test failures (see ok()).
  LoadedPlugin(const std::string& path, const std::string& type,
               const std::vector<std::pair<std::string, std::string>>& config = {}) {
    Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(path);
    if (!library) {
      ADD_FAILURE() << library.error().message;
      return;
    }
    library_ = std::move(*library);
    std::optional<uint32_t> index = library_->compute_type_index(type);
    if (!index) {
      ADD_FAILURE() << path << " does not serve " << type;
      return;
    }
    type_ = *index;
    Result<sched::PluginInstance> instance = library_->init(config);
    if (!instance) {
      ADD_FAILURE() << instance.error().message;
      return;
    }
    instance_.emplace(std::move(*instance));
  }

  bool ok() const { return instance_.has_value(); }
  const sched::PluginLibrary& library() const { return *library_; }

  // Runs once with an output buffer of `output_capacity` bytes.
  RunOutcome run(std::span<const uint8_t> input, size_t output_capacity = 1 << 20) const {
    RunOutcome outcome;
    std::vector<std::byte> output(output_capacity);
    outcome.status = instance_->run(type_, std::as_bytes(input), output, &outcome.output_bytes);
    if (outcome.status == KEEL_STATUS_OK) {
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(output.data());
      outcome.output.assign(bytes, bytes + outcome.output_bytes);
    }
    return outcome;
  }

  int32_t status_of(std::span<const uint8_t> input) const { return run(input).status; }

 private:
  std::unique_ptr<sched::PluginLibrary> library_;
  std::optional<sched::PluginInstance> instance_;  // declared after library_: destroyed first
  uint32_t type_ = 0;
};

// Appends little-endian fields.
class LittleEndianWriter {
 public:
  LittleEndianWriter& u32(uint32_t value) { return append(value, 4); }
  LittleEndianWriter& i32(int32_t value) { return append(uint32_t(value), 4); }
  LittleEndianWriter& u64(uint64_t value) { return append(value, 8); }
  LittleEndianWriter& i64(int64_t value) { return append(uint64_t(value), 8); }
  LittleEndianWriter& f64(double value) { return append(std::bit_cast<uint64_t>(value), 8); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  LittleEndianWriter& append(uint64_t value, int width) {
    for (int index = 0; index < width; ++index) bytes_.push_back(uint8_t(value >> (8 * index)));
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

// Reads a little-endian unsigned field of `width` bytes at `offset`.
inline uint64_t read_le(const std::vector<uint8_t>& bytes, size_t offset, int width) {
  uint64_t value = 0;
  for (int index = width - 1; index >= 0; --index) value = value << 8 | bytes.at(offset + index);
  return value;
}
inline uint32_t read_u32(const std::vector<uint8_t>& bytes, size_t offset) { return uint32_t(read_le(bytes, offset, 4)); }
inline uint64_t read_u64(const std::vector<uint8_t>& bytes, size_t offset) { return read_le(bytes, offset, 8); }
inline int64_t read_i64(const std::vector<uint8_t>& bytes, size_t offset) { return int64_t(read_le(bytes, offset, 8)); }
inline double read_f64(const std::vector<uint8_t>& bytes, size_t offset) {
  return std::bit_cast<double>(read_le(bytes, offset, 8));
}

// `bytes` without its last byte, and with one byte more: neither may be accepted.
inline std::vector<uint8_t> truncated(std::vector<uint8_t> bytes) {
  bytes.pop_back();
  return bytes;
}
inline std::vector<uint8_t> oversized(std::vector<uint8_t> bytes) {
  bytes.push_back(0);
  return bytes;
}

}  // namespace keel::plugins
