// cmd_nodes.cpp — `muster nodes`, `muster node info NAME`, `muster workers`: what the daemon
// serves, as aligned tables or JSON (--json, the shapes of PROTOCOL.md §8).
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "node_stats_view.hpp"
#include "table.hpp"

namespace muster::cli {

namespace {

std::string port_names(const Json& list) {
  std::string out;
  for (auto& p : list) out += (out.empty() ? "" : ",") + p["name"].get<std::string>();
  return out.empty() ? "-" : out;
}

std::string n(const Json& j, const char* key) { return std::to_string(j.value(key, 0)); }

void print_nodes(const Json& nodes) {
  Table t({"NODE", ">WORKERS", ">CAPACITY", ">IN-FLIGHT", ">QUEUED", "INPUTS", "OUTPUTS"});
  for (auto& node : nodes)
    t.row({node["name"].get<std::string>(), n(node, "workers"), n(node, "capacity"),
           n(node, "in_flight"), n(node, "queue_depth"), port_names(node["inputs"]),
           port_names(node["outputs"])});
  t.print(std::cout);
}

std::string list_of(const Json& a) {
  std::string out;
  for (auto& x : a) out += (out.empty() ? "" : ",") + x.get<std::string>();
  return out;
}

void print_workers(const Json& workers) {
  // DIRECT: the worker gets everything on one connection (PROTOCOL.md §7.10), else it has a SUB too.
  Table t({"WORKER", "STATE", "SDK", ">CAPACITY", ">IN-FLIGHT", ">SEEN(ms)", "DIRECT", "NODES"});
  for (auto& w : workers)
    t.row({w["worker_id"].get<std::string>(), w["state"].get<std::string>(), w["sdk"].get<std::string>(),
           n(w, "capacity"), n(w, "in_flight"), std::to_string(w.value("last_seen_ms", std::uint64_t{0})),
           w.value("direct", false) ? "yes" : "no", list_of(w["nodes"])});
  t.print(std::cout);
}

// The node's spec and the workers serving it (from the worker listing).
Json node_info(Client& client, const std::string& name) {
  Json node;
  for (auto& x : client.nodes())
    if (x.value("name", "") == name) node = x;
  if (node.is_null()) throw CallError(wire::ErrorCode::NoWorker, fmt::format("no worker serves node '{}'", name));
  node["served_by"] = Json::array();
  for (auto& w : client.workers())
    for (auto& served : w["nodes"])
      if (served == name)
        node["served_by"].push_back({{"worker_id", w["worker_id"]}, {"state", w["state"]}, {"sdk", w["sdk"]},
                                     {"hostname", w.value("hostname", "")}, {"capacity", w["capacity"]},
                                     {"in_flight", w["in_flight"]}});
  return node;
}

void print_ports(const char* title, const Json& ports) {
  std::cout << "\n" << title << (ports.empty() ? ": none\n" : ":\n");
  if (ports.empty()) return;
  Table t({"  NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"});
  for (auto& p : ports)
    t.row({"  " + p["name"].get<std::string>(), p.value("type", "any"), p.value("required", false) ? "yes" : "no",
           p.contains("default") ? p["default"].dump() : "-", p.value("description", "")});
  t.print(std::cout);
}

void print_node_info(const Json& node) {
  std::cout << fmt::format("node        {}\n", node["name"].get<std::string>());
  for (const char* key : {"description", "category", "version"})
    if (node.contains(key)) std::cout << fmt::format("{:<12}{}\n", key, node[key].get<std::string>());
  std::cout << fmt::format("idempotent  {}\n", node.value("idempotent", false) ? "yes" : "no");
  auto timeout = node.value("default_timeout_ms", std::uint64_t{0});
  std::cout << fmt::format("timeout     {}\n", timeout ? fmt::format("{} ms", timeout) : "the daemon's default");
  std::cout << fmt::format("queued      {}   in flight {}   capacity {}\n", n(node, "queue_depth"),
                           n(node, "in_flight"), n(node, "capacity"));
  print_ports("inputs", node["inputs"]);
  print_ports("outputs", node["outputs"]);
  print_ports("parameters", node["parameters"]);
  std::cout << fmt::format("\nworkers ({}):\n", node["served_by"].size());
  Table t({"  WORKER", "STATE", "SDK", "HOST", ">CAPACITY", ">IN-FLIGHT"});
  for (auto& w : node["served_by"])
    t.row({"  " + w["worker_id"].get<std::string>(), w["state"].get<std::string>(), w["sdk"].get<std::string>(),
           w["hostname"].get<std::string>(), n(w, "capacity"), n(w, "in_flight")});
  t.print(std::cout);
}

}  // namespace

void add_node_commands(Cli& cli) {
  auto json = std::make_shared<bool>(false);
  auto* nodes = cli.app.add_subcommand("nodes", "List nodes: inputs, outputs, workers, queue depth");
  nodes->add_flag("--json", *json, "Print JSON");
  auto stats = std::make_shared<bool>(false);
  nodes->add_flag("--stats", *stats, "Per-node calls, errors, p50/p90/p99 service time, rate and recent failures");
  cli.on(nodes, [&cli, json, stats] {
    if (*stats) {
      auto j = cli.client().node_stats();
      if (*json) std::cout << j.dump(2) << "\n"; else print_node_stats(std::cout, j);
      return code(Exit::Ok);
    }
    auto j = cli.client().nodes();
    if (*json) std::cout << j.dump(2) << "\n"; else print_nodes(j);
    return code(Exit::Ok);
  });

  auto* node = cli.app.add_subcommand("node", "One node")->require_subcommand(1);
  auto* info = node->add_subcommand("info", "A node's spec (inputs, outputs, parameters with types and "
                                            "defaults) and the workers serving it");
  auto name = std::make_shared<std::string>();
  info->add_option("NODE", *name, "Node name")->required();
  info->add_flag("--json", *json, "Print JSON (the node listing's object plus `served_by`)");
  cli.on(info, [&cli, json, name] {
    auto j = node_info(cli.client(), *name);
    if (*json) std::cout << j.dump(2) << "\n"; else print_node_info(j);
    return code(Exit::Ok);
  });

  auto* workers = cli.app.add_subcommand(
      "workers", "List attached workers: state, load, when last heard, DIRECT (one connection to musterd), nodes");
  workers->add_flag("--json", *json, "Print JSON");
  cli.on(workers, [&cli, json] {
    auto j = cli.client().workers();
    if (*json) std::cout << j.dump(2) << "\n"; else print_workers(j);
    return code(Exit::Ok);
  });
}

}  // namespace muster::cli
