// Tests of the ledger through the real `keel` binary: `run` (the ledger job with its load
// generators), recovery at the next start, `verify`, `submit`, and damaged data.
#include <linux/magic.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <vector>

#include "engine/ledger/snapshot.h"
#include "engine/ledger/transaction.h"
#include "engine/persist/snapshot_file.h"
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

// Snapshots every few blocks and 1 MiB segments, so a short run writes snapshots and drops
// the log segments behind them.
const std::vector<std::pair<std::string, std::string>> frequent_snapshots = {
    {"segment_bytes_max = 67108864", "segment_bytes_max = 1048576"},
    {"snapshot_every_blocks = 1024", "snapshot_every_blocks = 16"}};

std::vector<fs::path> files_ending(const fs::path& directory, const std::string& extension) {
  std::vector<fs::path> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory))
    if (entry.path().extension() == extension) found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

TEST_F(LedgerCli, RunCommitsOnEveryChainRecoversAndVerifies) {
  std::string name = instance("ledger");
  // Without snapshots verify replays every block, so it can count every transaction.
  fs::path config = default_config_copy(name, {{"snapshot_every_blocks = 1024", "snapshot_every_blocks = 0"}});
  nlohmann::json first = run_ledger(config, "1500ms");
  ASSERT_EQ(first["chains"].size(), 5u) << first.dump();
  EXPECT_EQ(first["chains"][4].value("name", ""), "system") << first.dump();
  for (const nlohmann::json& chain : first["chains"]) {
    if (chain.value("name", "") == "system") continue;  // the balancer's records only
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

// `make run`'s job squeezed into 3 s (cards surges from 1 to 2 s): progress each second,
// the summary per chain, the run folder with the report, the timeline and the chart, and
// verify's verdict; the timeline shows cards' tx/s rise and fall.
TEST_F(LedgerCli, RunShowsProgressWritesItsFolderAndTheSurgeRisesAndFalls) {
  std::string name = instance("main-job");
  fs::path out = directory_ / "run-folder";
  fs::path config = default_config_copy(
      name, {{"from_ms = 6000\nto_ms = 13000\nrate_per_second = 150000",
              "from_ms = 1000\nto_ms = 2000\nrate_per_second = 60000"}});
  Outcome outcome = keel({"run", "--config", config, "--duration", "3s", "--out", out, "--verify"}, 90s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.out << outcome.err;
  size_t progress_lines = 0;
  for (const std::string& line : lines_of(outcome.out))
    progress_lines += line.find("  cards ") != std::string::npos && line.find(" tx/s ") != std::string::npos;
  EXPECT_GE(progress_lines, 3u) << outcome.out;
  EXPECT_NE(outcome.out.find("per chain over the run"), std::string::npos) << outcome.out;
  EXPECT_NE(outcome.out.find("run folder: " + out.string()), std::string::npos) << outcome.out;
  EXPECT_NE(outcome.out.find("verify: " + data_dir(name).string() + ": all 5 chains ok"), std::string::npos)
      << outcome.out;

  nlohmann::json report = nlohmann::json::parse(read_file(out / "report.json"), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << read_file(out / "report.json");
  EXPECT_EQ(report.value("run_dir", ""), out.string());
  EXPECT_TRUE(report["verify"].value("ok", false));
  EXPECT_EQ(report["timeline"]["chains"].size(), 4u) << "the system chain is not in the timeline";
  std::string svg = read_file(out / "chart.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  size_t tps_lines = 0;
  for (size_t at = svg.find("<polyline class=\"tps\""); at != std::string::npos;
       at = svg.find("<polyline class=\"tps\"", at + 1))
    ++tps_lines;
  EXPECT_EQ(tps_lines, 4u);

  // cards' tx/s per second: the second of the surge stands well above those around it.
  std::vector<std::pair<double, double>> cards;  // time_s, tps
  std::vector<std::string> rows = lines_of(read_file(out / "timeline.csv"));
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0], "time_s,chain,committed_txs,tps,tier,slice_cores,commit_p99_us");
  for (size_t index = 1; index < rows.size(); ++index) {
    std::vector<std::string> fields;
    std::stringstream row(rows[index]);
    for (std::string field; std::getline(row, field, ',');) fields.push_back(field);
    ASSERT_GE(fields.size(), 4u) << rows[index];
    if (fields[1] == "cards") cards.emplace_back(std::stod(fields[0]), std::stod(fields[3]));
  }
  ASSERT_GE(cards.size(), 3u) << read_file(out / "timeline.csv");
  auto peak = std::max_element(cards.begin(), cards.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_GT(peak->first, 1.5) << read_file(out / "timeline.csv");
  EXPECT_LT(peak->first, 2.6) << read_file(out / "timeline.csv");
  EXPECT_GT(peak->second, 2.5 * cards.front().second) << "no rise: " << read_file(out / "timeline.csv");
  EXPECT_GT(peak->second, 2.5 * cards.back().second) << "no fall: " << read_file(out / "timeline.csv");
}

// The threads of process `pid`, but its main thread, whose signal mask lets SIGINT or
// SIGTERM in, as "<tid> <name>" lines (/proc/<pid>/task/*/status, SigBlk); empty when none
// does. (The main thread takes them in sigtimedwait, which unblocks them while it waits.)
std::string threads_taking_stop_signals(pid_t pid) {
  const uint64_t stop_bits = (uint64_t(1) << (SIGINT - 1)) | (uint64_t(1) << (SIGTERM - 1));
  std::string taking;
  for (const fs::directory_entry& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    if (task.path().filename() == std::to_string(pid)) continue;
    std::ifstream status(task.path() / "status");
    std::string line, name;
    std::optional<uint64_t> blocked;  // none: the thread ended while being listed
    while (std::getline(status, line)) {
      if (line.rfind("Name:", 0) == 0) name = line.substr(line.find_first_not_of(" \t", 5));
      if (line.rfind("SigBlk:", 0) == 0) blocked = std::stoull(line.substr(7), nullptr, 16);
    }
    if (blocked && (*blocked & stop_bits) != stop_bits) taking += task.path().filename().string() + " " + name + "\n";
  }
  return taking;
}

TEST_F(LedgerCli, SubmitWaitsForTheDurableReceipt) {
  std::string name = instance("submit");
  fs::path config = default_config_copy(name, {{"[load]\nenabled = true", "[load]\nenabled = false"}});
  Clock::time_point started = Clock::now();
  KeelProcess engine(directory_, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  auto submit = [&](std::vector<std::string> arguments) {
    // A generous receipt timeout: under sanitizers on a busy 2-core machine a first group
    // commit can take seconds.
    arguments.insert(arguments.begin(), {"submit", "--instance", name, "--chain", "payments", "--timeout-ms", "30000"});
    return keel(arguments, 40s);
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
  // The kernel hands a process's SIGINT to any thread not blocking it: every thread of the
  // running engine blocks it (and SIGTERM), so the stop below drains wherever it lands.
  EXPECT_EQ(threads_taking_stop_signals(engine.pid()), "");
  ASSERT_EQ(kill(engine.pid(), SIGINT), 0);
  Outcome stopped = engine.wait(20s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  Outcome absent = keel({"submit", "--instance", name, "--chain", "payments", "put", "--key", "k"});
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_EQ(absent.err.rfind("keel: ", 0), 0u) << absent.err;
}

TEST_F(LedgerCli, SubmitComputeGetsItsBlockAndShard) {
  std::string name = instance("compute");
  fs::path config = default_config_copy(name, {{"[load]\nenabled = true", "[load]\nenabled = false"}});
  Clock::time_point started = Clock::now();
  KeelProcess engine(directory_, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  auto submit = [&](std::vector<std::string> arguments) {
    // A generous receipt timeout: under sanitizers on a busy 2-core machine a first group
    // commit can take seconds.
    arguments.insert(arguments.begin(), {"submit", "--instance", name, "--chain", "payments", "--timeout-ms", "30000"});
    return keel(arguments, 40s);
  };
  // payments has two shards: the subject picks one.
  std::string shard = std::to_string(ledger::shard_of_account(7, 2));
  Outcome hex = submit({"compute", "--type", "noop", "--subject", "7", "--input-hex", "0102"});
  EXPECT_EQ(hex.exit_code, 0) << hex.out << hex.err;
  EXPECT_EQ(hex.out.rfind("compute ", 0), 0u) << hex.out;
  EXPECT_NE(hex.out.find(": applied (block "), std::string::npos) << hex.out;
  EXPECT_NE(hex.out.find(" on shard " + shard + ")\ntask "), std::string::npos) << hex.out;
  EXPECT_NE(hex.out.find(" on shard " + shard + ": its result is an entry of a compute_results"), std::string::npos) << hex.out;
  Outcome json = submit({"--json", "compute", "--type", "hash", "--subject", "7", "--input", "a document"});
  EXPECT_EQ(json.exit_code, 0) << json.out << json.err;
  nlohmann::json receipt = parse_report(json);
  EXPECT_EQ(receipt.value("status", ""), "applied") << json.out;
  EXPECT_GT(receipt.value("height", 0ull), 0u) << json.out;
  EXPECT_EQ(receipt.value("shard", -1), std::stoi(shard)) << json.out;
  EXPECT_EQ(receipt.value("task", ""), std::to_string(receipt.value("height", 0ull)) + "." +
                                          std::to_string(receipt.value("index", 0u)))
      << json.out;
  // A type no pool serves is still a well-formed request: the scheduler answers it later.
  write_file(directory_ / "input.bin", std::string("\x00\xff\x10", 3));
  Outcome file = submit({"compute", "--type", "no_such_type", "--input-file", (directory_ / "input.bin").string()});
  EXPECT_EQ(file.exit_code, 0) << file.out << file.err;
  ASSERT_EQ(kill(engine.pid(), SIGINT), 0);
  Outcome stopped = engine.wait(20s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  // The pending requests replay like any other transaction.
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

// payments requires access credits (two shards); settlement does not.
TEST_F(LedgerCli, CreditsAreRequiredGrantedSpentAndShown) {
  std::string name = instance("credits");
  fs::path config = default_config_copy(
      name, {{"[load]\nenabled = true", "[load]\nenabled = false"},
             {"block_us_max = 2000         # ... or once its first transaction is this old (microseconds)\n",
              "block_us_max = 2000\ncredits = \"required\"\ncredit_granters = [\"operator\", \"treasury\"]\n"}});
  Clock::time_point started = Clock::now();
  KeelProcess engine(directory_, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  auto submit = [&](const std::string& chain, std::vector<std::string> arguments) {
    // A first commit may wait for a fresh log segment on a busy disk: generous timeouts.
    arguments.insert(arguments.begin(),
                     {"submit", "--instance", name, "--chain", chain, "--client-id", "app", "--timeout-ms", "30000"});
    return keel(arguments, 60s);
  };
  auto credits = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin() + 2, {"--config", config.string(), "--chain", "payments"});
    if (arguments[1] == "grant") arguments.insert(arguments.end(), {"--timeout-ms", "30000"});
    return keel(arguments, 60s);
  };
  Outcome refused = submit("payments", {"--json", "put", "--key", "colour", "--value", "blue"});
  EXPECT_EQ(refused.exit_code, 3) << refused.out << refused.err;
  nlohmann::json refusal = parse_report(refused);
  EXPECT_EQ(refusal.value("status", ""), "no access credit on this shard") << refused.out;
  EXPECT_EQ(refusal.value("height", 1ull), 0u) << refused.out;
  // settlement charges nothing.
  Outcome free = submit("settlement", {"put", "--key", "colour", "--value", "blue"});
  EXPECT_EQ(free.exit_code, 0) << free.out << free.err;
  // Only a granter may grant.
  Outcome not_granter = credits({"credits", "grant", "--client", "app", "--amount", "5", "--as", "app"});
  EXPECT_EQ(not_granter.exit_code, 3) << not_granter.out << not_granter.err;
  EXPECT_NE(not_granter.out.find("grant 3 to app on shard 0: this client may not grant access credits on this chain (block 0)"),
            std::string::npos)
      << not_granter.out;
  // 5 over two shards: 3 on shard 0, 2 on shard 1.
  Outcome granted = credits({"credits", "grant", "--client", "app", "--amount", "5", "--as", "treasury"});
  EXPECT_EQ(granted.exit_code, 0) << granted.out << granted.err;
  EXPECT_NE(granted.out.find("grant 3 to app on shard 0: applied (block "), std::string::npos) << granted.out;
  EXPECT_NE(granted.out.find("grant 2 to app on shard 1: applied (block "), std::string::npos) << granted.out;
  Outcome applied = submit("payments", {"put", "--key", "colour", "--value", "blue"});
  EXPECT_EQ(applied.exit_code, 0) << applied.out << applied.err;
  EXPECT_NE(applied.out.find(": applied (block "), std::string::npos) << applied.out;
  uint32_t charged_shard = ledger::shard_of_key(std::as_bytes(std::span(std::string_view("colour"))), 2);
  std::vector<uint64_t> expected = {3, 2};
  expected[charged_shard] -= 1;
  Outcome shown = credits({"credits", "show", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.out << shown.err;
  nlohmann::json report = parse_report(shown);
  EXPECT_EQ(report.value("credits", ""), "required");
  ASSERT_EQ(report["clients"].size(), 1u) << shown.out;
  EXPECT_EQ(report["clients"][0].value("client", ""), "app");
  EXPECT_EQ(report["clients"][0]["balances"].get<std::vector<uint64_t>>(), expected) << shown.out;
  EXPECT_EQ(report["clients"][0].value("total", 0ull), 4u) << shown.out;
  Outcome nobody = credits({"credits", "show", "--client", "nobody"});
  EXPECT_EQ(nobody.exit_code, 0) << nobody.err;
  EXPECT_NE(nobody.out.find("  nobody: 0 (shard 0: 0, shard 1: 0)"), std::string::npos) << nobody.out;
  Outcome bad_id = credits({"credits", "show", "--client", "No Body"});
  EXPECT_EQ(bad_id.exit_code, 2);
  EXPECT_EQ(bad_id.err, "keel: --client: 'No Body' must be 1 to 32 characters of [a-z0-9_.-]\n");
  ASSERT_EQ(kill(engine.pid(), SIGINT), 0);
  Outcome stopped = engine.wait(20s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  // The grants and spends replay like any transaction; show reads the same without the engine.
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  Outcome after = credits({"credits", "show", "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(parse_report(after)["clients"], report["clients"]);
}

// Bad arguments are refused before keel looks for an engine: one line naming the option.
TEST_F(LedgerCli, SubmitComputeRefusesBadInputWithOneLine) {
  std::string missing = (directory_ / "missing.bin").string();
  write_file(directory_ / "big.bin", std::string(16385, 'x'));
  write_file(directory_ / "largest.bin", std::string(16384, 'x'));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--type", "Hash", "--input", "x"}, "keel: --type: must be 1 to 32 characters of [a-z0-9_], got 'Hash'"},
      {{"--type", std::string(33, 'a'), "--input", "x"},
       "keel: --type: must be 1 to 32 characters of [a-z0-9_], got '" + std::string(33, 'a') + "'"},
      {{"--type", "hash"}, "keel: --input: missing: give one of --input, --input-file and --input-hex"},
      {{"--type", "hash", "--input", "x", "--input-hex", "00"},
       "keel: --input: give only one of --input, --input-file and --input-hex"},
      {{"--type", "hash", "--input-hex", "0g"}, "keel: --input-hex: 'g' at position 2 is not a hex digit"},
      {{"--type", "hash", "--input-hex", "abc"}, "keel: --input-hex: odd number of hex digits (3)"},
      {{"--type", "hash", "--input-hex", std::string(2 * 16385, 'a')},
       "keel: --input-hex: 16385 bytes, more than compute_input_bytes_max (16384 bytes)"},
      {{"--type", "hash", "--input", std::string(16385, 'a')},
       "keel: --input: 16385 bytes, more than compute_input_bytes_max (16384 bytes)"},
      {{"--type", "hash", "--input-file", missing},
       "keel: --input-file: cannot read '" + missing + "': No such file or directory"},
      {{"--type", "hash", "--input-file", directory_.string()},
       "keel: --input-file: cannot read '" + directory_.string() + "': Is a directory"},
      {{"--type", "hash", "--input-file", (directory_ / "big.bin").string()},
       "keel: --input-file: '" + (directory_ / "big.bin").string() +
           "' holds more than compute_input_bytes_max (16384 bytes)"},
  };
  for (const auto& [arguments, line] : cases) {
    std::vector<std::string> command = {"submit", "--instance", instance("no-engine"), "--chain", "payments", "compute"};
    command.insert(command.end(), arguments.begin(), arguments.end());
    Outcome outcome = keel(command);
    EXPECT_EQ(outcome.exit_code, 2) << line;
    EXPECT_EQ(outcome.err, line + "\n");
    EXPECT_EQ(outcome.out, "");
  }
  // Within the limits, the arguments pass and only the missing engine is left to report.
  Outcome largest = keel({"submit", "--instance", instance("no-engine"), "--chain", "payments", "compute", "--type",
                          "hash", "--input-file", (directory_ / "largest.bin").string()});
  EXPECT_EQ(largest.exit_code, 2);
  EXPECT_NE(largest.err.find("no keel engine named"), std::string::npos) << largest.err;
}

// One past the last non-zero byte of a file: inside the last block a commit wrote. After
// it come zeros: the padding of that block, then, in a preallocated segment, the zeros
// written ahead (`segment_preallocate`).
uint64_t written_end(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  uint64_t end = bytes.size();
  while (end > 0 && bytes[end - 1] == 0) --end;
  return end;
}

// Where a segment file's records end, walking their headers (engine/persist/log_format.h:
// magic "KLR1", then the payload length; 32-byte headers), over the zeros to a block's end
// that a batch begun beside another leaves before it.
uint64_t records_end(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // A record of the expected sequence (at +8; the segment header carries its file's first
  // record's sequence): a reused file's old records after the end are not taken.
  uint64_t expected_sequence = 0;
  auto record_at = [&](uint64_t offset) {
    if (offset + 32 > bytes.size() || std::memcmp(bytes.data() + offset, "KLR1", 4) != 0) return false;
    uint64_t sequence;
    std::memcpy(&sequence, bytes.data() + offset + 8, sizeof sequence);
    return offset == 0 || sequence == expected_sequence;
  };
  uint64_t offset = 0;
  for (;;) {
    if (!record_at(offset)) {
      uint64_t block_end = (offset + 4095) / 4096 * 4096;
      if (offset == 0 || block_end == offset || !record_at(block_end)) break;
      offset = block_end;
    }
    uint32_t payload_bytes;
    std::memcpy(&payload_bytes, bytes.data() + offset + 4, sizeof payload_bytes);
    std::memcpy(&expected_sequence, bytes.data() + offset + 8, sizeof expected_sequence);
    if (offset > 0) expected_sequence += 1;  // the segment header does not use its sequence
    offset += 32 + payload_bytes;
  }
  return offset;
}

TEST_F(LedgerCli, TornTailIsCutAndTheEngineStarts) {
  std::string name = instance("torn");
  fs::path config = default_config_copy(name);
  run_ledger(config, "500ms");
  fs::path log = first_log(data_dir(name), "settlement", 0);
  uint64_t end = records_end(log);
  ASSERT_GT(end, 0u);
  {
    // Half a record where the next commit began its write: a header that promises more
    // bytes than follow.
    std::fstream file(log, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(std::streamoff(end));
    const char torn[] = "KLR1\x00\x10\x00\x00garbage";
    file.write(torn, sizeof torn - 1);
  }
  Outcome outcome = keel({"run", "--config", config, "--duration", "300ms"}, 60s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.out << outcome.err;
  // The cut is at the end of the last record.
  std::string note = "note: " + log.string() + ": torn tail cut at offset ";
  size_t at = outcome.out.find(note);
  ASSERT_NE(at, std::string::npos) << outcome.out;
  EXPECT_EQ(std::stoull(outcome.out.substr(at + note.size())), end) << outcome.out;
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out;
}

TEST_F(LedgerCli, AFlippedBitBeforeTheTailStopsTheEngine) {
  std::string name = instance("flipped");
  fs::path config = default_config_copy(name);
  run_ledger(config, "800ms");
  fs::path log = first_log(data_dir(name), "settlement", 0);
  {
    // A third of the way into the records (not into the zeros of a preallocated file).
    std::streamoff inside = std::streamoff(written_end(log) / 3);
    std::fstream file(log, std::ios::binary | std::ios::in | std::ios::out);
    file.seekg(inside);
    char byte = 0;
    file.read(&byte, 1);
    byte ^= 0x10;
    file.seekp(inside);
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

// The balancer's moves under load, forced: KEEL_BALANCER_SHUFFLE_MS moves a random shard
// tile to another shard core every few milliseconds. Every committed transaction is in a
// block exactly once (verify replays them all and counts), and the chains verify. Three
// cores (synthetic, unpinned): on two the plan gives the shards a single core, the
// services the other, and a shard would have nowhere to move.
TEST_F(LedgerCli, ShardTilesMovedBetweenCoresUnderLoadLoseAndDuplicateNothing) {
  std::string name = instance("shuffle");
  fs::path config = default_config_copy(name, {{"snapshot_every_blocks = 1024", "snapshot_every_blocks = 0"}});
  setenv("KEEL_BALANCER_SHUFFLE_MS", "2", 1);
  Outcome outcome = keel(
      {"run", "--config", config, "--topology", "numa:1 core:3 pu:1", "--duration", "2000ms", "--json"}, 60s);
  unsetenv("KEEL_BALANCER_SHUFFLE_MS");
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  EXPECT_NE(outcome.err.find("KEEL_BALANCER_SHUFFLE_MS is set"), std::string::npos) << outcome.err;
  nlohmann::json report = parse_report(outcome);
  EXPECT_GT(report["balancer"].value("shuffles_requested", 0ull), 50u) << report["balancer"].dump();
  uint64_t committed = 0, moves = 0;
  for (const nlohmann::json& chain : report["chains"]) {
    committed += chain.value("committed_txs", 0ull);
    moves += chain.value("shard_moves", 0ull);
  }
  EXPECT_GT(moves, 50u) << "the tiles hardly moved: " << report["chains"].dump();
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string(), "--json"});
  ASSERT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  nlohmann::json verdict = parse_report(verified);
  EXPECT_TRUE(verdict.value("ok", false));
  uint64_t in_blocks = 0;
  for (const nlohmann::json& chain : verdict["chains"])
    for (const nlohmann::json& shard : chain["shards"]) in_blocks += shard.value("transactions", 0ull);
  EXPECT_EQ(in_blocks, committed) << "verify found a different number of transactions than the run committed";
  EXPECT_GT(committed, 10'000u);
}

TEST_F(LedgerCli, SnapshotsLetOldSegmentsGoAndRecoveryStartsFromThem) {
  std::string name = instance("snapshots");
  fs::path config = default_config_copy(name, frequent_snapshots);
  nlohmann::json first = run_ledger(config, "2500ms");
  EXPECT_GT(first.value("snapshots_written", 0ull), 0u) << first.dump();
  EXPECT_GT(first.value("segments_dropped", 0ull), 0u) << first.dump();
  uint64_t height_total = 0;
  bool a_first_segment_went = false;
  for (const auto& [chain, shards] : {std::pair{"payments", 2}, std::pair{"settlement", 1}})
    for (int shard = 0; shard < shards; ++shard) {
      fs::path directory = data_dir(name) / chain / std::to_string(shard);
      size_t snapshots = files_ending(directory, ".ksnap").size();
      EXPECT_GE(snapshots, 1u) << directory;
      EXPECT_LE(snapshots, 2u) << directory << ": only the newest two are kept";
      a_first_segment_went = a_first_segment_went || !fs::exists(directory / "log-00000000000000000000.klog");
    }
  EXPECT_TRUE(a_first_segment_went) << "no shard dropped its first log segment";
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string(), "--json"});
  ASSERT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  nlohmann::json report = parse_report(verified);
  uint64_t matched = 0;
  for (const nlohmann::json& chain : report["chains"])
    for (const nlohmann::json& shard : chain["shards"]) {
      if (chain.value("name", "") == "system") continue;  // a few records: no snapshot due
      EXPECT_GT(shard.value("start_height", 0ull), 0u) << "verify did not start from a snapshot: " << shard.dump();
      matched += shard.value("snapshots_matched", 0ull);
      height_total += shard.value("height", 0ull);
    }
  EXPECT_GT(matched, 0u) << "no later snapshot was compared with the replayed state";
  // The restart replays only the blocks after each shard's newest snapshot.
  nlohmann::json second = run_ledger(config, "500ms");
  EXPECT_GT(second.value("blocks_recovered", 0ull), 0u) << second.dump();
  EXPECT_LT(second.value("blocks_recovered", 0ull), height_total) << second.dump();
  Outcome again = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find("replayed from its snapshot at height"), std::string::npos) << again.out;
}

// [ledger] commit_stall_warn_ms: a group commit in the kernel longer than this is counted
// and said in one line. At 1 ms some commits of a second's run always take longer (an
// fdatasync alone takes ~0.3 ms on a disk; on tmpfs it costs nothing, so the test skips).
// Both backends: io_uring's commits are seen in flight or as they end, psync's end inside
// the submit. With direct_io = false the logs are written through the page cache and the
// line leaves out the hint about O_DIRECT's kernel workers; the logs still verify.
TEST_F(LedgerCli, ACommitLongInTheKernelIsCountedAndSaidAndLogsCanSkipDirectIo) {
  struct statfs where;
  ASSERT_EQ(::statfs(directory_.c_str(), &where), 0);
  if (where.f_type == TMPFS_MAGIC) GTEST_SKIP() << directory_ << " is on tmpfs: its fdatasync costs nothing";
  for (std::string backend : {"io_uring", "psync"}) {
    SCOPED_TRACE(backend);
    std::string name = instance("stall-" + backend);
    fs::path config = default_config_copy(
        name, {{"persist_backend = \"io_uring\"", "persist_backend = \"" + backend + "\""},
               {"compute_pending_max = 4096", "compute_pending_max = 4096\ncommit_stall_warn_ms = 1\ndirect_io = false"}});
    Outcome outcome = keel({"run", "--config", config, "--duration", "1s", "--json"}, 60s);
    ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
    nlohmann::json report = parse_report(outcome);
    if (backend == "io_uring" && report.value("persist_backend", "") != "io_uring") continue;  // fell back: said
    EXPECT_EQ(report.value("persist_backend", ""), backend) << report.dump();
    EXPECT_EQ(report.value("commit_stall_warn_ms", 0u), 1u) << report.dump();
    uint64_t stalled = report.value("group_commits_stalled", 0ull);
    EXPECT_GT(stalled, 0u) << report.dump();
    EXPECT_LE(stalled, report.value("group_commits", 0ull)) << report.dump();
    EXPECT_NE(outcome.err.find("keel: persist: group commit "), std::string::npos) << outcome.err;
    EXPECT_NE(outcome.err.find("ms in the kernel"), std::string::npos) << outcome.err;
    EXPECT_EQ(outcome.err.find("O_DIRECT"), std::string::npos) << "direct_io = false, yet: " << outcome.err;
    Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  }
}

TEST_F(LedgerCli, ASnapshotThatDisagreesWithTheLogFailsVerify) {
  std::string name = instance("forged");
  fs::path config = default_config_copy(name, frequent_snapshots);
  run_ledger(config, "1500ms");
  fs::path directory = data_dir(name) / "settlement" / "0";
  std::vector<fs::path> snapshots = files_ending(directory, ".ksnap");
  ASSERT_EQ(snapshots.size(), 2u) << directory;
  // Rewrite the newer one with one balance changed: the file checks out, the state does not.
  Result<std::vector<uint64_t>> heights = persist::list_snapshot_heights(directory);
  ASSERT_TRUE(heights.ok());
  Result<persist::SnapshotFile> file = persist::load_snapshot(directory, heights->back());
  ASSERT_TRUE(file.ok()) << file.error().message;
  Result<ledger::ShardSnapshot> snapshot = ledger::ShardSnapshot::deserialize(file->payload);
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().message;
  ASSERT_FALSE(snapshot->state.accounts.empty());
  snapshot->state.accounts.begin()->second.balance += 1;
  ASSERT_TRUE(persist::write_snapshot(directory, heights->back(), snapshot->serialize()).ok());
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 1) << verified.out;
  EXPECT_NE(verified.out.find("chain settlement shard 0 height " + std::to_string(heights->back()) + ": " +
                              file->path + " differs from the state the log replays to"),
            std::string::npos)
      << verified.out;
}

TEST_F(LedgerCli, ADamagedNewestSnapshotIsSkippedForTheOlderOne) {
  std::string name = instance("damaged-snapshot");
  // No flows: jobs still running at the end would run again at the next start, and their
  // results would make new blocks, and a new snapshot, below.
  fs::path config =
      default_config_copy(name, {frequent_snapshots[0], frequent_snapshots[1], {"flow_percent = 1", "flow_percent = 0"}});
  run_ledger(config, "1500ms");
  fs::path directory = data_dir(name) / "settlement" / "0";
  std::vector<fs::path> snapshots = files_ending(directory, ".ksnap");
  ASSERT_EQ(snapshots.size(), 2u) << directory;
  {
    std::fstream file(snapshots.back(), std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(std::streamoff(fs::file_size(snapshots.back()) - 5));
    file.put('\x5a');
  }
  // No load, so no new snapshot replaces the damaged one during the run.
  fs::path quiet = default_config_copy(name, {frequent_snapshots[0], frequent_snapshots[1],
                                              {"[load]\nenabled = true", "[load]\nenabled = false"}});
  Outcome outcome = keel({"run", "--config", quiet, "--duration", "300ms"}, 60s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.out << outcome.err;
  EXPECT_NE(outcome.out.find("note: skipped snapshot " + snapshots.back().string() + ": checksum mismatch"),
            std::string::npos)
      << outcome.out;
  // The engine recovered from the older snapshot, but the damage is still there to report.
  Outcome verified = keel({"verify", "--data-dir", data_dir(name).string()});
  EXPECT_EQ(verified.exit_code, 1) << verified.out;
  EXPECT_NE(verified.out.find(snapshots.back().string() + ": checksum mismatch"), std::string::npos) << verified.out;
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

namespace keel::cli {
namespace {

TEST_F(LedgerCli, FlowCommandsDeployStartAndControlFlows) {
  std::string name = instance("flow");
  // A product's settings from the config reach every shard's ledger when the engine starts.
  fs::path config = default_config_copy(name, {{"[load]\nenabled = true", "[load]\nenabled = false"},
                                               {"priority = 10\nrunning_max = 512", "priority = 7\nrunning_max = 3"}});
  Clock::time_point started = Clock::now();
  KeelProcess engine(directory_, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  auto flow = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin() + 1, {"--instance", name, "--chain", "payments", "--timeout-ms", "30000"});
    arguments.insert(arguments.begin(), "flow");
    return keel(arguments, 40s);
  };
  std::string loan = std::string(KEEL_SOURCE_DIR) + "/perf/flows/loan_approval.toml";
  Outcome deployed = flow({"deploy", loan, "--config", config});
  EXPECT_EQ(deployed.exit_code, 0) << deployed.out << deployed.err;
  EXPECT_NE(deployed.out.find("deploy shard 0: applied"), std::string::npos) << deployed.out;
  // A model whose compute type no pool of the config serves is refused before sending.
  fs::path unknown_type = directory_ / "unknown_type.toml";
  std::string text = read_file(loan);
  text.replace(text.find("compute_type = \"hash\""), 21, "compute_type = \"ocr\"");
  write_file(unknown_type, text);
  Outcome refused = flow({"deploy", unknown_type, "--config", config});
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.err.find("ocr"), std::string::npos) << refused.err;
  EXPECT_EQ(lines_of(refused.err).size(), 1u) << refused.err;

  auto start = [&](const std::string& key) {
    return flow({"start", "loan_approval", "--key", key, "--arg", "document=the deeds", "--arg-hex",
                 "applicants=00000000", "--arg", "portfolio=p"});
  };
  Outcome first = start("order-17");
  EXPECT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("start order-17: applied"), std::string::npos) << first.out;
  Outcome again = start("order-17");
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("the key names a flow already"), std::string::npos) << again.out;
  Outcome missing = flow({"start", "loan_approval", "--key", "order-18", "--arg", "document=x"});
  EXPECT_EQ(missing.exit_code, 3) << missing.out;
  EXPECT_NE(missing.out.find("the arguments do not match"), std::string::npos) << missing.out;
  Outcome bad_hex = flow({"start", "loan_approval", "--key", "k", "--arg-hex", "document=zz"});
  EXPECT_EQ(bad_hex.exit_code, 2);
  EXPECT_EQ(bad_hex.err, "keel: --arg-hex: not hex: 'zz'\n");
  Outcome unknown_flow = flow({"pause", "nobody"});
  EXPECT_EQ(unknown_flow.exit_code, 3) << unknown_flow.out;
  EXPECT_NE(unknown_flow.out.find("no flow has that key"), std::string::npos) << unknown_flow.out;
  Outcome paused = flow({"pause", "order-17"});
  EXPECT_TRUE(paused.exit_code == 0 || paused.out.find("not allowed in the flow's state") != std::string::npos)
      << paused.out << paused.err;
  ASSERT_EQ(kill(engine.pid(), SIGINT), 0);
  Outcome stopped = engine.wait(20s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  nlohmann::json report = parse_report(stopped);
  EXPECT_EQ(report["compute"]["flows_started"], 1) << stopped.out;
  // With no load, only the engine's own deploy of the config's [[contract]] (nightly
  // interest) can have made its cron timer: one per client chain.
  EXPECT_EQ(report["compute"]["timers"], 4) << stopped.out;
  // status and list read the log and snapshots, with the engine stopped (or running).
  auto query = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin() + 1, {"--config", config.string(), "--chain", "payments"});
    arguments.insert(arguments.begin(), "flow");
    return keel(arguments);
  };
  Outcome status = query({"status", "order-17", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  nlohmann::json flow_status = nlohmann::json::parse(status.out, nullptr, false);
  // The applicants given are none, so the score fails the flow, unless the pause lands first.
  std::string flow_state = flow_status.value("status", "");
  EXPECT_TRUE(flow_state == "paused" || flow_state == "failed") << status.out;
  EXPECT_EQ(flow_status.value("contract", ""), "loan_approval") << status.out;
  EXPECT_EQ(flow_status.value("product", ""), "retail_loans") << status.out;
  if (flow_state == "paused") {
    EXPECT_EQ(flow_status["steps"].size(), 4u) << status.out;
  }
  Outcome text_status = query({"status", "order-17"});
  EXPECT_EQ(text_status.out.rfind("order-17: " + flow_state + ", loan_approval v1, jobs ", 0), 0u) << text_status.out;
  Outcome no_flow = query({"status", "nobody"});
  EXPECT_EQ(no_flow.exit_code, 3);
  EXPECT_EQ(lines_of(no_flow.err).size(), 1u) << no_flow.err;
  EXPECT_NE(no_flow.err.find("flow 'nobody': no such flow"), std::string::npos) << no_flow.err;
  Outcome listed = query({"list", "--product", "retail_loans", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.out << listed.err;
  nlohmann::json list = nlohmann::json::parse(listed.out, nullptr, false);
  EXPECT_EQ(list.value("flows_total", 0), 1) << listed.out;
  EXPECT_EQ(list["flows"][0].value("key", ""), "order-17") << listed.out;
  ASSERT_EQ(list["shards"].size(), 2u) << listed.out;
  for (const nlohmann::json& shard : list["shards"]) {
    EXPECT_EQ(shard.value("priority", 0), 7) << listed.out;
    EXPECT_EQ(shard.value("running_max", 0), 3) << listed.out;
  }
  Outcome other_product = query({"list", "--product", "savings_accounts", "--json"});
  EXPECT_EQ(nlohmann::json::parse(other_product.out, nullptr, false).value("flows_total", -1), 0) << other_product.out;
}

}  // namespace
}  // namespace keel::cli
