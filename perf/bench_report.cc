#include "perf/bench_report.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

namespace keel::perf {

double Figure::median() const {
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  return sorted.empty() ? 0 : sorted[sorted.size() / 2];
}

double Figure::min() const { return samples.empty() ? 0 : *std::min_element(samples.begin(), samples.end()); }
double Figure::max() const { return samples.empty() ? 0 : *std::max_element(samples.begin(), samples.end()); }
nlohmann::json Figure::json() const { return {{"median", median()}, {"min", min()}, {"max", max()}}; }

double paired_ratio(const Figure& a, const Figure& b) {
  Figure ratios;
  for (size_t index = 0; index < std::min(a.samples.size(), b.samples.size()); ++index) {
    if (b.samples[index] > 0) ratios.samples.push_back(a.samples[index] / b.samples[index]);
  }
  return ratios.median();
}

bool all_targets_met(const std::vector<Target>& targets) {
  return std::all_of(targets.begin(), targets.end(), [](const Target& target) { return target.met(); });
}

void print_targets(const std::vector<Target>& targets) {
  std::printf("\n%-58s %8s %8s %s\n", "ratio (median of run-by-run ratios)", "ratio", "target", "");
  for (const Target& target : targets) {
    if (target.threshold == 0) {
      std::printf("%-58s %8.2f %12s\n", target.name.c_str(), target.ratio, "(reference)");
      continue;
    }
    std::printf("%-58s %8.2f %7s%.2f %s\n", target.name.c_str(), target.ratio, target.at_most ? "<=" : ">=",
                target.threshold, target.met() ? "met" : "NOT MET");
  }
  std::printf("\n%s\n", all_targets_met(targets) ? "all targets met" : "some targets not met (see above)");
}

void add_targets_json(nlohmann::json& json, const std::vector<Target>& targets) {
  for (const Target& target : targets) {
    json["ratios"].push_back({{"name", target.name},
                              {"ratio", target.ratio},
                              {target.at_most ? "target_at_most" : "target_at_least", target.threshold},
                              {"met", target.met()}});
  }
  json["all_targets_met"] = all_targets_met(targets);
}

std::string machine_line() {
  utsname name;
  uname(&name);
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " CPUs, Linux " + name.release;
}

ScratchFolder::ScratchFolder(const std::string& requested, const std::string& default_parent) {
  std::string parent = requested.empty() ? default_parent : requested;
  path_ = parent + "/run-" + std::to_string(getpid());
}

ScratchFolder::~ScratchFolder() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
  for (const std::filesystem::path& folder : created_) std::filesystem::remove(folder, ignored);  // if empty
}

Result<void> ScratchFolder::create() {
  for (std::filesystem::path folder = std::filesystem::path(path_).parent_path(); !folder.empty();
       folder = folder.parent_path()) {
    std::error_code error;
    if (std::filesystem::exists(folder, error)) break;
    created_.push_back(folder);  // deepest first
  }
  std::error_code error;
  std::filesystem::remove_all(path_, error);
  std::filesystem::create_directories(path_, error);
  if (error) return make_error(path_, "cannot create: " + error.message());
  return {};
}

void ScratchFolder::remove_run(const std::string& path) const {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
  int folder = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder >= 0) {
    ::syncfs(folder);
    ::close(folder);
  }
}

}  // namespace keel::perf
