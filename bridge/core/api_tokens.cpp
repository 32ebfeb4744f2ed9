// api_tokens.cpp — see api_tokens.hpp.
#include "muster/bridge/api_tokens.hpp"

#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <openssl/crypto.h>
#include <fmt/format.h>

namespace muster::bridge {

namespace {
std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) out.emplace_back(line.substr(start, i - start));
  }
  return out;
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
}  // namespace

ApiTokens ApiTokens::parse(std::string_view text) {
  ApiTokens out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto w = words(line);
    if (w.empty() || w[0].front() == '#') continue;
    if (w.size() < 2 || w.size() > 3)
      throw std::invalid_argument(fmt::format("tokens file line {}: expected '<token> <user> [write|read]'", line_no));
    ApiToken info{w[1], true};
    if (w.size() == 3) {
      if (w[2] == "write" || w[2] == "rw") info.write = true;
      else if (w[2] == "read" || w[2] == "ro" || w[2] == "read-only") info.write = false;
      else throw std::invalid_argument(fmt::format("tokens file line {}: access must be 'write' or 'read', not '{}'", line_no, w[2]));
    }
    if (out.find(w[0])) throw std::invalid_argument(fmt::format("tokens file line {}: duplicate token", line_no));
    out.add(w[0], std::move(info));
  }
  return out;
}

ApiTokens ApiTokens::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("cannot read tokens file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str());
}

void ApiTokens::add(std::string token, ApiToken info) { tokens_[std::move(token)] = std::move(info); }

const ApiToken* ApiTokens::find(std::string_view token) const {
  // Compare in constant time against every token, so timing does not reveal a prefix.
  const ApiToken* found = nullptr;
  for (auto& [t, info] : tokens_) {
    if (t.size() == token.size() && CRYPTO_memcmp(t.data(), token.data(), t.size()) == 0) found = &info;
  }
  return found;
}

AuthResult ApiTokens::authorize(std::optional<std::string_view> authorization, bool need_write) const {
  AuthResult r;
  if (!authorization || trim(*authorization).empty()) {
    r.status = 401;
    r.error = std::string(kMissingAuthorization);
    return r;
  }
  std::string_view h = trim(*authorization);
  constexpr std::string_view bearer = "bearer ";
  bool is_bearer = h.size() > bearer.size();
  for (std::size_t i = 0; is_bearer && i < bearer.size(); ++i)
    is_bearer = std::tolower(static_cast<unsigned char>(h[i])) == bearer[i];
  const ApiToken* t = is_bearer ? find(trim(h.substr(bearer.size()))) : nullptr;
  if (!t) {
    r.status = 401;
    r.error = std::string(kInvalidApiToken);
    return r;
  }
  if (need_write && !t->write) {
    r.status = 403;
    r.error = std::string(kInvalidApiToken);
    return r;
  }
  r.ok = true;
  r.user = t->user;
  r.write = t->write;
  return r;
}

}  // namespace muster::bridge
