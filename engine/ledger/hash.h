// engine/ledger/hash.h: SHA-256 (OpenSSL, SHA-NI where the CPU has it) and the
// domain-separated leaf and node hashes of RFC 6962 that blocks and Merkle roots use.
//
//   Hash32 tx_hash = hash_leaf(transaction_bytes);      // SHA-256(0x00 || bytes)
//   Hash32 parent = hash_node(left, right);              // SHA-256(0x01 || left || right)
//   Hash32 wide = hash_children(eight_hashes);           // SHA-256(0x01 || c0 || ... || c7)
//   std::string shown = to_hex(tx_hash);
//
// A transaction's hash is its Merkle leaf hash, so a block hashes each transaction once
// and the leaf can never be confused with an inner node (the second-preimage attack that
// RFC 6962's prefixes exist to stop).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace keel::ledger {

struct Hash32 {
  std::array<uint8_t, 32> bytes{};
  bool operator==(const Hash32&) const = default;
  bool is_zero() const;
};
static_assert(sizeof(Hash32) == 32);

// SHA-256 of `data`.
Hash32 sha256(std::span<const std::byte> data);
// RFC 6962 leaf hash: SHA-256(0x00 || data). A transaction's hash.
Hash32 hash_leaf(std::span<const std::byte> data);
// RFC 6962 inner node: SHA-256(0x01 || left || right).
Hash32 hash_node(const Hash32& left, const Hash32& right);
// An inner node of the wide tree (merkle.h): SHA-256(0x01 || children in order), for 2 to
// 8 children. With two it is hash_node.
Hash32 hash_children(std::span<const Hash32> children);

// Lower-case hex, 64 characters.
std::string to_hex(const Hash32& hash);

}  // namespace keel::ledger
