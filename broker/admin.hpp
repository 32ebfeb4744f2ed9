// admin.hpp — the admin commands of the client socket: tokens and enrolled keys.
// Owns: turning TokenCreate/TokenList/TokenRevoke/KeyList/KeyRevoke into store operations and
// their replies; a key revocation also removes the identity's workers from the registry.
// Must never: run for a caller that is not an admin (the caller checks; this asserts it), or
// put a token secret anywhere but the TokenCreated reply.
#pragma once

#include <string>
#include <variant>

#include "broker_core.hpp"
#include "muster/wire/client_generated.h"
#include "security.hpp"

namespace muster::broker {

struct TokenCreatedBody {
  std::string token, id, expires_at;
};
struct AdminReportBody {
  std::string json;
};
using AdminReply = std::variant<TokenCreatedBody, AdminReportBody, FailureBody>;

AdminReply run_admin(Security& security, BrokerCore& core, const wire::ClientMessage& msg,
                     const Caller& who, TimePoint now);

}  // namespace muster::broker
