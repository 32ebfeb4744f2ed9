// cmd_watch.cpp — `muster watch`: prints the pushed events of the caller's workspace (nodes
// appearing, changing, leaving; workers joining, changing state, leaving; the caller's own calls)
// as they happen, one line each, or one JSON object per line (--json, the shapes of watch.hpp).
// Must never: poll; it prints what musterd pushes, in order, and says so when it fell behind.
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"
#include "muster/watch.hpp"

namespace muster::cli {

namespace {

std::string names(const Json& list, const char* key) {
  std::string out;
  for (auto& x : list) out += (out.empty() ? "" : ",") + x.value(key, std::string());
  return out.empty() ? "-" : out;
}

std::string joined(const Json& list) {
  std::string out;
  for (auto& x : list) out += (out.empty() ? "" : ",") + x.get<std::string>();
  return out.empty() ? "-" : out;
}

std::string line_of(const Json& e) {
  auto kind = e.value("kind", std::string());
  auto head = fmt::format("{:>4}  {:<15}", e.value("seq", std::uint64_t{0}), kind);
  if (kind == "snapshot")
    return fmt::format("{} nodes: {}  workers: {}  calls: {}", head, names(e["nodes"], "name"),
                       names(e["workers"], "worker_id"), names(e["calls"], "request_id"));
  if (kind == "overflow") return head + " fell behind: events were dropped, a fresh snapshot follows";
  if (e.contains("node")) {
    auto& n = e["node"];
    return fmt::format("{} {}  workers={} capacity={}", head, n.value("name", ""), n.value("workers", 0),
                       n.value("capacity", 0));
  }
  if (e.contains("worker")) {
    auto& w = e["worker"];
    return fmt::format("{} {}  {}  capacity={} nodes={} sdk={}", head, w.value("worker_id", ""),
                       w.value("state", ""), w.value("capacity", 0), joined(w["nodes"]), w.value("sdk", ""));
  }
  if (e.contains("call")) {
    auto& c = e["call"];
    auto out = fmt::format("{} request {}  {}  {}", head, c.value("request_id", std::uint64_t{0}),
                           c.value("node", ""), c.value("state", ""));
    if (c.contains("worker_id")) out += " on " + c["worker_id"].get<std::string>();
    if (c.contains("code")) out += " " + c["code"].get<std::string>();
    return out;
  }
  return head;
}

}  // namespace

void add_watch_commands(Cli& cli) {
  struct Flags {
    bool json = false, nodes = false, workers = false, calls = false;
    std::uint64_t count = 0;
  };
  auto f = std::make_shared<Flags>();
  auto* watch = cli.app.add_subcommand(
      "watch", "Print the changes of your workspace as musterd pushes them (nodes, workers, your calls)");
  watch->add_flag("--json", f->json, "Print one JSON object per event");
  watch->add_flag("--nodes", f->nodes, "Nodes appearing, changing, leaving");
  watch->add_flag("--workers", f->workers, "Workers joining, changing state, leaving");
  watch->add_flag("--calls", f->calls, "The state of your own calls (queued, running, finished)");
  watch->add_option("--count", f->count, "Stop after this many events (0: until interrupted)");
  watch->footer(
      "With none of --nodes, --workers, --calls: all three. The first event is a snapshot of\n"
      "everything asked for; then one event per change. A watcher that does not keep up gets\n"
      "`overflow`, then a fresh snapshot (musterd --watch-backlog).");
  cli.on(watch, [&cli, f] {
    WatchOptions what;
    bool any = f->nodes || f->workers || f->calls;
    what.nodes = !any || f->nodes;
    what.workers = !any || f->workers;
    what.calls = !any || f->calls;
    Watch w(cli.client_options(), what);
    for (std::uint64_t seen = 0; f->count == 0 || seen < f->count;) {
      auto e = w.next(std::chrono::milliseconds(1000));
      if (!e) continue;
      std::cout << (f->json ? e->dump() : line_of(*e)) << std::endl;  // each line as it happens
      ++seen;
    }
    return code(Exit::Ok);
  });
}

}  // namespace muster::cli
