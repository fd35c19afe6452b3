// Tests for engine/config/perf_config.h: each bad input must fail with its exact message,
// since operators read these lines and scripts may match them; good inputs must give the
// values written, and everything left out must keep its documented default.
#include "engine/config/perf_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace keel::config {
namespace {

constexpr std::string_view test_path = "test.toml";

// The message a bad config fails with; records a test failure when it parses.
std::string error_of(std::string_view text) {
  Result<PerfConfig> config = parse_perf_config(text, test_path);
  if (config) {
    ADD_FAILURE() << "parsed without an error:\n" << text;
    return "";
  }
  return config.error().message;
}

// The config a good input gives; records a test failure (and returns defaults) when it
// does not parse.
PerfConfig parsed(std::string_view text, std::string_view path = test_path) {
  Result<PerfConfig> config = parse_perf_config(text, path);
  if (!config) {
    ADD_FAILURE() << config.error().message;
    return PerfConfig{};
  }
  return std::move(config).value();
}

TEST(PerfConfig, EmptyTextGivesEveryDefault) {
  const PerfConfig config = parsed("");
  EXPECT_EQ(config.path, "test.toml");
  EXPECT_EQ(config.engine.instance, "default");
  EXPECT_EQ(config.engine.idle, IdleStrategy::adaptive);
  EXPECT_EQ(config.engine.idle_spin_polls, 256u);
  EXPECT_EQ(config.engine.idle_sleep_us_max, 1000u);
  EXPECT_EQ(config.engine.tile_budget, 64u);
  EXPECT_EQ(config.topology.source, TopologySource::host);
  EXPECT_EQ(config.topology.synthetic, "");
  EXPECT_EQ(config.topology.xml_path, "");
  EXPECT_EQ(config.layout.compute_cores_per_node, 0u);
  EXPECT_EQ(config.tiles.shard.weight, 4u);
  EXPECT_EQ(config.tiles.scheduler.weight, 2u);
  EXPECT_EQ(config.tiles.persist.weight, 2u);
  EXPECT_EQ(config.tiles.balancer.weight, 1u);
  EXPECT_EQ(config.tiles.timer.weight, 1u);
  EXPECT_EQ(config.tiles.pipeline.weight, 2u);
  EXPECT_FALSE(config.tiles.shard.busy_poll || config.tiles.scheduler.busy_poll ||
               config.tiles.persist.busy_poll || config.tiles.balancer.busy_poll ||
               config.tiles.timer.busy_poll || config.tiles.pipeline.busy_poll);
  EXPECT_EQ(config.rings.capacity, 4096u);
  EXPECT_EQ(config.rings.slot_bytes, 64u);
  EXPECT_EQ(config.rings.arena_bytes, 1u << 20);
  EXPECT_TRUE(config.chains.empty());
  EXPECT_TRUE(config.pools.empty());
  EXPECT_FALSE(config.pipeline.enabled);
  EXPECT_EQ(config.ledger.data_dir, "data");
  EXPECT_EQ(config.ledger.fsync, FsyncPolicy::always);
  EXPECT_EQ(config.ledger.persist_backend, PersistBackend::io_uring);
  EXPECT_EQ(config.ledger.client_in_flight_max, 4096u);
  EXPECT_TRUE(config.load.enabled);
  EXPECT_EQ(config.tiles.gateway.weight, 2u);
  EXPECT_EQ(config.pipeline.payload_bytes, 32u);
  EXPECT_EQ(config.pipeline.rate_per_second, 0u);
}

TEST(PerfConfig, ValuesGivenAreKept) {
  const PerfConfig config = parsed(
      "[engine]\ninstance = \"Blue-2_x\"\nidle = \"sleep\"\nidle_spin_polls = 0\n"
      "idle_sleep_us_max = 1000000\ntile_budget = 65536\n"
      "[tiles.timer]\nbusy_poll = true\nweight = 1000\n"
      "[rings]\ncapacity = 1048576\nslot_bytes = 4096\narena_bytes = 0\n"
      "[pipeline]\nenabled = false\npayload_bytes = 4064\nrate_per_second = 1000000000\n");
  EXPECT_EQ(config.engine.instance, "Blue-2_x");
  EXPECT_EQ(config.engine.idle, IdleStrategy::sleep);
  EXPECT_EQ(config.engine.idle_spin_polls, 0u);
  EXPECT_EQ(config.engine.idle_sleep_us_max, 1'000'000u);
  EXPECT_EQ(config.engine.tile_budget, 65'536u);
  EXPECT_TRUE(config.tiles.timer.busy_poll);
  EXPECT_EQ(config.tiles.timer.weight, 1000u);
  EXPECT_EQ(config.tiles.shard.weight, 4u);  // untouched classes keep their defaults
  EXPECT_EQ(config.rings.capacity, 1u << 20);
  EXPECT_EQ(config.rings.slot_bytes, 4096u);
  EXPECT_EQ(config.rings.arena_bytes, 0u);
  EXPECT_FALSE(config.pipeline.enabled);
  // 4064 bytes fit a 4096-byte slot beside the header, so no arena is needed.
  EXPECT_EQ(config.pipeline.payload_bytes, 4064u);
  EXPECT_EQ(config.pipeline.rate_per_second, 1'000'000'000u);
}

TEST(PerfConfig, InlineArraysOfTablesAreArraysOfTables) {
  const PerfConfig config = parsed(
      "chain = [{ name = \"a\", shards = 3 }, { name = \"b\" }]\n"
      "pool = [{ compute_type = \"hash\" }]\n");
  ASSERT_EQ(config.chains.size(), 2u);
  EXPECT_EQ(config.chains[0].name, "a");
  EXPECT_EQ(config.chains[0].shards, 3u);
  EXPECT_EQ(config.chains[1].name, "b");
  EXPECT_EQ(config.chains[1].shards, 1u);
  ASSERT_EQ(config.pools.size(), 1u);
  EXPECT_EQ(config.pools[0].compute_type, "hash");
  EXPECT_EQ(config.pools[0].threads_per_node, 1u);
}

TEST(PerfConfig, SyntaxError) {
  EXPECT_EQ(error_of("[engine\nidle = \"spin\"\n"),
            "test.toml:1:8: TOML syntax: Error while parsing table header: expected ']', "
            "saw '\\n'");
  EXPECT_EQ(error_of("[engine]\nidle = spin\n"),
            "test.toml:2:8: TOML syntax: Error while parsing value: could not determine "
            "value type");
}

TEST(PerfConfig, UnknownKeyAtTopLevel) {
  EXPECT_EQ(error_of("bogus = 1\n"), "test.toml:1:9: bogus: unknown key");
  EXPECT_EQ(error_of("\n[engines]\nidle = \"spin\"\n"), "test.toml:2:1: engines: unknown key");
}

// A quoted key is shown quoted, so "a.b" does not read as a nested key.
TEST(PerfConfig, UnknownQuotedKeyIsShownQuoted) {
  EXPECT_EQ(error_of("\"engine.idle\" = 1\n"), "test.toml:1:17: \"engine.idle\": unknown key");
  EXPECT_EQ(error_of("[engine]\n\"a\\nb\" = 1\n"),
            "test.toml:2:10: engine.\"a\\x0ab\": unknown key");
}

TEST(PerfConfig, UnknownKeyNested) {
  EXPECT_EQ(error_of("[engine]\nidle_polls = 3\n"),
            "test.toml:2:14: engine.idle_polls: unknown key");
  EXPECT_EQ(error_of("[tiles.logger]\nweight = 1\n"), "test.toml:1:1: tiles.logger: unknown key");
  EXPECT_EQ(error_of("[tiles.shard]\nweigth = 1\n"),
            "test.toml:2:10: tiles.shard.weigth: unknown key");
  EXPECT_EQ(error_of("[[chain]]\nname = \"a\"\n[[chain]]\nname = \"b\"\ncolor = 1\n"),
            "test.toml:5:9: chain[1].color: unknown key");
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"a\"\nthreads = 2\n"),
            "test.toml:3:11: pool[0].threads: unknown key");
}

TEST(PerfConfig, WrongType) {
  EXPECT_EQ(error_of("[engine]\ntile_budget = \"64\"\n"),
            "test.toml:2:15: engine.tile_budget: expected an integer, got a string");
  EXPECT_EQ(error_of("[tiles.shard]\nbusy_poll = 1\n"),
            "test.toml:2:13: tiles.shard.busy_poll: expected a boolean, got an integer");
  EXPECT_EQ(error_of("[rings]\ncapacity = 4096.0\n"),
            "test.toml:2:12: rings.capacity: expected an integer, got a floating-point number");
  EXPECT_EQ(error_of("[engine]\ninstance = 1979-05-27\n"),
            "test.toml:2:12: engine.instance: expected a string, got a date");
  EXPECT_EQ(error_of("engine = 3\n"), "test.toml:1:10: engine: expected a table, got an integer");
  EXPECT_EQ(error_of("tiles = { shard = [1] }\n"),
            "test.toml:1:19: tiles.shard: expected a table, got an array");
  EXPECT_EQ(error_of("[chain]\nname = \"a\"\n"),
            "test.toml:1:1: chain: expected an array of tables, got a table");
  EXPECT_EQ(error_of("chain = [{ name = \"a\" }, 5]\n"),
            "test.toml:1:26: chain[1]: expected a table, got an integer");
}

TEST(PerfConfig, OutOfRange) {
  EXPECT_EQ(error_of("[tiles.shard]\nweight = 0\n"),
            "test.toml:2:10: tiles.shard.weight: must be from 1 to 1000, got 0");
  EXPECT_EQ(error_of("[engine]\nidle_spin_polls = -1\n"),
            "test.toml:2:19: engine.idle_spin_polls: must be from 0 to 1000000, got -1");
  EXPECT_EQ(error_of("[layout]\ncompute_cores_per_node = 4097\n"),
            "test.toml:2:26: layout.compute_cores_per_node: must be from 0 to 4096, got 4097");
  EXPECT_EQ(error_of("[[chain]]\nname = \"a\"\nshards = 257\n"),
            "test.toml:3:10: chain[0].shards: must be from 1 to 256, got 257");
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"a\"\nthreads_per_node = 0\n"),
            "test.toml:3:20: pool[0].threads_per_node: must be from 1 to 1024, got 0");
  // Larger than any 32-bit field: must be rejected, not truncated into range.
  EXPECT_EQ(error_of("[pipeline]\npayload_bytes = 4294967328\n"),
            "test.toml:2:17: pipeline.payload_bytes: must be from 0 to 65536, got 4294967328");
}

TEST(PerfConfig, NotAPowerOfTwo) {
  EXPECT_EQ(error_of("[rings]\ncapacity = 100\n"),
            "test.toml:2:12: rings.capacity: must be a power of two from 64 to 1048576, got 100");
  EXPECT_EQ(error_of("[rings]\nslot_bytes = 32\n"),
            "test.toml:2:14: rings.slot_bytes: must be a power of two from 64 to 4096, got 32");
  EXPECT_EQ(error_of("[rings]\narena_bytes = 5000\n"),
            "test.toml:2:15: rings.arena_bytes: must be 0 or a power of two from 4096 to "
            "1073741824, got 5000");
  EXPECT_EQ(error_of("[rings]\narena_bytes = 2048\n"),
            "test.toml:2:15: rings.arena_bytes: must be 0 or a power of two from 4096 to "
            "1073741824, got 2048");
}

TEST(PerfConfig, NotOneOfTheChoices) {
  EXPECT_EQ(error_of("[engine]\nidle = \"fast\"\n"),
            "test.toml:2:8: engine.idle: must be one of \"spin\", \"adaptive\", \"sleep\", "
            "got \"fast\"");
  EXPECT_EQ(error_of("[topology]\nsource = \"Host\"\n"),
            "test.toml:2:10: topology.source: must be one of \"host\", \"synthetic\", \"xml\", "
            "got \"Host\"");
  // A control character is escaped so that the message stays on one line.
  EXPECT_EQ(error_of("[engine]\nidle = \"sp\\nin\"\n"),
            "test.toml:2:8: engine.idle: must be one of \"spin\", \"adaptive\", \"sleep\", "
            "got \"sp\\x0ain\"");
}

TEST(PerfConfig, NameCharacters) {
  EXPECT_EQ(error_of("[[chain]]\nname = \"Pay Ments\"\n"),
            "test.toml:2:8: chain[0].name: must be 1 to 32 characters of [a-z0-9_-], got "
            "\"Pay Ments\"");
  EXPECT_EQ(error_of("[[chain]]\nname = \"\"\n"),
            "test.toml:2:8: chain[0].name: must be 1 to 32 characters of [a-z0-9_-], got \"\"");
  const std::string name_33_chars(33, 'a');
  EXPECT_EQ(error_of("[[chain]]\nname = \"" + name_33_chars + "\"\n"),
            "test.toml:2:8: chain[0].name: must be 1 to 32 characters of [a-z0-9_-], got \"" +
                name_33_chars + "\"");
  EXPECT_EQ(parsed("[[chain]]\nname = \"" + std::string(32, 'a') + "\"\n").chains.size(), 1u);
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"credit-score\"\n"),
            "test.toml:2:16: pool[0].compute_type: must be 1 to 32 characters of [a-z0-9_], "
            "got \"credit-score\"");
  EXPECT_EQ(error_of("[engine]\ninstance = \"keel/x\"\n"),
            "test.toml:2:12: engine.instance: must be 1 to 32 characters of [A-Za-z0-9_-], "
            "got \"keel/x\"");
}

TEST(PerfConfig, DuplicateNames) {
  EXPECT_EQ(error_of("[[chain]]\nname = \"payments\"\n[[chain]]\nname = \"settlement\"\n"
                     "[[chain]]\nname = \"payments\"\n"),
            "test.toml:6:8: chain[2].name: duplicate chain name \"payments\" (first at line 2)");
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"hash\"\n[[pool]]\ncompute_type = \"hash\"\n"),
            "test.toml:4:16: pool[1].compute_type: duplicate pool compute_type \"hash\" "
            "(first at line 2)");
  // A chain and a pool may share a name: they live in different namespaces.
  EXPECT_EQ(parsed("[[chain]]\nname = \"noop\"\n[[pool]]\ncompute_type = \"noop\"\n").pools.size(),
            1u);
}

TEST(PerfConfig, MissingRequiredKey) {
  EXPECT_EQ(error_of("[[chain]]\nname = \"a\"\n\n[[chain]]\nshards = 2\n"),
            "test.toml:4:1: chain[1].name: required key is missing");
  EXPECT_EQ(error_of("pool = [{ threads_per_node = 2 }]\n"),
            "test.toml:1:9: pool[0].compute_type: required key is missing");
}

TEST(PerfConfig, SyntheticTopologyNeedsItsString) {
  EXPECT_EQ(error_of("[topology]\nsource = \"synthetic\"\n"),
            "test.toml:1:1: topology.synthetic: required key is missing (source is "
            "\"synthetic\")");
  EXPECT_EQ(error_of("[topology]\nsource = \"synthetic\"\nsynthetic = \"\"\n"),
            "test.toml:3:13: topology.synthetic: must not be empty (source is \"synthetic\")");
  EXPECT_EQ(error_of("[topology]\nsource = \"xml\"\n"),
            "test.toml:1:1: topology.xml_path: required key is missing (source is \"xml\")");
  // Without source = "synthetic" the string is kept but not needed.
  EXPECT_EQ(parsed("[topology]\nsynthetic = \"\"\n").topology.source, TopologySource::host);
}

TEST(PerfConfig, PayloadTooBigForSlotNeedsArena) {
  EXPECT_EQ(error_of("[rings]\narena_bytes = 0\n[pipeline]\npayload_bytes = 100\n"),
            "test.toml:4:17: pipeline.payload_bytes: 100 bytes do not fit in a 64-byte slot "
            "beside the 32-byte header, so rings.arena_bytes must be at least 1600 "
            "(16 payloads), got 0");
  EXPECT_EQ(error_of("[rings]\narena_bytes = 32768\n[pipeline]\npayload_bytes = 4096\n"),
            "test.toml:4:17: pipeline.payload_bytes: 4096 bytes do not fit in a 64-byte slot "
            "beside the 32-byte header, so rings.arena_bytes must be at least 65536 "
            "(16 payloads), got 32768");
  // The boundaries: a payload that fits the slot needs no arena; 16 payloads suffice.
  EXPECT_EQ(
      parsed("[rings]\narena_bytes = 0\n[pipeline]\npayload_bytes = 32\n").pipeline.payload_bytes,
      32u);
  EXPECT_EQ(parsed("[rings]\narena_bytes = 65536\n[pipeline]\npayload_bytes = 4096\n")
                .pipeline.payload_bytes,
            4096u);
}

TEST(PerfConfig, RelativeXmlPathIsResolvedAgainstTheConfigDirectory) {
  const std::string relative = "[topology]\nsource = \"xml\"\nxml_path = \"hosts/big.xml\"\n";
  EXPECT_EQ(parsed(relative, "/etc/keel/perf.toml").topology.xml_path, "/etc/keel/hosts/big.xml");
  EXPECT_EQ(parsed(relative, "perf.toml").topology.xml_path, "hosts/big.xml");
  EXPECT_EQ(
      parsed("[topology]\nxml_path = \"../big.xml\"\n", "/etc/keel/perf.toml").topology.xml_path,
      "/etc/big.xml");
  EXPECT_EQ(
      parsed("[topology]\nxml_path = \"/srv/big.xml\"\n", "/etc/keel/perf.toml").topology.xml_path,
      "/srv/big.xml");
}

// Files written by a test live in a directory of their own, removed afterwards.
class PerfConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::path(::testing::TempDir()) /
                 ("keel_perf_config_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::filesystem::path path = directory_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::filesystem::path directory_;
};

TEST_F(PerfConfigFile, LoadResolvesXmlPathNextToTheFile) {
  const std::string path =
      write("perf.toml", "[topology]\nsource = \"xml\"\nxml_path = \"host.xml\"\n");
  Result<PerfConfig> config = load_perf_config(path);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->path, path);
  EXPECT_EQ(config->topology.xml_path, (directory_ / "host.xml").string());
}

TEST_F(PerfConfigFile, LoadNamesTheFileInErrors) {
  const std::string path = write("bad.toml", "[engine]\nidle = \"fast\"\n");
  Result<PerfConfig> config = load_perf_config(path);
  ASSERT_FALSE(config);
  EXPECT_EQ(
      config.error().message,
      path + ":2:8: engine.idle: must be one of \"spin\", \"adaptive\", \"sleep\", got \"fast\"");
}

TEST_F(PerfConfigFile, UnreadableFile) {
  const std::string missing = (directory_ / "missing.toml").string();
  Result<PerfConfig> config = load_perf_config(missing);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message, missing + ": cannot read: No such file or directory");

  config = load_perf_config(directory_.string());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message, directory_.string() + ": cannot read: Is a directory");

  const std::string huge = write("huge.toml", std::string((1 << 20) + 1, '\n'));
  config = load_perf_config(huge);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message, huge + ": cannot read: larger than 1048576 bytes");
}

TEST(PerfConfig, LedgerAndLoadKnobsAreChecked) {
  auto error_of = [](std::string_view text) {
    Result<PerfConfig> config = parse_perf_config(text, "t.toml");
    return config ? std::string("accepted") : config.error().message;
  };
  EXPECT_EQ(error_of("[ledger]\nfsync = \"sometimes\"\n"),
            "t.toml:2:9: ledger.fsync: must be one of \"always\", \"none\", got \"sometimes\"");
  EXPECT_EQ(error_of("[ledger]\npersist_backend = \"aio\"\n"),
            "t.toml:2:19: ledger.persist_backend: must be one of \"io_uring\", \"psync\", got \"aio\"");
  EXPECT_NE(error_of("[ledger]\nclient_in_flight_max = 1000\n").find("ledger.client_in_flight_max"), std::string::npos);
  EXPECT_NE(error_of("[ledger]\ndata_dir = \"\"\n").find("ledger.data_dir: must not be empty"), std::string::npos);
  EXPECT_NE(error_of("[load]\ncross_shard_percent = 101\n").find("load.cross_shard_percent"), std::string::npos);
  EXPECT_NE(error_of("[[chain]]\nname = \"a\"\nblock_txs_max = 0\n").find("chain[0].block_txs_max"), std::string::npos);
  EXPECT_NE(error_of("[load]\nbogus = 1\n").find("load.bogus: unknown key"), std::string::npos);
  Result<PerfConfig> config = parse_perf_config(
      "[ledger]\nfsync = \"none\"\npersist_backend = \"psync\"\n[[chain]]\nname = \"a\"\nblock_us_max = 7\n", "t.toml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->ledger.fsync, FsyncPolicy::none);
  EXPECT_EQ(config->ledger.persist_backend, PersistBackend::psync);
  EXPECT_EQ(config->chains[0].block_us_max, 7u);
}

TEST(PerfConfigShipped, DefaultFitsALaptop) {
  Result<PerfConfig> config = load_perf_config(KEEL_SOURCE_DIR "/perf/default.toml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->topology.source, TopologySource::host);
  EXPECT_EQ(config->layout.compute_cores_per_node, 0u);
  EXPECT_EQ(config->engine.idle, IdleStrategy::adaptive);
  EXPECT_FALSE(config->tiles.shard.busy_poll || config->tiles.scheduler.busy_poll ||
               config->tiles.persist.busy_poll || config->tiles.balancer.busy_poll ||
               config->tiles.timer.busy_poll || config->tiles.pipeline.busy_poll);
  EXPECT_EQ(config->rings.capacity, 4096u);
  EXPECT_EQ(config->rings.slot_bytes, 64u);
  ASSERT_EQ(config->chains.size(), 2u);
  EXPECT_EQ(config->chains[0].name, "payments");
  EXPECT_EQ(config->chains[0].shards, 2u);
  EXPECT_EQ(config->chains[0].block_txs_max, 8192u);
  EXPECT_EQ(config->chains[1].name, "settlement");
  EXPECT_EQ(config->chains[1].shards, 1u);
  ASSERT_EQ(config->pools.size(), 1u);
  EXPECT_EQ(config->pools[0].compute_type, "noop");
  EXPECT_EQ(config->pools[0].threads_per_node, 1u);
  EXPECT_FALSE(config->pipeline.enabled);
  EXPECT_EQ(config->ledger.data_dir, "data/default");
  EXPECT_TRUE(config->load.enabled);
  EXPECT_EQ(config->load.clients, 2u);
  EXPECT_EQ(config->pipeline.payload_bytes, 32u);
}

TEST(PerfConfigShipped, BigHostDescribesATwoSocketServer) {
  Result<PerfConfig> config = load_perf_config(KEEL_SOURCE_DIR "/perf/big-host.toml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->topology.source, TopologySource::synthetic);
  EXPECT_EQ(config->topology.synthetic, "pack:2 numa:2 core:32 pu:2");
  EXPECT_EQ(config->layout.compute_cores_per_node, 16u);
  EXPECT_EQ(config->engine.idle, IdleStrategy::spin);
  EXPECT_TRUE(config->tiles.shard.busy_poll && config->tiles.scheduler.busy_poll &&
              config->tiles.persist.busy_poll);
  EXPECT_FALSE(config->tiles.balancer.busy_poll || config->tiles.timer.busy_poll ||
               config->tiles.pipeline.busy_poll);
  const char* chain_names[] = {"payments",   "settlement", "cards",
                               "securities", "treasury",   "loyalty"};
  ASSERT_EQ(config->chains.size(), std::size(chain_names));
  for (size_t i = 0; i < std::size(chain_names); ++i) {
    EXPECT_EQ(config->chains[i].name, chain_names[i]);
    EXPECT_EQ(config->chains[i].shards, 4u);
  }
  const char* pool_types[] = {"hash", "credit_score", "var_mc", "interest", "noop"};
  const uint32_t pool_threads[] = {16, 16, 16, 16, 4};
  ASSERT_EQ(config->pools.size(), std::size(pool_types));
  for (size_t i = 0; i < std::size(pool_types); ++i) {
    EXPECT_EQ(config->pools[i].compute_type, pool_types[i]);
    EXPECT_EQ(config->pools[i].threads_per_node, pool_threads[i]);
  }
  EXPECT_FALSE(config->pipeline.enabled);
}

TEST(PerfConfig, ToStringSpellsTheConfigWords) {
  EXPECT_EQ(to_string(IdleStrategy::spin), "spin");
  EXPECT_EQ(to_string(IdleStrategy::adaptive), "adaptive");
  EXPECT_EQ(to_string(IdleStrategy::sleep), "sleep");
  EXPECT_EQ(to_string(TopologySource::host), "host");
  EXPECT_EQ(to_string(TopologySource::synthetic), "synthetic");
  EXPECT_EQ(to_string(TopologySource::xml), "xml");
}

// An integer knob, its bounds, and where the parsed value lands.
struct IntegerKnob {
  const char* table;
  const char* key;
  int64_t min;
  int64_t max;
  uint64_t (*read)(const PerfConfig&);
};

const IntegerKnob integer_knobs[] = {
    {"engine", "idle_spin_polls", 0, 1'000'000,
     [](const PerfConfig& c) -> uint64_t { return c.engine.idle_spin_polls; }},
    {"engine", "idle_sleep_us_max", 1, 1'000'000,
     [](const PerfConfig& c) -> uint64_t { return c.engine.idle_sleep_us_max; }},
    {"engine", "tile_budget", 1, 65'536,
     [](const PerfConfig& c) -> uint64_t { return c.engine.tile_budget; }},
    {"layout", "compute_cores_per_node", 0, 4096,
     [](const PerfConfig& c) -> uint64_t { return c.layout.compute_cores_per_node; }},
    {"tiles.persist", "weight", 1, 1000,
     [](const PerfConfig& c) -> uint64_t { return c.tiles.persist.weight; }},
    {"pipeline", "rate_per_second", 0, 1'000'000'000,
     [](const PerfConfig& c) -> uint64_t { return c.pipeline.rate_per_second; }},
};

// Random values around each range: those inside are kept exactly, those outside fail with
// the range message. The seed is printed so that a failure can be replayed.
TEST(PerfConfig, RandomIntegersAreKeptOrRejectedByRange) {
  const uint32_t seed = std::random_device{}();
  std::printf("seed %" PRIu32 "\n", seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  for (const IntegerKnob& knob : integer_knobs) {
    const int64_t span = knob.max - knob.min;
    std::uniform_int_distribution<int64_t> pick(knob.min - span / 4 - 1, knob.max + span / 4 + 1);
    for (int round = 0; round < 200; ++round) {
      const int64_t value = pick(random);
      const std::string text =
          "[" + std::string(knob.table) + "]\n" + knob.key + " = " + std::to_string(value) + "\n";
      Result<PerfConfig> config = parse_perf_config(text, test_path);
      if (value >= knob.min && value <= knob.max) {
        ASSERT_TRUE(config) << config.error().message;
        EXPECT_EQ(knob.read(*config), static_cast<uint64_t>(value));
        continue;
      }
      ASSERT_FALSE(config) << text;
      const std::string column = std::to_string(std::string_view(knob.key).size() + 4);
      EXPECT_EQ(config.error().message,
                "test.toml:2:" + column + ": " + knob.table + "." + knob.key + ": must be from " +
                    std::to_string(knob.min) + " to " + std::to_string(knob.max) + ", got " +
                    std::to_string(value));
    }
  }
}

}  // namespace
}  // namespace keel::config
