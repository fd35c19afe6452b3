// engine/ledger/transaction.h: keel's binary transaction format, version 1.
//
//   std::vector<std::byte> bytes = encode_transfer(/*nonce=*/7, /*from=*/1, /*to=*/2, /*amount=*/100);
//   TxView view;
//   TxStatus status = check_transaction(bytes, TxOrigin::client, &view);
//   if (status != TxStatus::applied) reject(status_text(status));   // malformed: never ordered
//   uint32_t shard = home_shard(view, shard_count);                  // where it executes
//
// Every transaction starts with a 16-byte header: its whole length, the format version,
// its type, flags and a client nonce (two otherwise identical transfers differ by nonce,
// so their hashes differ). Bodies are fixed per type except `put`, `compute_request`,
// `compute_result` and `compute_results`, whose variable bytes follow their small fixed
// part. All integers are
// little-endian; structs are read with memcpy, so a transaction needs no alignment.
//
// Types: 1..15 ledger basics (below), 16..63 contract and compute transactions (16:
// compute_request; the rest reserved for flows), 64..127 internal (made by the engine
// itself, refused from clients: 64 credit, 65 compute_result, 66 timer_fire, 67 credit_spend,
// 68 compute_results),
// 128..255 system transactions (128 credit_grant from a granting client; 129 balance_record,
// the balancer's, internal too).
//
// Access credits: on a chain whose config requires them, every client submission costs
// the submitting client (its client id, below) credits from its account on the shard
// that executes it. A credit_grant (from a client the chain lists as a granter) adds to
// an account on one shard; the shard charges a submission when it orders it and, when it
// seals the block, appends one credit_spend per charged client (shard.h).
//
// Compute, until flows arrive: a client's compute_request asks for one call of a compute
// type with some input bytes; its shard records it as a pending task (state.h) and hands
// it to the scheduler once its block is sealed (shard.h); the engine later orders a
// compute_result carrying the outcome and output on the same shard, which settles the
// task exactly once (the scheduler sends many at once as one compute_results, below):
//
//   std::vector<std::byte> request = encode_compute_request(/*nonce=*/9, /*subject=*/42, "hash", input);
//   ... the shard executes it at (height, index): task_mark = CreditMark::pack(height, index)
//   std::vector<std::byte> result = encode_compute_result(task_mark, /*shard=*/home, /*attempt=*/1,
//                                                         ComputeOutcome::succeeded, /*plugin_status=*/0, output);
//   check_transaction(result, TxOrigin::engine, &view);   // TxOrigin::client gets internal_type
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel::ledger {

inline constexpr uint8_t tx_format_version = 1;
inline constexpr uint32_t tx_bytes_max = 65536;
inline constexpr uint32_t put_key_bytes_max = 256;
inline constexpr uint32_t put_value_bytes_max = 16384;
// A compute type's name: 1..32 characters of [a-z0-9_] (the name pools are configured by;
// the plugin ABI's KEEL_COMPUTE_TYPE_CHARS_MAX, which the plugin loader checks against).
inline constexpr uint32_t compute_type_bytes_max = 32;
inline constexpr uint32_t compute_input_bytes_max = 16384;
inline constexpr uint32_t compute_output_bytes_max = 16384;
// A client's id, which it attaches with (client/client.h) and which access credits are
// held under: 1..32 characters of [a-z0-9_.-]. An identity, not an authentication: any
// process that may open the engine's segment may claim any id.
inline constexpr uint32_t client_id_bytes_max = 32;
inline bool is_client_id(std::string_view id) {
  if (id.empty() || id.size() > client_id_bytes_max) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) return false;
  return true;
}
// A client id as transactions, the segment and the state hold it: NUL-padded to 32 bytes.
using ClientId = std::array<char, client_id_bytes_max>;
// The padded form of a valid id (asserts is_client_id(id)).
ClientId make_client_id(std::string_view id);
// The id a padded field holds: its characters before the first NUL, when they are a valid
// id and every byte after them is NUL; nullopt otherwise.
std::optional<std::string_view> client_id_text(const ClientId& field);
// Logs written before names were held to 32 characters may hold requests with up to 64:
// what the engine reads back (replay, snapshots) still accepts them; clients cannot send them.
inline constexpr uint32_t compute_type_bytes_max_logged = 64;
// True for a valid compute type name: 1..bytes_max characters of [a-z0-9_].
// Inline: engine/flow, below the ledger, checks names by the same rule.
inline bool is_compute_type_name(std::string_view name, size_t bytes_max = compute_type_bytes_max) {
  if (name.empty() || name.size() > bytes_max) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

enum class TxType : uint8_t {
  create_account = 1,    // opens an account on its home shard with an opening balance
  transfer = 2,          // moves an amount between two accounts of one chain
  put = 3,               // sets a key to a value
  compute_request = 16,  // asks for one call of a compute type; becomes a pending task
  flow_deploy = 17,      // deploys a contract version (a flow model) on one shard of its chain
  flow_start = 18,       // starts a flow of a deployed contract under an idempotency key
  flow_control = 19,     // pauses, resumes or cancels a flow, named by its key
  product_set = 20,      // sets a product's job queue priority and running limit on one shard
  credit = 64,           // internal: the credit half of a cross-shard transfer (or its refund)
  compute_result = 65,   // internal: a pending task's outcome and output, made by the engine
  timer_fire = 66,       // internal: a cron timer fires (or is armed), made by the shard's tile
  balance_record = 129,  // internal: the balancer changed a chain's tier or CPU slice (on the system chain)
  credit_spend = 67,     // internal: what one client's submissions in a block cost, appended at seal
  compute_results = 68,  // internal: the outcomes of several pending tasks of one shard
  credit_grant = 128,    // system: adds access credits to a client's account on one shard
};

// Whether a transaction came from a client or from the engine (internal types).
enum class TxOrigin { client, engine };

// The receipt status: applied, or why not. Values are stable: they go on the wire.
enum class TxStatus : uint16_t {
  applied = 0,
  // Malformed: rejected before ordering (receipt height 0).
  too_short = 1,
  bad_version = 2,
  bad_length = 3,
  unknown_type = 4,
  internal_type = 5,
  bad_flags = 6,
  bad_flow_model = 7,  // a flow_deploy's model does not decode or validate
  bad_flow_args = 8,   // a flow_start's arguments are not a well-formed list of named values
  // A credit_grant's client id, or the id of the client slot a submission came from, is
  // not 1..32 characters of [a-z0-9_.-] NUL-padded.
  bad_client_id = 9,
  // Rejected by the state, in a block.
  account_exists = 20,
  no_such_account = 21,
  insufficient_funds = 22,
  zero_amount = 23,
  same_account = 24,
  negative_opening_balance = 25,
  balance_overflow = 26,
  empty_key = 27,
  key_too_long = 28,
  value_too_long = 29,
  credit_refunded = 30,   // a cross-shard credit found no account (or overflowed): sent back
  duplicate_credit = 31,  // internal: a credit already applied (after a restart); never ordered
  wrong_shard = 32,       // routed to a shard that does not own it (an engine bug, not a client's)
  // A compute_request found its shard holding BlockLimits::compute_pending_max pending
  // tasks. Ordered, in a block, like any rejection: the producer sees backpressure in its
  // receipt, and replay rejects it again (the block header records the bound).
  compute_backlog_full = 33,
  // Internal, never ordered (like duplicate_credit): a compute_result for a task that is
  // no longer pending — another attempt's result, or the same result again, landed first
  // (a compute_results none of whose entries settles a task).
  duplicate_result = 34,
  // Internal, never ordered: a compute_result for a mark above any this shard issued (or
  // below the first possible one): an engine bug, never a task's effect.
  unknown_task = 35,
  // Flows, in a block.
  unknown_contract = 36,         // flow_start: no such contract (or version) deployed on the shard
  contract_version_exists = 37,  // flow_deploy: that version is deployed with another model
  flow_exists = 38,              // flow_start: the key names a flow already; that flow stands
  flows_full = 39,               // flow_start: the shard holds its most live flows; retry later
  unknown_flow = 43,             // flow_control: no flow (live or kept) has that key
  flow_control_refused = 44,     // flow_control: not in the flow's state (finished, paused twice, ...)
  flow_args_mismatch = 45,       // flow_start: an argument missing, undeclared, or not in its parts
  flow_limit_reached = 46,       // flow_deploy, product_set: the shard holds its most contracts or products
  // Internal, never ordered: a timer_fire for a fire time the timer no longer waits for
  // (it fired already, or its contract was redeployed without it) or not yet due.
  timer_stale = 47,
  // Internal, never ordered: a timer_fire for a timer this shard does not hold.
  unknown_timer = 48,
  // Access credits, in a block: a credit_grant to a client without an account on a shard
  // that holds credit_accounts_max accounts already.
  credit_accounts_full = 49,
  // Refused by the engine before ordering (receipt height 0).
  unknown_chain = 40,
  engine_stopping = 41,
  no_such_shard = 42,  // a flow_deploy, product_set or credit_grant names a shard the chain does not have
  // On a chain that requires access credits: the submitting client's balance on the
  // executing shard, less what the open block already charged it, does not cover the cost.
  // Internal too: a credit_spend its account cannot cover (never ordered; replay fails).
  no_credit = 50,
  not_a_granter = 51,  // a credit_grant from a client the chain's credit_granters does not list
  system_chain = 60,   // a client submitted to the system chain, which takes only the engine's records
};

// One line naming the reason, e.g. "insufficient funds".
std::string_view status_text(TxStatus status);
// True for malformed transactions (refused before ordering, in no block).
bool status_is_malformed(TxStatus status);
// True for every status given before ordering: malformed or refused by the engine
// (compute_backlog_full: from block format 3 on; formats 1 and 2 ordered it).
bool status_is_unordered(TxStatus status);

struct TxHeader {
  uint32_t length;  // the whole transaction, header included
  uint8_t version;  // tx_format_version
  uint8_t type;     // TxType
  uint16_t flags;   // per type; must be 0 where a type defines none
  uint64_t nonce;   // chosen by the client
};
static_assert(sizeof(TxHeader) == 16);

inline constexpr uint32_t account_flag_allow_overdraft = 1;

struct CreateAccountBody {
  uint64_t account;
  int64_t opening_balance;  // >= 0; a chain's total balance is the sum of these
  uint32_t account_flags;   // account_flag_allow_overdraft
  uint32_t reserved;        // 0
};
static_assert(sizeof(CreateAccountBody) == 24);

struct TransferBody {
  uint64_t from;
  uint64_t to;
  uint64_t amount;  // > 0, at most INT64_MAX
};
static_assert(sizeof(TransferBody) == 24);

struct PutBody {
  uint16_t key_bytes;    // 1..put_key_bytes_max
  uint16_t reserved;     // 0
  uint32_t value_bytes;  // 0..put_value_bytes_max; key then value follow
};
static_assert(sizeof(PutBody) == 8);

inline constexpr uint16_t credit_flag_refund = 1;  // in TxHeader::flags of a credit

// A credit carries where its debit happened, so the destination applies each exactly
// once: credits from one origin shard arrive in (height, index) order and the
// destination keeps the last one it applied.
struct CreditBody {
  uint64_t to;             // the account credited
  uint64_t from;           // the account debited on the origin shard (refunds go back to it)
  uint64_t amount;
  uint64_t origin_height;  // the block holding the debit (or the refused credit)
  uint32_t origin_shard;
  uint32_t origin_index;   // the debit's position in that block
};
static_assert(sizeof(CreditBody) == 40);
inline constexpr size_t credit_tx_bytes = sizeof(TxHeader) + sizeof(CreditBody);

// compute_request: the compute type's name (compute_type_bytes) then the input
// (input_bytes) follow. Home shard: shard_of_account(subject), so requests about one
// subject are ordered on one shard.
struct ComputeRequestBody {
  uint64_t subject;             // the account (or any 64-bit key) the task is about
  uint16_t compute_type_bytes;  // 1..compute_type_bytes_max
  uint16_t reserved;            // 0
  uint32_t input_bytes;         // 0..compute_input_bytes_max
};
static_assert(sizeof(ComputeRequestBody) == 16);
static_assert(offsetof(ComputeRequestBody, input_bytes) == 12);

// How a compute task ended. Values are stable: they are in the log.
enum class ComputeOutcome : uint16_t {
  succeeded = 0,
  plugin_failed = 1,      // the plugin returned a permanent failure status (plugin_status)
  timed_out = 2,          // every attempt timed out
  retries_exhausted = 3,  // attempts failed (crashes, transient statuses) up to the retry limit
  quarantined = 4,        // the plugin was quarantined: its message is in the output bytes
  no_pool = 5,            // no pool serves the compute type
};
inline constexpr uint16_t compute_outcome_count = 6;
// One line naming the outcome, e.g. "timed out".
std::string_view outcome_text(ComputeOutcome outcome);

// compute_result: the output (output_bytes) follows. Home shard: `shard`, the shard that
// issued the task (the executor refuses it as wrong_shard anywhere else, including when
// shard >= shard_count).
struct ComputeResultBody {
  uint64_t task_mark;     // CreditMark::pack(height, index) of the request in its shard's log
  uint32_t shard;         // the request's shard (within the chain)
  uint32_t attempt;       // which dispatch produced it (1 for the first); kept for audit
  uint16_t outcome;       // ComputeOutcome
  uint16_t reserved;      // 0
  int32_t plugin_status;  // the plugin's status code (0 unless the plugin ran and said otherwise)
  uint32_t output_bytes;  // 0..compute_output_bytes_max
  uint32_t reserved2;     // 0
};
static_assert(sizeof(ComputeResultBody) == 32);
static_assert(offsetof(ComputeResultBody, outcome) == 16);
static_assert(offsetof(ComputeResultBody, output_bytes) == 24);

// The whole size of a compute_result carrying `output_bytes` of output.
constexpr size_t compute_result_tx_bytes(size_t output_bytes) {
  return sizeof(TxHeader) + sizeof(ComputeResultBody) + output_bytes;
}

// compute_results: `count` entries follow, in strictly ascending task_mark order, each a
// ComputeResultBody (its `shard` the batch's) and then its output_bytes of output,
// unpadded. The scheduler answers a shard's tasks in these: one header, one check, one
// leaf hash and one ring message for a batch instead of one each per task, which is most
// of a short task's cost on the shard. Ordered only when every entry settles a pending
// task as the batch begins (else duplicate_result or unknown_task, never ordered; the
// shard's tile then orders the entries that do settle as a batch of their own), then
// executed entry by entry, in order, exactly as that many compute_result transactions:
// a plain task's entry always has its effect, so its result can be counted from the log
// alone; a flow job's entry has none when an earlier entry's job ended its flow (and
// with it the flow's other jobs), as its own compute_result would not. Home shard: `shard`.
struct ComputeResultsBody {
  uint32_t shard;  // the tasks' shard (within the chain)
  uint32_t count;  // 1..compute_results_entries_max entries follow
};
static_assert(sizeof(ComputeResultsBody) == 8);
inline constexpr uint32_t compute_results_entries_max = 1024;

// The bytes one entry of a compute_results takes, carrying `output_bytes` of output.
constexpr size_t compute_result_entry_bytes(size_t output_bytes) { return sizeof(ComputeResultBody) + output_bytes; }
// The whole size of a compute_results whose entries take `entry_bytes` in all.
constexpr size_t compute_results_tx_bytes(size_t entry_bytes) {
  return sizeof(TxHeader) + sizeof(ComputeResultsBody) + entry_bytes;
}

// One entry of a checked compute_results.
struct ComputeResultEntry {
  ComputeResultBody body{};
  std::span<const std::byte> output;
};

// Walks the entries of a checked compute_results (TxView::results) in order:
//   ComputeResultEntries entries(view.results);
//   for (ComputeResultEntry entry; entries.next(entry);) settle(entry.body.task_mark, entry.output);
class ComputeResultEntries {
 public:
  explicit ComputeResultEntries(std::span<const std::byte> entries) : rest_(entries) {}
  bool next(ComputeResultEntry& entry);

 private:
  std::span<const std::byte> rest_;
};

// flow_deploy: the model (flow/flow_model.h's encoding, model_bytes) follows. Home
// shard: `shard`; a chain's contract is deployed on each of its shards (keel flow deploy
// sends one per shard), since a flow runs where its key's hash puts it.
struct FlowDeployBody {
  uint32_t shard;
  uint32_t model_bytes;  // 1..flow_model_bytes_max
};
static_assert(sizeof(FlowDeployBody) == 8);
inline constexpr uint32_t flow_model_bytes_max = 32768;

// flow_start: the contract's name, the key, then the arguments follow. Home shard:
// flow_key_home_shard(key). The key is the caller's idempotency key and the flow's name:
// the same key returns the same flow (flow_exists) while the shard keeps it. Keys
// starting with '@' are the timers' (bad_flags from a client).
struct FlowStartBody {
  uint32_t version;         // 0: the newest deployed
  uint16_t contract_bytes;  // 1..flow_name_bytes_max of [a-z0-9_]
  uint16_t key_bytes;       // 1..flow_key_bytes_max
  uint32_t args_bytes;      // 0..flow_args_bytes_max: encode_flow_args's form (below)
  uint32_t reserved;        // 0
};
static_assert(sizeof(FlowStartBody) == 16);
inline constexpr uint32_t flow_name_bytes_max = 32;
inline constexpr uint32_t flow_key_bytes_max = 128;
inline constexpr uint32_t flow_args_bytes_max = 16384;

enum class FlowAction : uint8_t { pause = 1, resume = 2, cancel = 3 };

// flow_control: the key follows. Home shard: flow_key_home_shard(key).
struct FlowControlBody {
  uint8_t action;      // FlowAction
  uint8_t reserved;    // 0
  uint16_t key_bytes;  // 1..flow_key_bytes_max
  uint32_t reserved2;  // 0
};
static_assert(sizeof(FlowControlBody) == 8);

// product_set: the product's name follows. Home shard: `shard`.
struct ProductSetBody {
  uint32_t shard;
  uint32_t priority;     // higher is dispatched first
  uint32_t running_max;  // 1..2^20 jobs of the product running at once on the shard
  uint16_t name_bytes;   // 1..flow_name_bytes_max of [a-z0-9_]
  uint16_t reserved;     // 0
};
static_assert(sizeof(ProductSetBody) == 16);

// timer_fire: fixed size. Home shard: `shard`. Proposed by the shard's own tile when a
// timer's recorded fire time has passed on its clock (or to arm a new timer: due_s =
// flow::timer_unarmed). Executing it starts the fires' flows and records the timer's
// next fire time, in one transaction, so a crash keeps both or neither; now_s is an
// input like a block's time, so replay decides exactly as the live run did.
struct TimerFireBody {
  uint32_t shard;
  uint32_t reserved;  // 0
  uint64_t timer;     // flow::FlowTimer::id
  uint64_t due_s;     // the fire time the timer waits for (0: arm it)
  uint64_t now_s;     // the engine's clock (Unix seconds, UTC) when it proposed the fire
};
static_assert(sizeof(TimerFireBody) == 32);
inline constexpr size_t timer_fire_tx_bytes = 16 + sizeof(TimerFireBody);

// balance_record: fixed size. Home shard: `shard` (the `system` chain's shard 0). The
// balancer tile orders one on the system chain for every change of a chain's tier or CPU
// slice, so the history of who got which cores is in a hash-chained, durable log
// (`keel balance history` reads it back). It changes no state.
enum class BalanceRecordKind : uint8_t { tier = 1, slice = 2 };
inline constexpr uint32_t balance_chain_name_bytes = 48;  // NUL-padded; the config allows 47
struct BalanceRecordBody {
  uint32_t shard;
  uint8_t kind;       // BalanceRecordKind
  uint8_t tier_from;  // 0 light, 1 medium, 2 heavy (balance::Tier)
  uint8_t tier_to;    // the same as tier_from for a slice change
  uint8_t reserved;   // 0
  uint64_t window;    // the balancer's window number since the engine started
  uint64_t time_ms;   // the engine's clock (Unix milliseconds) when it decided
  uint64_t tps_smoothed;         // the chain's smoothed committed transactions/s
  uint64_t cost_ns_per_tx;       // its smoothed CPU time per committed transaction
  uint32_t cores_dedicated;      // cores of its own after the change
  uint32_t shares_permille;      // its share of the shared cores' shard time, in 1/1000
  char chain_name[balance_chain_name_bytes];
};
static_assert(sizeof(BalanceRecordBody) == 96);
inline constexpr size_t balance_record_tx_bytes = 16 + sizeof(BalanceRecordBody);
// credit_grant: fixed size. Home shard: `shard` (no_such_shard at the gateway past the
// chain's). Adds `amount` to the client's account on that shard (zero_amount, or
// balance_overflow past 2^64 - 1, or credit_accounts_full for a new account on a full
// shard: rejections in the block). Free of charge on any chain.
// credit_spend: the same layout; internal. Home shard: `shard`. Made by the shard at seal
// (nonce: the block's height), one per client charged in the block: debits `amount`.
struct ClientCreditBody {
  uint32_t shard;
  uint32_t reserved;  // 0
  uint64_t amount;
  ClientId client;    // make_client_id's form: checked (bad_client_id)
};
static_assert(sizeof(ClientCreditBody) == 48);
static_assert(offsetof(ClientCreditBody, client) == 16);
inline constexpr size_t client_credit_tx_bytes = 16 + sizeof(ClientCreditBody);

// A checked transaction: the header and the body of its type, copied out.
struct TxView {
  TxHeader header{};
  TxType type{};
  union {
    CreateAccountBody create_account;
    TransferBody transfer;
    PutBody put;
    CreditBody credit;
    ComputeRequestBody compute_request;
    ComputeResultBody compute_result;
    ComputeResultsBody compute_results;
    FlowDeployBody flow_deploy;
    FlowStartBody flow_start;
    FlowControlBody flow_control;
    ProductSetBody product_set;
    TimerFireBody timer_fire;
    BalanceRecordBody balance_record;
    ClientCreditBody client_credit;  // credit_grant, credit_spend
  };
  std::span<const std::byte> key;    // put, flow_start, flow_control
  std::span<const std::byte> value;  // put only
  std::string_view compute_type;     // compute_request only: the checked name
  std::span<const std::byte> input;  // compute_request; flow_start's arguments; flow_deploy's model
  std::span<const std::byte> output; // compute_result only
  std::span<const std::byte> results; // compute_results only: its entries (ComputeResultEntries)
  std::string_view name;             // flow_start's contract, product_set's product: checked
  TxView() : create_account{} {}
};

// Checks framing, version, type, lengths and flags. Returns applied (meaning
// "well-formed") and fills *view, or the malformed status. Never reads past `bytes`;
// the view's spans point into `bytes`.
//
// For the compute types: bad_length when the name is empty or longer than
// compute_type_bytes_max, the input or output longer than its maximum, or the parts do
// not add up to the length exactly; bad_flags when a reserved field is not zero, the
// name has a character outside [a-z0-9_], or a result's outcome is not a ComputeOutcome.
// A compute_results: bad_length for a count of 0 or past compute_results_entries_max or
// entries that do not add up to the length exactly, and each entry as a compute_result
// (bad_flags too when an entry's shard is not the batch's or its task mark is not above
// the one before).
// compute_result and compute_results from TxOrigin::client: internal_type.
// For the flow types: bad_length when a part is empty where it must not be, longer than
// its maximum, or the parts do not add up; bad_flags for a reserved field, an unknown
// action, a name outside [a-z0-9_] or a running_max of 0 or past 2^20;
// bad_client_id for a credit_grant's or credit_spend's client id that is not
// make_client_id's form; bad_flags for their reserved field;
// bad_flow_args when the arguments are not encode_flow_args's form; bad_flow_model when
// a deploy's model does not decode (flow/flow_model.h).
TxStatus check_transaction(std::span<const std::byte> bytes, TxOrigin origin, TxView* view);

// The shard a transaction executes on: an account's home for create_account and
// transfer (its `from`), the key's for put, flow_start and flow_control (flow_key_home_shard), the credited
// account's for credit, the subject's for compute_request, and the `shard` field for
// compute_result, compute_results, flow_deploy, product_set, timer_fire, credit_grant and credit_spend (not reduced modulo shard_count: a bad one
// matches no shard; the gateway answers no_such_shard).
uint32_t home_shard(const TxView& view, uint32_t shard_count);
// The home shard of an account or key: a fixed mix of its bits (splitmix64 for
// accounts, FNV-1a for keys) modulo the shard count. Part of the on-disk contract:
// changing it re-homes every account.
uint32_t shard_of_account(uint64_t account, uint32_t shard_count);
uint32_t shard_of_key(std::span<const std::byte> key, uint32_t shard_count);

// Cron timers: a contract's schedule i is fired by one shard of the chain, the home of the
// key "<contract>/<i>", whichever shards deployed it. The flow a fire starts has the key
// "@<contract>/<i>/<fire time, ISO 8601 UTC>" ("@nightly_interest/0/2026-11-25T01:30:00Z"):
// its idempotency key, so one fire time never starts two flows. Keys starting with '@' are
// reserved for these (a client's flow_start with one is bad_flags) and live on their
// timer's shard: flow_key_home_shard reads the "<contract>/<i>" between '@' and the second
// '/'; every other key's home is shard_of_key(key).
uint32_t timer_home_shard(std::string_view contract, uint32_t schedule, uint32_t shard_count);
std::string scheduled_flow_key(std::string_view contract, uint32_t schedule, uint64_t fire_s);
uint32_t flow_key_home_shard(std::span<const std::byte> key, uint32_t shard_count);

// Encoders for clients, tests and the load generator.
std::vector<std::byte> encode_create_account(uint64_t nonce, uint64_t account, int64_t opening_balance,
                                             uint32_t account_flags = 0);
std::vector<std::byte> encode_transfer(uint64_t nonce, uint64_t from, uint64_t to, uint64_t amount);
std::vector<std::byte> encode_put(uint64_t nonce, std::span<const std::byte> key, std::span<const std::byte> value);
// Writes a credit transaction (credit_tx_bytes) into `out`.
void write_credit(std::span<std::byte, credit_tx_bytes> out, const CreditBody& body, bool refund);
// A compute_request. Does not check its arguments (tests build malformed ones with it),
// beyond asserting that the lengths fit their fields.
std::vector<std::byte> encode_compute_request(uint64_t nonce, uint64_t subject, std::string_view compute_type,
                                              std::span<const std::byte> input);
// Writes a compute_result for the engine into `out`, which must be exactly
// compute_result_tx_bytes(output.size()) bytes (a ring slot or an arena block); asserts
// output.size() <= compute_output_bytes_max. The nonce is the task mark, so results of
// different tasks always hash apart (attempts differ by their `attempt` field).
void write_compute_result(std::span<std::byte> out, uint64_t task_mark, uint32_t shard, uint32_t attempt,
                          ComputeOutcome outcome, int32_t plugin_status, std::span<const std::byte> output);
// A flow's arguments: named byte strings, names ascending ([a-z0-9_], 1..32), each as
// a FlowArgHeader, the name, the value. At most flow_args_bytes_max in all.
struct FlowArgHeader {
  uint16_t name_bytes;
  uint16_t reserved;  // 0
  uint32_t value_bytes;
};
static_assert(sizeof(FlowArgHeader) == 8);
bool flow_args_well_formed(std::span<const std::byte> args);
// The value of the named argument of well-formed args, or nullopt.
std::optional<std::span<const std::byte>> flow_arg(std::span<const std::byte> args, std::string_view name);
std::vector<std::byte> encode_flow_args(const std::map<std::string, std::string>& args);

// Flow transactions. They do not check their arguments (tests build malformed ones).
std::vector<std::byte> encode_flow_deploy(uint64_t nonce, uint32_t shard, std::span<const std::byte> model);
std::vector<std::byte> encode_flow_start(uint64_t nonce, std::string_view contract, uint32_t version,
                                         std::string_view key, std::span<const std::byte> args);
std::vector<std::byte> encode_flow_control(uint64_t nonce, FlowAction action, std::string_view key);
std::vector<std::byte> encode_product_set(uint64_t nonce, uint32_t shard, std::string_view product, uint32_t priority,
                                          uint32_t running_max);
// Access credits. They do not check their arguments beyond asserting the id fits.
std::vector<std::byte> encode_credit_grant(uint64_t nonce, uint32_t shard, std::string_view client, uint64_t amount);
// A credit_spend (TxOrigin::engine) for the block at `height` (its nonce).
std::vector<std::byte> encode_credit_spend(uint64_t height, uint32_t shard, const ClientId& client, uint64_t amount);
// A timer_fire (TxOrigin::engine); the nonce is the fire time (0 when arming), so fires of
// one timer hash apart.
std::vector<std::byte> encode_timer_fire(uint32_t shard, uint64_t timer, uint64_t due_s, uint64_t now_s);
// A balance_record (TxOrigin::engine); the nonce is the window, so records differ.
std::vector<std::byte> encode_balance_record(const BalanceRecordBody& body);
// Writes one entry of a compute_results into `out`, which must be exactly
// compute_result_entry_bytes(output.size()) bytes.
void write_compute_result_entry(std::span<std::byte> out, uint64_t task_mark, uint32_t shard, uint32_t attempt,
                                ComputeOutcome outcome, int32_t plugin_status, std::span<const std::byte> output);
// Writes the head of a compute_results (TxHeader and ComputeResultsBody) into the first
// compute_results_tx_bytes(0) bytes of `out`, the whole transaction, whose `count`
// entries the caller writes after it (ascending task marks). The nonce is the first
// entry's task mark.
void write_compute_results_head(std::span<std::byte> out, uint32_t shard, uint32_t count, uint64_t first_task_mark);
// A compute_results of the given entries (each as write_compute_result_entry wrote it, in
// ascending task mark order).
std::vector<std::byte> encode_compute_results(uint32_t shard, const std::vector<std::vector<std::byte>>& entries);
// The same, into a new vector.
std::vector<std::byte> encode_compute_result(uint64_t task_mark, uint32_t shard, uint32_t attempt,
                                             ComputeOutcome outcome, int32_t plugin_status,
                                             std::span<const std::byte> output);

}  // namespace keel::ledger
