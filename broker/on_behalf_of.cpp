// on_behalf_of.cpp — see on_behalf_of.hpp.
#include "on_behalf_of.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "muster/names.hpp"
#include "muster/utf8.hpp"

namespace muster::broker {

namespace {
AssertionVerdict refuse(ErrorCode code, std::string reason) { return AssertionVerdict{std::nullopt, code, std::move(reason)}; }

bool is_local_owner(const Caller& c) { return c.identity == "local" && c.role == "admin"; }

// A user name as a gateway knows it: 1 to 128 bytes of UTF-8, no control characters, no '/'
// (the asserted identity is "<gateway>/<user>").
bool valid_user(std::string_view u) {
  return !u.empty() && keys::is_valid_label(u) && valid_utf8(u) && u.find('/') == std::string_view::npos;
}
// A role at the gateway: empty (then "user"), or up to 32 of [A-Za-z0-9_.-].
bool valid_role(std::string_view r) { return r.empty() || (r.size() <= 32 && keys::is_valid_workspace(r)); }
}  // namespace

AssertionVerdict decide_on_behalf_of(const Caller& sender, const std::optional<OnBehalfOf>& asserted, bool cancel,
                                     bool admin_command) {
  if (acts_as_sender(sender, asserted)) return AssertionVerdict{sender, ErrorCode::None, {}};
  const bool gateway = sender.role == "gateway";
  if (!asserted) {
    if (!cancel)  // (a gateway: acts_as_sender took every other sender)
      return refuse(ErrorCode::PermissionDenied,
                    fmt::format("identity {} is a gateway: it acts only on behalf of a user (set "
                                "ClientMessage.on_behalf_of to a user of one of its workspaces)",
                                sender.identity));
    return AssertionVerdict{sender, ErrorCode::None, {}};
  }
  if (admin_command) return refuse(ErrorCode::PermissionDenied, "admin commands cannot be made on behalf of a user");
  if (!gateway && !is_local_owner(sender))
    return refuse(ErrorCode::PermissionDenied,
                  fmt::format("identity {} (role {}) may not act on behalf of another user: only an identity "
                              "enrolled with role gateway may (muster token create --role gateway)",
                              sender.identity, sender.role));
  const auto& a = *asserted;
  if (!valid_user(a.user))
    return refuse(ErrorCode::InvalidRequest,
                  "on_behalf_of.user must be 1 to 128 bytes of UTF-8 without control characters or '/'");
  if (!keys::is_valid_workspace(a.workspace))
    return refuse(ErrorCode::InvalidRequest,
                  "on_behalf_of.workspace is not a workspace name (1-64 of A-Z a-z 0-9 _ . -)");
  if (!valid_role(a.role))
    return refuse(ErrorCode::InvalidRequest, "on_behalf_of.role must be at most 32 of A-Z a-z 0-9 _ . -");
  if (gateway) {
    auto enrolled = keys::workspace_list(sender.workspace);
    if (std::find(enrolled.begin(), enrolled.end(), a.workspace) == enrolled.end())
      return refuse(ErrorCode::PermissionDenied,
                    fmt::format("gateway {} is not enrolled for workspace '{}' (its workspaces: {})", sender.identity,
                                a.workspace, sender.workspace));
  }
  return AssertionVerdict{Caller{fmt::format("{}/{}", sender.identity, a.user), a.user, a.workspace,
                                 a.role.empty() ? std::string("user") : a.role},
                          ErrorCode::None,
                          {}};
}

}  // namespace muster::broker
