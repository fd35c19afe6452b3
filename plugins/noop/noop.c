/* noop: compute type "noop", for benchmarks that measure keel rather than a plugin.
 *
 * Input:  0 to 8 bytes, any content.
 * Output: the same bytes (output_bytes = input_bytes).
 * BAD_INPUT when the input is longer than 8 bytes; OUTPUT_TOO_SMALL when the output
 * buffer cannot hold the copy. Takes no config (any key fails init).
 *
 * Written in C99 without extensions: it also proves keel/plugin.h is plain C99.
 */
#include <keel/plugin.h>
#include <stdio.h>

#define NOOP_INPUT_BYTES_MAX 8u

static const char* const noop_compute_types[] = {"noop"};

static int32_t noop_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  if (config->count != 0) {
    snprintf(error, error_bytes, "unknown config key '%s' (noop takes no config)", config->entries[0].key);
    return KEEL_STATUS_BAD_INPUT;
  }
  *instance = NULL;
  return KEEL_STATUS_OK;
}

/* A hot loop of the benchmarks calls this: no branches beyond the two bounds checks. */
static int32_t noop_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                        uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  (void)instance;
  (void)compute_type;
  if (input_bytes > NOOP_INPUT_BYTES_MAX) return KEEL_STATUS_BAD_INPUT;
  *output_bytes = input_bytes;
  if (output_capacity < input_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
  if (input_bytes != 0) memcpy(output, input, input_bytes);
  return KEEL_STATUS_OK;
}

static const keel_plugin noop_descriptor = {
    KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "noop", noop_compute_types, 1, noop_init, noop_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &noop_descriptor; }
