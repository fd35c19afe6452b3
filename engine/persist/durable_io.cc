#include "engine/persist/durable_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace keel::persist {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  // close() is not retried after EINTR on Linux: the descriptor is gone either way.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string errno_text(int error_number) {
  char buffer[256];
  // GNU strerror_r returns the message, which may or may not be in `buffer`.
  return strerror_r(error_number, buffer, sizeof buffer);
}

Error errno_error(const std::string& path, const std::string& what) {
  return make_error(path, what + ": " + errno_text(errno));
}

namespace {

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<void> create_directories(const std::string& path) {
  if (path.empty()) return make_error("persist", "empty directory path");
  struct stat info;
  if (::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return {};
    return make_error(path, "exists but is not a directory");
  }
  if (errno != ENOENT) return errno_error(path, "cannot stat");
  std::string parent = parent_of(path);
  if (parent != path) {
    if (auto made = create_directories(parent); !made) return made;
  }
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return errno_error(path, "cannot create directory");
  return sync_directory(parent);
}

Result<UniqueFd> open_directory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error(path, "cannot open directory");
  return UniqueFd(fd);
}

Result<void> sync_directory(const std::string& path) {
  Result<UniqueFd> directory = open_directory(path);
  if (!directory) return directory.error();
  if (::fsync(directory->get()) != 0) return errno_error(path, "cannot fsync directory");
  return {};
}

Result<std::vector<std::string>> list_directory(const std::string& path, bool* missing) {
  if (missing != nullptr) *missing = false;
  DIR* directory = ::opendir(path.c_str());
  if (directory == nullptr) {
    if (errno == ENOENT) {
      if (missing != nullptr) *missing = true;
      return std::vector<std::string>{};
    }
    return errno_error(path, "cannot list directory");
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(directory)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int error_number = errno;
  ::closedir(directory);
  if (error_number != 0) {
    errno = error_number;
    return errno_error(path, "cannot list directory");
  }
  return names;
}

Result<void> read_whole_file(const std::string& path, uint64_t bytes_max, std::vector<std::byte>& out) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file.valid()) return errno_error(path, "cannot open");
  struct stat info;
  if (::fstat(file.get(), &info) != 0) return errno_error(path, "cannot stat");
  if (!S_ISREG(info.st_mode)) return make_error(path, "is not a regular file");
  if (uint64_t(info.st_size) > bytes_max) {
    return make_error(path, "has " + std::to_string(info.st_size) + " bytes, more than the " +
                                std::to_string(bytes_max) + " any file of this kind can have");
  }
  out.resize(size_t(info.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t got = ::pread(file.get(), out.data() + done, out.size() - done, off_t(done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_error(path, "cannot read at offset " + std::to_string(done));
    if (got == 0) break;  // shrank while we read: keep what is there
    done += size_t(got);
  }
  out.resize(done);
  return {};
}

Result<void> read_exact(int fd, uint64_t offset, std::span<std::byte> out, const std::string& path) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t got = ::pread(fd, out.data() + done, out.size() - done, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_error(path, "cannot read at offset " + std::to_string(offset + done));
    if (got == 0)
      return make_error(path,
                        "ends at offset " + std::to_string(offset + done) + ", inside what it says it holds");
    done += size_t(got);
  }
  return {};
}

Result<void> write_all(int fd, uint64_t offset, std::span<const std::byte> bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t wrote = ::pwrite(fd, bytes.data() + done, bytes.size() - done, off_t(offset + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) {
      return errno_error(path, "offset " + std::to_string(offset + done) + ": cannot write " +
                                   std::to_string(bytes.size() - done) + " bytes");
    }
    if (wrote == 0) {
      return make_error(path, "offset " + std::to_string(offset + done) + ": write made no progress");
    }
    done += size_t(wrote);
  }
  return {};
}

// Held around each chunk write_zero_file writes (durable_io.h says why). In-process only:
// the threads that prepare spare segments, never the persist tile's commits.
namespace {
std::mutex zero_chunk_mutex;
}  // namespace

Result<void> write_zero_file(const std::string& path, uint64_t bytes, bool direct_io, uint64_t bytes_per_second_max,
                             const std::atomic<bool>* cancel) {
  constexpr uint64_t alignment = 4096, chunk_bytes_max = 256 << 10;
  assert(bytes % alignment == 0);
  ::unlink(path.c_str());
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct_io ? O_DIRECT : 0), 0644));
  if (!file.valid() && direct_io && errno == EINVAL) {  // no O_DIRECT here (older tmpfs)
    ::unlink(path.c_str());  // open may have created the file before refusing O_DIRECT
    file.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  }
  if (!file.valid()) return errno_error(path, "cannot create");
  IoBuffer zeros;
  try {
    zeros = allocate_io_buffer(chunk_bytes_max, false);
  } catch (const std::bad_alloc&) {
    ::unlink(path.c_str());
    return make_error(path, "cannot allocate a buffer of zeros");
  }
  std::memset(zeros.get(), 0, chunk_bytes_max);
  auto cancelled = [cancel] { return cancel != nullptr && cancel->load(std::memory_order_relaxed); };
  Result<void> done;
  for (uint64_t offset = 0; offset < bytes && done;) {
    if (cancelled()) {
      done = make_error(path, "not written: cancelled");
      break;
    }
    uint64_t chunk = std::min(chunk_bytes_max, bytes - offset);
    {
      std::lock_guard<std::mutex> one_chunk_at_a_time(zero_chunk_mutex);
      // Taken once the lock is held: a deadline from before the wait for it would be spent.
      auto written_by = std::chrono::steady_clock::now() +
                        std::chrono::nanoseconds(bytes_per_second_max == 0 ? 0 : chunk * 1'000'000'000 / bytes_per_second_max);
      done = write_all(file.get(), offset, std::span(zeros.get(), chunk), path);
      // The chunk's share of a second at the cap, the write's own time included.
      // In slices, so that a cancel (a log closing) waits 5 ms at most, whatever the cap.
      while (done && bytes_per_second_max != 0 && !cancelled() && std::chrono::steady_clock::now() < written_by)
        std::this_thread::sleep_until(std::min(written_by, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)));
    }
    offset += chunk;
  }
  if (done && ::fdatasync(file.get()) != 0) done = errno_error(path, "fdatasync failed");
  if (!done) ::unlink(path.c_str());
  return done;
}

void FreeIoBuffer::operator()(std::byte* bytes) const { std::free(bytes); }

IoBuffer allocate_io_buffer(uint64_t bytes, bool huge_pages) {
  constexpr uint64_t page_bytes = 4096;
  uint64_t alignment = huge_pages ? huge_page_bytes : page_bytes;
  uint64_t rounded = std::max<uint64_t>(alignment, (bytes + alignment - 1) / alignment * alignment);
  IoBuffer buffer(static_cast<std::byte*>(std::aligned_alloc(alignment, rounded)));
  if (buffer == nullptr) throw std::bad_alloc();
  // Advice only: where the kernel has no huge pages this fails (EINVAL) and the buffer
  // works as it is, with 4 KiB pages; huge_pages_problem() says so once, for a note.
  if (huge_pages) (void)::madvise(buffer.get(), rounded, MADV_HUGEPAGE);
  return buffer;
}

std::string huge_pages_problem() {
  // The top-level setting, which the 2 MiB size's own setting (kernels 6.8 and later) may
  // override unless it says "inherit".
  auto setting_of = [](const std::string& path) -> std::optional<std::string> {
    std::vector<std::byte> text;
    if (!read_whole_file(path, 4096, text)) return std::nullopt;
    std::string setting(reinterpret_cast<const char*>(text.data()), text.size());
    size_t open = setting.find('['), close = setting.find(']');
    if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
    return setting.substr(open + 1, close - open - 1);
  };
  const std::string top = "/sys/kernel/mm/transparent_hugepage/enabled";
  const std::string sized = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled";
  std::optional<std::string> top_setting = setting_of(top);
  if (!top_setting) return "this kernel has no transparent huge pages (no " + top + ")";
  std::optional<std::string> sized_setting = setting_of(sized);
  if (sized_setting && *sized_setting != "inherit") {
    if (*sized_setting == "never") return "2 MiB transparent huge pages are switched off (" + sized + " says never)";
    return "";
  }
  if (*top_setting == "never") return "transparent huge pages are switched off (" + top + " says never)";
  return "";
}

}  // namespace keel::persist
