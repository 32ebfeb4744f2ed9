// uplink.hpp — `muster-bridge uplink`: publishes muster nodes as Hurozo remote nodes. It
// registers them over HTTP(S), holds the user's WebSocket, and answers every remote_node
// event by calling the node through musterd (docs/BRIDGE.md).
#pragma once

#include <string>
#include <vector>

#include "muster/client.hpp"

namespace muster::bridge {

struct UplinkOptions {
  std::string api_url = "https://app.hurozo.com";
  std::string token;                // HUROZO_TOKEN / HUROZO_API_TOKEN
  std::vector<std::string> nodes;   // globs; empty: every node
  double interval_s = 60;           // re-registration period
  double watch_interval_s = 5;      // how often the broker's node list is read
  double deadline_s = 600;          // per event, as long as the Hurozo backend waits
  double ping_interval_s = 30;      // WebSocket keep-alive ping after this much silence
  double reconnect_min_s = 0.5, reconnect_max_s = 30;
  double http_timeout_s = 30;
  double registration_ttl_s = 600;  // how long the server keeps a registration
  double rejected_retry_s = 600;    // wait after the server refused a node (4xx)
  std::string ca_file;              // extra CA for https/wss (default: the system's)
  ClientOptions client;
};

// Runs until SIGINT/SIGTERM. Returns the process exit code.
int run_uplink(UplinkOptions options);

}  // namespace muster::bridge
