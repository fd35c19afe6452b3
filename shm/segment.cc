#include "shm/segment.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

namespace keel::shm {

namespace bip = boost::interprocess;

struct Segment::Mapping {
  bip::shared_memory_object object;
  bip::mapped_region region;
};

uint64_t monotonic_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000ULL + uint64_t(now.tv_nsec);
}

uint64_t monotonic_coarse_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000ULL + uint64_t(now.tv_nsec);
}

uint64_t process_start_ticks(int pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return 0;
  // The command name (field 2) may hold spaces and parentheses: count fields from the
  // last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int index = 3; index <= 22 && (fields >> field); ++index) {
    if (index == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

namespace {

std::string place(std::string_view name) { return "segment '" + std::string(name) + "'"; }

bool owner_alive(int pid, uint64_t start_ticks) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  uint64_t now_ticks = process_start_ticks(pid);
  return now_ticks != 0 && now_ticks == start_ticks;
}

// What an existing segment of our name is, for create(): decides reclaim or refuse.
enum class Existing { stale, half_made, live, foreign, unreadable };

struct ExistingInfo {
  Existing state;
  int pid = 0;
  uint64_t magic = 0;
};

ExistingInfo inspect_existing(const std::string& name) {
  try {
    bip::shared_memory_object object(bip::open_only, name.c_str(), bip::read_only);
    bip::offset_t size = 0;
    object.get_size(size);
    if (size_t(size) < sizeof(SegmentHeader)) return {Existing::half_made};
    bip::mapped_region region(object, bip::read_only, 0, sizeof(SegmentHeader));
    const auto* header = static_cast<const SegmentHeader*>(region.get_address());
    ExistingInfo info{Existing::stale, header->owner_pid, header->magic};
    bool alive = owner_alive(header->owner_pid, header->owner_start_ticks);
    if (header->magic == 0) {
      info.state = alive ? Existing::live : Existing::half_made;
    } else if (header->magic != segment_magic) {
      info.state = Existing::foreign;
    } else {
      info.state = alive ? Existing::live : Existing::stale;
    }
    return info;
  } catch (const bip::interprocess_exception&) {
    return {Existing::unreadable};
  }
}

// Decides what to do about a name that is already taken; returns an Error to refuse.
Result<void> reclaim_or_refuse(const std::string& name, std::vector<std::string>& notes) {
  ExistingInfo info = inspect_existing(name);
  char magic_hex[32];
  std::snprintf(magic_hex, sizeof magic_hex, "0x%016llx", (unsigned long long)info.magic);
  switch (info.state) {
    case Existing::live:
      return make_error(place(name), "in use by running engine pid " + std::to_string(info.pid) +
                                         "; stop it or choose another [engine] instance");
    case Existing::foreign:
      return make_error(place(name), std::string("exists but is not a keel segment (magic ") +
                                         magic_hex + "); remove /dev/shm/" + name +
                                         " if nothing uses it");
    case Existing::unreadable:
      return make_error(place(name), "exists but cannot be read (owned by another user?)");
    case Existing::stale:
      notes.push_back("reclaimed stale " + place(name) + " left by pid " +
                      std::to_string(info.pid) + ", which is no longer running");
      break;
    case Existing::half_made:
      notes.push_back("reclaimed half-made " + place(name) + " left by a creator that died");
      break;
  }
  bip::shared_memory_object::remove(name.c_str());
  return {};
}

}  // namespace

Result<Segment> Segment::create(const SegmentOptions& options) {
  const std::string& name = options.name;
  if (name.empty() || name.size() > 200 || name.find('/') != std::string::npos) {
    return make_error(place(name), "a segment name is 1 to 200 characters without '/'");
  }
  if (options.bytes < sizeof(SegmentHeader)) {
    return make_error(place(name), "needs at least " + std::to_string(sizeof(SegmentHeader)) +
                                       " bytes, got " + std::to_string(options.bytes));
  }
  Segment segment;
  segment.name_ = name;
  bip::permissions permissions;
  permissions.set_permissions(0600);
  for (int attempt = 0;; ++attempt) {
    try {
      bip::shared_memory_object object(bip::create_only, name.c_str(), bip::read_write,
                                       permissions);
      segment.mapping_ = std::make_unique<Mapping>();
      segment.mapping_->object.swap(object);
      break;
    } catch (const bip::interprocess_exception& error) {
      if (error.get_error_code() != bip::already_exists_error || attempt > 0) {
        return make_error(place(name), std::string("cannot create: ") + error.what());
      }
      if (auto refused = reclaim_or_refuse(name, segment.notes_); !refused) {
        return refused.error();
      }
    }
  }
  segment.owner_ = true;  // from here on the destructor removes the name on failure
  try {
    segment.mapping_->object.truncate(bip::offset_t(options.bytes));
    bip::mapped_region region(segment.mapping_->object, bip::read_write);
    segment.mapping_->region.swap(region);
  } catch (const bip::interprocess_exception& error) {
    return make_error(place(name), std::string("cannot size or map ") +
                                       std::to_string(options.bytes) + " bytes: " + error.what());
  }
  segment.base_ = static_cast<std::byte*>(segment.mapping_->region.get_address());
  segment.bytes_ = options.bytes;
  // Ownership is written before the magic: a creator that dies in between leaves a
  // zero magic with a dead pid, which the next create() reclaims as half-made.
  auto* header = new (segment.base_) SegmentHeader{};
  header->layout_version = segment_layout_version;
  header->segment_bytes = options.bytes;
  header->used_bytes = sizeof(SegmentHeader);
  header->owner_pid = getpid();
  header->owner_start_ticks = process_start_ticks(getpid());
  header->owner_heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  header->magic = segment_magic;
  return segment;
}

Result<Segment> Segment::attach(std::string_view name_view, Access access) {
  const bip::mode_t mode = access == Access::read_only ? bip::read_only : bip::read_write;
  std::string name(name_view);
  Segment segment;
  segment.name_ = name;
  segment.mapping_ = std::make_unique<Mapping>();
  try {
    bip::shared_memory_object object(bip::open_only, name.c_str(), mode);
    segment.mapping_->object.swap(object);
    bip::offset_t size = 0;
    segment.mapping_->object.get_size(size);
    if (size_t(size) < sizeof(SegmentHeader)) {
      return make_error(place(name), "too small to be a keel segment (" + std::to_string(size) +
                                         " bytes)");
    }
    bip::mapped_region region(segment.mapping_->object, mode);
    segment.mapping_->region.swap(region);
    segment.bytes_ = uint64_t(size);
  } catch (const bip::interprocess_exception& error) {
    if (error.get_error_code() == bip::not_found_error) {
      return make_error(place(name), "not found; is the engine running?");
    }
    return make_error(place(name), std::string("cannot attach: ") + error.what());
  }
  segment.base_ = static_cast<std::byte*>(segment.mapping_->region.get_address());
  const SegmentHeader& header = segment.header();
  if (header.magic != segment_magic) {
    char magic_hex[32];
    std::snprintf(magic_hex, sizeof magic_hex, "0x%016llx", (unsigned long long)header.magic);
    return make_error(place(name), std::string("not a keel segment (magic ") + magic_hex + ")");
  }
  if (header.layout_version != segment_layout_version) {
    return make_error(place(name), "layout version " + std::to_string(header.layout_version) +
                                       ", this keel reads version " +
                                       std::to_string(segment_layout_version));
  }
  if (header.sealed.load(std::memory_order_acquire) != 1) {
    return make_error(place(name), segment_not_sealed_reason);
  }
  if (!owner_alive(header.owner_pid, header.owner_start_ticks)) {
    return make_error(place(name), "stale: its engine (pid " + std::to_string(header.owner_pid) +
                                       ") is no longer running");
  }
  return segment;
}

Segment::Segment(Segment&& other) noexcept { *this = std::move(other); }

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    this->~Segment();
    mapping_ = std::move(other.mapping_);
    base_ = std::exchange(other.base_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    name_ = std::move(other.name_);
    owner_ = std::exchange(other.owner_, false);
    notes_ = std::move(other.notes_);
  }
  return *this;
}

Segment::~Segment() {
  mapping_.reset();
  if (owner_) bip::shared_memory_object::remove(name_.c_str());
  owner_ = false;
}

Result<uint64_t> Segment::allocate(std::string_view name, SegmentObjectKind kind,
                                   uint64_t bytes, uint64_t alignment) {
  assert(owner_ && base_ != nullptr);
  assert(alignment != 0 && (alignment & (alignment - 1)) == 0);
  auto* header = reinterpret_cast<SegmentHeader*>(base_);
  std::string object_place = place(name_) + " object '" + std::string(name) + "'";
  if (header->sealed.load(std::memory_order_relaxed)) {
    return make_error(object_place, "the layout is sealed");
  }
  if (name.empty() || name.size() > segment_object_name_bytes_max) {
    return make_error(object_place, "a name is 1 to " +
                                        std::to_string(segment_object_name_bytes_max) +
                                        " characters");
  }
  if (find(name, kind)) return make_error(object_place, "already laid out");
  if (header->entry_count == segment_directory_entries_max) {
    return make_error(object_place, "the directory is full (" +
                                        std::to_string(segment_directory_entries_max) +
                                        " objects)");
  }
  uint64_t offset = (header->used_bytes + alignment - 1) & ~(alignment - 1);
  if (offset + bytes > bytes_ || offset + bytes < offset) {
    return make_error(object_place, "needs " + std::to_string(bytes) + " bytes but only " +
                                        std::to_string(bytes_ - std::min(offset, bytes_)) +
                                        " are left");
  }
  SegmentDirectoryEntry& entry = header->entries[header->entry_count++];
  std::memset(&entry, 0, sizeof entry);
  std::memcpy(entry.name, name.data(), name.size());
  entry.kind = kind;
  entry.offset = offset;
  entry.bytes = bytes;
  header->used_bytes = offset + bytes;
  return offset;
}

void Segment::seal() {
  assert(owner_);
  reinterpret_cast<SegmentHeader*>(base_)->sealed.store(1, std::memory_order_release);
}

Result<SegmentObject> Segment::find(std::string_view name, SegmentObjectKind kind) const {
  const SegmentHeader& header = this->header();
  for (uint32_t index = 0; index < header.entry_count; ++index) {
    const SegmentDirectoryEntry& entry = header.entries[index];
    if (entry.kind == kind && name == entry.name) return SegmentObject{entry.offset, entry.bytes};
  }
  return make_error(place(name_) + " object '" + std::string(name) + "'", "not found");
}

void Segment::beat_heartbeat() {
  assert(owner_);
  reinterpret_cast<SegmentHeader*>(base_)->owner_heartbeat_ns.store(monotonic_ns(),
                                                                    std::memory_order_relaxed);
}

bool Segment::remove(std::string_view name) {
  return bip::shared_memory_object::remove(std::string(name).c_str());
}

}  // namespace keel::shm
