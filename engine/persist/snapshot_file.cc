#include "engine/persist/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/persist/crc32c.h"
#include "engine/persist/durable_io.h"

namespace keel::persist {

namespace {

constexpr std::string_view snapshot_prefix = "snapshot-";
constexpr std::string_view snapshot_suffix = ".ksnap";
constexpr std::string_view temporary_suffix = ".tmp";
constexpr size_t height_digits = 20;

std::string join_path(const std::string& directory, const std::string& name) {
  if (!directory.empty() && directory.back() == '/') return directory + name;
  return directory + "/" + name;
}

// The height in "snapshot-<20 digits>.ksnap" (or with ".tmp" after it when `temporary`).
std::optional<uint64_t> parse_snapshot_name(std::string_view name, bool temporary) {
  if (temporary) {
    if (!name.ends_with(temporary_suffix)) return std::nullopt;
    name.remove_suffix(temporary_suffix.size());
  }
  if (name.size() != snapshot_prefix.size() + height_digits + snapshot_suffix.size()) return std::nullopt;
  if (!name.starts_with(snapshot_prefix) || !name.ends_with(snapshot_suffix)) return std::nullopt;
  uint64_t value = 0;
  for (char digit : name.substr(snapshot_prefix.size(), height_digits)) {
    if (digit < '0' || digit > '9') return std::nullopt;
    if (__builtin_mul_overflow(value, 10, &value)) return std::nullopt;
    if (__builtin_add_overflow(value, uint64_t(digit - '0'), &value)) return std::nullopt;
  }
  return value;
}

uint32_t snapshot_checksum(const SnapshotHeader& header, std::span<const std::byte> payload) {
  SnapshotHeader zeroed = header;
  zeroed.checksum = 0;
  return crc32c_extend(crc32c(std::as_bytes(std::span(&zeroed, 1))), payload);
}

// Why the snapshot header does not check out against the file, or "" if it does.
std::string check_header(const SnapshotHeader& header, uint64_t height, uint64_t file_bytes) {
  if (header.magic != snapshot_magic) return "wrong magic";
  if (header.format_version != snapshot_format_version) {
    return "was written by format version " + std::to_string(header.format_version) + ", this keel reads " +
           std::to_string(snapshot_format_version);
  }
  if (header.height != height) return "header says height " + std::to_string(header.height);
  if (header.payload_bytes != file_bytes - sizeof(SnapshotHeader)) {
    return "header says " + std::to_string(header.payload_bytes) + " payload bytes, the file holds " +
           std::to_string(file_bytes - sizeof(SnapshotHeader));
  }
  return "";
}

// An Error's message without the leading "path: " (the note names the path already).
std::string reason_of(const Error& error, const std::string& path) {
  std::string_view message = error.message;
  if (message.starts_with(path + ": ")) message.remove_prefix(path.size() + 2);
  return std::string(message);
}

// Reads and checks one snapshot file into *snapshot: "" if it checks out, else why not.
// The payload is read straight into its vector: snapshots can be large.
std::string read_snapshot(const std::string& path, uint64_t height, SnapshotFile* snapshot) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file.valid()) return "cannot open: " + errno_text(errno);
  struct stat info;
  if (::fstat(file.get(), &info) != 0) return "cannot stat: " + errno_text(errno);
  uint64_t file_bytes = uint64_t(info.st_size);
  if (file_bytes < sizeof(SnapshotHeader)) {
    return "cut short: " + std::to_string(file_bytes) + " bytes of a 32-byte header";
  }
  if (file_bytes - sizeof(SnapshotHeader) > snapshot_payload_bytes_max)
    return "larger than any snapshot keel writes";
  SnapshotHeader header;
  if (auto read = read_exact(file.get(), 0, std::as_writable_bytes(std::span(&header, 1)), path); !read) {
    return reason_of(read.error(), path);
  }
  if (std::string problem = check_header(header, height, file_bytes); !problem.empty()) return problem;
  snapshot->payload.resize(header.payload_bytes);
  if (auto read = read_exact(file.get(), sizeof header, snapshot->payload, path); !read)
    return reason_of(read.error(), path);
  if (snapshot_checksum(header, snapshot->payload) != header.checksum) return "checksum mismatch";
  snapshot->height = height;
  snapshot->path = path;
  return "";
}

}  // namespace

std::string snapshot_file_name(uint64_t height) {
  char name[64];
  std::snprintf(name, sizeof name, "snapshot-%020llu.ksnap", (unsigned long long)height);
  return name;
}

Result<void> write_snapshot(const std::string& directory, uint64_t height,
                            std::span<const std::byte> payload) {
  if (payload.size() > snapshot_payload_bytes_max) {
    return make_error(directory, "snapshot of " + std::to_string(payload.size()) + " bytes is over the " +
                                     std::to_string(snapshot_payload_bytes_max) + "-byte limit");
  }
  if (auto made = create_directories(directory); !made) return made;
  std::string path = join_path(directory, snapshot_file_name(height));
  std::string temporary = path + std::string(temporary_suffix);
  SnapshotHeader header{snapshot_magic, snapshot_format_version, height, payload.size(), 0, 0};
  header.checksum = snapshot_checksum(header, payload);
  UniqueFd file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!file.valid()) return errno_error(temporary, "cannot create");
  if (auto written = write_all(file.get(), 0, std::as_bytes(std::span(&header, 1)), temporary); !written) {
    return written;
  }
  if (auto written = write_all(file.get(), sizeof header, payload, temporary); !written) return written;
  if (::fdatasync(file.get()) != 0) return errno_error(temporary, "fdatasync failed");
  file.reset();
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    return errno_error(temporary, "cannot rename to " + path);
  return sync_directory(directory);
}

Result<std::vector<uint64_t>> list_snapshot_heights(const std::string& directory) {
  Result<std::vector<std::string>> names = list_directory(directory);
  if (!names) return names.error();
  std::vector<uint64_t> heights;
  for (const std::string& name : *names) {
    if (std::optional<uint64_t> height = parse_snapshot_name(name, false)) heights.push_back(*height);
  }
  std::sort(heights.begin(), heights.end());
  return heights;
}

Result<std::optional<SnapshotFile>> load_newest_snapshot(const std::string& directory,
                                                         std::vector<std::string>* notes) {
  Result<std::vector<uint64_t>> heights = list_snapshot_heights(directory);
  if (!heights) return heights.error();
  for (auto height = heights->rbegin(); height != heights->rend(); ++height) {
    std::string path = join_path(directory, snapshot_file_name(*height));
    SnapshotFile snapshot;
    std::string problem = read_snapshot(path, *height, &snapshot);
    if (problem.empty()) return std::optional<SnapshotFile>(std::move(snapshot));
    if (notes != nullptr) notes->push_back("skipped snapshot " + path + ": " + problem);
  }
  return std::optional<SnapshotFile>();
}

Result<SnapshotFile> load_snapshot(const std::string& directory, uint64_t height) {
  std::string path = join_path(directory, snapshot_file_name(height));
  SnapshotFile snapshot;
  std::string problem = read_snapshot(path, height, &snapshot);
  if (!problem.empty()) return make_error(path, problem);
  return snapshot;
}

Result<void> drop_snapshots_before(const std::string& directory, uint64_t height) {
  Result<std::vector<std::string>> names = list_directory(directory);
  if (!names) return names.error();
  bool dropped = false;
  for (const std::string& name : *names) {
    std::optional<uint64_t> found = parse_snapshot_name(name, false);
    if (!found) found = parse_snapshot_name(name, true);
    if (!found || *found >= height) continue;
    std::string path = join_path(directory, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error(path, "cannot delete");
    dropped = true;
  }
  if (dropped) return sync_directory(directory);
  return {};
}

}  // namespace keel::persist
