// host.hpp — `muster-bridge host`: a Hurozo-compatible backend. Remote workers register over
// HTTP and serve over a WebSocket; every registered node is a muster node served by this
// bridge as a muster worker (docs/BRIDGE.md).
#pragma once

#include <string>

#include "muster/worker.hpp"

namespace muster::bridge {

struct HostOptions {
  std::string listen = "127.0.0.1:8080";  // http; empty: none
  std::string tls_listen;                 // https; default 127.0.0.1:8443 when a cert is given
  std::string tls_cert, tls_key;
  std::string tokens_file;
  std::string websocket_url;  // what register replies advertise (default: derived per request)
  std::string secret_file;    // HMAC key for WebSocket tokens (default: random per start)
  double ws_token_ttl_s = 60;
  double registration_ttl_s = 600;
  double reply_timeout_s = 600;
  double connect_grace_s = 5;
  std::size_t max_connections_per_ip = 64;  // open HTTP + WebSocket connections per address; 0: no cap
  std::size_t max_connections = 0;          // in all; 0: the descriptor limit less what the worker needs
  double header_timeout_s = 10;             // TLS handshake, then request line and headers
  WorkerOptions worker;
};

// Serves until SIGINT/SIGTERM. Returns the process exit code.
int run_host(HostOptions options);

}  // namespace muster::bridge
