// Tests for `keel plugin check`: runs the real binary (KEEL_BINARY) against the shipped
// plugins and the broken test plugins, checking exit codes, stdout and the one-line
// errors on stderr.
#include "tests/engine/cli/keel_process.h"

namespace keel::cli {
namespace {

using PluginCheck = KeelCli;

TEST_F(PluginCheck, LoadsInitsRunsAndShutsDownAPlugin) {
  Outcome outcome = keel({"plugin", "check", KEEL_PLUGIN_HASH, "--type", "hash", "--input-hex", "616263"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  EXPECT_EQ(outcome.err, "");
  EXPECT_EQ(lines_of(outcome.out),
            (std::vector<std::string>{"plugin: " KEEL_PLUGIN_HASH, "name: hash", "abi version: 1", "compute types: hash",
                                      "init: ok", "run hash: status 0 (ok), 32 output bytes",
                                      "output hex: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                                      "shutdown: ok"}));
}

TEST_F(PluginCheck, WithoutAnInputOnlyLoadsAndInits) {
  Outcome outcome = keel({"plugin", "check", KEEL_PLUGIN_NOOP});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  EXPECT_EQ(lines_of(outcome.out), (std::vector<std::string>{"plugin: " KEEL_PLUGIN_NOOP, "name: noop", "abi version: 1",
                                                             "compute types: noop", "init: ok", "shutdown: ok"}));
}

TEST_F(PluginCheck, PassesConfigAndRunsThePluginsOnlyTypeByDefault) {
  // One applicant, all features 0 but the first (1.0); weights 2,0,...: z = 2 - 2 = 0, p = 0.5,
  // score = 300 + 275 = 575 (0x23f). Output: 0.5 as float64, 575 as uint32, 0.
  std::string input = "01000000" "00000000" "000000000000f03f" + std::string(5 * 16, '0');
  Outcome outcome = keel({"plugin", "check", KEEL_PLUGIN_CREDIT_SCORE, "--config", "weights=2,0,0,0,0,0", "--config",
                          "bias=-2", "--input-hex", input});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
  EXPECT_NE(outcome.out.find("run credit_score: status 0 (ok), 16 output bytes\n"
                             "output hex: 000000000000e03f3f02000000000000\n"),
            std::string::npos)
      << outcome.out;
}

TEST_F(PluginCheck, ARunThatFailsExitsOneWithItsStatus) {
  Outcome outcome = keel({"plugin", "check", KEEL_PLUGIN_NOOP, "--input-hex", "000102030405060708"});
  EXPECT_EQ(outcome.exit_code, 1);
  EXPECT_NE(outcome.out.find("run noop: status 1 (bad input)\nshutdown: ok\n"), std::string::npos) << outcome.out;
}

TEST_F(PluginCheck, LoadErrorsAreOneLineAndExitTwo) {
  std::string missing = (directory_ / "keel_missing.so").string();
  Outcome outcome = keel({"plugin", "check", missing});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.out, "");
  // dlerror's text names the file again: keel passes it on as it is.
  EXPECT_EQ(outcome.err, "keel: " + missing + ": cannot load plugin: " + missing +
                             ": cannot open shared object file: No such file or directory\n");

  outcome = keel({"plugin", "check", KEEL_TEST_PLUGIN_BAD_ABI_VERSION});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: " KEEL_TEST_PLUGIN_BAD_ABI_VERSION ": plugin ABI version 2, this keel speaks 1\n");

  outcome = keel({"plugin", "check", KEEL_TEST_PLUGIN_BAD_NO_ENTRY});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: " KEEL_TEST_PLUGIN_BAD_NO_ENTRY ": not a keel plugin: no symbol keel_plugin_entry\n");
}

TEST_F(PluginCheck, InitErrorsAreOneLineAndExitTwo) {
  Outcome outcome = keel({"plugin", "check", KEEL_PLUGIN_CREDIT_SCORE, "--config", "weights=1,2"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: " KEEL_PLUGIN_CREDIT_SCORE ": init failed: weights: expected 6 numbers, got 2\n");

  outcome = keel({"plugin", "check", KEEL_TEST_PLUGIN_INIT_FAILS, "--config", "reason=no licence file"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: " KEEL_TEST_PLUGIN_INIT_FAILS ": init failed: no licence file\n");
}

TEST_F(PluginCheck, UsageErrorsExitTwo) {
  Outcome outcome = keel({"plugin", "check", KEEL_PLUGIN_HASH, "--type", "sha1"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: " KEEL_PLUGIN_HASH ": serves no compute type 'sha1'\n");

  outcome = keel({"plugin", "check", KEEL_PLUGIN_HASH, "--input-hex", "61g"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: --input-hex: odd number of hex digits (3)\n");

  outcome = keel({"plugin", "check", KEEL_PLUGIN_HASH, "--input-hex", "6g"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: --input-hex: 'g' at position 2 is not a hex digit\n");

  outcome = keel({"plugin", "check", KEEL_PLUGIN_HASH, "--config", "novalue"});
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_EQ(outcome.err, "keel: --config: expected key=value, got 'novalue'\n");
}

}  // namespace
}  // namespace keel::cli
