// engine/ledger/snapshot.h: what a shard snapshot holds, and its bytes — the shard's
// state at a durable height (pending compute tasks and their inputs included, so they can
// be dispatched again once their requests' blocks are gone) plus the credits that must
// outlive the log they came from.
//
//   ShardSnapshot snapshot{executor.state(), unconfirmed_credits};
//   std::vector<std::byte> bytes = snapshot.serialize();     // persist writes the file
//   Result<ShardSnapshot> back = ShardSnapshot::deserialize(bytes);
//   executor.restore(std::move(back->state));  // then replay the log past state.height
//
// Why credits: a credit is sent only after its debit's block is durable, and recovery
// re-sends every credit the destination has not applied, finding them by replaying the
// origin's log. Once the log before a snapshot is dropped, the credits of those blocks
// that their destination had not yet applied durably must be carried by the snapshot.
// Carrying too many is harmless (the destination's credit marks discard repeats).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/ledger/shard.h"
#include "engine/ledger/state.h"
#include "error/result.h"

namespace keel::ledger {

struct ShardSnapshot {
  ShardState state;
  std::vector<OutboundCredit> credits;  // emitted at or below state.height; per destination in order

  // "KSP1", version, the state's canonical bytes (length-prefixed), then the credits.
  std::vector<std::byte> serialize() const;
  // Checks everything: the state (ShardState::deserialize), and that each credit is a
  // well-formed credit transaction from this shard, to another shard of the chain, from a
  // block at or below the state's height. The error names the offset and the reason.
  static Result<ShardSnapshot> deserialize(std::span<const std::byte> bytes);
};

}  // namespace keel::ledger
