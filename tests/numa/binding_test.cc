// Tests for numa/binding.h on the real host.
#include "numa/binding.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

namespace keel::numa {
namespace {

Topology load_host() {
  Result<Topology> topology = Topology::load_host();
  EXPECT_TRUE(topology) << topology.error().message;
  return std::move(*topology);
}

// Runs body on a fresh thread so the test's own thread keeps its binding.
template <class Body>
void on_new_thread(Body body) {
  std::thread thread(body);
  thread.join();
}

TEST(Binding, ThreadToEachPu) {
  Topology topology = load_host();
  ASSERT_TRUE(topology.is_host());
  on_new_thread([&] {
    for (const NumaNode& node : topology.nodes()) {
      for (const Core& core : node.cores) {
        for (uint32_t pu : core.pu_os_indexes) {
          SCOPED_TRACE("PU " + std::to_string(pu) + ", node " + std::to_string(node.os_index));
          Result<void> bound = bind_current_thread(topology, pu, node.os_index);
          ASSERT_TRUE(bound) << bound.error().message;
          Result<ThreadBinding> binding = read_current_thread_binding(topology);
          ASSERT_TRUE(binding) << binding.error().message;
          EXPECT_EQ(binding->pu_os_indexes, std::vector<uint32_t>{pu});
          EXPECT_EQ(binding->memory_node_os_indexes, std::vector<uint32_t>{node.os_index});
          sched_yield();
          EXPECT_EQ(sched_getcpu(), static_cast<int>(pu));
        }
      }
    }
  });
}

TEST(Binding, UnknownPuAndNodeAreErrors) {
  Topology topology = load_host();
  on_new_thread([&] {
    Result<void> bound = bind_current_thread(topology, 100000, topology.nodes()[0].os_index);
    ASSERT_FALSE(bound);
    EXPECT_NE(bound.error().message.find("PU 100000"), std::string::npos) << bound.error().message;
    const uint32_t pu = topology.nodes()[0].cores[0].pu_os_indexes[0];
    bound = bind_current_thread(topology, pu, 100000);
    ASSERT_FALSE(bound);
    EXPECT_NE(bound.error().message.find("NUMA node 100000"), std::string::npos) << bound.error().message;
  });
}

TEST(Binding, SyntheticTopologyIsRefused) {
  Result<Topology> synthetic = Topology::load_synthetic("numa:1 core:2 pu:1");
  ASSERT_TRUE(synthetic) << synthetic.error().message;
  ASSERT_FALSE(synthetic->is_host());
  Result<void> thread = bind_current_thread(*synthetic, 0, 0);
  ASSERT_FALSE(thread);
  EXPECT_NE(thread.error().message.find("not this host's"), std::string::npos) << thread.error().message;
  EXPECT_FALSE(read_current_thread_binding(*synthetic));
  const uint32_t pus[] = {0, 1};
  EXPECT_FALSE(bind_current_process(*synthetic, pus, 0));
  std::vector<char> buffer(4096);
  EXPECT_FALSE(bind_memory_area(*synthetic, buffer.data(), buffer.size(), 0));
}

TEST(Binding, MemoryAreaReadsBackTheNode) {
  Topology topology = load_host();
  const size_t bytes = 4 * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* area = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(area, MAP_FAILED);
  std::memset(area, 1, bytes);  // touched pages must move too
  for (const NumaNode& node : topology.nodes()) {
    if (node.cores.empty() && node.memory_bytes == 0) continue;
    Result<void> bound = bind_memory_area(topology, area, bytes, node.os_index);
    ASSERT_TRUE(bound) << bound.error().message;
    hwloc_nodeset_t nodeset = hwloc_bitmap_alloc();
    hwloc_membind_policy_t policy = HWLOC_MEMBIND_DEFAULT;
    ASSERT_EQ(hwloc_get_area_membind(topology.handle(), area, bytes, nodeset, &policy, HWLOC_MEMBIND_BYNODESET), 0);
    EXPECT_EQ(policy, HWLOC_MEMBIND_BIND);
    EXPECT_EQ(hwloc_bitmap_weight(nodeset), 1);
    EXPECT_TRUE(hwloc_bitmap_isset(nodeset, node.os_index));
    hwloc_bitmap_free(nodeset);
  }
  munmap(area, bytes);
}

TEST(Binding, ProcessToANodesPus) {
  Topology topology = load_host();
  const NumaNode& node = topology.nodes()[0];
  std::vector<uint32_t> pus;
  for (const Core& core : node.cores) pus.insert(pus.end(), core.pu_os_indexes.begin(), core.pu_os_indexes.end());
  std::sort(pus.begin(), pus.end());  // the read-back lists PUs in ascending order
  Result<void> bound = bind_current_process(topology, pus, node.os_index);
  ASSERT_TRUE(bound) << bound.error().message;
  Result<ThreadBinding> binding = read_current_thread_binding(topology);
  ASSERT_TRUE(binding) << binding.error().message;
  EXPECT_EQ(binding->pu_os_indexes, pus);
  EXPECT_EQ(binding->memory_node_os_indexes, std::vector<uint32_t>{node.os_index});
  EXPECT_FALSE(bind_current_process(topology, std::span<const uint32_t>(), node.os_index));
}

}  // namespace
}  // namespace keel::numa
