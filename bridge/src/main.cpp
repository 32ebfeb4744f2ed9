// main.cpp — the `muster-bridge` command line: `uplink` (muster nodes become Hurozo remote
// nodes) and `host` (a Hurozo-compatible backend whose remote nodes become muster nodes).
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or settings.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "host.hpp"
#include "muster/config_file.hpp"
#include "muster/process.hpp"
#include "uplink.hpp"

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"muster-bridge — connects muster to Hurozo-style remote nodes, both directions.", "muster-bridge"};
  app.set_version_flag("--version", "muster-bridge " MUSTER_VERSION)->configurable(false);  // "NAME VERSION" (help2man)
  // Every flag below is also a setting of the --config file (muster/config_file.hpp): the
  // program's own as top-level keys, uplink's in an [uplink] table, host's in a [host] table.
  // Both --config and --print-config may come before or after the subcommand (fallthrough).
  bool print_config = false;
  muster::add_config_options(app, &print_config);
  app.fallthrough();
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format, muster::kLogFormatHelp)
      ->capture_default_str()->check(CLI::IsMember({"text", "json"}));
  app.require_subcommand(1);

  // ---- uplink ----
  muster::bridge::UplinkOptions up;
  up.api_url = env("HUROZO_API_URL").empty() ? up.api_url : env("HUROZO_API_URL");
  up.token = !env("HUROZO_TOKEN").empty() ? env("HUROZO_TOKEN") : env("HUROZO_API_TOKEN");
  auto* uplink = app.add_subcommand("uplink", "Publish muster nodes as Hurozo remote nodes and serve their events");
  uplink->add_option("--api-url", up.api_url, "Hurozo API base (env HUROZO_API_URL)")->capture_default_str();
  uplink->add_option("--token", up.token, "API token (env HUROZO_TOKEN or HUROZO_API_TOKEN; prefer the env)");
  uplink->add_option("--node", up.nodes, "Node to publish, glob allowed; repeatable (default: all)");
  uplink->add_option("--interval", up.interval_s, "Seconds between re-registrations")->capture_default_str()
      ->check(CLI::PositiveNumber);
  uplink->add_option("--watch-interval", up.watch_interval_s, "Seconds between reads of the broker's node list")
      ->capture_default_str()->check(CLI::PositiveNumber);
  uplink->add_option("--deadline", up.deadline_s, "Seconds an event may take in muster")->capture_default_str()
      ->check(CLI::PositiveNumber);
  uplink->add_option("--ping-interval", up.ping_interval_s, "Seconds of WebSocket silence before a ping")
      ->capture_default_str()->check(CLI::PositiveNumber);
  uplink->add_option("--reconnect-min", up.reconnect_min_s, "First reconnect delay, seconds")->capture_default_str()
      ->check(CLI::PositiveNumber);
  uplink->add_option("--reconnect-max", up.reconnect_max_s, "Largest reconnect delay, seconds")->capture_default_str()
      ->check(CLI::PositiveNumber);
  uplink->add_option("--http-timeout", up.http_timeout_s, "Seconds a registration request may take")
      ->capture_default_str()->check(CLI::PositiveNumber);
  uplink->add_option("--registration-ttl", up.registration_ttl_s,
                     "Seconds the server keeps a registration (events for vanished nodes are answered that long)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  uplink->add_option("--rejected-retry", up.rejected_retry_s, "Seconds before a node the server refused is tried again")
      ->capture_default_str()->check(CLI::PositiveNumber);
  uplink->add_option("--ca-file", up.ca_file, "PEM CA certificates to trust for https/wss (default: the system's)");
  uplink->add_option("--client-address", up.client.client_address,
                     "musterd client endpoint, or both daemons' of a failover pair as A,B (default: ipc://<runtime dir>/client.sock)");
  uplink->add_flag("--insecure", up.client.insecure, "Allow tcp:// musterd endpoints without CURVE (clear text!)");

  // ---- host ----
  muster::bridge::HostOptions host;
  host.worker.capacity = 256;
  auto* hostc = app.add_subcommand("host", "Serve a Hurozo-compatible API; registered remote nodes become muster nodes");
  hostc->add_option("--listen", host.listen, "http address host:port (empty: no plain http)")->capture_default_str();
  hostc->add_option("--tls-listen", host.tls_listen, "https address host:port (default 127.0.0.1:8443 with a cert)");
  hostc->add_option("--tls-cert", host.tls_cert, "PEM certificate chain for https/wss");
  hostc->add_option("--tls-key", host.tls_key, "PEM private key for https/wss");
  hostc->add_option("--tokens-file", host.tokens_file, "API tokens: '<token> <user> [write|read]' per line")
      ->required();
  hostc->add_option("--websocket-url", host.websocket_url,
                    "websocket_url given to workers (default: ws(s)://<Host header>/ws)");
  hostc->add_option("--secret-file", host.secret_file,
                    "HMAC key for WebSocket tokens, created if missing (default: random per start)");
  hostc->add_option("--ws-token-ttl", host.ws_token_ttl_s, "Seconds a WebSocket token stays valid")
      ->capture_default_str()->check(CLI::PositiveNumber);
  hostc->add_option("--registration-ttl", host.registration_ttl_s, "Seconds a registration lives after its last refresh")
      ->capture_default_str()->check(CLI::PositiveNumber);
  hostc->add_option("--reply-timeout", host.reply_timeout_s, "Seconds to wait for a worker's reply")
      ->capture_default_str()->check(CLI::PositiveNumber);
  hostc->add_option("--connect-grace", host.connect_grace_s,
                    "Seconds a call waits for a registered worker's WebSocket to (re)connect")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  hostc->add_option("--max-connections-per-ip", host.max_connections_per_ip,
                    "Open connections (HTTP and WebSocket) allowed per client address; 0: no cap")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  hostc->add_option("--max-connections", host.max_connections,
                    "Open connections allowed in all (default: the descriptor limit less --capacity and 64)")
      ->check(CLI::NonNegativeNumber);
  hostc->add_option("--header-timeout", host.header_timeout_s,
                    "Seconds a connection may take to send its TLS handshake, then a request's headers "
                    "(also the idle time allowed between requests on a kept-alive connection)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  hostc->add_option("--capacity", host.worker.capacity, "Calls served at once")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  hostc->add_option("--worker-id", host.worker.worker_id, "muster worker id (default: <hostname>-<pid>)");
  hostc->add_option("--request-address", host.worker.request_address,
                    "musterd request (PUB) endpoint, or a failover pair's as A,B (default: ipc://<runtime dir>/request.sock)");
  hostc->add_option("--response-address", host.worker.response_address,
                    "musterd response (ROUTER) endpoint, or a failover pair's as A,B (default: ipc://<runtime dir>/response.sock)");
  hostc->add_flag("--insecure", host.worker.insecure, "Allow tcp:// musterd endpoints without CURVE (clear text!)");

  if (auto code = muster::parse_or_exit(app, argc, argv, print_config)) return *code;
  try {
    muster::setup_logging(log_level, "bridge", muster::parse_log_format(log_format));
  } catch (const std::exception& e) {
    std::cerr << "muster-bridge: error: " << e.what() << "\n";
    return 2;
  }
  try {
    if (*uplink) return muster::bridge::run_uplink(std::move(up));
    return muster::bridge::run_host(std::move(host));
  } catch (const std::invalid_argument& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
