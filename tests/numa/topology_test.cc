// Tests for numa/topology.h: host, synthetic and XML topologies.
#include "numa/topology.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

namespace keel::numa {
namespace {

// Checks what every loaded topology must satisfy: nodes in logical order, each core once,
// each PU once.
void expect_consistent(const Topology& topology) {
  std::set<uint32_t> core_indexes;
  std::set<uint32_t> pus;
  uint32_t cores = 0;
  for (size_t i = 0; i < topology.nodes().size(); ++i) {
    const NumaNode& node = topology.nodes()[i];
    EXPECT_EQ(node.index, i);
    for (const Core& core : node.cores) {
      EXPECT_EQ(core.node, node.index);
      EXPECT_TRUE(core_indexes.insert(core.index).second) << "core " << core.index << " listed twice";
      EXPECT_FALSE(core.pu_os_indexes.empty());
      for (uint32_t pu : core.pu_os_indexes) EXPECT_TRUE(pus.insert(pu).second) << "PU " << pu << " listed twice";
      ++cores;
    }
  }
  EXPECT_EQ(cores, topology.core_count());
}

TEST(Topology, HostLoads) {
  Result<Topology> topology = Topology::load_host();
  ASSERT_TRUE(topology) << topology.error().message;
  EXPECT_TRUE(topology->is_host());
  EXPECT_GE(topology->nodes().size(), 1u);
  EXPECT_GE(topology->core_count(), 1u);
  EXPECT_NE(topology->handle(), nullptr);
  EXPECT_EQ(topology->describe().rfind("host: ", 0), 0u) << topology->describe();
  expect_consistent(*topology);
}

TEST(Topology, SyntheticCounts) {
  Result<Topology> topology = Topology::load_synthetic("pack:2 numa:2 core:32 pu:2");
  ASSERT_TRUE(topology) << topology.error().message;
  EXPECT_FALSE(topology->is_host());
  ASSERT_EQ(topology->nodes().size(), 4u);
  EXPECT_EQ(topology->core_count(), 128u);
  for (const NumaNode& node : topology->nodes()) {
    EXPECT_EQ(node.os_index, node.index);
    EXPECT_EQ(node.package, node.index / 2);
    EXPECT_GT(node.memory_bytes, 0u);
    ASSERT_EQ(node.cores.size(), 32u);
    for (const Core& core : node.cores) {
      EXPECT_EQ(core.package, node.package);
      EXPECT_EQ(core.pu_os_indexes.size(), 2u);
    }
  }
  // Logical order: node 1's first core is core 32, whose PUs are 64 and 65.
  EXPECT_EQ(topology->nodes()[1].cores[0].index, 32u);
  EXPECT_EQ(topology->nodes()[1].cores[0].pu_os_indexes, (std::vector<uint32_t>{64, 65}));
  EXPECT_EQ(topology->describe(),
            "synthetic \"pack:2 numa:2 core:32 pu:2\": 2 packages, 4 NUMA nodes, 128 cores, 256 PUs");
  expect_consistent(*topology);
}

TEST(Topology, SyntheticLaptop) {
  Result<Topology> topology = Topology::load_synthetic("numa:1 core:2 pu:1");
  ASSERT_TRUE(topology) << topology.error().message;
  EXPECT_EQ(topology->describe(), "synthetic \"numa:1 core:2 pu:1\": 0 packages, 1 NUMA node, 2 cores, 2 PUs");
  expect_consistent(*topology);
}

TEST(Topology, BadSyntheticNamesTheString) {
  Result<Topology> topology = Topology::load_synthetic("pack:2 bogus:3 pu:x");
  ASSERT_FALSE(topology);
  EXPECT_NE(topology.error().message.find("pack:2 bogus:3 pu:x"), std::string::npos) << topology.error().message;
}

TEST(Topology, MoveKeepsTheHandle) {
  Result<Topology> loaded = Topology::load_synthetic("numa:2 core:2 pu:1");
  ASSERT_TRUE(loaded) << loaded.error().message;
  hwloc_topology_t handle = loaded->handle();
  Topology moved = std::move(*loaded);
  EXPECT_EQ(moved.handle(), handle);
  EXPECT_EQ(moved.core_count(), 4u);
  Result<Topology> other = Topology::load_synthetic("numa:1 core:1 pu:1");
  ASSERT_TRUE(other);
  moved = std::move(*other);
  EXPECT_EQ(moved.core_count(), 1u);
}

TEST(Topology, XmlRoundTrip) {
  Result<Topology> synthetic = Topology::load_synthetic("pack:2 numa:2 core:32 pu:2");
  ASSERT_TRUE(synthetic) << synthetic.error().message;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("keel_topology_test_" + std::to_string(getpid()) + ".xml"))
                               .string();
  ASSERT_EQ(hwloc_topology_export_xml(synthetic->handle(), path.c_str(), 0), 0);

  Result<Topology> xml = Topology::load_xml(path);
  std::remove(path.c_str());
  ASSERT_TRUE(xml) << xml.error().message;
  EXPECT_FALSE(xml->is_host());
  ASSERT_EQ(xml->nodes().size(), 4u);
  EXPECT_EQ(xml->core_count(), 128u);
  for (const NumaNode& node : xml->nodes()) {
    ASSERT_EQ(node.cores.size(), 32u);
    for (const Core& core : node.cores) EXPECT_EQ(core.pu_os_indexes.size(), 2u);
  }
  EXPECT_EQ(xml->describe(), "xml \"" + path + "\": 2 packages, 4 NUMA nodes, 128 cores, 256 PUs");
  expect_consistent(*xml);
}

TEST(Topology, MissingXmlNamesThePath) {
  const std::string path = "/nonexistent/keel/topology.xml";
  Result<Topology> topology = Topology::load_xml(path);
  ASSERT_FALSE(topology);
  EXPECT_NE(topology.error().message.find(path), std::string::npos) << topology.error().message;
}

TEST(Topology, InvalidXmlNamesThePath) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("keel_topology_bad_" + std::to_string(getpid()) + ".xml"))
                               .string();
  std::FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs("this is not xml\n", file);
  std::fclose(file);
  Result<Topology> topology = Topology::load_xml(path);
  std::remove(path.c_str());
  ASSERT_FALSE(topology);
  EXPECT_NE(topology.error().message.find(path), std::string::npos) << topology.error().message;
}

}  // namespace
}  // namespace keel::numa
