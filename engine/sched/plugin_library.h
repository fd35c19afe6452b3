// engine/sched/plugin_library.h: the host side of the plugin ABI (keel/plugin.h). A
// PluginLibrary is one dlopen'ed plugin whose descriptor has been checked; a
// PluginInstance is one successful init of it, shut down when destroyed.
//
//   Result<std::unique_ptr<PluginLibrary>> library = PluginLibrary::load("/opt/keel/plugins/keel_hash.so");
//   if (!library) return library.error();            // "<path>: <reason>", one line
//   std::optional<uint32_t> type = (*library)->compute_type_index("hash");
//   Result<PluginInstance> instance = (*library)->init({{"key", "value"}});
//   if (!instance) return instance.error();          // "<path>: init failed: <reason>"
//   size_t output_bytes = 0;
//   int32_t status = instance->run(*type, input, output, &output_bytes);  // any thread
//
// Lifetimes: every PluginInstance must be destroyed before the PluginLibrary it came
// from (the library's code is unmapped with it; this is asserted). A pool process keeps
// one of each for its whole life.
#pragma once

#include <keel/plugin.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error/result.h"

namespace keel::sched {

class PluginLibrary;

// Returned by PluginInstance::run, never by a plugin (codes 4..63 are keel's), when the
// plugin returned KEEL_STATUS_OK but claimed more output bytes than the buffer holds: a
// broken plugin, a permanent failure of the task.
inline constexpr int32_t status_output_overrun = 4;

// One initialised plugin instance: owns the plugin's void* instance and calls the
// plugin's shutdown on it when destroyed. Movable, not copyable.
class PluginInstance {
 public:
  PluginInstance(PluginInstance&& other) noexcept;
  PluginInstance& operator=(PluginInstance&& other) noexcept;
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;
  ~PluginInstance();

  // Runs one task of compute type `type` (an index from compute_type_index) on `in`,
  // writing into `out`; sets *out_bytes as the plugin's run does (bytes written with
  // KEEL_STATUS_OK, bytes needed with KEEL_STATUS_OUTPUT_TOO_SMALL). Returns the
  // plugin's KEEL_STATUS_* code unchanged, or status_output_overrun. A caller that
  // retries after KEEL_STATUS_OUTPUT_TOO_SMALL should do so once, with a buffer of
  // *out_bytes (a plugin asking again is broken). Thread-safe, as the ABI requires
  // plugins to be: call it from any number of threads at once. Assumes type < compute
  // type count (asserted) and a live (not moved-from) instance.
  int32_t run(uint32_t type, std::span<const std::byte> in, std::span<std::byte> out, size_t* out_bytes) const;

  // The plugin's own instance pointer, as init set it (may be null).
  void* handle() const { return instance_; }

 private:
  friend class PluginLibrary;
  PluginInstance(const PluginLibrary* library, void* instance);
  void release();

  const PluginLibrary* library_ = nullptr;  // null once moved from
  void* instance_ = nullptr;
  // Copied from the descriptor so that run reads nothing but this object.
  decltype(keel_plugin::run) run_function_ = nullptr;
  uint32_t compute_type_count_ = 0;
};

// One dlopen'ed plugin .so with a checked descriptor. Not copyable or movable (instances
// point back at it); dlclose in the destructor.
class PluginLibrary {
 public:
  // Loads the plugin at `path` (a file path: a name without '/' is taken in the current
  // directory, never searched for in the library path) with dlopen(RTLD_NOW |
  // RTLD_LOCAL), calls keel_plugin_entry and checks the descriptor. Errors, each one
  // line naming the path:
  //   "<path>: cannot load plugin: <dlerror text>"
  //   "<path>: not a keel plugin: no symbol keel_plugin_entry"
  //   "<path>: keel_plugin_entry returned no descriptor"
  //   "<path>: plugin ABI version <N>, this keel speaks <KEEL_PLUGIN_ABI_VERSION>"
  //   "<path>: bad descriptor: <what>" (descriptor too short; name, init or run missing;
  //     no compute types or too many; a name empty, too long, with characters outside
  //     [A-Za-z0-9_.-], or a compute type listed twice)
  static Result<std::unique_ptr<PluginLibrary>> load(const std::string& path);

  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;
  ~PluginLibrary();

  // The path as given to load.
  const std::string& path() const { return path_; }
  // The plugin's name from its descriptor.
  const std::string& name() const { return name_; }
  // The compute types the plugin serves; a type's position is its index for run.
  const std::vector<std::string>& compute_types() const { return compute_types_; }
  // The index of compute type `type`, or nullopt when the plugin does not serve it.
  std::optional<uint32_t> compute_type_index(std::string_view type) const;

  // Calls the plugin's init with `config` (the pool's flattened [pool.config] table, see
  // keel_plugin_config_entry for the flattening; keys must be unique). Returns the
  // instance, or "<path>: init failed: <the plugin's reason>" ("no reason given" when
  // the plugin wrote none; line breaks in it become spaces). Not thread-safe with
  // respect to itself; a pool calls it once.
  Result<PluginInstance> init(const std::vector<std::pair<std::string, std::string>>& config) const;

  // The checked descriptor, which lives in the plugin's memory as long as this does.
  const keel_plugin& descriptor() const { return *descriptor_; }

 private:
  friend class PluginInstance;
  PluginLibrary(std::string path, void* handle, const keel_plugin* descriptor);

  std::string path_;
  void* handle_;  // from dlopen
  const keel_plugin* descriptor_;
  std::string name_;
  std::vector<std::string> compute_types_;
  mutable std::atomic<uint64_t> live_instances_{0};  // to assert instances die first
};

}  // namespace keel::sched
