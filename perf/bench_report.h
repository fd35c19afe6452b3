// perf/bench_report.h: what every `keel bench …` shares — a figure as its repetitions,
// ratios taken run by run, targets and how they print, the machine line, and the scratch
// folder a benchmark writes its files in.
//
//   Figure keel, baseline;                    // one sample per repetition, interleaved
//   std::vector<Target> targets = {{"keel / baseline", paired_ratio(keel, baseline), 3.0}};
//   bool met = all_targets_met(targets);
//   print_targets(targets);                   // or add_targets_json(json, targets)
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "error/result.h"

namespace keel::perf {

// One figure over the repetitions of a benchmark.
struct Figure {
  std::vector<double> samples;
  double median() const;
  double min() const;
  double max() const;
  nlohmann::json json() const;  // {"median", "min", "max"}
};

// Median of run-by-run ratios a[i] / b[i] (runs where b is 0 are left out).
double paired_ratio(const Figure& a, const Figure& b);

struct Target {
  std::string name;
  double ratio;
  double threshold;  // ratio must be >= threshold (<= with at_most); 0: shown for reference, no target
  bool at_most = false;
  bool met() const { return threshold == 0 || (at_most ? ratio <= threshold : ratio >= threshold); }
};

bool all_targets_met(const std::vector<Target>& targets);
// The ratio table, then "all targets met" or "some targets not met (see above)".
void print_targets(const std::vector<Target>& targets);
// json["ratios"] (one object per target) and json["all_targets_met"].
void add_targets_json(nlohmann::json& json, const std::vector<Target>& targets);

// "AMD EPYC …, 2 CPUs, Linux 6.18…"
std::string machine_line();

// A fresh folder removed, with everything in it, when this goes away: under `requested`
// if given, else under `default_parent`; parents it created go too, if empty.
class ScratchFolder {
 public:
  ScratchFolder(const std::string& requested, const std::string& default_parent);
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  ~ScratchFolder();
  // Creates the folder, remembering which of its parents did not exist before.
  Result<void> create();
  // A fresh path for one run's files, not yet created.
  std::string run_path(const std::string& name) { return path_ + "/" + name + "-" + std::to_string(runs_++); }
  // Deletes a run's files and lets the file system settle (syncfs: the journal commit,
  // and with the `discard` mount option the discards of the freed blocks, which would
  // otherwise slow the next run down).
  void remove_run(const std::string& path) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::filesystem::path> created_;
  uint64_t runs_ = 0;
};

}  // namespace keel::perf
