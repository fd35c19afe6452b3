// Tests for engine/config/perf_config.h: each bad input must fail with its exact message,
// since operators read these lines and scripts may match them; good inputs must give the
// values written, and everything left out must keep its documented default.
#include "engine/config/perf_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

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
  EXPECT_EQ(config.engine.idle_commit_poll_us, 50u);
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
  // Only the system chain, which every config has (the balancer's records).
  ASSERT_EQ(config.chains.size(), 1u);
  EXPECT_TRUE(config.chains[0].is_system());
  EXPECT_EQ(config.chains[0].shards, 1u);
  EXPECT_EQ(config.chains[0].block_txs_max, 1024u);
  EXPECT_TRUE(config.pools.empty());
  EXPECT_FALSE(config.pipeline.enabled);
  EXPECT_EQ(config.ledger.data_dir, "data");
  EXPECT_EQ(config.ledger.fsync, FsyncPolicy::always);
  EXPECT_EQ(config.ledger.persist_backend, PersistBackend::io_uring);
  EXPECT_EQ(config.ledger.client_in_flight_max, 4096u);
  EXPECT_EQ(config.ledger.compute_pending_max, 4096u);
  EXPECT_TRUE(config.load.enabled);
  EXPECT_EQ(config.tiles.gateway.weight, 2u);
  EXPECT_EQ(config.pipeline.payload_bytes, 32u);
  EXPECT_EQ(config.pipeline.rate_per_second, 0u);
}

TEST(PerfConfig, ValuesGivenAreKept) {
  const PerfConfig config = parsed(
      "[engine]\ninstance = \"Blue-2_x\"\nidle = \"sleep\"\nidle_spin_polls = 0\n"
      "idle_sleep_us_max = 1000000\nidle_commit_poll_us = 7\ntile_budget = 65536\n"
      "[tiles.timer]\nbusy_poll = true\nweight = 1000\n"
      "[rings]\ncapacity = 1048576\nslot_bytes = 4096\narena_bytes = 0\n"
      "[pipeline]\nenabled = false\npayload_bytes = 4064\nrate_per_second = 1000000000\n");
  EXPECT_EQ(config.engine.instance, "Blue-2_x");
  EXPECT_EQ(config.engine.idle, IdleStrategy::sleep);
  EXPECT_EQ(config.engine.idle_spin_polls, 0u);
  EXPECT_EQ(config.engine.idle_sleep_us_max, 1'000'000u);
  EXPECT_EQ(config.engine.idle_commit_poll_us, 7u);
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
      "pool = [{ compute_type = \"hash\", plugin = \"hash\" }]\n");
  ASSERT_EQ(config.chains.size(), 3u);  // and the system chain
  EXPECT_EQ(config.chains[0].name, "a");
  EXPECT_EQ(config.chains[0].shards, 3u);
  EXPECT_EQ(config.chains[1].name, "b");
  EXPECT_EQ(config.chains[1].shards, 1u);
  ASSERT_EQ(config.pools.size(), 1u);
  EXPECT_EQ(config.pools[0].compute_types, std::vector<std::string>{"hash"});
  EXPECT_EQ(config.pools[0].threads_per_node, 1u);
}

TEST(PerfConfig, SyntaxError) {
  EXPECT_EQ(error_of("[engine\nidle = \"spin\"\n"),
            "test.toml:1:8: TOML syntax: Error while parsing table header: expected ']', "
            "saw '\\n'");
  EXPECT_EQ(error_of("[engine]\nidle = spin\n"),
            "test.toml:2:8: TOML syntax: Error while parsing value: could not determine "
            "value type");
  // A syntax error quoting a line break stays one line.
  Result<PerfConfig> broken = parse_perf_config("x = n\n", "test.toml", {});
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().message.find('\n'), std::string::npos) << broken.error().message;
  EXPECT_NE(broken.error().message.find("\\x0a"), std::string::npos) << broken.error().message;
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
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"a\"\nplugin = \"a\"\n[pool.settings]\nx = 1\n"),
            "test.toml:4:1: pool[0].settings: unknown key");
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
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"a\"\nplugin = \"a\"\nthreads_per_node = 0\n"),
            "test.toml:4:20: pool[0].threads_per_node: must be from 1 to 1024, got 0");
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

TEST(PerfConfig, ASystemChainTheFileDeclaresIsKeptWhereItIsWithOneShard) {
  const PerfConfig config = parsed("[[chain]]\nname = \"system\"\nblock_us_max = 500\n[[chain]]\nname = \"a\"\n");
  ASSERT_EQ(config.chains.size(), 2u);
  EXPECT_TRUE(config.chains[0].is_system());
  EXPECT_EQ(config.chains[0].block_us_max, 500u);
  EXPECT_EQ(config.chains[1].name, "a");
  EXPECT_EQ(error_of("[[chain]]\nname = \"system\"\nshards = 2\n"),
            "test.toml:3:10: chain[0].shards: the system chain has exactly one shard");
}

TEST(PerfConfigChain, CreditsDefaultOffWithTheOperatorAsGranter) {
  const PerfConfig config = parsed("[[chain]]\nname = \"a\"\n");
  ASSERT_EQ(config.chains.size(), 2u);  // and the system chain
  EXPECT_EQ(config.chains[0].credits, CreditsMode::off);
  EXPECT_EQ(config.chains[0].credits_per_tx, 1u);
  EXPECT_EQ(config.chains[0].credit_granters, std::vector<std::string>{"operator"});
  const PerfConfig given = parsed(
      "[[chain]]\nname = \"a\"\ncredits = \"required\"\ncredits_per_tx = 1000000\n"
      "credit_granters = [\"ops.1\", \"treasury-2_x\"]\n[[chain]]\nname = \"b\"\ncredit_granters = [\"ops\"]\n");
  EXPECT_EQ(given.chains[0].credits, CreditsMode::required);
  EXPECT_EQ(given.chains[0].credits_per_tx, 1'000'000u);
  EXPECT_EQ(given.chains[0].credit_granters, (std::vector<std::string>{"ops.1", "treasury-2_x"}));
  EXPECT_EQ(given.chains[1].credits, CreditsMode::off);
  EXPECT_EQ(given.chains[1].credit_granters, std::vector<std::string>{"ops"});
  EXPECT_EQ(to_string(CreditsMode::required), "required");
}

TEST(PerfConfigChain, CreditKeysAreCheckedStrictly) {
  const std::string chain = "[[chain]]\nname = \"a\"\n";
  EXPECT_EQ(error_of(chain + "credits = \"maybe\"\n"),
            "test.toml:3:11: chain[0].credits: must be one of \"off\", \"required\", got \"maybe\"");
  EXPECT_EQ(error_of(chain + "credits = true\n"), "test.toml:3:11: chain[0].credits: expected a string, got a boolean");
  EXPECT_EQ(error_of(chain + "credits = \"required\"\ncredits_per_tx = 1000001\n"),
            "test.toml:4:18: chain[0].credits_per_tx: must be from 1 to 1000000, got 1000001");
  EXPECT_EQ(error_of(chain + "credits = \"required\"\ncredits_per_tx = 0\n"),
            "test.toml:4:18: chain[0].credits_per_tx: must be from 1 to 1000000, got 0");
  EXPECT_EQ(error_of(chain + "credits_per_tx = 5\n"),
            "test.toml:3:18: chain[0].credits_per_tx: only applies with credits = \"required\"; this chain has "
            "credits = \"off\"");
  EXPECT_EQ(error_of(chain + "credit_granters = []\n"),
            "test.toml:3:19: chain[0].credit_granters: must hold from 1 to 64 client ids, got 0");
  EXPECT_EQ(error_of(chain + "credit_granters = \"ops\"\n"),
            "test.toml:3:19: chain[0].credit_granters: expected an array of strings, got a string");
  EXPECT_EQ(error_of(chain + "credit_granters = [1]\n"),
            "test.toml:3:20: chain[0].credit_granters[0]: expected a string, got an integer");
  EXPECT_EQ(error_of(chain + "credit_granters = [\"ops\", \"Ops\"]\n"),
            "test.toml:3:27: chain[0].credit_granters[1]: must be 1 to 32 characters of [a-z0-9_.-], got \"Ops\"");
  EXPECT_EQ(error_of(chain + "credit_granters = [\"ops\", \"ops\"]\n"),
            "test.toml:3:27: chain[0].credit_granters[1]: duplicate credit granter \"ops\" (first at line 3)");
  EXPECT_EQ(error_of(chain + "block_txs_max = 1\ncredits = \"required\"\n"),
            "test.toml:3:17: chain[0].block_txs_max: must be at least 2 with credits = \"required\" (a block holds a "
            "submission and its credit_spend), got 1");
  EXPECT_EQ(error_of(chain + "credit = \"required\"\n"), "test.toml:3:10: chain[0].credit: unknown key");
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
  EXPECT_EQ(parsed("[[chain]]\nname = \"" + std::string(32, 'a') + "\"\n").chains.size(), 2u);  // + system
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
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = \"hash\"\nplugin = \"a\"\n"
                     "[[pool]]\ncompute_type = \"hash\"\nplugin = \"b\"\n"),
            "test.toml:5:16: pool[1].compute_type: duplicate compute type \"hash\" "
            "(first at line 2)");
  // A chain and a pool may share a name: they live in different namespaces.
  EXPECT_EQ(parsed("[[chain]]\nname = \"noop\"\n[[pool]]\ncompute_type = \"noop\"\nplugin = \"noop\"\n")
                .pools.size(),
            1u);
}

TEST(PerfConfig, MissingRequiredKey) {
  EXPECT_EQ(error_of("[[chain]]\nname = \"a\"\n\n[[chain]]\nshards = 2\n"),
            "test.toml:4:1: chain[1].name: required key is missing");
  EXPECT_EQ(error_of("pool = [{ threads_per_node = 2 }]\n"),
            "test.toml:1:9: pool[0].compute_types: required key is missing (or its shorthand "
            "compute_type)");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"a\"]\n"),
            "test.toml:1:1: pool[0].plugin: required key is missing");
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

// ---- [[pool]] ----

// A pool of type "a" served by plugin "a", then `lines` (which start on line 4).
std::string pool_with(std::string_view lines) {
  return "[[pool]]\ncompute_type = \"a\"\nplugin = \"a\"\n" + std::string(lines);
}

// The only pool of a good input, parsed with keel's directory at /opt/keel/bin.
PoolConfig parsed_pool(std::string_view text, std::string_view path = test_path) {
  Result<PerfConfig> config = parse_perf_config(text, path, {"/opt/keel/bin"});
  if (!config) {
    ADD_FAILURE() << config.error().message;
    return PoolConfig{};
  }
  EXPECT_EQ(config->pools.size(), 1u);
  return config->pools.empty() ? PoolConfig{} : config->pools[0];
}

TEST(PerfConfigPool, DefaultsAndValuesGiven) {
  const PoolConfig defaults = parsed_pool(pool_with(""));
  EXPECT_EQ(defaults.compute_types, std::vector<std::string>{"a"});
  EXPECT_EQ(defaults.plugin, "a");
  EXPECT_EQ(defaults.threads_per_node, 1u);
  EXPECT_EQ(defaults.in_flight_max, 1024u);
  EXPECT_EQ(defaults.timeout_ms, 10'000u);
  EXPECT_EQ(defaults.retries_max, 3u);
  EXPECT_EQ(defaults.backoff_ms, 10u);
  EXPECT_EQ(defaults.output_bytes_max, 16'384u);
  EXPECT_TRUE(defaults.plugin_config.empty());

  const PoolConfig lows = parsed_pool(pool_with(
      "threads_per_node = 1\nin_flight_max = 16\ntimeout_ms = 1\nretries_max = 0\nbackoff_ms = 0\n"
      "output_bytes_max = 8\n"));
  EXPECT_EQ(lows.threads_per_node, 1u);
  EXPECT_EQ(lows.in_flight_max, 16u);
  EXPECT_EQ(lows.timeout_ms, 1u);
  EXPECT_EQ(lows.retries_max, 0u);
  EXPECT_EQ(lows.backoff_ms, 0u);
  EXPECT_EQ(lows.output_bytes_max, 8u);

  const PoolConfig highs = parsed_pool(pool_with(
      "threads_per_node = 1024\nin_flight_max = 65536\ntimeout_ms = 3600000\nretries_max = 100\n"
      "backoff_ms = 60000\noutput_bytes_max = 16384\n"));
  EXPECT_EQ(highs.threads_per_node, 1024u);
  EXPECT_EQ(highs.in_flight_max, 65'536u);
  EXPECT_EQ(highs.timeout_ms, 3'600'000u);
  EXPECT_EQ(highs.retries_max, 100u);
  EXPECT_EQ(highs.backoff_ms, 60'000u);
  EXPECT_EQ(highs.output_bytes_max, 16'384u);
}

TEST(PerfConfigPool, KnobsOutOfRange) {
  EXPECT_EQ(error_of(pool_with("threads_per_node = 1025\n")),
            "test.toml:4:20: pool[0].threads_per_node: must be from 1 to 1024, got 1025");
  EXPECT_EQ(error_of(pool_with("in_flight_max = 8\n")),
            "test.toml:4:17: pool[0].in_flight_max: must be a power of two from 16 to 65536, got 8");
  EXPECT_EQ(error_of(pool_with("in_flight_max = 1000\n")),
            "test.toml:4:17: pool[0].in_flight_max: must be a power of two from 16 to 65536, got 1000");
  EXPECT_EQ(error_of(pool_with("in_flight_max = 131072\n")),
            "test.toml:4:17: pool[0].in_flight_max: must be a power of two from 16 to 65536, got 131072");
  EXPECT_EQ(error_of(pool_with("timeout_ms = 0\n")),
            "test.toml:4:14: pool[0].timeout_ms: must be from 1 to 3600000, got 0");
  EXPECT_EQ(error_of(pool_with("timeout_ms = 3600001\n")),
            "test.toml:4:14: pool[0].timeout_ms: must be from 1 to 3600000, got 3600001");
  EXPECT_EQ(error_of(pool_with("retries_max = -1\n")),
            "test.toml:4:15: pool[0].retries_max: must be from 0 to 100, got -1");
  EXPECT_EQ(error_of(pool_with("retries_max = 101\n")),
            "test.toml:4:15: pool[0].retries_max: must be from 0 to 100, got 101");
  EXPECT_EQ(error_of(pool_with("backoff_ms = -1\n")),
            "test.toml:4:14: pool[0].backoff_ms: must be from 0 to 60000, got -1");
  EXPECT_EQ(error_of(pool_with("backoff_ms = 60001\n")),
            "test.toml:4:14: pool[0].backoff_ms: must be from 0 to 60000, got 60001");
  EXPECT_EQ(error_of(pool_with("output_bytes_max = 7\n")),
            "test.toml:4:20: pool[0].output_bytes_max: must be from 8 to 16384, got 7");
  EXPECT_EQ(error_of(pool_with("output_bytes_max = 16385\n")),
            "test.toml:4:20: pool[0].output_bytes_max: must be from 8 to 16384, got 16385");
  EXPECT_EQ(error_of(pool_with("timeout_ms = 1.5\n")),
            "test.toml:4:14: pool[0].timeout_ms: expected an integer, got a floating-point number");
  EXPECT_EQ(error_of(pool_with("time_ms = 1\n")), "test.toml:4:11: pool[0].time_ms: unknown key");
}

TEST(PerfConfigPool, ComputeTypesOrItsShorthand) {
  EXPECT_EQ(parsed_pool("[[pool]]\ncompute_type = \"hash\"\nplugin = \"a\"\n").compute_types,
            std::vector<std::string>{"hash"});
  EXPECT_EQ(parsed_pool("[[pool]]\ncompute_types = [\"hash\"]\nplugin = \"a\"\n").compute_types,
            std::vector<std::string>{"hash"});
  const PoolConfig two = parsed_pool("[[pool]]\ncompute_types = [\"score\", \"rank\"]\nplugin = \"a\"\n");
  EXPECT_EQ(two.compute_types, (std::vector<std::string>{"score", "rank"}));
  EXPECT_EQ(pool_name(two), "score+rank");
  EXPECT_EQ(pool_name(parsed_pool(pool_with(""))), "a");

  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"a\"]\ncompute_type = \"a\"\nplugin = \"a\"\n"),
            "test.toml:3:16: pool[0].compute_type: give compute_type or compute_types, not both");
  EXPECT_EQ(error_of("[[pool]]\nplugin = \"a\"\n"),
            "test.toml:1:1: pool[0].compute_types: required key is missing (or its shorthand "
            "compute_type)");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = []\nplugin = \"a\"\n"),
            "test.toml:2:17: pool[0].compute_types: must hold from 1 to 64 compute types, got 0");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = \"a\"\n"),
            "test.toml:2:17: pool[0].compute_types: expected an array of strings, got a string");
  EXPECT_EQ(error_of("[[pool]]\ncompute_type = [\"a\"]\n"),
            "test.toml:2:16: pool[0].compute_type: expected a string, got an array");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"a\", 2]\n"),
            "test.toml:2:23: pool[0].compute_types[1]: expected a string, got an integer");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"a\", \"B-1\"]\n"),
            "test.toml:2:23: pool[0].compute_types[1]: must be 1 to 32 characters of [a-z0-9_], "
            "got \"B-1\"");

  // 64 types is the most a pool (and a plugin) serves.
  std::string types;
  for (int i = 0; i < 65; ++i) types += (i == 0 ? "\"t" : ", \"t") + std::to_string(i) + "\"";
  const std::string sixty_four = types.substr(0, types.rfind(", "));
  EXPECT_EQ(parsed_pool("[[pool]]\ncompute_types = [" + sixty_four + "]\nplugin = \"a\"\n").compute_types.size(),
            64u);
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [" + types + "]\nplugin = \"a\"\n"),
            "test.toml:2:17: pool[0].compute_types: must hold from 1 to 64 compute types, got 65");
}

// A scheduler routes a task by its type alone, so no type may be served by two pools,
// whichever form names it.
TEST(PerfConfigPool, ComputeTypesAreUniqueAcrossPools) {
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"hash\", \"sign\"]\nplugin = \"a\"\n"
                     "[[pool]]\nplugin = \"b\"\ncompute_types = [\"verify\", \"sign\"]\n"),
            "test.toml:6:28: pool[1].compute_types[1]: duplicate compute type \"sign\" (first at line 2)");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"hash\", \"sign\"]\nplugin = \"a\"\n"
                     "[[pool]]\ncompute_type = \"hash\"\nplugin = \"b\"\n"),
            "test.toml:5:16: pool[1].compute_type: duplicate compute type \"hash\" (first at line 2)");
  EXPECT_EQ(error_of("[[pool]]\ncompute_types = [\"a\", \"a\"]\n"),
            "test.toml:2:23: pool[0].compute_types[1]: duplicate compute type \"a\" (first at line 2)");
}

// No file is opened: none of these exists.
TEST(PerfConfigPool, PluginBareNameOrPath) {
  const PoolConfig bare = parsed_pool("[[pool]]\ncompute_type = \"hash\"\nplugin = \"hash\"\n");
  EXPECT_EQ(bare.plugin, "hash");
  EXPECT_EQ(bare.plugin_path, "/opt/keel/bin/plugins/keel_hash.so");
  Result<PerfConfig> trailing_slash = parse_perf_config(pool_with(""), test_path, {"/opt/keel/bin/"});
  ASSERT_TRUE(trailing_slash) << trailing_slash.error().message;
  EXPECT_EQ(trailing_slash->pools[0].plugin_path, "/opt/keel/bin/plugins/keel_a.so");

  auto path_of = [](std::string_view plugin, std::string_view config_path) {
    return parsed_pool("[[pool]]\ncompute_type = \"a\"\nplugin = \"" + std::string(plugin) + "\"\n", config_path)
        .plugin_path;
  };
  EXPECT_EQ(path_of("lib/keel_x.so", "/etc/keel/perf.toml"), "/etc/keel/lib/keel_x.so");
  EXPECT_EQ(path_of("./keel_x.so", "/etc/keel/perf.toml"), "/etc/keel/keel_x.so");
  EXPECT_EQ(path_of("../plugins/keel_x.so", "/etc/keel/perf.toml"), "/etc/plugins/keel_x.so");
  EXPECT_EQ(path_of("/srv/keel/keel_x.so", "/etc/keel/perf.toml"), "/srv/keel/keel_x.so");
  // A relative config path leaves a relative directory: the working directory completes it,
  // so that dlopen gets a path (never a name to search for) wherever the pool runs.
  EXPECT_EQ(path_of("./keel_x.so", "perf/mine.toml"), (std::filesystem::current_path() / "perf/keel_x.so").string());
  EXPECT_EQ(path_of("keel_x.so/", "mine.toml"), (std::filesystem::current_path() / "keel_x.so/").string());
  // A bare name is never taken from the config's directory.
  EXPECT_EQ(path_of("x", "/etc/keel/perf.toml"), "/opt/keel/bin/plugins/keel_x.so");

  // Without a binary directory, the running program's own is used.
  Result<PerfConfig> own = parse_perf_config(pool_with(""), test_path);
  ASSERT_TRUE(own) << own.error().message;
  EXPECT_EQ(own->pools[0].plugin_path,
            (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "plugins/keel_a.so").string());
}

TEST(PerfConfigPool, PluginErrors) {
  const std::string rule =
      "must be a path with a '/' or a name of 1 to 32 characters of [a-z0-9_] "
      "(<keel's directory>/plugins/keel_<name>.so), got ";
  auto plugin = [](std::string_view value) {
    return "[[pool]]\ncompute_type = \"a\"\nplugin = " + std::string(value) + "\n";
  };
  EXPECT_EQ(error_of(plugin("\"Hash\"")), "test.toml:3:10: pool[0].plugin: " + rule + "\"Hash\"");
  EXPECT_EQ(error_of(plugin("\"keel_hash.so\"")), "test.toml:3:10: pool[0].plugin: " + rule + "\"keel_hash.so\"");
  EXPECT_EQ(error_of(plugin("\"\"")), "test.toml:3:10: pool[0].plugin: " + rule + "\"\"");
  const std::string name_33_chars(33, 'a');
  EXPECT_EQ(error_of(plugin("\"" + name_33_chars + "\"")),
            "test.toml:3:10: pool[0].plugin: " + rule + "\"" + name_33_chars + "\"");
  EXPECT_EQ(parsed_pool(plugin("\"" + std::string(32, 'a') + "\"")).plugin, std::string(32, 'a'));
  EXPECT_EQ(error_of(plugin("1")), "test.toml:3:10: pool[0].plugin: expected a string, got an integer");
  EXPECT_EQ(error_of(plugin("\"lib/x\\u0000.so\"")),
            "test.toml:3:10: pool[0].plugin: must not contain a NUL character, got \"lib/x\\x00.so\"");
}

TEST(PerfConfigPool, PluginConfigIsFlattenedAndSorted) {
  const PoolConfig pool = parsed_pool(pool_with(
      "[pool.config]\n"
      "name = \"lr v2\"\n"
      "empty = \"\"\n"
      "csv = \"a,b\"\n"
      "count = 42\n"
      "hex = 0xff\n"
      "negative = -7\n"
      "ratio = 0.1\n"
      "one = 1.0\n"
      "big = 1e300\n"
      "tiny = 5e-324\n"
      "two_to_70 = 1180591620717411303424.0\n"
      "neg_zero = -0.0\n"
      "infinite = -inf\n"
      "not_a_number = nan\n"
      "on = true\n"
      "off = false\n"
      "weights = [0.5, -1.2, 3]\n"
      "mixed = [\"x\", 1, true, 2.0]\n"
      "none = []\n"
      "\"dotted.key\" = \"q\"\n"
      "[pool.config.limits]\n"
      "max = 8\n"
      "inner = { deep = \"y\" }\n"));
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"big", "1e+300"},
      {"count", "42"},
      {"csv", "a,b"},
      {"dotted.key", "q"},
      {"empty", ""},
      {"hex", "255"},
      {"infinite", "-inf"},
      {"limits.inner.deep", "y"},
      {"limits.max", "8"},
      {"mixed", "x,1,true,2.0"},
      {"name", "lr v2"},
      {"neg_zero", "-0.0"},
      {"negative", "-7"},
      {"none", ""},
      {"not_a_number", "nan"},
      {"off", "false"},
      {"on", "true"},
      {"one", "1.0"},
      {"ratio", "0.1"},
      {"tiny", "5e-324"},
      {"two_to_70", "1.1805916207174113e+21"},
      {"weights", "0.5,-1.2,3"},
  };
  EXPECT_EQ(pool.plugin_config, expected);

  // Inline, and sorted by the whole dotted key: "a-b" sorts before "a.x" ('-' < '.').
  EXPECT_EQ(parsed_pool("pool = [{ compute_type = \"a\", plugin = \"a\", "
                        "config = { b = 2, a = { x = 1 }, a-b = 3 } }]\n")
                .plugin_config,
            (std::vector<std::pair<std::string, std::string>>{{"a-b", "3"}, {"a.x", "1"}, {"b", "2"}}));
  // An empty table gives no entries.
  EXPECT_TRUE(parsed_pool(pool_with("[pool.config]\n[pool.config.limits]\n")).plugin_config.empty());
}

// Random doubles, written with 17 significant digits, come back as the shortest text that
// reads as the same double and that TOML reads as a float (so parsing it again gives it back).
TEST(PerfConfigPool, RandomFloatsRoundTrip) {
  const uint32_t seed = std::random_device{}();
  std::printf("seed %" PRIu32 "\n", seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  auto flattened = [](const std::string& value) {
    const PoolConfig pool = parsed_pool(pool_with("[pool.config]\nx = " + value + "\n"));
    return pool.plugin_config.empty() ? std::string("(none)") : pool.plugin_config[0].second;
  };
  for (int round = 0; round < 4000; ++round) {
    // Half any bit pattern (mostly huge or tiny), half whole numbers of up to 64 bits,
    // whose shortest text may have no '.' of its own.
    const uint64_t bits = random();
    double value;
    std::memcpy(&value, &bits, sizeof value);
    if (round % 2 == 1) value = static_cast<double>(bits >> (random() % 64)) * (bits % 3 == 0 ? -1 : 1);
    if (!std::isfinite(value)) continue;
    char written[64];
    std::snprintf(written, sizeof written, "%.16e", value);
    const std::string text = flattened(written);
    ASSERT_EQ(std::strtod(text.c_str(), nullptr), value) << written << " gave " << text;
    ASSERT_NE(text.find_first_of(".e"), std::string::npos) << written << " gave " << text;
    ASSERT_LE(text.size(), std::strlen(written)) << written << " gave " << text;
    ASSERT_EQ(flattened(text), text) << written;
  }
}

TEST(PerfConfigPool, PluginConfigErrors) {
  EXPECT_EQ(error_of(pool_with("[[pool.config.rules]]\nx = 1\n")),
            "test.toml:4:1: pool[0].config.rules[0]: expected a string, a number or a boolean, got a "
            "table (an array of tables cannot be flattened)");
  EXPECT_EQ(error_of(pool_with("[pool.config]\nrules = [{ x = 1 }]\n")),
            "test.toml:5:10: pool[0].config.rules[0]: expected a string, a number or a boolean, got a "
            "table (an array of tables cannot be flattened)");
  EXPECT_EQ(error_of(pool_with("[pool.config.limits]\nmatrix = [1, [2, 3]]\n")),
            "test.toml:5:14: pool[0].config.limits.matrix[1]: expected a string, a number or a boolean, "
            "got an array (a nested array cannot be flattened)");
  EXPECT_EQ(error_of(pool_with("[pool.config]\nstart = 2024-01-01\n")),
            "test.toml:5:9: pool[0].config.start: expected a string, a number, a boolean, an array or a "
            "table, got a date");
  EXPECT_EQ(error_of(pool_with("[pool.config]\ndays = [2024-01-01]\n")),
            "test.toml:5:9: pool[0].config.days[0]: expected a string, a number or a boolean, got a date");
  EXPECT_EQ(error_of(pool_with("[pool.config]\nnames = [\"c\", \"a,b\"]\n")),
            "test.toml:5:15: pool[0].config.names[1]: must not contain ',' (array elements are joined "
            "by ','), got \"a,b\"");
  EXPECT_EQ(error_of(pool_with("config = 3\n")),
            "test.toml:4:10: pool[0].config: expected a table, got an integer");
  EXPECT_EQ(error_of(pool_with("[pool.config]\n\"\" = 1\n")),
            "test.toml:5:6: pool[0].config.\"\": must not be an empty key");
  EXPECT_EQ(error_of(pool_with("[pool.config]\ns = \"a\\u0000b\"\n")),
            "test.toml:5:5: pool[0].config.s: must not contain a NUL character");
  EXPECT_EQ(error_of(pool_with("[pool.config]\n\"a\\u0000b\" = 1\n")),
            "test.toml:5:14: pool[0].config.\"a\\x00b\": must not contain a NUL character");
  // The pool process gets key=value: a key holding '=' would be cut there.
  EXPECT_EQ(error_of(pool_with("[pool.config]\n\"a=b\" = 1\n")),
            "test.toml:5:9: pool[0].config.\"a=b\": must not contain '='");
  // Two leaves that flatten to one key: the later one in the file is named.
  EXPECT_EQ(error_of(pool_with("[pool.config]\n\"limits.max\" = 1\n[pool.config.limits]\nmax = 2\n")),
            "test.toml:7:7: pool[0].config.limits.max: duplicate plugin config key \"limits.max\" "
            "after flattening (first at line 5)");
  EXPECT_EQ(error_of(pool_with("[pool.config.limits]\nmax = 2\n[pool.config]\n\"limits.max\" = 1\n")),
            "test.toml:7:16: pool[0].config.\"limits.max\": duplicate plugin config key \"limits.max\" "
            "after flattening (first at line 5)");
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
  EXPECT_EQ(error_of("[ledger]\ncompute_pending_max = 0\n"),
            "t.toml:2:23: ledger.compute_pending_max: must be from 1 to 1048576, got 0");
  EXPECT_NE(error_of("[ledger]\ndata_dir = \"\"\n").find("ledger.data_dir: must not be empty"), std::string::npos);
  EXPECT_NE(error_of("[load]\ncross_shard_percent = 101\n").find("load.cross_shard_percent"), std::string::npos);
  EXPECT_NE(error_of("[[chain]]\nname = \"a\"\nblock_txs_max = 0\n").find("chain[0].block_txs_max"), std::string::npos);
  EXPECT_NE(error_of("[load]\nbogus = 1\n").find("load.bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of("[ledger]\nlog_buffer_huge_pages = 1\n").find("ledger.log_buffer_huge_pages"), std::string::npos);
  EXPECT_NE(error_of("[ledger]\ndirect_io = \"yes\"\n").find("ledger.direct_io"), std::string::npos);
  EXPECT_EQ(error_of("[ledger]\ncommit_stall_warn_ms = 0\n"),
            "t.toml:2:24: ledger.commit_stall_warn_ms: must be from 1 to 600000, got 0");
  Result<PerfConfig> config = parse_perf_config(
      "[ledger]\nfsync = \"none\"\npersist_backend = \"psync\"\nlog_buffer_huge_pages = false\ndirect_io = false\n"
      "commit_stall_warn_ms = 250\n"
      "[[chain]]\nname = \"a\"\nblock_us_max = 7\n",
      "t.toml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->ledger.log_buffer_huge_pages);
  EXPECT_TRUE(PerfConfig{}.ledger.log_buffer_huge_pages);
  EXPECT_FALSE(config->ledger.direct_io);
  EXPECT_TRUE(PerfConfig{}.ledger.direct_io);
  EXPECT_EQ(config->ledger.commit_stall_warn_ms, 250u);
  EXPECT_EQ(PerfConfig{}.ledger.commit_stall_warn_ms, 1000u);
  EXPECT_EQ(config->ledger.fsync, FsyncPolicy::none);
  EXPECT_EQ(config->ledger.persist_backend, PersistBackend::psync);
  EXPECT_EQ(config->chains[0].block_us_max, 7u);
}

// compute_percent: the share of each load client's submissions that are compute_requests.
TEST(PerfConfig, LoadComputePercentIsCheckedAndKept) {
  EXPECT_EQ(parsed("").load.compute_percent, 5u);
  EXPECT_EQ(parsed("[load]\ncompute_percent = 0\n").load.compute_percent, 0u);
  EXPECT_EQ(parsed("[load]\ncompute_percent = 100\n").load.compute_percent, 100u);
  EXPECT_EQ(error_of("[load]\ncompute_percent = 101\n"),
            "test.toml:2:19: load.compute_percent: must be from 0 to 100, got 101");
  EXPECT_EQ(error_of("[load]\ncompute_percent = -1\n"),
            "test.toml:2:19: load.compute_percent: must be from 0 to 100, got -1");
  EXPECT_EQ(error_of("[load]\ncompute_percent = 2.5\n"),
            "test.toml:2:19: load.compute_percent: expected an integer, got a floating-point number");
}

// [load] chain_rate_per_second and [[load.shape]]: the load paced per chain.
TEST(PerfConfig, LoadShapesAreKeptInFileOrder) {
  LoadSection defaults = parsed("").load;
  EXPECT_EQ(defaults.chain_rate_per_second, 0u);
  EXPECT_TRUE(defaults.shapes.empty());
  EXPECT_FALSE(defaults.paced_per_chain());
  LoadSection load = parsed("[[chain]]\nname = \"cards\"\n[[chain]]\nname = \"bank\"\n"
                            "[load]\nchain_rate_per_second = 2000\n"
                            "[[load.shape]]\nchain = \"cards\"\nfrom_ms = 6000\nto_ms = 13000\nrate_per_second = 150000\n"
                            "[[load.shape]]\nchain = \"bank\"\nrate_per_second = 0\n"
                            "[[load.shape]]\nchain = \"cards\"\nfrom_ms = 13000\nrate_per_second = 10\n")
                         .load;
  EXPECT_TRUE(load.paced_per_chain());
  EXPECT_EQ(load.chain_rate_per_second, 2000u);
  ASSERT_EQ(load.shapes.size(), 3u);
  EXPECT_EQ(load.shapes[0].chain, "cards");
  EXPECT_EQ(load.shapes[0].from_ms, 6000u);
  EXPECT_EQ(load.shapes[0].to_ms, 13000u);
  EXPECT_EQ(load.shapes[0].rate_per_second, 150000u);
  EXPECT_EQ(load.shapes[1].chain, "bank");
  EXPECT_EQ(load.shapes[1].from_ms, 0u);  // no window: the whole run
  EXPECT_EQ(load.shapes[1].to_ms, load_shape_open_end_ms);
  EXPECT_EQ(load.shapes[1].rate_per_second, 0u);
  EXPECT_EQ(load.shapes[2].from_ms, 13000u);  // touching the first window is not overlapping it
  EXPECT_EQ(load.shapes[2].to_ms, load_shape_open_end_ms);
  // A shape alone paces the load too; chain_rate_per_second alone as well.
  EXPECT_TRUE(parsed("[[chain]]\nname = \"a\"\n[[load.shape]]\nchain = \"a\"\nrate_per_second = 5\n").load.paced_per_chain());
  EXPECT_TRUE(parsed("[load]\nchain_rate_per_second = 1\n").load.paced_per_chain());
}

TEST(PerfConfig, LoadShapeRefusesEachBadInputWithItsPlace) {
  const std::string chains = "[[chain]]\nname = \"cards\"\n[[chain]]\nname = \"bank\"\n";  // lines 1-4
  auto shape = [&](const std::string& body) { return chains + "[[load.shape]]\n" + body; };  // body from line 6
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nrate_per_second = 1\nrate = 5\n")),
            "test.toml:8:8: load.shape[0].rate: unknown key");
  EXPECT_EQ(error_of(shape("rate_per_second = 1\n")), "test.toml:5:1: load.shape[0].chain: required key is missing");
  EXPECT_EQ(error_of(shape("chain = 7\nrate_per_second = 1\n")),
            "test.toml:6:9: load.shape[0].chain: expected a string, got an integer");
  EXPECT_EQ(error_of(shape("chain = \"loans\"\nrate_per_second = 1\n")),
            "test.toml:6:9: load.shape[0].chain: no [[chain]] is named \"loans\"");
  EXPECT_EQ(error_of(shape("chain = \"system\"\nrate_per_second = 1\n")),
            "test.toml:6:9: load.shape[0].chain: the system chain takes no client load");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\n")),
            "test.toml:5:1: load.shape[0].rate_per_second: required key is missing");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nrate_per_second = -1\n")),
            "test.toml:7:19: load.shape[0].rate_per_second: must be from 0 to 1000000000, got -1");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nrate_per_second = 1.5\n")),
            "test.toml:7:19: load.shape[0].rate_per_second: expected an integer, got a floating-point number");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nfrom_ms = -1\nrate_per_second = 1\n")),
            "test.toml:7:11: load.shape[0].from_ms: must be from 0 to 86399999, got -1");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nto_ms = 86400001\nrate_per_second = 1\n")),
            "test.toml:7:9: load.shape[0].to_ms: must be from 1 to 86400000, got 86400001");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nfrom_ms = 5000\nto_ms = 5000\nrate_per_second = 1\n")),
            "test.toml:8:9: load.shape[0].to_ms: must be greater than from_ms (5000), got 5000");
  // Two windows of one chain must not overlap; the later one is named, with both windows.
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nfrom_ms = 6000\nto_ms = 13000\nrate_per_second = 1\n"
                           "[[load.shape]]\nchain = \"bank\"\nrate_per_second = 1\n"
                           "[[load.shape]]\nchain = \"cards\"\nfrom_ms = 12999\nrate_per_second = 2\n")),
            "test.toml:14:9: load.shape[2].chain: its window (from 12999 ms to the end of the run) overlaps "
            "load.shape[0] (line 5, from 6000 to 13000 ms) on chain \"cards\"");
  EXPECT_EQ(error_of(shape("chain = \"bank\"\nrate_per_second = 1\n"
                           "[[load.shape]]\nchain = \"bank\"\nfrom_ms = 100\nto_ms = 200\nrate_per_second = 2\n")),
            "test.toml:9:9: load.shape[1].chain: its window (from 100 to 200 ms) overlaps load.shape[0] (line 5, "
            "from 0 ms to the end of the run) on chain \"bank\"");
  EXPECT_EQ(error_of(chains + "[load]\nshape = 5\n"), "test.toml:6:9: load.shape: expected an array of tables, got an integer");
  EXPECT_EQ(error_of(chains + "[load]\nshape = [5]\n"), "test.toml:6:10: load.shape[0]: expected a table, got an integer");
  std::string many = chains;
  for (int index = 0; index < 257; ++index) many += "[[load.shape]]\nchain = \"cards\"\nrate_per_second = 1\n";
  EXPECT_EQ(error_of(many), "test.toml:5:1: load.shape: at most 256 shapes, got 257");
  // chain_rate_per_second: checked like any rate.
  EXPECT_EQ(error_of("[load]\nchain_rate_per_second = 1000000001\n"),
            "test.toml:2:25: load.chain_rate_per_second: must be from 0 to 1000000000, got 1000000001");
  // Paced per chain and per client at once: refused at rate_per_second.
  EXPECT_EQ(error_of("[load]\nrate_per_second = 100\nchain_rate_per_second = 10\n"),
            "test.toml:2:19: load.rate_per_second: must be 0 when the load is paced per chain "
            "(chain_rate_per_second or [[load.shape]]), got 100");
  EXPECT_EQ(error_of(shape("chain = \"cards\"\nrate_per_second = 1\n[load]\nrate_per_second = 100\n")),
            "test.toml:9:19: load.rate_per_second: must be 0 when the load is paced per chain "
            "(chain_rate_per_second or [[load.shape]]), got 100");
}

// [scheduler]: the scheduler tiles and the pool supervision.
TEST(PerfConfig, SchedulerKnobsAreCheckedAndKept) {
  SchedulerSection defaults = parsed("").scheduler;
  EXPECT_EQ(defaults.leases_max, 16384u);
  EXPECT_EQ(defaults.spill_percent, 100u);
  EXPECT_EQ(defaults.restart_backoff_ms, 100u);
  EXPECT_EQ(defaults.restart_backoff_ms_max, 5000u);
  EXPECT_EQ(defaults.heartbeat_timeout_ms, 1000u);
  EXPECT_EQ(defaults.ready_timeout_ms, 10000u);
  EXPECT_EQ(defaults.crashes_max, 5u);
  EXPECT_EQ(defaults.crash_window_ms, 30000u);
  SchedulerSection set = parsed("[scheduler]\nleases_max = 64\nspill_percent = 75\nrestart_backoff_ms = 5\n"
                                "restart_backoff_ms_max = 50\nheartbeat_timeout_ms = 200\nready_timeout_ms = 300\n"
                                "crashes_max = 9\ncrash_window_ms = 7\n")
                             .scheduler;
  EXPECT_EQ(set.leases_max, 64u);
  EXPECT_EQ(set.spill_percent, 75u);
  EXPECT_EQ(set.restart_backoff_ms, 5u);
  EXPECT_EQ(set.restart_backoff_ms_max, 50u);
  EXPECT_EQ(set.heartbeat_timeout_ms, 200u);
  EXPECT_EQ(set.ready_timeout_ms, 300u);
  EXPECT_EQ(set.crashes_max, 9u);
  EXPECT_EQ(set.crash_window_ms, 7u);
  EXPECT_EQ(error_of("[scheduler]\nspill_percent = 0\n"),
            "test.toml:2:17: scheduler.spill_percent: must be from 1 to 100, got 0");
  EXPECT_EQ(error_of("[scheduler]\nleases_max = 8\n"),
            "test.toml:2:14: scheduler.leases_max: must be from 16 to 1048576, got 8");
  EXPECT_EQ(error_of("[scheduler]\nrestart_backoff_ms = 200\nrestart_backoff_ms_max = 100\n"),
            "test.toml:3:26: scheduler.restart_backoff_ms_max: restart_backoff_ms_max (100) must be at least "
            "restart_backoff_ms (200)");
  EXPECT_EQ(error_of("[scheduler]\nrestart_backoff_ms = 9000\n"),
            "test.toml:2:22: scheduler.restart_backoff_ms: restart_backoff_ms_max (5000) must be at least "
            "restart_backoff_ms (9000)");
  EXPECT_NE(error_of("[scheduler]\nlease_max = 64\n").find("scheduler.lease_max"), std::string::npos);
  EXPECT_EQ(defaults.tier_weights, (std::array<uint32_t, 3>{1, 2, 4}));
  EXPECT_EQ(parsed("[scheduler]\ntier_weights = [3, 5, 1000]\n").scheduler.tier_weights,
            (std::array<uint32_t, 3>{3, 5, 1000}));
  EXPECT_EQ(error_of("[scheduler]\ntier_weights = [1, 2]\n"),
            "test.toml:2:16: scheduler.tier_weights: must hold 3 weights (light, medium, heavy), got 2");
  EXPECT_EQ(error_of("[scheduler]\ntier_weights = 4\n"),
            "test.toml:2:16: scheduler.tier_weights: expected an array of 3 integers, got an integer");
  EXPECT_EQ(error_of("[scheduler]\ntier_weights = [1, \"2\", 4]\n"),
            "test.toml:2:20: scheduler.tier_weights[1]: expected an integer, got a string");
  EXPECT_EQ(error_of("[scheduler]\ntier_weights = [1, 2, 0]\n"),
            "test.toml:2:23: scheduler.tier_weights[2]: must be from 1 to 1000, got 0");
}

// [balancer]: the balancer tile's knobs (engine/balance/balancer.h). One case per kind of
// bad input: unknown key, wrong type, out of range, heavy_tps not above medium_tps.
TEST(PerfConfig, BalancerKnobsAreCheckedAndKept) {
  const BalancerSection defaults = parsed("").balancer;
  EXPECT_TRUE(defaults.enabled);
  EXPECT_EQ(defaults.window_ms, 250u);
  EXPECT_EQ(defaults.half_life_ms, 250u);
  EXPECT_EQ(defaults.heavy_tps, 50'000u);
  EXPECT_EQ(defaults.medium_tps, 5'000u);
  EXPECT_EQ(defaults.margin_percent, 25u);
  EXPECT_EQ(defaults.windows_to_change, 2u);
  EXPECT_EQ(defaults.downgrade_interval_ms, 2'500u);
  EXPECT_EQ(defaults.min_share_percent, 10u);
  EXPECT_EQ(defaults.heavy_cores_max, 0u);
  EXPECT_EQ(defaults.weight_max, 32u);
  const BalancerSection set =
      parsed("[balancer]\nenabled = false\nwindow_ms = 100\nhalf_life_ms = 400\nheavy_tps = 90000\n"
             "medium_tps = 9000\nmargin_percent = 30\nwindows_to_change = 3\ndowngrade_interval_ms = 0\n"
             "min_share_percent = 5\nheavy_cores_max = 4\nweight_max = 1000\n")
          .balancer;
  EXPECT_FALSE(set.enabled);
  EXPECT_EQ(set.window_ms, 100u);
  EXPECT_EQ(set.half_life_ms, 400u);
  EXPECT_EQ(set.heavy_tps, 90'000u);
  EXPECT_EQ(set.medium_tps, 9'000u);
  EXPECT_EQ(set.margin_percent, 30u);
  EXPECT_EQ(set.windows_to_change, 3u);
  EXPECT_EQ(set.downgrade_interval_ms, 0u);
  EXPECT_EQ(set.min_share_percent, 5u);
  EXPECT_EQ(set.heavy_cores_max, 4u);
  EXPECT_EQ(set.weight_max, 1000u);

  EXPECT_EQ(error_of("[balancer]\nwindow_ms = 250\nwindow = 100\n"), "test.toml:3:10: balancer.window: unknown key");
  EXPECT_EQ(error_of("balancer = 3\n"), "test.toml:1:12: balancer: expected a table, got an integer");
  EXPECT_EQ(error_of("[balancer]\nenabled = \"yes\"\n"),
            "test.toml:2:11: balancer.enabled: expected a boolean, got a string");
  EXPECT_EQ(error_of("[balancer]\nheavy_tps = 5e4\n"),
            "test.toml:2:13: balancer.heavy_tps: expected an integer, got a floating-point number");
  const std::pair<const char*, const char*> out_of_range[] = {
      {"window_ms = 5", "test.toml:2:13: balancer.window_ms: must be from 10 to 60000, got 5"},
      {"half_life_ms = 0", "test.toml:2:16: balancer.half_life_ms: must be from 1 to 600000, got 0"},
      {"heavy_tps = 0", "test.toml:2:13: balancer.heavy_tps: must be from 1 to 1000000000, got 0"},
      {"medium_tps = -1", "test.toml:2:14: balancer.medium_tps: must be from 1 to 1000000000, got -1"},
      {"margin_percent = 91", "test.toml:2:18: balancer.margin_percent: must be from 0 to 90, got 91"},
      {"windows_to_change = 0", "test.toml:2:21: balancer.windows_to_change: must be from 1 to 100, got 0"},
      {"downgrade_interval_ms = 3600001",
       "test.toml:2:25: balancer.downgrade_interval_ms: must be from 0 to 3600000, got 3600001"},
      {"min_share_percent = 51", "test.toml:2:21: balancer.min_share_percent: must be from 0 to 50, got 51"},
      {"heavy_cores_max = 4097", "test.toml:2:19: balancer.heavy_cores_max: must be from 0 to 4096, got 4097"},
      {"weight_max = 1001", "test.toml:2:14: balancer.weight_max: must be from 1 to 1000, got 1001"},
      {"weight_max = 0", "test.toml:2:14: balancer.weight_max: must be from 1 to 1000, got 0"},
  };
  for (const auto& [line, message] : out_of_range) EXPECT_EQ(error_of("[balancer]\n" + std::string(line) + "\n"), message);
  // heavy_tps must be above medium_tps: the error is at heavy_tps when the file sets it,
  // else at medium_tps.
  EXPECT_EQ(error_of("[balancer]\nheavy_tps = 5000\nmedium_tps = 5000\n"),
            "test.toml:2:13: balancer.heavy_tps: heavy_tps (5000) must be greater than medium_tps (5000)");
  EXPECT_EQ(error_of("[balancer]\nmedium_tps = 60000\n"),
            "test.toml:2:14: balancer.medium_tps: heavy_tps (50000) must be greater than medium_tps (60000)");
  EXPECT_EQ(error_of("[balancer]\nheavy_tps = 4000\n"),
            "test.toml:2:13: balancer.heavy_tps: heavy_tps (4000) must be greater than medium_tps (5000)");
}

TEST(PerfConfig, MetricsKnobsAreCheckedAndKept) {
  MetricsSection defaults = parsed("").metrics;
  EXPECT_FALSE(defaults.enabled);  // an engine opens a port only when its config asks
  EXPECT_EQ(defaults.listen, "127.0.0.1:9464");
  EXPECT_EQ(defaults.address, "127.0.0.1");
  EXPECT_EQ(defaults.port, 9464u);
  MetricsSection set = parsed("[metrics]\nenabled = true\nlisten = \"127.0.0.2:0\"\n").metrics;
  EXPECT_TRUE(set.enabled);
  EXPECT_EQ(set.listen, "127.0.0.2:0");
  EXPECT_EQ(set.address, "127.0.0.2");
  EXPECT_EQ(set.port, 0u);
  EXPECT_EQ(parsed("[metrics]\nlisten = \"127.0.0.1:65535\"\n").metrics.port, 65535u);
  EXPECT_EQ(error_of("[metrics]\nlisten = \"localhost:9464\"\n"),
            "test.toml:2:10: metrics.listen: must be \"<IPv4 address>:<port>\" (e.g. \"127.0.0.1:9464\"), got "
            "\"localhost:9464\"");
  EXPECT_EQ(error_of("[metrics]\nlisten = \"127.0.0.1\"\n"),
            "test.toml:2:10: metrics.listen: must be \"<IPv4 address>:<port>\" (e.g. \"127.0.0.1:9464\"), got "
            "\"127.0.0.1\"");
  EXPECT_EQ(error_of("[metrics]\nlisten = \"127.0.0.1:-1\"\n"),
            "test.toml:2:10: metrics.listen: must be \"<IPv4 address>:<port>\" (e.g. \"127.0.0.1:9464\"), got "
            "\"127.0.0.1:-1\"");
  EXPECT_EQ(error_of("[metrics]\nlisten = \"0.0.0.0:9464\"\n"),
            "test.toml:2:10: metrics.listen: must be a loopback address (127.x.x.x): the endpoint has no "
            "authentication, got \"0.0.0.0:9464\"");
  EXPECT_EQ(error_of("[metrics]\nlisten = \"127.0.0.1:65536\"\n"),
            "test.toml:2:10: metrics.listen: port must be from 0 to 65535, got 65536");
  EXPECT_EQ(error_of("[metrics]\nenabled = 1\n"), "test.toml:2:11: metrics.enabled: expected a boolean, got an integer");
  EXPECT_EQ(error_of("[metrics]\nport = 9464\n"), "test.toml:2:8: metrics.port: unknown key");
}

TEST(PerfConfigShipped, DefaultFitsALaptop) {
  Result<PerfConfig> config = load_perf_config(KEEL_SOURCE_DIR "/perf/default.toml", {"/opt/keel"});
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->topology.source, TopologySource::host);
  EXPECT_EQ(config->layout.compute_cores_per_node, 0u);
  EXPECT_EQ(config->engine.idle, IdleStrategy::adaptive);
  EXPECT_FALSE(config->tiles.shard.busy_poll || config->tiles.scheduler.busy_poll ||
               config->tiles.persist.busy_poll || config->tiles.balancer.busy_poll ||
               config->tiles.timer.busy_poll || config->tiles.pipeline.busy_poll);
  EXPECT_EQ(config->rings.capacity, 4096u);
  EXPECT_EQ(config->rings.slot_bytes, 64u);
  ASSERT_EQ(config->chains.size(), 5u);
  EXPECT_TRUE(config->chains[4].is_system());
  EXPECT_EQ(config->chains[0].name, "payments");
  EXPECT_EQ(config->chains[0].shards, 2u);
  EXPECT_EQ(config->chains[0].block_txs_max, 8192u);
  EXPECT_EQ(config->chains[1].name, "settlement");
  EXPECT_EQ(config->chains[1].shards, 1u);
  EXPECT_EQ(config->chains[2].name, "cards");
  EXPECT_EQ(config->chains[3].name, "treasury");
  // The load of `make run`: paced per chain, and cards surges past heavy_tps mid-run.
  EXPECT_EQ(config->load.rate_per_second, 0u);
  EXPECT_EQ(config->load.chain_rate_per_second, 2000u);
  ASSERT_EQ(config->load.shapes.size(), 3u);
  const LoadShape& surge = config->load.shapes[2];
  EXPECT_EQ(surge.chain, "cards");
  EXPECT_GT(surge.rate_per_second, config->balancer.heavy_tps * 2);
  EXPECT_EQ(surge.to_ms - surge.from_ms, 7000u);
  EXPECT_FALSE(config->pipeline.enabled);
  EXPECT_EQ(config->ledger.data_dir, "data/default");
  EXPECT_TRUE(config->load.enabled);
  EXPECT_EQ(config->load.clients, 2u);
  EXPECT_EQ(config->load.compute_percent, 5u);
  EXPECT_EQ(config->pipeline.payload_bytes, 32u);
  // [balancer] spells out the defaults.
  const BalancerSection defaults;
  EXPECT_TRUE(config->balancer.enabled);
  EXPECT_EQ(config->balancer.window_ms, defaults.window_ms);
  EXPECT_EQ(config->balancer.half_life_ms, defaults.half_life_ms);
  EXPECT_EQ(config->balancer.heavy_tps, defaults.heavy_tps);
  EXPECT_EQ(config->balancer.medium_tps, defaults.medium_tps);
  EXPECT_EQ(config->balancer.margin_percent, defaults.margin_percent);
  EXPECT_EQ(config->balancer.windows_to_change, defaults.windows_to_change);
  EXPECT_EQ(config->balancer.downgrade_interval_ms, defaults.downgrade_interval_ms);
  EXPECT_EQ(config->balancer.min_share_percent, defaults.min_share_percent);
  EXPECT_EQ(config->balancer.heavy_cores_max, defaults.heavy_cores_max);
  EXPECT_EQ(config->balancer.weight_max, defaults.weight_max);
  EXPECT_TRUE(config->metrics.enabled);
  EXPECT_EQ(config->metrics.port, 9464u);
}

// A pool of one thread for every shipped plugin, each named by its bare name.
TEST(PerfConfigShipped, DefaultHasAPoolPerShippedPlugin) {
  Result<PerfConfig> config = load_perf_config(KEEL_SOURCE_DIR "/perf/default.toml", {"/opt/keel"});
  ASSERT_TRUE(config) << config.error().message;
  const char* types[] = {"noop", "hash", "credit_score", "var_mc", "interest"};
  ASSERT_EQ(config->pools.size(), std::size(types));
  for (size_t i = 0; i < std::size(types); ++i) {
    const PoolConfig& pool = config->pools[i];
    EXPECT_EQ(pool.compute_types, std::vector<std::string>{types[i]});
    EXPECT_EQ(pool.plugin, types[i]);
    EXPECT_EQ(pool.plugin_path, "/opt/keel/plugins/keel_" + std::string(types[i]) + ".so");
    EXPECT_EQ(pool.threads_per_node, 1u);
    EXPECT_EQ(pool.in_flight_max, 1024u);
    EXPECT_EQ(pool.timeout_ms, 10'000u);
    EXPECT_EQ(pool.retries_max, 3u);
    EXPECT_EQ(pool.backoff_ms, 10u);
    EXPECT_EQ(pool.output_bytes_max, 16'384u);
  }
  // credit_score's model is spelled out (as its defaults), the others take no config.
  const std::vector<std::pair<std::string, std::string>> credit_score_config = {
      {"bias", "-0.5"}, {"score_max", "850"}, {"score_min", "300"},
      {"weights", "-2.5,-1.8,0.08,-0.9,-0.25,0.6"}};
  EXPECT_EQ(config->pools[2].plugin_config, credit_score_config);
  for (size_t i : {0, 1, 3, 4}) EXPECT_TRUE(config->pools[i].plugin_config.empty()) << types[i];
}

TEST(PerfConfigShipped, BigHostDescribesATwoSocketServer) {
  Result<PerfConfig> config = load_perf_config(KEEL_SOURCE_DIR "/perf/big-host.toml", {"/opt/keel"});
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
  ASSERT_EQ(config->chains.size(), std::size(chain_names) + 1);
  for (size_t i = 0; i < std::size(chain_names); ++i) {
    EXPECT_EQ(config->chains[i].name, chain_names[i]);
    EXPECT_EQ(config->chains[i].shards, 4u);
  }
  EXPECT_TRUE(config->chains.back().is_system());
  const char* pool_types[] = {"hash", "credit_score", "var_mc", "interest", "noop"};
  const uint32_t pool_threads[] = {16, 16, 16, 16, 4};
  ASSERT_EQ(config->pools.size(), std::size(pool_types));
  for (size_t i = 0; i < std::size(pool_types); ++i) {
    EXPECT_EQ(config->pools[i].compute_types, std::vector<std::string>{pool_types[i]});
    EXPECT_EQ(config->pools[i].plugin_path, "/opt/keel/plugins/keel_" + std::string(pool_types[i]) + ".so");
    EXPECT_EQ(config->pools[i].threads_per_node, pool_threads[i]);
    EXPECT_TRUE(config->pools[i].plugin_config.empty());
  }
  EXPECT_FALSE(config->pipeline.enabled);
  EXPECT_EQ(config->balancer.heavy_tps, 200'000u);
  EXPECT_EQ(config->balancer.medium_tps, 20'000u);
  EXPECT_EQ(config->balancer.weight_max, 64u);
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
    {"engine", "idle_commit_poll_us", 1, 1'000'000,
     [](const PerfConfig& c) -> uint64_t { return c.engine.idle_commit_poll_us; }},
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

namespace keel::config {
namespace {

TEST(PerfConfig, ProductsContractsAndFlowLoad) {
  const PerfConfig config = parsed(
      "[[chain]]\nname = \"loans\"\n[[chain]]\nname = \"cards\"\n"
      "[[product]]\nname = \"retail\"\npriority = 9\nrunning_max = 64\n[[product]]\nname = \"batch\"\n"
      "[[contract]]\nfile = \"flows/a.toml\"\n[[contract]]\nfile = \"/abs/b.toml\"\nchains = [\"cards\"]\n"
      "[load]\nflow_contracts = [\"flows/a.toml\"]\nflow_percent = 3\n",
      "/etc/keel/engine.toml");
  ASSERT_EQ(config.products.size(), 2u);
  EXPECT_EQ(config.products[0].name, "retail");
  EXPECT_EQ(config.products[0].priority, 9u);
  EXPECT_EQ(config.products[0].running_max, 64u);
  EXPECT_EQ(config.products[1].priority, 0u);
  EXPECT_EQ(config.products[1].running_max, 1024u);
  ASSERT_EQ(config.contracts.size(), 2u);
  EXPECT_EQ(config.contracts[0].file, "/etc/keel/flows/a.toml") << "relative to the config's directory";
  EXPECT_TRUE(config.contracts[0].chains.empty());
  EXPECT_EQ(config.contracts[1].file, "/abs/b.toml");
  EXPECT_EQ(config.contracts[1].chains, std::vector<std::string>{"cards"});
  EXPECT_EQ(config.load.flow_contracts, std::vector<std::string>{"/etc/keel/flows/a.toml"});
  EXPECT_EQ(config.load.flow_percent, 3u);
  EXPECT_TRUE(parsed("").load.flow_contracts.empty());
  EXPECT_EQ(parsed("").load.flow_percent, 0u);
}

TEST(PerfConfig, BadProductsContractsAndFlowLoad) {
  EXPECT_EQ(error_of("[[product]]\nname = \"Retail\"\n"),
            "test.toml:2:8: product[0].name: must be 1 to 32 characters of [a-z0-9_], got \"Retail\"");
  EXPECT_EQ(error_of("[[product]]\nname = \"a\"\n[[product]]\nname = \"a\"\n"),
            "test.toml:4:8: product[1].name: duplicate product name \"a\" (first at line 2)");
  EXPECT_EQ(error_of("[[product]]\nname = \"a\"\nrunning_max = 0\n"),
            "test.toml:3:15: product[0].running_max: must be from 1 to 1048576, got 0");
  EXPECT_EQ(error_of("[[product]]\npriority = 1\n"), "test.toml:1:1: product[0].name: required key is missing");
  EXPECT_EQ(error_of("[[contract]]\nchains = []\n"), "test.toml:1:1: contract[0].file: required key is missing");
  EXPECT_EQ(error_of("[[chain]]\nname = \"a\"\n[[contract]]\nfile = \"x.toml\"\nchains = [\"b\"]\n"),
            "test.toml:5:11: contract[0].chains[0]: no [[chain]] is named \"b\"");
  EXPECT_EQ(error_of("[[contract]]\nfile = \"x.toml\"\ncolor = 1\n"), "test.toml:3:9: contract[0].color: unknown key");
  EXPECT_EQ(error_of("[load]\nflow_contracts = \"a.toml\"\n"),
            "test.toml:2:18: load.flow_contracts: expected an array of strings, got a string");
  EXPECT_EQ(error_of("[load]\ncompute_percent = 60\nflow_percent = 50\n"),
            "test.toml:3:16: load.flow_percent: compute_percent + flow_percent must be at most 100, got 110");
}

}  // namespace
}  // namespace keel::config
