// The crash test of the ledger: a real `keel run` child under load from a client in this
// process is killed with SIGKILL at random moments, restarted, and killed again, 20
// times (the seed is printed). Afterwards every transaction whose durable receipt the
// client received must be in the recovered ledger, and replaying the logs must give
// every chain's total back (no credit lost or applied twice across the crashes), starting
// from the shards' newest snapshots as the engine does.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>

#include "engine/client/client.h"
#include "engine/ledger/block.h"
#include "engine/ledger/transaction.h"
#include "engine/node/persist_tile.h"
#include "engine/node/recovery.h"
#include "engine/persist/recovery.h"
#include "shm/segment.h"
#include "tests/engine/node/engine_process.h"
#include "tests/engine/node/logged_transactions.h"

namespace keel::node {
namespace {

namespace fs = std::filesystem;
using testing::attach_when_up;
using testing::start_engine;

constexpr uint32_t shards = 2;
constexpr uint64_t accounts = 64;
constexpr int64_t opening_balance = 1'000'000;

// segment_bytes_max 0: the default (64 MiB).
std::string config_text(const std::string& instance, const fs::path& data_dir, uint64_t segment_bytes_max = 0) {
  return "[engine]\ninstance = \"" + instance + "\"\nidle = \"sleep\"\n"
         "[[chain]]\nname = \"bank\"\nshards = " + std::to_string(shards) + "\nblock_txs_max = 256\nblock_us_max = 500\n"
         // Snapshots every few blocks, so kills land before, during and after snapshot
         // writes, recovery starts from snapshots, and the conservation check below
         // depends on the credits they carry. Segments stay whole (64 MiB) so every
         // acknowledged transaction can still be looked up in the log, unless asked.
         // Spares at once and unpaced (as before segment_spare_at_percent and
         // segment_zero_mb_per_s): a life's first file is the preallocated spare whenever
         // that is written before its first commit, which a paced 64 MiB spare (a second)
         // never is in a life of 50-450 ms.
         "[ledger]\ndata_dir = \"" + data_dir.string() +
         "\"\nsnapshot_every_blocks = 8\nsegment_spare_at_percent = 0\nsegment_zero_mb_per_s = 0\n" +
         (segment_bytes_max > 0 ? "segment_bytes_max = " + std::to_string(segment_bytes_max) + "\n" : "") +
         "[load]\nenabled = false\n[pipeline]\nenabled = false\n";
}

struct Acknowledged {
  std::set<std::string> hashes;  // durable receipts with status applied
  uint64_t count = 0;
  std::string last_hash;  // of the newest of them
};

// Submits transfers (and, the first time, account openings) until `run_ms` passes,
// recording every durable applied receipt.
void drive(client::Client& client, std::mt19937_64& random, uint64_t run_ms, uint64_t& nonce, Acknowledged& acked) {
  uint32_t chain = *client.chain_index("bank");
  std::unordered_map<uint64_t, bool> open;
  std::vector<client::ReceiptMessage> receipts(256);
  uint64_t deadline = shm::monotonic_ns() + run_ms * 1'000'000;
  auto collect = [&](uint32_t wait_ms) {
    size_t got = wait_ms ? client.wait_receipts(receipts, wait_ms) : client.poll_receipts(receipts);
    for (size_t index = 0; index < got; ++index) {
      const client::ReceiptMessage& receipt = receipts[index];
      if (receipt.status != uint16_t(ledger::TxStatus::applied)) continue;
      EXPECT_GT(receipt.height, 0u);
      acked.last_hash.assign(reinterpret_cast<const char*>(receipt.tx_hash), 32);
      acked.hashes.insert(acked.last_hash);
      ++acked.count;
    }
  };
  for (uint64_t account = 1; account <= accounts && client.engine_alive(); ++account) {
    std::vector<std::byte> tx = ledger::encode_create_account(++nonce, account, opening_balance);
    while (client.engine_alive() && !*client.try_submit(chain, nonce, tx)) collect(1);
  }
  while (shm::monotonic_ns() < deadline && client.engine_alive()) {
    uint64_t from = 1 + random() % accounts, to = 1 + random() % accounts;
    std::vector<std::byte> tx = ledger::encode_transfer(++nonce, from, to, 1 + random() % 1000);
    Result<bool> queued = client.try_submit(chain, nonce, tx);
    ASSERT_TRUE(queued);
    if (!*queued) collect(1);
    collect(0);
  }
}

// Adds the hash of every transaction in the shards' logs to *in_ledger. Called after each
// kill: the engine drops log segments behind its snapshots, but only segments of earlier
// lives (a life writes to one segment file: its first, after recovery cut a torn tail,
// or the one it found), so scanning after every kill sees each acknowledged transaction.
void collect_logged_transactions(const fs::path& data_dir,
                                 std::map<std::string, testing::LoggedTransaction>& in_ledger) {
  testing::read_logged_transactions(data_dir, "bank", shards, &in_ledger);
}

// A crash test's folder, engine instance and config.
struct CrashSetup {
  fs::path directory;
  std::string instance;
  fs::path config;
  CrashSetup(const std::string& name, uint64_t segment_bytes_max) {
    directory = fs::temp_directory_path() / ("keel-" + name + "-" + std::to_string(getpid()));
    fs::create_directories(directory);
    instance = name + "-" + std::to_string(getpid());
    config = directory / "crash.toml";
    std::ofstream(config) << config_text(instance, directory / "data", segment_bytes_max);
  }
};

// Only account openings make money: each account that exists brought opening_balance.
// Then `keel verify` must agree with the logs and snapshots.
void check_conservation_and_verify(const std::vector<RecoveredShard>& recovered, const fs::path& directory,
                                   uint64_t seed) {
  int64_t total = 0, opened = 0;
  for (const RecoveredShard& shard : recovered) {
    total += shard.executor.state().total_balance();
    opened += int64_t(shard.executor.state().accounts.size()) * opening_balance;
    for (const ledger::OutboundCredit& credit : shard.credits_to_send) total += int64_t(credit.body().amount);
  }
  EXPECT_EQ(total, opened) << "seed " << seed;
  EXPECT_GT(opened, 0);
  std::string command = std::string(KEEL_BINARY) + " verify --data-dir " + (directory / "data").string() + " > " +
                        (directory / "verify.out").string() + " 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << "keel verify failed; see " << (directory / "verify.out") << " (seed "
                                             << seed << ")";
}

TEST(LedgerCrash, NothingAcknowledgedIsLostAcrossTwentySigkills) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  CrashSetup setup("crash", 0);
  const fs::path& directory = setup.directory;
  const std::string& instance = setup.instance;
  const fs::path& config = setup.config;
  Acknowledged acked;
  std::map<std::string, testing::LoggedTransaction> in_ledger;
  uint64_t nonce = 0;
  for (int round = 0; round < 20; ++round) {
    pid_t engine = start_engine(config, directory / "engine.log");
    std::unique_ptr<client::Client> client = attach_when_up("keel-" + instance, engine);
    ASSERT_NE(client, nullptr) << "round " << round << ": the engine did not come up; seed " << seed << "; see "
                               << (directory / "engine.log");
    drive(*client, random, 50 + random() % 400, nonce, acked);
    kill(engine, SIGKILL);
    waitpid(engine, nullptr, 0);
    client.reset();
    collect_logged_transactions(directory / "data", in_ledger);
  }
  shm::Segment::remove("keel-" + instance);
  EXPECT_GT(acked.count, 1000u) << "too little load to mean anything";

  // Recover the way the engine does, and look for every acknowledged transaction.
  std::vector<std::string> notes;
  Result<std::vector<RecoveredShard>> recovered =
      recover_chains({{"bank", shards, ledger::BlockLimits{256, 4u << 20}}}, (directory / "data").string(), &notes);
  ASSERT_TRUE(recovered) << recovered.error().message << " (seed " << seed << ")";
  uint64_t snapshot_height_max = 0;
  for (const RecoveredShard& shard : *recovered) snapshot_height_max = std::max(snapshot_height_max, shard.snapshot_height);
  EXPECT_GT(snapshot_height_max, 0u) << "recovery never started from a snapshot";
  collect_logged_transactions(directory / "data", in_ledger);
  std::printf("%llu durable receipts acknowledged, %zu transactions in the recovered ledger\n",
              (unsigned long long)acked.count, in_ledger.size());
  size_t missing = 0;
  for (const std::string& hash : acked.hashes) missing += in_ledger.count(hash) == 0;
  EXPECT_EQ(missing, 0u) << "acknowledged transactions missing from the ledger (seed " << seed << ")";
  check_conservation_and_verify(*recovered, directory, seed);
  if (!HasFailure()) fs::remove_all(directory);
}

// Dropped segment files kept for reuse in the shards' log directories.
size_t kept_files(const fs::path& data_dir) {
  size_t count = 0;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    fs::path directory = data_dir / "bank" / std::to_string(shard);
    if (!fs::exists(directory)) continue;
    for (const auto& entry : fs::directory_iterator(directory))
      count += entry.path().filename().string().rfind("segment.recycled.", 0) == 0;
  }
  return count;
}

// Small segments (1 MiB) and snapshots every 8 blocks: each life drops segment files
// behind its snapshots and writes new ones over the kept old files, with two commits in
// flight, and is killed at any moment. The logs no longer hold every acknowledged
// transaction (segments go), so this checks that recovery always takes the logs (old
// bytes after a reused file's records are never taken for damage), conservation, the
// newest acknowledged transaction of each life, and `keel verify`.
TEST(LedgerCrash, ReusedSegmentFilesRecoverAcrossTwentySigkills) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  CrashSetup setup("crash-reuse", 1 << 20);
  const fs::path& directory = setup.directory;
  const std::string& instance = setup.instance;
  const fs::path& config = setup.config;
  uint64_t nonce = 0, acknowledged = 0;
  size_t kept_seen = 0;
  for (int round = 0; round < 20; ++round) {
    pid_t engine = start_engine(config, directory / "engine.log");
    std::unique_ptr<client::Client> client = attach_when_up("keel-" + instance, engine);
    ASSERT_NE(client, nullptr) << "round " << round << ": the engine did not come up; seed " << seed << "; see "
                               << (directory / "engine.log");
    Acknowledged acked;
    drive(*client, random, 300 + random() % 500, nonce, acked);
    acknowledged += acked.count;
    kill(engine, SIGKILL);
    waitpid(engine, nullptr, 0);
    client.reset();
    kept_seen += kept_files(directory / "data");
    // What this life acknowledged last is still in the logs: nothing is submitted after
    // it, and its segment file goes only once two later snapshots cover all of it.
    std::map<std::string, testing::LoggedTransaction> in_ledger;
    collect_logged_transactions(directory / "data", in_ledger);
    if (!acked.last_hash.empty()) {
      EXPECT_EQ(in_ledger.count(acked.last_hash), 1u) << "round " << round << " (seed " << seed << ")";
    }
  }
  shm::Segment::remove("keel-" + instance);
  EXPECT_GT(acknowledged, 1000u) << "too little load to mean anything";
  EXPECT_GT(kept_seen, 0u) << "no segment file was ever kept for reuse: the test proves little";

  std::vector<std::string> notes;
  Result<std::vector<RecoveredShard>> recovered =
      recover_chains({{"bank", shards, ledger::BlockLimits{256, 4u << 20}}}, (directory / "data").string(), &notes);
  ASSERT_TRUE(recovered) << recovered.error().message << " (seed " << seed << ")";
  check_conservation_and_verify(*recovered, directory, seed);
  if (!HasFailure()) fs::remove_all(directory);
}

}  // namespace
}  // namespace keel::node
