#include "numa/binding.h"

#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace keel::numa {
namespace {

struct BitmapFree {
  void operator()(hwloc_bitmap_t bitmap) const { hwloc_bitmap_free(bitmap); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapFree>;

Bitmap new_bitmap() {
  Bitmap bitmap(hwloc_bitmap_alloc());
  // Allocation failure of a few bytes is not something a caller can handle meaningfully.
  assert(bitmap != nullptr);
  return bitmap;
}

// "0-3,8" for a cpuset or nodeset.
std::string list_of(hwloc_const_bitmap_t bitmap) {
  char* text = nullptr;
  if (hwloc_bitmap_list_asprintf(&text, bitmap) < 0 || text == nullptr) return "?";
  std::string result(text);
  std::free(text);
  return result;
}

std::vector<uint32_t> indexes_of(hwloc_const_bitmap_t bitmap) {
  std::vector<uint32_t> indexes;
  for (int i = hwloc_bitmap_first(bitmap); i >= 0; i = hwloc_bitmap_next(bitmap, i)) {
    indexes.push_back(static_cast<uint32_t>(i));
  }
  return indexes;
}

std::string errno_text() { return std::strerror(errno); }

std::string policy_name(hwloc_membind_policy_t policy) {
  switch (policy) {
    case HWLOC_MEMBIND_DEFAULT: return "default";
    case HWLOC_MEMBIND_FIRSTTOUCH: return "first-touch";
    case HWLOC_MEMBIND_BIND: return "bind";
    case HWLOC_MEMBIND_INTERLEAVE: return "interleave";
    case HWLOC_MEMBIND_NEXTTOUCH: return "next-touch";
    case HWLOC_MEMBIND_MIXED: return "mixed";
  }
  return std::to_string(static_cast<int>(policy));
}

Result<void> require_host(const Topology& topology, std::string_view place) {
  if (topology.is_host()) return {};
  return make_error(place, "refusing to bind on a topology that is not this host's (" + topology.describe() + ")");
}

Result<void> require_pu(const Topology& topology, std::string_view place, uint32_t pu_os_index) {
  if (hwloc_get_pu_obj_by_os_index(topology.handle(), pu_os_index) != nullptr) return {};
  return make_error(place, "PU " + std::to_string(pu_os_index) + " is not one this process may use (usable PUs: " +
                               list_of(hwloc_topology_get_topology_cpuset(topology.handle())) + ")");
}

Result<void> require_node(const Topology& topology, std::string_view place, uint32_t node_os_index) {
  if (hwloc_get_numanode_obj_by_os_index(topology.handle(), node_os_index) != nullptr) return {};
  return make_error(place, "NUMA node " + std::to_string(node_os_index) + " does not exist (nodes: " +
                               list_of(hwloc_topology_get_topology_nodeset(topology.handle())) + ")");
}

// Binds memory to the single node in nodeset and checks the read-back policy and nodeset.
// flags selects the thread (HWLOC_MEMBIND_THREAD) or the default process-then-thread scope.
Result<void> bind_memory(const Topology& topology, std::string_view place, hwloc_const_nodeset_t nodeset, int flags) {
  if (hwloc_set_membind(topology.handle(), nodeset, HWLOC_MEMBIND_BIND,
                        flags | HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT) != 0) {
    return make_error(place, "cannot bind memory to node " + list_of(nodeset) + " (" + errno_text() + ")");
  }
  Bitmap read_back = new_bitmap();
  hwloc_membind_policy_t policy = HWLOC_MEMBIND_DEFAULT;
  if (hwloc_get_membind(topology.handle(), read_back.get(), &policy, flags | HWLOC_MEMBIND_BYNODESET) != 0) {
    return make_error(place, "cannot read the memory binding back (" + errno_text() + ")");
  }
  if (policy != HWLOC_MEMBIND_BIND || !hwloc_bitmap_isequal(read_back.get(), nodeset)) {
    return make_error(place, "memory binding read back as nodes " + list_of(read_back.get()) + " with policy " +
                                 policy_name(policy) + ", not bound to node " + list_of(nodeset));
  }
  return {};
}

// Pins to cpuset and checks the read-back cpuset. flags is HWLOC_CPUBIND_THREAD or _PROCESS.
Result<void> bind_cpus(const Topology& topology, std::string_view place, hwloc_const_cpuset_t cpuset, int flags) {
  if (hwloc_set_cpubind(topology.handle(), cpuset, flags) != 0) {
    return make_error(place, "cannot pin to PUs " + list_of(cpuset) + " (" + errno_text() + ")");
  }
  Bitmap read_back = new_bitmap();
  if (hwloc_get_cpubind(topology.handle(), read_back.get(), flags) != 0) {
    return make_error(place, "cannot read the CPU binding back (" + errno_text() + ")");
  }
  if (!hwloc_bitmap_isequal(read_back.get(), cpuset)) {
    return make_error(place, "CPU binding read back as PUs " + list_of(read_back.get()) + ", not " + list_of(cpuset));
  }
  return {};
}

}  // namespace

Result<void> bind_current_thread(const Topology& topology, uint32_t pu_os_index, uint32_t node_os_index) {
  const std::string place =
      "bind thread to PU " + std::to_string(pu_os_index) + ", node " + std::to_string(node_os_index);
  if (Result<void> checked = require_host(topology, place); !checked) return checked;
  if (Result<void> checked = require_pu(topology, place, pu_os_index); !checked) return checked;
  if (Result<void> checked = require_node(topology, place, node_os_index); !checked) return checked;

  Bitmap cpuset = new_bitmap();
  hwloc_bitmap_only(cpuset.get(), pu_os_index);
  if (Result<void> bound = bind_cpus(topology, place, cpuset.get(), HWLOC_CPUBIND_THREAD); !bound) return bound;
  Bitmap nodeset = new_bitmap();
  hwloc_bitmap_only(nodeset.get(), node_os_index);
  return bind_memory(topology, place, nodeset.get(), HWLOC_MEMBIND_THREAD);
}

Result<ThreadBinding> read_current_thread_binding(const Topology& topology) {
  const std::string_view place = "read thread binding";
  if (Result<void> checked = require_host(topology, place); !checked) return checked.error();
  Bitmap cpuset = new_bitmap();
  if (hwloc_get_cpubind(topology.handle(), cpuset.get(), HWLOC_CPUBIND_THREAD) != 0) {
    return make_error(place, "cannot read the CPU binding (" + errno_text() + ")");
  }
  Bitmap nodeset = new_bitmap();
  hwloc_membind_policy_t policy = HWLOC_MEMBIND_DEFAULT;
  if (hwloc_get_membind(topology.handle(), nodeset.get(), &policy,
                        HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0) {
    return make_error(place, "cannot read the memory binding (" + errno_text() + ")");
  }
  return ThreadBinding{.pu_os_indexes = indexes_of(cpuset.get()),
                       .memory_node_os_indexes = indexes_of(nodeset.get())};
}

Result<void> bind_current_process(const Topology& topology, std::span<const uint32_t> pu_os_indexes,
                                  uint32_t node_os_index) {
  const std::string place = "bind process to node " + std::to_string(node_os_index);
  if (Result<void> checked = require_host(topology, place); !checked) return checked;
  if (pu_os_indexes.empty()) return make_error(place, "no PU given");
  Bitmap cpuset = new_bitmap();
  for (uint32_t pu : pu_os_indexes) {
    if (Result<void> checked = require_pu(topology, place, pu); !checked) return checked;
    hwloc_bitmap_set(cpuset.get(), pu);
  }
  if (Result<void> checked = require_node(topology, place, node_os_index); !checked) return checked;

  if (Result<void> bound = bind_cpus(topology, place, cpuset.get(), HWLOC_CPUBIND_PROCESS); !bound) return bound;
  Bitmap nodeset = new_bitmap();
  hwloc_bitmap_only(nodeset.get(), node_os_index);
  // No scope flag: hwloc binds the whole process where the OS can, else (Linux) the
  // calling thread, whose policy the threads it creates later inherit.
  return bind_memory(topology, place, nodeset.get(), 0);
}

Result<void> bind_memory_area(const Topology& topology, void* address, size_t bytes, uint32_t node_os_index) {
  assert(address != nullptr);
  assert(bytes > 0);
  const std::string place = "bind " + std::to_string(bytes) + " bytes of memory to node " + std::to_string(node_os_index);
  if (Result<void> checked = require_host(topology, place); !checked) return checked;
  if (Result<void> checked = require_node(topology, place, node_os_index); !checked) return checked;

  Bitmap nodeset = new_bitmap();
  hwloc_bitmap_only(nodeset.get(), node_os_index);
  // MIGRATE without STRICT: pages this process already touched move; pages shared with
  // another process that the kernel will not move are left where they are, and the
  // read-back below still checks the policy that governs every new page.
  if (hwloc_set_area_membind(topology.handle(), address, bytes, nodeset.get(), HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_MIGRATE) != 0) {
    return make_error(place, "cannot bind the area (" + errno_text() + ")");
  }
  Bitmap read_back = new_bitmap();
  hwloc_membind_policy_t policy = HWLOC_MEMBIND_DEFAULT;
  if (hwloc_get_area_membind(topology.handle(), address, bytes, read_back.get(), &policy,
                             HWLOC_MEMBIND_BYNODESET) != 0) {
    return make_error(place, "cannot read the area's binding back (" + errno_text() + ")");
  }
  if (policy != HWLOC_MEMBIND_BIND || !hwloc_bitmap_isequal(read_back.get(), nodeset.get())) {
    return make_error(place, "area binding read back as nodes " + list_of(read_back.get()) + " with policy " +
                                 policy_name(policy) + ", not bound to node " + list_of(nodeset.get()));
  }
  return {};
}

}  // namespace keel::numa
