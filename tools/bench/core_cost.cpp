// core_cost.cpp — muster-bench-core: a deterministic cost probe of BrokerCore alone (no sockets,
// no clock reads): N calls, 32 in flight, 2 workers of capacity 16. Run it under callgrind and
// take (Ir(N2) - Ir(N1)) / (N2 - N1) as the instructions per call (docs/PERFORMANCE.md, 10); the
// same source builds against an older tree for a before/after. Owns nothing else; never a test.
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"
using namespace muster;
using namespace muster::broker;
int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  CoreConfig cfg; cfg.instance = "i";
  BrokerCore core(cfg, now);
  Caller who;
  std::uint64_t seq = 0;
  for (const char* id : {"w1", "w2"}) {
    AttachEvent ev; ev.worker_id = id; ev.session = "s"; ev.capacity = 16;
    NodeSpec spec; spec.name = "echo"; ev.nodes = {spec};
    core.on_attach(now, Peer{std::string("p-") + id, false, ""}, who, std::move(ev));
    for (auto& a : core.actions()) if (auto* p = std::get_if<SendPing>(&a)) seq = p->seq;
    core.actions().clear();
    core.on_pong(now, Peer{std::string("p-") + id, false, ""}, who, id, seq, "i", {});
    core.actions().clear();
  }
  std::deque<std::pair<std::string, std::uint64_t>> open;
  std::uint64_t rid = 0, done = 0;
  auto submit = [&] {
    SubmitEvent s; s.client_request_id = ++rid; s.node = "echo";
    core.on_submit(now, Peer{"client", false, ""}, who, std::move(s));
    for (auto& a : core.actions()) if (auto* w = std::get_if<SendWorkRequest>(&a)) open.emplace_back(w->worker_id, w->request_id);
    core.actions().clear();
  };
  for (int i = 0; i < 32; ++i) submit();
  while (done < n) {
    now += std::chrono::microseconds(20);
    auto [w, id] = open.front(); open.pop_front();
    core.on_result(now, Peer{"p-" + w, false, ""}, who, w, id, Payload{});
    for (auto& a : core.actions()) if (auto* x = std::get_if<SendWorkRequest>(&a)) open.emplace_back(x->worker_id, x->request_id);
    core.actions().clear();
    ++done;
    submit();
  }
  std::printf("%llu calls, %zu open\n", (unsigned long long)done, core.open_requests());
}
