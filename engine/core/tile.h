// engine/core/tile.h: a tile is a non-blocking state machine that a core polls.
//
//   class Relay final : public Tile {
//     std::string_view name() const override { return "relay"; }
//     size_t poll(size_t budget) override { ... move up to `budget` messages ...; return moved; }
//     void begin_drain() override { draining_ = true; }
//     bool quiescent() override { return input_.finished(); }
//   };
//
// A tile never blocks and never sleeps: when it has nothing to do it returns 0 and the
// core decides (by its idle strategy) whether to spin, yield or sleep on its doorbell.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace keel::engine {

class Tile {
 public:
  virtual ~Tile() = default;
  virtual std::string_view name() const = 0;
  // Does at most `budget` units of work (messages, transactions) without blocking and
  // returns how many it did; 0 means it found nothing to do.
  virtual size_t poll(size_t budget) = 0;
  // The engine is stopping: take no new work from outside; finish what is in flight.
  virtual void begin_drain() {}
  // True when the tile has finished draining: nothing in flight and nothing more will
  // arrive. Only asked after begin_drain().
  virtual bool quiescent() = 0;
  // Non-zero while the tile waits for something no doorbell rings (the kernel finishing a
  // commit): an idle core then sleeps at most this long, in microseconds, and polls again.
  virtual uint32_t wake_within_us() const { return 0; }
};

}  // namespace keel::engine
