#include "engine/cli/version.h"

#include <hwloc.h>
#include <link.h>
#include <liburing.h>
#ifndef KEEL_SANITIZER_BUILD
#include <mimalloc.h>
#endif
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/version.h>

#include <boost/version.hpp>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace keel::cli {

namespace {

// The path of the first loaded shared object whose name contains `fragment`, or "".
std::string loaded_library(const char* fragment) {
  struct Search {
    const char* fragment;
    std::string path;
  } search{fragment, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* search = static_cast<Search*>(data);
        if (info->dlpi_name != nullptr && std::strstr(info->dlpi_name, search->fragment) != nullptr) {
          search->path = info->dlpi_name;
          return 1;
        }
        return 0;
      },
      &search);
  return search.path;
}

std::string resolved(const std::string& path) {
  if (path.empty()) return "not loaded";
  char* real = realpath(path.c_str(), nullptr);
  std::string result = real != nullptr ? real : path;
  std::free(real);
  return result;
}

std::string tbb_line() {
#ifdef KEEL_SANITIZER_BUILD
  // oneTBB dlopens tbbbind with RTLD_DEEPBIND, which the sanitizer runtimes refuse.
  return std::string("oneTBB   ") + TBB_runtime_version() + " (built with " + TBB_VERSION_STRING +
         "); NUMA support not probed in a sanitizer build (tbbbind needs RTLD_DEEPBIND)";
#endif
  // Asking for NUMA nodes makes oneTBB try to load tbbbind; without it, it reports one
  // node with id -1.
  std::vector<oneapi::tbb::numa_node_id> nodes = oneapi::tbb::info::numa_nodes();
  std::string tbbbind = loaded_library("tbbbind");
  bool numa_support = !tbbbind.empty() && !(nodes.size() == 1 && nodes[0] == -1);
  std::string line = std::string("oneTBB   ") + TBB_runtime_version() + " (built with " + TBB_VERSION_STRING + ")";
  line += numa_support ? "; NUMA support: tbbbind loaded (" + resolved(tbbbind) + "), " +
                             std::to_string(nodes.size()) + " node(s)"
                       : std::string("; NUMA support: tbbbind NOT loaded (install libtbbbind-2-5)");
  return line;
}

std::string hwloc_line() {
  unsigned api = hwloc_get_api_version();
  return std::string("hwloc    ") + HWLOC_VERSION + " (run-time API " + std::to_string(api >> 16) + "." +
         std::to_string((api >> 8) & 0xff) + "." + std::to_string(api & 0xff) + ")";
}

std::string uring_line() {
  io_uring ring;
  int error = io_uring_queue_init(2, &ring, 0);
  std::string state = error == 0 ? "io_uring available" : std::string("io_uring UNAVAILABLE: ") + std::strerror(-error);
  if (error == 0) io_uring_queue_exit(&ring);
  return std::string("liburing ") + KEEL_LIBURING_VERSION + " (" + resolved(loaded_library("liburing")) + "); " + state;
}

std::string mimalloc_line() {
#ifdef KEEL_SANITIZER_BUILD
  return "mimalloc not linked (sanitizer build: the sanitizer owns the allocator)";
#else
  int version = mi_version();
  // Linked in, mimalloc replaces malloc: a pointer from plain malloc is then in its heap.
  void* probe = std::malloc(64);
  bool overrides = mi_is_in_heap_region(probe);
  std::free(probe);
  return "mimalloc " + std::to_string(version / 100) + "." + std::to_string(version % 100 / 10) + "." +
         std::to_string(version % 10) + (overrides ? " (the allocator of this process)" : " (NOT the allocator: malloc is not overridden)");
#endif
}

}  // namespace

std::string version_report() {
  std::string report = "keel " KEEL_VERSION "\n";
  report += tbb_line() + "\n";
  report += hwloc_line() + "\n";
  report += uring_line() + "\n";
  report += mimalloc_line() + "\n";
  report += std::string("Boost    ") + std::to_string(BOOST_VERSION / 100000) + "." +
            std::to_string(BOOST_VERSION / 100 % 1000) + "." + std::to_string(BOOST_VERSION % 100) +
            " (Interprocess, header-only)\n";
  return report;
}

}  // namespace keel::cli
