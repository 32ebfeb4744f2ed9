// socket_poll.hpp — zmq::poll with the same contract and fewer syscalls, for the loops of
// musterd, the C++ worker SDK and the client library.
// Owns: waiting on ZeroMQ sockets (through their ZMQ_FD) and plain file descriptors.
// Must never: report a socket not readable (or writable) while it is, nor block while a socket
// asked about is ready; it is level-triggered exactly like zmq::poll.
//
// Why: libzmq 4.3's zmq_poll asks every socket for ZMQ_EVENTS before blocking and again after
// waking, and each ask of an idle socket is two syscalls (getpid, for libzmq's fork check, and a
// poll of the socket's mailbox). musterd polls six sockets: 26 syscalls per blocking wait, ~3
// waits per call one at a time. poll_sockets asks every socket once before blocking (that ask
// also resets its ZMQ_FD, which is what makes blocking on the descriptors safe) and after
// waking only the sockets whose descriptor signalled: 15 for the same wait (docs/PERFORMANCE.md,
// "One call at a time: syscalls and hand-offs").
#pragma once

#include <chrono>
#include <cstddef>

#include <zmq.hpp>

namespace muster {

// Waits until one of `items` is ready or `timeout` passed (negative: no limit), and sets each
// item's `revents` as zmq::poll does (ZMQ_POLLIN/ZMQ_POLLOUT of a socket from ZMQ_EVENTS; of a
// plain descriptor from ::poll). Returns how many items are ready. Throws zmq::error_t as
// zmq::poll does (EINTR included: a signal interrupts the wait).
int poll_sockets(zmq::pollitem_t* items, std::size_t count, std::chrono::milliseconds timeout);

}  // namespace muster
