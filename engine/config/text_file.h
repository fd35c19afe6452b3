// engine/config/text_file.h: reads a whole text file a person edits (a perf config, a
// flow model), bounded, with one clear error naming the file and the reason.
//
//   Result<std::string> text = read_text_file("perf/default.toml", config_bytes_max);
//   if (!text) return text.error();   // "perf/default.toml: cannot read: No such file ..."
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>

#include "error/result.h"

namespace keel::config {

// The error for a file that cannot be read: "<path>: cannot read: <reason>".
inline Error cannot_read(const std::string& path, std::string_view reason) {
  return make_error(path, "cannot read: " + std::string(reason));
}

// The whole file at path, refused once it grows past bytes_max (a config is read into
// memory whole, so a wrong path to a huge file must not take the host's memory).
inline Result<std::string> read_text_file(const std::string& path, size_t bytes_max) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(path, std::generic_category().message(errno));
  // Closes the file on every return. A failed close of a file only read from loses nothing.
  struct Owner {
    int fd;
    ~Owner() { ::close(fd); }
  } const owner{fd};
  std::string text;
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return cannot_read(path, std::generic_category().message(errno));
    if (got == 0) return text;
    if (text.size() + size_t(got) > bytes_max) {
      return cannot_read(path, "larger than " + std::to_string(bytes_max) + " bytes");
    }
    text.append(buffer.data(), size_t(got));
  }
}

}  // namespace keel::config
