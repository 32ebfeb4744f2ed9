// worker_sdk_test.cpp — the C++ worker SDK against a real musterd: where handlers run
// (HandlerThread), what reaches the caller from each, and that a handler's inputs can be
// moved out. The example worker's nodes cover the rest of the SDK in tests/integration.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "daemon_process.hpp"
#include "muster/client.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;

namespace {

// A Worker serving on its own thread; stopped and joined when the test ends, passed or not.
struct RunningWorker {
  Worker worker;
  std::thread thread;
  explicit RunningWorker(WorkerOptions opt) : worker(std::move(opt)) {}
  void start() { thread = std::thread([this] { worker.run(); }); }
  ~RunningWorker() {
    worker.stop();
    if (thread.joinable()) thread.join();
  }
};

// Waits (bounded) until the daemon lists `node` as served.
void wait_for_node(Client& client, const std::string& node) {
  for (int i = 0; i < 300; ++i) {
    for (auto& n : client.nodes())
      if (n.value("name", "") == node && n.value("workers", 0) > 0) return;
    std::this_thread::sleep_for(10ms);
  }
  FAIL("node ", node, " never became available");
}

}  // namespace

TEST_CASE("C++ SDK: a socket-thread handler runs on the run() thread, a pool handler does not") {
  DaemonProcess daemon;
  RunningWorker w({.worker_id = "sdk-threads",
                   .request_address = daemon.endpoint("request"),
                   .response_address = daemon.endpoint("response"),
                   .capacity = 2,
                   .drain_timeout = 2000ms,
                   .handle_signals = false});
  std::atomic<bool> release{false};
  std::atomic<std::thread::id> pool_thread{}, socket_thread{};
  w.worker.node({.name = "block"}, [&](Context&) {
    pool_thread = std::this_thread::get_id();
    for (int i = 0; i < 1000 && !release; ++i) std::this_thread::sleep_for(5ms);
    return Map{{"released", Value(release.load())}};
  });
  w.worker.node(
      {.name = "quick"},
      [&](Context& ctx) {
        socket_thread = std::this_thread::get_id();
        ctx.progress(1, 2, "half way");
        if (ctx.input_or("fail", false) == Value(true))
          throw WorkError("asked to fail", ErrorCode::InvalidRequest);
        return ctx.take_inputs();
      },
      HandlerThread::Socket);
  w.start();

  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "quick");
  auto blocked = client.submit("block", {}, {.timeout_ms = 10000});

  // Answered while the pool thread is held, with its progress first and its inputs moved out.
  std::vector<std::string> progress;
  Map inputs{{"text", Value("abc")}, {"blob", Value(Bytes(100000, 0x42))}};
  Map out = client.call("quick", inputs,
                        {.timeout_ms = 5000,
                         .on_progress = [&](std::uint64_t, std::uint64_t, const std::string& m) {
                           progress.push_back(m);
                         }});
  CHECK(out == inputs);
  CHECK(progress == std::vector<std::string>{"half way"});
  CHECK(socket_thread.load() == w.thread.get_id());

  // An exception on the socket thread is a Failure with its code, and the worker serves on.
  try {
    client.call("quick", {{"fail", Value(true)}}, {.timeout_ms = 5000});
    FAIL("the call should have failed");
  } catch (const CallError& e) {
    CHECK(e.code() == ErrorCode::InvalidRequest);
    CHECK(std::string(e.what()).find("asked to fail") != std::string::npos);
  }
  CHECK(client.call("quick", {{"again", Value(1LL)}}, {.timeout_ms = 5000}) == Map{{"again", Value(1LL)}});

  release = true;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i)
    for (auto& e : client.poll(50ms))
      if (e.request_id == blocked && e.terminal()) {
        REQUIRE(std::holds_alternative<ResultEvent>(e.body));
        CHECK(std::get<ResultEvent>(e.body).outputs == Map{{"released", Value(true)}});
        done = true;
      }
  CHECK(done);
  CHECK(pool_thread.load() != std::thread::id{});
  CHECK(pool_thread.load() != w.thread.get_id());
}
