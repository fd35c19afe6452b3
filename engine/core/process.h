// engine/core/process.h: the engine's process plumbing — stop signals taken by the run
// loop alone, and child processes (a relay, load generators) that never outlive it.
//
//   BlockedStopSignals stop_signals;            // before any thread starts
//   ChildProcess child;
//   child.start("/proc/self/exe", {"keel", "load", "--segment", name}, "load generator 0", /*capture_stdout=*/true);
//   while (!stop_signals.wait(100)) { if (child.exited(status)) break; }
//   std::string output = child.read_output();    // what it printed, once it exited
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error/result.h"

namespace keel::engine {

// Blocks SIGINT and SIGTERM for this thread and every thread it starts, so that the run
// loop alone takes them (sigtimedwait) and turns them into a drain. Make it before any
// thread starts: the kernel hands a process's signal to any thread not blocking it. On
// destruction a stop signal still pending is taken, not delivered, so that a stop during
// a failed start-up does not kill the process before it reports the failure.
class BlockedStopSignals {
 public:
  BlockedStopSignals();
  ~BlockedStopSignals();
  // Waits up to `timeout_ms` for a stop signal; true if one came.
  bool wait(uint64_t timeout_ms) const;

 private:
  sigset_t set_, previous_;
};

// A child started with posix_spawn with an empty signal mask (the parent's blocked stop
// signals are its own), killed with SIGKILL and reaped if this object dies first.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();
  // `what` names the child in errors ("relay process"). With capture_stdout the child's
  // standard output goes to a pipe that read_output() drains.
  Result<void> start(const std::string& executable, std::vector<std::string> arguments, std::string what,
                     bool capture_stdout = false);
  // True once the child has exited; `status` then holds its wait status.
  bool exited(int& status);
  // Reads what the child printed so far (non-blocking), appending to the captured text.
  const std::string& read_output();
  int pid() const { return pid_; }
  const std::string& what() const { return what_; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string what_;
  std::string output_;
};

// "exit status 3", "signal Killed".
std::string describe_exit(int status);

}  // namespace keel::engine
