#include "engine/ledger/merkle.h"

#include <algorithm>
#include <cassert>

#include "engine/ledger/block.h"

namespace keel::ledger {

static_assert(merkle_fanout >= 2 && merkle_fanout <= 8, "hash_children takes 2 to 8 children");

// Bottom-up, level by level: pairing neighbours and carrying a lone last node up gives
// exactly RFC 6962's left-balanced tree (the split at the largest power of two below n
// is where the carried nodes end up). The test checks it against the recursive
// definition for every n up to a few hundred.
Hash32 merkle_root(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch) {
  if (leaf_hashes.empty()) return sha256({});
  if (leaf_hashes.size() == 1) return leaf_hashes[0];
  scratch.assign(leaf_hashes.begin(), leaf_hashes.end());
  size_t width = scratch.size();
  while (width > 1) {
    size_t parents = 0;
    for (size_t index = 0; index + 1 < width; index += 2)
      scratch[parents++] = hash_node(scratch[index], scratch[index + 1]);
    if (width % 2 == 1) scratch[parents++] = scratch[width - 1];
    width = parents;
  }
  return scratch[0];
}

// The same walk with runs of merkle_fanout. Parent p goes to slot p, which belongs to a run
// already hashed (p <= the current run's start), and every run from here on starts after
// it, so one scratch array holds every level.
Hash32 merkle_root_wide(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch) {
  if (leaf_hashes.empty()) return sha256({});
  if (leaf_hashes.size() == 1) return leaf_hashes[0];
  scratch.assign(leaf_hashes.begin(), leaf_hashes.end());
  size_t width = scratch.size();
  while (width > 1) {
    size_t parents = 0;
    for (size_t index = 0; index < width; index += merkle_fanout) {
      const size_t run = std::min(merkle_fanout, width - index);
      scratch[parents++] = run == 1 ? scratch[index] : hash_children(std::span(scratch).subspan(index, run));
    }
    width = parents;
  }
  return scratch[0];
}

Hash32 block_merkle_root(uint16_t block_version, std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch) {
  assert(block_version >= block_format_version_oldest_readable && block_version <= block_format_version);
  switch (block_version) {
    case 1: return merkle_root(leaf_hashes, scratch);
    default: return merkle_root_wide(leaf_hashes, scratch);  // 2 and 3
  }
}

}  // namespace keel::ledger
