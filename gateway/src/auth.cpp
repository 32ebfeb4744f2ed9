// auth.cpp — who may use the gateway: POST /api/auth/login (rate-limited per address,
// password checked off the Asio thread), bearer tokens on REST, ?token= on the WebSocket and
// the Origin allow-list of WebSocket upgrades (docs/GATEWAY.md "Authentication").
// Must never: log a token or a password, or tell a wrong user name from a wrong password.
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/bridge/url.hpp"
#include "muster/gateway/envelope.hpp"

namespace muster::gateway {

namespace {
// A hash to spend the same time on when the user does not exist (no user enumeration by timing).
const std::string& dummy_hash() {
  static const std::string h = hash_password("muster-gateway: no such user");
  return h;
}

std::string workspace_refusal(const User& u, const std::vector<std::string>& served) {
  std::string list;
  for (auto& w : served) list += fmt::format("{}'{}'", list.empty() ? "" : ", ", w);
  return fmt::format("user '{}' belongs to workspace '{}'; this gateway serves workspace{} {} only", u.name,
                     u.workspace, served.size() == 1 ? "" : "s", list);
}
}  // namespace

bool Gateway::serves(const std::string& workspace) const {
  return opt_.workspaces.empty() ||
         std::find(opt_.workspaces.begin(), opt_.workspaces.end(), workspace) != opt_.workspaces.end();
}

const UsersFile& Gateway::users() {
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(users_path_, ec);
  if (ec) mtime = {};
  if (mtime != users_mtime_ || users_.users().empty()) {
    users_ = UsersFile::load(users_path_);
    if (mtime != users_mtime_) spdlog::info("users file {}: {} user(s)", users_path_.string(), users_.users().size());
    users_mtime_ = mtime;
    // The workspaces to poll: every served workspace that has a user.
    std::set<std::string> served;
    for (auto& u : users_.users())
      if (serves(u.workspace)) served.insert(u.workspace);
    link_->set_workspaces({served.begin(), served.end()});
  }
  return users_;
}

void Gateway::login(const Request& req, const std::string& remote, Respond respond) {
  if (req.method() != http::verb::post)
    return respond(json_response(req, http::status::method_not_allowed, error_body("Method not allowed")));
  if (auto wait = limiter_.attempt(remote, unix_now())) {
    spdlog::warn("login from {} refused: rate limit ({} attempts per {} s)", remote, opt_.login_attempts, opt_.login_window_s);
    auto res = json_response(req, http::status::too_many_requests,
                             error_body(fmt::format("Too many login attempts; try again in {} s", *wait)));
    res.set(http::field::retry_after, std::to_string(*wait));
    return respond(std::move(res));
  }
  Json body = json_too_deep(req.body()) ? Json(nullptr) : Json::parse(req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("username") || !body["username"].is_string() ||
      !body.contains("password") || !body["password"].is_string())
    return respond(json_response(req, http::status::bad_request,
                                 error_body("Body must be JSON {\"username\": string, \"password\": string}")));
  std::string name = body["username"].get<std::string>();
  std::string password = body["password"].get<std::string>();
  std::optional<User> user;
  try {
    if (auto* u = users().find(name)) user = *u;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return respond(json_response(req, http::status::internal_server_error, error_body("The users file cannot be read")));
  }
  std::string hash = user ? user->password_hash : dummy_hash();
  // Argon2id takes tens of milliseconds by design: off the Asio thread.
  net::post(password_pool_, [this, req, remote, respond = std::move(respond), user = std::move(user),
                             hash = std::move(hash), password = std::move(password)]() mutable {
    bool ok = verify_password(hash, password) && user.has_value();
    net::post(ioc, [this, req = std::move(req), remote, respond = std::move(respond), user = std::move(user), ok] {
      if (!ok) {
        spdlog::info("login from {} refused: bad user name or password", remote);
        return respond(json_response(req, http::status::unauthorized, error_body("Invalid username or password")));
      }
      if (!serves(user->workspace)) {
        spdlog::info("login of {} from {} refused: workspace '{}' is not served here", user->name, remote, user->workspace);
        return respond(json_response(req, http::status::forbidden, error_body(workspace_refusal(*user, opt_.workspaces))));
      }
      Claims c{.user = user->name, .workspace = user->workspace, .role = std::string(role_name(user->role)),
               .issued_at = unix_now(), .expires_at = unix_now() + static_cast<std::int64_t>(opt_.token_ttl_s)};
      spdlog::info("login of {} ({}) from {}", user->name, c.role, remote);
      respond(json_response(req, http::status::ok,
                            Json{{"token", signer_->sign(c)},
                                 {"expires_at", c.expires_at},
                                 {"user", {{"name", c.user}, {"workspace", c.workspace}, {"role", c.role}}}}));
    });
  });
}

std::variant<WsGrant, Response> Gateway::authenticate(const Request& req, std::optional<std::string> token) {
  if (!token || token->empty())
    return json_response(req, http::status::unauthorized, error_body("Missing authentication token"));
  auto verified = signer_->verify(*token, unix_now());
  if (auto* why = std::get_if<std::string>(&verified)) {
    spdlog::info("token refused: {}", *why);
    return json_response(req, http::status::unauthorized, error_body("Invalid authentication token"));
  }
  auto& claims = std::get<Claims>(verified);
  const User* user = nullptr;
  try {
    user = users().find(claims.user);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return json_response(req, http::status::internal_server_error, error_body("The users file cannot be read"));
  }
  if (!user) {
    spdlog::info("token of {} refused: no such user any more", claims.user);
    return json_response(req, http::status::unauthorized, error_body("Invalid authentication token"));
  }
  if (!serves(user->workspace)) {
    spdlog::info("token of {} refused: workspace '{}' is not served here", user->name, user->workspace);
    return json_response(req, http::status::forbidden, error_body(workspace_refusal(*user, opt_.workspaces)));
  }
  if (claims.workspace != user->workspace) {
    spdlog::info("token of {} refused: issued for workspace '{}', the user is now of '{}'", user->name, claims.workspace,
                 user->workspace);
    return json_response(req, http::status::unauthorized, error_body("Invalid authentication token"));
  }
  // The role of now: a demotion applies at once.
  return WsGrant{user->name, user->workspace, user->role, claims.expires_at};
}

void Gateway::recheck_sessions() {
  auto now = unix_now();
  const UsersFile* file = nullptr;
  try {
    file = &users();
  } catch (const std::exception& e) {
    spdlog::error("{} (WebSocket users not rechecked)", e.what());
  }
  auto peers = peers_;
  for (auto& [id, p] : peers) {
    std::string why, code;
    const User* u = file ? file->find(p->user) : nullptr;
    if (now >= p->expires_at) {
      why = "authentication token expired: log in again";
      code = "TOKEN_EXPIRED";
    } else if (file && (!u || u->workspace != p->workspace || !serves(u->workspace))) {
      why = fmt::format("user '{}' may no longer use this gateway", p->user);
      code = codes::kPermissionDenied;
    } else {
      if (u && u->role != p->role) {
        spdlog::info("WebSocket #{} of {}: role {} -> {}", p->id, p->user, role_name(p->role), role_name(u->role));
        p->role = u->role;
      }
      continue;
    }
    spdlog::info("closing WebSocket #{} of {}: {}", p->id, p->user, why);
    send_to(*p, "error", error_payload(why, code));
    p->close(static_cast<std::uint16_t>(websocket::close_code::policy_error));
  }
}

std::variant<WsGrant, Response> Gateway::authorize_ws(const Request& req) {
  std::string_view path = bridge::target_path(req.target());
  if (path != "/api/ws") return json_response(req, http::status::not_found, error_body("Not found"));
  if (auto origin = req.find(http::field::origin); origin != req.end()) {
    std::string o(origin->value());
    std::string host(req[http::field::host]);
    bool same = o == "http://" + host || o == "https://" + host;
    bool listed = std::find(opt_.allowed_origins.begin(), opt_.allowed_origins.end(), o) != opt_.allowed_origins.end();
    if (!same && !listed) {
      spdlog::warn("WebSocket upgrade with Origin '{}' refused (not in --allowed-origin)", o.substr(0, 200));
      return json_response(req, http::status::forbidden, error_body("Origin not allowed"));
    }
  }
  return authenticate(req, bridge::query_param(req.target(), "token"));
}

}  // namespace muster::gateway
