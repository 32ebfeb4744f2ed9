// stream_credit_test.cpp — item streams under a fake clock (PROTOCOL.md §7.8): the credit rules
// of ItemStream alone, then BrokerCore applying them (items forwarded in order, credit clamped
// and published, violations and gaps ending the call, cancel/deadline/worker death mid-stream,
// exactly one terminal reply after every item).
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "broker_core.hpp"
#include "muster/messages.hpp"
#include "stream_credit.hpp"
#include "stream_harness.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;
using namespace stream_test;

namespace {

// ---- ItemStream alone ---------------------------------------------------------------------

TEST_CASE("stream window: 0 items reads no items; the daemon caps and defaults the window") {
  StreamLimits limits;  // 4096 items, 8 MiB, default 4 MiB
  CHECK_FALSE(ItemStream::window_for(0, 1 << 20, limits).has_value());
  CHECK(*ItemStream::window_for(64, 0, limits) == Grant{64, 4u << 20});
  CHECK(*ItemStream::window_for(1u << 30, 1ull << 40, limits) == Grant{4096, 8u << 20});
  CHECK(*ItemStream::window_for(1, 1, limits) == Grant{1, 1});
}

TEST_CASE("stream credit: items are forwarded while seq < items and bytes sent before < bytes") {
  ItemStream s(Grant{2, 100});
  CHECK(s.on_item(0, 60) == ItemVerdict::Forward);
  // 60 < 100: item 1 may go though it takes the stream past 100 bytes (no item is ever stuck)
  CHECK(s.on_item(1, 500) == ItemVerdict::Forward);
  CHECK(s.on_item(2, 1) == ItemVerdict::OverCredit);  // 2 items granted
  CHECK(s.forwarded_items() == 2);
  CHECK(s.forwarded_bytes() == 560);
  // more items granted, but the bytes are used up: still over credit
  REQUIRE(s.on_credit(4, 100).has_value());
  CHECK(s.on_item(2, 1) == ItemVerdict::OverCredit);
  REQUIRE(s.on_credit(4, 600).has_value());
  CHECK(s.on_item(2, 1) == ItemVerdict::Forward);
}

TEST_CASE("stream credit: out-of-order and duplicate seq are told apart and not counted") {
  ItemStream s(Grant{8, 1000});
  CHECK(s.on_item(1, 1) == ItemVerdict::Gap);
  CHECK(s.forwarded_items() == 0);
  CHECK(s.on_item(0, 1) == ItemVerdict::Forward);
  CHECK(s.on_item(0, 1) == ItemVerdict::Duplicate);
  CHECK(s.on_item(5, 1) == ItemVerdict::Gap);
  CHECK(s.forwarded_items() == 1);
  CHECK(s.describe(ItemVerdict::Gap, 5, 1).find("4 item(s)") != std::string::npos);
}

TEST_CASE("stream credit: grants are cumulative; a stale or repeated one is ignored") {
  ItemStream s(Grant{4, 400});
  for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(s.on_item(i, 10) == ItemVerdict::Forward);
  auto g = s.on_credit(6, 440);
  REQUIRE(g.has_value());
  CHECK(*g == Grant{6, 440});
  CHECK_FALSE(s.on_credit(6, 440).has_value());  // repeated
  CHECK_FALSE(s.on_credit(5, 420).has_value());  // stale (lower totals)
  CHECK(s.granted() == Grant{6, 440});
  // each total independently: a higher item count with stale bytes still raises the items
  auto g2 = s.on_credit(7, 10);
  REQUIRE(g2.has_value());
  CHECK(*g2 == Grant{7, 440});
}

TEST_CASE("stream credit: a grant beyond what was forwarded plus one window is clamped") {
  ItemStream s(Grant{4, 400});
  auto g = s.on_credit(1'000'000, 1ull << 40);  // nothing forwarded: the window is all there is
  CHECK_FALSE(g.has_value());
  CHECK(s.granted() == Grant{4, 400});
  REQUIRE(s.on_item(0, 100) == ItemVerdict::Forward);
  g = s.on_credit(UINT64_MAX, UINT64_MAX);
  REQUIRE(g.has_value());
  CHECK(*g == Grant{5, 500});
}

TEST_CASE("stream credit: a caller's grant beyond the clamp reaches the worker as items are forwarded") {
  // The daemon's window (2) is smaller than the caller's (it granted 10 at once): the worker is
  // given the rest as items go through, never more than forwarded + window, and never stalls.
  ItemStream s(Grant{2, 1000});
  CHECK_FALSE(s.on_credit(10, 100000).has_value());  // nothing forwarded: the window is all
  Grant worker = s.granted();
  std::uint64_t sent = 0;
  while (sent < worker.items) {
    REQUIRE(s.on_item(sent, 10) == ItemVerdict::Forward);
    ++sent;
    if (auto g = s.regrant()) worker = *g;
    CHECK(worker.items <= sent + 2);
  }
  CHECK(sent == 10);  // the caller's whole grant, and no more
  CHECK(s.on_item(10, 10) == ItemVerdict::OverCredit);
}

TEST_CASE("stream credit: the grant is published again only while the worker has not used it") {
  ItemStream s(Grant{1, 100});
  CHECK_FALSE(s.republish().has_value());  // the WorkRequest carries the window
  REQUIRE(s.on_item(0, 10) == ItemVerdict::Forward);
  REQUIRE(s.on_credit(2, 110).has_value());
  CHECK(*s.republish() == Grant{2, 110});
  REQUIRE(s.on_item(1, 10) == ItemVerdict::Forward);
  CHECK_FALSE(s.republish().has_value());  // used up: the worker waits for the caller's next grant
}

// ---- BrokerCore applying the rules ------------------------------------------------------------


TEST_CASE("core: the WorkRequest carries the effective window; 0 when the caller reads no items") {
  StreamHarness h;
  h.ready("w1");
  auto out = all<SendWorkRequest>(h.submit(1, 1u << 30, 0));
  REQUIRE(out.size() == 1);
  CHECK(out[0].stream_window_items == 4096);
  CHECK(out[0].stream_window_bytes == (4u << 20));
  h.result("w1", out[0].request_id);
  auto plain = all<SendWorkRequest>(h.submit(2, 0, 1000));
  REQUIRE(plain.size() == 1);
  CHECK(plain[0].stream_window_items == 0);
  CHECK(plain[0].stream_window_bytes == 0);
}

TEST_CASE("core: items within credit are forwarded in order, then exactly one terminal reply") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 3, 1000));
  for (std::uint64_t seq = 0; seq < 3; ++seq) {
    auto out = h.item("w1", id, seq);
    CHECK(all<ReplyToWorker>(out).empty());  // a no_answer_acks worker: no Ack per item
  }
  auto credit = all<SendCredit>(h.credit(1, 5, 2000));  // the caller consumed 2 of 3
  REQUIRE(credit.size() == 1);
  CHECK(credit[0].worker_id == "w1");
  CHECK(credit[0].request_id == id);
  CHECK(credit[0].items == 5);
  CHECK(credit[0].bytes == 1024);  // clamped: 24 bytes forwarded + a window of 1000
  h.item("w1", id, 3);
  h.item("w1", id, 4);
  h.result("w1", id);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "item 1", "item 2", "item 3", "item 4", "result"});
  // nothing after the terminal reply: a late item is dropped
  h.item("w1", id, 5);
  CHECK(terminal_count(h.log) == 1);
  CHECK(caller_saw(h.log).size() == 6);
}

TEST_CASE("core: an item beyond the credit ends the call WORKER_ERROR; the worker gets Rejected and Abort") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 2, 1000));
  h.item("w1", id, 0);
  h.item("w1", id, 1);
  auto out = h.item("w1", id, 2);
  auto rejected = all<ReplyToWorker>(out);
  REQUIRE(rejected.size() == 1);
  CHECK(std::get<RejectedReply>(rejected[0].body).code == ErrorCode::BadMessage);
  auto aborts = all<SendAbort>(out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].code == ErrorCode::BadMessage);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "item 1", "failure WORKER_ERROR"});
  auto fail = all<ReplyToClient>(out);
  REQUIRE(fail.size() == 1);
  CHECK(std::get<FailureBody>(fail[0].body).message.find("beyond its credit") != std::string::npos);
  // the worker's own answer afterwards is late: still one terminal reply
  h.result("w1", id);
  CHECK(terminal_count(h.log) == 1);
}

TEST_CASE("core: a duplicate seq is refused as a protocol violation") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 8, 1000));
  h.item("w1", id, 0);
  h.item("w1", id, 0);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "failure WORKER_ERROR"});
}

TEST_CASE("core: a seq gap (items lost on the way) ends the call WORKER_LOST") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 8, 1000));
  h.item("w1", id, 0);
  auto out = h.item("w1", id, 2);
  CHECK(all<SendAbort>(out).size() == 1);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "failure WORKER_LOST"});
}

TEST_CASE("core: an item for a call whose caller reads none is a protocol violation") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 0));
  h.item("w1", id, 0);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"failure WORKER_ERROR"});
}

TEST_CASE("core: a caller window larger than the daemon's: the rest of its grant is metered out, no stall") {
  auto cfg = stream_config();
  cfg.streams.max_items = 2;
  StreamHarness h(cfg);
  h.ready("w1");
  auto sent = all<SendWorkRequest>(h.submit(1, 64, 1000));
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].stream_window_items == 2);
  auto id = sent[0].request_id;
  // The worker sends whenever its grant allows; the caller, believing its window is 64, sends
  // no Credit before it has consumed 32.
  std::uint64_t grant = 2, seq = 0;
  while (seq < grant) {
    for (auto& c : all<SendCredit>(h.item("w1", id, seq++))) grant = std::max(grant, c.items);
    CHECK(grant <= seq + 2);
  }
  CHECK(seq == 64);
  for (auto& c : all<SendCredit>(h.credit(1, 64 + 40, 1u << 20))) grant = std::max(grant, c.items);  // 40 more
  while (seq < grant) {
    for (auto& c : all<SendCredit>(h.item("w1", id, seq++))) grant = std::max(grant, c.items);
    CHECK(grant <= seq + 2);
  }
  CHECK(seq == 104);
  h.result("w1", id);
  CHECK(caller_saw(h.log).back() == "result");
  CHECK(caller_saw(h.log).size() == 105);
}

TEST_CASE("core: a stale grant is not published; a Credit for a call not open or another stream is ignored") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 2, 1000));
  h.item("w1", id, 0);
  CHECK(all<SendCredit>(h.credit(1, 3, 1008)).size() == 1);
  CHECK(all<SendCredit>(h.credit(1, 3, 1008)).empty());  // repeated
  CHECK(all<SendCredit>(h.credit(1, 2, 500)).empty());   // stale
  CHECK(h.take().empty());
  h.core.on_credit(h.now, peer("c1"), CreditEvent{1, 1, 100, 100});  // stream 1: not items
  h.core.on_credit(h.now, peer("c1"), CreditEvent{99, 0, 100, 100});  // no such request
  h.core.on_credit(h.now, peer("c2"), CreditEvent{1, 0, 100, 100});  // another connection's id
  CHECK(h.take().empty());
}

TEST_CASE("core: a grant not used up is published again on the worker's pong") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 1, 1000));
  h.item("w1", id, 0);
  REQUIRE(all<SendCredit>(h.credit(1, 2, 2000)).size() == 1);
  h.advance(1000ms);
  auto again = all<SendCredit>(h.pong("w1", {id}));
  REQUIRE(again.size() == 1);  // the first one may have been lost on PUB
  CHECK(again[0].items == 2);
  h.item("w1", id, 1);
  h.advance(1000ms);
  CHECK(all<SendCredit>(h.pong("w1", {id})).empty());  // used up
}

TEST_CASE("core: cancel mid-stream: Abort to the worker, CANCELLED once, later items dropped") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 8, 1000));
  h.item("w1", id, 0);
  h.core.on_cancel(h.now, peer("c1"), 1);
  auto out = h.take();
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].code == ErrorCode::Cancelled);
  h.item("w1", id, 1);
  CHECK(all<SendCredit>(h.credit(1, 100, 100000)).empty());  // over: not forwarded
  h.result("w1", id);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "failure CANCELLED"});
}

TEST_CASE("core: deadline mid-stream: TIMEOUT once, Abort to the worker, later items dropped") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(h.submit(1, 8, 1000, false, 500));
  h.item("w1", id, 0);
  auto out = h.advance(600ms);
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].code == ErrorCode::Timeout);
  h.item("w1", id, 1);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "failure TIMEOUT"});
}

TEST_CASE("core: worker death before any item: an idempotent call runs again from seq 0") {
  StreamHarness h;
  h.ready("w1", true);
  auto id = dispatched_id(h.submit(1, 4, 1000));
  h.ready("w2", true);
  std::vector<SendWorkRequest> rerun;
  for (int i = 0; i < 4 && rerun.empty(); ++i) {
    h.advance(1000ms);
    h.pong("w2");
    for (auto& s : all<SendWorkRequest>(h.log))
      if (s.worker_id == "w2") rerun.push_back(s);
  }
  REQUIRE(rerun.size() == 1);
  CHECK(rerun[0].request_id == id);
  CHECK(rerun[0].stream_window_items == 4);
  h.item("w2", id, 0);
  h.result("w2", id);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "result"});
}

TEST_CASE("core: worker death after an item: WORKER_LOST even for an idempotent node, never a re-run") {
  StreamHarness h;
  h.ready("w1", true);
  auto id = dispatched_id(h.submit(1, 4, 1000));
  h.ready("w2", true);
  h.item("w1", id, 0);
  h.item("w1", id, 1);
  for (int i = 0; i < 4; ++i) {
    h.advance(1000ms);
    h.pong("w2");
  }
  for (auto& s : all<SendWorkRequest>(h.log)) CHECK(s.worker_id == "w1");
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "item 1", "failure WORKER_LOST"});
  auto failures = all<ReplyToClient>(h.log);
  CHECK(std::get<FailureBody>(failures.back().body).message.find("after 2 item(s)") != std::string::npos);
}

TEST_CASE("core: a streaming call its worker's pongs stop listing is lost at once, not re-sent") {
  StreamHarness h;
  h.ready("w1", true);
  auto id = dispatched_id(h.submit(1, 4, 1000));
  h.item("w1", id, 0);
  h.advance(1000ms);
  auto out = h.pong("w1", {});  // the worker no longer lists it (it lost it)
  CHECK(all<SendWorkRequest>(out).empty());
  CHECK(caller_saw(h.log) == std::vector<std::string>{"item 0", "failure WORKER_LOST"});
}

TEST_CASE("core: durable + stream is refused INVALID_REQUEST, whether asked or the node is durable") {
  StreamHarness h;
  h.ready("w1");
  h.submit(1, 4, 0, /*durable=*/true);
  CHECK(caller_saw(h.log) == std::vector<std::string>{"failure INVALID_REQUEST"});
  StreamHarness d;
  d.ready("w1", false, /*durable=*/true);
  d.submit(1, 4);
  CHECK(caller_saw(d.log) == std::vector<std::string>{"failure INVALID_REQUEST"});
  auto f = all<ReplyToClient>(d.log);
  CHECK(std::get<FailureBody>(f.back().body).message.find("durable calls do not stream") != std::string::npos);
}

}  // namespace
