// client_call_resume_test.cpp — the C++ client library's side of a caller's reconnect
// (PROTOCOL.md §8.3 C6) against a scripted fake daemon whose connection breaks: which calls ask
// `resumable`, a resumable call with its token kept across the break and bound again with one
// CallResume carrying what the client received (items, output offsets), the item credit said
// again, the call going on to its Result; the daemon's answers to a CallResume (a kept reply, a
// Failure) ending the call; a call without its token, and every call once the wait ends, failing
// UNAVAILABLE. Every wait is bounded.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "fake_client_daemon.hpp"
#include "muster/client.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::FakeClientDaemon;

namespace {

// Polls the client (collecting its events into `events`) until the fake daemon has a message.
void pump_until_sent(Client& client, FakeClientDaemon& fake, std::vector<ClientEvent>& events) {
  for (auto until = std::chrono::steady_clock::now() + 10s; !fake.has_message();) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until, "the client sent nothing");
    for (auto& ev : client.poll(20ms)) events.push_back(std::move(ev));
  }
}

// Polls the client (collecting its events into `events`) until request `id` has its terminal
// event; returns every event of it.
std::vector<ClientEvent> until_terminal(Client& client, std::uint64_t id, std::vector<ClientEvent>& events) {
  auto done = [&] {
    return std::any_of(events.begin(), events.end(), [&](auto& e) { return e.request_id == id && e.terminal(); });
  };
  for (auto until = std::chrono::steady_clock::now() + 10s; !done();) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until, "no terminal event for request ", id);
    for (auto& ev : client.poll(20ms)) events.push_back(std::move(ev));
  }
  std::vector<ClientEvent> of_id;
  for (auto& ev : events)
    if (ev.request_id == id) of_id.push_back(ev);
  return of_id;
}

void accepted(FakeClientDaemon& fake, std::uint64_t id, std::uint64_t token) {
  fake.reply(id, wire::ReplyBody::Accepted, [&](auto& fbb) { return wire::CreateAccepted(fbb, false, 0, token); });
}
void item(FakeClientDaemon& fake, std::uint64_t id, std::uint64_t seq) {
  fake.reply(id, wire::ReplyBody::Item, [&](auto& fbb) {
    return wire::CreateItem(fbb, id, seq, create_nested_values(fbb, Map{{"i", Value(static_cast<long long>(seq))}}));
  });
}
void failure(FakeClientDaemon& fake, std::uint64_t id, wire::ErrorCode code, const std::string& message) {
  fake.reply(id, wire::ReplyBody::Failure,
             [&](auto& fbb) { return wire::CreateFailureDirect(fbb, id, code, message.c_str()); });
}
const FailureEvent& failure_of(const std::vector<ClientEvent>& events) {
  REQUIRE(!events.empty());
  REQUIRE(std::holds_alternative<FailureEvent>(events.back().body));
  return std::get<FailureEvent>(events.back().body);
}

}  // namespace

TEST_CASE("C++ client call resume: a call that streams asks resumable, a small one not unless told") {
  FakeClientDaemon fake;
  Client client({.client_address = fake.address});
  client.submit("n", {}, {.stream_window_items = 8});
  CHECK(fake.expect(wire::ClientBody::Submit).msg->body_as_Submit()->resumable());
  client.submit("n", {{"x", Value(1LL)}});
  CHECK_FALSE(fake.expect(wire::ClientBody::Submit).msg->body_as_Submit()->resumable());
  client.submit("n", {}, {.resumable = true});
  CHECK(fake.expect(wire::ClientBody::Submit).msg->body_as_Submit()->resumable());
  client.submit("n", {}, {.stream_window_items = 8, .resumable = false});
  CHECK_FALSE(fake.expect(wire::ClientBody::Submit).msg->body_as_Submit()->resumable());
  CallOptions durable;
  durable.durable = true;
  durable.resumable = true;  // a durable call resumes by its job id
  client.submit("n", {}, durable);
  CHECK_FALSE(fake.expect(wire::ClientBody::Submit).msg->body_as_Submit()->resumable());
}

TEST_CASE("C++ client call resume: a call with its token goes on after a break, with one CallResume of what it received") {
  FakeClientDaemon fake;
  Client client({.client_address = fake.address, .durable_reconnect_wait = 10000ms});
  auto id = client.submit("count", {}, {.timeout_ms = 60000, .stream_window_items = 8});
  fake.expect(wire::ClientBody::Submit);
  accepted(fake, id, 77);
  item(fake, id, 0);
  item(fake, id, 1);
  std::vector<ClientEvent> events;
  for (auto until = std::chrono::steady_clock::now() + 10s; events.size() < 2;) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    for (auto& ev : client.poll(20ms)) events.push_back(std::move(ev));
  }
  fake.break_connection();
  pump_until_sent(client, fake, events);
  auto resume = fake.expect(wire::ClientBody::CallResume);
  auto* calls = resume.msg->body_as_CallResume()->calls();
  REQUIRE(calls != nullptr);
  REQUIRE(calls->size() == 1);
  CHECK(calls->Get(0)->call_token() == 77);
  CHECK(calls->Get(0)->request_id() == id);
  CHECK(calls->Get(0)->items_received() == 2);
  CHECK(resume.msg->request_id() != id);
  // Bound to the new connection: the client says its item credit again, and the call goes on.
  accepted(fake, id, 77);
  pump_until_sent(client, fake, events);
  auto credit = fake.expect(wire::ClientBody::Credit);
  CHECK(credit.msg->request_id() == id);
  CHECK(credit.msg->body_as_Credit()->items() == 8);
  item(fake, id, 2);
  fake.result(id, Map{{"count", Value(3LL)}});
  auto mine = until_terminal(client, id, events);
  REQUIRE(mine.size() == 4);
  for (std::uint64_t seq = 0; seq < 3; ++seq) CHECK(std::get<ItemEvent>(mine[seq].body).seq == seq);
  CHECK(std::get<ResultEvent>(mine[3].body).outputs == Map{{"count", Value(3LL)}});
}

TEST_CASE("C++ client call resume: the daemon's answer to a CallResume ends the call: a kept reply, a Failure") {
  FakeClientDaemon fake;
  Client client({.client_address = fake.address, .durable_reconnect_wait = 10000ms});
  auto kept = client.submit("n", {}, {.resumable = true});
  fake.expect(wire::ClientBody::Submit);
  accepted(fake, kept, 5);
  auto gone = client.submit("n", {}, {.resumable = true});
  fake.expect(wire::ClientBody::Submit);
  accepted(fake, gone, 6);
  auto tokenless = client.submit("n", {}, {.resumable = true});  // its Accepted never comes
  fake.expect(wire::ClientBody::Submit);
  std::vector<ClientEvent> events;
  for (int i = 0; i < 5; ++i)
    for (auto& ev : client.poll(20ms)) events.push_back(std::move(ev));
  fake.break_connection();
  pump_until_sent(client, fake, events);
  auto resume = fake.expect(wire::ClientBody::CallResume);
  REQUIRE(resume.msg->body_as_CallResume()->calls()->size() == 2);  // not the call without a token
  fake.result(kept, Map{{"x", Value(1LL)}});
  failure(fake, gone, wire::ErrorCode::Unavailable, "no such call");
  auto kept_events = until_terminal(client, kept, events);
  REQUIRE(kept_events.size() == 1);
  CHECK(std::holds_alternative<ResultEvent>(kept_events[0].body));
  auto gone_events = until_terminal(client, gone, events);
  CHECK(failure_of(gone_events).code == wire::ErrorCode::Unavailable);
  CHECK(failure_of(gone_events).message == "no such call");
  auto tokenless_events = until_terminal(client, tokenless, events);
  CHECK(failure_of(tokenless_events).code == wire::ErrorCode::Unavailable);
  CHECK(failure_of(tokenless_events).message.find("lost the connection") != std::string::npos);
  CHECK(client.open_requests() == 0);
}

TEST_CASE("C++ client call resume: a resumable call whose daemon does not come back within the wait fails UNAVAILABLE") {
  FakeClientDaemon fake;
  Client client({.client_address = fake.address, .durable_reconnect_wait = 300ms});
  auto id = client.submit("n", {}, {.resumable = true});
  fake.expect(wire::ClientBody::Submit);
  accepted(fake, id, 9);
  for (int i = 0; i < 5; ++i) client.poll(20ms);
  fake.go_away();
  std::vector<ClientEvent> events;
  events = until_terminal(client, id, events);
  CHECK(failure_of(events).code == wire::ErrorCode::Unavailable);
  CHECK(failure_of(events).message.find("did not come back within 300 ms") != std::string::npos);
}
