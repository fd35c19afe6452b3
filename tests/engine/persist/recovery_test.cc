// Tests for engine/persist/recovery.h: torn tails are cut, damage is refused with an error
// naming the file and offset, segment headers from another layout are refused.
#include "engine/persist/recovery.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/persist/crc32c.h"
#include "engine/persist/persister.h"
#include "engine/persist/shard_log.h"
#include "tests/engine/persist/persist_test_support.h"

namespace keel::persist {
namespace {

using testing::RecordPlace;
using testing::ScannedRecord;
using testing::ScratchDirectory;

constexpr size_t payload_bytes = 100;
constexpr uint64_t record_bytes = sizeof(RecordHeader) + payload_bytes;

// Writes one batch per entry of `batch_sizes` (records of 100 bytes) to a fresh log and
// returns its segment files.
std::vector<std::string> write_batches(const std::string& directory, const std::vector<int>& batch_sizes,
                                       LogOptions options = {}, Backend backend = Backend::psync) {
  auto log = testing::recover_and_open(directory, testing::identity(), options);
  auto persister = testing::make_persister(backend);
  persister->add_log(log.get());
  for (int count : batch_sizes) {
    testing::stage_records(*log, size_t(count), payload_bytes);
    testing::commit(*persister);
  }
  return log->segment_paths();
}

void flip_bit(const std::string& path, uint64_t offset, int bit = 3) {
  std::vector<std::byte> bytes = testing::read_bytes(path);
  bytes.at(offset) ^= std::byte(1 << bit);
  testing::write_bytes(path, bytes);
}

void zero_range(const std::string& path, uint64_t offset, uint64_t bytes_count) {
  std::vector<std::byte> bytes = testing::read_bytes(path);
  std::fill(bytes.begin() + ptrdiff_t(offset), bytes.begin() + ptrdiff_t(offset + bytes_count), std::byte(0));
  testing::write_bytes(path, bytes);
}

void cut_file(const std::string& path, uint64_t length) {
  ASSERT_EQ(::truncate(path.c_str(), off_t(length)), 0);
}

uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

Result<RecoveredLog> scan(const std::string& directory, std::vector<ScannedRecord>* records = nullptr,
                          const LogIdentity& expected = testing::identity()) {
  std::vector<ScannedRecord> ignored;
  return testing::scan_keep(directory, expected, records != nullptr ? records : &ignored);
}

class TornTailTest : public ::testing::TestWithParam<Backend> {};

INSTANTIATE_TEST_SUITE_P(Backends, TornTailTest, ::testing::Values(Backend::io_uring, Backend::psync),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(testing::backend_name(info.param));
                         });

TEST_P(TornTailTest, LastRecordCutInHalfIsCutOffAndTheLogAppendsAgain) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {3, 2}, {}, GetParam());
  ASSERT_EQ(files.size(), 1u);
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  ASSERT_EQ(places.size(), 6u);  // segment header, records 0..4
  uint64_t last_offset = places[5].offset;
  cut_file(files[0], last_offset + record_bytes / 2);

  std::vector<ScannedRecord> records;
  Result<RecoveredLog> recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->file, files[0]);
  EXPECT_EQ(recovered->torn->offset, last_offset);
  EXPECT_EQ(recovered->torn->bytes_cut, record_bytes / 2);
  EXPECT_EQ(recovered->torn->batch, 2u);
  EXPECT_EQ(recovered->next_sequence, 4u);
  EXPECT_EQ(recovered->tail_file_bytes, last_offset);
  EXPECT_EQ(records.size(), 4u);
  ASSERT_TRUE(truncate_torn_tail(*recovered).ok());
  EXPECT_EQ(file_size(files[0]), last_offset);

  // Reopen and append: the next batch starts a new file (the old one ends inside batch 2).
  auto log = ShardLog::open(scratch.path(), testing::identity(), {}, *recovered);
  ASSERT_TRUE(log.ok()) << log.error().message;
  auto persister = testing::make_persister(GetParam());
  persister->add_log(log->get());
  EXPECT_EQ(persister->next_batch(), 3u);
  testing::stage_records(**log, 3, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  EXPECT_EQ((*log)->segment_paths().size(), 2u);

  records.clear();
  recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  ASSERT_EQ(records.size(), 7u);
  std::vector<uint64_t> batches;
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].sequence, index);
    EXPECT_EQ(records[index].payload, testing::payload_for(index, payload_bytes));
    batches.push_back(records[index].batch);
  }
  EXPECT_EQ(batches, (std::vector<uint64_t>{1, 1, 1, 2, 3, 3, 3}));
}

TEST(RecoveryTest, TornBatchWhoseLaterRecordSurvivedIsCutAtTheHole) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {2, 5});
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  ASSERT_EQ(places.size(), 8u);
  // Record 4, in the middle of batch 2, never reached the disk; 5 and 6 did.
  uint64_t hole = places[5].offset;
  ASSERT_EQ(places[5].header.sequence, 4u);
  zero_range(files[0], hole, record_bytes);
  uint64_t size_before = file_size(files[0]);

  std::vector<ScannedRecord> records;
  Result<RecoveredLog> recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, hole);
  EXPECT_EQ(recovered->torn->bytes_cut, size_before - hole);
  EXPECT_EQ(recovered->torn->batch, 2u);
  EXPECT_EQ(recovered->next_sequence, 4u);
  EXPECT_EQ(records.size(), 4u);
  ASSERT_TRUE(truncate_torn_tail(*recovered).ok());
  EXPECT_EQ(file_size(files[0]), hole);
  auto reopened = testing::recover_and_open(scratch.path(), testing::identity());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->next_sequence(), 4u);
}

TEST(RecoveryTest, FileEndingCleanlyInsideABatchIsATearOfZeroBytes) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {2, 3});
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  uint64_t boundary = places[5].offset;  // after records 2 and 3 of batch 2
  cut_file(files[0], boundary);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, boundary);
  EXPECT_EQ(recovered->torn->bytes_cut, 0u);
  EXPECT_EQ(recovered->torn->batch, 2u);
  EXPECT_EQ(recovered->next_sequence, 4u);
  // Appending goes to a new file, and the log reads back whole.
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log.get());
  testing::stage_records(*log, 2, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  std::vector<ScannedRecord> records;
  recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  EXPECT_EQ(records.size(), 6u);
  EXPECT_EQ(recovered->files.size(), 2u);
}

TEST(RecoveryTest, FlippedBitInAnEarlyBatchIsDamage) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {3, 2, 2});
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  uint64_t damaged = places[2].offset;  // record 1, batch 1
  flip_bit(files[0], damaged + sizeof(RecordHeader) + 40);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(
      recovered.error().message,
      files[0] + ": offset " + std::to_string(damaged) +
          ": record 1 (batch 1) is damaged (checksum mismatch) and good records of a later batch follow it");
}

TEST(RecoveryTest, DamagedSingleRecordBatchFollowedByOneLaterBatchIsATear) {
  ScratchDirectory scratch;
  // Batch 2 is one record; batch 3 follows it whole. Batch 3 may have been in flight beside
  // batch 2 (commits_in_flight_limit) and landed while batch 2 tore: nothing proves that
  // batch 2 completed, and neither was acknowledged.
  std::vector<std::string> files = write_batches(scratch.path(), {2, 1, 2});
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  uint64_t damaged = places[3].offset;  // record 2, batch 2
  flip_bit(files[0], damaged + sizeof(RecordHeader) + 7);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, damaged);
  EXPECT_EQ(recovered->torn->batch, 3u);  // the largest the torn batch can be
  EXPECT_EQ(recovered->next_sequence, 2u);
}

TEST(RecoveryTest, DamagedSingleRecordBatchFollowedByTwoLaterBatchesIsDamage) {
  ScratchDirectory scratch;
  // Batch 2 is one record; batches 3 and 4 follow it whole. Batch 4 was submitted only
  // once batch 2 was durable: the damaged record belongs to a completed batch.
  std::vector<std::string> files = write_batches(scratch.path(), {2, 1, 2, 2});
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  uint64_t damaged = places[3].offset;  // record 2, batch 2
  flip_bit(files[0], damaged + sizeof(RecordHeader) + 7);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(recovered.error().message,
            files[0] + ": offset " + std::to_string(damaged) +
                ": record 2 (of a batch after 1) is damaged (checksum mismatch) and good "
                "records of a later batch follow it");
}

TEST(RecoveryTest, DamageInAFileBeforeTheLastIsAlwaysDamage) {
  ScratchDirectory scratch;
  std::vector<int> batches(24, 3);
  std::vector<std::string> files = write_batches(scratch.path(), batches, {.segment_bytes_max = 4096});
  ASSERT_GE(files.size(), 2u);
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  const RecordPlace& last = places.back();
  flip_bit(files[0], last.offset + 5);  // payload length field of the file's last record
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  std::string expected_start = files[0] + ": offset " + std::to_string(last.offset) + ": record " +
                               std::to_string(last.header.sequence) + " (batch " +
                               std::to_string(last.header.batch) + ")";
  EXPECT_EQ(recovered.error().message.substr(0, expected_start.size()), expected_start)
      << recovered.error().message;
  EXPECT_NE(recovered.error().message.find("and later segment files follow it"), std::string::npos)
      << recovered.error().message;
}

TEST(RecoveryTest, TornFirstRecordOfABatchAfterSkippedBatchNumbersIsATear) {
  // Batch numbers are global: log A takes part in batches 1 and 3 only. A tear of batch 3
  // that loses its first record but keeps its later ones is a tear, not damage.
  ScratchDirectory scratch;
  auto log_a = testing::recover_and_open(scratch / "a", testing::identity(0, 2));
  auto log_b = testing::recover_and_open(scratch / "b", testing::identity(1, 2));
  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log_a.get());
  persister->add_log(log_b.get());
  testing::stage_records(*log_a, 2, payload_bytes);
  testing::stage_records(*log_b, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  testing::stage_records(*log_b, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  testing::stage_records(*log_a, 3, payload_bytes);
  testing::stage_records(*log_b, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  std::string file_a = log_a->segment_paths()[0];
  std::vector<RecordPlace> places = testing::record_places(file_a);
  ASSERT_EQ(places[3].header.batch, 3u);
  zero_range(file_a, places[3].offset, record_bytes);

  Result<RecoveredLog> recovered_a = scan(scratch / "a", nullptr, testing::identity(0, 2));
  ASSERT_TRUE(recovered_a.ok()) << recovered_a.error().message;
  ASSERT_TRUE(recovered_a->torn.has_value());
  EXPECT_EQ(recovered_a->torn->offset, places[3].offset);
  EXPECT_EQ(recovered_a->torn->batch, 3u);  // named by the records of it that survived
  Result<RecoveredLog> recovered_b = scan(scratch / "b", nullptr, testing::identity(1, 2));
  ASSERT_TRUE(recovered_b.ok());
  std::vector<const RecoveredLog*> logs = {&*recovered_a, &*recovered_b};
  std::vector<std::string> names = {"shard 0", "shard 1"};
  EXPECT_TRUE(check_torn_batches(logs, names).ok());
}

TEST(RecoveryTest, StaleOlderRecordsAfterATearAreNotTakenAsLaterBatches) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {2, 2});
  std::vector<std::byte> bytes = testing::read_bytes(files[0]);
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  // Record 3 is torn, and behind it sits a stale copy of record 0 (batch 1), as a reused
  // disk block could hold.
  std::vector<std::byte> stale(bytes.begin() + ptrdiff_t(places[1].offset),
                               bytes.begin() + ptrdiff_t(places[1].offset + record_bytes));
  bytes.resize(places[4].offset + 50);
  bytes.insert(bytes.end(), stale.begin(), stale.end());
  testing::write_bytes(files[0], bytes);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, places[4].offset);
  EXPECT_EQ(recovered->torn->batch, 2u);
}

TEST(RecoveryTest, TornBatchOlderThanAnotherLogsNewestBatchIsDamage) {
  ScratchDirectory scratch;
  auto log_a = testing::recover_and_open(scratch / "a", testing::identity(0, 2));
  auto log_b = testing::recover_and_open(scratch / "b", testing::identity(1, 2));
  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log_a.get());
  persister->add_log(log_b.get());
  testing::stage_records(*log_a, 2, payload_bytes);
  testing::stage_records(*log_b, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));  // batch 1
  testing::stage_records(*log_a, 2, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));  // batch 2: A only
  testing::stage_records(*log_b, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));  // batch 3: B only
  testing::stage_records(*log_b, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));  // batch 4: B only
  std::string file_a = log_a->segment_paths()[0];
  std::vector<RecordPlace> places = testing::record_places(file_a);
  // A's last record (batch 2) goes bad: locally it looks like a tear of batch 2.
  flip_bit(file_a, places.back().offset + sizeof(RecordHeader) + 1);

  Result<RecoveredLog> recovered_a = scan(scratch / "a", nullptr, testing::identity(0, 2));
  Result<RecoveredLog> recovered_b = scan(scratch / "b", nullptr, testing::identity(1, 2));
  ASSERT_TRUE(recovered_a.ok() && recovered_b.ok());
  ASSERT_TRUE(recovered_a->torn.has_value());
  EXPECT_EQ(recovered_a->torn->batch, 2u);
  EXPECT_EQ(recovered_b->last_batch, 4u);
  std::vector<const RecoveredLog*> logs = {&*recovered_a, &*recovered_b};
  std::vector<std::string> names = {"payments shard 0", "payments shard 1"};
  Result<void> checked = check_torn_batches(logs, names);
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(
      checked.error().message,
      "payments shard 0: " + file_a + ": offset " + std::to_string(places.back().offset) +
          ": batch 2 looks torn, but payments shard 1 holds batch 4, so batch 2 was acknowledged: this is "
          "damage, not a torn write");
  // Without B's batch 4, batch 3 may have been in flight beside batch 2: the same tear is
  // fine, as it is when batch 2 is the newest.
  recovered_b->last_batch = 3;
  EXPECT_TRUE(check_torn_batches(logs, names).ok());
  recovered_b->last_batch = 2;
  EXPECT_TRUE(check_torn_batches(logs, names).ok());
}

TEST(RecoveryTest, SegmentHeaderFromAnotherLayoutIsRefusedByName) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {2});
  const std::string& file = files[0];
  Result<RecoveredLog> other_chain = scan(scratch.path(), nullptr, testing::identity(0, 2, "orders"));
  ASSERT_FALSE(other_chain.ok());
  EXPECT_EQ(other_chain.error().message,
            file + ": chain differs: file belongs to chain 'payments', config says 'orders'");
  Result<RecoveredLog> other_count = scan(scratch.path(), nullptr, testing::identity(0, 4));
  ASSERT_FALSE(other_count.ok());
  EXPECT_EQ(other_count.error().message, file + ": chain layout differs: file has 2 shards, config says 4");
  Result<RecoveredLog> other_shard = scan(scratch.path(), nullptr, testing::identity(1, 2));
  ASSERT_FALSE(other_shard.ok());
  EXPECT_EQ(other_shard.error().message,
            file + ": shard differs: file belongs to shard 0, this log is shard 1");
}

TEST(RecoveryTest, SegmentHeaderOfAnotherFormatVersionIsRefused) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {2});
  std::vector<std::byte> bytes = testing::read_bytes(files[0]);
  RecordHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  for (uint32_t version : {0u, log_format_version + 1}) {
    std::memcpy(bytes.data() + sizeof header, &version, sizeof version);
    header.checksum = record_checksum(header, std::span(bytes).subspan(sizeof header, header.payload_bytes));
    std::memcpy(bytes.data(), &header, sizeof header);
    testing::write_bytes(files[0], bytes);
    Result<RecoveredLog> recovered = scan(scratch.path());
    ASSERT_FALSE(recovered.ok());
    EXPECT_EQ(recovered.error().message, files[0] + ": was written by format version " + std::to_string(version) +
                                             ", this keel reads 1 to " + std::to_string(log_format_version));
  }
}

TEST(RecoveryTest, SegmentHeaderWithWrongMagicIsDamageWhenLaterBatchesFollow) {
  ScratchDirectory scratch;
  // Three batches: the header's batch (1) and the one in flight beside it (2) cannot both
  // be unfinished when batch 3 was written.
  std::vector<std::string> files = write_batches(scratch.path(), {2, 2, 2});
  flip_bit(files[0], 0);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(recovered.error().message,
            files[0] +
                ": offset 0: the segment header (record 0) is damaged (wrong magic) "
                "and good records of a later batch follow it");
}

TEST(RecoveryTest, SegmentHeaderWithWrongMagicInAFileBeforeTheLastIsDamage) {
  ScratchDirectory scratch;
  std::vector<int> batches(24, 3);
  std::vector<std::string> files = write_batches(scratch.path(), batches, {.segment_bytes_max = 4096});
  ASSERT_GE(files.size(), 3u);
  flip_bit(files[1], 0);
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(recovered.error().message, files[1] + ": offset 0: the segment header (record " +
                                           std::to_string(places.back().header.sequence + 1) +
                                           ", of a batch after " +
                                           std::to_string(places.back().header.batch) +
                                           ") is damaged (wrong magic) and later segment files follow it");
}

TEST(RecoveryTest, SegmentHeaderWithWrongMagicInTheOnlyBatchLooksTorn) {
  // The documented limit: the header belongs to the file's first batch, and when that is
  // the log's last batch, a bad header cannot be told from a torn one.
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {3});
  flip_bit(files[0], 0);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, 0u);
  EXPECT_EQ(recovered->torn->batch, 1u);  // named by the records after it
  EXPECT_EQ(recovered->next_sequence, 0u);
  ASSERT_TRUE(truncate_torn_tail(*recovered).ok());
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log.get());
  testing::stage_records(*log, 1, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  std::vector<ScannedRecord> records;
  ASSERT_TRUE(scan(scratch.path(), &records).ok());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].sequence, 0u);
}

TEST(RecoveryTest, TailFileHoldingOnlyItsSegmentHeaderIsCutToEmptyAndReused) {
  ScratchDirectory scratch;
  std::vector<int> batches(24, 3);
  std::vector<std::string> files = write_batches(scratch.path(), batches, {.segment_bytes_max = 4096});
  ASSERT_GE(files.size(), 2u);
  std::vector<RecordPlace> places = testing::record_places(files.back());
  uint64_t header_bytes = places[1].offset;
  cut_file(files.back(), header_bytes + 10);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, 0u);
  EXPECT_EQ(recovered->torn->bytes_cut, header_bytes + 10);
  EXPECT_EQ(recovered->tail_file_bytes, 0u);
  EXPECT_EQ(recovered->next_sequence, places[0].header.sequence);
  ASSERT_TRUE(truncate_torn_tail(*recovered).ok());
  auto log = ShardLog::open(scratch.path(), testing::identity(), {.segment_bytes_max = 4096}, *recovered);
  ASSERT_TRUE(log.ok()) << log.error().message;
  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log->get());
  testing::stage_records(**log, 2, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  EXPECT_EQ((*log)->segment_paths(), files);  // the empty file was reused
  std::vector<ScannedRecord> records;
  recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_EQ(records.size(), places[0].header.sequence + 2);
}

// Commits write whole blocks, so a log's files end in zeros after their last record
// (format version 2): that is the clean end, neither a tear nor damage, in the last file
// and in the files before it; and appending continues after the records, not the zeros.
TEST_P(TornTailTest, ZeroPaddingAfterTheLastRecordIsTheCleanEnd) {
  ScratchDirectory scratch;
  LogOptions small_segments{.segment_bytes_max = 3 * log_write_alignment};
  std::vector<std::string> files = write_batches(scratch.path(), {3, 2, 90}, small_segments, GetParam());
  ASSERT_EQ(files.size(), 2u);  // the 90 records of batch 3 did not fit the first file
  uint64_t records_end = 0;
  for (const std::string& file : files) {
    std::vector<RecordPlace> places = testing::record_places(file);
    ASSERT_FALSE(places.empty());
    records_end = places.back().offset + sizeof(RecordHeader) + places.back().header.payload_bytes;
    EXPECT_EQ(file_size(file) % log_write_alignment, 0u) << file;
    EXPECT_GT(file_size(file), records_end) << file << ": no padding to test";
  }
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  EXPECT_EQ(recovered->next_sequence, 95u);
  EXPECT_EQ(recovered->tail_file_bytes, records_end);
  EXPECT_EQ(recovered->tail_file_bytes + recovered->tail_unused_bytes, file_size(files[1]));
  EXPECT_EQ(records.size(), 95u);

  // Reopen without cutting anything and append twice: the new records follow the old ones
  // with no zeros between (the first block is written again with the old records in it).
  auto log = ShardLog::open(scratch.path(), testing::identity(), small_segments, *recovered);
  ASSERT_TRUE(log.ok()) << log.error().message;
  auto persister = testing::make_persister(GetParam());
  persister->add_log(log->get());
  for (int round = 0; round < 2; ++round) {
    testing::stage_records(**log, 1, payload_bytes);
    ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  }
  records.clear();
  recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  ASSERT_EQ(records.size(), 97u);
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].sequence, index);
    EXPECT_EQ(records[index].payload, testing::payload_for(index, payload_bytes)) << "record " << index;
  }
  EXPECT_EQ(records[95].offset, records[94].offset + record_bytes);
  EXPECT_EQ(records[96].offset, records[95].offset + record_bytes);
  EXPECT_EQ(records[96].file, files[1]);
}

// Zeros after a record that does not end its batch: the rest of the batch never landed.
// A tear, and the cut takes the zeros with it.
TEST(RecoveryTest, ZerosAfterAnUnfinishedBatchAreATearCutWithTheZeros) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {3, 4});
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  ASSERT_EQ(places.size(), 8u);
  uint64_t last = places[7].offset;  // record 6, last of batch 2
  zero_range(files[0], last, file_size(files[0]) - last);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->offset, last);
  EXPECT_EQ(recovered->torn->bytes_cut, file_size(files[0]) - last);
  EXPECT_EQ(recovered->torn->batch, 2u);
  EXPECT_EQ(recovered->tail_file_bytes, last);
  EXPECT_EQ(recovered->tail_unused_bytes, 0u);
  EXPECT_EQ(recovered->next_sequence, 6u);
  ASSERT_TRUE(truncate_torn_tail(*recovered).ok());
  EXPECT_EQ(file_size(files[0]), last);
}

// Zeros that end a file before its last are its padding too; but a file of zeros only is
// still refused when later files follow it, as an empty one is.
TEST(RecoveryTest, ZeroPaddingEndsEarlierFilesButAFileOfZerosIsDamage) {
  ScratchDirectory scratch;
  LogOptions small_segments{.segment_bytes_max = 2 * log_write_alignment};
  std::vector<std::string> files = write_batches(scratch.path(), {40, 40}, small_segments);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_GT(file_size(files[0]), testing::record_places(files[0]).back().offset + record_bytes);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_EQ(recovered->next_sequence, 80u);
  zero_range(files[0], 0, file_size(files[0]));
  recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.error().message.find(files[0] + ": offset 0: "), std::string::npos)
      << recovered.error().message;
}

// Cuts a segment file to its records, pads it with zeros to the end of their block and
// appends `after`: what a reused segment file holds after its new records.
void follow_records_with(const std::string& path, const std::vector<std::byte>& after) {
  std::vector<testing::RecordPlace> places = testing::record_places(path);
  ASSERT_FALSE(places.empty());
  uint64_t end = places.back().offset + sizeof(RecordHeader) + places.back().header.payload_bytes;
  uint64_t block_end = (end + log_write_alignment - 1) / log_write_alignment * log_write_alignment;
  std::vector<std::byte> bytes = testing::read_bytes(path);
  bytes.resize(end);
  bytes.resize(block_end, std::byte{0});
  bytes.insert(bytes.end(), after.begin(), after.end());
  testing::write_bytes(path, bytes);
}

TEST(RecoveryTest, OldRecordsOfAReusedFileAfterZeroPaddingAreTheCleanEndOfAnyFile) {
  // The file's earlier use: records 0 to 119, of which the bytes from 4 KiB on are left.
  ScratchDirectory old_log;
  std::vector<std::string> old_files =
      write_batches(old_log.path(), {20, 20, 40, 40}, LogOptions{.segment_bytes_max = 4 * log_write_alignment});
  std::vector<std::byte> old_bytes = testing::read_bytes(old_files.at(0));
  ASSERT_GT(old_bytes.size(), 2 * log_write_alignment);
  std::vector<std::byte> left_over(old_bytes.begin() + log_write_alignment, old_bytes.end());

  // The log now: records from 1,000 on, in two files whose records end early, each
  // followed by those old bytes.
  ScratchDirectory scratch;
  RecoveredLog from_1000;
  from_1000.next_sequence = 1000;
  LogOptions two_blocks{.segment_bytes_max = 2 * log_write_alignment};
  auto log = ShardLog::open(scratch.path(), testing::identity(), two_blocks, from_1000);
  ASSERT_TRUE(log.ok()) << log.error().message;
  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log->get());
  for (int count : {3, 2, 50, 30}) {
    testing::stage_records(**log, size_t(count), payload_bytes);
    ASSERT_NO_FATAL_FAILURE(testing::commit(*persister));
  }
  std::vector<std::string> files = (*log)->segment_paths();
  ASSERT_EQ(files.size(), 2u);
  persister.reset();
  log->reset();
  for (const std::string& path : files) ASSERT_NO_FATAL_FAILURE(follow_records_with(path, left_over));

  std::vector<ScannedRecord> records;
  Result<RecoveredLog> recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  EXPECT_EQ(recovered->next_sequence, 1085u);
  ASSERT_EQ(records.size(), 85u);
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].sequence, 1000 + index);
    EXPECT_EQ(records[index].payload, testing::payload_for(1000 + index, payload_bytes));
  }
  EXPECT_EQ(recovered->tail_file_bytes + recovered->tail_unused_bytes, file_size(files[1]));

  // The log goes on over the old bytes, and reads back whole.
  auto reopened = testing::recover_and_open(scratch.path(), testing::identity(), two_blocks);
  ASSERT_NE(reopened, nullptr);
  auto again = testing::make_persister(Backend::psync);
  again->add_log(reopened.get());
  testing::stage_records(*reopened, 4, payload_bytes);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*again));
  records.clear();
  recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  ASSERT_EQ(records.size(), 89u);
  EXPECT_EQ(records.back().payload, testing::payload_for(1088, payload_bytes));
}

// Rewrites the format version in a file's segment header (and the header's checksum).
void set_format_version(const std::string& path, uint32_t version) {
  std::vector<std::byte> bytes = testing::read_bytes(path);
  RecordHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  std::memcpy(bytes.data() + sizeof header, &version, sizeof version);
  header.checksum = record_checksum(header, std::span(bytes).subspan(sizeof header, header.payload_bytes));
  std::memcpy(bytes.data(), &header, sizeof header);
  testing::write_bytes(path, bytes);
}

TEST(RecoveryTest, ABatchAtTheBlockBoundaryAfterZerosContinuesAVersion3LogButIsDamageInVersion2) {
  // The same records twice, one log with a batch more: its records 5 and 6 (batch 3)
  // continue the other.
  ScratchDirectory longer;
  std::vector<std::string> longer_files = write_batches(longer.path(), {3, 2, 2});
  std::vector<RecordPlace> places = testing::record_places(longer_files.at(0));
  ASSERT_EQ(places.size(), 8u);  // segment header, records 0..6
  std::vector<std::byte> longer_bytes = testing::read_bytes(longer_files[0]);
  std::vector<std::byte> records_5_and_6(longer_bytes.begin() + ptrdiff_t(places[6].offset),
                                         longer_bytes.begin() + ptrdiff_t(places[7].offset + record_bytes));
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {3, 2});
  // Zeros to the block's end, then batch 3: as written when batch 3 was submitted while
  // batch 2 was still in flight (log_format.h).
  ASSERT_NO_FATAL_FAILURE(follow_records_with(files.at(0), records_5_and_6));
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> recovered = scan(scratch.path(), &records);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_FALSE(recovered->torn.has_value());
  ASSERT_EQ(records.size(), 7u);
  EXPECT_EQ(records[5].offset, log_write_alignment);
  EXPECT_EQ(records[6].payload, testing::payload_for(6, payload_bytes));
  EXPECT_EQ(recovered->last_batch, 3u);

  // A version 2 file never has such a gap: there it is a hole, and batch 3 proves that the
  // bytes before it were written.
  set_format_version(files[0], 2);
  recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.error().message.find("is damaged"), std::string::npos) << recovered.error().message;

  // Nor does a gap count that is not followed by the log's next record exactly.
  set_format_version(files[0], 3);
  std::vector<std::byte> bytes = testing::read_bytes(files[0]);
  bytes.at(log_write_alignment + 8) ^= std::byte{1};  // record 5's sequence, now 4
  testing::write_bytes(files[0], bytes);
  recovered = scan(scratch.path());
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());  // batch 3 torn: its first record is bad
  EXPECT_EQ(recovered->next_sequence, 5u);
}

TEST(RecoveryTest, AVersion2TailFileGetsNoGapTheNextBatchStartsANewFile) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {3, 2});
  ASSERT_EQ(files.size(), 1u);
  set_format_version(files[0], 2);  // as an older keel left it
  Result<RecoveredLog> scanned = scan(scratch.path());
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_EQ(scanned->tail_format_version, 2u);
  // Two commits in flight, the second beside the first: it would start at a block
  // boundary, which a version 2 file may not hold. Both go to a new file instead.
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  ASSERT_NE(log, nullptr);
  auto persister = testing::make_persister(Backend::io_uring);
  persister->add_log(log.get());
  testing::stage_records(*log, 2, payload_bytes);
  ASSERT_TRUE(*persister->submit());
  testing::stage_records(*log, 2, payload_bytes);
  persister->submit().value();
  while (persister->in_flight() || log->staged_bytes() > 0) {
    if (persister->can_submit()) {
      ASSERT_TRUE(persister->submit().ok());
    }
    ASSERT_TRUE(persister->poll(true).ok());
  }
  ASSERT_EQ(log->segment_paths().size(), 2u);
  std::vector<ScannedRecord> records;
  scanned = scan(scratch.path(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_FALSE(scanned->torn.has_value());
  ASSERT_EQ(records.size(), 9u);
  EXPECT_EQ(records[4].file, files[0]);
  EXPECT_EQ(records[5].file, log->segment_paths().back());
  EXPECT_EQ(scanned->tail_format_version, log_format_version);
}

TEST(RecoveryTest, MissingSegmentFileIsAGap) {
  ScratchDirectory scratch;
  std::vector<int> batches(24, 3);
  std::vector<std::string> files = write_batches(scratch.path(), batches, {.segment_bytes_max = 4096});
  ASSERT_GE(files.size(), 3u);
  uint64_t second_first = testing::record_places(files[1])[0].header.sequence;
  uint64_t third_first = testing::record_places(files[2])[0].header.sequence;
  std::filesystem::remove(files[1]);
  Result<RecoveredLog> recovered = scan(scratch.path());
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(recovered.error().message, files[2] + ": starts at record " + std::to_string(third_first) +
                                           " but the files before it end before record " +
                                           std::to_string(second_first) + ": records are missing");
}

TEST(RecoveryTest, MissingOrEmptyDirectoryIsAnEmptyLog) {
  ScratchDirectory scratch;
  Result<RecoveredLog> missing = scan(scratch / "nothing-here");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->files.empty());
  EXPECT_EQ(missing->next_sequence, 0u);
  Result<RecoveredLog> empty = scan(scratch.path());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->files.empty());
  // A log that was opened but never committed: one empty segment file, no tear.
  auto log = testing::recover_and_open(scratch / "fresh", testing::identity());
  Result<RecoveredLog> fresh = scan(scratch / "fresh");
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  EXPECT_EQ(fresh->files.size(), 1u);
  EXPECT_FALSE(fresh->torn.has_value());
  EXPECT_EQ(fresh->tail_file_bytes, 0u);
}

TEST(RecoveryTest, ErrorFromOnRecordStopsTheScan) {
  ScratchDirectory scratch;
  write_batches(scratch.path(), {5});
  int seen = 0;
  Result<RecoveredLog> recovered =
      scan_log(scratch.path(), testing::identity(), [&](const LogRecordView& view) -> Result<void> {
        seen += 1;
        if (view.sequence == 2) return make_error("ledger", "block 2 does not chain to block 1");
        return {};
      });
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(recovered.error().message, "ledger: block 2 does not chain to block 1");
  EXPECT_EQ(seen, 3);
}

TEST(RecoveryTest, RecordViewsCarryFileAndOffset) {
  ScratchDirectory scratch;
  std::vector<std::string> files = write_batches(scratch.path(), {2});
  std::vector<ScannedRecord> records;
  ASSERT_TRUE(scan(scratch.path(), &records).ok());
  std::vector<RecordPlace> places = testing::record_places(files[0]);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].file, files[0]);
  EXPECT_EQ(records[1].offset, places[2].offset);
}

}  // namespace
}  // namespace keel::persist
