// tests/engine/node/engine_process.h: a real `keel run` child for the engine-level tests,
// and a client attached to it once it is up.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/client/client.h"

namespace keel::node::testing {

// Forks `keel run --config <config> --duration <duration>` (KEEL_BINARY), its stdout and
// stderr appended to `log`.
inline pid_t start_engine(const std::filesystem::path& config, const std::filesystem::path& log,
                          const std::string& duration = "10m") {
  std::fflush(stdout);  // or the child's copy of the buffer is printed again
  pid_t pid = fork();
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "a", stdout);
    FILE* err = std::freopen(log.c_str(), "a", stderr);
    (void)out;
    (void)err;
    execl(KEEL_BINARY, "keel", "run", "--config", config.c_str(), "--duration", duration.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

// Attaches as soon as the engine is up (recovery may take a moment); null when the engine
// exited first or did not come up within 30 s.
inline std::unique_ptr<client::Client> attach_when_up(const std::string& segment, pid_t engine) {
  for (int attempt = 0; attempt < 3000; ++attempt) {
    Result<std::unique_ptr<client::Client>> client = client::Client::attach(segment, "test");
    if (client) return std::move(*client);
    int status = 0;
    if (waitpid(engine, &status, WNOHANG) == engine) return nullptr;
    usleep(10'000);
  }
  return nullptr;
}

}  // namespace keel::node::testing
