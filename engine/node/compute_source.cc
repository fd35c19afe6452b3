#include "engine/node/compute_source.h"

#include <algorithm>
#include <cstring>

#include "engine/client/client_table.h"
#include "engine/client/gateway.h"
#include "engine/config/perf_config.h"
#include "engine/flow/flow_model.h"
#include "engine/ledger/transaction.h"

namespace keel::node {

namespace {

// The window never closes below this: the source keeps probing.
constexpr double window_min = 64;
// Setup transactions' request ids carry this bit, apart from the requests'.
constexpr uint64_t setup_request_bit = uint64_t(1) << 62;
// A flow's key: this many decimal digits, so every flow_start has the same size.
constexpr size_t flow_key_digits = 16;

void write_key(char* out, uint64_t number) {
  for (size_t digit = flow_key_digits; digit-- > 0; number /= 10) out[digit] = char('0' + number % 10);
}

void bump(std::atomic<uint64_t>& counter, uint64_t value) {
  counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
}

}  // namespace

Result<std::unique_ptr<ComputeSourceTile>> ComputeSourceTile::create(std::byte* base, uint64_t client_table_offset,
                                                                     const ComputeSourceOptions& options) {
  Result<const client::ClientTable*> table = client::check_client_table(base, client_table_offset);
  if (!table) return table.error();
  if (options.requests_in_flight_max == 0) return make_error("compute source", "requests_in_flight_max must be at least 1");
  std::vector<std::byte> input(options.input_bytes);
  std::vector<std::byte> request = ledger::encode_compute_request(0, 0, options.compute_type, input);
  std::string contract, product;
  if (!options.flow_model.empty()) {
    Result<flow::FlowModel> model = flow::decode_flow_model(options.flow_model);
    if (!model) return model.error();
    contract = model->name;
    product = model->product;
    request = ledger::encode_flow_start(0, contract, 0, std::string(flow_key_digits, '0'), options.flow_args);
  }
  if (request.size() > client::submit_inline_bytes_max)
    return make_error("compute source", "a compute_request of " + std::to_string(request.size()) +
                                            " bytes does not fit a submit slot (" +
                                            std::to_string(client::submit_inline_bytes_max) + ")");
  ledger::TxView view;
  if (ledger::TxStatus status = ledger::check_transaction(request, ledger::TxOrigin::client, &view);
      status != ledger::TxStatus::applied)
    return make_error("compute source", "the request is malformed: " + std::string(ledger::status_text(status)));
  std::vector<Port> ports;
  for (uint32_t chain = 0; chain < (*table)->chain_count; ++chain) {
    // The system chain takes no client transactions (the gateway refuses them): loading its
    // shard would measure a second shard the config does not give the client chains.
    if (std::string_view((*table)->chains[chain].name) == config::system_chain_name) continue;
    for (uint32_t shard = 0; shard < (*table)->chains[chain].shard_count; ++shard) {
      const client::ShardPorts& where = client::shard_ports(base, **table, chain, shard);
      auto submits = client::join_table_ring<shm::RingProducer>(base, where.submit_ring, client::submit_slot_bytes);
      auto receipts = client::join_table_ring<shm::RingConsumer>(base, where.receipt_ring, client::receipt_slot_bytes);
      Result<shm::ArenaWriter> arena = shm::ArenaWriter::join(base, where.submit_arena);
      if (!submits) return submits.error();
      if (!receipts) return receipts.error();
      if (!arena) return arena.error();
      Port& port = ports.emplace_back();
      port.submits = std::move(*submits);
      port.submit_arena = *arena;
      port.receipts = std::move(*receipts);
      port.shard = shard;
      port.shard_count = (*table)->chains[chain].shard_count;
    }
  }
  auto tile = std::unique_ptr<ComputeSourceTile>(
      new ComputeSourceTile(std::move(ports), std::move(request), options.requests_in_flight_max,
                            options.requests_per_second));
  if (!options.flow_model.empty()) {
    tile->flows_ = true;
    for (const Port& port : tile->ports_) {
      std::vector<std::byte> deploy = ledger::encode_flow_deploy(1, port.shard, options.flow_model);
      std::vector<std::byte> product_set = ledger::encode_product_set(2, port.shard, product, 0, options.product_running_max);
      tile->setup_.push_back(std::move(deploy));
      tile->setup_.push_back(std::move(product_set));
    }
  }
  return tile;
}

ComputeSourceTile::ComputeSourceTile(std::vector<Port> ports, std::vector<std::byte> request, uint32_t in_flight_max,
                                     uint64_t requests_per_second)
    : ports_(std::move(ports)),
      request_(std::move(request)),
      in_flight_max_(in_flight_max),
      send_interval_ns_(requests_per_second ? std::max<uint64_t>(1, 1'000'000'000 / requests_per_second) : 0) {
  for (Port& port : ports_) port.window = double(in_flight_max_);
}

size_t ComputeSourceTile::poll(size_t budget) {
  size_t done = 0;
  for (size_t turn = 0; turn < ports_.size(); ++turn) {
    Port& port = ports_[(next_port_ + turn) % ports_.size()];
    done += take_receipts(port, budget);
    if (draining_ || !started_.load(std::memory_order_acquire)) continue;
    if (flows_ && (!port.setup_sent || port.setup_pending != 0)) {
      done += send_setup(port);
      continue;
    }
    done += send_requests(port, budget);
  }
  if (!ports_.empty()) next_port_ = (next_port_ + 1) % uint32_t(ports_.size());
  return done;
}

size_t ComputeSourceTile::take_receipts(Port& port, size_t budget) {
  std::span<const std::byte> in = port.receipts.peek(budget);
  size_t count = in.size() / sizeof(client::ReceiptMessage);
  uint64_t accepted = 0, backlog_full = 0;
  bool cut = false;
  uint64_t setup_answers = 0;
  for (size_t index = 0; index < count; ++index) {
    client::ReceiptMessage receipt;
    std::memcpy(&receipt, in.data() + index * sizeof receipt, sizeof receipt);
    if (receipt.request_id & setup_request_bit) {
      ++setup_answers;
      --port.setup_pending;
      if (receipt.status != uint16_t(ledger::TxStatus::applied)) bump(counters_.setup_refused, 1);
      continue;
    }
    accepted += receipt.status == uint16_t(ledger::TxStatus::applied);
    if (receipt.status == uint16_t(ledger::TxStatus::compute_backlog_full) ||
        receipt.status == uint16_t(ledger::TxStatus::flows_full)) {
      ++backlog_full;
      cut = cut || receipt.request_id >= port.cut_after;
    }
  }
  port.receipts.release(count);
  port.in_flight -= uint32_t(count);
  if (cut) {
    port.window = std::max(window_min, port.window / 2);
    port.cut_after = next_request_;
  } else {
    port.window = std::min(double(in_flight_max_), port.window + double(accepted) / 8);
  }
  bump(counters_.requests_accepted, accepted);
  bump(counters_.requests_backlog_full, backlog_full);
  bump(counters_.requests_refused, count - setup_answers - accepted - backlog_full);
  return count;
}

// Flows: the deploy and the product_set for this port's shard, once; requests wait for
// both receipts.
bool ComputeSourceTile::send_setup(Port& port) {
  if (port.setup_sent) return false;
  size_t port_index = size_t(&port - ports_.data());
  std::span<std::byte> claimed = port.submits.claim(2);
  if (claimed.size() < 2 * sizeof(client::RoutedSubmit)) return false;
  for (size_t index = 0; index < 2; ++index) {
    const std::vector<std::byte>& tx = setup_[port_index * 2 + index];
    auto* out = reinterpret_cast<client::RoutedSubmit*>(claimed.data()) + index;
    out->arena_position = 0;
    if (tx.size() <= client::submit_inline_bytes_max) {
      std::memcpy(out->inline_tx, tx.data(), tx.size());
    } else {
      std::optional<shm::ArenaBlock> block = port.submit_arena.reserve(tx.size());
      if (!block) return false;  // claimed again next poll (the arena is empty at start)
      std::memcpy(block->bytes.data(), tx.data(), tx.size());
      out->arena_position = block->position;
    }
    out->request_id = setup_request_bit | index;
    out->client_slot = 0;
    out->tx_bytes = uint32_t(tx.size());
    client::hash_routed_leaf(*out);
  }
  port.submits.publish(2);
  port.in_flight += 2;
  port.setup_pending = 2;
  port.setup_sent = true;
  return true;
}

// Writes requests into the ring in place and publishes them at once (one release store,
// one doorbell ring for the batch).
size_t ComputeSourceTile::send_requests(Port& port, size_t budget) {
  if (double(port.in_flight) >= port.window) return 0;
  size_t wanted = std::min<size_t>(budget, size_t(port.window) - port.in_flight);
  uint64_t now_ns = 0;
  if (send_interval_ns_ != 0) {
    now_ns = shm::monotonic_ns();
    // At the start, or after a stall, at most 8 requests' worth of credit: no burst.
    if (next_send_ns_ == 0) next_send_ns_ = now_ns;
    if (now_ns > 8 * send_interval_ns_) next_send_ns_ = std::max(next_send_ns_, now_ns - 8 * send_interval_ns_);
    if (now_ns < next_send_ns_) return 0;
    wanted = std::min<size_t>(wanted, (now_ns - next_send_ns_) / send_interval_ns_ + 1);
  }
  if (wanted == 0) return 0;
  std::span<std::byte> claimed = port.submits.claim(wanted);
  size_t count = claimed.size() / sizeof(client::RoutedSubmit);
  if (count == 0) return 0;
  const size_t nonce_at = offsetof(ledger::TxHeader, nonce);
  const size_t subject_at = sizeof(ledger::TxHeader) + offsetof(ledger::ComputeRequestBody, subject);
  // A flow_start's key follows its header, body and contract name.
  size_t key_at = sizeof(ledger::TxHeader) + sizeof(ledger::FlowStartBody);
  if (flows_) {
    uint16_t contract_bytes = 0;
    std::memcpy(&contract_bytes, request_.data() + sizeof(ledger::TxHeader) + offsetof(ledger::FlowStartBody, contract_bytes),
                sizeof contract_bytes);
    key_at += contract_bytes;
  }
  for (size_t index = 0; index < count; ++index) {
    auto* out = reinterpret_cast<client::RoutedSubmit*>(claimed.data()) + index;
    uint64_t request = next_request_++;
    std::memcpy(out->inline_tx, request_.data(), request_.size());
    std::memcpy(out->inline_tx + nonce_at, &request, sizeof request);
    if (flows_) {
      // A key at home on this port's shard: the ledger refuses a start sent to any other.
      char* key = reinterpret_cast<char*>(out->inline_tx + key_at);
      uint64_t number = request << 8;
      do {
        write_key(key, number++);
      } while (ledger::shard_of_key(std::as_bytes(std::span(key, flow_key_digits)), port.shard_count) != port.shard);
    } else {
      // A subject at home on this port's shard: the ledger refuses a request sent to any other.
      uint64_t subject = request;
      while (ledger::shard_of_account(subject, port.shard_count) != port.shard) ++subject;
      std::memcpy(out->inline_tx + subject_at, &subject, sizeof subject);
    }
    out->request_id = request;
    out->client_slot = 0;
    out->tx_bytes = uint32_t(request_.size());
    out->arena_position = 0;
    client::hash_routed_leaf(*out);
  }
  next_send_ns_ += count * send_interval_ns_;
  port.submits.publish(count);
  port.in_flight += uint32_t(count);
  bump(counters_.requests_sent, count);
  return count;
}

void ComputeSourceTile::begin_drain() {
  draining_ = true;
  for (Port& port : ports_) port.submits.close();
}

bool ComputeSourceTile::quiescent() {
  if (!draining_) return false;
  for (Port& port : ports_) {
    take_receipts(port, in_flight_max_);
    if (port.in_flight != 0) return false;
  }
  return true;
}

}  // namespace keel::node
