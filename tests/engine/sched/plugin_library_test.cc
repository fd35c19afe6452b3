// Tests for engine/sched/plugin_library.h: loading plugins, each way a plugin can be
// broken with its exact one-line message, init failures, and the instance's lifetime.
// The plugins come from tests/engine/sched/bad_plugins (paths as KEEL_TEST_PLUGIN_*).
#include "engine/sched/plugin_library.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace keel::sched {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<PluginLibrary> load_or_fail(const std::string& path) {
  Result<std::unique_ptr<PluginLibrary>> library = PluginLibrary::load(path);
  if (!library) {
    ADD_FAILURE() << library.error().message;
    return nullptr;
  }
  return std::move(*library);
}

std::string load_error(const std::string& path) {
  Result<std::unique_ptr<PluginLibrary>> library = PluginLibrary::load(path);
  if (library) {
    ADD_FAILURE() << path << " loaded, but should not have";
    return "";
  }
  return library.error().message;
}

std::string init_error(const PluginLibrary& library, const std::vector<std::pair<std::string, std::string>>& config) {
  Result<PluginInstance> instance = library.init(config);
  if (instance) {
    ADD_FAILURE() << library.path() << " init succeeded, but should not have";
    return "";
  }
  return instance.error().message;
}

// What dlopen itself says about `path`, to compare with the loader's message.
std::string dlopen_error(const std::string& path) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle != nullptr) {
    dlclose(handle);
    return "";
  }
  return dlerror();
}

std::span<const std::byte> bytes_of(const std::string& text) { return std::as_bytes(std::span(text.data(), text.size())); }

uint32_t live_instances(const PluginInstance& instance) {
  std::array<std::byte, 4> output{};
  size_t output_bytes = 0;
  EXPECT_EQ(instance.run(0, {}, output, &output_bytes), KEEL_STATUS_OK);
  EXPECT_EQ(output_bytes, 4u);
  uint32_t count = 0;
  std::memcpy(&count, output.data(), 4);  // little-endian host
  return count;
}

TEST(PluginLibrary, LoadsAPluginAndReportsItsDescriptor) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_LIFECYCLE);
  ASSERT_NE(library, nullptr);
  EXPECT_EQ(library->path(), KEEL_TEST_PLUGIN_LIFECYCLE);
  EXPECT_EQ(library->name(), "lifecycle");
  EXPECT_EQ(library->compute_types(), (std::vector<std::string>{"live_instances", "echo", "overrun"}));
  EXPECT_EQ(library->compute_type_index("echo"), 1u);
  EXPECT_EQ(library->compute_type_index("live_instances"), 0u);
  EXPECT_EQ(library->compute_type_index("ech"), std::nullopt);
  EXPECT_EQ(library->compute_type_index(""), std::nullopt);
  EXPECT_EQ(library->descriptor().abi_version, KEEL_PLUGIN_ABI_VERSION);
  EXPECT_EQ(library->descriptor().descriptor_bytes, sizeof(keel_plugin));
}

TEST(PluginLibrary, RunsThroughTheInstance) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_LIFECYCLE);
  ASSERT_NE(library, nullptr);
  Result<PluginInstance> instance = library->init({});
  ASSERT_TRUE(instance) << instance.error().message;
  std::string input = "task 42";
  std::array<std::byte, 16> output{};
  size_t output_bytes = 0;
  ASSERT_EQ(instance->run(1, bytes_of(input), output, &output_bytes), KEEL_STATUS_OK);
  ASSERT_EQ(output_bytes, input.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(output.data()), output_bytes), input);

  std::array<std::byte, 3> small{};
  EXPECT_EQ(instance->run(1, bytes_of(input), small, &output_bytes), KEEL_STATUS_OUTPUT_TOO_SMALL);
  EXPECT_EQ(output_bytes, input.size());
}

TEST(PluginLibrary, AnOutputLargerThanTheBufferIsReportedAsAnOverrun) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_LIFECYCLE);
  ASSERT_NE(library, nullptr);
  Result<PluginInstance> instance = library->init({});
  ASSERT_TRUE(instance) << instance.error().message;
  std::array<std::byte, 8> output{};
  size_t output_bytes = 0;
  EXPECT_EQ(instance->run(2, {}, output, &output_bytes), status_output_overrun);
}

TEST(PluginLibrary, EachInstanceIsShutDownExactlyOnceAcrossMoves) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_LIFECYCLE);
  ASSERT_NE(library, nullptr);
  Result<PluginInstance> first = library->init({});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(live_instances(*first), 1u);
  {
    Result<PluginInstance> second = library->init({{"any", "thing"}});
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_NE(second->handle(), first->handle());
    EXPECT_EQ(live_instances(*first), 2u);
    PluginInstance moved = std::move(*second);  // the moved-from one must not shut down
    EXPECT_EQ(live_instances(moved), 2u);
    PluginInstance assigned = std::move(moved);
    EXPECT_EQ(live_instances(assigned), 2u);
  }
  EXPECT_EQ(live_instances(*first), 1u);
  Result<PluginInstance> third = library->init({});
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ(live_instances(*first), 2u);
  *third = std::move(*first);  // shuts down what third held, then takes first's
  EXPECT_EQ(live_instances(*third), 1u);
}

TEST(PluginLibrary, AMissingFileCannotBeLoaded) {
  std::string path = (fs::temp_directory_path() / "keel-no-such-plugin.so").string();
  std::string message = load_error(path);
  EXPECT_EQ(message, path + ": cannot load plugin: " + dlopen_error(path));
  EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(PluginLibrary, AFileThatIsNotASharedLibraryCannotBeLoaded) {
  fs::path path = fs::temp_directory_path() / ("keel-not-a-plugin-" + std::to_string(getpid()) + ".so");
  std::ofstream(path) << "not an ELF file\n";
  std::string message = load_error(path.string());
  EXPECT_EQ(message, path.string() + ": cannot load plugin: " + dlopen_error(path.string()));
  fs::remove(path);
}

TEST(PluginLibrary, APluginNeedingAMissingSymbolIsRefusedAtLoad) {
  std::string path = KEEL_TEST_PLUGIN_BAD_UNDEFINED_SYMBOL;
  std::string message = load_error(path);
  EXPECT_EQ(message, path + ": cannot load plugin: " + dlopen_error(path));
  EXPECT_NE(message.find("undefined symbol: keel_test_missing_function"), std::string::npos) << message;
}

TEST(PluginLibrary, ABareFileNameIsOpenedInTheCurrentDirectoryNotSearchedFor) {
  fs::path plugin = KEEL_TEST_PLUGIN_SLEEP;
  fs::path previous = fs::current_path();
  fs::current_path(plugin.parent_path());
  Result<std::unique_ptr<PluginLibrary>> library = PluginLibrary::load(plugin.filename().string());
  std::string missing = load_error("libc.so.6");  // in the library path, not in this directory
  fs::current_path(previous);
  ASSERT_TRUE(library) << library.error().message;
  EXPECT_EQ((*library)->name(), "sleep");
  EXPECT_EQ(missing.rfind("libc.so.6: cannot load plugin: ", 0), 0u) << missing;
}

TEST(PluginLibrary, ALibraryWithoutTheEntrySymbolIsNotAPlugin) {
  EXPECT_EQ(load_error(KEEL_TEST_PLUGIN_BAD_NO_ENTRY),
            std::string(KEEL_TEST_PLUGIN_BAD_NO_ENTRY) + ": not a keel plugin: no symbol keel_plugin_entry");
}

TEST(PluginLibrary, AnEntryThatReturnsNullIsRefused) {
  EXPECT_EQ(load_error(KEEL_TEST_PLUGIN_BAD_NULL_DESCRIPTOR),
            std::string(KEEL_TEST_PLUGIN_BAD_NULL_DESCRIPTOR) + ": keel_plugin_entry returned no descriptor");
}

TEST(PluginLibrary, AnotherAbiVersionIsRefused) {
  EXPECT_EQ(load_error(KEEL_TEST_PLUGIN_BAD_ABI_VERSION),
            std::string(KEEL_TEST_PLUGIN_BAD_ABI_VERSION) + ": plugin ABI version 2, this keel speaks 1");
}

TEST(PluginLibrary, MalformedDescriptorsAreRefusedSayingWhatIsWrong) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {KEEL_TEST_PLUGIN_BAD_DUPLICATE_TYPE, "compute type 'alpha' is listed twice"},
      {KEEL_TEST_PLUGIN_BAD_EMPTY_TYPE, "compute type 1 is empty"},
      {KEEL_TEST_PLUGIN_BAD_BAD_TYPE_CHARACTER, "compute type 0 has a character outside [a-z0-9_]"},
      {KEEL_TEST_PLUGIN_BAD_NO_TYPES, "no compute types"},
      {KEEL_TEST_PLUGIN_BAD_NULL_NAME, "name is NULL"},
      {KEEL_TEST_PLUGIN_BAD_NULL_INIT, "init is NULL"},
      {KEEL_TEST_PLUGIN_BAD_NULL_RUN, "run is NULL"},
      {KEEL_TEST_PLUGIN_BAD_SHORT_DESCRIPTOR, "descriptor_bytes is 16, ABI version 1 needs at least 56"},
  };
  for (const auto& [path, what] : cases) {
    EXPECT_EQ(load_error(path), path + ": bad descriptor: " + what);
  }
}

TEST(PluginLibrary, InitFailureCarriesThePluginsReason) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_INIT_FAILS);
  ASSERT_NE(library, nullptr);
  std::string path = KEEL_TEST_PLUGIN_INIT_FAILS;
  EXPECT_EQ(init_error(*library, {{"reason", "weights: expected 6 numbers, got 5"}}),
            path + ": init failed: weights: expected 6 numbers, got 5");
  EXPECT_EQ(init_error(*library, {}), path + ": init failed: no reason given");
  EXPECT_EQ(init_error(*library, {{"reason", "  \n "}}), path + ": init failed: no reason given");
  // One line, whatever the plugin wrote.
  EXPECT_EQ(init_error(*library, {{"reason", "first line\nsecond\tline\r\n"}}),
            path + ": init failed: first line second line");
  // A reason filling the buffer without a NUL is cut at the buffer's end.
  EXPECT_EQ(init_error(*library, {{"unterminated", "yes"}}),
            path + ": init failed: " + std::string(KEEL_PLUGIN_ERROR_BYTES, 'x'));
}

TEST(PluginLibrary, ConfigKeysGivenTwiceAreRefusedBeforeInit) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_LIFECYCLE);
  ASSERT_NE(library, nullptr);
  EXPECT_EQ(init_error(*library, {{"bias", "1"}, {"weights", "2"}, {"bias", "3"}}),
            std::string(KEEL_TEST_PLUGIN_LIFECYCLE) + ": config key 'bias' given twice");
}

TEST(PluginLibrary, TheSleepPluginEchoesItsInput) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_SLEEP);
  ASSERT_NE(library, nullptr);
  EXPECT_EQ(library->compute_types(), std::vector<std::string>{"sleep"});
  Result<PluginInstance> instance = library->init({});
  ASSERT_TRUE(instance) << instance.error().message;
  std::string input("\x01\x00\x00\x00tag", 7);  // sleep 1 ms
  std::array<std::byte, 16> output{};
  size_t output_bytes = 0;
  ASSERT_EQ(instance->run(0, bytes_of(input), output, &output_bytes), KEEL_STATUS_OK);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(output.data()), output_bytes), input);
  std::string too_long("\xff\xff\xff\xff", 4);  // 4294967295 ms, beyond the 600000 ms bound
  EXPECT_EQ(instance->run(0, bytes_of(too_long), output, &output_bytes), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(instance->run(0, bytes_of(std::string("\x01\x00", 2)), output, &output_bytes), KEEL_STATUS_BAD_INPUT);
}

// The crash plugin runs only in a forked child: its run must end that process.
TEST(PluginLibrary, TheCrashPluginKillsTheProcessThatRunsIt) {
  std::unique_ptr<PluginLibrary> library = load_or_fail(KEEL_TEST_PLUGIN_CRASH);
  ASSERT_NE(library, nullptr);
  Result<PluginInstance> instance = library->init({});
  ASSERT_TRUE(instance) << instance.error().message;
  std::array<std::byte, 8> output{};
  size_t output_bytes = 0;
  ASSERT_EQ(instance->run(0, bytes_of("ok"), output, &output_bytes), KEEL_STATUS_OK);  // healthy task
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    instance->run(0, bytes_of("crash"), output, &output_bytes);
    _exit(0);  // reached only if run returned
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
#if defined(__SANITIZE_ADDRESS__)
  // ASan's SEGV handler reports the fault and exits with status 1.
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status;
#else
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
#endif
}

}  // namespace
}  // namespace keel::sched
