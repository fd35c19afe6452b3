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
// Double-buffered: stage() copies into the staging buffer; a commit takes that buffer as a
// whole (one write per log) and stage() continues into the other one, which becomes the
// next batch. The buffer in flight is not touched until its commit ends. Both buffers are
// allocated at open (staged_bytes_max each, untouched pages cost nothing), so staging
// allocates nothing.
//
// Segment files rotate between batches, never inside one: when the next batch would take
// the current file past segment_bytes_max, the commit creates the next file (named after
// the batch's first sequence), fsyncs the directory, and writes the new segment header as
// the first record of that batch. A batch is therefore capped at segment_bytes_max minus
// the segment header, and a file never passes segment_bytes_max.
//
// A ShardLog and its Persister are used from one thread. After a failed commit the log
// stays as it was (its records not durable) and takes no further commit: the process
// restarts and recovers.
#pragma once

#include <cstddef>
#include <cstdint>
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
};

// Counters for the monitor and benchmarks; only grow.
struct ShardLogCounters {
  uint64_t records_staged = 0;
  uint64_t bytes_staged = 0;    // record headers included
  uint64_t stage_refusals = 0;  // stage() calls turned away because staging was full
  uint64_t segments_created = 0;
  uint64_t segments_dropped = 0;
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
  // Records [0, durable_sequence) are durable (written and fdatasynced).
  uint64_t durable_sequence() const { return durable_sequence_; }
  // Bytes waiting for the next commit (record headers included).
  size_t staged_bytes() const { return staging_.records_bytes; }
  // The largest batch of a record in or torn from this log (recovered or committed since).
  uint64_t last_batch() const { return last_batch_; }
  // Largest bytes one batch of this log can hold (staged_bytes_max, or less when the
  // segment size leaves less room).
  uint64_t batch_bytes_max() const { return batch_bytes_max_; }

  // Deletes the whole segment files all of whose records are below `sequence`, oldest
  // first, then fsyncs the directory; never the current file. For use after a snapshot:
  // `sequence` must not pass durable_sequence().
  Result<void> drop_segments_before(uint64_t sequence);

  const std::string& directory() const { return directory_; }
  const LogIdentity& identity() const { return identity_; }
  const ShardLogCounters& counters() const { return counters_; }
  // Paths of the segment files, oldest first.
  std::vector<std::string> segment_paths() const;

 private:
  friend class Persister;

  // A batch's bytes: room for a segment header first, then the records back to back.
  struct Buffer {
    std::unique_ptr<std::byte[]> bytes;
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

  // Persister side. begin_commit hands the staged records to batch `batch`: rotates the
  // segment if needed, stamps batch, flags and checksums, and returns the bytes to write.
  // finish_commit marks them durable.
  Result<CommitPart> begin_commit(uint64_t batch);
  void finish_commit();
  void seal_records(Buffer& buffer, uint64_t batch);
  void write_segment_header(Buffer& buffer, uint64_t batch);

  std::string directory_;
  LogIdentity identity_;
  LogOptions options_;
  uint64_t header_slot_bytes_ = 0;  // the segment header record of this identity
  uint64_t batch_bytes_max_ = 0;

  UniqueFd directory_fd_;
  UniqueFd file_fd_;
  std::string file_path_;
  uint64_t file_bytes_ = 0;          // durable length of the current file
  bool file_needs_header_ = false;   // the current file is empty
  bool rotate_before_next_ = false;  // recovery cut a tear from the current file
  std::vector<Segment> segments_;

  Buffer staging_;
  Buffer in_flight_;
  bool committing_ = false;
  uint64_t committing_batch_ = 0;
  uint64_t committing_file_end_ = 0;
  const Persister* persister_ = nullptr;

  uint64_t next_sequence_ = 0;
  uint64_t durable_sequence_ = 0;
  uint64_t last_batch_ = 0;
  ShardLogCounters counters_;
};

}  // namespace keel::persist
