# KeelPlugin.cmake: build a keel compute plugin in one line.
#
#   include(/path/to/keel/plugins/KeelPlugin.cmake)
#   keel_add_plugin(my my_plugin.c)        # -> ${CMAKE_BINARY_DIR}/plugins/keel_my.so
#
# keel_add_plugin(<name> [OUTPUT_DIRECTORY <dir>] <sources...>) adds the MODULE library
# target keel_plugin_<name> (the prefix keeps plugin targets apart from keel's own
# libraries), built as keel_<name>.so into ${CMAKE_BINARY_DIR}/plugins/ (or <dir>). Its
# sources see <keel/plugin.h>, and are compiled with hidden visibility, so the library
# exports keel_plugin_entry (marked KEEL_PLUGIN_EXPORT) and nothing else by accident.
# Link what else the plugin needs as usual: target_link_libraries(keel_plugin_<name> ...).
# Works inside keel's tree and from any other CMake project (CMake 3.17 or newer).
include_guard(GLOBAL)

function(keel_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 KEEL_PLUGIN "" "OUTPUT_DIRECTORY" "")
  set(sources ${KEEL_PLUGIN_UNPARSED_ARGUMENTS})
  if(NOT name MATCHES "^[A-Za-z0-9_]+$")
    message(FATAL_ERROR "keel_add_plugin: plugin name '${name}' must be letters, digits and '_'")
  endif()
  if(NOT sources)
    message(FATAL_ERROR "keel_add_plugin(${name}): no source files given")
  endif()
  if(NOT KEEL_PLUGIN_OUTPUT_DIRECTORY)
    set(KEEL_PLUGIN_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/plugins")
  endif()
  set(target keel_plugin_${name})
  add_library(${target} MODULE ${sources})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "keel_${name}"
    SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY "${KEEL_PLUGIN_OUTPUT_DIRECTORY}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  # CMAKE_CURRENT_FUNCTION_LIST_DIR is this file's folder wherever the function is called.
  target_include_directories(${target} PRIVATE "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/include")
endfunction()
