#include "engine/config/perf_config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <array>
#include <bit>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <system_error>
#include <utility>

// toml++ stays in this file so that only one translation unit pays for its templates.
#include <toml++/toml.h>

#include "engine/config/text_file.h"

namespace keel::config {
namespace {

using Status = Result<void>;

// A perf config is a few kilobytes; the bound stops a mistaken path (a log, /dev/zero)
// from being read without end.
constexpr size_t config_bytes_max = 1 << 20;
// Chain, pool and compute type names; a compute type's limit is the ledger's and the plugin
// ABI's too (ledger::compute_type_bytes_max, KEEL_COMPUTE_TYPE_CHARS_MAX).
constexpr size_t name_chars_max = 32;
// A pipeline message's header takes this much of its ring slot.
constexpr uint64_t pipeline_header_bytes = 32;
// A payload too big for its slot travels in the payload arena, which must hold this many
// so that a burst does not stall on arena space before the ring itself is full.
constexpr uint64_t arena_payloads_min = 16;
// As many as a plugin may serve (KEEL_PLUGIN_COMPUTE_TYPES_MAX in keel/plugin.h).
constexpr size_t pool_compute_types_max = 64;

template <class Enum>
struct Choice {
  std::string_view name;
  Enum value;
};

constexpr std::array<Choice<IdleStrategy>, 3> idle_choices{{
    {"spin", IdleStrategy::spin},
    {"adaptive", IdleStrategy::adaptive},
    {"sleep", IdleStrategy::sleep},
}};

constexpr std::array<Choice<FsyncPolicy>, 2> fsync_choices{{
    {"always", FsyncPolicy::always},
    {"none", FsyncPolicy::none},
}};

constexpr std::array<Choice<PersistBackend>, 2> backend_choices{{
    {"io_uring", PersistBackend::io_uring},
    {"psync", PersistBackend::psync},
}};

constexpr std::array<Choice<CreditsMode>, 2> credits_choices{{
    {"off", CreditsMode::off},
    {"required", CreditsMode::required},
}};

// A chain's credit_granters, at most (a list an operator reads at a glance).
constexpr size_t credit_granters_max = 64;

constexpr std::array<Choice<TopologySource>, 3> source_choices{{
    {"host", TopologySource::host},
    {"synthetic", TopologySource::synthetic},
    {"xml", TopologySource::xml},
}};

// Which characters a name may hold; label is how messages spell the set.
struct NameRule {
  std::string_view label;
  bool upper_allowed;
  bool hyphen_allowed;
  bool dot_allowed = false;
};

constexpr NameRule instance_rule{"[A-Za-z0-9_-]", true, true};
constexpr NameRule chain_rule{"[a-z0-9_-]", false, true};
constexpr NameRule pool_rule{"[a-z0-9_]", false, false};
constexpr NameRule bare_key_rule{"[A-Za-z0-9_-]", true, true};  // TOML's bare keys
// Client ids (ledger::is_client_id; 32 characters like every name here).
constexpr NameRule client_id_rule{"[a-z0-9_.-]", false, true, true};

// The keys each table may hold; anything else is an error, so a typo never silently
// leaves a default in place.
constexpr std::string_view root_keys[] = {"engine",    "topology", "layout", "tiles",  "rings", "chain",
                                          "pool",      "product",  "contract", "scheduler", "balancer", "pipeline", "ledger", "load",
                                          "metrics"};
constexpr std::string_view contract_keys[] = {"file", "chains"};
constexpr std::string_view product_keys[] = {"name", "priority", "running_max"};
constexpr std::string_view engine_keys[] = {"instance", "idle", "idle_spin_polls",
                                            "idle_sleep_us_max", "idle_commit_poll_us", "tile_budget"};
constexpr std::string_view topology_keys[] = {"source", "synthetic", "xml_path"};
constexpr std::string_view layout_keys[] = {"compute_cores_per_node"};
constexpr std::string_view tile_class_keys[] = {"shard", "scheduler", "persist", "balancer",
                                                "timer", "pipeline",  "gateway"};
constexpr TileClass TilesSection::*tile_class_members[] = {
    &TilesSection::shard,    &TilesSection::scheduler, &TilesSection::persist, &TilesSection::balancer,
    &TilesSection::timer,    &TilesSection::pipeline,  &TilesSection::gateway};
static_assert(std::size(tile_class_keys) == std::size(tile_class_members));
constexpr std::string_view tile_keys[] = {"busy_poll", "weight"};
constexpr std::string_view rings_keys[] = {"capacity", "slot_bytes", "arena_bytes"};
constexpr std::string_view chain_keys[] = {"name",    "shards",         "block_txs_max",  "block_us_max",
                                           "credits", "credits_per_tx", "credit_granters"};
constexpr std::string_view ledger_keys[] = {"data_dir",          "fsync",       "persist_backend",
                                            "segment_bytes_max", "segment_preallocate", "segment_spare_at_percent", "segment_zero_mb_per_s", "segment_recycled_max", "commits_in_flight", "log_buffer_huge_pages", "direct_io", "commit_stall_warn_ms", "snapshot_every_blocks",
                                            "clients_max",       "client_in_flight_max", "compute_pending_max"};
constexpr std::string_view scheduler_keys[] = {"leases_max",          "spill_percent",        "restart_backoff_ms",
                                               "restart_backoff_ms_max", "heartbeat_timeout_ms", "ready_timeout_ms",
                                               "crashes_max",          "crash_window_ms",      "tier_weights"};
constexpr std::string_view balancer_keys[] = {"enabled",           "window_ms",         "half_life_ms",
                                              "heavy_tps",         "medium_tps",        "margin_percent",
                                              "windows_to_change", "downgrade_interval_ms", "min_share_percent",
                                              "heavy_cores_max",   "weight_max"};
constexpr std::string_view load_keys[] = {"enabled",         "clients",         "accounts_per_chain",
                                          "cross_shard_percent", "rate_per_second", "chain_rate_per_second",
                                          "shape",           "compute_percent", "flow_contracts",
                                          "flow_percent"};
constexpr std::string_view load_shape_keys[] = {"chain", "from_ms", "to_ms", "rate_per_second"};
// [[load.shape]]s, at most: a run's script an operator reads at a glance.
constexpr size_t load_shapes_max = 256;
// A shape's times, at most: a day after the run starts.
constexpr int64_t load_shape_ms_max = 86'400'000;
constexpr std::string_view pool_keys[] = {"compute_types", "compute_type",     "plugin",
                                          "threads_per_node", "in_flight_max", "timeout_ms",
                                          "retries_max",   "backoff_ms",       "output_bytes_max",
                                          "config"};
constexpr std::string_view pipeline_keys[] = {"enabled", "payload_bytes", "rate_per_second"};
constexpr std::string_view metrics_keys[] = {"enabled", "listen"};

bool char_allowed(char c, const NameRule& rule) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         (rule.upper_allowed && c >= 'A' && c <= 'Z') || (rule.hyphen_allowed && c == '-') ||
         (rule.dot_allowed && c == '.');
}

bool name_allowed(std::string_view name, const NameRule& rule) {
  if (name.empty() || name.size() > name_chars_max) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return char_allowed(c, rule); });
}

// The plain words messages use for a TOML type: "an integer", "a date-time".
std::string_view type_words(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// A string as messages show it: in double quotes, with quotes, backslashes and control
// characters escaped so that the message stays on one line.
std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A key as a dotted path shows it: bare when TOML allows it bare, else quoted as TOML
// would, so that "a.b" = 1 does not read as a nested key and the message stays one line.
std::string printable_key(std::string_view key) {
  const bool is_bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return char_allowed(c, bare_key_rule);
  });
  return is_bare ? std::string(key) : in_quotes(key);
}

std::string position(std::string_view path, const toml::source_position& at) {
  return std::string(path) + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
}

// "<path>:<line>:<column>: <key>: <reason>", placed at node.
Error error_at(std::string_view path, const toml::node& node, std::string_view key,
               std::string_view reason) {
  return make_error(position(path, node.source().begin) + ": " + std::string(key), reason);
}

// Each name seen in an array of tables, with the line it was first given on.
using FirstLines = std::map<std::string, uint32_t, std::less<>>;

// One TOML table under check: the file it came from, and the dotted key naming it ("" for
// the document root). Each read leaves its output untouched when the key is absent.
class TableReader {
 public:
  TableReader(std::string_view path, const toml::table& table, std::string dotted)
      : path_(path), table_(&table), dotted_(std::move(dotted)) {}

  std::string_view path() const { return path_; }
  const toml::table& table() const { return *table_; }

  // The dotted name of key inside this table: "engine.idle", "chain[1].shards".
  std::string key_path(std::string_view key) const {
    return dotted_.empty() ? std::string(key) : dotted_ + "." + std::string(key);
  }

  TableReader child(const toml::table& table, std::string_view key) const {
    return TableReader(path_, table, key_path(key));
  }

  Error error(const toml::node& node, std::string_view key, std::string_view reason) const {
    return error_at(path_, node, key_path(key), reason);
  }

  // An error placed at this table itself, for a key that is not there.
  Error error_at_table(std::string_view key, std::string_view reason) const {
    return error(*table_, key, reason);
  }

  Error type_error(const toml::node& node, std::string_view key, std::string_view expected) const {
    return error(
        node, key,
        "expected " + std::string(expected) + ", got " + std::string(type_words(node.type())));
  }

  // Fails at the first key (in key order) that known does not list.
  Status expect_only(std::span<const std::string_view> known) const {
    for (auto&& [key, node] : *table_) {
      bool listed = false;
      for (std::string_view name : known) listed = listed || name == key.str();
      if (!listed) return error(node, printable_key(key.str()), "unknown key");
    }
    return {};
  }

  // The node at key, or nullptr when the key is absent; fails when it is not of type.
  Result<const toml::node*> find(std::string_view key, toml::node_type type,
                                 std::string_view expected) const {
    const toml::node* node = table_->get(key);
    if (node != nullptr && node->type() != type) return type_error(*node, key, expected);
    return node;
  }

  Result<const toml::table*> find_table(std::string_view key) const {
    Result<const toml::node*> node = find(key, toml::node_type::table, "a table");
    if (!node) return node.error();
    return *node == nullptr ? nullptr : (*node)->as_table();
  }

  Status read_bool(std::string_view key, bool& value) const {
    Result<const toml::node*> node = find(key, toml::node_type::boolean, "a boolean");
    if (!node) return node.error();
    if (*node != nullptr) value = (*node)->as_boolean()->get();
    return {};
  }

  Status read_string(std::string_view key, std::string& value) const {
    Result<const toml::node*> node = find(key, toml::node_type::string, "a string");
    if (!node) return node.error();
    if (*node != nullptr) value = (*node)->as_string()->get();
    return {};
  }

  // Reads an integer and keeps it when allowed(got) holds; otherwise fails with
  // "must be <rule>, got <got>".
  template <class Int, class Allowed>
  Status read_integer_if(std::string_view key, const std::string& rule, Allowed allowed,
                         Int& value) const {
    Result<const toml::node*> node = find(key, toml::node_type::integer, "an integer");
    if (!node) return node.error();
    if (*node == nullptr) return {};
    const int64_t got = (*node)->as_integer()->get();
    if (!allowed(got)) {
      return error(**node, key, "must be " + rule + ", got " + std::to_string(got));
    }
    // A rule wider than its field is a bug in this file, not a user's mistake.
    assert(std::in_range<Int>(got));
    value = static_cast<Int>(got);
    return {};
  }

  template <class Int>
  Status read_integer(std::string_view key, int64_t min, int64_t max, Int& value) const {
    const std::string rule = "from " + std::to_string(min) + " to " + std::to_string(max);
    auto in_range = [=](int64_t got) { return got >= min && got <= max; };
    return read_integer_if(key, rule, in_range, value);
  }

  template <class Int>
  Status read_power_of_two(std::string_view key, int64_t min, int64_t max, Int& value) const {
    const std::string rule =
        "a power of two from " + std::to_string(min) + " to " + std::to_string(max);
    auto allowed = [=](int64_t got) {
      return got >= min && got <= max && std::has_single_bit(static_cast<uint64_t>(got));
    };
    return read_integer_if(key, rule, allowed, value);
  }

  template <class Enum, size_t N>
  Status read_choice(std::string_view key, const std::array<Choice<Enum>, N>& choices,
                     Enum& value) const {
    std::string text;
    if (Status s = read_string(key, text); !s || !table_->contains(key)) return s;
    std::string rule;
    for (const Choice<Enum>& choice : choices) {
      if (choice.name == text) {
        value = choice.value;
        return {};
      }
      rule += (rule.empty() ? "" : ", ") + in_quotes(choice.name);
    }
    return error(*table_->get(key), key, "must be one of " + rule + ", got " + in_quotes(text));
  }

  // "must be 1 to 32 characters of <rule>, got <text>", placed at node.
  Error name_error(const toml::node& node, std::string_view key, const NameRule& rule,
                   std::string_view text) const {
    return error(node, key,
                 "must be 1 to " + std::to_string(name_chars_max) + " characters of " +
                     std::string(rule.label) + ", got " + in_quotes(text));
  }

  Status read_name(std::string_view key, const NameRule& rule, std::string& value) const {
    std::string text;
    if (Status s = read_string(key, text); !s || !table_->contains(key)) return s;
    if (!name_allowed(text, rule)) return name_error(*table_->get(key), key, rule, text);
    value = std::move(text);
    return {};
  }

  Status read_required_name(std::string_view key, const NameRule& rule, std::string& value) const {
    if (!table_->contains(key)) return error_at_table(key, "required key is missing");
    return read_name(key, rule, value);
  }

  // Fails when the string at key was already seen in an earlier table of the same array.
  Status check_unique(std::string_view key, std::string_view what, FirstLines& first_lines) const {
    return check_unique(*table_->get(key), key, what, first_lines);
  }

  // The same for a string node named key (which may be an array item, "types[1]").
  Status check_unique(const toml::node& node, std::string_view key, std::string_view what,
                      FirstLines& first_lines) const {
    const std::string& text = node.as_string()->get();
    auto [first, inserted] = first_lines.try_emplace(text, node.source().begin.line);
    if (inserted) return {};
    return error(node, key,
                 "duplicate " + std::string(what) + " " + in_quotes(text) + " (first at line " +
                     std::to_string(first->second) + ")");
  }

 private:
  std::string_view path_;
  const toml::table* table_;
  std::string dotted_;
};

// Runs read on the sub-table at key, if there is one, to fill section.
template <class Section>
Status read_section(const TableReader& parent, std::string_view key,
                    Status (*read)(const TableReader&, Section&), Section& section) {
  Result<const toml::table*> table = parent.find_table(key);
  if (!table) return table.error();
  if (*table == nullptr) return {};
  return read(parent.child(**table, key), section);
}

// Runs read on each table of the array of tables at key, in order, naming each "key[i]".
template <class Read>
Status read_each(const TableReader& parent, std::string_view key, Read read) {
  Result<const toml::node*> node = parent.find(key, toml::node_type::array, "an array of tables");
  if (!node) return node.error();
  if (*node == nullptr) return {};
  const toml::array& array = *(*node)->as_array();
  for (size_t index = 0; index < array.size(); ++index) {
    const std::string item_key = std::string(key) + "[" + std::to_string(index) + "]";
    const toml::table* table = array[index].as_table();
    if (table == nullptr) return parent.type_error(array[index], item_key, "a table");
    if (Status s = read(parent.child(*table, item_key)); !s) return s;
  }
  return {};
}

// Each read_* below runs its steps in order and stops at the first that fails.

Status read_engine(const TableReader& reader, EngineSection& engine) {
  Status s = reader.expect_only(engine_keys);
  if (s) s = reader.read_name("instance", instance_rule, engine.instance);
  if (s) s = reader.read_choice("idle", idle_choices, engine.idle);
  if (s) s = reader.read_integer("idle_spin_polls", 0, 1'000'000, engine.idle_spin_polls);
  if (s) s = reader.read_integer("idle_sleep_us_max", 1, 1'000'000, engine.idle_sleep_us_max);
  if (s) s = reader.read_integer("idle_commit_poll_us", 1, 1'000'000, engine.idle_commit_poll_us);
  if (s) s = reader.read_integer("tile_budget", 1, 65'536, engine.tile_budget);
  return s;
}

// The key that topology.source = source_name needs must be there and not empty.
Status require_for_source(const TableReader& reader, std::string_view key, const std::string& value,
                          std::string_view source_name) {
  const std::string because = " (source is " + in_quotes(source_name) + ")";
  if (!reader.table().contains(key)) {
    return reader.error_at_table(key, "required key is missing" + because);
  }
  if (value.empty()) {
    return reader.error(*reader.table().get(key), key, "must not be empty" + because);
  }
  return {};
}

Status read_topology(const TableReader& reader, TopologySection& topology) {
  Status s = reader.expect_only(topology_keys);
  if (s) s = reader.read_choice("source", source_choices, topology.source);
  if (s) s = reader.read_string("synthetic", topology.synthetic);
  if (s) s = reader.read_string("xml_path", topology.xml_path);
  if (s && topology.source == TopologySource::synthetic) {
    s = require_for_source(reader, "synthetic", topology.synthetic, "synthetic");
  }
  if (s && topology.source == TopologySource::xml) {
    s = require_for_source(reader, "xml_path", topology.xml_path, "xml");
  }
  // A relative xml_path names a file next to the config, wherever keel was started from.
  if (s && !topology.xml_path.empty()) {
    const std::filesystem::path directory = std::filesystem::path(reader.path()).parent_path();
    topology.xml_path = (directory / topology.xml_path).lexically_normal().string();
  }
  return s;
}

Status read_layout(const TableReader& reader, LayoutSection& layout) {
  Status s = reader.expect_only(layout_keys);
  if (s) s = reader.read_integer("compute_cores_per_node", 0, 4096, layout.compute_cores_per_node);
  return s;
}

Status read_tile_class(const TableReader& reader, TileClass& tile) {
  Status s = reader.expect_only(tile_keys);
  if (s) s = reader.read_bool("busy_poll", tile.busy_poll);
  if (s) s = reader.read_integer("weight", 1, 1000, tile.weight);
  return s;
}

Status read_tiles(const TableReader& reader, TilesSection& tiles) {
  Status s = reader.expect_only(tile_class_keys);
  for (size_t i = 0; s && i < std::size(tile_class_keys); ++i) {
    s = read_section(reader, tile_class_keys[i], read_tile_class, tiles.*tile_class_members[i]);
  }
  return s;
}

Status read_rings(const TableReader& reader, RingsSection& rings) {
  constexpr int64_t arena_bytes_min = 4096;
  constexpr int64_t arena_bytes_max = 1 << 30;
  const std::string arena_rule = "0 or a power of two from " + std::to_string(arena_bytes_min) +
                                 " to " + std::to_string(arena_bytes_max);
  auto arena_allowed = [](int64_t got) {
    return got == 0 || (got >= arena_bytes_min && got <= arena_bytes_max &&
                        std::has_single_bit(static_cast<uint64_t>(got)));
  };
  Status s = reader.expect_only(rings_keys);
  if (s) s = reader.read_power_of_two("capacity", 64, 1 << 20, rings.capacity);
  if (s) s = reader.read_power_of_two("slot_bytes", 64, 4096, rings.slot_bytes);
  if (s) s = reader.read_integer_if("arena_bytes", arena_rule, arena_allowed, rings.arena_bytes);
  return s;
}

// credits, credits_per_tx (only with credits = "required": given with "off" it would
// silently charge nothing) and credit_granters (client ids, unique).
Status read_chain_credits(const TableReader& reader, ChainConfig& chain) {
  Status s = reader.read_choice("credits", credits_choices, chain.credits);
  if (s) s = reader.read_integer("credits_per_tx", 1, 1'000'000, chain.credits_per_tx);
  if (s && chain.credits != CreditsMode::required && reader.table().contains("credits_per_tx"))
    return reader.error(*reader.table().get("credits_per_tx"), "credits_per_tx",
                        "only applies with credits = \"required\"; this chain has credits = \"off\"");
  if (!s || !reader.table().contains("credit_granters")) return s;
  Result<const toml::node*> node = reader.find("credit_granters", toml::node_type::array, "an array of strings");
  if (!node) return node.error();
  const toml::array& array = *(*node)->as_array();
  if (array.empty() || array.size() > credit_granters_max)
    return reader.error(array, "credit_granters",
                        "must hold from 1 to " + std::to_string(credit_granters_max) + " client ids, got " +
                            std::to_string(array.size()));
  FirstLines first_lines;
  chain.credit_granters.clear();
  for (size_t index = 0; index < array.size(); ++index) {
    const std::string item_key = "credit_granters[" + std::to_string(index) + "]";
    const toml::node& item = array[index];
    if (!item.is_string()) return reader.type_error(item, item_key, "a string");
    const std::string& id = item.as_string()->get();
    if (!name_allowed(id, client_id_rule)) return reader.name_error(item, item_key, client_id_rule, id);
    if (Status unique = reader.check_unique(item, item_key, "credit granter", first_lines); !unique) return unique;
    chain.credit_granters.push_back(id);
  }
  return {};
}

Status read_chain(const TableReader& reader, FirstLines& first_lines,
                  std::vector<ChainConfig>& chains) {
  ChainConfig chain;
  Status s = reader.expect_only(chain_keys);
  if (s) s = reader.read_required_name("name", chain_rule, chain.name);
  if (s) s = reader.read_integer("shards", 1, 256, chain.shards);
  if (s) s = reader.read_integer("block_txs_max", 1, 65'536, chain.block_txs_max);
  if (s) s = reader.read_integer("block_us_max", 1, 10'000'000, chain.block_us_max);
  if (s) s = read_chain_credits(reader, chain);
  // A charged submission needs room for itself and its credit_spend in one block.
  if (s && chain.credits == CreditsMode::required && chain.block_txs_max < 2)
    return reader.error(*reader.table().get("block_txs_max"), "block_txs_max",
                        "must be at least 2 with credits = \"required\" (a block holds a submission and its "
                        "credit_spend), got 1");
  if (s) s = reader.check_unique("name", "chain name", first_lines);
  if (s && chain.is_system() && chain.shards != 1)
    s = reader.error(*reader.table().get("shards"), "shards", "the system chain has exactly one shard");
  if (s) chains.push_back(std::move(chain));
  return s;
}

// Where pool plugins are found. A relative path is taken from the config file's directory
// and a bare name from keel's own directory; both are made absolute, so that a pool process
// loads the same file whatever its working directory (and dlopen never searches the
// library path for them).
class PluginLocator {
 public:
  PluginLocator(std::string_view config_path, std::string binary_directory)
      : config_directory_(std::filesystem::path(config_path).parent_path()),
        binary_directory_(std::move(binary_directory)) {}

  // <binary directory>/plugins/keel_<name>.so. The directory comes from /proc/self/exe
  // when none was given, read once, on the first bare name.
  Result<std::string> for_name(std::string_view name) {
    if (binary_directory_.empty()) {
      std::error_code error;
      const std::filesystem::path program = std::filesystem::read_symlink("/proc/self/exe", error);
      if (error) return make_error("cannot find keel's directory: /proc/self/exe", error.message());
      binary_directory_ = program.parent_path().string();
    }
    const std::string file = "keel_" + std::string(name) + ".so";
    return absolute(std::filesystem::path(binary_directory_) / "plugins" / file);
  }

  // A path as given, relative to the config file's directory unless it is absolute.
  Result<std::string> for_path(std::string_view path) const {
    return absolute(config_directory_ / std::filesystem::path(path));
  }

 private:
  static Result<std::string> absolute(const std::filesystem::path& path) {
    std::error_code error;
    const std::filesystem::path resolved = std::filesystem::absolute(path, error);
    if (error) return make_error("cannot make the path absolute", error.message());
    return resolved.lexically_normal().string();
  }

  std::filesystem::path config_directory_;
  std::string binary_directory_;
};

// What reading one pool needs from the pools before it and from the parse.
struct PoolContext {
  FirstLines type_first_lines;
  PluginLocator plugins;
};

// The pool's compute types: the array compute_types or its shorthand compute_type, exactly
// one of the two. Each is checked as a name and must not appear in any pool before.
Status read_compute_types(const TableReader& reader, FirstLines& first_lines,
                          std::vector<std::string>& types) {
  const toml::node* shorthand = reader.table().get("compute_type");
  const bool listed = reader.table().contains("compute_types");
  if (shorthand != nullptr && listed) {
    return reader.error(*shorthand, "compute_type", "give compute_type or compute_types, not both");
  }
  if (shorthand != nullptr) {
    std::string type;
    Status s = reader.read_name("compute_type", pool_rule, type);
    if (s) s = reader.check_unique("compute_type", "compute type", first_lines);
    if (s) types.push_back(std::move(type));
    return s;
  }
  if (!listed) {
    return reader.error_at_table("compute_types",
                                 "required key is missing (or its shorthand compute_type)");
  }
  Result<const toml::node*> node =
      reader.find("compute_types", toml::node_type::array, "an array of strings");
  if (!node) return node.error();
  const toml::array& array = *(*node)->as_array();
  if (array.empty() || array.size() > pool_compute_types_max) {
    return reader.error(array, "compute_types",
                        "must hold from 1 to " + std::to_string(pool_compute_types_max) +
                            " compute types, got " + std::to_string(array.size()));
  }
  for (size_t index = 0; index < array.size(); ++index) {
    const std::string item_key = "compute_types[" + std::to_string(index) + "]";
    const toml::node& item = array[index];
    if (!item.is_string()) return reader.type_error(item, item_key, "a string");
    const std::string& type = item.as_string()->get();
    if (!name_allowed(type, pool_rule)) return reader.name_error(item, item_key, pool_rule, type);
    if (Status s = reader.check_unique(item, item_key, "compute type", first_lines); !s) return s;
    types.push_back(type);
  }
  return {};
}

// The pool's plugin, required: a bare name of pool_rule's characters (a library next to
// keel), or anything with a '/' (a path). The file itself is not looked at: the pool
// process loads it and reports a missing one.
Status read_plugin(const TableReader& reader, PluginLocator& plugins, PoolConfig& pool) {
  if (!reader.table().contains("plugin")) return reader.error_at_table("plugin", "required key is missing");
  if (Status s = reader.read_string("plugin", pool.plugin); !s) return s;
  const toml::node& node = *reader.table().get("plugin");
  const bool is_path = pool.plugin.find('/') != std::string::npos;
  if (!is_path && !name_allowed(pool.plugin, pool_rule)) {
    return reader.error(node, "plugin",
                        "must be a path with a '/' or a name of 1 to " +
                            std::to_string(name_chars_max) + " characters of " +
                            std::string(pool_rule.label) +
                            " (<keel's directory>/plugins/keel_<name>.so), got " +
                            in_quotes(pool.plugin));
  }
  // dlopen takes a C string: a NUL would cut the path short.
  if (pool.plugin.find('\0') != std::string::npos) {
    return reader.error(node, "plugin", "must not contain a NUL character, got " + in_quotes(pool.plugin));
  }
  Result<std::string> resolved = is_path ? plugins.for_path(pool.plugin) : plugins.for_name(pool.plugin);
  if (!resolved) return reader.error(node, "plugin", resolved.error().message);
  pool.plugin_path = std::move(*resolved);
  return {};
}

// value's shortest text that reads back as the same double, in format (std::to_chars).
std::string shortest_text(double value, std::chars_format format) {
  std::array<char, 32> buffer;  // the longest, "-2.2250738585072014e-308", is 24 characters
  const auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, format);
  assert(error == std::errc{});
  return std::string(buffer.data(), end);
}

// A float as TOML text that reads back as the same double: the shortest form that round-
// trips and that TOML reads as a float, not an integer ("1" is "1.0", 2^70 "1.1805916207174113e+21").
std::string float_text(double value) {
  std::string text = shortest_text(value, std::chars_format::general);
  // A '.' or an exponent makes it a float; "inf", "-inf", "nan" and "-nan" are TOML floats too.
  if (text.find_first_of(".en") != std::string::npos) return text;
  std::string scientific = shortest_text(value, std::chars_format::scientific);
  text += ".0";
  return scientific.size() < text.size() ? scientific : text;
}

// A scalar as a plugin sees it: a string's contents, or the TOML text of an integer, float
// or boolean. nullopt for anything else (a table, an array, a date or time).
std::optional<std::string> scalar_text(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return node.as_string()->get();
    case toml::node_type::integer: return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: return float_text(node.as_floating_point()->get());
    case toml::node_type::boolean: return std::string(node.as_boolean()->get() ? "true" : "false");
    default: return std::nullopt;
  }
}

// One leaf of [pool.config]: its dotted key and text as the plugin sees them, and where it
// was written, for messages.
struct FlatEntry {
  std::string key;
  std::string value;
  const toml::node* node;
  std::string key_path;  // as messages show it: pool[0].config.limits.max
};

constexpr std::string_view scalar_words = "a string, a number or a boolean";
// The plugin receives NUL-terminated strings: a NUL would cut a key or a value short.
constexpr std::string_view nul_reason = "must not contain a NUL character";

// The text of an array: its elements' texts joined by ','. Elements must be scalars, and
// strings must not hold the ',' that separates them.
Result<std::string> array_text(const TableReader& reader, const toml::array& array,
                               std::string_view key) {
  std::string text;
  for (size_t index = 0; index < array.size(); ++index) {
    const std::string item_key = std::string(key) + "[" + std::to_string(index) + "]";
    const toml::node& item = array[index];
    const std::optional<std::string> item_text = scalar_text(item);
    if (!item_text) {
      const std::string why = item.is_table()   ? " (an array of tables cannot be flattened)"
                              : item.is_array() ? " (a nested array cannot be flattened)"
                                                : "";
      return reader.error(item, item_key,
                          "expected " + std::string(scalar_words) + ", got " +
                              std::string(type_words(item.type())) + why);
    }
    if (item.is_string() && item_text->find(',') != std::string::npos) {
      return reader.error(item, item_key,
                          "must not contain ',' (array elements are joined by ','), got " +
                              in_quotes(*item_text));
    }
    if (item_text->find('\0') != std::string::npos) return reader.error(item, item_key, nul_reason);
    text += (index == 0 ? "" : ",") + *item_text;
  }
  return text;
}

// Appends one entry per leaf of table to entries, keyed by prefix and the dotted path
// below it (keel/plugin.h: "limits.max").
Status flatten(const TableReader& reader, const std::string& prefix, std::vector<FlatEntry>& entries) {
  for (auto&& [toml_key, node] : reader.table()) {
    const std::string key(toml_key.str());
    const std::string shown = printable_key(key);
    if (key.empty()) return reader.error(node, shown, "must not be an empty key");
    if (key.find('\0') != std::string::npos) return reader.error(node, shown, nul_reason);
    // The engine hands each entry to the pool process as key=value: the first '=' ends the key.
    if (key.find('=') != std::string::npos) return reader.error(node, shown, "must not contain '='");
    const std::string flat_key = prefix.empty() ? key : prefix + "." + key;
    if (const toml::table* table = node.as_table()) {
      if (Status s = flatten(reader.child(*table, shown), flat_key, entries); !s) return s;
      continue;
    }
    std::optional<std::string> text;
    if (const toml::array* array = node.as_array()) {
      Result<std::string> joined = array_text(reader, *array, shown);
      if (!joined) return joined.error();
      text = std::move(*joined);
    } else {
      text = scalar_text(node);
      if (!text) return reader.type_error(node, shown, "a string, a number, a boolean, an array or a table");
      if (text->find('\0') != std::string::npos) return reader.error(node, shown, nul_reason);
    }
    entries.push_back(FlatEntry{flat_key, std::move(*text), &node, reader.key_path(shown)});
  }
  return {};
}

bool written_before(const toml::node& a, const toml::node& b) {
  const toml::source_position& at_a = a.source().begin;
  const toml::source_position& at_b = b.source().begin;
  return at_a.line != at_b.line ? at_a.line < at_b.line : at_a.column < at_b.column;
}

// [pool.config], flattened for the plugin's init and sorted by key. Two leaves that
// flatten to one key ("a.b" = 1 beside [pool.config.a] b = 2) fail at the later one.
Status read_plugin_config(const TableReader& reader,
                          std::vector<std::pair<std::string, std::string>>& config) {
  Result<const toml::table*> table = reader.find_table("config");
  if (!table) return table.error();
  if (*table == nullptr) return {};
  std::vector<FlatEntry> entries;
  if (Status s = flatten(reader.child(**table, "config"), "", entries); !s) return s;
  std::sort(entries.begin(), entries.end(),
            [](const FlatEntry& a, const FlatEntry& b) { return a.key < b.key; });
  for (size_t index = 1; index < entries.size(); ++index) {
    const FlatEntry* first = &entries[index - 1];
    const FlatEntry* second = &entries[index];
    if (first->key != second->key) continue;
    if (written_before(*second->node, *first->node)) std::swap(first, second);
    return error_at(reader.path(), *second->node, second->key_path,
                    "duplicate plugin config key " + in_quotes(second->key) +
                        " after flattening (first at line " +
                        std::to_string(first->node->source().begin.line) + ")");
  }
  for (FlatEntry& entry : entries) config.emplace_back(std::move(entry.key), std::move(entry.value));
  return {};
}

Status read_pool(const TableReader& reader, PoolContext& context, std::vector<PoolConfig>& pools) {
  PoolConfig pool;
  Status s = reader.expect_only(pool_keys);
  if (s) s = read_compute_types(reader, context.type_first_lines, pool.compute_types);
  if (s) s = read_plugin(reader, context.plugins, pool);
  if (s) s = reader.read_integer("threads_per_node", 1, 1024, pool.threads_per_node);
  if (s) s = reader.read_power_of_two("in_flight_max", 16, 65'536, pool.in_flight_max);
  if (s) s = reader.read_integer("timeout_ms", 1, 3'600'000, pool.timeout_ms);
  if (s) s = reader.read_integer("retries_max", 0, 100, pool.retries_max);
  if (s) s = reader.read_integer("backoff_ms", 0, 60'000, pool.backoff_ms);
  if (s) s = reader.read_integer("output_bytes_max", 8, 16'384, pool.output_bytes_max);
  if (s) s = read_plugin_config(reader, pool.plugin_config);
  if (s) pools.push_back(std::move(pool));
  return s;
}

// Names are unique across chains, so each names its own shared-memory rings and logs.
Status read_chains(const TableReader& root, std::vector<ChainConfig>& chains) {
  FirstLines first_lines;
  Status s = read_each(root, "chain",
                       [&](const TableReader& item) { return read_chain(item, first_lines, chains); });
  bool declared = std::any_of(chains.begin(), chains.end(), [](const ChainConfig& chain) { return chain.is_system(); });
  // Small blocks: a few records a second at most, and each should be durable soon.
  if (s && !declared) {
    ChainConfig system;
    system.name = system_chain_name;
    system.block_txs_max = 1024;
    chains.push_back(std::move(system));
  }
  return s;
}

Status read_products(const TableReader& root, std::vector<ProductConfig>& products) {
  FirstLines first_lines;
  return read_each(root, "product", [&](const TableReader& item) {
    ProductConfig product;
    Status s = item.expect_only(product_keys);
    if (s) s = item.read_required_name("name", pool_rule, product.name);
    if (s) s = item.read_integer("priority", 0, 1'000'000, product.priority);
    if (s) s = item.read_integer("running_max", 1, 1 << 20, product.running_max);
    if (s) s = item.check_unique("name", "product name", first_lines);
    if (s) products.push_back(std::move(product));
    return s;
  });
}

// A path relative to the config's directory (unless absolute), made absolute.
Result<std::string> config_relative_path(std::string_view config_path, const std::string& path) {
  std::error_code error;
  std::filesystem::path resolved =
      std::filesystem::absolute(std::filesystem::path(config_path).parent_path() / path, error);
  if (error) return make_error("cannot make the path absolute", error.message());
  return resolved.lexically_normal().string();
}

// Contracts name chains the config has (read before them), each at most once.
Status read_contracts(const TableReader& root, const std::vector<ChainConfig>& chain_configs,
                      std::vector<ContractConfig>& contracts) {
  return read_each(root, "contract", [&](const TableReader& item) {
    ContractConfig contract;
    Status s = item.expect_only(contract_keys);
    if (s && !item.table().contains("file")) s = item.error_at_table("file", "required key is missing");
    if (s) s = item.read_string("file", contract.file);
    if (s && contract.file.empty()) s = item.error(*item.table().get("file"), "file", "must not be empty");
    if (s) {
      Result<std::string> resolved = config_relative_path(item.path(), contract.file);
      if (!resolved) return Status(item.error(*item.table().get("file"), "file", resolved.error().message));
      contract.file = *resolved;
    }
    if (s && item.table().contains("chains")) {
      Result<const toml::node*> node = item.find("chains", toml::node_type::array, "an array of strings");
      if (!node) return Status(node.error());
      const toml::array& array = *(*node)->as_array();
      for (size_t index = 0; index < array.size(); ++index) {
        const std::string key = "chains[" + std::to_string(index) + "]";
        if (!array[index].is_string()) return Status(item.type_error(array[index], key, "a string"));
        const std::string& name = array[index].as_string()->get();
        bool known = std::any_of(chain_configs.begin(), chain_configs.end(),
                                 [&](const ChainConfig& chain) { return chain.name == name; });
        if (!known) return Status(item.error(array[index], key, "no [[chain]] is named " + in_quotes(name)));
        if (std::find(contract.chains.begin(), contract.chains.end(), name) != contract.chains.end())
          return Status(item.error(array[index], key, "chain " + in_quotes(name) + " listed twice"));
        contract.chains.push_back(name);
      }
    }
    if (s) contracts.push_back(std::move(contract));
    return s;
  });
}

// Compute types are unique across pools: a scheduler routes a task by its type alone.
Status read_pools(const TableReader& root, const ParseOptions& options,
                  std::vector<PoolConfig>& pools) {
  PoolContext context{{}, PluginLocator(root.path(), options.binary_directory)};
  return read_each(root, "pool",
                   [&](const TableReader& item) { return read_pool(item, context, pools); });
}

Status read_pipeline(const TableReader& reader, PipelineSection& pipeline) {
  Status s = reader.expect_only(pipeline_keys);
  if (s) s = reader.read_bool("enabled", pipeline.enabled);
  if (s) s = reader.read_integer("payload_bytes", 0, 65'536, pipeline.payload_bytes);
  if (s) s = reader.read_integer("rate_per_second", 0, 1'000'000'000, pipeline.rate_per_second);
  return s;
}

// listen = "<IPv4 loopback address>:<port>": the endpoint has no authentication, so it
// is served to this host only (a scraper elsewhere goes through a proxy or a tunnel).
Status read_metrics(const TableReader& reader, MetricsSection& metrics) {
  Status s = reader.expect_only(metrics_keys);
  if (s) s = reader.read_bool("enabled", metrics.enabled);
  if (s) s = reader.read_string("listen", metrics.listen);
  if (!s || !reader.table().contains("listen")) return s;
  const toml::node& node = *reader.table().get("listen");
  const std::string& text = metrics.listen;
  size_t colon = text.rfind(':');
  in_addr address{};
  std::string port_text = colon == std::string::npos ? "" : text.substr(colon + 1);
  bool digits = !port_text.empty() && port_text.size() <= 5 &&
                std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (colon == std::string::npos || !digits || inet_pton(AF_INET, text.substr(0, colon).c_str(), &address) != 1)
    return reader.error(node, "listen",
                        "must be \"<IPv4 address>:<port>\" (e.g. \"127.0.0.1:9464\"), got " + in_quotes(text));
  if ((ntohl(address.s_addr) >> 24) != 127)
    return reader.error(node, "listen",
                        "must be a loopback address (127.x.x.x): the endpoint has no authentication, got " +
                            in_quotes(text));
  unsigned long port = std::stoul(port_text);
  if (port > 65535) return reader.error(node, "listen", "port must be from 0 to 65535, got " + port_text);
  metrics.address = text.substr(0, colon);
  metrics.port = uint16_t(port);
  return s;
}

Status read_ledger(const TableReader& reader, LedgerSection& ledger) {
  Status s = reader.expect_only(ledger_keys);
  if (s) s = reader.read_string("data_dir", ledger.data_dir);
  if (s && ledger.data_dir.empty()) s = reader.error(*reader.table().get("data_dir"), "data_dir", "must not be empty");
  if (s) s = reader.read_choice("fsync", fsync_choices, ledger.fsync);
  if (s) s = reader.read_choice("persist_backend", backend_choices, ledger.persist_backend);
  if (s) s = reader.read_integer("segment_bytes_max", 1 << 20, int64_t(1) << 30, ledger.segment_bytes_max);
  if (s) s = reader.read_bool("segment_preallocate", ledger.segment_preallocate);
  if (s) s = reader.read_integer("segment_spare_at_percent", 0, 99, ledger.segment_spare_at_percent);
  if (s) s = reader.read_integer("segment_zero_mb_per_s", 0, 100000, ledger.segment_zero_mb_per_s);
  if (s) s = reader.read_integer("segment_recycled_max", 0, 64, ledger.segment_recycled_max);
  if (s) s = reader.read_integer("commits_in_flight", 1, 2, ledger.commits_in_flight);
  if (s) s = reader.read_bool("log_buffer_huge_pages", ledger.log_buffer_huge_pages);
  if (s) s = reader.read_bool("direct_io", ledger.direct_io);
  if (s) s = reader.read_integer("commit_stall_warn_ms", 1, 600'000, ledger.commit_stall_warn_ms);
  if (s) s = reader.read_integer("snapshot_every_blocks", 0, 1'000'000, ledger.snapshot_every_blocks);
  if (s) s = reader.read_integer("clients_max", 1, 256, ledger.clients_max);
  if (s) s = reader.read_power_of_two("client_in_flight_max", 16, 65'536, ledger.client_in_flight_max);
  if (s) s = reader.read_integer("compute_pending_max", 1, 1 << 20, ledger.compute_pending_max);
  return s;
}

Status read_scheduler(const TableReader& reader, SchedulerSection& scheduler) {
  Status s = reader.expect_only(scheduler_keys);
  if (s) s = reader.read_integer("leases_max", 16, 1 << 20, scheduler.leases_max);
  if (s) s = reader.read_integer("spill_percent", 1, 100, scheduler.spill_percent);
  if (s) s = reader.read_integer("restart_backoff_ms", 1, 600'000, scheduler.restart_backoff_ms);
  if (s) s = reader.read_integer("restart_backoff_ms_max", 1, 3'600'000, scheduler.restart_backoff_ms_max);
  if (s && scheduler.restart_backoff_ms_max < scheduler.restart_backoff_ms) {
    // Point at whichever of the two the file sets (the maximum when both).
    bool max_set = reader.table().get("restart_backoff_ms_max") != nullptr;
    std::string_view key = max_set ? "restart_backoff_ms_max" : "restart_backoff_ms";
    s = reader.error(*reader.table().get(key), key,
                     "restart_backoff_ms_max (" + std::to_string(scheduler.restart_backoff_ms_max) +
                         ") must be at least restart_backoff_ms (" + std::to_string(scheduler.restart_backoff_ms) + ")");
  }
  if (s) s = reader.read_integer("heartbeat_timeout_ms", 50, 600'000, scheduler.heartbeat_timeout_ms);
  if (s) s = reader.read_integer("ready_timeout_ms", 100, 3'600'000, scheduler.ready_timeout_ms);
  if (s) s = reader.read_integer("crashes_max", 1, 1'000'000, scheduler.crashes_max);
  if (s) s = reader.read_integer("crash_window_ms", 1, 86'400'000, scheduler.crash_window_ms);
  if (s && reader.table().contains("tier_weights")) {
    Result<const toml::node*> node = reader.find("tier_weights", toml::node_type::array, "an array of 3 integers");
    if (!node) return Status(node.error());
    const toml::array& array = *(*node)->as_array();
    if (array.size() != scheduler.tier_weights.size())
      return Status(reader.error(**node, "tier_weights",
                                 "must hold 3 weights (light, medium, heavy), got " + std::to_string(array.size())));
    for (size_t index = 0; index < array.size(); ++index) {
      const std::string key = "tier_weights[" + std::to_string(index) + "]";
      if (!array[index].is_integer()) return Status(reader.type_error(array[index], key, "an integer"));
      int64_t weight = array[index].as_integer()->get();
      if (weight < 1 || weight > 1000)
        return Status(reader.error(array[index], key, "must be from 1 to 1000, got " + std::to_string(weight)));
      scheduler.tier_weights[index] = uint32_t(weight);
    }
  }
  return s;
}

// A chain is heavy from heavy_tps and medium from medium_tps, so heavy_tps must be the
// larger; the error points at whichever of the two the file sets (heavy_tps when both).
Status read_balancer(const TableReader& reader, BalancerSection& balancer) {
  Status s = reader.expect_only(balancer_keys);
  if (s) s = reader.read_bool("enabled", balancer.enabled);
  if (s) s = reader.read_integer("window_ms", 10, 60'000, balancer.window_ms);
  if (s) s = reader.read_integer("half_life_ms", 1, 600'000, balancer.half_life_ms);
  if (s) s = reader.read_integer("heavy_tps", 1, 1'000'000'000, balancer.heavy_tps);
  if (s) s = reader.read_integer("medium_tps", 1, 1'000'000'000, balancer.medium_tps);
  if (s && balancer.heavy_tps <= balancer.medium_tps) {
    const std::string_view key = reader.table().contains("heavy_tps") ? "heavy_tps" : "medium_tps";
    s = reader.error(*reader.table().get(key), key,
                     "heavy_tps (" + std::to_string(balancer.heavy_tps) + ") must be greater than medium_tps (" +
                         std::to_string(balancer.medium_tps) + ")");
  }
  if (s) s = reader.read_integer("margin_percent", 0, 90, balancer.margin_percent);
  if (s) s = reader.read_integer("windows_to_change", 1, 100, balancer.windows_to_change);
  if (s) s = reader.read_integer("downgrade_interval_ms", 0, 3'600'000, balancer.downgrade_interval_ms);
  if (s) s = reader.read_integer("min_share_percent", 0, 50, balancer.min_share_percent);
  if (s) s = reader.read_integer("heavy_cores_max", 0, 4096, balancer.heavy_cores_max);
  if (s) s = reader.read_integer("weight_max", 1, 1000, balancer.weight_max);
  return s;
}

// Paths of flow model files, relative to the config's directory unless absolute; they are
// read when the load starts (keel load names a bad one in one line).
Status read_flow_contracts(const TableReader& reader, std::vector<std::string>& contracts) {
  if (!reader.table().contains("flow_contracts")) return {};
  Result<const toml::node*> node = reader.find("flow_contracts", toml::node_type::array, "an array of strings");
  if (!node) return node.error();
  const toml::array& array = *(*node)->as_array();
  if (array.size() > 64)
    return reader.error(array, "flow_contracts", "at most 64 contracts, got " + std::to_string(array.size()));
  const std::filesystem::path directory = std::filesystem::path(reader.path()).parent_path();
  for (size_t index = 0; index < array.size(); ++index) {
    const toml::node& item = array[index];
    const std::string key = "flow_contracts[" + std::to_string(index) + "]";
    if (!item.is_string()) return reader.type_error(item, key, "a string");
    const std::string& text = item.as_string()->get();
    if (text.empty()) return reader.error(item, key, "must not be empty");
    std::error_code error;
    std::filesystem::path resolved = std::filesystem::absolute(directory / text, error);
    if (error) return reader.error(item, key, "cannot make the path absolute: " + error.message());
    contracts.push_back(resolved.lexically_normal().string());
  }
  return {};
}

Status read_load(const TableReader& reader, LoadSection& load) {
  Status s = reader.expect_only(load_keys);
  if (s) s = reader.read_bool("enabled", load.enabled);
  if (s) s = reader.read_integer("clients", 1, 64, load.clients);
  if (s) s = reader.read_integer("accounts_per_chain", 2, 100'000'000, load.accounts_per_chain);
  if (s) s = reader.read_integer("cross_shard_percent", 0, 100, load.cross_shard_percent);
  if (s) s = reader.read_integer("rate_per_second", 0, 1'000'000'000, load.rate_per_second);
  if (s) s = reader.read_integer("chain_rate_per_second", 0, 1'000'000'000, load.chain_rate_per_second);
  if (s) s = reader.read_integer("compute_percent", 0, 100, load.compute_percent);
  if (s) s = read_flow_contracts(reader, load.flow_contracts);
  if (s) s = reader.read_integer("flow_percent", 0, 100, load.flow_percent);
  if (s && load.compute_percent + load.flow_percent > 100)
    s = reader.error(*reader.table().get("flow_percent"), "flow_percent",
                     "compute_percent + flow_percent must be at most 100, got " +
                         std::to_string(load.compute_percent + load.flow_percent));
  return s;
}

// "from 6000 to 13000 ms" or "from 6000 ms to the end of the run", for messages.
std::string shape_window_text(const LoadShape& shape) {
  std::string to = shape.to_ms == load_shape_open_end_ms ? " ms to the end of the run"
                                                         : " to " + std::to_string(shape.to_ms) + " ms";
  return "from " + std::to_string(shape.from_ms) + to;
}

// One [[load.shape]]: a client chain, its window (to_ms after from_ms) and its rate; a
// window that overlaps an earlier one of the same chain fails at this one's chain key.
Status read_load_shape(const TableReader& reader, const std::vector<ChainConfig>& chains,
                       std::vector<LoadShape>& shapes, std::vector<uint32_t>& shape_lines) {
  LoadShape shape;
  Status s = reader.expect_only(load_shape_keys);
  if (s && !reader.table().contains("chain")) return reader.error_at_table("chain", "required key is missing");
  if (s) s = reader.read_string("chain", shape.chain);
  if (!s) return s;
  const toml::node& chain_node = *reader.table().get("chain");
  bool known = std::any_of(chains.begin(), chains.end(), [&](const ChainConfig& chain) { return chain.name == shape.chain; });
  if (!known) return reader.error(chain_node, "chain", "no [[chain]] is named " + in_quotes(shape.chain));
  if (shape.chain == system_chain_name)
    return reader.error(chain_node, "chain", "the system chain takes no client load");
  s = reader.read_integer("from_ms", 0, load_shape_ms_max - 1, shape.from_ms);
  if (s) s = reader.read_integer("to_ms", 1, load_shape_ms_max, shape.to_ms);
  if (s && shape.to_ms <= shape.from_ms)
    return reader.error(*reader.table().get("to_ms"), "to_ms",
                        "must be greater than from_ms (" + std::to_string(shape.from_ms) + "), got " +
                            std::to_string(shape.to_ms));
  if (s && !reader.table().contains("rate_per_second"))
    return reader.error_at_table("rate_per_second", "required key is missing");
  if (s) s = reader.read_integer("rate_per_second", 0, 1'000'000'000, shape.rate_per_second);
  if (!s) return s;
  for (size_t index = 0; index < shapes.size(); ++index) {
    const LoadShape& earlier = shapes[index];
    if (earlier.chain != shape.chain || earlier.to_ms <= shape.from_ms || shape.to_ms <= earlier.from_ms) continue;
    return reader.error(chain_node, "chain",
                        "its window (" + shape_window_text(shape) + ") overlaps load.shape[" + std::to_string(index) +
                            "] (line " + std::to_string(shape_lines[index]) + ", " + shape_window_text(earlier) +
                            ") on chain " + in_quotes(shape.chain));
  }
  shapes.push_back(std::move(shape));
  shape_lines.push_back(reader.table().source().begin.line);
  return {};
}

// [[load.shape]], read once the chains are known; then the two ways of pacing the load
// must not meet (the error sits at rate_per_second, the older knob).
Status read_load_shapes(const TableReader& root, const std::vector<ChainConfig>& chains, LoadSection& load) {
  Result<const toml::table*> table = root.find_table("load");
  if (!table) return table.error();
  if (*table == nullptr) return {};
  const TableReader reader = root.child(**table, "load");
  if (const toml::node* shapes = reader.table().get("shape"); shapes != nullptr && shapes->is_array() &&
                                                              shapes->as_array()->size() > load_shapes_max)
    return reader.error(*shapes, "shape",
                        "at most " + std::to_string(load_shapes_max) + " shapes, got " +
                            std::to_string(shapes->as_array()->size()));
  std::vector<uint32_t> shape_lines;
  Status s = read_each(reader, "shape", [&](const TableReader& item) {
    return read_load_shape(item, chains, load.shapes, shape_lines);
  });
  if (s && load.paced_per_chain() && load.rate_per_second != 0)
    s = reader.error(*reader.table().get("rate_per_second"), "rate_per_second",
                     "must be 0 when the load is paced per chain (chain_rate_per_second or [[load.shape]]), got " +
                         std::to_string(load.rate_per_second));
  return s;
}

// A payload that does not fit in its slot beside the header travels in the ring's payload
// arena, which must then hold arena_payloads_min payloads.
Status check_payload_fits(const TableReader& root, const PerfConfig& config) {
  const uint64_t payload_bytes = config.pipeline.payload_bytes;
  const uint64_t slot_room_bytes = config.rings.slot_bytes - pipeline_header_bytes;
  const uint64_t arena_bytes_needed = arena_payloads_min * payload_bytes;
  if (payload_bytes <= slot_room_bytes || config.rings.arena_bytes >= arena_bytes_needed) return {};
  // The default payload fits the smallest slot, so only an explicit payload_bytes fails.
  const toml::node* node = root.table().at_path("pipeline.payload_bytes").node();
  assert(node != nullptr);
  return error_at(root.path(), *node, "pipeline.payload_bytes",
                  std::to_string(payload_bytes) + " bytes do not fit in a " +
                      std::to_string(config.rings.slot_bytes) + "-byte slot beside the " +
                      std::to_string(pipeline_header_bytes) +
                      "-byte header, so rings.arena_bytes must be at least " +
                      std::to_string(arena_bytes_needed) + " (" +
                      std::to_string(arena_payloads_min) + " payloads), got " +
                      std::to_string(config.rings.arena_bytes));
}

Status read_document(const TableReader& root, const ParseOptions& options, PerfConfig& config) {
  Status s = root.expect_only(root_keys);
  if (s) s = read_section(root, "engine", read_engine, config.engine);
  if (s) s = read_section(root, "topology", read_topology, config.topology);
  if (s) s = read_section(root, "layout", read_layout, config.layout);
  if (s) s = read_section(root, "tiles", read_tiles, config.tiles);
  if (s) s = read_section(root, "rings", read_rings, config.rings);
  if (s) s = read_chains(root, config.chains);
  if (s) s = read_pools(root, options, config.pools);
  if (s) s = read_products(root, config.products);
  if (s) s = read_contracts(root, config.chains, config.contracts);
  if (s) s = read_section(root, "scheduler", read_scheduler, config.scheduler);
  if (s) s = read_section(root, "balancer", read_balancer, config.balancer);
  if (s) s = read_section(root, "pipeline", read_pipeline, config.pipeline);
  if (s) s = read_section(root, "ledger", read_ledger, config.ledger);
  if (s) s = read_section(root, "load", read_load, config.load);
  if (s) s = read_section(root, "metrics", read_metrics, config.metrics);
  if (s) s = read_load_shapes(root, config.chains, config.load);
  if (s) s = check_payload_fits(root, config);
  return s;
}

}  // namespace

Result<PerfConfig> load_perf_config(const std::string& path, const ParseOptions& options) {
  Result<std::string> text = read_text_file(path, config_bytes_max);
  if (!text) return text.error();
  return parse_perf_config(*text, path, options);
}

namespace {

// toml++'s description of a syntax error can quote the offending text, line breaks
// included; an error is one line, so control characters are written as \xNN.
std::string one_line(std::string_view text) {
  std::string line;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", unsigned(static_cast<unsigned char>(c)));
      line += escaped;
    } else {
      line += c;
    }
  }
  return line;
}

}  // namespace

Result<PerfConfig> parse_perf_config(std::string_view text, std::string_view path,
                                     const ParseOptions& options) {
  toml::table document;
  try {
    document = toml::parse(text, std::string(path));
  } catch (const toml::parse_error& error) {
    return make_error(position(path, error.source().begin), "TOML syntax: " + one_line(error.description()));
  }
  PerfConfig config;
  config.path = std::string(path);
  const TableReader root(path, document, "");
  if (Status s = read_document(root, options, config); !s) return s.error();
  return config;
}

std::string pool_name(const PoolConfig& pool) {
  std::string name;
  for (const std::string& type : pool.compute_types) name += (name.empty() ? "" : "+") + type;
  return name;
}

std::string_view to_string(IdleStrategy idle) {
  for (const Choice<IdleStrategy>& choice : idle_choices) {
    if (choice.value == idle) return choice.name;
  }
  assert(false && "IdleStrategy value without a name");
  return "?";
}

std::string_view to_string(FsyncPolicy fsync) {
  for (const Choice<FsyncPolicy>& choice : fsync_choices) {
    if (choice.value == fsync) return choice.name;
  }
  return "?";
}

std::string_view to_string(CreditsMode credits) {
  for (const Choice<CreditsMode>& choice : credits_choices) {
    if (choice.value == credits) return choice.name;
  }
  return "?";
}

std::string_view to_string(PersistBackend backend) {
  for (const Choice<PersistBackend>& choice : backend_choices) {
    if (choice.value == backend) return choice.name;
  }
  return "?";
}

std::string_view to_string(TopologySource source) {
  for (const Choice<TopologySource>& choice : source_choices) {
    if (choice.value == source) return choice.name;
  }
  assert(false && "TopologySource value without a name");
  return "?";
}

}  // namespace keel::config
