// static_files.hpp — the dashboard's files (gateway/web, bundled at build time into one
// directory, docs/DASHBOARD.md) served by the gateway: GET or HEAD of `/` (index.html) and of
// `/assets/<file>`, with their content types, caching headers and a Content-Security-Policy
// that lets the page load and connect to nothing but this gateway.
// Owns: which request paths are the dashboard's, the mapping of such a path to a file.
// Must never: serve a file outside the web root (`..`, `%2e%2e`, a symlink leading out), list a
// directory, or let the page load anything from another origin.
#pragma once

#include <filesystem>
#include <optional>

#include "gateway.hpp"

namespace muster::gateway {

class StaticFiles {
 public:
  // `root` need not exist yet (the bundle may be built after the gateway starts).
  explicit StaticFiles(std::filesystem::path root);

  // The answer to `req` when its path is the dashboard's (`/`, `/index.html`, `/assets/...`),
  // else nullopt (the caller routes it on). 404 for a missing file (with how to build the
  // bundle when index.html is missing), 400 for a path that leaves the root, 405 for methods
  // other than GET and HEAD, 304 when If-None-Match names the file's ETag.
  std::optional<Response> serve(const Request& req) const;

  const std::filesystem::path& root() const { return root_; }
  // True when the bundle is there (index.html exists).
  bool built() const;

 private:
  std::filesystem::path root_;
};

// Where the bundle is when --web-root is not given: `web/` beside the executable (the build
// tree: build/gateway/web), else `../share/muster/gateway/web` from it (an install).
std::filesystem::path default_web_root();

}  // namespace muster::gateway
