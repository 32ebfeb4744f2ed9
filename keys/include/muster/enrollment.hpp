// enrollment.hpp — the daemon's enrollment decision: a decoded EnrollRequest, the CURVE key
// the request really arrived with, the peer's address and the time in; a stored identity or a
// refusal out.
// Order of checks: rate limit → fields → request key == connection key → token (format,
// daemon key, id, secret, revoked, expired, uses) → role matches the token → key not enrolled
// differently or revoked → take one token use → store the identity.
// Owns: that order, and the rule that a failure takes no token use and stores nothing.
// Must never: touch a socket; trust a public key the connection did not prove (CURVE proves
// possession of the secret key for the connection key only); tell a stranger more than
// TokenStore's messages do.
// Thread-safe: enroll() is serialised internally.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "muster/identity_store.hpp"
#include "muster/rate_limiter.hpp"
#include "muster/token_store.hpp"

namespace muster::keys {

// The fields of a wire EnrollRequest (schema/enroll.fbs), decoded by the daemon.
struct EnrollRequestFields {
  std::string token;
  std::string public_key;  // Z85
  std::string role;        // "worker" | "client" | "admin" | "gateway" | "" (empty: the token's role)
  std::string name;        // empty: the token's label
  std::string hostname;
};

// The wire error code to answer with. The numeric values equal muster::wire::ErrorCode
// (schema/common.fbs), so the daemon can static_cast and static_assert them.
enum class EnrollErrorCode : std::uint16_t {
  None = 0,
  InvalidRequest = 5,
  PermissionDenied = 6,
  BadMessage = 9,
  Internal = 10,
};

// Why an enrollment failed: for logs, metrics and tests. Not sent on the wire as such.
enum class EnrollFailure {
  None,
  RateLimited,     // too many recent failures from this peer address
  InvalidField,    // role, name or hostname unacceptable; public_key not a Z85 key
  KeyMismatch,     // public_key differs from the connection's CURVE key
  MalformedToken,
  WrongDaemonKey,  // the token was minted by another daemon
  UnknownToken,    // no such token, or the secret does not match
  TokenExpired,
  TokenUsedUp,
  TokenRevoked,
  RoleMismatch,    // the request asks for a role the token was not minted for
  KeyConflict,     // the key is already enrolled with another role or workspace
  KeyRevoked,      // the key belongs to a revoked identity
  Internal,        // the stores could not be saved
};
std::string_view enroll_failure_name(EnrollFailure f);  // "rate-limited", "key-mismatch", ...

struct EnrollOutcome {
  bool ok = false;
  std::optional<Identity> identity;  // ok: the enrolled identity
  bool created = false;              // ok: false when an existing identity was returned
  EnrollFailure failure = EnrollFailure::None;
  EnrollErrorCode code = EnrollErrorCode::None;
  std::string message;  // safe to send to the peer (EnrollResponse.error)
  std::string log;      // for the daemon's log: adds token ids and keys; never a secret
  std::optional<std::chrono::milliseconds> retry_after;  // RateLimited: how long to wait
};

class Enrollment {
 public:
  // The stores and the limiter must outlive this object. `limiter` may be null (no limiting).
  Enrollment(TokenStore& tokens, IdentityStore& identities, RateLimiter* limiter = nullptr);

  // `connection_public_key` is the Z85 CURVE public key of the connection the request came on
  // (from the ZAP request, or the message property "User-Id"/metadata the daemon set for it).
  // `peer_address` keys the rate limiter (IP address, no port).
  // Re-enrolling a key that is already enrolled with the same role and workspace, with a valid
  // token, returns that identity and takes no token use. A retry with the very token that
  // enrolled the key succeeds even if that token is now used up (the peer lost the first
  // answer); it must still be unexpired and unrevoked.
  // Rate limiting: every refusal but RateLimited and Internal counts as a failure of
  // `peer_address`; only a real first enrollment (outcome.created) clears the address's record.
  // A re-enrollment neither counts nor clears.
  EnrollOutcome enroll(const EnrollRequestFields& req, std::string_view connection_public_key,
                       std::string_view peer_address, TimePoint now);

 private:
  EnrollOutcome decide(const EnrollRequestFields& req, std::string_view connection_public_key,
                       TimePoint now);

  TokenStore& tokens_;
  IdentityStore& identities_;
  RateLimiter* limiter_;
  std::mutex mu_;
};

}  // namespace muster::keys
