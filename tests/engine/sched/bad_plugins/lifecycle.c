/* A plugin that counts its live instances, so tests can see that PluginInstance calls
 * shutdown exactly once per successful init. Compute types:
 *   0 "live_instances": any input; output 4 bytes, the number of instances initialised
 *     and not yet shut down (uint32, little-endian);
 *   1 "echo": output = input;
 *   2 "overrun": broken on purpose, claims one byte more output than the buffer holds. */
#include <keel/plugin.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static const char* const types[] = {"live_instances", "echo", "overrun"};
static atomic_uint live_instances;

struct lifecycle_instance {
  unsigned magic;
};

#define LIFECYCLE_MAGIC 0x6c696665u

static int32_t lifecycle_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  struct lifecycle_instance* created = malloc(sizeof *created);
  (void)config;
  if (created == NULL) {
    snprintf(error, error_bytes, "out of memory");
    return KEEL_STATUS_FAILED;
  }
  created->magic = LIFECYCLE_MAGIC;
  *instance = created;
  atomic_fetch_add(&live_instances, 1);
  return KEEL_STATUS_OK;
}

static int32_t lifecycle_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                             uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  const struct lifecycle_instance* self = instance;
  if (self == NULL || self->magic != LIFECYCLE_MAGIC) return KEEL_STATUS_PLUGIN_MIN; /* a wrong handle */
  if (compute_type == 2) {
    *output_bytes = output_capacity + 1;
    return KEEL_STATUS_OK;
  }
  if (compute_type == 1) {
    *output_bytes = input_bytes;
    if (output_capacity < input_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
    if (input_bytes != 0) memcpy(output, input, input_bytes);
    return KEEL_STATUS_OK;
  }
  unsigned count = atomic_load(&live_instances);
  *output_bytes = 4;
  if (output_capacity < 4) return KEEL_STATUS_OUTPUT_TOO_SMALL;
  output[0] = (uint8_t)count;
  output[1] = (uint8_t)(count >> 8);
  output[2] = (uint8_t)(count >> 16);
  output[3] = (uint8_t)(count >> 24);
  return KEEL_STATUS_OK;
}

static void lifecycle_shutdown(void* instance) {
  struct lifecycle_instance* self = instance;
  self->magic = 0;
  free(self);
  atomic_fetch_sub(&live_instances, 1);
}

static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "lifecycle", types, 3,
                                       lifecycle_init, lifecycle_run, lifecycle_shutdown};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
