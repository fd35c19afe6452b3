/* crash: a test plugin whose run segfaults, for the crash-isolation tests of worker
 * pools. Compute type "crash".
 *   Input starting with the two bytes "ok": output = input (a healthy task, so a test
 *   can mix both kinds).
 *   Any other input: a store through a null pointer, a real SIGSEGV. (In an ASan build
 *   ASan's SEGV handler reports it and the process exits with status 1 instead.)
 * Never call its run in a test process itself: run it in a child. */
#include <keel/plugin.h>

static const char* const types[] = {"crash"};

static int32_t crash_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  (void)config; (void)error; (void)error_bytes;
  *instance = NULL;
  return KEEL_STATUS_OK;
}

/* Not instrumented by UBSan, which would report the null store instead of letting it fault. */
__attribute__((no_sanitize("undefined"))) static void store_through_null(void) {
  volatile int* volatile target = NULL;
  *target = 1;
}

static int32_t crash_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                         uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  (void)instance; (void)compute_type;
  if (input_bytes >= 2 && input[0] == 'o' && input[1] == 'k') {
    *output_bytes = input_bytes;
    if (output_capacity < input_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
    memcpy(output, input, input_bytes);
    return KEEL_STATUS_OK;
  }
  store_through_null();
  return KEEL_STATUS_FAILED; /* not reached */
}

static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "crash", types, 1,
                                       crash_init, crash_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
