#include "engine/config/perf_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cerrno>
#include <filesystem>
#include <map>
#include <span>
#include <system_error>
#include <utility>

// toml++ stays in this file so that only one translation unit pays for its templates.
#include <toml++/toml.h>

namespace keel::config {
namespace {

using Status = Result<void>;

// A perf config is a few kilobytes; the bound stops a mistaken path (a log, /dev/zero)
// from being read without end.
constexpr size_t config_bytes_max = 1 << 20;
constexpr size_t name_chars_max = 32;
// A pipeline message's header takes this much of its ring slot.
constexpr uint64_t pipeline_header_bytes = 32;
// A payload too big for its slot travels in the payload arena, which must hold this many
// so that a burst does not stall on arena space before the ring itself is full.
constexpr uint64_t arena_payloads_min = 16;

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
};

constexpr NameRule instance_rule{"[A-Za-z0-9_-]", true, true};
constexpr NameRule chain_rule{"[a-z0-9_-]", false, true};
constexpr NameRule pool_rule{"[a-z0-9_]", false, false};
constexpr NameRule bare_key_rule{"[A-Za-z0-9_-]", true, true};  // TOML's bare keys

// The keys each table may hold; anything else is an error, so a typo never silently
// leaves a default in place.
constexpr std::string_view root_keys[] = {"engine", "topology", "layout",   "tiles",  "rings",
                                          "chain",  "pool",     "pipeline", "ledger", "load"};
constexpr std::string_view engine_keys[] = {"instance", "idle", "idle_spin_polls",
                                            "idle_sleep_us_max", "tile_budget"};
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
constexpr std::string_view chain_keys[] = {"name", "shards", "block_txs_max", "block_us_max"};
constexpr std::string_view ledger_keys[] = {"data_dir",          "fsync",       "persist_backend",
                                            "segment_bytes_max", "segment_preallocate", "snapshot_every_blocks",
                                            "clients_max",       "client_in_flight_max"};
constexpr std::string_view load_keys[] = {"enabled", "clients", "accounts_per_chain", "cross_shard_percent",
                                          "rate_per_second"};
constexpr std::string_view pool_keys[] = {"compute_type", "threads_per_node"};
constexpr std::string_view pipeline_keys[] = {"enabled", "payload_bytes", "rate_per_second"};

bool char_allowed(char c, const NameRule& rule) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         (rule.upper_allowed && c >= 'A' && c <= 'Z') || (rule.hyphen_allowed && c == '-');
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

  Status read_name(std::string_view key, const NameRule& rule, std::string& value) const {
    std::string text;
    if (Status s = read_string(key, text); !s || !table_->contains(key)) return s;
    if (!name_allowed(text, rule)) {
      return error(*table_->get(key), key,
                   "must be 1 to " + std::to_string(name_chars_max) + " characters of " +
                       std::string(rule.label) + ", got " + in_quotes(text));
    }
    value = std::move(text);
    return {};
  }

  Status read_required_name(std::string_view key, const NameRule& rule, std::string& value) const {
    if (!table_->contains(key)) return error_at_table(key, "required key is missing");
    return read_name(key, rule, value);
  }

  // Fails when the string at key was already seen in an earlier table of the same array.
  Status check_unique(std::string_view key, std::string_view what, FirstLines& first_lines) const {
    const toml::node& node = *table_->get(key);
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

Status read_chain(const TableReader& reader, FirstLines& first_lines,
                  std::vector<ChainConfig>& chains) {
  ChainConfig chain;
  Status s = reader.expect_only(chain_keys);
  if (s) s = reader.read_required_name("name", chain_rule, chain.name);
  if (s) s = reader.read_integer("shards", 1, 256, chain.shards);
  if (s) s = reader.read_integer("block_txs_max", 1, 65'536, chain.block_txs_max);
  if (s) s = reader.read_integer("block_us_max", 1, 10'000'000, chain.block_us_max);
  if (s) s = reader.check_unique("name", "chain name", first_lines);
  if (s) chains.push_back(std::move(chain));
  return s;
}

Status read_pool(const TableReader& reader, FirstLines& first_lines,
                 std::vector<PoolConfig>& pools) {
  PoolConfig pool;
  Status s = reader.expect_only(pool_keys);
  if (s) s = reader.read_required_name("compute_type", pool_rule, pool.compute_type);
  if (s) s = reader.read_integer("threads_per_node", 1, 1024, pool.threads_per_node);
  if (s) s = reader.check_unique("compute_type", "pool compute_type", first_lines);
  if (s) pools.push_back(std::move(pool));
  return s;
}

// Names are unique across chains, so each names its own shared-memory rings and logs.
Status read_chains(const TableReader& root, std::vector<ChainConfig>& chains) {
  FirstLines first_lines;
  return read_each(root, "chain",
                   [&](const TableReader& item) { return read_chain(item, first_lines, chains); });
}

// Compute types are unique across pools: a scheduler routes a task by its type alone.
Status read_pools(const TableReader& root, std::vector<PoolConfig>& pools) {
  FirstLines first_lines;
  return read_each(root, "pool",
                   [&](const TableReader& item) { return read_pool(item, first_lines, pools); });
}

Status read_pipeline(const TableReader& reader, PipelineSection& pipeline) {
  Status s = reader.expect_only(pipeline_keys);
  if (s) s = reader.read_bool("enabled", pipeline.enabled);
  if (s) s = reader.read_integer("payload_bytes", 0, 65'536, pipeline.payload_bytes);
  if (s) s = reader.read_integer("rate_per_second", 0, 1'000'000'000, pipeline.rate_per_second);
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
  if (s) s = reader.read_integer("snapshot_every_blocks", 0, 1'000'000, ledger.snapshot_every_blocks);
  if (s) s = reader.read_integer("clients_max", 1, 256, ledger.clients_max);
  if (s) s = reader.read_power_of_two("client_in_flight_max", 16, 65'536, ledger.client_in_flight_max);
  return s;
}

Status read_load(const TableReader& reader, LoadSection& load) {
  Status s = reader.expect_only(load_keys);
  if (s) s = reader.read_bool("enabled", load.enabled);
  if (s) s = reader.read_integer("clients", 1, 64, load.clients);
  if (s) s = reader.read_integer("accounts_per_chain", 2, 100'000'000, load.accounts_per_chain);
  if (s) s = reader.read_integer("cross_shard_percent", 0, 100, load.cross_shard_percent);
  if (s) s = reader.read_integer("rate_per_second", 0, 1'000'000'000, load.rate_per_second);
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

Status read_document(const TableReader& root, PerfConfig& config) {
  Status s = root.expect_only(root_keys);
  if (s) s = read_section(root, "engine", read_engine, config.engine);
  if (s) s = read_section(root, "topology", read_topology, config.topology);
  if (s) s = read_section(root, "layout", read_layout, config.layout);
  if (s) s = read_section(root, "tiles", read_tiles, config.tiles);
  if (s) s = read_section(root, "rings", read_rings, config.rings);
  if (s) s = read_chains(root, config.chains);
  if (s) s = read_pools(root, config.pools);
  if (s) s = read_section(root, "pipeline", read_pipeline, config.pipeline);
  if (s) s = read_section(root, "ledger", read_ledger, config.ledger);
  if (s) s = read_section(root, "load", read_load, config.load);
  if (s) s = check_payload_fits(root, config);
  return s;
}

Error cannot_read(const std::string& path, std::string_view reason) {
  return make_error(path, "cannot read: " + std::string(reason));
}

// Closes a file it owns. A failed close of a file only read from loses nothing.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() { ::close(fd); }
};

// The whole file at path, at most config_bytes_max bytes.
Result<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(path, std::generic_category().message(errno));
  const FileDescriptor owner{fd};
  std::string text;
  std::array<char, 64 * 1024> buffer;
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return cannot_read(path, std::generic_category().message(errno));
    if (got == 0) return text;
    if (text.size() + static_cast<size_t>(got) > config_bytes_max) {
      return cannot_read(path, "larger than " + std::to_string(config_bytes_max) + " bytes");
    }
    text.append(buffer.data(), static_cast<size_t>(got));
  }
}

}  // namespace

Result<PerfConfig> load_perf_config(const std::string& path) {
  Result<std::string> text = read_file(path);
  if (!text) return text.error();
  return parse_perf_config(*text, path);
}

Result<PerfConfig> parse_perf_config(std::string_view text, std::string_view path) {
  toml::table document;
  try {
    document = toml::parse(text, std::string(path));
  } catch (const toml::parse_error& error) {
    return make_error(position(path, error.source().begin),
                      "TOML syntax: " + std::string(error.description()));
  }
  PerfConfig config;
  config.path = std::string(path);
  const TableReader root(path, document, "");
  if (Status s = read_document(root, config); !s) return s.error();
  return config;
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
