/* A plugin that needs a function no loaded library defines, as when a plugin was built
 * against a library missing at run time: dlopen(RTLD_NOW) refuses it up front, rather
 * than the first run failing. */
#include <keel/plugin.h>

extern int32_t keel_test_missing_function(void);

static const char* const types[] = {"missing"};

static int32_t missing_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  (void)config; (void)error; (void)error_bytes;
  *instance = NULL;
  return KEEL_STATUS_OK;
}

static int32_t missing_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                           uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  (void)instance; (void)compute_type; (void)input; (void)input_bytes; (void)output; (void)output_capacity;
  *output_bytes = 0;
  return keel_test_missing_function();
}

static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "missing", types, 1,
                                       missing_init, missing_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
