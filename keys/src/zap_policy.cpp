// zap_policy.cpp — ZAP verdicts from the identity store.
// Must never: return "200" on any path that did not match a rule exactly.
#include "muster/zap_policy.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "muster/encoding.hpp"

namespace muster::keys {

std::optional<Role> zap_domain_role(std::string_view domain) {
  if (domain == kZapDomainWorker) return Role::Worker;
  if (domain == kZapDomainClient) return Role::Client;
  return std::nullopt;
}

namespace {
ZapVerdict verdict(bool allow, std::string text, std::string user_id, std::string key,
                   std::optional<Identity> identity = std::nullopt) {
  return ZapVerdict{allow, std::string(allow ? "200" : "400"), std::move(text), std::move(user_id),
                    std::move(key), std::move(identity)};
}

ZapVerdict deny(std::string text, std::string key = {}) {
  return verdict(false, std::move(text), {}, std::move(key));
}
}  // namespace

ZapVerdict zap_decide(const IdentityStore& identities, const ZapRequest& req) {
  if (req.mechanism != "CURVE") return deny("CURVE required");
  if (req.client_key.size() != kCurveKeyBytes) return deny("bad CURVE client key");
  KeyBytes key{};
  std::copy(req.client_key.begin(), req.client_key.end(), key.begin());
  std::string z85 = z85_encode_key(key);

  if (req.domain == kZapDomainEnroll) return verdict(true, "OK", z85, z85);
  auto needed = zap_domain_role(req.domain);
  if (!needed) return deny("unknown ZAP domain", std::move(z85));

  auto found = identities.find_by_key(z85);
  if (!found) return deny("key not enrolled", std::move(z85));
  if (found->revoked) return deny("identity revoked", std::move(z85));
  if (!role_satisfies(found->role, *needed))
    return deny(fmt::format("role {} may not use this socket", role_name(found->role)), std::move(z85));
  std::string id = found->id;
  return verdict(true, "OK", std::move(id), std::move(z85), std::move(found));
}

}  // namespace muster::keys
