#include "engine/flow/flow_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cassert>
#include <cerrno>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <system_error>
#include <utility>

#include "engine/config/text_file.h"
#include "engine/ledger/transaction.h"

// toml++ stays in this file (as in engine/config/perf_config.cc) so that only one
// translation unit of keel_flow pays for its templates.
#include <toml++/toml.h>

namespace keel::flow {
namespace {

using Status = Result<void>;

// A problem found in a model: the key it concerns, as a path into the TOML document
// ("step[2].after[1]"), and the reason. parse_flow_model places it at that key's line and
// column; validate_flow_model and decode_flow_model name the key alone.
struct Problem {
  std::string key;
  std::string reason;
};
using Check = std::optional<Problem>;

// Messages list at most this many names, so that a model of 256 steps still gives a
// short line.
constexpr size_t names_listed_max = 16;
constexpr std::string_view name_rule_text = "[a-z0-9_]";
constexpr std::string_view source_forms =
    "\"args.<name>\", \"args.<name>[split]\", \"steps.<id>.output\" or \"split.index\"";
constexpr std::array<std::byte, 4> model_magic{std::byte{'K'}, std::byte{'F'}, std::byte{'L'},
                                               std::byte{'W'}};

struct IntegerRule {
  std::string_view key;
  int64_t min;
  int64_t max;
};

constexpr IntegerRule version_rule{"version", 1, std::numeric_limits<uint32_t>::max()};
constexpr IntegerRule timeout_rule{"timeout_ms", 1, flow_timeout_ms_max};
constexpr IntegerRule retries_rule{"retries_max", 0, flow_retries_max};
constexpr IntegerRule backoff_rule{"backoff_ms", 0, flow_backoff_ms_max};
constexpr IntegerRule split_rule{"split", 1, flow_split_max};
// The TOML reader's bound; the checks then hold it below the step's own split.
constexpr IntegerRule split_failures_rule{"split_failures_max", 0, flow_split_max - 1};
constexpr IntegerRule catch_up_max_rule{"catch_up_max", 1, catch_up_max_limit};
constexpr IntegerRule misfire_grace_rule{"misfire_grace_s", 0, misfire_grace_s_limit};
constexpr std::string_view hex_prefix = "hex:";

static_assert(flow_schedule_args_bytes_max == ledger::flow_args_bytes_max,
              "a schedule's arguments must fit the flow start its timer makes");

// ---------------------------------------------------------------------------------------
// Text for messages

// text with control characters and bytes above 0x7e escaped ("\x0a"), and with quotes
// and backslashes too when they are to stand inside quotes, so that a message stays one
// line of ASCII whatever the bytes (a decoded model comes from anyone, and toml++ quotes
// the raw text it stopped at).
std::string escaped(std::string_view text, bool quotes_too) {
  constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (quotes_too && (c == '"' || c == '\\')) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c > 0x7e) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// A string as messages show it: in double quotes, escaped.
std::string in_quotes(std::string_view text) { return "\"" + escaped(text, true) + "\""; }

// "a, b, c", or the first names_listed_max and "and N more".
std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (size_t index = 0; index < names.size() && index < names_listed_max; ++index) {
    out += (index == 0 ? "" : ", ") + names[index];
  }
  if (names.size() > names_listed_max) {
    out += " and " + std::to_string(names.size() - names_listed_max) + " more";
  }
  return out;
}

// A key as a dotted path shows it: bare when TOML allows it bare, else quoted, so that
// "a.b" = 1 does not read as a nested key.
std::string printable_key(std::string_view key) {
  const bool is_bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return is_bare ? std::string(key) : in_quotes(key);
}

bool is_name(std::string_view text) {
  if (text.empty() || text.size() > flow_name_chars_max) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string name_reason(std::string_view text) {
  return "must be 1 to " + std::to_string(flow_name_chars_max) + " characters of " +
         std::string(name_rule_text) + ", got " + in_quotes(text);
}

std::string range_reason(int64_t min, int64_t max, int64_t got) {
  return "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
         std::to_string(got);
}

std::string indexed(std::string_view key, size_t index) {
  return std::string(key) + "[" + std::to_string(index) + "]";
}

// "step[2].after", "step[2].after[1]".
std::string step_key(size_t step, std::string_view key) {
  return indexed("step", step) + "." + std::string(key);
}
std::string step_key(size_t step, std::string_view key, size_t element) {
  return indexed(step_key(step, key), element);
}

// ---------------------------------------------------------------------------------------
// Input sources

std::optional<InputSource> parse_source(std::string_view text) {
  constexpr std::string_view args_prefix = "args.", part_suffix = "[split]";
  constexpr std::string_view steps_prefix = "steps.", output_suffix = ".output";
  if (text == "split.index") return InputSource{InputKind::split_index, ""};
  if (text.starts_with(args_prefix)) {
    text.remove_prefix(args_prefix.size());
    InputKind kind = InputKind::argument;
    if (text.ends_with(part_suffix)) {
      text.remove_suffix(part_suffix.size());
      kind = InputKind::argument_part;
    }
    if (text.empty()) return std::nullopt;
    return InputSource{kind, std::string(text)};
  }
  if (text.starts_with(steps_prefix) && text.ends_with(output_suffix) &&
      text.size() > steps_prefix.size() + output_suffix.size()) {
    text.remove_prefix(steps_prefix.size());
    text.remove_suffix(output_suffix.size());
    return InputSource{InputKind::step_output, std::string(text)};
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// The checks every model passes, however it was made

// Builds a schedule's misfire rule into rule, or says what is wrong with its settings, by
// the key inside the schedule that the TOML file spells ("misfire", "catch_up_max",
// "misfire_grace_s") and cron.h's reason.
Check make_schedule_rule(const FlowSchedule& schedule, MisfireRule& rule) {
  MisfirePolicy policy = MisfirePolicy::fire_once;
  if (!schedule.misfire.empty()) {
    Result<MisfirePolicy> parsed = parse_misfire_policy(schedule.misfire);
    if (!parsed) return Problem{"misfire", parsed.error().message};
    policy = *parsed;
  }
  // make_misfire_rule reads a missing catch_up_max as "not given", which 0 stands for here.
  const std::optional<uint64_t> catch_up_max =
      schedule.catch_up_max == 0 ? std::nullopt : std::optional<uint64_t>(schedule.catch_up_max);
  Result<MisfireRule> made = make_misfire_rule(policy, catch_up_max, schedule.grace_s);
  if (made) {
    rule = *made;
    return std::nullopt;
  }
  // make_misfire_rule says "<setting>: <reason>", with cron.h's names for the settings.
  const std::string& message = made.error().message;
  const size_t colon = message.find(": ");
  if (colon == std::string::npos) return Problem{"misfire", message};
  std::string key = message.substr(0, colon);
  if (key == "grace_s") key = std::string(misfire_grace_rule.key);
  return Problem{std::move(key), message.substr(colon + 2)};
}

// What the checks learn on the way, which compiling and encoding need.
struct Analysis {
  std::map<std::string, uint16_t, std::less<>> step_index;
  std::map<std::string, uint16_t, std::less<>> argument_index;
  std::vector<std::vector<uint16_t>> after;  // per step, indices in after's order
  std::vector<uint16_t> order;               // topological, ties to the step written first
  std::vector<uint32_t> argument_parts;      // 0: taken whole (or not at all)
};

using StepSet = std::bitset<flow_steps_max>;

// Runs the checks in a fixed order and stops at the first problem, so that a model always
// fails with the same message.
class ModelChecker {
 public:
  ModelChecker(const FlowModel& model, const KnownComputeTypes& known, Analysis& analysis)
      : model_(model), known_(known), analysis_(analysis) {}

  Check run() {
    Check problem = check_header();
    if (!problem) problem = check_arguments();
    if (!problem) problem = check_schedules();
    if (!problem) problem = check_step_count();
    for (size_t step = 0; !problem && step < model_.steps.size(); ++step) problem = check_step_fields(step);
    for (size_t step = 0; !problem && step < model_.steps.size(); ++step) problem = check_after(step);
    if (!problem) problem = check_cycles();
    if (!problem) order_steps();
    std::vector<StepSet> before;
    if (!problem) before = steps_before();
    for (size_t step = 0; !problem && step < model_.steps.size(); ++step) {
      problem = check_inputs(step, before[step]);
    }
    if (!problem) problem = check_sub_jobs();
    // Last: how a schedule must give each argument depends on the steps that take it.
    for (size_t index = 0; !problem && index < model_.schedules.size(); ++index) {
      problem = check_schedule_arguments(index);
    }
    return problem;
  }

 private:
  Check check_header() const {
    if (!is_name(model_.name)) return Problem{"name", name_reason(model_.name)};
    if (model_.version < version_rule.min) {
      return Problem{"version", range_reason(version_rule.min, version_rule.max, model_.version)};
    }
    if (!is_name(model_.product)) return Problem{"product", name_reason(model_.product)};
    return std::nullopt;
  }

  Check check_arguments() {
    const std::vector<std::string>& arguments = model_.arguments;
    if (arguments.size() > flow_arguments_max) {
      return Problem{"arguments", "must hold at most " + std::to_string(flow_arguments_max) + " names, got " +
                                      std::to_string(arguments.size())};
    }
    for (size_t index = 0; index < arguments.size(); ++index) {
      const std::string key = indexed("arguments", index);
      if (!is_name(arguments[index])) return Problem{key, name_reason(arguments[index])};
      auto [first, inserted] = analysis_.argument_index.try_emplace(arguments[index], uint16_t(index));
      if (!inserted) {
        return Problem{key, "duplicate argument " + in_quotes(arguments[index]) + " (first at " +
                                indexed("arguments", first->second) + ")"};
      }
    }
    analysis_.argument_parts.assign(arguments.size(), 0);
    return std::nullopt;
  }

  Check check_schedules() const {
    const std::vector<FlowSchedule>& schedules = model_.schedules;
    if (schedules.size() > flow_schedules_max) {
      return Problem{"schedule", "at most " + std::to_string(flow_schedules_max) + " schedules, got " +
                                     std::to_string(schedules.size())};
    }
    for (size_t index = 0; index < schedules.size(); ++index) {
      if (Check problem = check_schedule_timing(indexed("schedule", index), schedules[index])) return problem;
    }
    return std::nullopt;
  }

  // What the timer reads: the cron text and the misfire settings.
  static Check check_schedule_timing(const std::string& key, const FlowSchedule& schedule) {
    if (schedule.cron.empty() || schedule.cron.size() > flow_cron_bytes_max) {
      return Problem{key + ".cron", "must be 1 to " + std::to_string(flow_cron_bytes_max) +
                                        " bytes long, got " + std::to_string(schedule.cron.size())};
    }
    if (Result<CronSchedule> cron = parse_cron(schedule.cron); !cron) {
      return Problem{key + ".cron", cron.error().message};
    }
    if (schedule.misfire.size() > flow_misfire_bytes_max) {
      return Problem{key + ".misfire", "must be at most " + std::to_string(flow_misfire_bytes_max) +
                                           " bytes long, got " + std::to_string(schedule.misfire.size())};
    }
    MisfireRule rule;
    if (Check problem = make_schedule_rule(schedule, rule)) {
      return Problem{key + "." + problem->key, std::move(problem->reason)};
    }
    return std::nullopt;
  }

  Check check_step_count() const {
    if (model_.steps.empty()) return Problem{"step", "a flow model needs at least one step"};
    if (model_.steps.size() > flow_steps_max) {
      return Problem{"step", "at most " + std::to_string(flow_steps_max) + " steps, got " +
                                 std::to_string(model_.steps.size())};
    }
    return std::nullopt;
  }

  Check check_compute_type(size_t step) const {
    const std::string& type = model_.steps[step].compute_type;
    const std::string key = step_key(step, "compute_type");
    if (!ledger::is_compute_type_name(type)) return Problem{key, name_reason(type)};
    if (!known_ || known_->contains(type)) return std::nullopt;
    const std::string served =
        known_->empty() ? "no pool serves any" : "known: " + listed({known_->begin(), known_->end()});
    return Problem{key, "unknown compute type " + in_quotes(type) + " (" + served + ")"};
  }

  static Check check_range(size_t step, const IntegerRule& rule, uint32_t value) {
    if (value >= rule.min && value <= rule.max) return std::nullopt;
    return Problem{step_key(step, rule.key), range_reason(rule.min, rule.max, value)};
  }

  // Everything about one step that needs no other step, and its id's uniqueness.
  Check check_step_fields(size_t step) {
    const FlowStep& fields = model_.steps[step];
    if (!is_name(fields.id)) return Problem{step_key(step, "id"), name_reason(fields.id)};
    auto [first, inserted] = analysis_.step_index.try_emplace(fields.id, uint16_t(step));
    if (!inserted) {
      return Problem{step_key(step, "id"), "duplicate step id " + in_quotes(fields.id) + " (first at " +
                                               indexed("step", first->second) + ")"};
    }
    Check problem = check_compute_type(step);
    if (!problem) problem = check_range(step, timeout_rule, fields.timeout_ms);
    if (!problem) problem = check_range(step, retries_rule, fields.retries_max);
    if (!problem) problem = check_range(step, backoff_rule, fields.backoff_ms);
    if (!problem) problem = check_range(step, split_rule, fields.split);
    if (problem) return problem;
    if (fields.split_failures_max >= fields.split) {
      return Problem{step_key(step, "split_failures_max"),
                     range_reason(0, fields.split - 1, fields.split_failures_max) +
                         " (it must be below split, " + std::to_string(fields.split) + ")"};
    }
    if (fields.after.size() > model_.steps.size()) {
      return Problem{step_key(step, "after"), "must hold at most " + std::to_string(model_.steps.size()) +
                                                  " step ids (the model's steps), got " +
                                                  std::to_string(fields.after.size())};
    }
    if (fields.input.size() > flow_step_inputs_max) {
      return Problem{step_key(step, "input"), "must hold at most " + std::to_string(flow_step_inputs_max) +
                                                  " sources, got " + std::to_string(fields.input.size())};
    }
    return std::nullopt;
  }

  std::string step_ids() const {
    std::vector<std::string> ids;
    for (const FlowStep& step : model_.steps) ids.push_back(step.id);
    return listed(ids);
  }

  Problem unknown_step(std::string key, std::string_view id) const {
    return Problem{std::move(key), "unknown step " + in_quotes(id) + " (steps: " + step_ids() + ")"};
  }

  Check check_after(size_t step) {
    const std::vector<std::string>& after = model_.steps[step].after;
    std::vector<uint16_t>& indices = analysis_.after.emplace_back();
    for (size_t element = 0; element < after.size(); ++element) {
      const std::string key = step_key(step, "after", element);
      auto found = analysis_.step_index.find(after[element]);
      if (found == analysis_.step_index.end()) return unknown_step(key, after[element]);
      if (found->second == step) return Problem{key, "a step cannot come after itself"};
      auto earlier = std::find(indices.begin(), indices.end(), found->second);
      if (earlier != indices.end()) {
        return Problem{key, "duplicate step " + in_quotes(after[element]) + " (also at " +
                                step_key(step, "after", size_t(earlier - indices.begin())) + ")"};
      }
      indices.push_back(found->second);
    }
    return std::nullopt;
  }

  // Depth-first along `after`, steps and dependencies in written order. The first cycle
  // met is reported from the step written first on it, at its `after` entry naming the
  // next step on the cycle: in a file read top-down, that entry is the one pointing
  // forward, usually the mistake.
  Check check_cycles() const {
    enum class Mark : uint8_t { unvisited, on_path, done };
    std::vector<Mark> marks(model_.steps.size(), Mark::unvisited);
    std::vector<uint16_t> path;
    std::vector<uint16_t> cycle;
    std::function<bool(uint16_t)> visit = [&](uint16_t step) {
      marks[step] = Mark::on_path;
      path.push_back(step);
      for (uint16_t dependency : analysis_.after[step]) {
        if (marks[dependency] == Mark::on_path) {
          cycle.assign(std::find(path.begin(), path.end(), dependency), path.end());
          return true;
        }
        if (marks[dependency] == Mark::unvisited && visit(dependency)) return true;
      }
      path.pop_back();
      marks[step] = Mark::done;
      return false;
    };
    for (uint16_t step = 0; step < model_.steps.size(); ++step) {
      if (marks[step] == Mark::unvisited && visit(step)) return cycle_problem(cycle);
    }
    return std::nullopt;
  }

  // cycle: steps each of which comes after the next, the last after the first.
  Problem cycle_problem(std::vector<uint16_t> cycle) const {
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    std::string text;
    for (uint16_t step : cycle) text += model_.steps[step].id + " -> ";
    text += model_.steps[cycle[0]].id;
    const uint16_t next = cycle.size() > 1 ? cycle[1] : cycle[0];
    const std::vector<uint16_t>& after = analysis_.after[cycle[0]];
    const size_t element = size_t(std::find(after.begin(), after.end(), next) - after.begin());
    return Problem{step_key(cycle[0], "after", element), "a cycle: " + text + " (each comes after the next)"};
  }

  // Kahn's algorithm over an acyclic model, taking the ready step written first.
  void order_steps() {
    const size_t count = model_.steps.size();
    std::vector<uint16_t> unfinished(count);
    std::vector<std::vector<uint16_t>> successors(count);
    std::priority_queue<uint16_t, std::vector<uint16_t>, std::greater<>> ready;
    for (uint16_t step = 0; step < count; ++step) {
      unfinished[step] = uint16_t(analysis_.after[step].size());
      for (uint16_t dependency : analysis_.after[step]) successors[dependency].push_back(step);
      if (unfinished[step] == 0) ready.push(step);
    }
    while (!ready.empty()) {
      const uint16_t step = ready.top();
      ready.pop();
      analysis_.order.push_back(step);
      for (uint16_t next : successors[step]) {
        if (--unfinished[next] == 0) ready.push(next);
      }
    }
    assert(analysis_.order.size() == count);
  }

  // Per step, the steps that must succeed before it: its after, and theirs, and so on.
  std::vector<StepSet> steps_before() const {
    std::vector<StepSet> before(model_.steps.size());
    for (uint16_t step : analysis_.order) {
      for (uint16_t dependency : analysis_.after[step]) {
        before[step] |= before[dependency];
        before[step].set(dependency);
      }
    }
    return before;
  }

  Check check_argument_use(size_t step, size_t element, const InputSource& source) {
    const std::string key = step_key(step, "input", element);
    auto found = analysis_.argument_index.find(source.name);
    if (found == analysis_.argument_index.end()) {
      return Problem{key, "unknown argument " + in_quotes(source.name) + " (" + declared_arguments() + ")"};
    }
    // The first use fixes how the flow's start gives the argument: whole, or in as many
    // parts as the steps taking it in parts have sub-jobs.
    const uint32_t parts = source.kind == InputKind::argument_part ? model_.steps[step].split : 0;
    auto [first, inserted] = first_use_.try_emplace(found->second, key);
    uint32_t& recorded = analysis_.argument_parts[found->second];
    if (inserted) recorded = parts;
    if (recorded == parts) return std::nullopt;
    const std::string shown = in_quotes(source.name);
    if (recorded == 0) {
      return Problem{key, "argument " + shown + " is taken whole at " + first->second +
                              ", so it cannot also be taken in parts"};
    }
    if (parts == 0) {
      return Problem{key, "argument " + shown + " is taken in parts at " + first->second +
                              ", so it cannot also be taken whole"};
    }
    return Problem{key, "argument " + shown + " is taken in " + std::to_string(recorded) + " parts at " +
                            first->second + " but in " + std::to_string(parts) +
                            " here (steps taking an argument in parts must have the same split)"};
  }

  Check check_step_output_use(size_t step, size_t element, const InputSource& source,
                              const StepSet& before) const {
    const std::string key = step_key(step, "input", element);
    auto found = analysis_.step_index.find(source.name);
    if (found == analysis_.step_index.end()) return unknown_step(key, source.name);
    if (found->second == step) return Problem{key, "a step cannot take its own output"};
    if (before.test(found->second)) return std::nullopt;
    return Problem{key, "step " + in_quotes(source.name) +
                            " does not come before this step (it is not in its after, directly or "
                            "through other steps), so its output may not exist yet"};
  }

  Check check_inputs(size_t step, const StepSet& before) {
    const std::vector<InputSource>& input = model_.steps[step].input;
    for (size_t element = 0; element < input.size(); ++element) {
      const InputSource& source = input[element];
      Check problem;
      switch (source.kind) {
        case InputKind::argument:
        case InputKind::argument_part: problem = check_argument_use(step, element, source); break;
        case InputKind::step_output: problem = check_step_output_use(step, element, source, before); break;
        case InputKind::split_index:
          if (!source.name.empty())
            problem = Problem{step_key(step, "input", element), "split.index takes no name"};
          break;
        default:
          problem = Problem{step_key(step, "input", element),
                            "unknown input kind " + std::to_string(unsigned(source.kind))};
      }
      if (problem) return problem;
      auto earlier = std::find(input.begin(), input.begin() + element, source);
      if (earlier != input.begin() + element) {
        return Problem{step_key(step, "input", element),
                       "duplicate input " + in_quotes(to_string(source)) + " (also at " +
                           step_key(step, "input", size_t(earlier - input.begin())) + ")"};
      }
    }
    return std::nullopt;
  }

  Check check_sub_jobs() const {
    uint64_t sub_jobs = 0;
    for (size_t step = 0; step < model_.steps.size(); ++step) {
      sub_jobs += model_.steps[step].split;
      if (sub_jobs > flow_sub_jobs_max) {
        return Problem{step_key(step, "split"), "the steps up to this one split into " +
                                                    std::to_string(sub_jobs) +
                                                    " sub-jobs in all, more than the " +
                                                    std::to_string(flow_sub_jobs_max) + " a flow may run"};
      }
    }
    return std::nullopt;
  }

  std::string declared_arguments() const {
    return model_.arguments.empty() ? "the model declares no arguments"
                                    : "arguments: " + listed(model_.arguments);
  }

  // A schedule's args are what a transaction starting the flow would give: every argument
  // once, whole or in as many parts as the steps take it, in the model's order (the one
  // form, so that equal schedules encode alike), and no more than a flow start carries.
  Check check_schedule_arguments(size_t schedule_index) const {
    const std::string key = indexed("schedule", schedule_index) + ".args";
    const std::vector<ScheduleArgument>& args = model_.schedules[schedule_index].args;
    std::vector<bool> given(model_.arguments.size(), false);
    for (const ScheduleArgument& argument : args) {
      const std::string argument_key = key + "." + printable_key(argument.name);
      auto found = analysis_.argument_index.find(argument.name);
      if (found == analysis_.argument_index.end()) {
        return Problem{argument_key,
                       "unknown argument " + in_quotes(argument.name) + " (" + declared_arguments() + ")"};
      }
      if (given[found->second])
        return Problem{argument_key, "argument " + in_quotes(argument.name) + " given twice"};
      given[found->second] = true;
    }
    for (size_t index = 0; index < model_.arguments.size(); ++index) {
      if (given[index]) continue;
      return Problem{key, "missing argument " + in_quotes(model_.arguments[index]) +
                              " (a scheduled flow starts with every argument; " + declared_arguments() + ")"};
    }
    for (size_t index = 0; index < args.size(); ++index) {
      const std::string argument_key = key + "." + printable_key(args[index].name);
      if (args[index].name != model_.arguments[index]) {
        return Problem{argument_key, "out of order: args come in the order of the model's arguments (" +
                                         listed(model_.arguments) + ")"};
      }
      if (Check problem = check_argument_shape(argument_key, args[index], analysis_.argument_parts[index])) {
        return problem;
      }
    }
    const size_t encoded_bytes = schedule_args_encoded_bytes(model_.schedules[schedule_index]);
    if (encoded_bytes > flow_schedule_args_bytes_max) {
      return Problem{key, "the arguments encode to " + std::to_string(encoded_bytes) +
                              " bytes, more than the " + std::to_string(flow_schedule_args_bytes_max) +
                              " a flow's start carries"};
    }
    return std::nullopt;
  }

  // parts_taken: 0 when the steps take the argument whole, else its part count.
  static Check check_argument_shape(const std::string& key, const ScheduleArgument& argument,
                                    uint32_t parts_taken) {
    const std::string shown = in_quotes(argument.name);
    if (parts_taken == 0 && argument.in_parts) {
      return Problem{key,
                     "argument " + shown + " is taken whole, so it is given as one string, not in parts"};
    }
    if (parts_taken == 0 && argument.parts.size() != 1) {
      return Problem{key, "a whole value is one part, got " + std::to_string(argument.parts.size())};
    }
    if (parts_taken == 0) return std::nullopt;
    const std::string taken =
        "argument " + shown + " is taken in " + std::to_string(parts_taken) + " parts (\"[split]\")";
    if (!argument.in_parts) {
      return Problem{key, taken + ", so it is given as an array of " + std::to_string(parts_taken) +
                              " strings, not as one"};
    }
    if (argument.parts.size() != parts_taken) {
      return Problem{key, taken + ", got " + std::to_string(argument.parts.size())};
    }
    return std::nullopt;
  }

  const FlowModel& model_;
  const KnownComputeTypes& known_;
  Analysis& analysis_;
  std::map<uint16_t, std::string> first_use_;  // argument index -> key of its first use
};

// ---------------------------------------------------------------------------------------
// The encoded form

class ByteWriter {
 public:
  void u8(uint8_t value) { bytes_.push_back(std::byte{value}); }
  void u16(uint16_t value) {
    for (int shift = 0; shift < 16; shift += 8) u8(uint8_t(value >> shift));
  }
  void u32(uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) u8(uint8_t(value >> shift));
  }
  void text(std::string_view value) {
    assert(value.size() <= std::numeric_limits<uint8_t>::max());
    u8(uint8_t(value.size()));
    for (char c : value) bytes_.push_back(std::byte(c));
  }
  // A byte string of any length the checks allow: a uint32 length and its bytes.
  void long_text(std::string_view value) {
    assert(value.size() <= std::numeric_limits<uint32_t>::max());
    u32(uint32_t(value.size()));
    for (char c : value) bytes_.push_back(std::byte(c));
  }
  void raw(std::span<const std::byte> value) { bytes_.insert(bytes_.end(), value.begin(), value.end()); }
  size_t size() const { return bytes_.size(); }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

uint8_t source_index(const InputSource& source, const Analysis& analysis) {
  switch (source.kind) {
    case InputKind::argument:
    case InputKind::argument_part: return uint8_t(analysis.argument_index.at(source.name));
    case InputKind::step_output: return uint8_t(analysis.step_index.at(source.name));
    case InputKind::split_index: break;
  }
  return 0;
}

// The checks guarantee every count below fits its field.
void encode_schedules(ByteWriter& out, const std::vector<FlowSchedule>& schedules) {
  out.u8(uint8_t(schedules.size()));
  for (const FlowSchedule& schedule : schedules) {
    out.text(schedule.cron);
    out.text(schedule.misfire);
    out.u32(schedule.catch_up_max);
    out.u32(schedule.grace_s);
    out.u8(uint8_t(schedule.args.size()));
    for (const ScheduleArgument& argument : schedule.args) {
      out.text(argument.name);
      out.u8(argument.in_parts ? 1 : 0);
      out.u32(uint32_t(argument.parts.size()));
      for (const std::string& part : argument.parts) out.long_text(part);
    }
  }
}

// The checks guarantee every count and index below fits its field.
std::vector<std::byte> encode_analysed(const FlowModel& model, const Analysis& analysis) {
  ByteWriter out;
  out.raw(model_magic);
  out.u8(flow_model_format_version);
  out.text(model.name);
  out.u32(model.version);
  out.text(model.product);
  out.u8(uint8_t(model.arguments.size()));
  for (const std::string& argument : model.arguments) out.text(argument);
  encode_schedules(out, model.schedules);
  out.u16(uint16_t(model.steps.size()));
  for (size_t index = 0; index < model.steps.size(); ++index) {
    const FlowStep& step = model.steps[index];
    out.text(step.id);
    out.text(step.compute_type);
    out.u32(step.timeout_ms);
    out.u8(uint8_t(step.retries_max));
    out.u32(step.backoff_ms);
    out.u32(step.split);
    out.u32(step.split_failures_max);
    out.u8(uint8_t(analysis.after[index].size()));
    for (uint16_t dependency : analysis.after[index]) out.u8(uint8_t(dependency));
    out.u8(uint8_t(step.input.size()));
    for (const InputSource& source : step.input) {
      out.u8(uint8_t(source.kind));
      out.u8(source_index(source, analysis));
    }
  }
  return out.take();
}

// The checks, and then the size of the encoded form, which depends on everything else.
Check check_model(const FlowModel& model, const KnownComputeTypes& known, Analysis& analysis) {
  if (Check problem = ModelChecker(model, known, analysis).run()) return problem;
  const size_t encoded_bytes = encode_analysed(model, analysis).size();
  if (encoded_bytes <= flow_model_bytes_max) return std::nullopt;
  const std::string too_big = "the model encodes to " + std::to_string(encoded_bytes) + " bytes";
  const std::string limit = "more than the " + std::to_string(flow_model_bytes_max) + " a deploy carries";
  constexpr std::string_view smaller_steps = "fewer steps, shorter names, fewer after or input entries";
  if (model.schedules.empty())
    return Problem{"step", too_big + ", " + limit + " (" + std::string(smaller_steps) + ")"};
  // Each schedule's arguments are within their own bound, but several of them may not be:
  // the problem is placed at whichever part of the model takes more.
  ByteWriter schedules;
  encode_schedules(schedules, model.schedules);
  const std::string share = " (" + std::to_string(schedules.size()) + " of them its schedules), ";
  if (schedules.size() * 2 > encoded_bytes) {
    return Problem{"schedule", too_big + share + limit + " (fewer schedules, or smaller schedule arguments)"};
  }
  return Problem{"step", too_big + share + limit + " (" + std::string(smaller_steps) + ")"};
}

Error bytes_error(std::string_view reason) { return make_error("flow model bytes", reason); }

// "1 byte", "2 bytes".
std::string byte_count(size_t count) { return std::to_string(count) + (count == 1 ? " byte" : " bytes"); }

// Reads the encoded form field by field; each read names the field, for the message when
// the bytes run out.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> bytes) : bytes_(bytes) {}

  Status u8(std::string_view field, uint8_t& value) { return read(field, 1, value); }
  Status u16(std::string_view field, uint16_t& value) { return read(field, 2, value); }
  Status u32(std::string_view field, uint32_t& value) { return read(field, 4, value); }

  Status text(std::string_view field, std::string& value) {
    uint8_t length = 0;
    if (Status s = u8(field, length); !s) return s;
    return chars(field, length, value);
  }
  Status long_text(std::string_view field, std::string& value) {
    uint32_t length = 0;
    if (Status s = u32(field, length); !s) return s;
    return chars(field, length, value);
  }

  size_t offset() const { return offset_; }
  size_t left() const { return bytes_.size() - offset_; }

 private:
  Status chars(std::string_view field, size_t length, std::string& value) {
    if (Status s = need(field, length); !s) return s;
    value.assign(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
    offset_ += length;
    return {};
  }

  Status need(std::string_view field, size_t count) const {
    if (left() >= count) return {};
    return bytes_error("truncated: " + std::string(field) + " at byte " + std::to_string(offset_) +
                       " needs " + byte_count(count) + ", " + std::to_string(left()) + " left");
  }

  template <class Unsigned>
  Status read(std::string_view field, size_t count, Unsigned& value) {
    if (Status s = need(field, count); !s) return s;
    value = 0;
    for (size_t index = 0; index < count; ++index) {
      value |= Unsigned(Unsigned(bytes_[offset_ + index]) << (8 * index));
    }
    offset_ += count;
    return {};
  }

  std::span<const std::byte> bytes_;
  size_t offset_ = 0;
};

// A step as encoded: dependencies and inputs by index, resolved once every step is read.
struct EncodedStep {
  std::vector<uint8_t> after;
  std::vector<std::pair<uint8_t, uint8_t>> inputs;  // kind, index
};

// One argument of a schedule. The layout has one spelling per value: in_parts is 0 or 1,
// and a whole value is one part. Which arguments, in which order and shape, is
// validation's.
Status decode_schedule_argument(ByteReader& in, const std::string& key, ScheduleArgument& argument) {
  uint8_t in_parts = 0;
  uint32_t part_count = 0;
  Status s = in.text(key + ".name", argument.name);
  if (s) s = in.u8(key + ".in_parts", in_parts);
  if (s && in_parts > 1)
    return bytes_error(key + ": in_parts must be 0 or 1, got " + std::to_string(in_parts));
  argument.in_parts = in_parts == 1;
  if (s) s = in.u32(key + ".parts", part_count);
  if (s && !argument.in_parts && part_count != 1) {
    return bytes_error(key + ": a whole value is one part, got " + std::to_string(part_count));
  }
  // Each part reads at least its length, so a huge count runs out of bytes, not memory.
  for (uint32_t part = 0; s && part < part_count; ++part) {
    s = in.long_text(indexed(key + ".parts", part), argument.parts.emplace_back());
  }
  return s;
}

Status decode_schedule(ByteReader& in, const std::string& key, FlowSchedule& schedule) {
  uint8_t count = 0;
  Status s = in.text(key + ".cron", schedule.cron);
  if (s) s = in.text(key + ".misfire", schedule.misfire);
  if (s) s = in.u32(key + ".catch_up_max", schedule.catch_up_max);
  if (s) s = in.u32(key + "." + std::string(misfire_grace_rule.key), schedule.grace_s);
  if (s) s = in.u8(key + ".args", count);
  for (size_t index = 0; s && index < count; ++index) {
    s = decode_schedule_argument(in, indexed(key + ".args", index), schedule.args.emplace_back());
  }
  return s;
}

Status decode_header(ByteReader& in, FlowModel& model) {
  uint8_t magic[4] = {};
  for (uint8_t& byte : magic) {
    if (Status s = in.u8("magic", byte); !s) return s;
  }
  if (!std::equal(std::begin(magic), std::end(magic), model_magic.begin(),
                  [](uint8_t a, std::byte b) { return std::byte{a} == b; })) {
    return bytes_error("not a flow model (no \"KFLW\" magic)");
  }
  uint8_t format = 0;
  if (Status s = in.u8("format version", format); !s) return s;
  if (format != flow_model_format_version) {
    return bytes_error("format version " + std::to_string(format) + ", this keel reads " +
                       std::to_string(flow_model_format_version));
  }
  Status s = in.text("name", model.name);
  if (s) s = in.u32("version", model.version);
  if (s) s = in.text("product", model.product);
  uint8_t count = 0;
  if (s) s = in.u8("arguments", count);
  for (size_t index = 0; s && index < count; ++index) {
    s = in.text(indexed("arguments", index), model.arguments.emplace_back());
  }
  if (s) s = in.u8("schedule", count);
  for (size_t index = 0; s && index < count; ++index) {
    s = decode_schedule(in, indexed("schedule", index), model.schedules.emplace_back());
  }
  return s;
}

Status decode_step(ByteReader& in, size_t index, FlowStep& step, EncodedStep& encoded) {
  uint8_t retries_max = 0;
  Status s = in.text(step_key(index, "id"), step.id);
  if (s) s = in.text(step_key(index, "compute_type"), step.compute_type);
  if (s) s = in.u32(step_key(index, "timeout_ms"), step.timeout_ms);
  if (s) s = in.u8(step_key(index, "retries_max"), retries_max);
  step.retries_max = retries_max;
  if (s) s = in.u32(step_key(index, "backoff_ms"), step.backoff_ms);
  if (s) s = in.u32(step_key(index, "split"), step.split);
  if (s) s = in.u32(step_key(index, "split_failures_max"), step.split_failures_max);
  uint8_t count = 0;
  if (s) s = in.u8(step_key(index, "after"), count);
  for (size_t element = 0; s && element < count; ++element) {
    s = in.u8(step_key(index, "after", element), encoded.after.emplace_back());
  }
  if (s) s = in.u8(step_key(index, "input"), count);
  for (size_t element = 0; s && element < count; ++element) {
    auto& [kind, source_index] = encoded.inputs.emplace_back();
    s = in.u8(step_key(index, "input", element), kind);
    if (s) s = in.u8(step_key(index, "input", element), source_index);
  }
  return s;
}

// An input source from its kind and index: the argument or step the index points at.
// Fails with the reason alone.
Result<InputSource> decode_source(const FlowModel& model, uint8_t kind_byte, uint8_t source_index) {
  const auto out_of_range = [&](size_t count, std::string_view what) {
    return Error{"index " + std::to_string(source_index) + ", but the model has " + std::to_string(count) +
                 " " + std::string(what)};
  };
  const InputKind kind{kind_byte};
  switch (kind) {
    case InputKind::argument:
    case InputKind::argument_part:
      if (source_index >= model.arguments.size()) return out_of_range(model.arguments.size(), "arguments");
      return InputSource{kind, model.arguments[source_index]};
    case InputKind::step_output:
      if (source_index >= model.steps.size()) return out_of_range(model.steps.size(), "steps");
      return InputSource{kind, model.steps[source_index].id};
    case InputKind::split_index:
      if (source_index != 0)
        return Error{"split.index with index " + std::to_string(source_index) + " (must be 0)"};
      return InputSource{kind, ""};
  }
  return Error{"unknown input kind " + std::to_string(kind_byte)};
}

// Names each dependency and input by the id or argument its index points at.
Status resolve_indices(FlowModel& model, const std::vector<EncodedStep>& encoded) {
  for (size_t index = 0; index < model.steps.size(); ++index) {
    FlowStep& step = model.steps[index];
    for (size_t element = 0; element < encoded[index].after.size(); ++element) {
      const uint8_t dependency = encoded[index].after[element];
      if (dependency >= model.steps.size()) {
        return bytes_error(step_key(index, "after", element) + ": step index " + std::to_string(dependency) +
                           ", but the model has " + std::to_string(model.steps.size()) + " steps");
      }
      step.after.push_back(model.steps[dependency].id);
    }
    for (size_t element = 0; element < encoded[index].inputs.size(); ++element) {
      const auto [kind, source_index] = encoded[index].inputs[element];
      Result<InputSource> source = decode_source(model, kind, source_index);
      if (!source) return bytes_error(step_key(index, "input", element) + ": " + source.error().message);
      step.input.push_back(std::move(*source));
    }
  }
  return {};
}

Result<FlowModel> decode_model(std::span<const std::byte> bytes) {
  if (bytes.size() > flow_model_bytes_max) {
    return bytes_error(std::to_string(bytes.size()) + " bytes, more than " +
                       std::to_string(flow_model_bytes_max));
  }
  ByteReader in(bytes);
  FlowModel model;
  if (Status s = decode_header(in, model); !s) return s.error();
  uint16_t step_count = 0;
  if (Status s = in.u16("step", step_count); !s) return s.error();
  std::vector<EncodedStep> encoded;
  for (size_t index = 0; index < step_count; ++index) {
    if (Status s = decode_step(in, index, model.steps.emplace_back(), encoded.emplace_back()); !s)
      return s.error();
  }
  if (in.left() != 0) {
    return bytes_error(byte_count(in.left()) + " after the model's end at byte " +
                       std::to_string(in.offset()));
  }
  if (Status s = resolve_indices(model, encoded); !s) return s.error();
  return model;
}

// ---------------------------------------------------------------------------------------
// The TOML form

constexpr std::string_view root_keys[] = {"name", "version", "product", "arguments", "schedule", "step"};
constexpr std::string_view schedule_keys[] = {"cron", "misfire", "catch_up_max", "misfire_grace_s", "args"};
constexpr std::string_view step_keys[] = {"id",         "compute_type", "after",
                                          "input",      "timeout_ms",   "retries_max",
                                          "backoff_ms", "split",        "split_failures_max"};

// The plain words messages use for a TOML type.
std::string_view type_words(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string position(std::string_view file_name, const toml::source_position& at) {
  return std::string(file_name) + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
}

Error error_at(std::string_view file_name, const toml::node& node, std::string_view key,
               std::string_view reason) {
  return make_error(position(file_name, node.source().begin) + ": " + std::string(key), reason);
}

// One TOML table under reading, named by its key path ("" for the document, "step[2]").
// Only shapes and types are checked here (and integers' ranges, to convert them); the
// values are ModelChecker's.
class TableReader {
 public:
  TableReader(std::string_view file_name, const toml::table& table, std::string dotted)
      : file_name_(file_name), table_(&table), dotted_(std::move(dotted)) {}

  std::string key_path(std::string_view key) const {
    return dotted_.empty() ? std::string(key) : dotted_ + "." + std::string(key);
  }
  // A table inside this one, named by its key ("schedule", "step[2]").
  TableReader child(const toml::table& table, std::string_view key) const {
    return TableReader(file_name_, table, key_path(key));
  }
  Error error(const toml::node& node, std::string_view key, std::string_view reason) const {
    return error_at(file_name_, node, key_path(key), reason);
  }
  Error type_error(const toml::node& node, std::string_view key, std::string_view expected) const {
    return error(node, key,
                 "expected " + std::string(expected) + ", got " + std::string(type_words(node.type())));
  }
  const toml::node* get(std::string_view key) const { return table_->get(key); }

  // Fails at the first key (in key order) that known does not list, so a typo never
  // leaves a default in place.
  Status expect_only(std::span<const std::string_view> known) const {
    for (auto&& [key, node] : *table_) {
      if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
        return error(node, printable_key(key.str()), "unknown key");
      }
    }
    return {};
  }

  Status read_string(std::string_view key, bool required, std::string& value) const {
    const toml::node* node = get(key);
    if (node == nullptr) return required ? error(*table_, key, "required key is missing") : Status{};
    if (!node->is_string()) return type_error(*node, key, "a string");
    value = node->as_string()->get();
    return {};
  }

  Status read_integer(const IntegerRule& rule, bool required, uint32_t& value) const {
    const toml::node* node = get(rule.key);
    if (node == nullptr) return required ? error(*table_, rule.key, "required key is missing") : Status{};
    if (!node->is_integer()) return type_error(*node, rule.key, "an integer");
    const int64_t got = node->as_integer()->get();
    if (got < rule.min || got > rule.max)
      return error(*node, rule.key, range_reason(rule.min, rule.max, got));
    value = uint32_t(got);
    return {};
  }

  // An array of strings, each handed to take with its key ("after[1]") and node.
  template <class Take>
  Status read_strings(std::string_view key, Take take) const {
    const toml::node* node = get(key);
    if (node == nullptr) return {};
    const toml::array* array = node->as_array();
    if (array == nullptr) return type_error(*node, key, "an array of strings");
    for (size_t index = 0; index < array->size(); ++index) {
      const toml::node& item = (*array)[index];
      if (!item.is_string()) return type_error(item, indexed(key, index), "a string");
      if (Status s = take(indexed(key, index), item); !s) return s;
    }
    return {};
  }

 private:
  std::string_view file_name_;
  const toml::table* table_;
  std::string dotted_;
};

// A schedule's argument value as written: the string's bytes, or after "hex:" the bytes
// its hex digits spell. Fails with the reason alone.
Result<std::string> value_bytes(std::string_view text) {
  if (!text.starts_with(hex_prefix)) return std::string(text);
  text.remove_prefix(hex_prefix.size());
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const std::string bad_hex = "bad hex after " + in_quotes(hex_prefix) + ": ";
  for (size_t index = 0; index < text.size(); ++index) {
    if (digit(text[index]) < 0) {
      return Error{bad_hex + in_quotes(text.substr(index, 1)) + " at digit " + std::to_string(index + 1) +
                   " is not a hex digit"};
    }
  }
  if (text.size() % 2 != 0) {
    return Error{bad_hex + "an odd number of digits (" + std::to_string(text.size()) + ")"};
  }
  std::string bytes;
  for (size_t index = 0; index < text.size(); index += 2) {
    bytes.push_back(char(digit(text[index]) * 16 + digit(text[index + 1])));
  }
  return bytes;
}

// One entry of a schedule's args: a string (a whole value) or an array of strings (parts).
Status read_schedule_argument(const TableReader& args, const std::string& key, const toml::node& node,
                              ScheduleArgument& argument) {
  const auto take = [&](const std::string& value_key, const toml::node& value) -> Status {
    Result<std::string> bytes = value_bytes(value.as_string()->get());
    if (!bytes) return args.error(value, value_key, bytes.error().message);
    argument.parts.push_back(std::move(*bytes));
    return {};
  };
  if (node.is_string()) return take(key, node);
  const toml::array* array = node.as_array();
  if (array == nullptr) return args.type_error(node, key, "a string or an array of strings");
  argument.in_parts = true;
  for (size_t index = 0; index < array->size(); ++index) {
    const toml::node& item = (*array)[index];
    if (!item.is_string()) return args.type_error(item, indexed(key, index), "a string");
    if (Status s = take(indexed(key, index), item); !s) return s;
  }
  return {};
}

// `args` maps argument names to values. They are kept in the order of the model's
// arguments, whatever the file's order; names the model does not declare go last, for the
// checks to name.
Status read_schedule_arguments(const TableReader& reader, const std::vector<std::string>& arguments,
                               std::vector<ScheduleArgument>& args) {
  const toml::node* node = reader.get("args");
  if (node == nullptr) return {};
  const toml::table* table = node->as_table();
  if (table == nullptr) return reader.type_error(*node, "args", "a table of argument names");
  const TableReader args_reader = reader.child(*table, "args");
  for (auto&& [name, value] : *table) {
    ScheduleArgument& argument = args.emplace_back();
    argument.name = name.str();
    if (Status s = read_schedule_argument(args_reader, printable_key(name.str()), value, argument); !s)
      return s;
  }
  const auto rank = [&](const ScheduleArgument& argument) {
    return size_t(std::find(arguments.begin(), arguments.end(), argument.name) - arguments.begin());
  };
  std::stable_sort(args.begin(), args.end(),
                   [&](const ScheduleArgument& a, const ScheduleArgument& b) { return rank(a) < rank(b); });
  return {};
}

Status read_schedule(const TableReader& reader, const std::vector<std::string>& arguments,
                     FlowSchedule& schedule) {
  Status s = reader.expect_only(schedule_keys);
  if (s) s = reader.read_string("cron", true, schedule.cron);
  if (s) s = reader.read_string("misfire", false, schedule.misfire);
  if (s) s = reader.read_integer(catch_up_max_rule, false, schedule.catch_up_max);
  if (s) s = reader.read_integer(misfire_grace_rule, false, schedule.grace_s);
  if (s) s = read_schedule_arguments(reader, arguments, schedule.args);
  return s;
}

// `schedule` is one table ([schedule]) or an array of them ([[schedule]]). Reads the
// model's arguments, which come first.
Status read_schedules(const TableReader& root, FlowModel& model) {
  const toml::node* node = root.get("schedule");
  if (node == nullptr) return {};
  if (const toml::table* table = node->as_table()) {
    return read_schedule(root.child(*table, "schedule"), model.arguments, model.schedules.emplace_back());
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) return root.type_error(*node, "schedule", "a table or an array of tables");
  for (size_t index = 0; index < array->size(); ++index) {
    const toml::table* table = (*array)[index].as_table();
    if (table == nullptr) return root.type_error((*array)[index], indexed("schedule", index), "a table");
    const TableReader reader = root.child(*table, indexed("schedule", index));
    if (Status s = read_schedule(reader, model.arguments, model.schedules.emplace_back()); !s) return s;
  }
  return {};
}

Status read_step(const TableReader& reader, FlowStep& step) {
  Status s = reader.expect_only(step_keys);
  if (s) s = reader.read_string("id", true, step.id);
  if (s) s = reader.read_string("compute_type", true, step.compute_type);
  if (s) {
    s = reader.read_strings("after", [&](const std::string&, const toml::node& item) {
      step.after.push_back(item.as_string()->get());
      return Status{};
    });
  }
  if (s) {
    s = reader.read_strings("input", [&](const std::string& key, const toml::node& item) {
      const std::string& text = item.as_string()->get();
      std::optional<InputSource> source = parse_source(text);
      if (!source)
        return Status(
            reader.error(item, key, "must be " + std::string(source_forms) + ", got " + in_quotes(text)));
      step.input.push_back(std::move(*source));
      return Status{};
    });
  }
  if (s) s = reader.read_integer(timeout_rule, false, step.timeout_ms);
  if (s) s = reader.read_integer(retries_rule, false, step.retries_max);
  if (s) s = reader.read_integer(backoff_rule, false, step.backoff_ms);
  if (s) s = reader.read_integer(split_rule, false, step.split);
  if (s) s = reader.read_integer(split_failures_rule, false, step.split_failures_max);
  return s;
}

Status read_steps(const TableReader& root, std::vector<FlowStep>& steps) {
  const toml::node* node = root.get("step");
  if (node == nullptr) return {};
  const toml::array* array = node->as_array();
  if (array == nullptr) return root.type_error(*node, "step", "an array of tables ([[step]])");
  for (size_t index = 0; index < array->size(); ++index) {
    const toml::table* table = (*array)[index].as_table();
    if (table == nullptr) return root.type_error((*array)[index], indexed("step", index), "a table");
    if (Status s = read_step(root.child(*table, indexed("step", index)), steps.emplace_back()); !s) return s;
  }
  return {};
}

Status read_document(const TableReader& root, FlowModel& model) {
  Status s = root.expect_only(root_keys);
  if (s) s = root.read_string("name", true, model.name);
  if (s) s = root.read_integer(version_rule, true, model.version);
  if (s) s = root.read_string("product", true, model.product);
  if (s) {
    s = root.read_strings("arguments", [&](const std::string&, const toml::node& item) {
      model.arguments.push_back(item.as_string()->get());
      return Status{};
    });
  }
  if (s) s = read_schedules(root, model);
  if (s) s = read_steps(root, model.steps);
  return s;
}

// A problem's key as the file spells it: the checks call a single [schedule] table
// "schedule[0]".
std::string key_in_file(const toml::table& document, std::string key) {
  constexpr std::string_view first_schedule = "schedule[0]";
  const toml::node* schedule = document.get("schedule");
  if (key.starts_with(first_schedule) && schedule != nullptr && schedule->is_table()) {
    key.replace(0, first_schedule.size(), "schedule");
  }
  return key;
}

// The node key names, or the nearest one above it that the file holds (a missing key's
// table, or the document).
const toml::node& node_for(const toml::table& document, std::string key) {
  for (;;) {
    if (const toml::node* node = toml::at_path(document, key).node()) return *node;
    const size_t cut = key.find_last_of(".[");
    if (cut == std::string::npos) return document;
    key.erase(cut);
  }
}

}  // namespace

Result<FlowModel> load_flow_model(const std::string& path, const KnownComputeTypes& known_compute_types) {
  Result<std::string> text = config::read_text_file(path, flow_file_bytes_max);
  if (!text) return text.error();
  return parse_flow_model(*text, path, known_compute_types);
}

Result<FlowModel> parse_flow_model(std::string_view text, std::string_view file_name,
                                   const KnownComputeTypes& known_compute_types) {
  toml::table document;
  try {
    document = toml::parse(text, std::string(file_name));
  } catch (const toml::parse_error& error) {
    return make_error(position(file_name, error.source().begin),
                      "TOML syntax: " + escaped(error.description(), false));
  }
  FlowModel model;
  if (Status s = read_document(TableReader(file_name, document, ""), model); !s) return s.error();
  Analysis analysis;
  if (Check problem = check_model(model, known_compute_types, analysis)) {
    const std::string key = key_in_file(document, problem->key);
    return error_at(file_name, node_for(document, key), key, problem->reason);
  }
  return model;
}

Result<void> validate_flow_model(const FlowModel& model, const KnownComputeTypes& known_compute_types) {
  Analysis analysis;
  if (Check problem = check_model(model, known_compute_types, analysis)) {
    return make_error(problem->key, problem->reason);
  }
  return {};
}

Result<CompiledFlow> compile_flow_model(const FlowModel& model) {
  Analysis analysis;
  if (Check problem = check_model(model, std::nullopt, analysis))
    return make_error(problem->key, problem->reason);
  CompiledFlow flow;
  flow.order = std::move(analysis.order);
  flow.argument_parts = std::move(analysis.argument_parts);
  flow.steps.resize(model.steps.size());
  for (uint16_t index = 0; index < model.steps.size(); ++index) {
    CompiledStep& step = flow.steps[index];
    step.dependency_count = uint16_t(analysis.after[index].size());
    if (step.dependency_count == 0) flow.roots.push_back(index);
    // Visiting steps in ascending order keeps each successor list ascending.
    for (uint16_t dependency : analysis.after[index]) flow.steps[dependency].successors.push_back(index);
    for (const InputSource& source : model.steps[index].input) {
      step.inputs.push_back(CompiledInput{source.kind, source_index(source, analysis)});
    }
  }
  return flow;
}

std::vector<std::byte> encode_flow_model(const FlowModel& model) {
  Analysis analysis;
  const Check problem = check_model(model, std::nullopt, analysis);
  assert(!problem && "encode_flow_model: the model is not valid");
  if (problem) return {};
  return encode_analysed(model, analysis);
}

Result<FlowModel> decode_flow_model(std::span<const std::byte> bytes) {
  Result<FlowModel> model = decode_model(bytes);
  if (!model) return model;
  Analysis analysis;
  if (Check problem = check_model(*model, std::nullopt, analysis)) {
    return bytes_error(problem->key + ": " + problem->reason);
  }
  // One model, one byte string: a deploy's hash then names its model, whoever encoded it.
  const std::vector<std::byte> canonical = encode_analysed(*model, analysis);
  if (!std::equal(canonical.begin(), canonical.end(), bytes.begin(), bytes.end())) {
    return bytes_error("not in canonical form (the model it holds encodes differently)");
  }
  return model;
}

MisfireRule misfire_rule_of(const FlowSchedule& schedule) {
  MisfireRule rule;
  const Check problem = make_schedule_rule(schedule, rule);
  assert(!problem && "misfire_rule_of: the schedule is not valid");
  (void)problem;
  return rule;
}

size_t schedule_args_encoded_bytes(const FlowSchedule& schedule) {
  size_t bytes = 0;
  for (const ScheduleArgument& argument : schedule.args) {
    bytes += sizeof(ledger::FlowArgHeader) + argument.name.size();
    if (!argument.in_parts) {
      for (const std::string& part : argument.parts) bytes += part.size();
      continue;
    }
    // A value in parts: each part's uint32 length, then its bytes.
    for (const std::string& part : argument.parts) bytes += sizeof(uint32_t) + part.size();
  }
  return bytes;
}

std::string to_string(const InputSource& source) {
  switch (source.kind) {
    case InputKind::argument: return "args." + source.name;
    case InputKind::argument_part: return "args." + source.name + "[split]";
    case InputKind::step_output: return "steps." + source.name + ".output";
    case InputKind::split_index: return "split.index";
  }
  return "?";
}

}  // namespace keel::flow
