// tests/engine/node/compute_engine.h: a real `keel run` child with one chain and a pool,
// for the engine-level compute tests (compute_crash_test.cc, compute_saturation_test.cc):
// its config, a view of its segment, the sleep plugin's inputs and the ledger's requests
// and results read back from the log.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/client/client.h"
#include "engine/ledger/block.h"
#include "engine/ledger/state.h"
#include "engine/ledger/transaction.h"
#include "engine/node/recovery.h"
#include "engine/node/shard_table.h"
#include "engine/persist/recovery.h"
#include "engine/sched/pool_table.h"
#include "shm/segment.h"
#include "tests/engine/node/engine_process.h"

namespace keel::node::testing {

namespace fs = std::filesystem;

inline constexpr uint32_t shards = 2;

// Keys added to the config's sections, one "key = value\n" per line.
struct ExtraKeys {
  std::string ledger;
  std::string scheduler;
  // 0: no snapshots, so every segment stays and a test can read each request and result
  // (a test's log fits one segment, which is never dropped, so snapshots may be on too).
  uint32_t snapshot_every_blocks = 0;
};

// A config of one chain `work` of `shards` shards, no load generator, no pipeline, the
// given [[pool]] text, fast pool restarts, and `extra`'s keys.
inline std::string config_text(const std::string& instance, const fs::path& data_dir, const std::string& pool,
                               const ExtraKeys& extra = {}) {
  return "[engine]\ninstance = \"" + instance + "\"\nidle = \"sleep\"\n"
         "[[chain]]\nname = \"work\"\nshards = " + std::to_string(shards) + "\nblock_txs_max = 256\nblock_us_max = 500\n"
         "[ledger]\ndata_dir = \"" + data_dir.string() + "\"\nsnapshot_every_blocks = " +
         std::to_string(extra.snapshot_every_blocks) + "\n" + extra.ledger +
         "[load]\nenabled = false\n[pipeline]\nenabled = false\n" + pool +
         // Twenty kills must never look like a crashing plugin, and restarts come fast.
         "[scheduler]\nrestart_backoff_ms = 5\nrestart_backoff_ms_max = 50\ncrashes_max = 1000\n"
         "crash_window_ms = 1000\n" + extra.scheduler;
}

// What the engine's segment tells: the pool's incarnation and the shards' durable heights.
struct EngineView {
  shm::Segment segment;
  sched::PoolTableView pools;
  ShardTableView shard_table;

  static std::optional<EngineView> attach(const std::string& name) {
    Result<shm::Segment> segment = shm::Segment::attach(name);
    if (!segment) return std::nullopt;
    Result<sched::PoolTableView> pools = sched::PoolTableView::find(*segment);
    Result<shm::SegmentObject> object = segment->find(shard_table_object_name, shm::SegmentObjectKind::counters);
    if (!pools || !object) return std::nullopt;
    Result<ShardTableView> table = ShardTableView::join(segment->base(), object->offset);
    if (!table) return std::nullopt;
    return EngineView{std::move(*segment), *pools, *table};
  }
  uint64_t durable_total() const {
    uint64_t total = 0;
    for (uint32_t shard = 0; shard < shard_table.shard_count(); ++shard)
      total += shard_table.control(shard).durable_height.load();
    return total;
  }
  bool pool_ready() const {
    const sched::PoolControl& control = pools.control(0);
    uint64_t epoch = control.epoch.load();
    return epoch != 0 && control.ready_epoch.load() == epoch && control.dead_epoch.load() < epoch;
  }
};

template <class Predicate>
inline bool wait_until(Predicate predicate, int limit_ms = 30'000) {
  for (int waited = 0; waited < limit_ms; waited += 1) {
    if (predicate()) return true;
    usleep(1000);
  }
  return predicate();
}

// The sleep plugin's input: u32 milliseconds, then a tag naming the task.
inline std::vector<std::byte> sleep_input(uint32_t sleep_ms, uint64_t tag) {
  std::string text = "task-" + std::to_string(tag);
  std::vector<std::byte> input(4 + text.size());
  for (int byte = 0; byte < 4; ++byte) input[byte] = std::byte(sleep_ms >> (8 * byte));
  std::memcpy(input.data() + 4, text.data(), text.size());
  return input;
}

struct LoggedRequest {
  uint32_t shard = 0;
  uint64_t task_mark = 0;
  std::string input;
};

struct LedgerTasks {
  // By hash: every compute_request in the logs (applied or refused as backlog full: the
  // log does not say which; the receipts do).
  std::map<std::string, LoggedRequest> requests;
  std::set<std::pair<uint32_t, uint64_t>> request_marks;
  // By (shard, task mark): every result logged for it.
  std::map<std::pair<uint32_t, uint64_t>, std::vector<std::pair<uint16_t, std::string>>> results;
};

inline LedgerTasks read_ledger_tasks(const fs::path& data_dir) {
  LedgerTasks tasks;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    Result<persist::RecoveredLog> log = persist::scan_log(
        shard_directory(data_dir.string(), "work", shard), {"work", shard, shards},
        [&](const persist::LogRecordView& record) -> Result<void> {
          Result<ledger::BlockView> block = ledger::parse_block(record.payload);
          if (!block) return block.error();
          uint32_t index = 0;
          ledger::for_each_transaction(block->body, [&](std::span<const std::byte> tx) {
            ledger::TxView view;
            if (ledger::check_transaction(tx, ledger::TxOrigin::engine, &view) == ledger::TxStatus::applied) {
              if (view.type == ledger::TxType::compute_request) {
                uint64_t mark = ledger::CreditMark::pack(block->header.height, index);
                ledger::Hash32 hash = ledger::hash_leaf(tx);
                tasks.requests[std::string(reinterpret_cast<const char*>(hash.bytes.data()), 32)] = {
                    shard, mark, std::string(reinterpret_cast<const char*>(view.input.data()), view.input.size())};
                tasks.request_marks.insert({shard, mark});
              } else if (view.type == ledger::TxType::compute_result) {
                tasks.results[{shard, view.compute_result.task_mark}].push_back(
                    {view.compute_result.outcome,
                     std::string(reinterpret_cast<const char*>(view.output.data()), view.output.size())});
              } else if (view.type == ledger::TxType::compute_results) {
                ledger::ComputeResultEntries entries(view.results);
                for (ledger::ComputeResultEntry entry; entries.next(entry);) {
                  tasks.results[{shard, entry.body.task_mark}].push_back(
                      {entry.body.outcome,
                       std::string(reinterpret_cast<const char*>(entry.output.data()), entry.output.size())});
                }
              }
            }
            ++index;
          });
          return {};
        });
    EXPECT_TRUE(log) << log.error().message;
  }
  return tasks;
}

// A `keel run` child for 10 minutes with `pool`, its files in a fresh folder, a client
// attached and the pool ready.
struct RunningEngine {
  fs::path directory;
  std::string instance;
  fs::path config, log;
  pid_t engine = -1;
  std::unique_ptr<client::Client> client;
  std::optional<EngineView> view;
  uint32_t chain = 0;
};

inline void start_running_engine(const std::string& name, const std::string& pool, RunningEngine& running,
                                 const ExtraKeys& extra = {}) {
  running.directory = fs::temp_directory_path() / ("keel-" + name + "-" + std::to_string(getpid()));
  fs::create_directories(running.directory);
  running.instance = name + "-" + std::to_string(getpid());
  running.config = running.directory / "compute.toml";
  std::ofstream(running.config) << config_text(running.instance, running.directory / "data", pool, extra);
  running.log = running.directory / "engine.log";
  running.engine = start_engine(running.config, running.log, "10m");
  running.client = attach_when_up("keel-" + running.instance, running.engine);
  ASSERT_NE(running.client, nullptr) << "the engine did not come up; see " << running.log;
  ASSERT_TRUE(wait_until([&] { return (running.view = EngineView::attach("keel-" + running.instance)).has_value(); }));
  ASSERT_TRUE(wait_until([&] { return running.view->pool_ready(); }))
      << "the pool never became ready; see " << running.log;
  running.chain = *running.client->chain_index("work");
}

// Runs `keel run` on the config until no task is pending (each run re-dispatches what
// the last left pending); returns the last run's pending count.
inline uint64_t finish_pending(const fs::path& config, const fs::path& directory, const fs::path& log) {
  uint64_t pending = ~uint64_t(0);
  fs::path report = directory / "finisher.json";
  for (int run = 0; run < 10 && pending != 0; ++run) {
    std::string command = std::string(KEEL_BINARY) + " run --json --duration 2s --config " + config.string() +
                          " > " + report.string() + " 2>> " + log.string();
    if (std::system(command.c_str()) != 0) return pending;
    std::ifstream in(report);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t at = text.find("\"ledger_tasks_pending\":");
    if (at == std::string::npos) return pending;
    pending = std::stoull(text.substr(at + 23));
  }
  return pending;
}

}  // namespace keel::node::testing
