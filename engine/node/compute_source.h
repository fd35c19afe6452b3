// engine/node/compute_source.h: a tile that takes the gateway's place for `keel bench
// tasks`: it writes compute_request transactions straight into the submit ring of every
// client chain's shard (the gateway's side of client::ShardPorts; never the system
// chain's, which takes no client transactions) and reads their receipts back, so the
// engine's compute path (shard -> scheduler -> pool process -> compute_result ordered
// durably) is measured without the client library and gateway in front of it.
//
//   ComputeSourceOptions options{.compute_type = "noop", .input_bytes = 8};
//   auto source = ComputeSourceTile::create(base, client_table_offset, options).value();
//   core tiles: {source.get(), weight}      // planned as "gateway"
//
// Each request is one pre-encoded transaction with a fresh nonce and subject (its index),
// so every one is distinct. Per shard at most a window of requests wait for their receipt
// (receipts come after the request's block is durable); past that the tile waits
// (backpressure), as a client would. A request the ledger refuses with
// compute_backlog_full (its pending tasks at compute_pending_max) is counted, not resent,
// and halves the window (at most once per round trip: only a refusal of a request sent
// after the last cut cuts again); accepted requests grow it back by 1/8 of their number,
// up to requests_in_flight_max. So the source keeps the shard's task table near full
// without flooding it with requests it must refuse.
//
// Flows instead (`keel bench flows`): with a flow model given, each port first sends that
// model's deploy and a product_set for its product, waits for both receipts, then sends
// flow_starts of the contract, each under a fresh key at home on the port's shard, with
// the same arguments; flows_full cuts the window as compute_backlog_full does.
//
// Draining: no new requests; quiescent once every receipt is back.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/client/protocol.h"
#include "engine/core/tile.h"
#include "error/result.h"
#include "shm/arena.h"
#include "shm/ring.h"

namespace keel::node {

struct ComputeSourceOptions {
  std::string compute_type = "noop";
  uint32_t input_bytes = 8;  // the task's input (zeros); the whole request must fit a submit slot
  uint32_t requests_in_flight_max = 4096;  // per shard: sent, receipt not back (the window's top)
  // Flows: the model's encoding (empty: compute requests), the flows' arguments, and the
  // product's running limit to set on every shard.
  std::vector<std::byte> flow_model;
  std::vector<std::byte> flow_args;
  uint32_t product_running_max = 16384;
  // Requests (or flow starts) per second over all shards; 0: as many as the window allows.
  // A rate below the engine's capacity measures latency without a backlog.
  uint64_t requests_per_second = 0;
};

// What the source did, readable from any thread.
struct ComputeSourceCounters {
  std::atomic<uint64_t> requests_sent{0};
  std::atomic<uint64_t> requests_accepted{0};      // receipt: applied (a pending task)
  std::atomic<uint64_t> requests_backlog_full{0};  // receipt: compute_backlog_full
  std::atomic<uint64_t> requests_refused{0};       // any other receipt status
  std::atomic<uint64_t> setup_refused{0};          // flows: a deploy or product_set not applied
};

class ComputeSourceTile final : public engine::Tile {
 public:
  // Joins every shard port of the client table at `client_table_offset`.
  static Result<std::unique_ptr<ComputeSourceTile>> create(std::byte* segment_base, uint64_t client_table_offset,
                                                           const ComputeSourceOptions& options);

  std::string_view name() const override { return "compute-source"; }
  size_t poll(size_t budget) override;
  void begin_drain() override;
  bool quiescent() override;

  const ComputeSourceCounters& counters() const { return counters_; }
  // Sends nothing until this is called (from any thread): the run starts its clock here.
  void start() { started_.store(true, std::memory_order_release); }

 private:
  struct Port {
    shm::RingProducer submits;
    shm::ArenaWriter submit_arena;  // flows: the deploy, too large for a slot
    shm::RingConsumer receipts;
    uint32_t shard = 0;        // within its chain
    uint32_t shard_count = 0;  // of its chain
    uint32_t in_flight = 0;
    double window = 0;         // requests allowed in flight now
    uint64_t cut_after = 0;    // the window is cut again only for a refusal of a request from here on
    uint32_t setup_pending = 0;  // flows: setup transactions sent, receipt not back
    bool setup_sent = false;
  };

  ComputeSourceTile(std::vector<Port> ports, std::vector<std::byte> request, uint32_t in_flight_max,
                    uint64_t requests_per_second);
  bool send_setup(Port& port);
  size_t take_receipts(Port& port, size_t budget);
  size_t send_requests(Port& port, size_t budget);

  std::vector<Port> ports_;
  std::vector<std::byte> request_;  // the encoded compute_request (or flow_start); nonce and subject (key) change per send
  bool flows_ = false;
  std::vector<std::vector<std::byte>> setup_;  // flows: per shard, the deploy then the product_set
  uint32_t in_flight_max_;
  uint64_t send_interval_ns_ = 0;  // 0: no rate
  uint64_t next_send_ns_ = 0;      // the rate's clock: when the next request is due
  uint64_t next_request_ = 1;
  uint32_t next_port_ = 0;
  bool draining_ = false;
  std::atomic<bool> started_{false};
  ComputeSourceCounters counters_;
};

}  // namespace keel::node
