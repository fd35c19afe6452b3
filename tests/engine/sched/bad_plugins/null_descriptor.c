/* A plugin whose entry point returns no descriptor. */
#include <keel/plugin.h>

KEEL_PLUGIN_EXPORT const keel_plugin* keel_plugin_entry(void) { return NULL; }
