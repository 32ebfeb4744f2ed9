// jwt.hpp — the gateway's session tokens: JWT, HS256, signed with libjwt (Debian libjwt-dev).
// Owns: which claims a token carries (sub, workspace, role, iss, iat, exp) and what makes one
// valid: HS256 only, signature, issuer, not expired, every claim present.
// Must never: accept another algorithm ("none" included), or log a token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace muster::gateway {

struct Claims {
  std::string user, workspace, role;
  std::int64_t issued_at = 0, expires_at = 0;  // unix seconds
};

class JwtSigner {
 public:
  // `key`: at least 32 bytes. Throws std::invalid_argument otherwise.
  explicit JwtSigner(std::string key, std::string issuer = "muster-gateway");
  std::string sign(const Claims& claims) const;
  // The claims of a valid token at `now` (unix seconds), or why it is not valid.
  std::variant<Claims, std::string> verify(std::string_view token, std::int64_t now) const;

 private:
  std::string key_, issuer_;
};

}  // namespace muster::gateway
