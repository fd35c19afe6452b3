#include "engine/ledger/transaction.h"

#include "engine/flow/cron.h"
#include "engine/flow/flow_model.h"

#include <cassert>
#include <cstddef>
#include <cstring>
#include <limits>

namespace keel::ledger {

std::string_view status_text(TxStatus status) {
  switch (status) {
    case TxStatus::applied: return "applied";
    case TxStatus::too_short: return "too short for a transaction header";
    case TxStatus::bad_version: return "unknown transaction format version";
    case TxStatus::bad_length: return "length field does not match the bytes or the type";
    case TxStatus::unknown_type: return "unknown transaction type";
    case TxStatus::internal_type: return "internal transaction type is not accepted from clients";
    case TxStatus::bad_flags: return "flags, reserved bytes or a field value not defined for this type";
    case TxStatus::account_exists: return "account already exists";
    case TxStatus::no_such_account: return "no such account";
    case TxStatus::insufficient_funds: return "insufficient funds";
    case TxStatus::zero_amount: return "amount must be positive";
    case TxStatus::same_account: return "transfer to the same account";
    case TxStatus::negative_opening_balance: return "opening balance must not be negative";
    case TxStatus::balance_overflow: return "balance would overflow";
    case TxStatus::empty_key: return "key must not be empty";
    case TxStatus::key_too_long: return "key longer than 256 bytes";
    case TxStatus::value_too_long: return "value longer than 16384 bytes";
    case TxStatus::credit_refunded: return "credit refused (no such account or overflow), refunded";
    case TxStatus::duplicate_credit: return "credit already applied";
    case TxStatus::wrong_shard: return "routed to a shard that does not own it";
    case TxStatus::compute_backlog_full: return "the shard's compute backlog is full; retry later";
    case TxStatus::duplicate_result: return "compute result for a task no longer pending";
    case TxStatus::unknown_task: return "compute result for a task this shard never issued";
    case TxStatus::bad_flow_model: return "the flow model does not decode or validate";
    case TxStatus::bad_flow_args: return "the flow arguments are not a list of named values";
    case TxStatus::unknown_contract: return "no such contract (or version) is deployed";
    case TxStatus::contract_version_exists: return "that contract version is deployed with another model";
    case TxStatus::flow_exists: return "the key names a flow already; that flow stands";
    case TxStatus::flows_full: return "the shard holds its most live flows; retry later";
    case TxStatus::unknown_flow: return "no flow has that key";
    case TxStatus::flow_control_refused: return "not allowed in the flow's state";
    case TxStatus::no_such_shard: return "the chain has no such shard";
    case TxStatus::system_chain: return "the system chain takes only the engine's own records";
    case TxStatus::flow_args_mismatch: return "the arguments do not match the contract's";
    case TxStatus::flow_limit_reached: return "the shard holds its most contract versions or products";
    case TxStatus::timer_stale: return "the timer does not wait for that fire time";
    case TxStatus::unknown_timer: return "no such timer on the shard";
    case TxStatus::unknown_chain: return "no such chain";
    case TxStatus::engine_stopping: return "the engine is stopping";
    case TxStatus::bad_client_id: return "client id is not 1 to 32 characters of [a-z0-9_.-]";
    case TxStatus::credit_accounts_full: return "the shard holds its most access credit accounts";
    case TxStatus::no_credit: return "no access credit on this shard";
    case TxStatus::not_a_granter: return "this client may not grant access credits on this chain";
  }
  return "unknown status";
}

bool status_is_malformed(TxStatus status) {
  uint16_t code = static_cast<uint16_t>(status);
  return code >= 1 && code < 20;
}

bool status_is_unordered(TxStatus status) {
  return status_is_malformed(status) || status == TxStatus::unknown_chain || status == TxStatus::engine_stopping ||
         status == TxStatus::no_such_shard || status == TxStatus::no_credit || status == TxStatus::not_a_granter ||
         status == TxStatus::system_chain || status == TxStatus::compute_backlog_full;
}

ClientId make_client_id(std::string_view id) {
  assert(is_client_id(id));
  ClientId field{};
  std::memcpy(field.data(), id.data(), id.size());
  return field;
}

std::optional<std::string_view> client_id_text(const ClientId& field) {
  size_t size = 0;
  while (size < field.size() && field[size] != '\0') ++size;
  for (size_t at = size; at < field.size(); ++at)
    if (field[at] != '\0') return std::nullopt;
  std::string_view id(field.data(), size);
  if (!is_client_id(id)) return std::nullopt;
  return id;
}

std::string_view outcome_text(ComputeOutcome outcome) {
  switch (outcome) {
    case ComputeOutcome::succeeded: return "succeeded";
    case ComputeOutcome::plugin_failed: return "the plugin failed";
    case ComputeOutcome::timed_out: return "timed out";
    case ComputeOutcome::retries_exhausted: return "retries exhausted";
    case ComputeOutcome::quarantined: return "the plugin is quarantined";
    case ComputeOutcome::no_pool: return "no pool serves the compute type";
  }
  return "unknown outcome";
}

namespace {

template <class T>
T read_at(std::span<const std::byte> bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

// The exact length of a fixed-size type, or 0 for variable ones.
size_t fixed_length(TxType type) {
  switch (type) {
    case TxType::create_account: return sizeof(TxHeader) + sizeof(CreateAccountBody);
    case TxType::transfer: return sizeof(TxHeader) + sizeof(TransferBody);
    case TxType::credit: return credit_tx_bytes;
    case TxType::timer_fire: return timer_fire_tx_bytes;
    case TxType::balance_record: return balance_record_tx_bytes;
    case TxType::credit_spend:
    case TxType::credit_grant: return client_credit_tx_bytes;
    case TxType::put:
    case TxType::compute_request:
    case TxType::compute_result:
    case TxType::compute_results:
    case TxType::flow_deploy:
    case TxType::flow_start:
    case TxType::flow_control:
    case TxType::product_set: return 0;
  }
  return 0;
}

bool is_known_type(uint8_t type) {
  return type == uint8_t(TxType::create_account) || type == uint8_t(TxType::transfer) ||
         type == uint8_t(TxType::put) || type == uint8_t(TxType::credit) ||
         type == uint8_t(TxType::compute_request) || type == uint8_t(TxType::compute_result) ||
         type == uint8_t(TxType::compute_results) ||
         type == uint8_t(TxType::timer_fire) || type == uint8_t(TxType::credit_spend) ||
         type == uint8_t(TxType::credit_grant) || type == uint8_t(TxType::balance_record) ||
         (type >= uint8_t(TxType::flow_deploy) && type <= uint8_t(TxType::product_set));
}

bool is_internal_type(TxType type) {
  return type == TxType::credit || type == TxType::compute_result || type == TxType::compute_results ||
         type == TxType::timer_fire ||
         type == TxType::credit_spend || type == TxType::balance_record;
}


TxStatus check_put(std::span<const std::byte> bytes, TxView* view) {
  if (bytes.size() < sizeof(TxHeader) + sizeof(PutBody)) return TxStatus::bad_length;
  view->put = read_at<PutBody>(bytes, sizeof(TxHeader));
  const PutBody& put = view->put;
  if (put.reserved != 0) return TxStatus::bad_flags;
  if (put.key_bytes == 0) return TxStatus::empty_key;
  if (put.key_bytes > put_key_bytes_max) return TxStatus::key_too_long;
  if (put.value_bytes > put_value_bytes_max) return TxStatus::value_too_long;
  size_t body_start = sizeof(TxHeader) + sizeof(PutBody);
  if (bytes.size() != body_start + put.key_bytes + put.value_bytes) return TxStatus::bad_length;
  view->key = bytes.subspan(body_start, put.key_bytes);
  view->value = bytes.subspan(body_start + put.key_bytes, put.value_bytes);
  return TxStatus::applied;
}

TxStatus check_compute_request(std::span<const std::byte> bytes, TxOrigin origin, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(ComputeRequestBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->compute_request = read_at<ComputeRequestBody>(bytes, sizeof(TxHeader));
  const ComputeRequestBody& request = view->compute_request;
  if (request.reserved != 0) return TxStatus::bad_flags;
  // What the engine reads back may come from a log written under the older, longer limit.
  const size_t name_max = origin == TxOrigin::client ? compute_type_bytes_max : compute_type_bytes_max_logged;
  if (request.compute_type_bytes == 0 || request.compute_type_bytes > name_max ||
      request.input_bytes > compute_input_bytes_max)
    return TxStatus::bad_length;
  if (bytes.size() != body_start + request.compute_type_bytes + request.input_bytes) return TxStatus::bad_length;
  view->compute_type = std::string_view(reinterpret_cast<const char*>(bytes.data() + body_start), request.compute_type_bytes);
  if (!is_compute_type_name(view->compute_type, name_max)) return TxStatus::bad_flags;
  view->input = bytes.subspan(body_start + request.compute_type_bytes, request.input_bytes);
  return TxStatus::applied;
}

// A result's fixed fields, alone or as an entry of a batch.
TxStatus check_result_body(const ComputeResultBody& result) {
  if (result.reserved != 0 || result.reserved2 != 0 || result.outcome >= compute_outcome_count)
    return TxStatus::bad_flags;
  if (result.output_bytes > compute_output_bytes_max) return TxStatus::bad_length;
  return TxStatus::applied;
}

TxStatus check_compute_result(std::span<const std::byte> bytes, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(ComputeResultBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->compute_result = read_at<ComputeResultBody>(bytes, sizeof(TxHeader));
  const ComputeResultBody& result = view->compute_result;
  if (TxStatus fields = check_result_body(result); fields != TxStatus::applied) return fields;
  if (bytes.size() != body_start + result.output_bytes) return TxStatus::bad_length;
  view->output = bytes.subspan(body_start, result.output_bytes);
  return TxStatus::applied;
}

// Each entry as a compute_result's body, its shard the batch's, task marks ascending, the
// entries filling the transaction exactly.
TxStatus check_compute_results(std::span<const std::byte> bytes, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(ComputeResultsBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->compute_results = read_at<ComputeResultsBody>(bytes, sizeof(TxHeader));
  const ComputeResultsBody& batch = view->compute_results;
  if (batch.count == 0 || batch.count > compute_results_entries_max) return TxStatus::bad_length;
  size_t previous_offset = 0;
  size_t offset = body_start;
  for (uint32_t entry = 0; entry < batch.count; ++entry) {
    if (bytes.size() - offset < sizeof(ComputeResultBody)) return TxStatus::bad_length;
    ComputeResultBody result = read_at<ComputeResultBody>(bytes, offset);
    if (TxStatus fields = check_result_body(result); fields != TxStatus::applied) return fields;
    if (result.shard != batch.shard) return TxStatus::bad_flags;
    // Ascending: no task twice in one batch, found without a set.
    if (entry > 0 && result.task_mark <= read_at<uint64_t>(bytes, previous_offset)) return TxStatus::bad_flags;
    previous_offset = offset;
    offset += sizeof(ComputeResultBody);
    if (bytes.size() - offset < result.output_bytes) return TxStatus::bad_length;
    offset += result.output_bytes;
  }
  if (offset != bytes.size()) return TxStatus::bad_length;
  view->results = bytes.subspan(body_start);
  return TxStatus::applied;
}

// Contract, product and argument names follow the compute type names' rule.
static_assert(flow_name_bytes_max == compute_type_bytes_max);
bool is_flow_name(std::string_view name) { return is_compute_type_name(name); }

std::string_view text_at(std::span<const std::byte> bytes, size_t offset, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data() + offset), size);
}

TxStatus check_flow_deploy(std::span<const std::byte> bytes, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(FlowDeployBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->flow_deploy = read_at<FlowDeployBody>(bytes, sizeof(TxHeader));
  const FlowDeployBody& deploy = view->flow_deploy;
  if (deploy.model_bytes == 0 || deploy.model_bytes > flow_model_bytes_max) return TxStatus::bad_length;
  if (bytes.size() != body_start + deploy.model_bytes) return TxStatus::bad_length;
  view->input = bytes.subspan(body_start, deploy.model_bytes);
  if (!flow::decode_flow_model(view->input)) return TxStatus::bad_flow_model;
  return TxStatus::applied;
}

TxStatus check_flow_start(std::span<const std::byte> bytes, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(FlowStartBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->flow_start = read_at<FlowStartBody>(bytes, sizeof(TxHeader));
  const FlowStartBody& start = view->flow_start;
  if (start.reserved != 0) return TxStatus::bad_flags;
  if (start.contract_bytes == 0 || start.contract_bytes > flow_name_bytes_max || start.key_bytes == 0 ||
      start.key_bytes > flow_key_bytes_max || start.args_bytes > flow_args_bytes_max)
    return TxStatus::bad_length;
  if (bytes.size() != body_start + start.contract_bytes + start.key_bytes + start.args_bytes)
    return TxStatus::bad_length;
  view->name = text_at(bytes, body_start, start.contract_bytes);
  if (!is_flow_name(view->name)) return TxStatus::bad_flags;
  view->key = bytes.subspan(body_start + start.contract_bytes, start.key_bytes);
  if (view->key[0] == std::byte{'@'}) return TxStatus::bad_flags;  // the timers' keys
  view->input = bytes.subspan(body_start + start.contract_bytes + start.key_bytes, start.args_bytes);
  if (!flow_args_well_formed(view->input)) return TxStatus::bad_flow_args;
  return TxStatus::applied;
}

TxStatus check_flow_control(std::span<const std::byte> bytes, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(FlowControlBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->flow_control = read_at<FlowControlBody>(bytes, sizeof(TxHeader));
  const FlowControlBody& control = view->flow_control;
  if (control.reserved != 0 || control.reserved2 != 0 || control.action < uint8_t(FlowAction::pause) ||
      control.action > uint8_t(FlowAction::cancel))
    return TxStatus::bad_flags;
  if (control.key_bytes == 0 || control.key_bytes > flow_key_bytes_max) return TxStatus::bad_length;
  if (bytes.size() != body_start + control.key_bytes) return TxStatus::bad_length;
  view->key = bytes.subspan(body_start, control.key_bytes);
  return TxStatus::applied;
}

TxStatus check_product_set(std::span<const std::byte> bytes, TxView* view) {
  constexpr size_t body_start = sizeof(TxHeader) + sizeof(ProductSetBody);
  if (bytes.size() < body_start) return TxStatus::bad_length;
  view->product_set = read_at<ProductSetBody>(bytes, sizeof(TxHeader));
  const ProductSetBody& product = view->product_set;
  if (product.reserved != 0 || product.running_max == 0 || product.running_max > (1u << 20)) return TxStatus::bad_flags;
  if (product.name_bytes == 0 || product.name_bytes > flow_name_bytes_max) return TxStatus::bad_length;
  if (bytes.size() != body_start + product.name_bytes) return TxStatus::bad_length;
  view->name = text_at(bytes, body_start, product.name_bytes);
  if (!is_flow_name(view->name)) return TxStatus::bad_flags;
  return TxStatus::applied;
}

}  // namespace

bool flow_args_well_formed(std::span<const std::byte> args) {
  size_t offset = 0;
  std::string_view previous;
  while (offset < args.size()) {
    FlowArgHeader header;
    if (args.size() - offset < sizeof header) return false;
    std::memcpy(&header, args.data() + offset, sizeof header);
    offset += sizeof header;
    if (args.size() - offset < size_t(header.name_bytes) + header.value_bytes) return false;
    std::string_view name = text_at(args, offset, header.name_bytes);
    // Names ascending, so an argument list has one encoding and a name appears once.
    if (header.reserved != 0 || !is_flow_name(name) || (!previous.empty() && name <= previous)) return false;
    previous = name;
    offset += size_t(header.name_bytes) + header.value_bytes;
  }
  return true;
}

std::optional<std::span<const std::byte>> flow_arg(std::span<const std::byte> args, std::string_view name) {
  size_t offset = 0;
  while (offset + sizeof(FlowArgHeader) <= args.size()) {
    FlowArgHeader header;
    std::memcpy(&header, args.data() + offset, sizeof header);
    offset += sizeof header;
    if (args.size() - offset < size_t(header.name_bytes) + header.value_bytes) return std::nullopt;
    if (text_at(args, offset, header.name_bytes) == name)
      return args.subspan(offset + header.name_bytes, header.value_bytes);
    offset += size_t(header.name_bytes) + header.value_bytes;
  }
  return std::nullopt;
}

std::vector<std::byte> encode_flow_args(const std::map<std::string, std::string>& args) {
  std::vector<std::byte> out;
  for (const auto& [name, value] : args) {  // std::map: ascending names
    FlowArgHeader header{uint16_t(name.size()), 0, uint32_t(value.size())};
    const std::byte* raw = reinterpret_cast<const std::byte*>(&header);
    out.insert(out.end(), raw, raw + sizeof header);
    const std::byte* name_bytes = reinterpret_cast<const std::byte*>(name.data());
    out.insert(out.end(), name_bytes, name_bytes + name.size());
    const std::byte* value_bytes = reinterpret_cast<const std::byte*>(value.data());
    out.insert(out.end(), value_bytes, value_bytes + value.size());
  }
  return out;
}

TxStatus check_transaction(std::span<const std::byte> bytes, TxOrigin origin, TxView* view) {
  if (bytes.size() < sizeof(TxHeader)) return TxStatus::too_short;
  view->header = read_at<TxHeader>(bytes, 0);
  const TxHeader& header = view->header;
  if (header.version != tx_format_version) return TxStatus::bad_version;
  if (header.length != bytes.size() || header.length > tx_bytes_max) return TxStatus::bad_length;
  if (!is_known_type(header.type)) return TxStatus::unknown_type;
  view->type = TxType(header.type);
  if (is_internal_type(view->type) && origin == TxOrigin::client) return TxStatus::internal_type;
  uint16_t flags_allowed = view->type == TxType::credit ? credit_flag_refund : 0;
  if ((header.flags & ~flags_allowed) != 0) return TxStatus::bad_flags;
  if (view->type == TxType::put) return check_put(bytes, view);
  if (view->type == TxType::compute_request) return check_compute_request(bytes, origin, view);
  if (view->type == TxType::compute_result) return check_compute_result(bytes, view);
  if (view->type == TxType::compute_results) return check_compute_results(bytes, view);
  if (view->type == TxType::flow_deploy) return check_flow_deploy(bytes, view);
  if (view->type == TxType::flow_start) return check_flow_start(bytes, view);
  if (view->type == TxType::flow_control) return check_flow_control(bytes, view);
  if (view->type == TxType::product_set) return check_product_set(bytes, view);
  if (bytes.size() != fixed_length(view->type)) return TxStatus::bad_length;
  switch (view->type) {
    case TxType::create_account:
      view->create_account = read_at<CreateAccountBody>(bytes, sizeof(TxHeader));
      if ((view->create_account.account_flags & ~account_flag_allow_overdraft) != 0 ||
          view->create_account.reserved != 0)
        return TxStatus::bad_flags;
      break;
    case TxType::transfer: view->transfer = read_at<TransferBody>(bytes, sizeof(TxHeader)); break;
    case TxType::credit: view->credit = read_at<CreditBody>(bytes, sizeof(TxHeader)); break;
    case TxType::timer_fire:
      view->timer_fire = read_at<TimerFireBody>(bytes, sizeof(TxHeader));
      if (view->timer_fire.reserved != 0) return TxStatus::bad_flags;
      break;
    case TxType::balance_record: {
      view->balance_record = read_at<BalanceRecordBody>(bytes, sizeof(TxHeader));
      const BalanceRecordBody& record = view->balance_record;
      bool kind_ok = record.kind == uint8_t(BalanceRecordKind::tier) || record.kind == uint8_t(BalanceRecordKind::slice);
      // The name: 1..47 characters, then NUL padding (so equal records hash equal).
      size_t name_bytes = 0;
      while (name_bytes < balance_chain_name_bytes && record.chain_name[name_bytes] != 0) ++name_bytes;
      bool padded = name_bytes > 0 && name_bytes < balance_chain_name_bytes;
      for (size_t index = name_bytes; padded && index < balance_chain_name_bytes; ++index)
        padded = record.chain_name[index] == 0;
      if (!kind_ok || record.tier_from > 2 || record.tier_to > 2 || record.reserved != 0 || !padded ||
          record.shares_permille > 1000)
        return TxStatus::bad_flags;
      break;
    }
    case TxType::credit_grant:
    case TxType::credit_spend:
      view->client_credit = read_at<ClientCreditBody>(bytes, sizeof(TxHeader));
      if (view->client_credit.reserved != 0) return TxStatus::bad_flags;
      if (!client_id_text(view->client_credit.client)) return TxStatus::bad_client_id;
      break;
    default: break;  // the variable-length types returned above
  }
  return TxStatus::applied;
}

namespace {

// hash % shard_count, the chain's placement rule. A 64-bit division is 10-40 cycles and
// every transaction's home is computed by its producer and its shard; a power-of-two count
// (1, 2, 4, ...: most chains) takes the same remainder with a mask.
uint32_t reduce_to_shard(uint64_t hash, uint32_t shard_count) {
  if ((shard_count & (shard_count - 1)) == 0) return uint32_t(hash & (shard_count - 1));
  return uint32_t(hash % shard_count);
}

}  // namespace

uint32_t shard_of_account(uint64_t account, uint32_t shard_count) {
  // splitmix64's finaliser: consecutive account numbers spread evenly over shards.
  uint64_t mixed = account + 0x9e3779b97f4a7c15ULL;
  mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ULL;
  mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebULL;
  mixed ^= mixed >> 31;
  return reduce_to_shard(mixed, shard_count);
}

uint32_t shard_of_key(std::span<const std::byte> key, uint32_t shard_count) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a, 64-bit
  for (std::byte byte : key) hash = (hash ^ uint8_t(byte)) * 0x100000001b3ULL;
  return reduce_to_shard(hash, shard_count);
}

uint32_t timer_home_shard(std::string_view contract, uint32_t schedule, uint32_t shard_count) {
  std::string key = std::string(contract) + "/" + std::to_string(schedule);
  return shard_of_key(std::as_bytes(std::span(key)), shard_count);
}

std::string scheduled_flow_key(std::string_view contract, uint32_t schedule, uint64_t fire_s) {
  return "@" + std::string(contract) + "/" + std::to_string(schedule) + "/" + flow::iso_string(fire_s);
}

uint32_t flow_key_home_shard(std::span<const std::byte> key, uint32_t shard_count) {
  if (!key.empty() && key[0] == std::byte{'@'}) {
    std::string_view text = text_at(key, 0, key.size());
    size_t first = text.find('/');
    size_t second = first == std::string_view::npos ? first : text.find('/', first + 1);
    if (second != std::string_view::npos) return shard_of_key(key.subspan(1, second - 1), shard_count);
  }
  return shard_of_key(key, shard_count);
}

uint32_t home_shard(const TxView& view, uint32_t shard_count) {
  switch (view.type) {
    case TxType::create_account: return shard_of_account(view.create_account.account, shard_count);
    case TxType::transfer: return shard_of_account(view.transfer.from, shard_count);
    case TxType::put: return shard_of_key(view.key, shard_count);
    case TxType::credit: return shard_of_account(view.credit.to, shard_count);
    case TxType::compute_request: return shard_of_account(view.compute_request.subject, shard_count);
    case TxType::compute_result: return view.compute_result.shard;
    case TxType::compute_results: return view.compute_results.shard;
    case TxType::flow_deploy: return view.flow_deploy.shard;
    case TxType::flow_start:
    case TxType::flow_control: return flow_key_home_shard(view.key, shard_count);
    case TxType::product_set: return view.product_set.shard;
    case TxType::timer_fire: return view.timer_fire.shard;
    case TxType::balance_record: return view.balance_record.shard;
    case TxType::credit_grant:
    case TxType::credit_spend: return view.client_credit.shard;
  }
  return 0;
}

namespace {

template <class Body>
std::vector<std::byte> encode_fixed(TxType type, uint64_t nonce, const Body& body, uint16_t flags = 0) {
  std::vector<std::byte> out(sizeof(TxHeader) + sizeof(Body));
  TxHeader header{uint32_t(out.size()), tx_format_version, uint8_t(type), flags, nonce};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
  return out;
}

}  // namespace

std::vector<std::byte> encode_create_account(uint64_t nonce, uint64_t account, int64_t opening_balance,
                                             uint32_t account_flags) {
  return encode_fixed(TxType::create_account, nonce,
                      CreateAccountBody{account, opening_balance, account_flags, 0});
}

std::vector<std::byte> encode_transfer(uint64_t nonce, uint64_t from, uint64_t to, uint64_t amount) {
  return encode_fixed(TxType::transfer, nonce, TransferBody{from, to, amount});
}

std::vector<std::byte> encode_put(uint64_t nonce, std::span<const std::byte> key, std::span<const std::byte> value) {
  std::vector<std::byte> out(sizeof(TxHeader) + sizeof(PutBody) + key.size() + value.size());
  TxHeader header{uint32_t(out.size()), tx_format_version, uint8_t(TxType::put), 0, nonce};
  PutBody body{uint16_t(key.size()), 0, uint32_t(value.size())};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
  if (!key.empty()) std::memcpy(out.data() + sizeof header + sizeof body, key.data(), key.size());
  if (!value.empty())
    std::memcpy(out.data() + sizeof header + sizeof body + key.size(), value.data(), value.size());
  return out;
}

void write_credit(std::span<std::byte, credit_tx_bytes> out, const CreditBody& body, bool refund) {
  // The nonce is the origin's position, so every credit's hash is distinct.
  uint64_t nonce = (body.origin_height << 20) ^ body.origin_index;
  TxHeader header{uint32_t(credit_tx_bytes), tx_format_version, uint8_t(TxType::credit),
                  uint16_t(refund ? credit_flag_refund : 0), nonce};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
}

std::vector<std::byte> encode_compute_request(uint64_t nonce, uint64_t subject, std::string_view compute_type,
                                              std::span<const std::byte> input) {
  assert(compute_type.size() <= std::numeric_limits<uint16_t>::max());
  assert(input.size() <= tx_bytes_max);
  size_t body_start = sizeof(TxHeader) + sizeof(ComputeRequestBody);
  std::vector<std::byte> out(body_start + compute_type.size() + input.size());
  TxHeader header{uint32_t(out.size()), tx_format_version, uint8_t(TxType::compute_request), 0, nonce};
  ComputeRequestBody body{subject, uint16_t(compute_type.size()), 0, uint32_t(input.size())};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
  if (!compute_type.empty()) std::memcpy(out.data() + body_start, compute_type.data(), compute_type.size());
  if (!input.empty()) std::memcpy(out.data() + body_start + compute_type.size(), input.data(), input.size());
  return out;
}

void write_compute_result(std::span<std::byte> out, uint64_t task_mark, uint32_t shard, uint32_t attempt,
                          ComputeOutcome outcome, int32_t plugin_status, std::span<const std::byte> output) {
  assert(output.size() <= compute_output_bytes_max);
  assert(out.size() == compute_result_tx_bytes(output.size()));
  TxHeader header{uint32_t(out.size()), tx_format_version, uint8_t(TxType::compute_result), 0, task_mark};
  ComputeResultBody body{task_mark, shard, attempt, uint16_t(outcome), 0, plugin_status, uint32_t(output.size()), 0};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
  if (!output.empty()) std::memcpy(out.data() + sizeof header + sizeof body, output.data(), output.size());
}

std::vector<std::byte> encode_compute_result(uint64_t task_mark, uint32_t shard, uint32_t attempt,
                                             ComputeOutcome outcome, int32_t plugin_status,
                                             std::span<const std::byte> output) {
  std::vector<std::byte> out(compute_result_tx_bytes(output.size()));
  write_compute_result(out, task_mark, shard, attempt, outcome, plugin_status, output);
  return out;
}

void write_compute_result_entry(std::span<std::byte> out, uint64_t task_mark, uint32_t shard, uint32_t attempt,
                                ComputeOutcome outcome, int32_t plugin_status, std::span<const std::byte> output) {
  assert(output.size() <= compute_output_bytes_max);
  assert(out.size() == compute_result_entry_bytes(output.size()));
  // Field by field straight into `out`: a body built on the stack and copied whole was
  // written in narrow stores and read back wide, a store-forwarding stall the scheduler
  // paid on every task's answer.
  const uint16_t outcome_code = uint16_t(outcome), reserved = 0;
  const uint32_t output_bytes = uint32_t(output.size()), reserved2 = 0;
  std::byte* body = out.data();
  std::memcpy(body + offsetof(ComputeResultBody, task_mark), &task_mark, sizeof task_mark);
  std::memcpy(body + offsetof(ComputeResultBody, shard), &shard, sizeof shard);
  std::memcpy(body + offsetof(ComputeResultBody, attempt), &attempt, sizeof attempt);
  std::memcpy(body + offsetof(ComputeResultBody, outcome), &outcome_code, sizeof outcome_code);
  std::memcpy(body + offsetof(ComputeResultBody, reserved), &reserved, sizeof reserved);
  std::memcpy(body + offsetof(ComputeResultBody, plugin_status), &plugin_status, sizeof plugin_status);
  std::memcpy(body + offsetof(ComputeResultBody, output_bytes), &output_bytes, sizeof output_bytes);
  std::memcpy(body + offsetof(ComputeResultBody, reserved2), &reserved2, sizeof reserved2);
  if (!output.empty()) std::memcpy(body + sizeof(ComputeResultBody), output.data(), output.size());
}

void write_compute_results_head(std::span<std::byte> out, uint32_t shard, uint32_t count, uint64_t first_task_mark) {
  assert(out.size() >= compute_results_tx_bytes(0) && out.size() <= tx_bytes_max);
  TxHeader header{uint32_t(out.size()), tx_format_version, uint8_t(TxType::compute_results), 0, first_task_mark};
  ComputeResultsBody body{shard, count};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
}

std::vector<std::byte> encode_compute_results(uint32_t shard, const std::vector<std::vector<std::byte>>& entries) {
  size_t entry_bytes = 0;
  for (const std::vector<std::byte>& entry : entries) entry_bytes += entry.size();
  std::vector<std::byte> out(compute_results_tx_bytes(entry_bytes));
  uint64_t first_task_mark = 0;
  if (!entries.empty() && entries.front().size() >= sizeof(uint64_t))
    std::memcpy(&first_task_mark, entries.front().data(), sizeof first_task_mark);
  write_compute_results_head(out, shard, uint32_t(entries.size()), first_task_mark);
  size_t offset = compute_results_tx_bytes(0);
  for (const std::vector<std::byte>& entry : entries) {
    if (!entry.empty()) std::memcpy(out.data() + offset, entry.data(), entry.size());
    offset += entry.size();
  }
  return out;
}

bool ComputeResultEntries::next(ComputeResultEntry& entry) {
  if (rest_.size() < sizeof(ComputeResultBody)) return false;
  std::memcpy(&entry.body, rest_.data(), sizeof entry.body);
  entry.output = rest_.subspan(sizeof entry.body, entry.body.output_bytes);
  rest_ = rest_.subspan(sizeof entry.body + entry.body.output_bytes);
  return true;
}

}  // namespace keel::ledger

namespace keel::ledger {

namespace {

// Header, fixed body, then the parts in order.
template <class Body>
std::vector<std::byte> encode_with_parts(TxType type, uint64_t nonce, const Body& body,
                                         std::initializer_list<std::span<const std::byte>> parts) {
  size_t size = sizeof(TxHeader) + sizeof(Body);
  for (std::span<const std::byte> part : parts) size += part.size();
  std::vector<std::byte> out(size);
  TxHeader header{uint32_t(out.size()), tx_format_version, uint8_t(type), 0, nonce};
  std::memcpy(out.data(), &header, sizeof header);
  std::memcpy(out.data() + sizeof header, &body, sizeof body);
  size_t offset = sizeof header + sizeof body;
  for (std::span<const std::byte> part : parts) {
    if (!part.empty()) std::memcpy(out.data() + offset, part.data(), part.size());
    offset += part.size();
  }
  return out;
}

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text)); }

}  // namespace

std::vector<std::byte> encode_flow_deploy(uint64_t nonce, uint32_t shard, std::span<const std::byte> model) {
  return encode_with_parts(TxType::flow_deploy, nonce, FlowDeployBody{shard, uint32_t(model.size())}, {model});
}

std::vector<std::byte> encode_flow_start(uint64_t nonce, std::string_view contract, uint32_t version,
                                         std::string_view key, std::span<const std::byte> args) {
  FlowStartBody body{version, uint16_t(contract.size()), uint16_t(key.size()), uint32_t(args.size()), 0};
  return encode_with_parts(TxType::flow_start, nonce, body, {bytes_of(contract), bytes_of(key), args});
}

std::vector<std::byte> encode_flow_control(uint64_t nonce, FlowAction action, std::string_view key) {
  FlowControlBody body{uint8_t(action), 0, uint16_t(key.size()), 0};
  return encode_with_parts(TxType::flow_control, nonce, body, {bytes_of(key)});
}

std::vector<std::byte> encode_product_set(uint64_t nonce, uint32_t shard, std::string_view product, uint32_t priority,
                                          uint32_t running_max) {
  ProductSetBody body{shard, priority, running_max, uint16_t(product.size()), 0};
  return encode_with_parts(TxType::product_set, nonce, body, {bytes_of(product)});
}

std::vector<std::byte> encode_balance_record(const BalanceRecordBody& body) {
  return encode_fixed(TxType::balance_record, /*nonce=*/body.window, body);
}

std::vector<std::byte> encode_credit_grant(uint64_t nonce, uint32_t shard, std::string_view client, uint64_t amount) {
  assert(client.size() <= client_id_bytes_max);
  ClientCreditBody body{shard, 0, amount, {}};
  std::memcpy(body.client.data(), client.data(), client.size());
  return encode_with_parts(TxType::credit_grant, nonce, body, {});
}

std::vector<std::byte> encode_credit_spend(uint64_t height, uint32_t shard, const ClientId& client, uint64_t amount) {
  return encode_with_parts(TxType::credit_spend, /*nonce=*/height, ClientCreditBody{shard, 0, amount, client}, {});
}

std::vector<std::byte> encode_timer_fire(uint32_t shard, uint64_t timer, uint64_t due_s, uint64_t now_s) {
  TimerFireBody body{shard, 0, timer, due_s, now_s};
  return encode_with_parts(TxType::timer_fire, /*nonce=*/due_s, body, {});
}

}  // namespace keel::ledger
