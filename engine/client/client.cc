#include "engine/client/client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/client/client_table.h"
#include "engine/ledger/transaction.h"

namespace keel::client {

namespace {

constexpr char place[] = "keel client";

// True if a shared-memory object of this name exists (whatever it holds): tells "no
// such engine" apart from the other reasons an attach can fail.
bool segment_exists(const std::string& name) {
  int fd = shm_open(("/" + name).c_str(), O_RDONLY, 0);
  if (fd < 0) return errno != ENOENT;
  close(fd);
  return true;
}

std::string seconds_text(uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", double(ns) / 1e9);
  return text;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::attach(std::string_view segment_name, std::string_view client_id) {
  if (!ledger::is_client_id(client_id))
    return make_error(place, "client id '" + std::string(client_id) + "' must be 1 to " +
                                 std::to_string(ledger::client_id_bytes_max) + " characters of [a-z0-9_.-]");
  std::string name(segment_name);
  if (name.empty() || name.find('/') != std::string::npos || !segment_exists(name)) {
    return make_error(place, "no keel engine named '" + name + "' is running");
  }
  Result<shm::Segment> segment = shm::Segment::attach(name);
  // An engine that has just started lays its segment out after recovering its chains:
  // wait for that (bounded) rather than fail a client started right after it.
  auto being_laid_out = [](const Error& error) {
    std::string_view message = error.message;
    std::string_view reason = shm::segment_not_sealed_reason;
    return message.size() >= reason.size() && message.substr(message.size() - reason.size()) == reason;
  };
  constexpr uint64_t layout_wait_ms_max = 20'000;
  for (uint64_t waited_ms = 0; !segment && being_laid_out(segment.error()) && waited_ms < layout_wait_ms_max;
       waited_ms += 10) {
    usleep(10'000);
    segment = shm::Segment::attach(name);
  }
  if (!segment) return make_error(place, segment.error().message);
  std::unique_ptr<Client> client(new Client(std::move(*segment)));
  const shm::SegmentHeader& header = client->segment_.header();
  uint64_t beat_ns = header.owner_heartbeat_ns.load(std::memory_order_relaxed), now_ns = shm::monotonic_ns();
  if (now_ns > beat_ns && now_ns - beat_ns > engine_heartbeat_stale_ns) {
    return make_error(place, "engine pid " + std::to_string(header.owner_pid) + " of segment '" + name +
                                 "' has not beaten its heartbeat for " + seconds_text(now_ns - beat_ns) +
                                 " s; is it stuck?");
  }
  if (!client->engine_alive()) {
    return make_error(place, "engine pid " + std::to_string(header.owner_pid) + " of segment '" + name +
                                 "' is no longer running");
  }
  Result<uint64_t> table = find_client_table(client->segment_);
  if (!table) return make_error(place, "engine '" + name + "' takes no clients (" + table.error().message + ")");
  client->table_ = reinterpret_cast<const ClientTable*>(client->segment_.base() + *table);
  if (Result<void> claimed = client->claim_slot(client_id); !claimed) return claimed.error();
  return client;
}

// Claims the first free slot: free -> claiming by compare-exchange, then the owner's
// identity, then claiming -> attached with release, so the gateway sees a complete
// owner. The gateway takes back a slot left in claiming by a claimer that died; then
// the final exchange fails and the search goes on.
Result<void> Client::claim_slot(std::string_view client_id) {
  std::byte* base = segment_.base();
  int pid = getpid();
  uint64_t start_ticks = shm::process_start_ticks(pid);
  for (uint32_t index = 0; index < table_->slot_count; ++index) {
    ClientSlot& slot = client_slot(base, *table_, index);
    uint32_t expected = uint32_t(ClientSlotState::free);
    if (!slot.state.compare_exchange_strong(expected, uint32_t(ClientSlotState::claiming),
                                            std::memory_order_acq_rel)) {
      continue;
    }
    slot.owner_pid.store(pid, std::memory_order_relaxed);
    slot.owner_start_ticks.store(start_ticks, std::memory_order_relaxed);
    slot.epoch += 1;
    slot.heartbeat_ns.store(shm::monotonic_coarse_ns(), std::memory_order_relaxed);  // beat_heartbeat's clock
    // Published with the state's release below: the gateway reads it once it sees attached.
    ledger::ClientId id = ledger::make_client_id(client_id);
    std::memcpy(client_identity(base, *table_, index).client_id, id.data(), id.size());
    // The rings were left empty by the gateway before it freed the slot; joining picks
    // up their indexes where the previous owner left them.
    auto submits = join_table_ring<shm::RingProducer>(base, slot.submit_ring, submit_slot_bytes);
    Result<shm::ArenaWriter> arena = shm::ArenaWriter::join(base, slot.submit_arena);
    auto receipts = join_table_ring<shm::RingConsumer>(base, slot.receipt_ring, receipt_slot_bytes);
    // The receipt ring must hold every receipt the client may have in flight.
    bool fits = receipts.ok() && receipts->capacity() >= slot.in_flight_max && slot.in_flight_max != 0;
    if (!submits || !arena || !fits) {
      slot.state.store(uint32_t(ClientSlotState::free), std::memory_order_release);
      std::string why = !submits ? submits.error().message
                        : !arena ? arena.error().message
                        : !receipts ? receipts.error().message
                                    : "its receipt ring is smaller than in_flight_max";
      return make_error(place, "slot " + std::to_string(index) + " of engine '" + segment_.name() +
                                   "' is corrupt: " + why);
    }
    expected = uint32_t(ClientSlotState::claiming);
    if (!slot.state.compare_exchange_strong(expected, uint32_t(ClientSlotState::attached),
                                            std::memory_order_acq_rel)) {
      continue;
    }
    slot_ = &slot;
    slot_index_ = index;
    in_flight_max_ = slot.in_flight_max;
    submits_ = *submits;
    arena_ = *arena;
    receipts_ = *receipts;
    doorbell_ = reinterpret_cast<shm::Doorbell*>(base + slot.doorbell);
    owner_pid_ = pid;
    client_id_ = std::string(client_id);
    last_beat_ns_ = shm::monotonic_coarse_ns();  // beat_heartbeat's clock
    return {};
  }
  return make_error(place, "all " + std::to_string(table_->slot_count) + " client slots of engine '" +
                               segment_.name() + "' are taken");
}

Client::~Client() {
  if (slot_ == nullptr || getpid() != owner_pid_) return;
  uint32_t expected = uint32_t(ClientSlotState::attached);
  slot_->state.compare_exchange_strong(expected, uint32_t(ClientSlotState::detached), std::memory_order_acq_rel);
}

Result<uint32_t> Client::chain_index(std::string_view chain_name) const {
  std::string known;
  for (uint32_t index = 0; index < table_->chain_count; ++index) {
    std::string_view name = table_->chains[index].name;
    if (name == chain_name) return index;
    known += (index == 0 ? "" : ", ") + std::string(name);
  }
  return make_error("chain '" + std::string(chain_name) + "'", "this engine runs no such chain; its chains: " + known);
}

uint32_t Client::shard_count(uint32_t chain) const {
  assert(chain < table_->chain_count);
  return table_->chains[chain].shard_count;
}

Result<bool> Client::try_submit(uint32_t chain, uint64_t request_id, std::span<const std::byte> tx) {
  if (chain >= table_->chain_count) {
    return make_error("chain index " + std::to_string(chain),
                      "out of range: this engine runs " + std::to_string(table_->chain_count) + " chains");
  }
  if (tx.size() > ledger::tx_bytes_max) {
    return make_error("transaction", "is " + std::to_string(tx.size()) + " bytes; at most " +
                                         std::to_string(ledger::tx_bytes_max));
  }
  beat_heartbeat();
  if (in_flight() >= in_flight_max_) return false;
  std::span<std::byte> claimed = submits_.claim(1);
  if (claimed.empty()) return false;
  // Fill the slot in place; a slot claimed but not published is simply claimed again.
  auto* message = reinterpret_cast<SubmitMessage*>(claimed.data());
  message->request_id = request_id;
  message->chain = chain;
  message->tx_bytes = uint32_t(tx.size());
  message->arena_position = 0;
  if (tx.size() <= submit_inline_bytes_max) {
    if (!tx.empty()) std::memcpy(message->inline_tx, tx.data(), tx.size());
  } else {
    std::optional<shm::ArenaBlock> block = arena_.reserve(tx.size());
    if (!block) return false;
    std::memcpy(block->bytes.data(), tx.data(), tx.size());
    message->arena_position = block->position;
  }
  submits_.publish(1);
  ++submitted_;
  return true;
}

size_t Client::poll_receipts(std::span<ReceiptMessage> out) {
  beat_heartbeat();
  size_t got = receipts_.pop(out);
  received_ += got;
  return got;
}

size_t Client::wait_receipts(std::span<ReceiptMessage> out, uint32_t timeout_ms) {
  size_t got = poll_receipts(out);
  if (got != 0 || out.empty()) return got;
  uint64_t deadline_ns = shm::monotonic_ns() + uint64_t(timeout_ms) * 1'000'000;
  for (;;) {
    // Announce the sleep before looking again, so a receipt pushed in between rings us.
    uint32_t sequence = shm::doorbell_prepare_sleep(doorbell_);
    got = poll_receipts(out);
    uint64_t now_ns = shm::monotonic_ns();
    if (got != 0 || now_ns >= deadline_ns) {
      shm::doorbell_finish_sleep(doorbell_);
      return got;
    }
    // At most a second at a time: the heartbeat keeps beating while we wait.
    uint64_t sleep_us = std::min<uint64_t>((deadline_ns - now_ns + 999) / 1000, 1'000'000);
    shm::doorbell_sleep(doorbell_, sequence, uint32_t(sleep_us));
    shm::doorbell_finish_sleep(doorbell_);
  }
}

bool Client::engine_alive() const {
  const shm::SegmentHeader& header = segment_.header();
  uint64_t start_ticks = shm::process_start_ticks(header.owner_pid);
  if (start_ticks == 0 || start_ticks != header.owner_start_ticks) return false;
  uint64_t beat_ns = header.owner_heartbeat_ns.load(std::memory_order_relaxed), now_ns = shm::monotonic_ns();
  return now_ns <= beat_ns || now_ns - beat_ns <= engine_heartbeat_stale_ns;
}

// By the tick's clock (CLOCK_MONOTONIC_COARSE, up to a tick behind the full one): it is
// read on every submission, where the full clock was 9 % of a load generator's time, and a
// beat every 100 ms against a staleness of seconds needs no better.
void Client::beat_heartbeat() {
  uint64_t now_ns = shm::monotonic_coarse_ns();
  if (now_ns - last_beat_ns_ < client_heartbeat_interval_ns) return;
  slot_->heartbeat_ns.store(now_ns, std::memory_order_relaxed);
  last_beat_ns_ = now_ns;
}

}  // namespace keel::client
