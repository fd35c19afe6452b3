// Tests for engine/persist/snapshot_file.h.
#include "engine/persist/snapshot_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/engine/persist/persist_test_support.h"

namespace keel::persist {
namespace {

using testing::ScratchDirectory;

TEST(SnapshotFileTest, WriteThenLoadTheNewest) {
  ScratchDirectory scratch;
  std::string directory = scratch / "payments/snapshots";  // created on first write
  std::vector<std::string> notes;
  Result<std::optional<SnapshotFile>> none = load_newest_snapshot(directory, &notes);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->has_value());

  for (uint64_t height : {10u, 250u, 40u}) {
    ASSERT_TRUE(write_snapshot(directory, height, testing::payload_for(height, 5000 + height)).ok());
  }
  EXPECT_EQ(*list_snapshot_heights(directory), (std::vector<uint64_t>{10, 40, 250}));
  Result<std::optional<SnapshotFile>> newest = load_newest_snapshot(directory, &notes);
  ASSERT_TRUE(newest.ok()) << newest.error().message;
  ASSERT_TRUE(newest->has_value());
  EXPECT_EQ((*newest)->height, 250u);
  EXPECT_EQ((*newest)->payload, testing::payload_for(250, 5250));
  EXPECT_EQ((*newest)->path, directory + "/snapshot-00000000000000000250.ksnap");
  EXPECT_TRUE(notes.empty());
  // No temporary file is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    EXPECT_EQ(entry.path().extension(), ".ksnap") << entry.path();
  }
}

TEST(SnapshotFileTest, EmptyPayloadRoundTrips) {
  ScratchDirectory scratch;
  ASSERT_TRUE(write_snapshot(scratch.path(), 0, {}).ok());
  auto newest = load_newest_snapshot(scratch.path(), nullptr);
  ASSERT_TRUE(newest.ok() && newest->has_value());
  EXPECT_EQ((*newest)->height, 0u);
  EXPECT_TRUE((*newest)->payload.empty());
}

TEST(SnapshotFileTest, CorruptNewerSnapshotsAreSkippedWithANoteEach) {
  ScratchDirectory scratch;
  for (uint64_t height : {5u, 6u, 7u}) {
    ASSERT_TRUE(write_snapshot(scratch.path(), height, testing::payload_for(height, 1000)).ok());
  }
  std::string seven = scratch / snapshot_file_name(7);
  std::string six = scratch / snapshot_file_name(6);
  std::vector<std::byte> bytes = testing::read_bytes(seven);
  bytes[sizeof(SnapshotHeader) + 500] ^= std::byte(0x10);
  testing::write_bytes(seven, bytes);
  bytes = testing::read_bytes(six);
  bytes.resize(bytes.size() - 1);
  testing::write_bytes(six, bytes);

  std::vector<std::string> notes;
  auto newest = load_newest_snapshot(scratch.path(), &notes);
  ASSERT_TRUE(newest.ok()) << newest.error().message;
  ASSERT_TRUE(newest->has_value());
  EXPECT_EQ((*newest)->height, 5u);
  EXPECT_EQ((*newest)->payload, testing::payload_for(5, 1000));
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "skipped snapshot " + seven + ": checksum mismatch");
  EXPECT_EQ(notes[1], "skipped snapshot " + six + ": header says 1000 payload bytes, the file holds 999");
}

TEST(SnapshotFileTest, HeaderProblemsAreNamed) {
  ScratchDirectory scratch;
  ASSERT_TRUE(write_snapshot(scratch.path(), 3, testing::payload_for(3, 100)).ok());
  ASSERT_TRUE(write_snapshot(scratch.path(), 8, testing::payload_for(8, 100)).ok());
  ASSERT_TRUE(write_snapshot(scratch.path(), 9, testing::payload_for(9, 100)).ok());
  std::string eight = scratch / snapshot_file_name(8);
  std::string nine = scratch / snapshot_file_name(9);
  std::vector<std::byte> bytes = testing::read_bytes(nine);
  bytes[4] = std::byte(2);  // format version 2
  testing::write_bytes(nine, bytes);
  testing::write_bytes(eight, std::vector<std::byte>(10));
  std::vector<std::string> notes;
  auto newest = load_newest_snapshot(scratch.path(), &notes);
  ASSERT_TRUE(newest.ok() && newest->has_value());
  EXPECT_EQ((*newest)->height, 3u);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "skipped snapshot " + nine + ": was written by format version 2, this keel reads 1");
  EXPECT_EQ(notes[1], "skipped snapshot " + eight + ": cut short: 10 bytes of a 32-byte header");
}

TEST(SnapshotFileTest, DropKeepsTheGivenHeightAndNewer) {
  ScratchDirectory scratch;
  for (uint64_t height : {1u, 2u, 3u, 4u}) ASSERT_TRUE(write_snapshot(scratch.path(), height, {}).ok());
  // A temporary file a crash left behind is cleaned up with its height.
  testing::write_bytes(scratch / (snapshot_file_name(2) + ".tmp"), std::vector<std::byte>(7));
  testing::write_bytes(scratch / "unrelated.txt", std::vector<std::byte>(7));
  ASSERT_TRUE(drop_snapshots_before(scratch.path(), 3).ok());
  EXPECT_EQ(*list_snapshot_heights(scratch.path()), (std::vector<uint64_t>{3, 4}));
  EXPECT_FALSE(std::filesystem::exists(scratch / (snapshot_file_name(2) + ".tmp")));
  EXPECT_TRUE(std::filesystem::exists(scratch / "unrelated.txt"));
  ASSERT_TRUE(drop_snapshots_before(scratch.path(), 100).ok());
  EXPECT_TRUE(list_snapshot_heights(scratch.path())->empty());
}

TEST(SnapshotFileTest, WriteReplacesASnapshotOfTheSameHeight) {
  ScratchDirectory scratch;
  ASSERT_TRUE(write_snapshot(scratch.path(), 12, testing::payload_for(1, 10)).ok());
  ASSERT_TRUE(write_snapshot(scratch.path(), 12, testing::payload_for(2, 20)).ok());
  auto newest = load_newest_snapshot(scratch.path(), nullptr);
  ASSERT_TRUE(newest.ok() && newest->has_value());
  EXPECT_EQ((*newest)->payload, testing::payload_for(2, 20));
}

}  // namespace
}  // namespace keel::persist
