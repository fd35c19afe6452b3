// engine/persist/shard_log.h: one shard's durable log. Records are staged in memory and
// written and fdatasynced by a Persister's group commit (persister.h), many logs per commit.
//
//   Result<RecoveredLog> recovered = scan_log(directory, identity, replay);   // recovery.h
//   truncate_torn_tail(*recovered);
//   std::unique_ptr<ShardLog> log = ShardLog::open(directory, identity, {}, *recovered).value();
//   persister->add_log(log.get());
//   if (log->fits(block.size())) {
//     uint64_t sequence = log->stage(record_type_block, block).value();
//     ... persister->submit(); ... persister->poll(); ...
//     if (log->durable_sequence() > sequence) release the receipts of that block;
//   }                                     // else: backpressure, stage again after a commit
//
// Buffered three ways: stage() copies into the staging buffer; a commit takes that buffer
// as a whole (one write per log) and stage() continues into a free one, which becomes the
// next batch. Up to commits_in_flight_limit (2) batches of a log are in flight at once
// (persister.h), finishing in order; a buffer in flight is not touched until its commit
// ends. All three are allocated at open (staged_bytes_max each, untouched pages cost
// nothing), so staging allocates nothing. stage() takes each payload's CRC32C while
// copying it, so a commit only stamps batch, flags and checksum into the 32-byte headers.
//
// Writes are whole aligned blocks (log_write_alignment) from aligned buffers, so that the
// files can be opened with O_DIRECT (LogOptions::direct_io): no copy into the page cache,
// which for 1 MB batches costs as much CPU as the device takes to write them. A batch is
// staged at the same offset within a block as it will have in its file; the commit puts
// the file's last partial block (kept from the previous commit) or the segment header in
// front of it and zeros behind it to the block's end. So the file's last block is written
// again by the next commit, with the same bytes up to the old end, as page-cache writeback
// would write it; and a file ends in up to a block of zeros, which recovery reads as the
// clean end of its records (recovery.h). Except beside a commit in flight (with a
// Persister that allows two): a batch staged or begun while this log has one in flight
// starts at the next block boundary, leaving the zeros after the previous batch as a gap
// (format version 3, log_format.h), since two writes of one block in flight could land in
// either order. A log whose last file predates version 3 starts a new file first.
//
// Segment files rotate between batches, never inside one, and never while a batch of this
// log is in flight (recovery reads a tear in the last file only): when the next batch
// would take the current file past segment_bytes_max, the commit creates the next file (named after
// the batch's first sequence), fsyncs the directory, and writes the new segment header as
// the first record of that batch. A batch is therefore capped at segment_bytes_max minus
// the segment header, and a file never passes segment_bytes_max.
//
// Preallocated segments (LogOptions::preallocate_segments): a background thread writes the
// next segment file full of zeros and fdatasyncs it while records go to the current one
// (the spare, named segment_spare_file_name until taken). A new segment, and the empty
// first file of a fresh log, is the spare renamed into place when it is ready, so commits
// overwrite blocks that are allocated and written: fdatasync then flushes data only, with
// no file size or extent to journal (measured on ext4 here: 224 -> 104 us per 64 KiB
// write+fdatasync). Recovery needs nothing new: the zeros after the records read as the
// padding of the last write. A spare that is not ready yet is not waited for: the segment
// is created empty and appended to, as without the option, and counted; a spare that
// could not be written (a full disk; or less free space than twice its size, since a spare
// must not take the space the log's own commits need) is counted too, its reason kept for the caller to
// report, and the next rotation tries again. The price is one more write of every segment.
// The first spare is begun only once the file the log opened with holds
// LogOptions::spare_at_fill_percent of a segment (and no kept dropped file waits to be
// reused): a quiet log, which would not fill its file for minutes, writes no zeros at
// start-up that every commit's fdatasync would queue behind, and its first file is simply
// appended to. Once a log has rotated it is one that fills files, and each next spare is
// begun as soon as the one before is taken, a whole segment's time ahead. 0 begins it at once, at
// open and whenever a segment is taken (the empty first file of a fresh log then becomes
// the spare when that is ready before the first commit). An appended file is kept to its
// end: leaving it early for the spare would make one life of the engine write two files,
// and snapshots drop the first behind it while the engine runs.
//
// Recycled segments (LogOptions::recycled_segments_max): a segment file that
// drop_segments_before lets go is renamed (segment.recycled.<n>) and kept, up to that many,
// instead of deleted; a new segment takes a kept file before the zeroed spare, so a log
// whose snapshots drop files as fast as it fills them overwrites its old files and writes
// no zeros at all (the spare's price is gone). The file's old bytes stay after the new
// records; recovery reads them as unused (recovery.h): they hold records of this log's
// past only, all below any sequence the log will write again. Kept files are deleted
// rather than kept while the file system has less free space than twice a segment, and
// open() deletes any left by an earlier run (the old bytes of a log that has since been
// emptied could hold sequences the new log will write).
//
// A ShardLog and its Persister are used from one thread. After a failed commit the log
// stays as it was (its records not durable) and takes no further commit: the process
// restarts and recovers.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/persist/commit_step.h"
#include "engine/persist/durable_io.h"
#include "engine/persist/log_format.h"
#include "engine/persist/recovery.h"
#include "error/result.h"

namespace keel::persist {

inline constexpr uint64_t staged_bytes_min = 4096;

struct LogOptions {
  uint64_t segment_bytes_max = 64ULL << 20;  // in [segment_bytes_min, segment_bytes_limit]
  uint64_t staged_bytes_max = 64ULL << 20;   // per buffer; at least staged_bytes_min
  // Writes past the page cache (O_DIRECT) where the file system takes it; where it does not
  // (tmpfs), or when false, the same aligned writes go through the page cache.
  bool direct_io = true;
  // Write each segment file full of zeros ahead of use, in the background (see above).
  bool preallocate_segments = false;
  // With preallocate_segments: the first spare is begun once the file the log opened with
  // holds this percent of segment_bytes_max, later ones at once (0: always at once; see
  // above). Below 100.
  uint32_t spare_at_fill_percent = 0;
  // With preallocate_segments: the spares' zeros go out at most this fast, all the
  // process's logs together (write_zero_file, durable_io.h: zeros written faster stall the
  // commits' fdatasyncs behind them); 0: as fast as the device takes them.
  uint64_t spare_zero_bytes_per_second_max = 0;
  // Keep up to this many dropped segment files to reuse as new segments (see above); 0
  // deletes them.
  uint32_t recycled_segments_max = 0;
  // Back the staging and in-flight buffers with transparent huge pages
  // (allocate_io_buffer, durable_io.h): large O_DIRECT writes pin and split into requests
  // far cheaper. Each buffer touched costs memory 2 MiB at a time.
  bool huge_page_buffers = true;
};

// The name of the spare segment file being prepared; recovery ignores it (not a segment
// file name) and open() removes one left over.
inline constexpr const char* segment_spare_file_name = "segment.spare";
// Dropped segment files kept for reuse are named this plus a number; recovery ignores them
// and open() removes them.
inline constexpr const char* segment_recycled_file_prefix = "segment.recycled.";

// Counters for the monitor and benchmarks; only grow.
struct ShardLogCounters {
  uint64_t records_staged = 0;
  uint64_t bytes_staged = 0;    // record headers included
  uint64_t stage_refusals = 0;  // stage() calls turned away because staging was full
  uint64_t segments_created = 0;
  uint64_t segments_dropped = 0;
  uint64_t batches_moved = 0;  // staged at another place in the block than their file needed
  uint64_t padding_bytes_written = 0;  // zeros after batches, to the end of their last block
  uint64_t segments_preallocated = 0;   // segments that were a ready spare, written full of zeros
  uint64_t segments_unprepared = 0;     // preallocation wanted, but the spare was not ready yet
  uint64_t preallocation_failures = 0;  // spares that could not be written (preallocation_error())
  uint64_t segments_recycled = 0;       // new segments that were a dropped file, kept and renamed
  uint64_t segments_kept_for_reuse = 0;  // dropped files renamed and kept instead of deleted
};

class Persister;

class ShardLog {
 public:
  // Opens the log in `directory` for appending, after recovery: `recovered` is what
  // scan_log found there, with any torn tail already cut (truncate_torn_tail). An empty log
  // gets its directory and first segment file created. After a torn tail the next batch
  // starts a new segment file. Errors: impossible identity or options, a tail file whose
  // length is not what recovery left, and file-system failures, each naming the path.
  static Result<std::unique_ptr<ShardLog>> open(std::string directory, LogIdentity identity,
                                                LogOptions options, const RecoveredLog& recovered);
  ShardLog(const ShardLog&) = delete;
  ShardLog& operator=(const ShardLog&) = delete;
  ~ShardLog();

  // Copies a record (type >= record_type_first_opaque) into the staging buffer for the
  // next group commit and returns its sequence. An Error when staging it would pass the
  // batch cap (backpressure: fits() is false; stage it again after a commit), or when the
  // record is bigger than a batch can ever be.
  Result<uint64_t> stage(uint16_t type, std::span<const std::byte> payload);

  // True when a record with this payload size can be staged now.
  bool fits(size_t payload_bytes) const {
    return sizeof(RecordHeader) + payload_bytes <= batch_bytes_max_ - staging_.records_bytes;
  }

  // The sequence the next staged record gets.
  uint64_t next_sequence() const { return next_sequence_; }
  // Batches of this log in flight (begun, not yet finished).
  size_t commits_in_flight() const { return in_flight_count_; }
  // The oldest of them (the one finish_commit ends next); 0 when none is in flight.
  uint64_t oldest_batch_in_flight() const {
    return in_flight_count_ == 0 ? 0 : in_flight_[in_flight_first_].batch;
  }
  // True when the staged records can go into a commit now: fewer than
  // commits_in_flight_limit batches in flight, and none at all when the batch needs a new
  // segment file. (The Persister leaves the log out of a batch otherwise.)
  bool can_begin_commit() const;
  // Records [0, durable_sequence) are durable (written and fdatasynced).
  uint64_t durable_sequence() const { return durable_sequence_; }
  // Bytes waiting for the next commit (record headers included).
  size_t staged_bytes() const { return staging_.records_bytes; }
  // The largest batch of a record in or torn from this log (recovered or committed since).
  uint64_t last_batch() const { return last_batch_; }
  // Largest bytes one batch of this log can hold (staged_bytes_max, or less when the
  // segment size leaves less room).
  uint64_t batch_bytes_max() const { return batch_bytes_max_; }
  // True when the current segment file is written with O_DIRECT.
  bool direct_io() const { return direct_io_; }
  // With preallocate_segments: true once the spare segment is written and ready to take.
  // (Benchmarks wait for it before measuring, as a running engine has one ready.)
  bool spare_ready() const;
  // Dropped segment files kept for reuse right now.
  size_t recycled_segments() const { return recycled_paths_.size(); }
  // Segment files of the log (current one included).
  size_t segment_count() const { return segments_.size(); }
  // Why the last spare could not be written ("" if none failed).
  const std::string& preallocation_error() const { return preallocation_error_; }

  // Deletes (or keeps for reuse: recycled_segments_max) the whole segment files all of
  // whose records are below `sequence`, oldest first, then fsyncs the directory; never the
  // current file. For use after a snapshot: `sequence` must not pass durable_sequence().
  Result<void> drop_segments_before(uint64_t sequence);

  const std::string& directory() const { return directory_; }
  const LogIdentity& identity() const { return identity_; }
  const ShardLogCounters& counters() const { return counters_; }
  // Paths of the segment files, oldest first.
  std::vector<std::string> segment_paths() const;

 private:
  friend class Persister;

  // A batch's bytes, aligned to log_write_alignment: the records back to back from
  // records_offset (below one block: the batch's offset within its first block in the
  // file), after them room to pad the last block. The bytes before records_offset take
  // the segment header or the file's last partial block at commit.
  struct Buffer {
    IoBuffer bytes;
    uint64_t records_offset = 0;
    uint64_t records_bytes = 0;
    uint64_t record_count = 0;
    uint64_t first_sequence = 0;
  };
  struct Segment {
    uint64_t first_sequence;
    std::string path;
  };

  ShardLog(std::string directory, LogIdentity identity, LogOptions options);
  Result<void> open_files(const RecoveredLog& recovered);
  Result<void> start_segment(uint64_t first_sequence);
  // Renames a kept dropped file, or else the ready spare, to `path` (replacing the empty
  // file there, if any) and opens it; false when there is neither (counted). Starts
  // preparing the next spare when no kept file is left.
  Result<bool> take_spare(const std::string& path);
  bool spare_available() const { return !recycled_paths_.empty() || spare_ready(); }
  Result<void> adopt_prepared_file(const std::string& from, const std::string& path);
  bool keep_dropped_file() const;
  Result<void> remove_recycled_leftovers();
  void prepare_spare();
  // Begins the spare when none is written or waiting, no kept file waits, and the log has
  // rotated since it opened or its current file is spare_at_fill_percent full.
  void prepare_spare_when_due();
  Result<void> use_direct_io(int fd, const std::string& path);
  Result<void> read_tail_block();
  uint64_t next_batch_file_offset() const;
  bool next_batch_rotates() const;

  // Persister side. begin_commit hands the staged records to batch `batch` (only when
  // can_begin_commit()): rotates the segment if needed, stamps batch, flags and checksums,
  // and returns the bytes to write. finish_commit marks the oldest batch in flight durable.
  Result<CommitPart> begin_commit(uint64_t batch);
  void finish_commit();
  void seal_records(Buffer& buffer, uint64_t batch);
  void write_segment_header(Buffer& buffer, uint64_t batch);

  std::string directory_;
  LogIdentity identity_;
  LogOptions options_;
  uint64_t header_slot_bytes_ = 0;  // the segment header record of this identity
  uint64_t batch_bytes_max_ = 0;
  // segment_bytes_max rounded down to whole blocks: the padded end of the last write stays
  // within segment_bytes_max.
  uint64_t segment_bytes_usable_ = 0;

  UniqueFd directory_fd_;
  UniqueFd file_fd_;
  std::string file_path_;
  uint64_t file_bytes_ = 0;          // durable length of the current file
  bool file_needs_header_ = false;   // the current file is empty
  bool rotate_before_next_ = false;  // recovery cut a tear from the current file
  // The log has rotated since it opened: it fills files, so each spare is begun as soon as
  // the one before it is taken (the fill mark holds for the file it opened with only).
  bool rotated_since_open_ = false;
  bool direct_io_ = false;           // file_fd_ has O_DIRECT
  // The current file's bytes from its last block boundary to file_bytes_: written again,
  // in front of the next batch, by the next commit's first block.
  std::unique_ptr<std::byte[]> tail_block_;
  std::vector<Segment> segments_;
  std::string spare_path_;
  std::future<Result<void>> spare_;  // valid while a spare is being written or waits
  // Set when the log closes, so that spare_'s destructor (which waits for std::async's
  // thread) waits for a chunk of zeros, not a whole paced spare. Shared with that thread.
  std::shared_ptr<std::atomic<bool>> spare_cancel_ = std::make_shared<std::atomic<bool>>(false);
  std::deque<std::string> recycled_paths_;  // dropped files kept for reuse, oldest first
  uint64_t recycled_names_ = 0;             // the number the next kept file is named with
  std::string preallocation_error_;

  // A batch in flight: its bytes, number, and where its records end in the file.
  struct InFlight {
    Buffer buffer;
    uint64_t batch = 0;
    uint64_t file_end = 0;
  };
  Buffer staging_;
  std::array<InFlight, commits_in_flight_limit> in_flight_;  // a ring, oldest at in_flight_first_
  size_t in_flight_first_ = 0;
  size_t in_flight_count_ = 0;
  // Where the newest batch begun (in flight or durable) ends in the current file.
  uint64_t planned_file_end_ = 0;
  const Persister* persister_ = nullptr;

  uint64_t next_sequence_ = 0;
  uint64_t durable_sequence_ = 0;
  uint64_t last_batch_ = 0;
  ShardLogCounters counters_;
};

}  // namespace keel::persist
