#include "engine/ledger/hash.h"

#include <gtest/gtest.h>

#include <string_view>

namespace keel::ledger {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text.data(), text.size())); }

TEST(Hash, Sha256MatchesTheStandardVectors) {
  EXPECT_EQ(to_hex(sha256(bytes_of(""))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256(bytes_of("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Hash, LeafIsPrefixedWithZeroAndNodeWithOne) {
  // SHA-256 of the single byte 0x00: RFC 6962's hash of an empty leaf.
  EXPECT_EQ(to_hex(hash_leaf(bytes_of(""))), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  Hash32 left = sha256(bytes_of("left")), right = sha256(bytes_of("right"));
  std::string joined(1, '\x01');
  joined.append(reinterpret_cast<const char*>(left.bytes.data()), 32);
  joined.append(reinterpret_cast<const char*>(right.bytes.data()), 32);
  EXPECT_EQ(hash_node(left, right), sha256(bytes_of(joined)));
  EXPECT_NE(hash_node(left, right), hash_node(right, left));
}

TEST(Hash, ZeroHashIsZero) {
  EXPECT_TRUE(Hash32{}.is_zero());
  EXPECT_FALSE(sha256(bytes_of("")).is_zero());
}

}  // namespace
}  // namespace keel::ledger
