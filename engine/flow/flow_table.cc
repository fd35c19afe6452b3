#include "engine/flow/flow_table.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <set>
#include <tuple>

#include "engine/ledger/transaction.h"  // FlowArgHeader: header-only, as flow_model.cc uses it

namespace keel::flow {

std::string_view flow_status_text(FlowStatus status) {
  switch (status) {
    case FlowStatus::created: return "created";
    case FlowStatus::running: return "running";
    case FlowStatus::paused: return "paused";
    case FlowStatus::succeeded: return "succeeded";
    case FlowStatus::failed: return "failed";
    case FlowStatus::cancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view job_status_text(JobStatus status) {
  switch (status) {
    case JobStatus::pending: return "pending";
    case JobStatus::running: return "running";
    case JobStatus::succeeded: return "succeeded";
    case JobStatus::failed: return "failed";
    case JobStatus::timed_out: return "timed_out";
    case JobStatus::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {

bool step_finished(JobStatus status) { return status >= JobStatus::succeeded; }

}  // namespace

FlowTable::FlowTable(FlowTableLimits limits) : limits_(limits) {
  assert(limits_.live_flows_max > 0);
}

FlowPlan plan_of(const FlowModel& model) {
  FlowPlan plan{model.name, model.version, model.product, {}};
  auto index_of = [&](const std::string& id) {
    for (size_t step = 0; step < model.steps.size(); ++step)
      if (model.steps[step].id == id) return uint16_t(step);
    assert(false && "a valid model's after names its own steps");
    return uint16_t(0);
  };
  for (const FlowStep& step : model.steps) {
    StepPlan step_plan{step.split, step.split_failures_max, {}, false};
    for (const std::string& id : step.after) step_plan.dependencies.push_back(index_of(id));
    plan.steps.push_back(std::move(step_plan));
  }
  for (const FlowStep& step : model.steps)
    for (const InputSource& source : step.input)
      if (source.kind == InputKind::step_output) plan.steps[index_of(source.name)].output_kept = true;
  return plan;
}

std::optional<uint32_t> FlowTable::find_plan(std::string_view contract, uint32_t version) const {
  std::optional<uint32_t> found;
  for (uint32_t index = 0; index < plans_.size(); ++index) {
    const FlowPlan& plan = plans_[index];
    if (plan.contract != contract) continue;
    if (version != 0 ? plan.version == version : (!found || plan.version > plans_[*found].version)) found = index;
  }
  return found;
}

std::optional<uint32_t> FlowTable::find_product(std::string_view name) const {
  for (uint32_t index = 0; index < products_.size(); ++index)
    if (products_[index].name == name) return index;
  return std::nullopt;
}

bool FlowTable::can_add_plan(const FlowModel& model) const {
  return plans_.size() < limits_.plans_max && (find_product(model.product) || products_.size() < limits_.products_max);
}

uint32_t FlowTable::add_plan(FlowModel model) {
  assert(!find_plan(model.name, model.version));
  assert(can_add_plan(model));
  FlowPlan plan = plan_of(model);
  Result<CompiledFlow> compiled = compile_flow_model(model);
  assert(compiled);
  compiled_.push_back(std::move(*compiled));
  models_.push_back(std::move(model));
  plan_product_.push_back(product_index(plan.product));
  // Successor lists, so a finished step releases its successors without a scan.
  std::vector<std::vector<uint16_t>> successors(plan.steps.size());
  for (size_t step = 0; step < plan.steps.size(); ++step)
    for (uint16_t dependency : plan.steps[step].dependencies) successors.at(dependency).push_back(uint16_t(step));
  plan_successors_.push_back(std::move(successors));
  plans_.push_back(std::move(plan));
  return uint32_t(plans_.size() - 1);
}

void FlowTable::set_timers(uint32_t plan, const std::vector<bool>& fired_here) {
  const std::string& contract = plans_.at(plan).contract;
  assert(fired_here.size() == models_.at(plan).schedules.size());
  std::vector<bool> kept(fired_here.size(), false);
  for (auto it = timers_.begin(); it != timers_.end();) {
    FlowTimer& timer = it->second;
    if (timer.contract != contract) {
      ++it;
      continue;
    }
    if (timer.schedule < fired_here.size() && fired_here[timer.schedule]) {
      // The recorded fire time stands only for the same schedule: a changed one (or one
      // that had stopped firing) is armed again from the clock, as a new timer is.
      Result<CronSchedule> before = parse_cron(models_.at(timer.plan).schedules.at(timer.schedule).cron);
      Result<CronSchedule> after = parse_cron(models_.at(plan).schedules.at(timer.schedule).cron);
      if (!before || !after || *before != *after || timer.next_fire_s == timer_never) timer.next_fire_s = timer_unarmed;
      timer.plan = plan;
      kept[timer.schedule] = true;
      ++it;
    } else {
      it = timers_.erase(it);
    }
  }
  for (uint32_t schedule = 0; schedule < fired_here.size(); ++schedule) {
    if (!fired_here[schedule] || kept[schedule]) continue;
    uint64_t id = next_timer_++;
    timers_.emplace(id, FlowTimer{id, contract, schedule, plan, timer_unarmed, 0, 0});
  }
  ++timers_generation_;
}

const FlowTimer* FlowTable::timer(uint64_t id) const {
  auto it = timers_.find(id);
  return it == timers_.end() ? nullptr : &it->second;
}

void FlowTable::record_started(uint64_t id, uint64_t flows_started) { timers_.at(id).flows_started += flows_started; }

void FlowTable::record_fire(uint64_t id, uint64_t next_fire_s, uint64_t flows_started, bool misfires_dropped) {
  FlowTimer& timer = timers_.at(id);
  timer.next_fire_s = next_fire_s;
  timer.flows_started += flows_started;
  timer.misfires_dropped += misfires_dropped ? 1 : 0;
  ++timers_generation_;
}

// A product named for the first time gets the default settings.
uint32_t FlowTable::product_index(std::string_view name) {
  if (std::optional<uint32_t> found = find_product(name)) return *found;
  products_.push_back(Product{std::string(name), ProductSettings{}, 0, {}, 0});
  order_products();
  return uint32_t(products_.size() - 1);
}

// Priority descending; ties keep the order the products were first named in.
void FlowTable::order_products() {
  product_order_.resize(products_.size());
  for (uint32_t index = 0; index < products_.size(); ++index) product_order_[index] = index;
  std::stable_sort(product_order_.begin(), product_order_.end(), [&](uint32_t a, uint32_t b) {
    return products_[a].settings.priority > products_[b].settings.priority;
  });
}

bool FlowTable::set_product(std::string_view name, ProductSettings settings, std::vector<JobDispatch>& out) {
  if (!find_product(name) && products_.size() >= limits_.products_max) return false;
  uint32_t index = product_index(name);
  products_[index].settings = settings;
  order_products();
  dispatch(out);
  return true;
}

StartResult FlowTable::start(std::string_view key, uint32_t plan_index, std::vector<JobDispatch>& out,
                             std::string_view args) {
  if (auto found = key_flows_.find(std::string(key)); found != key_flows_.end())
    return {StartOutcome::existing, found->second};
  if (plan_index >= plans_.size()) return {StartOutcome::unknown_plan, 0};
  if (live_.size() >= limits_.live_flows_max) return {StartOutcome::flows_full, 0};
  const FlowPlan& plan = plans_[plan_index];
  uint64_t flow_id = next_flow_++;
  LiveFlow& flow = live_[flow_id];
  flow.key = std::string(key);
  flow.args = std::string(args);
  flow.plan = plan_index;
  flow.steps_left = uint32_t(plan.steps.size());
  flow.steps.resize(plan.steps.size());
  for (size_t step = 0; step < plan.steps.size(); ++step)
    flow.steps[step].dependencies_left = uint16_t(plan.steps[step].dependencies.size());
  key_flows_.emplace(flow.key, flow_id);
  ++counters_.flows_started;
  for (size_t step = 0; step < plan.steps.size(); ++step)
    if (flow.steps[step].dependencies_left == 0) make_ready(flow_id, flow, uint16_t(step));
  dispatch(out);
  return {StartOutcome::started, flow_id};
}

void FlowTable::make_ready(uint64_t flow_id, LiveFlow& flow, uint16_t step) {
  StepState& state = flow.steps[step];
  if (state.queued) return;
  state.queued = true;
  state.ready_ns = metrics_clock_ != nullptr ? metrics_clock_() : 0;
  products_[plan_product_[flow.plan]].ready.emplace_back(flow_id, step);
}

// Fills every product's free running slots from its queue, products by priority. An
// entry of a flow that is paused or gone, or of a step with nothing left to send, is
// dropped (the flow re-queues its ready steps when resumed).
void FlowTable::dispatch(std::vector<JobDispatch>& out) {
  for (uint32_t product_index : product_order_) {
    Product& product = products_[product_index];
    while (product.running < product.settings.running_max && running_.size() < limits_.running_jobs_max &&
           !product.ready.empty()) {
      auto [flow_id, step] = product.ready.front();
      auto live = live_.find(flow_id);
      if (live == live_.end()) {
        product.ready.pop_front();
        --product.dead_entries;
        continue;
      }
      LiveFlow& flow = live->second;
      StepState& state = flow.steps[step];
      const StepPlan& step_plan = plans_[flow.plan].steps[step];
      if (flow.status == FlowStatus::paused || state.dispatched == step_plan.split || step_finished(state.status)) {
        state.queued = false;
        product.ready.pop_front();
        continue;
      }
      uint64_t job_mark = next_job_mark_++;
      uint32_t sub_job = state.dispatched++;
      running_.emplace(job_mark, RunningJob{flow_id, step, sub_job, uint32_t(flow.running.size())});
      flow.running.push_back(job_mark);
      ++product.running;
      state.status = JobStatus::running;
      if (flow.status == FlowStatus::created) flow.status = FlowStatus::running;
      ++counters_.jobs_dispatched;
      out.push_back(JobDispatch{job_mark, flow_id, step, sub_job, step_plan.split, state.ready_ns});
      if (state.dispatched == step_plan.split) {
        state.queued = false;
        product.ready.pop_front();
      }
    }
  }
}

void FlowTable::forget_running(LiveFlow& flow, uint64_t job_mark) {
  auto found = running_.find(job_mark);
  assert(found != running_.end());
  uint32_t position = found->second.position;
  uint64_t moved = flow.running.back();
  flow.running[position] = moved;
  running_.at(moved).position = position;
  flow.running.pop_back();
  --products_[plan_product_[flow.plan]].running;
  running_.erase(found);
}

CompleteOutcome FlowTable::complete(uint64_t job_mark, JobOutcome outcome, std::string_view output,
                                    std::vector<JobDispatch>& out) {
  auto found = running_.find(job_mark);
  if (found == running_.end()) {
    ++counters_.results_stale;
    return CompleteOutcome::stale;
  }
  RunningJob job = found->second;
  auto live = live_.find(job.flow);
  assert(live != live_.end());  // ending a flow forgets its running jobs
  LiveFlow& flow = live->second;
  forget_running(flow, job_mark);
  const StepPlan& step_plan = plans_[flow.plan].steps[job.step];
  StepState& state = flow.steps[job.step];
  ++state.finished;
  uint64_t flow_id = job.flow;
  if (outcome == JobOutcome::succeeded) {
    ++counters_.jobs_succeeded;
    ++flow.jobs_succeeded;
    if (step_plan.output_kept) {
      // The bound holds as outputs arrive, not only once the step is whole: a step whose
      // kept output would pass it fails now, and the output is not kept.
      size_t kept_bytes = output.size();
      for (const std::string& part : state.outputs) kept_bytes += part.size();
      if (kept_bytes > limits_.output_bytes_max) {
        finish_step(flow_id, flow, job.step, JobStatus::failed);
        dispatch(out);
        return CompleteOutcome::applied;
      }
      if (state.outputs.empty()) state.outputs.resize(step_plan.split);
      state.outputs[job.sub_job] = std::string(output);
    }
  } else {
    ++(outcome == JobOutcome::timed_out ? counters_.jobs_timed_out : counters_.jobs_failed);
    ++flow.jobs_failed;
    ++state.failed;
  }
  if (state.failed > step_plan.split_failures_max) {
    finish_step(flow_id, flow, job.step, outcome == JobOutcome::timed_out ? JobStatus::timed_out : JobStatus::failed);
  } else if (state.finished == step_plan.split) {
    finish_step(flow_id, flow, job.step, JobStatus::succeeded);
  }
  dispatch(out);
  return CompleteOutcome::applied;
}

// A step ended: success releases its successors (and may end the flow); failure ends the
// flow failed.
void FlowTable::finish_step(uint64_t flow_id, LiveFlow& flow, uint16_t step, JobStatus status) {
  flow.steps[step].status = status;
  if (status != JobStatus::succeeded) {
    end_flow(flow_id, FlowStatus::failed);
    return;
  }
  if (--flow.steps_left == 0) {
    end_flow(flow_id, FlowStatus::succeeded);
    return;
  }
  for (uint16_t successor : plan_successors_[flow.plan][step]) {
    StepState& state = flow.steps[successor];
    assert(state.dependencies_left > 0);
    if (--state.dependencies_left == 0) make_ready(flow_id, flow, uint16_t(successor));
  }
}

// The flow leaves the live table: its running jobs are forgotten (their results become
// stale), its unfinished steps cancelled, and a summary is kept.
void FlowTable::end_flow(uint64_t flow_id, FlowStatus status) {
  auto live = live_.find(flow_id);
  assert(live != live_.end());
  LiveFlow& flow = live->second;
  while (!flow.running.empty()) forget_running(flow, flow.running.back());
  // Its queued steps' entries are dead now; a queue mostly dead is compacted, so ended
  // flows cannot pile entries up behind a product that has no free slot.
  Product& product = products_[plan_product_[flow.plan]];
  for (const StepState& state : flow.steps) product.dead_entries += state.queued;
  switch (status) {
    case FlowStatus::succeeded: ++counters_.flows_succeeded; break;
    case FlowStatus::failed: ++counters_.flows_failed; break;
    case FlowStatus::cancelled: ++counters_.flows_cancelled; break;
    default: assert(false);
  }
  finished_.emplace(flow_id, FinishedFlow{flow_id, flow.key, flow.plan, status, flow.jobs_succeeded, flow.jobs_failed});
  finished_order_.push_back(flow_id);
  live_.erase(live);
  if (product.dead_entries > 64 && product.dead_entries * 2 > product.ready.size()) {
    std::erase_if(product.ready, [&](const std::pair<uint64_t, uint16_t>& entry) { return !live_.contains(entry.first); });
    product.dead_entries = 0;
  }
  while (finished_order_.size() > limits_.finished_kept_max) {
    auto oldest = finished_.find(finished_order_.front());
    key_flows_.erase(oldest->second.key);
    finished_.erase(oldest);
    finished_order_.pop_front();
  }
}

ControlOutcome FlowTable::pause(uint64_t flow_id) {
  auto live = live_.find(flow_id);
  if (live == live_.end()) return finished_.contains(flow_id) ? ControlOutcome::not_allowed : ControlOutcome::unknown_flow;
  if (live->second.status == FlowStatus::paused) return ControlOutcome::not_allowed;
  live->second.status = FlowStatus::paused;
  return ControlOutcome::applied;
}

ControlOutcome FlowTable::resume(uint64_t flow_id, std::vector<JobDispatch>& out) {
  auto live = live_.find(flow_id);
  if (live == live_.end()) return finished_.contains(flow_id) ? ControlOutcome::not_allowed : ControlOutcome::unknown_flow;
  LiveFlow& flow = live->second;
  if (flow.status != FlowStatus::paused) return ControlOutcome::not_allowed;
  flow.status = flow.running.empty() && flow.jobs_succeeded + flow.jobs_failed == 0 ? FlowStatus::created
                                                                                     : FlowStatus::running;
  const FlowPlan& plan = plans_[flow.plan];
  for (size_t step = 0; step < plan.steps.size(); ++step) {
    const StepState& state = flow.steps[step];
    if (state.dependencies_left == 0 && !step_finished(state.status) && state.dispatched < plan.steps[step].split)
      make_ready(flow_id, flow, uint16_t(step));
  }
  dispatch(out);
  return ControlOutcome::applied;
}

ControlOutcome FlowTable::cancel(uint64_t flow_id, std::vector<JobDispatch>& out) {
  auto live = live_.find(flow_id);
  if (live == live_.end()) return finished_.contains(flow_id) ? ControlOutcome::not_allowed : ControlOutcome::unknown_flow;
  for (StepState& state : live->second.steps)
    if (!step_finished(state.status)) state.status = JobStatus::cancelled;
  end_flow(flow_id, FlowStatus::cancelled);
  dispatch(out);  // its product's slots are free again
  return ControlOutcome::applied;
}

std::optional<FlowSummary> FlowTable::summary(uint64_t flow_id) const {
  if (auto live = live_.find(flow_id); live != live_.end()) {
    const LiveFlow& flow = live->second;
    FlowSummary summary{flow_id, flow.key, flow.plan, flow.status, uint32_t(flow.running.size()),
                        flow.jobs_succeeded, flow.jobs_failed, {}};
    for (const StepState& state : flow.steps) summary.steps.push_back(state.status);
    return summary;
  }
  if (auto finished = finished_.find(flow_id); finished != finished_.end()) {
    const FinishedFlow& flow = finished->second;
    return FlowSummary{flow_id, flow.key, flow.plan, flow.status, 0, flow.jobs_succeeded, flow.jobs_failed, {}};
  }
  return std::nullopt;
}

std::vector<uint64_t> FlowTable::flow_ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(live_.size() + finished_.size());
  for (const auto& [flow_id, flow] : live_) ids.push_back(flow_id);
  for (const auto& [flow_id, flow] : finished_) ids.push_back(flow_id);
  return ids;
}

std::string_view FlowTable::args(uint64_t flow_id) const {
  auto live = live_.find(flow_id);
  return live == live_.end() ? std::string_view() : std::string_view(live->second.args);
}

std::optional<uint64_t> FlowTable::flow_of_key(std::string_view key) const {
  auto found = key_flows_.find(std::string(key));
  if (found == key_flows_.end()) return std::nullopt;
  return found->second;
}

std::optional<std::string> FlowTable::output(uint64_t flow_id, uint16_t step) const {
  auto live = live_.find(flow_id);
  if (live == live_.end() || step >= live->second.steps.size()) return std::nullopt;
  const StepState& state = live->second.steps[step];
  if (state.status != JobStatus::succeeded || !plans_[live->second.plan].steps[step].output_kept) return std::nullopt;
  std::string joined;
  for (const std::string& part : state.outputs) joined += part;
  return joined;
}

std::vector<JobDispatch> FlowTable::running_jobs() const {
  std::vector<JobDispatch> jobs;
  jobs.reserve(running_.size());
  for (const auto& [job_mark, job] : running_)
    jobs.push_back(JobDispatch{job_mark, job.flow, job.step, job.sub_job,
                               plans_[live_.at(job.flow).plan].steps[job.step].split});
  std::sort(jobs.begin(), jobs.end(), [](const JobDispatch& a, const JobDispatch& b) { return a.job_mark < b.job_mark; });
  return jobs;
}

FlowTableMemory FlowTable::memory() const {
  // A node of a std::map or std::unordered_map: the value plus about four pointers; a key
  // index entry: its node, the key's string and its bucket.
  constexpr uint64_t node_overhead = 32;
  auto key_entry = [&](const std::string& key) {
    return sizeof(std::pair<const std::string, uint64_t>) + node_overhead + 8 + (key.capacity() > 15 ? key.capacity() : 0);
  };
  auto heap_of = [](const std::string& text) -> uint64_t { return text.capacity() > 15 ? text.capacity() + 1 : 0; };
  FlowTableMemory memory;
  for (const auto& [flow_id, flow] : live_) {
    memory.live_bytes += sizeof(std::pair<const uint64_t, LiveFlow>) + node_overhead + heap_of(flow.key) +
                         heap_of(flow.args) + flow.steps.capacity() * sizeof(StepState) +
                         flow.running.capacity() * sizeof(uint64_t) + key_entry(flow.key);
    for (const StepState& step : flow.steps) {
      memory.live_bytes += step.outputs.capacity() * sizeof(std::string);
      for (const std::string& part : step.outputs) memory.live_bytes += heap_of(part);
    }
  }
  memory.live_bytes += running_.size() * (sizeof(std::pair<const uint64_t, RunningJob>) + node_overhead + 8);
  for (const auto& [flow_id, flow] : finished_)
    memory.finished_bytes += sizeof(std::pair<const uint64_t, FinishedFlow>) + node_overhead + heap_of(flow.key) +
                             key_entry(flow.key) + sizeof(uint64_t);
  return memory;
}

std::optional<ProductSettings> FlowTable::product_settings(std::string_view name) const {
  std::optional<uint32_t> index = find_product(name);
  if (!index) return std::nullopt;
  return products_[*index].settings;
}

uint64_t FlowTable::queued_jobs(const Product& product) const {
  uint64_t queued = 0;
  for (const auto& [flow_id, step] : product.ready) {
    auto live = live_.find(flow_id);
    if (live == live_.end() || live->second.status == FlowStatus::paused) continue;
    const StepState& state = live->second.steps[step];
    queued += plans_[live->second.plan].steps[step].split - state.dispatched;
  }
  return queued;
}

uint64_t FlowTable::product_queued(std::string_view name) const {
  std::optional<uint32_t> index = find_product(name);
  return index ? queued_jobs(products_[*index]) : 0;
}

uint32_t FlowTable::product_running(std::string_view name) const {
  for (const Product& product : products_)
    if (product.name == name) return product.running;
  return 0;
}

void FlowTable::product_loads(std::vector<ProductLoad>& out) const {
  out.clear();
  for (const Product& product : products_)
    out.push_back({product.name, product.settings, queued_jobs(product), product.running});
}

}  // namespace keel::flow

namespace keel::flow {

std::optional<uint32_t> argument_part_count(std::string_view value) {
  size_t offset = 0;
  uint32_t parts = 0;
  while (offset < value.size()) {
    uint32_t size = 0;
    if (value.size() - offset < sizeof size) return std::nullopt;
    std::memcpy(&size, value.data() + offset, sizeof size);
    offset += sizeof size;
    if (value.size() - offset < size) return std::nullopt;
    offset += size;
    ++parts;
  }
  return parts;
}

namespace {

constexpr uint32_t table_magic = 0x3154464b;  // "KFT1"
constexpr uint32_t table_format_version = 2;  // 1: no timers (still read)
constexpr size_t name_bytes_max = 256;
constexpr size_t key_bytes_max = 1024;
constexpr size_t args_bytes_max = 1 << 20;

using ledger::put;
using ledger::put_string32;

// Why a live flow's arguments are not ones the ledger starts a flow of `model` with, or
// nullopt: its flow_start refuses arguments that are not encode_flow_args's form (per
// argument a FlowArgHeader, the name, the value; names ascending), that are not exactly
// the declared ones, or whose argument taken in parts has not that many parts, and a
// timer's fire gives its schedule's, which validation holds to the same rules. The job
// inputs built from them assume all of that. keel_flow sits below keel_ledger, so this
// reads the form itself rather than calling ledger::flow_args_well_formed.
std::optional<std::string> args_problem(std::string_view args, const FlowModel& model, const CompiledFlow& compiled) {
  std::map<std::string_view, std::string_view> given;  // name -> value
  size_t offset = 0;
  while (offset < args.size()) {
    ledger::FlowArgHeader header;
    if (args.size() - offset < sizeof header) return "its arguments are cut short";
    std::memcpy(&header, args.data() + offset, sizeof header);
    offset += sizeof header;
    if (header.reserved != 0) return "an argument's reserved field is set";
    if (args.size() - offset < size_t(header.name_bytes) + header.value_bytes) return "its arguments are cut short";
    std::string_view name = args.substr(offset, header.name_bytes);
    if (!given.empty() && name <= given.rbegin()->first) return "its arguments' names are not ascending";
    if (given.size() == model.arguments.size()) return "its arguments are more than its plan declares";
    given.emplace(name, args.substr(offset + header.name_bytes, header.value_bytes));
    offset += size_t(header.name_bytes) + header.value_bytes;
  }
  for (size_t argument = 0; argument < model.arguments.size(); ++argument) {
    auto found = given.find(model.arguments[argument]);
    if (found == given.end()) return "its arguments lack '" + model.arguments[argument] + "'";
    uint32_t parts = compiled.argument_parts[argument];
    if (parts != 0 && argument_part_count(found->second) != parts)
      return "its argument '" + model.arguments[argument] + "' is not in " + std::to_string(parts) + " parts";
  }
  // No more names than declared, and each declared one found: exactly the declared ones.
  return std::nullopt;
}

}  // namespace

// The rules below are what start, make_ready, dispatch, complete, finish_step, end_flow,
// pause and resume keep for a flow while it lives. A step that ends other than succeeded
// ends its flow, so a live flow's steps are pending, running or succeeded. A step's
// dependency count falls by one as each dependency succeeds, and it is queued (make_ready)
// when the count reaches 0, never before; dispatch sends its sub-jobs while it is queued
// and unqueues it once all are sent, or when its flow is paused (resume queues it again).
// Each sub-job sent is running until complete() counts it finished (failed or not); the
// step succeeds when all have finished with at most split_failures_max failed.
std::optional<std::string> FlowTable::step_problem(const LiveFlow& flow, uint16_t step, bool output_bound_kept) const {
  const StepPlan& step_plan = plans_[flow.plan].steps[step];
  const StepState& state = flow.steps[step];
  if (step_finished(state.status) && state.status != JobStatus::succeeded)
    return "it ended " + std::string(job_status_text(state.status)) + " but its flow is live";
  uint32_t unmet = 0;
  for (uint16_t dependency : step_plan.dependencies) unmet += flow.steps[dependency].status != JobStatus::succeeded;
  if (state.dependencies_left != unmet)
    return "dependencies_left is " + std::to_string(state.dependencies_left) + " but " + std::to_string(unmet) +
           " of its dependencies have not succeeded";
  if (state.dispatched != 0 && state.dependencies_left != 0)
    return "sub-jobs were sent before its dependencies succeeded";
  if (state.failed > step_plan.split_failures_max) return "more sub-jobs failed than it tolerates, yet it did not fail";
  switch (state.status) {
    case JobStatus::pending:
      if (state.dispatched != 0) return "it is pending but sub-jobs were sent";
      break;
    case JobStatus::running:
      if (state.dispatched == 0) return "it is running but no sub-job was sent";
      if (state.finished == step_plan.split) return "it is running but every sub-job finished";
      break;
    default:  // succeeded
      if (state.finished != step_plan.split) return "it succeeded but not every sub-job finished";
  }
  bool ready =
      state.dependencies_left == 0 && state.status != JobStatus::succeeded && state.dispatched < step_plan.split;
  if (state.queued && !ready) return "it is queued but not ready (dependencies left, or every sub-job sent)";
  if (!state.queued && ready && flow.status != FlowStatus::paused)
    return "it is ready but not queued, and its flow is not paused";
  // Outputs are kept from the first sub-job that succeeds (one part per sub-job).
  if (step_plan.output_kept && state.outputs.empty() != (state.finished == state.failed))
    return "its kept outputs do not match its succeeded sub-jobs";
  if (output_bound_kept) {
    size_t kept_bytes = 0;
    for (const std::string& part : state.outputs) kept_bytes += part.size();
    if (kept_bytes > limits_.output_bytes_max) return "its kept outputs are past output_bytes_max";
  }
  return std::nullopt;
}

std::optional<std::string> FlowTable::live_flow_problem(const LiveFlow& flow, bool output_bound_kept) const {
  uint32_t unfinished = 0;
  uint64_t dispatched = 0, jobs_succeeded = 0, jobs_failed = 0;
  for (uint16_t step = 0; step < flow.steps.size(); ++step) {
    if (std::optional<std::string> problem = step_problem(flow, step, output_bound_kept))
      return "step " + std::to_string(step) + ": " + *problem;
    const StepState& state = flow.steps[step];
    unfinished += state.status != JobStatus::succeeded;
    dispatched += state.dispatched;
    jobs_succeeded += state.finished - state.failed;
    jobs_failed += state.failed;
  }
  // finish_step counts down steps_left as each step succeeds; complete counts each
  // finished sub-job into the flow's jobs_succeeded or jobs_failed.
  if (flow.steps_left != unfinished)
    return "steps_left is " + std::to_string(flow.steps_left) + " but " + std::to_string(unfinished) +
           " steps have not succeeded";
  if (flow.jobs_succeeded != jobs_succeeded || flow.jobs_failed != jobs_failed)
    return "jobs_succeeded and jobs_failed are not its steps' finished sub-jobs";
  // A flow is created until its first sub-job is sent (resume tells them apart the same way).
  if (flow.status == FlowStatus::created && dispatched != 0) return "it is created but sub-jobs were sent";
  if (flow.status == FlowStatus::running && dispatched == 0) return "it is running but no sub-job was sent";
  return args_problem(flow.args, models_[flow.plan], compiled_[flow.plan]);
}

void FlowTable::serialize(std::vector<std::byte>& out) const {
  put(out, table_magic);
  put(out, table_format_version);
  put(out, next_flow_);
  put(out, next_job_mark_);
  put(out, counters_);
  put(out, uint32_t(products_.size()));
  for (const Product& product : products_) {
    put_string32(out, product.name);
    put(out, product.settings.priority);
    put(out, product.settings.running_max);
    put(out, uint64_t(product.ready.size()));
    for (const auto& [flow_id, step] : product.ready) {
      put(out, flow_id);
      put(out, step);
    }
  }
  put(out, uint32_t(models_.size()));
  for (const FlowModel& model : models_) {
    std::vector<std::byte> bytes = encode_flow_model(model);
    put(out, uint32_t(bytes.size()));
    ledger::put_bytes(out, bytes.data(), bytes.size());
  }
  put(out, uint64_t(live_.size()));
  for (const auto& [flow_id, flow] : live_) {  // std::map: ascending ids
    put(out, flow_id);
    put_string32(out, flow.key);
    put_string32(out, flow.args);
    put(out, flow.plan);
    put(out, uint32_t(flow.status));
    put(out, flow.steps_left);
    put(out, flow.jobs_succeeded);
    put(out, flow.jobs_failed);
    for (const StepState& step : flow.steps) {
      put(out, step.dependencies_left);
      put(out, uint8_t(step.status));
      put(out, uint8_t(step.queued));
      put(out, step.dispatched);
      put(out, step.finished);
      put(out, step.failed);
      put(out, uint32_t(step.outputs.size()));
      for (const std::string& part : step.outputs) put_string32(out, part);
    }
  }
  std::vector<JobDispatch> running = running_jobs();
  put(out, uint64_t(running.size()));
  for (const JobDispatch& job : running) {
    put(out, job.job_mark);
    put(out, job.flow);
    put(out, job.step);
    put(out, job.sub_job);
  }
  put(out, uint64_t(finished_order_.size()));
  for (uint64_t flow_id : finished_order_) {
    const FinishedFlow& flow = finished_.at(flow_id);
    put(out, flow_id);
    put_string32(out, flow.key);
    put(out, flow.plan);
    put(out, uint32_t(flow.status));
    put(out, flow.jobs_succeeded);
    put(out, flow.jobs_failed);
  }
  put(out, next_timer_);
  put(out, uint32_t(timers_.size()));
  for (const auto& [id, timer] : timers_) {
    put(out, id);
    put_string32(out, timer.contract);
    put(out, timer.schedule);
    put(out, timer.plan);
    put(out, timer.next_fire_s);
    put(out, timer.flows_started);
    put(out, timer.misfires_dropped);
  }
}

Result<FlowTable> FlowTable::deserialize(ledger::ByteReader& in, FlowTableLimits limits) {
  FlowTable table(limits);
  uint32_t magic = 0, version = 0;
  if (!in.get(magic) || magic != table_magic) return in.fail("not a flow table (bad magic)");
  if (!in.get(version) || version == 0 || version > table_format_version)
    return in.fail("flow table format " + std::to_string(version) + ", this keel reads 1 and 2");
  if (!in.get(table.next_flow_) || !in.get(table.next_job_mark_) || !in.get(table.counters_))
    return in.fail("cut short in the flow table's counters");
  if (table.next_flow_ == 0 || table.next_job_mark_ == 0) return in.fail("flow or job sequence at 0");
  uint32_t product_count = 0;
  if (!in.get(product_count)) return in.fail("cut short before the products");
  for (uint32_t product_index = 0; product_index < product_count; ++product_index) {
    std::string name;
    ProductSettings settings;
    uint64_t ready_count = 0;
    if (!in.get_string32(name, name_bytes_max) || !in.get(settings.priority) || !in.get(settings.running_max) ||
        !in.get(ready_count))
      return in.fail("cut short in product " + std::to_string(product_index));
    // Products come in the order first named: each name once.
    if (table.product_index(name) != product_index) return in.fail("product '" + name + "' is listed twice");
    table.products_[product_index].settings = settings;
    if (ready_count > (in.bytes.size() - in.offset) / 10) return in.fail("a product's queue is longer than the bytes");
    for (uint64_t index = 0; index < ready_count; ++index) {
      uint64_t flow_id = 0;
      uint16_t step = 0;
      if (!in.get(flow_id) || !in.get(step)) return in.fail("cut short in a product's queue");
      if (flow_id == 0 || flow_id >= table.next_flow_) return in.fail("a queued flow id past the sequence");
      table.products_[product_index].ready.emplace_back(flow_id, step);
    }
  }
  table.order_products();
  uint32_t plan_count = 0;
  if (!in.get(plan_count)) return in.fail("cut short before the plans");
  for (uint32_t plan_index = 0; plan_index < plan_count; ++plan_index) {
    size_t start = in.offset;
    uint32_t model_bytes = 0;
    if (!in.get(model_bytes) || model_bytes > flow_model_bytes_max || in.bytes.size() - in.offset < model_bytes)
      return in.fail("cut short in plan " + std::to_string(plan_index));
    Result<FlowModel> model = decode_flow_model(in.bytes.subspan(in.offset, model_bytes));
    if (!model) return in.fail_at(start, "plan " + std::to_string(plan_index) + ": " + model.error().message);
    in.offset += model_bytes;
    if (table.find_plan(model->name, model->version)) return in.fail_at(start, "a contract version twice");
    table.add_plan(std::move(*model));
  }
  if (table.products_.size() != product_count) return in.fail("a plan names a product not listed");
  uint64_t live_count = 0;
  if (!in.get(live_count)) return in.fail("cut short before the live flows");
  uint64_t previous_id = 0;
  for (uint64_t index = 0; index < live_count; ++index) {
    size_t start = in.offset;
    uint64_t flow_id = 0;
    LiveFlow flow;
    uint32_t status = 0;
    if (!in.get(flow_id) || !in.get_string32(flow.key, key_bytes_max) || !in.get_string32(flow.args, args_bytes_max) ||
        !in.get(flow.plan) || !in.get(status) ||
        !in.get(flow.steps_left) || !in.get(flow.jobs_succeeded) || !in.get(flow.jobs_failed))
      return in.fail("cut short in a live flow");
    if (flow_id <= previous_id || flow_id >= table.next_flow_) return in.fail_at(start, "live flow ids out of order");
    if (flow.plan >= table.plans_.size()) return in.fail_at(start, "a live flow's plan is unknown");
    if (status > uint32_t(FlowStatus::paused)) return in.fail_at(start, "a live flow's status is not live");
    flow.status = FlowStatus(status);
    const FlowPlan& plan = table.plans_[flow.plan];
    if (flow.steps_left == 0 || flow.steps_left > plan.steps.size()) return in.fail_at(start, "steps_left out of range");
    flow.steps.resize(plan.steps.size());
    for (size_t step = 0; step < plan.steps.size(); ++step) {
      StepState& state = flow.steps[step];
      uint8_t step_status = 0, queued = 0;
      uint32_t output_count = 0;
      if (!in.get(state.dependencies_left) || !in.get(step_status) || !in.get(queued) || !in.get(state.dispatched) ||
          !in.get(state.finished) || !in.get(state.failed) || !in.get(output_count))
        return in.fail("cut short in a live flow's step");
      const StepPlan& step_plan = plan.steps[step];
      if (step_status > uint8_t(JobStatus::cancelled) || queued > 1 ||
          state.dependencies_left > step_plan.dependencies.size() || state.dispatched > step_plan.split ||
          state.finished > state.dispatched || state.failed > state.finished ||
          (output_count != 0 && (output_count != step_plan.split || !step_plan.output_kept)))
        return in.fail("a live flow's step is out of range");
      state.status = JobStatus(step_status);
      state.queued = queued == 1;
      for (uint32_t part = 0; part < output_count; ++part) {
        state.outputs.emplace_back();
        if (!in.get_string32(state.outputs.back(), table.limits_.output_bytes_max))
          return in.fail("a kept output is cut short or too large");
      }
    }
    // Format 1 tables may come from a keel that bounded a kept output only as its step
    // finished.
    if (std::optional<std::string> problem = table.live_flow_problem(flow, version >= 2))
      return in.fail_at(start, "live flow " + std::to_string(flow_id) + ": " + *problem);
    if (!table.key_flows_.emplace(flow.key, flow_id).second) return in.fail_at(start, "a key has two flows");
    table.live_.emplace(flow_id, std::move(flow));
    previous_id = flow_id;
  }
  // Queue entries of live flows: a ready step of the product its plan names, each queued
  // step once (make_ready adds an entry only to a step not queued, and a step is unqueued
  // only as dispatch drops its entry). Entries of ended flows are dead (counted, as
  // end_flow counts them).
  std::set<std::pair<uint64_t, uint16_t>> entries_live;
  for (uint32_t product_index = 0; product_index < table.products_.size(); ++product_index) {
    Product& product = table.products_[product_index];
    for (const auto& [flow_id, step] : product.ready) {
      auto live = table.live_.find(flow_id);
      if (live == table.live_.end()) {
        ++product.dead_entries;
        continue;
      }
      if (step >= live->second.steps.size() || table.plan_product_[live->second.plan] != product_index ||
          !live->second.steps[step].queued)
        return in.fail("a queued step is out of range or in another product's queue");
      if (!entries_live.emplace(flow_id, step).second) return in.fail("a step is in its product's queue twice");
    }
  }
  for (const auto& [flow_id, flow] : table.live_)
    for (uint16_t step = 0; step < flow.steps.size(); ++step)
      if (flow.steps[step].queued && !entries_live.contains({flow_id, step}))
        return in.fail("live flow " + std::to_string(flow_id) + ": step " + std::to_string(step) +
                       " is queued but in no queue");
  if (table.products_.size() > limits.products_max || table.plans_.size() > limits.plans_max)
    return in.fail("more products or plans than a shard holds");
  uint64_t running_count = 0;
  if (!in.get(running_count)) return in.fail("cut short before the running jobs");
  uint64_t previous_mark = 0;
  std::set<std::tuple<uint64_t, uint16_t, uint32_t>> sub_jobs_running;  // (flow, step, sub-job)
  for (uint64_t index = 0; index < running_count; ++index) {
    size_t start = in.offset;
    uint64_t job_mark = 0;
    RunningJob job;
    if (!in.get(job_mark) || !in.get(job.flow) || !in.get(job.step) || !in.get(job.sub_job))
      return in.fail("cut short in a running job");
    if (job_mark <= previous_mark || job_mark >= table.next_job_mark_ || job_mark >= (uint64_t(1) << 62))
      return in.fail_at(start, "job marks out of order");
    auto live = table.live_.find(job.flow);
    if (live == table.live_.end()) return in.fail_at(start, "a running job of no live flow");
    LiveFlow& flow = live->second;
    if (job.step >= flow.steps.size() || job.sub_job >= flow.steps[job.step].dispatched)
      return in.fail_at(start, "a running job's step or sub-job is out of range");
    if (!sub_jobs_running.emplace(job.flow, job.step, job.sub_job).second)
      return in.fail_at(start, "two running jobs of one sub-job");
    job.position = uint32_t(flow.running.size());
    flow.running.push_back(job_mark);
    ++table.products_[table.plan_product_[flow.plan]].running;
    table.running_.emplace(job_mark, job);
    previous_mark = job_mark;
  }
  // A sub-job runs from its dispatch until complete() counts it finished (or its flow
  // ends), so a step's running jobs are its sent sub-jobs not finished. Each product's
  // running count was summed from these jobs; it may exceed the product's running_max,
  // which set_product can lower under jobs already running.
  for (const auto& [flow_id, flow] : table.live_) {
    std::vector<uint32_t> running_of_step(flow.steps.size(), 0);
    for (uint64_t job_mark : flow.running) ++running_of_step[table.running_.at(job_mark).step];
    for (uint16_t step = 0; step < flow.steps.size(); ++step) {
      const StepState& state = flow.steps[step];
      if (running_of_step[step] != state.dispatched - state.finished)
        return in.fail("live flow " + std::to_string(flow_id) + ": step " + std::to_string(step) + " has " +
                       std::to_string(running_of_step[step]) + " running jobs, but sent minus finished sub-jobs is " +
                       std::to_string(state.dispatched - state.finished));
    }
  }
  uint64_t finished_count = 0;
  if (!in.get(finished_count)) return in.fail("cut short before the finished flows");
  for (uint64_t index = 0; index < finished_count; ++index) {
    size_t start = in.offset;
    FinishedFlow flow;
    uint32_t status = 0;
    if (!in.get(flow.flow) || !in.get_string32(flow.key, key_bytes_max) || !in.get(flow.plan) || !in.get(status) ||
        !in.get(flow.jobs_succeeded) || !in.get(flow.jobs_failed))
      return in.fail("cut short in a finished flow");
    if (flow.flow == 0 || flow.flow >= table.next_flow_ || flow.plan >= table.plans_.size() ||
        status < uint32_t(FlowStatus::succeeded) || status > uint32_t(FlowStatus::cancelled))
      return in.fail_at(start, "a finished flow is out of range");
    flow.status = FlowStatus(status);
    if (table.live_.contains(flow.flow) || !table.key_flows_.emplace(flow.key, flow.flow).second)
      return in.fail_at(start, "a finished flow repeats a flow or a key");
    table.finished_order_.push_back(flow.flow);
    table.finished_.emplace(flow.flow, std::move(flow));
  }
  if (version == 1) return table;
  uint32_t timer_count = 0;
  if (!in.get(table.next_timer_) || !in.get(timer_count)) return in.fail("cut short before the timers");
  if (table.next_timer_ == 0) return in.fail("timer sequence at 0");
  // At most one timer per schedule of a plan.
  if (timer_count > table.plans_.size() * flow_schedules_max) return in.fail("more timers than schedules");
  uint64_t previous_timer = 0;
  std::set<std::pair<std::string, uint32_t>> timed_schedules;
  for (uint32_t index = 0; index < timer_count; ++index) {
    size_t start = in.offset;
    FlowTimer timer;
    if (!in.get(timer.id) || !in.get_string32(timer.contract, name_bytes_max) || !in.get(timer.schedule) ||
        !in.get(timer.plan) || !in.get(timer.next_fire_s) || !in.get(timer.flows_started) ||
        !in.get(timer.misfires_dropped))
      return in.fail("cut short in a timer");
    if (timer.id <= previous_timer || timer.id >= table.next_timer_) return in.fail_at(start, "timer ids out of order");
    if (timer.plan >= table.plans_.size() || table.plans_[timer.plan].contract != timer.contract ||
        table.find_plan(timer.contract, 0) != timer.plan ||
        timer.schedule >= table.models_[timer.plan].schedules.size())
      return in.fail_at(start, "a timer's plan is not its contract's newest, or has no such schedule");
    if (!timed_schedules.emplace(timer.contract, timer.schedule).second)
      return in.fail_at(start, "two timers for one schedule");
    previous_timer = timer.id;
    table.timers_.emplace(timer.id, std::move(timer));
  }
  return table;
}

}  // namespace keel::flow
