// Tests for the `keel` command itself: runs the real binary (KEEL_BINARY) as a child
// process and checks its exit code, stdout and stderr. Each test uses its own
// [engine] instance, so its segment cannot collide with another run's.
#include "tests/engine/cli/keel_process.h"

namespace keel::cli {
namespace {

void expect_intact_run(const nlohmann::json& report) {
  ASSERT_TRUE(report.is_object());
  EXPECT_GT(report.value("messages", 0ull), 0u);
  EXPECT_EQ(report.value("sequence_errors", 1ull), 0u);
  EXPECT_EQ(report.value("payload_errors", 1ull), 0u);
}

TEST_F(KeelCli, RunForOneSecondReportsIntactMessagesAndRemovesItsSegment) {
  std::string name = instance("run");
  fs::path config = pipeline_config_copy(name);
  Outcome outcome = keel({"run", "--config", config, "--duration", "1s", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  nlohmann::json report = parse_report(outcome);
  expect_intact_run(report);
  EXPECT_FALSE(report.value("stopped_by_signal", true));
  EXPECT_FALSE(segment_exists(name));
}

TEST_F(KeelCli, SigintDrainsAndExitsCleanly) {
  std::string name = instance("sigint");
  fs::path config = pipeline_config_copy(name);
  Clock::time_point started = Clock::now();
  KeelProcess process(directory_, {"run", "--config", config, "--duration", "60s", "--json"});
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  ASSERT_EQ(kill(process.pid(), SIGINT), 0);
  Outcome outcome = process.wait(5s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  nlohmann::json report = parse_report(outcome);
  expect_intact_run(report);
  EXPECT_TRUE(report.value("stopped_by_signal", false));
  EXPECT_FALSE(segment_exists(name));
}

// A service manager (systemd's default KillMode, `kill -TERM -<pgid>`) sends SIGTERM to
// the relay as well as to the engine. Disabled: it fails today, because the relay
// ignores only SIGINT and dies of SIGTERM before the drain (engine/pipeline/pipeline.cc,
// run_relay_process). Enable it with the fix.
TEST_F(KeelCli, SigtermToTheWholeProcessGroupDrainsCleanly) {
  std::string name = instance("sigterm-group");
  fs::path config = pipeline_config_copy(name);
  Clock::time_point started = Clock::now();
  KeelProcess process(directory_, {"run", "--config", config, "--duration", "60s", "--json"}, true);
  ASSERT_TRUE(wait_until_running(name, started)) << "keel never created its segment";
  ASSERT_EQ(kill(-process.pid(), SIGTERM), 0);
  Outcome outcome = process.wait(5s);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  nlohmann::json report = parse_report(outcome);
  expect_intact_run(report);
  EXPECT_TRUE(report.value("stopped_by_signal", false));
  EXPECT_FALSE(segment_exists(name));
}

TEST_F(KeelCli, MissingConfigFileIsOneLineNamingIt) {
  fs::path missing = directory_ / "no-such-config.toml";
  Outcome outcome = keel({"run", "--config", missing, "--duration", "1s"});
  EXPECT_EQ(outcome.exit_code, 2);
  std::vector<std::string> lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_EQ(lines[0].rfind("keel: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(missing.string()), std::string::npos) << lines[0];
}

TEST_F(KeelCli, UnknownConfigKeyIsNamedWithLineAndColumn) {
  fs::path config = directory_ / "unknown-key.toml";
  write_file(config, "[engine]\nbogus = 1\n");
  Outcome outcome = keel({"run", "--config", config, "--duration", "1s"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: " + config.string() + ":2:9: engine.bogus: unknown key\n");
}

TEST_F(KeelCli, BadDurationIsRejected) {
  std::string name = instance("duration");
  fs::path config = default_config_copy(name);
  Outcome outcome = keel({"run", "--config", config, "--duration", "5parsecs"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err.rfind("keel: --duration: ", 0), 0u) << outcome.err;
  EXPECT_NE(outcome.err.find("5parsecs"), std::string::npos) << outcome.err;
  EXPECT_FALSE(segment_exists(name));
}

TEST_F(KeelCli, PlanForTheBigHostPlacesEverySchedulerTile) {
  Outcome outcome = keel({"plan", "--topology", "pack:2 numa:2 core:32 pu:2", "--config",
                          std::string(KEEL_SOURCE_DIR) + "/perf/big-host.toml"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  EXPECT_NE(outcome.out.find("scheduler.3"), std::string::npos) << outcome.out;
}

// Three busy-polling tile classes need more than two cores on one node.
TEST_F(KeelCli, InfeasibleLayoutNamesTheNode) {
  std::string name = instance("infeasible");
  fs::path config = default_config_copy(name, {{"[tiles.shard]\nbusy_poll = false", "[tiles.shard]\nbusy_poll = true"},
                                               {"[tiles.scheduler]\nbusy_poll = false", "[tiles.scheduler]\nbusy_poll = true"},
                                               {"[tiles.persist]\nbusy_poll = false", "[tiles.persist]\nbusy_poll = true"}});
  Outcome outcome = keel({"run", "--config", config, "--topology", "pack:1 numa:1 core:2 pu:1", "--duration", "1s"});
  EXPECT_EQ(outcome.exit_code, 2);
  std::vector<std::string> lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_EQ(lines[0].rfind("keel: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("node 0"), std::string::npos) << lines[0];
  EXPECT_FALSE(segment_exists(name));
}

// Creates keel-<instance> in a child that is then killed, leaving the segment behind.
void leave_stale_segment(const std::string& instance_name) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    Result<shm::Segment> segment = shm::Segment::create({"keel-" + instance_name, 1 << 16});
    char byte = segment ? 1 : 0;
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte = 0;
  ssize_t got = read(ready[0], &byte, 1);
  close(ready[0]);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(got, 1);
  ASSERT_EQ(byte, 1) << "the child could not create the segment";
}

TEST_F(KeelCli, StaleSegmentOfADeadEngineIsReclaimed) {
  std::string name = instance("stale");
  leave_stale_segment(name);
  ASSERT_TRUE(segment_exists(name));
  fs::path config = default_config_copy(name);
  Outcome outcome = keel({"run", "--config", config, "--duration", "300ms"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  bool noted = false;
  for (const std::string& line : lines_of(outcome.out)) {
    noted = noted || line.rfind("note: reclaimed stale segment 'keel-" + name + "'", 0) == 0;
  }
  EXPECT_TRUE(noted) << outcome.out;
  EXPECT_FALSE(segment_exists(name));
}

TEST_F(KeelCli, LiveSegmentIsRefused) {
  std::string name = instance("live");
  Result<shm::Segment> held = shm::Segment::create({"keel-" + name, 1 << 16});
  ASSERT_TRUE(held) << held.error().message;
  fs::path config = default_config_copy(name);
  Outcome outcome = keel({"run", "--config", config, "--duration", "1s"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err.rfind("keel: ", 0), 0u) << outcome.err;
  EXPECT_NE(outcome.err.find("in use by running engine pid " + std::to_string(getpid())), std::string::npos)
      << outcome.err;
  EXPECT_TRUE(segment_exists(name)) << "keel removed a segment that a running engine holds";
}

TEST_F(KeelCli, VersionNamesEveryLibrary) {
  Outcome outcome = keel({"--version"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  for (const char* library : {"keel", "oneTBB", "hwloc", "liburing", "mimalloc", "Boost"}) {
    EXPECT_NE(outcome.out.find(library), std::string::npos) << library << " missing from:\n" << outcome.out;
  }
}

}  // namespace
}  // namespace keel::cli
