// socket_poll_test.cpp — muster::poll_sockets (transport/include/muster/socket_poll.hpp) keeps
// zmq::poll's contract on real sockets: what is queued is reported at once, what arrives during
// a wait wakes it, and the two ways a socket's ZMQ_FD goes quiet while a message waits (a read
// that left one behind, a send that processed the socket's commands) never make it block.
#include <doctest/doctest.h>

#include <poll.h>
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

// ---- SocketWait and PolledSocket: a socket is asked before a wait only when it was used since
// it was last found not readable; the cases where ZMQ_FD goes quiet while a message waits must
// still be seen, because every use of a PolledSocket is recorded.

namespace {

bool read_into(muster::PolledSocket& s, std::string& out) {
  return s.read([&](zmq::socket_t& socket) {
    zmq::message_t m;
    if (!socket.recv(m, zmq::recv_flags::dontwait)) return false;
    out = m.to_string();
    return true;
  });
}

// Reads one message, which must be there.
std::string read_one(muster::PolledSocket& s) {
  std::string got;
  REQUIRE(read_into(s, got));
  return got;
}

// A connected pair whose connection is complete (one message went b -> a and was read to the
// end, so `a` starts quiet), and a SocketWait on `a` that has asked nothing yet. `fd` is a's
// ZMQ_FD, taken once (reading it later would be a use), to look at whether its descriptor
// signals without using the socket.
struct PolledPair {
  zmq::context_t ctx;
  muster::PolledSocket a{ctx, zmq::socket_type::dealer};
  zmq::socket_t b{ctx, zmq::socket_type::dealer};
  int fd = -1;
  muster::SocketWait wait;
  std::size_t item = 0;
  explicit PolledPair(const std::string& transport) {
    auto& s = a.use();
    s.set(zmq::sockopt::linger, 0);
    b.set(zmq::sockopt::linger, 0);
    if (transport == "inproc") {
      s.bind("inproc://socket-wait-test");
      b.connect("inproc://socket-wait-test");
    } else {
      s.bind("tcp://127.0.0.1:*");
      b.connect(s.get(zmq::sockopt::last_endpoint));
    }
    fd = s.get(zmq::sockopt::fd);
    b.send(zmq::buffer(std::string("settle")));
    muster::SocketWait settle;
    settle.add(a);
    REQUIRE(settle.wait(10'000ms) == 1);
    REQUIRE(read_one(a) == "settle");
    std::string none;
    REQUIRE_FALSE(read_into(a, none));
    item = wait.add(a);
  }
  // Whether a's descriptor signals within `timeout` (a plain ::poll: no use of the socket).
  bool signalled(std::chrono::milliseconds timeout) const {
    ::pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }
};

}  // namespace

TEST_CASE("SocketWait never asks a quiet socket until its descriptor signals") {
  PolledPair p("tcp");
  auto& wait = p.wait;
  CHECK(wait.wait(0ms) == 0);
  CHECK(wait.wait(20ms) == 0);
  CHECK(wait.asks() == 0);  // read to the end: quiet, and nothing signalled
  p.b.send(zmq::buffer(std::string("hello")));
  CHECK(wait.wait(10'000ms) == 1);  // bound, not a timing assertion
  CHECK(wait.readable(p.item));
  CHECK(wait.asks() == 1);  // its descriptor signalled: asked after waking
  CHECK(read_one(p.a) == "hello");
}

TEST_CASE("SocketWait asks a used socket, and keeps reporting one nobody read") {
  PolledPair p("inproc");
  auto& wait = p.wait;
  (void)p.a.use().get(zmq::sockopt::type);  // any use, even one that reads nothing
  CHECK(wait.wait(0ms) == 0);
  CHECK(wait.asks() == 1);
  p.b.send(zmq::buffer(std::string("unread")));
  CHECK(wait.wait(10'000ms) == 1);
  CHECK(wait.wait(10'000ms) == 1);
  CHECK(wait.readable(p.item));
  CHECK(wait.asks() == 3);  // found readable: asked at every wait until read
}

TEST_CASE("SocketWait: the empty read that ends a reading leaves the socket quiet, and a later message wakes it") {
  PolledPair p("tcp");
  p.b.send(zmq::buffer(std::string("one")));
  auto& wait = p.wait;
  REQUIRE(wait.wait(10'000ms) == 1);
  CHECK(read_one(p.a) == "one");
  std::string none;
  CHECK_FALSE(read_into(p.a, none));  // nothing more: as good as an ask that found nothing
  const auto asks = wait.asks();
  CHECK(wait.wait(0ms) == 0);
  CHECK(wait.asks() == asks);
  p.b.send(zmq::buffer(std::string("two")));
  CHECK(wait.wait(10'000ms) == 1);
  CHECK(read_one(p.a) == "two");
}

TEST_CASE("SocketWait reports the message a read left behind, though the descriptor is quiet") {
  // inproc: the sender writes both into the pipe itself, so both wait before the first read.
  PolledPair p("inproc");
  auto& wait = p.wait;
  p.b.send(zmq::buffer(std::string("first")));
  p.b.send(zmq::buffer(std::string("second")));
  REQUIRE(p.signalled(10'000ms));
  CHECK(read_one(p.a) == "first");  // processes the activation: the descriptor goes quiet
  CHECK_FALSE(p.signalled(0ms));  // the case is set up: nothing will signal "second"
  CHECK(wait.wait(10'000ms) == 1);
  CHECK(read_one(p.a) == "second");
}

TEST_CASE("SocketWait reports a message whose signal a send on the same socket consumed") {
  PolledPair p("tcp");
  auto& wait = p.wait;
  p.b.send(zmq::buffer(std::string("waiting")));
  REQUIRE(p.signalled(10'000ms));  // its activation is in a's mailbox
  // A send processes the socket's commands when it has not for a while (libzmq's throttle).
  std::this_thread::sleep_for(20ms);
  p.a.use().send(zmq::buffer(std::string("reply")));
  CHECK_FALSE(p.signalled(0ms));  // the case is set up: the send took the activation
  CHECK(wait.wait(10'000ms) == 1);
  CHECK(read_one(p.a) == "waiting");
}

TEST_CASE("SocketWait asks plain sockets at every wait and reports descriptors") {
  PolledPair p("inproc");
  zmq::socket_t pull(p.ctx, zmq::socket_type::pull), push(p.ctx, zmq::socket_type::push);
  for (auto* s : {&pull, &push}) s->set(zmq::sockopt::linger, 0);
  pull.bind("inproc://socket-wait-plain");
  push.connect("inproc://socket-wait-plain");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  auto& wait = p.wait;
  const auto polled = p.item, plain = wait.add(pull), descriptor = wait.add_fd(fds[0]);
  CHECK(wait.wait(0ms) == 0);
  CHECK(wait.wait(0ms) == 0);
  CHECK(wait.asks() == 2);  // the plain socket each time, the quiet one never
  push.send(zmq::buffer(std::string("x")));
  REQUIRE(::write(fds[1], "x", 1) == 1);
  CHECK(wait.wait(10'000ms) == 2);
  CHECK_FALSE(wait.readable(polled));
  CHECK(wait.readable(plain));
  CHECK(wait.readable(descriptor));
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("SocketWait cleared and filled again before each wait watches each item's own descriptor") {
  // The worker SDK's way: the items change between waits, in number and order. A SocketWait
  // keeps each socket's ZMQ_FD from add(): one kept for another item would leave the quiet
  // socket's descriptor unwatched, and the wait for its message would time out.
  PolledPair p("tcp");
  zmq::socket_t pull(p.ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.bind("inproc://socket-wait-refill");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  auto& wait = p.wait;
  for (int round = 0; round < 3; ++round) {
    wait.clear();
    std::size_t polled = 0;
    if (round == 0) {
      wait.add_fd(fds[0]);
      wait.add(pull);
      polled = wait.add(p.a);
    } else if (round == 1) {
      polled = wait.add(p.a);
      wait.add(pull);
    } else {
      wait.add(pull);
      wait.add_fd(fds[0]);
      polled = wait.add(p.a);
    }
    const std::string text = "round " + std::to_string(round);
    p.b.send(zmq::buffer(text));
    CHECK(wait.wait(10'000ms) == 1);  // bound, not a timing assertion
    CHECK(wait.readable(polled));
    CHECK(read_one(p.a) == text);
    std::string none;
    CHECK_FALSE(read_into(p.a, none));  // quiet again: only its descriptor can wake the next wait
  }
  ::close(fds[0]);
  ::close(fds[1]);
}
