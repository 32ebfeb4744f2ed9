// broker_core_test.cpp — every rule of the broker core, driven by events and a fake clock.
#include <doctest/doctest.h>

#include <limits>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "broker_core.hpp"
#include "commit_pipeline.hpp"
#include "core_driver.hpp"
#include "muster/messages.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

CoreConfig test_config() {
  CoreConfig c;
  c.ping_interval = 1000ms;
  c.liveness = 3;
  c.queue_limit = 3;
  c.max_attempts = 3;
  c.default_timeout = 30000ms;
  c.confirm_interval = 100ms;
  c.shutdown_grace = 2000ms;
  c.instance = "inst-1";
  return c;
}

using testing::peer;

struct Harness : testing::CoreDriver {
  explicit Harness(CoreConfig c = test_config()) : CoreDriver(c) {}

  static NodeSpec spec(const std::string& name, bool idempotent = false) {
    NodeSpec s;
    s.name = name;
    s.idempotent = idempotent;
    return s;
  }

  std::vector<Action> attach(const std::string& id, std::vector<NodeSpec> nodes,
                             std::uint32_t capacity = 1, const std::string& session = "s1",
                             const Caller& who = Caller{}) {
    AttachEvent ev;
    ev.worker_id = id;
    ev.session = session;
    ev.capacity = capacity;
    ev.nodes = std::move(nodes);
    core.on_attach(now, peer("wp-" + id), who, std::move(ev));
    return take();
  }


  std::vector<Action> pong(const std::string& id, std::vector<std::uint64_t> in_flight = {},
                           std::optional<std::uint64_t> seq = std::nullopt) {
    core.on_pong(now, peer("wp-" + id), local, id, seq.value_or(last_ping_seq(id)), "inst-1", in_flight);
    return take();
  }

  std::vector<Action> ready(const std::string& id, std::vector<NodeSpec> nodes,
                            std::uint32_t capacity = 1, const std::string& session = "s1") {
    attach(id, std::move(nodes), capacity, session);
    return pong(id);
  }

  std::vector<Action> submit(std::uint64_t rid, const std::string& node, std::uint64_t timeout_ms = 0,
                             const std::string& client = "c1", bool progress = false) {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = node;
    ev.timeout_ms = timeout_ms;
    ev.want_progress = progress;
    ev.inputs = Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3});
    core.on_submit(now, peer(client), local, std::move(ev));
    return take();
  }

  std::vector<Action> result(const std::string& worker, std::uint64_t daemon_id) {
    core.on_result(now, peer("wp-" + worker), local, worker, daemon_id,
                   Payload::copy_of(std::vector<std::uint8_t>{9}));
    return take();
  }
};

template <class T>
std::vector<T> all(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (auto& a : actions)
    if (auto* p = std::get_if<T>(&a)) out.push_back(*p);
  return out;
}

std::vector<ReplyToClient> terminals(const std::vector<Action>& actions) {
  std::vector<ReplyToClient> out;
  for (auto& r : all<ReplyToClient>(actions))
    if (std::holds_alternative<ResultBody>(r.body) || std::holds_alternative<FailureBody>(r.body))
      out.push_back(r);
  return out;
}

ErrorCode failure_code(const ReplyToClient& r) {
  auto* f = std::get_if<FailureBody>(&r.body);
  REQUIRE(f != nullptr);
  return f->code;
}

}  // namespace

TEST_CASE("attach is answered Attached and followed by a confirming ping on the worker's topic") {
  Harness h;
  auto out = h.attach("w1", {Harness::spec("n")});
  auto replies = all<ReplyToWorker>(out);
  REQUIRE(replies.size() == 1);
  CHECK(std::holds_alternative<AttachedReply>(replies[0].body));
  auto pings = all<SendPing>(out);
  REQUIRE(pings.size() == 1);
  CHECK(pings[0].worker_id == "w1");
}

TEST_CASE("slow joiner: nothing is dispatched to a worker before it answers a ping") {
  Harness h;
  h.attach("w1", {Harness::spec("n")});
  auto out = h.submit(1, "n");
  CHECK(all<SendWorkRequest>(out).empty());  // queued, not sent into the void
  // The confirming ping is repeated until answered.
  CHECK(all<SendPing>(h.advance(100ms)).size() >= 1);
  out = h.pong("w1");
  auto sent = all<SendWorkRequest>(out);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].worker_id == "w1");
  CHECK(sent[0].node == "n");
}

TEST_CASE("a pong to a ping sent before the attach does not confirm") {
  Harness h;
  h.advance(0ms);  // broadcast ping seq 1 goes out first
  auto before = h.last_ping_seq("");
  h.attach("w1", {Harness::spec("n")});
  h.submit(1, "n");
  auto out = h.pong("w1", {}, before);
  CHECK(all<SendWorkRequest>(out).empty());
}

TEST_CASE("dispatch goes to the worker with the most free capacity, ties to the longest idle") {
  Harness h;
  h.ready("small", {Harness::spec("n")}, 1);
  h.ready("big", {Harness::spec("n")}, 4);
  auto out = h.submit(1, "n");
  REQUIRE(all<SendWorkRequest>(out).size() == 1);
  CHECK(all<SendWorkRequest>(out)[0].worker_id == "big");
  // big has 3 free, small 1: still big; after three, both have one... big is full at 4.
  std::map<std::string, int> count;
  for (std::uint64_t i = 2; i <= 5; ++i) {
    h.advance(1ms);
    for (auto& s : all<SendWorkRequest>(h.submit(i, "n"))) ++count[s.worker_id];
  }
  CHECK(count["big"] == 3);
  CHECK(count["small"] == 1);
}

TEST_CASE("payload byte budget: beyond max_open_bytes QUEUE_FULL at once, freed by every ending") {
  auto cfg = test_config();
  cfg.queue_limit = 100;
  cfg.max_open_bytes = 7;  // two of the harness's 3-byte submits fit, a third does not
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 1);
  CHECK(terminals(h.submit(1, "n")).empty());  // runs
  CHECK(terminals(h.submit(2, "n")).empty());  // queued
  CHECK(h.core.open_bytes() == 6);
  auto t = terminals(h.submit(3, "n"));
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::QueueFull);
  CHECK(h.core.open_bytes() == 6);
  // A cancelled queued request gives its bytes back...
  h.core.on_cancel(h.now, peer("c1"), 2);
  h.take();
  CHECK(h.core.open_bytes() == 3);
  CHECK(terminals(h.submit(4, "n")).empty());
  // ...so does a finished one, and one that timed out in the queue.
  h.result("w1", all<SendWorkRequest>(h.log)[0].request_id);
  CHECK(h.core.open_bytes() == 3);  // request 4 runs now
  h.result("w1", all<SendWorkRequest>(h.log).back().request_id);
  CHECK(h.core.open_bytes() == 0);
  CHECK(h.core.open_requests() == 0);
}

TEST_CASE("queued requests are served round robin across clients, not behind one client's backlog") {
  auto cfg = test_config();
  cfg.queue_limit = 100;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 1);
  for (std::uint64_t i = 1; i <= 20; ++i) h.submit(i, "n", 0, "flood");  // #1 runs, 19 wait
  h.submit(1, "n", 0, "polite");
  // Answer whatever runs, three times: flood #1, flood #2, then the polite client's request
  // (with one FIFO it would have been the 21st).
  for (int i = 0; i < 3; ++i) h.result("w1", all<SendWorkRequest>(h.log).back().request_id);
  auto t = terminals(h.log);
  REQUIRE(t.size() == 3);
  CHECK(t[0].peer->routing_id == "flood");
  CHECK(t[1].peer->routing_id == "flood");
  CHECK(t[2].peer->routing_id == "polite");
}

TEST_CASE("users of one gateway connection each get their own lane: one user's flood does not starve another") {
  auto cfg = test_config();
  cfg.queue_limit = 100;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 1);
  // Both users' calls come over the same gateway connection "gw", each made on behalf of its
  // user (the caller decide_on_behalf_of makes of an honoured assertion).
  auto as_user = [](const std::string& user) {
    return Caller{"gw-identity/" + user, user, "default", "call"};
  };
  auto submit_as = [&](std::uint64_t rid, const std::string& user) {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = "n";
    ev.inputs = Payload::copy_of(std::vector<std::uint8_t>{1});
    h.core.on_submit(h.now, peer("gw"), as_user(user), std::move(ev));
    h.take();
  };
  for (std::uint64_t i = 1; i <= 20; ++i) submit_as(i, "flood");  // #1 runs, 19 wait
  submit_as(101, "polite");
  submit_as(102, "polite");
  // Served in turn: flood #1 (running), then polite and flood alternate; the polite user's two
  // calls are the 3rd and 5th answered (with one lane per connection, the 21st and 22nd).
  for (int i = 0; i < 5; ++i) h.result("w1", all<SendWorkRequest>(h.log).back().request_id);
  auto t = terminals(h.log);
  REQUIRE(t.size() == 5);
  std::vector<std::uint64_t> order;
  for (auto& r : t) order.push_back(r.request_id);
  CHECK(order == std::vector<std::uint64_t>{1, 2, 101, 3, 102});
  // Cancelling a queued call of one user takes it out of that user's lane.
  h.core.on_cancel(h.now, peer("gw"), 4, nullptr);
  auto c = terminals(h.take());
  REQUIRE(c.size() == 1);
  CHECK(failure_code(c[0]) == ErrorCode::Cancelled);
}

TEST_CASE("unknown node fails at once with NO_WORKER") {
  Harness h;
  auto t = terminals(h.submit(7, "missing"));
  REQUIRE(t.size() == 1);
  CHECK(t[0].request_id == 7);
  CHECK(failure_code(t[0]) == ErrorCode::NoWorker);
}

TEST_CASE("bounded FIFO queue per node; beyond the bound QUEUE_FULL at once") {
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 1);
  h.submit(1, "n");  // runs
  for (std::uint64_t i = 2; i <= 4; ++i) CHECK(terminals(h.submit(i, "n")).empty());
  auto t = terminals(h.submit(5, "n"));
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::QueueFull);
  // Completing the running request dispatches the oldest queued one.
  auto first = all<SendWorkRequest>(h.log)[0].request_id;
  auto out = h.result("w1", first);
  auto sent = all<SendWorkRequest>(out);
  REQUIRE(sent.size() == 1);
  auto next = sent[0].request_id;
  out = h.result("w1", next);
  // the client that submitted request 2 got the result of `next`
  bool found = false;
  for (auto& r : terminals(h.log))
    if (r.request_id == 2 && std::holds_alternative<ResultBody>(r.body)) found = true;
  CHECK(found);
}

TEST_CASE("deadline of a dispatched request: TIMEOUT to the caller, Abort to the worker, late result dropped") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto sent = all<SendWorkRequest>(h.submit(1, "n", 300));
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].timeout_ms == 300);
  CHECK(terminals(h.advance(299ms)).empty());
  auto out = h.advance(1ms);
  auto t = terminals(out);
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::Timeout);
  auto aborts = all<SendAbort>(out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].request_id == sent[0].request_id);
  CHECK(aborts[0].code == ErrorCode::Timeout);
  // The late result is acknowledged as late and produces no second reply.
  out = h.result("w1", sent[0].request_id);
  auto acks = all<ReplyToWorker>(out);
  REQUIRE(acks.size() == 1);
  CHECK(std::get<AckReply>(acks[0].body).late);
  CHECK(terminals(out).empty());
}

TEST_CASE("a queued request times out in the queue") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  h.submit(1, "n");
  h.submit(2, "n", 500);
  auto t = terminals(h.advance(500ms));
  REQUIRE(t.size() == 1);
  CHECK(t[0].request_id == 2);
  CHECK(failure_code(t[0]) == ErrorCode::Timeout);
}

TEST_CASE("an aborted request keeps its slot until the worker answers") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n", 100))[0].request_id;
  h.submit(2, "n");
  CHECK(all<SendWorkRequest>(h.advance(100ms)).empty());  // w1 is still busy with the aborted one
  auto out = h.result("w1", id);
  CHECK(all<SendWorkRequest>(out).size() == 1);
}

TEST_CASE("cancel: queued and dispatched requests get CANCELLED once; the worker gets Abort") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  h.submit(2, "n");
  h.core.on_cancel(h.now, peer("c1"), 2);
  auto t = terminals(h.take());
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::Cancelled);
  h.core.on_cancel(h.now, peer("c1"), 1);
  auto out = h.take();
  REQUIRE(terminals(out).size() == 1);
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].request_id == id);
  // A second cancel and a late result change nothing.
  h.core.on_cancel(h.now, peer("c1"), 1);
  CHECK(h.take().empty());
  CHECK(terminals(h.result("w1", id)).empty());
}

TEST_CASE("cancel on behalf of a user cancels only a request of that user's workspace") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});  // the local owner's worker: workspace default
  h.submit(1, "n");                      // the local owner's request: workspace default
  const std::string beta = "beta", def = "default";
  h.core.on_cancel(h.now, peer("c1"), 1, &beta);  // asserted for beta: not beta's request
  CHECK(terminals(h.take()).empty());
  h.core.on_cancel(h.now, peer("c1"), 1, &def);
  auto t = terminals(h.take());
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::Cancelled);
}

TEST_CASE("progress is forwarded only to callers who asked for it") {
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 2);
  auto a = all<SendWorkRequest>(h.submit(1, "n", 0, "c1", true))[0].request_id;
  auto b = all<SendWorkRequest>(h.submit(2, "n", 0, "c1", false))[0].request_id;
  h.core.on_progress(h.now, peer("wp-w1"), h.local, "w1", a, 1, 2, "half");
  auto out = h.take();
  auto progress = all<ReplyToClient>(out);
  REQUIRE(progress.size() == 1);
  CHECK(progress[0].request_id == 1);
  CHECK(std::get<ProgressBody>(progress[0].body).message == "half");
  h.core.on_progress(h.now, peer("wp-w1"), h.local, "w1", b, 1, 2, "half");
  CHECK(all<ReplyToClient>(h.take()).empty());
}

TEST_CASE("worker death: a non-idempotent request fails with WORKER_LOST") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  h.submit(1, "n");
  for (int i = 0; i < 4; ++i) h.advance(1000ms);  // w1 never answers the pings
  auto t = terminals(h.log);
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::WorkerLost);
  CHECK(h.core.registry().workers().empty());
}

TEST_CASE("worker death: an idempotent request is re-run on another worker") {
  Harness h;
  h.ready("w1", {Harness::spec("n", true)});
  h.ready("w2", {Harness::spec("n", true)});
  auto first = all<SendWorkRequest>(h.submit(1, "n"));
  REQUIRE(first.size() == 1);
  std::string dead = first[0].worker_id, alive = dead == "w1" ? "w2" : "w1";
  std::vector<SendWorkRequest> resent;
  for (int i = 0; i < 4; ++i) {
    auto out = h.advance(1000ms);
    h.pong(alive);
    for (auto& s : all<SendWorkRequest>(h.log))
      if (s.worker_id == alive) resent.push_back(s);
  }
  REQUIRE(!resent.empty());
  CHECK(resent.back().request_id == first[0].request_id);
  CHECK(resent.back().attempt == 2);
  CHECK(terminals(h.log).empty());
  auto out = h.result(alive, first[0].request_id);
  REQUIRE(terminals(out).size() == 1);
  CHECK(std::holds_alternative<ResultBody>(terminals(out)[0].body));
}

TEST_CASE("worker death: idempotent re-runs are bounded by max_attempts") {
  auto cfg = test_config();
  cfg.max_attempts = 2;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n", true)});
  h.submit(1, "n", 60000);
  // w1 dies; w2 takes over; w2 dies too: the second death exhausts the attempts.
  for (int i = 0; i < 4; ++i) h.advance(1000ms);
  CHECK(terminals(h.log).empty());
  h.ready("w2", {Harness::spec("n", true)});
  CHECK(all<SendWorkRequest>(h.log).size() == 2);
  for (int i = 0; i < 4; ++i) h.advance(1000ms);
  auto t = terminals(h.log);
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::WorkerLost);
}

TEST_CASE("silent loss: a request missing from a pong to a later ping is sent again") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  // A pong to a ping published before the request proves nothing.
  auto out = h.pong("w1", {}, h.last_ping_seq("w1"));
  CHECK(all<SendWorkRequest>(out).empty());
  // The next broadcast ping is published after the request; the pong omits it: lost.
  h.advance(1000ms);
  out = h.pong("w1", {});
  auto again = all<SendWorkRequest>(out);
  REQUIRE(again.size() == 1);
  CHECK(again[0].request_id == id);
  CHECK(again[0].attempt == 2);
  // When the pong lists it, nothing is re-sent.
  h.advance(1000ms);
  CHECK(all<SendWorkRequest>(h.pong("w1", {id})).empty());
}

TEST_CASE("re-attach of the same session keeps its requests; a new session is a death") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  h.attach("w1", {Harness::spec("n")}, 1, "s1");
  CHECK(terminals(h.log).empty());
  h.pong("w1", {id});
  CHECK(terminals(h.result("w1", id)).size() == 1);

  auto id2 = all<SendWorkRequest>(h.submit(2, "n"))[0].request_id;
  (void)id2;
  h.attach("w1", {Harness::spec("n")}, 1, "s2");  // the process restarted
  auto t = terminals(h.log);
  REQUIRE(t.size() == 2);
  CHECK(failure_code(t[1]) == ErrorCode::WorkerLost);
}

TEST_CASE("messages from unknown workers are told to re-attach; other identities are refused") {
  Harness h;
  h.core.on_pong(h.now, peer("x"), h.local, "ghost", 1, "inst-1", {});
  auto r = all<ReplyToWorker>(h.take());
  REQUIRE(r.size() == 1);
  CHECK(std::get<RejectedReply>(r[0].body).reattach);

  h.ready("w1", {Harness::spec("n")});
  Caller other;
  other.identity = "intruder";
  h.core.on_result(h.now, peer("x"), other, "w1", 1, Payload{});
  r = all<ReplyToWorker>(h.take());
  REQUIRE(r.size() == 1);
  CHECK(std::get<RejectedReply>(r[0].body).code == ErrorCode::PermissionDenied);
  // and it cannot take over the id by attaching
  auto out = h.attach("w1", {Harness::spec("n")}, 1, "s9", other);
  CHECK(std::get<RejectedReply>(all<ReplyToWorker>(out)[0].body).code == ErrorCode::PermissionDenied);
}

TEST_CASE("direct: a DEALER worker asking for its messages on its connection gets it; a REQ one never") {
  Harness h;
  auto attach_direct = [&](const std::string& id, const Peer& from, const std::string& session,
                           const Caller& who) {
    AttachEvent ev;
    ev.worker_id = id;
    ev.session = session;
    ev.nodes = {Harness::spec("n")};
    ev.direct = true;
    h.core.on_attach(h.now, from, who, std::move(ev));
    return all<ReplyToWorker>(h.take());
  };
  auto r = attach_direct("w1", peer("dealer"), "s1", h.local);
  REQUIRE(r.size() == 1);
  CHECK(std::get<AttachedReply>(r[0].body).direct);
  CHECK(h.core.registry().workers().at("w1").direct);

  Peer req = peer("req");
  req.delimiter = true;  // a REQ worker cannot receive what it did not ask for
  r = attach_direct("w2", req, "s1", h.local);
  CHECK_FALSE(std::get<AttachedReply>(r[0].body).direct);
  CHECK_FALSE(h.core.registry().workers().at("w2").direct);

  r = all<ReplyToWorker>(h.attach("w3", {Harness::spec("n")}));  // did not ask
  CHECK_FALSE(std::get<AttachedReply>(r[0].body).direct);
  CHECK_FALSE(h.core.registry().workers().at("w3").direct);

  // ListWorkers and watches show it (WorkerInfo.direct: `muster workers`' DIRECT column).
  std::map<std::string, bool> listed;
  for (auto& w : h.core.list_workers(h.now, "")) listed[w.worker_id] = w.direct;
  CHECK(listed == std::map<std::string, bool>{{"w1", true}, {"w2", false}, {"w3", false}});
}

TEST_CASE("direct: a worker's route moves only with its own re-attach; no other identity can redirect it") {
  Harness h;
  auto attach_direct = [&](const Peer& from, const std::string& session, const Caller& who) {
    AttachEvent ev;
    ev.worker_id = "w1";
    ev.session = session;
    ev.nodes = {Harness::spec("n")};
    ev.direct = true;
    h.core.on_attach(h.now, from, who, std::move(ev));
    return all<ReplyToWorker>(h.take());
  };
  Caller tenant;
  tenant.identity = "tenant-a";
  Caller intruder;
  intruder.identity = "tenant-b";
  attach_direct(peer("wp-w1"), "s1", tenant);
  auto route = [&] { return h.core.registry().workers().at("w1").connection.routing_id; };
  h.core.on_pong(h.now, peer("wp-w1"), tenant, "w1", h.last_ping_seq("w1"), "inst-1", {});
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  CHECK(route() == "wp-w1");

  // Another identity, from its own connection: refused, whatever it sends; the route stays.
  auto r = attach_direct(peer("evil"), "s1", intruder);
  CHECK(std::get<RejectedReply>(r[0].body).code == ErrorCode::PermissionDenied);
  h.core.on_pong(h.now, peer("evil"), intruder, "w1", h.last_ping_seq("w1"), "inst-1", {id});
  h.core.on_result(h.now, peer("evil"), intruder, "w1", id, Payload{});
  h.take();
  CHECK(route() == "wp-w1");
  CHECK(terminals(h.log).empty());

  // The same identity's other connection is asked to attach again, and moves nothing until it does.
  h.core.on_pong(h.now, peer("wp-w1-again"), tenant, "w1", h.last_ping_seq("w1"), "inst-1", {id});
  r = all<ReplyToWorker>(h.take());
  REQUIRE(r.size() == 1);
  CHECK(std::get<RejectedReply>(r[0].body).reattach);
  CHECK(route() == "wp-w1");

  // Its re-attach with its session (a DEALER that reconnected): the route is the new connection,
  // the request it holds stays its own, and its answer from there ends the call.
  r = attach_direct(peer("wp-w1-again"), "s1", tenant);
  CHECK(std::get<AttachedReply>(r[0].body).direct);
  CHECK(route() == "wp-w1-again");
  CHECK(h.core.registry().workers().at("w1").holding.contains(id));
  h.core.on_result(h.now, peer("wp-w1-again"), tenant, "w1", id, Payload{});
  CHECK(terminals(h.take()).size() == 1);
}

TEST_CASE("invalid attaches are refused with a reason") {
  Harness h;
  auto code_of = [&](std::vector<Action> out) {
    return std::get<RejectedReply>(all<ReplyToWorker>(out)[0].body).code;
  };
  CHECK(code_of(h.attach("bad id!", {Harness::spec("n")})) == ErrorCode::InvalidRequest);
  CHECK(code_of(h.attach("w", {})) == ErrorCode::InvalidRequest);
  CHECK(code_of(h.attach("w", {Harness::spec("n")}, 0)) == ErrorCode::InvalidRequest);
  CHECK(code_of(h.attach("w", {Harness::spec("a/b")})) == ErrorCode::InvalidRequest);
  CHECK(code_of(h.attach("w", {Harness::spec("n"), Harness::spec("n")})) == ErrorCode::InvalidRequest);
  // fuzz finding: a port default with no JSON form was accepted, and every client's node
  // listing (muster nodes, the bridge's registration) then failed while the worker was attached
  auto nan_default = Harness::spec("n");
  nan_default.inputs = {{.name = "x", .default_value = Value(std::numeric_limits<double>::quiet_NaN())}};
  auto out = h.attach("w", {nan_default});
  REQUIRE(all<ReplyToWorker>(out).size() == 1);
  RejectedReply rejected = std::get<RejectedReply>(all<ReplyToWorker>(out)[0].body);
  CHECK(rejected.code == ErrorCode::InvalidRequest);
  CHECK(rejected.message.find("node 'n': port 'x': default: a non-finite float") != std::string::npos);
  // hostname and sdk are listed too: they must be UTF-8 like every string
  AttachEvent ev;
  ev.worker_id = "w";
  ev.capacity = 1;
  ev.hostname = "caf\xe9";
  ev.nodes = {Harness::spec("n")};
  h.core.on_attach(h.now, peer("wp-w"), h.local, std::move(ev));
  CHECK(code_of(h.take()) == ErrorCode::InvalidRequest);
  CHECK(h.core.registry().workers().empty());
}

TEST_CASE("detach: no new work, and the worker is forgotten after its last answer") {
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 2);
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  h.core.on_detach(h.now, peer("wp-w1"), h.local, "w1");
  h.take();
  CHECK(failure_code(terminals(h.submit(2, "n"))[0]) == ErrorCode::NoWorker);
  CHECK(h.core.registry().workers().size() == 1);
  h.result("w1", id);
  CHECK(h.core.registry().workers().empty());
}

TEST_CASE("a duplicate open request id is refused without touching the original") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  auto t = terminals(h.submit(1, "n"));
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::InvalidRequest);
  auto out = h.result("w1", id);
  REQUIRE(terminals(out).size() == 1);
  CHECK(std::holds_alternative<ResultBody>(terminals(out)[0].body));
  // the same id may be reused once closed, and from another connection at any time
  CHECK(all<SendWorkRequest>(h.submit(1, "n", 0, "c2")).size() == 1);
}

TEST_CASE("shutdown: queued fail at once, running ones get the grace period, then all end") {
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 2);
  auto a = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  h.submit(2, "n");
  h.submit(3, "n");  // queued
  h.core.begin_shutdown(h.now);
  auto t = terminals(h.take());
  REQUIRE(t.size() == 1);
  CHECK(t[0].request_id == 3);
  CHECK(failure_code(t[0]) == ErrorCode::ShuttingDown);
  CHECK(failure_code(terminals(h.submit(4, "n"))[0]) == ErrorCode::ShuttingDown);
  h.result("w1", a);  // one finishes within the grace
  CHECK_FALSE(h.core.finished());
  auto out = h.advance(2000ms);
  t = terminals(out);
  REQUIRE(t.size() == 1);
  CHECK(t[0].request_id == 2);
  CHECK(failure_code(t[0]) == ErrorCode::ShuttingDown);
  CHECK(all<SendAbort>(out).size() == 1);
  CHECK(h.core.finished());
}

TEST_CASE("revoking an identity removes its workers at once") {
  Harness h;
  Caller who;
  who.identity = "id-1";
  h.attach("w1", {Harness::spec("n")}, 1, "s1", who);
  CHECK(h.core.registry().workers().size() == 1);
  h.core.on_identity_revoked(h.now, "id-1");
  CHECK(h.core.registry().workers().empty());
}

TEST_CASE("revoking a client's identity ends its open requests") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  Caller c;
  c.identity = "client-1";
  SubmitEvent ev;
  ev.client_request_id = 1;
  ev.node = "n";
  h.core.on_submit(h.now, peer("c"), c, ev);
  ev.client_request_id = 2;
  h.core.on_submit(h.now, peer("c"), c, ev);  // queued behind the first
  h.take();
  h.core.on_identity_revoked(h.now, "client-1");
  auto out = h.take();
  auto t = terminals(out);
  REQUIRE(t.size() == 2);
  CHECK(failure_code(t[0]) == ErrorCode::PermissionDenied);
  CHECK(failure_code(t[1]) == ErrorCode::PermissionDenied);
  CHECK(all<SendAbort>(out).size() == 1);
}

TEST_CASE("workspaces: a client sees and calls only nodes of its workspace") {
  Harness h;
  Caller a;
  a.identity = "wa";
  a.workspace = "A";
  h.attach("w1", {Harness::spec("n")}, 1, "s1", a);
  h.core.on_pong(h.now, peer("wp-w1"), a, "w1", h.last_ping_seq("w1"), "inst-1", {});
  h.take();
  Caller b;
  b.identity = "cb";
  b.workspace = "B";
  SubmitEvent ev;
  ev.client_request_id = 1;
  ev.node = "n";
  h.core.on_submit(h.now, peer("c"), b, ev);
  auto t = terminals(h.take());
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::NoWorker);
  CHECK(h.core.list_nodes("B").empty());
  CHECK(h.core.list_nodes("A").size() == 1);
  ev.client_request_id = 2;
  h.core.on_submit(h.now, peer("c"), a, ev);
  auto sent = all<SendWorkRequest>(h.take());
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].caller.who->workspace == "A");
  CHECK(sent[0].caller.who->identity == "wa");
}

TEST_CASE("a WorkRequest carries the submitted payloads, caller and trace id (given or default)") {
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 4);
  Caller alice;
  alice.identity = "id-alice";
  alice.name = "alice";
  alice.role = "client";
  std::vector<std::uint8_t> in{1, 2, 3}, params{4, 5};
  auto bytes = [](const Payload& p) { return std::vector<std::uint8_t>(p.bytes.begin(), p.bytes.end()); };
  // Payloads with one owner (as the daemon sends them) and with two (as a test may).
  auto [one_in, one_params] = Payload::copy_of_both(in, params);
  for (auto [rid, inputs, parameters, trace] :
       {std::tuple{1, one_in, one_params, std::string()},
        std::tuple{2, Payload::copy_of(in), Payload::copy_of(params), std::string("my-trace-id-longer-than-sso")}}) {
    SubmitEvent ev;
    ev.client_request_id = static_cast<std::uint64_t>(rid);
    ev.node = "n";
    ev.inputs = inputs;
    ev.parameters = parameters;
    ev.trace_id = trace;
    h.core.on_submit(h.now, peer("c1"), alice, std::move(ev));
  }
  one_in = one_params = Payload{};  // the request keeps its own reference
  auto sent = all<SendWorkRequest>(h.take());
  REQUIRE(sent.size() == 2);
  for (auto& s : sent) {
    CHECK(bytes(s.inputs) == in);
    CHECK(bytes(s.parameters) == params);
    CHECK(s.caller.who->identity == "id-alice");
    CHECK(s.caller.who->name == "alice");
    CHECK(s.caller.who->role == "client");
    CHECK(s.caller.who->workspace == "default");
  }
  CHECK(sent[0].caller.trace_id.empty());  // the default: the socket loop writes "<instance>-<id>"
  std::string trace;
  append_default_trace_id(trace, "inst-1", sent[0].request_id);
  CHECK(trace == fmt::format("inst-1-{}", sent[0].request_id));
  CHECK(sent[1].caller.trace_id == "my-trace-id-longer-than-sso");
}

TEST_CASE("deadlines of answered requests never fire, and a live one still does, on time") {
  auto cfg = test_config();
  cfg.queue_limit = 10000;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 1);
  h.advance(150ms);  // past the confirming ping's timer; the next broadcast ping is due in 1 s
  // 2,000 requests with a 500 ms deadline answered long before it; one left open with 5 s.
  for (std::uint64_t i = 1; i <= 2000; ++i) {
    auto sent = all<SendWorkRequest>(h.submit(i, "n", 500));
    REQUIRE(sent.size() == 1);
    h.result("w1", sent[0].request_id);
  }
  h.submit(5000, "n", 5000);
  CHECK(h.core.open_requests() == 1);
  CHECK(h.core.next_wakeup() == h.now + 1000ms);  // the ping; no wake-up for the answered ones
  auto before = terminals(h.log).size();
  for (int i = 0; i < 9; ++i) {  // 4,500 ms, the worker answering its pings
    CHECK(terminals(h.advance(500ms)).empty());
    h.pong("w1", {all<SendWorkRequest>(h.log).back().request_id});
  }
  CHECK(terminals(h.advance(499ms)).empty());
  auto t = terminals(h.advance(1ms));
  REQUIRE(t.size() == 1);
  CHECK(t[0].request_id == 5000);
  CHECK(failure_code(t[0]) == ErrorCode::Timeout);
  CHECK(terminals(h.log).size() == before + 1);
}

TEST_CASE("status counts what happened") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  h.result("w1", id);
  h.submit(2, "none");
  auto s = h.core.status(h.now);
  CHECK(s.submitted == 2);
  CHECK(s.completed == 1);
  CHECK(s.failed == 1);
  CHECK(s.failures_by_code[static_cast<int>(ErrorCode::NoWorker)] == 1);
  CHECK(s.workers == 1);
}

TEST_CASE("property: under random events every submit gets exactly one terminal reply") {
  for (unsigned seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    auto cfg = test_config();
    cfg.queue_limit = 5;
    Harness h(cfg);
    std::set<std::string> workers;
    std::uint64_t next_rid = 1;
    int next_worker = 0;
    for (int step = 0; step < 400; ++step) {
      int what = rng() % 10;
      if (what <= 1 && workers.size() < 4) {
        std::string id = "w" + std::to_string(next_worker++);
        h.ready(id, {Harness::spec("n", rng() % 2), Harness::spec("m")}, 1 + rng() % 3);
        workers.insert(id);
      } else if (what <= 4) {
        h.submit(next_rid++, rng() % 2 ? "n" : "m", 50 + rng() % 3000);
      } else if (what == 5 && !workers.empty()) {
        // a random worker answers something it holds (or a stale id)
        auto it = workers.begin();
        std::advance(it, rng() % workers.size());
        auto* w = h.core.registry().workers().count(*it) ? &h.core.registry().workers().at(*it) : nullptr;
        if (w && !w->holding.empty()) {
          auto id = *w->holding.begin();
          if (rng() % 3) h.result(*it, id);
          else {
            h.core.on_failure(h.now, peer("wp-" + *it), h.local, *it, id, ErrorCode::WorkerError, "x");
            h.take();
          }
        }
      } else if (what == 6 && next_rid > 1) {
        h.core.on_cancel(h.now, peer("c1"), 1 + rng() % (next_rid - 1));
        h.take();
      } else if (what == 7) {
        h.advance(Millis(rng() % 700));
        for (auto& id : workers)
          if (h.core.registry().workers().count(id) && rng() % 4) {
            std::vector<std::uint64_t> held(h.core.registry().workers().at(id).holding.begin(),
                                            h.core.registry().workers().at(id).holding.end());
            if (rng() % 5 == 0 && !held.empty()) held.pop_back();  // simulate a lost request
            h.pong(id, held);
          }
      } else if (what == 8 && !workers.empty()) {
        auto it = workers.begin();
        std::advance(it, rng() % workers.size());
        workers.erase(it);  // this worker goes silent forever (dies)
      } else {
        h.advance(Millis(rng() % 200));
      }
      // workers still "alive" keep answering pings so only the dead ones time out
      // The byte budget follows every way a request ends (each submit carries 3 bytes; a
      // re-send after a silent loss counts its bytes once more while the request is open).
      REQUIRE(h.core.open_bytes() == 3 * h.core.open_requests() + h.core.open_resent_bytes());
    }
    h.core.begin_shutdown(h.now);
    h.take();
    h.advance(cfg.shutdown_grace);
    REQUIRE(h.core.finished());
    std::map<std::uint64_t, int> count;
    for (auto& r : terminals(h.log)) ++count[r.request_id];
    for (std::uint64_t rid = 1; rid < next_rid; ++rid) {
      INFO("seed " << seed << " request " << rid);
      CHECK(count[rid] == 1);
    }
  }
}

// ---- hardening (issue 12): items 8, 10, 11, 12, 13 ---------------------------------------

TEST_CASE("no worker left: a request queued for a confirming worker that dies ends NO_WORKER after the grace") {
  Harness h;  // no_worker_grace 2000 ms (the default)
  h.attach("w1", {Harness::spec("n")});  // confirming: it never answers a ping
  CHECK(terminals(h.submit(1, "n", 60000)).empty());  // queued behind the confirmation
  for (int i = 0; i < 4; ++i) h.advance(1000ms);  // w1 is declared dead at 4 s
  CHECK(h.core.registry().workers().empty());
  CHECK(terminals(h.log).empty());  // the grace for a returning worker
  h.advance(1000ms);
  CHECK(terminals(h.log).empty());
  auto t = terminals(h.advance(1000ms));  // 2 s after the death, not at the 60 s deadline
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::NoWorker);
  CHECK(std::get<FailureBody>(t[0].body).message.find("--no-worker-grace-ms") != std::string::npos);
  CHECK(h.core.open_requests() == 0);
  CHECK(h.core.list_nodes("").empty());
}

TEST_CASE("no worker left: an idempotent request re-queued after its only worker died ends NO_WORKER") {
  Harness h;
  h.ready("w1", {Harness::spec("n", true)});
  REQUIRE(all<SendWorkRequest>(h.submit(1, "n", 60000)).size() == 1);
  for (int i = 0; i < 4; ++i) h.advance(1000ms);  // dies; the request is re-queued
  CHECK(terminals(h.log).empty());
  for (int i = 0; i < 2; ++i) h.advance(1000ms);
  auto t = terminals(h.log);
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::NoWorker);
}

TEST_CASE("no worker left: a worker of the node attaching within the grace takes the queue") {
  Harness h;
  h.attach("w1", {Harness::spec("n")});
  h.submit(1, "n", 60000);
  for (int i = 0; i < 4; ++i) h.advance(1000ms);
  REQUIRE(h.core.registry().workers().empty());
  h.advance(1000ms);
  auto out = h.ready("w2", {Harness::spec("n")});  // 1 s into the grace
  REQUIRE(all<SendWorkRequest>(out).size() == 1);
  for (int i = 0; i < 3; ++i) {
    h.advance(1000ms);
    h.pong("w2", {all<SendWorkRequest>(out)[0].request_id});
  }
  CHECK(terminals(h.log).empty());  // the grace passed; the request runs on w2
  CHECK(terminals(h.result("w2", all<SendWorkRequest>(out)[0].request_id)).size() == 1);
}

TEST_CASE("no worker left: grace 0 fails the queue at once; a detach of the last worker counts too") {
  auto cfg = test_config();
  cfg.no_worker_grace = 0ms;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n", 60000))[0].request_id;
  h.submit(2, "n", 60000);  // queued: w1 has one slot
  h.core.on_detach(h.now, peer("wp-w1"), h.local, "w1");
  auto t = terminals(h.take());
  REQUIRE(t.size() == 1);
  CHECK(t[0].request_id == 2);
  CHECK(failure_code(t[0]) == ErrorCode::NoWorker);
  CHECK(terminals(h.result("w1", id)).size() == 1);  // the running one still finishes
}

TEST_CASE("pongs: a pong to a ping never sent changes nothing (no confirmation, no re-send, no liveness)") {
  Harness h;
  h.attach("w1", {Harness::spec("n")});
  h.submit(1, "n");
  const std::uint64_t forged = 1'000'000'000'000ull;
  auto out = h.pong("w1", {}, forged);
  REQUIRE(all<ReplyToWorker>(out).size() == 1);
  CHECK(std::holds_alternative<AckReply>(all<ReplyToWorker>(out)[0].body));  // answered Ack
  CHECK(all<SendWorkRequest>(out).empty());  // not confirmed by it
  // A confirmed worker: forged pongs with an empty in-flight list re-send nothing...
  h.pong("w1");
  auto id = all<SendWorkRequest>(h.log).at(0).request_id;
  h.advance(1000ms);
  for (int i = 0; i < 200; ++i) CHECK(all<SendWorkRequest>(h.pong("w1", {}, forged + i)).empty());
  // ...and do not keep a worker alive that answers no real ping.
  for (int i = 0; i < 3; ++i) {
    h.advance(1000ms);
    h.pong("w1", {id}, forged);
  }
  CHECK(h.core.registry().workers().empty());
}

TEST_CASE("pongs: a broadcast ping does not confirm; only a confirming ping sent to the worker after its attach does") {
  Harness h;
  h.attach("w1", {Harness::spec("n")});
  h.submit(1, "n");
  h.advance(1000ms);  // a broadcast ping after the attach
  std::uint64_t broadcast = 0;
  for (auto& p : all<SendPing>(h.log))
    if (p.worker_id.empty()) broadcast = p.seq;
  REQUIRE(broadcast != 0);
  CHECK(all<SendWorkRequest>(h.pong("w1", {}, broadcast)).empty());
  std::uint64_t confirm = 0;
  for (auto& p : all<SendPing>(h.log))
    if (p.worker_id == "w1") confirm = p.seq;
  CHECK(all<SendWorkRequest>(h.pong("w1", {}, confirm)).size() == 1);
}

TEST_CASE("pongs: a lost request is re-sent at most once per ping and max_resends times, then lost with its worker") {
  Harness h;  // max_resends 3 (the default)
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n", 60000))[0].request_id;
  CHECK(h.core.open_bytes() == 3);
  std::size_t resent = 0;
  for (int ping = 0; ping < 3; ++ping) {
    h.advance(1000ms);
    for (int i = 0; i < 50; ++i) resent += all<SendWorkRequest>(h.pong("w1", {})).size();
    CHECK(resent == static_cast<std::size_t>(ping + 1));  // one per ping, however many pongs
  }
  CHECK(h.core.open_bytes() == 3 + 3 * 3);  // every re-sent copy counts against max_open_bytes
  CHECK(h.core.resent_bytes() == 9);
  CHECK(terminals(h.log).empty());
  h.advance(1000ms);
  auto out = h.pong("w1", {});
  CHECK(all<SendWorkRequest>(out).empty());
  auto t = terminals(out);
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::WorkerLost);  // not idempotent
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].request_id == id);
  CHECK(h.core.open_bytes() == 0);
  CHECK(h.core.registry().workers().at("w1").holding.empty());
}

TEST_CASE("pongs: re-sent bytes count against max_open_bytes") {
  auto cfg = test_config();
  cfg.max_open_bytes = 10;
  cfg.queue_limit = 100;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 4);
  h.submit(1, "n", 60000);
  CHECK(terminals(h.submit(2, "n", 60000)).empty());  // 6 of 10 bytes
  h.advance(1000ms);
  h.pong("w1", {});  // both lost: re-sent, 12 bytes held
  auto t = terminals(h.submit(3, "n", 60000));  // 3 more would have fitted without them
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::QueueFull);
}

TEST_CASE("client outstanding: open calls plus unread replies are bounded per connection") {
  auto cfg = test_config();
  cfg.queue_limit = 100;
  cfg.max_client_outstanding = 3;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 1);
  for (std::uint64_t rid = 1; rid <= 3; ++rid) CHECK(terminals(h.submit(rid, "n")).empty());
  auto t = terminals(h.submit(4, "n"));
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::QueueFull);
  auto& msg = std::get<FailureBody>(t[0].body).message;
  CHECK(msg.find("read your replies") != std::string::npos);
  CHECK(msg.find("limit 3") != std::string::npos);
  CHECK(t[0].refusal);  // may be dropped by the outbox's hard cap, unlike a request's reply
  // Another connection is not affected.
  CHECK(terminals(h.submit(1, "n", 0, "c2")).empty());
  // One call answered, but its reply is still unread in the socket loop's outbox.
  auto first = all<SendWorkRequest>(h.log).at(0).request_id;
  auto done = terminals(h.result("w1", first));
  REQUIRE(done.size() == 1);
  CHECK_FALSE(done[0].refusal);
  h.core.on_client_backlog(BrokerCore::connection_key(peer("c1")), 1, 100);
  CHECK(failure_code(terminals(h.submit(5, "n")).at(0)) == ErrorCode::QueueFull);
  h.core.on_client_backlog(BrokerCore::connection_key(peer("c1")), 0, 0);  // read
  CHECK(terminals(h.submit(5, "n")).empty());
}

TEST_CASE("client outstanding: bounded by payload bytes too") {
  auto cfg = test_config();
  cfg.queue_limit = 100;
  cfg.max_client_outstanding_bytes = 8;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")}, 1);
  CHECK(terminals(h.submit(1, "n")).empty());  // 3 bytes
  h.core.on_client_backlog(BrokerCore::connection_key(peer("c1")), 1, 3);  // 6
  auto t = terminals(h.submit(2, "n"));  // 9 > 8
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::QueueFull);
  CHECK(std::get<FailureBody>(t[0].body).message.find("--max-client-outstanding-bytes") != std::string::npos);
  h.core.on_client_backlog(BrokerCore::connection_key(peer("c1")), 0, 0);
  CHECK(terminals(h.submit(2, "n")).empty());
}

TEST_CASE("a stall of the daemon's loop is not a worker death: every worker gets a fresh liveness window") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  h.ready("w2", {Harness::spec("n")});
  h.submit(1, "n", 60000);
  h.submit(2, "n", 60000);
  auto held = [&](const std::string& id) {
    auto& w = h.core.registry().workers().at(id);
    return std::vector<std::uint64_t>(w.holding.begin(), w.holding.end());
  };
  h.advance(1000ms);
  h.pong("w1", held("w1"));
  h.pong("w2", held("w2"));
  // The loop stops for 20 s (SIGSTOP, a slow fsync): the next tick comes 20 s late.
  h.advance(20000ms);
  CHECK(h.core.registry().workers().size() == 2);
  CHECK(terminals(h.log).empty());
  // The answers that waited in the sockets arrive; everything completes.
  for (auto& s : all<SendWorkRequest>(h.log)) CHECK(terminals(h.result(s.worker_id, s.request_id)).size() == 1);
  CHECK(terminals(h.submit(3, "n")).empty());
  // A worker that is really gone is still declared dead one liveness window later.
  for (int i = 0; i < 4; ++i) {
    h.advance(1000ms);
    h.pong("w2");
  }
  CHECK(h.core.registry().workers().size() == 1);
  CHECK(h.core.registry().workers().count("w2") == 1);
}

TEST_CASE("attach limits: spec bytes and workers per identity, refused naming the limit") {
  auto cfg = test_config();
  cfg.max_attach_spec_bytes = 4096;
  cfg.max_workers_per_identity = 2;
  Harness h(cfg);
  auto rejected = [](const std::vector<Action>& out) {
    auto r = all<ReplyToWorker>(out);
    REQUIRE(r.size() == 1);
    auto* rej = std::get_if<RejectedReply>(&r[0].body);
    REQUIRE(rej != nullptr);
    CHECK(rej->code == ErrorCode::InvalidRequest);
    return rej->message;
  };
  auto big = Harness::spec("big");
  big.description = std::string(5000, 'd');
  CHECK(rejected(h.attach("w1", {Harness::spec("n"), big})).find("--max-attach-spec-bytes") != std::string::npos);
  big.description = std::string(3000, 'd');
  CHECK(std::holds_alternative<AttachedReply>(all<ReplyToWorker>(h.attach("w1", {Harness::spec("n"), big}))[0].body));
  h.attach("w2", {Harness::spec("n")});
  CHECK(rejected(h.attach("w3", {Harness::spec("n")})).find("--max-workers-per-identity") != std::string::npos);
  // Re-attaching an id it already has is not a new worker.
  CHECK(std::holds_alternative<AttachedReply>(all<ReplyToWorker>(h.attach("w2", {Harness::spec("n")}, 1, "s2"))[0].body));
  // Another identity has its own count.
  Caller other{"id-2", "other", "default", "worker"};
  CHECK(std::holds_alternative<AttachedReply>(
      all<ReplyToWorker>(h.attach("w3", {Harness::spec("n")}, 1, "s1", other))[0].body));
  // A worker that goes frees its place.
  h.core.on_detach(h.now, peer("wp-w2"), h.local, "w2");
  h.take();
  CHECK(std::holds_alternative<AttachedReply>(all<ReplyToWorker>(h.attach("w4", {Harness::spec("n")}))[0].body));
}

// ---- a worker id is bound to the connection that attached it (issue 12, item 3) ----------

TEST_CASE("a message naming a worker id from another connection is refused with reattach, the worker untouched") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto sent = all<SendWorkRequest>(h.submit(1, "n"));
  REQUIRE(sent.size() == 1);
  const auto id = sent[0].request_id;
  const auto last_heard = h.core.registry().workers().at("w1").last_heard;
  h.now += 500ms;
  // Same identity ("local", as every ipc peer), another connection: Pong, Result, Detach.
  auto check_refused = [&](const std::vector<Action>& out) {
    auto replies = all<ReplyToWorker>(out);
    REQUIRE(replies.size() == 1);
    auto* rej = std::get_if<RejectedReply>(&replies[0].body);
    REQUIRE(rej != nullptr);
    CHECK(rej->code == ErrorCode::PermissionDenied);
    // Most often the worker itself, connected again after its connection broke: told to attach
    // again from there (its session keeps its requests; the next test case).
    CHECK(rej->reattach);
    CHECK(all<ReplyToClient>(out).empty());
  };
  h.core.on_pong(h.now, peer("intruder"), h.local, "w1", h.last_ping_seq("w1"), "inst-1", {});
  check_refused(h.take());
  h.core.on_result(h.now, peer("intruder"), h.local, "w1", id, Payload::copy_of(std::vector<std::uint8_t>{9}));
  check_refused(h.take());
  h.core.on_detach(h.now, peer("intruder"), h.local, "w1");
  check_refused(h.take());
  // The same routing id on another socket of the role is another connection too.
  Peer other_socket = peer("wp-w1");
  other_socket.via = 1;
  h.core.on_pong(h.now, other_socket, h.local, "w1", h.last_ping_seq("w1"), "inst-1", {});
  check_refused(h.take());
  auto& w = h.core.registry().workers().at("w1");
  CHECK(w.state == WorkerState::Ready);
  CHECK(w.last_heard == last_heard);
  CHECK(w.holding.contains(id));
  // Its own connection still works.
  CHECK(all<ReplyToClient>(h.result("w1", id)).size() == 1);
}

TEST_CASE("a worker that reconnects re-attaches with its session from a new connection") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto id = all<SendWorkRequest>(h.submit(1, "n")).at(0).request_id;
  AttachEvent ev;
  ev.worker_id = "w1";
  ev.session = "s1";
  ev.nodes = {Harness::spec("n")};
  h.core.on_attach(h.now, peer("wp-w1-new"), h.local, std::move(ev));
  auto out = h.take();
  REQUIRE(all<ReplyToWorker>(out).size() == 1);
  CHECK(std::holds_alternative<AttachedReply>(all<ReplyToWorker>(out)[0].body));
  CHECK(h.core.registry().workers().at("w1").holding.contains(id));  // its request stays
  // The binding moved: the old connection is refused, the new one answers.
  h.core.on_result(h.now, peer("wp-w1"), h.local, "w1", id, Payload::copy_of(std::vector<std::uint8_t>{9}));
  auto old = all<ReplyToWorker>(h.take());
  REQUIRE(old.size() == 1);
  CHECK(std::get<RejectedReply>(old[0].body).code == ErrorCode::PermissionDenied);
  h.core.on_result(h.now, peer("wp-w1-new"), h.local, "w1", id, Payload::copy_of(std::vector<std::uint8_t>{9}));
  CHECK(all<ReplyToClient>(h.take()).size() == 1);
}

TEST_CASE("the connection of a worker replaced by another session is refused without reattach") {
  // Two processes given the same worker id: the second Attach (another session) replaces the
  // first; the first's messages must not make it attach again (it would take the id back, and
  // the two would replace each other in turn, failing the calls of each).
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  AttachEvent ev;
  ev.worker_id = "w1";
  ev.session = "s2";
  ev.nodes = {Harness::spec("n")};
  h.core.on_attach(h.now, peer("wp-w1-other"), h.local, std::move(ev));
  h.take();
  h.core.on_pong(h.now, peer("wp-w1"), h.local, "w1", h.last_ping_seq("w1"), "inst-1", {});
  auto replies = all<ReplyToWorker>(h.take());
  REQUIRE(replies.size() == 1);
  auto& rej = std::get<RejectedReply>(replies[0].body);
  CHECK(rej.code == ErrorCode::PermissionDenied);
  CHECK_FALSE(rej.reattach);
  CHECK(rej.message.find("replaced") != std::string::npos);
  // A third connection (the new worker's own, after a reconnect) is asked to attach again.
  h.core.on_pong(h.now, peer("wp-w1-third"), h.local, "w1", h.last_ping_seq("w1"), "inst-1", {});
  CHECK(std::get<RejectedReply>(all<ReplyToWorker>(h.take()).at(0).body).reattach);
}

// ---- GetStatus is scoped to the caller's workspace (issue 12, item 5) ----------------------

TEST_CASE("status of a workspace counts only its workers, nodes and requests") {
  Harness h;
  Caller alpha{"id-alpha", "a", "alpha", "worker"}, beta{"id-beta", "b", "beta", "client"};
  AttachEvent ev;
  ev.worker_id = "wa";
  ev.session = "s";
  ev.capacity = 1;
  ev.nodes = {Harness::spec("n")};
  h.core.on_attach(h.now, peer("wp-wa"), alpha, std::move(ev));
  h.take();
  h.core.on_pong(h.now, peer("wp-wa"), alpha, "wa", h.last_ping_seq("wa"), "inst-1", {});
  h.take();
  Caller alpha_client{"id-ac", "ac", "alpha", "client"};
  auto submit_as = [&](const Caller& who, std::uint64_t rid) {
    SubmitEvent s;
    s.client_request_id = rid;
    s.node = "n";
    h.core.on_submit(h.now, peer("c-" + who.workspace), who, std::move(s));
    return h.take();
  };
  auto first = all<SendWorkRequest>(submit_as(alpha_client, 1));
  submit_as(alpha_client, 2);  // queued
  submit_as(beta, 1);          // NO_WORKER in beta
  REQUIRE(first.size() == 1);
  h.core.on_result(h.now, peer("wp-wa"), alpha, "wa", first[0].request_id, Payload{});
  h.take();  // request 2 is dispatched now

  auto all_ = h.core.status(h.now);
  CHECK(all_.workers == 1);
  CHECK(all_.submitted == 3);
  CHECK(all_.completed == 1);
  CHECK(all_.failed == 1);

  auto a = h.core.status(h.now, "alpha");
  CHECK(a.workers == 1);
  CHECK(a.nodes == 1);
  CHECK(a.in_flight == 1);
  CHECK(a.submitted == 2);
  CHECK(a.completed == 1);
  CHECK(a.failed == 0);

  auto b = h.core.status(h.now, "beta");
  CHECK(b.workers == 0);
  CHECK(b.nodes == 0);
  CHECK(b.queued == 0);
  CHECK(b.in_flight == 0);
  CHECK(b.submitted == 1);
  CHECK(b.completed == 0);
  CHECK(b.failed == 1);
  CHECK(b.failures_by_code[static_cast<std::size_t>(ErrorCode::NoWorker)] == 1);

  auto none = h.core.status(h.now, "gamma");
  CHECK(none.workers == 0);
  CHECK(none.submitted == 0);
  CHECK(none.rate_1m == 0);
}

// ---- input checking and one declaration per node (PROTOCOL.md §5.1) ---------------------

namespace {
NodeSpec typed_node() {
  NodeSpec s;
  s.name = "greet";
  s.inputs = {{.name = "name", .type = "string", .required = true}};
  return s;
}
std::vector<Action> submit_inputs(Harness& h, std::uint64_t rid, const std::string& node,
                                  const Map& inputs) {
  SubmitEvent ev;
  ev.client_request_id = rid;
  ev.node = node;
  ev.inputs = Payload::copy_of(encode_values(inputs));
  h.core.on_submit(h.now, peer("c1"), h.local, std::move(ev));
  return h.take();
}
std::optional<RejectedReply> rejected(const std::vector<Action>& out) {
  for (auto& r : all<ReplyToWorker>(out))
    if (auto* rej = std::get_if<RejectedReply>(&r.body)) return *rej;
  return std::nullopt;
}
}  // namespace

TEST_CASE("a Submit whose inputs do not fit the node's ports ends INVALID_REQUEST before dispatch") {
  Harness h;
  h.ready("w1", {typed_node()});
  auto out = submit_inputs(h, 1, "greet", Map{{"name", 42}});
  CHECK(all<SendWorkRequest>(out).empty());
  auto t = terminals(out);
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::InvalidRequest);
  CHECK(std::get<FailureBody>(t[0].body).message == "node 'greet': input \"name\": expected string, got int");
  out = submit_inputs(h, 2, "greet", Map{});
  REQUIRE(terminals(out).size() == 1);
  CHECK(std::get<FailureBody>(terminals(out)[0].body).message ==
        "node 'greet': missing required input \"name\" (string)");
  CHECK(all<SendWorkRequest>(out).empty());
  // the refusals hold nothing: a good call goes straight through
  out = submit_inputs(h, 3, "greet", Map{{"name", "Ada"}});
  CHECK(all<SendWorkRequest>(out).size() == 1);
  CHECK(h.core.open_requests() == 1);
  CHECK(h.core.status(h.now).failures_by_code[static_cast<int>(ErrorCode::InvalidRequest)] == 2);
}

TEST_CASE("a second worker declaring a served node differently is refused, naming the node and the difference") {
  Harness h;
  h.ready("w1", {typed_node()});
  auto other = typed_node();
  other.inputs[0].type = "int";
  auto rej = rejected(h.attach("w2", {Harness::spec("free"), other}));
  REQUIRE(rej);
  CHECK(rej->code == ErrorCode::InvalidRequest);
  CHECK(rej->message ==
        "node 'greet' is already served by worker 'w1' with a different declaration: input "
        "\"name\": type \"int\", served as \"string\" (declare it the same way, or give it another "
        "name, e.g. with a version suffix)");
  CHECK(h.core.registry().workers().size() == 1);  // w2 is not attached at all
  CHECK(h.core.list_nodes("").size() == 1);
  CHECK(h.core.list_nodes("")[0].spec == typed_node());
  // the same declaration is welcome
  CHECK_FALSE(rejected(h.attach("w3", {typed_node()})));
  CHECK(h.core.registry().workers().size() == 2);
}

TEST_CASE("a node's declaration may change when no other worker serves it") {
  Harness h;
  h.ready("w1", {typed_node()});
  auto changed = typed_node();
  changed.inputs[0].type = "int";
  // the same session re-attaching with a new declaration: it is the only worker of the node
  CHECK_FALSE(rejected(h.attach("w1", {changed})));
  CHECK(h.core.list_nodes("")[0].spec == changed);
  h.pong("w1");
  auto out = submit_inputs(h, 1, "greet", Map{{"name", "Ada"}});
  REQUIRE(terminals(out).size() == 1);
  CHECK(std::get<FailureBody>(terminals(out)[0].body).message ==
        "node 'greet': input \"name\": expected int, got string");
  // once w1 is gone, a worker may declare it anew
  h.core.on_detach(h.now, peer("wp-w1"), h.local, "w1");
  h.take();
  CHECK_FALSE(rejected(h.attach("w2", {typed_node()})));
}

TEST_CASE("an Attach declaring a port of unknown type or a default its type refuses is refused") {
  Harness h;
  auto bad = typed_node();
  bad.inputs[0].type = "text";
  auto rej = rejected(h.attach("w1", {bad}));
  REQUIRE(rej);
  CHECK(rej->message.find("input \"name\" has unknown type \"text\"") != std::string::npos);
}

// ---- durable calls: the journal records the core emits (docs/DURABILITY.md §2, §11) --------

namespace {

// Submits a durable call (3 bytes of inputs) from client c1.
std::vector<Action> submit_durable(Harness& h, std::uint64_t rid, const std::string& node,
                                   std::uint64_t timeout_ms = 0) {
  SubmitEvent ev;
  ev.client_request_id = rid;
  ev.node = node;
  ev.timeout_ms = timeout_ms;
  ev.durable = true;
  ev.inputs = Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3});
  h.core.on_submit(h.now, peer("c1"), h.local, std::move(ev));
  return h.take();
}

// The records emitted since the last call, as "Kind job [details]" lines, and forgotten.
std::vector<std::string> records(Harness& h) {
  std::vector<std::string> out;
  for (auto& op : h.core.journal_ops()) {
    auto* rec = std::get_if<journal::Record>(&op);
    if (!rec) {
      out.push_back("ExpireKept");
      continue;
    }
    out.push_back(std::visit(
        [](auto& r) -> std::string {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, journal::Submitted>)
            return fmt::format("Submitted {} {} idempotent={} bytes={}", r.call.job_id, r.call.node,
                               r.call.idempotent, r.call.payload_bytes());
          else if constexpr (std::is_same_v<T, journal::Dispatched>)
            return fmt::format("Dispatched {} {} attempt={}", r.job_id, r.worker_id, r.attempt);
          else if constexpr (std::is_same_v<T, journal::Requeued>)
            return fmt::format("Requeued {} deaths={}", r.job_id, r.deaths);
          else if constexpr (std::is_same_v<T, journal::Finished>)
            return fmt::format("Finished {} {}", r.job_id, error_code_name(r.outcome.code));
          else
            return fmt::format("Acked {}", r.job_id);
        },
        *rec));
  }
  h.core.journal_ops().clear();
  return out;
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("durable: queued, dispatched, finished are journaled in order; Accepted carries the job id") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  auto out = submit_durable(h, 1, "n");
  CHECK(records(h) == Lines{"Submitted 1 n idempotent=false bytes=3", "Dispatched 1 w1 attempt=1"});
  // Accepted is implied for a durable call (its caller needs the job id), before the work goes out.
  auto replies = all<ReplyToClient>(out);
  REQUIRE(replies.size() == 1);
  auto* acc = std::get_if<AcceptedBody>(&replies[0].body);
  REQUIRE(acc != nullptr);
  CHECK(acc->job_id == 1);
  CHECK_FALSE(acc->queued);
  CHECK(h.core.journal_bytes() == 3);
  auto id = all<SendWorkRequest>(out)[0].request_id;
  REQUIRE(terminals(h.result("w1", id)).size() == 1);
  CHECK(records(h) == Lines{"Finished 1 NONE"});
  CHECK(h.core.journal_bytes() == 1);  // the inputs are gone, the 1-byte result is kept
  // The next durable call gets the next job id; a queued one is journaled queued first.
  submit_durable(h, 2, "n");
  submit_durable(h, 3, "n");
  CHECK(records(h) == Lines{"Submitted 2 n idempotent=false bytes=3", "Dispatched 2 w1 attempt=1",
                            "Submitted 3 n idempotent=false bytes=3"});
}

TEST_CASE("durable: one commit per call, the core's records through the commit pipeline (early dispatch)") {
  // The core emits Submitted and Dispatched in the Submit's turn; the pipeline sends that
  // WorkRequest before their commit, and the worker's answer joins the same batch, so the
  // caller's Accepted and Result wait for one commit (docs/DURABILITY.md §3).
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 2);
  CommitPipeline pipe(500ms);
  auto end_turn = [&](std::vector<Action> actions) {
    pipe.end_turn(std::move(h.core.journal_ops()), std::move(actions), h.core.journal_bytes());
    h.core.journal_ops().clear();
  };
  // The batch of an earlier turn (call 1) is committing.
  end_turn(submit_durable(h, 1, "n"));
  auto first = pipe.next_batch(h.now);
  REQUIRE(first);
  pipe.released().clear();  // call 1's WorkRequest went early too
  end_turn(submit_durable(h, 2, "n"));
  auto out = pipe.released();
  pipe.released().clear();
  REQUIRE(out.size() == 1);  // the WorkRequest only; the Accepted waits
  auto id = std::get<SendWorkRequest>(out[0]).request_id;
  end_turn(h.result("w1", id));  // Finished 2, the Result to the caller, the Ack to the worker
  CHECK(pipe.released().empty());
  pipe.committed(first->seq);
  for (auto& reply : all<ReplyToClient>(pipe.released()))  // call 1's Accepted only: nothing of call 2
    CHECK(reply.request_id == 1);
  CHECK(all<SendWorkRequest>(pipe.released()).empty());
  pipe.released().clear();
  auto second = pipe.next_batch(h.now);
  REQUIRE(second);
  CHECK(second->records == 3);  // Submitted 2, Dispatched 2, Finished 2
  pipe.committed(second->seq);
  auto replies = all<ReplyToClient>(pipe.released());
  REQUIRE(replies.size() == 2);
  CHECK(std::holds_alternative<AcceptedBody>(replies[0].body));
  CHECK(std::holds_alternative<ResultBody>(replies[1].body));
}

TEST_CASE("durable: a call re-queued after its worker died is journaled Requeued, then dispatched again") {
  Harness h;
  h.ready("w1", {Harness::spec("n", true)});
  h.ready("w2", {Harness::spec("n", true)});
  auto first = all<SendWorkRequest>(submit_durable(h, 1, "n"));
  REQUIRE(first.size() == 1);
  std::string dead = first[0].worker_id, alive = dead == "w1" ? "w2" : "w1";
  CHECK(records(h) == Lines{"Submitted 1 n idempotent=true bytes=3", "Dispatched 1 " + dead + " attempt=1"});
  for (int i = 0; i < 4; ++i) {
    h.advance(1000ms);
    h.pong(alive);
  }
  CHECK(records(h) == Lines{"Requeued 1 deaths=1", "Dispatched 1 " + alive + " attempt=2"});
  h.result(alive, first[0].request_id);
  CHECK(records(h) == Lines{"Finished 1 NONE"});
}

TEST_CASE("durable: a non-idempotent call whose worker died is journaled Finished WORKER_LOST") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  submit_durable(h, 1, "n");
  records(h);
  for (int i = 0; i < 4; ++i) h.advance(1000ms);
  CHECK(records(h) == Lines{"Finished 1 WORKER_LOST"});
}

TEST_CASE("durable: cancelled calls, queued and running, are journaled Finished CANCELLED") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  submit_durable(h, 1, "n");
  submit_durable(h, 2, "n");
  records(h);
  h.core.on_cancel(h.now, peer("c1"), 2);
  h.core.on_cancel(h.now, peer("c1"), 1);
  h.take();
  CHECK(records(h) == Lines{"Finished 2 CANCELLED", "Finished 1 CANCELLED"});
  CHECK(h.core.journal_bytes() == std::string("cancelled by the client").size() * 2);
}

TEST_CASE("durable: calls that time out, queued and running, are journaled Finished TIMEOUT") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  submit_durable(h, 1, "n", 500);
  submit_durable(h, 2, "n", 500);
  records(h);
  h.advance(600ms);
  auto lines = records(h);
  std::sort(lines.begin(), lines.end());
  CHECK(lines == Lines{"Finished 1 TIMEOUT", "Finished 2 TIMEOUT"});
}

TEST_CASE("durable: a non-durable call emits no record; expiry is asked for only once durable calls exist") {
  auto cfg = test_config();
  cfg.journal_expire_interval = 2000ms;
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")});
  auto out = h.submit(1, "n");
  CHECK(all<ReplyToClient>(out).empty());  // no Accepted unless asked
  h.result("w1", all<SendWorkRequest>(out)[0].request_id);
  h.advance(3000ms);
  CHECK(h.core.journal_ops().empty());
  submit_durable(h, 2, "n");
  records(h);
  h.advance(100ms);
  CHECK(records(h) == Lines{"ExpireKept"});
  h.advance(1000ms);
  CHECK(records(h).empty());
  h.advance(1000ms);
  CHECK(records(h) == Lines{"ExpireKept"});
}

TEST_CASE("durable: beyond journal_max_bytes a durable Submit gets QUEUE_FULL naming the journal; others pass") {
  auto cfg = test_config();
  cfg.queue_limit = 100;
  cfg.journal_max_bytes = 7;  // two 3-byte durable calls fit, a third does not
  Harness h(cfg);
  h.ready("w1", {Harness::spec("n")});
  submit_durable(h, 1, "n");
  submit_durable(h, 2, "n");
  auto t = terminals(submit_durable(h, 3, "n"));
  REQUIRE(t.size() == 1);
  CHECK(failure_code(t[0]) == ErrorCode::QueueFull);
  CHECK(std::get<FailureBody>(t[0].body).message.starts_with("journal full: 6 of 7 bytes"));
  CHECK(records(h).size() == 3);  // Submitted 1, Dispatched 1, Submitted 2: nothing of call 3
  CHECK(terminals(h.submit(4, "n")).empty());  // a non-durable call is not bounded by it
  // The journal's own count after a commit is the truth.
  h.core.on_journal_state(0, 100);
  auto ok = all<ReplyToClient>(submit_durable(h, 5, "n"));
  REQUIRE(ok.size() == 1);
  CHECK(std::get<AcceptedBody>(ok[0].body).job_id == 100);
}

namespace {

// A durable call as a journal would hold it (3 bytes of inputs), submitted at the harness's
// wall start (the core's wall clock at construction is config.wall_start).
journal::Call held_call(journal::JobId job, const std::string& node, journal::CallState state,
                        bool idempotent = false) {
  journal::Call c;
  c.job_id = job;
  c.state = state;
  c.node = node;
  c.inputs = Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3});
  c.idempotent = idempotent;
  c.deadline = journal::WallTime{} + 60000ms;
  if (state == journal::CallState::Running) {
    c.worker_id = "old";
    c.worker_identity = "local";
    c.request_id = 5;
    c.attempts = 1;
  }
  return c;
}

}  // namespace

// ---- no_answer_acks (PROTOCOL.md §7.7): answers without an Ack, delivery proven by the Pong ----

namespace {

// A worker attached with no_answer_acks, confirmed; returns the Attached reply's flag.
bool ready_without_acks(Harness& h, const std::string& id, const std::string& node,
                        std::uint32_t capacity = 1, bool opt_in = true) {
  AttachEvent ev;
  ev.worker_id = id;
  ev.session = "s1";
  ev.capacity = capacity;
  ev.nodes = {Harness::spec(node)};
  ev.no_answer_acks = opt_in;
  h.core.on_attach(h.now, peer("wp-" + id), h.local, std::move(ev));
  auto replies = all<ReplyToWorker>(h.take());
  REQUIRE(replies.size() == 1);
  bool honoured = std::get<AttachedReply>(replies[0].body).no_answer_acks;
  h.pong(id);
  return honoured;
}

// A Pong that also lists the answers the worker keeps; returns the daemon's Ack to it.
AckReply pong_answered(Harness& h, const std::string& id, std::vector<std::uint64_t> in_flight,
                       std::vector<std::uint64_t> answered, const std::string& instance = "inst-1") {
  h.core.on_pong(h.now, peer("wp-" + id), h.local, id, h.last_ping_seq(id), instance, in_flight,
                 answered);
  auto out = h.take();
  auto replies = all<ReplyToWorker>(out);
  REQUIRE(replies.size() == 1);
  CHECK(all<SendWorkRequest>(out).empty());  // an answered request is never run again
  return std::get<AckReply>(replies[0].body);
}

}  // namespace

TEST_CASE("durable restore: queued calls go back to their queue in job order and run; their outcome is journaled, not sent") {
  Harness h;
  std::vector<journal::Call> calls{held_call(3, "n", journal::CallState::Queued),
                                   held_call(4, "n", journal::CallState::Queued),
                                   held_call(5, "m", journal::CallState::Queued)};
  h.core.on_journal_epoch(2);  // as the daemon does: before restore gives out request ids
  CHECK(h.core.restore(h.now, calls) == 3);
  CHECK(records(h).empty());  // a queued call needs no record to be re-queued
  h.ready("w1", {Harness::spec("n")});
  auto sent = all<SendWorkRequest>(h.log);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].request_id >= (2ull << 40));  // above every id an earlier instance gave out
  CHECK(records(h) == Lines{"Dispatched 3 w1 attempt=1"});
  auto out = h.result("w1", sent[0].request_id);
  CHECK(all<ReplyToClient>(out).empty());  // its caller has not resumed: nothing to send to
  CHECK(records(h) == Lines{"Finished 3 NONE", "Dispatched 4 w1 attempt=1"});
  CHECK(h.core.status(h.now).queued == 1);  // job 5 waits for a worker of m
}

// ---- restore of running calls: adoption by their re-attaching worker (DURABILITY.md §5) ----

namespace {

// held_call() running as request `request_id` (each call its own, as an instance gives them).
journal::Call running_call(journal::JobId job, std::uint64_t request_id, bool idempotent = false) {
  auto c = held_call(job, "n", journal::CallState::Running, idempotent);
  c.request_id = request_id;
  return c;
}

// The worker "old" (identity "local", as the journal recorded it) attaching to this instance
// and answering its confirming ping, listing what it still runs and the answers it keeps.
std::vector<Action> old_worker_back(Harness& h, std::vector<std::uint64_t> in_flight,
                                    std::vector<std::uint64_t> answered = {},
                                    bool idempotent = false, const std::string& identity = "local") {
  h.local.identity = identity;
  h.attach("old", {Harness::spec("n", idempotent)}, 2, "new-session", h.local);
  h.core.on_pong(h.now, peer("wp-old"), h.local, "old", h.last_ping_seq("old"), "inst-1", in_flight,
                 answered);
  return h.take();
}

}  // namespace

TEST_CASE("durable restore: a running call waits for its worker, holding no slot; finished ones need nothing") {
  Harness h;
  auto late = held_call(9, "n", journal::CallState::Queued);
  late.deadline = journal::WallTime{} - 1ms;
  std::vector<journal::Call> calls{held_call(7, "n", journal::CallState::Running, true), late,
                                   held_call(10, "n", journal::CallState::Finished)};
  calls[2].expires = journal::WallTime{} + 1000ms;
  CHECK(h.core.restore(h.now, calls) == 0);
  CHECK(records(h) == Lines{"Finished 9 TIMEOUT"});  // past its deadline while musterd was down
  CHECK(h.core.recovering() == 1);
  CHECK(h.core.reattach_until() == h.now + 3000ms);  // ping_interval × liveness
  CHECK(h.core.next_wakeup() <= h.now + 3000ms);
  // Another worker of the node gets neither the waiting call nor its slot.
  h.ready("w1", {Harness::spec("n", true)});
  CHECK(all<SendWorkRequest>(h.log).empty());
  CHECK(h.core.status(h.now).queued == 0);
  CHECK(h.core.status(h.now).in_flight == 0);
  CHECK(records(h).empty());
}

TEST_CASE("durable restore: the worker re-attaching with the call in flight adopts it; nothing re-runs, its result ends it") {
  Harness h;
  h.core.on_journal_epoch(2);
  CHECK(h.core.restore(h.now, {held_call(7, "n", journal::CallState::Running)}) == 0);
  h.advance(1000ms);
  auto out = old_worker_back(h, {5});
  CHECK(all<SendWorkRequest>(out).empty());  // adopted: not sent again, not re-run
  CHECK(records(h).empty());                 // the journal already says running on old as 5
  CHECK(h.core.recovering() == 0);
  CHECK(h.core.status(h.now).in_flight == 1);
  CHECK(h.core.list_workers(h.now, "")[0].in_flight == 1);  // it takes its slot
  // Its old request id stays its id; new calls get ids of this instance, far above it.
  submit_durable(h, 1, "n");
  auto fresh = all<SendWorkRequest>(h.take());
  auto sent = all<SendWorkRequest>(h.log);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].request_id >= (2ull << 40));
  records(h);
  // Later pongs listing it keep it; the result ends it exactly once (journaled, not sent).
  h.advance(1000ms);
  h.core.on_pong(h.now, peer("wp-old"), h.local, "old", h.last_ping_seq("old"), "inst-1",
                 {5, sent[0].request_id});
  CHECK(all<SendWorkRequest>(h.take()).empty());
  out = h.result("old", 5);
  CHECK(all<ReplyToClient>(out).empty());
  CHECK(records(h) == Lines{"Finished 7 NONE"});
  CHECK(all<ReplyToWorker>(out).size() == 1);  // Ack{late=false}
  CHECK_FALSE(std::get<AckReply>(all<ReplyToWorker>(out)[0].body).late);
  h.advance(10000ms);  // the window ends with nothing left to lose
  CHECK(records(h).empty());
}

TEST_CASE("durable restore after a takeover: the re-attach window is longer by the takeover's extra, so a late worker still adopts") {
  Harness h;
  CHECK(h.core.restore(h.now, {running_call(7, 5, true)}, 6000ms) == 0);
  CHECK(h.core.reattach_until() == h.now + 3000ms + 6000ms);  // ping_interval × liveness + extra
  h.advance(4000ms);  // past ping_interval × liveness: without the extra it would be lost
  CHECK(records(h).empty());
  CHECK(h.core.recovering() == 1);
  auto out = old_worker_back(h, {5}, {}, true);
  CHECK(all<SendWorkRequest>(out).empty());  // adopted: not re-run
  CHECK(h.core.recovering() == 0);
  h.advance(10000ms);
  CHECK(records(h).empty());  // nothing lost at the window's end
}

TEST_CASE("durable restore: an answer the worker kept across the restart is asked for (Ack.missing), not re-run") {
  Harness h;
  CHECK(h.core.restore(h.now, {held_call(7, "n", journal::CallState::Running)}) == 0);
  auto out = old_worker_back(h, {}, {5});
  CHECK(all<SendWorkRequest>(out).empty());
  auto acks = all<ReplyToWorker>(out);
  REQUIRE(acks.size() == 1);
  CHECK(std::get<AckReply>(acks[0].body).missing == std::vector<std::uint64_t>{5});
  h.result("old", 5);  // sent again
  CHECK(records(h) == Lines{"Finished 7 NONE"});
}

TEST_CASE("durable restore: an Ack to a Pong the daemon ignores still names the kept answers it waits for (a worker attaching several times)") {
  // The fault run's case: after a restart the C++ worker attached four times at once (one
  // "not attached" reply per Pong it had sent); its Pongs to the earlier attaches' confirming
  // Pings are stale, and their Acks with no `missing` made it forget the answers the next Pong
  // had the daemon adopt — so they never came, the call looked lost and ran again.
  Harness h;
  CHECK(h.core.restore(h.now, {held_call(7, "n", journal::CallState::Running)}) == 0);
  h.local.identity = "local";
  h.attach("old", {Harness::spec("n")}, 2, "new-session", h.local);
  const auto first_confirm = h.last_ping_seq("old");
  h.attach("old", {Harness::spec("n")}, 2, "new-session", h.local);  // again: a new confirming ping
  // The Pong to the first confirming ping is stale now; it lists the kept answer.
  auto stale = [&](std::uint64_t seq) {
    h.core.on_pong(h.now, peer("wp-old"), h.local, "old", seq, "inst-1", {}, {5});
    auto acks = all<ReplyToWorker>(h.take());
    REQUIRE(acks.size() == 1);
    return std::get<AckReply>(acks[0].body);
  };
  CHECK(stale(first_confirm).missing == std::vector<std::uint64_t>{5});  // still waited for: kept
  CHECK(h.core.recovering() == 1);  // a stale Pong decides nothing
  // The valid Pong adopts it and asks for the answer again; a stale one after that still does.
  auto out = old_worker_back(h, {}, {5});
  CHECK(std::get<AckReply>(all<ReplyToWorker>(out)[0].body).missing == std::vector<std::uint64_t>{5});
  CHECK(stale(first_confirm).missing == std::vector<std::uint64_t>{5});
  // A Pong of the previous instance names it too (request ids never repeat across instances).
  h.core.on_pong(h.now, peer("wp-old"), h.local, "old", h.last_ping_seq("old"), "inst-0", {}, {5});
  CHECK(std::get<AckReply>(all<ReplyToWorker>(h.take())[0].body).missing == std::vector<std::uint64_t>{5});
  h.result("old", 5);
  CHECK(records(h) == Lines{"Finished 7 NONE"});
}

TEST_CASE("durable restore: the worker back without the call loses it at once: re-queued if idempotent, else WORKER_LOST") {
  Harness h;
  CHECK(h.core.restore(h.now, {running_call(7, 5, true), running_call(8, 6)}) == 0);
  auto out = old_worker_back(h, {}, {}, true);  // a new process under the same worker id
  CHECK(records(h) == Lines{"Finished 8 WORKER_LOST", "Requeued 7 deaths=1", "Dispatched 7 old attempt=2"});
  auto sent = all<SendWorkRequest>(out);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].attempt == 2);
  CHECK(h.core.recovering() == 0);
}

TEST_CASE("durable restore: a worker that does not come back: at the window's end idempotent calls re-run, others WORKER_LOST naming it") {
  Harness h;
  auto spent = running_call(9, 4, true);
  spent.attempts = 3;  // out of attempts (max_attempts 3)
  CHECK(h.core.restore(h.now, {running_call(7, 5, true), running_call(8, 6), spent}) == 0);
  h.ready("w1", {Harness::spec("n", true)}, 3);
  h.advance(2999ms);
  CHECK(records(h).empty());
  CHECK(h.core.recovering() == 3);
  // A worker with the same id but another identity is not the one that ran them.
  old_worker_back(h, {5}, {}, true, "someone-else");
  CHECK(records(h).empty());
  h.core.on_detach(h.now, peer("wp-old"), h.local, "old");
  h.take();
  auto out = h.advance(1ms);
  CHECK(records(h) == Lines{"Finished 9 WORKER_LOST", "Finished 8 WORKER_LOST", "Requeued 7 deaths=1",
                            "Dispatched 7 w1 attempt=2"});
  CHECK(all<SendWorkRequest>(out).size() == 1);
  CHECK(h.core.recovering() == 0);
  CHECK(h.core.reattach_until() == TimePoint::max());
  // The failures say which worker was lost and why.
  auto failures = h.core.recent_failures("");
  REQUIRE(failures.size() == 2);
  CHECK(failures[0].message.find("worker old did not come back") != std::string::npos);
}

TEST_CASE("durable restore: a call whose deadline passes while it waits ends TIMEOUT; its worker back with it gets Abort") {
  Harness h;
  auto soon = held_call(7, "n", journal::CallState::Running);
  soon.deadline = journal::WallTime{} + 500ms;
  auto gone = held_call(8, "n", journal::CallState::Running);
  gone.request_id = 6;
  gone.deadline = journal::WallTime{} - 1ms;  // passed while musterd was down
  CHECK(h.core.restore(h.now, {soon, gone}) == 0);
  CHECK(records(h) == Lines{"Finished 8 TIMEOUT"});
  h.advance(500ms);
  CHECK(records(h) == Lines{"Finished 7 TIMEOUT"});
  auto out = old_worker_back(h, {5, 6});
  CHECK(all<SendWorkRequest>(out).empty());
  auto aborts = all<SendAbort>(out);
  REQUIRE(aborts.size() == 2);
  CHECK(aborts[0].code == ErrorCode::Timeout);
  CHECK(records(h).empty());
  CHECK(h.core.recovering() == 0);
  CHECK(h.core.list_workers(h.now, "")[0].in_flight == 0);  // nothing of theirs takes a slot
}

TEST_CASE("durable restore: an adopted call whose worker then dies follows the worker-death rules") {
  Harness h;
  CHECK(h.core.restore(h.now, {held_call(7, "n", journal::CallState::Running, true)}) == 0);
  old_worker_back(h, {5}, {}, true);
  for (int i = 0; i < 9; ++i) h.advance(500ms);  // the worker falls silent
  CHECK(records(h) == Lines{"Requeued 7 deaths=1"});
}

TEST_CASE("durable restore: request ids of this instance start above every id the journal holds") {
  CoreConfig cfg = test_config();
  cfg.first_request_id = 100;
  Harness h(cfg);
  auto big = held_call(7, "n", journal::CallState::Running);
  big.request_id = 500;  // an earlier instance gave out more ids than this one's first
  CHECK(h.core.restore(h.now, {big, held_call(8, "n", journal::CallState::Queued)}) == 1);
  h.ready("w1", {Harness::spec("n")});
  auto sent = all<SendWorkRequest>(h.log);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].request_id == 501);
}

TEST_CASE("durable shutdown: queued and running durable calls are left to the journal, without a reply or an Abort") {
  Harness h;
  h.ready("w1", {Harness::spec("n")});
  submit_durable(h, 1, "n");  // runs
  submit_durable(h, 2, "n");  // queued
  h.submit(3, "n");           // queued, not durable
  records(h);
  h.core.begin_shutdown(h.now);
  auto t = terminals(h.take());
  REQUIRE(t.size() == 1);  // only the non-durable one
  CHECK(t[0].request_id == 3);
  CHECK(failure_code(t[0]) == ErrorCode::ShuttingDown);
  auto out = h.advance(2000ms);  // the grace ends with durable call 1 still running
  CHECK(h.core.finished());
  CHECK(terminals(out).empty());
  CHECK(all<SendAbort>(out).empty());
  CHECK(records(h).empty());  // the journal keeps 1 running and 2 queued, as they were
}

TEST_CASE("no_answer_acks: live and late answers get no reply, Attached says so, the client gets one reply") {
  Harness h;
  CHECK(ready_without_acks(h, "w1", "n", 2));
  auto a = all<SendWorkRequest>(h.submit(1, "n", 0, "c1", true))[0].request_id;
  auto b = all<SendWorkRequest>(h.submit(2, "n"))[0].request_id;
  h.core.on_progress(h.now, peer("wp-w1"), h.local, "w1", a, 1, 2, "half");
  auto out = h.take();
  CHECK(all<ReplyToWorker>(out).empty());
  CHECK(all<ReplyToClient>(out).size() == 1);  // the progress still reaches the client
  out = h.result("w1", a);
  CHECK(all<ReplyToWorker>(out).empty());
  CHECK(terminals(out).size() == 1);
  h.core.on_failure(h.now, peer("wp-w1"), h.local, "w1", b, ErrorCode::WorkerError, "boom");
  out = h.take();
  CHECK(all<ReplyToWorker>(out).empty());
  REQUIRE(terminals(out).size() == 1);
  CHECK(failure_code(terminals(out)[0]) == ErrorCode::WorkerError);
  // The same Result again (a duplicate, or one sent again after the first arrived): dropped,
  // still without a reply, and the client hears nothing more.
  out = h.result("w1", a);
  CHECK(all<ReplyToWorker>(out).empty());
  CHECK(terminals(out).empty());
  CHECK(terminals(h.log).size() == 2);
  // A worker the daemon does not know is still refused (it must attach again).
  h.core.on_result(h.now, peer("wp-w9"), h.local, "w9", a, Payload::copy_of(std::vector<std::uint8_t>{1}));
  auto refused = all<ReplyToWorker>(h.take());
  REQUIRE(refused.size() == 1);
  CHECK(std::get<RejectedReply>(refused[0].body).reattach);
}

TEST_CASE("no_answer_acks: a lost Result is named missing by the next Pong's Ack and finishes once when sent again") {
  Harness h;
  ready_without_acks(h, "w1", "n", 2);
  auto lost = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  auto arrived = all<SendWorkRequest>(h.submit(2, "n"))[0].request_id;
  h.result("w1", arrived);  // this one arrives; `lost` never does
  h.advance(1000ms);        // a ping published after both were dispatched
  auto ack = pong_answered(h, "w1", {}, {lost, arrived});
  CHECK(ack.pong_seq == h.last_ping_seq("w1"));
  CHECK(ack.missing == std::vector<std::uint64_t>{lost});  // `arrived` is confirmed: forget it
  CHECK(terminals(h.log).size() == 1);
  // Not re-sent as a WorkRequest (pong_answered checks it), and the request keeps its slot.
  CHECK(h.core.open_requests() == 1);
  // The worker sends the kept answer again: the client gets its one reply.
  auto out = h.result("w1", lost);
  CHECK(terminals(out).size() == 1);
  CHECK(all<ReplyToWorker>(out).empty());
  h.advance(1000ms);
  ack = pong_answered(h, "w1", {}, {lost});
  CHECK(ack.missing.empty());
  CHECK(terminals(h.log).size() == 2);
  CHECK(h.core.open_requests() == 0);
}

TEST_CASE("no_answer_acks: the answered check holds for a pong to a forgotten ping and for another instance's") {
  Harness h;
  ready_without_acks(h, "w1", "n");
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  // A pong to a ping never sent changes nothing, but the daemon still says what it misses.
  h.core.on_pong(h.now, peer("wp-w1"), h.local, "w1", 999999, "inst-1", {}, {id});
  auto r = all<ReplyToWorker>(h.take());
  REQUIRE(r.size() == 1);
  CHECK(std::get<AckReply>(r[0].body).missing == std::vector<std::uint64_t>{id});
  // Request ids never repeat across instances (DURABILITY.md §5), so an id this daemon waits for
  // is its call whatever instance the Pong names (an adopted call keeps the old instance's id):
  // the Ack still names it, or the worker would forget an answer that is still wanted. An id it
  // does not know is not named.
  auto ack = pong_answered(h, "w1", {}, {id, id + 1000}, "inst-0");
  CHECK(ack.missing == std::vector<std::uint64_t>{id});
  CHECK(terminals(h.log).empty());
}

TEST_CASE("no_answer_acks: a timed-out request whose answer was lost frees its slot at the next pong") {
  Harness h;
  ready_without_acks(h, "w1", "n");
  auto id = all<SendWorkRequest>(h.submit(1, "n", 500))[0].request_id;
  h.advance(600ms);  // the deadline passes: Timeout to the client, Abort to the worker
  REQUIRE(terminals(h.log).size() == 1);
  h.advance(400ms);
  auto ack = pong_answered(h, "w1", {}, {id});  // the worker answered; the answer was lost
  CHECK(ack.missing.empty());                    // nobody waits for it any more
  CHECK(h.core.open_requests() == 0);
  // The slot is free again: the next request is dispatched.
  CHECK(all<SendWorkRequest>(h.submit(2, "n")).size() == 1);
}

TEST_CASE("no_answer_acks off (the default, every SDK before it): every answer is Acked, Attached does not claim it") {
  Harness h;
  CHECK_FALSE(ready_without_acks(h, "w1", "n", 1, false));
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  auto acks = all<ReplyToWorker>(h.result("w1", id));
  REQUIRE(acks.size() == 1);
  CHECK_FALSE(std::get<AckReply>(acks[0].body).late);
  acks = all<ReplyToWorker>(h.result("w1", id));
  REQUIRE(acks.size() == 1);
  CHECK(std::get<AckReply>(acks[0].body).late);
}

// ---- idle pongs (PROTOCOL.md §7.3, §7.7): an idle worker's heartbeat costs less ----

namespace {

// Attaches `id` with the given opt-ins and confirms it; returns the Attached reply.
AttachedReply attach_idle(Harness& h, const std::string& id, bool no_answer_acks, bool idle_pongs) {
  AttachEvent ev;
  ev.worker_id = id;
  ev.session = "s1";
  ev.nodes = {Harness::spec("n")};
  ev.no_answer_acks = no_answer_acks;
  ev.idle_pongs = idle_pongs;
  h.core.on_attach(h.now, peer("wp-" + id), h.local, std::move(ev));
  auto replies = all<ReplyToWorker>(h.take());
  REQUIRE(replies.size() == 1);
  auto attached = std::get<AttachedReply>(replies[0].body);
  auto confirm = all<ReplyToWorker>(h.pong(id));
  REQUIRE(confirm.size() == 1);  // the Pong that confirms it is Acked: the worker may wait for it
  CHECK(std::get<AckReply>(confirm[0].body).pong_seq == h.last_ping_seq(id));
  return attached;
}

}  // namespace

TEST_CASE("idle pongs: a no_answer_acks worker's Pong with nothing to be told gets no Ack; others still do") {
  Harness h;
  attach_idle(h, "quiet", true, false);
  attach_idle(h, "acked", false, false);
  h.advance(1000ms);
  CHECK(all<ReplyToWorker>(h.pong("quiet")).empty());
  CHECK(all<ReplyToWorker>(h.pong("acked")).size() == 1);  // without no_answer_acks: as before
  // Holding a request changes nothing: the Ack would still say nothing.
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;
  auto worker = all<SendWorkRequest>(h.log).back().worker_id;
  h.advance(1000ms);
  CHECK(all<ReplyToWorker>(h.pong(worker, {id})).empty() == (worker == "quiet"));
  // A Pong listing answers is Acked (the worker forgets them on that Ack, §7.7).
  if (worker == "quiet") {
    h.result("quiet", id);
    h.advance(1000ms);
    auto ack = pong_answered(h, "quiet", {}, {id});
    CHECK(ack.missing.empty());
  }
  // The silence still counts as hearing from it: both are alive.
  CHECK(h.core.registry().workers().size() == 2);
}

TEST_CASE("idle pongs: granted only to a worker that asks, and only k > 1; its liveness window is liveness + k - 1 pings") {
  auto config = test_config();
  config.idle_pong_every = 3;
  Harness h(config);
  CHECK(attach_idle(h, "asks", true, true).idle_pong_every == 3);
  CHECK(attach_idle(h, "plain", true, false).idle_pong_every == 0);
  // Both silent from now (liveness is judged at each broadcast ping): the plain one is dead
  // once silent for more than 3 s, the idle-pong one once silent for more than 3 + 3 - 1 = 5 s.
  auto alive = [&](const std::string& id) { return h.core.registry().workers().count(id) == 1; };
  for (int i = 0; i < 3; ++i) h.advance(1000ms);
  CHECK(alive("plain"));
  h.advance(1000ms);
  CHECK(!alive("plain"));
  CHECK(alive("asks"));
  h.advance(1000ms);
  CHECK(alive("asks"));
  h.advance(1000ms);
  CHECK(!alive("asks"));

  auto every = test_config();
  every.idle_pong_every = 1;  // --idle-pong-every 1: not granted, the window stays 3 pings
  Harness g(every);
  CHECK(attach_idle(g, "asks", true, true).idle_pong_every == 0);
  for (int i = 0; i < 3; ++i) g.advance(1000ms);
  CHECK(g.core.registry().workers().size() == 1);
  g.advance(1000ms);
  CHECK(g.core.registry().workers().empty());
}

TEST_CASE("idle pongs: a request lost on the way to an idle worker is re-sent at its next Pong, k pings later at most") {
  auto config = test_config();
  config.idle_pong_every = 3;
  Harness h(config);
  attach_idle(h, "w1", true, true);
  auto id = all<SendWorkRequest>(h.submit(1, "n"))[0].request_id;  // lost: never reaches w1
  // w1 holds nothing in its own view: it lets two broadcast pings go, answers the third.
  h.advance(1000ms);
  h.advance(1000ms);
  CHECK(h.core.registry().workers().count("w1") == 1);
  h.advance(1000ms);
  auto out = h.pong("w1", {});
  auto resent = all<SendWorkRequest>(out);
  REQUIRE(resent.size() == 1);
  CHECK(resent[0].request_id == id);
  CHECK(all<ReplyToWorker>(out).empty());
  CHECK(terminals(h.result("w1", id)).size() == 1);
}

// ---- an Abort lost on the way is sent again (PROTOCOL.md §7.4) ------------------------------

TEST_CASE("a worker whose Pong still lists a call that is over gets its Abort again") {
  Harness h;
  h.ready("w1", {Harness::spec("n")}, 2);
  auto out = h.submit(1, "n", 100);  // a deadline of 100 ms
  auto sent = all<SendWorkRequest>(out);
  REQUIRE(sent.size() == 1);
  const auto id = sent[0].request_id;
  out = h.advance(200ms);
  REQUIRE(all<SendAbort>(out).size() == 1);  // the deadline: Abort, Timeout to the caller
  // That Abort was lost (the worker's SUB was reconnecting): its Pong still lists the call.
  auto again = all<SendAbort>(h.pong("w1", {id}));
  REQUIRE(again.size() == 1);
  CHECK(again[0].request_id == id);
  CHECK(again[0].worker_id == "w1");
  // A call that is over and gone (its slot freed), still listed: Abort again too.
  h.pong("w1", {});  // no longer listed: the orphaned call is dropped
  CHECK(all<SendAbort>(h.pong("w1", {id})).size() == 1);
  // An id this instance never gave out (an earlier instance's, below its first): not ours to stop.
  CHECK(all<SendAbort>(h.pong("w1", {id - 1})).empty());
  // A call still running is never aborted by its Pong.
  auto running = all<SendWorkRequest>(h.submit(2, "n")).at(0).request_id;
  CHECK(all<SendAbort>(h.pong("w1", {running})).empty());
}

// Registry (registry.hpp): a worker's `indexed_in` is the node entries it is indexed in, in the
// order of its nodes (the dispatch on each answer reads their queues through it, without a
// lookup); re-declared nodes re-point it, and taken out of the index it holds none.
TEST_CASE("registry: a worker's indexed_in follows its nodes through update and unindex") {
  Registry registry;
  auto spec = [](const std::string& name) {
    NodeSpec s;
    s.name = name;
    return s;
  };
  WorkerEntry entry;
  entry.id = "w1";
  entry.owner.workspace = "ws";
  entry.nodes = {spec("b"), spec("a")};
  WorkerEntry& w = registry.add(std::move(entry));
  REQUIRE(w.indexed_in.size() == 2);
  CHECK(w.indexed_in[0] == registry.node(NodeKey{"ws", "b"}));
  CHECK(w.indexed_in[1] == registry.node(NodeKey{"ws", "a"}));
  registry.update(w, {spec("c"), spec("b")}, 2);
  REQUIRE(w.indexed_in.size() == 2);
  CHECK(w.indexed_in[0] == registry.node(NodeKey{"ws", "c"}));
  CHECK(w.indexed_in[1] == registry.node(NodeKey{"ws", "b"}));
  CHECK(registry.node(NodeKey{"ws", "a"}) == nullptr);  // no worker, nothing queued: dropped
  // (workspace, name) order, found by views as by keys
  CHECK(registry.node("ws", "c") == registry.node(NodeKey{"ws", "c"}));
  CHECK(registry.node("w", "c") == nullptr);
  CHECK(registry.node("ws", "") == nullptr);
  registry.unindex(w);
  CHECK(w.indexed_in.empty());
  CHECK(registry.nodes().empty());
}
