// tests/engine/cli/keel_process.h: running the real `keel` binary (KEEL_BINARY) from a
// test: a child process with stdout and stderr in files, the KeelCli fixture with a
// scratch directory and copies of perf/default.toml, and small file helpers.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shm/segment.h"

namespace keel::cli {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream file(path);
  file << text;
  ASSERT_TRUE(file.good()) << path;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

inline bool segment_exists(const std::string& instance) { return fs::exists("/dev/shm/keel-" + instance); }

struct Outcome {
  int exit_code = -1;  // 128 + signal number when killed by a signal
  std::string out, err;
};

// A running `keel` with its stdout and stderr going to files in `directory`.
class KeelProcess {
 public:
  // With own_process_group, keel leads a new process group (as under a service manager).
  KeelProcess(const fs::path& directory, const std::vector<std::string>& arguments, bool own_process_group = false)
      : out_path_(directory / "stdout"), err_path_(directory / "stderr") {
    pid_ = fork();
    if (pid_ == 0) {
      if (own_process_group) setpgid(0, 0);
      exec_keel(arguments);
    }
    if (own_process_group) setpgid(pid_, pid_);  // either side may run first
  }
  ~KeelProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);  // its relay child notices and leaves
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

  // Waits up to `timeout` for keel to exit; on timeout kills it and returns exit code -1.
  Outcome wait(std::chrono::milliseconds timeout) {
    Outcome outcome;
    Clock::time_point deadline = Clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) return outcome;  // the destructor kills it
      std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
    outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    outcome.out = read_file(out_path_);
    outcome.err = read_file(err_path_);
    return outcome;
  }

 private:
  [[noreturn]] void exec_keel(const std::vector<std::string>& arguments) {
    int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || chdir(KEEL_SOURCE_DIR) != 0) _exit(120);
    std::vector<char*> argv{const_cast<char*>("keel")};
    for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    execv(KEEL_BINARY, argv.data());
    _exit(121);
  }

  fs::path out_path_, err_path_;
  pid_t pid_ = -1;
};

class KeelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = fs::temp_directory_path() / ("keel-cli-test-" + std::to_string(getpid()));
    fs::create_directories(directory_);
  }
  void TearDown() override { fs::remove_all(directory_); }

  Outcome keel(const std::vector<std::string>& arguments, std::chrono::milliseconds timeout = 20s) {
    KeelProcess process(directory_, arguments);
    Outcome outcome = process.wait(timeout);
    EXPECT_NE(outcome.exit_code, -1) << "keel did not exit within " << timeout.count() << " ms";
    return outcome;
  }

  // An instance name unique to this test process and purpose.
  static std::string instance(const std::string& purpose) {
    return "cli-test-" + purpose + "-" + std::to_string(getpid());
  }

  // perf/default.toml with [engine] instance changed, the data directory moved into the
  // test's directory, the contracts' paths (relative to the config) made absolute (the
  // nightly batch's a copy that fires on 29 February only: see quiet_nightly_interest),
  // /metrics on any free port, and `edits` (from → to) applied.
  fs::path default_config_copy(const std::string& instance_name,
                               const std::vector<std::pair<std::string, std::string>>& edits = {}) {
    std::string text = read_file(fs::path(KEEL_SOURCE_DIR) / "perf/default.toml");
    std::vector<std::pair<std::string, std::string>> all = {
        {"instance = \"default\"", "instance = \"" + instance_name + "\""},
        {"data_dir = \"data/default\"", "data_dir = \"" + (directory_ / ("data-" + instance_name)).string() + "\""},
        {"[\"flows/loan_approval.toml\", \"flows/nightly_interest.toml\"]",
         "[\"" + (fs::path(KEEL_SOURCE_DIR) / "perf/flows/loan_approval.toml").string() + "\", \"" +
             quiet_nightly_interest().string() + "\"]"},
        {"file = \"flows/nightly_interest.toml\"", "file = \"" + quiet_nightly_interest().string() + "\""},
        // Any free port: test engines run side by side with each other and with `make run`.
        {"listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\""}};
    all.insert(all.end(), edits.begin(), edits.end());
    for (const auto& [from, to] : all) {
      size_t at = text.find(from);
      EXPECT_NE(at, std::string::npos) << "perf/default.toml no longer contains: " << from;
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    fs::path path = directory_ / (instance_name + ".toml");
    write_file(path, text);
    return path;
  }

  // perf/flows/nightly_interest.toml in the test's directory, its cron timer moved from
  // 01:30 every day to midnight on 29 February: a test that happens to run at 01:30 UTC
  // would otherwise see the timer start flows of its own.
  fs::path quiet_nightly_interest() {
    fs::path path = directory_ / "nightly_interest.toml";
    std::string text = read_file(fs::path(KEEL_SOURCE_DIR) / "perf/flows/nightly_interest.toml");
    const std::string from = "cron = \"30 1 * * *\"";
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "perf/flows/nightly_interest.toml no longer contains: " << from;
    if (at != std::string::npos) text.replace(at, from.size(), "cron = \"0 0 29 2 *\"");
    write_file(path, text);
    return path;
  }

  // The same, running the synthetic pipeline of issue 2 instead of the ledger.
  fs::path pipeline_config_copy(const std::string& instance_name) {
    return default_config_copy(instance_name, {{"[pipeline]\nenabled = false", "[pipeline]\nenabled = true"}});
  }

  fs::path directory_;
};

inline nlohmann::json parse_report(const Outcome& outcome) {
  nlohmann::json report = nlohmann::json::parse(outcome.out, nullptr, false);
  EXPECT_FALSE(report.is_discarded()) << "not JSON: " << outcome.out;
  return report;
}

// Waits until keel has created its segment (just before it blocks its stop signals)
// and at least 500 ms have passed since `started`.
inline bool wait_until_running(const std::string& instance_name, Clock::time_point started) {
  for (Clock::time_point deadline = started + 5s; !segment_exists(instance_name) && Clock::now() < deadline;) {
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_until(std::max(started + 500ms, Clock::now() + 50ms));
  return segment_exists(instance_name);
}

}  // namespace keel::cli
