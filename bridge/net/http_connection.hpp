// http_connection.hpp — one HTTP/1.1 connection, plain or TLS, as the bridge's host mode and the
// gateway serve it: the TLS handshake, reading each request (headers within a header timeout,
// then the body within a body timeout and a size limit), keep-alive, the answer, an upgrade
// handed to the program, a graceful close, and noticing a client that goes away while its
// answer is still being worked out (so the program can cancel that work).
// Owns: the read/answer/close cycle of one connection and its timeouts.
// Must never: interpret a route or a header (the program's Handler does), log a request target
// (it may carry ?token=), or run two reads at once on the stream.
//
// Handler (held by reference, used on the session's strand only) provides:
//   HttpLimits http_limits() const;
//   Response http_error(const Request& req, http::status status, std::string_view message);
//       // the program's error body (413, 400)
//   void http_timeout(const std::string& remote);          // no complete request in time
//   template <class Stream> std::optional<Response> http_upgrade(HttpSession<Stream, Handler>& s,
//       Request& req);  // an upgrade request: take s.take_stream() and return nullopt, or refuse
//   template <class Session> HttpCancel http_request(Session& s, Request req, HttpReply reply);
//       // answer with reply(response) exactly once (now or later); the returned function, if
//       // any, is called when the client goes away before the answer (s.remote(), Session::tls)
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "net.hpp"

namespace muster::bridge {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using HttpReply = std::function<void(Response)>;
using HttpCancel = std::function<void()>;

struct HttpLimits {
  std::uint64_t body_limit = 1024 * 1024;
  std::chrono::milliseconds handshake_timeout{30000};  // TLS
  std::chrono::milliseconds header_timeout{60000};     // request line and headers (also between requests)
  std::chrono::milliseconds body_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
};

template <class Stream, class Handler>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream, Handler>> {
 public:
  // `buffer`: bytes already read from the connection (e.g. by a TLS detector); `keep`: anything
  // that must live as long as the connection (e.g. its place under a connection cap).
  HttpSession(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, Handler& handler, std::string remote,
              std::shared_ptr<void> keep = {})
    requires(!is_ssl_stream_v<Stream>)
      : stream_(std::move(stream)), buffer_(std::move(buffer)), h_(handler), remote_(std::move(remote)),
        keep_(std::move(keep)), idle_(stream_.get_executor()) {}
  HttpSession(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, ssl::context& ctx, Handler& handler,
              std::string remote, std::shared_ptr<void> keep = {})
    requires(is_ssl_stream_v<Stream>)
      : stream_(std::move(stream), ctx), buffer_(std::move(buffer)), h_(handler), remote_(std::move(remote)),
        keep_(std::move(keep)), idle_(stream_.get_executor()) {}

  static constexpr bool tls = is_ssl_stream_v<Stream>;

  void run() {
    if constexpr (is_ssl_stream_v<Stream>) {
      lowest().expires_after(h_.http_limits().handshake_timeout);
      auto self = this->shared_from_this();
      stream_.async_handshake(ssl::stream_base::server, buffer_.data(), [self](beast::error_code ec, std::size_t used) {
        if (ec) {
          spdlog::debug("TLS handshake with {} failed: {}", self->remote_, ec.message());
          return;
        }
        self->buffer_.consume(used);
        self->do_read();
      });
    } else {
      do_read();
    }
  }

  // For http_upgrade: the connection, moved out (the session ends), and what it was given.
  Stream take_stream() {
    lowest().expires_never();
    return std::move(stream_);
  }
  const std::string& remote() const { return remote_; }
  std::shared_ptr<void> take_keep() { return std::move(keep_); }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(h_.http_limits().body_limit);
    parser_->header_limit(16 * 1024);
    lowest().expires_after(h_.http_limits().header_timeout);
    auto self = this->shared_from_this();
    http::async_read_header(stream_, buffer_, *parser_, [self](beast::error_code ec, std::size_t) {
      if (ec) return self->on_read(ec);
      self->lowest().expires_after(self->h_.http_limits().body_timeout);
      http::async_read(self->stream_, self->buffer_, *self->parser_,
                       [self](beast::error_code ec, std::size_t) { self->on_read(ec); });
    });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == beast::error::timeout) {
      h_.http_timeout(remote_);
      return;  // the stream closed the socket
    }
    if (ec) {
      Request req;
      if (ec == http::error::body_limit)
        write(h_.http_error(req, http::status::payload_too_large, "Request body too large"), true);
      else if (ec != net::error::eof && ec != net::error::connection_reset && ec != net::error::operation_aborted)
        write(h_.http_error(req, http::status::bad_request, "Malformed HTTP request"), true);
      return;
    }
    Request req = parser_->release();
    if (websocket::is_upgrade(req)) {
      auto refusal = h_.http_upgrade(*this, req);
      if (refusal) write(std::move(*refusal), true);
      return;
    }
    // While the answer is worked out, the connection is watched: a client that goes away gets
    // its work cancelled. Bytes it sends meanwhile (a pipelined request) stay in buffer_.
    lowest().expires_never();
    waiting_ = true;
    auto self = this->shared_from_this();
    cancel_ = h_.http_request(*this, std::move(req), [self](Response res) { self->answer(std::move(res)); });
    if (waiting_) watch();
  }

  // One read while an answer is pending (or being written). Ends with the client gone, or with
  // bytes, which are kept for the next request.
  void watch() {
    if (watching_ || gone_) return;
    if (buffer_.size() >= kMaxWatchBytes) return;  // a client piping requests: wait for the answer
    watching_ = true;
    auto self = this->shared_from_this();
    stream_.async_read_some(buffer_.prepare(4096), [self](beast::error_code ec, std::size_t n) {
      self->watching_ = false;
      self->idle_.cancel();
      self->buffer_.commit(n);
      if (ec) {
        self->gone_ = true;
        if (self->waiting_ && self->cancel_) {
          spdlog::debug("the client {} went away before its answer: cancelling the work", self->remote_);
          auto cancel = std::move(self->cancel_);
          cancel();
        }
        return;
      }
      if (self->waiting_ || self->writing_) return self->watch();
      self->do_read();  // the answer is out: the bytes are the next request
    });
  }

  void answer(Response res) {
    if (!waiting_) return;  // answered already
    waiting_ = false;
    cancel_ = nullptr;
    if (gone_) return;
    write(std::move(res), false);
  }

  void write(Response res, bool close) {
    auto sp = std::make_shared<Response>(std::move(res));
    if (close) sp->keep_alive(false);
    bool eof = sp->need_eof();
    auto self = this->shared_from_this();
    if (!watching_) lowest().expires_after(h_.http_limits().write_timeout);
    writing_ = true;
    http::async_write(stream_, *sp, [self, sp, eof](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec || self->gone_) return;
      if (eof) return self->do_close();
      if (!self->watching_) return self->do_read();
      // The watch read goes on as the read of the next request; it was started without a
      // deadline (the answer may take long), so the header timeout is kept by a timer.
      self->idle_.expires_after(self->h_.http_limits().header_timeout);
      self->idle_.async_wait([self](beast::error_code ec) {
        if (ec || !self->watching_) return;
        self->h_.http_timeout(self->remote_);
        beast::error_code ignored;
        self->lowest().socket().close(ignored);
      });
    });
  }

  void do_close() {
    if (watching_) {
      // A read is pending (the watch): no TLS shutdown or drain beside it; it ends the session.
      beast::error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      idle_.expires_after(std::chrono::seconds(5));
      auto self = this->shared_from_this();
      idle_.async_wait([self](beast::error_code ec) {
        beast::error_code ignored;
        if (!ec) self->lowest().socket().close(ignored);
      });
      return;
    }
    if constexpr (is_ssl_stream_v<Stream>) {
      lowest().expires_after(std::chrono::seconds(5));
      auto self = this->shared_from_this();
      stream_.async_shutdown([self](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      // Read and drop what the client still sends (the rest of a refused body) for at most 5 s:
      // closing with unread data would reset the connection, and the client could lose the answer.
      lowest().expires_after(std::chrono::seconds(5));
      drain();
    }
  }

  void drain() {
    if constexpr (!is_ssl_stream_v<Stream>) {
      auto self = this->shared_from_this();
      auto scratch = std::make_shared<std::array<char, 16384>>();
      stream_.async_read_some(net::buffer(*scratch), [self, scratch](beast::error_code ec, std::size_t) {
        if (!ec) self->drain();
      });
    }
  }

  static constexpr std::size_t kMaxWatchBytes = 64 * 1024;
  Stream stream_;
  beast::flat_buffer buffer_;
  Handler& h_;
  std::string remote_;
  std::shared_ptr<void> keep_;
  net::steady_timer idle_;  // the header timeout while the watch read waits for the next request
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpCancel cancel_;
  bool waiting_ = false;   // an answer is being worked out
  bool writing_ = false;   // an answer is being written
  bool watching_ = false;  // a read is pending outside do_read
  bool gone_ = false;      // the client closed or reset the connection
};

}  // namespace muster::bridge
