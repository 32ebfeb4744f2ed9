// running_worker.hpp — a C++ SDK Worker serving a DaemonProcess on its own thread, for the unit
// tests that drive the SDK against a real musterd (worker_sdk_test, stream_sdk_test).
// Must never: outlive the test (stopped and joined in its destructor, passed or not).
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "daemon_process.hpp"
#include "muster/client.hpp"
#include "muster/worker.hpp"

namespace muster::test {

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

// A worker of `daemon`, signals left to the test runner, a short drain.
inline WorkerOptions options_for(const DaemonProcess& daemon, std::string worker_id) {
  return {.worker_id = std::move(worker_id),
          .request_address = daemon.endpoint("request"),
          .response_address = daemon.endpoint("response"),
          .drain_timeout = std::chrono::milliseconds(2000),
          .handle_signals = false};
}

// Waits (bounded) until the daemon lists `node` as served.
inline void wait_for_node(Client& client, const std::string& node) {
  for (int i = 0; i < 300; ++i) {
    for (auto& n : client.nodes())
      if (n.value("name", "") == node && n.value("workers", 0) > 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("node ", node, " never became available");
}

}  // namespace muster::test
