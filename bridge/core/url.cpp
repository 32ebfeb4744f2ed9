// url.cpp — see url.hpp.
#include "muster/bridge/url.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::bridge {

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}
std::string default_port(const std::string& scheme) {
  return (scheme == "https" || scheme == "wss") ? "443" : "80";
}
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string Url::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != default_port(scheme)) h += ":" + port;
  return h;
}

std::string Url::str() const { return scheme + "://" + host_header() + target; }

Url parse_url(std::string_view text) {
  auto sep = text.find("://");
  if (sep == std::string_view::npos) throw std::invalid_argument(fmt::format("'{}' is not a URL (no scheme)", text));
  Url u;
  u.scheme = lower(text.substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https" && u.scheme != "ws" && u.scheme != "wss")
    throw std::invalid_argument(fmt::format("unsupported URL scheme '{}' in '{}'", u.scheme, text));
  std::string_view rest = text.substr(sep + 3);
  auto slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string_view tail = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority = authority.substr(at + 1);
  if (authority.empty()) throw std::invalid_argument(fmt::format("no host in URL '{}'", text));
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument(fmt::format("bad IPv6 host in '{}'", text));
    u.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw std::invalid_argument(fmt::format("bad host in '{}'", text));
      u.port = std::string(after.substr(1));
    }
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      u.host = std::string(authority.substr(0, colon));
      u.port = std::string(authority.substr(colon + 1));
    } else {
      u.host = std::string(authority);
    }
  }
  if (u.host.empty()) throw std::invalid_argument(fmt::format("no host in URL '{}'", text));
  if (u.port.empty()) u.port = default_port(u.scheme);
  if (!std::all_of(u.port.begin(), u.port.end(), [](unsigned char c) { return std::isdigit(c); }) ||
      u.port.size() > 5 || std::stoi(u.port) > 65535 || std::stoi(u.port) == 0)
    throw std::invalid_argument(fmt::format("bad port in URL '{}'", text));
  if (auto hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
  u.target = std::string(tail);
  if (u.target.empty() || u.target.front() == '?') u.target = "/" + u.target;
  return u;
}

std::string url_encode(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string_view target_path(std::string_view target) {
  auto q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (url_decode(key) == name)
      return eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return std::nullopt;
}

std::string append_query_param(std::string_view url, std::string_view name, std::string_view value) {
  std::string out(url);
  auto hash = out.find('#');
  std::string fragment;
  if (hash != std::string::npos) {
    fragment = out.substr(hash);
    out.resize(hash);
  }
  char sep = out.find('?') == std::string::npos ? '?' : (out.back() == '?' || out.back() == '&' ? '\0' : '&');
  if (sep) out += sep;
  out += url_encode(name) + "=" + url_encode(value);
  return out + fragment;
}

}  // namespace muster::bridge
