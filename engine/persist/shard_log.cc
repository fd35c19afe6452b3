#include "engine/persist/shard_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>

#include "engine/persist/crc32c.h"
#include "engine/persist/persister.h"

namespace keel::persist {

namespace {

std::string join_path(const std::string& directory, const std::string& name) {
  if (!directory.empty() && directory.back() == '/') return directory + name;
  return directory + "/" + name;
}

constexpr uint64_t block_bytes = log_write_alignment;

uint64_t round_up_to_block(uint64_t bytes) { return (bytes + block_bytes - 1) / block_bytes * block_bytes; }

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Why the options cannot work for this identity, or "".
// Even the smallest segment leaves room for records after the largest segment header.
static_assert(segment_bytes_min >=
              sizeof(RecordHeader) + segment_header_fixed_bytes + chain_name_bytes_max + 2048);

std::string options_problem(const LogOptions& options) {
  if (options.segment_bytes_max < segment_bytes_min || options.segment_bytes_max > segment_bytes_limit) {
    return "segment_bytes_max must be from " + std::to_string(segment_bytes_min) + " to " +
           std::to_string(segment_bytes_limit) + ", got " + std::to_string(options.segment_bytes_max);
  }
  if (options.staged_bytes_max < staged_bytes_min) {
    return "staged_bytes_max must be at least " + std::to_string(staged_bytes_min) + ", got " +
           std::to_string(options.staged_bytes_max);
  }
  if (options.spare_at_fill_percent >= 100) {
    return "spare_at_fill_percent must be below 100, got " + std::to_string(options.spare_at_fill_percent);
  }
  return "";
}

}  // namespace

ShardLog::ShardLog(std::string directory, LogIdentity identity, LogOptions options)
    : directory_(std::move(directory)), identity_(std::move(identity)), options_(options) {
  header_slot_bytes_ = sizeof(RecordHeader) + segment_header_payload_bytes(identity_);
  static_assert(sizeof(RecordHeader) + segment_header_fixed_bytes + chain_name_bytes_max < block_bytes,
                "a segment header fits the first block");
  segment_bytes_usable_ = options_.segment_bytes_max / block_bytes * block_bytes;
  // A batch goes to one file whole, after that file's segment header at worst.
  batch_bytes_max_ = std::min(options_.staged_bytes_max, segment_bytes_usable_ - header_slot_bytes_);
  // A block in front for the segment header or the file's partial last block, one behind
  // for the padding. Pages stay untouched until records land in them.
  uint64_t buffer_bytes = block_bytes + round_up_to_block(batch_bytes_max_) + block_bytes;
  auto allocate = [&](Buffer& buffer) { buffer.bytes = allocate_io_buffer(buffer_bytes, options_.huge_page_buffers); };
  allocate(staging_);
  for (InFlight& slot : in_flight_) allocate(slot.buffer);
  tail_block_ = std::make_unique<std::byte[]>(block_bytes);
}

ShardLog::~ShardLog() { spare_cancel_->store(true, std::memory_order_relaxed); }

Result<std::unique_ptr<ShardLog>> ShardLog::open(std::string directory, LogIdentity identity,
                                                 LogOptions options, const RecoveredLog& recovered) {
  if (std::string problem = identity_problem(identity); !problem.empty()) {
    return make_error(directory, "log identity: " + problem);
  }
  if (std::string problem = options_problem(options); !problem.empty()) {
    return make_error(directory, "log options: " + problem);
  }
  if (auto made = create_directories(directory); !made) return made.error();
  std::unique_ptr<ShardLog> log(new ShardLog(std::move(directory), std::move(identity), options));
  if (auto opened = log->open_files(recovered); !opened) return opened.error();
  return log;
}

Result<void> ShardLog::open_files(const RecoveredLog& recovered) {
  Result<UniqueFd> directory_fd = open_directory(directory_);
  if (!directory_fd) return directory_fd.error();
  directory_fd_ = std::move(*directory_fd);
  next_sequence_ = durable_sequence_ = recovered.next_sequence;
  last_batch_ = std::max({recovered.last_batch, recovered.batch_seen_max, recovered.torn ? recovered.torn->batch : 0});
  spare_path_ = join_path(directory_, segment_spare_file_name);
  // A spare left by an earlier run may be half written: start it again.
  if (::unlink(spare_path_.c_str()) != 0 && errno != ENOENT) return errno_error(spare_path_, "cannot remove");
  if (auto removed = remove_recycled_leftovers(); !removed) return removed;
  if (recovered.files.empty()) {
    if (auto started = start_segment(recovered.next_sequence); !started) return started;
    prepare_spare_when_due();
    return {};
  }
  for (const std::string& path : recovered.files) {
    std::optional<uint64_t> first = parse_segment_file_name(base_name(path));
    if (!first) return make_error(path, "is not a segment file name");
    segments_.push_back({*first, path});
  }
  file_path_ = segments_.back().path;
  file_fd_.reset(::open(file_path_.c_str(), O_RDWR | O_CLOEXEC));
  if (!file_fd_.valid()) return errno_error(file_path_, "cannot open for appending");
  struct stat info;
  if (::fstat(file_fd_.get(), &info) != 0) return errno_error(file_path_, "cannot stat");
  uint64_t recovered_bytes = recovered.tail_file_bytes + recovered.tail_unused_bytes;
  if (uint64_t(info.st_size) != recovered_bytes) {
    return make_error(file_path_, "has " + std::to_string(info.st_size) + " bytes where recovery left " +
                                      std::to_string(recovered_bytes) +
                                      " (cut the torn tail with truncate_torn_tail before opening)");
  }
  file_bytes_ = planned_file_end_ = recovered.tail_file_bytes;
  if (auto read = read_tail_block(); !read) return read.error();
  if (auto direct = use_direct_io(file_fd_.get(), file_path_); !direct) return direct.error();
  file_needs_header_ = file_bytes_ == 0;
  if (file_needs_header_ && segments_.back().first_sequence != next_sequence_) {
    return make_error(file_path_, "is empty but named for record " +
                                      std::to_string(segments_.back().first_sequence) +
                                      ", and the log continues at record " + std::to_string(next_sequence_));
  }
  // A file that lost a tear may end inside a batch; appending after that would look like
  // damage to the next recovery, so the next batch starts a new file.
  rotate_before_next_ = recovered.torn.has_value() && !file_needs_header_;
  // A file written before format version 3 must not get a gap (its reader takes one for
  // damage): the next batch starts a new file.
  if (!file_needs_header_ && recovered.tail_format_version < log_format_version_first_with_gaps)
    rotate_before_next_ = true;
  prepare_spare_when_due();  // only once the log opened: an error return waits for no spare
  return {};
}

// Kept files of an earlier run are deleted, not reused: whatever happened to the log since
// (a data directory emptied by hand), their old records must not meet new ones.
Result<void> ShardLog::remove_recycled_leftovers() {
  Result<std::vector<std::string>> names = list_directory(directory_);
  if (!names) return names.error();
  for (const std::string& name : *names) {
    if (name.rfind(segment_recycled_file_prefix, 0) != 0) continue;
    std::string path = join_path(directory_, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error(path, "cannot remove");
  }
  return {};
}

// Reads the current file's bytes from its last block boundary to file_bytes_ (before the
// file descriptor turns O_DIRECT, which would want an aligned buffer).
Result<void> ShardLog::read_tail_block() {
  uint64_t tail_bytes = file_bytes_ % block_bytes;
  uint64_t offset = file_bytes_ - tail_bytes;
  for (uint64_t done = 0; done < tail_bytes;) {
    ssize_t got = ::pread(file_fd_.get(), tail_block_.get() + done, tail_bytes - done, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_error(file_path_, "cannot read its last block");
    if (got == 0) return make_error(file_path_, "ended while reading its last block");
    done += uint64_t(got);
  }
  return {};
}

// Turns O_DIRECT on for a segment file when the options want it and the file system takes
// it (fcntl says EINVAL where it does not, as on tmpfs: the writes then go through the page
// cache, aligned all the same).
Result<void> ShardLog::use_direct_io(int fd, const std::string& path) {
  direct_io_ = false;
  if (!options_.direct_io) return {};
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return errno_error(path, "cannot read file status flags");
  if (::fcntl(fd, F_SETFL, flags | O_DIRECT) == 0) {
    direct_io_ = true;
    return {};
  }
  if (errno == EINVAL) return {};
  return errno_error(path, "cannot turn on O_DIRECT");
}

// Creates the segment file for records from `first_sequence` on and makes its name
// durable. It stays empty until a commit writes its segment header.
// With preallocate_segments, the file is the spare when it is ready.
Result<void> ShardLog::start_segment(uint64_t first_sequence) {
  std::string path = join_path(directory_, segment_file_name(first_sequence));
  Result<bool> took = take_spare(path);
  if (!took) return took.error();
  if (!*took) {
    UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!file.valid()) return errno_error(path, "cannot create segment file");
    if (auto direct = use_direct_io(file.get(), path); !direct) return direct.error();
    if (::fsync(directory_fd_.get()) != 0) return errno_error(directory_, "cannot fsync directory");
    file_fd_ = std::move(file);
  }
  file_path_ = path;
  file_bytes_ = planned_file_end_ = 0;
  file_needs_header_ = true;
  rotate_before_next_ = false;
  segments_.push_back({first_sequence, std::move(path)});
  counters_.segments_created += 1;
  return {};
}

// The spare is written only while the file system keeps at least as much free again
// after it: on a nearly full disk a spare would take the space the log's own next
// commits need, and fail them.
void ShardLog::prepare_spare() {
  if (!options_.preallocate_segments) return;
  spare_ = std::async(std::launch::async, [path = spare_path_, bytes = segment_bytes_usable_,
                                           direct_io = options_.direct_io,
                                           rate = options_.spare_zero_bytes_per_second_max,
                                           cancel = spare_cancel_]() -> Result<void> {
    struct statvfs space;
    if (::statvfs(path.substr(0, path.find_last_of('/') + 1).c_str(), &space) == 0) {
      uint64_t free_bytes = uint64_t(space.f_bavail) * space.f_frsize;
      if (free_bytes < 2 * bytes) {
        return make_error(path, "not written: " + std::to_string(free_bytes) + " bytes free, and a spare of " +
                                    std::to_string(bytes) + " must leave as much again for the log");
      }
    }
    return write_zero_file(path, bytes, direct_io, rate, cancel.get());
  });
}

void ShardLog::prepare_spare_when_due() {
  if (!options_.preallocate_segments || spare_.valid() || !recycled_paths_.empty()) return;
  if (!rotated_since_open_ && planned_file_end_ * 100 < options_.segment_bytes_max * options_.spare_at_fill_percent)
    return;
  prepare_spare();
}

bool ShardLog::spare_ready() const {
  return spare_.valid() && spare_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Result<bool> ShardLog::take_spare(const std::string& path) {
  if (!recycled_paths_.empty()) {
    std::string from = std::move(recycled_paths_.front());
    recycled_paths_.pop_front();
    if (auto adopted = adopt_prepared_file(from, path); !adopted) return adopted.error();
    counters_.segments_recycled += 1;
    return true;
  }
  if (!options_.preallocate_segments || !spare_.valid()) return false;  // none asked for yet
  if (!spare_ready()) {
    counters_.segments_unprepared += 1;
    return false;
  }
  Result<void> written = spare_.get();
  spare_ = {};
  if (!written) {
    counters_.preallocation_failures += 1;
    preallocation_error_ = written.error().message;
    return false;
  }
  if (auto adopted = adopt_prepared_file(spare_path_, path); !adopted) return adopted.error();
  counters_.segments_preallocated += 1;
  return true;
}

// Renames a prepared file (the spare or a kept dropped file) to `path` and makes it the
// current file. From here on a failure is the file system's, as creating the file would be.
Result<void> ShardLog::adopt_prepared_file(const std::string& from, const std::string& path) {
  if (::rename(from.c_str(), path.c_str()) != 0) {
    return errno_error(path, "cannot rename the prepared segment " + from + " to it");
  }
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!file.valid()) return errno_error(path, "cannot open segment file");
  if (auto direct = use_direct_io(file.get(), path); !direct) return direct.error();
  // The name must be durable before records written into the file are acknowledged.
  if (::fsync(directory_fd_.get()) != 0) return errno_error(directory_, "cannot fsync directory");
  file_fd_ = std::move(file);
  return {};
}

Result<uint64_t> ShardLog::stage(uint16_t type, std::span<const std::byte> payload) {
  assert(type >= record_type_first_opaque);
  uint64_t record_bytes = sizeof(RecordHeader) + payload.size();
  if (payload.size() > record_payload_bytes_max || record_bytes > batch_bytes_max_) {
    return make_error(directory_, "a record of " + std::to_string(payload.size()) +
                                      " payload bytes can never be staged: a batch holds at most " +
                                      std::to_string(batch_bytes_max_) + " bytes");
  }
  Buffer& buffer = staging_;
  if (record_bytes > batch_bytes_max_ - buffer.records_bytes) {
    counters_.stage_refusals += 1;
    return make_error(directory_, "staging full (" + std::to_string(buffer.records_bytes) + " of " +
                                      std::to_string(batch_bytes_max_) +
                                      " bytes): stage again after a commit");
  }
  if (buffer.record_count == 0) {
    buffer.first_sequence = next_sequence_;
    buffer.records_offset = next_batch_file_offset() % block_bytes;
  }
  std::byte* at = buffer.bytes.get() + buffer.records_offset + buffer.records_bytes;
  RecordHeader header = make_record_header(type, payload.size(), next_sequence_);
  // The payload's checksum, taken here (from the copy, still in cache; measured faster
  // than checksumming while copying from a cold source), waits in the header's checksum
  // field until begin_commit stamps batch and flags and folds it into the record's
  // checksum: the commit reads 32 bytes per record, not the whole batch, and the persist
  // tile stages while the previous commit is in flight.
  // Ask for the whole payload's lines at once (up to 4 KiB): a source that is not in cache
  // then costs about one memory latency instead of one per few lines while the hardware
  // prefetcher ramps up.
  for (size_t line = 0; line < std::min<size_t>(payload.size(), 4096); line += 64)
    __builtin_prefetch(payload.data() + line);
  if (!payload.empty()) std::memcpy(at + sizeof header, payload.data(), payload.size());
  header.checksum = crc32c(std::span(at + sizeof header, payload.size()));
  std::memcpy(at, &header, sizeof header);
  buffer.records_bytes += record_bytes;
  buffer.record_count += 1;
  counters_.records_staged += 1;
  counters_.bytes_staged += record_bytes;
  return next_sequence_++;
}

// Where the next batch's records will start in their file, as far as is known before its
// commit: after the newest batch begun (at the next block boundary while one is in
// flight), or after the segment header of a file to come. Only a rotation that the
// batch's own size causes moves it (begin_commit then moves the bytes).
// Right after the newest batch begun, in its last block; but at the next block boundary
// while a batch is in flight (its last block must not be written twice at once), or when
// the records were staged for that place (a batch in flight then has ended since: the gap
// saves moving them).
uint64_t ShardLog::next_batch_file_offset() const {
  if (rotate_before_next_ || file_needs_header_) return header_slot_bytes_;
  bool staged_at_boundary = staging_.record_count > 0 && staging_.records_offset == 0;
  bool beside_in_flight = in_flight_count_ > 0 && (persister_ == nullptr || persister_->commits_in_flight_max() > 1);
  if (planned_file_end_ % block_bytes != 0 && (beside_in_flight || staged_at_boundary))
    return round_up_to_block(planned_file_end_);
  return planned_file_end_;
}

// True when the staged batch goes to a new segment file.
bool ShardLog::next_batch_rotates() const {
  if (rotate_before_next_) return true;
  if (file_needs_header_) return false;
  return next_batch_file_offset() + staging_.records_bytes > segment_bytes_usable_;
}

bool ShardLog::can_begin_commit() const {
  if (staging_.record_count == 0) return false;
  if (in_flight_count_ == 0) return true;
  return in_flight_count_ < commits_in_flight_limit && !next_batch_rotates();
}

Result<CommitPart> ShardLog::begin_commit(uint64_t batch) {
  assert(can_begin_commit() && batch > last_batch_);
  bool rotate = next_batch_rotates();
  assert(!rotate || in_flight_count_ == 0);
  if (rotate) {
    if (auto started = start_segment(staging_.first_sequence); !started) return started.error();
    rotated_since_open_ = true;
  } else if (file_needs_header_ && spare_available()) {
    // The current file is still empty (a fresh log, or one whose tear emptied it): a kept
    // file or the ready spare takes its place under the same name.
    Result<bool> took = take_spare(file_path_);
    if (!took) return took.error();
  } else if (file_needs_header_ && spare_.valid()) {
    counters_.segments_unprepared += 1;  // the empty file stays, appended to
  }
  uint64_t start = next_batch_file_offset();
  InFlight& slot = in_flight_[(in_flight_first_ + in_flight_count_) % commits_in_flight_limit];
  std::swap(staging_, slot.buffer);
  Buffer& buffer = slot.buffer;
  std::byte* bytes = buffer.bytes.get();
  if (start % block_bytes != buffer.records_offset) {
    // Staged for another place in the block (the batch itself made the file rotate).
    std::memmove(bytes + start % block_bytes, bytes + buffer.records_offset, buffer.records_bytes);
    buffer.records_offset = start % block_bytes;
    counters_.batches_moved += 1;
  }
  seal_records(buffer, batch);
  if (file_needs_header_) {
    assert(buffer.records_offset == header_slot_bytes_);
    write_segment_header(buffer, batch);
  } else if (buffer.records_offset > 0) {
    // Only with no batch in flight: the file's last block is durable, kept in tail_block_.
    assert(in_flight_count_ == 0 && start == file_bytes_);
    std::memcpy(bytes, tail_block_.get(), buffer.records_offset);
  }
  uint64_t end = buffer.records_offset + buffer.records_bytes;
  uint64_t padded_end = round_up_to_block(end);
  std::memset(bytes + end, 0, padded_end - end);
  counters_.padding_bytes_written += padded_end - end;
  uint64_t file_offset = start - buffer.records_offset;
  assert(file_offset % block_bytes == 0 && file_offset + padded_end <= options_.segment_bytes_max);
  slot.batch = batch;
  slot.file_end = start + buffer.records_bytes;
  in_flight_count_ += 1;
  planned_file_end_ = slot.file_end;
  // The segment header goes out with this batch; a batch begun beside it follows it.
  file_needs_header_ = false;
  // The next spare, now that this one is taken or this file has filled enough (kept
  // dropped files come first: a zeroed spare is written only when none is left).
  prepare_spare_when_due();
  return CommitPart{file_fd_.get(), file_path_, file_offset, bytes, padded_end};
}

void ShardLog::seal_records(Buffer& buffer, uint64_t batch) {
  std::byte* records = buffer.bytes.get() + buffer.records_offset;
  uint64_t offset = 0;
  for (uint64_t index = 0; index < buffer.record_count; ++index) {
    RecordHeader header;
    std::memcpy(&header, records + offset, sizeof header);
    assert(header.magic == record_magic && header.sequence == buffer.first_sequence + index);
    header.batch = batch;
    header.flags = uint16_t((index == 0 ? record_flag_first_in_batch : 0) |
                            (index + 1 == buffer.record_count ? record_flag_last_in_batch : 0));
    // stage() left the payload's CRC32C in the checksum field.
    header.checksum = record_checksum_from_payload_crc(header, header.checksum);
    std::memcpy(records + offset, &header, sizeof header);
    offset += sizeof header + header.payload_bytes;
  }
  assert(offset == buffer.records_bytes);
}

// Fills the slot before the records (the start of the file's first block) with this
// file's segment header record. It carries the batch and the first record's sequence, and
// no flags.
void ShardLog::write_segment_header(Buffer& buffer, uint64_t batch) {
  uint64_t payload_bytes = header_slot_bytes_ - sizeof(RecordHeader);
  std::span<std::byte> payload(buffer.bytes.get() + sizeof(RecordHeader), payload_bytes);
  encode_segment_header(identity_, payload);
  RecordHeader header = make_record_header(record_type_segment_header, payload_bytes, buffer.first_sequence);
  header.batch = batch;
  header.checksum = record_checksum(header, payload);
  std::memcpy(buffer.bytes.get(), &header, sizeof header);
}

void ShardLog::finish_commit() {
  assert(in_flight_count_ > 0);
  InFlight& slot = in_flight_[in_flight_first_];
  Buffer& buffer = slot.buffer;
  durable_sequence_ = buffer.first_sequence + buffer.record_count;
  file_bytes_ = slot.file_end;
  // The partial last block, for a later commit to write again in front of its records.
  uint64_t tail_bytes = file_bytes_ % block_bytes;
  const std::byte* end = buffer.bytes.get() + buffer.records_offset + buffer.records_bytes;
  std::memcpy(tail_block_.get(), end - tail_bytes, tail_bytes);
  last_batch_ = slot.batch;
  buffer.records_bytes = 0;
  buffer.record_count = 0;
  in_flight_first_ = (in_flight_first_ + 1) % commits_in_flight_limit;
  in_flight_count_ -= 1;
}

Result<void> ShardLog::drop_segments_before(uint64_t sequence) {
  assert(sequence <= durable_sequence_);
  size_t dropped = 0;
  // segments_[i] holds records [first_sequence, segments_[i + 1].first_sequence).
  while (dropped + 1 < segments_.size() && segments_[dropped + 1].first_sequence <= sequence) {
    const std::string& path = segments_[dropped].path;
    std::optional<Error> error;
    if (keep_dropped_file()) {
      std::string kept = join_path(directory_, segment_recycled_file_prefix + std::to_string(recycled_names_++));
      if (::rename(path.c_str(), kept.c_str()) == 0) {
        recycled_paths_.push_back(std::move(kept));
        counters_.segments_kept_for_reuse += 1;
      } else {
        error = errno_error(path, "cannot rename segment file to " + kept + " for reuse");
      }
    } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      error = errno_error(path, "cannot delete segment file");
    }
    if (error) {
      segments_.erase(segments_.begin(), segments_.begin() + ptrdiff_t(dropped));
      return *error;
    }
    dropped += 1;
  }
  if (dropped == 0) return {};
  segments_.erase(segments_.begin(), segments_.begin() + ptrdiff_t(dropped));
  counters_.segments_dropped += dropped;
  if (::fsync(directory_fd_.get()) != 0) return errno_error(directory_, "cannot fsync directory");
  return {};
}

// A dropped file is kept while fewer than recycled_segments_max are, and while the file
// system keeps at least twice a segment free besides (as for the spare): on a nearly full
// disk the space goes back.
bool ShardLog::keep_dropped_file() const {
  if (recycled_paths_.size() >= options_.recycled_segments_max) return false;
  struct statvfs space;
  if (::statvfs(directory_.c_str(), &space) != 0) return false;
  return uint64_t(space.f_bavail) * space.f_frsize >= 2 * segment_bytes_usable_;
}

std::vector<std::string> ShardLog::segment_paths() const {
  std::vector<std::string> paths;
  for (const Segment& segment : segments_) paths.push_back(segment.path);
  return paths;
}

}  // namespace keel::persist
