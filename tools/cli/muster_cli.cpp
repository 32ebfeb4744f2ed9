// muster_cli.cpp — the `muster` command: call nodes, list nodes and workers, show status.
// Owns: argument parsing and human/JSON output. Exit codes: 0 success, 1 the call or query
// failed (stderr: "error: <CODE>: <message>"), 2 bad usage or bad input, 130 cancelled by a
// signal.
#include <iostream>
#include <iterator>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "muster/client.hpp"
#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/value_json.hpp"

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
  auto* workers = app.add_subcommand("workers", "List attached workers");
  workers->add_flag("--json", json, "Print JSON");
  auto* status = app.add_subcommand("status", "Daemon uptime, counts and rates");
  status->add_flag("--json", json, "Print JSON");

  CLI11_PARSE(app, argc, argv);

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
    if (*nodes) {
      auto j = client.nodes();
      if (json) std::cout << j.dump(2) << "\n"; else print_nodes(j);
    } else if (*workers) {
      auto j = client.workers();
      if (json) std::cout << j.dump(2) << "\n"; else print_workers(j);
    } else if (*status) {
      auto j = client.status();
      if (json) std::cout << j.dump(2) << "\n"; else print_status(j);
    }
    return 0;
  } catch (const muster::CallError& e) {
    return report(e);
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: INVALID_REQUEST: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: INTERNAL: " << e.what() << "\n";
    return 1;
  }
}
