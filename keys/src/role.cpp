// role.cpp — role names and the one-way admin ⊇ client rule.
// Must never: grant Worker from any other role, Admin from Client or Gateway, or Gateway from
// anything but Gateway.
#include "muster/role.hpp"

namespace muster::keys {

std::string_view role_name(Role r) {
  switch (r) {
    case Role::Worker: return "worker";
    case Role::Client: return "client";
    case Role::Admin: return "admin";
    case Role::Gateway: return "gateway";
  }
  return "?";
}

std::optional<Role> parse_role(std::string_view name) {
  if (name == "worker") return Role::Worker;
  if (name == "client") return Role::Client;
  if (name == "admin") return Role::Admin;
  if (name == "gateway") return Role::Gateway;
  return std::nullopt;
}

bool role_satisfies(Role has, Role needed) {
  return has == needed || ((has == Role::Admin || has == Role::Gateway) && needed == Role::Client);
}

}  // namespace muster::keys
