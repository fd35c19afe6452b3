#include "engine/ledger/shard.h"

#include "engine/flow/cron.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

namespace keel::ledger {

namespace {

constexpr int64_t balance_max = std::numeric_limits<int64_t>::max();
constexpr int64_t balance_min = std::numeric_limits<int64_t>::min();

// A spent OutboundTask keeps an input buffer up to this size (reuse_task_list).
constexpr size_t kept_task_input_bytes = 256;
// Spent task lists kept for later blocks (reuse_task_list): a block that issues tasks
// takes its list along until they are sent, and a few such blocks are unsent at once when
// commits overlap. (With one kept, each block that opened while two were unsent built its
// list afresh: an allocation per task for its input.)
constexpr size_t spare_task_lists_max = 4;

bool add_would_overflow(int64_t balance, uint64_t amount) {
  return amount > uint64_t(balance_max) || balance > balance_max - int64_t(amount);
}

}  // namespace

bool execute_ordered(TxStatus status, uint16_t block_version) {
  if (status == TxStatus::compute_backlog_full) return block_version < 3;
  return status != TxStatus::wrong_shard && status != TxStatus::duplicate_credit &&
         status != TxStatus::duplicate_result && status != TxStatus::unknown_task &&
         status != TxStatus::timer_stale && status != TxStatus::unknown_timer && status != TxStatus::no_credit;
}

ShardExecutor::ShardExecutor(ShardIdentity identity, BlockLimits limits, AccessPolicy access)
    : identity_(std::move(identity)),
      limits_(limits),
      access_(access),
      chain_id_(chain_id_of(identity_.chain)),
      state_(identity_.shard, identity_.shard_count),
      open_compute_pending_max_(limits_.compute_pending_max) {
  assert(identity_.shard < identity_.shard_count);
  assert(limits_.block_txs_max <= block_txs_limit);
  assert(access_.credits_per_tx >= 1);
  body_.reserve(limits_.block_bytes_max);
  leaf_hashes_.reserve(limits_.block_txs_max);
  open_receipts_.reserve(limits_.block_txs_max);
}

void ShardExecutor::restore(ShardState state) {
  assert(open_receipts_.empty() && open_charges_.empty() && open_task_count_ == 0);
  assert(state.shard == identity_.shard && state.shard_count == identity_.shard_count);
  state_ = std::move(state);
  part_cursors_.clear();
}

bool ShardExecutor::has_room(size_t tx_bytes, const ClientId* payer) const {
  size_t spends = open_charges_.size();
  if (payer != nullptr && access_.credits_required && !open_charges_.contains(*payer)) ++spends;
  return open_receipts_.size() + spends < limits_.block_txs_max &&
         body_.size() + spends * client_credit_tx_bytes + tx_bytes <= limits_.block_bytes_max;
}

uint64_t ShardExecutor::open_charge(const ClientId& payer) const {
  auto charge = open_charges_.find(payer);
  return charge == open_charges_.end() ? 0 : charge->second;
}

uint64_t ShardExecutor::credit_balance(const ClientId& client) const {
  auto account = state_.credit_accounts.find(client);
  return account == state_.credit_accounts.end() ? 0 : account->second;
}

TxStatus ShardExecutor::execute_charged(const TxView& view, std::span<const std::byte> bytes, const ClientId& payer,
                                        const Hash32* leaf_hash) {
  assert(client_id_text(payer));
  if (!access_.credits_required || view.type == TxType::credit_grant) return execute(view, bytes, leaf_hash);
  // Charges never exceed the balance (only spends debit it, at seal), so this cannot wrap.
  uint64_t charged = open_charge(payer);
  if (credit_balance(payer) - charged < access_.credits_per_tx) return TxStatus::no_credit;
  TxStatus status = execute(view, bytes, leaf_hash);
  if (execute_ordered(status)) open_charges_[payer] = charged + access_.credits_per_tx;
  return status;
}

// One credit_spend per charged client, ordered like any transaction (so the Merkle root,
// the receipts and replay all see it). has_room kept their room.
void ShardExecutor::append_credit_spends() {
  std::map<ClientId, uint64_t> charges = std::move(open_charges_);
  open_charges_.clear();
  for (const auto& [client, amount] : charges) {
    std::vector<std::byte> spend = encode_credit_spend(state_.height + 1, identity_.shard, client, amount);
    TxView view;
    TxStatus checked = check_transaction(spend, TxOrigin::engine, &view);
    assert(checked == TxStatus::applied && has_room(spend.size()));
    (void)checked;
    TxStatus status = execute(view, spend);
    assert(status == TxStatus::applied);  // execute_charged kept every charge within the balance
    (void)status;
  }
}

std::string ShardExecutor::place(uint64_t height) const {
  return "chain " + identity_.chain + " shard " + std::to_string(identity_.shard) + " height " +
         std::to_string(height);
}

TxStatus ShardExecutor::execute(const TxView& view, std::span<const std::byte> bytes, const Hash32* leaf_hash) {
  if (home_shard(view, identity_.shard_count) != identity_.shard) return TxStatus::wrong_shard;
  if (view.type == TxType::credit) {
    if (view.credit.origin_shard >= identity_.shard_count) return TxStatus::wrong_shard;
    const CreditMark& mark = state_.credit_marks[view.credit.origin_shard];
    if (mark.covers(view.credit.origin_height, view.credit.origin_index)) return TxStatus::duplicate_credit;
  }
  if (view.type == TxType::compute_result) {
    TxStatus settles = check_result_mark(view.compute_result.task_mark);
    if (settles != TxStatus::applied) return settles;
  }
  if (view.type == TxType::compute_results) {
    TxStatus settles = check_results_marks(view);
    if (settles != TxStatus::applied) return settles;
  }
  if (view.type == TxType::timer_fire) {
    TxStatus fires = check_timer_fire(view.timer_fire);
    if (fires != TxStatus::applied) return fires;
  }
  // A spend its account cannot cover is not one this shard made: never ordered.
  if (view.type == TxType::credit_spend && credit_balance(view.client_credit.client) < view.client_credit.amount)
    return TxStatus::no_credit;
  // A full backlog refuses a request before ordering it (format 3 on; apply_compute_request
  // orders the refusal in an older block being replayed).
  if (view.type == TxType::compute_request && !execute_ordered(TxStatus::compute_backlog_full, open_block_version_) &&
      state_.pending_tasks.size() >= open_compute_pending_max_)
    return TxStatus::compute_backlog_full;
  assert(has_room(bytes.size()));  // only what is ordered needs room
  uint32_t index = open_tx_count();
  TxStatus status = apply(view, index);
  body_.insert(body_.end(), bytes.begin(), bytes.end());
  Hash32 leaf = leaf_hash != nullptr ? *leaf_hash : hash_leaf(bytes);
  leaf_hashes_.push_back(leaf);
  open_receipts_.push_back(Receipt{leaf, state_.height + 1, status});
  return status;
}

TxStatus ShardExecutor::apply(const TxView& view, uint32_t index) {
  switch (view.type) {
    case TxType::create_account: return apply_create_account(view.create_account);
    case TxType::transfer: return apply_transfer(view.transfer, index);
    case TxType::put:
      state_.values[std::string(reinterpret_cast<const char*>(view.key.data()), view.key.size())]
          .assign(reinterpret_cast<const char*>(view.value.data()), view.value.size());
      return TxStatus::applied;
    case TxType::credit: return apply_credit(view, index);
    case TxType::compute_request: return apply_compute_request(view, index);
    case TxType::compute_result: return apply_compute_result(view.compute_result, view.output);
    case TxType::compute_results: {
      // execute() checked that every entry settles its task, and the marks ascend, so no
      // entry settles another's task; but a flow job's result can end its flow, and with
      // it the flow's other running jobs, whose entries later in the batch then have no
      // effect, exactly as their own compute_results would not. (Only flow jobs' marks are
      // looked up again: a request's task is still pending.)
      ComputeResultEntries entries(view.results);
      for (ComputeResultEntry entry; entries.next(entry);) {
        if (!is_flow_task_mark(entry.body.task_mark) || check_result_mark(entry.body.task_mark) == TxStatus::applied)
          apply_compute_result(entry.body, entry.output);
      }
      return TxStatus::applied;
    }
    case TxType::flow_deploy: return apply_flow_deploy(view);
    case TxType::flow_start: return apply_flow_start(view);
    case TxType::flow_control: return apply_flow_control(view);
    case TxType::product_set: return apply_product_set(view);
    case TxType::timer_fire: return apply_timer_fire(view.timer_fire);
    case TxType::balance_record: return TxStatus::applied;  // an audit record: the block is the point
    case TxType::credit_grant: return apply_credit_grant(view.client_credit);
    case TxType::credit_spend: {
      // execute() checked the account covers it.
      auto account = state_.credit_accounts.find(view.client_credit.client);
      if (account == state_.credit_accounts.end()) return TxStatus::applied;  // a spend of 0
      account->second -= view.client_credit.amount;
      if (account->second == 0) state_.credit_accounts.erase(account);  // zero and absent are the same
      return TxStatus::applied;
    }
  }
  return TxStatus::unknown_type;
}

// Applied when the result's task is pending; otherwise why it cannot be ordered. Marks
// are issued in ascending order, so a mark at or below the largest issued that is not
// pending was settled before (or was never a task: the state keeps no list of settled
// marks, and either way the result has no effect).
TxStatus ShardExecutor::check_result_mark(uint64_t task_mark) const {
  if (is_flow_task_mark(task_mark)) {
    // A flow job's: settled by its first result, or by its flow ending (stale).
    uint64_t job_mark = task_mark & ~flow_task_bit;
    if (state_.flows.is_running(job_mark)) return TxStatus::applied;
    return job_mark == 0 || job_mark >= state_.flows.next_job_mark() ? TxStatus::unknown_task
                                                                      : TxStatus::duplicate_result;
  }
  if (state_.pending_tasks.contains(task_mark)) return TxStatus::applied;
  if (task_mark < CreditMark::pack(1, 0) || task_mark > state_.task_mark_max) return TxStatus::unknown_task;
  return TxStatus::duplicate_result;
}

// Applied when every entry settles its task, else the first entry's reason it does not.
TxStatus ShardExecutor::check_results_marks(const TxView& view) const {
  ComputeResultEntries entries(view.results);
  for (ComputeResultEntry entry; entries.next(entry);) {
    TxStatus settles = check_result_mark(entry.body.task_mark);
    if (settles != TxStatus::applied) return settles;
  }
  return TxStatus::applied;
}

bool ShardExecutor::settling_results(const TxView& results, std::vector<std::byte>& out) const {
  out.resize(compute_results_tx_bytes(0));
  uint32_t kept = 0;
  uint64_t first_task_mark = 0;
  ComputeResultEntries entries(results.results);
  for (ComputeResultEntry entry; entries.next(entry);) {
    if (check_result_mark(entry.body.task_mark) != TxStatus::applied) continue;
    if (kept++ == 0) first_task_mark = entry.body.task_mark;
    const std::byte* body = reinterpret_cast<const std::byte*>(&entry.body);
    out.insert(out.end(), body, body + sizeof entry.body);
    out.insert(out.end(), entry.output.begin(), entry.output.end());
  }
  if (kept == 0) return false;
  write_compute_results_head(out, results.compute_results.shard, kept, first_task_mark);
  return true;
}

void ShardExecutor::reuse_task_list(std::vector<OutboundTask> list) {
  if (list.empty()) return;
  if (spare_task_lists_.size() == spare_task_lists_max) {
    // Full: the shortest list goes, so the spares are the longest seen.
    auto shortest = std::min_element(spare_task_lists_.begin(), spare_task_lists_.end(),
                                     [](const auto& a, const auto& b) { return a.size() < b.size(); });
    if (shortest->size() >= list.size()) return;
    spare_task_lists_.erase(shortest);
  }
  // A spent task keeps a short input's buffer for the next; a long one (a flow job's input
  // may be 16 KiB) is given back, so a list of them does not stay resident.
  for (OutboundTask& task : list)
    if (task.input.capacity() > kept_task_input_bytes) std::vector<std::byte>().swap(task.input);
  spare_task_lists_.push_back(std::move(list));
}

OutboundTask& ShardExecutor::next_open_task() {
  if (open_task_count_ == open_tasks_.size()) open_tasks_.emplace_back();
  // A reused list's tasks are a sent block's, out of the cache: the next one's input
  // buffer (scattered on the heap, where the hardware's prefetcher does not look) is
  // fetched while this one is filled.
  if (open_task_count_ + 1 < open_tasks_.size()) __builtin_prefetch(open_tasks_[open_task_count_ + 1].input.data(), 1);
  return open_tasks_[open_task_count_++];
}

TxStatus ShardExecutor::apply_compute_request(const TxView& view, uint32_t index) {
  // Reached only in a format 1 or 2 block, whose refusals were ordered (execute refuses first).
  if (state_.pending_tasks.size() >= open_compute_pending_max_) return TxStatus::compute_backlog_full;
  uint64_t task_mark = CreditMark::pack(state_.height + 1, index);
  assert(task_mark > state_.task_mark_max);
  // Reuses a settled task's buffers.
  const PendingTask& task =
      state_.pending_tasks.insert(task_mark, view.compute_request.subject, view.compute_type, view.input);
  OutboundTask& outbound = next_open_task();
  outbound.task_mark = task_mark;
  outbound.subject = task.subject;
  outbound.compute_type.assign(task.compute_type);
  outbound.input.assign(task.input.begin(), task.input.end());
  outbound.timeout_ms = outbound.retries_max = outbound.backoff_ms = 0;
  outbound.ready_ns = 0;
  state_.task_mark_max = task_mark;
  ++state_.tasks_issued;
  return TxStatus::applied;
}

// execute() checked that the task is pending. The outcome only picks the counter: the
// output stays in the log, not in the state (a flow job's is kept while a later step of
// its flow reads it).
TxStatus ShardExecutor::apply_compute_result(const ComputeResultBody& body, std::span<const std::byte> output_bytes) {
  if (is_flow_task_mark(body.task_mark)) {
    ComputeOutcome outcome = ComputeOutcome(body.outcome);
    flow::JobOutcome job_outcome = outcome == ComputeOutcome::succeeded ? flow::JobOutcome::succeeded
                                   : outcome == ComputeOutcome::timed_out ? flow::JobOutcome::timed_out
                                                                          : flow::JobOutcome::failed;
    std::vector<flow::JobDispatch> jobs;
    std::string_view output(reinterpret_cast<const char*>(output_bytes.data()), output_bytes.size());
    flow::CompleteOutcome completed = state_.flows.complete(body.task_mark & ~flow_task_bit, job_outcome, output, jobs);
    assert(completed == flow::CompleteOutcome::applied);
    (void)completed;
    issue_flow_jobs(jobs);
    return TxStatus::applied;
  }
  size_t erased = state_.pending_tasks.erase(body.task_mark);
  assert(erased == 1);
  (void)erased;
  if (ComputeOutcome(body.outcome) == ComputeOutcome::succeeded) ++state_.tasks_succeeded;
  else ++state_.tasks_failed;
  return TxStatus::applied;
}

std::vector<OutboundTask> ShardExecutor::pending_task_list() const {
  std::vector<OutboundTask> tasks;
  tasks.reserve(state_.pending_tasks.size());
  for (uint64_t task_mark : state_.pending_task_marks()) {
    const PendingTask& task = state_.pending_tasks.at(task_mark);
    tasks.push_back(OutboundTask{task_mark, task.subject, task.compute_type, task.input});
  }
  // Flow jobs running: their inputs were built once; they are built again the same way.
  for (const flow::JobDispatch& job : state_.flows.running_jobs()) {
    bool input_ok = true;
    tasks.push_back(flow_job_task(job, &input_ok));
    assert(input_ok);  // it was when the job was dispatched, from state that has not changed
  }
  return tasks;
}

namespace {

std::string_view text_of(std::span<const std::byte> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Part `index` of an argument given in parts (u32 length, then the bytes, per part),
// starting from where `cursor` says the part it last found ended when it was in the same
// argument of the same flow (see ShardExecutor::PartCursor).
std::optional<std::string_view> argument_part(std::string_view value, uint32_t index, uint64_t flow,
                                              uint16_t argument, ShardExecutor::PartCursor& cursor) {
  size_t offset = 0;
  uint32_t part = 0;
  if (cursor.flow == flow && cursor.argument == argument && cursor.value == value.data() &&
      cursor.size == value.size() && cursor.next_part <= index) {
    part = cursor.next_part;
    offset = cursor.next_offset;
  }
  for (;; ++part) {
    uint32_t size = 0;
    if (value.size() - offset < sizeof size) return std::nullopt;
    std::memcpy(&size, value.data() + offset, sizeof size);
    offset += sizeof size;
    if (value.size() - offset < size) return std::nullopt;
    if (part == index) {
      cursor = ShardExecutor::PartCursor{flow, argument, value.data(), value.size(), part + 1, offset + size};
      return value.substr(offset, size);
    }
    offset += size;
  }
}

}  // namespace

OutboundTask ShardExecutor::flow_job_task(const flow::JobDispatch& job, bool* input_ok) const {
  const flow::FlowTable& flows = state_.flows;
  uint32_t plan = flows.plan_of_flow(job.flow);
  const flow::FlowModel& model = flows.model(plan);
  const flow::FlowStep& step = model.steps[job.step];
  std::span<const std::byte> args = std::as_bytes(std::span(flows.args(job.flow)));
  OutboundTask task{flow_task_mark(job.job_mark), job.flow, step.compute_type, {},
                    step.timeout_ms, step.retries_max, step.backoff_ms, job.ready_ns};
  *input_ok = true;
  auto append = [&](std::string_view bytes) {
    if (task.input.size() + bytes.size() > compute_input_bytes_max) {
      *input_ok = false;
      return;
    }
    const std::byte* raw = reinterpret_cast<const std::byte*>(bytes.data());
    task.input.insert(task.input.end(), raw, raw + bytes.size());
  };
  for (const flow::CompiledInput& input : flows.compiled(plan).steps[job.step].inputs) {
    switch (input.kind) {
      case flow::InputKind::argument:
      case flow::InputKind::argument_part: {
        std::optional<std::span<const std::byte>> value = flow_arg(args, model.arguments[input.index]);
        assert(value);  // flow_start checked every declared argument is there
        std::string_view text = text_of(*value);
        if (input.kind == flow::InputKind::argument) {
          append(text);
        } else {
          if (part_cursors_.size() >= part_cursors_max) part_cursors_.clear();
          PartCursor& cursor = part_cursors_[{job.flow, input.index}];
          std::optional<std::string_view> part = argument_part(text, job.sub_job, job.flow, input.index, cursor);
          assert(part);  // and that a split argument has its step's parts
          append(*part);
        }
        break;
      }
      case flow::InputKind::step_output: append(flows.output(job.flow, input.index).value_or("")); break;
      case flow::InputKind::split_index: {
        uint32_t index_and_count[2] = {job.sub_job, job.split};
        append(std::string_view(reinterpret_cast<const char*>(index_and_count), sizeof index_and_count));
        break;
      }
    }
  }
  return task;
}

void ShardExecutor::issue_flow_jobs(std::vector<flow::JobDispatch>& jobs) {
  // complete() below may dispatch more: they are appended and handled in turn.
  for (size_t index = 0; index < jobs.size(); ++index) {
    const flow::JobDispatch job = jobs[index];
    if (!state_.flows.is_running(job.job_mark)) continue;  // its flow ended meanwhile
    bool input_ok = true;
    OutboundTask task = flow_job_task(job, &input_ok);
    if (input_ok) next_open_task() = std::move(task);
    else state_.flows.complete(job.job_mark, flow::JobOutcome::failed, "", jobs);  // input over its maximum
  }
}

TxStatus ShardExecutor::apply_flow_deploy(const TxView& view) {
  Result<flow::FlowModel> model = flow::decode_flow_model(view.input);
  assert(model);  // check_transaction decoded it
  if (std::optional<uint32_t> plan = state_.flows.find_plan(model->name, model->version))
    return state_.flows.model(*plan) == *model ? TxStatus::applied : TxStatus::contract_version_exists;
  if (!state_.flows.can_add_plan(*model)) return TxStatus::flow_limit_reached;
  uint32_t plan = state_.flows.add_plan(std::move(*model));
  // The newest version's schedules are the contract's timers; each is fired by one shard.
  const std::string& contract = state_.flows.plan(plan).contract;
  if (state_.flows.find_plan(contract, 0) == plan) {
    state_.flows.set_timers(plan, [&](uint32_t schedule) {
      return timer_home_shard(contract, schedule, identity_.shard_count) == identity_.shard;
    });
  }
  return TxStatus::applied;
}

TxStatus ShardExecutor::check_timer_fire(const TimerFireBody& fire) const {
  const flow::FlowTimer* timer = state_.flows.timer(fire.timer);
  if (timer == nullptr) return TxStatus::unknown_timer;
  if (fire.due_s != timer->next_fire_s || timer->next_fire_s == flow::timer_never) return TxStatus::timer_stale;
  if (fire.due_s != flow::timer_unarmed && fire.now_s < fire.due_s) return TxStatus::timer_stale;
  return TxStatus::applied;
}

namespace {

// A schedule's arguments in a flow start's form (encode_flow_args; parts as u32 length,
// then the bytes, each).
std::vector<std::byte> schedule_flow_args(const flow::FlowSchedule& schedule) {
  std::map<std::string, std::string> args;
  for (const flow::ScheduleArgument& argument : schedule.args) {
    std::string& value = args[argument.name];
    if (!argument.in_parts) {
      value = argument.parts.at(0);
      continue;
    }
    for (const std::string& part : argument.parts) {
      uint32_t size = uint32_t(part.size());
      value.append(reinterpret_cast<const char*>(&size), sizeof size);
      value += part;
    }
  }
  return encode_flow_args(args);
}

}  // namespace

// check_timer_fire passed. Arming records the first fire after now. A fire starts a flow
// for each fire time the misfire policy keeps, keyed "<contract>/<schedule>/<time>" so no
// fire time can start two flows, then records the next fire time; when the shard is full
// of live flows it records nothing more (the flows already started stay, and a later fire
// of the same time finds them) and the tile tries again.
TxStatus ShardExecutor::apply_timer_fire(const TimerFireBody& fire) {
  const flow::FlowTimer timer = *state_.flows.timer(fire.timer);
  const flow::FlowSchedule& schedule = state_.flows.model(timer.plan).schedules.at(timer.schedule);
  Result<flow::CronSchedule> cron = flow::parse_cron(schedule.cron);
  assert(cron);  // the model was validated when deployed
  if (fire.due_s == flow::timer_unarmed) {
    std::optional<uint64_t> next = flow::next_fire_after(*cron, fire.now_s);
    state_.flows.record_fire(timer.id, next.value_or(flow::timer_never), 0, false);
    return TxStatus::applied;
  }
  flow::MisfireDecision decision = flow::resolve_misfires(*cron, fire.due_s, fire.now_s, flow::misfire_rule_of(schedule));
  std::vector<std::byte> args = schedule_flow_args(schedule);
  std::string_view args_text(reinterpret_cast<const char*>(args.data()), args.size());
  std::vector<flow::JobDispatch> jobs;
  uint64_t started = 0;
  for (uint64_t fire_s : decision.fire_times_s) {
    std::string key = scheduled_flow_key(timer.contract, timer.schedule, fire_s);
    flow::StartResult result = state_.flows.start(key, timer.plan, jobs, args_text);
    if (result.outcome == flow::StartOutcome::flows_full) {
      state_.flows.record_started(timer.id, started);
      issue_flow_jobs(jobs);
      return TxStatus::flows_full;
    }
    if (result.outcome == flow::StartOutcome::started) ++started;
  }
  issue_flow_jobs(jobs);
  state_.flows.record_fire(timer.id, decision.next_fire_s.value_or(flow::timer_never), started,
                           decision.dropped_some);
  return TxStatus::applied;
}

TxStatus ShardExecutor::apply_flow_start(const TxView& view) {
  std::optional<uint32_t> plan = state_.flows.find_plan(view.name, view.flow_start.version);
  if (!plan) return TxStatus::unknown_contract;
  const flow::FlowModel& model = state_.flows.model(*plan);
  const flow::CompiledFlow& compiled = state_.flows.compiled(*plan);
  // Exactly the declared arguments, each split one in the parts its steps need.
  size_t given = 0;
  for (size_t offset = 0; offset < view.input.size(); ++given) {
    FlowArgHeader header;
    std::memcpy(&header, view.input.data() + offset, sizeof header);
    offset += sizeof header + header.name_bytes + header.value_bytes;
  }
  if (given != model.arguments.size()) return TxStatus::flow_args_mismatch;
  for (size_t argument = 0; argument < model.arguments.size(); ++argument) {
    std::optional<std::span<const std::byte>> value = flow_arg(view.input, model.arguments[argument]);
    if (!value) return TxStatus::flow_args_mismatch;
    uint32_t parts = compiled.argument_parts[argument];
    if (parts != 0 && flow::argument_part_count(text_of(*value)) != parts) return TxStatus::flow_args_mismatch;
  }
  std::vector<flow::JobDispatch> jobs;
  flow::StartResult started = state_.flows.start(text_of(view.key), *plan, jobs, text_of(view.input));
  switch (started.outcome) {
    case flow::StartOutcome::started: break;
    case flow::StartOutcome::existing: return TxStatus::flow_exists;
    case flow::StartOutcome::flows_full: return TxStatus::flows_full;
    case flow::StartOutcome::unknown_plan: return TxStatus::unknown_contract;
  }
  issue_flow_jobs(jobs);
  return TxStatus::applied;
}

TxStatus ShardExecutor::apply_flow_control(const TxView& view) {
  std::optional<uint64_t> flow = state_.flows.flow_of_key(text_of(view.key));
  if (!flow) return TxStatus::unknown_flow;
  std::vector<flow::JobDispatch> jobs;
  flow::ControlOutcome outcome = flow::ControlOutcome::not_allowed;
  switch (FlowAction(view.flow_control.action)) {
    case FlowAction::pause: outcome = state_.flows.pause(*flow); break;
    case FlowAction::resume: outcome = state_.flows.resume(*flow, jobs); break;
    case FlowAction::cancel: outcome = state_.flows.cancel(*flow, jobs); break;
  }
  issue_flow_jobs(jobs);
  if (outcome == flow::ControlOutcome::unknown_flow) return TxStatus::unknown_flow;
  return outcome == flow::ControlOutcome::applied ? TxStatus::applied : TxStatus::flow_control_refused;
}

TxStatus ShardExecutor::apply_product_set(const TxView& view) {
  std::vector<flow::JobDispatch> jobs;
  if (!state_.flows.set_product(view.name, {view.product_set.priority, view.product_set.running_max}, jobs))
    return TxStatus::flow_limit_reached;
  issue_flow_jobs(jobs);
  return TxStatus::applied;
}

TxStatus ShardExecutor::apply_credit_grant(const ClientCreditBody& grant) {
  if (grant.amount == 0) return TxStatus::zero_amount;
  auto account = state_.credit_accounts.find(grant.client);
  if (account == state_.credit_accounts.end()) {
    if (state_.credit_accounts.size() >= credit_accounts_max) return TxStatus::credit_accounts_full;
    state_.credit_accounts.emplace(grant.client, grant.amount);
    return TxStatus::applied;
  }
  if (grant.amount > UINT64_MAX - account->second) return TxStatus::balance_overflow;
  account->second += grant.amount;
  return TxStatus::applied;
}

TxStatus ShardExecutor::apply_create_account(const CreateAccountBody& body) {
  if (body.opening_balance < 0) return TxStatus::negative_opening_balance;
  // The shard's opened total must stay representable, or conservation could not be checked.
  int64_t opened_total = 0;
  if (__builtin_add_overflow(state_.opened_total, body.opening_balance, &opened_total)) return TxStatus::balance_overflow;
  auto [entry, created] = state_.accounts.try_emplace(body.account, Account{body.opening_balance, body.account_flags});
  if (!created) return TxStatus::account_exists;
  state_.opened_total = opened_total;
  return TxStatus::applied;
}

TxStatus ShardExecutor::apply_transfer(const TransferBody& body, uint32_t index) {
  if (body.amount == 0) return TxStatus::zero_amount;
  if (body.amount > uint64_t(balance_max)) return TxStatus::balance_overflow;
  if (body.from == body.to) return TxStatus::same_account;
  auto from = state_.accounts.find(body.from);
  if (from == state_.accounts.end()) return TxStatus::no_such_account;
  int64_t amount = int64_t(body.amount);
  Account& source = from->second;
  bool overdraft = (source.flags & account_flag_allow_overdraft) != 0;
  if (!overdraft && source.balance < amount) return TxStatus::insufficient_funds;
  if (overdraft && source.balance < balance_min + amount) return TxStatus::balance_overflow;
  uint32_t destination = shard_of_account(body.to, identity_.shard_count);
  if (destination != identity_.shard) {
    source.balance -= amount;
    CreditBody credit{body.to, body.from, body.amount, state_.height + 1, identity_.shard, index};
    emit_credit(destination, credit, /*refund=*/false);
    return TxStatus::applied;
  }
  auto to = state_.accounts.find(body.to);
  if (to == state_.accounts.end()) return TxStatus::no_such_account;
  if (add_would_overflow(to->second.balance, body.amount)) return TxStatus::balance_overflow;
  source.balance -= amount;
  to->second.balance += amount;
  return TxStatus::applied;
}

// A credit lands on its account; one that cannot (no such account, or it would
// overflow) goes back to the debited account as a refund. A refund that cannot land
// (only an overflow can stop it) is kept in the shard's suspense balance, so money is
// never created or destroyed.
TxStatus ShardExecutor::apply_credit(const TxView& view, uint32_t index) {
  const CreditBody& credit = view.credit;
  state_.credit_marks[credit.origin_shard] = CreditMark{credit.origin_height, credit.origin_index};
  bool refund = (view.header.flags & credit_flag_refund) != 0;
  auto to = state_.accounts.find(credit.to);
  bool lands = to != state_.accounts.end() && !add_would_overflow(to->second.balance, credit.amount);
  if (lands) {
    to->second.balance += int64_t(credit.amount);
    return TxStatus::applied;
  }
  if (refund) {
    state_.suspense_balance += int64_t(credit.amount);
    return TxStatus::balance_overflow;
  }
  CreditBody back{credit.from, credit.to, credit.amount, state_.height + 1, identity_.shard, index};
  emit_credit(credit.origin_shard, back, /*refund=*/true);
  return TxStatus::credit_refunded;
}

void ShardExecutor::emit_credit(uint32_t destination, const CreditBody& body, bool refund) {
  OutboundCredit& out = open_credits_.emplace_back();
  out.destination_shard = destination;
  write_credit(out.tx, body, refund);
}

SealedBlock ShardExecutor::seal(uint64_t time_ns, std::span<std::byte> record_out) {
  assert(!open_receipts_.empty());
  assert(record_out.empty() || record_out.size() == sizeof(BlockHeader) + open_body_bytes());
  append_credit_spends();
  SealedBlock block;
  BlockHeader& header = block.header;
  header.shard = identity_.shard;
  header.tx_count = open_tx_count();
  header.chain_id = chain_id_;
  header.height = state_.height + 1;
  header.time_ns = time_ns;
  header.body_bytes = body_.size();
  header.previous_hash = state_.last_block_hash;
  header.version = open_block_version_;
  header.merkle_root = block_merkle_root(header.version, leaf_hashes_, merkle_scratch_);
  header.compute_pending_max = open_compute_pending_max_;
  block.hash = block_hash(header);
  std::span<std::byte> record = record_out;
  if (record.empty()) {
    block.record.resize(sizeof header + body_.size());
    record = block.record;
  }
  assert(record.size() == sizeof header + body_.size());
  std::memcpy(record.data(), &header, sizeof header);
  std::memcpy(record.data() + sizeof header, body_.data(), body_.size());
  block.receipts = std::move(open_receipts_);
  block.credits = std::move(open_credits_);
  // A block that issued no task keeps its list of spent tasks for the next block; one
  // that did takes it along (spent tasks past its own dropped) and the next block starts
  // from a spare list.
  bool keep_task_list = open_task_count_ == 0 && !open_tasks_.empty();
  if (!keep_task_list) {
    open_tasks_.resize(open_task_count_);
    block.tasks = std::move(open_tasks_);
  }
  state_.height = header.height;
  state_.last_block_hash = block.hash;
  body_.clear();
  leaf_hashes_.clear();
  open_receipts_ = {};
  open_receipts_.reserve(limits_.block_txs_max);
  open_credits_ = {};
  if (!keep_task_list) {
    open_tasks_ = {};
    if (!spare_task_lists_.empty()) {  // an earlier block's spent tasks, written over
      open_tasks_ = std::move(spare_task_lists_.back());
      spare_task_lists_.pop_back();
    }
  }
  open_task_count_ = 0;
  return block;
}

Result<SealedBlock> ShardExecutor::replay(std::span<const std::byte> record) {
  assert(open_receipts_.empty());
  uint64_t expected_height = state_.height + 1;
  Result<BlockView> parsed = parse_block(record);
  if (!parsed) return make_error(place(expected_height), parsed.error().message);
  const BlockHeader& logged = parsed->header;
  if (logged.chain_id != chain_id_ || logged.shard != identity_.shard)
    return make_error(place(expected_height), "block belongs to another chain or shard");
  if (logged.height != expected_height)
    return make_error(place(expected_height), "log holds height " + std::to_string(logged.height) + " here");
  if (logged.previous_hash != state_.last_block_hash)
    return make_error(place(expected_height), "hash chain broken: previous hash does not match block " +
                                                  std::to_string(state_.height));
  // Whether a request found the backlog full depends on the bound it ran under; the
  // block's root and refusals on the format it was written in. Back to the live ones
  // however the replay ends.
  open_compute_pending_max_ = logged.compute_pending_max;
  open_block_version_ = logged.version;
  struct LiveAgain {
    ShardExecutor& shard;
    ~LiveAgain() {
      shard.open_compute_pending_max_ = shard.limits_.compute_pending_max;
      shard.open_block_version_ = block_format_version;
    }
  } live_again{*this};
  std::string failure;
  for_each_transaction(parsed->body, [&](std::span<const std::byte> tx) {
    if (!failure.empty()) return;
    TxView view;
    TxStatus checked = check_transaction(tx, TxOrigin::engine, &view);
    if (checked != TxStatus::applied || !has_room(tx.size())) {
      failure = "transaction " + std::to_string(open_tx_count()) + " is malformed: " + std::string(status_text(checked));
      return;
    }
    TxStatus status = execute(view, tx);
    if (!execute_ordered(status, logged.version))
      failure = "transaction " + std::to_string(open_tx_count()) + " cannot be in this block: " +
                std::string(status_text(status));
  });
  if (!failure.empty()) return make_error(place(expected_height), failure);
  SealedBlock block = seal(logged.time_ns);
  if (block.header.merkle_root != logged.merkle_root)
    return make_error(place(expected_height), "Merkle root does not match the transactions");
  if (std::memcmp(&block.header, &logged, sizeof logged) != 0)
    return make_error(place(expected_height), "header does not match the replayed block");
  return block;
}

}  // namespace keel::ledger
