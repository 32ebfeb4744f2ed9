// stream_worker.cpp — muster-bench-stream-worker: the worker side of muster-bench-stream. It takes
// the flags muster-bench-worker takes, so muster-bench's stacks (stacks.hpp) start it unchanged.
//   default:     a C++ SDK worker (worker/cpp) with two nodes:
//                  produce {mib} -> {data: bytes}: `mib` MiB as one chunked output
//                    (Context::output_stream), read from a 1 MiB buffer filled once;
//                  count {n} -> items {i} x n (Context::emit), then {n};
//                  consume {data: bytes, streamed} -> {n}: reads the input through
//                    Context::input_stream (InputStream::next) and only counts its bytes
//                    (tools/bench/upload_cost.sh: the SDK's receive path alone).
//   --baseline:  a bare SUB + DEALER loop for muster-bench-forwarder that answers every request
//                with one message of the size the request names (8-byte little-endian size after
//                the 8-byte id), copied from a buffer filled once: the same bytes, the same copy.
// Must never: do work per byte beyond the copy out of its buffer (what is measured is the path).
#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "baseline_worker.hpp"
#include "common.hpp"
#include "muster/allocator.hpp"
#include "muster/process.hpp"
#include "muster/worker.hpp"

namespace {

constexpr std::size_t kBuffer = 1u << 20;

const std::vector<std::uint8_t>& pattern() {
  static const std::vector<std::uint8_t> buf(kBuffer, 0x5a);
  return buf;
}

// `total` bytes of the pattern, a buffer at a time.
class PatternSource final : public muster::OutputSource {
 public:
  explicit PatternSource(std::uint64_t total) : left_(total) {}
  std::size_t read(std::span<std::uint8_t> buffer) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>({left_, buffer.size(), kBuffer}));
    std::memcpy(buffer.data(), pattern().data(), n);
    left_ -= n;
    return n;
  }

 private:
  std::uint64_t left_;
};

int run_sdk(muster::WorkerOptions opt) {
  muster::setup_logging("warn", "bench-stream-worker");
  muster::Worker worker(std::move(opt));
  worker.node({.name = "produce",
               .description = "Streams `mib` MiB of one byte value as a chunked output (muster-bench-stream).",
               .category = "bench",
               .version = "1.0.0",
               .inputs = {{.name = "mib", .type = "int"}},
               .outputs = {{.name = "data", .type = "bytes"}}},
              [](muster::Context& ctx) {
                auto mib = static_cast<std::uint64_t>(ctx.input("mib").as_int());
                ctx.output_stream("data", std::make_unique<PatternSource>(mib << 20));
                return muster::Map{};
              });
  worker.node({.name = "count",
               .description = "Emits items {i} for i in 0..n-1, then returns {n} (muster-bench-stream).",
               .category = "bench",
               .version = "1.0.0",
               .inputs = {{.name = "n", .type = "int"}},
               .outputs = {{.name = "n", .type = "int"}}},
              [](muster::Context& ctx) {
                auto n = ctx.input("n").as_int();
                for (std::int64_t i = 0; i < n; ++i)
                  if (!ctx.emit(muster::Map{{"i", muster::Value(i)}})) break;
                return muster::Map{{"n", muster::Value(n)}};
              });
  worker.node({.name = "consume",
               .description = "Reads the bytes input `data` as a stream and returns its size {n} (upload_cost.sh).",
               .category = "bench",
               .version = "1.0.0",
               .inputs = {{.name = "data", .type = "bytes"}},
               .outputs = {{.name = "n", .type = "int"}}},
              [](muster::Context& ctx) {
                auto& in = ctx.input_stream("data");
                std::uint64_t n = 0;
                for (auto piece = in.next(); !piece.empty(); piece = in.next()) n += piece.size();
                return muster::Map{{"n", muster::Value(static_cast<std::int64_t>(n))}};
              },
              {.streamed_inputs = {"data"}});
  return worker.run();
}

int run_baseline(const std::string& id, const std::string& request_address,
                 const std::string& response_address, const std::string& curve_server_key) {
  return muster::bench::run_baseline_worker(
      id, request_address, response_address, curve_server_key, /*broadcast=*/false,
      [](zmq::message_t& rid, zmq::message_t& request, zmq::socket_t& dealer) {
        std::uint64_t size = 0;
        if (request.size() >= 16) std::memcpy(&size, request.data<char>() + 8, 8);
        size = std::clamp<std::uint64_t>(size, 8, kBuffer);
        zmq::message_t answer(size);
        std::memcpy(answer.data(), pattern().data(), size);
        std::memcpy(answer.data(), request.data(), 8);  // the request's id, for the client's count
        dealer.send(rid, zmq::send_flags::sndmore);
        dealer.send(answer, zmq::send_flags::dontwait);
      });
}

}  // namespace

int main(int argc, char** argv) {
  muster::WorkerOptions opt;
  opt.capacity = 1;
  bool baseline = false;
  std::string curve_server_key;
  CLI::App app{"muster-bench-stream-worker — the producing worker of muster-bench-stream (SDK, or --baseline raw).",
               "muster-bench-stream-worker"};
  app.add_option("--worker-id", opt.worker_id, "Worker id")->required();
  app.add_option("--request-address", opt.request_address, "PUB endpoint to subscribe to")->required();
  app.add_option("--response-address", opt.response_address, "ROUTER endpoint to talk to")->required();
  app.add_option("--capacity", opt.capacity, "Requests served at once (SDK)")->check(CLI::Range(1, 1024));
  app.add_flag("--insecure", opt.insecure, "Allow tcp:// without CURVE (SDK)");
  app.add_option("--data-dir", opt.secure.data_dir, "CURVE (SDK): where this worker keeps its identity");
  app.add_option("--identity", opt.secure.name, "CURVE (SDK): identity name (enrolls with $MUSTER_ENROLLMENT_TOKEN)");
  app.add_option("--enrollment-address", opt.secure.enrollment_address, "CURVE (SDK): the daemon's enrollment endpoint");
  app.add_flag("--baseline", baseline, "Bare producing loop for muster-bench-forwarder");
  app.add_option("--curve-server-key", curve_server_key, "Baseline over CURVE: the forwarder's key");
  CLI11_PARSE(app, argc, argv);
  try {
    if (baseline) {
      muster::reuse_memory_for_large_messages();  // as the SDK worker does (WorkerOptions::reuse_memory)
      return run_baseline(opt.worker_id, opt.request_address, opt.response_address, curve_server_key);
    }
    return run_sdk(std::move(opt));
  } catch (const std::exception& e) {
    std::cerr << "muster-bench-stream-worker: error: " << e.what() << "\n";
    return 1;
  }
}
