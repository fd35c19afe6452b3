#include "numa/topology.h"

#include <cassert>
#include <filesystem>
#include <system_error>
#include <utility>

namespace keel::numa {
namespace {

std::string plural(uint64_t count, std::string_view singular, std::string_view plural_form) {
  return std::to_string(count) + " " + std::string(count == 1 ? singular : plural_form);
}

uint32_t package_of(hwloc_topology_t handle, hwloc_obj_t object) {
  hwloc_obj_t package = hwloc_get_ancestor_obj_by_type(handle, HWLOC_OBJ_PACKAGE, object);
  return package == nullptr ? 0 : package->logical_index;
}

// The PUs of one core (or of one PU standing in for a core), in hwloc's logical order.
std::vector<uint32_t> pu_os_indexes_of(hwloc_topology_t handle, hwloc_obj_t core) {
  std::vector<uint32_t> pus;
  hwloc_obj_t pu = nullptr;
  while ((pu = hwloc_get_next_obj_inside_cpuset_by_type(handle, core->cpuset, HWLOC_OBJ_PU, pu)) !=
         nullptr) {
    pus.push_back(pu->os_index);
  }
  return pus;
}

}  // namespace

Topology::Topology(hwloc_topology_t handle, Source source, std::string origin)
    : handle_(handle), source_(source), origin_(std::move(origin)) {
  assert(handle_ != nullptr);
  build_nodes();
}

Topology::Topology(Topology&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      source_(other.source_),
      origin_(std::move(other.origin_)),
      nodes_(std::move(other.nodes_)),
      core_count_(std::exchange(other.core_count_, 0)) {}

Topology& Topology::operator=(Topology&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) hwloc_topology_destroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    source_ = other.source_;
    origin_ = std::move(other.origin_);
    nodes_ = std::move(other.nodes_);
    core_count_ = std::exchange(other.core_count_, 0);
  }
  return *this;
}

Topology::~Topology() {
  if (handle_ != nullptr) hwloc_topology_destroy(handle_);
}

Result<Topology> Topology::finish_load(hwloc_topology_t handle, Source source, std::string origin) {
  if (hwloc_topology_load(handle) != 0) {
    hwloc_topology_destroy(handle);
    return make_error(source == Source::xml ? origin : "hwloc",
                      source == Source::xml ? "not a valid hwloc XML topology"
                                            : "cannot load the topology");
  }
  if (hwloc_get_nbobjs_by_type(handle, HWLOC_OBJ_PU) <= 0) {
    hwloc_topology_destroy(handle);
    return make_error(origin.empty() ? "hwloc" : origin, "the topology has no processing unit");
  }
  return Topology(handle, source, std::move(origin));
}

Result<Topology> Topology::load_host() {
  hwloc_topology_t handle = nullptr;
  if (hwloc_topology_init(&handle) != 0) return make_error("hwloc", "cannot initialise a topology");
  return finish_load(handle, Source::host, "");
}

Result<Topology> Topology::load_synthetic(std::string_view description) {
  std::string text(description);
  std::string place = "synthetic topology \"" + text + "\"";
  hwloc_topology_t handle = nullptr;
  if (hwloc_topology_init(&handle) != 0) return make_error("hwloc", "cannot initialise a topology");
  if (hwloc_topology_set_synthetic(handle, text.c_str()) != 0) {
    hwloc_topology_destroy(handle);
    return make_error(place,
                      "hwloc rejects the description (expected levels like \"pack:2 numa:2 core:16 pu:2\")");
  }
  Result<Topology> topology = finish_load(handle, Source::synthetic, text);
  if (!topology) return make_error(place, topology.error().message);
  return topology;
}

Result<Topology> Topology::load_xml(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return make_error(path, "no such topology XML file");
  }
  hwloc_topology_t handle = nullptr;
  if (hwloc_topology_init(&handle) != 0) return make_error("hwloc", "cannot initialise a topology");
  if (hwloc_topology_set_xml(handle, path.c_str()) != 0) {
    hwloc_topology_destroy(handle);
    return make_error(path, "hwloc cannot read this XML topology");
  }
  return finish_load(handle, Source::xml, path);
}

// Fills nodes_ from hwloc: every NUMA node in logical order, every core (or every PU when
// hwloc reports no core level) under the first node whose cpuset holds it.
void Topology::build_nodes() {
  const int node_count = hwloc_get_nbobjs_by_type(handle_, HWLOC_OBJ_NUMANODE);
  assert(node_count >= 1);  // hwloc always reports at least one NUMA node
  std::vector<hwloc_obj_t> node_objects;
  for (int i = 0; i < node_count; ++i) {
    hwloc_obj_t node = hwloc_get_obj_by_type(handle_, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    assert(node != nullptr && node->logical_index == static_cast<unsigned>(i));
    node_objects.push_back(node);
    nodes_.push_back(NumaNode{.index = node->logical_index,
                              .os_index = node->os_index,
                              .package = package_of(handle_, node),
                              .memory_bytes = node->attr->numanode.local_memory,
                              .cores = {}});
  }

  const hwloc_obj_type_t core_type =
      hwloc_get_nbobjs_by_type(handle_, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  hwloc_obj_t core = nullptr;
  while ((core = hwloc_get_next_obj_by_type(handle_, core_type, core)) != nullptr) {
    std::vector<uint32_t> pus = pu_os_indexes_of(handle_, core);
    if (pus.empty()) continue;  // every PU of this core is outside our allowed set
    uint32_t node_index = 0;
    for (hwloc_obj_t node : node_objects) {
      if (hwloc_bitmap_intersects(node->cpuset, core->cpuset)) {
        node_index = node->logical_index;
        break;
      }
    }
    nodes_[node_index].cores.push_back(Core{.index = core->logical_index,
                                            .node = node_index,
                                            .package = package_of(handle_, core),
                                            .pu_os_indexes = std::move(pus)});
    ++core_count_;
  }
  assert(core_count_ >= 1);
}

bool Topology::is_host() const {
  assert(handle_ != nullptr);
  return source_ == Source::host && hwloc_topology_is_thissystem(handle_) != 0;
}

std::string Topology::describe() const {
  assert(handle_ != nullptr);
  std::string text;
  switch (source_) {
    case Source::host:
      text = is_host() ? "host"
                       : "host (hwloc read HWLOC_SYNTHETIC or HWLOC_XMLFILE from the environment; "
                         "not this system)";
      break;
    case Source::synthetic: text = "synthetic \"" + origin_ + "\""; break;
    case Source::xml: text = "xml \"" + origin_ + "\""; break;
  }
  const int packages = hwloc_get_nbobjs_by_type(handle_, HWLOC_OBJ_PACKAGE);
  const int pus = hwloc_get_nbobjs_by_type(handle_, HWLOC_OBJ_PU);
  text += ": " + plural(static_cast<uint64_t>(packages < 0 ? 0 : packages), "package", "packages");
  text += ", " + plural(nodes_.size(), "NUMA node", "NUMA nodes");
  text += ", " + plural(core_count_, "core", "cores");
  text += ", " + plural(static_cast<uint64_t>(pus < 0 ? 0 : pus), "PU", "PUs");
  return text;
}

const std::vector<NumaNode>& Topology::nodes() const { return nodes_; }

uint32_t Topology::core_count() const { return core_count_; }

hwloc_topology_t Topology::handle() const { return handle_; }

}  // namespace keel::numa
