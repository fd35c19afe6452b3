/* keel/plugin.h: the plugin ABI. A keel compute plugin is a shared library that exports
 * one C function, keel_plugin_entry, returning a descriptor: the plugin's name, the
 * compute types it serves, and three functions (init, run, shutdown). This header is
 * plain C99 so that plugins can be written in C, C++ or anything that exports C symbols;
 * it is the only thing a plugin needs from keel.
 *
 *   #include <keel/plugin.h>
 *
 *   static const char* const types[] = {"echo"};
 *   static int32_t echo_init(const keel_plugin_config* config, void** instance,
 *                            char* error, size_t error_bytes) {
 *     (void)config; (void)error; (void)error_bytes;
 *     *instance = NULL;  // nothing to keep
 *     return KEEL_STATUS_OK;
 *   }
 *   static int32_t echo_run(void* instance, uint32_t compute_type,
 *                           const uint8_t* input, size_t input_bytes,
 *                           uint8_t* output, size_t output_capacity, size_t* output_bytes) {
 *     (void)instance; (void)compute_type;
 *     *output_bytes = input_bytes;
 *     if (output_capacity < input_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
 *     if (input_bytes != 0) memcpy(output, input, input_bytes);
 *     return KEEL_STATUS_OK;
 *   }
 *   static const keel_plugin descriptor = {
 *       KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "echo", types, 1,
 *       echo_init, echo_run, NULL};
 *   KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
 *
 * Life of a plugin in keel. Each worker-pool process (one per compute type and NUMA
 * node) dlopens the library, calls keel_plugin_entry once, checks the descriptor, calls
 * init once with the pool's [pool.config] table, then calls run from many threads at
 * once, and finally shutdown. A pool process that dies (a crash in run included) is
 * restarted: the library is loaded and initialised again in a fresh process.
 *
 * The rules a plugin must keep:
 *   - run is called concurrently from many threads with the same instance: it must be
 *     thread-safe. Treat the instance as read-only after init, or synchronise yourself.
 *   - run is deterministic: the same compute type and input bytes give the same status
 *     and output bytes, every time, on every thread. keel may run a task more than once
 *     (after a timeout or a crash) and records one result; differing results would make
 *     that choice matter. Seed any randomness from the input.
 *   - run never blocks indefinitely and never lets a C++ exception, longjmp or signal
 *     escape; keel cannot catch them across a C ABI. Report failures as status codes.
 *   - Memory: input and output belong to keel and are valid only during the call; do
 *     not keep pointers to them. The config passed to init (entries, keys and values)
 *     is valid only during init; copy what you keep. Everything the plugin allocates
 *     is the plugin's to free, at the latest in shutdown.
 *   - Everything the descriptor points to (the name, the compute type array and its
 *     strings, the functions) must stay valid until the library is unloaded; static
 *     storage is the usual choice.
 */
#ifndef KEEL_PLUGIN_H
#define KEEL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. A plugin sets descriptor.abi_version to it;
 * keel refuses a plugin whose version differs from its own. abi_version is the first
 * field of the descriptor in every ABI version, so keel can always read it. Within one
 * ABI version, fields are only ever appended to keel_plugin (see descriptor_bytes). */
#define KEEL_PLUGIN_ABI_VERSION 1u

/* Status codes returned by init and run (int32_t). */
#define KEEL_STATUS_OK ((int32_t)0)
/* The input is malformed (wrong length, a field out of range, a value that would
 * overflow). Permanent: the same input would fail again, so keel never retries it. */
#define KEEL_STATUS_BAD_INPUT ((int32_t)1)
/* output_capacity is too small. The plugin sets *output_bytes to the capacity it needs;
 * keel may call again with a buffer that large, and the same input must not then ask
 * for more (it may still fail otherwise, e.g. with KEEL_STATUS_BAD_INPUT). */
#define KEEL_STATUS_OUTPUT_TOO_SMALL ((int32_t)2)
/* A transient failure (out of memory, a resource busy): keel may retry, with backoff,
 * up to the pool's retries_max. */
#define KEEL_STATUS_FAILED ((int32_t)3)
/* Codes from KEEL_STATUS_PLUGIN_MIN up are the plugin's own permanent failures (never
 * retried); document their meaning with the plugin. Codes 4..63 are reserved to keel. */
#define KEEL_STATUS_PLUGIN_MIN ((int32_t)64)

/* Plugin names: 1 to KEEL_PLUGIN_NAME_BYTES_MAX - 1 characters from [A-Za-z0-9_.-]
 * (they appear in metrics and messages). */
#define KEEL_PLUGIN_NAME_BYTES_MAX 64u
/* Compute type names: 1 to KEEL_COMPUTE_TYPE_CHARS_MAX characters from [a-z0-9_]. They
 * are the names configs ([[pool]] compute_types), compute_request transactions and flow
 * models use, so a plugin is held to the same rule. */
#define KEEL_COMPUTE_TYPE_CHARS_MAX 32u
/* At most this many compute types per plugin. */
#define KEEL_PLUGIN_COMPUTE_TYPES_MAX 64u
/* The size of the error buffer keel passes to init. */
#define KEEL_PLUGIN_ERROR_BYTES 512u

/* One setting of the pool's [pool.config] TOML table, flattened to text by keel:
 *   - a string is its contents, without quotes;
 *   - an integer, float or boolean is its TOML text (42, -1.5, true), numbers in a form
 *     that parses back to the same value;
 *   - an array is its elements' texts joined by ',' (weights = [1, 2.5] gives "1,2.5");
 *   - a nested table gives one entry per leaf with dotted keys ("limits.max").
 * Keys are unique. Both pointers are non-NULL and NUL-terminated. */
typedef struct keel_plugin_config_entry {
  const char* key;
  const char* value;
} keel_plugin_config_entry;

/* The whole flattened table; count may be 0 (then entries may be NULL). */
typedef struct keel_plugin_config {
  const keel_plugin_config_entry* entries;
  size_t count;
} keel_plugin_config;

/* The value of `key`, or NULL when the table has no such key. */
static inline const char* keel_plugin_config_get(const keel_plugin_config* config, const char* key) {
  size_t index;
  if (config == NULL || key == NULL) return NULL;
  for (index = 0; index < config->count; ++index) {
    if (strcmp(config->entries[index].key, key) == 0) return config->entries[index].value;
  }
  return NULL;
}

/* The descriptor a plugin returns from keel_plugin_entry. All fields are required
 * except shutdown. */
typedef struct keel_plugin {
  /* KEEL_PLUGIN_ABI_VERSION the plugin was built against. Always the first field. */
  uint32_t abi_version;
  /* sizeof(keel_plugin) the plugin was built with. keel reads no field beyond it and
   * refuses a descriptor too short for the fields its ABI version requires. */
  uint32_t descriptor_bytes;
  /* The plugin's name, for messages and metrics (see KEEL_PLUGIN_NAME_BYTES_MAX). */
  const char* name;
  /* The names of the compute types this plugin serves: compute_type_count distinct
   * names (1..KEEL_PLUGIN_COMPUTE_TYPES_MAX). run's compute_type is an index into it. */
  const char* const* compute_types;
  uint32_t compute_type_count;
  /* Called once per pool process, before any run. Returns KEEL_STATUS_OK and sets
   * *instance (NULL is allowed: it is passed to run and shutdown as is), or returns
   * non-zero and writes a NUL-terminated, one-line reason into error[0..error_bytes)
   * (keel reports "<path>: init failed: <reason>" and quarantines the plugin). Reject
   * unknown or malformed config keys here rather than failing later in run. */
  int32_t (*init)(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes);
  /* Runs one task: reads input[0..input_bytes), writes output[0..output_capacity) and
   * sets *output_bytes to the bytes written. Called concurrently from many threads with
   * the same instance: must be thread-safe and deterministic for a given compute type
   * and input. input may be NULL when input_bytes is 0. Returns a KEEL_STATUS_* code;
   * *output_bytes matters only with KEEL_STATUS_OK (bytes written) and
   * KEEL_STATUS_OUTPUT_TOO_SMALL (bytes needed). */
  int32_t (*run)(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                 uint8_t* output, size_t output_capacity, size_t* output_bytes);
  /* Called once, after the last run has returned, with what init set; releases it.
   * NULL when there is nothing to release. Not called when init failed. */
  void (*shutdown)(void* instance);
} keel_plugin;

/* The name of the entry point keel looks up with dlsym. */
#define KEEL_PLUGIN_ENTRY_SYMBOL "keel_plugin_entry"

/* Marks the entry point for export: C linkage and default visibility, so it is found
 * even when the plugin is built with hidden visibility (as keel_add_plugin does). */
#ifdef __cplusplus
#define KEEL_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define KEEL_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* The entry point every plugin defines (with KEEL_PLUGIN_EXPORT). Returns the plugin's
 * descriptor, which must stay valid until the library is unloaded; keel calls it once
 * per load, before init. Returning NULL refuses the load. */
KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void);

/* The entry point's type, for the host's dlsym. */
typedef const keel_plugin* (*keel_plugin_entry_function)(void);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* KEEL_PLUGIN_H */
