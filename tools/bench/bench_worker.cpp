// bench_worker.cpp — muster-bench-worker: the worker side of muster-bench.
//   default:     a C++ SDK worker (worker/cpp) serving `echo`: outputs = inputs, declared as
//                the example worker's echo node is (on the socket thread, inputs moved out).
//                This is what muster costs as deployed. --pool-handler: on a handler thread.
//   --baseline:  a bare SUB + DEALER loop for muster-bench-forwarder that sends every request
//                frame straight back (moved, not copied). This is the floor.
#include <cstring>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "baseline_worker.hpp"
#include "common.hpp"
#include "muster/allocator.hpp"
#include "muster/process.hpp"
#include "muster/worker.hpp"

namespace {

int run_sdk(muster::WorkerOptions opt, const std::string& log_level, muster::HandlerThread thread) {
  muster::setup_logging(log_level, "bench-worker");
  muster::Worker worker(std::move(opt));
  worker.node({.name = "echo",
               .description = "Returns its inputs unchanged (muster-bench).",
               .category = "bench",
               .version = "1.0.0",
               .idempotent = true},
              [](muster::Context& ctx) { return ctx.take_inputs(); }, thread);
  return worker.run();
}

int run_baseline(const std::string& id, const std::string& request_address,
                 const std::string& response_address, const std::string& curve_server_key) {
  // Every request frame goes straight back, moved, not copied.
  return muster::bench::run_baseline_worker(
      id, request_address, response_address, curve_server_key, /*broadcast=*/true,
      [](zmq::message_t& rid, zmq::message_t& request, zmq::socket_t& dealer) {
        dealer.send(rid, zmq::send_flags::sndmore);
        dealer.send(request, zmq::send_flags::dontwait);
      });
}

}  // namespace

int main(int argc, char** argv) {
  muster::WorkerOptions opt;
  opt.capacity = 1;
  bool baseline = false, pool_handler = false;
  std::string log_level = "warn", curve_server_key;
  CLI::App app{"muster-bench-worker — the echo worker of muster-bench (SDK, or --baseline raw).",
               "muster-bench-worker"};
  app.add_option("--worker-id", opt.worker_id, "Worker id")->required();
  app.add_option("--request-address", opt.request_address, "PUB endpoint to subscribe to")->required();
  app.add_option("--response-address", opt.response_address, "ROUTER endpoint to talk to")->required();
  app.add_option("--capacity", opt.capacity, "Requests served at once (SDK)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_flag("--insecure", opt.insecure, "Allow tcp:// without CURVE (SDK)");
  app.add_option("--data-dir", opt.secure.data_dir, "CURVE (SDK): where this worker keeps its identity");
  app.add_option("--identity", opt.secure.name, "CURVE (SDK): identity name (enrolls with $MUSTER_ENROLLMENT_TOKEN)");
  app.add_option("--enrollment-address", opt.secure.enrollment_address, "CURVE (SDK): the daemon's enrollment endpoint");
  app.add_flag("--pool-handler", pool_handler, "SDK: run echo on a handler thread, not the socket thread");
  app.add_option("--confirm-kept-bytes", opt.confirm_kept_bytes,
                 "SDK: unconfirmed answers that make the worker ask for confirmation at once (0: at pings only)")
      ->capture_default_str();
  bool no_direct = false;
  app.add_flag("--no-direct", no_direct,
               "SDK: do not ask for direct (PROTOCOL.md §7.10): a SUB and a DEALER, as before");
  app.add_flag("--baseline", baseline, "Bare echo loop for muster-bench-forwarder");
  app.add_option("--curve-server-key", curve_server_key, "Baseline over CURVE: the forwarder's key");
  app.add_option("--log-level", log_level, "SDK log level")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  opt.direct = !no_direct;
  try {
    if (baseline) {
      muster::reuse_memory_for_large_messages();  // as the SDK worker does (WorkerOptions::reuse_memory)
      return run_baseline(opt.worker_id, opt.request_address, opt.response_address, curve_server_key);
    }
    return run_sdk(std::move(opt), log_level,
                   pool_handler ? muster::HandlerThread::Pool : muster::HandlerThread::Socket);
  } catch (const std::exception& e) {
    std::cerr << "muster-bench-worker: error: " << e.what() << "\n";
    return 1;
  }
}
