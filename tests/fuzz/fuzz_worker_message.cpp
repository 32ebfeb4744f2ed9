// fuzz_worker_message.cpp — libFuzzer target: one worker->daemon payload frame, decoded and
// acted on exactly as musterd does (read_worker_message, every field the daemon reads, then the
// BrokerCore event; a Batch's items one by one, PROTOCOL.md §2.2), against a core that holds a confirmed worker with open requests.
// Then the core is ticked and shut down: every submit must still get exactly one terminal
// reply, and every worker message exactly one reply.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"

using namespace muster;
using namespace muster::fuzz;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  BrokerCore core(fuzz_config(), now);
  Checker check(core);
  Caller local;
  Peer worker_peer{"wp-w1", false, ""};

  confirmed_worker_with_requests(core, check, now, 2, {"echo", "sleep", "echo"}, true);

  // The input, as the same worker's connection and as a stranger's (a Batch item by item).
  feed_worker_frame(core, check, now, worker_peer, local, {data, size});
  Caller stranger{"other", "other", "default", "worker"};
  feed_worker_frame(core, check, now, Peer{"wp-x", true, "other"}, stranger, {data, size});

  for (int i = 0; i < 3; ++i) {
    now += Millis(1500);
    core.tick(now);
    check.after_other();
  }
  core.begin_shutdown(now);
  check.after_other();
  now += Millis(5000);
  core.tick(now);
  check.after_other();
  MUSTER_FUZZ_CHECK(core.finished(), "the core did not finish shutting down");
  check.check_all_answered();
  return 0;
}
