// keel::numa binding: pins the calling thread or process to PUs and binds memory to a NUMA
// node with hwloc, then reads the binding back so a silent failure cannot go unnoticed.
//
//   // In an engine thread, for the PlannedCore it runs:
//   Result<void> bound = bind_current_thread(topology, core.pu_os_index, core.node_os_index);
//   if (!bound) return bound.error();
//   // In a worker-pool process, before it starts any thread:
//   bound = bind_current_process(topology, pool.pu_os_indexes, pool.node_os_index);
//   // For a ring whose consumer runs on node n:
//   bound = bind_memory_area(topology, ring_base, ring_bytes, topology.nodes()[n].os_index);
//
// All functions take kernel (OS) indexes, as PlannedCore and PlannedPool carry them, and
// refuse any topology that is not the host's own (Topology::is_host()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "error/result.h"
#include "numa/topology.h"

namespace keel::numa {

// Pins the calling thread to the one PU pu_os_index and binds the memory it allocates from
// now on to node node_os_index (HWLOC_MEMBIND_BIND, strict), then reads both back.
// Error if the topology is not the host's, the PU or node does not exist or is not allowed,
// the kernel refuses, or the binding read back differs from the request.
Result<void> bind_current_thread(const Topology& topology, uint32_t pu_os_index, uint32_t node_os_index);

// The calling thread's current CPU binding (PU OS indexes, ascending) and memory binding
// (node OS indexes, ascending; all nodes when the thread has no memory policy).
struct ThreadBinding {
  std::vector<uint32_t> pu_os_indexes;
  std::vector<uint32_t> memory_node_os_indexes;
};

// Reads the calling thread's CPU and memory binding. Error if the topology is not the
// host's or the kernel does not answer.
Result<ThreadBinding> read_current_thread_binding(const Topology& topology);

// For worker-pool processes: pins every thread of the process to the set of PUs and binds
// memory to node node_os_index, then reads both back. Linux keeps memory policy per
// thread, so the memory binding applies to the calling thread and to the threads it
// creates afterwards: call this before starting any thread. Error as bind_current_thread,
// and for an empty PU list.
Result<void> bind_current_process(const Topology& topology, std::span<const uint32_t> pu_os_indexes,
                                  uint32_t node_os_index);

// Binds the pages of [address, address + bytes) to node node_os_index (HWLOC_MEMBIND_BIND),
// moving pages already touched by this process, then reads the area's binding back. Used
// to place a shared-memory ring on its consumer's node. The range is widened to whole
// pages. Asserts address != nullptr and bytes > 0. Error as bind_current_thread.
Result<void> bind_memory_area(const Topology& topology, void* address, size_t bytes, uint32_t node_os_index);

}  // namespace keel::numa
