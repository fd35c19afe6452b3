// engine/node/request_table.h: what a client remembers of each submission until its
// receipt comes, by request id (the load generator's table: when it was sent, to which
// chain, of which kind).
//
//   RequestTable<Sent> in_flight(client->in_flight_max());
//   in_flight.insert(request_id, {chain, kind, now_ns});        // ids 1, 2, 3, ... in order
//   if (std::optional<Sent> sent = in_flight.take(receipt.request_id)) record(*sent);
//
// Ids are handed out in ascending order and the client holds at most in_flight_max without
// a receipt, so nearly always the ids in flight fit a ring of 4 x in_flight_max slots
// indexed by the id's low bits: no hashing and no allocation per submission (a hash map's
// node was about a tenth of the load generator's time at a million submissions a
// second). An id whose slot is still taken, behind a receipt that lags some 3 x
// in_flight_max later ones (a stalled shard), waits in an overflow map instead: correct
// whatever the order of receipts, and only slower.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

namespace keel::node {

template <typename Value>
class RequestTable {
 public:
  explicit RequestTable(uint32_t in_flight_max) {
    size_t slots = 64;
    while (slots < size_t(in_flight_max) * 4) slots *= 2;
    slots_.resize(slots);
  }

  // Remembers `value` under request_id (not 0, and not in the table already).
  void insert(uint64_t request_id, const Value& value) {
    Slot& slot = slots_[request_id & (slots_.size() - 1)];
    if (slot.request_id == 0) {
      slot.request_id = request_id;
      slot.value = value;
    } else {
      overflow_.emplace(request_id, value);
    }
    ++count_;
  }

  // The value under request_id, removed; nullopt when none is (a receipt for a request this
  // table never saw, or saw the receipt of already).
  std::optional<Value> take(uint64_t request_id) {
    Slot& slot = slots_[request_id & (slots_.size() - 1)];
    if (request_id != 0 && slot.request_id == request_id) {
      slot.request_id = 0;
      --count_;
      return slot.value;
    }
    auto found = overflow_.find(request_id);
    if (found == overflow_.end()) return std::nullopt;
    Value value = found->second;
    overflow_.erase(found);
    --count_;
    return value;
  }

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  size_t overflowed() const { return overflow_.size(); }  // of size(), those in the overflow map

 private:
  struct Slot {
    uint64_t request_id = 0;  // 0: free (request ids start at 1)
    Value value{};
  };
  std::vector<Slot> slots_;
  std::unordered_map<uint64_t, Value> overflow_;
  size_t count_ = 0;
};

}  // namespace keel::node
