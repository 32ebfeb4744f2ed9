// http_session.hpp — the gateway's connections: the first-bytes check that tells TLS from
// plain text on the one port (Beast's detect_ssl), then the shared HTTP session
// (bridge/net/http_connection.hpp) with the Gateway as its handler, and the upgrade of /api/ws into
// a WebSocket session.
// Must never: interpret a route (the Gateway does) or log a request target.
#pragma once

#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "http_connection.hpp"
#include "ws_session.hpp"

namespace muster::gateway {

// The session template is bridge/net/http_connection.hpp (shared with the bridge's host mode); the
// Gateway is its Handler. An upgrade to /api/ws becomes a WebSocket session here.
template <class Stream>
using HttpSession = bridge::HttpSession<Stream, Gateway>;

template <class Stream>
std::optional<Response> Gateway::http_upgrade(bridge::HttpSession<Stream, Gateway>& session, Request& req) {
  auto grant = authorize_ws(req);
  auto* g = std::get_if<WsGrant>(&grant);
  if (!g) return std::move(std::get<Response>(grant));
  auto ws = std::make_shared<WsSession<Stream>>(session.take_stream(), *this);
  ws->id = next_peer_id();
  ws->user = g->user;
  ws->role = g->role;
  ws->workspace = g->workspace;
  ws->expires_at = g->expires_at;
  ws->remote = session.remote();
  ws->run(std::move(req));
  return std::nullopt;
}

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
