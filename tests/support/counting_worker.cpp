// counting_worker.cpp — muster-test-counting-worker: a C++ SDK worker that counts its
// executions in a file, for the durability tests (tests/integration/test_adoption.py) and the
// fault driver's durable mix (tools/fault/durable.py). The Python and TypeScript twins are in
// tests/integration/counting_workers.py; all three behave the same:
//   count      (not idempotent) {i, ms} -> {i}
//   count_idem (idempotent)     {i, ms} -> {i}
// Each execution appends "start <i>" to --log, then sleeps `ms` milliseconds (ms < 0: waits
// until the file "<log>.gate-<i>" exists), then appends "done <i>".
// Must never: answer before its "start" line is written (the count is what the tests check).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>

#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/worker.hpp"

using namespace muster;

namespace {

std::mutex log_mu;

void note(const std::string& log, const std::string& line) {
  std::lock_guard lock(log_mu);
  std::ofstream out(log, std::ios::app);
  out << line << "\n";
}

Map count(Context& ctx, const std::string& log) {
  std::int64_t i = ctx.input("i").as_int();
  Value ms_value = ctx.input_or("ms", Value(static_cast<long long>(0)));
  std::int64_t ms = ms_value.kind() == ValueKind::Int ? ms_value.as_int() : 0;
  note(log, "start " + std::to_string(i));
  if (ms < 0) {
    std::filesystem::path gate = log + ".gate-" + std::to_string(i);
    while (!std::filesystem::exists(gate))
      if (!ctx.sleep_for(std::chrono::milliseconds(20))) throw WorkError("aborted");
  } else if (!ctx.sleep_for(std::chrono::milliseconds(ms))) {
    throw WorkError("aborted");
  }
  note(log, "done " + std::to_string(i));
  return Map{{"i", static_cast<long long>(i)}};
}

}  // namespace

int main(int argc, char** argv) {
  WorkerOptions opt;
  opt.capacity = 4;
  std::string log;
  CLI::App app{"muster-test-counting-worker — counts its executions in a file (tests only)."};
  app.add_option("--worker-id", opt.worker_id, "Worker id")->required();
  app.add_option("--log", log, "The executions file")->required();
  app.add_option("--capacity", opt.capacity, "Requests served at once");
  app.add_option("--request-address", opt.request_address, "The daemon's request endpoint (a failover pair: A,B)");
  app.add_option("--response-address", opt.response_address, "The daemon's response endpoint (a failover pair: A,B)");
  app.add_flag("--insecure", opt.insecure, "Allow tcp:// endpoints without CURVE (clear text)");
  CLI11_PARSE(app, argc, argv);
  try {
    setup_logging("info", "worker");
    Worker worker(opt);
    for (auto [name, idempotent] : {std::pair{"count", false}, std::pair{"count_idem", true}})
      worker.node({.name = name,
                   .inputs = {{.name = "i", .type = "int", .required = true}, {.name = "ms", .type = "int"}},
                   .outputs = {{.name = "i", .type = "int"}},
                   .idempotent = idempotent},
                  [log](Context& ctx) { return count(ctx, log); });
    return worker.run();
  } catch (const std::exception& e) {
    std::cerr << "muster-test-counting-worker: error: " << e.what() << "\n";
    return 1;
  }
}
