// enrollment.cpp — the enrollment decision.
// Must never: consume a token use unless the identity is then stored (refund on failure),
// count a rate-limited or internal failure against the peer, or let anything but a real first
// enrollment clear the peer's failure record.
#include "muster/enrollment.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/names.hpp"

namespace muster::keys {

std::string_view enroll_failure_name(EnrollFailure f) {
  switch (f) {
    case EnrollFailure::None: return "ok";
    case EnrollFailure::RateLimited: return "rate-limited";
    case EnrollFailure::InvalidField: return "invalid-field";
    case EnrollFailure::KeyMismatch: return "key-mismatch";
    case EnrollFailure::MalformedToken: return "malformed-token";
    case EnrollFailure::WrongDaemonKey: return "wrong-daemon-key";
    case EnrollFailure::UnknownToken: return "unknown-token";
    case EnrollFailure::TokenExpired: return "token-expired";
    case EnrollFailure::TokenUsedUp: return "token-used-up";
    case EnrollFailure::TokenRevoked: return "token-revoked";
    case EnrollFailure::RoleMismatch: return "role-mismatch";
    case EnrollFailure::KeyConflict: return "key-conflict";
    case EnrollFailure::KeyRevoked: return "key-revoked";
    case EnrollFailure::Internal: return "internal";
  }
  return "?";
}

namespace {

EnrollOutcome refuse(EnrollFailure f, EnrollErrorCode code, std::string message, std::string log = {}) {
  EnrollOutcome o;
  o.failure = f;
  o.code = code;
  o.log = log.empty() ? message : std::move(log);
  o.message = std::move(message);
  return o;
}

EnrollOutcome from_token_error(const TokenCheck& c) {
  EnrollFailure f = EnrollFailure::Internal;
  EnrollErrorCode code = EnrollErrorCode::PermissionDenied;
  switch (c.error) {
    case TokenError::Malformed:
      f = EnrollFailure::MalformedToken;
      code = EnrollErrorCode::InvalidRequest;
      break;
    case TokenError::WrongDaemonKey: f = EnrollFailure::WrongDaemonKey; break;
    case TokenError::Unknown: f = EnrollFailure::UnknownToken; break;
    case TokenError::Expired: f = EnrollFailure::TokenExpired; break;
    case TokenError::UsedUp: f = EnrollFailure::TokenUsedUp; break;
    case TokenError::Revoked: f = EnrollFailure::TokenRevoked; break;
    case TokenError::None: break;
  }
  return refuse(f, code, c.message, c.detail);
}

EnrollOutcome accepted(Identity id, bool created) {
  EnrollOutcome o;
  o.ok = true;
  o.created = created;
  o.log = fmt::format("{} identity {} ({} in workspace {})", created ? "enrolled" : "re-enrolled",
                      id.id, role_name(id.role), id.workspace);
  o.identity = std::move(id);
  return o;
}

}  // namespace

Enrollment::Enrollment(TokenStore& tokens, IdentityStore& identities, RateLimiter* limiter)
    : tokens_(tokens), identities_(identities), limiter_(limiter) {}

EnrollOutcome Enrollment::enroll(const EnrollRequestFields& req, std::string_view connection_public_key,
                                 std::string_view peer_address, TimePoint now) {
  std::lock_guard lock(mu_);
  if (limiter_) {
    if (auto wait = limiter_->blocked_for(peer_address, now)) {
      auto secs = std::chrono::ceil<std::chrono::seconds>(*wait).count();
      EnrollOutcome o = refuse(
          EnrollFailure::RateLimited, EnrollErrorCode::PermissionDenied,
          fmt::format("too many failed enrollment attempts from your address; retry in {}s", secs),
          fmt::format("enrollment from {} refused unchecked: rate-limited for {}s more", peer_address, secs));
      o.retry_after = wait;
      // Debug only: a blocked peer may keep trying, and each try would be a warning; the
      // failure that started the block was logged as one, with its length (below).
      spdlog::debug("{}", o.log);
      return o;
    }
  }
  EnrollOutcome o;
  try {
    o = decide(req, connection_public_key, now);
  } catch (const std::exception& e) {
    o = refuse(EnrollFailure::Internal, EnrollErrorCode::Internal,
               "the daemon could not store the enrollment; try again later",
               fmt::format("enrollment failed internally: {}", e.what()));
  }
  if (limiter_) {
    // Only a real first enrollment clears the address's record: a re-enrollment of a key that
    // is already enrolled grants nothing new, so it neither clears nor counts (otherwise an
    // enrolled peer could interleave one with each guess and never be slowed down).
    if (o.ok) {
      if (o.created) limiter_->record_success(peer_address);
    } else if (o.failure != EnrollFailure::Internal) {
      if (auto block = limiter_->record_failure(peer_address, now)) o.retry_after = block;
    }
  }
  if (o.ok)
    spdlog::info("enrollment from {}: {}", peer_address, o.log);
  else if (o.retry_after)
    spdlog::warn("enrollment from {} refused ({}): {}; its next attempts are refused unchecked for {}s",
                 peer_address, enroll_failure_name(o.failure), o.log,
                 std::chrono::ceil<std::chrono::seconds>(*o.retry_after).count());
  else
    spdlog::warn("enrollment from {} refused ({}): {}", peer_address, enroll_failure_name(o.failure), o.log);
  return o;
}

EnrollOutcome Enrollment::decide(const EnrollRequestFields& req, std::string_view connection_public_key,
                                 TimePoint now) {
  // Fields.
  auto conn_key = z85_decode_key(connection_public_key);
  if (!conn_key)
    return refuse(EnrollFailure::Internal, EnrollErrorCode::Internal,
                  "the daemon could not read this connection's key",
                  "enroll() was given a connection key that is not Z85 (daemon bug?)");
  auto req_key = z85_decode_key(req.public_key);
  if (!req_key)
    return refuse(EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest,
                  "public_key is not a 40-character Z85 CURVE public key");
  std::optional<Role> asked;
  if (!req.role.empty()) {
    asked = parse_role(req.role);
    if (!asked)
      return refuse(EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest,
                    "role must be worker, client, admin or gateway");
  }
  if (!is_valid_label(req.name))
    return refuse(EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest,
                  "name must be at most 128 bytes without control characters");
  if (!is_valid_hostname(req.hostname))
    return refuse(EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest,
                  "hostname must be at most 255 characters of letters, digits, '.', '-' and '_'");

  // The key to enroll must be the key this connection proved it holds.
  if (!constant_time_equal(*req_key, *conn_key))
    return refuse(EnrollFailure::KeyMismatch, EnrollErrorCode::PermissionDenied,
                  "public_key is not the CURVE key of this connection; enroll the key you connect with",
                  fmt::format("request names key {} but the connection's key is {}", req.public_key,
                              connection_public_key));

  // Token, without taking a use yet.
  TokenCheck check = tokens_.check(req.token, now);
  // A used-up token may still answer a retry of the enrollment it did (checked below). UsedUp
  // implies unrevoked and unexpired: TokenInfo::state() reports those first.
  const bool retry_of_same_token = check.error == TokenError::UsedUp && check.info;
  if (!check && !retry_of_same_token) return from_token_error(check);
  const TokenInfo& token = *check.info;

  if (asked && *asked != token.role)
    return refuse(EnrollFailure::RoleMismatch, EnrollErrorCode::PermissionDenied,
                  fmt::format("this token is for role {}, not {}", role_name(token.role), role_name(*asked)),
                  fmt::format("token {} is for role {}, request asks for {}", token.id,
                              role_name(token.role), role_name(*asked)));

  NewIdentity ni;
  ni.public_key = z85_encode_key(*req_key);
  ni.role = token.role;
  ni.workspace = token.workspace;
  ni.name = req.name.empty() ? token.label : req.name;
  ni.hostname = req.hostname;
  ni.token_id = token.id;

  AddResult preview = identities_.preview(ni);
  switch (preview.status) {
    case AddStatus::Existing:
      // Same key, same role and workspace: nothing new is granted, so no use is taken. A used-up
      // token is only good for the key it enrolled (a lost answer being retried).
      if (retry_of_same_token && preview.identity->token_id != token.id) return from_token_error(check);
      return accepted(*preview.identity, false);
    case AddStatus::Conflict:
      return refuse(EnrollFailure::KeyConflict, EnrollErrorCode::PermissionDenied, preview.message,
                    fmt::format("key {} already enrolled as identity {}", ni.public_key, preview.identity->id));
    case AddStatus::KeyRevoked:
      return refuse(EnrollFailure::KeyRevoked, EnrollErrorCode::PermissionDenied, preview.message,
                    fmt::format("key {} belongs to revoked identity {}", ni.public_key, preview.identity->id));
    case AddStatus::InvalidKey:
      return refuse(EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest, preview.message);
    case AddStatus::Created:
      break;
  }
  if (retry_of_same_token) return from_token_error(check);

  // Take the use, then store; give the use back if storing fails.
  TokenCheck used = tokens_.consume(req.token, now);
  if (!used) return from_token_error(used);
  AddResult added;
  try {
    added = identities_.add(ni, now);
  } catch (...) {
    tokens_.refund(token.id);
    throw;
  }
  if (added.status != AddStatus::Created) {
    tokens_.refund(token.id);
    if (added.status == AddStatus::Existing) return accepted(*added.identity, false);
    return refuse(EnrollFailure::KeyConflict, EnrollErrorCode::PermissionDenied, added.message);
  }
  EnrollOutcome o = accepted(*added.identity, true);
  o.log += fmt::format(" with token {} ({} use(s) left)", token.id, used.info->uses_left);
  return o;
}

}  // namespace muster::keys
