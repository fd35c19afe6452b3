// Tests for plugins/interest: ACT/365 simple interest in minor units against hand
// computations, half-even rounding at exact ties (both signs), overflow rejection, a
// randomized check against an independent floor-based formulation, and bad input.
#include <limits>
#include <random>

#include "tests/plugins/loaded_plugin.h"

namespace keel::plugins {
namespace {

struct Account {
  uint64_t id;
  int64_t balance;
  int32_t rate_bp;
  uint32_t reserved = 0;
};

std::vector<uint8_t> accounts_input(uint32_t day_count, const std::vector<Account>& accounts) {
  LittleEndianWriter writer;
  writer.u32(day_count).u32(uint32_t(accounts.size()));
  for (const Account& account : accounts) writer.u64(account.id).i64(account.balance).i32(account.rate_bp).u32(account.reserved);
  return writer.bytes();
}

// (account id, interest) pairs from the output, in order.
std::vector<std::pair<uint64_t, int64_t>> accrued(const RunOutcome& outcome) {
  EXPECT_EQ(outcome.status, KEEL_STATUS_OK);
  std::vector<std::pair<uint64_t, int64_t>> results;
  for (size_t offset = 0; offset + 16 <= outcome.output.size(); offset += 16) {
    results.emplace_back(read_u64(outcome.output, offset), read_i64(outcome.output, offset + 8));
  }
  EXPECT_EQ(outcome.output.size(), results.size() * 16);
  return results;
}

int64_t interest_of(const LoadedPlugin& plugin, uint32_t day_count, int64_t balance, int32_t rate_bp) {
  std::vector<std::pair<uint64_t, int64_t>> results = accrued(plugin.run(accounts_input(day_count, {{1, balance, rate_bp}})));
  EXPECT_EQ(results.size(), 1u);
  return results.empty() ? 0 : results[0].second;
}

TEST(InterestPlugin, AccruesAsComputedByHand) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "interest");
  ASSERT_TRUE(plugin.ok());
  // 10,000.00 at 5% for 30 days: 1,000,000 * 0.05 * 30 / 365 = 4109.589... -> 4110 cents.
  EXPECT_EQ(interest_of(plugin, 30, 1'000'000, 500), 4110);
  // A full year at 100% doubles nothing but the interest: exactly the balance.
  EXPECT_EQ(interest_of(plugin, 365, 12'345, 10'000), 12'345);
  // 2,500.00 at 3.25% for 91 days: 250,000 * 0.0325 * 91 / 365 = 2025.68... -> 2026.
  EXPECT_EQ(interest_of(plugin, 91, 250'000, 325), 2026);
  // An overdraft at 18.9% for 31 days: -75,000 * 0.189 * 31 / 365 = -1203.904... -> -1204.
  EXPECT_EQ(interest_of(plugin, 31, -75'000, 1890), -1204);
  // A negative rate: 1,000,000 at -0.5% for 10 days = -136.986... -> -137.
  EXPECT_EQ(interest_of(plugin, 10, 1'000'000, -50), -137);
  EXPECT_EQ(interest_of(plugin, 0, 1'000'000, 500), 0);
  EXPECT_EQ(interest_of(plugin, 30, 0, 500), 0);
}

TEST(InterestPlugin, RoundsExactTiesHalfToEven) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "interest");
  ASSERT_TRUE(plugin.ok());
  // balance * 1 bp * 1000 days / 3,650,000: 1825 -> 0.5, 5475 -> 1.5, 9125 -> 2.5, 12775 -> 3.5.
  EXPECT_EQ(interest_of(plugin, 1000, 1825, 1), 0);
  EXPECT_EQ(interest_of(plugin, 1000, 5475, 1), 2);
  EXPECT_EQ(interest_of(plugin, 1000, 9125, 1), 2);
  EXPECT_EQ(interest_of(plugin, 1000, 12775, 1), 4);
  EXPECT_EQ(interest_of(plugin, 1000, -1825, 1), 0);
  EXPECT_EQ(interest_of(plugin, 1000, -5475, 1), -2);
  EXPECT_EQ(interest_of(plugin, 1000, 9125, -1), -2);
  EXPECT_EQ(interest_of(plugin, 1000, -12775, 1), -4);
  // Just off the ties, ordinary rounding: 0.5003 -> 1, 0.4997 -> 0, -2.5003 -> -3.
  EXPECT_EQ(interest_of(plugin, 1000, 1826, 1), 1);
  EXPECT_EQ(interest_of(plugin, 1000, 1824, 1), 0);
  EXPECT_EQ(interest_of(plugin, 1000, -9126, 1), -3);
}

TEST(InterestPlugin, AcceptsTheInt64ExtremesAndRefusesWhatOverflows) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "interest");
  ASSERT_TRUE(plugin.ok());
  int64_t max = std::numeric_limits<int64_t>::max(), min = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(interest_of(plugin, 365, max, 10'000), max);
  EXPECT_EQ(interest_of(plugin, 365, min, 10'000), min);
  // Interest past int64: one day more at 100%, the negated minimum, and every factor at
  // its type's extreme (whose exact product, about 2^126, still fits the 128-bit arithmetic).
  EXPECT_EQ(plugin.status_of(accounts_input(366, {{1, max, 10'000}})), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(accounts_input(365, {{1, min, -10'000}})), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(accounts_input(std::numeric_limits<uint32_t>::max(),
                                            {{1, min, std::numeric_limits<int32_t>::min()}})),
            KEEL_STATUS_BAD_INPUT);
  // One overflowing account fails the whole task, wherever it is.
  EXPECT_EQ(plugin.status_of(accounts_input(366, {{1, 100, 500}, {2, max, 10'000}, {3, 100, 500}})),
            KEEL_STATUS_BAD_INPUT);
}

// An independent formulation: floor division, then a remainder in [0, D) rounded half to
// even. The plugin truncates toward zero and works on the remainder's magnitude.
int64_t expected_interest(int64_t balance, int32_t rate_bp, uint32_t day_count) {
  const __int128 denominator = 3'650'000;
  __int128 numerator = __int128(balance) * rate_bp * day_count;
  __int128 floor = numerator / denominator - (numerator % denominator < 0 ? 1 : 0);
  __int128 remainder = numerator - floor * denominator;  // 0 <= remainder < denominator
  bool round_up = 2 * remainder > denominator || (2 * remainder == denominator && (floor % 2 != 0));
  return int64_t(floor + (round_up ? 1 : 0));
}

TEST(InterestPlugin, ManyRandomAccountsMatchAnIndependentFormulationInOrder) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 generator(seed);
  uint32_t day_count = uint32_t(generator() % 3660);
  std::vector<Account> accounts(10'000);
  for (Account& account : accounts) {
    // Balances up to +-10^12 minor units and rates up to +-50%: far from overflow, with
    // small values often enough to land on exact ties.
    bool small = generator() % 4 == 0;
    int64_t magnitude = small ? 10'000 : 1'000'000'000'000;
    account = {generator(), int64_t(generator() % uint64_t(2 * magnitude + 1)) - magnitude,
               int32_t(generator() % 10'001) - 5'000};
  }
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "interest");
  ASSERT_TRUE(plugin.ok());
  std::vector<std::pair<uint64_t, int64_t>> results = accrued(plugin.run(accounts_input(day_count, accounts), 1 << 20));
  ASSERT_EQ(results.size(), accounts.size());
  for (size_t index = 0; index < accounts.size(); ++index) {
    const Account& account = accounts[index];
    ASSERT_EQ(results[index].first, account.id) << index;
    ASSERT_EQ(results[index].second, expected_interest(account.balance, account.rate_bp, day_count))
        << "balance " << account.balance << ", rate " << account.rate_bp << " bp, " << day_count << " days";
  }
}

TEST(InterestPlugin, RefusesMalformedInput) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "interest");
  ASSERT_TRUE(plugin.ok());
  std::vector<uint8_t> two = accounts_input(30, {{1, 100, 500}, {2, 200, 500}});
  ASSERT_EQ(plugin.status_of(two), KEEL_STATUS_OK);
  EXPECT_EQ(plugin.status_of(truncated(two)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(oversized(two)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of({}), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(std::vector<uint8_t>(two.begin(), two.begin() + 8)), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(accounts_input(30, {{1, 100, 500}, {2, 200, 500, 7}})), KEEL_STATUS_BAD_INPUT);
  EXPECT_EQ(plugin.status_of(accounts_input(30, {})), KEEL_STATUS_OK);
}

TEST(InterestPlugin, AsksForSixteenBytesPerAccount) {
  LoadedPlugin plugin(KEEL_PLUGIN_PATH, "interest");
  ASSERT_TRUE(plugin.ok());
  RunOutcome outcome = plugin.run(accounts_input(30, {{1, 100, 500}, {2, 200, 500}, {3, 300, 500}}), 47);
  EXPECT_EQ(outcome.status, KEEL_STATUS_OUTPUT_TOO_SMALL);
  EXPECT_EQ(outcome.output_bytes, 48u);
}

}  // namespace
}  // namespace keel::plugins
