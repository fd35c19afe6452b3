#include "shm/segment.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstring>

#include "tests/shm/test_segment_name.h"

namespace keel::shm {
namespace {

namespace bip = boost::interprocess;

bool name_exists(const std::string& name) {
  struct stat info;
  return stat(("/dev/shm/" + name).c_str(), &info) == 0;
}

TEST(SegmentTest, CreateLayOutAttachFind) {
  std::string name = testing::unique_segment_name("basic");
  auto created = Segment::create({name, 1 << 20});
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_TRUE(created->notes().empty());
  auto offset = created->allocate("counters", SegmentObjectKind::counters, 1000, 128);
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(*offset % 128, 0u);
  std::memcpy(created->base() + *offset, "hello", 6);
  // Attach before seal: refused, the layout is not complete.
  EXPECT_EQ(Segment::attach(name).error().message,
            "segment '" + name + "': its engine has not finished laying it out");
  created->seal();
  auto attached = Segment::attach(name);
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  auto found = attached->find("counters", SegmentObjectKind::counters);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->offset, *offset);
  EXPECT_EQ(found->bytes, 1000u);
  EXPECT_STREQ(reinterpret_cast<const char*>(attached->base() + found->offset), "hello");
  EXPECT_EQ(attached->find("counters", SegmentObjectKind::ring).error().message,
            "segment '" + name + "' object 'counters': not found");
}

TEST(SegmentTest, AllocateRejectsDuplicatesOverflowAndLateObjects) {
  std::string name = testing::unique_segment_name("alloc");
  auto segment = Segment::create({name, 64 * 1024});
  ASSERT_TRUE(segment.ok());
  ASSERT_TRUE(segment->allocate("a", SegmentObjectKind::ring, 128, 128).ok());
  EXPECT_EQ(segment->allocate("a", SegmentObjectKind::ring, 128, 128).error().message,
            "segment '" + name + "' object 'a': already laid out");
  EXPECT_FALSE(segment->allocate("huge", SegmentObjectKind::ring, 1 << 20, 128).ok());
  segment->seal();
  EXPECT_EQ(segment->allocate("b", SegmentObjectKind::ring, 128, 128).error().message,
            "segment '" + name + "' object 'b': the layout is sealed");
}

TEST(SegmentTest, CreatedWithPermissions0600AndRemovedOnCleanShutdown) {
  std::string name = testing::unique_segment_name("perm");
  {
    auto segment = Segment::create({name, 1 << 16});
    ASSERT_TRUE(segment.ok());
    struct stat info;
    ASSERT_EQ(stat(("/dev/shm/" + name).c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
  }
  EXPECT_FALSE(name_exists(name));
}

TEST(SegmentTest, AttachRejectsAVersionMismatch) {
  std::string name = testing::unique_segment_name("version");
  auto segment = Segment::create({name, 1 << 16});
  ASSERT_TRUE(segment.ok());
  segment->seal();
  reinterpret_cast<SegmentHeader*>(segment->base())->layout_version = 99;
  EXPECT_EQ(Segment::attach(name).error().message,
            "segment '" + name + "': layout version 99, this keel reads version 1");
}

TEST(SegmentTest, AttachRejectsMissingAndForeignSegments) {
  std::string name = testing::unique_segment_name("foreign");
  EXPECT_EQ(Segment::attach(name).error().message,
            "segment '" + name + "': not found; is the engine running?");
  {
    bip::shared_memory_object object(bip::create_only, name.c_str(), bip::read_write);
    object.truncate(1 << 16);
    bip::mapped_region region(object, bip::read_write);
    std::memset(region.get_address(), 0xAB, 1 << 16);
  }
  EXPECT_EQ(Segment::attach(name).error().message,
            "segment '" + name + "': not a keel segment (magic 0xabababababababab)");
  // create() will not reclaim what it does not own.
  EXPECT_EQ(Segment::create({name, 1 << 16}).error().message,
            "segment '" + name + "': exists but is not a keel segment (magic 0xabababababababab); "
            "remove /dev/shm/" + name + " if nothing uses it");
  EXPECT_TRUE(name_exists(name));
  Segment::remove(name);
}

// A child creates the segment and is killed with SIGKILL: the next create() finds the
// owner gone and reclaims the name, saying so.
TEST(SegmentTest, ReclaimsAStaleSegmentWhoseOwnerDied) {
  std::string name = testing::unique_segment_name("stale");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto segment = Segment::create({name, 1 << 16});
    if (!segment) _exit(1);
    segment->seal();
    char byte = 1;
    if (write(ready[1], &byte, 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  // While the owner lives, the name is refused.
  EXPECT_EQ(Segment::create({name, 1 << 16}).error().message,
            "segment '" + name + "': in use by running engine pid " + std::to_string(child) +
                "; stop it or choose another [engine] instance");
  EXPECT_TRUE(Segment::attach(name).ok());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(Segment::attach(name).error().message,
            "segment '" + name + "': stale: its engine (pid " + std::to_string(child) +
                ") is no longer running");
  auto reclaimed = Segment::create({name, 1 << 16});
  ASSERT_TRUE(reclaimed.ok()) << reclaimed.error().message;
  ASSERT_EQ(reclaimed->notes().size(), 1u);
  EXPECT_EQ(reclaimed->notes()[0], "reclaimed stale segment '" + name + "' left by pid " +
                                       std::to_string(child) + ", which is no longer running");
  EXPECT_EQ(reclaimed->header().owner_pid, getpid());
  close(ready[0]);
  close(ready[1]);
}

TEST(SegmentTest, ProcessStartTicksTellsPidReuseApart) {
  EXPECT_GT(process_start_ticks(getpid()), 0u);
  EXPECT_EQ(process_start_ticks(-1), 0u);
  EXPECT_EQ(process_start_ticks(0x7ffffff0), 0u);
}

}  // namespace
}  // namespace keel::shm
