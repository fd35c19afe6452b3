#include "engine/ledger/merkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

namespace keel::ledger {
namespace {

// RFC 6962, section 2.1, written as the RFC states it: split at the largest power of two
// smaller than n.
Hash32 reference_root(std::span<const Hash32> leaves) {
  if (leaves.empty()) return sha256({});
  if (leaves.size() == 1) return leaves[0];
  size_t split = std::bit_floor(leaves.size() - 1);
  return hash_node(reference_root(leaves.subspan(0, split)), reference_root(leaves.subspan(split)));
}

std::vector<Hash32> leaves_of(size_t count) {
  std::vector<Hash32> leaves;
  for (size_t index = 0; index < count; ++index) {
    std::string data = "tx " + std::to_string(index);
    leaves.push_back(hash_leaf(std::as_bytes(std::span(data.data(), data.size()))));
  }
  return leaves;
}

TEST(Merkle, MatchesTheRecursiveDefinitionForEverySizeUpTo300) {
  std::vector<Hash32> scratch;
  std::vector<Hash32> leaves = leaves_of(300);
  for (size_t count = 0; count <= leaves.size(); ++count) {
    std::span<const Hash32> prefix(leaves.data(), count);
    ASSERT_EQ(merkle_root(prefix, scratch), reference_root(prefix)) << "leaves: " << count;
  }
}

// The certificate-transparency test vector: eight leaves, root 5dc9da79...
TEST(Merkle, MatchesTheCertificateTransparencyVector) {
  std::vector<std::string> inputs = {"", std::string(1, '\0'), "\x10", "\x20\x21", "\x30\x31", "\x40\x41\x42\x43",
                                     "\x50\x51\x52\x53\x54\x55\x56\x57",
                                     "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
  std::vector<Hash32> leaves;
  for (const std::string& input : inputs) leaves.push_back(hash_leaf(std::as_bytes(std::span(input.data(), input.size()))));
  std::vector<Hash32> scratch;
  EXPECT_EQ(to_hex(merkle_root(leaves, scratch)), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
}

// Bitcoin's tree pairs an odd last node with itself, so [a, b, c] and [a, b, c, c] share a
// root. RFC 6962's does not.
TEST(Merkle, AnOddLeafIsNeverDuplicated) {
  std::vector<Hash32> three = leaves_of(3);
  std::vector<Hash32> four = three;
  four.push_back(three[2]);
  std::vector<Hash32> scratch;
  EXPECT_NE(merkle_root(three, scratch), merkle_root(four, scratch));
  EXPECT_EQ(merkle_root(three, scratch), hash_node(hash_node(three[0], three[1]), three[2]));
}

TEST(Merkle, AnyChangedLeafChangesTheRoot) {
  std::vector<Hash32> leaves = leaves_of(37);
  std::vector<Hash32> scratch;
  Hash32 root = merkle_root(leaves, scratch);
  for (size_t index = 0; index < leaves.size(); ++index) {
    std::vector<Hash32> changed = leaves;
    changed[index].bytes[5] ^= 1;
    EXPECT_NE(merkle_root(changed, scratch), root) << "leaf " << index;
  }
}

// The wide tree stated top-down, unlike merkle_root_wide's level-by-level walk: with h
// the least height whose full tree (8^h leaves) holds n, the root hashes the roots of
// consecutive runs of 8^(h-1) leaves.
Hash32 reference_wide_root(std::span<const Hash32> leaves) {
  if (leaves.empty()) return sha256({});
  if (leaves.size() == 1) return leaves[0];
  size_t run = 1;
  while (run * merkle_fanout < leaves.size()) run *= merkle_fanout;
  std::vector<Hash32> children;
  for (size_t start = 0; start < leaves.size(); start += run)
    children.push_back(reference_wide_root(leaves.subspan(start, std::min(run, leaves.size() - start))));
  return hash_children(children);
}

// Up to 600 leaves: three full levels (512) and a fourth.
TEST(MerkleWide, MatchesTheTopDownDefinitionForEverySizeUpTo600) {
  std::vector<Hash32> scratch;
  std::vector<Hash32> leaves = leaves_of(600);
  for (size_t count = 0; count <= leaves.size(); ++count) {
    std::span<const Hash32> prefix(leaves.data(), count);
    ASSERT_EQ(merkle_root_wide(prefix, scratch), reference_wide_root(prefix)) << "leaves: " << count;
  }
}

TEST(MerkleWide, NodesHashTheirChildrenInOrderBehindTheNodePrefix) {
  std::vector<Hash32> leaves = leaves_of(9);
  std::vector<Hash32> scratch;
  // Two children: RFC 6962's node hash.
  EXPECT_EQ(merkle_root_wide(std::span(leaves).first(2), scratch), hash_node(leaves[0], leaves[1]));
  // Nine: the first eight under one node, the ninth carried up beside it.
  const Hash32 eight = hash_children(std::span(leaves).first(8));
  EXPECT_EQ(merkle_root_wide(leaves, scratch), hash_children(std::vector<Hash32>{eight, leaves[8]}));
  std::vector<std::byte> input(1 + 8 * sizeof(Hash32));
  input[0] = std::byte{1};
  std::memcpy(input.data() + 1, leaves.data(), 8 * sizeof(Hash32));
  EXPECT_EQ(eight, sha256(input));
  // From three leaves on the two trees differ.
  EXPECT_NE(merkle_root_wide(std::span(leaves).first(3), scratch), merkle_root(std::span(leaves).first(3), scratch));
}

TEST(MerkleWide, AnOddNodeIsNeverDuplicatedAndAnyChangedLeafChangesTheRoot) {
  std::vector<Hash32> scratch;
  std::vector<Hash32> nine = leaves_of(9);
  std::vector<Hash32> ten = nine;
  ten.push_back(nine[8]);
  EXPECT_NE(merkle_root_wide(nine, scratch), merkle_root_wide(ten, scratch));
  std::vector<Hash32> leaves = leaves_of(77);
  Hash32 root = merkle_root_wide(leaves, scratch);
  for (size_t index = 0; index < leaves.size(); ++index) {
    std::vector<Hash32> changed = leaves;
    changed[index].bytes[5] ^= 1;
    EXPECT_NE(merkle_root_wide(changed, scratch), root) << "leaf " << index;
  }
  // Swapping two children of one node changes it too.
  std::swap(leaves[3], leaves[4]);
  EXPECT_NE(merkle_root_wide(leaves, scratch), root);
}

TEST(MerkleWide, ABlocksRootFollowsItsFormatVersion) {
  std::vector<Hash32> leaves = leaves_of(50);
  std::vector<Hash32> scratch;
  EXPECT_EQ(block_merkle_root(1, leaves, scratch), merkle_root(leaves, scratch));
  EXPECT_EQ(block_merkle_root(2, leaves, scratch), merkle_root_wide(leaves, scratch));
}

}  // namespace
}  // namespace keel::ledger
