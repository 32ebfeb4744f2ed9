// stream_sdk_test.cpp — items (partial results, PROTOCOL.md §7.8) through a real musterd from a
// C++ SDK worker (Context::emit) to a C++ SDK client (Client::stream, poll): order, the credit
// window held end to end with a slow consumer, cancel and errors mid-stream, StreamNotRequested,
// exactly one terminal reply after every item.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "daemon_process.hpp"
#include "running_worker.hpp"
#include "muster/client.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;
using muster::test::options_for;
using muster::test::RunningWorker;
using muster::test::wait_for_node;

namespace {

// Waits (bounded, 10 s) until `done()`.
template <class Pred>
bool eventually(Pred done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

// The "count" node of these tests: emits {i} for i < n; counts what emit accepted and notes
// whether it saw the call aborted.
struct Counter {
  std::atomic<std::int64_t> emitted{0};
  std::atomic<bool> saw_abort{false}, finished{false};

  Handler handler() {
    return [this](Context& ctx) {
      std::int64_t n = ctx.input("n").as_int();
      for (std::int64_t i = 0; i < n; ++i) {
        if (!ctx.emit(Map{{"i", Value(static_cast<long long>(i))}})) {
          saw_abort = true;
          finished = true;
          throw WorkError("aborted");
        }
        ++emitted;
      }
      finished = true;
      return Map{{"count", Value(static_cast<long long>(n))}};
    };
  }
};

}  // namespace

TEST_CASE("C++ SDK stream: 100,000 small items arrive in order, then the outputs, once") {
  DaemonProcess daemon;
  RunningWorker w(options_for(daemon, "stream-100k"));
  Counter counter;
  w.worker.node({.name = "count"}, counter.handler());
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "count");

  constexpr long long kItems = 100000;
  auto stream = client.stream("count", {{"n", Value(kItems)}}, {.timeout_ms = 120000});
  long long expected = 0;
  bool in_order = true;
  for (const Map& item : stream) {
    in_order = in_order && item.find("i") && *item.find("i") == Value(expected);
    ++expected;
  }
  CHECK(in_order);
  CHECK(expected == kItems);
  CHECK(stream.items_received() == static_cast<std::uint64_t>(kItems));
  CHECK(stream.outputs() == Map{{"count", Value(kItems)}});
  // Nothing after the terminal reply: the stream stays ended, and no event of it is left.
  CHECK_FALSE(stream.next().has_value());
  CHECK(client.poll(200ms).empty());
  CHECK(client.open_requests() == 0);
}

TEST_CASE("C++ SDK stream: a slow consumer holds the worker to its window, end to end") {
  DaemonProcess daemon;
  RunningWorker w(options_for(daemon, "stream-slow"));
  Counter counter;
  w.worker.node({.name = "count"}, counter.handler());
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "count");

  constexpr std::uint32_t kWindow = 8;
  auto stream = client.stream("count", {{"n", Value(200LL)}},
                              {.timeout_ms = 60000, .stream_window_items = kWindow});
  // Before anything is read, the worker fills the window and waits.
  REQUIRE(eventually([&] { return counter.emitted.load() == kWindow; }));
  std::this_thread::sleep_for(300ms);  // a worker ignoring credit would run on meanwhile
  CHECK(counter.emitted.load() == kWindow);
  std::int64_t consumed = 0;
  while (auto item = stream.next()) {
    ++consumed;
    // The worker never runs more than a window ahead of what this client has consumed.
    CHECK(counter.emitted.load() <= consumed + kWindow);
    if (consumed % 50 == 0) std::this_thread::sleep_for(50ms);
  }
  CHECK(consumed == 200);
  CHECK(stream.outputs() == Map{{"count", Value(200LL)}});
}

TEST_CASE("C++ SDK stream: cancel mid-stream stops the worker's emit; CANCELLED once") {
  DaemonProcess daemon;
  RunningWorker w(options_for(daemon, "stream-cancel"));
  Counter counter;
  w.worker.node({.name = "count"}, counter.handler());
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "count");

  auto stream = client.stream("count", {{"n", Value(1000000LL)}},
                              {.timeout_ms = 60000, .stream_window_items = 4});
  for (int i = 0; i < 5; ++i) REQUIRE(stream.next().has_value());
  stream.cancel();
  try {
    stream.outputs();
    FAIL("a cancelled stream has no outputs");
  } catch (const CallError& e) {
    CHECK(e.code() == ErrorCode::Cancelled);
  }
  CHECK(eventually([&] { return counter.saw_abort.load(); }));  // emit returned false
  CHECK(counter.emitted.load() < 1000000);

  // Leaving a stream before its end cancels it too.
  Counter second;
  w.worker.set_nodes({{.spec = {.name = "count2"}, .handler = second.handler()}});
  wait_for_node(client, "count2");
  {
    auto s = client.stream("count2", {{"n", Value(1000000LL)}}, {.timeout_ms = 60000, .stream_window_items = 4});
    REQUIRE(s.next().has_value());
  }
  CHECK(eventually([&] { return second.saw_abort.load(); }));
}

TEST_CASE("C++ SDK stream: items then a failure; emit without a stream throws StreamNotRequested") {
  DaemonProcess daemon;
  RunningWorker w(options_for(daemon, "stream-errors"));
  std::atomic<bool> was_streaming{true};
  w.worker.node({.name = "two-then-fail"}, [](Context& ctx) -> Map {
    ctx.emit({{"k", Value(1LL)}});
    ctx.emit({{"k", Value(2LL)}});
    throw WorkError("failed after two items");
  });
  w.worker.node({.name = "emits"}, [&](Context& ctx) -> Map {
    was_streaming = ctx.streaming();
    ctx.emit({{"k", Value(1LL)}});
    return {};
  });
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "emits");

  auto s = client.stream("two-then-fail", {}, {.timeout_ms = 10000});
  std::vector<Map> items;
  for (Map& item : s) items.push_back(item);
  CHECK(items == std::vector<Map>{{{"k", Value(1LL)}}, {{"k", Value(2LL)}}});
  try {
    s.outputs();
    FAIL("the call failed");
  } catch (const CallError& e) {
    CHECK(e.code() == ErrorCode::WorkerError);
    CHECK(std::string(e.what()) == "failed after two items");
  }

  try {
    client.call("emits", {}, {.timeout_ms = 10000});  // asks for no items
    FAIL("the handler's emit threw");
  } catch (const CallError& e) {
    CHECK(e.code() == ErrorCode::WorkerError);
    CHECK(std::string(e.what()).find("asked for no items") != std::string::npos);
  }
  CHECK_FALSE(was_streaming.load());
  // The same node, streamed: its item, then its (empty) outputs.
  auto ok = client.stream("emits", {}, {.timeout_ms = 10000});
  auto first = ok.next();
  REQUIRE(first.has_value());
  CHECK(*first == Map{{"k", Value(1LL)}});
  CHECK(ok.outputs().empty());
  CHECK(was_streaming.load());
}

TEST_CASE("C++ SDK stream: an item over the daemon's message limit fails the handler's emit") {
  DaemonProcess daemon({"--max-message-bytes", "65536"});
  RunningWorker w(options_for(daemon, "stream-big"));
  w.worker.node({.name = "big"}, [](Context& ctx) -> Map {
    ctx.emit({{"small", Value(1LL)}});
    ctx.emit({{"blob", Value(Bytes(100000, 1))}});
    return {};
  });
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "big");
  auto s = client.stream("big", {}, {.timeout_ms = 10000});
  REQUIRE(s.next().has_value());
  CHECK_FALSE(s.next().has_value());
  try {
    s.outputs();
    FAIL("the handler's emit threw");
  } catch (const CallError& e) {
    CHECK(e.code() == ErrorCode::WorkerError);
    CHECK(std::string(e.what()).find("exceeds the daemon's limit") != std::string::npos);
  }
}
