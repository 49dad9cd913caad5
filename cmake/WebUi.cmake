# The chat web UI (webui/): built with npm when it can be, then embedded in
# the binary as a generated C++ source (cmake/embed_webui.cmake).
#
#   VOLGA_WEBUI=AUTO (default)  build it when npm and webui/node_modules are present,
#                               otherwise note it and embed the "UI not built" page
#   VOLGA_WEBUI=ON              the same, but a missing toolchain is an error
#   VOLGA_WEBUI=OFF             never build it
#
# Sets VOLGA_WEBUI_SOURCE: the generated source to compile into volga_server.
set(VOLGA_WEBUI AUTO CACHE STRING "Build and embed the chat web UI: AUTO, ON or OFF")
set_property(CACHE VOLGA_WEBUI PROPERTY STRINGS AUTO ON OFF)

set(_webui_dir ${PROJECT_SOURCE_DIR}/webui)
set(_webui_dist ${CMAKE_BINARY_DIR}/webui/dist)
set(VOLGA_WEBUI_SOURCE ${CMAKE_BINARY_DIR}/webui/webui_assets.cpp)
find_program(VOLGA_NPM npm)
find_program(VOLGA_NODE node)
set(_node_version "")
if(VOLGA_NODE AND EXISTS "${VOLGA_NODE}")
  execute_process(COMMAND ${VOLGA_NODE} --version OUTPUT_VARIABLE _node_version OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  string(REGEX REPLACE "^v" "" _node_version "${_node_version}")
endif()

set(_webui_why "")
if(VOLGA_WEBUI STREQUAL "OFF")
  set(_webui_why "VOLGA_WEBUI=OFF")
elseif(NOT VOLGA_NPM OR NOT VOLGA_NODE OR NOT EXISTS "${VOLGA_NPM}" OR NOT EXISTS "${VOLGA_NODE}")
  set(_webui_why "npm or node was not found")
elseif(_node_version VERSION_LESS 20.19)
  # Vite's floor; Debian 12's own nodejs is 18 (NodeSource's 20 or 22 works).
  set(_webui_why "Node.js ${_node_version} is older than the 20.19 that Vite needs")
elseif(NOT EXISTS ${_webui_dir}/node_modules/vite/package.json)
  set(_webui_why "webui/node_modules is missing (run scripts/install-deps.sh, or npm ci in webui/)")
endif()

if(_webui_why STREQUAL "")
  file(GLOB_RECURSE _webui_inputs CONFIGURE_DEPENDS ${_webui_dir}/src/*)
  list(APPEND _webui_inputs ${_webui_dir}/index.html ${_webui_dir}/package.json ${_webui_dir}/package-lock.json
       ${_webui_dir}/vite.config.ts ${_webui_dir}/tsconfig.json)
  add_custom_command(
    OUTPUT ${VOLGA_WEBUI_SOURCE}
    COMMAND ${VOLGA_NPM} run --silent build -- --outDir ${_webui_dist} --emptyOutDir --logLevel warn
    COMMAND ${CMAKE_COMMAND} -DDIST=${_webui_dist} -DOUT=${VOLGA_WEBUI_SOURCE} -P ${PROJECT_SOURCE_DIR}/cmake/embed_webui.cmake
    WORKING_DIRECTORY ${_webui_dir}
    DEPENDS ${_webui_inputs} ${PROJECT_SOURCE_DIR}/cmake/embed_webui.cmake
    COMMENT "Building the web UI (npm run build in webui/) and embedding it"
    VERBATIM)
  message(STATUS "Web UI: built with ${VOLGA_NPM} and embedded in volga serve")
else()
  if(VOLGA_WEBUI STREQUAL "ON")
    message(FATAL_ERROR "VOLGA_WEBUI=ON but the web UI cannot be built: ${_webui_why}")
  endif()
  add_custom_command(
    OUTPUT ${VOLGA_WEBUI_SOURCE}
    COMMAND ${CMAKE_COMMAND} -DOUT=${VOLGA_WEBUI_SOURCE} -P ${PROJECT_SOURCE_DIR}/cmake/embed_webui.cmake
    DEPENDS ${PROJECT_SOURCE_DIR}/cmake/embed_webui.cmake
    COMMENT "Web UI not built: embedding the page that says how to build it"
    VERBATIM)
  message(NOTICE "Web UI: NOT built (${_webui_why}). volga serve will answer / with a page saying how to build it; "
                 "the engine and the API are unaffected.")
endif()
