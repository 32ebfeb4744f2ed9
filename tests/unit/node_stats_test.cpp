// node_stats_test.cpp — per-node statistics (broker/node_stats.hpp) and what BrokerCore
// counts into them, under a fake clock: outcomes by code, queue wait and service time
// histograms, the one-minute rate, live figures, recent failures, workspace scoping.
#include <doctest/doctest.h>

#include <string>

#include "broker_core.hpp"
#include "node_stats.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

std::size_t code_index(ErrorCode c) { return static_cast<std::size_t>(c); }

// Drives a BrokerCore as the socket loop would: one worker per call of ready(), clients
// submit, workers answer; the clock only moves when a test says so.
struct Driver {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  BrokerCore core{[] {
    CoreConfig c;
    c.instance = "inst";
    c.queue_limit = 1;
    return c;
  }(), now};

  std::uint64_t last_ping = 0;
  std::vector<Action> take() {
    std::vector<Action> out;
    out.swap(core.actions());
    for (auto& a : out)
      if (auto* p = std::get_if<SendPing>(&a)) last_ping = p->seq;
    return out;
  }
  void pong(const std::string& id, const Caller& who = Caller{}) {
    core.on_pong(now, Peer{"wp-" + id, false, ""}, who, id, last_ping, "inst", {});
    take();
  }
  void advance(Millis d) {
    now += d;
    core.tick(now);
    take();
  }
  void ready(const std::string& id, const std::string& node, const Caller& who = Caller{},
             bool idempotent = false) {
    AttachEvent ev;
    ev.worker_id = id;
    ev.session = "s";
    ev.capacity = 1;
    NodeSpec spec;
    spec.name = node;
    spec.idempotent = idempotent;
    ev.nodes = {spec};
    core.on_attach(now, Peer{"wp-" + id, false, ""}, who, std::move(ev));
    take();
    pong(id, who);
  }
  // The daemon's id of the request if it was dispatched at once, else 0.
  std::uint64_t submit(std::uint64_t rid, const std::string& node, std::uint64_t timeout_ms = 0,
                       const Caller& who = Caller{}) {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = node;
    ev.timeout_ms = timeout_ms;
    core.on_submit(now, Peer{"c-" + who.workspace, false, ""}, who, std::move(ev));
    return dispatched(take());
  }
  static std::uint64_t dispatched(const std::vector<Action>& actions) {
    for (auto& a : actions)
      if (auto* w = std::get_if<SendWorkRequest>(&a)) return w->request_id;
    return 0;
  }
  std::uint64_t result(const std::string& worker, std::uint64_t id, const Caller& who = Caller{}) {
    core.on_result(now, Peer{"wp-" + worker, false, ""}, who, worker, id, Payload{});
    return dispatched(take());
  }
  std::uint64_t failure(const std::string& worker, std::uint64_t id, ErrorCode code,
                        const std::string& message) {
    core.on_failure(now, Peer{"wp-" + worker, false, ""}, Caller{}, worker, id, code, message);
    return dispatched(take());
  }
  NodeStatsSnapshot stats_of(const std::string& node, const std::string& workspace = "default") {
    for (auto& s : core.node_stats(now, workspace))
      if (s.node == node) return s;
    FAIL("no statistics for node " << node);
    return {};
  }
};

}  // namespace

TEST_CASE("histogram buckets are log-spaced, two per octave, with an overflow bucket") {
  constexpr auto bounds = LatencyHistogram::upper_bounds_us();
  CHECK(bounds[0] == 32);
  CHECK(bounds[1] == 48);
  CHECK(bounds[2] == 64);
  CHECK(bounds[3] == 96);
  CHECK(bounds[LatencyHistogram::kBounds - 1] == 3 * (std::uint64_t{1} << 25));  // ~101 s
  // Every value lands in the first bucket whose bound is not below it.
  for (std::uint64_t us : {0ull, 1ull, 32ull, 33ull, 48ull, 49ull, 64ull, 65ull, 1000ull,
                           1024ull, 1025ull, 99'999'999ull, 100'663'296ull}) {
    auto i = LatencyHistogram::bucket_of(us);
    REQUIRE(i < LatencyHistogram::kBounds);
    CHECK(us <= bounds[i]);
    if (i > 0) CHECK(us > bounds[i - 1]);
  }
  CHECK(LatencyHistogram::bucket_of(100'663'297ull) == LatencyHistogram::kBounds);
  CHECK(LatencyHistogram::bucket_of(~0ull) == LatencyHistogram::kBounds);
}

TEST_CASE("histogram quantiles fall inside the bucket of the ranked value") {
  LatencyHistogram h;
  CHECK(h.quantile_us(0.5) == 0);
  for (int i = 0; i < 90; ++i) h.record(1000);     // bucket (768, 1024]
  for (int i = 0; i < 9; ++i) h.record(20'000);    // bucket (16384, 24576]
  h.record(500'000'000);                           // above every bound
  CHECK(h.count() == 100);
  CHECK(h.sum_us() == 90 * 1000 + 9 * 20'000 + 500'000'000ull);
  auto p50 = h.quantile_us(0.5);
  CHECK(p50 > 768);
  CHECK(p50 <= 1024);
  auto p99 = h.quantile_us(0.99);
  CHECK(p99 > 16384);
  CHECK(p99 <= 24576);
  CHECK(h.quantile_us(1.0) == LatencyHistogram::upper_bounds_us().back());
}

TEST_CASE("the failure ring keeps the newest failures, newest first, messages cut on a UTF-8 boundary") {
  FailureRing ring;
  TimePoint t{};
  for (std::size_t i = 0; i < FailureRing::kCapacity + 5; ++i)
    ring.push("n" + std::to_string(i), ErrorCode::Timeout, "m", t + Millis(i));
  auto list = ring.newest_first();
  REQUIRE(list.size() == FailureRing::kCapacity);
  CHECK(list.front().node == "n" + std::to_string(FailureRing::kCapacity + 4));
  CHECK(list.back().node == "n5");
  // 'é' is two bytes: a cut in its middle keeps neither byte.
  std::string message(FailureRing::kMaxMessageBytes - 1, 'a');
  message += "é and more";
  ring.push("n", ErrorCode::WorkerError, message, t);
  CHECK(ring.newest_first().front().message == std::string(FailureRing::kMaxMessageBytes - 1, 'a'));
}

TEST_CASE("per node: outcomes by code, queue wait, service time and rate under a fake clock") {
  Driver d;
  d.ready("w1", "n");
  auto first = d.submit(1, "n");
  REQUIRE(first != 0);                 // dispatched at once: waited 0
  CHECK(d.submit(2, "n") == 0);        // queued behind it
  d.now += 10ms;
  auto second = d.result("w1", first);  // served in 10 ms; request 2 waited 10 ms
  REQUIRE(second != 0);
  d.now += 40ms;
  d.failure("w1", second, ErrorCode::WorkerError, "ValueError: boom");  // served in 40 ms
  auto third = d.submit(3, "n", 50);
  REQUIRE(third != 0);
  d.advance(60ms);                     // request 3 times out (no service time)
  d.submit(4, "n");                    // the worker still holds 3: queued
  d.core.on_cancel(d.now, Peer{"c-default", false, ""}, 4);
  d.take();
  d.core.on_bad_client_message(Peer{"c-default", false, ""}, 0, "junk");  // not a node's
  d.take();

  auto s = d.stats_of("n");
  CHECK(s.workspace == "default");
  CHECK(s.completed == 1);
  CHECK(s.failed == 3);
  CHECK(s.failures_by_code[code_index(ErrorCode::WorkerError)] == 1);
  CHECK(s.failures_by_code[code_index(ErrorCode::Timeout)] == 1);
  CHECK(s.failures_by_code[code_index(ErrorCode::Cancelled)] == 1);
  CHECK(s.service.count() == 2);
  CHECK(s.service.sum_us() == 50'000);
  CHECK(s.queue_wait.count() == 3);     // requests 1, 2 and 3 were dispatched
  CHECK(s.queue_wait.sum_us() == 10'000);
  auto p90 = s.service.quantile_us(0.9);
  CHECK(p90 > 32768);                   // 40 ms lies in (32768, 49152]
  CHECK(p90 <= 49152);
  CHECK(s.rate_1m == doctest::Approx(4.0));  // four terminal replies, all in the first second
  CHECK(s.workers == 1);
  CHECK(s.in_flight == 0);              // request 3 was aborted: orphaned, not in flight
  CHECK(s.queue_depth == 0);

  auto failures = d.core.recent_failures("default");
  REQUIRE(failures.size() == 3);
  CHECK(failures[0].code == ErrorCode::Cancelled);
  CHECK(failures[1].code == ErrorCode::Timeout);
  CHECK(failures[2].code == ErrorCode::WorkerError);
  CHECK(failures[2].node == "n");
  CHECK(failures[2].message == "ValueError: boom");
  CHECK(failures[2].at < failures[1].at);

  // A minute and more later the rate is 0; the counts stay.
  d.advance(61s);
  d.ready("w1", "n");  // the silent worker was declared dead; a new one attaches
  s = d.stats_of("n");
  CHECK(s.rate_1m == 0);
  CHECK(s.completed == 1);
}

TEST_CASE("live figures per node: in flight, queue depth, workers; refusals counted for known nodes") {
  Driver d;
  d.ready("w1", "n");
  d.submit(1, "n");
  d.submit(2, "n");
  d.submit(3, "n");  // queue_limit 1: QUEUE_FULL at once
  auto s = d.stats_of("n");
  CHECK(s.in_flight == 1);
  CHECK(s.queue_depth == 1);
  CHECK(s.workers == 1);
  CHECK(s.failures_by_code[code_index(ErrorCode::QueueFull)] == 1);
  CHECK(d.core.recent_failures("default").front().code == ErrorCode::QueueFull);
  // A node nobody serves gets no entry (clients cannot grow the table with made-up names),
  // but its refusal is among the workspace's recent failures.
  d.submit(4, "nobody");
  for (auto& n : d.core.node_stats(d.now, ""))
    CHECK(n.node != "nobody");
  CHECK(d.core.recent_failures("default").front().node == "nobody");
  CHECK(d.core.recent_failures("default").front().code == ErrorCode::NoWorker);
}

TEST_CASE("node statistics and recent failures are scoped to a workspace") {
  Driver d;
  Caller alpha{"id-a", "a", "alpha", "client"}, beta{"id-b", "b", "beta", "client"};
  d.ready("wa", "n", alpha);
  d.ready("wb", "n", beta);
  auto a = d.submit(1, "n", 0, alpha);
  d.result("wa", a, alpha);
  d.submit(2, "missing", 0, beta);
  auto in_alpha = d.core.node_stats(d.now, "alpha");
  REQUIRE(in_alpha.size() == 1);
  CHECK(in_alpha[0].workspace == "alpha");
  CHECK(in_alpha[0].completed == 1);
  auto in_beta = d.core.node_stats(d.now, "beta");
  REQUIRE(in_beta.size() == 1);
  CHECK(in_beta[0].completed == 0);
  CHECK(d.core.recent_failures("alpha").empty());
  REQUIRE(d.core.recent_failures("beta").size() == 1);
  CHECK(d.core.node_stats(d.now, "").size() == 2);
  CHECK(d.core.recent_failures("").size() == 1);
}

TEST_CASE("a re-queued request's queue wait counts from its re-queueing, not its submit") {
  Driver d;
  d.ready("w1", "n", Caller{}, /*idempotent=*/true);
  REQUIRE(d.submit(1, "n") != 0);  // to w1, waited 0
  d.ready("w2", "n", Caller{}, true);
  // w1 falls silent; w2 answers every ping. w1 is declared dead after 3 intervals and the
  // request goes to w2 at once: it waited 0 since it was re-queued.
  std::uint64_t moved = 0;
  for (int i = 0; i < 6 && moved == 0; ++i) {
    d.now += 1000ms;
    d.core.tick(d.now);
    moved = Driver::dispatched(d.take());
    d.pong("w2");
  }
  REQUIRE(moved != 0);
  auto s = d.stats_of("n");
  CHECK(s.queue_wait.count() == 2);
  CHECK(s.queue_wait.sum_us() == 0);
  CHECK(s.failed == 0);
  CHECK(s.in_flight == 1);
  CHECK(s.workers == 1);
}

// BrokerCore keeps a node's statistics entry in its registry entry (NodeEntry::stats) so that a
// Submit does not look it up by hash: the calls of one node count in one entry, and a node whose
// entry went (its last worker detached) and came back counts on in the same statistics.
TEST_CASE("a node's statistics go on through its registry entry dropped and made again") {
  Driver d;
  d.ready("w1", "n");
  auto id = d.submit(1, "n");
  REQUIRE(id);
  d.result("w1", id);
  id = d.submit(2, "n");
  REQUIRE(id);
  d.result("w1", id);
  CHECK(d.stats_of("n").completed == 2);
  d.core.on_detach(d.now, Peer{"wp-w1", false, ""}, Caller{}, "w1");
  d.take();
  CHECK(d.core.list_nodes("").empty());  // its registry entry went
  d.ready("w2", "n");
  id = d.submit(3, "n");
  REQUIRE(id);
  d.result("w2", id);
  auto s = d.stats_of("n");
  CHECK(s.completed == 3);
  CHECK(s.workers == 1);
}
