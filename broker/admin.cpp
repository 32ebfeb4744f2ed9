// admin.cpp — see admin.hpp.
#include "admin.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/duration.hpp"
#include "muster/names.hpp"
#include "muster/timestamp.hpp"

namespace muster::broker {

namespace {
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
FailureBody invalid(std::string message) { return FailureBody{ErrorCode::InvalidRequest, std::move(message)}; }
}  // namespace

AdminReply run_admin(Security& security, BrokerCore& core, const wire::ClientMessage& msg,
                     const Caller& who, TimePoint now) {
  if (who.role != "admin")
    return FailureBody{ErrorCode::PermissionDenied, "admin commands need the admin role"};
  auto wall = keys::Clock::now();
  try {
    switch (msg.body_type()) {
      case wire::ClientBody::TokenCreate: {
        auto* t = msg.body_as_TokenCreate();
        keys::MintRequest req;
        std::string role = t->role() ? t->role()->str() : "worker";
        auto parsed = keys::parse_role(role);
        if (!parsed) return invalid(fmt::format("unknown role '{}' (use worker, client, admin or gateway)", role));
        req.role = *parsed;
        if (t->ttl_ms()) req.ttl = std::chrono::seconds((t->ttl_ms() + 999) / 1000);
        req.uses = t->uses();
        if (t->workspace() && t->workspace()->size()) req.workspace = t->workspace()->str();
        req.label = str(t->name());
        auto minted = security.tokens().mint(req, wall);
        spdlog::info("{} minted token {} (role {}, workspace {}, {} use(s), expires {})", who.name,
                     minted.info.id, role, minted.info.workspace, minted.info.uses_total,
                     keys::format_timestamp(minted.info.expires_at));
        return TokenCreatedBody{minted.token, minted.info.id, keys::format_timestamp(minted.info.expires_at)};
      }
      case wire::ClientBody::TokenList: {
        auto out = nlohmann::json::array();
        if (!security.has_stores()) return AdminReportBody{out.dump()};  // nothing minted yet
        for (auto& info : security.tokens().list()) out.push_back(keys::to_json(info, wall));
        return AdminReportBody{out.dump()};
      }
      case wire::ClientBody::TokenRevoke: {
        std::string id = str(msg.body_as_TokenRevoke()->id());
        auto info = security.has_stores() ? security.tokens().revoke(id, wall) : std::nullopt;
        if (!info) return invalid(fmt::format("no token with id '{}'", id));
        spdlog::info("{} revoked token {}", who.name, id);
        return AdminReportBody{keys::to_json(*info, wall).dump()};
      }
      case wire::ClientBody::KeyList: {
        auto out = nlohmann::json::array();
        if (!security.has_stores()) return AdminReportBody{out.dump()};  // nobody enrolled yet
        for (auto& identity : security.identities().list()) out.push_back(keys::to_json(identity));
        return AdminReportBody{out.dump()};
      }
      case wire::ClientBody::KeyRevoke: {
        std::string id = str(msg.body_as_KeyRevoke()->id());
        auto identity = security.has_stores() ? security.identities().revoke(id, wall) : std::nullopt;
        if (!identity) return invalid(fmt::format("no identity with id '{}'", id));
        spdlog::warn("{} revoked identity {} ({}, {}): its connections are refused from now on",
                     who.name, id, identity->name, keys::role_name(identity->role));
        core.on_identity_revoked(now, id);
        return AdminReportBody{keys::to_json(*identity).dump()};
      }
      default: return invalid("not an admin command");
    }
  } catch (const std::invalid_argument& e) {
    return invalid(e.what());
  } catch (const std::exception& e) {
    spdlog::error("admin command failed: {}", e.what());
    return FailureBody{ErrorCode::Internal, e.what()};
  }
}

}  // namespace muster::broker
