// Tests of the ledger through the real `keel` binary: `run` (the ledger job with its load
// generators), recovery at the next start, `verify`, `submit`, and damaged data.
#include "tests/engine/cli/keel_process.h"

namespace keel::cli {
namespace {

// The one log file of a shard (these runs are far below the segment size).
fs::path first_log(const fs::path& data_dir, const std::string& chain, int shard) {
  fs::path directory = data_dir / chain / std::to_string(shard);
  for (const fs::directory_entry& entry : fs::directory_iterator(directory))
    if (entry.path().extension() == ".klog") return entry.path();
  ADD_FAILURE() << "no log in " << directory;
  return {};
}

class LedgerCli : public KeelCli {
 protected:
  fs::path data_dir(const std::string& name) { return directory_ / ("data-" + name); }

  // Runs the ledger with its load generators for `duration` and returns the JSON report.
  nlohmann::json run_ledger(const fs::path& config, const std::string& duration) {
    Outcome outcome = keel({"run", "--config", config, "--duration", duration, "--json"}, 60s);
    EXPECT_EQ(outcome.exit_code, 0) << outcome.err;
    return parse_report(outcome);
  }
};

TEST_F(LedgerCli, RunCommitsOnEveryChainRecoversAndVerifies) {
  std::string name = instance("ledger");
  fs::path config = default_config_copy(name);
  nlohmann::json first = run_ledger(config, "1500ms");
  ASSERT_EQ(first["chains"].size(), 2u) << first.dump();
  for (const nlohmann::json& chain : first["chains"]) {
    EXPECT_GT(chain.value("committed_txs", 0ull), 1000u) << chain.dump();
    EXPECT_GT(chain.value("client_receipts", 0ull), 0u) << chain.dump();
  }
  EXPECT_EQ(first.value("fsync", ""), "always");
  EXPECT_FALSE(segment_exists(name));
  nlohmann::json second = run_ledger(config, "500ms");
  EXPECT_GT(second.value("blocks_recovered", 0ull), 0u) << second.dump();
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string(), "--json"});
  ASSERT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  nlohmann::json report = parse_report(verified);
  EXPECT_TRUE(report.value("ok", false));
  uint64_t committed = 0, in_blocks = 0;
  for (const auto& run : {first, second})
    for (const nlohmann::json& chain : run["chains"]) committed += chain.value("committed_txs", 0ull);
  for (const nlohmann::json& chain : report["chains"])
    for (const nlohmann::json& shard : chain["shards"]) in_blocks += shard.value("transactions", 0ull);
  EXPECT_EQ(in_blocks, committed) << "verify found a different number of transactions than the runs committed";
}

TEST_F(LedgerCli, SubmitWaitsForTheDurableReceipt) {
  std::string name = instance("submit");
  fs::path config = default_config_copy(name, {{"[load]\nenabled = true", "[load]\nenabled = false"}});
  Clock::time_point started = Clock::now();
  KeelProcess engine(directory_, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  auto submit = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {"submit", "--instance", name, "--chain", "payments"});
    return keel(arguments);
  };
  Outcome opened = submit({"create-account", "--account", "7", "--balance", "100"});
  EXPECT_EQ(opened.exit_code, 0) << opened.out << opened.err;
  EXPECT_NE(opened.out.find(": applied (block "), std::string::npos) << opened.out;
  Outcome again = submit({"create-account", "--account", "7"});
  EXPECT_EQ(again.exit_code, 3) << again.out;
  EXPECT_NE(again.out.find("account already exists"), std::string::npos) << again.out;
  Outcome too_much = submit({"--json", "transfer", "--from", "7", "--to", "8", "--amount", "1000"});
  EXPECT_EQ(too_much.exit_code, 3) << too_much.out << too_much.err;
  EXPECT_NE(too_much.out.find("\"status\":\"insufficient funds\""), std::string::npos) << too_much.out;
  Outcome put = submit({"put", "--key", "colour", "--value", "blue"});
  EXPECT_EQ(put.exit_code, 0) << put.out << put.err;
  Outcome unknown = keel({"submit", "--instance", name, "--chain", "nope", "put", "--key", "k"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("nope"), std::string::npos) << unknown.err;
  ASSERT_EQ(kill(engine.pid(), SIGINT), 0);
  Outcome stopped = engine.wait(20s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  Outcome absent = keel({"submit", "--instance", name, "--chain", "payments", "put", "--key", "k"});
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_EQ(absent.err.rfind("keel: ", 0), 0u) << absent.err;
}

TEST_F(LedgerCli, TornTailIsCutAndTheEngineStarts) {
  std::string name = instance("torn");
  fs::path config = default_config_copy(name);
  run_ledger(config, "500ms");
  fs::path log = first_log(data_dir(name), "settlement", 0);
  uintmax_t clean_size = fs::file_size(log);
  {
    // Half a record: a header that promises more bytes than follow.
    std::ofstream file(log, std::ios::binary | std::ios::app);
    const char torn[] = "KLR1\x00\x10\x00\x00garbage";
    file.write(torn, sizeof torn - 1);
  }
  Outcome outcome = keel({"run", "--config", config, "--duration", "300ms"}, 60s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.out << outcome.err;
  EXPECT_NE(outcome.out.find("note: " + log.string() + ": torn tail cut at offset " + std::to_string(clean_size)),
            std::string::npos)
      << outcome.out;
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out;
}

TEST_F(LedgerCli, AFlippedBitBeforeTheTailStopsTheEngine) {
  std::string name = instance("flipped");
  fs::path config = default_config_copy(name);
  run_ledger(config, "800ms");
  fs::path log = first_log(data_dir(name), "settlement", 0);
  {
    std::fstream file(log, std::ios::binary | std::ios::in | std::ios::out);
    file.seekg(std::streamoff(fs::file_size(log) / 3));
    char byte = 0;
    file.read(&byte, 1);
    byte ^= 0x10;
    file.seekp(std::streamoff(fs::file_size(log) / 3));
    file.write(&byte, 1);
  }
  Outcome outcome = keel({"run", "--config", config, "--duration", "300ms"}, 60s);
  EXPECT_EQ(outcome.exit_code, 2) << outcome.out;
  std::vector<std::string> lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_EQ(lines[0].rfind("keel: chain settlement shard 0 height ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(log.string()), std::string::npos) << lines[0];
  EXPECT_FALSE(segment_exists(name));
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 1) << verified.out;
  EXPECT_NE(verified.out.find("settlement       FAILED"), std::string::npos) << verified.out;
}

TEST_F(LedgerCli, DataFromAnotherChainLayoutIsRefused) {
  std::string name = instance("layout");
  fs::path config = default_config_copy(name);
  run_ledger(config, "300ms");
  fs::path fewer = default_config_copy(name, {{"name = \"payments\"\nshards = 2", "name = \"payments\"\nshards = 1"}});
  Outcome outcome = keel({"run", "--config", fewer, "--duration", "300ms"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_NE(outcome.err.find("chain layout differs"), std::string::npos) << outcome.err;
  fs::path more = default_config_copy(name, {{"name = \"payments\"\nshards = 2", "name = \"payments\"\nshards = 3"}});
  outcome = keel({"run", "--config", more, "--duration", "300ms"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_NE(outcome.err.find("chain layout differs"), std::string::npos) << outcome.err;
}

}  // namespace
}  // namespace keel::cli
