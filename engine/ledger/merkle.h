// engine/ledger/merkle.h: the Merkle root a block header carries over its transactions'
// leaf hashes (hash_leaf values), by the block's format version (block.h).
//
//   std::vector<Hash32> scratch;
//   Hash32 root = block_merkle_root(header.version, tx_hashes, scratch);
//
// Version 2 on: the wide tree (merkle_root_wide). Level by level, each run of
// merkle_fanout neighbours becomes one node, hash_children = SHA-256(0x01 || c0 || ... ||
// c7); a last run of 2 to 7 becomes a node of that many; a lone last node is carried up
// unchanged. Its inner nodes cost about 0.7 SHA-256 blocks per leaf. The binary tree's
// cost 2: each 65-byte node is a two-block hash, and there is one per leaf. In `keel
// bench tasks` those nodes were half of a shard's hashing and a fifth of its time.
//
// Version 1: RFC 6962's binary tree (merkle_root): for n leaves the left subtree holds
// the largest power of two below n. Blocks written before version 2 keep it, and replay
// checks each block under its own version.
//
// In both, an odd node at the end of a level is carried up, never paired with a copy of
// itself (Bitcoin's duplication lets two different lists share a root); leaves (prefix
// 0x00) and nodes (0x01) cannot be confused; the empty tree's root is SHA-256 of the
// empty string, and one leaf's root is that leaf.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/ledger/hash.h"

namespace keel::ledger {

inline constexpr size_t merkle_fanout = 8;  // children per inner node of the wide tree

// RFC 6962 root over `leaf_hashes` (already leaf-hashed). `scratch` is reused between
// calls so a shard allocates nothing per block once it has seen its largest block.
Hash32 merkle_root(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch);

// The wide tree's root over `leaf_hashes`; `scratch` as above.
Hash32 merkle_root_wide(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch);

// The root a block of this format version carries: version 1 merkle_root, versions 2 and 3
// merkle_root_wide. The version must be one parse_block accepts.
Hash32 block_merkle_root(uint16_t block_version, std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch);

}  // namespace keel::ledger
