// main.cpp — an out-of-tree program on the installed C++ SDK: it serves a node with
// muster::Worker and calls it with muster::Client through a running musterd (the runtime dir
// from $MUSTER_RUNTIME_DIR). Prints the result and exits 0 when the call returned x*x.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "muster/client.hpp"
#include "muster/worker.hpp"

int main(int argc, char** argv) {
  const std::string node = argc > 1 ? argv[1] : "consumer.square";
  muster::Worker worker({.worker_id = node + "-worker", .handle_signals = false});
  worker.node({.name = node,
               .inputs = {{.name = "x", .type = "int", .required = true}},
               .outputs = {{.name = "square", .type = "int"}}},
              [](muster::Context& ctx) {
                auto x = ctx.input("x").as_int();
                return muster::Map{{"square", x * x}};
              });
  std::thread serving([&] { worker.run(); });

  muster::Client client;
  int status = 1;
  // The worker attaches in the background: until then the node is unknown (NO_WORKER).
  for (int attempt = 0; attempt < 200; ++attempt) {
    try {
      auto out = client.call(node, muster::Map{{"x", std::int64_t{12}}}, {.timeout_ms = 5000});
      const muster::Value* square = out.find("square");
      long long got = square ? square->as_int() : -1;
      std::printf("%s: square(12) = %lld\n", node.c_str(), got);
      status = got == 144 ? 0 : 1;
      break;
    } catch (const muster::CallError& e) {
      if (e.code() != muster::wire::ErrorCode::NoWorker) {
        std::fprintf(stderr, "call failed: %s\n", e.what());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  worker.stop();
  serving.join();
  return status;
}
