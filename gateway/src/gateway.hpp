// gateway.hpp — muster-gateway's server: the state behind every HTTP request and WebSocket
// (users, tokens, the catalog of the workspace, open executions) and what each route and
// message does. Sessions (http_session.hpp, ws_session.hpp) only move bytes.
//
// Threads: one Asio thread runs sockets, timers and every method here; the DaemonLink thread
// talks to musterd and posts its results here; one more thread checks passwords (Argon2id is
// slow on purpose).
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

#include "daemon_link.hpp"
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

// What a WebSocket upgrade is allowed as, or the refusal to send.
struct WsGrant {
  std::string user;
  Role role;
  std::int64_t expires_at = 0;  // the token's
};

class Gateway {
 public:
  explicit Gateway(GatewayOptions options);
  ~Gateway();
  // Serves until SIGINT/SIGTERM; returns the exit code.
  int run();

  // ---- called by sessions, on the Asio thread ----
  void handle_http(Request req, const std::string& remote, Respond respond);
  std::variant<WsGrant, Response> authorize_ws(const Request& req);
  void ws_opened(const std::shared_ptr<WsPeer>& peer);
  void ws_closed(const std::shared_ptr<WsPeer>& peer);
  void ws_message(WsPeer& peer, const std::string& text, bool binary);
  std::uint64_t next_peer_id() { return ++peer_ids_; }

  const GatewayOptions& options() const { return opt_; }
  net::io_context ioc{1};
  std::shared_ptr<ssl::context> server_tls;

 private:
  // ---- auth (auth.cpp) ----
  void login(const Request& req, const std::string& remote, Respond respond);
  // The user a bearer token (header or ?token=) stands for, or the 401/403 to send.
  std::variant<WsGrant, Response> authenticate(const Request& req, std::optional<std::string> token);
  const UsersFile& users();

  // ---- REST (rest.cpp) ----
  void call_node(const Request& req, const std::string& node, const WsGrant& who, Respond respond);
  Response status_response(const Request& req);
  Response health_response(const Request& req);
  Response metrics_response(const Request& req);  // GET /metrics (metrics_route.cpp)

  // ---- pushes (pushes.cpp) ----
  void on_snapshot(Snapshot s);
  void broadcast(std::string_view type, const Json& payload);
  void send_to(WsPeer& peer, std::string_view type, const Json& payload);
  Json node_status_payload() const;
  // Closes the WebSockets whose token expired or whose user left the users file or the
  // workspace; applies role changes to the others.
  void recheck_sessions();
  void schedule(net::steady_timer& timer, double seconds, std::function<void()> what);

  // ---- executions (executions.cpp) ----
  struct Execution {
    ExecutionState state;
    std::weak_ptr<WsPeer> peer;  // the socket that started it (empty for REST)
    Respond rest;                // the REST caller waiting for the terminal state
    std::chrono::steady_clock::time_point started;
  };
  void start_execution(WsPeer& peer, const Json& payload);
  void cancel_execution(WsPeer& peer, const Json& payload);
  std::uint64_t begin_call(CallRequest request, Execution ex);
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
  std::unique_ptr<DaemonLink> link_;
  Catalog catalog_;
  Snapshot last_;              // last snapshot from musterd
  bool have_snapshot_ = false;
  std::chrono::steady_clock::time_point last_up_{};
  std::string last_services_, last_peers_;  // what was pushed last (to push on change)

  std::map<std::uint64_t, std::shared_ptr<WsPeer>> peers_;
  std::atomic<std::uint64_t> peer_ids_{0};
  std::unordered_map<std::uint64_t, Execution> executions_;
  std::uint64_t next_execution_ = 0;
  LatencyWindow latency_;
  std::uint64_t completed_ = 0, failed_ = 0, cancelled_ = 0;
  GatewayMetrics metrics_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::shared_ptr<tcp::acceptor> acceptor_;
  net::steady_timer status_timer_{ioc}, services_timer_{ioc}, peers_timer_{ioc};
  net::signal_set signals_{ioc, SIGINT, SIGTERM};
  bool stopping_ = false;
};

Response json_response(const Request& req, http::status status, const Json& body);
Json error_body(std::string_view message);

}  // namespace muster::gateway
