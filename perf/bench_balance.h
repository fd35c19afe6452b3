// perf/bench_balance.h: `keel bench balance`: committed tx/s and commit latency of several
// chains under a skewed load that shifts mid-run, on the real engine (`keel run`'s code,
// its load generators, fsync always). The same load runs in four ways, interleaved in
// every round:
//
//   balancer        the engine as it is ([balancer] enabled = true): heavy chains get
//                   cores of their own where a core runs nothing but shard tiles and
//                   another shard core stays shared (on 2 cores the shards have one core:
//                   they get weight), the others share cores by weights sized to demand.
//   static split    the baseline of the target: every client chain gets an equal, fixed
//                   share of the engine's cores, enforced as a hard cap (a cgroup-style
//                   cpu.max per chain: engine/node/chain_cpu_cap.h). The plan's placement
//                   and equal weights stand ([balancer] enabled = false). A cap is needed
//                   because the core loop is work-conserving: without one, a busy chain
//                   takes the quanta an idle chain leaves, and the split is neither equal
//                   nor fixed. The cap is the engine cores the plan uses / the client
//                   chains: 2 / 4 = 0.5 core per chain here (the shards' own cores would
//                   be 1: the plan keeps the services on the other).
//   equal weights   for reference: the same placement and equal weights without a cap
//                   (balancer off): what the DRR loop gives by itself.
//   OS threads      the other baseline: every tile on a thread of its own, unpinned, left
//                   to Linux's scheduler. A synthetic topology of one NUMA node with as many
//                   cores as the plan has tiles gives each tile its own engine thread, and
//                   a synthetic plan is never bound (engine_plan.h, numa/placement.h);
//                   balancer off, since its "cores" would be threads.
// and, in each round, the light chains alone (the surges off: every chain at the light
// rate; the engine as it is) for their unloaded commit latency.
//
// The load (two load generator processes, `[load]` paced per chain, accounts opened first
// at each chain's rate). There are four client chains: payments (2 shards), settlement,
// cards and treasury (1 shard each), each offered 2,000 tx/s (light). Cards is offered
// 10,000,000 tx/s for the first half of the run, and payments is offered that much for
// the second half. That is far more than a chain can commit, so the generators send as
// fast as backpressure allows and each mode shows its own ceiling. At 1,000,000 tx/s a
// quiet machine commits all of it in every mode. Settlement and
// treasury stay light throughout: they are the light chains of the latency target.
// Transfers only (10% cross-shard), no compute and no flows, no snapshots.
//
// Measuring. A companion thread of the run (LedgerRunOptions::companions) reads the
// segment every 2 ms. It snapshots the chains' committed transactions and commit latency
// buckets (shard_table.h) when the warm-up ends (the first seventh of the run), at the
// shift (half way) and at the end, and it notes every change of a chain's tier or
// dedicated cores that the balancer publishes in the status table, with the balancer's
// window number. Figures over the measured part (warm-up excluded): committed tx/s per
// chain and in all, and each chain's commit p99 (first transaction of a block ordered ->
// block durable, to within the buckets' 12%). For the balancer run: windows to settle
// after the shift, counted from the last window decided before it: until the surging chain
// is heavy, until the calmed chain leaves heavy, until the surging chain has a core of
// its own (on a host where the shards have one core, or every shard core also runs other
// tiles, as on 2 cores, it never does: the event is missed and counted as the windows to
// the end + 1), and until every
// chain holds its final tier. The calmed chain steps down by its own window rate, to the
// tier that rate points at (light), not waiting for the average of its surge. Also the most tier changes
// of one chain in any 10 consecutive windows of steady load: after the warm-up until the
// shift, and from downgrade_interval_ms + 4 windows after the shift to the end. The same
// count over the whole measured part, the shift included, is given for reference. The
// shift is timed from when the engine starts its generators, which start their clocks a
// few milliseconds later: that delay counts against the balancer. It falls half way through
// a balancer window (the one that holds the run's half-way point), not on a window's edge,
// where that skew, and the watcher's 2 ms, would decide which window it is counted in.
//
// Targets (issue 6): aggregate committed tx/s at least 1.5x the static split's; each light
// chain's commit p99 at most 2x its unloaded p99; tiers settle within 3 windows after a
// shift (the surging chain heavy and the calmed chain out of heavy); under steady load no
// chain changes tier more than once in 10 windows. Ratios are medians of round-by-round
// ratios; windows are the worst round's.
//
// The persist tile's times, over each whole run (LedgerReport, from PersistStats): from one
// of its polls to the next while a group commit is in flight (p99 and max: how long a
// completion may wait to be seen behind the other tiles of its core), a group commit from
// submission to seen durable (p99), and a block from sealed to durable (p99).
//
// Estimate. A transfer costs its shard about 0.3-0.5 us: check, execute, leaf hash, and
// its share of the block's Merkle tree, record and receipts (the balancer measures 250-500
// ns a transaction here). The gateway, the persist tile and the generator that sent it
// cost about as much again. Two cores then commit about 2 M tx/s in all, most of it on
// the surging chain. An equal cap of 0.5 core holds a chain to about 1 M tx/s, so the
// static split should lose about a quarter of what the work-conserving modes commit, not
// a third. A 1.5x ratio would need the cap to hold the surging chain to two thirds of its
// uncapped rate, less the light chains. A chain is also bounded by its receipts in flight.
// The generators hold at most 2 x 4,096 submissions without a receipt ([ledger]
// client_in_flight_max), and a receipt waits for its block's fdatasync. So a chain commits
// at most about 8,192 / commit latency: 1.6 M tx/s at 5 ms, 400,000 tx/s at 20 ms when
// another program loads the disk.
#pragma once

#include <cstdint>
#include <string>

namespace keel::perf {

struct BalanceBenchOptions {
  bool json = false;
  uint32_t repetitions = 3;
  double seconds = 14.0;  // each loaded run; the unloaded run lasts half as long
  std::string directory;  // empty: a fresh folder under ./data/bench-balance
};

int run_balance_bench(const BalanceBenchOptions& options);

}  // namespace keel::perf
