// client_outbox_test.cpp — ClientOutbox: per-connection order, what may be dropped, and when.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "client_outbox.hpp"

using namespace muster::broker;

namespace {

// A fake set of client pipes: each connection takes `room[key]` more messages, then is Full;
// a connection not in `room` is Gone.
struct Pipes {
  std::map<std::string, int> room;
  std::map<std::string, std::vector<std::string>> got;
  SendOutcome operator()(const std::string& key, std::string& m) {
    auto it = room.find(key);
    if (it == room.end()) return SendOutcome::Gone;
    if (it->second == 0) return SendOutcome::Full;
    --it->second;
    got[key].push_back(m);
    m.clear();  // the message is consumed only when sent
    return SendOutcome::Sent;
  }
};

// Messages are "key:text" so the send function knows the connection.
auto sender(Pipes& p) {
  return [&p](std::string& m) {
    auto key = m.substr(0, m.find(':'));
    std::string copy = m;
    auto outcome = p(key, copy);
    if (outcome == SendOutcome::Sent) m.clear();
    return outcome;
  };
}

}  // namespace

TEST_CASE("outbox: a full pipe keeps replies in order and retries deliver them; other connections are not held up") {
  ClientOutbox<std::string> box(10);
  Pipes p;
  p.room = {{"a", 1}, {"b", 100}};
  box.deliver("a", "a:1", 3, ReplyKind::OfRequest, sender(p));
  box.deliver("a", "a:2", 3, ReplyKind::OfRequest, sender(p));  // full: kept
  p.room["a"] = 5;
  box.deliver("a", "a:3", 3, ReplyKind::OfRequest, sender(p));  // room now, but behind a:2
  box.deliver("b", "b:1", 3, ReplyKind::OfRequest, sender(p));
  CHECK(box.pending("a") == 2);
  CHECK(box.pending_bytes("a") == 6);
  CHECK(p.got["a"] == std::vector<std::string>{"a:1"});
  CHECK(p.got["b"] == std::vector<std::string>{"b:1"});
  CHECK(box.take_changed() == std::vector<std::string>{"a"});
  box.retry(sender(p));
  CHECK(p.got["a"] == std::vector<std::string>{"a:1", "a:2", "a:3"});
  CHECK(box.empty());
  CHECK(box.take_changed() == std::vector<std::string>{"a"});  // report the drained figure
}

TEST_CASE("outbox: progress is dropped when it cannot go at once; refusals beyond the hard cap; a request's reply never") {
  ClientOutbox<std::string> box(2);
  Pipes p;
  p.room = {{"a", 0}};
  box.deliver("a", "a:progress", 1, ReplyKind::Progress, sender(p));
  CHECK(box.pending("a") == 0);
  box.deliver("a", "a:r1", 1, ReplyKind::OfRequest, sender(p));
  box.deliver("a", "a:progress", 1, ReplyKind::Progress, sender(p));  // behind r1: dropped
  box.deliver("a", "a:no1", 1, ReplyKind::NoRequest, sender(p));
  box.deliver("a", "a:no2", 1, ReplyKind::NoRequest, sender(p));  // at the cap of 2: dropped
  for (int i = 2; i <= 5; ++i)
    box.deliver("a", "a:r" + std::to_string(i), 1, ReplyKind::OfRequest, sender(p));  // kept beyond
  CHECK(box.pending("a") == 6);
  CHECK(box.counts().dropped_progress == 2);
  CHECK(box.counts().dropped_refusals == 1);
  p.room["a"] = 100;
  box.retry(sender(p));
  CHECK(p.got["a"] == std::vector<std::string>{"a:r1", "a:no1", "a:r2", "a:r3", "a:r4", "a:r5"});
}

TEST_CASE("outbox: a connection that went away has its replies discarded") {
  ClientOutbox<std::string> box(10);
  Pipes p;
  p.room = {{"a", 0}};
  box.deliver("a", "a:1", 1, ReplyKind::OfRequest, sender(p));
  box.deliver("a", "a:2", 1, ReplyKind::OfRequest, sender(p));
  box.take_changed();
  p.room.erase("a");  // EHOSTUNREACH
  box.retry(sender(p));
  CHECK(box.empty());
  CHECK(box.counts().discarded == 2);
  CHECK(box.take_changed() == std::vector<std::string>{"a"});
  CHECK(box.pending("a") == 0);
}

TEST_CASE("outbox: a waiting Batch counts every reply it holds (the slow-reader bound is in replies)") {
  ClientOutbox<std::string> box(4);
  Pipes p;
  p.room = {{"a", 0}};
  box.deliver("a", "a:batch-of-3", 30, ReplyKind::OfRequest, sender(p), 3);
  box.deliver("a", "a:r4", 10, ReplyKind::OfRequest, sender(p));
  CHECK(box.pending("a") == 4);  // what BrokerCore::on_client_backlog holds against the client
  CHECK(box.pending_bytes("a") == 40);
  box.deliver("a", "a:no", 1, ReplyKind::NoRequest, sender(p));  // at the cap of 4 replies: dropped
  CHECK(box.counts().dropped_refusals == 1);
  p.room["a"] = 1;
  box.retry(sender(p));  // the batch goes: its three replies leave the count
  CHECK(box.pending("a") == 1);
  p.room.erase("a");
  box.retry(sender(p));
  CHECK(box.counts().discarded == 1);
}
