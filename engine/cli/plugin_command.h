// engine/cli/plugin_command.h: `keel plugin check`, which loads a plugin the way a
// worker pool does, so that an author can see it load, initialise and run before
// writing any [[pool]] config:
//
//   keel plugin check build/plugins/keel_hash.so --type hash --input-hex 616263
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace keel::cli {

struct PluginCheckRequest {
  std::string path;                      // the plugin .so
  std::vector<std::string> config;       // "key=value", as the flattened [pool.config]
  std::string type;                      // compute type to run; "" = the only one, if one
  std::optional<std::string> input_hex;  // the run's input; a run happens when this or type is given
};

// Adds `plugin check` to `app`, filling `request`; returns the `check` subcommand, which
// is parsed() when the command line asked for it.
CLI::App* add_plugin_check_command(CLI::App& app, PluginCheckRequest& request);

// Loads the plugin, prints its name, ABI version and compute types, runs init (and one
// run when asked, printing the status and the output in hex), then shutdown. Exit 0
// when everything succeeded, 1 when the run returned a status other than
// KEEL_STATUS_OK, 2 on a load, init or usage error (one line on stderr).
int plugin_check_command(const PluginCheckRequest& request);

}  // namespace keel::cli
