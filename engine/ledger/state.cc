#include "engine/ledger/state.h"

#include <algorithm>
#include <cstring>

#include "engine/ledger/byte_codec.h"
#include "engine/ledger/transaction.h"

namespace keel::ledger {

namespace {

constexpr uint32_t state_magic = 0x3154534b;  // "KST1"
// 4 added the access credit section, 3 the flow section, 2 the compute section; 1 to 3
// are still read (a state without tasks, without flows, without credit accounts).
constexpr uint32_t state_format_version = 4;
constexpr uint32_t state_format_version_without_credits = 3;
constexpr uint32_t state_format_version_without_flows = 2;
constexpr uint32_t state_format_version_without_tasks = 1;

// One pending task's fixed part in the serialized state.
struct TaskEntry {
  uint64_t mark;
  uint64_t subject;
  uint16_t compute_type_bytes;
  uint16_t reserved;
  uint32_t input_bytes;
};
static_assert(sizeof(TaskEntry) == 24);

// A bounds-checked reader whose errors name the state snapshot.
struct Reader : ByteReader {
  explicit Reader(std::span<const std::byte> bytes) : ByteReader{bytes, "state snapshot"} {}
};

void serialize_tasks(const ShardState& state, std::vector<std::byte>& out) {
  put(out, state.tasks_issued);
  put(out, state.tasks_succeeded);
  put(out, state.tasks_failed);
  put(out, state.task_mark_max);
  put(out, uint64_t(state.pending_tasks.size()));
  for (uint64_t mark : state.pending_task_marks()) {  // ascending: the canonical order
    const PendingTask& task = state.pending_tasks.at(mark);
    TaskEntry entry{mark, task.subject, uint16_t(task.compute_type.size()), 0, uint32_t(task.input.size())};
    put(out, entry);
    put_bytes(out, task.compute_type.data(), task.compute_type.size());
    put_bytes(out, task.input.data(), task.input.size());
  }
}

// The height of the block a task mark points into (CreditMark::pack's layout).
uint64_t mark_height(uint64_t mark) { return mark >> 16; }

// Reads one pending task; `previous_mark` (the last task's mark, 0 before the first) keeps
// the marks strictly ascending, the canonical order.
Result<void> deserialize_task(Reader& in, ShardState& state, uint64_t& previous_mark) {
  size_t start = in.offset;
  TaskEntry entry;
  PendingTask task;
  if (!in.get(entry)) return in.fail("cut short in a pending task");
  std::string where = "pending task " + std::to_string(entry.mark) + ": ";
  if (entry.mark <= previous_mark) return in.fail_at(start, where + "marks out of order or repeated");
  if (mark_height(entry.mark) == 0 || entry.mark > state.task_mark_max)
    return in.fail_at(start, where + "not a mark this shard issued (largest " + std::to_string(state.task_mark_max) + ")");
  if (entry.reserved != 0) return in.fail_at(start, where + "reserved bytes are not zero");
  if (entry.compute_type_bytes == 0 || entry.compute_type_bytes > compute_type_bytes_max_logged)
    return in.fail_at(start, where + "compute type name of " + std::to_string(entry.compute_type_bytes) + " bytes");
  if (entry.input_bytes > compute_input_bytes_max)
    return in.fail_at(start, where + "input of " + std::to_string(entry.input_bytes) + " bytes exceeds " +
                                 std::to_string(compute_input_bytes_max));
  if (!in.get_string(task.compute_type, entry.compute_type_bytes)) return in.fail("cut short in a compute type name");
  if (!is_compute_type_name(task.compute_type, compute_type_bytes_max_logged))
    return in.fail_at(start, where + "compute type name has characters outside [a-z0-9_]");
  if (in.bytes.size() - in.offset < entry.input_bytes) return in.fail("cut short in a task's input");
  const std::byte* input = in.bytes.data() + in.offset;
  task.input.assign(input, input + entry.input_bytes);
  in.offset += entry.input_bytes;
  task.subject = entry.subject;
  state.pending_tasks.emplace(entry.mark, std::move(task));
  previous_mark = entry.mark;
  return {};
}

Result<void> deserialize_tasks(Reader& in, ShardState& state) {
  size_t start = in.offset;
  uint64_t pending_count = 0;
  if (!in.get(state.tasks_issued) || !in.get(state.tasks_succeeded) || !in.get(state.tasks_failed) ||
      !in.get(state.task_mark_max) || !in.get(pending_count))
    return in.fail("cut short in the compute task counters");
  if (mark_height(state.task_mark_max) > state.height)
    return in.fail_at(start, "largest task mark " + std::to_string(state.task_mark_max) + " is past height " +
                                 std::to_string(state.height));
  if ((state.tasks_issued == 0) != (state.task_mark_max == 0))
    return in.fail_at(start, "task counters disagree with the largest task mark");
  uint64_t settled = state.tasks_succeeded + state.tasks_failed;
  if (settled < state.tasks_succeeded || settled > state.tasks_issued || pending_count != state.tasks_issued - settled)
    return in.fail_at(start, std::to_string(state.tasks_issued) + " tasks issued but " +
                                 std::to_string(state.tasks_succeeded) + " succeeded, " +
                                 std::to_string(state.tasks_failed) + " failed and " + std::to_string(pending_count) +
                                 " pending");
  if (pending_count > (in.bytes.size() - in.offset) / sizeof(TaskEntry))
    return in.fail("pending task count does not fit the bytes");
  uint64_t previous_mark = 0;
  for (uint64_t index = 0; index < pending_count; ++index) {
    Result<void> task = deserialize_task(in, state, previous_mark);
    if (!task) return task.error();
  }
  return {};
}

// One credit account in the serialized state.
struct CreditAccountEntry {
  ClientId client;
  uint64_t balance;
};
static_assert(sizeof(CreditAccountEntry) == 40);

void serialize_credit_accounts(const ShardState& state, std::vector<std::byte>& out) {
  put(out, uint64_t(state.credit_accounts.size()));
  for (const auto& [client, balance] : state.credit_accounts)  // std::map: ascending ids
    put(out, CreditAccountEntry{client, balance});
}

Result<void> deserialize_credit_accounts(Reader& in, ShardState& state) {
  uint64_t count = 0;
  size_t start = in.offset;
  if (!in.get(count)) return in.fail("cut short in the credit account count");
  if (count > credit_accounts_max)
    return in.fail_at(start, std::to_string(count) + " credit accounts, at most " + std::to_string(credit_accounts_max));
  if (count > (in.bytes.size() - in.offset) / sizeof(CreditAccountEntry))
    return in.fail_at(start, "credit account count does not fit the bytes");
  for (uint64_t index = 0; index < count; ++index) {
    size_t at = in.offset;
    CreditAccountEntry entry;
    in.get(entry);
    std::optional<std::string_view> id = client_id_text(entry.client);
    if (!id) return in.fail_at(at, "credit account " + std::to_string(index) + ": client id is not 1 to 32 characters of [a-z0-9_.-]");
    std::string where = "credit account '" + std::string(*id) + "': ";
    if (entry.balance == 0) return in.fail_at(at, where + "zero balance (an empty account is not kept)");
    if (!state.credit_accounts.empty() && !(state.credit_accounts.rbegin()->first < entry.client))
      return in.fail_at(at, where + "ids out of order or repeated");
    state.credit_accounts.emplace_hint(state.credit_accounts.end(), entry.client, entry.balance);
  }
  return {};
}

}  // namespace

int64_t ShardState::total_balance() const {
  int64_t total = suspense_balance;
  for (const auto& [account, entry] : accounts) total += entry.balance;
  return total;
}

std::vector<std::byte> ShardState::serialize() const {
  std::vector<std::byte> out;
  out.reserve(104 + accounts.size() * 24 + values.size() * 32 + credit_marks.size() * 16 +
              pending_tasks.size() * (sizeof(TaskEntry) + 16));
  put(out, state_magic);
  put(out, state_format_version);
  put(out, shard);
  put(out, shard_count);
  put(out, height);
  put_bytes(out, last_block_hash.bytes.data(), 32);
  put(out, suspense_balance);
  put(out, opened_total);
  for (const CreditMark& mark : credit_marks) {
    put(out, mark.height);
    put(out, uint64_t(mark.index));
  }
  std::vector<uint64_t> ids;
  ids.reserve(accounts.size());
  for (const auto& [account, entry] : accounts) ids.push_back(account);
  std::sort(ids.begin(), ids.end());
  put(out, uint64_t(ids.size()));
  for (uint64_t id : ids) {
    const Account& account = accounts.at(id);
    put(out, id);
    put(out, account.balance);
    put(out, uint64_t(account.flags));
  }
  std::vector<const std::string*> keys;
  keys.reserve(values.size());
  for (const auto& [key, value] : values) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  put(out, uint64_t(keys.size()));
  for (const std::string* key : keys) {
    const std::string& value = values.at(*key);
    put(out, uint32_t(key->size()));
    put(out, uint32_t(value.size()));
    put_bytes(out, key->data(), key->size());
    put_bytes(out, value.data(), value.size());
  }
  serialize_tasks(*this, out);
  flows.serialize(out);
  serialize_credit_accounts(*this, out);
  return out;
}

std::vector<uint64_t> ShardState::pending_task_marks() const {
  std::vector<uint64_t> marks = pending_tasks.marks();
  std::sort(marks.begin(), marks.end());
  return marks;
}

Hash32 ShardState::digest() const {
  std::vector<std::byte> bytes = serialize();
  return sha256(bytes);
}

Result<ShardState> ShardState::deserialize(std::span<const std::byte> bytes) {
  Reader in{bytes};
  uint32_t magic = 0, version = 0;
  ShardState state;
  if (!in.get(magic) || magic != state_magic) return in.fail("not a keel shard state (bad magic)");
  if (!in.get(version) || version < state_format_version_without_tasks || version > state_format_version)
    return in.fail("state format version " + std::to_string(version) + ", this keel reads " +
                   std::to_string(state_format_version_without_tasks) + " to " + std::to_string(state_format_version));
  if (!in.get(state.shard) || !in.get(state.shard_count) || !in.get(state.height) ||
      !in.get(state.last_block_hash.bytes) || !in.get(state.suspense_balance) ||
      !in.get(state.opened_total))
    return in.fail("cut short in the header");
  if (state.shard_count == 0 || state.shard >= state.shard_count || state.shard_count > 65536)
    return in.fail("shard " + std::to_string(state.shard) + " of " + std::to_string(state.shard_count));
  state.credit_marks.resize(state.shard_count);
  for (CreditMark& mark : state.credit_marks) {
    uint64_t index = 0;
    if (!in.get(mark.height) || !in.get(index)) return in.fail("cut short in the credit marks");
    mark.index = uint32_t(index);
  }
  uint64_t account_count = 0;
  if (!in.get(account_count) || account_count > (bytes.size() - in.offset) / 24)
    return in.fail("account count does not fit the bytes");
  state.accounts.reserve(account_count);
  for (uint64_t index = 0; index < account_count; ++index) {
    uint64_t id = 0, flags = 0;
    Account account;
    if (!in.get(id) || !in.get(account.balance) || !in.get(flags)) return in.fail("cut short in an account");
    account.flags = uint32_t(flags);
    if (!state.accounts.emplace(id, account).second) return in.fail("account " + std::to_string(id) + " twice");
  }
  uint64_t value_count = 0;
  if (!in.get(value_count) || value_count > (bytes.size() - in.offset) / 8)
    return in.fail("value count does not fit the bytes");
  for (uint64_t index = 0; index < value_count; ++index) {
    uint32_t key_size = 0, value_size = 0;
    std::string key, value;
    if (!in.get(key_size) || !in.get(value_size) || !in.get_string(key, key_size) ||
        !in.get_string(value, value_size))
      return in.fail("cut short in a key or value");
    if (!state.values.emplace(std::move(key), std::move(value)).second) return in.fail("a key twice");
  }
  if (version != state_format_version_without_tasks) {
    Result<void> tasks = deserialize_tasks(in, state);
    if (!tasks) return tasks.error();
  }
  if (version >= state_format_version_without_credits) {
    Result<flow::FlowTable> flows = flow::FlowTable::deserialize(in, shard_flow_limits);
    if (!flows) return flows.error();
    state.flows = std::move(*flows);
  }
  if (version == state_format_version) {
    Result<void> credits = deserialize_credit_accounts(in, state);
    if (!credits) return credits.error();
  }
  if (in.offset != bytes.size()) return in.fail("trailing bytes after the state");
  return state;
}

}  // namespace keel::ledger
