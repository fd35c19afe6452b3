#include "engine/node/status_table.h"

#include <cassert>
#include <cstring>
#include <new>

namespace keel::node {

namespace {

constexpr uint64_t alignment = 128;

uint64_t align_up(uint64_t value) { return (value + alignment - 1) & ~(alignment - 1); }

struct Plan {
  uint64_t cores_offset = 0, chains_offset = 0, total = 0;
};

Plan make_plan(const StatusTableOptions& options) {
  Plan plan;
  plan.cores_offset = align_up(sizeof(StatusTableHeader));
  plan.chains_offset = plan.cores_offset + uint64_t(options.cores.size()) * sizeof(CoreStatus);
  plan.total = plan.chains_offset + uint64_t(options.chains.size()) * sizeof(ChainSliceSlot);
  return plan;
}

}  // namespace

Result<uint64_t> status_table_footprint(const StatusTableOptions& options) { return make_plan(options).total; }

Result<uint64_t> lay_out_status_table(shm::Segment& segment, const StatusTableOptions& options) {
  Plan plan = make_plan(options);
  for (const std::string& name : options.chains)
    if (name.empty() || name.size() >= status_name_bytes)
      return make_error("engine.status", "chain name '" + name + "' does not fit the status table");
  Result<uint64_t> table = segment.allocate(status_table_object_name, shm::SegmentObjectKind::counters, plan.total,
                                            alignment);
  if (!table) return table.error();
  std::byte* base = segment.base();
  auto* header = new (base + *table) StatusTableHeader{};
  header->magic = status_table_magic;
  header->version = status_table_version;
  header->core_count = uint32_t(options.cores.size());
  header->chain_count = uint32_t(options.chains.size());
  header->balancer_window_ms = options.balancer_window_ms;
  header->cores_offset = *table + plan.cores_offset;
  header->chains_offset = *table + plan.chains_offset;
  for (uint32_t index = 0; index < options.cores.size(); ++index) {
    auto* core = new (base + header->cores_offset + uint64_t(index) * sizeof(CoreStatus)) CoreStatus{};
    core->core_index = options.cores[index].core_index;
    core->node = options.cores[index].node;
    core->pu = options.cores[index].pu;
    core->bound = options.cores[index].bound ? 1 : 0;
  }
  for (uint32_t index = 0; index < options.chains.size(); ++index) {
    auto* slot = new (base + header->chains_offset + uint64_t(index) * sizeof(ChainSliceSlot)) ChainSliceSlot{};
    std::memcpy(slot->status.name, options.chains[index].data(), options.chains[index].size());
  }
  return *table;
}

Result<StatusTableView> StatusTableView::join(std::byte* segment_base, uint64_t table_offset) {
  auto* header = reinterpret_cast<StatusTableHeader*>(segment_base + table_offset);
  if (header->magic != status_table_magic || header->version != status_table_version)
    return make_error("engine.status", "not a status table of this keel version");
  StatusTableView view;
  view.base_ = segment_base;
  view.header_ = header;
  return view;
}

CoreStatus& StatusTableView::core(uint32_t index) const {
  assert(index < header_->core_count);
  return reinterpret_cast<CoreStatus*>(base_ + header_->cores_offset)[index];
}

namespace {

ChainSliceSlot& slot_of(std::byte* base, const StatusTableHeader& header, uint32_t chain) {
  assert(chain < header.chain_count);
  return reinterpret_cast<ChainSliceSlot*>(base + header.chains_offset)[chain];
}

}  // namespace

// A seqlock: the writer makes the sequence odd, writes, makes it even again; a reader
// copies between two equal even reads. The copy is of plain bytes another thread may be
// writing, so it goes through relaxed atomic byte loads (no data race in the C++ sense).
void StatusTableView::write_slice(uint32_t chain, const ChainSliceStatus& status) const {
  ChainSliceSlot& slot = slot_of(base_, *header_, chain);
  uint64_t sequence = slot.sequence.load(std::memory_order_relaxed);
  slot.sequence.store(sequence + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const auto* from = reinterpret_cast<const unsigned char*>(&status);
  auto* to = reinterpret_cast<unsigned char*>(&slot.status);
  for (size_t index = 0; index < sizeof(ChainSliceStatus); ++index)
    std::atomic_ref<unsigned char>(to[index]).store(from[index], std::memory_order_relaxed);
  slot.sequence.store(sequence + 2, std::memory_order_release);
}

ChainSliceStatus StatusTableView::read_slice(uint32_t chain) const {
  ChainSliceSlot& slot = slot_of(base_, *header_, chain);
  ChainSliceStatus copy{};
  constexpr int tries_max = 100'000;  // a write takes well under a microsecond
  for (int tries = 0; tries < tries_max; ++tries) {
    uint64_t before = slot.sequence.load(std::memory_order_acquire);
    if (before & 1) continue;
    auto* from = reinterpret_cast<unsigned char*>(&slot.status);
    auto* to = reinterpret_cast<unsigned char*>(&copy);
    for (size_t index = 0; index < sizeof(ChainSliceStatus); ++index)
      to[index] = std::atomic_ref<unsigned char>(from[index]).load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.sequence.load(std::memory_order_relaxed) == before) return copy;
  }
  copy.window = 0;
  return copy;
}

}  // namespace keel::node
