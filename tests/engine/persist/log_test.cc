// Tests for engine/persist: crc32c.h, commit_step.h, shard_log.h and persister.h.
// Backend-dependent tests run for io_uring and psync.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/persist/commit_step.h"
#include "engine/persist/crc32c.h"
#include "engine/persist/log_format.h"
#include "engine/persist/persister.h"
#include "engine/persist/shard_log.h"
#include "tests/engine/persist/persist_test_support.h"

namespace keel::persist {
namespace {

using testing::ScannedRecord;
using testing::ScratchDirectory;

std::span<const std::byte> text_bytes(std::string_view text) { return std::as_bytes(std::span(text)); }

// ---------------------------------------------------------------------------------------
// CRC32C

TEST(Crc32cTest, KnownVectorsHardwareAndTable) {
  struct Vector {
    std::string text;
    uint32_t crc;
  };
  std::vector<Vector> vectors = {
      {"", 0x00000000u},
      {"a", 0xC1D04330u},
      {"123456789", 0xE3069283u},
      {std::string(32, '\0'), 0x8A9136AAu},    // RFC 3720 B.4: 32 bytes of zeros
      {std::string(32, '\xff'), 0x62A8AB43u},  // RFC 3720 B.4: 32 bytes of ones
  };
  for (const Vector& vector : vectors) {
    EXPECT_EQ(crc32c_extend_table(0, text_bytes(vector.text)), vector.crc)
        << "table, '" << vector.text << "'";
    EXPECT_EQ(crc32c(text_bytes(vector.text)), vector.crc) << "dispatch";
    if (crc32c_hardware_available()) {
      EXPECT_EQ(crc32c_extend_hardware(0, text_bytes(vector.text)), vector.crc) << "hardware";
    }
  }
  std::printf("crc32c: SSE4.2 %s\n", crc32c_hardware_available() ? "in use" : "not available, table only");
}

TEST(Crc32cTest, ExtendEqualsWholeAndHardwareEqualsTableOnRandomInput) {
  std::mt19937_64 random(12345);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::byte> bytes(random() % 3000);
    for (std::byte& byte : bytes) byte = std::byte(random());
    size_t split = bytes.empty() ? 0 : random() % bytes.size();
    std::span<const std::byte> all(bytes);
    uint32_t whole = crc32c_extend_table(0, all);
    EXPECT_EQ(crc32c_extend_table(crc32c_extend_table(0, all.first(split)), all.subspan(split)), whole);
    if (crc32c_hardware_available()) {
      EXPECT_EQ(crc32c_extend_hardware(0, all), whole);
      EXPECT_EQ(crc32c_extend_hardware(crc32c_extend_hardware(0, all.first(split)), all.subspan(split)),
                whole);
    }
  }
}

// Lengths around the three-stream threshold (256) and multiples of 24 (three 8-byte
// streams) and 4 (the carry-less shift), then random ones; a fresh seed each run, printed.
// (The three-stream path is checked against the table by the next tests too.)
std::vector<size_t> interesting_lengths(std::mt19937_64& random) {
  std::vector<size_t> lengths;
  for (size_t length = 0; length < 300; ++length) lengths.push_back(length);
  for (size_t length : {383, 384, 385, 1023, 1024, 1025, 1056, 4095, 4096, 65536 + 7}) lengths.push_back(length);
  for (int round = 0; round < 100; ++round) lengths.push_back(random() % 20000);
  return lengths;
}

uint64_t printed_seed(const char* test) {
  uint64_t seed = std::random_device{}();
  std::printf("%s: seed %llu\n", test, (unsigned long long)seed);
  return seed;
}

TEST(Crc32cTest, CombineEqualsTheChecksumOfTheConcatenation) {
  std::mt19937_64 random(printed_seed("CombineEqualsTheChecksumOfTheConcatenation"));
  std::vector<size_t> lengths = interesting_lengths(random);
  for (size_t length_b : lengths) {
    std::vector<std::byte> bytes(random() % 100 + length_b);
    for (std::byte& byte : bytes) byte = std::byte(random());
    std::span<const std::byte> all(bytes);
    std::span<const std::byte> a = all.first(bytes.size() - length_b), b = all.subspan(a.size());
    ASSERT_EQ(crc32c_combine(crc32c_extend_table(0, a), crc32c_extend_table(0, b), b.size()),
              crc32c_extend_table(0, all))
        << "A " << a.size() << " bytes, B " << b.size();
    ASSERT_EQ(crc32c(all), crc32c_extend_table(0, all)) << all.size() << " bytes";
  }
  // A long run of zeros after a nonzero CRC: every bit of the shift table takes part.
  std::vector<std::byte> zeros(16u << 20);
  uint32_t one = crc32c(text_bytes("123456789"));
  EXPECT_EQ(crc32c_combine(one, crc32c(zeros), zeros.size()), crc32c_extend(one, zeros));
}

TEST(Crc32cTest, RecordChecksumFromPayloadCrcEqualsTheFullChecksum) {
  std::mt19937_64 random(printed_seed("RecordChecksumFromPayloadCrcEqualsTheFullChecksum"));
  for (size_t length : interesting_lengths(random)) {
    std::vector<std::byte> payload(length);
    for (std::byte& byte : payload) byte = std::byte(random());
    RecordHeader header = make_record_header(record_type_first_opaque, length, random());
    header.batch = random();
    header.flags = record_flag_last_in_batch;
    header.checksum = uint32_t(random());  // ignored by both
    ASSERT_EQ(record_checksum_from_payload_crc(header, crc32c(payload)), record_checksum(header, payload))
        << "payload " << length << " bytes";
  }
}

// ---------------------------------------------------------------------------------------
// CommitStep: the resubmission logic both backends share. A real short write is hard to
// get on cue (the disk-full test below gets one from RLIMIT_FSIZE); these feed results in.

CommitPart test_part(const std::vector<std::byte>& bytes) {
  return CommitPart{7, "data/payments/0/log-00000000000000000000.klog", 4096, bytes.data(), bytes.size()};
}

TEST(CommitStepTest, ShortWriteResubmitsTheRemainderAndItsSync) {
  std::vector<std::byte> bytes(300);
  CommitStep step(test_part(bytes), true);
  ASSERT_EQ(step.next(), StepAction::write_and_sync);
  EXPECT_EQ(step.write_offset(), 4096u);
  EXPECT_EQ(step.write_iovec()->iov_len, 300u);
  step.on_write(100);        // short: the link breaks
  step.on_sync(-ECANCELED);  // so the sync never ran
  ASSERT_EQ(step.next(), StepAction::write_and_sync);
  EXPECT_EQ(step.write_offset(), 4196u);
  EXPECT_EQ(step.write_iovec()->iov_base, bytes.data() + 100);
  EXPECT_EQ(step.write_iovec()->iov_len, 200u);
  step.on_write(200);
  step.on_sync(0);
  EXPECT_EQ(step.next(), StepAction::done);
  EXPECT_EQ(step.short_writes(), 1u);
}

TEST(CommitStepTest, InterruptedWriteIsRetriedBoundedly) {
  std::vector<std::byte> bytes(64);
  CommitStep step(test_part(bytes), true);
  step.on_write(-EINTR);
  step.on_sync(-ECANCELED);
  EXPECT_EQ(step.next(), StepAction::write_and_sync);
  EXPECT_EQ(step.retries(), 1u);
  for (uint32_t attempt = 0; attempt < commit_write_retries_max; ++attempt) step.on_write(-EAGAIN);
  ASSERT_EQ(step.next(), StepAction::failed);
  EXPECT_NE(step.error().message.find("still interrupted"), std::string::npos) << step.error().message;
}

TEST(CommitStepTest, WriteErrorFailsNamingFileOffsetAndErrno) {
  std::vector<std::byte> bytes(300);
  CommitStep step(test_part(bytes), true);
  step.on_write(100);
  step.on_sync(-ECANCELED);
  step.on_write(-ENOSPC);
  step.on_sync(-ECANCELED);
  ASSERT_EQ(step.next(), StepAction::failed);
  EXPECT_EQ(step.error().message,
            "data/payments/0/log-00000000000000000000.klog: offset 4196: cannot write 200 bytes: "
            "No space left on device");
}

TEST(CommitStepTest, FailedSyncIsFinalNeverRetried) {
  std::vector<std::byte> bytes(64);
  CommitStep step(test_part(bytes), true);
  step.on_write(64);
  step.on_sync(-EIO);
  ASSERT_EQ(step.next(), StepAction::failed);
  EXPECT_EQ(
      step.error().message,
      "data/payments/0/log-00000000000000000000.klog: fdatasync after writing bytes 4096 to 4160 failed: "
      "Input/output error (not retried: what reached the disk is unknown)");
}

TEST(CommitStepTest, CancelledSyncAfterACompleteWriteIsIssuedAlone) {
  std::vector<std::byte> bytes(64);
  CommitStep step(test_part(bytes), true);
  step.on_write(64);
  step.on_sync(-ECANCELED);
  EXPECT_EQ(step.next(), StepAction::sync);
  step.on_sync(0);
  EXPECT_EQ(step.next(), StepAction::done);
}

TEST(CommitStepTest, NoSyncWantedMeansWriteOnly) {
  std::vector<std::byte> bytes(64);
  CommitStep step(test_part(bytes), false);
  EXPECT_EQ(step.next(), StepAction::write);
  step.on_write(10);
  EXPECT_EQ(step.next(), StepAction::write);
  step.on_write(54);
  EXPECT_EQ(step.next(), StepAction::done);
}

TEST(CommitStepTest, ZeroByteWriteFailsInsteadOfSpinning) {
  std::vector<std::byte> bytes(64);
  CommitStep step(test_part(bytes), true);
  step.on_write(0);
  step.on_sync(-ECANCELED);
  ASSERT_EQ(step.next(), StepAction::failed);
  EXPECT_NE(step.error().message.find("made no progress"), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// ShardLog on its own

TEST(ShardLogTest, RejectsImpossibleIdentityAndOptions) {
  ScratchDirectory scratch;
  RecoveredLog empty;
  auto bad_shard = ShardLog::open(scratch / "a", testing::identity(2, 2), {}, empty);
  ASSERT_FALSE(bad_shard.ok());
  EXPECT_EQ(bad_shard.error().message,
            scratch / "a" + ": log identity: shard 2 is not below the shard count 2");
  auto small = ShardLog::open(scratch / "b", testing::identity(), {.segment_bytes_max = 100}, empty);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().message, scratch / "b" +
                                       ": log options: segment_bytes_max must be from 4096 to "
                                       "1073741824, got 100");
}

TEST(ShardLogTest, BackpressureWhenStagingIsFullAndRecordsThatCanNeverFit) {
  ScratchDirectory scratch;
  auto log = testing::recover_and_open(scratch.path(), testing::identity(),
                                       {.segment_bytes_max = 1 << 20, .staged_bytes_max = 4096});
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->batch_bytes_max(), 4096u);
  std::vector<std::byte> payload(1000);
  int staged = 0;
  while (log->fits(payload.size())) {
    ASSERT_TRUE(log->stage(2, payload).ok());
    staged += 1;
  }
  EXPECT_EQ(staged, 3);  // 3 x 1032 bytes; a fourth would make 4128
  Result<uint64_t> refused = log->stage(2, payload);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("staging full (3096 of 4096 bytes)"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(log->counters().stage_refusals, 1u);
  std::vector<std::byte> huge(5000);
  Result<uint64_t> never = log->stage(2, huge);
  ASSERT_FALSE(never.ok());
  EXPECT_NE(never.error().message.find("can never be staged"), std::string::npos);

  auto persister = testing::make_persister(Backend::psync);
  persister->add_log(log.get());
  testing::commit(*persister);
  EXPECT_TRUE(log->fits(payload.size()));
  EXPECT_EQ(log->durable_sequence(), 3u);
}

// ---------------------------------------------------------------------------------------
// Persister, for both backends

class PersistTest : public ::testing::TestWithParam<Backend> {
 protected:
  std::unique_ptr<Persister> persister(PersisterOptions options = {}) {
    return testing::make_persister(GetParam(), options);
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, PersistTest, ::testing::Values(Backend::io_uring, Backend::psync),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(testing::backend_name(info.param));
                         });

TEST_P(PersistTest, RoundTripOverSeveralLogsReadsBackIdentical) {
  ScratchDirectory scratch;
  std::vector<std::unique_ptr<ShardLog>> logs;
  auto group = persister();
  ASSERT_EQ(group->backend(), GetParam());
  for (uint32_t shard = 0; shard < 3; ++shard) {
    logs.push_back(testing::recover_and_open(scratch / std::to_string(shard), testing::identity(shard, 3)));
    ASSERT_NE(logs.back(), nullptr);
    group->add_log(logs.back().get());
  }
  // Logs 0 and 1 take part in batch 1; log 2 has nothing staged and is left alone.
  testing::stage_records(*logs[0], 5, 100, 0);
  testing::stage_records(*logs[1], 3, 1000, 1);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  testing::stage_records(*logs[1], 2, 0, 1);
  testing::stage_records(*logs[2], 1, 70000, 2);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  EXPECT_EQ(group->durable_batch(), 2u);
  EXPECT_EQ(group->counters().commits, 2u);
  EXPECT_EQ(group->counters().log_writes, 4u);
  EXPECT_EQ(group->counters().fdatasyncs, 4u);

  std::vector<uint64_t> expected_counts = {5, 5, 1};
  std::vector<std::vector<uint64_t>> expected_batches = {{1, 1, 1, 1, 1}, {1, 1, 1, 2, 2}, {2}};
  for (uint32_t shard = 0; shard < 3; ++shard) {
    std::vector<ScannedRecord> records;
    Result<RecoveredLog> scanned =
        testing::scan_keep(scratch / std::to_string(shard), testing::identity(shard, 3), &records);
    ASSERT_TRUE(scanned.ok()) << scanned.error().message;
    EXPECT_FALSE(scanned->torn.has_value());
    EXPECT_EQ(scanned->next_sequence, expected_counts[shard]);
    ASSERT_EQ(records.size(), expected_counts[shard]);
    for (size_t index = 0; index < records.size(); ++index) {
      const ScannedRecord& record = records[index];
      EXPECT_EQ(record.sequence, index);
      EXPECT_EQ(record.batch, expected_batches[shard][index]);
      EXPECT_EQ(record.type, 2);
      size_t bytes = shard == 0 ? 100 : shard == 2 ? 70000 : index < 3 ? 1000 : 0;
      EXPECT_EQ(record.payload, testing::payload_for(index, bytes, shard))
          << "shard " << shard << " record " << index;
    }
    EXPECT_EQ(logs[shard]->durable_sequence(), expected_counts[shard]);
  }
}

TEST_P(PersistTest, DurableSequenceAdvancesOnlyWhenPollSaysDurable) {
  ScratchDirectory scratch;
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  auto group = persister();
  group->add_log(log.get());
  EXPECT_EQ(*group->submit(), false);  // nothing staged
  testing::stage_records(*log, 3, 50);
  Result<bool> started = group->submit();
  ASSERT_TRUE(started.ok() && *started);
  EXPECT_TRUE(group->in_flight());
  EXPECT_EQ(log->durable_sequence(), 0u);
  EXPECT_EQ(*group->submit(), false);  // one commit at a time
  Result<bool> durable = group->poll(true);
  ASSERT_TRUE(durable.ok()) << durable.error().message;
  EXPECT_TRUE(*durable);
  EXPECT_FALSE(group->in_flight());
  EXPECT_EQ(log->durable_sequence(), 3u);
  EXPECT_EQ(group->durable_batch(), 1u);
  EXPECT_EQ(*group->poll(), false);  // nothing in flight
}

TEST_P(PersistTest, RecordsStagedDuringACommitGoToTheNextBatch) {
  ScratchDirectory scratch;
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  auto group = persister();
  group->add_log(log.get());
  testing::stage_records(*log, 3, 64);
  ASSERT_TRUE(*group->submit());
  testing::stage_records(*log, 2, 64);  // while batch 1 is in flight
  EXPECT_EQ(log->next_sequence(), 5u);
  EXPECT_EQ(log->staged_bytes(), 2 * (32 + 64u));
  EXPECT_EQ(log->durable_sequence(), 0u);
  ASSERT_TRUE(*group->poll(true));
  EXPECT_EQ(log->durable_sequence(), 3u);
  EXPECT_EQ(log->staged_bytes(), 2 * (32 + 64u));
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  EXPECT_EQ(log->durable_sequence(), 5u);

  std::vector<ScannedRecord> records;
  ASSERT_TRUE(testing::scan_keep(scratch.path(), testing::identity(), &records).ok());
  ASSERT_EQ(records.size(), 5u);
  std::vector<uint64_t> batches;
  for (const ScannedRecord& record : records) batches.push_back(record.batch);
  EXPECT_EQ(batches, (std::vector<uint64_t>{1, 1, 1, 2, 2}));
  // Flags: first and last of each batch in the file.
  std::vector<testing::RecordPlace> places = testing::record_places(log->segment_paths().back());
  ASSERT_EQ(places.size(), 6u);  // segment header + 5
  std::vector<uint16_t> flags;
  for (const auto& place : places) flags.push_back(place.header.flags);
  EXPECT_EQ(flags, (std::vector<uint16_t>{0, 2, 0, 1, 2, 1}));
  // Batch 2 was staged while batch 1 was in flight: it starts at the next block, after
  // the zeros that padded batch 1's block (log_format.h, version 3).
  EXPECT_EQ(places[4].offset, log_write_alignment);
}

TEST_P(PersistTest, TwoCommitsInFlightBecomeDurableInOrderAndReadBack) {
  ScratchDirectory scratch;
  auto log_a = testing::recover_and_open(scratch / "a", testing::identity(0, 2));
  auto log_b = testing::recover_and_open(scratch / "b", testing::identity(1, 2));
  auto group = persister();
  group->add_log(log_a.get());
  group->add_log(log_b.get());
  testing::stage_records(*log_a, 3, 500);
  testing::stage_records(*log_b, 1, 500);
  ASSERT_TRUE(*group->submit());  // batch 1: A and B
  testing::stage_records(*log_a, 2, 500);
  ASSERT_TRUE(*group->submit());  // batch 2: A only, beside batch 1
  EXPECT_EQ(group->commits_in_flight(), 2u);
  EXPECT_EQ(log_a->commits_in_flight(), 2u);
  EXPECT_FALSE(group->can_submit());
  testing::stage_records(*log_b, 1, 500);
  EXPECT_FALSE(*group->submit());  // a third waits
  // Durable in order: batch 2 never before batch 1.
  while (group->in_flight()) {
    Result<bool> durable = group->poll(true);
    ASSERT_TRUE(durable.ok()) << durable.error().message;
    if (log_a->durable_sequence() == 5) {
      EXPECT_EQ(group->durable_batch(), 2u);
    }
    if (log_a->durable_sequence() == 3) {
      EXPECT_EQ(group->durable_batch(), 1u);
    }
    EXPECT_TRUE(log_a->durable_sequence() == 3 || log_a->durable_sequence() == 5);
    EXPECT_EQ(log_b->durable_sequence(), 1u);
  }
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));  // batch 3: B
  EXPECT_EQ(log_b->durable_sequence(), 2u);
  EXPECT_EQ(group->counters().commits, 3u);

  // A's second batch sits at the next block boundary, after batch 1's padding.
  std::vector<testing::RecordPlace> places = testing::record_places(log_a->segment_paths().back());
  ASSERT_EQ(places.size(), 6u);
  EXPECT_EQ(places[4].offset, log_write_alignment);
  EXPECT_EQ(places[4].header.batch, 2u);
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch / "a", testing::identity(0, 2), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_FALSE(scanned->torn.has_value());
  ASSERT_EQ(records.size(), 5u);
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].payload, testing::payload_for(index, 500)) << index;
  }
  // Reopened, the log appends after batch 2 and reads back whole.
  group.reset();
  log_a.reset();
  log_a = testing::recover_and_open(scratch / "a", testing::identity(0, 2));
  ASSERT_NE(log_a, nullptr);
  group = persister();
  group->add_log(log_a.get());
  testing::stage_records(*log_a, 2, 500);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  records.clear();
  scanned = testing::scan_keep(scratch / "a", testing::identity(0, 2), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  ASSERT_EQ(records.size(), 7u);
  EXPECT_EQ(records[6].payload, testing::payload_for(6, 500));
}

// A log's part of a batch is reported durable when its own write and fdatasync are: a
// light log's one record does not wait for a heavy log's 48 MiB in the same batch. The
// batch itself (durable_batch) still waits for both. Timing decides which part ends first,
// so up to 5 batches are tried; the light part must end first in one of them. (psync
// commits log by log inside submit(): nothing to overlap. On tmpfs the writes end inside
// the submit, both before the first poll.)
TEST_P(PersistTest, ALogsPartIsReportedDurableWithoutWaitingForAnotherLogsPart) {
  if (GetParam() == Backend::psync) {
    GTEST_SKIP() << "psync ends every part inside submit()";
  }
  ScratchDirectory scratch;
  struct statfs where;
  ASSERT_EQ(::statfs(scratch.path().c_str(), &where), 0);
  if (where.f_type == TMPFS_MAGIC) {
    GTEST_SKIP() << scratch.path() << " is on tmpfs: writes end inside the submit";
  }
  auto heavy = testing::recover_and_open(scratch / "heavy", testing::identity(0, 2));
  auto light = testing::recover_and_open(scratch / "light", testing::identity(1, 2));
  ASSERT_TRUE(heavy && light);
  auto group = persister();
  group->add_log(heavy.get());
  group->add_log(light.get());
  bool light_first = false;
  for (int attempt = 0; attempt < 5 && !light_first; ++attempt) {
    testing::stage_records(*heavy, 48, 1 << 20, 0);
    testing::stage_records(*light, 1, 100, 1);
    const uint64_t heavy_target = heavy->next_sequence(), light_target = light->next_sequence();
    const uint64_t batch_before = group->durable_batch();
    ASSERT_TRUE(*group->submit());
    while (group->in_flight()) {
      Result<bool> durable = group->poll(false);
      ASSERT_TRUE(durable.ok()) << durable.error().message;
      if (!*durable) continue;
      bool light_done = light->durable_sequence() == light_target;
      bool heavy_done = heavy->durable_sequence() == heavy_target;
      EXPECT_TRUE(light_done || heavy_done) << "poll said durable with nothing advanced";
      if (light_done && !heavy_done) {
        light_first = true;
        EXPECT_EQ(group->durable_batch(), batch_before) << "the batch is durable before its heavy part";
      }
      if (light_done && heavy_done) {
        EXPECT_EQ(group->durable_batch(), batch_before + 1);
      }
    }
    EXPECT_EQ(light->durable_sequence(), light_target);
    EXPECT_EQ(heavy->durable_sequence(), heavy_target);
  }
  EXPECT_TRUE(light_first) << "in 5 batches the light log's part was never reported before the heavy one's";
}

TEST_P(PersistTest, ABatchThatNeedsANewSegmentWaitsUntilTheLogHasNoCommitInFlight) {
  ScratchDirectory scratch;
  LogOptions options{.segment_bytes_max = 3 * log_write_alignment, .staged_bytes_max = 2 * log_write_alignment};
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  auto group = persister();
  group->add_log(log.get());
  testing::stage_records(*log, 10, 500);  // 5.4 KB, into the second block
  ASSERT_TRUE(*group->submit());
  // Beside it, a batch that does not fit in the file after the next block boundary (it
  // would right after the first batch).
  testing::stage_records(*log, 10, 500);
  EXPECT_FALSE(log->can_begin_commit());
  EXPECT_TRUE(group->can_submit());
  EXPECT_FALSE(*group->submit());
  ASSERT_TRUE(*group->poll(true));
  EXPECT_TRUE(log->can_begin_commit());
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  EXPECT_EQ(log->segment_paths().size(), 2u);
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  ASSERT_EQ(records.size(), 20u);
  EXPECT_EQ(records[10].file, log->segment_paths().back());
}

TEST_P(PersistTest, SegmentsRotateBetweenBatchesAndOldOnesCanBeDropped) {
  ScratchDirectory scratch;
  LogOptions options{.segment_bytes_max = 4096, .staged_bytes_max = 4096};
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  auto group = persister();
  group->add_log(log.get());
  for (int batch = 0; batch < 30; ++batch) {
    testing::stage_records(*log, 1 + batch % 4, 200);
    ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  }
  std::vector<std::string> paths = log->segment_paths();
  ASSERT_GE(paths.size(), 4u);
  EXPECT_EQ(log->counters().segments_created, paths.size());
  for (const std::string& path : paths) {
    EXPECT_LE(testing::read_bytes(path).size(), 4096u) << path;
    std::vector<testing::RecordPlace> places = testing::record_places(path);
    ASSERT_FALSE(places.empty());
    EXPECT_EQ(places.front().header.type, record_type_segment_header);
    // The file is named after its first record.
    EXPECT_EQ(std::filesystem::path(path).filename(), segment_file_name(places.front().header.sequence));
    EXPECT_EQ(places.back().header.flags & record_flag_last_in_batch, record_flag_last_in_batch);
  }
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_EQ(scanned->files, paths);
  ASSERT_EQ(records.size(), log->durable_sequence());
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].payload, testing::payload_for(index, 200));
  }

  // Drop everything before the third file's first record: the first two files go.
  uint64_t third_first = *parse_segment_file_name(std::filesystem::path(paths[2]).filename().string());
  ASSERT_TRUE(log->drop_segments_before(third_first).ok());
  std::vector<std::string> kept = log->segment_paths();
  EXPECT_EQ(kept, std::vector<std::string>(paths.begin() + 2, paths.end()));
  EXPECT_FALSE(std::filesystem::exists(paths[0]));
  EXPECT_FALSE(std::filesystem::exists(paths[1]));
  records.clear();
  scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_EQ(records.front().sequence, third_first);
  EXPECT_EQ(scanned->next_sequence, log->durable_sequence());
  // Dropping everything still keeps the current file.
  ASSERT_TRUE(log->drop_segments_before(log->durable_sequence()).ok());
  EXPECT_EQ(log->segment_paths(), std::vector<std::string>{paths.back()});
  EXPECT_TRUE(std::filesystem::exists(paths.back()));
}

TEST_P(PersistTest, TenThousandRandomRecordsRoundTrip) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu (%s)\n", (unsigned long long)seed, testing::backend_name(GetParam()));
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  ScratchDirectory scratch;
  LogOptions options{.segment_bytes_max = 256 << 10, .staged_bytes_max = 64 << 10};
  constexpr uint32_t log_count = 3;
  std::vector<std::unique_ptr<ShardLog>> logs;
  auto group = persister({.ring_entries = 4});  // 2 logs per chunk: exercises chunking too
  for (uint32_t shard = 0; shard < log_count; ++shard) {
    logs.push_back(testing::recover_and_open(scratch / std::to_string(shard),
                                             testing::identity(shard, log_count), options));
    group->add_log(logs.back().get());
  }
  std::vector<std::vector<size_t>> sizes(log_count);
  for (int record = 0; record < 10000; ++record) {
    uint32_t shard = uint32_t(random() % log_count);
    size_t bytes = random() % 8 == 0 ? random() % 20000 : random() % 600;
    ShardLog& log = *logs[shard];
    while (!log.fits(bytes)) {
      // Backpressure: commit (or finish the commit in flight) and try again.
      if (group->can_submit()) {
        ASSERT_TRUE(group->submit().ok());
      }
      Result<bool> durable = group->poll(true);
      ASSERT_TRUE(durable.ok()) << durable.error().message;
    }
    uint64_t sequence = *log.stage(2, testing::payload_for(log.next_sequence(), bytes, seed + shard));
    ASSERT_EQ(sequence, sizes[shard].size());
    sizes[shard].push_back(bytes);
    // Up to two commits in flight (the Persister's default).
    if (random() % 40 == 0 && group->can_submit()) {
      ASSERT_TRUE(group->submit().ok());
    }
    if (random() % 10 == 0) {
      ASSERT_TRUE(group->poll(false).ok());
    }
  }
  while (group->in_flight() ||
         std::any_of(logs.begin(), logs.end(), [](auto& log) { return log->staged_bytes() > 0; })) {
    if (group->can_submit()) {
      ASSERT_TRUE(group->submit().ok());
    }
    ASSERT_TRUE(group->poll(true).ok());
  }
  std::printf("%llu commits, %llu bytes, %llu submit calls, %llu segment files\n",
              (unsigned long long)group->counters().commits,
              (unsigned long long)group->counters().bytes_written,
              (unsigned long long)group->counters().submit_calls,
              (unsigned long long)(logs[0]->segment_paths().size() + logs[1]->segment_paths().size() +
                                   logs[2]->segment_paths().size()));
  for (uint32_t shard = 0; shard < log_count; ++shard) {
    std::vector<ScannedRecord> records;
    Result<RecoveredLog> scanned =
        testing::scan_keep(scratch / std::to_string(shard), testing::identity(shard, log_count), &records);
    ASSERT_TRUE(scanned.ok()) << scanned.error().message;
    EXPECT_FALSE(scanned->torn.has_value());
    ASSERT_EQ(records.size(), sizes[shard].size());
    EXPECT_EQ(logs[shard]->durable_sequence(), sizes[shard].size());
    uint64_t last_batch = 0;
    for (size_t index = 0; index < records.size(); ++index) {
      ASSERT_EQ(records[index].payload, testing::payload_for(index, sizes[shard][index], seed + shard))
          << index;
      ASSERT_GE(records[index].batch, last_batch);
      last_batch = records[index].batch;
    }
  }
}

TEST_P(PersistTest, ReopenContinuesSequencesAndBatchNumbers) {
  ScratchDirectory scratch;
  {
    auto log = testing::recover_and_open(scratch.path(), testing::identity());
    auto group = persister();
    group->add_log(log.get());
    for (int batch = 0; batch < 3; ++batch) {
      testing::stage_records(*log, 4, 80);
      ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
    }
  }
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  EXPECT_EQ(log->next_sequence(), 12u);
  EXPECT_EQ(log->durable_sequence(), 12u);
  EXPECT_EQ(log->last_batch(), 3u);
  auto group = persister();
  group->add_log(log.get());
  EXPECT_EQ(group->next_batch(), 4u);
  testing::stage_records(*log, 2, 80);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  std::vector<ScannedRecord> records;
  ASSERT_TRUE(testing::scan_keep(scratch.path(), testing::identity(), &records).ok());
  ASSERT_EQ(records.size(), 14u);
  EXPECT_EQ(records.back().batch, 4u);
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].payload, testing::payload_for(index, 80));
  }
}

TEST_P(PersistTest, DestroyingThePersisterWaitsForTheCommitInFlight) {
  ScratchDirectory scratch;
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  {
    auto group = persister();
    group->add_log(log.get());
    testing::stage_records(*log, 50, 1000);
    ASSERT_TRUE(*group->submit());
  }  // never polled: the destructor waits for the kernel before the buffers can go
  EXPECT_EQ(log->durable_sequence(), 0u);  // nobody reported it durable
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_EQ(records.size(), 50u);
}

TEST_P(PersistTest, FsyncPolicyNoneWritesWithoutSyncing) {
  ScratchDirectory scratch;
  auto log = testing::recover_and_open(scratch.path(), testing::identity());
  auto group = persister({.fsync = FsyncPolicy::none});
  group->add_log(log.get());
  testing::stage_records(*log, 10, 100);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  EXPECT_EQ(group->counters().fdatasyncs, 0u);
  EXPECT_EQ(log->durable_sequence(), 10u);
  std::vector<ScannedRecord> records;
  ASSERT_TRUE(testing::scan_keep(scratch.path(), testing::identity(), &records).ok());
  EXPECT_EQ(records.size(), 10u);
}

TEST_P(PersistTest, MoreLogsThanTheRingHoldsAreSubmittedInChunks) {
  ScratchDirectory scratch;
  std::vector<std::unique_ptr<ShardLog>> logs;
  auto group = persister({.ring_entries = 4});
  for (uint32_t shard = 0; shard < 7; ++shard) {
    logs.push_back(testing::recover_and_open(scratch / std::to_string(shard), testing::identity(shard, 7)));
    group->add_log(logs.back().get());
    testing::stage_records(*logs.back(), 3, 100, shard);
  }
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  if (GetParam() == Backend::io_uring) {
    EXPECT_GE(group->counters().submit_calls, 4u);
  }
  EXPECT_EQ(group->counters().fdatasyncs, 7u);
  for (uint32_t shard = 0; shard < 7; ++shard) {
    EXPECT_EQ(logs[shard]->durable_sequence(), 3u);
    std::vector<ScannedRecord> records;
    ASSERT_TRUE(
        testing::scan_keep(scratch / std::to_string(shard), testing::identity(shard, 7), &records).ok());
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[2].payload, testing::payload_for(2, 100, shard));
  }
}

// Runs `body` in a forked child and returns what it wrote to the pipe; the child's exit
// status goes to *status.
std::string run_in_child(const std::function<void(FILE*)>& body, int* status) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe(pipe_fds), 0);
  fflush(stdout);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    FILE* out = ::fdopen(pipe_fds[1], "w");
    body(out);
    std::fclose(out);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string text;
  char buffer[512];
  ssize_t got;
  while ((got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, size_t(got));
  ::close(pipe_fds[0]);
  ::waitpid(child, status, 0);
  return text;
}

// "key=value" lines from a child.
std::map<std::string, std::string> parse_lines(const std::string& text) {
  std::map<std::string, std::string> values;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    size_t equals = line.find('=');
    if (equals != std::string::npos) values[line.substr(0, equals)] = line.substr(equals + 1);
    start = end + 1;
  }
  return values;
}

TEST_P(PersistTest, DiskFullFailsTheCommitAndRefusesLaterOnes) {
  ScratchDirectory scratch;
  Backend backend = GetParam();
  int status = 0;
  std::string output = run_in_child(
      [&](FILE* out) {
        // The file size limit stands in for a full disk: past it, writes get EFBIG (a
        // write that straddles it comes back short first).
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit limit{64 << 10, 64 << 10};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        auto log =
            testing::recover_and_open(scratch.path(), testing::identity(), {.segment_bytes_max = 1 << 20});
        auto group = testing::make_persister(backend);
        group->add_log(log.get());
        testing::stage_records(*log, 20, 1000);
        Result<bool> first = group->submit();
        Result<bool> first_durable = group->poll(true);
        std::fprintf(out, "first=%d\n", first.ok() && first_durable.ok() && *first_durable);
        testing::stage_records(*log, 60, 1000);
        Result<bool> second = group->submit();
        Result<bool> second_durable = second.ok() ? group->poll(true) : Result<bool>(second.error());
        std::fprintf(out, "second_error=%s\n",
                     second_durable.ok() ? "none" : second_durable.error().message.c_str());
        std::fprintf(out, "durable=%llu\n", (unsigned long long)log->durable_sequence());
        std::fprintf(out, "short_writes=%llu\n",
                     (unsigned long long)group->counters().short_writes_resubmitted);
        testing::stage_records(*log, 1, 10);
        Result<bool> third = group->submit();
        std::fprintf(out, "third_error=%s\n", third.ok() ? "none" : third.error().message.c_str());
        std::fprintf(out, "path=%s\n", log->segment_paths().back().c_str());
      },
      &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status << "\n" << output;
  std::map<std::string, std::string> values = parse_lines(output);
  EXPECT_EQ(values["first"], "1");
  std::string path = values["path"];
  // The first batch: the segment header (32 + 14 + "payments") and 20 x 1032 bytes.
  uint64_t second_offset = 32 + segment_header_fixed_bytes + 8 + 20 * 1032;
  uint64_t failed_offset = 64 << 10;  // the short write stopped at the limit; the rest failed
  // Writes end on a block boundary (zero padding after the last record).
  uint64_t second_end = (second_offset + 60 * 1032 + log_write_alignment - 1) / log_write_alignment *
                        log_write_alignment;
  EXPECT_EQ(values["second_error"],
            path + ": offset " + std::to_string(failed_offset) + ": cannot write " +
                std::to_string(second_end - failed_offset) +
                " bytes: File too large (batch 2 is not durable; no further commits)");
  EXPECT_EQ(values["durable"], "20");
  EXPECT_EQ(values["short_writes"], "1");
  EXPECT_EQ(values["third_error"],
            "persist: no further commits after a failed one: " + values["second_error"]);
}

// Waits (untimed: a preallocation always ends) until the log's spare segment is written.
void wait_for_spare(const ShardLog& log) {
  while (!log.spare_ready()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TEST_P(PersistTest, PreallocatedSegmentsAreWrittenFullOfZerosAheadAndReadBackWhole) {
  ScratchDirectory scratch;
  LogOptions options{.segment_bytes_max = 64 << 10, .staged_bytes_max = 16 << 10, .preallocate_segments = true};
  std::string spare = scratch.path() + "/" + segment_spare_file_name;
  // A spare left half written by an earlier run is not trusted; recovery ignores it.
  testing::write_bytes(spare, std::vector<std::byte>(100, std::byte{0x5a}));
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  auto group = persister();
  group->add_log(log.get());
  std::mt19937_64 random(7);
  auto write_batches = [&](int batches) {
    for (int batch = 0; batch < batches; ++batch) {
      wait_for_spare(*log);  // every segment, the first included, is then a spare
      testing::stage_records(*log, 1 + random() % 20, 300);
      ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
    }
  };
  ASSERT_NO_FATAL_FAILURE(write_batches(40));
  std::vector<std::string> paths = log->segment_paths();
  ASSERT_GE(paths.size(), 3u);
  EXPECT_EQ(log->counters().segments_preallocated, paths.size());
  EXPECT_EQ(log->counters().segments_created, paths.size());
  EXPECT_EQ(log->counters().segments_unprepared, 0u);
  EXPECT_EQ(log->counters().preallocation_failures, 0u);
  for (const std::string& path : paths) EXPECT_EQ(std::filesystem::file_size(path), 64u << 10) << path;
  wait_for_spare(*log);
  EXPECT_EQ(std::filesystem::file_size(spare), 64u << 10);  // the next one, ready

  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_EQ(scanned->files, paths);
  EXPECT_FALSE(scanned->torn.has_value());
  EXPECT_EQ(scanned->tail_file_bytes + scanned->tail_unused_bytes, 64u << 10);
  ASSERT_EQ(records.size(), log->durable_sequence());
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].payload, testing::payload_for(index, 300)) << index;
  }

  // Reopened, the log goes on inside the preallocated last file.
  uint64_t durable = log->durable_sequence();
  group.reset();
  log.reset();
  log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->next_sequence(), durable);
  group = persister();
  group->add_log(log.get());
  ASSERT_NO_FATAL_FAILURE(write_batches(30));
  records.clear();
  scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  ASSERT_EQ(records.size(), log->durable_sequence());
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].payload, testing::payload_for(index, 300)) << index;
  }
}

// Names of the dropped files a log keeps for reuse, in its directory.
std::vector<std::string> kept_files(const std::string& directory) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(segment_recycled_file_prefix, 0) == 0) names.push_back(name);
  }
  return names;
}

// Checks that a scan of `directory` finds exactly records [first, end) with their payloads
// and no tear.
void expect_records(const std::string& directory, uint64_t first, uint64_t end, size_t bytes) {
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(directory, testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_FALSE(scanned->torn.has_value()) << scanned->torn->file << " at " << scanned->torn->offset;
  EXPECT_EQ(scanned->next_sequence, end);
  ASSERT_EQ(records.size(), end - first);
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].sequence, first + index);
    EXPECT_EQ(records[index].payload, testing::payload_for(first + index, bytes)) << first + index;
  }
}

TEST_P(PersistTest, DroppedSegmentsAreReusedAndTheirOldBytesReadAsUnused) {
  ScratchDirectory scratch;
  // No zeroed spares: every file after the first two is a dropped one, reused.
  LogOptions options{.segment_bytes_max = 64 << 10, .staged_bytes_max = 16 << 10, .recycled_segments_max = 2};
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  auto group = persister();
  group->add_log(log.get());
  // Keeps the current file and the one before it, as snapshots behind the log would.
  std::vector<uint64_t> first_sequences;
  auto write_batches = [&](int batches) {
    for (int batch = 0; batch < batches; ++batch) {
      testing::stage_records(*log, 1 + random() % 40, 300);
      ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
      std::vector<std::string> paths = log->segment_paths();
      if (paths.size() > 2) {
        std::string second = std::filesystem::path(paths[paths.size() - 2]).filename().string();
        ASSERT_TRUE(log->drop_segments_before(*parse_segment_file_name(second)).ok());
      }
      EXPECT_LE(log->recycled_segments(), 2u);
      EXPECT_EQ(kept_files(scratch.path()).size(), log->recycled_segments());
    }
  };
  ASSERT_NO_FATAL_FAILURE(write_batches(120));
  // Into a fresh file (a reused one by now), one small batch.
  for (uint64_t created = log->counters().segments_created; log->counters().segments_created == created;) {
    ASSERT_NO_FATAL_FAILURE(write_batches(1));
  }
  const ShardLogCounters& counters = log->counters();
  ASSERT_GE(counters.segments_created, 6u);
  EXPECT_EQ(counters.segments_kept_for_reuse, counters.segments_dropped);
  EXPECT_EQ(counters.segments_recycled, counters.segments_kept_for_reuse - log->recycled_segments());
  EXPECT_GE(counters.segments_recycled, 3u);
  // The current file was used before: after its records and the zeros to the end of their
  // block come its old records, which recovery must read as unused.
  std::string current = log->segment_paths().back();
  // (Its size is the old file's: up to 64 KiB, less when the old one rotated early.)
  std::vector<std::byte> bytes = testing::read_bytes(current);
  std::vector<testing::RecordPlace> places = testing::record_places(current);
  uint64_t end = places.back().offset + sizeof(RecordHeader) + places.back().header.payload_bytes;
  uint64_t block_end = (end + log_write_alignment - 1) / log_write_alignment * log_write_alignment;
  ASSERT_LT(block_end, bytes.size());
  EXPECT_TRUE(std::any_of(bytes.begin() + ptrdiff_t(block_end), bytes.end(), [](std::byte b) { return b != std::byte{0}; }));
  uint64_t first = *parse_segment_file_name(std::filesystem::path(log->segment_paths().front()).filename().string());
  ASSERT_NO_FATAL_FAILURE(expect_records(scratch.path(), first, log->durable_sequence(), 300));

  // Reopened: the kept files of the earlier run are deleted, and the log goes on inside the
  // reused last file, over its old bytes.
  uint64_t durable = log->durable_sequence();
  group.reset();
  log.reset();
  ASSERT_FALSE(kept_files(scratch.path()).empty());
  log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  ASSERT_NE(log, nullptr);
  EXPECT_TRUE(kept_files(scratch.path()).empty());
  EXPECT_EQ(log->next_sequence(), durable);
  group = persister();
  group->add_log(log.get());
  ASSERT_NO_FATAL_FAILURE(write_batches(60));
  first = *parse_segment_file_name(std::filesystem::path(log->segment_paths().front()).filename().string());
  ASSERT_NO_FATAL_FAILURE(expect_records(scratch.path(), first, log->durable_sequence(), 300));
  EXPECT_GE(log->counters().segments_recycled, 1u);
}

TEST_P(PersistTest, KeptDroppedFilesComeBeforeTheZeroedSpareUpToTheirMaximum) {
  ScratchDirectory scratch;
  LogOptions options{.segment_bytes_max = 64 << 10, .staged_bytes_max = 16 << 10, .preallocate_segments = true,
                     .recycled_segments_max = 1};
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  auto group = persister();
  group->add_log(log.get());
  auto fill_a_segment = [&]() {
    size_t files = log->segment_paths().size();
    while (log->segment_paths().size() == files) {
      wait_for_spare(*log);
      testing::stage_records(*log, 40, 300);
      ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
    }
  };
  ASSERT_NO_FATAL_FAILURE(fill_a_segment());  // the second file: the zeroed spare
  EXPECT_EQ(log->counters().segments_preallocated, 2u);
  ASSERT_NO_FATAL_FAILURE(fill_a_segment());
  EXPECT_EQ(log->counters().segments_preallocated, 3u);
  // Two files dropped, one kept (the maximum), one deleted.
  ASSERT_TRUE(log->drop_segments_before(log->durable_sequence()).ok());
  EXPECT_EQ(log->counters().segments_dropped, 2u);
  EXPECT_EQ(log->counters().segments_kept_for_reuse, 1u);
  EXPECT_EQ(kept_files(scratch.path()).size(), 1u);
  wait_for_spare(*log);
  ASSERT_NO_FATAL_FAILURE(fill_a_segment());  // taken before the ready spare
  EXPECT_EQ(log->counters().segments_recycled, 1u);
  EXPECT_EQ(log->counters().segments_preallocated, 3u);
  EXPECT_TRUE(kept_files(scratch.path()).empty());
  EXPECT_TRUE(std::filesystem::exists(scratch.path() + "/" + segment_spare_file_name));
  uint64_t first = *parse_segment_file_name(std::filesystem::path(log->segment_paths().front()).filename().string());
  ASSERT_NO_FATAL_FAILURE(expect_records(scratch.path(), first, log->durable_sequence(), 300));
}

// 64 KiB segments whose first spare waits until the file is half full.
constexpr LogOptions half_mark_options{.segment_bytes_max = 64 << 10, .staged_bytes_max = 16 << 10,
                                       .preallocate_segments = true, .spare_at_fill_percent = 50};

// Commits batches of 10 records of 300 bytes until the log's next sequence is `sequence`.
void commit_records_until(ShardLog& log, Persister& group, uint64_t sequence) {
  while (log.next_sequence() < sequence) {
    testing::stage_records(log, 10, 300);
    ASSERT_NO_FATAL_FAILURE(testing::commit(group));
  }
}

TEST_P(PersistTest, TheSpareIsBegunOnlyOnceTheCurrentFileIsFullEnoughAndTakenAtOnce) {
  ScratchDirectory scratch;
  const std::string spare = scratch.path() + "/" + segment_spare_file_name;
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), half_mark_options);
  auto group = persister();
  group->add_log(log.get());
  // Below half of the 64 KiB file: no zeros written, and the first file is appended to,
  // by design (not counted as a spare that was late).
  ASSERT_NO_FATAL_FAILURE(commit_records_until(*log, *group, 60));  // 60 records of 300 bytes: ~20 KiB
  EXPECT_FALSE(std::filesystem::exists(spare));
  EXPECT_FALSE(log->spare_ready());
  EXPECT_EQ(log->counters().segments_unprepared, 0u);
  EXPECT_EQ(log->segment_paths().size(), 1u);
  EXPECT_LE(std::filesystem::file_size(log->segment_paths().front()), 24u << 10);
  // Past half: the spare is begun, and the file after this one is that spare.
  testing::stage_records(*log, 45, 300);  // ~35 KiB in all
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  wait_for_spare(*log);
  EXPECT_EQ(std::filesystem::file_size(spare), 64u << 10);
  while (log->segment_paths().size() == 1) {
    testing::stage_records(*log, 10, 300);
    ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  }
  EXPECT_EQ(log->counters().segments_preallocated, 1u);
  EXPECT_EQ(log->counters().segments_unprepared, 0u);
  EXPECT_EQ(std::filesystem::file_size(log->segment_paths().back()), 64u << 10);
  // The log fills files, so the next spare is begun at once, nearly empty as the new
  // file is.
  wait_for_spare(*log);
  EXPECT_EQ(std::filesystem::file_size(spare), 64u << 10);
  ASSERT_NO_FATAL_FAILURE(expect_records(scratch.path(), 0, log->durable_sequence(), 300));
}

// After a restart the mark counts what the reopened file already holds.
TEST_P(PersistTest, AfterARestartTheMarkCountsWhatTheFileHolds) {
  ScratchDirectory scratch;
  const std::string spare = scratch.path() + "/" + segment_spare_file_name;
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), half_mark_options);
  auto group = persister();
  group->add_log(log.get());
  ASSERT_NO_FATAL_FAILURE(commit_records_until(*log, *group, 60));  // ~20 KiB, appended
  group.reset();
  log.reset();
  log = testing::recover_and_open(scratch.path(), testing::identity(), half_mark_options);
  ASSERT_NE(log, nullptr);
  group = persister();
  group->add_log(log.get());
  EXPECT_FALSE(std::filesystem::exists(spare));
  testing::stage_records(*log, 45, 300);  // past half, counting the ~20 KiB from before
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  wait_for_spare(*log);
  EXPECT_EQ(std::filesystem::file_size(spare), 64u << 10);
  EXPECT_EQ(log->segment_paths().size(), 1u);
  ASSERT_NO_FATAL_FAILURE(expect_records(scratch.path(), 0, log->durable_sequence(), 300));
}

// A spare paced at 1 MiB/s would take a minute for 64 MiB; the closing log cancels it
// and waits for a chunk at most, and the half-written spare is removed.
TEST(LogOptions, AClosingLogDoesNotWaitOutAPacedSpare) {
  ScratchDirectory scratch;
  LogOptions options{.preallocate_segments = true, .spare_zero_bytes_per_second_max = 1 << 20};
  Result<RecoveredLog> recovered = scan_log(scratch.path(), testing::identity(), [](const LogRecordView&) -> Result<void> { return {}; });
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  Result<std::unique_ptr<ShardLog>> log = ShardLog::open(scratch.path(), testing::identity(), options, *recovered);
  ASSERT_TRUE(log.ok()) << log.error().message;
  const std::string spare = scratch.path() + "/" + segment_spare_file_name;
  for (int waited_ms = 0; waited_ms < 2000 && !std::filesystem::exists(spare); waited_ms += 5)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(std::filesystem::exists(spare)) << "the spare was never begun";
  auto closing = std::chrono::steady_clock::now();
  log->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - closing, std::chrono::seconds(5));
  EXPECT_FALSE(std::filesystem::exists(spare));
}

TEST(LogOptions, ASpareMarkOf100PercentOrMoreIsRefused) {
  ScratchDirectory scratch;
  LogOptions options{.preallocate_segments = true, .spare_at_fill_percent = 100};
  Result<RecoveredLog> recovered = scan_log(scratch.path(), testing::identity(), [](const LogRecordView&) -> Result<void> { return {}; });
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  Result<std::unique_ptr<ShardLog>> log = ShardLog::open(scratch.path(), testing::identity(), options, *recovered);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find("spare_at_fill_percent must be below 100, got 100"), std::string::npos)
      << log.error().message;
}

TEST_P(PersistTest, TornTailOfAPreallocatedSegmentIsCutAndTheNextBatchStartsANewFile) {
  ScratchDirectory scratch;
  LogOptions options{.segment_bytes_max = 64 << 10, .staged_bytes_max = 16 << 10, .preallocate_segments = true};
  auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  auto group = persister();
  group->add_log(log.get());
  for (int batch = 0; batch < 3; ++batch) {
    wait_for_spare(*log);
    testing::stage_records(*log, 5, 300);
    ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  }
  std::string path = log->segment_paths().back();
  group.reset();
  log.reset();
  // The last batch's last record never fully reached the disk: its checksum fails.
  std::vector<testing::RecordPlace> places = testing::record_places(path);
  std::vector<std::byte> bytes = testing::read_bytes(path);
  bytes[places.back().offset + sizeof(RecordHeader) + 10] ^= std::byte{0xff};
  testing::write_bytes(path, bytes);

  Result<RecoveredLog> recovered = scan_log(scratch.path(), testing::identity(), [](const LogRecordView&) -> Result<void> { return {}; });
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->torn.has_value());
  EXPECT_EQ(recovered->torn->file, path);
  // Cut at the bad record, with the zeros after it; the third batch's four records before
  // it stay (written, never acknowledged).
  EXPECT_EQ(recovered->torn->offset, places.back().offset);
  EXPECT_EQ(recovered->torn->bytes_cut, (64u << 10) - recovered->torn->offset);
  EXPECT_EQ(recovered->next_sequence, 14u);
  log = testing::recover_and_open(scratch.path(), testing::identity(), options);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(std::filesystem::file_size(path), places.back().offset);
  group = persister();
  group->add_log(log.get());
  wait_for_spare(*log);
  testing::stage_records(*log, 5, 300);
  ASSERT_NO_FATAL_FAILURE(testing::commit(*group));
  ASSERT_EQ(log->segment_paths().size(), 2u);
  EXPECT_EQ(std::filesystem::file_size(log->segment_paths().back()), 64u << 10);
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_FALSE(scanned->torn.has_value());
  ASSERT_EQ(records.size(), 19u);
  for (size_t index = 0; index < records.size(); ++index) {
    EXPECT_EQ(records[index].payload, testing::payload_for(index, 300)) << index;
  }
}

TEST_P(PersistTest, ASpareThatCannotBeWrittenIsReportedAndCommitsAppendInstead) {
  ScratchDirectory scratch;
  Backend backend = GetParam();
  int status = 0;
  std::string output = run_in_child(
      [&](FILE* out) {
        // A 40 KiB file size limit: the 64 KiB spare cannot be written (EFBIG), the
        // records themselves fit.
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit limit{40 << 10, 40 << 10};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        LogOptions options{.segment_bytes_max = 64 << 10, .staged_bytes_max = 16 << 10,
                           .preallocate_segments = true};
        auto log = testing::recover_and_open(scratch.path(), testing::identity(), options);
        auto group = testing::make_persister(backend);
        group->add_log(log.get());
        for (int batch = 0; batch < 4; ++batch) {
          wait_for_spare(*log);
          testing::stage_records(*log, 5, 300);
          Result<bool> started = group->submit();
          Result<bool> durable = started.ok() ? group->poll(true) : Result<bool>(started.error());
          std::fprintf(out, "batch%d=%s\n", batch, durable.ok() && *durable ? "durable" : "failed");
        }
        std::fprintf(out, "failures=%llu\n", (unsigned long long)log->counters().preallocation_failures);
        std::fprintf(out, "preallocated=%llu\n", (unsigned long long)log->counters().segments_preallocated);
        std::fprintf(out, "error=%s\n", log->preallocation_error().c_str());
        std::fprintf(out, "size=%llu\n", (unsigned long long)std::filesystem::file_size(log->segment_paths().back()));
      },
      &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status << "\n" << output;
  std::map<std::string, std::string> values = parse_lines(output);
  for (int batch = 0; batch < 4; ++batch) EXPECT_EQ(values["batch" + std::to_string(batch)], "durable") << output;
  // The first commit found the spare failed (and started another, looked at only when
  // the segment rotates).
  EXPECT_EQ(values["failures"], "1");
  EXPECT_EQ(values["preallocated"], "0");
  std::string spare = scratch.path() + "/" + segment_spare_file_name;
  EXPECT_EQ(values["error"].rfind(spare + ": offset ", 0), 0u) << values["error"];
  EXPECT_NE(values["error"].find("File too large"), std::string::npos) << values["error"];
  EXPECT_LT(std::stoull(values["size"]), 40u << 10);  // appended, not preallocated
  EXPECT_FALSE(std::filesystem::exists(spare));        // a failed spare is removed
  std::vector<ScannedRecord> records;
  Result<RecoveredLog> scanned = testing::scan_keep(scratch.path(), testing::identity(), &records);
  ASSERT_TRUE(scanned.ok()) << scanned.error().message;
  EXPECT_EQ(records.size(), 20u);
}

// io_uring_setup blocked by seccomp, as some container runtimes do.
void block_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{sizeof filter / sizeof filter[0], filter};
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
}

TEST(PersisterTest, FallsBackToPsyncWithANoteWhenIoUringIsBlocked) {
  ScratchDirectory scratch;
  int status = 0;
  std::string output = run_in_child(
      [&](FILE* out) {
        block_io_uring_setup();
        std::string note;
        auto persister = Persister::create({.backend = Backend::io_uring}, &note);
        std::fprintf(out, "backend=%s\nnote=%s\n", testing::backend_name((*persister)->backend()),
                     note.c_str());
        auto log = testing::recover_and_open(scratch.path(), testing::identity());
        (*persister)->add_log(log.get());
        testing::stage_records(*log, 3, 10);
        bool ok = (*persister)->submit().ok() && (*persister)->poll(true).ok();
        std::fprintf(out, "committed=%d\n", ok && log->durable_sequence() == 3);
      },
      &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  std::map<std::string, std::string> values = parse_lines(output);
  EXPECT_EQ(values["backend"], "psync");
  EXPECT_EQ(values["note"],
            "persist: io_uring is not available (io_uring_queue_init: Operation not permitted); using psync "
            "instead: one blocking pwritev + fdatasync per log per commit");
  EXPECT_EQ(values["committed"], "1");
}

TEST(PersisterTest, RejectsImpossibleRingSize) {
  auto persister = Persister::create({.ring_entries = 1}, nullptr);
  ASSERT_FALSE(persister.ok());
  EXPECT_EQ(persister.error().message, "persist: ring_entries must be from 2 to 32768, got 1");
}

}  // namespace
}  // namespace keel::persist
