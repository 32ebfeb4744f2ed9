// main.cpp — musterd's command line: flags, defaults, logging, then the Daemon loop.
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "daemon.hpp"
#include "muster/endpoints.hpp"
#include "muster/process.hpp"
#include "muster/runtime_dir.hpp"

namespace {
std::string default_data_dir() {
  if (const char* d = std::getenv("MUSTER_DATA_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/muster";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/muster";
  return (muster::runtime_dir() / "data").string();
}
}  // namespace

int main(int argc, char** argv) {
  using muster::SocketRole;
  muster::broker::DaemonOptions opt;
  opt.data_dir = default_data_dir();
  opt.request_address = muster::default_endpoint(SocketRole::Request);
  opt.response_address = muster::default_endpoint(SocketRole::Response);
  opt.client_address = muster::default_endpoint(SocketRole::Client);
  std::uint64_t ping_ms = 1000, timeout_ms = 30000, grace_ms = 5000;
  std::string log_level = "info";

  CLI::App app{
      "musterd — the muster broker daemon.\n"
      "Keeps the registry of workers, dispatches work requests to them and enforces deadlines.\n"
      "Default endpoints are ipc:// sockets in the runtime dir ($MUSTER_RUNTIME_DIR, else\n"
      "$XDG_RUNTIME_DIR/muster, else /tmp/muster-$UID), created with mode 0700.",
      "musterd"};
  app.set_version_flag("--version", MUSTER_VERSION);
  app.add_option("--data-dir", opt.data_dir, "Directory for keys, tokens and identities")
      ->capture_default_str();
  app.add_option("--request-address", opt.request_address, "PUB endpoint workers subscribe to")
      ->capture_default_str();
  app.add_option("--response-address", opt.response_address, "ROUTER endpoint workers talk to")
      ->capture_default_str();
  app.add_option("--client-address", opt.client_address, "ROUTER endpoint clients talk to")
      ->capture_default_str();
  app.add_flag("--insecure", opt.insecure, "Allow tcp:// endpoints without CURVE (clear text!)");
  app.add_option("--ping-interval-ms", ping_ms, "Heartbeat interval")
      ->capture_default_str()->check(CLI::Range(10, 3600000));
  app.add_option("--liveness", opt.core.liveness,
                 "Heartbeat intervals a worker may stay silent before it is declared dead")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--queue-limit", opt.core.queue_limit,
                 "Requests that may wait per node when every worker is busy")
      ->capture_default_str()->check(CLI::Range(0, 10000000));
  app.add_option("--max-attempts", opt.core.max_attempts,
                 "Dispatches of an idempotent request across worker deaths")
      ->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--default-timeout-ms", timeout_ms,
                 "Deadline for requests whose client and node give none")
      ->capture_default_str()->check(CLI::Range(1, 86400000));
  app.add_option("--shutdown-grace-ms", grace_ms,
                 "On SIGINT/SIGTERM, how long running requests may still finish")
      ->capture_default_str()->check(CLI::Range(0, 3600000));
  app.add_option("--max-message-bytes", opt.max_message_bytes, "Largest message accepted")
      ->capture_default_str()->check(CLI::Range(1024, 1 << 30));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  opt.core.ping_interval = muster::broker::Millis(ping_ms);
  opt.core.default_timeout = muster::broker::Millis(timeout_ms);
  opt.core.shutdown_grace = muster::broker::Millis(grace_ms);
  opt.core.version = MUSTER_VERSION;
  try {
    muster::setup_logging(log_level, "musterd");
    muster::ensure_private_dir(opt.data_dir);
    muster::SignalPipe signals;
    muster::broker::Daemon daemon(std::move(opt));
    return daemon.run(signals);
  } catch (const std::exception& e) {
    std::cerr << "musterd: error: " << e.what() << "\n";
    return 1;
  }
}
