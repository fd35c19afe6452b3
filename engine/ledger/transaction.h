// engine/ledger/transaction.h: keel's binary transaction format, version 1.
//
//   std::vector<std::byte> bytes = encode_transfer(/*nonce=*/7, /*from=*/1, /*to=*/2, /*amount=*/100);
//   TxView view;
//   TxStatus status = check_transaction(bytes, TxOrigin::client, &view);
//   if (status != TxStatus::applied) reject(status_text(status));   // malformed: never ordered
//   uint32_t shard = home_shard(view, shard_count);                  // where it executes
//
// Every transaction starts with a 16-byte header: its whole length, the format version,
// its type, flags and a client nonce (two otherwise identical transfers differ by nonce,
// so their hashes differ). Bodies are fixed per type except `put`, whose key and value
// follow its small fixed part. All integers are little-endian; structs are read with
// memcpy, so a transaction needs no alignment.
//
// Types: 1..15 ledger basics (below), 16..63 reserved for contract and compute
// transactions (later issues), 64..127 internal (made by the engine itself, refused from
// clients), 128..255 system transactions (balancer, credits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace keel::ledger {

inline constexpr uint8_t tx_format_version = 1;
inline constexpr uint32_t tx_bytes_max = 65536;
inline constexpr uint32_t put_key_bytes_max = 256;
inline constexpr uint32_t put_value_bytes_max = 16384;

enum class TxType : uint8_t {
  create_account = 1,  // opens an account on its home shard with an opening balance
  transfer = 2,        // moves an amount between two accounts of one chain
  put = 3,             // sets a key to a value
  credit = 64,         // internal: the credit half of a cross-shard transfer (or its refund)
};

// Whether a transaction came from a client or from the engine (internal types).
enum class TxOrigin { client, engine };

// The receipt status: applied, or why not. Values are stable: they go on the wire.
enum class TxStatus : uint16_t {
  applied = 0,
  // Malformed: rejected before ordering (receipt height 0).
  too_short = 1,
  bad_version = 2,
  bad_length = 3,
  unknown_type = 4,
  internal_type = 5,
  bad_flags = 6,
  // Rejected by the state, in a block.
  account_exists = 20,
  no_such_account = 21,
  insufficient_funds = 22,
  zero_amount = 23,
  same_account = 24,
  negative_opening_balance = 25,
  balance_overflow = 26,
  empty_key = 27,
  key_too_long = 28,
  value_too_long = 29,
  credit_refunded = 30,   // a cross-shard credit found no account (or overflowed): sent back
  duplicate_credit = 31,  // internal: a credit already applied (after a restart); never ordered
  wrong_shard = 32,       // routed to a shard that does not own it (an engine bug, not a client's)
  // Refused by the engine before ordering (receipt height 0).
  unknown_chain = 40,
  engine_stopping = 41,
};

// One line naming the reason, e.g. "insufficient funds".
std::string_view status_text(TxStatus status);
// True for malformed transactions (refused before ordering, in no block).
bool status_is_malformed(TxStatus status);
// True for every status given before ordering: malformed or refused by the engine.
bool status_is_unordered(TxStatus status);

struct TxHeader {
  uint32_t length;  // the whole transaction, header included
  uint8_t version;  // tx_format_version
  uint8_t type;     // TxType
  uint16_t flags;   // per type; must be 0 where a type defines none
  uint64_t nonce;   // chosen by the client
};
static_assert(sizeof(TxHeader) == 16);

inline constexpr uint32_t account_flag_allow_overdraft = 1;

struct CreateAccountBody {
  uint64_t account;
  int64_t opening_balance;  // >= 0; a chain's total balance is the sum of these
  uint32_t account_flags;   // account_flag_allow_overdraft
  uint32_t reserved;        // 0
};
static_assert(sizeof(CreateAccountBody) == 24);

struct TransferBody {
  uint64_t from;
  uint64_t to;
  uint64_t amount;  // > 0, at most INT64_MAX
};
static_assert(sizeof(TransferBody) == 24);

struct PutBody {
  uint16_t key_bytes;    // 1..put_key_bytes_max
  uint16_t reserved;     // 0
  uint32_t value_bytes;  // 0..put_value_bytes_max; key then value follow
};
static_assert(sizeof(PutBody) == 8);

inline constexpr uint16_t credit_flag_refund = 1;  // in TxHeader::flags of a credit

// A credit carries where its debit happened, so the destination applies each exactly
// once: credits from one origin shard arrive in (height, index) order and the
// destination keeps the last one it applied.
struct CreditBody {
  uint64_t to;             // the account credited
  uint64_t from;           // the account debited on the origin shard (refunds go back to it)
  uint64_t amount;
  uint64_t origin_height;  // the block holding the debit (or the refused credit)
  uint32_t origin_shard;
  uint32_t origin_index;   // the debit's position in that block
};
static_assert(sizeof(CreditBody) == 40);
inline constexpr size_t credit_tx_bytes = sizeof(TxHeader) + sizeof(CreditBody);

// A checked transaction: the header and the body of its type, copied out.
struct TxView {
  TxHeader header{};
  TxType type{};
  union {
    CreateAccountBody create_account;
    TransferBody transfer;
    PutBody put;
    CreditBody credit;
  };
  std::span<const std::byte> key;    // put only
  std::span<const std::byte> value;  // put only
  TxView() : create_account{} {}
};

// Checks framing, version, type, lengths and flags. Returns applied (meaning
// "well-formed") and fills *view, or the malformed status. Never reads past `bytes`.
TxStatus check_transaction(std::span<const std::byte> bytes, TxOrigin origin, TxView* view);

// The shard a transaction executes on: an account's home for create_account and
// transfer (its `from`), the key's for put, the credited account's for credit.
uint32_t home_shard(const TxView& view, uint32_t shard_count);
// The home shard of an account or key: a fixed mix of its bits (splitmix64 for
// accounts, FNV-1a for keys) modulo the shard count. Part of the on-disk contract:
// changing it re-homes every account.
uint32_t shard_of_account(uint64_t account, uint32_t shard_count);
uint32_t shard_of_key(std::span<const std::byte> key, uint32_t shard_count);

// Encoders for clients, tests and the load generator.
std::vector<std::byte> encode_create_account(uint64_t nonce, uint64_t account, int64_t opening_balance,
                                             uint32_t account_flags = 0);
std::vector<std::byte> encode_transfer(uint64_t nonce, uint64_t from, uint64_t to, uint64_t amount);
std::vector<std::byte> encode_put(uint64_t nonce, std::span<const std::byte> key, std::span<const std::byte> value);
// Writes a credit transaction (credit_tx_bytes) into `out`.
void write_credit(std::span<std::byte, credit_tx_bytes> out, const CreditBody& body, bool refund);

}  // namespace keel::ledger
