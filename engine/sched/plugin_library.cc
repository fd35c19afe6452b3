#include "engine/sched/plugin_library.h"

#include <dlfcn.h>

#include <cassert>
#include <cstring>

#include "engine/ledger/transaction.h"

namespace keel::sched {

// The ABI-1 descriptor as plugins built against keel/plugin.h lay it out on the LP64
// hosts keel runs on. A change here is an ABI change: bump KEEL_PLUGIN_ABI_VERSION.
static_assert(offsetof(keel_plugin, abi_version) == 0);
static_assert(offsetof(keel_plugin, descriptor_bytes) == 4);
static_assert(offsetof(keel_plugin, name) == 8);
static_assert(offsetof(keel_plugin, compute_types) == 16);
static_assert(offsetof(keel_plugin, compute_type_count) == 24);
static_assert(offsetof(keel_plugin, init) == 32);
static_assert(offsetof(keel_plugin, run) == 40);
static_assert(offsetof(keel_plugin, shutdown) == 48);
static_assert(sizeof(keel_plugin) == 56);
static_assert(offsetof(keel_plugin_config_entry, value) == 8 && sizeof(keel_plugin_config_entry) == 16);
static_assert(offsetof(keel_plugin_config, count) == 8 && sizeof(keel_plugin_config) == 16);

namespace {

// The fields ABI version 1 requires (shutdown included: it may be NULL, but it is read).
constexpr uint32_t descriptor_bytes_min = sizeof(keel_plugin);

struct Dlclose {
  // dlclose fails only for a handle dlopen did not return; there is nothing to recover.
  void operator()(void* handle) const { dlclose(handle); }
};
using LibraryHandle = std::unique_ptr<void, Dlclose>;

std::string last_dlerror() {
  const char* text = dlerror();
  return text != nullptr ? text : "unknown error";
}

bool is_name_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

// What is wrong with a plugin name, or "" when nothing is. The name is not echoed: a
// broken one could hold anything, line breaks included.
std::string name_problem(const char* name, const std::string& what) {
  if (name == nullptr) return what + " is NULL";
  size_t length = strnlen(name, KEEL_PLUGIN_NAME_BYTES_MAX);
  if (length == 0) return what + " is empty";
  if (length == KEEL_PLUGIN_NAME_BYTES_MAX) {
    return what + " is longer than " + std::to_string(KEEL_PLUGIN_NAME_BYTES_MAX - 1) + " characters";
  }
  for (size_t index = 0; index < length; ++index) {
    if (!is_name_character(name[index])) return what + " has a character outside [A-Za-z0-9_.-]";
  }
  return "";
}

static_assert(KEEL_COMPUTE_TYPE_CHARS_MAX == ledger::compute_type_bytes_max, "one rule for compute type names");

// What is wrong with a compute type name (ledger::is_compute_type_name's rule), or "".
std::string compute_type_problem(const char* name, const std::string& what) {
  if (name == nullptr) return what + " is NULL";
  size_t length = strnlen(name, KEEL_COMPUTE_TYPE_CHARS_MAX + 1);
  if (length == 0) return what + " is empty";
  if (length > KEEL_COMPUTE_TYPE_CHARS_MAX)
    return what + " is longer than " + std::to_string(KEEL_COMPUTE_TYPE_CHARS_MAX) + " characters";
  if (!ledger::is_compute_type_name(std::string_view(name, length))) return what + " has a character outside [a-z0-9_]";
  return "";
}

// What is wrong with an ABI-version-1 descriptor, or "" when nothing is.
std::string descriptor_problem(const keel_plugin& descriptor) {
  if (descriptor.descriptor_bytes < descriptor_bytes_min) {
    return "descriptor_bytes is " + std::to_string(descriptor.descriptor_bytes) + ", ABI version " +
           std::to_string(KEEL_PLUGIN_ABI_VERSION) + " needs at least " + std::to_string(descriptor_bytes_min);
  }
  if (std::string problem = name_problem(descriptor.name, "name"); !problem.empty()) return problem;
  if (descriptor.init == nullptr) return "init is NULL";
  if (descriptor.run == nullptr) return "run is NULL";
  if (descriptor.compute_types == nullptr || descriptor.compute_type_count == 0) return "no compute types";
  if (descriptor.compute_type_count > KEEL_PLUGIN_COMPUTE_TYPES_MAX) {
    return std::to_string(descriptor.compute_type_count) + " compute types, at most " +
           std::to_string(KEEL_PLUGIN_COMPUTE_TYPES_MAX);
  }
  for (uint32_t index = 0; index < descriptor.compute_type_count; ++index) {
    const char* type = descriptor.compute_types[index];
    if (std::string problem = compute_type_problem(type, "compute type " + std::to_string(index)); !problem.empty()) {
      return problem;
    }
    for (uint32_t earlier = 0; earlier < index; ++earlier) {
      if (std::strcmp(descriptor.compute_types[earlier], type) == 0) {
        return "compute type '" + std::string(type) + "' is listed twice";
      }
    }
  }
  return "";
}

// The plugin's init reason as one line: control characters become spaces, and the text
// stops at the buffer's end even if the plugin forgot the NUL.
std::string one_line_reason(const char* error, size_t error_bytes) {
  std::string reason(error, strnlen(error, error_bytes));
  for (char& c : reason) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  while (!reason.empty() && reason.back() == ' ') reason.pop_back();
  while (!reason.empty() && reason.front() == ' ') reason.erase(reason.begin());
  return reason.empty() ? "no reason given" : reason;
}

}  // namespace

PluginInstance::PluginInstance(const PluginLibrary* library, void* instance)
    : library_(library),
      instance_(instance),
      run_function_(library->descriptor_->run),
      compute_type_count_(library->descriptor_->compute_type_count) {
  library_->live_instances_.fetch_add(1, std::memory_order_relaxed);
}

PluginInstance::PluginInstance(PluginInstance&& other) noexcept
    : library_(std::exchange(other.library_, nullptr)),
      instance_(std::exchange(other.instance_, nullptr)),
      run_function_(other.run_function_),
      compute_type_count_(other.compute_type_count_) {}

PluginInstance& PluginInstance::operator=(PluginInstance&& other) noexcept {
  if (this != &other) {
    release();
    library_ = std::exchange(other.library_, nullptr);
    instance_ = std::exchange(other.instance_, nullptr);
    run_function_ = other.run_function_;
    compute_type_count_ = other.compute_type_count_;
  }
  return *this;
}

PluginInstance::~PluginInstance() { release(); }

void PluginInstance::release() {
  if (library_ == nullptr) return;
  if (library_->descriptor_->shutdown != nullptr) library_->descriptor_->shutdown(instance_);
  library_->live_instances_.fetch_sub(1, std::memory_order_relaxed);
  library_ = nullptr;
  instance_ = nullptr;
}

int32_t PluginInstance::run(uint32_t type, std::span<const std::byte> in, std::span<std::byte> out,
                            size_t* out_bytes) const {
  assert(library_ != nullptr && "run on a moved-from PluginInstance");
  assert(type < compute_type_count_);
  int32_t status = run_function_(instance_, type, reinterpret_cast<const uint8_t*>(in.data()), in.size(),
                                 reinterpret_cast<uint8_t*>(out.data()), out.size(), out_bytes);
  if (status == KEEL_STATUS_OK && *out_bytes > out.size()) return status_output_overrun;
  return status;
}

PluginLibrary::PluginLibrary(std::string path, void* handle, const keel_plugin* descriptor)
    : path_(std::move(path)), handle_(handle), descriptor_(descriptor), name_(descriptor->name) {
  for (uint32_t index = 0; index < descriptor->compute_type_count; ++index) {
    compute_types_.emplace_back(descriptor->compute_types[index]);
  }
}

PluginLibrary::~PluginLibrary() {
  // An instance outliving its library would call into unmapped code.
  assert(live_instances_.load() == 0 && "a PluginInstance outlived its PluginLibrary");
  Dlclose()(handle_);
}

Result<std::unique_ptr<PluginLibrary>> PluginLibrary::load(const std::string& path) {
  // A path without '/' would make dlopen search the library path instead of opening the
  // file the user named.
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  dlerror();
  LibraryHandle handle(dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (handle == nullptr) return make_error(path, "cannot load plugin: " + last_dlerror());
  dlerror();
  void* entry_symbol = dlsym(handle.get(), KEEL_PLUGIN_ENTRY_SYMBOL);
  if (entry_symbol == nullptr) return make_error(path, "not a keel plugin: no symbol " KEEL_PLUGIN_ENTRY_SYMBOL);
  auto entry = reinterpret_cast<keel_plugin_entry_function>(entry_symbol);
  const keel_plugin* descriptor = entry();
  if (descriptor == nullptr) return make_error(path, KEEL_PLUGIN_ENTRY_SYMBOL " returned no descriptor");
  if (descriptor->abi_version != KEEL_PLUGIN_ABI_VERSION) {
    return make_error(path, "plugin ABI version " + std::to_string(descriptor->abi_version) + ", this keel speaks " +
                                std::to_string(KEEL_PLUGIN_ABI_VERSION));
  }
  if (std::string problem = descriptor_problem(*descriptor); !problem.empty()) {
    return make_error(path, "bad descriptor: " + problem);
  }
  return std::unique_ptr<PluginLibrary>(new PluginLibrary(path, handle.release(), descriptor));
}

std::optional<uint32_t> PluginLibrary::compute_type_index(std::string_view type) const {
  for (uint32_t index = 0; index < compute_types_.size(); ++index) {
    if (compute_types_[index] == type) return index;
  }
  return std::nullopt;
}

Result<PluginInstance> PluginLibrary::init(const std::vector<std::pair<std::string, std::string>>& config) const {
  std::vector<keel_plugin_config_entry> entries;
  entries.reserve(config.size());
  for (const auto& [key, value] : config) {
    for (const keel_plugin_config_entry& earlier : entries) {
      if (key == earlier.key) return make_error(path_, "config key '" + key + "' given twice");
    }
    entries.push_back({key.c_str(), value.c_str()});
  }
  keel_plugin_config plugin_config{entries.data(), entries.size()};
  char error[KEEL_PLUGIN_ERROR_BYTES] = {};
  void* instance = nullptr;
  int32_t status = descriptor_->init(&plugin_config, &instance, error, sizeof error);
  if (status != KEEL_STATUS_OK) return make_error(path_, "init failed: " + one_line_reason(error, sizeof error));
  return PluginInstance(this, instance);
}

}  // namespace keel::sched
