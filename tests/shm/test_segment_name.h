// A segment name unique to this test process, so parallel test runs never collide.
#pragma once

#include <unistd.h>

#include <string>

namespace keel::shm::testing {

inline std::string unique_segment_name(const std::string& purpose) {
  return "keel-test-" + purpose + "-" + std::to_string(getpid());
}

}  // namespace keel::shm::testing
