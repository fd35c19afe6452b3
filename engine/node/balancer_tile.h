// engine/node/balancer_tile.h: the tile that re-sizes the chains' CPU slices. Every
// window it reads each chain's committed transactions and shard busy time from the shard
// controls, lets the balancer (engine/balance/balancer.h) decide, and carries the
// decision out:
//   - shard tiles move between cores, and weights change, at the cores' next safe point
//     (engine/core/core.h: request_move, request_weight) — never mid-batch;
//   - every change of a chain's tier or slice becomes a balance_record transaction on the
//     system chain (ordered, hashed and made durable like any other), pushed through that
//     shard's engine ring; when the ring is full the records wait and the balancer decides
//     nothing new until they are in (backpressure: an audit record is never dropped);
//   - each chain's tier and slice go into the status table for `keel monitor`.
//
//   BalancerTile balancer(std::move(*balancer_logic), options);
//   core tiles: {&balancer, weight}
//
// The tile reads the clock once per poll and does its work once per window; in between a
// poll costs one clock read.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/balance/balancer.h"
#include "engine/core/core.h"
#include "engine/core/tile.h"
#include "engine/ledger/transaction.h"
#include "engine/node/drain_state.h"
#include "engine/node/shard_table.h"
#include "engine/node/status_table.h"
#include "shm/ring.h"

namespace keel::node {

struct BalancerTileOptions {
  uint32_t window_ms = 250;
  ShardTableView shards;
  StatusTableView status;
  std::vector<engine::MovableTile*> shard_tiles;       // by global shard
  // By planned core index; filled before any core starts (the cores run this tile too).
  const std::map<uint32_t, engine::CoreLoop*>* loops = nullptr;
  std::optional<shm::RingProducer> system_ring;        // the system shard's engine ring (EngineTxMessage)
  uint32_t system_shard = 0;                           // its shard index within the system chain (0)
  uint32_t shard_core_count = 0;                       // cores shard tiles may run on (the balancer's)
  DrainState* drain = nullptr;
  uint64_t (*monotonic_now_ns)() = nullptr;            // default shm::monotonic_ns (tests: a fake)
  uint64_t (*wall_now_ms)() = nullptr;                 // default the real UTC clock
  size_t records_pending_max = 1024;
  // A test hook (KEEL_BALANCER_SHUFFLE_MS; keel run says so in one line): besides the
  // balancer's own decisions, move a random shard tile to another of shard_cores every
  // this many milliseconds, so tests can check that moves under load lose nothing.
  uint32_t shuffle_every_ms = 0;
  std::vector<uint32_t> shard_cores;  // the cores shard tiles may run on (shuffle targets)
  uint64_t shuffle_seed = 1;
};

struct BalancerTileCounters {
  uint64_t windows = 0;
  uint64_t moves_requested = 0;
  uint64_t weight_changes_requested = 0;
  uint64_t records_ordered = 0;           // pushed into the system shard's ring
  uint64_t windows_held = 0;              // windows skipped while records waited for room
  uint64_t placement_mismatches = 0;      // a shard found elsewhere (or weighted otherwise) than decided: asked again
  uint64_t shuffles_requested = 0;        // the test hook's moves
};

class BalancerTile final : public engine::Tile {
 public:
  BalancerTile(balance::Balancer balancer, BalancerTileOptions options);

  std::string_view name() const override { return "balancer"; }
  size_t poll(size_t budget) override;
  void begin_drain() override;
  bool quiescent() override;

  const balance::Balancer& balancer() const { return balancer_; }
  const BalancerTileCounters& counters() const { return counters_; }
  uint64_t tier_changes(uint32_t chain) const { return tier_changes_.at(chain); }
  uint64_t slice_changes(uint32_t chain) const { return slice_changes_.at(chain); }

 private:
  void run_window(uint64_t now_ns);
  void shuffle_one();
  void queue_records(const balance::BalanceDecision& decision, const std::vector<balance::ChainStatus>& before);
  size_t push_records();
  void publish_status();
  uint32_t shares_permille(uint32_t chain) const;
  ledger::BalanceRecordBody record_of(uint32_t chain, ledger::BalanceRecordKind kind, balance::Tier from,
                                      balance::Tier to) const;

  balance::Balancer balancer_;
  BalancerTileOptions options_;
  uint64_t window_ns_;
  uint64_t next_window_ns_ = 0;
  uint64_t window_ = 0;
  std::deque<std::vector<std::byte>> records_;  // balance_record transactions not yet in the ring
  std::vector<uint64_t> tier_changes_, slice_changes_;  // per chain, since start
  std::vector<balance::ChainCounters> counters_scratch_;
  BalancerTileCounters counters_;
  uint64_t next_shuffle_ns_ = 0;
  std::mt19937_64 shuffle_random_;
  bool draining_ = false;
};

}  // namespace keel::node
