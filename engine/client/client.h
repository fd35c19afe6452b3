// engine/client/client.h: the library an application links to submit transactions to a
// running keel engine and receive their receipts.
//
//   auto client = Client::attach("keel-default", "payments-app");  // claims a free slot as that client id
//   if (!client) { std::fprintf(stderr, "%s\n", client.error().message.c_str()); return 2; }
//   uint32_t payments = (*client)->chain_index("payments").value();
//   std::vector<std::byte> tx = ledger::encode_transfer(/*nonce=*/1, /*from=*/7, /*to=*/9, /*amount=*/100);
//   while (!(*client)->try_submit(payments, /*request_id=*/42, tx).value()) {
//     ... backpressure: take receipts, then retry ...
//   }
//   ReceiptMessage receipts[64];
//   size_t got = (*client)->wait_receipts(receipts, /*timeout_ms=*/1000);
//
// A receipt with height > 0 means the transaction's block is durable; height 0 means it
// was refused before ordering (malformed, unknown chain, engine stopping) and its status
// says why. Every submitted request gets exactly one receipt while both sides live.
//
// A Client is used from one thread at a time, in the process that attached it (a forked
// child must attach its own). It owns its slot until destroyed; the engine then
// discards whatever it had not yet answered and frees the slot. A client process that
// dies is noticed by the engine (pid and start time) within ~100 ms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "engine/client/protocol.h"
#include "error/result.h"
#include "shm/arena.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"

namespace keel::client {

// An engine whose owner has not beaten its heartbeat for this long is taken for stuck.
inline constexpr uint64_t engine_heartbeat_stale_ns = 5'000'000'000ULL;
// A client beats its slot's heartbeat at most this often (from try_submit and polls).
inline constexpr uint64_t client_heartbeat_interval_ns = 100'000'000ULL;

class Client {
 public:
  // Attaches to the running engine's segment ("keel-<instance>") and claims a free slot
  // under `client_id` (1..32 characters of [a-z0-9_.-], ledger::is_client_id): the id
  // access credits are charged to and credit grants are checked against. It names the
  // client; it does not prove who runs it (protocol.h). Several clients may share an id
  // (they then share its credit). Errors: a bad client id, no such engine, an engine that
  // is not alive (its pid is gone or its heartbeat is older than 5 s), an engine without a
  // client table, all slots taken. A segment its engine is still laying out (recovery at
  // start-up) is waited for, up to 20 s.
  static Result<std::unique_ptr<Client>> attach(std::string_view segment_name, std::string_view client_id);
  // Detaches: the slot becomes detached and the gateway reclaims it (receipts still owed
  // are dropped). Does nothing in a forked child that inherited the object.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The index of a chain by name, for try_submit. The error names the chain and lists
  // the chains the engine runs.
  Result<uint32_t> chain_index(std::string_view chain_name) const;
  // Shards of a chain (chain < the engine's chain count).
  uint32_t shard_count(uint32_t chain) const;

  // Queues one transaction. Returns false (nothing queued) when the submit ring or arena
  // is full or in_flight() == in_flight_max(): backpressure, so take receipts and retry.
  // Errors: a transaction longer than ledger::tx_bytes_max, a chain index out of range.
  // Malformed transactions are not errors here: their receipt says what is wrong.
  Result<bool> try_submit(uint32_t chain, uint64_t request_id, std::span<const std::byte> tx);

  // Copies out up to out.size() receipts without blocking; returns how many.
  size_t poll_receipts(std::span<ReceiptMessage> out);
  // Like poll_receipts, but sleeps on the slot's doorbell up to timeout_ms while there
  // are none. Returns 0 on timeout.
  size_t wait_receipts(std::span<ReceiptMessage> out, uint32_t timeout_ms);

  // Submitted and not yet received back as a receipt.
  uint32_t in_flight() const { return uint32_t(submitted_ - received_); }
  uint32_t in_flight_max() const { return in_flight_max_; }
  // True while the segment's owner runs (pid and start time match) and its heartbeat is
  // fresher than 5 s.
  bool engine_alive() const;
  // This client's slot index in the engine's client table.
  uint32_t slot() const { return slot_index_; }
  const std::string& client_id() const { return client_id_; }

 private:
  explicit Client(shm::Segment segment) : segment_(std::move(segment)) {}
  Result<void> claim_slot(std::string_view client_id);
  void beat_heartbeat();

  shm::Segment segment_;
  const ClientTable* table_ = nullptr;
  ClientSlot* slot_ = nullptr;
  uint32_t slot_index_ = 0;
  uint32_t in_flight_max_ = 0;
  shm::RingProducer submits_;
  shm::ArenaWriter arena_;
  shm::RingConsumer receipts_;
  shm::Doorbell* doorbell_ = nullptr;
  uint64_t submitted_ = 0;
  uint64_t received_ = 0;
  uint64_t last_beat_ns_ = 0;
  int owner_pid_ = 0;
  std::string client_id_;
};

}  // namespace keel::client
