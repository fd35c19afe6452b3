/* A plugin whose init always fails. Its reason comes from the config, so one plugin
 * covers every case: "reason" is copied as the reason (absent: no reason at all), and
 * "unterminated" fills the whole error buffer with 'x' and no NUL. */
#include <keel/plugin.h>
#include <stdio.h>

static const char* const types[] = {"never"};

static int32_t failing_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  const char* reason = keel_plugin_config_get(config, "reason");
  (void)instance;
  if (keel_plugin_config_get(config, "unterminated") != NULL) {
    memset(error, 'x', error_bytes);
  } else if (reason != NULL) {
    snprintf(error, error_bytes, "%s", reason);
  }
  return KEEL_STATUS_FAILED;
}

static int32_t never_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                         uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  (void)instance; (void)compute_type; (void)input; (void)input_bytes; (void)output; (void)output_capacity;
  (void)output_bytes;
  return KEEL_STATUS_FAILED;
}

static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "init_fails", types, 1,
                                       failing_init, never_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
