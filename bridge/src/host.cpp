// host.cpp — `muster-bridge host`: the Hurozo-compatible HTTP API and WebSocket endpoint, and
// the muster worker that serves every registered remote node.
//
// Threads: one Asio thread runs every socket (listeners, HTTP sessions, WebSockets, the expiry
// sweep); the worker SDK runs its loop and `capacity` handler threads. A handler blocks while
// its event is out on a WebSocket. Shared state (registrations, connected peers and which
// names they serve, pending calls) is guarded by one mutex; sockets are only touched on the
// Asio thread (sends from handlers are posted).
// Floods: a listener that cannot accept (EMFILE, ENFILE, ...) pauses with a growing delay
// instead of retrying at once, and logs that at most once a second; each address may hold
// `max_connections_per_ip` connections, and all together `max_connections`, by default the
// descriptor limit less what the muster worker needs (one per handler thread, and a margin),
// so a flood of connections cannot starve the worker of descriptors; request headers must
// arrive within `header_timeout`.
#include "host.hpp"

#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/bridge/api_tokens.hpp"
#include "muster/bridge/backoff.hpp"
#include "muster/bridge/connection_limiter.hpp"
#include "muster/bridge/log_throttle.hpp"
#include "muster/bridge/peer_directory.hpp"
#include "muster/bridge/hurozo.hpp"
#include "muster/bridge/registration_store.hpp"
#include "muster/logging.hpp"
#include "muster/bridge/url.hpp"
#include "muster/bridge/ws_token.hpp"
#include "muster/node_spec.hpp"
#include "http_connection.hpp"
#include "net.hpp"
#include "tls.hpp"

namespace muster::bridge {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now().time_since_epoch()).count();
}
std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}
std::int64_t to_ms(double seconds) { return static_cast<std::int64_t>(seconds * 1000.0); }

Response json_response(const Request& req, http::status status, const Json& body) {
  Response res{status, req.version()};
  res.set(http::field::server, "muster-bridge");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = dump_json(body);
  res.prepare_payload();
  return res;
}

tcp::endpoint parse_listen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument(fmt::format("listen address '{}' needs host:port", text));
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  beast::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (ec) throw std::invalid_argument(fmt::format("listen address '{}': '{}' is not an IP address", text, host));
  int p = 0;
  try {
    p = std::stoi(port);
  } catch (...) {
    p = -1;
  }
  if (p < 0 || p > 65535) throw std::invalid_argument(fmt::format("listen address '{}': bad port", text));
  return {addr, static_cast<unsigned short>(p)};
}

std::string load_or_create_secret(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (s.size() < 16) throw std::runtime_error(fmt::format("secret file '{}' holds fewer than 16 bytes", path));
    return s;
  }
  std::string s = random_bytes(32);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("cannot create secret file '{}'", path));
    out.write(s.data(), static_cast<std::streamsize>(s.size()));
  }
  ::chmod(path.c_str(), 0600);
  spdlog::info("created a new WebSocket token secret in {}", path);
  return s;
}

// One connected WebSocket of a user.
class Peer : public std::enable_shared_from_this<Peer> {
 public:
  virtual ~Peer() = default;
  // Thread-safe: queues a text message (posted to the Asio thread).
  virtual void send(std::shared_ptr<const std::string> text) = 0;
  virtual void close() = 0;
  std::uint64_t id = 0;
  std::string user;
  std::string remote;
  std::string token_node;  // the name whose registration issued its token ("" if unknown)
  std::shared_ptr<ConnectionLimiter::Slot> slot;  // its place under the per-address cap
};

struct PendingCall {
  enum class State { Waiting, Replied, Lost, ShuttingDown };
  std::string uuid, user, node;
  std::vector<std::string> outputs;
  std::set<std::uint64_t> recipients;  // peers the event went to and that are still open
  std::set<std::uint64_t> watched;     // those of them that can answer (PeerDirectory::Route)
  State state = State::Waiting;
  Json reply_outputs;
  std::condition_variable cv;
};

struct Counters {
  std::atomic<std::uint64_t> registrations{0}, registrations_refused{0}, auth_failures{0},
      ws_opened{0}, ws_rejected{0}, events_sent{0}, replies{0}, unknown_uuid{0}, bad_json{0},
      lost{0}, timeouts{0}, no_peer{0}, accept_failures{0}, refused_connections{0}, header_timeouts{0};
};

}  // namespace

class Host {
 public:
  explicit Host(HostOptions o);
  int run();

  // ---- called from sessions, on the Asio thread ----
  Response handle_api(const Request& req, bool tls);
  // The WebSocket's verified token, or the refusal to send.
  std::variant<VerifiedToken, Response> authorize_ws(const Request& req);
  // A place for a new connection from `remote` under the per-address cap, or nullptr (the
  // refusal is counted and logged, at most once a second).
  std::shared_ptr<ConnectionLimiter::Slot> admit_connection(const tcp::endpoint& remote);
  // --max-connections, or the descriptor limit (raised to the hard limit first) less what the
  // muster worker needs: one descriptor per handler thread and kDescriptorMargin.
  std::size_t connection_budget();
  static constexpr std::size_t kDescriptorMargin = 64;
  std::chrono::milliseconds header_timeout() const {
    return std::chrono::milliseconds(static_cast<std::int64_t>(opt_.header_timeout_s * 1000.0));
  }
  // ---- the HTTP session's Handler (bridge/net/http_connection.hpp), on the Asio thread ----
  HttpLimits http_limits() const {
    HttpLimits l;
    l.body_limit = 1024 * 1024;
    l.handshake_timeout = l.header_timeout = header_timeout();  // a request's headers, also between requests
    l.body_timeout = std::chrono::seconds(60);
    return l;
  }
  Response http_error(const Request& req, http::status status, std::string_view message);
  void http_timeout(const std::string& remote) {
    counters.header_timeouts++;
    spdlog::debug("closing the connection from {}: no complete request in time", remote);
  }
  template <class Stream>
  std::optional<Response> http_upgrade(HttpSession<Stream, Host>& session, Request& req);
  template <class Session>
  HttpCancel http_request(Session&, Request req, HttpReply reply) {
    reply(handle_api(req, Session::tls));
    return {};
  }

  void peer_opened(const std::shared_ptr<Peer>& peer);
  void peer_closed(const std::shared_ptr<Peer>& peer);
  void peer_message(Peer& peer, const std::string& text);
  std::uint64_t next_peer_id() { return ++peer_ids_; }

  net::io_context ioc{1};
  std::shared_ptr<ssl::context> server_tls;
  Counters counters;

 private:
  Response register_node(const Request& req, bool tls);
  Response list_nodes(const Request& req);
  std::string websocket_url_for(const Request& req, bool tls) const;
  void update_nodes_locked();
  void sweep();
  void start_listener(const std::string& address, bool tls);
  void shutdown();
  Map call(Context& ctx, const std::string& node);

  HostOptions opt_;
  ApiTokens tokens_;
  std::optional<WsTokenSigner> signer_;
  std::atomic<std::uint64_t> peer_ids_{0};

  std::mutex mu_;
  RegistrationStore store_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Peer>> peers_;  // open WebSockets by id
  PeerDirectory directory_;  // which user each belongs to, which names each serves
  std::condition_variable peers_cv_;
  std::unordered_map<std::string, std::shared_ptr<PendingCall>> pending_;
  std::vector<NodeSpec> current_specs_;
  std::set<std::string> warned_names_;
  bool stopping_ = false;

  std::unique_ptr<Worker> worker_;
  std::thread worker_thread_;
  bool worker_started_ = false;

  std::optional<ConnectionLimiter> limiter_;
  std::size_t limiter_budget_ = 0;
  LogThrottle refusal_log_;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  net::steady_timer sweep_timer_{ioc};
  net::signal_set signals_{ioc, SIGINT, SIGTERM};
};

namespace {

// ---- WebSocket session ----------------------------------------------------------------------

template <class Stream>
class WsSession : public Peer {
 public:
  WsSession(Stream&& stream, Host& host) : ws_(std::move(stream)), host_(host) {}

  void run(Request req) {
    websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
    t.idle_timeout = std::chrono::seconds(60);  // a ping after 30 s of silence; dead after 60 s
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "muster-bridge"); }));
    ws_.read_message_max(16 * 1024 * 1024);
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    ws_.async_accept(req, [self](beast::error_code ec) { self->on_accept(ec); });
  }

  void send(std::shared_ptr<const std::string> text) override {
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    net::post(ws_.get_executor(), [self, text = std::move(text)] {
      if (self->closed_) return;
      if (self->queue_.size() >= kMaxQueued) {
        spdlog::warn("WebSocket of {} ({}) is not reading ({} messages queued): closing it", self->user,
                     self->remote, self->queue_.size());
        self->closed_ = true;
        self->queue_.clear();
        beast::error_code ec;
        beast::get_lowest_layer(self->ws_).socket().close(ec);  // the pending read reports the close
        return;
      }
      self->queue_.push_back(text);
      if (self->queue_.size() == 1) self->do_write();
    });
  }

  void close() override {
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    net::post(ws_.get_executor(), [self] {
      if (self->closed_) return;
      self->ws_.async_close(websocket::close_code::going_away, [self](beast::error_code) {});
    });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::info("WebSocket handshake with {} failed: {}", remote, ec.message());
      closed_ = true;
      return;
    }
    host_.peer_opened(shared_from_this());
    do_read();
  }

  void do_read() {
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    ws_.async_read(buffer_, [self](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      closed_ = true;
      queue_.clear();
      if (ec == websocket::error::closed)
        spdlog::info("WebSocket of {} ({}) closed by the peer", user, remote);
      else
        spdlog::info("WebSocket of {} ({}) lost: {}", user, remote, ec.message());
      host_.peer_closed(shared_from_this());
      return;
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    host_.peer_message(*this, text);
    do_read();
  }

  void do_write() {
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    ws_.text(true);
    auto msg = queue_.front();  // the handler keeps the text alive even if the queue is cleared
    ws_.async_write(net::buffer(*msg), [self, msg](beast::error_code ec, std::size_t) {
      if (ec) {
        spdlog::info("write to the WebSocket of {} ({}) failed: {}", self->user, self->remote, ec.message());
        self->queue_.clear();
        return;  // the pending read fails too and reports the close
      }
      if (self->queue_.empty()) return;
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->do_write();
    });
  }

  static constexpr std::size_t kMaxQueued = 100000;
  websocket::stream<Stream> ws_;
  beast::flat_buffer buffer_;
  Host& host_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  bool closed_ = false;
};

// ---- HTTP sessions: bridge/net/http_connection.hpp, with the Host as their Handler ----------

}  // namespace

Response Host::http_error(const Request& req, http::status status, std::string_view message) {
  return json_response(req, status, error_body(message));
}

template <class Stream>
std::optional<Response> Host::http_upgrade(HttpSession<Stream, Host>& session, Request& req) {
  auto auth = authorize_ws(req);
  auto* token = std::get_if<VerifiedToken>(&auth);
  if (!token) {
    counters.ws_rejected++;
    return std::move(std::get<Response>(auth));
  }
  auto ws = std::make_shared<WsSession<Stream>>(session.take_stream(), *this);
  ws->id = next_peer_id();
  ws->user = token->user;
  ws->token_node = token->node;
  ws->remote = session.remote();
  ws->slot = std::static_pointer_cast<ConnectionLimiter::Slot>(session.take_keep());
  ws->run(std::move(req));
  return std::nullopt;
}

namespace {

// Accepts connections and hands each to an HTTP session (plain or TLS). When accepting fails
// (out of descriptors: EMFILE/ENFILE, or any other error) it stops accepting for a delay
// that doubles while it keeps failing (5 ms up to 1 s) instead of retrying at once, which
// would spin: the pending connection keeps the socket readable.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(Host& host, std::shared_ptr<tcp::acceptor> acc, bool tls)
      : host_(host), acc_(std::move(acc)), tls_(tls), pause_(host.ioc) {}
  void accept() {
    auto self = shared_from_this();
    acc_->async_accept(host_.ioc, [self](beast::error_code ec, tcp::socket socket) {
      if (ec) return self->on_accept_failed(ec);
      self->backoff_.reset();
      beast::error_code ignored;
      auto remote = socket.remote_endpoint(ignored);
      if (ignored) {  // reset by the peer already
        self->accept();
        return;
      }
      if (auto slot = self->host_.admit_connection(remote)) {
        socket.set_option(tcp::no_delay(true), ignored);
        auto who = fmt::format("{}:{}", remote.address().to_string(), remote.port());
        if (self->tls_)
          std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>, Host>>(
              beast::tcp_stream(std::move(socket)), beast::flat_buffer{}, *self->host_.server_tls, self->host_,
              std::move(who), std::move(slot))->run();
        else
          std::make_shared<HttpSession<beast::tcp_stream, Host>>(beast::tcp_stream(std::move(socket)),
                                                                beast::flat_buffer{}, self->host_, std::move(who),
                                                                std::move(slot))->run();
      }  // else the socket closes here
      self->accept();
    });
  }

 private:
  void on_accept_failed(beast::error_code ec) {
    if (ec == net::error::operation_aborted || !acc_->is_open()) return;
    host_.counters.accept_failures++;
    auto delay = backoff_.next();
    std::uint64_t held = 0;
    if (failure_log_.admit(steady_ms(), &held))
      spdlog::warn("accept failed: {}; not accepting for {} ms{}", ec.message(), delay.count(),
                   held ? fmt::format(" ({} more failure(s) since the last report)", held) : "");
    auto self = shared_from_this();
    pause_.expires_after(delay);
    pause_.async_wait([self](beast::error_code ec) {
      if (!ec && self->acc_->is_open()) self->accept();
    });
  }

  Host& host_;
  std::shared_ptr<tcp::acceptor> acc_;
  bool tls_;
  net::steady_timer pause_;
  Backoff backoff_{std::chrono::milliseconds(5), std::chrono::milliseconds(1000)};
  LogThrottle failure_log_;
};

}  // namespace

// ---- Host -------------------------------------------------------------------------------------

Host::Host(HostOptions o) : opt_(std::move(o)), store_(to_ms(opt_.registration_ttl_s)) {
  if (opt_.tokens_file.empty()) throw std::invalid_argument("host mode needs --tokens-file");
  tokens_ = ApiTokens::load(opt_.tokens_file);
  if (tokens_.size() == 0) spdlog::warn("tokens file {} holds no tokens: every API call will be refused", opt_.tokens_file);
  signer_.emplace(opt_.secret_file.empty() ? WsTokenSigner::random()
                                           : WsTokenSigner(load_or_create_secret(opt_.secret_file)));
  if (!opt_.tls_cert.empty() || !opt_.tls_key.empty()) {
    if (opt_.tls_cert.empty() || opt_.tls_key.empty())
      throw std::invalid_argument("--tls-cert and --tls-key go together");
    server_tls = make_server_tls(opt_.tls_cert, opt_.tls_key);
    if (opt_.tls_listen.empty()) opt_.tls_listen = "127.0.0.1:8443";
  } else if (!opt_.tls_listen.empty()) {
    throw std::invalid_argument("--tls-listen needs --tls-cert and --tls-key");
  }
  if (opt_.listen.empty() && opt_.tls_listen.empty()) throw std::invalid_argument("nothing to listen on");
  if (!(opt_.header_timeout_s > 0)) throw std::invalid_argument("--header-timeout must be positive");
  limiter_budget_ = connection_budget();
  limiter_.emplace(opt_.max_connections_per_ip, limiter_budget_);
  opt_.worker.handle_signals = false;
  worker_ = std::make_unique<Worker>(opt_.worker);
}


void Host::start_listener(const std::string& address, bool tls) {
  auto ep = parse_listen(address);
  auto acc = std::make_shared<tcp::acceptor>(ioc);
  acc->open(ep.protocol());
  acc->set_option(net::socket_base::reuse_address(true));
  acc->bind(ep);
  acc->listen(net::socket_base::max_listen_connections);
  auto bound = acc->local_endpoint();
  spdlog::info("listening on {}://{}:{}", tls ? "https" : "http", bound.address().to_string(), bound.port());
  acceptors_.push_back(acc);
  std::make_shared<Listener>(*this, acc, tls)->accept();
}

std::size_t Host::connection_budget() {
  if (opt_.max_connections != 0) return opt_.max_connections;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  rlim_t want = std::min<rlim_t>(lim.rlim_max, 65536);
  if (lim.rlim_cur < want) {
    rlimit raised = lim;
    raised.rlim_cur = want;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  std::size_t reserve = opt_.worker.capacity + kDescriptorMargin;
  std::size_t limit = lim.rlim_cur == RLIM_INFINITY ? 65536 : static_cast<std::size_t>(lim.rlim_cur);
  if (limit < reserve + 16) {
    spdlog::warn("the descriptor limit ({}) is too low for --capacity {}: the muster worker needs about {}; "
                 "raise `ulimit -n` or lower --capacity. Allowing 16 connections",
                 limit, opt_.worker.capacity, reserve);
    return 16;
  }
  return limit - reserve;
}

std::shared_ptr<ConnectionLimiter::Slot> Host::admit_connection(const tcp::endpoint& remote) {
  std::string address = remote.address().to_string();
  ConnectionLimiter::Refusal why;
  auto slot = limiter_->acquire(address, &why);
  if (slot) return slot;
  counters.refused_connections++;
  std::uint64_t held = 0;
  if (!refusal_log_.admit(steady_ms(), &held)) return nullptr;
  std::string more = held ? fmt::format(" ({} more refusal(s) since the last report)", held) : "";
  if (why == ConnectionLimiter::Refusal::PerKey)
    spdlog::warn("refused a connection from {}: it has {} open (--max-connections-per-ip){}", address,
                 limiter_->open(address), more);
  else
    spdlog::warn("refused a connection from {}: {} connections are open in all (--max-connections){}", address,
                 limiter_->open_total(), more);
  return nullptr;
}

std::string Host::websocket_url_for(const Request& req, bool tls) const {
  if (!opt_.websocket_url.empty()) return opt_.websocket_url;
  std::string host(req[http::field::host]);
  if (host.empty()) host = tls ? opt_.tls_listen : opt_.listen;
  return fmt::format("{}://{}/ws", tls ? "wss" : "ws", host);
}

Response Host::handle_api(const Request& req, bool tls) {
  std::string_view path = target_path(req.target());
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/api/remote_nodes/register") {
    if (req.method() != http::verb::post)
      return json_response(req, http::status::method_not_allowed, error_body("Method not allowed"));
    return register_node(req, tls);
  }
  if (path == "/api/remote_nodes") {
    if (req.method() != http::verb::get)
      return json_response(req, http::status::method_not_allowed, error_body("Method not allowed"));
    return list_nodes(req);
  }
  if (path == "/healthz" && req.method() == http::verb::get)
    return json_response(req, http::status::ok, Json{{"status", "ok"}});
  return json_response(req, http::status::not_found, error_body("Not found"));
}

namespace {
std::optional<std::string_view> authorization_of(const Request& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return std::nullopt;
  return std::string_view(it->value().data(), it->value().size());
}
}  // namespace

Response Host::register_node(const Request& req, bool tls) {
  auto auth = tokens_.authorize(authorization_of(req), /*need_write=*/true);
  if (!auth.ok) {
    counters.auth_failures++;
    spdlog::info("register refused: {} {}", auth.status, auth.error);
    return json_response(req, static_cast<http::status>(auth.status), error_body(auth.error));
  }
  auto parsed = parse_register_request(req.body());
  if (auto* err = std::get_if<ApiError>(&parsed)) {
    counters.registrations_refused++;
    spdlog::info("register by {} refused: {} {}", auth.user, err->status, err->error);
    return json_response(req, static_cast<http::status>(err->status), error_body(err->error));
  }
  auto& r = std::get<RegisterRequest>(parsed);
  Registration reg;
  {
    std::lock_guard lock(mu_);
    reg = store_.upsert(auth.user, r.name, r.inputs, r.outputs, steady_ms());
    directory_.registered(auth.user, r.name);
    update_nodes_locked();
  }
  peers_cv_.notify_all();  // a call waiting for a worker of this name may go now
  counters.registrations++;
  if (reg.created_ms == reg.refreshed_ms)
    spdlog::info("registered remote node '{}' for {} (inputs [{}], outputs [{}])", reg.name, reg.user,
                 fmt::join(reg.inputs, ", "), fmt::join(reg.outputs, ", "));
  else
    spdlog::debug("refreshed remote node '{}' for {}", reg.name, reg.user);
  // The token names the node (when it can be a muster node at all), so the WebSocket opened
  // with it is known to serve that node (PeerDirectory).
  std::string token = signer_->sign(auth.user, wall_ms(), to_ms(opt_.ws_token_ttl_s),
                                    valid_node_name(reg.name) ? std::string_view(reg.name) : std::string_view());
  return json_response(req, http::status::ok, register_response(reg, websocket_url_for(req, tls), token));
}

Response Host::list_nodes(const Request& req) {
  auto auth = tokens_.authorize(authorization_of(req), /*need_write=*/false);
  if (!auth.ok) {
    counters.auth_failures++;
    return json_response(req, static_cast<http::status>(auth.status), error_body(auth.error));
  }
  std::vector<Registration> regs;
  {
    std::lock_guard lock(mu_);
    regs = store_.list(auth.user, steady_ms());
  }
  return json_response(req, http::status::ok, list_response(regs));
}

std::variant<VerifiedToken, Response> Host::authorize_ws(const Request& req) {
  std::string_view path = target_path(req.target());
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path != "/ws") return json_response(req, http::status::not_found, error_body("Not found"));
  auto token = query_param(req.target(), "auth");
  if (!token) token = query_param(req.target(), "token");
  if (!token || token->empty()) {
    spdlog::info("WebSocket refused: no token");
    return json_response(req, http::status::unauthorized, error_body("Missing authentication token"));
  }
  std::string why;
  auto verified = signer_->verify(*token, wall_ms(), &why);
  if (!verified) {
    spdlog::info("WebSocket refused: token {}", why);
    return json_response(req, http::status::unauthorized, error_body("Invalid authentication token"));
  }
  return std::move(*verified);
}

void Host::peer_opened(const std::shared_ptr<Peer>& peer) {
  counters.ws_opened++;
  {
    std::lock_guard lock(mu_);
    peers_[peer->id] = peer;
    directory_.opened(peer->id, peer->user, peer->token_node);
  }
  peers_cv_.notify_all();
  if (peer->token_node.empty())
    spdlog::info("WebSocket #{} of {} connected from {}", peer->id, peer->user, peer->remote);
  else
    spdlog::info("WebSocket #{} of {} connected from {} (token of '{}')", peer->id, peer->user, peer->remote,
                 peer->token_node);
}

void Host::peer_closed(const std::shared_ptr<Peer>& peer) {
  std::lock_guard lock(mu_);
  if (!peers_.erase(peer->id)) return;
  auto orphans = directory_.closed(peer->id);
  if (!orphans.empty())
    spdlog::warn("WebSocket #{} of {} served [{}]; no other connection of {} serves {}: calls get NO_WORKER "
                 "until a worker of it connects or registers it again", peer->id, peer->user,
                 fmt::join(orphans, ", "), peer->user, orphans.size() == 1 ? "it" : "them");
  for (auto& [uuid, call] : pending_) {
    call->recipients.erase(peer->id);
    if (call->watched.erase(peer->id) && call->watched.empty() && call->state == PendingCall::State::Waiting) {
      call->state = PendingCall::State::Lost;
      call->cv.notify_all();
    }
  }
}

void Host::peer_message(Peer& peer, const std::string& text) {
  auto parsed = parse_reply(text);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    if (*why == "not JSON") {
      counters.bad_json++;
      spdlog::warn("ignoring a message that is not JSON on the WebSocket of {} ({} bytes)", peer.user, text.size());
    } else {
      spdlog::debug("ignoring a message on the WebSocket of {}: {}", peer.user, *why);
    }
    return;
  }
  auto& reply = std::get<RemoteReply>(parsed);
  std::lock_guard lock(mu_);
  auto it = pending_.find(reply.uuid);
  if (it == pending_.end() || it->second->user != peer.user || it->second->state != PendingCall::State::Waiting) {
    counters.unknown_uuid++;
    spdlog::warn("ignoring a reply with unknown uuid '{}' on the WebSocket of {}", reply.uuid, peer.user);
    return;
  }
  auto& call = *it->second;
  if (!reply.node.empty() && reply.node != call.node)
    spdlog::debug("reply {} names node '{}' but answers '{}'", reply.uuid, reply.node, call.node);
  directory_.answered(peer.id, call.node);
  call.reply_outputs = std::move(reply.outputs);
  call.state = PendingCall::State::Replied;
  call.cv.notify_all();
}

// The muster nodes follow the live registrations: one node per registered name that is a
// valid muster node name; the worker attaches again only when the list really changes.
void Host::update_nodes_locked() {
  if (stopping_) return;
  std::vector<NodeSpec> specs;
  for (auto& r : store_.exposed(steady_ms())) {
    if (!valid_node_name(r.name)) {
      if (warned_names_.insert(r.name).second)
        spdlog::warn("remote node '{}' of {} is registered but cannot be a muster node (names are "
                     "[A-Za-z0-9_.:-], at most 128)", r.name, r.user);
      continue;
    }
    NodeSpec spec;
    spec.name = r.name;
    spec.description = "Hurozo-style remote node, served over muster-bridge's WebSocket";
    spec.category = "remote";
    for (auto& i : r.inputs) spec.inputs.push_back(Port{.name = i});
    for (auto& o : r.outputs) spec.outputs.push_back(Port{.name = o});
    spec.default_timeout_ms = static_cast<std::uint64_t>(to_ms(opt_.reply_timeout_s));
    specs.push_back(std::move(spec));
  }
  if (specs == current_specs_) return;
  current_specs_ = specs;
  std::vector<NodeDeclaration> table;
  std::vector<std::string> names;
  for (auto& spec : specs) {
    names.push_back(spec.name);
    std::string name = spec.name;
    table.push_back({std::move(spec), [this, name](Context& ctx) { return call(ctx, name); }});
  }
  spdlog::info("muster nodes served by this bridge: [{}]", fmt::join(names, ", "));
  worker_->set_nodes(std::move(table));
  if (!worker_started_ && !names.empty()) {
    worker_started_ = true;
    worker_thread_ = std::thread([this] {
      try {
        int rc = worker_->run();
        if (rc != 0) spdlog::error("musterd refused the bridge's worker (exit code {})", rc);
      } catch (const std::exception& e) {
        spdlog::error("the bridge's muster worker stopped: {}", e.what());
      }
    });
  }
}

void Host::sweep() {
  {
    std::lock_guard lock(mu_);
    auto gone = store_.expire(steady_ms());
    for (auto& r : gone) {
      spdlog::info("registration of remote node '{}' for {} expired", r.name, r.user);
      directory_.expired(r.user, r.name);
    }
    if (!gone.empty()) update_nodes_locked();
  }
  sweep_timer_.expires_after(std::chrono::milliseconds(std::clamp<std::int64_t>(store_.ttl_ms() / 10, 50, 1000)));
  sweep_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) sweep();
  });
}

Map Host::call(Context& ctx, const std::string& node) {
  auto start = SteadyClock::now();
  auto deadline = std::min(ctx.deadline(), start + std::chrono::milliseconds(to_ms(opt_.reply_timeout_s)));
  auto grace_end = start + std::chrono::milliseconds(to_ms(opt_.connect_grace_s));
  std::unique_lock lock(mu_);
  // Pick the freshest registration of this name whose user has a WebSocket that can serve it
  // (PeerDirectory); give a reconnecting worker `connect_grace` to come back.
  Registration chosen;
  PeerDirectory::Route route;
  for (;;) {
    if (stopping_) throw WorkError("the bridge is shutting down", ErrorCode::ShuttingDown);
    auto regs = store_.find(node, steady_ms());
    if (regs.empty())
      throw WorkError(fmt::format("remote node '{}' is no longer registered", node), ErrorCode::NoWorker);
    auto servable = std::find_if(regs.begin(), regs.end(), [&](const Registration& r) {
      route = directory_.route(r.user, node);
      return route.routable();
    });
    if (servable != regs.end()) {
      chosen = *servable;
      break;
    }
    if (SteadyClock::now() >= grace_end || ctx.aborted()) {
      counters.no_peer++;
      const auto& user = regs.front().user;
      if (directory_.orphaned(user, node)) {
        spdlog::warn("call of '{}' failed: the WebSocket of {} that served it closed and no other serves it "
                     "node={} request_id={} user={}", node, user, log_value(node), ctx.request_id(), log_value(user));
        throw WorkError(fmt::format("the remote worker of '{}' disconnected and no other connection serves it", node),
                        ErrorCode::NoWorker);
      }
      spdlog::warn("call of '{}' failed: no WebSocket of {} is connected node={} request_id={} user={}", node, user,
                   log_value(node), ctx.request_id(), log_value(user));
      throw WorkError(fmt::format("no remote worker of '{}' is connected", node), ErrorCode::NoWorker);
    }
    peers_cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  auto call = std::make_shared<PendingCall>();
  call->uuid = new_uuid();
  call->user = chosen.user;
  call->node = node;
  call->outputs = chosen.outputs;
  auto text = std::make_shared<const std::string>(
      dump_json(event_message(RemoteEvent{node, inputs_for_event(chosen.inputs, ctx.inputs()), call->uuid})));
  for (auto id : route.recipients) {
    call->recipients.insert(id);
    peers_.at(id)->send(text);
  }
  call->watched.insert(route.watched().begin(), route.watched().end());
  pending_[call->uuid] = call;
  counters.events_sent++;
  spdlog::debug("event {} for '{}' sent to {} WebSocket(s) of {} ({} known to serve it) node={} request_id={} event={}",
                call->uuid, node, call->recipients.size(), call->user, route.servers.size(), log_value(node),
                ctx.request_id(), call->uuid);
  while (call->state == PendingCall::State::Waiting && !ctx.aborted() && SteadyClock::now() < deadline)
    call->cv.wait_for(lock, std::chrono::milliseconds(50));
  pending_.erase(call->uuid);
  switch (call->state) {
    case PendingCall::State::Replied: {
      counters.replies++;
      std::vector<std::string> missing;
      Map outputs = outputs_from_reply(call->outputs, call->reply_outputs, &missing);
      if (!missing.empty())
        spdlog::info("reply {} for '{}' lacks output(s) [{}]: given as null node={} request_id={} event={}",
                     call->uuid, node, fmt::join(missing, ", "), log_value(node), ctx.request_id(), call->uuid);
      return outputs;
    }
    case PendingCall::State::Lost:
      counters.lost++;
      spdlog::warn("call {} of '{}' failed: the WebSocket(s) of {} serving it closed before a reply node={} "
                   "request_id={} event={}", call->uuid, node, call->user, log_value(node), ctx.request_id(), call->uuid);
      throw WorkError(fmt::format("the remote worker of '{}' disconnected before it answered", node), ErrorCode::WorkerLost);
    case PendingCall::State::ShuttingDown:
      throw WorkError("the bridge is shutting down", ErrorCode::ShuttingDown);
    case PendingCall::State::Waiting:
      break;
  }
  if (ctx.aborted()) throw WorkError("aborted by the daemon", ErrorCode::Cancelled);
  counters.timeouts++;
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
  spdlog::warn("call {} of '{}' timed out: no reply from {} within {} ms node={} request_id={} event={}", call->uuid,
               node, call->user, waited, log_value(node), ctx.request_id(), call->uuid);
  throw WorkError(fmt::format("no reply from the remote worker of '{}' within {} ms", node, waited), ErrorCode::Timeout);
}

void Host::shutdown() {
  spdlog::info("stopping: closing listeners and WebSockets");
  for (auto& acc : acceptors_) {
    beast::error_code ec;
    acc->close(ec);
  }
  sweep_timer_.cancel();
  std::vector<std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [uuid, call] : pending_) {
      call->state = PendingCall::State::ShuttingDown;
      call->cv.notify_all();
    }
    for (auto& [id, peer] : peers_) peers.push_back(peer);
  }
  peers_cv_.notify_all();
  for (auto& p : peers) p->close();
  worker_->stop();
  // Let the closes go out, then stop.
  auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(200));
  timer->async_wait([this, timer](beast::error_code) { ioc.stop(); });
}

int Host::run() {
  if (!opt_.listen.empty()) start_listener(opt_.listen, false);
  if (!opt_.tls_listen.empty()) start_listener(opt_.tls_listen, true);
  spdlog::info("host mode: registrations expire after {} s, WebSocket tokens after {} s, replies wait up to {} s; "
               "request headers within {} s; connections: {} per address, {} in all",
               opt_.registration_ttl_s, opt_.ws_token_ttl_s, opt_.reply_timeout_s, opt_.header_timeout_s,
               opt_.max_connections_per_ip == 0 ? std::string("any number") : std::to_string(opt_.max_connections_per_ip),
               limiter_budget_);
  sweep();
  signals_.async_wait([this](beast::error_code ec, int sig) {
    if (!ec) shutdown();
  });
  ioc.run();
  if (worker_thread_.joinable()) worker_thread_.join();
  spdlog::info("stopped: {} registration(s), {} event(s) sent, {} repl(ies), {} timeout(s), {} lost, "
               "{} unknown uuid(s), {} bad JSON message(s); connections: {} refused (caps), "
               "{} without a complete request in time, {} failed accept(s)",
               counters.registrations.load(), counters.events_sent.load(), counters.replies.load(),
               counters.timeouts.load(), counters.lost.load(), counters.unknown_uuid.load(), counters.bad_json.load(),
               counters.refused_connections.load(), counters.header_timeouts.load(),
               counters.accept_failures.load());
  return 0;
}

int run_host(HostOptions options) {
  Host host(std::move(options));
  return host.run();
}

}  // namespace muster::bridge
