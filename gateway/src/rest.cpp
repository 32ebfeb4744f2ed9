// rest.cpp — the REST routes (docs/GATEWAY.md "REST routes", GET /api/openapi.json): login,
// the workspace's nodes, workers and status, a node call, and /healthz.
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/bridge/url.hpp"
#include "muster/gateway/call_errors.hpp"
#include "muster/gateway/envelope.hpp"
#include "muster/gateway/openapi.hpp"
#include "static_files.hpp"

namespace muster::gateway {

namespace {
std::optional<std::string> bearer_of(const Request& req) {
  auto it = req.find(http::field::authorization);
  if (it != req.end()) {
    std::string_view v(it->value().data(), it->value().size());
    if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer ")) return std::string(v.substr(7));
    return std::string();  // present but not a bearer token: treated as missing
  }
  return bridge::query_param(req.target(), "token");
}

Response method_not_allowed(const Request& req) {
  return json_response(req, http::status::method_not_allowed, error_body("Method not allowed"));
}
}  // namespace

Response Gateway::health_response(const Request& req) {
  auto max_age = std::chrono::duration<double>(3 * opt_.poll_interval_s) + opt_.client.grace;
  bool fresh = have_snapshot_ && last_.up && std::chrono::steady_clock::now() - last_up_ < max_age;
  Json body{{"ok", fresh}, {"daemon", fresh ? "reachable" : "unreachable"}, {"peer_id", instance_id_}};
  if (!fresh) body["error"] = !have_snapshot_ ? std::string("no answer from musterd yet") : last_.up ? std::string("musterd's last answer is too old") : last_.error;
  return json_response(req, fresh ? http::status::ok : http::status::service_unavailable, body);
}


bridge::HttpLimits Gateway::http_limits() const {
  bridge::HttpLimits l;
  l.body_limit = opt_.max_message_bytes;
  return l;  // 30 s for a TLS handshake, 60 s for headers and for the body, 30 s for an answer
}

void Gateway::handle_http(Request req, const std::string& remote, Respond respond, bridge::HttpCancel& on_gone) {
  std::string path(bridge::target_path(req.target()));
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  metrics_.http_request();
  if (path == "/healthz") return respond(req.method() == http::verb::get ? health_response(req) : method_not_allowed(req));
  if (path == "/metrics") return respond(req.method() == http::verb::get ? metrics_response(req) : method_not_allowed(req));
  if (path == "/api/openapi.json")
    return respond(req.method() == http::verb::get ? json_response(req, http::status::ok, openapi_document(MUSTER_VERSION))
                                                   : method_not_allowed(req));
  if (path == "/api/auth/login") return login(req, remote, std::move(respond));
  if (auto page = web_->serve(req)) return respond(std::move(*page));  // the dashboard (static_files.hpp)
  if (path.rfind("/api/", 0) != 0) return respond(json_response(req, http::status::not_found, error_body("Not found")));

  auto auth = authenticate(req, bearer_of(req));
  if (auto* refusal = std::get_if<Response>(&auth)) return respond(std::move(*refusal));
  auto& who = std::get<WsGrant>(auth);

  auto unavailable = [&] {
    return json_response(req, http::status::service_unavailable,
                         Json{{"error", fmt::format("musterd is unreachable: {}", have_snapshot_ ? last_.error : "not connected yet")},
                              {"code", codes::kUnavailable}});
  };
  bool up = have_snapshot_ && last_.up;
  if (path == "/api/nodes" || path == "/api/workers" || path == "/api/status") {
    if (req.method() != http::verb::get) return respond(method_not_allowed(req));
    if (!up) return respond(unavailable());
    // The user's own workspace, as musterd answered it on behalf of that workspace.
    auto& ws = workspace(who.workspace);
    if (!ws.error.empty())
      return respond(json_response(req, http::status::forbidden, Json{{"error", ws.error}, {"code", ws.code}}));
    if (path == "/api/nodes") return respond(json_response(req, http::status::ok, ws.catalog.nodes()));
    if (path == "/api/workers") return respond(json_response(req, http::status::ok, ws.catalog.workers()));
    return respond(json_response(req, http::status::ok, node_status_payload(who.workspace)));
  }
  const std::string prefix = "/api/nodes/", suffix = "/call";
  if (path.size() > prefix.size() + suffix.size() && path.rfind(prefix, 0) == 0 &&
      path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    if (req.method() != http::verb::post) return respond(method_not_allowed(req));
    std::string node = bridge::url_decode(path.substr(prefix.size(), path.size() - prefix.size() - suffix.size()));
    return call_node(req, node, who, std::move(respond), on_gone);
  }
  respond(json_response(req, http::status::not_found, error_body("Not found")));
}

void Gateway::call_node(const Request& req, const std::string& node, const WsGrant& who, Respond respond,
                        bridge::HttpCancel& on_gone) {
  if (!role_allows(who.role, Role::Call))
    return respond(json_response(req, http::status::forbidden,
                                 Json{{"error", fmt::format("user '{}' has role '{}': calls need role call or admin", who.user,
                                                            role_name(who.role))},
                                      {"code", "PERMISSION_DENIED"}}));
  auto parsed = parse_rest_call(node, req.body(), file_refs_of(who.user));
  if (auto* why = std::get_if<std::string>(&parsed))
    return respond(json_response(req, http::status::bad_request, Json{{"error", *why}, {"code", "INVALID_REQUEST"}}));
  Execution ex;
  ex.workspace = who.workspace;
  ex.rest = [req_version = req.version(), keep = req.keep_alive(), respond = std::move(respond)](Response res) {
    res.version(req_version);
    res.keep_alive(keep);
    respond(std::move(res));
  };
  auto id = begin_call(std::move(std::get<CallRequest>(parsed)), std::move(ex), who.user, who.role);
  // Nobody is left to hear the outcome of a call whose HTTP client went away: musterd cancels it.
  on_gone = [this, id, user = who.user] {
    if (!executions_.contains(id)) return;
    spdlog::info("REST call {} of {}: the HTTP client went away: cancelled", id, user);
    calls_->cancel(id);
  };
}

}  // namespace muster::gateway
