// options.hpp — everything `muster-gateway serve` can be told (flags, or the same keys in a
// --config TOML file). Every limit of docs/GATEWAY.md is here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "muster/client.hpp"
#include "muster/gateway/uploads.hpp"

namespace muster::gateway {

struct GatewayOptions {
  std::string listen = "127.0.0.1:8080";  // http and ws; https and wss too once a cert is given
  std::string tls_cert, tls_key;
  bool tls_only = false;                  // refuse plain connections when a cert is given
  std::string data_dir;                   // JWT key, instance id, default users file
  std::string users_file;                 // default <data_dir>/users.json
  std::vector<std::string> workspaces;    // the workspaces served; empty: those of every user
  std::vector<std::string> allowed_origins;  // Origin values a WebSocket upgrade may carry
  double token_ttl_s = 3600;
  std::uint32_t login_attempts = 5;       // per address and window
  double login_window_s = 60;
  double ping_interval_s = 54, pong_timeout_s = 60, write_timeout_s = 10;
  std::size_t max_message_bytes = 10 * 1024 * 1024;
  std::size_t max_executions_per_socket = 1000;
  std::size_t max_queued_messages = 10000;  // per WebSocket; a peer further behind is dropped
  double status_interval_s = 5, services_interval_s = 15, peers_interval_s = 10;
  double poll_interval_s = 1;             // how often musterd's lists are read
  double inactive_ttl_s = 600;            // a vanished node stays listed INACTIVE this long
  UploadLimits uploads;                   // file.upload.* bounds and expiry
  ClientOptions client;                   // how to reach musterd (grace: --daemon-timeout)
  std::string web_root;                   // the dashboard bundle (empty: default_web_root())
};

}  // namespace muster::gateway
