// engine/persist/recovery.h: reads a shard log back at start-up, checks every record, and
// tells a torn tail (the crash interrupted the last batch: cut it off) from damage (bytes
// that were durable went bad: refuse to start).
//
//   Result<RecoveredLog> log = scan_log(directory, identity, [&](const LogRecordView& record) {
//     return ledger.replay(record.sequence, record.payload);  // an Error here stops the scan
//   });
//   if (!log) fail(log.error());
//   ... scan the other shards' logs too, then:
//   Result<void> sane = check_torn_batches(all_logs, shard_names);  // damage hidden as a tear
//   if (log->torn) print("cut torn tail of batch N from <file> at <offset> (<bytes> bytes)");
//   Result<void> cut = truncate_torn_tail(*log);
//   auto shard_log = ShardLog::open(directory, identity, options, *log);
//
// How a tear is told from damage. At most commits_in_flight_limit (2) batches are in
// flight at once: batch N + 2 is submitted only after batch N is durable in every log
// (log_format.h). A batch writes one run of records to one file per log, and a log
// rotates to a new file only with none of its batches in flight. So only the last two
// batches written can be torn, and a torn batch sits in a log's last file, where its bad
// bytes may be followed by the whole next batch (it landed; it was never acknowledged,
// since acknowledgement goes in batch order). At the first bad record at offset p of the
// last file (bad: cut short, wrong magic, length out of bounds, checksum mismatch,
// sequence or batch out of order), recovery looks at the good record just before p (prev)
// and at any good records after p (found by searching each later byte for the magic and
// checking the checksum; records of an earlier batch or sequence, which stale blocks could
// hold, are ignored):
//  - prev not flagged last-in-batch: p belongs to prev's batch B. A good record of batch
//    B + 2 or later after p proves B completed: damage. Otherwise a tear of B.
//  - prev flagged last-in-batch (or p is the segment header): p starts a later batch B.
//    Each distinct batch found after p is B or later; when the nearest record found is
//    flagged first-in-batch (p > 0), all are later than B. Batches enough that one must
//    be B + 2 or later (three distinct, or two when all are later than B) prove B
//    completed: damage. Otherwise a tear.
//  - a bad record in any file but the last is damage, always.
// In a version 3 file, zeros after a last-in-batch record to the end of its block,
// followed at the block boundary by the record that continues the log exactly, are the
// gap a batch submitted beside another leaves (log_format.h), not a bad record.
// Zero bytes from p to the end of a file (p > 0) are not a bad record: they are the
// padding after the file's last aligned write (log_format.h), and the file's records end
// at p, cleanly. (A record starts with its magic, never with a zero byte.) Nor is what a
// recycled segment file (shard_log.h) holds after its new records: zeros from p to the
// end of p's block (the padding of the last write, which writes whole blocks), then the
// file's old bytes, among them good records of this log's past, all below the sequence
// the scan expects at p. So when the bytes from p to the end of its block are zero and no
// good record at or past the expected sequence follows anywhere after p, the file's
// records end at p, cleanly, in any file: a file that ends early is caught by the next
// file's name (records missing), and a good record that continues the log is judged as
// below.
// A tear is cut at p (with the segment header too if nothing else would be left, so the
// file is empty and gets a fresh header). A last file that ends cleanly but inside a
// batch (no last-in-batch flag at the end) is a tear of zero bytes: the batch's remaining
// records never reached the disk.
//
// The limit: a flipped bit in the last two batches of a log looks like a torn write; and
// batch numbers are global, so when p starts a batch the log cannot name it exactly
// (other logs may have had batches in between). The caller cross-checks across logs with
// check_torn_batches: a torn batch two or more older than the newest batch found in any
// log was acknowledged, so it is damage.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/persist/log_format.h"
#include "error/result.h"

namespace keel::persist {

// One good record as the scan passes it to the caller. payload and file point into the
// scan's buffers: valid during the callback only.
struct LogRecordView {
  uint64_t sequence;
  uint64_t batch;
  uint16_t type;
  std::span<const std::byte> payload;
  std::string_view file;
  uint64_t offset;  // of the record header in the file
};

struct TornTail {
  std::string file;
  uint64_t offset = 0;     // the file is cut to this length
  uint64_t bytes_cut = 0;  // 0: the file ended cleanly inside the batch
  // The unacknowledged batch that was torn, or the largest it can be (when the tear begins
  // a batch and only later records of it survive). 0: cannot be named (the tear begins a
  // batch and nothing of it survives); check_torn_batches cannot judge such a tear.
  uint64_t batch = 0;
};

struct RecoveredLog {
  std::vector<std::string> files;  // paths of the segment files, oldest first
  uint64_t next_sequence = 0;      // the sequence the next appended record gets
  uint64_t last_batch = 0;         // largest batch of a good record (0: none)
  // Largest batch of any good record seen, those cut with a torn tail included: batch
  // numbers handed out after recovery start above it.
  uint64_t batch_seen_max = 0;
  // Format version of the last file's segment header (0: no file, or its header is bad).
  // A log whose last file predates version 3 starts a new file for its next batch, so
  // that file never holds a version 3 gap.
  uint32_t tail_format_version = 0;
  uint64_t tail_file_bytes = 0;    // where the last file's records end, once any torn tail is cut
  // Bytes after them that hold none of the log's records: write padding, and in a recycled
  // segment file the old bytes after it (0 after a cut).
  uint64_t tail_unused_bytes = 0;
  std::optional<TornTail> torn;
};

// Reads every segment file of `directory` in order, checks each record (framing, checksum,
// sequence continuity, batch order, segment header identity and format version) and calls
// on_record for each good record of the caller's (segment headers are not passed). An
// Error from on_record stops the scan and is returned. A missing or empty directory is an
// empty log. Errors name the file and what differs: a segment written by another format
// version, chain, shard or shard count; a gap or repeat in sequences between files;
// damage (see above). Records of the torn batch before the tear were passed to on_record
// before the tear was found: written but never acknowledged (the batch is torn.batch).
Result<RecoveredLog> scan_log(const std::string& directory, const LogIdentity& expected,
                              const std::function<Result<void>(const LogRecordView&)>& on_record);

// Cuts the torn tail if there is one (ftruncate, then fdatasync). The caller prints the
// line naming the file and offset first.
Result<void> truncate_torn_tail(const RecoveredLog& log);

// Damage that looks like a tear: a log whose torn batch is commits_in_flight_limit or more
// older than the newest batch found in any log (that batch was acknowledged). names[i] names logs[i] in the error
// ("payments/shard 3").
Result<void> check_torn_batches(std::span<const RecoveredLog* const> logs,
                                std::span<const std::string> names);

}  // namespace keel::persist
