/* interest: compute type "interest", simple interest accrued over a range of accounts,
 * in integer minor units (cents): no floating point anywhere, so every result is exact.
 *
 * Input (little-endian, 8 + 24 * account_count bytes exactly):
 *   offset 0  uint32 day_count       days of accrual (0 allowed)
 *   offset 4  uint32 account_count
 *   offset 8  account_count records of 24 bytes:
 *               +0  uint64 account_id
 *               +8  int64  balance      minor units (may be negative: an overdraft)
 *               +16 int32  rate_bp      annual rate in basis points (525 = 5.25%; may be negative)
 *               +20 uint32 reserved     must be 0
 * Output (little-endian, 16 * account_count bytes), in input order:
 *   +0 uint64 account_id
 *   +8 int64  interest   accrued interest in minor units
 *
 * Convention: ACT/365 Fixed simple interest,
 *   interest = balance * rate_bp / 10000 * day_count / 365,
 * computed exactly in 128-bit integers (|balance * rate_bp * day_count| < 2^126) and
 * rounded once, half to even ("banker's rounding", symmetric for negative amounts):
 * 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2.
 *
 * BAD_INPUT when the length is not 8 + 24 * account_count, a reserved field is not 0,
 * or an account's interest does not fit in int64. OUTPUT_TOO_SMALL below
 * 16 * account_count bytes. Takes no config (any key fails init).
 */
#include <keel/plugin.h>
#include <stdio.h>

#define INTEREST_HEADER_BYTES 8u
#define INTEREST_ACCOUNT_BYTES 24u
#define INTEREST_RESULT_BYTES 16u
#define INTEREST_BASIS_POINTS_PER_UNIT 10000
#define INTEREST_DAYS_PER_YEAR 365

static const char* const interest_compute_types[] = {"interest"};

static uint32_t load_u32_le(const uint8_t* bytes) {
  return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

static uint64_t load_u64_le(const uint8_t* bytes) {
  return (uint64_t)load_u32_le(bytes) | (uint64_t)load_u32_le(bytes + 4) << 32;
}

static void store_u64_le(uint8_t* bytes, uint64_t value) {
  int index;
  for (index = 0; index < 8; ++index) bytes[index] = (uint8_t)(value >> (8 * index));
}

/* balance * rate_bp * day_count / (10000 * 365), rounded half to even. Returns 0 when
 * the result does not fit in int64, 1 otherwise. */
static int accrued_interest(int64_t balance, int32_t rate_bp, uint32_t day_count, int64_t* interest) {
  const __int128 denominator = (__int128)INTEREST_BASIS_POINTS_PER_UNIT * INTEREST_DAYS_PER_YEAR;
  const __int128 numerator = (__int128)balance * rate_bp * day_count;
  __int128 quotient = numerator / denominator;   /* truncated toward zero */
  __int128 remainder = numerator % denominator;  /* has the numerator's sign */
  __int128 twice_remainder = remainder < 0 ? -2 * remainder : 2 * remainder;
  if (twice_remainder > denominator || (twice_remainder == denominator && (quotient & 1) != 0)) {
    quotient += numerator < 0 ? -1 : 1;
  }
  if (quotient > INT64_MAX || quotient < INT64_MIN) return 0;
  *interest = (int64_t)quotient;
  return 1;
}

static int32_t interest_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  if (config->count != 0) {
    snprintf(error, error_bytes, "unknown config key '%s' (interest takes no config)", config->entries[0].key);
    return KEEL_STATUS_BAD_INPUT;
  }
  *instance = NULL;
  return KEEL_STATUS_OK;
}

static int32_t interest_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                            uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  uint32_t day_count, account_count, index;
  (void)instance;
  (void)compute_type;
  if (input == NULL || input_bytes < INTEREST_HEADER_BYTES) return KEEL_STATUS_BAD_INPUT;
  day_count = load_u32_le(input);
  account_count = load_u32_le(input + 4);
  /* 24 * 2^32 fits in size_t on the 64-bit hosts keel runs on: no overflow. */
  if (input_bytes != INTEREST_HEADER_BYTES + (size_t)account_count * INTEREST_ACCOUNT_BYTES) return KEEL_STATUS_BAD_INPUT;
  *output_bytes = (size_t)account_count * INTEREST_RESULT_BYTES;
  if (output_capacity < *output_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
  for (index = 0; index < account_count; ++index) {
    const uint8_t* account = input + INTEREST_HEADER_BYTES + (size_t)index * INTEREST_ACCOUNT_BYTES;
    uint8_t* result = output + (size_t)index * INTEREST_RESULT_BYTES;
    int64_t balance = (int64_t)load_u64_le(account + 8);
    int32_t rate_bp = (int32_t)load_u32_le(account + 16);
    int64_t interest;
    if (load_u32_le(account + 20) != 0) return KEEL_STATUS_BAD_INPUT;
    if (!accrued_interest(balance, rate_bp, day_count, &interest)) return KEEL_STATUS_BAD_INPUT;
    store_u64_le(result, load_u64_le(account));
    store_u64_le(result + 8, (uint64_t)interest);
  }
  return KEEL_STATUS_OK;
}

static const keel_plugin interest_descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "interest",
                                                interest_compute_types, 1, interest_init, interest_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &interest_descriptor; }
