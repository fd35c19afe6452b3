// tests/engine/persist/durable_io_test.cc: the memory O_DIRECT writes come from, and zero
// files written at a capped rate.
#include "engine/persist/durable_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace keel::persist {
namespace {

// The kB of AnonHugePages /proc/self/smaps shows for the mapping holding `address`.
uint64_t anon_huge_kilobytes_at(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  auto at = reinterpret_cast<uintptr_t>(address);
  while (std::getline(smaps, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= at && at < end;
    } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      return std::stoull(line.substr(std::strlen("AnonHugePages:")));
    }
  }
  return 0;
}

// /proc/vmstat's thp_fault_fallback: faults in advised memory that got small pages
// because no huge page was free.
uint64_t thp_fault_fallbacks() {
  std::ifstream vmstat("/proc/vmstat");
  std::string name;
  uint64_t value = 0;
  while (vmstat >> name >> value) {
    if (name == "thp_fault_fallback") return value;
  }
  return 0;
}

TEST(IoBufferTest, SmallPagesAreBlockAlignedAndWritable) {
  IoBuffer buffer = allocate_io_buffer(10'000, false);
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.get()) % 4096, 0u);
  std::memset(buffer.get(), 0x5a, 12'288);  // rounded up to whole 4 KiB pages
  EXPECT_EQ(buffer[12'287], std::byte{0x5a});
}

// Where the kernel gives advised memory huge pages, a touched 2 MiB of the buffer is one
// (unless it had none free: a fallback it counts, and the test then skips).
TEST(IoBufferTest, HugePagesBackTheBufferWhereTheKernelHasThem) {
  const uint64_t fallbacks_before = thp_fault_fallbacks();
  IoBuffer buffer = allocate_io_buffer(3 * huge_page_bytes, true);
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.get()) % huge_page_bytes, 0u);
  std::memset(buffer.get(), 0x5a, 3 * huge_page_bytes);
  EXPECT_EQ(buffer[3 * huge_page_bytes - 1], std::byte{0x5a});
  if (std::string problem = huge_pages_problem(); !problem.empty()) {
    GTEST_SKIP() << problem;
  }
  if (anon_huge_kilobytes_at(buffer.get()) == 0 && thp_fault_fallbacks() > fallbacks_before) {
    GTEST_SKIP() << "the kernel had no free huge page and fell back to small ones (thp_fault_fallback)";
  }
  EXPECT_GE(anon_huge_kilobytes_at(buffer.get()), huge_page_bytes / 1024)
      << "transparent huge pages are on, yet none backs the advised buffer";
}

// The whole of `path`, or empty when it cannot be read.
std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// Two zero files written at once under one cap share it: their chunks go one at a time,
// each holding the others back for its share of a second, so 2 MiB at 8 MiB/s take at
// least a quarter of a second (an eighth if each file kept its own pace), and both hold
// nothing but zeros.
TEST(ZeroFileTest, FilesWrittenAtOnceShareOneRateCap) {
  const std::filesystem::path directory =
      std::filesystem::temp_directory_path() / ("keel-zero-file-" + std::to_string(::getpid()));
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  constexpr uint64_t file_bytes_each = 1 << 20, rate_bytes_per_second = 8 << 20;
  auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> writers;
  std::vector<std::string> errors(2);
  for (int index = 0; index < 2; ++index) {
    writers.emplace_back([&, index] {
      Result<void> written = write_zero_file((directory / ("zeros." + std::to_string(index))).string(),
                                             file_bytes_each, true, rate_bytes_per_second);
      if (!written) errors[index] = written.error().message;
    });
  }
  for (std::thread& writer : writers) writer.join();
  auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  for (int index = 0; index < 2; ++index) {
    EXPECT_EQ(errors[index], "");
    std::string bytes = file_bytes(directory / ("zeros." + std::to_string(index)));
    EXPECT_EQ(bytes.size(), file_bytes_each);
    EXPECT_EQ(bytes.find_first_not_of('\0'), std::string::npos);
  }
  EXPECT_GE(elapsed_ms, 2 * file_bytes_each * 1000 / rate_bytes_per_second - 5);
  std::filesystem::remove_all(directory);
}

TEST(ZeroFileTest, ACancelledWriteFailsAndLeavesNoFile) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("keel-zero-file-cancelled-" + std::to_string(::getpid()));
  std::atomic<bool> cancel{true};
  Result<void> written = write_zero_file(path.string(), 1 << 20, true, 1 << 20, &cancel);
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.error().message.find("cancelled"), std::string::npos) << written.error().message;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(ZeroFileTest, UncappedItIsAsFastAsTheDeviceAndStillAllZeros) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("keel-zero-file-uncapped-" + std::to_string(::getpid()));
  ASSERT_TRUE(write_zero_file(path.string(), 3 << 18, true, 0));
  std::string bytes = file_bytes(path);
  EXPECT_EQ(bytes.size(), size_t(3) << 18);
  EXPECT_EQ(bytes.find_first_not_of('\0'), std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace keel::persist
