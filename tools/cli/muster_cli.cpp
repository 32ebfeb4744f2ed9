// muster_cli.cpp — the `muster` command: call nodes, list nodes and workers, show status.
// Owns: argument parsing and human/JSON output. Exit codes: 0 success, 1 the call or query
// failed (stderr: "error: <CODE>: <message>"), 2 bad usage or bad input, 130 cancelled by a
// signal.
#include <iostream>
#include <iterator>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/client.hpp"
#include "muster/duration.hpp"
#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/value_json.hpp"
#include "node_stats_view.hpp"

namespace {

int report(const muster::CallError& e) {
  std::cerr << "error: " << muster::error_code_name(e.code()) << ": " << e.what() << "\n";
  return 1;
}

std::string ports(const muster::Json& list) {
  std::string out;
  for (auto& p : list) {
    if (!out.empty()) out += ",";
    out += p["name"].get<std::string>();
  }
  return out.empty() ? "-" : out;
}

void print_nodes(const muster::Json& nodes) {
  std::cout << fmt::format("{:<24} {:>7} {:>8} {:>9} {:>6}  {:<24} {}\n", "NODE", "WORKERS",
                           "CAPACITY", "IN-FLIGHT", "QUEUED", "INPUTS", "OUTPUTS");
  for (auto& n : nodes)
    std::cout << fmt::format("{:<24} {:>7} {:>8} {:>9} {:>6}  {:<24} {}\n",
                             n["name"].get<std::string>(), n["workers"].get<int>(),
                             n["capacity"].get<int>(), n["in_flight"].get<int>(),
                             n["queue_depth"].get<int>(), ports(n["inputs"]), ports(n["outputs"]));
}

void print_workers(const muster::Json& workers) {
  std::cout << fmt::format("{:<28} {:<10} {:<20} {:>8} {:>9} {:>9}  {}\n", "WORKER", "STATE",
                           "SDK", "CAPACITY", "IN-FLIGHT", "SEEN(ms)", "NODES");
  for (auto& w : workers) {
    std::string nodes;
    for (auto& n : w["nodes"]) nodes += (nodes.empty() ? "" : ",") + n.get<std::string>();
    std::cout << fmt::format("{:<28} {:<10} {:<20} {:>8} {:>9} {:>9}  {}\n",
                             w["worker_id"].get<std::string>(), w["state"].get<std::string>(),
                             w["sdk"].get<std::string>(), w["capacity"].get<int>(),
                             w["in_flight"].get<int>(), w["last_seen_ms"].get<std::uint64_t>(), nodes);
  }
}

void print_status(const muster::Json& s) {
  std::cout << fmt::format("musterd {} (instance {})\n", s["version"].get<std::string>(),
                           s["instance"].get<std::string>());
  std::cout << fmt::format("uptime      {:.1f} s\n", s["uptime_ms"].get<double>() / 1000.0);
  std::cout << fmt::format("workers     {}\nnodes       {}\nqueued      {}\nin flight   {}\n",
                           s["workers"].get<int>(), s["nodes"].get<int>(), s["queued"].get<int>(),
                           s["in_flight"].get<int>());
  std::cout << fmt::format("submitted   {}\ncompleted   {}\nfailed      {}\nredispatched {}\n",
                           s["submitted"].get<std::uint64_t>(), s["completed"].get<std::uint64_t>(),
                           s["failed"].get<std::uint64_t>(), s["redispatched"].get<std::uint64_t>());
  for (auto& [code, n] : s["failures"].items())
    std::cout << fmt::format("  {:<18} {}\n", code, n.get<std::uint64_t>());
  std::cout << fmt::format("rate (1 min) {:.2f} replies/s\n", s["rate_1m"].get<double>());
}

// Submits and waits; Ctrl-C (SIGINT) or SIGTERM cancels the request on the daemon first.
int call_node(muster::Client& client, const std::string& node, const muster::Map& inputs,
              std::uint64_t timeout_ms, bool progress) {
  muster::SignalPipe signals;
  muster::CallOptions o;
  o.timeout_ms = timeout_ms;
  if (progress) o.on_progress = [](std::uint64_t, std::uint64_t, const std::string&) {};
  auto id = client.submit(node, inputs, o);
  std::optional<std::chrono::steady_clock::time_point> cancelled_at;
  for (;;) {
    if (signals.triggered() && !cancelled_at) {
      client.cancel(id);
      cancelled_at = std::chrono::steady_clock::now();
    }
    if (cancelled_at && std::chrono::steady_clock::now() - *cancelled_at > std::chrono::seconds(5)) {
      std::cerr << "error: CANCELLED: cancelled; the daemon did not confirm\n";
      return 130;
    }
    for (auto& ev : client.poll(std::chrono::milliseconds(100))) {
      if (ev.request_id != id) continue;
      if (auto* p = std::get_if<muster::ProgressEvent>(&ev.body)) {
        std::cerr << fmt::format("progress: {}/{} {}\n", p->step, p->total, p->message);
      } else if (auto* r = std::get_if<muster::ResultEvent>(&ev.body)) {
        std::cout << muster::to_json(r->outputs).dump() << "\n";
        return 0;
      } else {
        auto& f = std::get<muster::FailureEvent>(ev.body);
        report(muster::CallError(f.code, f.message));
        return cancelled_at ? 130 : 1;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  muster::ClientOptions copt;
  CLI::App app{"muster — call nodes served by muster workers and inspect the daemon.", "muster"};
  app.set_version_flag("--version", MUSTER_VERSION);
  app.add_option("--client-address", copt.client_address,
                 "Daemon client endpoint (default: ipc://<runtime dir>/client.sock)");
  app.add_flag("--insecure", copt.insecure, "Allow tcp:// endpoints without CURVE (clear text!)");
  app.add_option("--data-dir", copt.secure.data_dir,
                 "Where this client's CURVE keys and identity live (tcp:// only; default: "
                 "$MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster)");
  app.add_option("--name", copt.secure.name, "Identity name in the data dir (default: client, or admin)");
  app.add_option("--enrollment-address", copt.secure.enrollment_address,
                 "Daemon enrollment endpoint (default: tcp://<client host>:7900)");
  app.add_option("--enrollment-token-file", copt.secure.token_file,
                 "File holding the enrollment token (default: $MUSTER_ENROLLMENT_TOKEN, else "
                 "$XDG_CONFIG_HOME/muster/enrollment-token)");
  std::uint64_t enroll_timeout_ms = 10000;
  app.add_option("--enroll-timeout-ms", enroll_timeout_ms, "How long to wait for the enrollment answer")
      ->capture_default_str();
  bool as_admin = false;
  app.add_flag("--admin", as_admin, "Enroll/connect as an admin identity (admin commands over tcp://)");
  app.require_subcommand(1);

  auto* call = app.add_subcommand("call", "Call a node; prints its outputs as JSON");
  std::string node, inputs_text = "{}";
  std::uint64_t timeout_ms = 0;
  bool progress = false;
  call->add_option("NODE", node, "Node name")->required();
  call->add_option("INPUTS", inputs_text, "Inputs as a JSON object ('-' reads stdin)")
      ->capture_default_str();
  call->add_option("--timeout-ms", timeout_ms, "Deadline (0: the node's default)");
  call->add_flag("--progress", progress, "Print progress lines on stderr");
  call->footer("Ctrl-C cancels the request on the daemon (the worker is told to abort).");

  bool json = false;
  auto* nodes = app.add_subcommand("nodes", "List nodes: inputs, outputs, workers, queue depth");
  nodes->add_flag("--json", json, "Print JSON");
  bool node_stats = false;
  nodes->add_flag("--stats", node_stats,
                  "Per-node calls, errors, p50/p90/p99 service time, rate and recent failures");
  auto* workers = app.add_subcommand("workers", "List attached workers");
  workers->add_flag("--json", json, "Print JSON");
  auto* status = app.add_subcommand("status", "Daemon uptime, counts and rates");
  status->add_flag("--json", json, "Print JSON");

  auto* token = app.add_subcommand("token", "Enrollment tokens (admin)")->require_subcommand(1);
  auto* token_create = token->add_subcommand("create", "Mint a token; prints it on stdout");
  std::string token_role = "worker", token_ttl = "24h", token_workspace, token_name;
  std::uint32_t token_uses = 1;
  token_create->add_option("--role", token_role, "worker, client or admin")->capture_default_str();
  token_create->add_option("--ttl", token_ttl, "How long it is valid: 30s, 10m, 24h, 7d")->capture_default_str();
  token_create->add_option("--uses", token_uses, "How many enrollments it allows")->capture_default_str();
  token_create->add_option("--workspace", token_workspace, "Workspace of the identities it enrolls (default: default)");
  token_create->add_option("--name", token_name, "A label, shown in listings");
  auto* token_list = token->add_subcommand("list", "List tokens (never their secrets)");
  token_list->add_flag("--json", json, "Print JSON");
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token");
  std::string revoke_id;
  token_revoke->add_option("ID", revoke_id, "Token id")->required();

  auto* keys_cmd = app.add_subcommand("keys", "Enrolled identities (admin)")->require_subcommand(1);
  auto* keys_list = keys_cmd->add_subcommand("list", "List enrolled identities");
  keys_list->add_flag("--json", json, "Print JSON");
  auto* keys_revoke = keys_cmd->add_subcommand("revoke", "Revoke an identity: refused at once, its workers leave");
  keys_revoke->add_option("ID", revoke_id, "Identity id")->required();

  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (as_admin) copt.secure.role = "admin";
  copt.secure.enroll_timeout = std::chrono::milliseconds(enroll_timeout_ms);
  spdlog::set_level(spdlog::level::from_str(log_level));

  try {
    muster::Client client(copt);
    if (*call) {
      if (inputs_text == "-")
        inputs_text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      muster::Map inputs;
      try {
        inputs = muster::map_from_json_text(inputs_text);
      } catch (const std::invalid_argument& e) {
        std::cerr << "error: INVALID_REQUEST: inputs: " << e.what() << "\n";
        return 2;
      }
      return call_node(client, node, inputs, timeout_ms, progress);
    }
    if (*nodes && node_stats) {
      auto j = client.node_stats();
      if (json) std::cout << j.dump(2) << "\n"; else muster::cli::print_node_stats(std::cout, j);
    } else if (*nodes) {
      auto j = client.nodes();
      if (json) std::cout << j.dump(2) << "\n"; else print_nodes(j);
    } else if (*workers) {
      auto j = client.workers();
      if (json) std::cout << j.dump(2) << "\n"; else print_workers(j);
    } else if (*status) {
      auto j = client.status();
      if (json) {
        std::cout << j.dump(2) << "\n";
      } else {
        print_status(j);
        muster::cli::print_node_summary(std::cout, client.node_stats());
      }
    } else if (*token_create) {
      auto ttl = muster::keys::parse_duration(token_ttl);
      auto minted = client.token_create(token_role, static_cast<std::uint64_t>(ttl.count()) * 1000,
                                        token_uses, token_workspace, token_name);
      std::cout << minted.token << "\n";
      std::cerr << fmt::format("token {} ({}, {} use(s)) expires {}\n", minted.id, token_role,
                               token_uses, minted.expires_at);
    } else if (*token_list) {
      auto j = client.token_list();
      if (json) {
        std::cout << j.dump(2) << "\n";
      } else {
        std::cout << fmt::format("{:<18} {:<8} {:<12} {:<10} {:>9}  {:<24} {}\n", "ID", "ROLE",
                                 "WORKSPACE", "STATE", "USES LEFT", "EXPIRES", "LABEL");
        for (auto& t : j)
          std::cout << fmt::format("{:<18} {:<8} {:<12} {:<10} {:>9}  {:<24} {}\n", t.value("id", ""),
                                   t.value("role", ""), t.value("workspace", ""), t.value("state", ""),
                                   t.value("uses_left", 0), t.value("expires_at", ""), t.value("label", ""));
      }
    } else if (*token_revoke) {
      client.token_revoke(revoke_id);
      std::cerr << "token " << revoke_id << " revoked\n";
    } else if (*keys_list) {
      auto j = client.key_list();
      if (json) {
        std::cout << j.dump(2) << "\n";
      } else {
        std::cout << fmt::format("{:<38} {:<7} {:<12} {:<20} {:<8} {}\n", "ID", "ROLE", "WORKSPACE",
                                 "NAME", "REVOKED", "HOSTNAME");
        for (auto& k : j)
          std::cout << fmt::format("{:<38} {:<7} {:<12} {:<20} {:<8} {}\n", k.value("id", ""),
                                   k.value("role", ""), k.value("workspace", ""), k.value("name", ""),
                                   k.value("revoked", false) ? "yes" : "no", k.value("hostname", ""));
      }
    } else if (*keys_revoke) {
      client.key_revoke(revoke_id);
      std::cerr << "identity " << revoke_id << " revoked\n";
    }
    return 0;
  } catch (const muster::CallError& e) {
    return report(e);
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: INVALID_REQUEST: " << e.what() << "\n";
    return 2;
  } catch (const muster::EnrollmentError& e) {
    // enrollment and key problems: the message says what is wrong and what to do
    std::cerr << "error: " << muster::error_code_name(e.code()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: INTERNAL: " << e.what() << "\n";
    return 1;
  }
}
