#include "engine/persist/recovery.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/persist/durable_io.h"

namespace keel::persist {

namespace {

// The last good record before the scan position.
struct Previous {
  bool exists = false;
  bool in_this_file = false;
  bool is_segment_header = false;
  bool last_in_batch = false;
  uint64_t batch = 0;
};

struct ScanState {
  uint64_t expected_sequence = 0;
  Previous previous;
  uint64_t last_batch = 0;
  uint32_t file_format_version = 0;  // of the file being scanned, from its segment header
};

// A record whose framing and checksum are right.
struct Frame {
  RecordHeader header;
  std::span<const std::byte> payload;
  uint64_t bytes;  // header and payload
};

std::string join_path(const std::string& directory, const std::string& name) {
  if (!directory.empty() && directory.back() == '/') return directory + name;
  return directory + "/" + name;
}

// Checks that a whole, checksummed record starts at `offset`: "" and *frame set if so,
// otherwise the reason it is not.
std::string read_frame(std::span<const std::byte> file, uint64_t offset, Frame* frame) {
  uint64_t left = file.size() - offset;
  if (left < sizeof(RecordHeader)) {
    return "cut short: " + std::to_string(left) + " bytes of a 32-byte record header";
  }
  std::memcpy(&frame->header, file.data() + offset, sizeof(RecordHeader));
  const RecordHeader& header = frame->header;
  if (header.magic != record_magic) return "wrong magic";
  if (header.payload_bytes > record_payload_bytes_max) {
    return "payload length " + std::to_string(header.payload_bytes) + " out of bounds";
  }
  if (header.payload_bytes > left - sizeof(RecordHeader)) {
    return "cut short: payload runs " + std::to_string(header.payload_bytes - (left - sizeof(RecordHeader))) +
           " bytes past the end of the file";
  }
  frame->payload = file.subspan(offset + sizeof(RecordHeader), header.payload_bytes);
  frame->bytes = sizeof(RecordHeader) + header.payload_bytes;
  if (record_checksum(header, frame->payload) != header.checksum) return "checksum mismatch";
  return "";
}

// Checks a framed record against what must come at this place: "" if it fits.
std::string check_place(const Frame& frame, uint64_t offset, const ScanState& state) {
  const RecordHeader& header = frame.header;
  const Previous& previous = state.previous;
  bool is_segment_header = header.type == record_type_segment_header;
  if (offset == 0 && !is_segment_header)
    return "first record is type " + std::to_string(header.type) + ", not a segment header";
  if (offset > 0 && header.type < record_type_first_opaque)
    return "record type " + std::to_string(header.type) + " inside the file";
  if ((header.flags & ~record_flags_known) != 0 || (is_segment_header && header.flags != 0)) {
    return "unknown flags " + std::to_string(header.flags);
  }
  if (header.sequence != state.expected_sequence) {
    return "sequence " + std::to_string(header.sequence) + " where " +
           std::to_string(state.expected_sequence) + " was expected";
  }
  bool continues_batch = previous.in_this_file && !previous.last_in_batch;
  if (continues_batch && header.batch != previous.batch) {
    return "batch " + std::to_string(header.batch) + " inside batch " + std::to_string(previous.batch);
  }
  if (!continues_batch && previous.exists && header.batch <= previous.batch) {
    return "batch " + std::to_string(header.batch) + " after batch " + std::to_string(previous.batch);
  }
  if (header.batch == 0) return "batch 0";
  bool starts_batch = previous.is_segment_header || !continues_batch;
  if (!is_segment_header && starts_batch != ((header.flags & record_flag_first_in_batch) != 0)) {
    return "first-in-batch flag does not match its place";
  }
  return "";
}

// Good records after a bad one: whether any exist and which batches they belong to.
struct LaterRecords {
  bool found = false;
  uint64_t batch_min = 0;
  uint64_t batch_max = 0;
  bool first_found_starts_batch = false;  // the nearest one is flagged first-in-batch
  // Distinct batches among them, counted up to commits_in_flight_limit + 1 (enough to
  // judge; the list stays small).
  std::vector<uint64_t> batches;
  void count_batch(uint64_t batch) {
    if (batches.size() > commits_in_flight_limit) return;
    if (std::find(batches.begin(), batches.end(), batch) == batches.end()) batches.push_back(batch);
  }
};

// Searches every byte from `from` on for the magic and keeps the records that check out
// and could have been written after the bad one (sequence and batch not older: stale
// blocks of deleted or cut files may hold old records). After a good record the search
// resumes at its end. Cost: one pass over the bytes, plus a checksum per magic found.
LaterRecords find_later_records(std::span<const std::byte> file, uint64_t from, uint64_t sequence_min,
                                uint64_t batch_min) {
  LaterRecords later;
  const auto first_magic_byte = std::byte(record_magic & 0xFF);
  uint64_t offset = from;
  while (offset + sizeof(RecordHeader) <= file.size()) {
    const void* hit = std::memchr(file.data() + offset, int(first_magic_byte), file.size() - offset);
    if (hit == nullptr) break;
    offset = uint64_t(static_cast<const std::byte*>(hit) - file.data());
    Frame frame;
    if (offset + sizeof(RecordHeader) > file.size() || !read_frame(file, offset, &frame).empty() ||
        frame.header.sequence < sequence_min || frame.header.batch < batch_min) {
      offset += 1;
      continue;
    }
    if (!later.found) {
      later.found = true;
      later.batch_min = later.batch_max = frame.header.batch;
      later.first_found_starts_batch = (frame.header.flags & record_flag_first_in_batch) != 0;
    }
    later.batch_min = std::min(later.batch_min, frame.header.batch);
    later.batch_max = std::max(later.batch_max, frame.header.batch);
    later.count_batch(frame.header.batch);
    offset += frame.bytes;
  }
  return later;
}

// "record 17 (batch 5)", "record 17 (of a batch after 5)", "the segment header (record
// 17, of a batch after 5)".
std::string describe_bad_record(uint64_t offset, const ScanState& state, bool batch_exact) {
  const Previous& previous = state.previous;
  std::string sequence = std::to_string(state.expected_sequence);
  std::string batch = batch_exact       ? "batch " + std::to_string(previous.batch)
                      : previous.exists ? "of a batch after " + std::to_string(previous.batch)
                                        : "";
  if (offset == 0)
    return "the segment header (record " + sequence + (batch.empty() ? "" : ", " + batch) + ")";
  return "record " + sequence + (batch.empty() ? "" : " (" + batch + ")");
}

Error damage_error(const std::string& path, uint64_t offset, const ScanState& state, bool batch_exact,
                   const std::string& reason, const std::string& proof) {
  return make_error(path, "offset " + std::to_string(offset) + ": " +
                              describe_bad_record(offset, state, batch_exact) + " is damaged (" + reason +
                              ") and " + proof);
}

// The first bad record of the last file, at `offset`: a torn tail (recorded in *log) or
// damage (the Error).
Result<void> judge_bad_tail(const std::string& path, std::span<const std::byte> file, uint64_t offset,
                            const std::string& reason, const ScanState& state, RecoveredLog* log) {
  const Previous& previous = state.previous;
  // The bad bytes continue the previous record's batch exactly when that record is in this
  // file and does not end its batch; otherwise they start some later batch.
  bool batch_exact = previous.in_this_file && !previous.last_in_batch;
  uint64_t batch_floor = batch_exact ? previous.batch : previous.exists ? previous.batch + 1 : 1;
  LaterRecords later = find_later_records(file, offset + 1, state.expected_sequence, batch_floor);
  // The bad bytes' batch B completed if a good record of batch B + commits_in_flight_limit
  // or later follows (that batch was submitted only once B was durable everywhere); the
  // batches in between may have been in flight beside B, and landed while B tore.
  //  - B known (it continues the previous record's batch): look for that batch.
  //  - B unknown (it starts at the bad bytes): each distinct batch found is B or later,
  //    and later than B if the nearest found record starts its batch (B's first record is
  //    the bad one); so enough distinct batches prove it.
  // Files before version 3 were written with one commit in flight at a time.
  const uint64_t limit = state.file_format_version >= log_format_version_first_with_gaps ? commits_in_flight_limit : 1;
  size_t distinct = later.batches.size();
  bool later_batch = later.found && (batch_exact ? later.batch_max >= previous.batch + limit
                                                 : (offset > 0 && later.first_found_starts_batch ? distinct >= limit
                                                                                                  : distinct > limit));
  if (later_batch) {
    return damage_error(path, offset, state, batch_exact, reason, "good records of a later batch follow it");
  }
  TornTail torn;
  torn.file = path;
  // A segment header with nothing after it goes too: the file is then empty and the next
  // batch writes a fresh header.
  torn.offset = previous.in_this_file && previous.is_segment_header ? 0 : offset;
  torn.bytes_cut = file.size() - torn.offset;
  torn.batch = batch_exact ? previous.batch : later.found ? later.batch_max : 0;
  if (later.found) log->batch_seen_max = std::max(log->batch_seen_max, later.batch_max);
  log->torn = torn;
  log->tail_file_bytes = torn.offset;
  return {};
}

// Checks a good segment header against the identity the caller expects; sets the file's
// format version in *format_version.
Result<void> check_segment_header(const std::string& path, const Frame& frame, const LogIdentity& expected,
                                  uint32_t* format_version) {
  std::optional<SegmentHeaderFields> fields = decode_segment_header(frame.payload);
  if (!fields) {
    return make_error(path, "offset 0: segment header payload of " + std::to_string(frame.payload.size()) +
                                " bytes is malformed");
  }
  if (fields->format_version < log_format_version_oldest_readable ||
      fields->format_version > log_format_version) {
    return make_error(path, "was written by format version " + std::to_string(fields->format_version) +
                                ", this keel reads " + std::to_string(log_format_version_oldest_readable) +
                                " to " + std::to_string(log_format_version));
  }
  *format_version = fields->format_version;
  const LogIdentity& found = fields->identity;
  if (found.chain != expected.chain) {
    return make_error(path, "chain differs: file belongs to chain '" + found.chain + "', config says '" +
                                expected.chain + "'");
  }
  if (found.shard_count != expected.shard_count) {
    return make_error(path, "chain layout differs: file has " + std::to_string(found.shard_count) +
                                " shards, config says " + std::to_string(expected.shard_count));
  }
  if (found.shard != expected.shard) {
    return make_error(path, "shard differs: file belongs to shard " + std::to_string(found.shard) +
                                ", this log is shard " + std::to_string(expected.shard));
  }
  return {};
}

// Marks the end of a good record in the scan state.
void advance(ScanState& state, const RecordHeader& header) {
  bool is_segment_header = header.type == record_type_segment_header;
  state.previous =
      Previous{true, true, is_segment_header, (header.flags & record_flag_last_in_batch) != 0, header.batch};
  if (!is_segment_header) {
    state.expected_sequence += 1;
    state.last_batch = std::max(state.last_batch, header.batch);
  }
}

// The last file ended cleanly at `end` (followed up to `file_bytes` by the padding of
// aligned writes, and in a recycled file by its old bytes); if inside a batch, that is a tear of zero bytes (or of the
// lone segment header), and the cut takes the zeros too.
void judge_clean_end(const std::string& path, uint64_t end, uint64_t file_bytes, const ScanState& state,
                     RecoveredLog* log) {
  log->tail_file_bytes = end;
  log->tail_unused_bytes = file_bytes - end;
  const Previous& previous = state.previous;
  if (!previous.in_this_file || previous.last_in_batch) return;
  TornTail torn{path, previous.is_segment_header ? 0 : end, 0, previous.batch};
  torn.bytes_cut = file_bytes - torn.offset;
  log->torn = torn;
  log->tail_file_bytes = torn.offset;
  log->tail_unused_bytes = 0;
}

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte byte) { return byte == std::byte{0}; });
}

// True when the file's records end cleanly at `offset` (> 0), where no good record of the
// log's continuation starts: zeros from there to the end of the file (the padding after
// the last aligned write), or zeros to the end of the block and, after them, the old bytes
// of a recycled segment file, which hold no good record at or past `expected_sequence`.
uint64_t block_end_after(uint64_t offset, uint64_t file_bytes) {
  return std::min<uint64_t>(file_bytes, (offset + log_write_alignment - 1) / log_write_alignment * log_write_alignment);
}

bool records_end_at(std::span<const std::byte> file, uint64_t offset, uint64_t expected_sequence) {
  if (all_zero(file.subspan(offset))) return true;
  uint64_t block_end = block_end_after(offset, file.size());
  if (!all_zero(file.subspan(offset, block_end - offset))) return false;
  return !find_later_records(file, offset, expected_sequence, 0).found;
}

// Format version 3 (log_format.h): where the next batch starts after a gap, or 0. At
// `offset` comes no good record; the previous record ended its batch; zeros run to the end
// of the block, and at that block boundary starts a good record that continues the log
// exactly (its sequence, a later batch, flagged first-in-batch).
uint64_t next_batch_after_gap(std::span<const std::byte> file, uint64_t offset, const ScanState& state) {
  if (state.file_format_version < log_format_version_first_with_gaps) return 0;
  if (!state.previous.in_this_file || !state.previous.last_in_batch || state.previous.is_segment_header) return 0;
  uint64_t block_end = block_end_after(offset, file.size());
  if (block_end == offset || block_end >= file.size()) return 0;
  if (!all_zero(file.subspan(offset, block_end - offset))) return 0;
  Frame frame;
  if (!read_frame(file, block_end, &frame).empty() || !check_place(frame, block_end, state).empty()) return 0;
  return block_end;
}

Result<void> scan_file(const std::string& path, std::span<const std::byte> file, bool is_last,
                       const LogIdentity& expected, ScanState& state,
                       const std::function<Result<void>(const LogRecordView&)>& on_record,
                       RecoveredLog* log) {
  state.previous.in_this_file = false;
  // Until the segment header says otherwise (it may be the bad record): this keel's own.
  state.file_format_version = log_format_version;
  bool header_read = false;
  if (file.empty() && !is_last) return make_error(path, "is empty but later segment files follow it");
  uint64_t offset = 0;
  while (offset < file.size()) {
    Frame frame;
    std::string reason = read_frame(file, offset, &frame);
    if (reason.empty()) reason = check_place(frame, offset, state);
    if (!reason.empty() && offset > 0) {
      if (uint64_t next = next_batch_after_gap(file, offset, state); next != 0) {
        offset = next;
        continue;
      }
    }
    // Zeros from here on are the padding after the last write (see log_format.h), perhaps
    // followed by a recycled file's old bytes: the file's records end here. A record never
    // starts with a zero byte (the magic).
    if (!reason.empty() && offset > 0 && records_end_at(file, offset, state.expected_sequence)) break;
    if (!reason.empty()) {
      if (is_last) {
        log->tail_format_version = header_read ? state.file_format_version : 0;
        return judge_bad_tail(path, file, offset, reason, state, log);
      }
      bool batch_exact = state.previous.in_this_file && !state.previous.last_in_batch;
      return damage_error(path, offset, state, batch_exact, reason, "later segment files follow it");
    }
    if (frame.header.type == record_type_segment_header) {
      if (auto identity = check_segment_header(path, frame, expected, &state.file_format_version); !identity)
        return identity;
      header_read = true;
    } else {
      const RecordHeader& header = frame.header;
      LogRecordView view{header.sequence, header.batch, header.type, frame.payload, path, offset};
      if (auto taken = on_record(view); !taken) return taken;
    }
    advance(state, frame.header);
    offset += frame.bytes;
  }
  if (is_last) {
    judge_clean_end(path, offset, file.size(), state, log);
    log->tail_format_version = header_read ? state.file_format_version : 0;
  }
  return {};
}

struct SegmentName {
  uint64_t first_sequence;
  std::string name;
};

Result<std::vector<SegmentName>> list_segments(const std::string& directory) {
  Result<std::vector<std::string>> names = list_directory(directory);
  if (!names) return names.error();
  std::vector<SegmentName> segments;
  for (const std::string& name : *names) {
    if (std::optional<uint64_t> first = parse_segment_file_name(name)) segments.push_back({*first, name});
  }
  std::sort(segments.begin(), segments.end(),
            [](const SegmentName& a, const SegmentName& b) { return a.first_sequence < b.first_sequence; });
  return segments;
}

}  // namespace

Result<RecoveredLog> scan_log(const std::string& directory, const LogIdentity& expected,
                              const std::function<Result<void>(const LogRecordView&)>& on_record) {
  if (std::string problem = identity_problem(expected); !problem.empty()) {
    return make_error(directory, "log identity: " + problem);
  }
  Result<std::vector<SegmentName>> segments = list_segments(directory);
  if (!segments) return segments.error();
  RecoveredLog log;
  if (segments->empty()) return log;
  ScanState state;
  state.expected_sequence = segments->front().first_sequence;
  std::vector<std::byte> file;
  for (size_t index = 0; index < segments->size(); ++index) {
    const SegmentName& segment = (*segments)[index];
    std::string path = join_path(directory, segment.name);
    if (segment.first_sequence != state.expected_sequence) {
      bool gap = segment.first_sequence > state.expected_sequence;
      return make_error(path, "starts at record " + std::to_string(segment.first_sequence) +
                                  " but the files before it end before record " +
                                  std::to_string(state.expected_sequence) +
                                  (gap ? ": records are missing" : ": records repeat"));
    }
    if (auto read = read_whole_file(path, segment_bytes_limit, file); !read) return read.error();
    log.files.push_back(path);
    bool is_last = index + 1 == segments->size();
    if (auto scanned = scan_file(path, file, is_last, expected, state, on_record, &log); !scanned) {
      return scanned.error();
    }
  }
  log.next_sequence = state.expected_sequence;
  log.last_batch = state.last_batch;
  log.batch_seen_max = std::max({log.batch_seen_max, state.last_batch, log.torn ? log.torn->batch : 0});
  return log;
}

Result<void> truncate_torn_tail(const RecoveredLog& log) {
  if (!log.torn) return {};
  const TornTail& torn = *log.torn;
  UniqueFd file(::open(torn.file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!file.valid()) return errno_error(torn.file, "cannot open to cut the torn tail");
  if (::ftruncate(file.get(), off_t(torn.offset)) != 0) {
    return errno_error(torn.file, "cannot cut the torn tail at offset " + std::to_string(torn.offset));
  }
  if (::fdatasync(file.get()) != 0) {
    return errno_error(torn.file,
                       "fdatasync after cutting the torn tail at offset " + std::to_string(torn.offset));
  }
  return {};
}

Result<void> check_torn_batches(std::span<const RecoveredLog* const> logs,
                                std::span<const std::string> names) {
  assert(logs.size() == names.size());
  uint64_t newest = 0;
  size_t newest_index = 0;
  for (size_t index = 0; index < logs.size(); ++index) {
    if (logs[index]->last_batch > newest) {
      newest = logs[index]->last_batch;
      newest_index = index;
    }
  }
  for (size_t index = 0; index < logs.size(); ++index) {
    const std::optional<TornTail>& torn = logs[index]->torn;
    // The newest batch and up to commits_in_flight_limit - 1 before it may have been in
    // flight together: any of them may be torn while a later one landed.
    if (!torn || torn->batch == 0 || torn->batch + commits_in_flight_limit > newest) continue;
    return make_error(names[index], torn->file + ": offset " + std::to_string(torn->offset) + ": batch " +
                                        std::to_string(torn->batch) + " looks torn, but " +
                                        names[newest_index] + " holds batch " + std::to_string(newest) +
                                        ", so batch " + std::to_string(torn->batch) +
                                        " was acknowledged: this is damage, not a torn write");
  }
  return {};
}

}  // namespace keel::persist
