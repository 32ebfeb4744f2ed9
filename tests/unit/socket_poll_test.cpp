// socket_poll_test.cpp — muster::poll_sockets (transport/include/muster/socket_poll.hpp) keeps
// zmq::poll's contract on real sockets: what is queued is reported at once, what arrives during
// a wait wakes it, and the two ways a socket's ZMQ_FD goes quiet while a message waits (a read
// that left one behind, a send that processed the socket's commands) never make it block.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "muster/socket_poll.hpp"

using namespace std::chrono_literals;

namespace {

// A connected DEALER pair over inproc (tcp where a real I/O thread must take part).
struct Pair {
  zmq::context_t ctx;
  zmq::socket_t a{ctx, zmq::socket_type::dealer}, b{ctx, zmq::socket_type::dealer};
  explicit Pair(const std::string& transport = "inproc") {
    for (auto* s : {&a, &b}) s->set(zmq::sockopt::linger, 0);
    if (transport == "inproc") {
      a.bind("inproc://socket-poll-test");
      b.connect("inproc://socket-poll-test");
    } else {
      a.bind("tcp://127.0.0.1:*");
      b.connect(a.get(zmq::sockopt::last_endpoint));
    }
  }
  // b -> a, then waits (bounded) until a has it queued, without reading it.
  void deliver_to_a(const std::string& text) {
    b.send(zmq::buffer(text));
    zmq::pollitem_t item{a.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, 10s) == 1);
  }
};

std::string read(zmq::socket_t& s) {
  zmq::message_t m;
  REQUIRE(s.recv(m, zmq::recv_flags::dontwait));
  return m.to_string();
}

}  // namespace

TEST_CASE("poll_sockets reports a message already queued at once, with or without a timeout") {
  Pair p("tcp");
  p.deliver_to_a("one");
  for (auto timeout : {0ms, 10'000ms}) {
    zmq::pollitem_t item{p.a.handle(), 0, ZMQ_POLLIN, 0};
    CHECK(muster::poll_sockets(&item, 1, timeout) == 1);
    CHECK(item.revents == ZMQ_POLLIN);
  }
  CHECK(read(p.a) == "one");
}

TEST_CASE("poll_sockets returns 0 when nothing is ready within the timeout") {
  Pair p;
  zmq::pollitem_t item{p.a.handle(), 0, ZMQ_POLLIN, 0};
  CHECK(muster::poll_sockets(&item, 1, 0ms) == 0);
  CHECK(item.revents == 0);
  CHECK(muster::poll_sockets(&item, 1, 20ms) == 0);
  CHECK(item.revents == 0);
}

TEST_CASE("poll_sockets wakes for a message sent during the wait") {
  Pair p("tcp");
  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    p.b.send(zmq::buffer(std::string("late")));
  });
  zmq::pollitem_t item{p.a.handle(), 0, ZMQ_POLLIN, 0};
  int ready = muster::poll_sockets(&item, 1, 10'000ms);  // bound, not a timing assertion
  sender.join();
  CHECK(ready == 1);
  CHECK(read(p.a) == "late");
}

TEST_CASE("poll_sockets reports the message a read left behind (ZMQ_FD no longer signals it)") {
  Pair p("tcp");
  p.b.send(zmq::buffer(std::string("first")));
  p.b.send(zmq::buffer(std::string("second")));
  zmq::pollitem_t item{p.a.handle(), 0, ZMQ_POLLIN, 0};
  // Both are queued once a poll sees the first and a read after it finds the second.
  REQUIRE(muster::poll_sockets(&item, 1, 10'000ms) == 1);
  CHECK(read(p.a) == "first");
  for (int i = 0; i < 1000 && zmq::poll(&item, 1, 0ms) == 0; ++i) std::this_thread::sleep_for(1ms);
  // The read processed the socket's commands: its descriptor is quiet, the message is not.
  CHECK(muster::poll_sockets(&item, 1, 10'000ms) == 1);
  CHECK(item.revents == ZMQ_POLLIN);
  CHECK(read(p.a) == "second");
}

TEST_CASE("poll_sockets reports a message whose signal a send on the same socket consumed") {
  Pair p("tcp");
  p.deliver_to_a("waiting");
  // A send processes the socket's commands when it has not for a while (libzmq's throttle),
  // the activation of the waiting message among them: ZMQ_FD is then quiet.
  std::this_thread::sleep_for(20ms);
  p.a.send(zmq::buffer(std::string("reply")));
  zmq::pollitem_t item{p.a.handle(), 0, ZMQ_POLLIN, 0};
  CHECK(muster::poll_sockets(&item, 1, 10'000ms) == 1);
  CHECK(read(p.a) == "waiting");
}

TEST_CASE("poll_sockets reports plain descriptors as zmq::poll does, next to sockets") {
  Pair p;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  zmq::pollitem_t items[] = {{p.a.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, fds[0], ZMQ_POLLIN, 0}};
  CHECK(muster::poll_sockets(items, 2, 0ms) == 0);
  REQUIRE(::write(fds[1], "x", 1) == 1);
  CHECK(muster::poll_sockets(items, 2, 10'000ms) == 1);
  CHECK(items[0].revents == 0);
  CHECK(items[1].revents == ZMQ_POLLIN);
  p.deliver_to_a("both");
  CHECK(muster::poll_sockets(items, 2, 10'000ms) == 2);
  CHECK(items[0].revents == ZMQ_POLLIN);
  CHECK(items[1].revents == ZMQ_POLLIN);
  ::close(fds[0]);
  ::close(fds[1]);
}
