#include "engine/client/gateway.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/client/client_table.h"
#include "engine/config/perf_config.h"  // system_chain_name (a constant: no link to keel_config)
#include "engine/ledger/hash.h"
#include "engine/ledger/transaction.h"
#include "shm/segment.h"

namespace keel::client {

namespace {

// Messages moved per ring operation; a poll repeats passes until its budget is spent
// or no ring has anything, so the batch size only bounds one client's turn.
constexpr size_t batch_max = 32;

// The start ticks of a live process (field 22 of /proc/<pid>/stat), or 0 when it is
// gone or a zombie (a killed client whose parent has not reaped it is gone for us).
// Plain open/read: this runs for every attached client every sweep.
uint64_t live_start_ticks(int pid) {
  if (pid <= 0) return 0;
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[1024];
  ssize_t got = read(fd, text, sizeof text - 1);
  close(fd);
  if (got <= 0) return 0;
  text[got] = '\0';
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  char* cursor = std::strrchr(text, ')');
  if (cursor == nullptr || cursor[1] != ' ') return 0;
  cursor += 2;
  if (*cursor == 'Z' || *cursor == 'X' || *cursor == 'x') return 0;
  for (int field = 3; field < 22; ++field) {
    cursor = std::strchr(cursor, ' ');
    if (cursor == nullptr) return 0;
    ++cursor;
  }
  return std::strtoull(cursor, nullptr, 10);
}

// Serves `count` queues in turn, starting one further each poll: up to batch_max from
// each per pass, passes until the budget is spent or a pass moves nothing.
template <class Serve>
size_t serve_round_robin(size_t count, uint32_t& start, size_t budget, Serve&& serve) {
  size_t done = 0;
  while (done < budget) {
    size_t moved_in_pass = 0;
    for (size_t step = 0; step < count && done < budget; ++step) {
      size_t moved = serve((start + step) % count, std::min(budget - done, batch_max));
      done += moved;
      moved_in_pass += moved;
    }
    if (moved_in_pass == 0) break;
  }
  if (count != 0) start = uint32_t((start + 1) % count);
  return done;
}

// Adds to a counter that only this process writes (monitors read it).
void bump(std::atomic<uint64_t>& counter, uint64_t amount) {
  counter.store(counter.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
}

}  // namespace

Result<std::unique_ptr<GatewayTile>> GatewayTile::create(std::byte* segment_base, uint64_t table_offset,
                                                         std::vector<ChainAccess> access) {
  Result<const ClientTable*> table = check_client_table(segment_base, table_offset);
  if (!table) return table.error();
  if (access.empty()) access.resize((*table)->chain_count);
  if (access.size() != (*table)->chain_count)
    return make_error("client gateway", "access rules for " + std::to_string(access.size()) + " chains, the table has " +
                                            std::to_string((*table)->chain_count));
  std::unique_ptr<GatewayTile> tile(new GatewayTile());
  tile->base_ = segment_base;
  // Offsets and counts are read once here: nothing a client later writes into the
  // shared table can redirect the gateway.
  for (uint32_t index = 0; index < (*table)->chain_count; ++index) {
    const ChainEntry& chain = (*table)->chains[index];
    tile->chains_.push_back({chain.first_shard_port, chain.shard_count, std::move(access[index].credit_granters),
                             std::string_view(chain.name) == config::system_chain_name});
  }
  tile->slots_.resize((*table)->slot_count);
  for (uint32_t index = 0; index < (*table)->slot_count; ++index) {
    SlotLink& slot = tile->slots_[index];
    slot.shared = &client_slot(segment_base, **table, index);
    slot.identity = &client_identity(segment_base, **table, index);
    auto submits = join_table_ring<shm::RingConsumer>(segment_base, slot.shared->submit_ring, submit_slot_bytes);
    Result<shm::ArenaReader> arena = shm::ArenaReader::join(segment_base, slot.shared->submit_arena);
    auto receipts = join_table_ring<shm::RingProducer>(segment_base, slot.shared->receipt_ring, receipt_slot_bytes);
    if (!submits) return submits.error();
    if (!arena) return arena.error();
    if (!receipts) return receipts.error();
    slot.submits = *submits;
    slot.arena = *arena;
    slot.arena_header = reinterpret_cast<shm::ArenaHeader*>(segment_base + slot.shared->submit_arena);
    slot.receipts = *receipts;
    slot.receipt_ring = slot.shared->receipt_ring;
    slot.receipt_header = reinterpret_cast<shm::RingHeader*>(segment_base + slot.receipt_ring);
    slot.doorbell = reinterpret_cast<shm::Doorbell*>(segment_base + slot.shared->doorbell);
  }
  auto* ports = reinterpret_cast<const ShardPorts*>(segment_base + (*table)->ports_offset);
  tile->ports_.resize((*table)->port_count);
  for (uint32_t index = 0; index < (*table)->port_count; ++index) {
    auto submits = join_table_ring<shm::RingProducer>(segment_base, ports[index].submit_ring, submit_slot_bytes);
    Result<shm::ArenaWriter> arena = shm::ArenaWriter::join(segment_base, ports[index].submit_arena);
    auto receipts = join_table_ring<shm::RingConsumer>(segment_base, ports[index].receipt_ring, receipt_slot_bytes);
    if (!submits) return submits.error();
    if (!arena) return arena.error();
    if (!receipts) return receipts.error();
    tile->ports_[index] = {*submits, *arena, *receipts};
  }
  tile->touched_slots_.reserve(tile->slots_.size());
  tile->dirty_ports_.reserve(tile->ports_.size());
  return tile;
}

size_t GatewayTile::poll(size_t budget) {
  // Receipts first: each one forwarded makes room for another submission.
  size_t done = forward_receipts(budget);
  if (done < budget) done += take_submissions(budget - done);
  ring_touched_doorbells();
  // Whether a sweep is due, by the tick's clock (a 100 ms interval; ~5 ns against ~25 for
  // the full clock on every poll); the sweep itself compares heartbeats with the full one.
  if (shm::monotonic_coarse_ns() >= next_sweep_ns_) {
    uint64_t now_ns = shm::monotonic_ns();
    done += sweep_slots(now_ns);
    next_sweep_ns_ = now_ns + gateway_sweep_interval_ns;
  }
  return done;
}

void GatewayTile::begin_drain() {
  draining_ = true;
  publish_ports();
  // Nothing more will be routed: a shard may finish once it has answered what it has.
  for (PortLink& port : ports_) port.submits.close();
}

// ---- receipts: shard -> gateway -> client ---------------------------------------------

size_t GatewayTile::forward_receipts(size_t budget) {
  return serve_round_robin(ports_.size(), next_port_, budget,
                           [this](size_t index, size_t wanted) { return forward_port_receipts(ports_[index], wanted); });
}

size_t GatewayTile::forward_port_receipts(PortLink& port, size_t wanted) {
  std::span<const std::byte> in = port.receipts.peek(wanted);
  size_t count = in.size() / sizeof(ReceiptMessage);
  for (size_t index = 0; index < count; ++index) {
    ReceiptMessage receipt;
    std::memcpy(&receipt, in.data() + index * sizeof receipt, sizeof receipt);
    // Shards are engine code: a receipt for a slot that is owed nothing is a bug.
    assert(receipt.client_slot < slots_.size());
    SlotLink& slot = slots_[receipt.client_slot];
    assert(slot.owed > 0);
    --slot.owed;
    --owed_total_;
    if (slot.reclaiming) {
      ++stats_.receipts_discarded;
      continue;
    }
    push_receipt(receipt.client_slot, receipt);
    ++stats_.receipts_forwarded;
  }
  port.receipts.release(count);
  return count;
}

void GatewayTile::push_receipt(uint32_t slot_index, const ReceiptMessage& receipt) {
  SlotLink& slot = slots_[slot_index];
  // Room was set aside when the submission was taken (receipt_room); only a client that
  // wrote its own ring's indexes can make this fail, and then it loses the receipt.
  if (!slot.receipts.push(receipt)) {
    ++stats_.receipts_discarded;
    return;
  }
  bump(slot.shared->receipts_sent, 1);
  if (!slot.touched) {
    slot.touched = true;
    touched_slots_.push_back(slot_index);
  }
}

void GatewayTile::ring_touched_doorbells() {
  for (uint32_t slot_index : touched_slots_) {
    shm::doorbell_ring(slots_[slot_index].doorbell);
    slots_[slot_index].touched = false;
  }
  touched_slots_.clear();
}

// Receipts the client's ring can still take beyond those already owed to it.
uint64_t GatewayTile::receipt_room(const SlotLink& slot) const {
  uint64_t tail = slot.receipt_header->tail.load(std::memory_order_relaxed);  // ours
  uint64_t head = slot.receipt_header->head.load(std::memory_order_acquire);
  uint64_t capacity = slot.receipts.capacity();
  uint64_t waiting = tail - head;
  if (waiting > capacity) return 0;  // a head the client wrote wrong: serve it nothing
  uint64_t free = capacity - waiting;
  return free > slot.owed ? free - slot.owed : 0;
}

// ---- submissions: client -> gateway -> shard ----------------------------------------

size_t GatewayTile::take_submissions(size_t budget) {
  for (SlotLink& slot : slots_) slot.blocked = false;
  size_t taken = serve_round_robin(slots_.size(), next_slot_, budget, [this](size_t index, size_t wanted) {
    return take_client_submissions(uint32_t(index), wanted);
  });
  publish_ports();
  return taken;
}

size_t GatewayTile::take_client_submissions(uint32_t slot_index, size_t wanted) {
  SlotLink& slot = slots_[slot_index];
  if (slot.reclaiming || slot.blocked) return 0;
  if (slot.shared->state.load(std::memory_order_acquire) != uint32_t(ClientSlotState::attached)) return 0;
  // Every submission taken ends in one receipt: take no more than the receipt ring can hold.
  wanted = std::min<uint64_t>(wanted, receipt_room(slot));
  std::span<const std::byte> in = slot.submits.peek(wanted);
  size_t count = in.size() / sizeof(SubmitMessage), taken = 0;
  // Read once per batch: the claimer wrote it before publishing attached (acquired above).
  ledger::ClientId id;
  std::memcpy(id.data(), slot.identity->client_id, id.size());
  std::optional<std::string_view> client_id = ledger::client_id_text(id);
  for (; taken < count; ++taken) {
    SubmitMessage message;
    std::memcpy(&message, in.data() + taken * sizeof message, sizeof message);
    if (!take_submission(slot_index, message, client_id)) {
      slot.blocked = true;
      ++stats_.backpressure_events;
      break;
    }
  }
  slot.submits.release(taken);
  if (taken != 0) bump(slot.shared->submitted, taken);
  return taken;
}

// Checks one submission and routes it, or answers it at once. False when its shard's
// ring or arena is full: the submission stays in the client's ring for a later poll.
bool GatewayTile::take_submission(uint32_t slot_index, const SubmitMessage& message,
                                  std::optional<std::string_view> client_id) {
  SlotLink& slot = slots_[slot_index];
  bool in_arena = message.tx_bytes > submit_inline_bytes_max;
  std::span<const std::byte> tx;
  if (message.tx_bytes > ledger::tx_bytes_max) {
    // Longer than any transaction: left unread (the client library never sends one).
  } else if (in_arena) {
    tx = slot.arena.read(message.arena_position, message.tx_bytes);
  } else {
    tx = {message.inline_tx, message.tx_bytes};
  }
  bool readable = message.tx_bytes <= ledger::tx_bytes_max && tx.size() == message.tx_bytes;
  ledger::TxStatus status;
  ledger::TxView view;
  if (draining_) {
    status = ledger::TxStatus::engine_stopping;
  } else if (message.chain >= chains_.size()) {
    status = ledger::TxStatus::unknown_chain;
  } else if (chains_[message.chain].system) {
    status = ledger::TxStatus::system_chain;
  } else if (!readable) {
    status = ledger::TxStatus::bad_length;
  } else {
    status = ledger::check_transaction(tx, ledger::TxOrigin::client, &view);
  }
  // A deploy or product setting names its shard: one past the chain's is refused here.
  if (status == ledger::TxStatus::applied &&
      ledger::home_shard(view, chains_[message.chain].shard_count) >= chains_[message.chain].shard_count)
    status = ledger::TxStatus::no_such_shard;
  if (status == ledger::TxStatus::applied) status = check_access(view, message.chain, client_id);
  if (status == ledger::TxStatus::applied) {
    const ChainRoute& chain = chains_[message.chain];
    uint32_t port_index = chain.first_port + ledger::home_shard(view, chain.shard_count);
    if (!route(port_index, slot_index, message, tx)) return false;
    ++slot.owed;
    ++owed_total_;
    ++stats_.routed;
  } else {
    answer_now(slot_index, message, uint16_t(status));
  }
  // The bytes are copied (or refused): the client may reuse them.
  if (in_arena && readable) slot.arena.release(message.arena_position, message.tx_bytes);
  return true;
}

void hash_routed_leaf(RoutedSubmit& slot) {
  slot.flags = 0;
  if (slot.tx_bytes > routed_hashed_tx_bytes_max) return;
  ledger::Hash32 leaf = ledger::hash_leaf(std::span<const std::byte>(slot.inline_tx, slot.tx_bytes));
  std::memcpy(slot.inline_tx + routed_leaf_hash_at, leaf.bytes.data(), routed_leaf_hash_bytes);
  slot.flags = routed_flag_leaf_hash;
}

// Applied when the slot's client may send this well-formed transaction on the chain.
ledger::TxStatus GatewayTile::check_access(const ledger::TxView& view, uint32_t chain,
                                           std::optional<std::string_view> client_id) const {
  if (!client_id) return ledger::TxStatus::bad_client_id;  // a client that did not attach through the library
  if (view.type != ledger::TxType::credit_grant) return ledger::TxStatus::applied;
  const std::vector<std::string>& granters = chains_[chain].credit_granters;
  bool listed = std::find(granters.begin(), granters.end(), *client_id) != granters.end();
  return listed ? ledger::TxStatus::applied : ledger::TxStatus::not_a_granter;
}

// Writes a RoutedSubmit into the port's ring in place; the port publishes its pending
// slots once per poll (publish_ports), so a batch costs one release store and at most
// one doorbell ring per shard.
bool GatewayTile::route(uint32_t port_index, uint32_t slot_index, const SubmitMessage& message,
                        std::span<const std::byte> tx) {
  PortLink& port = ports_[port_index];
  std::span<std::byte> claimed = port.submits.claim(port.pending + 1);
  if (claimed.size() < (port.pending + 1) * sizeof(RoutedSubmit)) {
    // Full, or the free slots wrap: publish what is pending and ask for one slot.
    if (port.pending == 0) return false;
    port.submits.publish(port.pending);
    port.pending = 0;
    claimed = port.submits.claim(1);
    if (claimed.empty()) return false;
  }
  auto* out = reinterpret_cast<RoutedSubmit*>(claimed.data()) + port.pending;
  out->arena_position = 0;
  if (tx.size() <= submit_inline_bytes_max) {
    if (!tx.empty()) std::memcpy(out->inline_tx, tx.data(), tx.size());
  } else {
    std::optional<shm::ArenaBlock> block = port.arena.reserve(tx.size());
    if (!block) return false;  // the claimed slot is simply claimed again next time
    std::memcpy(block->bytes.data(), tx.data(), tx.size());
    out->arena_position = block->position;
  }
  out->request_id = message.request_id;
  out->client_slot = uint16_t(slot_index);
  out->tx_bytes = uint32_t(tx.size());
  hash_routed_leaf(*out);
  if (!port.dirty) {
    port.dirty = true;
    dirty_ports_.push_back(port_index);
  }
  ++port.pending;
  return true;
}

void GatewayTile::publish_ports() {
  for (uint32_t port_index : dirty_ports_) {
    PortLink& port = ports_[port_index];
    port.submits.publish(port.pending);
    port.pending = 0;
    port.dirty = false;
  }
  dirty_ports_.clear();
}

void GatewayTile::answer_now(uint32_t slot_index, const SubmitMessage& message, uint16_t status) {
  ReceiptMessage receipt{};
  receipt.request_id = message.request_id;
  receipt.height = 0;
  receipt.status = status;
  receipt.client_slot = uint16_t(slot_index);
  receipt.chain = message.chain;
  push_receipt(slot_index, receipt);
  ++stats_.refused;
}

// ---- slot life: detached and dead clients -------------------------------------------

size_t GatewayTile::sweep_slots(uint64_t now_ns) {
  size_t reclaimed = 0;
  for (uint32_t index = 0; index < slots_.size(); ++index) {
    SlotLink& slot = slots_[index];
    uint32_t state = slot.shared->state.load(std::memory_order_acquire);
    if (state != uint32_t(ClientSlotState::claiming)) slot.claiming_since_ns = 0;
    switch (ClientSlotState(state)) {
      case ClientSlotState::attached: {
        uint64_t start_ticks = slot.shared->owner_start_ticks.load(std::memory_order_relaxed);
        int pid = slot.shared->owner_pid.load(std::memory_order_relaxed);
        if (start_ticks == 0 || live_start_ticks(pid) != start_ticks) begin_reclaim(index, state);
        break;
      }
      case ClientSlotState::detached:
        begin_reclaim(index, state);
        break;
      case ClientSlotState::claiming:
        if (claim_abandoned(slot, now_ns)) begin_reclaim(index, state);
        break;
      default:
        break;
    }
    if (slot.reclaiming && slot.owed == 0) {
      finish_reclaim(slot);
      ++reclaimed;
    }
  }
  return reclaimed;
}

// True for a slot left in claiming for longer than the claim timeout by a claimer that
// is gone (or never wrote its pid).
bool GatewayTile::claim_abandoned(SlotLink& slot, uint64_t now_ns) {
  if (slot.claiming_since_ns == 0) {
    slot.claiming_since_ns = now_ns;
    return false;
  }
  if (now_ns - slot.claiming_since_ns < gateway_claim_timeout_ns) return false;
  int pid = slot.shared->owner_pid.load(std::memory_order_relaxed);
  return pid == 0 || live_start_ticks(pid) == 0;
}

// Moves a slot seen in `seen_state` to reclaiming (unless its owner changed it first)
// and discards what its owner left unread.
void GatewayTile::begin_reclaim(uint32_t slot_index, uint32_t seen_state) {
  SlotLink& slot = slots_[slot_index];
  uint32_t expected = seen_state;
  if (!slot.shared->state.compare_exchange_strong(expected, uint32_t(ClientSlotState::reclaiming),
                                                  std::memory_order_acq_rel)) {
    return;  // the owner moved (attached -> detached, claiming -> attached): look again next sweep
  }
  slot.reclaiming = true;
  slot.claiming_since_ns = 0;
  discard_submissions(slot);
}

void GatewayTile::discard_submissions(SlotLink& slot) {
  for (;;) {
    size_t count = slot.submits.peek(batch_max).size() / sizeof(SubmitMessage);
    if (count == 0) break;
    slot.submits.release(count);
    stats_.submissions_discarded += count;
  }
  // Frees the whole arena, including bytes the owner reserved but never published.
  slot.arena.release(slot.arena_header->reserved.load(std::memory_order_acquire), 0);
}

// Called once no receipt is owed: empties the receipt ring as its consumer (the owner is
// gone), clears the owner and frees the slot with release, so the next claimer starts
// from empty rings.
void GatewayTile::finish_reclaim(SlotLink& slot) {
  discard_submissions(slot);
  Result<shm::RingConsumer> consumer = shm::RingConsumer::join(base_, slot.receipt_ring);
  assert(consumer.ok());  // checked when the gateway joined
  ReceiptMessage unread[batch_max];
  while (consumer->pop(std::span<ReceiptMessage>(unread)) != 0) {
  }
  slot.shared->submitted.store(0, std::memory_order_relaxed);
  slot.shared->receipts_sent.store(0, std::memory_order_relaxed);
  slot.shared->owner_pid.store(0, std::memory_order_relaxed);
  slot.shared->owner_start_ticks.store(0, std::memory_order_relaxed);
  slot.shared->heartbeat_ns.store(0, std::memory_order_relaxed);
  // No receipt is owed, so no shard reads the id any more; the next claimer writes its own.
  std::memset(slot.identity->client_id, 0, sizeof slot.identity->client_id);
  slot.reclaiming = false;
  slot.shared->state.store(uint32_t(ClientSlotState::free), std::memory_order_release);
  ++stats_.clients_reclaimed;
}

}  // namespace keel::client
