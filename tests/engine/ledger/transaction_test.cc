#include "engine/ledger/transaction.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace keel::ledger {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text.data(), text.size())); }

TEST(Transaction, EncodedTransactionsCheckAndDecode) {
  TxView view;
  std::vector<std::byte> create = encode_create_account(1, 42, 1000, account_flag_allow_overdraft);
  ASSERT_EQ(check_transaction(create, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::create_account);
  EXPECT_EQ(view.create_account.account, 42u);
  EXPECT_EQ(view.create_account.opening_balance, 1000);
  EXPECT_EQ(view.create_account.account_flags, account_flag_allow_overdraft);

  std::vector<std::byte> transfer = encode_transfer(2, 42, 43, 17);
  ASSERT_EQ(check_transaction(transfer, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::transfer);
  EXPECT_EQ(view.header.nonce, 2u);
  EXPECT_EQ(view.transfer.from, 42u);
  EXPECT_EQ(view.transfer.to, 43u);
  EXPECT_EQ(view.transfer.amount, 17u);

  std::vector<std::byte> put = encode_put(3, bytes_of("colour"), bytes_of("blue"));
  ASSERT_EQ(check_transaction(put, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::put);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view.key.data()), view.key.size()), "colour");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view.value.data()), view.value.size()), "blue");
}

std::vector<std::byte> with_header(std::vector<std::byte> bytes, auto&& change) {
  TxHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  change(header);
  std::memcpy(bytes.data(), &header, sizeof header);
  return bytes;
}

BalanceRecordBody sample_balance_record() {
  BalanceRecordBody body{};
  body.shard = 0;
  body.kind = uint8_t(BalanceRecordKind::tier);
  body.tier_from = 0;
  body.tier_to = 2;
  body.window = 41;
  body.time_ms = 1'764'000'000'000;
  body.tps_smoothed = 52'000;
  body.cost_ns_per_tx = 900;
  body.cores_dedicated = 1;
  body.shares_permille = 0;
  std::strcpy(body.chain_name, "payments");
  return body;
}

TEST(Transaction, BalanceRecordsComeFromTheEngineOnlyAndNameTheirChain) {
  std::vector<std::byte> record = encode_balance_record(sample_balance_record());
  EXPECT_EQ(record.size(), balance_record_tx_bytes);
  TxView view;
  EXPECT_EQ(check_transaction(record, TxOrigin::client, &view), TxStatus::internal_type);
  ASSERT_EQ(check_transaction(record, TxOrigin::engine, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::balance_record);
  EXPECT_EQ(view.header.nonce, 41u);
  EXPECT_EQ(std::string(view.balance_record.chain_name), "payments");
  EXPECT_EQ(view.balance_record.tier_to, 2u);
  EXPECT_EQ(view.balance_record.tps_smoothed, 52'000u);
  EXPECT_EQ(home_shard(view, 1), 0u);

  auto malformed = [&](auto&& change) {
    BalanceRecordBody body = sample_balance_record();
    change(body);
    return check_transaction(encode_balance_record(body), TxOrigin::engine, &view);
  };
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { body.kind = 3; }), TxStatus::bad_flags);
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { body.tier_to = 3; }), TxStatus::bad_flags);
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { body.reserved = 1; }), TxStatus::bad_flags);
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { body.shares_permille = 1001; }), TxStatus::bad_flags);
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { std::memset(body.chain_name, 0, sizeof body.chain_name); }),
            TxStatus::bad_flags);
  // Bytes after the NUL would make two records of one change hash differently.
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { body.chain_name[20] = 'x'; }), TxStatus::bad_flags);
  EXPECT_EQ(malformed([](BalanceRecordBody& body) { std::memset(body.chain_name, 'a', sizeof body.chain_name); }),
            TxStatus::bad_flags);
}

TEST(Transaction, MalformedTransactionsGetTheirReason) {
  TxView view;
  std::vector<std::byte> transfer = encode_transfer(1, 1, 2, 3);
  EXPECT_EQ(check_transaction({}, TxOrigin::client, &view), TxStatus::too_short);
  EXPECT_EQ(check_transaction(std::span(transfer).first(15), TxOrigin::client, &view), TxStatus::too_short);
  EXPECT_EQ(check_transaction(std::span(transfer).first(20), TxOrigin::client, &view), TxStatus::bad_length);
  EXPECT_EQ(check_transaction(with_header(transfer, [](TxHeader& h) { h.version = 2; }), TxOrigin::client, &view),
            TxStatus::bad_version);
  EXPECT_EQ(check_transaction(with_header(transfer, [](TxHeader& h) { h.length += 1; }), TxOrigin::client, &view),
            TxStatus::bad_length);
  EXPECT_EQ(check_transaction(with_header(transfer, [](TxHeader& h) { h.type = 9; }), TxOrigin::client, &view),
            TxStatus::unknown_type);
  EXPECT_EQ(check_transaction(with_header(transfer, [](TxHeader& h) { h.flags = 1; }), TxOrigin::client, &view),
            TxStatus::bad_flags);
  // A transfer's bytes relabelled as a put: the put's own lengths do not add up.
  EXPECT_EQ(check_transaction(with_header(transfer, [](TxHeader& h) { h.type = uint8_t(TxType::put); }),
                              TxOrigin::client, &view),
            TxStatus::bad_length);
  // Fixed-size types must be exactly their size.
  std::vector<std::byte> longer = transfer;
  longer.push_back(std::byte{0});
  longer = with_header(longer, [](TxHeader& h) { h.length += 1; });
  EXPECT_EQ(check_transaction(longer, TxOrigin::client, &view), TxStatus::bad_length);

  std::array<std::byte, credit_tx_bytes> credit;
  write_credit(credit, CreditBody{1, 2, 3, 4, 0, 0}, false);
  EXPECT_EQ(check_transaction(credit, TxOrigin::client, &view), TxStatus::internal_type);
  EXPECT_EQ(check_transaction(credit, TxOrigin::engine, &view), TxStatus::applied);

  std::string long_key(put_key_bytes_max + 1, 'k');
  EXPECT_EQ(check_transaction(encode_put(1, bytes_of(long_key), {}), TxOrigin::client, &view), TxStatus::key_too_long);
  EXPECT_EQ(check_transaction(encode_put(1, {}, bytes_of("v")), TxOrigin::client, &view), TxStatus::empty_key);
  std::string long_value(put_value_bytes_max + 1, 'v');
  EXPECT_EQ(check_transaction(encode_put(1, bytes_of("k"), bytes_of(long_value)), TxOrigin::client, &view),
            TxStatus::value_too_long);
  for (TxStatus status : {TxStatus::too_short, TxStatus::bad_version, TxStatus::bad_length, TxStatus::unknown_type,
                          TxStatus::internal_type, TxStatus::bad_flags})
    EXPECT_TRUE(status_is_malformed(status)) << status_text(status);
  EXPECT_FALSE(status_is_malformed(TxStatus::insufficient_funds));
}

// Random bytes must never read out of bounds (ASan watches) and never pass as a
// transaction unless they frame as one.
TEST(Transaction, RandomBytesNeverCrashTheChecker) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // seen even if an assertion aborts the test
  std::mt19937_64 random(seed);
  TxView view;
  for (int round = 0; round < 100000; ++round) {
    std::vector<std::byte> bytes(random() % 80);
    for (std::byte& byte : bytes) byte = std::byte(random());
    if (bytes.size() >= 16 && random() % 2) {
      bytes[4] = std::byte{tx_format_version};
      uint32_t length = uint32_t(bytes.size());
      std::memcpy(bytes.data(), &length, 4);
      bytes[5] = std::byte(1 + random() % 3);
    }
    TxStatus status = check_transaction(bytes, TxOrigin::client, &view);
    if (status == TxStatus::applied) {
      EXPECT_EQ(view.header.length, bytes.size()) << "seed " << seed;
    }
  }
}

TEST(Transaction, HomeShardsAreStableAndSpread) {
  // The mapping is part of the on-disk contract: these values must never change.
  EXPECT_EQ(shard_of_account(0, 16), 15u);
  EXPECT_EQ(shard_of_account(1, 16), 1u);
  EXPECT_EQ(shard_of_account(2, 16), 14u);
  EXPECT_EQ(shard_of_account(3, 16), 13u);
  EXPECT_EQ(shard_of_account(1000000, 16), 7u);
  EXPECT_EQ(shard_of_key(bytes_of("alice"), 16), 7u);
  EXPECT_EQ(shard_of_key(bytes_of("alice"), 7), 1u);
  std::vector<int> per_shard(4);
  for (uint64_t account = 0; account < 4000; ++account) per_shard[shard_of_account(account, 4)]++;
  for (int count : per_shard) EXPECT_NEAR(count, 1000, 150);
  TxView view;
  std::vector<std::byte> transfer = encode_transfer(1, 7, 8, 1);
  ASSERT_EQ(check_transaction(transfer, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(home_shard(view, 4), shard_of_account(7, 4));
  EXPECT_EQ(shard_of_key(bytes_of("a"), 1), 0u);
}

// The placement rule is "hash modulo the shard count" for every count; power-of-two
// counts take it by a mask, which must give the same shard.
TEST(Transaction, HomeShardsAreTheHashModuloTheCountForEveryCount) {
  uint64_t seed = std::random_device{}();
  std::mt19937_64 random(seed);
  auto splitmix = [](uint64_t account) {
    uint64_t mixed = account + 0x9e3779b97f4a7c15ULL;
    mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ULL;
    mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebULL;
    return mixed ^ (mixed >> 31);
  };
  for (int round = 0; round < 20000; ++round) {
    uint64_t account = random();
    uint32_t count = 1 + uint32_t(random() % 64);
    ASSERT_EQ(shard_of_account(account, count), uint32_t(splitmix(account) % count))
        << "seed " << seed << ", account " << account << ", " << count << " shards";
  }
}

TEST(Transaction, EveryStatusHasText) {
  for (uint16_t code = 0; code < 40; ++code) EXPECT_FALSE(status_text(TxStatus(code)).empty());
}

}  // namespace
}  // namespace keel::ledger
