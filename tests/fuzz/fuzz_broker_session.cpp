// fuzz_broker_session.cpp — libFuzzer target: a whole session of the broker, scripted by the
// input. Each step is a worker message (well-formed ones built from fuzzed fields, or raw
// fuzzed bytes), a client message, the passage of time, a revocation or shutdown; every
// message goes through the daemon's decoding (fuzz_support.hpp) into a BrokerCore.
// After every step the checker enforces the promises of DESIGN.md: exactly one reply per
// worker message, at most one terminal reply per submit; at the end, after shutdown, every
// submit got exactly one.
#include <cstddef>
#include <cstdint>

#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_support.hpp"

using namespace muster;
using namespace muster::fuzz;

namespace {

const char* kWorkerIds[] = {"w1", "w2", "w3", "bad:id"};
const char* kSessions[] = {"s1", "s2", ""};
const char* kNodes[] = {"echo", "hello", "sleep", "other", "bad name"};
const char* kClients[] = {"c1", "c2"};

NodeSpec node_spec(FuzzedDataProvider& in) {
  NodeSpec s;
  s.name = kNodes[in.ConsumeIntegralInRange<int>(0, 4)];
  s.idempotent = in.ConsumeBool();
  s.default_timeout_ms = in.ConsumeIntegralInRange<std::uint64_t>(0, 10000);
  if (in.ConsumeBool()) s.inputs.push_back(Port{"x", "int", "", true, Value(1)});
  return s;
}

std::uint64_t pick_request_id(FuzzedDataProvider& in, const Checker& check) {
  auto& sent = check.work_sent();
  if (!sent.empty() && in.ConsumeBool())
    return sent[in.ConsumeIntegralInRange<std::size_t>(0, sent.size() - 1)].request_id;
  return in.ConsumeIntegralInRange<std::uint64_t>(0, 20);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  auto cfg = fuzz_config();
  cfg.queue_limit = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  cfg.max_attempts = in.ConsumeIntegralInRange<std::uint32_t>(1, 3);
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  BrokerCore core(cfg, now);
  Checker check(core);
  Caller identities[2] = {Caller{}, Caller{"id-2", "two", "ws-2", "worker"}};
  std::uint64_t max_seq_seen = 1;

  for (int step = 0; step < 200 && in.remaining_bytes() > 0; ++step) {
    int op = in.ConsumeIntegralInRange<int>(0, 12);
    std::string wid = kWorkerIds[in.ConsumeIntegralInRange<int>(0, 3)];
    Peer wpeer{"wp-" + wid, in.ConsumeBool(), ""};
    const Caller& who = identities[in.ConsumeIntegralInRange<int>(0, 9) == 0 ? 1 : 0];
    switch (op) {
      case 0: {  // attach
        std::vector<NodeSpec> nodes;
        int n = in.ConsumeIntegralInRange<int>(0, 3);
        for (int i = 0; i < n; ++i) nodes.push_back(node_spec(in));
        feed_worker_message(core, now, wpeer, who,
                            attach_message(wid, kSessions[in.ConsumeIntegralInRange<int>(0, 2)],
                                           in.ConsumeIntegralInRange<std::uint32_t>(0, 4), nodes));
        check.after_worker_message();
        break;
      }
      case 1: {  // pong
        std::vector<std::uint64_t> ids;
        int n = in.ConsumeIntegralInRange<int>(0, 4);
        for (int i = 0; i < n; ++i) ids.push_back(pick_request_id(in, check));
        std::uint64_t seq = max_seq_seen + 8 - in.ConsumeIntegralInRange<std::uint64_t>(0, 10);
        std::string instance = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? "old" : cfg.instance;
        feed_worker_message(core, now, wpeer, who, pong_message(wid, seq, instance, ids));
        check.after_worker_message();
        break;
      }
      case 2: {  // result
        feed_worker_message(core, now, wpeer, who,
                            result_message(wid, pick_request_id(in, check), Map{{"r", 1}}));
        check.after_worker_message();
        break;
      }
      case 3: {  // failure
        auto code = static_cast<wire::ErrorCode>(in.ConsumeIntegralInRange<int>(0, 14));
        feed_worker_message(core, now, wpeer, who,
                            failure_message(wid, pick_request_id(in, check), code, "f"));
        check.after_worker_message();
        break;
      }
      case 4: {  // progress
        feed_worker_message(core, now, wpeer, who,
                            progress_message(wid, pick_request_id(in, check), 1, 2));
        check.after_worker_message();
        break;
      }
      case 5: {  // detach
        feed_worker_message(core, now, wpeer, who, detach_message(wid));
        check.after_worker_message();
        break;
      }
      case 6: {  // raw bytes on the response socket
        auto raw = in.ConsumeRandomLengthString(512);
        feed_worker_message(core, now, wpeer, who,
                            {reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()});
        check.after_worker_message();
        break;
      }
      case 7:
      case 8: {  // submit
        Peer c{kClients[in.ConsumeIntegralInRange<int>(0, 1)], false, ""};
        auto rid = in.ConsumeIntegralInRange<std::uint64_t>(0, 6);
        auto f = feed_client_message(
            core, now, c, who,
            submit_message(rid, kNodes[in.ConsumeIntegralInRange<int>(0, 4)], Map{{"x", 1}},
                           in.ConsumeIntegralInRange<std::uint64_t>(0, 6000), in.ConsumeBool(),
                           in.ConsumeBool()));
        check.after_client_message(c, f);
        break;
      }
      case 9: {  // cancel, or raw bytes on the client socket
        Peer c{kClients[in.ConsumeIntegralInRange<int>(0, 1)], false, ""};
        ClientFeed f;
        if (in.ConsumeBool()) {
          f = feed_client_message(core, now, c, who,
                                  cancel_message(in.ConsumeIntegralInRange<std::uint64_t>(0, 6)));
        } else {
          auto raw = in.ConsumeRandomLengthString(512);
          f = feed_client_message(core, now, c, who,
                                  {reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()});
        }
        check.after_client_message(c, f);
        break;
      }
      case 10: {  // time passes
        now += Millis(in.ConsumeIntegralInRange<int>(0, 4000));
        core.tick(now);
        check.after_other();
        break;
      }
      case 11: {
        core.on_identity_revoked(now, identities[1].identity);
        check.after_other();
        break;
      }
      case 12: {
        if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
          core.begin_shutdown(now);
          check.after_other();
        }
        break;
      }
    }
    max_seq_seen += 1;  // pings go out with every tick and attach; keep seqs in their range
  }

  core.begin_shutdown(now);
  check.after_other();
  for (int i = 0; i < 3 && !core.finished(); ++i) {
    now += cfg.shutdown_grace + Millis(1);
    core.tick(now);
    check.after_other();
  }
  MUSTER_FUZZ_CHECK(core.finished(), "the core did not finish shutting down");
  check.check_all_answered();
  return 0;
}
