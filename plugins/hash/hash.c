/* hash: compute type "hash", the SHA-256 digest of a document (OpenSSL).
 *
 * Input:  the document's bytes, 0 to HASH_DOCUMENT_BYTES_MAX (64 MiB).
 * Output: 32 bytes, the SHA-256 digest (FIPS 180-4 byte order).
 * BAD_INPUT when the document is longer than 64 MiB (a bound on one task's work) or
 * input is NULL with a non-zero length; OUTPUT_TOO_SMALL below 32 bytes of output.
 * Takes no config (any key fails init).
 */
#include <keel/plugin.h>
#include <openssl/sha.h>
#include <stdio.h>

#define HASH_DOCUMENT_BYTES_MAX ((size_t)64 << 20)

static const char* const hash_compute_types[] = {"hash"};

static int32_t hash_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  if (config->count != 0) {
    snprintf(error, error_bytes, "unknown config key '%s' (hash takes no config)", config->entries[0].key);
    return KEEL_STATUS_BAD_INPUT;
  }
  *instance = NULL;
  return KEEL_STATUS_OK;
}

static int32_t hash_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                        uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  static const uint8_t empty_document[1] = {0};
  (void)instance;
  (void)compute_type;
  if (input_bytes > HASH_DOCUMENT_BYTES_MAX || (input == NULL && input_bytes != 0)) return KEEL_STATUS_BAD_INPUT;
  *output_bytes = SHA256_DIGEST_LENGTH;
  if (output_capacity < SHA256_DIGEST_LENGTH) return KEEL_STATUS_OUTPUT_TOO_SMALL;
  /* SHA256() with our own output buffer keeps no state between calls: thread-safe. */
  SHA256(input_bytes == 0 ? empty_document : input, input_bytes, output);
  return KEEL_STATUS_OK;
}

static const keel_plugin hash_descriptor = {
    KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "hash", hash_compute_types, 1, hash_init, hash_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &hash_descriptor; }
