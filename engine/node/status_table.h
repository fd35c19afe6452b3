// engine/node/status_table.h: the part of the segment the operator's view reads — each
// core's counters and each chain's CPU slice as the balancer last decided it. The engine
// writes it as it runs (cores every round, the balancer every window); `keel status` and
// `keel monitor` attach and read it, so watching costs the engine nothing.
//
//   uint64_t table = lay_out_status_table(segment, {.cores = ..., .chains = ...}).value();  // engine
//   StatusTableView view = StatusTableView::join(segment.base(), table).value();
//   CoreStatus& core = view.core(0);              // CoreLoop adds to it
//   ChainSliceStatus slice = view.read_slice(1);  // a consistent copy (seqlock)
//
// One segment object ("engine.status"); the shards' own counters stay in their
// ShardControl (shard_table.h): committed transactions, commit latency, busy time, core.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/core.h"
#include "error/result.h"
#include "shm/segment.h"

namespace keel::node {

inline constexpr char status_table_object_name[] = "engine.status";
inline constexpr uint64_t status_table_magic = 0x31304c4254534b4bULL;  // "KKSTBL01"
inline constexpr uint32_t status_table_version = 1;
inline constexpr uint32_t status_name_bytes = 48;  // NUL-terminated

// One engine core (a planned core that runs tiles); its CoreLoop writes the counters.
struct alignas(128) CoreStatus {
  uint32_t core_index;  // planned core index
  uint32_t node;        // NUMA node (os index)
  uint32_t pu;          // processing unit (os index); meaningless when not bound
  uint32_t bound;       // 1 when the thread is pinned to `pu`
  engine::CoreCounters counters;
};
static_assert(sizeof(CoreStatus) == 128);

// A chain's tier and slice. Tier: 0 light, 1 medium, 2 heavy (balance::Tier).
struct ChainSliceStatus {
  char name[status_name_bytes];
  uint32_t tier;
  uint32_t cores_dedicated;       // cores only its shards run on
  uint32_t shares_permille;       // its share of the shared cores' shard time, 1/1000
  uint32_t reserved;
  uint64_t tps_smoothed;          // committed transactions/s, the balancer's EWMA
  uint64_t cost_ns_per_tx;        // CPU time per committed transaction, smoothed
  uint64_t tier_changes;          // since the engine started
  uint64_t slice_changes;
  uint64_t window;                // the balancer window that wrote it (0: not yet)
};

struct alignas(128) ChainSliceSlot {
  std::atomic<uint64_t> sequence;  // seqlock: odd while the balancer writes
  ChainSliceStatus status;         // read through StatusTableView::read_slice
};

struct StatusTableHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t core_count;
  uint32_t chain_count;
  uint32_t balancer_window_ms;      // 0: no balancer runs (slices stay as planned)
  uint64_t cores_offset;            // from the segment base: CoreStatus[core_count]
  uint64_t chains_offset;           // from the segment base: ChainSliceSlot[chain_count]
  std::atomic<uint64_t> balancer_windows;  // windows the balancer has run
  std::atomic<uint64_t> balancer_moves;    // shard tile moves it requested (a core may refuse one: draining)
  std::atomic<uint64_t> balancer_records;  // balance_record transactions it ordered
  std::atomic<uint64_t> balancer_records_backpressured;  // windows it decided nothing: records waited for room
};

struct StatusTableCore {
  uint32_t core_index, node, pu;
  bool bound;
};

struct StatusTableOptions {
  std::vector<StatusTableCore> cores;
  std::vector<std::string> chains;  // names, in config order
  uint32_t balancer_window_ms = 0;
};

Result<uint64_t> status_table_footprint(const StatusTableOptions& options);
// Allocates and initialises the table in a segment being laid out; returns its offset.
Result<uint64_t> lay_out_status_table(shm::Segment& segment, const StatusTableOptions& options);

class StatusTableView {
 public:
  StatusTableView() = default;
  // Checks magic and version; the error names what is wrong.
  static Result<StatusTableView> join(std::byte* segment_base, uint64_t table_offset);
  StatusTableHeader& header() const { return *header_; }
  uint32_t core_count() const { return header_->core_count; }
  uint32_t chain_count() const { return header_->chain_count; }
  CoreStatus& core(uint32_t index) const;
  // The balancer (one writer).
  void write_slice(uint32_t chain, const ChainSliceStatus& status) const;
  // Anyone: a consistent copy, retried while a write is under way. An engine that died in
  // the middle of a write leaves the sequence odd for good: after a bounded number of
  // tries the last (perhaps torn) copy is returned with `window` set to 0, "not yet".
  ChainSliceStatus read_slice(uint32_t chain) const;

 private:
  std::byte* base_ = nullptr;
  StatusTableHeader* header_ = nullptr;
};

}  // namespace keel::node
