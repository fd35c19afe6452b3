#include "engine/ledger/merkle.h"

#include <algorithm>
#include <cassert>

#include "engine/ledger/block.h"

namespace keel::ledger {

static_assert(merkle_fanout >= 2 && merkle_fanout <= 8, "hash_children takes 2 to 8 children");

namespace {

// Bottom-up, level by level: each run of `fanout` neighbours becomes one node, a lone last
// node is carried up. With a fanout of 2 that is exactly RFC 6962's left-balanced tree (the
// split at the largest power of two below n is where the carried nodes end up; the test
// checks it against the recursive definition for every n up to a few hundred), and
// hash_children of two is hash_node. Parent p goes to slot p, which belongs to a run
// already hashed (p <= the current run's start), and every later run starts after it, so
// one scratch array holds every level.
Hash32 root_by_levels(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch, size_t fanout) {
  if (leaf_hashes.empty()) return sha256({});
  if (leaf_hashes.size() == 1) return leaf_hashes[0];
  scratch.assign(leaf_hashes.begin(), leaf_hashes.end());
  size_t width = scratch.size();
  while (width > 1) {
    size_t parents = 0;
    for (size_t index = 0; index < width; index += fanout) {
      const size_t run = std::min(fanout, width - index);
      scratch[parents++] = run == 1 ? scratch[index] : hash_children(std::span(scratch).subspan(index, run));
    }
    width = parents;
  }
  return scratch[0];
}

}  // namespace

Hash32 merkle_root(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch) {
  return root_by_levels(leaf_hashes, scratch, 2);
}

Hash32 merkle_root_wide(std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch) {
  return root_by_levels(leaf_hashes, scratch, merkle_fanout);
}

Hash32 block_merkle_root(uint16_t block_version, std::span<const Hash32> leaf_hashes, std::vector<Hash32>& scratch) {
  assert(block_version >= block_format_version_oldest_readable && block_version <= block_format_version);
  switch (block_version) {
    case 1: return merkle_root(leaf_hashes, scratch);
    default: return merkle_root_wide(leaf_hashes, scratch);  // 2 and 3
  }
}

}  // namespace keel::ledger
