// ws_token.hpp — the host mode's short-lived WebSocket tokens: HMAC-SHA256 signed, bound to
// one user, valid for a fixed time (60 s by default, as Hurozo's).
// Owns: the token format `base64url(payload) "." base64url(hmac)` with payload
// `2.<expiry unix ms>.<nonce>.<base64url(node)>.<user>` (`node`: the name registered when the
// token was issued, possibly empty; version 1, `1.<expiry>.<nonce>.<user>`, is still
// accepted); only URL-safe characters, so a worker may paste it into `?auth=` unencoded.
// Must never: accept a token whose signature does not verify (constant-time compare) or that
// has expired.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace muster::bridge {

std::string base64url_encode(std::string_view bytes);
// nullopt on characters outside the URL-safe alphabet; padding '=' is tolerated.
std::optional<std::string> base64url_decode(std::string_view text);

// HMAC-SHA256 of `data` with `key` (32 raw bytes).
std::string hmac_sha256(std::string_view key, std::string_view data);

// `n` cryptographically random bytes (OpenSSL RAND_bytes). Throws std::runtime_error on failure.
std::string random_bytes(std::size_t n);

struct VerifiedToken {
  std::string user;
  std::int64_t expires_ms = 0;
  std::string node;  // the name whose registration issued the token ("" if none / version 1)
};

class WsTokenSigner {
 public:
  // `secret`: raw key bytes, at least 16.
  explicit WsTokenSigner(std::string secret);
  // A signer with a fresh random 32-byte secret (tokens die with the process).
  static WsTokenSigner random();

  // `node`: the name being registered, carried in the token so that the WebSocket opened with
  // it is known to serve that name (keep it short: it travels in the URL).
  std::string sign(std::string_view user, std::int64_t now_ms, std::int64_t ttl_ms,
                   std::string_view node = {}) const;
  // The token's user if the signature verifies and now_ms < expiry. On failure, `why` (if
  // given) says "malformed", "bad signature" or "expired".
  std::optional<VerifiedToken> verify(std::string_view token, std::int64_t now_ms,
                                      std::string* why = nullptr) const;

 private:
  std::string secret_;
};

}  // namespace muster::bridge
