// watchers_test.cpp — pushed events (Watch) through the broker core, under a fake clock: the
// snapshot then the deltas in order, tenant isolation, own calls only, the bounded backlog
// (Overflow, then a fresh snapshot), and each watch's one terminal reply.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "broker_core.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

Peer peer(const std::string& id) { return Peer{id, false, ""}; }

Caller in(const std::string& workspace, const std::string& identity = "id-1", const std::string& name = "ada") {
  return Caller{identity, name, workspace, "client"};
}

struct Seen {
  std::uint64_t request_id = 0;
  std::uint64_t seq = 0;
  WatchEventKind kind{};
  std::string what;  // the node / worker / call it is about, and its state
};

struct Harness {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  BrokerCore core;
  std::vector<std::uint64_t> pings;  // seqs of the confirming pings, newest last

  explicit Harness(std::size_t backlog = 1024) : core(config(backlog), now) { core.actions().clear(); }

  static CoreConfig config(std::size_t backlog) {
    CoreConfig c;
    c.instance = "inst-1";
    c.watch_backlog = backlog;
    c.no_worker_grace = 0ms;
    return c;
  }

  // The turn ends: what the core would send now.
  std::vector<Action> turn() {
    core.publish_watch_events(now);
    std::vector<Action> out;
    out.swap(core.actions());
    for (auto& a : out)
      if (auto* p = std::get_if<SendPing>(&a)) pings.push_back(p->seq);
    return out;
  }

  void attach(const std::string& id, std::vector<std::string> nodes, const Caller& who,
              std::uint32_t capacity = 1) {
    AttachEvent ev;
    ev.worker_id = id;
    ev.session = "s1";
    ev.capacity = capacity;
    for (auto& n : nodes) {
      NodeSpec s;
      s.name = n;
      ev.nodes.push_back(s);
    }
    core.on_attach(now, peer("wp-" + id), who, std::move(ev));
  }
  // Its Pong to the newest ping (call after the turn of its Attach).
  void confirm(const std::string& id, const Caller& who) {
    core.on_pong(now, peer("wp-" + id), who, id, pings.back(), "inst-1", {});
  }
  void detach(const std::string& id, const Caller& who) { core.on_detach(now, peer("wp-" + id), who, id); }
  void submit(std::uint64_t rid, const std::string& node, const Caller& who, const std::string& client = "c1") {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = node;
    core.on_submit(now, peer(client), who, std::move(ev));
  }
  void watch(std::uint64_t rid, const Caller& who, WatchScope scope, const std::string& client = "w") {
    core.on_watch(now, peer(client), who, rid, scope);
  }
};

std::string describe(const WatchEventBody& e) {
  if (!e.content) return "";
  auto& c = *e.content;
  if (e.kind == WatchEventKind::Snapshot) {
    std::string out = "nodes:";
    for (auto& n : c.nodes) out += n.spec.name + ",";
    out += " workers:";
    for (auto& w : c.workers) out += w.worker_id + ",";
    out += " calls:";
    for (auto& k : c.calls) out += std::to_string(k.request_id) + ",";
    return out;
  }
  if (!c.nodes.empty()) return c.nodes[0].spec.name + " workers=" + std::to_string(c.nodes[0].workers);
  if (!c.workers.empty()) return c.workers[0].worker_id + " " + c.workers[0].state;
  if (!c.calls.empty())
    return std::to_string(c.calls[0].request_id) + " state=" + std::to_string(static_cast<int>(c.calls[0].state)) +
           " code=" + std::to_string(static_cast<int>(c.calls[0].code));
  return "";
}

// The watch events among `actions`, to `client`.
std::vector<Seen> events(const std::vector<Action>& actions, const std::string& client = "w") {
  std::vector<Seen> out;
  for (auto& a : actions)
    if (auto* r = std::get_if<ReplyToClient>(&a); r && r->peer->routing_id == client)
      if (auto* e = std::get_if<WatchEventBody>(&r->body))
        out.push_back(Seen{r->request_id, e->seq, e->kind, describe(*e)});
  return out;
}

std::vector<FailureBody> failures(const std::vector<Action>& actions, const std::string& client = "w") {
  std::vector<FailureBody> out;
  for (auto& a : actions)
    if (auto* r = std::get_if<ReplyToClient>(&a); r && r->peer->routing_id == client)
      if (auto* f = std::get_if<FailureBody>(&r->body)) out.push_back(*f);
  return out;
}

std::vector<WatchEventKind> kinds(const std::vector<Seen>& seen) {
  std::vector<WatchEventKind> out;
  for (auto& s : seen) out.push_back(s.kind);
  return out;
}

using K = WatchEventKind;

}  // namespace

namespace doctest {
template <>
struct StringMaker<std::vector<WatchEventKind>> {
  static String convert(const std::vector<WatchEventKind>& v) {
    std::string out = "[";
    for (auto k : v) out += std::to_string(static_cast<int>(k)) + " ";
    return (out + "]").c_str();
  }
};
}  // namespace doctest

TEST_CASE("a watch gets a snapshot, then each change of its workspace in order, seq without gaps") {
  Harness h;
  auto ws = in("A");
  h.attach("w0", {"old"}, ws);
  h.watch(1, ws, {true, true, false});
  auto first = events(h.turn());
  REQUIRE(first.size() == 1);
  CHECK(first[0].kind == K::Snapshot);
  CHECK(first[0].seq == 1);
  CHECK(first[0].what == "nodes:old, workers:w0, calls:");

  h.attach("w1", {"n"}, ws);
  auto joined = events(h.turn());
  REQUIRE(kinds(joined) == std::vector<K>{K::WorkerJoined, K::NodeAdded});
  CHECK(joined[0].what == "w1 confirming");
  CHECK(joined[1].what == "n workers=1");

  h.confirm("w1", ws);
  auto ready = events(h.turn());
  REQUIRE(kinds(ready) == std::vector<K>{K::WorkerChanged});
  CHECK(ready[0].what == "w1 ready");

  h.attach("w2", {"n"}, ws);  // a second worker of n: n changed
  auto second = events(h.turn());
  REQUIRE(kinds(second) == std::vector<K>{K::WorkerJoined, K::NodeChanged});
  CHECK(second[1].what == "n workers=2");

  h.detach("w1", ws);
  h.detach("w2", ws);
  auto left = events(h.turn());
  REQUIRE(kinds(left) == std::vector<K>{K::WorkerLeft, K::WorkerLeft, K::NodeRemoved});
  CHECK(left[2].what == "n workers=0");

  // seq: 1, 2, 3, ... over all of them
  std::uint64_t expect = 1;
  for (auto* batch : {&first, &joined, &ready, &second, &left})
    for (auto& e : *batch) CHECK(e.seq == expect++);

  // Load is not a change: a call dispatched and answered moves nothing.
  h.attach("w3", {"m"}, ws);
  (void)h.turn();
  h.confirm("w3", ws);
  (void)h.turn();
  h.submit(5, "m", ws);
  CHECK(events(h.turn()).empty());
}

TEST_CASE("a watcher never sees another workspace's nodes, workers or calls") {
  Harness h;
  auto a = in("A"), b = in("B", "id-2", "bob");
  h.attach("wb0", {"secret"}, b);
  h.watch(1, a, {true, true, true});
  auto snap = events(h.turn());
  REQUIRE(snap.size() == 1);
  CHECK(snap[0].what == "nodes: workers: calls:");

  h.attach("wb1", {"secret2"}, b);
  CHECK(events(h.turn()).empty());
  h.confirm("wb1", b);
  h.submit(7, "secret2", b, "cb");
  h.detach("wb0", b);
  h.detach("wb1", b);
  CHECK(events(h.turn()).empty());

  // Same names in A are A's own: seen.
  h.attach("wa", {"secret"}, a);
  CHECK(kinds(events(h.turn())) == std::vector<K>{K::WorkerJoined, K::NodeAdded});
}

TEST_CASE("a watch of calls sees only its caller's own calls, queued, running, finished") {
  Harness h;
  auto me = in("A"), colleague = in("A", "id-9", "eve");
  h.attach("w1", {"n"}, me);
  (void)h.turn();
  h.confirm("w1", me);
  h.submit(10, "n", me, "c1");  // running on w1 before the watch opened
  h.watch(1, me, {false, false, true});
  auto snap = events(h.turn());
  REQUIRE(snap.size() == 1);
  CHECK(snap[0].what == "nodes: workers: calls:10,");

  h.submit(11, "n", me, "c2");         // w1 is busy: queued
  h.submit(12, "n", colleague, "c3");  // someone else's: never shown
  auto queued = events(h.turn());
  REQUIRE(queued.size() == 1);
  CHECK(queued[0].what == "11 state=0 code=0");

  // w1 answers call 10 (the daemon's request 1): it finishes, and 11 runs.
  h.core.on_result(h.now, peer("wp-w1"), me, "w1", 1, Payload{});
  auto after = events(h.turn());
  REQUIRE(after.size() == 2);
  CHECK(after[0].what == "10 state=3 code=0");  // Finished, a Result
  CHECK(after[1].what == "11 state=1 code=0");  // Running

  h.core.on_cancel(h.now, peer("c2"), 11);
  auto cancelled = events(h.turn());
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].what == "11 state=3 code=4");  // Finished, Cancelled
}

TEST_CASE("a watcher that does not read: events wait, in order, up to the backlog") {
  Harness h(8);
  auto ws = in("A");
  h.watch(1, ws, {true, true, false});
  (void)h.turn();
  auto conn = BrokerCore::connection_key(peer("w"));
  h.core.on_client_backlog(conn, 3, 300);  // the socket loop holds 3 unsent replies for it
  h.attach("w1", {"n"}, ws);
  CHECK(events(h.turn()).empty());  // held here
  h.detach("w1", ws);
  CHECK(events(h.turn()).empty());
  h.core.on_client_backlog(conn, 0, 0);
  CHECK(h.core.watchers().ready());
  auto late = events(h.turn());
  CHECK(kinds(late) == std::vector<K>{K::WorkerJoined, K::NodeAdded, K::WorkerLeft, K::NodeRemoved});
  CHECK(late.front().seq == 2);
  CHECK_FALSE(h.core.watchers().ready());
}

TEST_CASE("past the backlog a watcher gets Overflow then a fresh snapshot, never a silent gap") {
  Harness h(4);
  auto ws = in("A");
  h.watch(1, ws, {true, true, false});
  h.watch(2, ws, {true, true, false}, "reader");  // reads: unaffected
  (void)h.turn();
  auto conn = BrokerCore::connection_key(peer("w"));
  h.core.on_client_backlog(conn, 1, 100);
  for (int i = 0; i < 5; ++i) {
    h.attach("w" + std::to_string(i), {"n" + std::to_string(i)}, ws);
    auto out = h.turn();
    CHECK(events(out).empty());
    CHECK(events(out, "reader").size() == 2);
  }
  h.detach("w0", ws);
  (void)h.turn();
  CHECK(h.core.watchers().overflows() == 1);
  h.core.on_client_backlog(conn, 0, 0);
  auto back = events(h.turn());
  REQUIRE(kinds(back) == std::vector<K>{K::Overflow, K::Snapshot});
  CHECK(back[0].seq == 2);
  CHECK(back[1].seq == 3);
  CHECK(back[1].what == "nodes:n1,n2,n3,n4, workers:w1,w2,w3,w4, calls:");
  // and deltas again after it
  h.detach("w1", ws);
  auto next = events(h.turn());
  REQUIRE(kinds(next) == std::vector<K>{K::WorkerLeft, K::NodeRemoved});
  CHECK(next[0].seq == 4);
}

TEST_CASE("Cancel ends a watch with exactly one Failure{Cancelled}, and nothing after it") {
  Harness h;
  auto ws = in("A");
  h.watch(1, ws, {true, false, false});
  (void)h.turn();
  h.core.on_cancel(h.now, peer("w"), 1);
  auto out = h.turn();
  auto f = failures(out);
  REQUIRE(f.size() == 1);
  CHECK(f[0].code == ErrorCode::Cancelled);
  h.attach("w1", {"n"}, ws);
  h.core.on_cancel(h.now, peer("w"), 1);  // not open any more: ignored
  out = h.turn();
  CHECK(events(out).empty());
  CHECK(failures(out).empty());
  CHECK(h.core.watchers().size() == 0);
}

TEST_CASE("a Cancel on behalf of another workspace leaves the watch alone") {
  Harness h;
  h.watch(1, in("A"), {true, false, false});
  (void)h.turn();
  std::string other = "B";
  h.core.on_cancel(h.now, peer("w"), 1, &other);
  CHECK(failures(h.turn()).empty());
  CHECK(h.core.watchers().size() == 1);
}

TEST_CASE("a watch ends without a reply when its connection is gone, and at shutdown with one") {
  Harness h;
  auto ws = in("A");
  h.watch(1, ws, {true, false, false});
  h.watch(2, ws, {true, false, false}, "other");
  (void)h.turn();
  h.core.on_client_gone(BrokerCore::connection_key(peer("w")));
  h.attach("w1", {"n"}, ws);
  auto out = h.turn();
  CHECK(events(out).empty());
  CHECK(failures(out).empty());
  CHECK(events(out, "other").size() == 1);
  CHECK(h.core.watchers().size() == 1);

  h.core.begin_shutdown(h.now);
  auto f = failures(h.turn(), "other");
  REQUIRE(f.size() == 1);
  CHECK(f[0].code == ErrorCode::ShuttingDown);
  CHECK(h.core.watchers().size() == 0);
}

TEST_CASE("a Watch asking for nothing, or under an open request id, is refused") {
  Harness h;
  auto ws = in("A");
  h.watch(1, ws, {false, false, false});
  auto f = failures(h.turn());
  REQUIRE(f.size() == 1);
  CHECK(f[0].code == ErrorCode::InvalidRequest);
  h.watch(2, ws, {true, false, false});
  h.watch(2, ws, {true, false, false});
  f = failures(h.turn());
  REQUIRE(f.size() == 1);
  CHECK(f[0].code == ErrorCode::InvalidRequest);
  h.submit(2, "n", ws, "w");  // a Submit under the watch's id
  f = failures(h.turn());
  REQUIRE(f.size() == 1);
  CHECK(f[0].code == ErrorCode::InvalidRequest);
  CHECK(h.core.watchers().size() == 1);
}
