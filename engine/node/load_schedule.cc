#include "engine/node/load_schedule.h"

#include <algorithm>
#include <cassert>

namespace keel::node {

LoadSchedule::LoadSchedule(const config::LoadSection& load, const std::vector<std::string>& chains)
    : base_rate_per_second_(load.chain_rate_per_second), windows_(chains.size()) {
  for (const config::LoadShape& shape : load.shapes) {
    auto found = std::find(chains.begin(), chains.end(), shape.chain);
    if (found == chains.end()) continue;
    windows_[size_t(found - chains.begin())].push_back({shape.from_ms, shape.to_ms, shape.rate_per_second});
  }
  for (std::vector<Window>& windows : windows_)
    std::sort(windows.begin(), windows.end(), [](const Window& a, const Window& b) { return a.from_ms < b.from_ms; });
}

uint64_t LoadSchedule::rate_per_second(uint32_t chain, uint64_t elapsed_ms) const {
  assert(chain < windows_.size());
  for (const Window& window : windows_[chain])
    if (elapsed_ms >= window.from_ms && elapsed_ms < window.to_ms) return window.rate_per_second;
  return base_rate_per_second_;
}

uint64_t LoadSchedule::due_total(uint32_t chain, uint64_t elapsed_ns) const {
  assert(chain < windows_.size());
  // Sum of rate x nanoseconds over the pieces of [0, elapsed_ns), divided once at the end so
  // no piece's rounding is lost. 10^9 tx/s for a day is about 8.6 x 10^22: 128 bits hold it.
  unsigned __int128 sum = 0;
  uint64_t covered_ns = 0;  // the part of [0, elapsed_ns) inside windows
  for (const Window& window : windows_[chain]) {
    unsigned __int128 from_ns = (unsigned __int128)window.from_ms * 1'000'000u;
    unsigned __int128 to_ns = (unsigned __int128)window.to_ms * 1'000'000u;  // open end: past any elapsed_ns
    if (from_ns >= elapsed_ns) break;
    uint64_t inside_ns = uint64_t(std::min<unsigned __int128>(to_ns, elapsed_ns) - from_ns);
    sum += (unsigned __int128)window.rate_per_second * inside_ns;
    covered_ns += inside_ns;
  }
  sum += (unsigned __int128)base_rate_per_second_ * (elapsed_ns - covered_ns);
  return uint64_t(sum / 1'000'000'000u);
}

uint64_t LoadSchedule::due_for_client(uint32_t chain, uint64_t elapsed_ns, uint32_t client, uint32_t clients) const {
  assert(clients > 0 && client < clients);
  return (due_total(chain, elapsed_ns) + client) / clients;
}

}  // namespace keel::node
