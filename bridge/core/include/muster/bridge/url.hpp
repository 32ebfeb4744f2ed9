// url.hpp — the small amount of URL handling the bridge needs: split an http(s)/ws(s) URL,
// percent-encode a query value, read a query parameter, append one.
// Owns: default ports per scheme, how `?auth=<token>` is added to a websocket_url.
// Must never: accept a scheme it cannot speak (only http, https, ws, wss).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace muster::bridge {

struct Url {
  std::string scheme;  // lower case: http, https, ws or wss
  std::string host;    // without brackets for IPv6 literals
  std::string port;    // always set (default 80/443 by scheme)
  std::string target;  // path and query, at least "/"
  bool tls() const { return scheme == "https" || scheme == "wss"; }
  // "host" or "host:port" when the port is not the scheme's default (for the Host header).
  std::string host_header() const;
  std::string str() const;
};

// Throws std::invalid_argument naming what is wrong.
Url parse_url(std::string_view text);

// Percent-encodes everything except RFC 3986 unreserved characters.
std::string url_encode(std::string_view s);
// Decodes %XX escapes; '+' stays '+' (tokens are not form data). Bad escapes are kept as is.
std::string url_decode(std::string_view s);

// The path of a request target, without the query.
std::string_view target_path(std::string_view target);
// The decoded value of query parameter `name` in a request target or URL, if present.
std::optional<std::string> query_param(std::string_view target, std::string_view name);
// Appends `name=<url-encoded value>` with '?' or '&' as the URL needs.
std::string append_query_param(std::string_view url, std::string_view name, std::string_view value);

}  // namespace muster::bridge
