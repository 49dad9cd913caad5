#include "server/webui.h"

#include <httplib.h>

namespace volga::server {

namespace {

// No script runs but the UI's own, nothing loads from elsewhere: model
// output that slipped through as markup could not execute or call out.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'";

// cpp-httplib compresses text types (brotli or gzip) when the browser accepts it.
void common_headers(httplib::Response& res) {
  res.set_header("Vary", "Accept-Encoding");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
}

void serve_page(httplib::Response& res) {
  common_headers(res);
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("Cache-Control", "no-cache");  // revalidate: a new build brings new asset names
  if (const WebAsset* index = find_web_asset("/index.html")) {
    res.set_content(index->body.data(), index->body.size(), std::string(index->content_type));
  } else {
    const std::string_view page = web_ui_fallback_page();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  }
}

}  // namespace

const WebAsset* find_web_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const WebAsset& a : web_assets())
    if (a.path == path) return &a;
  return nullptr;
}

std::string_view web_ui_fallback_page() {
  return R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Volga</title>
<style>body{font-family:system-ui,sans-serif;max-width:44em;margin:3em auto;padding:0 1em;line-height:1.5}code,pre{background:#f2f2f2;padding:2px 4px}</style>
</head><body>
<h1>Volga is running</h1>
<p>The chat web UI was not built into this binary (CMake found no <code>npm</code> or no
<code>webui/node_modules</code> when it was configured). The API works:
<code>POST /v1/chat/completions</code>, <code>POST /v1/completions</code>, <code>POST /v1/responses</code>,
<code>GET /v1/models</code>, <code>GET /health</code>, <code>GET /metrics</code>.</p>
<p>To build the UI, install Node.js and npm, then from the source tree run</p>
<pre>scripts/install-deps.sh        # or: (cd webui &amp;&amp; npm ci)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build</pre>
<p>and start <code>volga serve</code> again.</p>
</body></html>
)";
}

void add_web_ui_routes(httplib::Server& http) {
  http.Get("/", [](const httplib::Request&, httplib::Response& res) { serve_page(res); });
  http.Get("/index.html", [](const httplib::Request&, httplib::Response& res) { serve_page(res); });
  http.Get(R"(/assets/[^/]+)", [](const httplib::Request& req, httplib::Response& res) {
    const WebAsset* a = find_web_asset(req.path);
    if (!a) {
      res.status = 404;  // the error handler writes the JSON hint
      return;
    }
    common_headers(res);
    // Vite puts a content hash in every asset name: cache for good.
    res.set_header("Cache-Control", "public, max-age=31536000, immutable");
    res.set_content(a->body.data(), a->body.size(), std::string(a->content_type));
  });
}

}  // namespace volga::server
