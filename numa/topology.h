// keel::numa::Topology: the machine's NUMA nodes, cores and processing units (PUs), read
// with hwloc from the host, from a synthetic description or from an exported XML file.
//
//   Result<Topology> topology = Topology::load_synthetic("pack:2 numa:2 core:16 pu:2");
//   if (!topology) { std::fprintf(stderr, "keel: %s\n", topology.error().message.c_str()); return 2; }
//   std::printf("%s\n", topology->describe().c_str());
//   for (const NumaNode& node : topology->nodes()) use(node.cores);
//
// Only the host's own topology (is_host()) may be used to bind threads and memory; the
// others exist to plan and test layouts for machines we are not running on. Synthetic and
// XML topologies are loaded through hwloc's API, never through HWLOC_SYNTHETIC or
// HWLOC_XMLFILE: those environment variables would also change what oneTBB sees.
#pragma once

#include <hwloc.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "error/result.h"

namespace keel::numa {

// One physical core. Its PUs are its hardware threads (hyperthread siblings), in hwloc's
// logical order; the first is where an engine thread pinned to this core runs.
struct Core {
  uint32_t index;    // hwloc logical core index, topology-wide
  uint32_t node;     // logical index of the NUMA node the core belongs to
  uint32_t package;  // logical index of the package (socket); 0 if hwloc reports none
  std::vector<uint32_t> pu_os_indexes;
};

// One NUMA node and the cores local to it. A node without CPUs (memory only) has no cores.
// A core local to several nodes (for example DDR plus on-package memory) is listed under
// the first of them only, so every core appears exactly once.
struct NumaNode {
  uint32_t index;     // hwloc logical index; nodes()[i].index == i
  uint32_t os_index;  // the kernel's node number, used for memory binding
  uint32_t package;
  uint64_t memory_bytes;
  std::vector<Core> cores;
};

// RAII owner of a loaded hwloc topology plus the node/core view keel plans with.
// Movable, not copyable; a moved-from Topology may only be destroyed or assigned to.
class Topology {
 public:
  // Loads the machine we run on. Only the PUs this process may use (cgroups, taskset)
  // are included. Error if hwloc cannot load the topology or sees no PU.
  static Result<Topology> load_host();

  // Builds a made-up machine from hwloc's synthetic syntax, for example
  // "pack:2 numa:2 core:16 pu:2" (2 packages × 2 nodes × 16 cores × 2 PUs).
  // Error naming the description if hwloc rejects it.
  static Result<Topology> load_synthetic(std::string_view description);

  // Loads a topology exported with hwloc (lstopo foo.xml or hwloc_topology_export_xml).
  // Error naming the path if the file is missing or not a valid hwloc XML.
  static Result<Topology> load_xml(const std::string& path);

  Topology(Topology&& other) noexcept;
  Topology& operator=(Topology&& other) noexcept;
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;
  ~Topology();

  // True only for load_host() when hwloc confirms the topology is this system's (it is
  // not when HWLOC_SYNTHETIC or HWLOC_XMLFILE were set in the environment). Binding
  // functions refuse every other topology.
  bool is_host() const;

  // One line: where it came from and its counts, for example
  // synthetic "pack:2 numa:2 core:16 pu:2": 2 packages, 4 NUMA nodes, 64 cores, 128 PUs
  std::string describe() const;

  // All NUMA nodes in logical order, each with its cores in logical order.
  const std::vector<NumaNode>& nodes() const;

  // Number of cores over all nodes.
  uint32_t core_count() const;

  // The underlying hwloc topology, still owned by this object.
  hwloc_topology_t handle() const;

 private:
  enum class Source { host, synthetic, xml };

  Topology(hwloc_topology_t handle, Source source, std::string origin);
  static Result<Topology> finish_load(hwloc_topology_t handle, Source source, std::string origin);
  void build_nodes();

  hwloc_topology_t handle_ = nullptr;
  Source source_ = Source::host;
  std::string origin_;  // the synthetic description or the XML path
  std::vector<NumaNode> nodes_;
  uint32_t core_count_ = 0;
};

}  // namespace keel::numa
