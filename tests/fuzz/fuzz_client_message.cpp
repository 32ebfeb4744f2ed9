// fuzz_client_message.cpp — libFuzzer target: one client->daemon payload frame, decoded and
// acted on exactly as musterd does (read_client_message, the Submit/Cancel/query fields, the
// BrokerCore event), against a core with a confirmed worker, an open request and a queue.
// The inputs of an accepted Submit travel to the worker unchanged, so they are also decoded the
// way every worker SDK does (decode_values) and mapped to JSON (as the CLI prints results).
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "muster/value_json.hpp"

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
  Peer client{"c1", false, ""};

  confirmed_worker_with_requests(core, check, now, 1, {"echo", "echo"}, false);

  // The input from the client that has requests open, then from a fresh REQ-style client.
  auto sent_before = check.work_sent().size();
  // A Batch is taken item by item (PROTOCOL.md §2.2), each checked as if it came alone.
  feed_client_frame(core, check, now, client, local, {data, size});
  Peer other{"c2", true, ""};
  feed_client_frame(core, check, now, other, local, {data, size});

  // What a worker does with whatever reached it.
  for (std::size_t i = sent_before; i < check.work_sent().size(); ++i) {
    auto& w = check.work_sent()[i];
    for (auto* p : {&w.inputs, &w.parameters}) {
      try {
        Map m = decode_values(p->bytes);
        try {
          (void)to_json(m).dump();
        } catch (const std::invalid_argument&) {
          // non-finite float: no JSON form (documented)
        }
      } catch (const std::runtime_error&) {
        // not a Values buffer: the worker answers BAD_MESSAGE (documented)
      }
    }
  }

  // Answer everything the worker holds, then let time and shutdown finish the rest.
  for (int round = 0; round < 3; ++round) {
    std::vector<std::uint64_t> held;
    if (auto* w = core.registry().workers().count("w1") ? &core.registry().workers().at("w1") : nullptr)
      held.assign(w->holding.begin(), w->holding.end());
    for (auto id : held) {
      feed_worker_message(core, now, worker_peer, local, result_message("w1", id, Map{{"ok", true}}));
      check.after_worker_message();
    }
  }
  now += Millis(6000);
  core.tick(now);
  check.after_other();
  core.begin_shutdown(now);
  check.after_other();
  now += Millis(5000);
  core.tick(now);
  check.after_other();
  MUSTER_FUZZ_CHECK(core.finished(), "the core did not finish shutting down");
  check.check_all_answered();
  return 0;
}
