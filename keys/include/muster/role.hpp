// role.hpp — what an enrolled identity may be: a worker, a client, an admin, or a gateway.
// Owns: the role names on the wire and in files, and which role may use which socket.
// Must never: let a worker key act as a client (or the reverse); admin is a client that may
// also run admin commands, nothing more; a gateway is a client that may also act on behalf of
// its users in the workspaces it was enrolled for (broker/on_behalf_of), nothing more.
#pragma once

#include <optional>
#include <string_view>

namespace muster::keys {

enum class Role { Worker, Client, Admin, Gateway };

// "worker", "client", "admin", "gateway".
std::string_view role_name(Role r);
// Exact lowercase names only.
std::optional<Role> parse_role(std::string_view name);

// True if an identity with role `has` may do what needs role `needed`:
// same role, or `has` = Admin or Gateway where `needed` = Client (both use the client socket).
bool role_satisfies(Role has, Role needed);

}  // namespace muster::keys
