// jwt.cpp — see jwt.hpp. libjwt 1.x: jwt_decode checks the signature for the key's algorithm;
// the algorithm, issuer and expiry are checked here.
#include "muster/gateway/jwt.hpp"

#include <jwt.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::gateway {

namespace {
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

const unsigned char* key_bytes(const std::string& k) { return reinterpret_cast<const unsigned char*>(k.data()); }
}  // namespace

JwtSigner::JwtSigner(std::string key, std::string issuer) : key_(std::move(key)), issuer_(std::move(issuer)) {
  if (key_.size() < 32) throw std::invalid_argument("the JWT signing key must hold at least 32 bytes");
}

std::string JwtSigner::sign(const Claims& c) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
  JwtPtr j(raw);
  int rc = jwt_add_grant(j.get(), "sub", c.user.c_str());
  rc |= jwt_add_grant(j.get(), "workspace", c.workspace.c_str());
  rc |= jwt_add_grant(j.get(), "role", c.role.c_str());
  rc |= jwt_add_grant(j.get(), "iss", issuer_.c_str());
  rc |= jwt_add_grant_int(j.get(), "iat", static_cast<long>(c.issued_at));
  rc |= jwt_add_grant_int(j.get(), "exp", static_cast<long>(c.expires_at));
  rc |= jwt_set_alg(j.get(), JWT_ALG_HS256, key_bytes(key_), static_cast<int>(key_.size()));
  if (rc != 0) throw std::runtime_error("cannot build the JWT");
  char* out = jwt_encode_str(j.get());
  if (!out) throw std::runtime_error("cannot encode the JWT");
  std::string token(out);
  std::free(out);
  return token;
}

std::variant<Claims, std::string> JwtSigner::verify(std::string_view token, std::int64_t now) const {
  if (token.empty() || token.size() > 4096) return std::string("malformed");
  std::string text(token);
  // Refuse an unsigned header before libjwt sees it ("alg":"none" decodes without a key check).
  if (std::count(text.begin(), text.end(), '.') != 2 || text.back() == '.') return std::string("malformed or unsigned");
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), key_bytes(key_), static_cast<int>(key_.size())) != 0 || !raw)
    return std::string("bad signature or encoding");
  JwtPtr j(raw);
  if (jwt_get_alg(j.get()) != JWT_ALG_HS256) return std::string("algorithm is not HS256");
  auto grant = [&](const char* name) -> std::string {
    const char* v = jwt_get_grant(j.get(), name);
    return v ? v : "";
  };
  if (grant("iss") != issuer_) return std::string("wrong issuer");
  Claims c;
  c.user = grant("sub");
  c.workspace = grant("workspace");
  c.role = grant("role");
  errno = 0;
  c.issued_at = jwt_get_grant_int(j.get(), "iat");
  c.expires_at = jwt_get_grant_int(j.get(), "exp");
  if (errno == ENOENT || c.expires_at == 0) return std::string("no expiry");
  if (c.user.empty() || c.workspace.empty() || c.role.empty()) return std::string("claims missing");
  if (now >= c.expires_at) return std::string("expired");
  return c;
}

}  // namespace muster::gateway
