#include "engine/ledger/state.h"

#include <gtest/gtest.h>

namespace keel::ledger {
namespace {

ShardState sample_state(bool reversed) {
  ShardState state(1, 3);
  state.height = 9;
  state.last_block_hash = sha256({});
  state.suspense_balance = 5;
  state.credit_marks[0] = CreditMark{7, 3};
  std::vector<uint64_t> ids = {5, 1, 9, 3};
  if (reversed) std::reverse(ids.begin(), ids.end());
  for (uint64_t id : ids) state.accounts[id] = Account{int64_t(id * 10), uint32_t(id % 2)};
  std::vector<std::string> keys = {"b", "a", "c"};
  if (reversed) std::reverse(keys.begin(), keys.end());
  for (const std::string& key : keys) state.values[key] = "value of " + key;
  return state;
}

TEST(ShardState, SerializationIsCanonicalAndRoundTrips) {
  ShardState one = sample_state(false), two = sample_state(true);
  EXPECT_EQ(one.serialize(), two.serialize());
  EXPECT_EQ(one.digest(), two.digest());
  Result<ShardState> back = ShardState::deserialize(one.serialize());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->serialize(), one.serialize());
  EXPECT_EQ(back->height, 9u);
  EXPECT_EQ(back->credit_marks[0].height, 7u);
  EXPECT_EQ(back->credit_marks[0].index, 3u);
  EXPECT_EQ(back->total_balance(), one.total_balance());
  EXPECT_EQ(one.total_balance(), 5 + 10 + 30 + 50 + 90);
}

TEST(ShardState, AnyChangeChangesTheDigest) {
  ShardState state = sample_state(false);
  Hash32 digest = state.digest();
  state.accounts[3].balance += 1;
  EXPECT_NE(state.digest(), digest);
}

TEST(ShardState, DamagedBytesGiveAnError) {
  std::vector<std::byte> bytes = sample_state(false).serialize();
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    Result<ShardState> back = ShardState::deserialize(std::span(bytes).first(cut));
    EXPECT_FALSE(back) << "cut at " << cut;
  }
  std::vector<std::byte> bad_magic = bytes;
  bad_magic[0] ^= std::byte{1};
  Result<ShardState> back = ShardState::deserialize(bad_magic);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().message, "state snapshot: offset 4: not a keel shard state (bad magic)");
  std::vector<std::byte> trailing = bytes;
  trailing.push_back(std::byte{0});
  EXPECT_FALSE(ShardState::deserialize(trailing));
}

}  // namespace
}  // namespace keel::ledger
