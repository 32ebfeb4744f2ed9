// cost_client.cpp — muster-bench-cost-client: a fixed number of echo calls through musterd, for
// tools/bench/cost.sh, which counts what they cost (instructions under callgrind, syscalls,
// context switches). Time is not its measure: the count of calls is fixed, so the cost per
// call is repeatable on a loaded machine.
// Must never: measure or print timings as a result (wall clock is noise here); hide a failed call
// (it exits non-zero if any call did not come back with its own bytes).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "muster/allocator.hpp"
#include "muster/client.hpp"

int main(int argc, char** argv) {
  muster::ClientOptions opt;
  std::uint64_t calls = 50000;
  std::size_t depth = 256, payload = 64;
  int workers = 2;
  CLI::App app{"muster-bench-cost-client — a fixed number of pipelined echo calls (tools/bench/cost.sh)",
               "muster-bench-cost-client"};
  app.add_option("--client-address", opt.client_address, "musterd's client endpoint")->required();
  app.add_flag("--insecure", opt.insecure, "Allow tcp:// without CURVE");
  app.add_option("--calls", calls, "Calls to make (0: only wait for the workers)")->capture_default_str();
  app.add_option("--depth", depth, "Calls in flight")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--payload", payload, "Bytes of the one `data` input")->capture_default_str();
  app.add_option("--workers", workers, "Wait until this many echo workers are attached")->capture_default_str();
  bool no_coalesce = false, durable = false;
  app.add_flag("--no-coalesce", no_coalesce, "Send every Submit alone (ClientOptions::coalesce_submits off)");
  app.add_flag("--durable", durable,
               "Every call durable (CallOptions::durable; musterd needs --journal), its outcome acknowledged "
               "at the next poll/submit, as muster-bench's muster-durable systems do");
  CLI11_PARSE(app, argc, argv);
  opt.coalesce_submits = !no_coalesce;  // as muster-bench's client does
  muster::reuse_memory_for_large_messages();  // as muster-bench's client does

  try {
    muster::Client client(opt);
    // Wait for musterd and the workers, so no call is refused or queued for lack of them.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);;) {
      int attached = 0;
      try {
        for (auto& n : client.nodes())
          if (n.value("name", "") == "echo") attached += n.value("workers", 0);
      } catch (const muster::CallError&) {  // musterd not up yet (slow under valgrind): again
      }
      if (attached >= workers) break;
      if (std::chrono::steady_clock::now() > until) {
        fmt::print(stderr, "only {} of {} echo workers attached after 120 s\n", attached, workers);
        return 2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const muster::Map inputs{{"data", muster::Bytes(payload, 0x5a)}};
    muster::CallOptions call;
    call.timeout_ms = 600000;
    call.durable = durable;
    std::uint64_t sent = 0, done = 0, bad = 0;
    while (done < calls) {
      while (sent < calls && sent - done < depth) {
        client.submit("echo", inputs, call);
        ++sent;
      }
      for (auto& ev : client.poll(std::chrono::milliseconds(1000))) {
        if (!ev.terminal()) continue;
        ++done;
        auto* r = std::get_if<muster::ResultEvent>(&ev.body);
        const muster::Value* v = r ? r->outputs.find("data") : nullptr;
        if (!v || v->kind() != muster::ValueKind::Bytes || v->as_bytes().size() != payload) ++bad;
      }
    }
    fmt::print("{} calls, {} in flight, {} B: {} failed\n", calls, depth, payload, bad);
    return bad ? 1 : 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "muster-bench-cost-client: {}\n", e.what());
    return 1;
  }
}
