#include "engine/node/balancer_tile.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/node/shard_tile.h"  // EngineTxMessage
#include "shm/segment.h"

namespace keel::node {

namespace {

uint64_t real_now_ms() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return uint64_t(now.tv_sec) * 1000 + uint64_t(now.tv_nsec) / 1'000'000;
}

uint64_t rounded(double value) { return value <= 0 ? 0 : uint64_t(std::llround(value)); }

}  // namespace

BalancerTile::BalancerTile(balance::Balancer balancer, BalancerTileOptions options)
    : balancer_(std::move(balancer)),
      options_(std::move(options)),
      window_ns_(uint64_t(options_.window_ms) * 1'000'000),
      shuffle_random_(options_.shuffle_seed) {
  if (options_.monotonic_now_ns == nullptr) options_.monotonic_now_ns = shm::monotonic_ns;
  if (options_.wall_now_ms == nullptr) options_.wall_now_ms = real_now_ms;
  size_t chains = balancer_.statuses().size();
  tier_changes_.assign(chains, 0);
  slice_changes_.assign(chains, 0);
  counters_scratch_.resize(chains);
  // The balancer tells whoever drains the system shard when its last record is in.
  if (options_.drain != nullptr && options_.system_ring)
    options_.drain->engine_txs_stopped.store(false, std::memory_order_release);
}

size_t BalancerTile::poll(size_t) {
  size_t work = push_records();
  if (draining_) {
    if (records_.empty() && options_.drain != nullptr)
      options_.drain->engine_txs_stopped.store(true, std::memory_order_release);
    return work;
  }
  uint64_t now_ns = options_.monotonic_now_ns();
  if (options_.shuffle_every_ms != 0 && now_ns >= next_shuffle_ns_) {
    next_shuffle_ns_ = now_ns + uint64_t(options_.shuffle_every_ms) * 1'000'000;
    shuffle_one();
  }
  if (now_ns < next_window_ns_) return work;
  next_window_ns_ = now_ns + window_ns_;
  if (records_.size() >= options_.records_pending_max) {
    // The system chain is behind: decide nothing new until the records of the last
    // decisions are in (the counters keep counting; the next window covers the gap).
    ++counters_.windows_held;
    return work;
  }
  run_window(now_ns);
  return work + 1;
}

void BalancerTile::shuffle_one() {
  if (options_.shard_tiles.empty() || options_.shard_cores.size() < 2) return;
  engine::MovableTile* tile = options_.shard_tiles[shuffle_random_() % options_.shard_tiles.size()];
  uint32_t from = tile->core_index.load(std::memory_order_acquire);
  uint32_t to = options_.shard_cores[shuffle_random_() % options_.shard_cores.size()];
  if (to == from) return;
  auto from_loop = options_.loops->find(from), to_loop = options_.loops->find(to);
  if (from_loop == options_.loops->end() || to_loop == options_.loops->end()) return;
  from_loop->second->request_move(tile, to_loop->second, std::max<uint32_t>(1, tile->weight.load()));
  ++counters_.shuffles_requested;
}

void BalancerTile::begin_drain() {
  draining_ = true;
  if (records_.empty() && options_.drain != nullptr)
    options_.drain->engine_txs_stopped.store(true, std::memory_order_release);
}

bool BalancerTile::quiescent() { return draining_ && records_.empty(); }

void BalancerTile::run_window(uint64_t now_ns) {
  // Each chain's counters: its shards' in the table, chain after chain.
  std::span<const balance::ChainStatus> statuses = balancer_.statuses();
  std::fill(counters_scratch_.begin(), counters_scratch_.end(), balance::ChainCounters{});
  for (uint32_t shard = 0; shard < options_.shard_tiles.size(); ++shard) {
    const ShardControl& control = options_.shards.control(shard);
    balance::ChainCounters& chain = counters_scratch_[balancer_.chain_of_shard(shard)];
    chain.committed_txs += control.committed_txs.load(std::memory_order_relaxed);
    chain.busy_ns += control.busy_ns.load(std::memory_order_relaxed);
    const uint64_t durable = control.durable_height.load(std::memory_order_relaxed);
    const uint64_t sealed = control.sealed_height.load(std::memory_order_relaxed);
    chain.durable_blocks += durable;
    chain.blocks_waiting += sealed > durable ? sealed - durable : 0;
  }
  std::vector<balance::ChainStatus> before(statuses.begin(), statuses.end());
  balance::BalanceDecision decision = balancer_.step(now_ns, counters_scratch_);
  ++window_;
  ++counters_.windows;
  // Carry the decision out where each tile really is: a move refused earlier (a drain
  // beginning) leaves a tile where it was, and the request goes to the core that has it.
  for (const balance::ShardMove& move : decision.moves) {
    engine::MovableTile* tile = options_.shard_tiles[move.shard];
    uint32_t actual = tile->core_index.load(std::memory_order_acquire);
    if (actual != move.from_core) ++counters_.placement_mismatches;
    auto from = options_.loops->find(actual), to = options_.loops->find(move.to_core);
    if (from == options_.loops->end() || to == options_.loops->end()) continue;
    from->second->request_move(tile, to->second, move.weight);
    ++counters_.moves_requested;
  }
  std::vector<bool> requested(options_.shard_tiles.size(), false);
  for (const balance::ShardMove& move : decision.moves) requested[move.shard] = true;
  for (const balance::WeightChange& change : decision.weight_changes) {
    requested[change.shard] = true;
    engine::MovableTile* tile = options_.shard_tiles[change.shard];
    auto core = options_.loops->find(tile->core_index.load(std::memory_order_acquire));
    if (core == options_.loops->end()) continue;
    core->second->request_weight(tile, change.to_weight);
    ++counters_.weight_changes_requested;
  }
  // The balancer takes its placement as done. A request a core refused (one that found the
  // tile gone, or the shuffle test hook's moves) leaves a tile elsewhere: ask again, so
  // what runs converges on what the balancer decided.
  std::span<const balance::ShardPlacement> placement = balancer_.placement();
  for (uint32_t shard = 0; shard < options_.shard_tiles.size(); ++shard) {
    if (requested[shard]) continue;
    engine::MovableTile* tile = options_.shard_tiles[shard];
    uint32_t actual = tile->core_index.load(std::memory_order_acquire);
    uint32_t weight = tile->weight.load(std::memory_order_relaxed);
    if (actual == placement[shard].core && weight == placement[shard].weight) continue;
    auto from = options_.loops->find(actual), to = options_.loops->find(placement[shard].core);
    if (from == options_.loops->end() || to == options_.loops->end()) continue;
    ++counters_.placement_mismatches;
    if (actual == placement[shard].core) {
      from->second->request_weight(tile, placement[shard].weight);
    } else {
      from->second->request_move(tile, to->second, placement[shard].weight);
    }
  }
  queue_records(decision, before);
  publish_status();
  StatusTableHeader& header = options_.status.header();
  header.balancer_windows.store(counters_.windows, std::memory_order_relaxed);
  header.balancer_moves.store(counters_.moves_requested, std::memory_order_relaxed);
  header.balancer_records.store(counters_.records_ordered, std::memory_order_relaxed);
  header.balancer_records_backpressured.store(counters_.windows_held, std::memory_order_relaxed);
}

// The chain's share of the shared cores' shard time (those no heavy chain holds), in 1/1000.
uint32_t BalancerTile::shares_permille(uint32_t chain) const {
  double dedicated = 0;
  for (const balance::ChainStatus& each : balancer_.statuses()) dedicated += each.dedicated_cores;
  double shared_cores = double(options_.shard_core_count) - dedicated;
  const balance::ChainStatus& status = balancer_.status(chain);
  double shared_slice = status.slice_cores - status.dedicated_cores;
  return shared_cores > 0 ? uint32_t(std::min<double>(1000, rounded(1000 * shared_slice / shared_cores))) : 0;
}

ledger::BalanceRecordBody BalancerTile::record_of(uint32_t chain, ledger::BalanceRecordKind kind, balance::Tier from,
                                                  balance::Tier to) const {
  const balance::ChainStatus& status = balancer_.status(chain);
  ledger::BalanceRecordBody body{};
  body.shard = options_.system_shard;
  body.kind = uint8_t(kind);
  body.tier_from = uint8_t(from);
  body.tier_to = uint8_t(to);
  body.window = window_;
  body.time_ms = options_.wall_now_ms();
  body.tps_smoothed = rounded(status.tps_smoothed);
  body.cost_ns_per_tx = rounded(status.cost_ns_per_tx);
  body.cores_dedicated = status.dedicated_cores;
  body.shares_permille = shares_permille(chain);
  size_t name_bytes = std::min<size_t>(status.name.size(), ledger::balance_chain_name_bytes - 1);
  std::memcpy(body.chain_name, status.name.data(), name_bytes);
  return body;
}

void BalancerTile::queue_records(const balance::BalanceDecision& decision,
                                 const std::vector<balance::ChainStatus>& before) {
  std::vector<bool> slice_changed(before.size(), false);
  if (decision.slices_changed) {
    for (const balance::ShardMove& move : decision.moves) slice_changed[balancer_.chain_of_shard(move.shard)] = true;
    for (uint32_t chain = 0; chain < before.size(); ++chain)
      if (balancer_.status(chain).dedicated_cores != before[chain].dedicated_cores) slice_changed[chain] = true;
  }
  for (const balance::TierChange& change : decision.tier_changes) {
    ++tier_changes_[change.chain];
    if (options_.system_ring)
      records_.push_back(ledger::encode_balance_record(
          record_of(change.chain, ledger::BalanceRecordKind::tier, change.from, change.to)));
  }
  for (uint32_t chain = 0; chain < slice_changed.size(); ++chain) {
    if (!slice_changed[chain]) continue;
    ++slice_changes_[chain];
    balance::Tier tier = balancer_.status(chain).tier;
    if (options_.system_ring)
      records_.push_back(ledger::encode_balance_record(record_of(chain, ledger::BalanceRecordKind::slice, tier, tier)));
  }
}

size_t BalancerTile::push_records() {
  size_t pushed = 0;
  while (!records_.empty() && options_.system_ring) {
    const std::vector<std::byte>& tx = records_.front();
    EngineTxMessage message{};
    message.tx_bytes = uint32_t(tx.size());
    std::memcpy(message.tx, tx.data(), std::min<size_t>(tx.size(), engine_tx_inline_bytes_max));
    if (!options_.system_ring->push(message)) break;  // full: the next poll tries again
    records_.pop_front();
    ++counters_.records_ordered;
    ++pushed;
  }
  return pushed;
}

void BalancerTile::publish_status() {
  for (uint32_t chain = 0; chain < balancer_.statuses().size(); ++chain) {
    const balance::ChainStatus& status = balancer_.status(chain);
    ChainSliceStatus slice{};
    std::memcpy(slice.name, status.name.data(), std::min(sizeof slice.name - 1, status.name.size()));
    slice.tier = uint32_t(status.tier);
    slice.cores_dedicated = status.dedicated_cores;
    slice.shares_permille = shares_permille(chain);
    slice.tps_smoothed = rounded(status.tps_smoothed);
    slice.cost_ns_per_tx = rounded(status.cost_ns_per_tx);
    slice.tier_changes = tier_changes_[chain];
    slice.slice_changes = slice_changes_[chain];
    slice.window = window_;
    options_.status.write_slice(chain, slice);
  }
  for (uint32_t shard = 0; shard < options_.shard_tiles.size(); ++shard) {
    const engine::MovableTile* tile = options_.shard_tiles[shard];
    ShardControl& control = options_.shards.control(shard);
    control.core_index.store(tile->core_index.load(std::memory_order_relaxed), std::memory_order_relaxed);
    control.weight.store(tile->weight.load(std::memory_order_relaxed), std::memory_order_relaxed);
    control.moves.store(tile->moves.load(std::memory_order_relaxed), std::memory_order_relaxed);
    control.tier.store(uint32_t(balancer_.status(balancer_.chain_of_shard(shard)).tier), std::memory_order_relaxed);
  }
}

}  // namespace keel::node
