// token_source.cpp — env var, flag file, XDG default: the first that has a token wins.
// Must never: include the token text in a log line or an exception.
#include "muster/token_source.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/secure_file.hpp"

namespace muster::keys {
namespace fs = std::filesystem;

namespace {

std::string trim(std::string s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::size_t b = 0, e = s.size();
  while (b < e && ws(s[b])) ++b;
  while (e > b && ws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

std::optional<FoundToken> read_token_file(const fs::path& path, bool must_exist) {
  auto text = read_file(path);
  if (!text) {
    if (must_exist)
      throw std::runtime_error(fmt::format("enrollment token file {} does not exist", path.string()));
    return std::nullopt;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    spdlog::warn("enrollment token file {} can be read by other users; consider: chmod 600 {}",
                 path.string(), path.string());
  std::string tok = trim(std::move(*text));
  if (tok.empty()) {
    if (must_exist) throw std::runtime_error(fmt::format("enrollment token file {} is empty", path.string()));
    return std::nullopt;
  }
  return FoundToken{std::move(tok), "file " + path.string()};
}

}  // namespace

TokenSourceInputs token_source_from_env(std::optional<fs::path> token_file_flag) {
  TokenSourceInputs in;
  in.env_token = env(kTokenEnvVar);
  in.token_file = std::move(token_file_flag);
  in.xdg_config_home = env("XDG_CONFIG_HOME");
  in.home = env("HOME");
  return in;
}

std::optional<fs::path> default_token_file(const TokenSourceInputs& in) {
  if (in.xdg_config_home && !in.xdg_config_home->empty() && fs::path(*in.xdg_config_home).is_absolute())
    return fs::path(*in.xdg_config_home) / "muster" / "enrollment-token";
  if (in.home && !in.home->empty()) return fs::path(*in.home) / ".config" / "muster" / "enrollment-token";
  return std::nullopt;
}

std::optional<FoundToken> find_enrollment_token(const TokenSourceInputs& in) {
  if (in.env_token) {
    std::string tok = trim(*in.env_token);
    if (!tok.empty()) return FoundToken{std::move(tok), kTokenEnvVar};
  }
  if (in.token_file) return read_token_file(*in.token_file, true);
  if (auto def = default_token_file(in)) return read_token_file(*def, false);
  return std::nullopt;
}

}  // namespace muster::keys
