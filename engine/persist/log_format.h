// engine/persist/log_format.h: the on-disk format of a shard log (little-endian).
//
// A shard log is a directory of segment files, `log-<first sequence, 20 digits>.klog`,
// each a run of records with no gaps, then possibly zero bytes to the end of the file:
//
//   [RecordHeader 32 bytes][payload payload_bytes] [RecordHeader][payload] ... [0 ... 0]
//
// The zeros (format version 2 on) are padding: keel writes whole aligned blocks
// (log_write_alignment, for O_DIRECT), so a file's last block is filled up with zeros, and
// the next commit writes that block again with the same records followed by new ones.
// Version 1 files never have padding; a version 2 reader reads them as they are.
//
// Version 3: two commits may be in flight at once (commits_in_flight_limit). A batch
// submitted while the log's previous batch is still being written must not write that
// batch's last block again (two writes of one block in flight land in either order), so
// it starts at the next block boundary instead, and the zeros that padded the previous
// batch's last block stay between them:
//
//   ... [last record of batch N][0 ... 0 to the block's end][first record of batch N+1] ...
//
// So inside a version 3 file, zeros after a record flagged last-in-batch, up to the end
// of its block, may be followed by the next batch at the block boundary. Version 1 and 2
// files never have such gaps (a reader takes one there as damage).
//
// The first record of every file is a segment header (type 1) naming the format version
// and the log's identity (chain, shard, shard count); the rest are the caller's records
// (type 2 and up, opaque here). Sequences count the caller's records only: the segment
// header carries the sequence of the file's first record without using it up, so the
// caller's records are numbered 0, 1, 2, ... across files, as the file names say.
//
//   RecordHeader header = make_record_header(type, payload.size(), sequence);
//   header.batch = batch; header.flags = record_flag_last_in_batch;
//   header.checksum = record_checksum(header, payload);
//
// A group commit ("batch", numbered globally across all logs from 1) writes one run of
// records to one file per log: rotation to a new file happens between batches, never
// inside one, so that only the last file of a log can hold a torn batch. The batch's
// first and last record in the file carry flags; recovery (recovery.h) uses them and the
// batch numbers to tell a torn tail from damage.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace keel::persist {

static_assert(std::endian::native == std::endian::little,
              "the log format is little-endian and keel writes it with plain stores");

inline constexpr uint32_t record_magic = 0x31524C4Bu;  // "KLR1" as bytes on disk
inline constexpr uint32_t log_format_version = 3;  // 2: zero padding after the last record; 3: gaps
inline constexpr uint32_t log_format_version_oldest_readable = 1;
inline constexpr uint32_t log_format_version_first_with_gaps = 3;
// At most this many group commits are in flight at once (persister.h): batch N + limit is
// submitted only once batch N is durable in every log. Recovery relies on it: a good
// record of batch N + limit or later proves batch N completed.
inline constexpr uint64_t commits_in_flight_limit = 2;
// Commits write whole blocks of this many bytes at offsets that are multiples of it, from
// buffers aligned to it: what O_DIRECT asks of a file system whose blocks are 4 KiB or
// less (512-byte sector devices included).
inline constexpr uint64_t log_write_alignment = 4096;
inline constexpr uint32_t record_payload_bytes_max = 64u << 20;

inline constexpr uint16_t record_type_segment_header = 1;
inline constexpr uint16_t record_type_first_opaque = 2;  // ledger: 2 = block

// Last record of its batch in this file. Every batch in a file ends with one, so a file
// whose last record lacks it ends inside a batch.
inline constexpr uint16_t record_flag_last_in_batch = 1;
// First record of its batch in this file, the segment header not counting (it carries no
// flags). Lets recovery see that a record follows a whole earlier batch.
inline constexpr uint16_t record_flag_first_in_batch = 2;
inline constexpr uint16_t record_flags_known = record_flag_last_in_batch | record_flag_first_in_batch;

inline constexpr size_t chain_name_bytes_max = 255;
// Segment files are read whole at recovery; anything bigger was not written by keel.
inline constexpr uint64_t segment_bytes_min = 4096;
inline constexpr uint64_t segment_bytes_limit = 1ULL << 30;

struct RecordHeader {
  uint32_t magic;          // record_magic
  uint32_t payload_bytes;  // at most record_payload_bytes_max
  uint64_t sequence;       // per shard log, continuous across segment files, from 0
  uint64_t batch;          // the group commit that wrote it (global across logs, from 1)
  uint16_t type;           // record_type_*
  uint16_t flags;          // record_flag_*
  uint32_t checksum;       // CRC32C over this header with checksum = 0, then the payload
};
static_assert(sizeof(RecordHeader) == 32);
static_assert(offsetof(RecordHeader, magic) == 0);
static_assert(offsetof(RecordHeader, payload_bytes) == 4);
static_assert(offsetof(RecordHeader, sequence) == 8);
static_assert(offsetof(RecordHeader, batch) == 16);
static_assert(offsetof(RecordHeader, type) == 24);
static_assert(offsetof(RecordHeader, flags) == 26);
static_assert(offsetof(RecordHeader, checksum) == 28);

// Who a log belongs to; written in every segment header and checked at recovery.
struct LogIdentity {
  std::string chain;   // 1 to chain_name_bytes_max bytes
  uint32_t shard = 0;  // < shard_count
  uint32_t shard_count = 0;
};

// The segment header's payload, byte by byte (no struct: 14 bytes do not pad well):
//   [0,4) format version  [4,8) shard  [8,12) shard count  [12,14) chain bytes  [14,..) chain
inline constexpr size_t segment_header_fixed_bytes = 14;

// The identity's problem in words ("chain name is empty"), or "" if it can be written.
std::string identity_problem(const LogIdentity& identity);

// Payload bytes of the segment header for this identity.
inline size_t segment_header_payload_bytes(const LogIdentity& identity) {
  return segment_header_fixed_bytes + identity.chain.size();
}

// Writes the segment header payload; `out` has segment_header_payload_bytes(identity).
void encode_segment_header(const LogIdentity& identity, std::span<std::byte> out);

struct SegmentHeaderFields {
  uint32_t format_version = 0;
  LogIdentity identity;
};

// Reads a segment header payload; nullopt if its length does not add up.
std::optional<SegmentHeaderFields> decode_segment_header(std::span<const std::byte> payload);

// A header with magic, payload length, sequence and type set; batch, flags, checksum 0.
inline RecordHeader make_record_header(uint16_t type, size_t payload_bytes, uint64_t sequence) {
  return RecordHeader{record_magic, uint32_t(payload_bytes), sequence, 0, type, 0, 0};
}

// CRC32C over `header` with its checksum field taken as 0, then `payload`.
uint32_t record_checksum(const RecordHeader& header, std::span<const std::byte> payload);

// The same value from crc32c(payload) (header.payload_bytes long), without reading the
// payload again: what a commit uses when staging took the payload's checksum.
uint32_t record_checksum_from_payload_crc(const RecordHeader& header, uint32_t payload_crc);

// "log-00000000000000000042.klog"
std::string segment_file_name(uint64_t first_sequence);

// The first sequence a segment file name states, or nullopt if it is not one.
std::optional<uint64_t> parse_segment_file_name(std::string_view name);

}  // namespace keel::persist
