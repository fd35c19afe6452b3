// engine/node/drain_state.h: how the ledger's tiles agree that a drain is complete.
//
// A clean stop must not strand anything acknowledged, and tiles on different cores stop
// at different moments, so quiescence is ordered: the gateway stops routing first; a
// shard is quiescent once the gateway has stopped, its input ring is empty and every
// block it sealed is durable and answered; the persist tile once every shard is
// quiescent and nothing is staged or in flight. Credits still travelling between shards
// at the stop are not lost: their debits are durable, and recovery sends them again.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace keel::node {

struct DrainState {
  std::atomic<bool> gateway_stopped{false};   // the gateway will route nothing more
  // The balancer will push no more records into the system shard's engine ring (true
  // when no balancer runs): that shard waits for it too, so no record is stranded.
  std::atomic<bool> engine_txs_stopped{true};
  std::atomic<uint32_t> shards_quiescent{0};  // shards that have latched quiescent
  uint32_t shard_count = 0;
  // Set once by a tile that hit an error it must not continue past (a failed fdatasync);
  // the run loop stops the engine at once and prints fatal_message.
  std::atomic<bool> fatal{false};
  std::string fatal_message;  // written before fatal is set (release), read after
};

}  // namespace keel::node
