/* A shared library that is not a keel plugin: it defines no keel_plugin_entry. */
#include <keel/plugin.h>

__attribute__((visibility("default"))) int32_t keel_plugin_entry_misspelt(void) { return 0; }
