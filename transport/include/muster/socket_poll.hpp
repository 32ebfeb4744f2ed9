// socket_poll.hpp — zmq::poll with the same contract and fewer syscalls, for the loops of
// musterd, the C++ worker SDK and the client library.
// Owns: waiting on ZeroMQ sockets (through their ZMQ_FD) and plain file descriptors, and
// knowing which sockets need no ask before a wait (PolledSocket).
// Must never: report a socket not readable (or writable) while it is, nor block while a socket
// waited on is ready; it is level-triggered exactly like zmq::poll.
//
// Why: libzmq 4.3's zmq_poll asks every socket for ZMQ_EVENTS before blocking and again after
// waking, and each ask of an idle socket is two syscalls (getpid, for libzmq's fork check, and a
// poll of the socket's mailbox). musterd polls six sockets: 26 syscalls per blocking wait, ~3
// waits per call one at a time. poll_sockets asks every socket once before blocking (that ask
// also resets its ZMQ_FD, which is what makes blocking on the descriptors safe) and after
// waking only the sockets whose descriptor signalled: 15 for the same wait. A SocketWait asks
// before blocking only the sockets used since they were last found not readable
// (PolledSocket): an idle socket costs nothing at all (docs/PERFORMANCE.md, "One call at a
// time: syscalls and hand-offs" and "One call at a time, session 12"). A SocketWait takes each
// socket's ZMQ_FD once, when the item is added (a PolledSocket keeps it for its socket), not
// at every wait ("One call at a time, session 16").
//
// The rule libzmq's ZMQ_FD imposes: the descriptor is readable while the socket has commands
// to process (a message arrived on a pipe that was empty, a connection came or went), and any
// operation on the socket may process them (a read, a send, ZMQ_EVENTS, a connect). After an
// operation the descriptor can be quiet while a message waits (a read that left one behind, a
// send that took the activation of one that arrived), so it may be blocked on only after an
// ask that found the socket not readable, with no operation since: then whatever makes the
// socket readable arrives as a command and signals the descriptor.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <zmq.hpp>

namespace muster {

// Waits until one of `items` is ready or `timeout` passed (negative: no limit), and sets each
// item's `revents` as zmq::poll does (ZMQ_POLLIN/ZMQ_POLLOUT of a socket from ZMQ_EVENTS; of a
// plain descriptor from ::poll). Returns how many items are ready. Throws zmq::error_t as
// zmq::poll does (EINTR included: a signal interrupts the wait).
int poll_sockets(zmq::pollitem_t* items, std::size_t count, std::chrono::milliseconds timeout);

// A socket a SocketWait waits on for reading, which it asks (ZMQ_EVENTS) before blocking only
// when it was used since it was last found not readable. The socket is reachable only through
// use() and read(), both of which record the use: no path can touch it unseen.
class PolledSocket {
 public:
  explicit PolledSocket(zmq::socket_t socket) : socket_(std::move(socket)) {}
  PolledSocket(zmq::context_t& ctx, zmq::socket_type type) : socket_(ctx, type) {}

  // The socket, for any operation (send, recv, set, connect, ...): the next wait asks it first.
  // Use the reference at once; never keep it across a wait, never assign another socket to it
  // (its ZMQ_FD is kept: make a new PolledSocket instead).
  zmq::socket_t& use() noexcept {
    quiet_ = false;
    return socket_;
  }

  // Reads one message with `recv(socket)`, which reads without waiting and returns false only
  // when nothing waits, its last operation being that empty read (recv_router does). An empty
  // read leaves the socket known not readable, as an ask would: libzmq's non-blocking read
  // that finds nothing has processed the socket's commands and looked at every pipe, exactly
  // what ZMQ_EVENTS does (socket_base_t::recv, ZMQ_DONTWAIT), so the next wait does not ask.
  template <class Recv>
  bool read(Recv&& recv) {
    quiet_ = false;
    const bool got = recv(socket_);
    quiet_ = !got;
    return got;
  }

 private:
  friend class SocketWait;
  // The socket's ZMQ_FD, asked when it is first added to a SocketWait and kept (a socket's never
  // changes).
  zmq::fd_t descriptor();

  zmq::socket_t socket_;
  bool quiet_ = false;  // not readable, and its ZMQ_FD will signal what changes that
  bool fd_known_ = false;
  zmq::fd_t fd_{};
};

// The items of one wait: PolledSocket (for reading), plain sockets (asked before every wait:
// sockets used elsewhere, e.g. the ZAP handler's), and plain descriptors (for reading).
// Items are added once (musterd) or again before each wait after clear() (the worker SDK);
// an added PolledSocket must stay where it is while it is an item.
class SocketWait {
 public:
  std::size_t add(PolledSocket& socket);
  std::size_t add(zmq::socket_t& socket);
  std::size_t add_fd(int fd);
  void clear();

  // Waits as poll_sockets does (same timeout, same result, same exceptions); a quiet
  // PolledSocket is not asked before blocking, only if its descriptor signals.
  int wait(std::chrono::milliseconds timeout);
  bool readable(std::size_t item) const { return (items_[item].revents & ZMQ_POLLIN) != 0; }

  // ZMQ_EVENTS asks so far (each is two syscalls or more): what the quiet sockets save.
  std::uint64_t asks() const { return asks_; }

 private:
  friend int poll_sockets(zmq::pollitem_t*, std::size_t, std::chrono::milliseconds);
  // The wait of both: `polled` (null, or one per item) names the PolledSocket items; `fds`
  // (one per item) is what ::poll blocks on: a socket item's ZMQ_FD, a descriptor item's fd.
  static int wait_items(zmq::pollitem_t* items, PolledSocket* const* polled, ::pollfd* fds,
                        std::size_t count, std::chrono::milliseconds timeout, std::uint64_t& asks);

  std::vector<zmq::pollitem_t> items_;
  std::vector<PolledSocket*> polled_;  // per item: its PolledSocket, or null
  std::vector<::pollfd> fds_;          // per item: made at add(), reused by every wait
  std::uint64_t asks_ = 0;
};

}  // namespace muster
