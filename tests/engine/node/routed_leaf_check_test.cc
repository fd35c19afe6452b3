#include "engine/node/shard_tile.h"

#include <gtest/gtest.h>

#include <vector>

#include "engine/ledger/hash.h"
#include "engine/ledger/transaction.h"

namespace keel::node {
namespace {

// A producer's leaf hash is checked against the bytes for the first checks_full
// transactions and one in check_every after; a wrong one ends the trust for good.
TEST(RoutedLeafCheck, ChecksTheFirstHashesThenSomeAndAWrongOneEndsTheTrust) {
  std::vector<std::byte> tx = ledger::encode_transfer(1, 2, 3, 4);
  ledger::Hash32 right = ledger::hash_leaf(tx), wrong = right;
  wrong.bytes[0] ^= 1;

  RoutedLeafCheck early;
  for (int index = 0; index < 10; ++index) ASSERT_TRUE(early.accept(tx, right));
  EXPECT_FALSE(early.accept(tx, wrong)) << "a wrong hash among the first went unchecked";
  EXPECT_FALSE(early.trusting());
  EXPECT_FALSE(early.accept(tx, right)) << "trust came back after a mismatch";

  // Past the full checks, one in check_every is checked: a run of wrong hashes that long
  // is caught.
  RoutedLeafCheck later;
  for (uint64_t index = 0; index < RoutedLeafCheck::checks_full; ++index) ASSERT_TRUE(later.accept(tx, right));
  bool caught = false;
  for (uint64_t index = 0; index < RoutedLeafCheck::check_every && !caught; ++index)
    caught = !later.accept(tx, wrong);
  EXPECT_TRUE(caught);
  EXPECT_FALSE(later.trusting());
}

}  // namespace
}  // namespace keel::node
