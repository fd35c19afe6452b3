// engine/persist/durable_io.h: the file-system steps that make files and directory entries
// durable, each failing with one line that names the path and the errno text.
//
//   Result<void> made = create_directories("data/payments/0");  // fsyncs each new entry's parent
//   UniqueFd file = ...open...;
//   Result<void> written = write_all(file.get(), 0, bytes, path);  // short writes, EINTR
//   Result<void> synced = sync_directory("data/payments/0");     // after create, rename, unlink
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "error/result.h"

namespace keel::persist {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// strerror(error_number), thread-safe.
std::string errno_text(int error_number);

// "path: <what>: <errno text>" for the current errno.
Error errno_error(const std::string& path, const std::string& what);

// Creates the directory and any missing parents (mode 0755). Each new directory's parent
// is fsynced, so that the new entry survives a crash.
Result<void> create_directories(const std::string& path);

// Opens a directory for fsync (O_RDONLY | O_DIRECTORY).
Result<UniqueFd> open_directory(const std::string& path);

// fsyncs a directory, making creates, renames and unlinks in it durable.
Result<void> sync_directory(const std::string& path);

// Names in a directory (no "." or ".."). A missing directory gives an empty list and
// sets *missing when given.
Result<std::vector<std::string>> list_directory(const std::string& path, bool* missing = nullptr);

// Reads a whole regular file into `out` (resized to fit). Files over bytes_max are an
// error rather than a big allocation.
Result<void> read_whole_file(const std::string& path, uint64_t bytes_max, std::vector<std::byte>& out);

// pread exactly out.size() bytes at `offset`, retrying after EINTR; a file that ends
// first is an error.
Result<void> read_exact(int fd, uint64_t offset, std::span<std::byte> out, const std::string& path);

// pwrite until every byte is written, retrying after EINTR and short writes.
Result<void> write_all(int fd, uint64_t offset, std::span<const std::byte> bytes, const std::string& path);

// Creates `path` afresh (replacing a file there) holding `bytes` zero bytes, written out
// (not fallocated: an unwritten extent still costs a journal commit when first written)
// and fdatasynced, so that later writes into it overwrite blocks that are allocated and
// written. With O_DIRECT where `direct_io` and the file system take it. `bytes` must be a
// multiple of 4096. On failure the file is removed.
// The file goes out in chunks of 256 KiB, and the chunks of every zero file written in
// the process go to the device one at a time (a process-wide lock around each chunk's
// write): a commit's fdatasync flushes the device behind every write queued ahead of it,
// so six logs' spares written at once (6 MiB queued) stalled commits up to 60 ms
// (perf/RESULTS.md, run 11). With `bytes_per_second_max` (0: as fast as the device takes
// them) the lock is also held after each chunk for the chunk's share of a second at that
// rate, so all the process's zero files together stay under it. Unpaced, a spare went out
// at ~1 GB/s into a virtual disk's host cache and every fdatasync of the 0.5 s it took
// waited ~11 ms behind the host's flush of it (commit p99 16 ms beside 0.3 ms without);
// at 64 MB/s the same loop's p99 was 0.5 ms (perf/RESULTS.md, run 12).
// (Through the page cache, without O_DIRECT, the lock and the pace only order the copies:
// the zeros reach the device in the closing fdatasync.) The lock is not fair: a writer
// that releases it takes it again first, so in practice the process's zero files go out
// one after another, each at the cap, which finishes the first one soonest.
// With `cancel`, the write stops at the next chunk (or within 5 ms of a paced wait) once
// it reads true, removes the file and fails: a log closing does not wait out its spare.
Result<void> write_zero_file(const std::string& path, uint64_t bytes, bool direct_io, uint64_t bytes_per_second_max = 0,
                             const std::atomic<bool>* cancel = nullptr);

// Memory that O_DIRECT writes come from, freed with std::free.
struct FreeIoBuffer {
  void operator()(std::byte* bytes) const;
};
using IoBuffer = std::unique_ptr<std::byte[], FreeIoBuffer>;

inline constexpr uint64_t huge_page_bytes = 2ULL << 20;

// Allocates at least `bytes`, 4 KiB aligned, pages untouched (they cost nothing until
// written). With `huge_pages`, 2 MiB aligned and rounded up, and advised for transparent
// huge pages (MADV_HUGEPAGE) so that the kernel backs each touched 2 MiB with one page.
// Why it matters: an O_DIRECT write pins its buffer page by page and the block layer
// builds its requests from physically contiguous runs. From 4 KiB pages an 8 MiB write is
// 2,048 pins and, at 254 segments a request (virtio here), 9 requests; from huge pages it
// is about 5 pins and 2-3 requests, and the device took 8 MiB writes 1.5-1.8x as fast
// (perf/RESULTS.md). The cost: memory is touched 2 MiB at a time. Throws std::bad_alloc.
IoBuffer allocate_io_buffer(uint64_t bytes, bool huge_pages);

// "" when memory advised with MADV_HUGEPAGE gets transparent huge pages here; else one
// line saying why not (the kernel has none, or they are switched off), for a note.
std::string huge_pages_problem();

}  // namespace keel::persist
