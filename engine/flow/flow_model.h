// keel::flow flow models: a business-process contract as its TOML file gives it (name,
// version, product, steps with their compute types, dependencies, inputs, timeouts,
// retries and splits, and schedules), checked in full, compiled into the form the ledger
// releases steps from, and encoded into the bytes a deploy transaction carries.
//
//   Result<FlowModel> model = load_flow_model("perf/flows/loan_approval.toml", pool_types);
//   if (!model) { std::fprintf(stderr, "keel: %s\n", model.error().message.c_str()); return 2; }
//   std::vector<std::byte> bytes = encode_flow_model(*model);     // the deploy transaction's body
//   Result<FlowModel> deployed = decode_flow_model(bytes);         // checked again; == *model
//   Result<CompiledFlow> flow = compile_flow_model(*deployed);
//   for (uint16_t step : flow->roots) release(step);               // when a flow starts
//   for (uint16_t next : flow->steps[done].successors)             // when step `done` succeeds
//     if (--unfinished[next] == 0) release(next);                  // unfinished: dependency_count
//
// What a model means (perf/flows/README.md documents every key for people who write them):
//
// - A step runs one compute type, split into `split` sub-jobs (1: not split). Each sub-job
//   is one compute task with its own lease (timeout_ms per attempt) and its own retries
//   (retries_max after the first attempt, backoff_ms before the first retry, doubling per
//   retry, at most timeout_ms). A step is released once every step in its `after` has
//   succeeded.
// - A step's input is the concatenation, in the order listed, of its sources' bytes:
//     "args.<name>"          the flow argument <name>, the same bytes for every sub-job
//     "args.<name>[split]"   part k of the argument <name>, for sub-job k: the flow's start
//                            gives that argument as exactly `split` parts
//     "steps.<id>.output"    the output of step <id>, which must come before this one
//                            (through `after`, directly or not); a split step's output is
//                            its succeeded sub-jobs' outputs, in sub-job order
//     "split.index"          8 bytes: uint32 sub-job index, uint32 sub-job count (LE)
//   Concatenation keeps the shipped plugins' own input formats usable as they are; the
//   engine refuses (fails the sub-job) an input over ledger::compute_input_bytes_max.
// - A split step succeeds when at most split_failures_max of its sub-jobs failed (after
//   their retries); with the default 0 any failed sub-job fails it, which is what money
//   movements want. A step that fails fails its flow: nothing after it is released.
//
// - A schedule starts a flow at each time its cron expression fires (UTC), with the
//   arguments it gives: every argument of the model, each whole or in parts as the steps
//   take it, so that a timer can start the flow with no one at hand. Its misfire rule
//   (cron.h) says what the timer does about the fires it missed while the engine was down.
//
// Limits, so that a model fits a deploy transaction and a flow's state stays bounded: at
// most flow_steps_max steps (a step index fits one byte), flow_step_inputs_max inputs a
// step, flow_arguments_max arguments, flow_schedules_max schedules (each giving at most
// flow_schedule_args_bytes_max bytes of arguments), flow_split_max sub-jobs a step and
// flow_sub_jobs_max in all, and flow_model_bytes_max bytes encoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/flow/cron.h"
#include "error/result.h"

namespace keel::flow {

// Contract, product, argument and step names: 1..flow_name_chars_max characters of
// [a-z0-9_]. Compute types follow ledger::is_compute_type_name (the same rule).
inline constexpr size_t flow_name_chars_max = 32;
inline constexpr size_t flow_steps_max = 256;
inline constexpr size_t flow_step_inputs_max = 16;
inline constexpr size_t flow_arguments_max = 32;
inline constexpr size_t flow_schedules_max = 8;
inline constexpr size_t flow_cron_bytes_max = 64;
inline constexpr size_t flow_misfire_bytes_max = 32;
// A schedule's arguments as a flow start encodes them (schedule_args_encoded_bytes): the
// most a flow start carries, ledger::flow_args_bytes_max.
inline constexpr size_t flow_schedule_args_bytes_max = 16384;
inline constexpr uint32_t flow_split_max = 65536;
inline constexpr uint64_t flow_sub_jobs_max = 1 << 20;  // summed over a model's steps
inline constexpr uint32_t flow_timeout_ms_max = 3'600'000;
inline constexpr uint32_t flow_retries_max = 100;
inline constexpr uint32_t flow_backoff_ms_max = 60'000;
// A deploy transaction carries the encoded model; ledger::tx_bytes_max is 64 KiB.
inline constexpr size_t flow_model_bytes_max = 32768;
// A model's TOML file, comments included; load_flow_model refuses bigger files.
inline constexpr size_t flow_file_bytes_max = 256 * 1024;
inline constexpr uint8_t flow_model_format_version = 2;

// Where a step's input bytes come from. The values are part of the encoded form.
enum class InputKind : uint8_t {
  argument = 1,       // "args.<name>"
  argument_part = 2,  // "args.<name>[split]"
  step_output = 3,    // "steps.<id>.output"
  split_index = 4,    // "split.index"
};

struct InputSource {
  InputKind kind = InputKind::split_index;
  std::string name;  // the argument's name or the step's id; empty for split_index

  friend bool operator==(const InputSource&, const InputSource&) = default;
};

struct FlowStep {
  std::string id;
  std::string compute_type;
  std::vector<std::string> after;   // ids of the steps that must succeed first, in file order
  std::vector<InputSource> input;   // concatenated in this order
  uint32_t timeout_ms = 10'000;     // one attempt's lease: 1..flow_timeout_ms_max
  uint32_t retries_max = 3;         // attempts after the first: 0..flow_retries_max
  uint32_t backoff_ms = 100;        // before the first retry, doubling: 0..flow_backoff_ms_max
  uint32_t split = 1;               // sub-jobs: 1..flow_split_max
  uint32_t split_failures_max = 0;  // failed sub-jobs the step survives: 0..split-1

  friend bool operator==(const FlowStep&, const FlowStep&) = default;
};

// One argument a scheduled flow starts with: a whole value, or (for an argument some step
// takes "[split]") its parts, one per sub-job.
struct ScheduleArgument {
  std::string name;
  bool in_parts = false;
  std::vector<std::string> parts;  // in_parts: one per sub-job; else exactly one: the value

  friend bool operator==(const ScheduleArgument&, const ScheduleArgument&) = default;
};

// A cron schedule that starts the flow by itself (the ledger's timer fires it), checked in
// full: the cron text parses (parse_cron), the misfire settings make a rule
// (make_misfire_rule, misfire_rule_of gives it), and the arguments are exactly the ones a
// transaction's start of the flow would give. The TOML keys are the field names, except
// grace_s, which is misfire_grace_s there.
struct FlowSchedule {
  std::string cron;                    // 1..flow_cron_bytes_max bytes; parse_cron must accept it
  std::string misfire;                 // "" (= fire_once), "skip", "fire_once", "catch_up"
  uint32_t catch_up_max = 0;           // 1..catch_up_max_limit with catch_up; 0 otherwise
  uint32_t grace_s = 60;               // 0..misfire_grace_s_limit: a fire this late is on time
  std::vector<ScheduleArgument> args;  // exactly the model's arguments, in the model's `arguments` order

  friend bool operator==(const FlowSchedule&, const FlowSchedule&) = default;
};

// The misfire rule of a valid schedule (validate_flow_model passed): the policy misfire
// names (fire_once when it is empty), with its catch_up_max and grace_s. Asserts on a
// schedule that validation would refuse.
MisfireRule misfire_rule_of(const FlowSchedule& schedule);

// Bytes the schedule's arguments take in a flow start's encoding (ledger encode_flow_args
// form): per argument 8 + name bytes + value bytes, where a value in parts is, per part,
// 4 + the part's bytes. Validation refuses more than flow_schedule_args_bytes_max.
size_t schedule_args_encoded_bytes(const FlowSchedule& schedule);

struct FlowModel {
  std::string name;                     // the contract's name
  uint32_t version = 1;                 // 1 and up
  std::string product;                  // the product it belongs to
  std::vector<std::string> arguments;   // the names a flow's start gives bytes for
  std::vector<FlowSchedule> schedules;  // empty: started by transactions only
  std::vector<FlowStep> steps;          // in file order: 1..flow_steps_max

  friend bool operator==(const FlowModel&, const FlowModel&) = default;
};

// The compute types a model may use (those the engine's pools serve), or nullopt to accept
// any well-formed name. Decoding never checks them: a deploy transaction must decode the
// same on every engine and in every replay, whatever its pools. `keel flow deploy
// --config` checks a model against the pools before sending it; on the ledger a job whose
// type no pool serves ends no_pool (failed).
using KnownComputeTypes = std::optional<std::set<std::string>>;

// Reads the file at path (at most flow_file_bytes_max bytes) and parses it as
// parse_flow_model does. Fails with "<path>: cannot read: <strerror>" (or "... larger
// than 262144 bytes"), else as parse_flow_model.
Result<FlowModel> load_flow_model(const std::string& path, const KnownComputeTypes& known_compute_types);

// Parses and checks a flow model held in text; file_name names it in messages. Fails on
// the first problem, with one line "<file>:<line>:<column>: <key>: <reason>", e.g.
//   loan.toml:16:19: step[3].after[1]: unknown step "riks" (steps: hash, score, risk, decision)
//   loan.toml:10:18: step[1].after[1]: a cycle: risk -> decision -> risk (each comes after the next)
// or "<file>:<line>:<column>: TOML syntax: <reason>". Unknown keys, wrong types, values
// out of range, bad names, duplicate ids, unknown steps, arguments or compute types,
// cycles, inputs from steps that do not come first, and schedules whose cron or misfire
// settings do not parse or whose args are not the model's arguments as its steps take
// them are all errors. A schedule's argument value is a string's UTF-8 bytes, or, when it
// starts with "hex:", the bytes the hex digits after it spell.
Result<FlowModel> parse_flow_model(std::string_view text, std::string_view file_name,
                                   const KnownComputeTypes& known_compute_types);

// Checks a model made some other way (in code, or decoded) by every rule parse_flow_model
// applies. Fails with "<key>: <reason>", e.g. "step[3].split: must be from 1 to 65536, got 0".
Result<void> validate_flow_model(const FlowModel& model, const KnownComputeTypes& known_compute_types);

// What the ledger runs a flow from. Step numbers are indices into FlowModel::steps.
struct CompiledInput {
  InputKind kind = InputKind::split_index;
  uint16_t index = 0;  // into FlowModel::arguments or FlowModel::steps; 0 for split_index

  friend bool operator==(const CompiledInput&, const CompiledInput&) = default;
};

struct CompiledStep {
  // Steps in `after`: a flow run keeps one counter per step starting here, and a step is
  // released when its counter reaches 0.
  uint16_t dependency_count = 0;
  std::vector<uint16_t> successors;  // steps whose after names this one, ascending
  std::vector<CompiledInput> inputs;
};

struct CompiledFlow {
  // Every step once, each after all of its dependencies; among steps ready together, the
  // one written first. Deterministic: the same model always gives the same order.
  std::vector<uint16_t> order;
  std::vector<uint16_t> roots;  // steps with no dependencies, ascending: released at start
  std::vector<CompiledStep> steps;
  // Per argument: 0 when steps take it whole, else the parts its start must give.
  std::vector<uint32_t> argument_parts;
};

// Validates the model (as validate_flow_model, any compute type) and compiles it.
Result<CompiledFlow> compile_flow_model(const FlowModel& model);

// The model's encoded form, at most flow_model_bytes_max bytes: deterministic (equal
// models give equal bytes) and the only form decode_flow_model accepts for that model.
// Little-endian; strings are a uint8 length and their bytes; steps, arguments and
// dependencies are referred to by index. Version 2:
//   u32 magic "KFLW" | u8 format version | str name | u32 version | str product
//   u8 argument count, str each
//   u8 schedule count, then per schedule: str cron | str misfire | u32 catch_up_max
//     | u32 grace_s | u8 argument count, then per argument (in the model's arguments
//     order): str name | u8 in_parts (0 or 1) | u32 part count (1 when whole)
//     | per part: u32 bytes, the bytes
//   u16 step count, then per step: str id | str compute type | u32 timeout_ms
//     | u8 retries_max | u32 backoff_ms | u32 split | u32 split_failures_max
//     | u8 after count, u8 step index each | u8 input count, (u8 kind, u8 index) each
// The model must be valid (as parse_flow_model and decode_flow_model give it); an invalid
// one is a bug, and asserts.
std::vector<std::byte> encode_flow_model(const FlowModel& model);

// Decodes and checks bytes from encode_flow_model, which may come from anyone: any other
// bytes (truncated, trailing, out of range, not canonical, or a model that fails
// validate_flow_model) give an Error "flow model bytes: <reason>", never a crash. Compute
// types are not checked against any pool (see KnownComputeTypes).
Result<FlowModel> decode_flow_model(std::span<const std::byte> bytes);

// A source as written in a model: "args.document", "args.accounts[split]",
// "steps.hash.output", "split.index".
std::string to_string(const InputSource& source);

}  // namespace keel::flow
