// bridge_uplink_events.cpp — tests for what the uplink does with each WebSocket event: serve,
// hold while its node's registration is on its way, ignore; caps, expiry, duplicate uuids.
// The node statuses come from a real UplinkRegistry driven as the registrar drives it.
#include <doctest/doctest.h>

#include "muster/bridge/uplink_events.hpp"

using namespace muster;
using namespace muster::bridge;
using Kind = EventAction::Kind;

namespace {
RemoteEvent ev(std::string node, std::string uuid, int x = 0) { return {std::move(node), Json{{"x", x}}, std::move(uuid)}; }

// "kind:uuid" per action, to compare whole results at once.
std::vector<std::string> brief(const std::vector<EventAction>& actions) {
  std::vector<std::string> out;
  for (auto& a : actions) {
    const char* k = a.kind == Kind::Serve ? "serve" : a.kind == Kind::Hold ? "hold" : a.kind == Kind::Ignore ? "ignore" : "dup";
    out.push_back(std::string(k) + ":" + a.event.uuid);
  }
  return out;
}
using V = std::vector<std::string>;

struct Fixture {
  UplinkRegistry reg{{.patterns = {}, .interval_ms = 60000, .server_ttl_ms = 600000, .rejected_retry_ms = 600000}};
  UplinkEvents events{{.max_held = 5, .max_held_per_node = 3, .max_hold_ms = 30000}};
  Fixture() { reg.update({{"sleep", {"ms"}, {"slept_ms"}}, {"hello", {"name"}, {"greeting"}}, {"echo", {}, {}}}, 0); }
  std::vector<EventAction> event(RemoteEvent e, std::int64_t now) {
    auto status = reg.status(e.node, now);
    return events.on_event(std::move(e), status, now);
  }
  std::vector<EventAction> settle(const std::string& node, std::int64_t now) {
    return events.settle(node, reg.status(node, now), now);
  }
};
}  // namespace

TEST_CASE("bridge uplink events: held while the first registration is on its way, then served in order") {
  Fixture f;
  f.reg.on_registering("sleep");
  CHECK(f.reg.status("sleep", 10).registering);
  CHECK(brief(f.event(ev("sleep", "u-1", 1), 10)) == V{"hold:u-1"});
  CHECK(brief(f.event(ev("sleep", "u-2", 2), 20)) == V{"hold:u-2"});
  CHECK(f.events.held() == 2);
  CHECK(f.settle("sleep", 25).empty());  // still on its way: still held

  CHECK(f.reg.on_registered("sleep", 40));
  CHECK_FALSE(f.reg.status("sleep", 40).registering);
  auto served = f.settle("sleep", 50);
  REQUIRE(brief(served) == V{"serve:u-1", "serve:u-2"});
  CHECK(served[0].outputs == V{"slept_ms"});
  CHECK(served[0].event.inputs == Json{{"x", 1}});  // the inputs were kept
  CHECK(served[0].held_ms == 40);
  CHECK(served[1].held_ms == 30);
  CHECK(f.events.held() == 0);
  CHECK(f.events.in_flight() == 2);
  CHECK(f.settle("sleep", 60).empty());  // exactly once

  // Served now that it is registered, not held; answered uuids may come again.
  auto now = f.event(ev("sleep", "u-3"), 70);
  CHECK(brief(now) == V{"serve:u-3"});
  CHECK(now[0].held_ms == -1);
  f.events.answered("u-1");
  CHECK(f.events.in_flight() == 2);
}

TEST_CASE("bridge uplink events: an event after the registration succeeded comes after the held ones") {
  // The registrar records the success before the uplink settles the held events: an event
  // arriving in between must not overtake them.
  Fixture f;
  f.reg.on_registering("sleep");
  f.event(ev("sleep", "u-1"), 0);
  f.reg.on_registered("sleep", 5);
  CHECK(brief(f.event(ev("sleep", "u-2"), 6)) == V{"serve:u-1", "serve:u-2"});
  CHECK(f.settle("sleep", 7).empty());
}

TEST_CASE("bridge uplink events: held then refused or failed: ignored, with the reason") {
  Fixture f;
  f.reg.on_registering("echo");
  f.reg.on_registering("hello");
  CHECK(brief(f.event(ev("echo", "u-e"), 0)) == V{"hold:u-e"});
  CHECK(brief(f.event(ev("hello", "u-h"), 0)) == V{"hold:u-h"});

  f.reg.on_rejected("echo", "At least one output required", 100);
  auto refused = f.settle("echo", 100);
  REQUIRE(brief(refused) == V{"ignore:u-e"});
  CHECK(refused[0].why == "held 100 ms; the server refused its registration: At least one output required");
  CHECK(refused[0].held_ms == 100);

  f.reg.on_register_failed("hello");
  auto failed = f.settle("hello", 200);
  REQUIRE(brief(failed) == V{"ignore:u-h"});
  CHECK(failed[0].why == "held 200 ms; its registration failed");
  CHECK(f.events.held() == 0);
  CHECK(f.events.in_flight() == 0);

  // Not registered and no request on its way: ignored at once, as ever.
  auto later = f.event(ev("echo", "u-e2"), 300);
  REQUIRE(brief(later) == V{"ignore:u-e2"});
  CHECK(later[0].why == "not registered by this uplink");
  CHECK(later[0].held_ms == -1);
  CHECK(brief(f.event(ev("unknown", "u-x"), 300)) == V{"ignore:u-x"});
}

TEST_CASE("bridge uplink events: a failure recorded before the uplink settles ignores the held ones first") {
  Fixture f;
  f.reg.on_registering("hello");
  f.event(ev("hello", "u-1"), 0);
  f.reg.on_register_failed("hello");
  CHECK(brief(f.event(ev("hello", "u-2"), 10)) == V{"ignore:u-1", "ignore:u-2"});
  // A retry on its way holds again.
  f.reg.on_registering("hello");
  CHECK(brief(f.event(ev("hello", "u-3"), 20)) == V{"hold:u-3"});
}

TEST_CASE("bridge uplink events: holding is capped per node and in all") {
  Fixture f;  // at most 3 per node, 5 in all
  f.reg.on_registering("sleep");
  f.reg.on_registering("hello");
  for (auto u : {"s1", "s2", "s3"}) CHECK(brief(f.event(ev("sleep", u), 0)) == V{std::string("hold:") + u});
  auto over = f.event(ev("sleep", "s4"), 0);
  REQUIRE(brief(over) == V{"ignore:s4"});
  CHECK(over[0].why == "its registration is on its way but 3 of its events are held already (the most for one node)");
  CHECK(brief(f.event(ev("hello", "h1"), 0)) == V{"hold:h1"});
  CHECK(brief(f.event(ev("hello", "h2"), 0)) == V{"hold:h2"});
  auto full = f.event(ev("hello", "h3"), 0);
  REQUIRE(brief(full) == V{"ignore:h3"});
  CHECK(full[0].why == "its registration is on its way but 5 events are held already (the most in all)");
  CHECK(f.events.held() == 5);

  // Settling one node frees its places.
  f.reg.on_registered("sleep", 1);
  CHECK(brief(f.settle("sleep", 1)) == V{"serve:s1", "serve:s2", "serve:s3"});
  CHECK(brief(f.event(ev("hello", "h3"), 2)) == V{"hold:h3"});
}

TEST_CASE("bridge uplink events: a held event waits at most max_hold_ms") {
  Fixture f;
  CHECK_FALSE(f.events.next_expiry().has_value());
  f.reg.on_registering("sleep");
  f.reg.on_registering("hello");
  f.event(ev("sleep", "u-1"), 1000);
  f.event(ev("hello", "u-2"), 2000);
  f.event(ev("sleep", "u-3"), 3000);
  CHECK(f.events.next_expiry() == std::optional<std::int64_t>(31000));
  CHECK(f.events.expire(30999).empty());
  auto expired = f.events.expire(32000);
  REQUIRE(brief(expired) == V{"ignore:u-1", "ignore:u-2"});
  CHECK(expired[0].why == "held 31000 ms, the longest an event waits for its node's registration");
  CHECK(expired[1].held_ms == 30000);
  CHECK(f.events.next_expiry() == std::optional<std::int64_t>(33000));
  // The survivor is still served when the registration succeeds; the expired one is gone.
  f.reg.on_registered("sleep", 32500);
  CHECK(brief(f.settle("sleep", 32500)) == V{"serve:u-3"});
  CHECK_FALSE(f.events.next_expiry().has_value());
}

TEST_CASE("bridge uplink events: a uuid held or in flight is a duplicate") {
  Fixture f;
  f.reg.on_registering("sleep");
  CHECK(brief(f.event(ev("sleep", "u-1", 1), 0)) == V{"hold:u-1"});
  CHECK(brief(f.event(ev("sleep", "u-1", 2), 1)) == V{"dup:u-1"});
  CHECK(f.events.held() == 1);
  // The same uuid for a node that is served does not overtake the held one.
  f.reg.on_registered("hello", 1);
  CHECK(brief(f.event(ev("hello", "u-1"), 2)) == V{"dup:u-1"});

  f.reg.on_registered("sleep", 3);
  auto served = f.settle("sleep", 3);
  REQUIRE(brief(served) == V{"serve:u-1"});
  CHECK(served[0].event.inputs == Json{{"x", 1}});  // the first one
  // In flight now: repeated, held or not, it is a duplicate until its answer is sent.
  CHECK(brief(f.event(ev("sleep", "u-1"), 4)) == V{"dup:u-1"});
  f.reg.on_registering("hello");  // a refresh on its way changes nothing: hello is registered
  CHECK(brief(f.event(ev("hello", "u-1"), 4)) == V{"dup:u-1"});
  f.events.answered("u-1");
  CHECK(brief(f.event(ev("sleep", "u-1"), 5)) == V{"serve:u-1"});
}

TEST_CASE("bridge uplink events: stopping ignores what is held") {
  Fixture f;
  f.reg.on_registering("sleep");
  f.event(ev("sleep", "u-1"), 0);
  f.event(ev("sleep", "u-2"), 10);
  auto dropped = f.events.drop_held("stopping", 50);
  REQUIRE(brief(dropped) == V{"ignore:u-1", "ignore:u-2"});
  CHECK(dropped[1].why == "held 40 ms; stopping");
  CHECK(f.events.held() == 0);
  f.reg.on_registered("sleep", 60);
  CHECK(f.settle("sleep", 60).empty());
}

TEST_CASE("bridge uplink registry: a registration on its way") {
  Fixture f;
  f.reg.on_registering("sleep");
  CHECK(f.reg.status("sleep", 0).registering);
  CHECK_FALSE(f.reg.status("sleep", 0).outputs.has_value());
  CHECK_FALSE(f.reg.status("hello", 0).registering);
  // A node that leaves the broker while its request is on its way is kept until it is answered.
  f.reg.update({}, 10);
  CHECK(f.reg.status("sleep", 10).registering);
  CHECK(f.reg.on_registered("sleep", 20));
  CHECK(f.reg.status("sleep", 20).outputs == std::optional<V>(V{"slept_ms"}));
  f.reg.on_registering("echo");  // echo was forgotten with the update: nothing to mark
  CHECK_FALSE(f.reg.status("echo", 20).registering);

  f.reg.update({{"echo", {}, {}}}, 30);
  f.reg.on_registering("echo");
  f.reg.on_rejected("echo", "At least one output required", 40);
  auto s = f.reg.status("echo", 40);
  CHECK_FALSE(s.registering);
  CHECK(s.refusal == "At least one output required");
  f.reg.on_registering("echo");
  f.reg.on_register_failed("echo");
  CHECK(f.reg.status("echo", 50).refusal.empty());  // the last attempt was not a refusal
  CHECK_FALSE(f.reg.status("echo", 50).registering);
}
