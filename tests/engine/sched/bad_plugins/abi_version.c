/* A plugin built against a future ABI version (KEEL_PLUGIN_ABI_VERSION + 1). */
#include <keel/plugin.h>

static const char* const types[] = {"future"};

static int32_t future_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  (void)config; (void)error; (void)error_bytes;
  *instance = NULL;
  return KEEL_STATUS_OK;
}

static int32_t future_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                          uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  (void)instance; (void)compute_type; (void)input; (void)input_bytes; (void)output; (void)output_capacity;
  *output_bytes = 0;
  return KEEL_STATUS_OK;
}

static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION + 1, sizeof(keel_plugin), "future", types, 1,
                                       future_init, future_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
