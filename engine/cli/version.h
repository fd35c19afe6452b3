// engine/cli/version.h: what `keel --version` prints: keel's version and the versions of
// the libraries it runs with (as loaded at run time where the library can say so).
#pragma once

#include <string>

namespace keel::cli {

// Several lines, one per component, ending with a newline.
std::string version_report();

}  // namespace keel::cli
