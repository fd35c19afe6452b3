// engine/node/load_schedule.h: how much load each client chain is offered, and when — the
// rate schedule of [load] chain_rate_per_second and [[load.shape]] (perf/README.md).
//
//   LoadSchedule schedule(config.load, {"payments", "settlement", "cards", "treasury"});
//   uint64_t rate = schedule.rate_per_second(2, 7'000);          // cards at 7 s: its surge
//   uint64_t due = schedule.due_for_client(2, now_ns - start_ns, client_index, config.load.clients);
//   while (sent < due) submit_to_cards(), ++sent;
//
// A chain's rate is piecewise constant: its shape's rate inside each of its shapes' windows,
// chain_rate_per_second elsewhere. The number of submissions due by a time is that rate
// integrated from the run's start (exact, in 128 bits), so a generator that paces itself
// by it sends the right count whatever its loop's jitter, and the clients' parts of a
// chain's count add up to exactly that count. Pure: no clock, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/config/perf_config.h"

namespace keel::node {

class LoadSchedule {
 public:
  // chains: the client chains the generator loads, in its order (names as in the config;
  // a shape of a chain not listed is ignored).
  LoadSchedule(const config::LoadSection& load, const std::vector<std::string>& chains);

  // The chain's offered rate (all clients together) at elapsed_ms after the run started.
  uint64_t rate_per_second(uint32_t chain, uint64_t elapsed_ms) const;

  // Submissions due to the chain (all clients together) from the start to elapsed_ns:
  // floor of the rate integrated over [0, elapsed_ns).
  uint64_t due_total(uint32_t chain, uint64_t elapsed_ns) const;

  // Client `client`'s part of due_total among `clients` (1 or more): floor((total + client)
  // / clients), so the parts differ by at most one and add up to the total.
  uint64_t due_for_client(uint32_t chain, uint64_t elapsed_ns, uint32_t client, uint32_t clients) const;

  uint32_t chain_count() const { return uint32_t(windows_.size()); }

 private:
  struct Window {
    uint64_t from_ms, to_ms, rate_per_second;
  };
  uint64_t base_rate_per_second_;
  std::vector<std::vector<Window>> windows_;  // per chain, sorted by from_ms, disjoint
};

}  // namespace keel::node
