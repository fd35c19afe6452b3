#include "engine/ledger/state.h"

#include <algorithm>
#include <cstring>

namespace keel::ledger {

namespace {

constexpr uint32_t state_magic = 0x3154534b;  // "KST1"
constexpr uint32_t state_format_version = 1;

void put_bytes(std::vector<std::byte>& out, const void* data, size_t size) {
  const std::byte* bytes = static_cast<const std::byte*>(data);
  out.insert(out.end(), bytes, bytes + size);
}
template <class T>
void put(std::vector<std::byte>& out, T value) {
  put_bytes(out, &value, sizeof value);
}

// A bounds-checked reader: every read says whether the bytes were there.
struct Reader {
  std::span<const std::byte> bytes;
  size_t offset = 0;
  template <class T>
  bool get(T& value) {
    if (bytes.size() - offset < sizeof(T)) return false;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    offset += sizeof(T);
    return true;
  }
  bool get_string(std::string& value, size_t size) {
    if (bytes.size() - offset < size) return false;
    value.assign(reinterpret_cast<const char*>(bytes.data() + offset), size);
    offset += size;
    return true;
  }
  Error fail(std::string_view what) const {
    return make_error("state snapshot", "offset " + std::to_string(offset) + ": " + std::string(what));
  }
};

}  // namespace

int64_t ShardState::total_balance() const {
  int64_t total = suspense_balance;
  for (const auto& [account, entry] : accounts) total += entry.balance;
  return total;
}

std::vector<std::byte> ShardState::serialize() const {
  std::vector<std::byte> out;
  out.reserve(64 + accounts.size() * 24 + values.size() * 32 + credit_marks.size() * 16);
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
  return out;
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
  if (!in.get(version) || version != state_format_version)
    return in.fail("state format version " + std::to_string(version) + ", this keel reads " +
                   std::to_string(state_format_version));
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
  if (in.offset != bytes.size()) return in.fail("trailing bytes after the state");
  return state;
}

}  // namespace keel::ledger
