// The chat web UI, embedded in the binary: the files of webui/dist (built by
// CMake with npm, see cmake/WebUi.cmake) as a generated table, served at /
// and /assets/... without an API key (the UI asks for one when the API
// needs it). When the UI was not built, / answers a short page saying how
// to build it. Everything here is immutable: safe from any thread.
#pragma once

#include <span>
#include <string_view>

namespace httplib {
class Server;
}

namespace volga::server {

struct WebAsset {
  std::string_view path;          // URL path, e.g. "/index.html", "/assets/index-1a2b.js"
  std::string_view content_type;
  std::string_view body;
};

// The embedded files (generated at build time; empty when the UI was not built).
std::span<const WebAsset> web_assets();

// The asset at a URL path ("/" is "/index.html"), or null.
const WebAsset* find_web_asset(std::string_view path);

// The page served at / when the UI is not built.
std::string_view web_ui_fallback_page();

// Registers GET / and GET /assets/... on `http`.
void add_web_ui_routes(httplib::Server& http);

}  // namespace volga::server
