// Tests for compute transactions: the compute_request, compute_result and compute_results formats
// (transaction.h), the shard's task table and its bytes (state.h, snapshot.h), and how the
// executor issues, settles, rejects and replays tasks (shard.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>

#include "engine/ledger/shard.h"
#include "engine/ledger/snapshot.h"
#include "tests/engine/ledger/ledger_test_support.h"

namespace keel::ledger {
namespace {

// The table's tasks as a map, to compare with a model of what should be pending.
std::unordered_map<uint64_t, PendingTask> as_map(const PendingTaskTable& table) {
  std::unordered_map<uint64_t, PendingTask> tasks;
  for (uint64_t mark : table.marks()) tasks.emplace(mark, table.at(mark));
  return tasks;
}

using testing::account_on;
using testing::submit;
using testing::submit_internal;

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text.data(), text.size())); }
std::vector<std::byte> vector_of(std::string_view text) {
  std::span<const std::byte> bytes = bytes_of(text);
  return {bytes.begin(), bytes.end()};
}
std::string text_of(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TxStatus check(const std::vector<std::byte>& bytes, TxOrigin origin = TxOrigin::client) {
  TxView view;
  return check_transaction(bytes, origin, &view);
}

// `bytes` with its body's fixed part (a Body right after the header) changed.
template <class Body, class Change>
std::vector<std::byte> with_body(std::vector<std::byte> bytes, Change&& change) {
  Body body;
  std::memcpy(&body, bytes.data() + sizeof(TxHeader), sizeof body);
  change(body);
  std::memcpy(bytes.data() + sizeof(TxHeader), &body, sizeof body);
  return bytes;
}

template <class Change>
std::vector<std::byte> with_header(std::vector<std::byte> bytes, Change&& change) {
  TxHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  change(header);
  std::memcpy(bytes.data(), &header, sizeof header);
  return bytes;
}

// `bytes` cut or extended (with zeros) to `size`, its length field following.
std::vector<std::byte> resized(std::vector<std::byte> bytes, size_t size) {
  bytes.resize(size);
  return with_header(std::move(bytes), [&](TxHeader& header) { header.length = uint32_t(size); });
}

std::vector<std::byte> result_for(uint64_t task_mark, uint32_t attempt = 1,
                                  ComputeOutcome outcome = ComputeOutcome::succeeded, uint32_t shard = 0,
                                  std::string_view output = "out") {
  return encode_compute_result(task_mark, shard, attempt, outcome, 0, bytes_of(output));
}

TEST(ComputeTransaction, RequestsAndResultsEncodeCheckAndDecode) {
  TxView view;
  std::vector<std::byte> request = encode_compute_request(9, 42, "credit_score", bytes_of("features"));
  EXPECT_EQ(request.size(), sizeof(TxHeader) + sizeof(ComputeRequestBody) + 12 + 8);
  ASSERT_EQ(check_transaction(request, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::compute_request);
  EXPECT_EQ(view.header.nonce, 9u);
  EXPECT_EQ(view.compute_request.subject, 42u);
  EXPECT_EQ(view.compute_request.compute_type_bytes, 12u);
  EXPECT_EQ(view.compute_request.input_bytes, 8u);
  EXPECT_EQ(view.compute_type, "credit_score");
  EXPECT_EQ(text_of(view.input), "features");
  EXPECT_EQ(home_shard(view, 4), shard_of_account(42, 4));

  uint64_t task_mark = CreditMark::pack(3, 7);
  std::vector<std::byte> result =
      encode_compute_result(task_mark, 2, 5, ComputeOutcome::plugin_failed, -17, bytes_of("bad input"));
  EXPECT_EQ(result.size(), compute_result_tx_bytes(9));
  EXPECT_EQ(check_transaction(result, TxOrigin::client, &view), TxStatus::internal_type);
  ASSERT_EQ(check_transaction(result, TxOrigin::engine, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::compute_result);
  EXPECT_EQ(view.compute_result.task_mark, task_mark);
  EXPECT_EQ(view.compute_result.shard, 2u);
  EXPECT_EQ(view.compute_result.attempt, 5u);
  EXPECT_EQ(ComputeOutcome(view.compute_result.outcome), ComputeOutcome::plugin_failed);
  EXPECT_EQ(view.compute_result.plugin_status, -17);
  EXPECT_EQ(text_of(view.output), "bad input");
  EXPECT_EQ(home_shard(view, 4), 2u);
  EXPECT_EQ(home_shard(view, 2), 2u) << "a result's shard is not reduced: a bad one matches no shard";

  // Into a caller's buffer (a ring slot, an arena block), the same bytes.
  std::vector<std::byte> slot(compute_result_tx_bytes(9));
  write_compute_result(slot, task_mark, 2, 5, ComputeOutcome::plugin_failed, -17, bytes_of("bad input"));
  EXPECT_EQ(slot, result);
  // Results of different attempts hash apart.
  EXPECT_NE(hash_leaf(result_for(task_mark, 1)), hash_leaf(result_for(task_mark, 2)));

  // The edges: empty input and output; the longest name; the largest input and output.
  EXPECT_EQ(check(encode_compute_request(1, 1, "noop", {})), TxStatus::applied);
  EXPECT_EQ(check(result_for(task_mark, 1, ComputeOutcome::succeeded, 0, ""), TxOrigin::engine), TxStatus::applied);
  std::string longest_name(compute_type_bytes_max, 'z');
  std::vector<std::byte> longest = encode_compute_request(1, 1, longest_name, {});
  ASSERT_EQ(check_transaction(longest, TxOrigin::client, &view), TxStatus::applied);
  EXPECT_EQ(view.compute_type, longest_name);
  EXPECT_EQ(check(encode_compute_request(1, 1, "abcdefghijklmnopqrstuvwxyz_01234", {})), TxStatus::applied);
  std::string largest(compute_input_bytes_max, '\xff');
  EXPECT_EQ(check(encode_compute_request(1, 1, "hash", bytes_of(largest))), TxStatus::applied);
  EXPECT_EQ(check(result_for(task_mark, 1, ComputeOutcome::succeeded, 0, largest), TxOrigin::engine), TxStatus::applied);
}

TEST(ComputeTransaction, NumbersAndTextsAreStable) {
  // On the wire and in the log: these must never change.
  EXPECT_EQ(uint8_t(TxType::compute_request), 16);
  EXPECT_EQ(uint8_t(TxType::compute_result), 65);
  EXPECT_EQ(uint16_t(TxStatus::compute_backlog_full), 33);
  EXPECT_EQ(uint16_t(TxStatus::duplicate_result), 34);
  EXPECT_EQ(uint16_t(TxStatus::unknown_task), 35);
  EXPECT_EQ(uint16_t(ComputeOutcome::succeeded), 0);
  EXPECT_EQ(uint16_t(ComputeOutcome::plugin_failed), 1);
  EXPECT_EQ(uint16_t(ComputeOutcome::timed_out), 2);
  EXPECT_EQ(uint16_t(ComputeOutcome::retries_exhausted), 3);
  EXPECT_EQ(uint16_t(ComputeOutcome::quarantined), 4);
  EXPECT_EQ(uint16_t(ComputeOutcome::no_pool), 5);
  for (TxStatus status : {TxStatus::compute_backlog_full, TxStatus::duplicate_result, TxStatus::unknown_task}) {
    EXPECT_NE(status_text(status), "unknown status");
    EXPECT_FALSE(status_is_malformed(status)) << status_text(status);
  }
  // A full backlog is answered before ordering from block format 3 on; 1 and 2 ordered it.
  EXPECT_TRUE(status_is_unordered(TxStatus::compute_backlog_full));
  EXPECT_FALSE(execute_ordered(TxStatus::compute_backlog_full));
  EXPECT_FALSE(execute_ordered(TxStatus::compute_backlog_full, 3));
  EXPECT_TRUE(execute_ordered(TxStatus::compute_backlog_full, 2));
  EXPECT_TRUE(execute_ordered(TxStatus::compute_backlog_full, 1));
  EXPECT_FALSE(execute_ordered(TxStatus::duplicate_result));
  EXPECT_FALSE(execute_ordered(TxStatus::unknown_task));
  for (uint16_t outcome = 0; outcome < compute_outcome_count; ++outcome)
    EXPECT_NE(outcome_text(ComputeOutcome(outcome)), "unknown outcome") << outcome;
  EXPECT_EQ(outcome_text(ComputeOutcome(compute_outcome_count)), "unknown outcome");
  EXPECT_TRUE(is_compute_type_name("credit_score"));
  EXPECT_TRUE(is_compute_type_name(std::string(compute_type_bytes_max, '9')));
  EXPECT_FALSE(is_compute_type_name(""));
  EXPECT_FALSE(is_compute_type_name(std::string(compute_type_bytes_max + 1, 'a')));
  EXPECT_FALSE(is_compute_type_name("Credit"));
}

TEST(ComputeTransaction, MalformedRequestsGetTheirReason) {
  std::vector<std::byte> request = encode_compute_request(1, 42, "hash", bytes_of("document"));
  ASSERT_EQ(check(request), TxStatus::applied);
  // The name: 1..32 characters of [a-z0-9_].
  EXPECT_EQ(check(encode_compute_request(1, 42, "", bytes_of("x"))), TxStatus::bad_length);
  EXPECT_EQ(check(encode_compute_request(1, 42, std::string(compute_type_bytes_max + 1, 'a'), {})), TxStatus::bad_length);
  // A log written under the older 64-character limit still reads back (engine origin).
  TxView logged_view;
  std::vector<std::byte> logged = encode_compute_request(1, 1, std::string(compute_type_bytes_max_logged, 'a'), {});
  EXPECT_EQ(check_transaction(logged, TxOrigin::engine, &logged_view), TxStatus::applied);
  EXPECT_EQ(check_transaction(logged, TxOrigin::client, &logged_view), TxStatus::bad_length);
  EXPECT_EQ(check_transaction(encode_compute_request(1, 1, std::string(compute_type_bytes_max_logged + 1, 'a'), {}),
                              TxOrigin::engine, &logged_view),
            TxStatus::bad_length);
  for (std::string_view name : std::initializer_list<std::string_view>{
           "Hash", "ha-sh", "ha sh", "hash\n", "h\xc3\xa9", std::string_view("ha\0sh", 5), "hash.v2"})
    EXPECT_EQ(check(encode_compute_request(1, 42, name, {})), TxStatus::bad_flags) << name;
  // The input: at most compute_input_bytes_max.
  std::string too_large(compute_input_bytes_max + 1, 'i');
  EXPECT_EQ(check(encode_compute_request(1, 42, "hash", bytes_of(too_large))), TxStatus::bad_length);
  // Reserved bytes and header flags.
  EXPECT_EQ(check(with_body<ComputeRequestBody>(request, [](ComputeRequestBody& body) { body.reserved = 1; })),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_header(request, [](TxHeader& header) { header.flags = 1; })), TxStatus::bad_flags);
  // The parts must add up to the length exactly.
  EXPECT_EQ(check(resized(request, request.size() + 1)), TxStatus::bad_length);
  EXPECT_EQ(check(resized(request, request.size() - 1)), TxStatus::bad_length);
  EXPECT_EQ(check(resized(request, sizeof(TxHeader) + sizeof(ComputeRequestBody) - 1)), TxStatus::bad_length);
  EXPECT_EQ(check(resized(request, sizeof(TxHeader))), TxStatus::bad_length);
  EXPECT_EQ(check(with_body<ComputeRequestBody>(request, [](ComputeRequestBody& body) { body.input_bytes += 1; })),
            TxStatus::bad_length);
  EXPECT_EQ(check(with_body<ComputeRequestBody>(request, [](ComputeRequestBody& body) { body.compute_type_bytes -= 1; })),
            TxStatus::bad_length);
  // A length field that does not match the bytes, and a version this keel does not read.
  EXPECT_EQ(check(with_header(request, [](TxHeader& header) { header.length += 1; })), TxStatus::bad_length);
  EXPECT_EQ(check(with_header(request, [](TxHeader& header) { header.version = 9; })), TxStatus::bad_version);
  // A request is a client type: the engine's origin takes it too (replay reads it so).
  EXPECT_EQ(check(request, TxOrigin::engine), TxStatus::applied);
}

TEST(ComputeTransaction, MalformedResultsGetTheirReason) {
  std::vector<std::byte> result = result_for(CreditMark::pack(1, 0), 1, ComputeOutcome::succeeded, 0, "output");
  ASSERT_EQ(check(result, TxOrigin::engine), TxStatus::applied);
  EXPECT_EQ(check(result, TxOrigin::client), TxStatus::internal_type);
  for (uint16_t outcome : {uint16_t(compute_outcome_count), uint16_t(0xffff)})
    EXPECT_EQ(check(with_body<ComputeResultBody>(result, [&](ComputeResultBody& body) { body.outcome = outcome; }),
                    TxOrigin::engine),
              TxStatus::bad_flags)
        << outcome;
  EXPECT_EQ(check(with_body<ComputeResultBody>(result, [](ComputeResultBody& body) { body.reserved = 1; }),
                  TxOrigin::engine),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_body<ComputeResultBody>(result, [](ComputeResultBody& body) { body.reserved2 = 1; }),
                  TxOrigin::engine),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_header(result, [](TxHeader& header) { header.flags = 1; }), TxOrigin::engine),
            TxStatus::bad_flags);
  // The encoder asserts the output's bound, so the oversized one is built by hand.
  std::vector<std::byte> too_large = result_for(1 << 16, 1, ComputeOutcome::succeeded, 0,
                                                std::string(compute_output_bytes_max, 'o'));
  ASSERT_EQ(check(too_large, TxOrigin::engine), TxStatus::applied);
  too_large = with_body<ComputeResultBody>(resized(too_large, too_large.size() + 1),
                                           [](ComputeResultBody& body) { body.output_bytes += 1; });
  EXPECT_EQ(check(too_large, TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(resized(result, result.size() + 1), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(resized(result, result.size() - 1), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(resized(result, sizeof(TxHeader) + sizeof(ComputeResultBody) - 1), TxOrigin::engine),
            TxStatus::bad_length);
  EXPECT_EQ(check(with_body<ComputeResultBody>(result, [](ComputeResultBody& body) { body.output_bytes -= 1; }),
                  TxOrigin::engine),
            TxStatus::bad_length);
}

// One entry of a compute_results.
std::vector<std::byte> entry_for(uint64_t task_mark, uint32_t attempt = 1,
                                 ComputeOutcome outcome = ComputeOutcome::succeeded, uint32_t shard = 0,
                                 std::string_view output = "out") {
  std::vector<std::byte> entry(compute_result_entry_bytes(output.size()));
  write_compute_result_entry(entry, task_mark, shard, attempt, outcome, 0, bytes_of(output));
  return entry;
}

// The body of entry `index` of a compute_results, changed.
template <class Change>
std::vector<std::byte> with_entry(std::vector<std::byte> bytes, size_t offset, Change&& change) {
  ComputeResultBody body;
  std::memcpy(&body, bytes.data() + offset, sizeof body);
  change(body);
  std::memcpy(bytes.data() + offset, &body, sizeof body);
  return bytes;
}

TEST(ComputeTransaction, ResultBatchesEncodeCheckAndDecodeEntryByEntry) {
  uint64_t first = CreditMark::pack(3, 1), second = CreditMark::pack(3, 7);
  std::vector<std::byte> batch = encode_compute_results(
      2, {entry_for(first, 1, ComputeOutcome::succeeded, 2, "digest"),
          entry_for(second, 3, ComputeOutcome::timed_out, 2, "")});
  EXPECT_EQ(batch.size(), compute_results_tx_bytes(compute_result_entry_bytes(6) + compute_result_entry_bytes(0)));
  TxView view;
  ASSERT_EQ(check_transaction(batch, TxOrigin::engine, &view), TxStatus::applied);
  EXPECT_EQ(view.type, TxType::compute_results);
  EXPECT_EQ(uint8_t(TxType::compute_results), 68);
  EXPECT_EQ(view.header.nonce, first);  // the first entry's mark
  EXPECT_EQ(view.compute_results.shard, 2u);
  EXPECT_EQ(view.compute_results.count, 2u);
  EXPECT_EQ(home_shard(view, 4), 2u);
  ComputeResultEntries entries(view.results);
  ComputeResultEntry entry;
  ASSERT_TRUE(entries.next(entry));
  EXPECT_EQ(entry.body.task_mark, first);
  EXPECT_EQ(entry.body.attempt, 1u);
  EXPECT_EQ(text_of(entry.output), "digest");
  ASSERT_TRUE(entries.next(entry));
  EXPECT_EQ(entry.body.task_mark, second);
  EXPECT_EQ(ComputeOutcome(entry.body.outcome), ComputeOutcome::timed_out);
  EXPECT_TRUE(entry.output.empty());
  EXPECT_FALSE(entries.next(entry));
  EXPECT_EQ(check(batch, TxOrigin::client), TxStatus::internal_type);
}

TEST(ComputeTransaction, MalformedResultBatchesGetTheirReason) {
  std::vector<std::byte> batch = encode_compute_results(
      0, {entry_for(10, 1, ComputeOutcome::succeeded, 0, "ab"), entry_for(11, 1, ComputeOutcome::succeeded, 0, "c")});
  ASSERT_EQ(check(batch, TxOrigin::engine), TxStatus::applied);
  constexpr size_t first = sizeof(TxHeader) + sizeof(ComputeResultsBody);
  const size_t second = first + compute_result_entry_bytes(2);
  auto with_head = [&](auto&& change) { return with_body<ComputeResultsBody>(batch, change); };
  EXPECT_EQ(check(with_head([](ComputeResultsBody& body) { body.count = 0; }), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(with_head([](ComputeResultsBody& body) { body.count = 3; }), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(with_head([](ComputeResultsBody& body) { body.count = 1; }), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(with_head([](ComputeResultsBody& body) { body.count = compute_results_entries_max + 1; }),
                  TxOrigin::engine),
            TxStatus::bad_length);
  // An entry for another shard, marks not ascending (the same task twice included).
  EXPECT_EQ(check(with_entry(batch, second, [](ComputeResultBody& body) { body.shard = 1; }), TxOrigin::engine),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_entry(batch, second, [](ComputeResultBody& body) { body.task_mark = 10; }), TxOrigin::engine),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_entry(batch, second, [](ComputeResultBody& body) { body.task_mark = 9; }), TxOrigin::engine),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_entry(batch, first, [](ComputeResultBody& body) { body.outcome = compute_outcome_count; }),
                  TxOrigin::engine),
            TxStatus::bad_flags);
  EXPECT_EQ(check(with_entry(batch, first, [](ComputeResultBody& body) { body.reserved2 = 1; }), TxOrigin::engine),
            TxStatus::bad_flags);
  // Outputs that do not add up to the length, either way.
  EXPECT_EQ(check(with_entry(batch, first, [](ComputeResultBody& body) { body.output_bytes = 1000; }),
                  TxOrigin::engine),
            TxStatus::bad_length);
  EXPECT_EQ(check(with_entry(batch, second, [](ComputeResultBody& body) { body.output_bytes = 0; }), TxOrigin::engine),
            TxStatus::bad_length);
  EXPECT_EQ(check(resized(batch, batch.size() + 1), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(resized(batch, batch.size() - 1), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(resized(batch, first - 1), TxOrigin::engine), TxStatus::bad_length);
  EXPECT_EQ(check(resized(batch, first + 4), TxOrigin::engine), TxStatus::bad_length);
}

// Random bodies under a well-framed compute header must never read out of bounds (ASan
// watches), and whatever passes must have views inside its bytes.
TEST(ComputeTransaction, RandomBodiesNeverCrashTheChecker) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // seen even if an assertion aborts the test
  std::mt19937_64 random(seed);
  TxView view;
  int passed = 0;
  for (int round = 0; round < 100000; ++round) {
    bool request = random() % 2;
    std::vector<std::byte> bytes(sizeof(TxHeader) + random() % 96);
    for (std::byte& byte : bytes) byte = std::byte(random() % 4 == 0 ? random() : 'a' + random() % 3);
    // Half the time, make the length fields add up, so the deeper checks are reached too.
    size_t body = bytes.size() - sizeof(TxHeader);
    if (random() % 2 && request && body > sizeof(ComputeRequestBody)) {
      uint32_t variable = uint32_t(body - sizeof(ComputeRequestBody));
      uint16_t name_bytes = uint16_t(1 + random() % std::min<uint32_t>(variable, compute_type_bytes_max));
      uint32_t input_bytes = variable - name_bytes;
      bytes = with_body<ComputeRequestBody>(bytes, [&](ComputeRequestBody& fixed) {
        fixed.compute_type_bytes = name_bytes;
        fixed.reserved = 0;
        fixed.input_bytes = input_bytes;
      });
    } else if (random() % 2 && !request && body >= sizeof(ComputeResultBody)) {
      bytes = with_body<ComputeResultBody>(bytes, [&](ComputeResultBody& fixed) {
        fixed.outcome = uint16_t(random() % (compute_outcome_count + 1));
        fixed.reserved = 0;
        fixed.output_bytes = uint32_t(body - sizeof(ComputeResultBody));
        fixed.reserved2 = 0;
      });
    }
    TxHeader header{uint32_t(bytes.size()), tx_format_version,
                    uint8_t(request ? TxType::compute_request : TxType::compute_result), 0, uint64_t(round)};
    std::memcpy(bytes.data(), &header, sizeof header);
    if (check_transaction(bytes, TxOrigin::engine, &view) != TxStatus::applied) continue;
    ++passed;
    const std::byte* end = bytes.data() + bytes.size();
    if (request) {
      ASSERT_GE(reinterpret_cast<const std::byte*>(view.compute_type.data()), bytes.data()) << "seed " << seed;
      ASSERT_LE(view.input.data() + view.input.size(), end) << "seed " << seed;
      ASSERT_EQ(view.compute_type.size() + view.input.size() + 32, bytes.size()) << "seed " << seed;
    } else {
      ASSERT_LE(view.output.data() + view.output.size(), end) << "seed " << seed;
    }
  }
  EXPECT_GT(passed, 0) << "the generator never reached a valid request; seed " << seed;
}

// Random entries under a well-framed compute_results head must never read out of bounds
// (ASan watches); whatever passes must walk to its last byte in `count` entries.
TEST(ComputeTransaction, RandomResultBatchesNeverCrashTheChecker) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);
  std::mt19937_64 random(seed);
  int passed = 0;
  for (int round = 0; round < 50000; ++round) {
    uint32_t count = 1 + uint32_t(random() % 4);
    std::vector<std::byte> bytes(sizeof(TxHeader) + sizeof(ComputeResultsBody));
    uint64_t mark = random() % 8;
    for (uint32_t index = 0; index < count; ++index) {
      // Mostly plausible entries (ascending marks, small outputs), sometimes noise.
      ComputeResultBody body{mark += 1 + random() % 2, 0, 1, uint16_t(random() % 7), 0, 0,
                             uint32_t(random() % 6), 0};
      if (random() % 8 == 0) body.output_bytes = uint32_t(random());
      if (random() % 8 == 0) body.task_mark = random() % 4;
      const std::byte* raw = reinterpret_cast<const std::byte*>(&body);
      bytes.insert(bytes.end(), raw, raw + sizeof body);
      bytes.resize(bytes.size() + random() % 6, std::byte{'o'});
    }
    if (random() % 4 == 0) bytes.resize(bytes.size() - random() % bytes.size());
    if (bytes.size() < sizeof(TxHeader)) continue;
    TxHeader header{uint32_t(bytes.size()), tx_format_version, uint8_t(TxType::compute_results), 0, 0};
    std::memcpy(bytes.data(), &header, sizeof header);
    if (bytes.size() >= sizeof(TxHeader) + sizeof(ComputeResultsBody)) {
      ComputeResultsBody head{0, random() % 5 == 0 ? uint32_t(random() % 6) : count};
      std::memcpy(bytes.data() + sizeof header, &head, sizeof head);
    }
    TxView view;
    if (check_transaction(bytes, TxOrigin::engine, &view) != TxStatus::applied) continue;
    ++passed;
    ComputeResultEntries entries(view.results);
    uint32_t walked = 0;
    size_t walked_bytes = 0;
    for (ComputeResultEntry entry; entries.next(entry);) {
      ++walked;
      walked_bytes += sizeof entry.body + entry.output.size();
      ASSERT_LE(entry.output.data() + entry.output.size(), bytes.data() + bytes.size()) << "seed " << seed;
    }
    ASSERT_EQ(walked, view.compute_results.count) << "seed " << seed;
    ASSERT_EQ(walked_bytes, view.results.size()) << "seed " << seed;
  }
  EXPECT_GT(passed, 0) << "the generator never reached a valid batch; seed " << seed;
}

TEST(ComputeExecutor, IssuesTasksAndSettlesEachExactlyOnce) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  EXPECT_EQ(submit(shard, encode_create_account(1, 1, 100)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_compute_request(2, 1, "hash", bytes_of("doc one"))), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_compute_request(3, 1, "interest", {})), TxStatus::applied);
  ASSERT_EQ(shard.open_tasks().size(), 2u);
  SealedBlock one = shard.seal(1);
  // A task's mark is its request's place: block 1, transactions 1 and 2.
  uint64_t first = CreditMark::pack(1, 1), second = CreditMark::pack(1, 2);
  ASSERT_EQ(one.tasks.size(), 2u);
  EXPECT_EQ(one.tasks[0].task_mark, first);
  EXPECT_EQ(one.tasks[0].subject, 1u);
  EXPECT_EQ(one.tasks[0].compute_type, "hash");
  EXPECT_EQ(one.tasks[0].input, vector_of("doc one"));
  EXPECT_EQ(one.tasks[1].task_mark, second);
  EXPECT_EQ(one.tasks[1].compute_type, "interest");
  EXPECT_TRUE(one.tasks[1].input.empty());
  EXPECT_TRUE(shard.open_tasks().empty());
  const ShardState& state = shard.state();
  EXPECT_EQ(state.pending_tasks.size(), 2u);
  EXPECT_EQ(state.pending_tasks.at(first), (PendingTask{1, "hash", vector_of("doc one")}));
  EXPECT_EQ(state.tasks_issued, 2u);
  EXPECT_EQ(state.task_mark_max, second);

  std::vector<std::byte> settles = result_for(first, 1, ComputeOutcome::succeeded, 0, "digest");
  EXPECT_EQ(submit(shard, settles), TxStatus::internal_type) << "clients cannot settle tasks";
  EXPECT_EQ(submit_internal(shard, settles), TxStatus::applied);
  EXPECT_EQ(shard.open_tx_count(), 1u);
  // The same result again, or another attempt's, finds the task settled: not ordered.
  EXPECT_EQ(submit_internal(shard, settles), TxStatus::duplicate_result);
  EXPECT_EQ(submit_internal(shard, result_for(first, 2, ComputeOutcome::timed_out)), TxStatus::duplicate_result);
  // Marks this shard never issued: above the largest, in a block to come, or in no block.
  EXPECT_EQ(submit_internal(shard, result_for(CreditMark::pack(1, 3))), TxStatus::unknown_task);
  EXPECT_EQ(submit_internal(shard, result_for(CreditMark::pack(5, 0))), TxStatus::unknown_task);
  EXPECT_EQ(submit_internal(shard, result_for(7)), TxStatus::unknown_task);
  // A position at or below the largest mark that held no request (the state keeps no list
  // of settled marks) counts as a duplicate: either way it has no effect.
  EXPECT_EQ(submit_internal(shard, result_for(CreditMark::pack(1, 0))), TxStatus::duplicate_result);
  EXPECT_EQ(shard.open_tx_count(), 1u) << "nothing but the first result was ordered";
  // Any outcome but succeeded settles the task as failed.
  EXPECT_EQ(submit_internal(shard, result_for(second, 3, ComputeOutcome::no_pool, 0, "no pool serves interest")),
            TxStatus::applied);
  SealedBlock two = shard.seal(2);
  EXPECT_EQ(two.header.tx_count, 2u);
  ASSERT_EQ(two.receipts.size(), 2u);
  EXPECT_EQ(two.receipts[0].status, TxStatus::applied);
  EXPECT_EQ(two.receipts[1].status, TxStatus::applied);
  EXPECT_TRUE(two.tasks.empty());
  EXPECT_TRUE(state.pending_tasks.empty());
  EXPECT_EQ(state.tasks_issued, 2u);
  EXPECT_EQ(state.tasks_succeeded, 1u);
  EXPECT_EQ(state.tasks_failed, 1u);
  EXPECT_EQ(submit_internal(shard, result_for(second, 4)), TxStatus::duplicate_result) << "settled stays settled";
  // Compute moves no money.
  EXPECT_EQ(state.total_balance(), 100);
  EXPECT_EQ(state.opened_total, 100);

  // Replaying both blocks reproduces the state, counters and tasks included.
  ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
  Result<SealedBlock> replayed = replica.replay(one.record);
  ASSERT_TRUE(replayed) << replayed.error().message;
  EXPECT_EQ(replayed->tasks.size(), 2u);
  ASSERT_TRUE(replica.replay(two.record));
  EXPECT_EQ(replica.state().digest(), state.digest());
}

// Lists sent back while several blocks were unsent are all kept: each of the next blocks
// that issues tasks writes them over one of them, input buffers included, and allocates
// none; a block that issues none keeps its list for the next. (Each spent input has its
// own capacity, which names its list: a fresh buffer for "doc" would hold 3 bytes.)
TEST(ComputeExecutor, EveryTaskListSentBackServesALaterBlock) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  for (size_t capacity : {40, 50, 60}) {
    std::vector<OutboundTask> spent(1);
    std::vector<std::byte> bytes = vector_of("a spent input");
    spent[0].input.reserve(capacity);
    spent[0].input.assign(bytes.begin(), bytes.end());  // within the reserved capacity
    shard.reuse_task_list(std::move(spent));
  }
  EXPECT_EQ(submit(shard, encode_create_account(1, 1, 100)), TxStatus::applied);
  shard.seal(1);  // block 2 takes a spare list
  std::multiset<size_t> capacities_used;
  for (uint64_t block = 2; block <= 5; ++block) {
    if (block == 3) {  // no task: block 4 writes over block 3's list
      EXPECT_EQ(submit(shard, encode_create_account(block, block, 100)), TxStatus::applied);
      EXPECT_TRUE(shard.seal(block).tasks.empty());
      continue;
    }
    EXPECT_EQ(submit(shard, encode_compute_request(block, block, "hash", bytes_of("doc"))), TxStatus::applied);
    SealedBlock sealed = shard.seal(block);
    ASSERT_EQ(sealed.tasks.size(), 1u);
    EXPECT_EQ(sealed.tasks[0].input, vector_of("doc"));
    capacities_used.insert(sealed.tasks[0].input.capacity());
  }
  EXPECT_EQ(capacities_used, (std::multiset<size_t>{40, 50, 60}));
}

// A batch settles each of its tasks as that many single results would, is refused whole
// when any entry settles nothing, and settling_results() gives the part that still can.
// A sent block's task list comes back to be written over: a later block's tasks carry
// only their own fields (none of a spent flow job's lease policy or longer input), and
// the list holds exactly the block's tasks.
TEST(ComputeExecutor, AReusedTaskListCarriesOnlyTheNewBlocksTasks) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  std::vector<OutboundTask> spent(5);
  for (OutboundTask& task : spent)
    task = OutboundTask{flow_task_mark(77), 9, "credit_score", vector_of("a spent, longer input"), 500, 3, 20, 123};
  shard.reuse_task_list(std::move(spent));
  EXPECT_EQ(submit(shard, encode_create_account(1, 1, 100)), TxStatus::applied);
  shard.seal(1);  // the spent list becomes block 2's
  EXPECT_EQ(submit(shard, encode_compute_request(2, 4, "hash", bytes_of("doc"))), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_compute_request(3, 5, "noop", {})), TxStatus::applied);
  ASSERT_EQ(shard.open_tasks().size(), 2u);
  SealedBlock block = shard.seal(2);
  ASSERT_EQ(block.tasks.size(), 2u);
  for (size_t index = 0; index < 2; ++index) {
    const OutboundTask& task = block.tasks[index];
    EXPECT_EQ(task.task_mark, CreditMark::pack(2, uint32_t(index)));
    EXPECT_EQ(task.subject, 4u + index);
    EXPECT_EQ(task.compute_type, index == 0 ? "hash" : "noop");
    EXPECT_EQ(task.input, index == 0 ? vector_of("doc") : std::vector<std::byte>{});
    EXPECT_EQ(task.timeout_ms, 0u);
    EXPECT_EQ(task.retries_max, 0u);
    EXPECT_EQ(task.backoff_ms, 0u);
    EXPECT_EQ(task.ready_ns, 0u);
  }
}

TEST(ComputeExecutor, ABatchSettlesEveryEntryOrIsRefusedAndItsSettlingPartOrderedAlone) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  for (uint64_t nonce = 1; nonce <= 4; ++nonce)
    ASSERT_EQ(submit(shard, encode_compute_request(nonce, 1, "hash", {})), TxStatus::applied);
  SealedBlock one = shard.seal(1);
  ASSERT_EQ(one.tasks.size(), 4u);
  uint64_t a = one.tasks[0].task_mark, b = one.tasks[1].task_mark, c = one.tasks[2].task_mark,
           d = one.tasks[3].task_mark;
  std::vector<std::byte> ab =
      encode_compute_results(0, {entry_for(a, 1, ComputeOutcome::succeeded, 0, "A"),
                                 entry_for(b, 2, ComputeOutcome::plugin_failed, 0, "B")});
  EXPECT_EQ(submit(shard, ab), TxStatus::internal_type);
  EXPECT_EQ(submit_internal(shard, ab), TxStatus::applied);
  EXPECT_EQ(shard.state().tasks_succeeded, 1u);
  EXPECT_EQ(shard.state().tasks_failed, 1u);
  EXPECT_EQ(shard.state().pending_tasks.size(), 2u);
  // b is settled: a batch naming it with c is refused whole, c untouched.
  std::vector<std::byte> bc = encode_compute_results(0, {entry_for(b), entry_for(c)});
  EXPECT_EQ(submit_internal(shard, bc), TxStatus::duplicate_result);
  EXPECT_TRUE(shard.state().pending_tasks.contains(c));
  // The first entry that settles nothing gives the reason.
  EXPECT_EQ(submit_internal(shard, encode_compute_results(0, {entry_for(a), entry_for(CreditMark::pack(9, 0))})),
            TxStatus::duplicate_result);
  EXPECT_EQ(submit_internal(shard, encode_compute_results(0, {entry_for(c), entry_for(CreditMark::pack(9, 0))})),
            TxStatus::unknown_task);
  EXPECT_EQ(shard.open_tx_count(), 1u);
  // What the tile orders instead: c alone.
  TxView refused;
  ASSERT_EQ(check_transaction(bc, TxOrigin::engine, &refused), TxStatus::applied);
  std::vector<std::byte> kept;
  ASSERT_TRUE(shard.settling_results(refused, kept));
  TxView view;
  ASSERT_EQ(check_transaction(kept, TxOrigin::engine, &view), TxStatus::applied);
  EXPECT_EQ(view.compute_results.count, 1u);
  EXPECT_EQ(view.header.nonce, c);
  EXPECT_EQ(submit_internal(shard, kept), TxStatus::applied);
  EXPECT_FALSE(shard.state().pending_tasks.contains(c));
  EXPECT_FALSE(shard.settling_results(refused, kept)) << "nothing left to settle";
  EXPECT_EQ(submit_internal(shard, encode_compute_results(0, {entry_for(d)})), TxStatus::applied);
  SealedBlock two = shard.seal(2);
  EXPECT_EQ(two.header.tx_count, 3u);
  EXPECT_TRUE(shard.state().pending_tasks.empty());
  EXPECT_EQ(shard.state().tasks_succeeded, 3u);

  ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
  ASSERT_TRUE(replica.replay(one.record));
  ASSERT_TRUE(replica.replay(two.record));
  EXPECT_EQ(replica.state().digest(), shard.state().digest());
}

TEST(ComputeExecutor, RefusesWhatBelongsToAnotherShard) {
  ShardExecutor shard({"bank", 0, 2}, BlockLimits{});
  EXPECT_EQ(submit(shard, encode_compute_request(1, account_on(1, 2), "hash", {})), TxStatus::wrong_shard);
  EXPECT_EQ(submit(shard, encode_compute_request(2, account_on(0, 2), "hash", {})), TxStatus::applied);
  uint64_t task_mark = CreditMark::pack(1, 0);
  for (uint32_t other : {1u, 2u, 7u})  // another shard, or none of the chain's
    EXPECT_EQ(submit_internal(shard, result_for(task_mark, 1, ComputeOutcome::succeeded, other)), TxStatus::wrong_shard)
        << other;
  EXPECT_EQ(shard.open_tx_count(), 1u);
  EXPECT_EQ(submit_internal(shard, result_for(task_mark, 1, ComputeOutcome::succeeded, 0)), TxStatus::applied);
}

TEST(ComputeExecutor, AFullBacklogRejectsRequestsUntilATaskSettles) {
  BlockLimits limits;
  limits.compute_pending_max = 4;
  ShardExecutor shard({"bank", 0, 1}, limits);
  for (uint64_t nonce = 1; nonce <= 4; ++nonce)
    EXPECT_EQ(submit(shard, encode_compute_request(nonce, 1, "noop", {})), TxStatus::applied) << nonce;
  EXPECT_EQ(submit(shard, encode_compute_request(5, 1, "noop", {})), TxStatus::compute_backlog_full);
  EXPECT_EQ(shard.open_tx_count(), 4u) << "a refusal is not ordered: its producer is answered at once";
  EXPECT_EQ(shard.open_tasks().size(), 4u);
  SealedBlock one = shard.seal(1);
  EXPECT_EQ(one.header.compute_pending_max, 4u);
  EXPECT_EQ(one.receipts.size(), 4u);
  EXPECT_EQ(shard.state().tasks_issued, 4u);
  EXPECT_EQ(submit(shard, encode_compute_request(6, 1, "noop", {})), TxStatus::compute_backlog_full);
  EXPECT_EQ(submit_internal(shard, result_for(one.tasks[0].task_mark)), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_compute_request(7, 1, "noop", {})), TxStatus::applied);
  EXPECT_EQ(submit(shard, encode_compute_request(8, 1, "noop", {})), TxStatus::compute_backlog_full);
  SealedBlock two = shard.seal(2);
  EXPECT_EQ(two.header.tx_count, 2u);  // the result and request 7
  ASSERT_EQ(two.tasks.size(), 1u);
  EXPECT_EQ(two.tasks[0].task_mark, CreditMark::pack(2, 1));
  EXPECT_EQ(shard.state().pending_tasks.size(), 4u);

  // Replay under another config (verify's, or a restart's): the bound each block's header
  // records decides ...
  ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
  for (const SealedBlock* block : {&one, &two}) {
    Result<SealedBlock> replayed = replica.replay(block->record);
    ASSERT_TRUE(replayed) << replayed.error().message;
    EXPECT_EQ(replayed->hash, block->hash);
    ASSERT_EQ(replayed->receipts.size(), block->receipts.size());
    for (size_t index = 0; index < block->receipts.size(); ++index)
      EXPECT_EQ(replayed->receipts[index].status, block->receipts[index].status) << index;
  }
  EXPECT_EQ(replica.state().digest(), shard.state().digest());
  // ... and the new bound holds from the next block on.
  EXPECT_EQ(submit(replica, encode_compute_request(9, 1, "noop", {})), TxStatus::applied);
  EXPECT_EQ(replica.seal(3).header.compute_pending_max, BlockLimits{}.compute_pending_max);
}

// A block of format `version` holding four accepted requests and a fifth past the bound
// of 4, ordered as formats 1 and 2 ordered refusals, under that version's Merkle root.
std::vector<std::byte> block_with_an_ordered_refusal(uint16_t version) {
  BlockLimits limits;
  limits.compute_pending_max = 4;
  ShardExecutor shard({"bank", 0, 1}, limits);
  for (uint64_t nonce = 1; nonce <= 4; ++nonce) EXPECT_EQ(submit(shard, encode_compute_request(nonce, 1, "noop", {})), TxStatus::applied);
  SealedBlock sealed = shard.seal(1);
  std::vector<std::byte> refused = encode_compute_request(5, 1, "noop", {});
  std::vector<std::byte> record = sealed.record;
  record.insert(record.end(), refused.begin(), refused.end());
  BlockHeader header = sealed.header;
  header.version = version;
  header.tx_count = 5;
  header.body_bytes += refused.size();
  std::vector<Hash32> leaves, scratch;
  for_each_transaction(std::span(record).subspan(sizeof header), [&](std::span<const std::byte> tx) { leaves.push_back(hash_leaf(tx)); });
  header.merkle_root = block_merkle_root(version, leaves, scratch);
  std::memcpy(record.data(), &header, sizeof header);
  return record;
}

// Logs from before format 3 hold ordered refusals: they replay as they ran. A format 3
// block cannot hold one: replay refuses it.
TEST(ComputeExecutor, OrderedRefusalsReplayOnlyInFormat1And2Blocks) {
  for (uint16_t version : {1, 2}) {
    ShardExecutor replica({"bank", 0, 1}, BlockLimits{});
    Result<SealedBlock> old = replica.replay(block_with_an_ordered_refusal(version));
    ASSERT_TRUE(old) << "format " << version << ": " << old.error().message;
    ASSERT_EQ(old->receipts.size(), 5u);
    EXPECT_EQ(old->receipts[4].status, TxStatus::compute_backlog_full);
    EXPECT_EQ(old->tasks.size(), 4u);
    EXPECT_EQ(replica.state().tasks_issued, 4u);
    // The live bound and format are back once the replay is done.
    EXPECT_EQ(submit(replica, encode_compute_request(9, 1, "noop", {})), TxStatus::applied);
    EXPECT_EQ(replica.seal(2).header.version, block_format_version);
  }

  ShardExecutor other({"bank", 0, 1}, BlockLimits{});
  Result<SealedBlock> refused = other.replay(block_with_an_ordered_refusal(3));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "chain bank shard 0 height 1: transaction 4 cannot be in this block: " +
                                         std::string(status_text(TxStatus::compute_backlog_full)));
}

TEST(ComputeExecutor, ReplayRefusesAResultForASettledTask) {
  ShardExecutor shard({"bank", 0, 1}, BlockLimits{});
  ASSERT_EQ(submit(shard, encode_compute_request(1, 1, "hash", {})), TxStatus::applied);
  SealedBlock one = shard.seal(1);
  ASSERT_EQ(submit_internal(shard, result_for(one.tasks[0].task_mark)), TxStatus::applied);
  SealedBlock two = shard.seal(2);
  // A log that (wrongly) holds the result twice: replay must not apply it twice.
  ShardExecutor forger({"bank", 0, 1}, BlockLimits{});
  ASSERT_TRUE(forger.replay(one.record));
  ASSERT_TRUE(forger.replay(two.record));
  std::vector<std::byte> again = result_for(one.tasks[0].task_mark);
  std::vector<std::byte> record = two.record;
  BlockHeader header;
  std::memcpy(&header, record.data(), sizeof header);
  header.height = 3;
  header.previous_hash = two.hash;
  std::memcpy(record.data(), &header, sizeof header);
  Result<SealedBlock> replayed = forger.replay(record);
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().message,
            "chain bank shard 0 height 3: transaction 0 cannot be in this block: "
            "compute result for a task no longer pending");
}

// One shard under a random stream of compute requests, results (of every outcome, from
// several attempts), duplicate and unknown results and transfers, with a small backlog. A
// model predicts every status; after every block the task counters must add up.
struct ComputeStream {
  ComputeStream(uint64_t seed, uint32_t compute_pending_max)
      : random(seed), backlog(compute_pending_max), shard({"bank", 0, 1}, BlockLimits{24, 1 << 20, compute_pending_max}) {}
  std::mt19937_64 random;
  uint32_t backlog;
  ShardExecutor shard;
  std::vector<SealedBlock> blocks;
  std::unordered_map<uint64_t, PendingTask> model;  // what should be pending
  std::vector<uint64_t> dispatched;        // pending marks whose block is sealed
  std::vector<uint64_t> settled;
  uint64_t succeeded = 0, failed = 0, time_ns = 1;

  void seal() {
    if (shard.open_tx_count() == 0) return;
    blocks.push_back(shard.seal(time_ns++));
    for (const OutboundTask& task : blocks.back().tasks) dispatched.push_back(task.task_mark);
    const ShardState& state = shard.state();
    ASSERT_EQ(state.tasks_issued, state.tasks_succeeded + state.tasks_failed + state.pending_tasks.size())
        << "block " << state.height;
    ASSERT_EQ(as_map(state.pending_tasks), model) << "block " << state.height;
    ASSERT_EQ(state.tasks_succeeded, succeeded);
    ASSERT_EQ(state.tasks_failed, failed);
  }
  void request(uint64_t nonce) {
    static const char* const types[] = {"hash", "credit_score", "var_mc", "interest", "noop"};
    std::string type = types[random() % 5];
    std::vector<std::byte> input(random() % 200);
    for (std::byte& byte : input) byte = std::byte(random());
    uint64_t subject = 1 + random() % 10;
    bool full = model.size() >= backlog;
    uint64_t task_mark = CreditMark::pack(shard.state().height + 1, shard.open_tx_count());
    TxStatus status = submit(shard, encode_compute_request(nonce, subject, type, input));
    ASSERT_EQ(status, full ? TxStatus::compute_backlog_full : TxStatus::applied) << "nonce " << nonce;
    if (!full) model.emplace(task_mark, PendingTask{subject, type, input});
  }
  void settle() {
    if (dispatched.empty()) return;
    size_t pick = random() % dispatched.size();
    uint64_t task_mark = dispatched[pick];
    dispatched.erase(dispatched.begin() + pick);
    auto outcome = ComputeOutcome(random() % compute_outcome_count);
    uint32_t attempt = 1 + uint32_t(random() % 3);
    ASSERT_EQ(submit_internal(shard, result_for(task_mark, attempt, outcome)), TxStatus::applied);
    model.erase(task_mark);
    settled.push_back(task_mark);
    (outcome == ComputeOutcome::succeeded ? succeeded : failed) += 1;
  }
  void repeat_or_stray() {
    uint32_t before = shard.open_tx_count();
    if (!settled.empty() && random() % 2) {
      uint64_t task_mark = settled[random() % settled.size()];
      ASSERT_EQ(submit_internal(shard, result_for(task_mark, 1 + uint32_t(random() % 5))), TxStatus::duplicate_result);
    } else {
      uint64_t beyond = CreditMark::pack(shard.state().height + 2 + random() % 5, uint32_t(random() % 24));
      ASSERT_EQ(submit_internal(shard, result_for(beyond)), TxStatus::unknown_task);
    }
    ASSERT_EQ(shard.open_tx_count(), before);
  }
};

void run_random_stream(ComputeStream& stream, uint64_t seed) {
  for (uint64_t account = 1; account <= 10; ++account) submit(stream.shard, encode_create_account(account, account, 1000));
  for (uint64_t nonce = 100; nonce < 3000; ++nonce) {
    if (!stream.shard.has_room(512)) {
      ASSERT_NO_FATAL_FAILURE(stream.seal()) << "seed " << seed;
    }
    switch (stream.random() % 6) {
      case 0:
      case 1: ASSERT_NO_FATAL_FAILURE(stream.request(nonce)) << "seed " << seed; break;
      case 2:
      case 3: ASSERT_NO_FATAL_FAILURE(stream.settle()) << "seed " << seed; break;
      case 4: ASSERT_NO_FATAL_FAILURE(stream.repeat_or_stray()) << "seed " << seed; break;
      case 5:
        submit(stream.shard, encode_transfer(nonce, 1 + stream.random() % 10, 1 + stream.random() % 10,
                                             1 + stream.random() % 50));
        break;
    }
    if (stream.random() % 16 == 0) {
      ASSERT_NO_FATAL_FAILURE(stream.seal()) << "seed " << seed;
    }
  }
  ASSERT_NO_FATAL_FAILURE(stream.seal()) << "seed " << seed;
}

TEST(ComputeExecutor, RandomStreamsKeepEveryTaskAccountedFor) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // seen even if an assertion aborts the test
  ComputeStream stream(seed, /*compute_pending_max=*/1 + uint32_t(seed % 40));
  ASSERT_NO_FATAL_FAILURE(run_random_stream(stream, seed));
  const ShardState& state = stream.shard.state();
  EXPECT_GT(state.tasks_issued, 0u) << "seed " << seed;
  EXPECT_EQ(state.total_balance(), 10 * 1000) << "compute must not move money; seed " << seed;

  // From nothing, and from a snapshot halfway, replay reaches the same state and the
  // same pending tasks to dispatch.
  ShardExecutor replica({"bank", 0, 1}, BlockLimits{block_txs_limit, 1u << 30});
  ShardExecutor resumed({"bank", 0, 1}, BlockLimits{});
  size_t half = stream.blocks.size() / 2;
  for (size_t index = 0; index < stream.blocks.size(); ++index) {
    Result<SealedBlock> block = replica.replay(stream.blocks[index].record);
    ASSERT_TRUE(block) << block.error().message << "; seed " << seed;
    ASSERT_EQ(block->hash, stream.blocks[index].hash) << "seed " << seed;
    if (index + 1 == half) {
      Result<ShardSnapshot> snapshot = ShardSnapshot::deserialize(ShardSnapshot{replica.state(), {}}.serialize());
      ASSERT_TRUE(snapshot) << snapshot.error().message << "; seed " << seed;
      resumed.restore(std::move(snapshot->state));
    }
    if (index >= half) {
      ASSERT_TRUE(resumed.replay(stream.blocks[index].record)) << "seed " << seed;
    }
  }
  EXPECT_EQ(replica.state().digest(), state.digest()) << "seed " << seed;
  EXPECT_EQ(resumed.state().digest(), state.digest()) << "seed " << seed;
  std::vector<OutboundTask> again = resumed.pending_task_list();
  ASSERT_EQ(again.size(), state.pending_tasks.size()) << "seed " << seed;
  // In mark order, each as the state holds it.
  std::vector<uint64_t> marks = state.pending_task_marks();
  ASSERT_TRUE(std::is_sorted(marks.begin(), marks.end()));
  for (size_t index = 0; index < again.size(); ++index) {
    EXPECT_EQ(again[index].task_mark, marks[index]);
    EXPECT_EQ((PendingTask{again[index].subject, again[index].compute_type, again[index].input}),
              state.pending_tasks.at(marks[index]));
  }
}

// The same requests, results and duplicates, interleaved the same way, give the same
// blocks and the same state: nothing in the executor depends on anything but its input.
TEST(ComputeExecutor, TheSameStreamGivesTheSameBlocksAndState) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::fflush(stdout);  // seen even if an assertion aborts the test
  ComputeStream one(seed, 16), two(seed, 16);
  for (ComputeStream* stream : {&one, &two}) ASSERT_NO_FATAL_FAILURE(run_random_stream(*stream, seed));
  ASSERT_EQ(one.blocks.size(), two.blocks.size()) << "seed " << seed;
  for (size_t index = 0; index < one.blocks.size(); ++index) {
    ASSERT_EQ(one.blocks[index].record, two.blocks[index].record) << "block " << index << " seed " << seed;
    ASSERT_EQ(one.blocks[index].hash, two.blocks[index].hash) << "block " << index << " seed " << seed;
  }
  EXPECT_EQ(one.shard.state().digest(), two.shard.state().digest()) << "seed " << seed;
  EXPECT_GT(one.shard.state().tasks_succeeded + one.shard.state().tasks_failed, 0u) << "seed " << seed;
}

TEST(ComputeSnapshot, PendingTasksAndTheirInputsSurviveASnapshot) {
  ShardExecutor shard({"bank", 0, 2}, BlockLimits{16, 1 << 20});
  uint64_t subject = account_on(0, 2);
  std::vector<std::byte> binary = {std::byte{0}, std::byte{0xff}, std::byte{0x80}, std::byte{0}};
  std::vector<std::byte> largest(compute_input_bytes_max);
  for (size_t index = 0; index < largest.size(); ++index) largest[index] = std::byte(index * 7);
  ASSERT_EQ(submit(shard, encode_compute_request(1, subject, "hash", binary)), TxStatus::applied);
  ASSERT_EQ(submit(shard, encode_compute_request(2, subject, "var_mc", largest)), TxStatus::applied);
  ASSERT_EQ(submit(shard, encode_compute_request(3, subject, "noop", {})), TxStatus::applied);
  SealedBlock one = shard.seal(1);
  ASSERT_EQ(submit_internal(shard, result_for(one.tasks[2].task_mark, 1, ComputeOutcome::quarantined, 0,
                                              "noop: plugin quarantined")),
            TxStatus::applied);
  shard.seal(2);

  std::vector<std::byte> bytes = ShardSnapshot{shard.state(), {}}.serialize();
  Result<ShardSnapshot> back = ShardSnapshot::deserialize(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->state.digest(), shard.state().digest());
  EXPECT_EQ(back->serialize(), bytes);
  EXPECT_EQ(back->state.pending_tasks, shard.state().pending_tasks);
  ASSERT_EQ(back->state.pending_tasks.size(), 2u);
  EXPECT_EQ(back->state.pending_tasks.at(one.tasks[0].task_mark).input, binary);
  EXPECT_EQ(back->state.pending_tasks.at(one.tasks[1].task_mark).input, largest);
  EXPECT_EQ(back->state.tasks_issued, 3u);
  EXPECT_EQ(back->state.tasks_failed, 1u);
  EXPECT_EQ(back->state.task_mark_max, one.tasks[2].task_mark);

  // A shard restarted from it (the log before it gone) dispatches the two pending tasks
  // again and settles each once; the one settled before the snapshot stays settled.
  ShardExecutor restarted({"bank", 0, 2}, BlockLimits{16, 1 << 20});
  restarted.restore(std::move(back->state));
  std::vector<OutboundTask> tasks = restarted.pending_task_list();
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].task_mark, one.tasks[0].task_mark);
  EXPECT_EQ(tasks[1].compute_type, "var_mc");
  EXPECT_EQ(tasks[1].input, largest);
  EXPECT_EQ(tasks[1].subject, subject);
  EXPECT_EQ(submit_internal(restarted, result_for(tasks[1].task_mark)), TxStatus::applied);
  EXPECT_EQ(submit_internal(restarted, result_for(tasks[1].task_mark, 2)), TxStatus::duplicate_result);
  EXPECT_EQ(submit_internal(restarted, result_for(one.tasks[2].task_mark)), TxStatus::duplicate_result);
  EXPECT_EQ(restarted.state().pending_tasks.size(), 1u);
}

// A state with two pending tasks and everything else small, so its compute section is
// easy to find and damage.
ShardState state_with_tasks() {
  ShardState state(0, 1);
  state.height = 4;
  state.pending_tasks.emplace(CreditMark::pack(2, 1), PendingTask{7, "score_v2", vector_of("applicant")});
  state.pending_tasks.emplace(CreditMark::pack(4, 0), PendingTask{8, "hash", {}});
  state.tasks_issued = 5;
  state.tasks_succeeded = 2;
  state.tasks_failed = 1;
  state.task_mark_max = CreditMark::pack(4, 0);
  return state;
}

// The offset of the first pending task's entry: 24 bytes before its name.
size_t first_task_offset(const std::vector<std::byte>& bytes) {
  std::string text = text_of(bytes);
  size_t name = text.find("score_v2");
  EXPECT_NE(name, std::string::npos);
  return name - 24;
}

TEST(ComputeState, TheComputeSectionRoundTripsCanonically) {
  ShardState state = state_with_tasks();
  std::vector<std::byte> bytes = state.serialize();
  Result<ShardState> back = ShardState::deserialize(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->serialize(), bytes);
  EXPECT_EQ(back->pending_tasks, state.pending_tasks);
  EXPECT_EQ(back->tasks_issued, 5u);
  EXPECT_EQ(back->tasks_succeeded, 2u);
  EXPECT_EQ(back->tasks_failed, 1u);
  EXPECT_EQ(back->task_mark_max, CreditMark::pack(4, 0));
  // Every field is in the digest.
  Hash32 digest = state.digest();
  for (auto change : std::initializer_list<void (*)(ShardState&)>{
           [](ShardState& s) { s.pending_tasks.at(CreditMark::pack(2, 1)).input.push_back(std::byte{1}); },
           [](ShardState& s) { s.pending_tasks.at(CreditMark::pack(2, 1)).compute_type = "score_v3"; },
           [](ShardState& s) { s.pending_tasks.at(CreditMark::pack(2, 1)).subject = 9; },
           [](ShardState& s) { s.tasks_issued += 1; },
           [](ShardState& s) { s.tasks_succeeded += 1; },
           [](ShardState& s) { s.tasks_failed += 1; },
           [](ShardState& s) { s.task_mark_max += 1; }}) {
    ShardState changed = state;
    change(changed);
    EXPECT_NE(changed.digest(), digest);
  }
}

TEST(ComputeState, DamagedComputeSectionsGiveAnErrorNamingTheOffset) {
  std::vector<std::byte> bytes = state_with_tasks().serialize();
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_FALSE(ShardState::deserialize(std::span(bytes).first(cut))) << "cut at " << cut;
  size_t task = first_task_offset(bytes);
  std::string at = "state snapshot: offset " + std::to_string(task) + ": pending task " +
                   std::to_string(CreditMark::pack(2, 1)) + ": ";
  auto error_of = [](const std::vector<std::byte>& damaged) {
    Result<ShardState> back = ShardState::deserialize(damaged);
    return back ? std::string("accepted") : back.error().message;
  };

  std::vector<std::byte> uppercase = bytes;
  uppercase[task + 24] = std::byte{'S'};
  EXPECT_EQ(error_of(uppercase), at + "compute type name has characters outside [a-z0-9_]");
  std::vector<std::byte> reserved = bytes;
  reserved[task + 18] = std::byte{1};
  EXPECT_EQ(error_of(reserved), at + "reserved bytes are not zero");
  std::vector<std::byte> no_name = bytes;
  no_name[task + 16] = std::byte{0};
  EXPECT_EQ(error_of(no_name), at + "compute type name of 0 bytes");
  std::vector<std::byte> huge_input = bytes;
  uint32_t input_bytes = compute_input_bytes_max + 1;
  std::memcpy(huge_input.data() + task + 20, &input_bytes, 4);
  EXPECT_EQ(error_of(huge_input), at + "input of 16385 bytes exceeds 16384");

  // Counters that do not add up, and marks that cannot be: past the largest issued, out
  // of order, or from a block past the state's height.
  size_t counters = task - 40;
  std::vector<std::byte> miscounted = bytes;
  miscounted[counters] = std::byte{6};  // tasks_issued
  EXPECT_EQ(error_of(miscounted), "state snapshot: offset " + std::to_string(counters) +
                                      ": 6 tasks issued but 2 succeeded, 1 failed and 2 pending");
  ShardState beyond = state_with_tasks();
  beyond.task_mark_max = CreditMark::pack(3, 0);
  beyond.pending_tasks.erase(CreditMark::pack(4, 0));
  beyond.pending_tasks.emplace(CreditMark::pack(3, 1), PendingTask{8, "hash", {}});
  EXPECT_NE(error_of(beyond.serialize()).find("not a mark this shard issued (largest 196608)"), std::string::npos)
      << error_of(beyond.serialize());
  std::vector<std::byte> unordered = bytes;
  uint64_t later_mark = CreditMark::pack(4, 0);
  std::memcpy(unordered.data() + task, &later_mark, 8);
  EXPECT_NE(error_of(unordered).find("marks out of order or repeated"), std::string::npos) << error_of(unordered);
  ShardState future = state_with_tasks();
  future.height = 3;
  EXPECT_EQ(error_of(future.serialize()), "state snapshot: offset " + std::to_string(counters) +
                                              ": largest task mark 262144 is past height 3");
  ShardState uncounted = state_with_tasks();
  uncounted.pending_tasks.clear();
  uncounted.tasks_issued = 0;
  uncounted.tasks_succeeded = 0;
  uncounted.tasks_failed = 0;
  EXPECT_EQ(error_of(uncounted.serialize()), "state snapshot: offset " + std::to_string(counters) +
                                                 ": task counters disagree with the largest task mark");
}

TEST(ComputeState, OlderStatesAreReadAsOnesWithoutTasksFlowsOrCreditAccounts) {
  ShardState state(0, 1);
  state.height = 3;
  state.accounts[1] = Account{50, 0};
  std::vector<std::byte> current = state.serialize();
  std::vector<std::byte> empty_flows;
  state.flows.serialize(empty_flows);
  // Version 3 is version 4 without the credit section (an account count); version 2 is
  // version 3 without the flow section; version 1 is version 2 without the compute section
  // (four counters and a count).
  for (uint32_t version : {3u, 2u, 1u}) {
    size_t cut = 8 + (version <= 2 ? empty_flows.size() : 0) + (version == 1 ? 40 : 0);
    std::vector<std::byte> old(current.begin(), current.end() - long(cut));
    std::memcpy(old.data() + 4, &version, 4);
    Result<ShardState> back = ShardState::deserialize(old);
    ASSERT_TRUE(back) << version << ": " << back.error().message;
    EXPECT_TRUE(back->pending_tasks.empty());
    EXPECT_EQ(back->flows.plan_count(), 0u);
    EXPECT_TRUE(back->credit_accounts.empty());
    EXPECT_EQ(back->serialize(), current) << version;
  }
  uint32_t version = 5;
  std::memcpy(current.data() + 4, &version, 4);
  Result<ShardState> back = ShardState::deserialize(current);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().message, "state snapshot: offset 8: state format version 5, this keel reads 1 to 4");
}

}  // namespace
}  // namespace keel::ledger
