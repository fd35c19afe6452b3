#include "engine/persist/shard_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace keel::persist {

namespace {

std::string join_path(const std::string& directory, const std::string& name) {
  if (!directory.empty() && directory.back() == '/') return directory + name;
  return directory + "/" + name;
}

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
  return "";
}

}  // namespace

ShardLog::ShardLog(std::string directory, LogIdentity identity, LogOptions options)
    : directory_(std::move(directory)), identity_(std::move(identity)), options_(options) {
  header_slot_bytes_ = sizeof(RecordHeader) + segment_header_payload_bytes(identity_);
  // A batch goes to one file whole, after that file's segment header at worst.
  batch_bytes_max_ = std::min(options_.staged_bytes_max, options_.segment_bytes_max - header_slot_bytes_);
  // make_unique_for_overwrite leaves the pages untouched until records land in them.
  for (Buffer* buffer : {&staging_, &in_flight_}) {
    buffer->bytes = std::make_unique_for_overwrite<std::byte[]>(header_slot_bytes_ + batch_bytes_max_);
  }
}

ShardLog::~ShardLog() = default;

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
  last_batch_ = std::max(recovered.last_batch, recovered.torn ? recovered.torn->batch : 0);
  if (recovered.files.empty()) return start_segment(recovered.next_sequence);
  for (const std::string& path : recovered.files) {
    std::optional<uint64_t> first = parse_segment_file_name(base_name(path));
    if (!first) return make_error(path, "is not a segment file name");
    segments_.push_back({*first, path});
  }
  file_path_ = segments_.back().path;
  file_fd_.reset(::open(file_path_.c_str(), O_WRONLY | O_CLOEXEC));
  if (!file_fd_.valid()) return errno_error(file_path_, "cannot open for appending");
  struct stat info;
  if (::fstat(file_fd_.get(), &info) != 0) return errno_error(file_path_, "cannot stat");
  if (uint64_t(info.st_size) != recovered.tail_file_bytes) {
    return make_error(file_path_, "has " + std::to_string(info.st_size) + " bytes where recovery left " +
                                      std::to_string(recovered.tail_file_bytes) +
                                      " (cut the torn tail with truncate_torn_tail before opening)");
  }
  file_bytes_ = recovered.tail_file_bytes;
  file_needs_header_ = file_bytes_ == 0;
  if (file_needs_header_ && segments_.back().first_sequence != next_sequence_) {
    return make_error(file_path_, "is empty but named for record " +
                                      std::to_string(segments_.back().first_sequence) +
                                      ", and the log continues at record " + std::to_string(next_sequence_));
  }
  // A file that lost a tear may end inside a batch; appending after that would look like
  // damage to the next recovery, so the next batch starts a new file.
  rotate_before_next_ = recovered.torn.has_value() && !file_needs_header_;
  return {};
}

// Creates the segment file for records from `first_sequence` on and makes its name
// durable. It stays empty until a commit writes its segment header.
Result<void> ShardLog::start_segment(uint64_t first_sequence) {
  std::string path = join_path(directory_, segment_file_name(first_sequence));
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!file.valid()) return errno_error(path, "cannot create segment file");
  if (::fsync(directory_fd_.get()) != 0) return errno_error(directory_, "cannot fsync directory");
  file_fd_ = std::move(file);
  file_path_ = path;
  file_bytes_ = 0;
  file_needs_header_ = true;
  rotate_before_next_ = false;
  segments_.push_back({first_sequence, std::move(path)});
  counters_.segments_created += 1;
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
  if (buffer.record_count == 0) buffer.first_sequence = next_sequence_;
  std::byte* at = buffer.bytes.get() + header_slot_bytes_ + buffer.records_bytes;
  RecordHeader header = make_record_header(type, payload.size(), next_sequence_);
  std::memcpy(at, &header, sizeof header);
  if (!payload.empty()) std::memcpy(at + sizeof header, payload.data(), payload.size());
  buffer.records_bytes += record_bytes;
  buffer.record_count += 1;
  counters_.records_staged += 1;
  counters_.bytes_staged += record_bytes;
  return next_sequence_++;
}

Result<CommitPart> ShardLog::begin_commit(uint64_t batch) {
  assert(!committing_ && staging_.record_count > 0 && batch > last_batch_);
  bool rotate = rotate_before_next_ ||
                (!file_needs_header_ && file_bytes_ + staging_.records_bytes > options_.segment_bytes_max);
  if (rotate) {
    if (auto started = start_segment(staging_.first_sequence); !started) return started.error();
  }
  std::swap(staging_, in_flight_);
  seal_records(in_flight_, batch);
  const std::byte* data = in_flight_.bytes.get() + header_slot_bytes_;
  uint64_t bytes = in_flight_.records_bytes;
  if (file_needs_header_) {
    write_segment_header(in_flight_, batch);
    data -= header_slot_bytes_;
    bytes += header_slot_bytes_;
  }
  assert(file_bytes_ + bytes <= options_.segment_bytes_max);
  committing_ = true;
  committing_batch_ = batch;
  committing_file_end_ = file_bytes_ + bytes;
  return CommitPart{file_fd_.get(), file_path_, file_bytes_, data, bytes};
}

// Stamps the batch number, the first/last-in-batch flags and the checksum on every staged
// record; checks on the way that the buffer holds exactly what stage() put there.
void ShardLog::seal_records(Buffer& buffer, uint64_t batch) {
  std::byte* records = buffer.bytes.get() + header_slot_bytes_;
  uint64_t offset = 0;
  for (uint64_t index = 0; index < buffer.record_count; ++index) {
    RecordHeader header;
    std::memcpy(&header, records + offset, sizeof header);
    assert(header.magic == record_magic && header.sequence == buffer.first_sequence + index);
    header.batch = batch;
    header.flags = uint16_t((index == 0 ? record_flag_first_in_batch : 0) |
                            (index + 1 == buffer.record_count ? record_flag_last_in_batch : 0));
    std::span<const std::byte> payload(records + offset + sizeof header, header.payload_bytes);
    header.checksum = record_checksum(header, payload);
    std::memcpy(records + offset, &header, sizeof header);
    offset += sizeof header + header.payload_bytes;
  }
  assert(offset == buffer.records_bytes);
}

// Fills the slot before the records with this file's segment header record. It carries
// the batch and the first record's sequence, and no flags.
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
  assert(committing_);
  durable_sequence_ = in_flight_.first_sequence + in_flight_.record_count;
  file_bytes_ = committing_file_end_;
  file_needs_header_ = false;
  last_batch_ = committing_batch_;
  in_flight_.records_bytes = 0;
  in_flight_.record_count = 0;
  committing_ = false;
}

Result<void> ShardLog::drop_segments_before(uint64_t sequence) {
  assert(sequence <= durable_sequence_);
  size_t dropped = 0;
  // segments_[i] holds records [first_sequence, segments_[i + 1].first_sequence).
  while (dropped + 1 < segments_.size() && segments_[dropped + 1].first_sequence <= sequence) {
    const std::string& path = segments_[dropped].path;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      Error error = errno_error(path, "cannot delete segment file");
      segments_.erase(segments_.begin(), segments_.begin() + ptrdiff_t(dropped));
      return error;
    }
    dropped += 1;
  }
  if (dropped == 0) return {};
  segments_.erase(segments_.begin(), segments_.begin() + ptrdiff_t(dropped));
  counters_.segments_dropped += dropped;
  if (::fsync(directory_fd_.get()) != 0) return errno_error(directory_, "cannot fsync directory");
  return {};
}

std::vector<std::string> ShardLog::segment_paths() const {
  std::vector<std::string> paths;
  for (const Segment& segment : segments_) paths.push_back(segment.path);
  return paths;
}

}  // namespace keel::persist
