/* sleep: a test plugin for the worker-pool tests (timeouts, retries, stale completions).
 * Compute type "sleep".
 *   Input:  uint32 sleep_ms (little-endian, at most 600000), then 0..1024 bytes of any
 *           payload (a task tag, say).
 *   Output: the whole input, echoed, once sleep_ms milliseconds have passed (at once,
 *           with no system call, for 0: a task as short as a noop's).
 * BAD_INPUT for a shorter or longer input or a longer sleep. Takes no config. */
#include <errno.h>
#include <keel/plugin.h>
#include <time.h>

#define SLEEP_MS_MAX 600000u
#define SLEEP_PAYLOAD_BYTES_MAX 1024u

static const char* const types[] = {"sleep"};

static int32_t sleep_init(const keel_plugin_config* config, void** instance, char* error, size_t error_bytes) {
  (void)error; (void)error_bytes;
  if (config->count != 0) return KEEL_STATUS_BAD_INPUT;
  *instance = NULL;
  return KEEL_STATUS_OK;
}

static int32_t sleep_run(void* instance, uint32_t compute_type, const uint8_t* input, size_t input_bytes,
                         uint8_t* output, size_t output_capacity, size_t* output_bytes) {
  uint32_t sleep_ms;
  struct timespec remaining;
  (void)instance; (void)compute_type;
  if (input == NULL || input_bytes < 4 || input_bytes > 4 + SLEEP_PAYLOAD_BYTES_MAX) return KEEL_STATUS_BAD_INPUT;
  sleep_ms = (uint32_t)input[0] | (uint32_t)input[1] << 8 | (uint32_t)input[2] << 16 | (uint32_t)input[3] << 24;
  if (sleep_ms > SLEEP_MS_MAX) return KEEL_STATUS_BAD_INPUT;
  *output_bytes = input_bytes;
  if (output_capacity < input_bytes) return KEEL_STATUS_OUTPUT_TOO_SMALL;
  remaining.tv_sec = sleep_ms / 1000;
  remaining.tv_nsec = (long)(sleep_ms % 1000) * 1000000L;
  /* A signal cuts nanosleep short; sleep the rest. */
  while (sleep_ms != 0 && nanosleep(&remaining, &remaining) != 0 && errno == EINTR) {
  }
  memcpy(output, input, input_bytes);
  return KEEL_STATUS_OK;
}

static const keel_plugin descriptor = {KEEL_PLUGIN_ABI_VERSION, sizeof(keel_plugin), "sleep", types, 1,
                                       sleep_init, sleep_run, NULL};

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return &descriptor; }
