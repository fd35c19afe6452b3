// engine/persist/snapshot_file.h: snapshot files, written whole and atomically next to the
// shard logs so that recovery can start from one instead of from record 0.
//
//   Result<void> written = write_snapshot(directory, height, state_bytes);
//   std::vector<std::string> notes;
//   Result<std::optional<SnapshotFile>> newest = load_newest_snapshot(directory, &notes);
//   for (const std::string& note : notes) print(note);   // corrupt newer ones, skipped
//   if (*newest) restore((*newest)->payload), replay the logs from (*newest)->height on;
//   drop_snapshots_before(directory, height);              // keeps `height` and newer
//
// A file is <directory>/snapshot-<height, 20 digits>.ksnap: a SnapshotHeader, then the
// payload. It is written to <name>.tmp, fdatasynced, renamed into place and the directory
// fsynced, so a crash leaves either the whole new snapshot or none (a .tmp is ignored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "error/result.h"

namespace keel::persist {

inline constexpr uint32_t snapshot_magic = 0x314E534Bu;  // "KSN1" as bytes on disk
inline constexpr uint32_t snapshot_format_version = 1;
// A snapshot is read whole into memory at start-up.
inline constexpr uint64_t snapshot_payload_bytes_max = 64ULL << 30;

struct SnapshotHeader {
  uint32_t magic;           // snapshot_magic
  uint32_t format_version;  // snapshot_format_version
  uint64_t height;          // the same height as the file name
  uint64_t payload_bytes;   // the rest of the file
  uint32_t checksum;        // CRC32C over this header with checksum = 0, then the payload
  uint32_t reserved;        // 0
};
static_assert(sizeof(SnapshotHeader) == 32);
static_assert(offsetof(SnapshotHeader, magic) == 0);
static_assert(offsetof(SnapshotHeader, format_version) == 4);
static_assert(offsetof(SnapshotHeader, height) == 8);
static_assert(offsetof(SnapshotHeader, payload_bytes) == 16);
static_assert(offsetof(SnapshotHeader, checksum) == 24);
static_assert(offsetof(SnapshotHeader, reserved) == 28);

struct SnapshotFile {
  uint64_t height = 0;
  std::vector<std::byte> payload;
  std::string path;
};

// "snapshot-00000000000000000042.ksnap"
std::string snapshot_file_name(uint64_t height);

// Writes the snapshot of `height` atomically (creating the directory if needed); replaces
// one of the same height. Errors name the file and the step that failed.
Result<void> write_snapshot(const std::string& directory, uint64_t height,
                            std::span<const std::byte> payload);

// The newest snapshot whose header and checksum check out, or nullopt if there is none.
// Each newer one that does not check out is skipped with one line in *notes (may be null)
// naming the file and why. A missing directory has no snapshots.
Result<std::optional<SnapshotFile>> load_newest_snapshot(const std::string& directory,
                                                         std::vector<std::string>* notes);

// The snapshot of `height`, checked like load_newest_snapshot does; the error names the
// file and why it does not check out.
Result<SnapshotFile> load_snapshot(const std::string& directory, uint64_t height);

// Heights of the snapshot files in the directory (by name; not checked), ascending.
Result<std::vector<uint64_t>> list_snapshot_heights(const std::string& directory);

// Deletes the snapshots older than `height` (and leftover .tmp files of older heights);
// keeps `height` and newer. fsyncs the directory if it deleted anything.
Result<void> drop_snapshots_before(const std::string& directory, uint64_t height);

}  // namespace keel::persist
