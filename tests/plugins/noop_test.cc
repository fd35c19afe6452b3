// Tests for plugins/noop: up to 8 bytes echoed, anything longer refused.
#include "tests/plugins/loaded_plugin.h"

namespace keel::plugins {
namespace {

TEST(NoopPlugin, EchoesZeroToEightBytes) {
  LoadedPlugin noop(KEEL_PLUGIN_PATH, "noop");
  ASSERT_TRUE(noop.ok());
  EXPECT_EQ(noop.library().name(), "noop");
  EXPECT_EQ(noop.library().compute_types(), std::vector<std::string>{"noop"});
  std::vector<uint8_t> input;
  for (uint8_t length = 0; length <= 8; ++length) {
    RunOutcome outcome = noop.run(input);
    ASSERT_EQ(outcome.status, KEEL_STATUS_OK) << int(length);
    EXPECT_EQ(outcome.output, input);
    input.push_back(uint8_t(0xa0 + length));
  }
}

TEST(NoopPlugin, RefusesOversizedInput) {
  LoadedPlugin noop(KEEL_PLUGIN_PATH, "noop");
  ASSERT_TRUE(noop.ok());
  EXPECT_EQ(noop.status_of(std::vector<uint8_t>(9, 1)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(noop.status_of(std::vector<uint8_t>(4096, 1)), KEEL_STATUS_BAD_INPUT);
}

TEST(NoopPlugin, AsksForTheOutputItNeeds) {
  LoadedPlugin noop(KEEL_PLUGIN_PATH, "noop");
  ASSERT_TRUE(noop.ok());
  RunOutcome outcome = noop.run(std::vector<uint8_t>(8, 7), 7);
  EXPECT_EQ(outcome.status, KEEL_STATUS_OUTPUT_TOO_SMALL);
  EXPECT_EQ(outcome.output_bytes, 8u);
  EXPECT_EQ(noop.run({}, 0).status, KEEL_STATUS_OK);  // nothing to copy, nothing needed
}

TEST(NoopPlugin, TakesNoConfig) {
  Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(KEEL_PLUGIN_PATH);
  ASSERT_TRUE(library) << library.error().message;
  Result<sched::PluginInstance> instance = (*library)->init({{"threads", "4"}});
  ASSERT_FALSE(instance);
  EXPECT_EQ(instance.error().message,
            std::string(KEEL_PLUGIN_PATH) + ": init failed: unknown config key 'threads' (noop takes no config)");
}

}  // namespace
}  // namespace keel::plugins
