#include "engine/ledger/snapshot.h"

#include <cstring>

#include "engine/ledger/byte_codec.h"

namespace keel::ledger {

namespace {

constexpr uint32_t snapshot_payload_magic = 0x3150534b;  // "KSP1"
constexpr uint32_t snapshot_payload_version = 1;

struct CreditEntry {
  uint32_t destination_shard;
  uint32_t reserved;
  std::byte tx[credit_tx_bytes];
};
static_assert(sizeof(CreditEntry) == 64);

Error fail(size_t offset, const std::string& what) {
  return make_error("shard snapshot", "offset " + std::to_string(offset) + ": " + what);
}

}  // namespace

std::vector<std::byte> ShardSnapshot::serialize() const {
  std::vector<std::byte> state_bytes = state.serialize();
  std::vector<std::byte> out;
  out.reserve(24 + state_bytes.size() + credits.size() * sizeof(CreditEntry));
  put(out, snapshot_payload_magic);
  put(out, snapshot_payload_version);
  put(out, uint64_t(state_bytes.size()));
  out.insert(out.end(), state_bytes.begin(), state_bytes.end());
  put(out, uint64_t(credits.size()));
  for (const OutboundCredit& credit : credits) {
    CreditEntry entry{credit.destination_shard, 0, {}};
    std::memcpy(entry.tx, credit.tx.data(), credit_tx_bytes);
    put(out, entry);
  }
  return out;
}

Result<ShardSnapshot> ShardSnapshot::deserialize(std::span<const std::byte> bytes) {
  uint32_t magic = 0, version = 0;
  uint64_t state_bytes = 0;
  if (bytes.size() < 16) return fail(0, "cut short in the header");
  std::memcpy(&magic, bytes.data(), 4);
  std::memcpy(&version, bytes.data() + 4, 4);
  std::memcpy(&state_bytes, bytes.data() + 8, 8);
  if (magic != snapshot_payload_magic) return fail(0, "not a keel shard snapshot (bad magic)");
  if (version != snapshot_payload_version)
    return fail(4, "snapshot format version " + std::to_string(version) + ", this keel reads " +
                       std::to_string(snapshot_payload_version));
  if (state_bytes > bytes.size() - 16) return fail(8, "the state's length runs past the end");
  ShardSnapshot snapshot;
  Result<ShardState> state = ShardState::deserialize(bytes.subspan(16, state_bytes));
  if (!state) return state.error();
  snapshot.state = std::move(*state);
  size_t offset = 16 + state_bytes;
  uint64_t credit_count = 0;
  if (bytes.size() - offset < 8) return fail(offset, "cut short before the credits");
  std::memcpy(&credit_count, bytes.data() + offset, 8);
  offset += 8;
  if (credit_count != (bytes.size() - offset) / sizeof(CreditEntry) || (bytes.size() - offset) % sizeof(CreditEntry) != 0)
    return fail(offset - 8, std::to_string(credit_count) + " credits do not match the " +
                                std::to_string(bytes.size() - offset) + " bytes left");
  const ShardState& held = snapshot.state;
  snapshot.credits.reserve(credit_count);
  for (uint64_t index = 0; index < credit_count; ++index, offset += sizeof(CreditEntry)) {
    CreditEntry entry;
    std::memcpy(&entry, bytes.data() + offset, sizeof entry);
    OutboundCredit& credit = snapshot.credits.emplace_back();
    credit.destination_shard = entry.destination_shard;
    std::memcpy(credit.tx.data(), entry.tx, credit_tx_bytes);
    TxView view;
    TxStatus checked = check_transaction(credit.tx, TxOrigin::engine, &view);
    if (checked != TxStatus::applied || view.type != TxType::credit)
      return fail(offset, "credit " + std::to_string(index) + " is not a credit transaction (" +
                              std::string(status_text(checked)) + ")");
    if (entry.destination_shard >= held.shard_count || entry.destination_shard == held.shard ||
        view.credit.origin_shard != held.shard || view.credit.origin_height == 0 ||
        view.credit.origin_height > held.height ||
        shard_of_account(view.credit.to, held.shard_count) != entry.destination_shard)
      return fail(offset, "credit " + std::to_string(index) + " does not belong to shard " +
                              std::to_string(held.shard) + " at height " + std::to_string(held.height));
  }
  return snapshot;
}

}  // namespace keel::ledger
