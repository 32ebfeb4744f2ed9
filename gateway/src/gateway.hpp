// gateway.hpp — muster-gateway's server: the state behind every HTTP request and WebSocket
// (users, tokens, the catalog of each served workspace, open executions) and what each route
// and message does. Sessions (http_session.hpp, ws_session.hpp) only move bytes.
// Every call, list, push and search is made for the user's own workspace: musterd is asked on
// behalf of the user (ClientMessage.on_behalf_of), and nothing of one workspace is sent to a
// user of another.
//
// Threads: one Asio thread runs sockets, timers, the calls to musterd (CallLink) and every method
// here; the DaemonLink thread polls musterd's lists and posts them here; one more thread checks
// passwords (Argon2id is slow on purpose).
// Must never: log a token, a password or a request target (it may carry ?token=).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>

#include "call_link.hpp"
#include "daemon_link.hpp"
#include "http_connection.hpp"
#include "muster/gateway/catalog.hpp"
#include "muster/gateway/jwt.hpp"
#include "muster/gateway/login_limiter.hpp"
#include "muster/gateway/metrics.hpp"
#include "muster/gateway/uploads.hpp"
#include "muster/gateway/users.hpp"
#include "net.hpp"
#include "options.hpp"
#include "ws_peer.hpp"

namespace muster::gateway {

namespace net = muster::bridge::net;
namespace ssl = muster::bridge::ssl;
namespace beast = muster::bridge::beast;
namespace http = muster::bridge::http;
namespace websocket = muster::bridge::websocket;
using tcp = muster::bridge::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using Respond = std::function<void(Response)>;

Response json_response(const Request& req, http::status status, const Json& body);

// What a WebSocket upgrade is allowed as, or the refusal to send.
struct WsGrant {
  std::string user;
  std::string workspace;
  Role role;
  std::int64_t expires_at = 0;  // the token's
};

class StaticFiles;

class Gateway {
 public:
  explicit Gateway(GatewayOptions options);
  ~Gateway();
  // Serves until SIGINT/SIGTERM; returns the exit code.
  int run();

  // ---- the HTTP session's Handler (bridge/net/http_connection.hpp), on the Asio thread ----
  bridge::HttpLimits http_limits() const;
  Response http_error(const Request& req, http::status status, std::string_view message) {
    return json_response(req, status, Json{{"error", message}});
  }
  void http_timeout(const std::string&) {}
  template <class Stream>
  std::optional<Response> http_upgrade(bridge::HttpSession<Stream, Gateway>& session, Request& req);  // http_session.hpp
  // A request; the returned function cancels its work when the client goes away unanswered.
  template <class Session>
  bridge::HttpCancel http_request(Session& session, Request req, Respond respond) {
    bridge::HttpCancel on_gone;
    handle_http(std::move(req), session.remote(), std::move(respond), on_gone);
    return on_gone;
  }

  // ---- called by sessions, on the Asio thread ----
  void handle_http(Request req, const std::string& remote, Respond respond, bridge::HttpCancel& on_gone);
  std::variant<WsGrant, Response> authorize_ws(const Request& req);
  void ws_opened(const std::shared_ptr<WsPeer>& peer);
  void ws_closed(const std::shared_ptr<WsPeer>& peer);
  void ws_message(WsPeer& peer, std::string_view text, bool binary);
  std::uint64_t next_peer_id() { return ++peer_ids_; }

  const GatewayOptions& options() const { return opt_; }
  net::io_context ioc{1};
  EndOfTurn turn{ioc};  // runs ioc; what waits for the end of each Asio turn (end_of_turn.hpp)
  std::shared_ptr<ssl::context> server_tls;

 private:
  // ---- auth (auth.cpp) ----
  void login(const Request& req, const std::string& remote, Respond respond);
  // The user a bearer token (header or ?token=) stands for, or the 401/403 to send.
  std::variant<WsGrant, Response> authenticate(const Request& req, std::optional<std::string> token);
  // The users file, re-read when it changed (then the workspaces to poll follow it).
  const UsersFile& users();
  // Whether users of `workspace` may use this gateway (--workspace, else every workspace).
  bool serves(const std::string& workspace) const;

  // One served workspace: what musterd answered for it and what was pushed to its users.
  struct Workspace {
    Catalog catalog;
    Json status;                     // musterd's status, scoped to the workspace
    std::string error, code;         // musterd refused the workspace (the gateway is not enrolled for it)
    std::string last_services, last_peers;  // what was pushed last (to push on change)
    LatencyWindow latency = LatencyWindow(4096);
    std::uint64_t completed = 0, failed = 0, cancelled = 0;
  };
  Workspace& workspace(const std::string& name);

  // ---- REST (rest.cpp) ----
  // Sets `on_gone` to cancel the call if the HTTP client goes away before the answer.
  void call_node(const Request& req, const std::string& node, const WsGrant& who, Respond respond,
                 bridge::HttpCancel& on_gone);
  Response health_response(const Request& req);
  Response metrics_response(const Request& req);  // GET /metrics (metrics_route.cpp)

  // ---- pushes (pushes.cpp) ----
  void on_snapshot(Snapshot s);
  // To every WebSocket, or to those of one workspace.
  void broadcast(std::string_view type, const Json& payload);
  void broadcast_to(const std::string& workspace, std::string_view type, const Json& payload);
  void send_to(WsPeer& peer, std::string_view type, const Json& payload);
  void send_execution(WsPeer& peer, const ExecutionState& s);  // execution.updated (calls.cpp)
  // The first messages of a connection, and after musterd came back: status, services, peers.
  void send_state(WsPeer& peer);
  Json node_status_payload(const std::string& workspace);
  // Closes the WebSockets whose token expired or whose user left the users file or the
  // workspace; applies role changes to the others.
  void recheck_sessions();
  void schedule(net::steady_timer& timer, double seconds, std::function<void()> what);

  // ---- executions (executions.cpp) ----
  struct Execution {
    ExecutionState state;
    std::string workspace;       // the user's
    std::weak_ptr<WsPeer> peer;  // the socket that started it (empty for REST)
    Respond rest;                // the REST caller waiting for the terminal state
    std::chrono::steady_clock::time_point started;
  };
  void start_execution(WsPeer& peer, const Json& payload);
  void cancel_execution(WsPeer& peer, const Json& payload);
  // Submits `request` on behalf of `user` (of `workspace`, with `role`).
  std::uint64_t begin_call(CallRequest request, Execution ex, const std::string& user, Role role);
  void on_call_event(CallEvent ev);
  InputsRewriter file_refs_of(const std::string& user) const;

  // ---- uploads (uploads.cpp) ----
  void upload_message(WsPeer& peer, const std::string& type, const Json& payload);

  void start_listener();
  void shutdown();

  GatewayOptions opt_;
  std::string instance_id_;
  std::optional<JwtSigner> signer_;
  LoginLimiter limiter_;
  std::filesystem::path users_path_;
  UsersFile users_;
  std::filesystem::file_time_type users_mtime_{};
  net::thread_pool password_pool_{1};

  std::optional<UploadStore> uploads_;
  std::unique_ptr<DaemonLink> link_;  // polls musterd's lists (its own thread)
  std::optional<CallLink> calls_;     // the calls (this thread)
  std::map<std::string, Workspace> workspaces_;
  Snapshot last_;              // last snapshot from musterd (up, error)
  bool have_snapshot_ = false;
  std::chrono::steady_clock::time_point last_up_{};

  std::map<std::uint64_t, std::shared_ptr<WsPeer>> peers_;
  std::atomic<std::uint64_t> peer_ids_{0};
  std::unordered_map<std::uint64_t, Execution> executions_;
  std::uint64_t next_execution_ = 0;
  std::uint64_t completed_ = 0, failed_ = 0, cancelled_ = 0;  // of every workspace (for the log)
  GatewayMetrics metrics_;
  std::string out_;  // the message being sent (send_to, send_execution): one buffer, reused
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::unique_ptr<StaticFiles> web_;  // the dashboard (static_files.hpp)
  std::shared_ptr<tcp::acceptor> acceptor_;
  net::steady_timer status_timer_{ioc}, services_timer_{ioc}, peers_timer_{ioc};
  net::signal_set signals_{ioc, SIGINT, SIGTERM};
  bool stopping_ = false;
};

Json error_body(std::string_view message);

}  // namespace muster::gateway
