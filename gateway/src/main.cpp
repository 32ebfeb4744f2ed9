// main.cpp — the `muster-gateway` command line: `serve` (the HTTP/WebSocket front door of one
// musterd, docs/GATEWAY.md) and `user add|remove|list` (the users file).
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or settings.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/config_file.hpp"
#include "muster/gateway/data_dir.hpp"
#include "muster/process.hpp"

namespace {
std::string default_data_dir() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/muster/gateway";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/muster/gateway";
  return "muster-gateway-data";
}

std::string users_path(const std::string& users_file, const std::string& data_dir) {
  return users_file.empty() ? data_dir + "/users.json" : users_file;
}

// The password: the first line of stdin (a terminal is not switched to no-echo; pipe it in).
std::string read_password() {
  std::string line;
  if (!std::getline(std::cin, line) && line.empty()) throw std::invalid_argument("no password on stdin");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw std::invalid_argument("the password on stdin is empty");
  return line;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace muster::gateway;
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"muster-gateway — HTTP and WebSocket front door of a musterd (docs/GATEWAY.md).", "muster-gateway"};
  app.set_version_flag("--version", "muster-gateway " MUSTER_VERSION)->configurable(false);  // "NAME VERSION" (help2man)
  // Every flag below is also a setting of the --config file (muster/config_file.hpp): the
  // program's own as top-level keys, serve's in a [serve] table. Both --config and
  // --print-config may come before or after the subcommand (fallthrough).
  bool print_config = false;
  muster::add_config_options(app, &print_config);
  app.fallthrough();
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format, muster::kLogFormatHelp)
      ->capture_default_str()->check(CLI::IsMember({"text", "json"}));
  app.require_subcommand(1);

  // ---- serve ----
  GatewayOptions o;
  o.data_dir = default_data_dir();
  o.client.secure.role = "gateway";  // over tcp:// it enrolls as a gateway identity
  o.client.secure.name = "gateway";
  double daemon_timeout_s = 2;
  auto* serve = app.add_subcommand("serve", "Serve HTTP/WebSocket (and HTTPS/WSS with a certificate) on one port");
  serve->add_option("--listen", o.listen, "host:port for http, ws (and https, wss with a certificate)")->capture_default_str();
  serve->add_option("--tls-cert", o.tls_cert, "PEM certificate chain: the port also speaks https/wss");
  serve->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  serve->add_flag("--tls-only", o.tls_only, "With a certificate, refuse plain http/ws connections");
  serve->add_option("--data-dir", o.data_dir, "JWT key, instance id, users file (created 0700)")->capture_default_str();
  serve->add_option("--users-file", o.users_file, "Users file (default: <data-dir>/users.json)");
  serve->add_option("--workspace", o.workspaces,
                    "A workspace served (repeatable; default: the workspace of every user). Users of other "
                    "workspaces may not log in; over tcp:// the gateway must be enrolled for each");
  serve->add_option("--allowed-origin", o.allowed_origins,
                    "Origin a browser's WebSocket may come from, e.g. https://app.example (repeatable; the "
                    "gateway's own origin is always allowed; clients without Origin are not browsers)");
  serve->add_option("--token-ttl", o.token_ttl_s, "Seconds a login's JWT stays valid")->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--login-attempts", o.login_attempts, "Logins per address per --login-window")->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  serve->add_option("--login-window", o.login_window_s, "Seconds of the login rate limit window")->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--ping-interval", o.ping_interval_s, "Seconds between WebSocket pings")->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--pong-timeout", o.pong_timeout_s, "Seconds without a pong before a WebSocket is dropped")
      ->capture_default_str()->check(CLI::PositiveNumber);
  serve->add_option("--write-timeout", o.write_timeout_s, "Seconds a WebSocket write may take")->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--max-message-bytes", o.max_message_bytes, "Largest WebSocket message or HTTP body")
      ->capture_default_str()->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  serve->add_option("--max-executions-per-socket", o.max_executions_per_socket, "Open executions per WebSocket")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  serve->add_option("--max-queued-messages", o.max_queued_messages,
                    "Messages queued for one WebSocket before it is dropped as not reading")
      ->capture_default_str()->check(CLI::Range(std::size_t{16}, std::size_t{10000000}));
  serve->add_option("--status-interval", o.status_interval_s, "Seconds between node.status pushes")->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--services-interval", o.services_interval_s, "Seconds between periodic services.updated pushes")
      ->capture_default_str()->check(CLI::PositiveNumber);
  serve->add_option("--peers-interval", o.peers_interval_s, "Seconds between periodic peers.updated pushes")
      ->capture_default_str()->check(CLI::PositiveNumber);
  serve->add_option("--poll-interval", o.poll_interval_s, "Seconds between reads of musterd's node and worker lists")
      ->capture_default_str()->check(CLI::Range(0.05, 3600.0));
  serve->add_option("--inactive-ttl", o.inactive_ttl_s, "Seconds a node without workers stays listed as INACTIVE")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  serve->add_option("--upload-max-file-bytes", o.uploads.max_file_bytes, "Largest file one upload may hold")
      ->capture_default_str();
  serve->add_option("--upload-quota-bytes", o.uploads.per_user_bytes, "Bytes of uploads (finished and open) one user may keep")
      ->capture_default_str();
  serve->add_option("--upload-total-bytes", o.uploads.total_bytes, "Bytes of uploads the gateway keeps in all")
      ->capture_default_str();
  serve->add_option("--upload-session-ttl", o.uploads.session_ttl_s, "Seconds an idle (or paused) upload session is kept")
      ->capture_default_str()->check(CLI::PositiveNumber);
  serve->add_option("--upload-ttl", o.uploads.file_ttl_s, "Seconds a finished upload is kept")->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--max-file-input-bytes", o.uploads.max_file_input_bytes,
                    "Largest uploaded file a call may take as an input ({\"$file\": ...}); 0: no limit of "
                    "its own (--upload-max-file-bytes bounds every file). Files over 8 MiB are sent chunked "
                    "from disk as the worker reads them")->capture_default_str();
  serve->add_option("--daemon-timeout", daemon_timeout_s, "Seconds musterd may take to answer a query before it counts as unreachable")
      ->capture_default_str()->check(CLI::Range(0.1, 600.0));
  serve->add_option("--web-root", o.web_root,
                    "Directory of the dashboard bundle served at / (default: web/ beside this program, "
                    "else ../share/muster/gateway/web)");
  serve->add_option("--client-address", o.client.client_address,
                    "musterd client endpoint, or both daemons' of a failover pair as A,B (default: ipc://<runtime dir>/client.sock, as the local owner)");
  serve->add_flag("--insecure", o.client.insecure, "Allow a tcp:// musterd endpoint without CURVE (clear text!)");
  serve->add_option("--muster-data-dir", o.client.secure.data_dir,
                    "Where the gateway's CURVE identity lives (tcp:// only; default: $MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster)");
  serve->add_option("--identity-name", o.client.secure.name, "Identity name in that data dir")->capture_default_str();
  serve->add_option("--enrollment-address", o.client.secure.enrollment_address,
                    "musterd enrollment endpoint (default: tcp://<daemon host>:7900)");
  serve->add_option("--enrollment-token-file", o.client.secure.token_file,
                    "File holding the enrollment token (muster token create --role gateway --workspace alpha,beta)");

  // ---- user ----
  auto* user = app.add_subcommand("user", "Manage the users file");
  user->require_subcommand(1);
  std::string data_dir = default_data_dir(), users_file, name, workspace = "default", role = "read";
  for (auto* sub : {user->add_subcommand("add", "Add a user; the password is read from stdin (first line)"),
                    user->add_subcommand("remove", "Remove a user"), user->add_subcommand("list", "List the users")}) {
    sub->add_option("--data-dir", data_dir, "The gateway's data dir")->capture_default_str();
    sub->add_option("--users-file", users_file, "Users file (default: <data-dir>/users.json)");
    if (sub->get_name() != "list") sub->add_option("name", name, "User name ([A-Za-z0-9_.@-], 1 to 64)")->required();
    if (sub->get_name() == "add") {
      sub->add_option("--workspace", workspace, "The user's workspace")->capture_default_str();
      sub->add_option("--role", role, "read, call or admin")->capture_default_str()
          ->check(CLI::IsMember({"read", "call", "admin"}));
    }
  }

  if (auto code = muster::parse_or_exit(app, argc, argv, print_config)) return *code;
  try {
    muster::setup_logging(log_level, "gateway", muster::parse_log_format(log_format));
  } catch (const std::exception& e) {
    std::cerr << "muster-gateway: error: " << e.what() << "\n";
    return 2;
  }
  try {
    if (*user) {
      auto path = users_path(users_file, data_dir);
      if (users_file.empty()) ensure_data_dir(data_dir);
      auto file = UsersFile::load(path);
      if (user->got_subcommand("list")) {
        for (auto& u : file.users()) std::cout << u.name << "\t" << u.workspace << "\t" << role_name(u.role) << "\n";
        return 0;
      }
      if (user->got_subcommand("remove")) {
        if (!file.remove(name)) throw std::invalid_argument(fmt::format("no user '{}' in {}", name, path));
        file.save(path);
        std::cout << "removed user " << name << "\n";
        return 0;
      }
      if (!valid_user_name(name)) throw std::invalid_argument(fmt::format("'{}' is not a valid user name ([A-Za-z0-9_.@-], 1 to 64)", name));
      if (file.find(name)) throw std::invalid_argument(fmt::format("user '{}' already exists in {}", name, path));
      User u{.name = name, .workspace = workspace, .role = *role_from_name(role), .password_hash = hash_password(read_password())};
      file.add(std::move(u));
      file.save(path);
      std::cout << "added user " << name << " (workspace " << workspace << ", role " << role << ") to " << path << "\n";
      return 0;
    }
    o.client.grace = std::chrono::milliseconds(static_cast<std::int64_t>(daemon_timeout_s * 1000));
    Gateway gw(std::move(o));
    return gw.run();
  } catch (const std::invalid_argument& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
