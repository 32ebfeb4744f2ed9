// uplink.cpp — `muster-bridge uplink`.
//
// Threads: the registrar (reads the broker's node list, registers nodes over HTTP(S), hands
// fresh WebSocket tokens over), the broker pump (one muster Client: submits every event at
// once and collects the results, any number in flight), and one Asio thread for the
// WebSocket (connect, TLS, pings, reads, a write queue, reconnects with backoff). They meet
// through a mutex-guarded registry, a queue with an eventfd, and posts to the Asio thread.
// Which events are served, held or ignored is UplinkEvents' rule (uplink_events.hpp): the
// Asio thread asks it and carries out its verdicts (log, count, queue for the pump).
//
// Stopping (SIGINT/SIGTERM): events stop being accepted; the pump cancels its open muster
// calls and answers each (null outputs); only when those answers are queued on the
// WebSocket (or after a bounded wait) is it closed, after its queued messages are written.
// An answer that cannot be sent is logged as such.
#include "uplink.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http_client.hpp"
#include "muster/bridge/backoff.hpp"
#include "muster/bridge/hurozo.hpp"
#include "muster/bridge/uplink_events.hpp"
#include "muster/bridge/uplink_registry.hpp"
#include "muster/bridge/url.hpp"
#include "muster/logging.hpp"
#include "muster/messages.hpp"
#include "net.hpp"
#include "tls.hpp"

namespace muster::bridge {

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t steady_ms() {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now().time_since_epoch()).count();
}
milliseconds ms_of(double seconds) { return milliseconds(static_cast<std::int64_t>(seconds * 1000.0)); }

// The server's message in an error reply: {"error": ...} or {"message": ...}, else the text.
std::string server_message(const std::string& body) {
  Json j = parse_json(body);
  if (j.is_object()) {
    for (const char* key : {"error", "message", "detail"})
      if (auto it = j.find(key); it != j.end()) return it->is_string() ? it->get<std::string>() : it->dump();
  }
  std::string s = body.substr(0, 300);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "(empty body)" : s;
}

struct Counters {
  std::atomic<std::uint64_t> events{0}, answered_ok{0}, answered_null{0}, ignored{0}, duplicates{0},
      bad_messages{0}, held{0}, held_served{0}, held_ignored{0}, connects{0}, registrations_ok{0},
      registrations_failed{0};
  std::mutex mu;
  std::map<std::string, std::uint64_t> failures;  // error code name -> count
  void failed(const std::string& code) {
    answered_null++;
    std::lock_guard lock(mu);
    failures[code]++;
  }
  std::string summary() {
    std::string f;
    {
      std::lock_guard lock(mu);
      for (auto& [code, n] : failures) f += fmt::format("{}{}={}", f.empty() ? "" : ", ", code, n);
    }
    return fmt::format("events: {} received, {} answered with outputs, {} answered with nulls{}; {} ignored, "
                       "{} duplicate(s), {} bad message(s); {} held for a registration on its way ({} then served, "
                       "{} then ignored); {} WebSocket connect(s); registrations: {} ok, {} failed",
                       events.load(), answered_ok.load(), answered_null.load(), f.empty() ? "" : " (" + f + ")",
                       ignored.load(), duplicates.load(), bad_messages.load(), held.load(), held_served.load(),
                       held_ignored.load(), connects.load(), registrations_ok.load(), registrations_failed.load());
  }
};

struct EventJob {
  std::string uuid, node;
  Json inputs;
  std::vector<std::string> outputs;  // the registered output keys to answer with
};

}  // namespace

class Uplink;

// ---- the WebSocket ------------------------------------------------------------------------------

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  virtual ~Connection() = default;
  virtual void start() = 0;
  virtual void send(std::shared_ptr<const std::string> text) = 0;  // Asio thread only
  // Asio thread only: a close frame after the messages already queued are written.
  virtual void close() = 0;
  virtual std::size_t unwritten() const = 0;  // messages queued but not yet written
  bool open = false;
  SteadyClock::time_point opened_at{};
};

class Uplink {
 public:
  explicit Uplink(UplinkOptions o);
  int run();

  // ---- Asio thread ----
  void on_token(std::string url, std::string token);
  void on_open(Connection* c);
  void on_message(const std::string& text);
  void on_closed(Connection* c, const std::string& why, bool refused);
  void send_reply(const std::string& uuid, std::string text);
  // A registration attempt for `node` is over: serve or ignore the events held for it.
  void settle_held(const std::string& node);
  // The pump answered what it could: close the WebSocket once those answers are written.
  void finish_shutdown();

  net::io_context ioc{1};
  std::shared_ptr<ssl::context> tls;
  UplinkOptions opt;
  Counters counters;

 private:
  void registrar_loop();
  void pump_loop();
  enum class RegisterOutcome { Ok, Rejected, AuthFailed, Transient };
  RegisterOutcome register_one(const RegisterRequest& spec, std::int64_t now);
  RegisterOutcome request_registration(const RegisterRequest& spec, std::int64_t now);
  void refresh_now();
  void attempt_connect();
  void connect_now();
  void schedule_reconnect();
  void shutdown();
  void apply(std::vector<EventAction> actions);  // Asio thread: carry out the event rules' verdicts
  void arm_hold_timer();

  Url api_;
  Url register_url_;

  // registry: registrar thread and Asio thread
  std::mutex reg_mu_;
  UplinkRegistry registry_;

  // registrar wake-ups
  std::mutex kick_mu_;
  std::condition_variable kick_cv_;
  bool kicked_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> registrar_done_{false}, pump_done_{false}, failed_{false};

  // broker pump queue
  std::mutex queue_mu_;
  std::deque<EventJob> queue_;
  int event_fd_ = -1;

  // Asio thread only
  std::string ws_url_, ws_token_;
  SteadyClock::time_point token_time_{};
  enum class State { NoToken, WaitingToken, Connecting, Open, Backoff, Stopped } state_ = State::NoToken;
  std::shared_ptr<Connection> conn_;
  Backoff backoff_;
  net::steady_timer reconnect_timer_{ioc};
  net::steady_timer shutdown_timer_{ioc};
  bool finishing_ = false;  // the WebSocket is closing: nothing more can be sent
  UplinkEvents events_;
  net::steady_timer hold_timer_{ioc};
  bool hold_timer_armed_ = false;
  std::deque<std::pair<SteadyClock::time_point, std::shared_ptr<const std::string>>> unsent_;
  std::mt19937 rng_{std::random_device{}()};
  net::signal_set signals_{ioc, SIGINT, SIGTERM};
};

namespace {

template <class Stream>
class WsConnection : public Connection {
 public:
  WsConnection(Uplink& up, Url url) : up_(up), url_(std::move(url)), resolver_(up.ioc), ws_(make_stream(up)) {}

  void start() override {
    auto self = std::static_pointer_cast<WsConnection>(shared_from_this());
    resolver_.async_resolve(url_.host, url_.port, [self](beast::error_code ec, tcp::resolver::results_type r) {
      if (ec) return self->fail("resolve", ec);
      beast::get_lowest_layer(self->ws_).expires_after(std::chrono::seconds(30));
      beast::get_lowest_layer(self->ws_).async_connect(r, [self](beast::error_code ec, const tcp::endpoint&) {
        if (ec) return self->fail("connect", ec);
        beast::error_code ignored;
        beast::get_lowest_layer(self->ws_).socket().set_option(tcp::no_delay(true), ignored);
        if constexpr (is_ssl_stream_v<Stream>) {
          try {
            prepare_client_tls(self->ws_.next_layer(), self->url_.host);
          } catch (const beast::system_error& e) {
            return self->fail("TLS setup", e.code());
          }
          self->ws_.next_layer().async_handshake(ssl::stream_base::client, [self](beast::error_code ec) {
            if (ec) return self->fail("TLS handshake", ec);
            self->handshake();
          });
        } else {
          self->handshake();
        }
      });
    });
  }

  void send(std::shared_ptr<const std::string> text) override {
    if (!open || closing_) return;
    queue_.push_back(std::move(text));
    if (queue_.size() == 1) do_write();
  }

  void close() override {
    if (closed_ || closing_) return;
    if (!open) {
      beast::error_code ec;
      beast::get_lowest_layer(ws_).socket().close(ec);
      return;
    }
    closing_ = true;
    if (queue_.empty()) send_close();  // else the last write sends it
  }

  std::size_t unwritten() const override { return queue_.size(); }

 private:
  static websocket::stream<Stream> make_stream(Uplink& up) {
    if constexpr (is_ssl_stream_v<Stream>) return websocket::stream<Stream>(up.ioc, *up.tls);
    else return websocket::stream<Stream>(up.ioc);
  }

  void handshake() {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = ms_of(up_.opt.ping_interval_s * 2);  // ping after half of it, dead after all of it
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(http::field::user_agent, "muster-bridge/" MUSTER_VERSION);
    }));
    ws_.read_message_max(16 * 1024 * 1024);
    auto self = std::static_pointer_cast<WsConnection>(shared_from_this());
    ws_.async_handshake(res_, url_.host_header(), url_.target, [self](beast::error_code ec) {
      if (ec) {
        if (ec == websocket::error::upgrade_declined) {
          self->closed_ = true;
          self->up_.on_closed(self.get(), fmt::format("handshake refused: {} {}", self->res_.result_int(),
                                                      server_message(self->res_.body())), true);
          return;
        }
        return self->fail("WebSocket handshake", ec);
      }
      self->open = true;
      self->opened_at = SteadyClock::now();
      self->up_.on_open(self.get());
      self->do_read();
    });
  }

  void do_read() {
    auto self = std::static_pointer_cast<WsConnection>(shared_from_this());
    ws_.async_read(buffer_, [self](beast::error_code ec, std::size_t) {
      if (ec) {
        if (ec == websocket::error::closed) {
          auto& why = self->ws_.reason();
          return self->finish(why.reason.empty() ? fmt::format("closed by the server (code {})", why.code)
                                                 : fmt::format("closed by the server ({}: {})", why.code,
                                                               why.reason.c_str()));
        }
        return self->fail("read", ec);
      }
      std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      self->up_.on_message(text);
      self->do_read();
    });
  }

  void do_write() {
    auto self = std::static_pointer_cast<WsConnection>(shared_from_this());
    ws_.text(true);
    auto msg = queue_.front();  // the handler keeps the text alive even if the queue is cleared
    ws_.async_write(net::buffer(*msg), [self, msg](beast::error_code ec, std::size_t) {
      if (ec) return;  // the read fails too and reports it
      if (self->queue_.empty()) return;
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->do_write();
      else if (self->closing_) self->send_close();
    });
  }

  void send_close() {
    auto self = std::static_pointer_cast<WsConnection>(shared_from_this());
    ws_.async_close(websocket::close_code::going_away, [self](beast::error_code) {});
  }

  void fail(const char* what, beast::error_code ec) { finish(fmt::format("{}: {}", what, ec.message())); }

  void finish(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    open = false;
    queue_.clear();
    up_.on_closed(this, why, false);
  }

  Uplink& up_;
  Url url_;
  tcp::resolver resolver_;
  websocket::stream<Stream> ws_;
  websocket::response_type res_;
  beast::flat_buffer buffer_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  bool closed_ = false;
  bool closing_ = false;  // close() was called: a close frame follows the queued messages
};

}  // namespace

// ---- Uplink -------------------------------------------------------------------------------------

Uplink::Uplink(UplinkOptions o)
    : opt(std::move(o)),
      registry_(UplinkRegistryOptions{opt.nodes, ms_of(opt.interval_s).count(), ms_of(opt.registration_ttl_s).count(),
                                      ms_of(opt.rejected_retry_s).count()}),
      backoff_(ms_of(opt.reconnect_min_s), ms_of(opt.reconnect_max_s)),
      // An event waits for its node's registration as long as that request may take, plus the
      // 2 s a TLS shutdown may add and some slack.
      events_(UplinkEventsOptions{.max_hold_ms = ms_of(opt.http_timeout_s).count() + 5000}) {
  if (opt.token.empty()) throw std::invalid_argument("uplink needs an API token (HUROZO_TOKEN or --token)");
  api_ = parse_url(opt.api_url);
  if (api_.scheme != "http" && api_.scheme != "https")
    throw std::invalid_argument(fmt::format("HUROZO_API_URL must be http(s), not '{}'", opt.api_url));
  register_url_ = api_;
  std::string base = std::string(target_path(api_.target));
  while (!base.empty() && base.back() == '/') base.pop_back();
  register_url_.target = base + "/api/remote_nodes/register";
  tls = make_client_tls(opt.ca_file);
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error("eventfd failed");
}

void Uplink::refresh_now() {
  {
    std::lock_guard lock(kick_mu_);
    kicked_ = true;
  }
  kick_cv_.notify_all();
}

Uplink::RegisterOutcome Uplink::register_one(const RegisterRequest& spec, std::int64_t now) {
  {
    std::lock_guard lock(reg_mu_);
    registry_.on_registering(spec.name);  // from now on its events are held, not ignored
  }
  auto outcome = request_registration(spec, now);
  if (outcome == RegisterOutcome::Transient || outcome == RegisterOutcome::AuthFailed) {
    std::lock_guard lock(reg_mu_);
    registry_.on_register_failed(spec.name);
  }
  net::post(ioc, [this, name = spec.name] { settle_held(name); });
  return outcome;
}

Uplink::RegisterOutcome Uplink::request_registration(const RegisterRequest& spec, std::int64_t now) {
  HttpResult res;
  try {
    res = http_request(http::verb::post, register_url_, opt.token, dump_json(register_payload(spec)), tls.get(),
                       ms_of(opt.http_timeout_s));
  } catch (const std::exception& e) {
    counters.registrations_failed++;
    spdlog::warn("registering '{}' failed: {}", spec.name, e.what());
    return RegisterOutcome::Transient;
  }
  if (res.status >= 200 && res.status < 300) {
    Json j = parse_json(res.body);
    if (!j.is_object() || !j.contains("websocket_url") || !j["websocket_url"].is_string() ||
        !j.contains("token") || !j["token"].is_string()) {
      counters.registrations_failed++;
      spdlog::warn("registering '{}': the server answered {} without websocket_url and token: {}", spec.name,
                   res.status, server_message(res.body));
      return RegisterOutcome::Transient;
    }
    bool first;
    {
      std::lock_guard lock(reg_mu_);
      first = registry_.on_registered(spec.name, now);
    }
    counters.registrations_ok++;
    if (first) spdlog::info("registered '{}' (inputs [{}], outputs [{}])", spec.name, fmt::join(spec.inputs, ", "),
                            fmt::join(spec.outputs, ", "));
    else spdlog::debug("refreshed '{}'", spec.name);
    net::post(ioc, [this, url = j["websocket_url"].get<std::string>(), token = j["token"].get<std::string>()]() mutable {
      on_token(std::move(url), std::move(token));
    });
    return RegisterOutcome::Ok;
  }
  counters.registrations_failed++;
  std::string msg = server_message(res.body);
  if (res.status == 401 || res.status == 403) {
    spdlog::error("registering '{}' refused: {} {} (check HUROZO_TOKEN: registering needs a write token); "
                  "retrying in {} s", spec.name, res.status, msg, opt.interval_s);
    return RegisterOutcome::AuthFailed;
  }
  if (res.status >= 400 && res.status < 500 && res.status != 408 && res.status != 429) {
    spdlog::error("the server refused node '{}': {} {}; not retried for {} s unless its declaration changes",
                  spec.name, res.status, msg, opt.rejected_retry_s);
    std::lock_guard lock(reg_mu_);
    registry_.on_rejected(spec.name, msg, now);
    return RegisterOutcome::Rejected;
  }
  spdlog::warn("registering '{}' failed: {} {}", spec.name, res.status, msg);
  return RegisterOutcome::Transient;
}

void Uplink::registrar_loop() {
  Client client(opt.client);
  Backoff retry(milliseconds(1000), std::max(ms_of(opt.interval_s), milliseconds(1000)));
  auto next_watch = SteadyClock::now();
  auto next_stats = SteadyClock::now() + ms_of(opt.interval_s);
  SteadyClock::time_point retry_at{};  // after a transient failure or an auth refusal
  bool broker_ok = true, said_none = false;
  std::string last_summary;
  while (!stop_) {
    bool kicked;
    {
      std::lock_guard lock(kick_mu_);
      kicked = kicked_;
      kicked_ = false;
    }
    auto now = SteadyClock::now();
    if (now >= next_watch || kicked) {
      try {
        Json nodes = client.nodes();
        std::vector<RegisterRequest> list;
        for (auto& n : nodes) list.push_back(register_request_from_node(n));
        std::vector<std::string> changed;
        {
          std::lock_guard lock(reg_mu_);
          changed = registry_.update(list, steady_ms());
        }
        for (auto& name : changed) spdlog::info("publishing muster node '{}'", name);
        bool none = false;
        {
          std::lock_guard lock(reg_mu_);
          none = registry_.present().empty();
        }
        if (none && !said_none) spdlog::info("musterd has no node to publish (yet)");
        said_none = none;
        if (!broker_ok) spdlog::info("musterd answers again");
        broker_ok = true;
      } catch (const std::exception& e) {
        if (broker_ok) spdlog::warn("cannot list the nodes of musterd: {}", e.what());
        broker_ok = false;
      }
      next_watch = SteadyClock::now() + ms_of(opt.watch_interval_s);
    }
    if (kicked && now < retry_at) retry_at = {};  // the WebSocket needs a token now
    if (SteadyClock::now() >= retry_at) {
      std::vector<RegisterRequest> due;
      {
        std::lock_guard lock(reg_mu_);
        due = registry_.due(steady_ms(), kicked);
      }
      for (auto& spec : due) {
        if (stop_) break;
        auto outcome = register_one(spec, steady_ms());
        if (outcome == RegisterOutcome::Ok) {
          retry.reset();
          retry_at = {};
        } else if (outcome == RegisterOutcome::AuthFailed) {
          retry_at = SteadyClock::now() + ms_of(opt.interval_s);
          break;  // the same token would be refused for every node
        } else if (outcome == RegisterOutcome::Transient) {
          auto delay = retry.next();
          retry_at = SteadyClock::now() + delay;
          spdlog::info("retrying registration in {} ms", delay.count());
          break;
        }
      }
    }
    if (SteadyClock::now() >= next_stats) {
      auto s = counters.summary();
      if (s != last_summary) spdlog::info("{}", s);
      last_summary = s;
      next_stats = SteadyClock::now() + ms_of(opt.interval_s);
    }
    // Sleep until the next thing falls due (or a kick).
    auto wake = std::min(next_watch, next_stats);
    {
      std::lock_guard lock(reg_mu_);
      if (auto due = registry_.next_due(steady_ms())) {
        auto t = SteadyClock::now() + milliseconds(std::max<std::int64_t>(0, *due - steady_ms()));
        wake = std::min(wake, std::max(t, retry_at));
      }
    }
    std::unique_lock lock(kick_mu_);
    kick_cv_.wait_until(lock, wake, [&] { return kicked_ || stop_.load(); });
  }
}

void Uplink::pump_loop() {
  Client client(opt.client);
  std::unordered_map<std::uint64_t, EventJob> open;
  auto deadline_ms = static_cast<std::uint64_t>(ms_of(opt.deadline_s).count());
  auto answer = [this](const EventJob& job, Json outputs) {
    auto text = dump_json(reply_message(RemoteReply{job.node, std::move(outputs), job.uuid}));
    net::post(ioc, [this, uuid = job.uuid, text = std::move(text)]() mutable { send_reply(uuid, std::move(text)); });
  };
  auto fail = [&](const EventJob& job, wire::ErrorCode code, const std::string& message) {
    counters.failed(std::string(error_code_name(code)));
    spdlog::warn("event {} for '{}' failed: {}: {}; answering with null outputs node={} event={} code={}", job.uuid,
                 job.node, error_code_name(code), message, log_value(job.node), log_value(job.uuid),
                 error_code_name(code));
    answer(job, null_outputs(job.outputs));
  };
  bool cancelled = false;
  SteadyClock::time_point give_up{};
  // After a stop, at least one more turn: it cancels what is open.
  while (!stop_ || !cancelled || (!open.empty() && SteadyClock::now() < give_up)) {
    pollfd fds[2] = {{client.fd(), POLLIN, 0}, {event_fd_, POLLIN, 0}};
    ::poll(fds, 2, 50);
    if (fds[1].revents & POLLIN) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(event_fd_, &n, sizeof n);
    }
    std::deque<EventJob> jobs;
    {
      std::lock_guard lock(queue_mu_);
      jobs.swap(queue_);
    }
    for (auto& job : jobs) {
      Map inputs;
      try {
        Value v = from_json(job.inputs);
        if (v.kind() == ValueKind::Map) inputs = std::move(v.as_map());
      } catch (const std::exception& e) {
        fail(job, wire::ErrorCode::InvalidRequest, fmt::format("inputs: {}", e.what()));
        continue;
      }
      try {
        CallOptions o;
        o.timeout_ms = deadline_ms;
        o.trace_id = job.uuid;
        auto id = client.submit(job.node, inputs, o);
        spdlog::debug("event {} for '{}' submitted to musterd node={} event={}", job.uuid, job.node,
                      log_value(job.node), log_value(job.uuid));
        open.emplace(id, std::move(job));
      } catch (const CallError& e) {
        fail(job, e.code(), e.what());
      } catch (const std::exception& e) {
        fail(job, wire::ErrorCode::Internal, e.what());
      }
    }
    for (;;) {
      auto events = client.poll(milliseconds(0));
      if (events.empty()) break;
      for (auto& ev : events) {
        if (!ev.terminal()) continue;
        auto it = open.find(ev.request_id);
        if (it == open.end()) continue;
        EventJob job = std::move(it->second);
        open.erase(it);
        if (auto* r = std::get_if<ResultEvent>(&ev.body)) {
          Json outputs;
          try {
            outputs = outputs_for_reply(job.outputs, r->outputs);
          } catch (const std::invalid_argument& e) {  // an output with no JSON form (NaN)
            fail(job, wire::ErrorCode::WorkerError, fmt::format("outputs: {}", e.what()));
            continue;
          }
          counters.answered_ok++;
          answer(job, std::move(outputs));
        } else {
          auto& f = std::get<FailureEvent>(ev.body);
          fail(job, f.code, f.message);
        }
      }
    }
    if (stop_ && !cancelled) {
      // Stopping: cancel what is still running (the daemon answers each with Cancelled) and
      // wait a little for those answers.
      for (auto& [id, job] : open) client.cancel(id);
      cancelled = true;
      give_up = SteadyClock::now() + milliseconds(2000);
    }
  }
  if (!open.empty())
    spdlog::warn("{} event(s) left unanswered: musterd did not confirm their cancellation in time", open.size());
  // Every answer above was posted before this: the WebSocket closes after writing them.
  net::post(ioc, [this] { finish_shutdown(); });
}

// ---- WebSocket side (Asio thread) -----------------------------------------------------------

void Uplink::on_token(std::string url, std::string token) {
  if (url != ws_url_ && !ws_url_.empty()) spdlog::info("the server now gives WebSocket URL {}", url);
  ws_url_ = std::move(url);
  ws_token_ = std::move(token);
  token_time_ = SteadyClock::now();
  if (state_ == State::NoToken || state_ == State::WaitingToken) connect_now();
}

void Uplink::attempt_connect() {
  if (state_ == State::Stopped) return;
  // WebSocket tokens live 60 s: fetch a fresh one unless the one at hand is very new. The
  // fresh registration also restores our nodes on a server that restarted.
  if (ws_token_.empty() || SteadyClock::now() - token_time_ > std::chrono::seconds(10)) {
    state_ = State::WaitingToken;
    refresh_now();
    reconnect_timer_.expires_after(std::chrono::seconds(10));
    reconnect_timer_.async_wait([this](beast::error_code ec) {
      if (ec || state_ != State::WaitingToken) return;
      if (!ws_token_.empty()) connect_now();  // try the token at hand
      else attempt_connect();
    });
    return;
  }
  connect_now();
}

void Uplink::connect_now() {
  reconnect_timer_.cancel();
  Url url;
  try {
    url = parse_url(append_query_param(ws_url_, "auth", ws_token_));
    if (url.scheme == "http") url.scheme = "ws";
    if (url.scheme == "https") url.scheme = "wss";
  } catch (const std::exception& e) {
    spdlog::error("unusable websocket_url from the server: {}", e.what());
    state_ = State::Backoff;
    schedule_reconnect();
    return;
  }
  state_ = State::Connecting;
  spdlog::debug("connecting to {}", ws_url_);
  if (url.tls()) conn_ = std::make_shared<WsConnection<beast::ssl_stream<beast::tcp_stream>>>(*this, url);
  else conn_ = std::make_shared<WsConnection<beast::tcp_stream>>(*this, url);
  conn_->start();
}

void Uplink::on_open(Connection* c) {
  if (c != conn_.get()) return;
  if (state_ == State::Stopped) {
    c->close();
    return;
  }
  state_ = State::Open;
  counters.connects++;
  spdlog::info("WebSocket connected to {}", ws_url_);
  // Answers that were ready while disconnected: the server correlates by uuid, on any connection.
  auto cutoff = SteadyClock::now() - ms_of(opt.deadline_s);
  for (auto& [t, text] : unsent_)
    if (t >= cutoff) c->send(text);
  unsent_.clear();
}

void Uplink::on_closed(Connection* c, const std::string& why, bool refused) {
  if (c != conn_.get()) return;
  auto lived = SteadyClock::now() - c->opened_at;
  bool was_open = state_ == State::Open;
  if (state_ == State::Stopped) return;
  if (was_open && lived > std::chrono::seconds(10)) backoff_.reset();
  state_ = State::Backoff;
  if (refused) token_time_ = {};  // the next attempt fetches a new token first
  // Held events stay held, like the events in flight: answered on the next connection.
  spdlog::warn("WebSocket {}: {}", was_open ? "lost" : "connection failed", why);
  schedule_reconnect();
}

void Uplink::schedule_reconnect() {
  auto delay = backoff_.next();
  delay += milliseconds(std::uniform_int_distribution<std::int64_t>(0, delay.count() / 5)(rng_));
  spdlog::info("reconnecting in {} ms", delay.count());
  reconnect_timer_.expires_after(delay);
  reconnect_timer_.async_wait([this](beast::error_code ec) {
    if (!ec && state_ == State::Backoff) attempt_connect();
  });
}

void Uplink::on_message(const std::string& text) {
  if (state_ == State::Stopped) return;  // stopping: no new events
  auto parsed = parse_event(text);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    if (*why == "not JSON" || *why == "not a JSON object") {
      counters.bad_messages++;
      spdlog::warn("ignoring a WebSocket message that is {} ({} bytes)", *why, text.size());
    } else {
      spdlog::debug("ignoring a WebSocket message: {}", *why);
    }
    return;
  }
  auto& ev = std::get<RemoteEvent>(parsed);
  NodeStatus node;
  {
    std::lock_guard lock(reg_mu_);
    node = registry_.status(ev.node, steady_ms());
  }
  apply(events_.on_event(std::move(ev), std::move(node), steady_ms()));
}

void Uplink::settle_held(const std::string& node) {
  if (events_.held() == 0) return;
  NodeStatus status;
  {
    std::lock_guard lock(reg_mu_);
    status = registry_.status(node, steady_ms());
  }
  apply(events_.settle(node, status, steady_ms()));
}

void Uplink::apply(std::vector<EventAction> actions) {
  bool queued = false;
  for (auto& a : actions) {
    auto& ev = a.event;
    bool was_held = a.held_ms >= 0;
    switch (a.kind) {
      case EventAction::Kind::Serve: {
        counters.events++;
        if (was_held) {
          counters.held_served++;
          spdlog::debug("event {} for '{}' held {} ms: its registration succeeded, serving it node={} event={}",
                        ev.uuid, ev.node, a.held_ms, log_value(ev.node), log_value(ev.uuid));
        }
        std::lock_guard lock(queue_mu_);
        queue_.push_back(EventJob{std::move(ev.uuid), std::move(ev.node), std::move(ev.inputs), std::move(a.outputs)});
        queued = true;
        break;
      }
      case EventAction::Kind::Hold:
        counters.held++;
        spdlog::debug("holding event {} for '{}' until its registration is answered node={} event={}", ev.uuid,
                      ev.node, log_value(ev.node), log_value(ev.uuid));
        break;
      case EventAction::Kind::Ignore:
        counters.ignored++;
        if (was_held) counters.held_ignored++;
        // Routine for a node this uplink does not serve; worth a warning when it was meant to be held.
        spdlog::log(was_held || a.why != kNotRegisteredByThisUplink ? spdlog::level::warn : spdlog::level::debug,
                    "ignoring event {} for '{}': {} node={} event={}", ev.uuid, ev.node, a.why, log_value(ev.node),
                    log_value(ev.uuid));
        break;
      case EventAction::Kind::Duplicate:
        counters.duplicates++;
        if (was_held) counters.held_ignored++;
        spdlog::debug("ignoring a repeated event {} node={} event={}", ev.uuid, log_value(ev.node), log_value(ev.uuid));
        break;
    }
  }
  if (queued) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event_fd_, &one, sizeof one);
  }
  arm_hold_timer();
}

void Uplink::arm_hold_timer() {
  auto at = events_.next_expiry();
  if (hold_timer_armed_ || !at || state_ == State::Stopped) return;
  hold_timer_armed_ = true;
  hold_timer_.expires_after(milliseconds(std::max<std::int64_t>(0, *at - steady_ms())));
  hold_timer_.async_wait([this](beast::error_code ec) {
    hold_timer_armed_ = false;
    if (!ec) apply(events_.expire(steady_ms()));  // arms it again for the next one
  });
}

void Uplink::send_reply(const std::string& uuid, std::string text) {
  events_.answered(uuid);
  if (finishing_) {
    spdlog::warn("the answer to event {} is not sent: the WebSocket is closing event={}", uuid, log_value(uuid));
    return;
  }
  auto msg = std::make_shared<const std::string>(std::move(text));
  if (conn_ && conn_->open && (state_ == State::Open || state_ == State::Stopped)) {
    conn_->send(msg);
    return;
  }
  if (unsent_.size() >= 100000) unsent_.pop_front();
  unsent_.emplace_back(SteadyClock::now(), msg);
}

void Uplink::shutdown() {
  if (state_ == State::Stopped) return;
  spdlog::info("stopping: answering the open events, then closing the WebSocket");
  state_ = State::Stopped;
  reconnect_timer_.cancel();
  hold_timer_.cancel();
  // Held events are not this uplink's to answer: their node's registration has not succeeded.
  apply(events_.drop_held("the uplink is stopping before its registration was answered", steady_ms()));
  stop_ = true;
  kick_cv_.notify_all();
  std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(event_fd_, &one, sizeof one);
  // The pump posts finish_shutdown when it is done (within about 2 s); this is the backstop.
  shutdown_timer_.expires_after(std::chrono::milliseconds(2500));
  shutdown_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) finish_shutdown();
  });
}

void Uplink::finish_shutdown() {
  if (finishing_) return;
  finishing_ = true;
  shutdown_timer_.cancel();
  if (!unsent_.empty())
    spdlog::warn("{} answer(s) not sent: the WebSocket is not connected", unsent_.size());
  if (conn_) conn_->close();  // after the answers queued on it
  auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(300));
  timer->async_wait([this, timer](beast::error_code) {
    if (conn_ && conn_->unwritten() > 0)
      spdlog::warn("{} answer(s) still unwritten when the uplink stopped (the server did not read them)",
                   conn_->unwritten());
    ioc.stop();
  });
}

int Uplink::run() {
  spdlog::info("uplink to {}: publishing {}, registering every {} s", api_.str(),
               opt.nodes.empty() ? std::string("every node") : fmt::format("[{}]", fmt::join(opt.nodes, ", ")),
               opt.interval_s);
  signals_.async_wait([this](beast::error_code ec, int) {
    if (!ec) shutdown();
  });
  std::thread registrar([this] {
    try {
      registrar_loop();
    } catch (const std::exception& e) {
      spdlog::critical("registrar stopped: {}", e.what());
      failed_ = true;
      net::post(ioc, [this] { shutdown(); });
    }
    registrar_done_ = true;
  });
  std::thread pump([this] {
    try {
      pump_loop();
    } catch (const std::exception& e) {
      spdlog::critical("broker pump stopped: {}", e.what());
      failed_ = true;
      net::post(ioc, [this] { shutdown(); });
    }
    pump_done_ = true;
  });
  ioc.run();
  stop_ = true;
  kick_cv_.notify_all();
  // The pump collects the cancellations for up to 2 s; a registration request may still be
  // open (it has its own timeout): do not wait for it beyond that.
  auto give_up = SteadyClock::now() + std::chrono::seconds(3);
  while ((!registrar_done_ || !pump_done_) && SteadyClock::now() < give_up)
    std::this_thread::sleep_for(milliseconds(20));
  spdlog::info("stopped; {}", counters.summary());
  if (!registrar_done_ || !pump_done_) {
    spdlog::warn("leaving with a registration request or muster call still open");
    spdlog::shutdown();
    std::_Exit(failed_ ? 1 : 0);
  }
  registrar.join();
  pump.join();
  ::close(event_fd_);
  return failed_ ? 1 : 0;
}

int run_uplink(UplinkOptions options) {
  Uplink up(std::move(options));
  return up.run();
}

}  // namespace muster::bridge
