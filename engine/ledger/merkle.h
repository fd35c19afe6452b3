// engine/ledger/merkle.h: the Merkle tree hash of RFC 6962 over leaf hashes.
//
//   std::vector<Hash32> scratch;
//   Hash32 root = merkle_root(tx_hashes, scratch);   // tx_hashes are hash_leaf() values
//
// The tree is RFC 6962's: for n leaves the left subtree holds the largest power of two
// below n. An odd node at the end of a level is carried up unchanged, never paired with
// a copy of itself (Bitcoin's duplication lets two different lists share a root).
// The empty tree's root is SHA-256 of the empty string.
#pragma once

#include <span>
#include <vector>

#include "engine/ledger/hash.h"

namespace keel::ledger {

// Root over `leaf_hashes` (already leaf-hashed). `scratch` is reused between calls so a
// shard allocates nothing per block once it has seen its largest block.
Hash32 merkle_root(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch);

}  // namespace keel::ledger
