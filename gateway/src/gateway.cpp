// gateway.cpp — the Gateway's life cycle (start, listen, stop) and the WebSocket message
// dispatch. Routes: rest.cpp; auth: auth.cpp; pushes: pushes.cpp; calls: calls.cpp.
#include "gateway.hpp"

#include <spdlog/spdlog.h>

#include "http_session.hpp"
#include "muster/gateway/data_dir.hpp"
#include "muster/gateway/envelope.hpp"
#include "static_files.hpp"
#include "tls.hpp"

namespace muster::gateway {

Response json_response(const Request& req, http::status status, const Json& body) {
  Response res{status, req.version() ? req.version() : 11};
  res.set(http::field::server, "muster-gateway");
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  res.prepare_payload();
  return res;
}

Json error_body(std::string_view message) { return Json{{"error", message}}; }

namespace {
tcp::endpoint parse_listen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument(fmt::format("--listen '{}' needs host:port", text));
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  beast::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (ec) throw std::invalid_argument(fmt::format("--listen '{}': '{}' is not an IP address", text, host));
  int p = -1;
  try {
    std::size_t used = 0;
    p = std::stoi(port, &used);
    if (used != port.size()) p = -1;
  } catch (...) {
  }
  if (p < 0 || p > 65535) throw std::invalid_argument(fmt::format("--listen '{}': bad port", text));
  return {addr, static_cast<unsigned short>(p)};
}
}  // namespace

Gateway::Gateway(GatewayOptions o)
    : opt_(std::move(o)),
      limiter_(opt_.login_attempts, static_cast<std::int64_t>(std::max(1.0, opt_.login_window_s))) {
  if (opt_.data_dir.empty()) throw std::invalid_argument("--data-dir is required");
  for (auto& ws : opt_.workspaces)
    if (ws.empty() || ws.size() > 64) throw std::invalid_argument(fmt::format("--workspace '{}': 1 to 64 characters", ws));
  ensure_data_dir(opt_.data_dir);
  signer_.emplace(load_or_create_key(std::filesystem::path(opt_.data_dir) / "jwt.key"));
  instance_id_ = load_or_create_instance_id(std::filesystem::path(opt_.data_dir) / "instance-id");
  users_path_ = opt_.users_file.empty() ? std::filesystem::path(opt_.data_dir) / "users.json"
                                        : std::filesystem::path(opt_.users_file);
  web_ = std::make_unique<StaticFiles>(opt_.web_root.empty() ? default_web_root() : std::filesystem::path(opt_.web_root));
  uploads_.emplace(std::filesystem::path(opt_.data_dir) / "uploads", opt_.uploads, unix_now());
  if (auto kept = uploads_->bytes_total())
    spdlog::info("uploads: {} byte(s) of files and sessions kept from before the restart", kept);
  if (!opt_.tls_cert.empty() || !opt_.tls_key.empty()) {
    if (opt_.tls_cert.empty() || opt_.tls_key.empty()) throw std::invalid_argument("--tls-cert and --tls-key go together");
    server_tls = bridge::make_server_tls(opt_.tls_cert, opt_.tls_key);
  } else if (opt_.tls_only) {
    throw std::invalid_argument("--tls-only needs --tls-cert and --tls-key");
  }
  auto poll = std::chrono::milliseconds(static_cast<std::int64_t>(opt_.poll_interval_s * 1000));
  link_ = std::make_unique<DaemonLink>(opt_.client, poll, [this](Snapshot s) {
    net::post(ioc, [this, s = std::move(s)]() mutable { on_snapshot(std::move(s)); });
  });
  calls_.emplace(ioc, turn, opt_.client, [this](CallEvent ev) { on_call_event(std::move(ev)); });
  users();  // a broken users file stops the start with its error; tells the link what to poll
}

Gateway::~Gateway() {
  if (link_) link_->stop();
  password_pool_.join();
}

void Gateway::start_listener() {
  auto ep = parse_listen(opt_.listen);
  acceptor_ = std::make_shared<tcp::acceptor>(ioc);
  acceptor_->open(ep.protocol());
  acceptor_->set_option(net::socket_base::reuse_address(true));
  acceptor_->bind(ep);
  acceptor_->listen(net::socket_base::max_listen_connections);
  auto bound = acceptor_->local_endpoint();
  spdlog::info("listening on {}:{} (http, ws{}); serving {} as {}", bound.address().to_string(), bound.port(),
               server_tls ? (opt_.tls_only ? " - TLS only: https, wss" : ", https, wss") : "",
               opt_.workspaces.empty() ? std::string("the workspaces of its users")
                                       : fmt::format("workspace(s) {}", fmt::join(opt_.workspaces, ", ")),
               instance_id_);
  // Listening on every address (0.0.0.0, ::): this machine's loopback is one of them.
  auto host = bound.address().is_unspecified() ? std::string("127.0.0.1")
              : bound.address().is_v6()        ? "[" + bound.address().to_string() + "]"
                                               : bound.address().to_string();
  spdlog::info("dashboard: {}://{}:{}/ ({})", server_tls && opt_.tls_only ? "https" : "http", host, bound.port(),
               web_->built() ? "files in " + web_->root().string()
                             : "not built: no index.html in " + web_->root().string() + ", see docs/DASHBOARD.md");
  auto accept = std::make_shared<std::function<void()>>();
  *accept = [this, accept] {
    acceptor_->async_accept(ioc, [this, accept](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor_->is_open()) return;
        spdlog::warn("accept failed: {}", ec.message());
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Detector>(std::move(socket), *this)->run();
      }
      (*accept)();
    });
  };
  (*accept)();
}

void Gateway::ws_opened(const std::shared_ptr<WsPeer>& peer) {
  peers_[peer->id] = peer;
  metrics_.websocket_opened();
  spdlog::info("WebSocket #{} of {} ({}, workspace {}) connected from {}", peer->id, peer->user, role_name(peer->role),
               peer->workspace, peer->remote);
  send_to(*peer, "connected", Json{{"message", "Connected to WebSocket server"}, {"peer_id", instance_id_}});
  if (have_snapshot_ && !last_.up) {
    send_to(*peer, "error", error_payload(fmt::format("musterd is unreachable: {}", last_.error), codes::kUnavailable));
    return;
  }
  if (!have_snapshot_) return;
  send_state(*peer);
}

void Gateway::ws_closed(const std::shared_ptr<WsPeer>& peer) {
  peers_.erase(peer->id);
  uploads_->connection_closed(peer->id);  // its uploads pause, resumable from a new connection
  // Its open calls are cancelled: nobody is left to hear their outcome.
  for (auto id : peer->executions) calls_->cancel(id);
  if (!peer->executions.empty())
    spdlog::info("WebSocket #{} closed with {} execution(s) open: cancelled", peer->id, peer->executions.size());
}

void Gateway::ws_message(WsPeer& peer, std::string_view text, bool binary) {
  metrics_.message_received();
  if (binary) {
    spdlog::warn("WebSocket #{} of {}: binary frame of {} bytes refused", peer.id, peer.user, text.size());
    return send_to(peer, "error", error_payload("binary frames are not accepted: send JSON text", codes::kInvalidMessage));
  }
  auto parsed = parse_envelope(text);
  if (auto* err = std::get_if<ProtocolError>(&parsed)) {
    spdlog::warn("WebSocket #{} of {}: malformed message ({} bytes): {}", peer.id, peer.user, text.size(), err->error);
    return send_to(peer, "error", error_payload(err->error, err->code));
  }
  auto& env = std::get<Envelope>(parsed);
  if (env.type == "ping") return send_to(peer, "pong", nullptr);
  if (env.type == "pong") return;
  if (env.type == "service.search.request") {
    auto q = parse_search(env.payload);
    if (auto* why = std::get_if<std::string>(&q))
      return send_to(peer, "error", error_payload(fmt::format("service.search.request: {}", *why), codes::kInvalidRequest));
    if (have_snapshot_ && !last_.up)
      return send_to(peer, "service.search.response",
                     Json{{"services", Json::array()}, {"error", fmt::format("musterd is unreachable: {}", last_.error)},
                          {"complete", true}});
    auto& ws = workspace(peer.workspace);
    return send_to(peer, "service.search.response",
                   Json{{"services", ws.catalog.search(std::get<SearchQuery>(q))}, {"error", ws.error}, {"complete", true}});
  }
  if (env.type == "execution.start") return start_execution(peer, env.payload);
  if (env.type == "execution.cancel") return cancel_execution(peer, env.payload);
  if (env.type.rfind("file.upload.", 0) == 0 && env.type != "file.upload.progress" && env.type != "file.upload.complete" &&
      env.type != "file.upload.error")
    return upload_message(peer, env.type, env.payload);
  std::string shown = env.type.substr(0, 64);
  spdlog::warn("WebSocket #{} of {}: unknown message type '{}'", peer.id, peer.user, shown);
  send_to(peer, "error", error_payload(fmt::format("unknown message type '{}'", shown), codes::kUnknownType));
}

void Gateway::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("stopping: closing the listener and {} WebSocket(s)", peers_.size());
  beast::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  status_timer_.cancel();
  services_timer_.cancel();
  peers_timer_.cancel();
  for (auto& [id, p] : peers_) p->close(static_cast<std::uint16_t>(websocket::close_code::going_away));
  link_->stop();
  calls_->reset("the gateway is stopping");
  auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(200));
  timer->async_wait([this, timer](beast::error_code) { ioc.stop(); });
}

int Gateway::run() {
  start_listener();
  link_->start();
  // Periodic pushes go to each workspace's own users, with that workspace's state.
  auto each_workspace = [this](auto&& push) {
    if (!have_snapshot_ || !last_.up) return;
    std::set<std::string> live;
    for (auto& [id, p] : peers_) live.insert(p->workspace);
    for (auto& name : live) push(name, workspace(name));
  };
  schedule(status_timer_, opt_.status_interval_s, [this, each_workspace] {
    uploads_->expire(unix_now());
    recheck_sessions();
    each_workspace([this](const std::string& name, Workspace&) { broadcast_to(name, "node.status", node_status_payload(name)); });
  });
  schedule(services_timer_, opt_.services_interval_s, [this, each_workspace] {
    each_workspace([this](const std::string& name, Workspace& ws) { broadcast_to(name, "services.updated", ws.catalog.services()); });
  });
  schedule(peers_timer_, opt_.peers_interval_s, [this, each_workspace] {
    each_workspace([this](const std::string& name, Workspace& ws) { broadcast_to(name, "peers.updated", ws.catalog.peers()); });
  });
  signals_.async_wait([this](beast::error_code ec, int) {
    if (!ec) shutdown();
  });
  turn.run();
  spdlog::info("stopped: {} call(s) completed, {} failed, {} cancelled", completed_, failed_, cancelled_);
  return 0;
}

}  // namespace muster::gateway
