// api_tokens.hpp — the host mode's Bearer API tokens: the tokens file and the check every
// HTTP API call goes through.
// Owns: the tokens file format, the exact error strings and status codes for missing, wrong
// and read-only tokens.
// Must never: let a read-only token through a write endpoint, or log a token.
//
// Tokens file: one token a line, `<token> <user> [write|read]` (default write; `rw`/`ro` are
// accepted too); blank lines and lines starting with '#' are ignored.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace muster::bridge {

struct ApiToken {
  std::string user;
  bool write = true;
};

// The outcome of checking an Authorization header.
struct AuthResult {
  bool ok = false;
  int status = 200;   // 401 or 403 when !ok
  std::string error;  // the reference's exact string when !ok
  std::string user;
  bool write = false;
};

inline constexpr std::string_view kMissingAuthorization = "Missing Authorization header";
inline constexpr std::string_view kInvalidApiToken = "Invalid API token";

class ApiTokens {
 public:
  // Throws std::invalid_argument naming the line for a malformed file.
  static ApiTokens parse(std::string_view text);
  // Reads and parses a file; throws std::runtime_error if it cannot be read.
  static ApiTokens load(const std::string& path);

  void add(std::string token, ApiToken info);
  const ApiToken* find(std::string_view token) const;
  std::size_t size() const { return tokens_.size(); }

  // `authorization` is the header's value (nullopt: no header). Missing header: 401
  // "Missing Authorization header"; not `Bearer <known token>`: 401 "Invalid API token";
  // a read-only token where `need_write`: 403 "Invalid API token".
  AuthResult authorize(std::optional<std::string_view> authorization, bool need_write) const;

 private:
  std::unordered_map<std::string, ApiToken> tokens_;
};

}  // namespace muster::bridge
