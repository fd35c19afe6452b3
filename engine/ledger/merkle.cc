#include "engine/ledger/merkle.h"

#include <algorithm>

namespace keel::ledger {

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

// The same walk with runs of merkle_fanout. A parent overwrites the first child of its
// run, which the hash has already read, so one scratch array holds every level.
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
  return block_version == 1 ? merkle_root(leaf_hashes, scratch) : merkle_root_wide(leaf_hashes, scratch);
}

}  // namespace keel::ledger
