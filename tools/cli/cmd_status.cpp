// cmd_status.cpp — `muster status`: the daemon's uptime, counts and rates, and its busiest nodes.
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "node_stats_view.hpp"

namespace muster::cli {

namespace {

void print_status(const Json& s) {
  std::cout << fmt::format("musterd {} (instance {})\n", s["version"].get<std::string>(),
                           s["instance"].get<std::string>());
  std::cout << fmt::format("uptime       {:.1f} s\n", s["uptime_ms"].get<double>() / 1000.0);
  std::cout << fmt::format("workers      {}\nnodes        {}\nqueued       {}\nin flight    {}\n",
                           s["workers"].get<int>(), s["nodes"].get<int>(), s["queued"].get<int>(),
                           s["in_flight"].get<int>());
  // Durable calls an earlier instance left running, waiting for their worker to re-attach
  // (docs/DURABILITY.md §5): neither queued nor in flight here.
  std::cout << fmt::format("recovering   {}\n", s.value("recovering", 0));
  std::cout << fmt::format("submitted    {}\ncompleted    {}\nfailed       {}\nredispatched {}\n",
                           s["submitted"].get<std::uint64_t>(), s["completed"].get<std::uint64_t>(),
                           s["failed"].get<std::uint64_t>(), s["redispatched"].get<std::uint64_t>());
  for (auto& [code, count] : s["failures"].items())
    std::cout << fmt::format("  {:<18} {}\n", code, count.get<std::uint64_t>());
  std::cout << fmt::format("rate (1 min) {:.2f} replies/s\n", s["rate_1m"].get<double>());
}

}  // namespace

void add_status_commands(Cli& cli) {
  auto json = std::make_shared<bool>(false);
  auto* status = cli.app.add_subcommand("status", "Daemon uptime, counts and rates");
  status->add_flag("--json", *json, "Print JSON");
  cli.on(status, [&cli, json] {
    auto j = cli.client().status();
    if (*json) {
      std::cout << j.dump(2) << "\n";
    } else {
      print_status(j);
      print_node_summary(std::cout, cli.client().node_stats());
    }
    return code(Exit::Ok);
  });
}

}  // namespace muster::cli
