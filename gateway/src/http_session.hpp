// http_session.hpp — the gateway's connections: the listener, the first-bytes check that tells
// TLS from plain text on the one port (Beast's detect_ssl), and the HTTP session that reads
// requests, hands them to the Gateway and turns an upgrade into a WebSocket session.
// Owns: per-connection timeouts and the request size limit.
// Must never: interpret a route (the Gateway does) or log a request target.
#pragma once

#include <array>

#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "ws_session.hpp"

namespace muster::gateway {

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, Gateway& gw, std::string remote)
    requires(!bridge::is_ssl_stream_v<Stream>)
      : stream_(std::move(stream)), buffer_(std::move(buffer)), gw_(gw), remote_(std::move(remote)) {}
  HttpSession(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, ssl::context& ctx, Gateway& gw,
              std::string remote)
    requires(bridge::is_ssl_stream_v<Stream>)
      : stream_(std::move(stream), ctx), buffer_(std::move(buffer)), gw_(gw), remote_(std::move(remote)) {}

  void run() {
    if constexpr (bridge::is_ssl_stream_v<Stream>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
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

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(gw_.options().max_message_bytes);
    parser_->header_limit(16 * 1024);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(60));
    auto self = this->shared_from_this();
    http::async_read(stream_, buffer_, *parser_, [self](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec) {
      if (ec == http::error::body_limit) {
        Request req;
        write(json_response(req, http::status::payload_too_large, error_body("Request body too large")), true);
      } else if (ec != beast::error::timeout && ec != net::error::eof && ec != net::error::connection_reset) {
        Request req;
        write(json_response(req, http::status::bad_request, error_body("Malformed HTTP request")), true);
      }
      return;
    }
    Request req = parser_->release();
    if (websocket::is_upgrade(req)) {
      auto grant = gw_.authorize_ws(req);
      if (auto* g = std::get_if<WsGrant>(&grant)) {
        beast::get_lowest_layer(stream_).expires_never();
        auto ws = std::make_shared<WsSession<Stream>>(std::move(stream_), gw_);
        ws->id = gw_.next_peer_id();
        ws->user = g->user;
        ws->role = g->role;
        ws->expires_at = g->expires_at;
        ws->remote = remote_;
        ws->run(std::move(req));
        return;
      }
      return write(std::move(std::get<Response>(grant)), true);
    }
    auto self = this->shared_from_this();
    gw_.handle_http(std::move(req), remote_, [self](Response res) { self->write(std::move(res), false); });
  }

  void write(Response res, bool close) {
    auto sp = std::make_shared<Response>(std::move(res));
    if (close) sp->keep_alive(false);
    bool eof = sp->need_eof();
    auto self = this->shared_from_this();
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    http::async_write(stream_, *sp, [self, sp, eof](beast::error_code ec, std::size_t) {
      if (ec) return;
      if (eof) return self->do_close();
      self->do_read();
    });
  }

  void do_close() {
    if constexpr (bridge::is_ssl_stream_v<Stream>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      auto self = this->shared_from_this();
      stream_.async_shutdown([self](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      // Read and drop what the client still sends (the rest of a refused body) for at most 5 s:
      // closing with unread data would reset the connection, and the client could lose the answer.
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      drain();
    }
  }

  void drain() {
    if constexpr (!bridge::is_ssl_stream_v<Stream>) {
      auto self = this->shared_from_this();
      auto scratch = std::make_shared<std::array<char, 16384>>();
      stream_.async_read_some(net::buffer(*scratch), [self, scratch](beast::error_code ec, std::size_t) {
        if (!ec) self->drain();
      });
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  Gateway& gw_;
  std::string remote_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

// Reads the first bytes of a connection: a TLS ClientHello goes to an https session (when the
// gateway has a certificate), anything else to a plain one (unless --tls-only).
class Detector : public std::enable_shared_from_this<Detector> {
 public:
  Detector(tcp::socket&& socket, Gateway& gw) : stream_(std::move(socket)), gw_(gw) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? std::string("?") : ep.address().to_string();
  }
  void run() {
    stream_.expires_after(std::chrono::seconds(30));
    auto self = shared_from_this();
    beast::async_detect_ssl(stream_, buffer_, [self](beast::error_code ec, bool tls) {
      if (ec) return;
      auto& gw = self->gw_;
      if (tls) {
        if (!gw.server_tls) {
          spdlog::debug("TLS connection from {} refused: no --tls-cert", self->remote_);
          return;
        }
        std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(
            std::move(self->stream_), std::move(self->buffer_), *gw.server_tls, gw, self->remote_)->run();
        return;
      }
      if (gw.server_tls && gw.options().tls_only) {
        spdlog::debug("plain connection from {} refused: --tls-only", self->remote_);
        return;
      }
      std::make_shared<HttpSession<beast::tcp_stream>>(std::move(self->stream_), std::move(self->buffer_), gw,
                                                      self->remote_)->run();
    });
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Gateway& gw_;
  std::string remote_;
};

}  // namespace muster::gateway
