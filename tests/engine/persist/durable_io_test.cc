// tests/engine/persist/durable_io_test.cc: the memory O_DIRECT writes come from.
#include "engine/persist/durable_io.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace
}  // namespace keel::persist
