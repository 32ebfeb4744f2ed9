// on_behalf_of.hpp — whether musterd honours a client message's assertion of an end user
// (ClientMessage.on_behalf_of, docs/PROTOCOL.md §8.1), and whom the message then acts as.
// Owns: who may assert what (docs/SECURITY.md §6.2) and the caller an honoured assertion
// becomes: identity "<sender identity>/<user>", name = user, the asserted workspace, the user's
// role at the gateway.
// Must never: touch a socket, honour an assertion from an identity that is not a gateway (the
// local owner over ipc:// excepted), or for a workspace the gateway was not enrolled for.
#pragma once

#include <optional>
#include <string>

#include "events.hpp"

namespace muster::broker {

// What a ClientMessage asserts (all three fields as sent; `role` may be empty).
struct OnBehalfOf {
  std::string user, workspace, role;
};

// What a message acts as: `caller` (its own sender's, or the asserted user's), or a refusal.
struct AssertionVerdict {
  std::optional<Caller> caller;
  ErrorCode code = ErrorCode::None;  // PermissionDenied or InvalidRequest when refused
  std::string reason;
};

// The message's caller. `sender` is the identity that sent it (Security::caller_for); the local
// owner is the sender whose identity is "local" and role "admin" (ipc:// only). Decides:
//  - no assertion: the sender itself, unless the sender is a gateway, which acts only on behalf
//    of a user (refused; `cancel` excepted: a Cancel only touches the connection's own request);
//  - an assertion from a gateway for one of its enrolled workspaces (the comma-separated list in
//    its `workspace`), or from the local owner for any workspace: the user;
//  - an assertion with an empty or invalid user, workspace or role: InvalidRequest;
//  - any other assertion (a client, an admin identity, anonymous, a gateway naming a workspace
//    it was not enrolled for): PermissionDenied;
//  - an admin command with an assertion: PermissionDenied (`admin_command`).
AssertionVerdict decide_on_behalf_of(const Caller& sender, const std::optional<OnBehalfOf>& asserted,
                                     bool cancel = false, bool admin_command = false);

// The common case, decided without a verdict (whose caller is a copy of the sender's four
// strings, per message): a message that asserts no one, from a sender that is not a gateway,
// acts as its sender, whatever it is. decide_on_behalf_of gives that sender in this case.
inline bool acts_as_sender(const Caller& sender, const std::optional<OnBehalfOf>& asserted) {
  return !asserted && sender.role != "gateway";
}

}  // namespace muster::broker
