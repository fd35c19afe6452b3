/* One malformed descriptor per build: CMake compiles this file once per defect, with
 * exactly one of the DEFECT_* macros defined, into keel_bad_<defect>.so. */
#include <keel/plugin.h>

/* Unused by the builds whose defect replaces them. */
__attribute__((unused)) static int32_t bad_init(const keel_plugin_config* config, void** instance, char* error,
                                                size_t error_bytes) {
  (void)config; (void)error; (void)error_bytes;
  *instance = NULL;
  return KEEL_STATUS_OK;
}

__attribute__((unused)) static int32_t bad_run(void* instance, uint32_t compute_type, const uint8_t* input,
                                               size_t input_bytes, uint8_t* output, size_t output_capacity,
                                               size_t* output_bytes) {
  (void)instance; (void)compute_type; (void)input; (void)input_bytes; (void)output; (void)output_capacity;
  *output_bytes = 0;
  return KEEL_STATUS_OK;
}

/* Each defect changes one thing about an otherwise valid descriptor. */
#define BAD_BYTES sizeof(keel_plugin)
#define BAD_NAME "bad"
#define BAD_TYPES {"alpha"}
#define BAD_TYPE_COUNT 1
#define BAD_INIT bad_init
#define BAD_RUN bad_run

#if defined(DEFECT_DUPLICATE_TYPE)
#undef BAD_TYPES
#undef BAD_TYPE_COUNT
#define BAD_TYPES {"alpha", "beta", "alpha"}
#define BAD_TYPE_COUNT 3
#elif defined(DEFECT_EMPTY_TYPE)
#undef BAD_TYPES
#undef BAD_TYPE_COUNT
#define BAD_TYPES {"alpha", ""}
#define BAD_TYPE_COUNT 2
#elif defined(DEFECT_BAD_TYPE_CHARACTER)
#undef BAD_TYPES
#define BAD_TYPES {"alpha beta"}
#elif defined(DEFECT_NO_TYPES)
#undef BAD_TYPE_COUNT
#define BAD_TYPE_COUNT 0
#elif defined(DEFECT_NULL_NAME)
#undef BAD_NAME
#define BAD_NAME NULL
#elif defined(DEFECT_NULL_INIT)
#undef BAD_INIT
#define BAD_INIT NULL
#elif defined(DEFECT_NULL_RUN)
#undef BAD_RUN
#define BAD_RUN NULL
#elif defined(DEFECT_SHORT_DESCRIPTOR)
#undef BAD_BYTES
#define BAD_BYTES 16 /* as if built against an older, shorter descriptor */
#else
#error "define one DEFECT_* macro"
#endif

static const char* const types[] = BAD_TYPES;
static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, BAD_BYTES, BAD_NAME, types, BAD_TYPE_COUNT,
                                       BAD_INIT, BAD_RUN, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
