#include "engine/core/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace keel::engine {

BlockedStopSignals::BlockedStopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, &previous_);
}

// A stop that arrived after the last wait (while the engine was failing to start, say) is
// taken here: unblocked, it would kill the process before its caller says why it stopped.
BlockedStopSignals::~BlockedStopSignals() {
  timespec no_wait{0, 0};
  while (sigtimedwait(&set_, nullptr, &no_wait) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

bool BlockedStopSignals::wait(uint64_t timeout_ms) const {
  timespec timeout{time_t(timeout_ms / 1000), long(timeout_ms % 1000) * 1'000'000};
  return sigtimedwait(&set_, nullptr, &timeout) > 0;
}

Result<void> ChildProcess::start(const std::string& executable, std::vector<std::string> arguments, std::string what,
                                 bool capture_stdout) {
  what_ = std::move(what);
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  int pipe_fds[2] = {-1, -1};
  if (capture_stdout && pipe2(pipe_fds, O_CLOEXEC) != 0)
    return make_error(what_, std::string("cannot make a pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (capture_stdout) posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  int error = posix_spawn(&pid_, executable.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (capture_stdout) {
    close(pipe_fds[1]);
    stdout_fd_ = pipe_fds[0];
    fcntl(stdout_fd_, F_SETFL, O_NONBLOCK);
  }
  if (error != 0) {
    pid_ = -1;
    return make_error(what_, "cannot start " + executable + ": " + std::strerror(error));
  }
  return {};
}

bool ChildProcess::exited(int& status) {
  if (pid_ <= 0) return true;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

const std::string& ChildProcess::read_output() {
  if (stdout_fd_ < 0) return output_;
  char buffer[4096];
  for (;;) {
    ssize_t got = read(stdout_fd_, buffer, sizeof buffer);
    if (got > 0) {
      output_.append(buffer, size_t(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    break;  // EAGAIN (nothing more now) or end of file
  }
  return output_;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
  return "unknown status";
}

}  // namespace keel::engine
