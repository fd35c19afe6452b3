#include "engine/ledger/block.h"

#include <cstring>
#include <string>

#include "engine/ledger/transaction.h"

namespace keel::ledger {

uint64_t chain_id_of(std::string_view chain_name) {
  Hash32 hash = sha256(std::as_bytes(std::span(chain_name.data(), chain_name.size())));
  uint64_t id;
  std::memcpy(&id, hash.bytes.data(), sizeof id);
  return id;
}

Hash32 block_hash(const BlockHeader& header) {
  return sha256(std::as_bytes(std::span(&header, 1)));
}

Result<BlockView> parse_block(std::span<const std::byte> payload) {
  if (payload.size() < sizeof(BlockHeader))
    return Error{"block record of " + std::to_string(payload.size()) + " bytes is shorter than a block header"};
  BlockView view;
  std::memcpy(&view.header, payload.data(), sizeof(BlockHeader));
  const BlockHeader& header = view.header;
  if (header.magic != block_magic) return Error{"not a block (bad magic)"};
  if (header.version < block_format_version_oldest_readable || header.version > block_format_version)
    return Error{"block format version " + std::to_string(header.version) + ", this keel reads " +
                 std::to_string(block_format_version_oldest_readable) + " to " + std::to_string(block_format_version)};
  if (header.body_bytes != payload.size() - sizeof(BlockHeader))
    return Error{"body is " + std::to_string(payload.size() - sizeof(BlockHeader)) + " bytes, header says " +
                 std::to_string(header.body_bytes)};
  view.body = payload.subspan(sizeof(BlockHeader));
  size_t offset = 0;
  uint32_t count = 0;
  while (offset < view.body.size()) {
    uint32_t length = 0;
    if (view.body.size() - offset < sizeof(TxHeader)) return Error{"transaction cut short in the body"};
    std::memcpy(&length, view.body.data() + offset, sizeof length);
    if (length < sizeof(TxHeader) || length > view.body.size() - offset)
      return Error{"transaction " + std::to_string(count) + " has a bad length " + std::to_string(length)};
    offset += length;
    ++count;
  }
  if (count != header.tx_count)
    return Error{"body holds " + std::to_string(count) + " transactions, header says " +
                 std::to_string(header.tx_count)};
  return view;
}

}  // namespace keel::ledger
