#include "engine/cli/plugin_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "engine/sched/plugin_library.h"

namespace keel::cli {
namespace {

// Output buffer for the run: grown once to what the plugin asks for, up to this bound.
constexpr size_t output_bytes_initial = 64 * 1024;
constexpr size_t output_bytes_max = 64 * 1024 * 1024;

int fail(const Error& error) {
  std::fprintf(stderr, "keel: %s\n", error.message.c_str());
  return 2;
}

Result<std::vector<std::pair<std::string, std::string>>> parse_config(const std::vector<std::string>& settings) {
  std::vector<std::pair<std::string, std::string>> config;
  for (const std::string& setting : settings) {
    size_t equals = setting.find('=');
    if (equals == std::string::npos || equals == 0) {
      return make_error("--config", "expected key=value, got '" + setting + "'");
    }
    config.emplace_back(setting.substr(0, equals), setting.substr(equals + 1));
  }
  return config;
}

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::vector<std::byte>> parse_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) return make_error("--input-hex", "odd number of hex digits (" + std::to_string(hex.size()) + ")");
  std::vector<std::byte> bytes(hex.size() / 2);
  for (size_t index = 0; index < hex.size(); ++index) {
    int value = hex_digit_value(hex[index]);
    if (value < 0) {
      return make_error("--input-hex", "'" + std::string(1, hex[index]) + "' at position " + std::to_string(index + 1) +
                                           " is not a hex digit");
    }
    bytes[index / 2] |= std::byte(index % 2 == 0 ? value << 4 : value);
  }
  return bytes;
}

std::string to_hex(std::span<const std::byte> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (std::byte byte : bytes) {
    hex += digits[std::to_integer<unsigned>(byte) >> 4];
    hex += digits[std::to_integer<unsigned>(byte) & 15];
  }
  return hex;
}

std::string status_name(int32_t status) {
  switch (status) {
    case KEEL_STATUS_OK: return "ok";
    case KEEL_STATUS_BAD_INPUT: return "bad input";
    case KEEL_STATUS_OUTPUT_TOO_SMALL: return "output too small";
    case KEEL_STATUS_FAILED: return "failed";
    case sched::status_output_overrun: return "output overrun: the plugin claimed more bytes than the buffer holds";
  }
  return status >= KEEL_STATUS_PLUGIN_MIN ? "plugin-specific failure" : "unknown status";
}

// The compute type to run: the one named, or the plugin's only one.
Result<uint32_t> choose_type(const sched::PluginLibrary& library, const std::string& type) {
  if (type.empty()) {
    if (library.compute_types().size() == 1) return 0u;
    return make_error("--type", "the plugin serves " + std::to_string(library.compute_types().size()) +
                                    " compute types; name one");
  }
  std::optional<uint32_t> index = library.compute_type_index(type);
  if (!index) return make_error(library.path(), "serves no compute type '" + type + "'");
  return *index;
}

// One run, retried once with a larger buffer if the plugin asks for one. Returns the exit code.
int run_once(const sched::PluginInstance& instance, const std::string& type_name, uint32_t type,
             const std::vector<std::byte>& input) {
  std::vector<std::byte> output(output_bytes_initial);
  size_t output_bytes = 0;
  int32_t status = instance.run(type, input, output, &output_bytes);
  if (status == KEEL_STATUS_OUTPUT_TOO_SMALL && output_bytes > output.size() && output_bytes <= output_bytes_max) {
    output.resize(output_bytes);
    status = instance.run(type, input, output, &output_bytes);
  }
  std::printf("run %s: status %d (%s)", type_name.c_str(), status, status_name(status).c_str());
  if (status == KEEL_STATUS_OUTPUT_TOO_SMALL) std::printf(", needs %zu output bytes", output_bytes);
  if (status != KEEL_STATUS_OK) {
    std::printf("\n");
    return 1;
  }
  std::printf(", %zu output bytes\noutput hex: %s\n", output_bytes,
              to_hex(std::span(output).first(output_bytes)).c_str());
  return 0;
}

}  // namespace

CLI::App* add_plugin_check_command(CLI::App& app, PluginCheckRequest& request) {
  CLI::App* plugin = app.add_subcommand("plugin", "compute plugins");
  plugin->require_subcommand(1);
  CLI::App* check = plugin->add_subcommand("check", "load a plugin as a worker pool would, init it, optionally run it once");
  check->add_option("path", request.path, "the plugin .so")->required();
  check->add_option("--config", request.config, "a [pool.config] setting as key=value (repeat for more)")
      ->allow_extra_args(false);
  check->add_option("--type", request.type, "compute type to run (default: the plugin's only one)");
  check->add_option("--input-hex", request.input_hex, "run once with this input, in hex (default: empty)");
  return check;
}

int plugin_check_command(const PluginCheckRequest& request) {
  Result<std::vector<std::pair<std::string, std::string>>> config = parse_config(request.config);
  if (!config) return fail(config.error());
  std::vector<std::byte> input;
  if (request.input_hex) {
    Result<std::vector<std::byte>> parsed = parse_hex(*request.input_hex);
    if (!parsed) return fail(parsed.error());
    input = std::move(*parsed);
  }
  Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(request.path);
  if (!library) return fail(library.error());
  std::string types;
  for (const std::string& type : (*library)->compute_types()) types += (types.empty() ? "" : ", ") + type;
  std::printf("plugin: %s\nname: %s\nabi version: %u\ncompute types: %s\n", request.path.c_str(),
              (*library)->name().c_str(), (*library)->descriptor().abi_version, types.c_str());
  bool wants_run = request.input_hex.has_value() || !request.type.empty();
  std::optional<uint32_t> type;
  if (wants_run) {
    Result<uint32_t> chosen = choose_type(**library, request.type);
    if (!chosen) return fail(chosen.error());
    type = *chosen;
  }
  Result<sched::PluginInstance> instance = (*library)->init(*config);
  if (!instance) return fail(instance.error());
  std::printf("init: ok\n");
  int exit_code = 0;
  if (type) exit_code = run_once(*instance, (*library)->compute_types()[*type], *type, input);
  { sched::PluginInstance done = std::move(*instance); }  // shutdown, before the library closes
  std::printf("shutdown: ok\n");
  std::fflush(stdout);
  return exit_code;
}

}  // namespace keel::cli
