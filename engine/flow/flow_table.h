// engine/flow/flow_table.h: the flows and jobs one ledger shard owns, as a deterministic
// state machine. The shard's executor drives it from its transactions (start, job
// results, pause, resume, cancel, product settings), so replaying the log rebuilds it
// exactly; it holds no clock, no randomness and no iteration over unordered containers
// that could change a decision.
//
//   FlowTable table(FlowTableLimits{});
//   table.set_product("loans", {.priority = 10, .running_max = 256});
//   uint32_t plan = table.add_plan(loan_plan);                   // a deployed contract version
//   std::vector<JobDispatch> out;
//   StartOutcome started = table.start("order-17", plan, out);  // releases the root steps
//   for (const JobDispatch& job : out) scheduler.dispatch(job); // (flow, step, sub_job, mark)
//   ... the job's compute came back:
//   table.complete(job.job_mark, JobOutcome::succeeded, output, out);  // releases successors
//
// Events, not scans: each step counts its unfinished dependencies; a finished step
// decrements its successors' counts and a count reaching zero makes the step ready. A
// split step is `split` sub-jobs with counters (dispatched, finished, failed); it
// succeeds when all its sub-jobs have finished and at most `split_failures_max` of them
// failed (0 unless its policy tolerates failures), and fails as soon as more have.
//
// Products and queues: every plan belongs to a product. Ready steps wait in their
// product's queue (FIFO) and are dispatched while the product has fewer than
// `running_max` jobs running, higher priority first (ties: the product named first), so
// a product's batch cannot take every slot from another's interactive flows.
//
// Job identity: each dispatch gets a job mark, a per-table sequence number never reused;
// the compute result names it. A result for a mark not running (a second attempt's, or
// for a flow cancelled or failed meanwhile) is `stale`: the executor does not order it, so
// each job's effect lands once.
//
// Memory is bounded: at most `live_flows_max` flows live (a start past it is refused
// `flows_full`: backpressure), at most `running_jobs_max` jobs run, `products_max`
// products and `plans_max` plans exist, entries of ended flows are compacted out of the
// queues, a kept output stops at output_bytes_max (its step fails as the output that would
// pass it arrives); a finished flow leaves the live table for a FIFO of
// `finished_kept_max` summaries (status, key, plan), and its idempotency key leaves with
// it: a key is guaranteed one flow while its flow is live or among the kept summaries.
// Step outputs are kept only for steps a later step reads, and only while the flow lives.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/flow/flow_model.h"
#include "engine/ledger/byte_codec.h"
#include "error/result.h"

namespace keel::flow {

enum class FlowStatus : uint8_t { created = 0, running = 1, paused = 2, succeeded = 3, failed = 4, cancelled = 5 };
enum class JobStatus : uint8_t { pending = 0, running = 1, succeeded = 2, failed = 3, timed_out = 4, cancelled = 5 };
// How a dispatched job's compute ended (the scheduler's outcome, as the result carries it).
enum class JobOutcome : uint8_t { succeeded = 0, failed = 1, timed_out = 2 };

std::string_view flow_status_text(FlowStatus status);
std::string_view job_status_text(JobStatus status);
inline bool flow_finished(FlowStatus status) { return status >= FlowStatus::succeeded; }

// One step of a deployed contract, as the table needs it (plan_of derives it from the
// contract's model).
struct StepPlan {
  uint32_t split = 1;               // sub-jobs; 1 = an ordinary job
  uint32_t split_failures_max = 0;  // failed sub-jobs tolerated before the step fails
  std::vector<uint16_t> dependencies;  // steps it runs after
  bool output_kept = false;         // a later step reads its output
};

// A deployed contract version: its steps in the model's order.
struct FlowPlan {
  std::string contract;
  uint32_t version = 1;
  std::string product;
  std::vector<StepPlan> steps;
};

// How many parts an argument value given in parts holds (an argument a step takes
// "[split]": per part a u32 byte count, then the bytes), or nullopt when it is not a list
// of parts. The ledger's flow_start checks arguments with it; deserialize checks kept ones.
std::optional<uint32_t> argument_part_count(std::string_view value);

// The plan of a valid model (validate_flow_model passed): dependencies by index, and
// output_kept for the steps some step's input reads.
FlowPlan plan_of(const FlowModel& model);

struct ProductSettings {
  uint32_t priority = 0;       // higher first
  uint32_t running_max = 1024; // jobs of this product running at once (on this shard)
};

struct FlowTableLimits {
  uint32_t live_flows_max = 1 << 20;
  uint32_t finished_kept_max = 1 << 20;
  uint32_t output_bytes_max = 16384;  // a step's kept output (a split's, all sub-jobs')
  // Jobs running at once over every product: what the shard hands the scheduler is
  // bounded whatever products and splits ask for.
  uint32_t running_jobs_max = 16384;
  uint32_t products_max = 256;
  uint32_t plans_max = 1024;  // deployed contract versions
};

// A job to send to the scheduler: the executor builds its input from the flow's
// arguments and the outputs it names (flow_table's outputs()).
struct JobDispatch {
  uint64_t job_mark = 0;
  uint64_t flow = 0;
  uint16_t step = 0;
  uint32_t sub_job = 0;
  uint32_t split = 1;
  // Metrics only: when the step became ready (its metrics clock), 0 without one.
  uint64_t ready_ns = 0;
};

enum class StartOutcome : uint8_t {
  started,       // a new flow
  existing,      // the key's flow, live or kept finished: nothing changed
  flows_full,    // live_flows_max flows live: refused, retry later
  unknown_plan,  // no such plan index
};

struct StartResult {
  StartOutcome outcome = StartOutcome::started;
  uint64_t flow = 0;  // started or existing
};

enum class CompleteOutcome : uint8_t { applied, stale };
enum class ControlOutcome : uint8_t { applied, unknown_flow, not_allowed };

// A flow as a query sees it (live or kept finished).
struct FlowSummary {
  uint64_t flow = 0;
  std::string key;
  uint32_t plan = 0;
  FlowStatus status = FlowStatus::created;
  uint32_t jobs_running = 0;
  uint64_t jobs_succeeded = 0, jobs_failed = 0;
  std::vector<JobStatus> steps;  // empty once finished
};

// The table's heap, estimated from its containers' sizes (what a live or a kept finished
// flow costs; `keel bench flows` reports it per flow).
struct FlowTableMemory {
  uint64_t live_bytes = 0;      // live flows: their records, keys, arguments, steps, kept outputs, running jobs
  uint64_t finished_bytes = 0;  // kept finished summaries and their keys
};

// A cron timer this shard fires: one schedule of a deployed contract's newest version
// (a contract's schedule i is fired by the shard its key "<contract>/<i>" hashes to, so
// each fires once per chain). The ledger records when it fires next; the shard's tile
// keeps a timing wheel of these times and proposes a timer_fire transaction when one is
// due, which starts the fire's flows and records the next fire time in the same block.
struct FlowTimer {
  uint64_t id = 0;            // per table, never reused
  std::string contract;
  uint32_t schedule = 0;      // index into the plan's model's schedules
  uint32_t plan = 0;          // the contract's newest version: the flows it starts run it
  uint64_t next_fire_s = 0;   // Unix seconds; timer_unarmed or timer_never
  uint64_t flows_started = 0; // by its fires
  uint64_t misfires_dropped = 0;  // fires whose misfire policy left some missed times out
  friend bool operator==(const FlowTimer&, const FlowTimer&) = default;
};
// A new timer has no fire time until the shard arms it with its clock (the deploy's
// execution has no clock: the block time is set at seal); a schedule that never fires
// again waits at timer_never.
inline constexpr uint64_t timer_unarmed = 0;
inline constexpr uint64_t timer_never = UINT64_MAX;

struct FlowTableCounters {
  uint64_t flows_started = 0, flows_succeeded = 0, flows_failed = 0, flows_cancelled = 0;
  uint64_t jobs_dispatched = 0, jobs_succeeded = 0, jobs_failed = 0, jobs_timed_out = 0;
  uint64_t results_stale = 0;
};

class FlowTable {
 public:
  explicit FlowTable(FlowTableLimits limits = {});

  // Whether add_plan would stay within plans_max and products_max.
  bool can_add_plan(const FlowModel& model) const;
  // Adds a deployed contract version (a valid model; no other plan of its name and
  // version; can_add_plan); returns its plan index.
  uint32_t add_plan(FlowModel model);
  const FlowPlan& plan(uint32_t index) const { return plans_.at(index); }
  const FlowModel& model(uint32_t index) const { return models_.at(index); }
  const CompiledFlow& compiled(uint32_t index) const { return compiled_.at(index); }
  uint32_t plan_count() const { return uint32_t(plans_.size()); }
  // The plan of a contract's version, or of its newest version for version 0.
  std::optional<uint32_t> find_plan(std::string_view contract, uint32_t version) const;

  // Points the contract's timers at `plan` (its newest version): for each of the plan's
  // schedules that `fired_here(schedule index)` says this shard fires, creates the timer
  // (unarmed) or re-points it, keeping its next fire time when the schedule's cron is the
  // same (else unarmed again: the old time belongs to the old schedule); removes the
  // contract's other timers (schedules the new version dropped).
  template <class FiredHere>
  void set_timers(uint32_t plan, FiredHere fired_here) {
    std::vector<bool> here(models_.at(plan).schedules.size());
    for (uint32_t index = 0; index < here.size(); ++index) here[index] = fired_here(index);
    set_timers(plan, here);
  }
  void set_timers(uint32_t plan, const std::vector<bool>& fired_here);
  // Timers by id.
  const std::map<uint64_t, FlowTimer>& timers() const { return timers_; }
  const FlowTimer* timer(uint64_t id) const;
  // Records a fire (or an arming, with flows_started 0): the next fire time and what the
  // fire did. The timer must exist.
  void record_fire(uint64_t id, uint64_t next_fire_s, uint64_t flows_started, bool misfires_dropped);
  // Counts flows a fire started when it could not finish (the shard was full of live
  // flows): its fire time stays, and the generation does not move.
  void record_started(uint64_t id, uint64_t flows_started);
  // Changes whenever a timer is created, removed or its fire time changes (not persisted):
  // the tile rebuilds its wheel when it moves.
  uint64_t timers_generation() const { return timers_generation_; }

  // Metrics only: a clock read when a step becomes ready, so each dispatch carries its
  // ready time (JobDispatch::ready_ns) and the engine can measure ready -> dispatched.
  // Never serialized and never consulted by a decision, so replay is unaffected.
  void set_metrics_clock(uint64_t (*now_ns)()) { metrics_clock_ = now_ns; }

  // Creates or changes a product's queue settings; may dispatch more (appended to out).
  // False, changing nothing, for a new product past products_max.
  bool set_product(std::string_view name, ProductSettings settings, std::vector<JobDispatch>& out);
  // The next job mark to be issued: marks at or above it were never issued.
  uint64_t next_job_mark() const { return next_job_mark_; }

  // Starts a flow of `plan` under the idempotency key with its arguments (kept while the
  // flow lives: jobs' inputs are built from them); its root steps' jobs are appended to
  // `out` as far as their product has room. The arguments are the ledger's flow_start
  // form (encode_flow_args) holding exactly the plan's declared arguments, each one its
  // steps take in parts in that many parts (empty for a plan that declares none): the
  // ledger checks them before it starts a flow, and deserialize refuses others.
  StartResult start(std::string_view key, uint32_t plan, std::vector<JobDispatch>& out, std::string_view args = {});

  // A dispatched job's compute ended. Stale when the mark is not running.
  CompleteOutcome complete(uint64_t job_mark, JobOutcome outcome, std::string_view output,
                           std::vector<JobDispatch>& out);

  // Pause: no new job of the flow is dispatched (running ones finish and count). Resume
  // dispatches what became ready meanwhile. Cancel ends the flow: its running jobs'
  // results become stale. Each is not_allowed on a finished flow (and pause on a paused
  // one, resume on one not paused).
  ControlOutcome pause(uint64_t flow);
  ControlOutcome resume(uint64_t flow, std::vector<JobDispatch>& out);
  ControlOutcome cancel(uint64_t flow, std::vector<JobDispatch>& out);

  std::optional<FlowSummary> summary(uint64_t flow) const;
  // Every flow summary() knows: live ones, then kept finished ones, each by ascending id.
  std::vector<uint64_t> flow_ids() const;
  bool is_running(uint64_t job_mark) const { return running_.contains(job_mark); }
  // A live flow's plan index (summary() without its copies, for each job dispatched).
  uint32_t plan_of_flow(uint64_t flow) const { return live_.at(flow).plan; }
  // A live flow's arguments as started (empty for a flow not live).
  std::string_view args(uint64_t flow) const;
  std::optional<uint64_t> flow_of_key(std::string_view key) const;
  // The kept output of a finished step of a live flow (a split's: its sub-jobs' outputs
  // in sub-job order), or nullopt.
  std::optional<std::string> output(uint64_t flow, uint16_t step) const;
  // Every job running, in mark order (what an engine restarted from this state sends again).
  std::vector<JobDispatch> running_jobs() const;

  uint32_t live_flows() const { return uint32_t(live_.size()); }
  uint32_t finished_kept() const { return uint32_t(finished_.size()); }
  uint32_t running_job_count() const { return uint32_t(running_.size()); }
  const FlowTableCounters& counters() const { return counters_; }
  // Walks every flow: for reports, not for hot paths.
  FlowTableMemory memory() const;
  uint32_t product_count() const { return uint32_t(products_.size()); }
  // A product's queue settings, or nullopt when no plan or product_set has named it.
  std::optional<ProductSettings> product_settings(std::string_view name) const;
  // Jobs queued (ready, not dispatched) and running, of one product.
  uint64_t product_queued(std::string_view name) const;
  uint32_t product_running(std::string_view name) const;
  // Every product with its settings, queued and running jobs, in the order first named
  // (the views point into the table). Walks each product's queue: for monitors a few
  // times a second, not per transaction.
  struct ProductLoad {
    std::string_view name;
    ProductSettings settings;
    uint64_t queued = 0;
    uint32_t running = 0;
  };
  void product_loads(std::vector<ProductLoad>& out) const;

  // Canonical bytes (a snapshot's flow section): equal tables give equal bytes, and a
  // table read back behaves exactly as the one written (queues in order, counters,
  // sequence numbers). Little-endian, format 2: magic "KFT1", version, next flow id, next
  // job mark, counters, products with their queues, plans (each its model's encoding), live flows by id with their
  // steps and kept outputs, running jobs by mark, kept finished flows oldest first; format
  // 2 adds the timers (next timer id, then each by id) at the end.
  void serialize(std::vector<std::byte>& out) const;
  // Reads serialize()'s bytes from `in` and checks them (ids and marks below their
  // counters, plans, steps and sub-jobs in range, statuses known, keys unique, every
  // running job of a live flow), and that each live flow is one the operations above
  // could have left: its steps' statuses, dependency counts, queue entries, counters and
  // kept outputs agree with each other and with its plan, its running jobs are its
  // dispatched sub-jobs not yet finished, and its arguments are its plan's (start). An
  // error names the offset and what was wrong.
  static Result<FlowTable> deserialize(ledger::ByteReader& in, FlowTableLimits limits);

 private:
  struct StepState {
    uint16_t dependencies_left = 0;
    JobStatus status = JobStatus::pending;
    bool queued = false;          // has an entry in its product's queue
    uint32_t dispatched = 0;      // sub-jobs sent
    uint32_t finished = 0;        // sub-jobs ended (succeeded or failed)
    uint32_t failed = 0;
    std::vector<std::string> outputs;  // by sub-job, when the output is kept
    uint64_t ready_ns = 0;  // metrics only (set_metrics_clock); not serialized
  };
  struct LiveFlow {
    std::string key;
    std::string args;
    uint32_t plan = 0;
    FlowStatus status = FlowStatus::created;
    uint32_t steps_left = 0;
    uint64_t jobs_succeeded = 0, jobs_failed = 0;
    std::vector<StepState> steps;
    std::vector<uint64_t> running;  // job marks; RunningJob::position indexes it
  };
  struct RunningJob {
    uint64_t flow = 0;
    uint16_t step = 0;
    uint32_t sub_job = 0;
    uint32_t position = 0;  // in LiveFlow::running
  };
  struct Product {
    std::string name;
    ProductSettings settings;
    uint32_t running = 0;
    std::deque<std::pair<uint64_t, uint16_t>> ready;  // (flow, step), FIFO
    uint64_t dead_entries = 0;  // of ready: of flows that ended (dropped lazily, compacted)
  };
  struct FinishedFlow {
    uint64_t flow = 0;
    std::string key;
    uint32_t plan = 0;
    FlowStatus status = FlowStatus::succeeded;
    uint64_t jobs_succeeded = 0, jobs_failed = 0;
  };

  uint32_t product_index(std::string_view name);
  std::optional<uint32_t> find_product(std::string_view name) const;
  void order_products();
  uint64_t queued_jobs(const Product& product) const;
  void make_ready(uint64_t flow_id, LiveFlow& flow, uint16_t step);
  void dispatch(std::vector<JobDispatch>& out);
  void finish_step(uint64_t flow_id, LiveFlow& flow, uint16_t step, JobStatus status);
  void end_flow(uint64_t flow_id, FlowStatus status);
  void forget_running(LiveFlow& flow, uint64_t job_mark);
  // deserialize's checks of a live flow read back (its steps, counters and arguments;
  // `output_bound_kept`: its kept outputs are within output_bytes_max, as tables of
  // format 2 on keep them) and of one of its steps: why the operations could not have
  // left it so, or nullopt.
  std::optional<std::string> live_flow_problem(const LiveFlow& flow, bool output_bound_kept) const;
  std::optional<std::string> step_problem(const LiveFlow& flow, uint16_t step, bool output_bound_kept) const;

  FlowTableLimits limits_;
  std::vector<FlowModel> models_;   // by plan: what was deployed
  std::vector<CompiledFlow> compiled_;  // by plan
  std::vector<FlowPlan> plans_;
  std::vector<uint32_t> plan_product_;  // by plan
  std::vector<std::vector<std::vector<uint16_t>>> plan_successors_;  // by plan, by step
  std::vector<Product> products_;       // in the order named
  std::vector<uint32_t> product_order_; // by priority descending, then index
  std::map<uint64_t, LiveFlow> live_;   // by flow id
  std::unordered_map<uint64_t, RunningJob> running_;  // by job mark
  std::unordered_map<std::string, uint64_t> key_flows_;  // live and kept finished
  std::map<uint64_t, FinishedFlow> finished_;  // kept summaries, by flow id
  std::deque<uint64_t> finished_order_;        // their ids, oldest finished first
  std::map<uint64_t, FlowTimer> timers_;  // by id
  uint64_t next_timer_ = 1;
  uint64_t timers_generation_ = 0;
  uint64_t next_flow_ = 1;
  uint64_t next_job_mark_ = 1;
  FlowTableCounters counters_;
  uint64_t (*metrics_clock_)() = nullptr;
};

}  // namespace keel::flow
