// client_lost_connection_test.cpp — the C++ client library's rule for a lost connection
// (docs/DURABILITY.md §13): a call it failed UNAVAILABLE with the connection never reaches the
// next daemon on the same address. A real musterd is SIGSTOPped so that Submits pile up in the
// client's socket (256 KiB each: the kernel's buffers fill first), then SIGKILLed and started
// again on the same runtime dir; the client reconnects by itself. The Python and TypeScript
// clients: tests/integration/test_failover_unsent_calls.py.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "daemon_process.hpp"
#include "muster/client.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;
using muster::test::spawn_musterd;

TEST_CASE("C++ client: a call failed with its lost connection never runs on the next daemon") {
  DaemonProcess daemon;
  std::mutex mutex;
  std::multiset<long long> ran;  // every execution of `count`, by input i
  Worker worker({.worker_id = "lost-conn",
                 .request_address = daemon.endpoint("request"),
                 .response_address = daemon.endpoint("response"),
                 .drain_timeout = 1000ms,
                 .handle_signals = false});
  worker.node({.name = "count"}, [&](Context& ctx) {
    std::lock_guard lock(mutex);
    ran.insert(ctx.input("i").as_int());
    return Map{{"i", ctx.input("i")}};
  });
  std::thread serving([&] { worker.run(); });
  struct Stop {
    Worker& w;
    std::thread& t;
    ~Stop() {
      w.stop();
      t.join();
    }
  } stop{worker, serving};

  Client client({.client_address = daemon.endpoint("client")});
  auto served = [&] {
    for (auto deadline = std::chrono::steady_clock::now() + 15s; std::chrono::steady_clock::now() < deadline;) {
      try {
        for (auto& n : client.nodes())
          if (n.value("name", "") == "count" && n.value("workers", 0) > 0) return true;
      } catch (const CallError&) {
        // the daemon is restarting
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  REQUIRE(served());

  constexpr int kQueued = 12;
  REQUIRE(::kill(daemon.pid, SIGSTOP) == 0);
  std::set<std::uint64_t> open;
  for (long long i = 1; i <= kQueued; ++i)
    open.insert(client.submit("count", {{"i", Value(i)}, {"pad", Value(Bytes(256 * 1024, 0x78))}}));
  std::this_thread::sleep_for(500ms);  // libzmq writes what the kernel takes; the rest stays queued
  ::kill(daemon.pid, SIGKILL);
  ::waitpid(daemon.pid, nullptr, 0);
  daemon.pid = -1;

  // Every one of them fails: the connection was lost while it was open.
  for (int round = 0; round < 300 && !open.empty(); ++round)
    for (auto& ev : client.poll(50ms))
      if (ev.terminal() && open.erase(ev.request_id)) {
        REQUIRE(std::holds_alternative<FailureEvent>(ev.body));
        CHECK(std::get<FailureEvent>(ev.body).code == ErrorCode::Unavailable);
      }
  REQUIRE(open.empty());

  // A new musterd on the same address: the same client reconnects, and the worker attaches again.
  daemon.pid = spawn_musterd(daemon.dir / "run", {"--data-dir", (daemon.dir / "data").string(), "--ping-interval-ms",
                                                  "300", "--log-level", "warn"});
  REQUIRE(served());
  CHECK(client.call("count", {{"i", Value(100LL)}}, {.timeout_ms = 10000}) == Map{{"i", Value(100LL)}});
  std::this_thread::sleep_for(300ms);  // a late delivery would show up here (bounded)
  CHECK(client.status().value("submitted", -1) == 1);  // the probe, and nothing of before
  std::lock_guard lock(mutex);
  CHECK(ran == std::multiset<long long>{100});
}
