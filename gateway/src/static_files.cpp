// static_files.cpp — serves the dashboard bundle (static_files.hpp).
#include "static_files.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <sstream>
#include <string_view>

#include <spdlog/spdlog.h>

#include "muster/bridge/url.hpp"

namespace muster::gateway {

namespace {

// The page loads only its own files and talks only to this gateway ('self' covers ws:/wss: of
// the same host); nothing inline, nothing remote, no framing.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// Largest file served (the bundle is well under 1 MiB; anything bigger is not the dashboard's).
constexpr std::uintmax_t kMaxFileBytes = 16 * 1024 * 1024;

std::string_view content_type_of(const std::filesystem::path& p) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 12> types{{
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".woff2", "font/woff2"},
      {".webmanifest", "application/manifest+json"},
  }};
  auto ext = p.extension().string();
  for (auto& [e, t] : types)
    if (ext == e) return t;
  return "application/octet-stream";
}

// esbuild names bundles <name>-<8 hash characters, A-Z and 2-7>.<ext>: such a file never changes.
bool content_hashed(const std::string& name) {
  auto dot = name.find('.');
  auto dash = name.rfind('-', dot);
  if (dot == std::string::npos || dash == std::string::npos || dot - dash - 1 != 8) return false;
  for (auto i = dash + 1; i < dot; ++i)
    if (!std::isupper(static_cast<unsigned char>(name[i])) && !std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

Response plain(const Request& req, http::status status, std::string_view message) {
  auto res = json_response(req, status, error_body(message));
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set("X-Content-Type-Options", "nosniff");
  return res;
}

// The file a dashboard path names, relative to the root; nullopt when the path tries to leave
// it (a `.` or `..` segment, decoded or not, a backslash, a NUL).
std::optional<std::filesystem::path> relative_file(std::string_view raw_path) {
  std::string path = bridge::url_decode(raw_path);
  if (path == "/" || path == "/index.html") return std::filesystem::path("index.html");
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) return std::nullopt;
  std::filesystem::path rel;
  std::size_t start = 1;  // after the leading '/'
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view seg(path.data() + start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return std::nullopt;
    rel /= std::string(seg);
    start = end + 1;
  }
  return rel;
}

}  // namespace

std::filesystem::path default_web_root() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::filesystem::path("web");
  auto beside = exe.parent_path() / "web";
  if (std::filesystem::exists(beside / "index.html", ec)) return beside;
  auto installed = exe.parent_path().parent_path() / "share" / "muster" / "gateway" / "web";
  if (std::filesystem::exists(installed / "index.html", ec)) return installed;
  return beside;
}

StaticFiles::StaticFiles(std::filesystem::path root) : root_(std::move(root)) {}

bool StaticFiles::built() const {
  std::error_code ec;
  return std::filesystem::is_regular_file(root_ / "index.html", ec);
}

std::optional<Response> StaticFiles::serve(const Request& req) const {
  std::string_view path = bridge::target_path(req.target());
  bool page = path == "/" || path == "/index.html";
  if (!page && path.rfind("/assets/", 0) != 0) return std::nullopt;
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    auto res = plain(req, http::status::method_not_allowed, "Method not allowed");
    res.set(http::field::allow, "GET, HEAD");
    return res;
  }
  auto rel = relative_file(path);
  if (!rel) {
    spdlog::warn("dashboard: a path leaving the web root was refused");
    return plain(req, http::status::bad_request, "Bad path");
  }
  std::error_code ec;
  auto file = root_ / *rel;
  // A symlink inside the root may still point out of it: compare the real paths.
  auto real = std::filesystem::weakly_canonical(file, ec);
  auto real_root = std::filesystem::weakly_canonical(root_, ec);
  auto [mismatch, _] = std::mismatch(real_root.begin(), real_root.end(), real.begin(), real.end());
  if (ec || mismatch != real_root.end()) return plain(req, http::status::bad_request, "Bad path");
  if (!std::filesystem::is_regular_file(real, ec)) {
    if (page)
      return plain(req, http::status::not_found,
                   fmt::format("The dashboard is not built in {}: run `npm ci` in gateway/web, then build the target "
                               "muster-gateway-web (or give --web-root)", root_.string()));
    return plain(req, http::status::not_found, "Not found");
  }
  auto size = std::filesystem::file_size(real, ec);
  auto mtime = std::filesystem::last_write_time(real, ec);
  if (ec || size > kMaxFileBytes) return plain(req, http::status::not_found, "Not found");
  std::string etag = fmt::format("\"{:x}-{:x}\"", size, static_cast<std::uint64_t>(mtime.time_since_epoch().count()));

  Response res{http::status::ok, req.version() ? req.version() : 11};
  res.set(http::field::server, "muster-gateway");
  res.set(http::field::content_type, content_type_of(real));
  res.set(http::field::etag, etag);
  res.set(http::field::cache_control, !page && content_hashed(real.filename().string())
                                          ? "public, max-age=31536000, immutable"
                                          : "no-cache");
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("X-Frame-Options", "DENY");
  res.keep_alive(req.keep_alive());
  if (auto inm = req.find(http::field::if_none_match); inm != req.end() && inm->value() == etag) {
    res.result(http::status::not_modified);
    res.prepare_payload();  // no body
    return res;
  }
  std::ifstream in(real, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in && !in.eof()) return plain(req, http::status::internal_server_error, "The file cannot be read");
  res.body() = std::move(body).str();
  res.prepare_payload();
  if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays the file's
  return res;
}

}  // namespace muster::gateway
