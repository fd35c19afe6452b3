// Helpers shared by the engine/persist tests: scratch directories, payloads that can be
// checked, and one-call log opening and committing.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/persist/persister.h"
#include "engine/persist/recovery.h"
#include "engine/persist/shard_log.h"

namespace keel::persist::testing {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    char name[] = "/tmp/keel-persist-XXXXXX";
    const char* made = ::mkdtemp(name);
    EXPECT_NE(made, nullptr) << std::strerror(errno);
    path_ = made != nullptr ? made : "/tmp/keel-persist-failed";
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline LogIdentity identity(uint32_t shard = 0, uint32_t shard_count = 2, std::string chain = "payments") {
  return LogIdentity{std::move(chain), shard, shard_count};
}

// Payload bytes that depend on (sequence, salt) only, so a read-back can be checked.
inline std::vector<std::byte> payload_for(uint64_t sequence, size_t bytes, uint64_t salt = 0) {
  std::vector<std::byte> payload(bytes);
  uint64_t state = (sequence + 1) * 0x9E3779B97F4A7C15ULL ^ salt;
  for (size_t index = 0; index < bytes; ++index) {
    state ^= state >> 29;
    state *= 0xBF58476D1CE4E5B9ULL;
    payload[index] = std::byte(state >> 56);
  }
  return payload;
}

struct ScannedRecord {
  uint64_t sequence;
  uint64_t batch;
  uint16_t type;
  std::vector<std::byte> payload;
  std::string file;
  uint64_t offset;
};

// scan_log that keeps every record it is given.
inline Result<RecoveredLog> scan_keep(const std::string& directory, const LogIdentity& expected,
                                      std::vector<ScannedRecord>* records) {
  return scan_log(directory, expected, [&](const LogRecordView& view) -> Result<void> {
    records->push_back({view.sequence,
                        view.batch,
                        view.type,
                        {view.payload.begin(), view.payload.end()},
                        std::string(view.file),
                        view.offset});
    return {};
  });
}

// Recovers (cutting any torn tail) and opens the log for appending.
inline std::unique_ptr<ShardLog> recover_and_open(const std::string& directory, const LogIdentity& id,
                                                  LogOptions options = {}) {
  Result<RecoveredLog> recovered =
      scan_log(directory, id, [](const LogRecordView&) -> Result<void> { return {}; });
  EXPECT_TRUE(recovered.ok()) << recovered.error().message;
  if (!recovered) return nullptr;
  Result<void> cut = truncate_torn_tail(*recovered);
  EXPECT_TRUE(cut.ok()) << cut.error().message;
  Result<std::unique_ptr<ShardLog>> log = ShardLog::open(directory, id, options, *recovered);
  EXPECT_TRUE(log.ok()) << log.error().message;
  return log ? std::move(*log) : nullptr;
}

inline std::unique_ptr<Persister> make_persister(Backend backend, PersisterOptions options = {}) {
  options.backend = backend;
  std::string note;
  Result<std::unique_ptr<Persister>> persister = Persister::create(options, &note);
  EXPECT_TRUE(persister.ok()) << persister.error().message;
  if (!note.empty()) std::printf("%s\n", note.c_str());
  return persister ? std::move(*persister) : nullptr;
}

// Submits the staged records and waits until they are durable.
inline void commit(Persister& persister) {
  Result<bool> started = persister.submit();
  ASSERT_TRUE(started.ok()) << started.error().message;
  ASSERT_TRUE(*started);
  Result<bool> durable = persister.poll(true);
  ASSERT_TRUE(durable.ok()) << durable.error().message;
  ASSERT_TRUE(*durable);
}

// Stages `count` records of `bytes` each with checkable payloads; returns the first sequence.
inline uint64_t stage_records(ShardLog& log, size_t count, size_t bytes, uint64_t salt = 0) {
  uint64_t first = log.next_sequence();
  for (size_t index = 0; index < count; ++index) {
    std::vector<std::byte> payload = payload_for(log.next_sequence(), bytes, salt);
    Result<uint64_t> sequence = log.stage(2, payload);
    EXPECT_TRUE(sequence.ok()) << sequence.error().message;
  }
  return first;
}

inline std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

inline void write_bytes(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// Where each record of a segment file starts, by walking the headers (the file must be
// good), over the gaps a batch begun beside another leaves (zeros to the block's end).
struct RecordPlace {
  uint64_t offset;
  RecordHeader header;
};
inline std::vector<RecordPlace> record_places(const std::string& path) {
  std::vector<std::byte> bytes = read_bytes(path);
  std::vector<RecordPlace> places;
  uint64_t offset = 0;
  while (offset + sizeof(RecordHeader) <= bytes.size()) {
    RecordHeader header;
    std::memcpy(&header, bytes.data() + offset, sizeof header);
    if (header.magic != record_magic) {
      uint64_t block_end = (offset + log_write_alignment - 1) / log_write_alignment * log_write_alignment;
      if (places.empty() || block_end == offset || block_end + sizeof(RecordHeader) > bytes.size()) break;
      std::memcpy(&header, bytes.data() + block_end, sizeof header);
      if (header.magic != record_magic || header.sequence != places.back().header.sequence + 1) break;
      offset = block_end;
    }
    places.push_back({offset, header});
    offset += sizeof header + header.payload_bytes;
  }
  return places;
}

inline const char* backend_name(Backend backend) {
  return backend == Backend::io_uring ? "io_uring" : "psync";
}

}  // namespace keel::persist::testing
