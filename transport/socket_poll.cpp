// socket_poll.cpp — see socket_poll.hpp.
#include "muster/socket_poll.hpp"

#include <poll.h>

#include <vector>

namespace muster {

namespace {

// ZMQ_EVENTS processes the socket's pending commands, so afterwards its ZMQ_FD is readable
// again only when something new happens to the socket.
short socket_events(void* socket) {
  int events = 0;
  std::size_t size = sizeof events;
  if (zmq_getsockopt(socket, ZMQ_EVENTS, &events, &size) != 0) throw zmq::error_t();
  return static_cast<short>(events & (ZMQ_POLLIN | ZMQ_POLLOUT));
}

::pollfd descriptor_of(const zmq::pollitem_t& item) {
  if (item.socket) {
    zmq::fd_t fd{};
    std::size_t size = sizeof fd;
    if (zmq_getsockopt(item.socket, ZMQ_FD, &fd, &size) != 0) throw zmq::error_t();
    return {fd, POLLIN, 0};  // readable: the socket has commands to process
  }
  short events = 0;
  if (item.events & ZMQ_POLLIN) events |= POLLIN;
  if (item.events & ZMQ_POLLOUT) events |= POLLOUT;
  if (item.events & ZMQ_POLLPRI) events |= POLLPRI;
  return {item.fd, events, 0};
}

short revents_of_descriptor(const zmq::pollitem_t& item, short revents) {
  short r = 0;
  if ((revents & POLLIN) && (item.events & ZMQ_POLLIN)) r |= ZMQ_POLLIN;
  if ((revents & POLLOUT) && (item.events & ZMQ_POLLOUT)) r |= ZMQ_POLLOUT;
  if ((revents & POLLPRI) && (item.events & ZMQ_POLLPRI)) r |= ZMQ_POLLPRI;
  if (revents & ~(POLLIN | POLLOUT | POLLPRI)) r |= ZMQ_POLLERR;
  return r;
}

}  // namespace

int poll_sockets(zmq::pollitem_t* items, std::size_t count, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  thread_local std::vector<::pollfd> fds;
  fds.resize(count);
  // Every socket once: what is ready now, and every ZMQ_FD reset for the wait below.
  bool sockets_ready = false, descriptors = false;
  for (std::size_t i = 0; i < count; ++i) {
    auto& item = items[i];
    item.revents = item.socket ? static_cast<short>(socket_events(item.socket) & item.events) : 0;
    sockets_ready = sockets_ready || item.revents != 0;
    descriptors = descriptors || !item.socket;
    fds[i] = descriptor_of(item);
  }
  if (sockets_ready && !descriptors) return [&] {
      int n = 0;
      for (std::size_t i = 0; i < count; ++i) n += items[i].revents != 0;
      return n;
    }();
  const bool forever = timeout.count() < 0;
  const auto until = Clock::now() + (forever ? std::chrono::milliseconds(0) : timeout);
  for (;;) {
    int wait_ms = -1;
    if (sockets_ready) {
      wait_ms = 0;
    } else if (!forever) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
      wait_ms = left > 0 ? static_cast<int>(left) : 0;
    }
    if (::poll(fds.data(), static_cast<nfds_t>(count), wait_ms) < 0) throw zmq::error_t();
    int ready = 0;
    for (std::size_t i = 0; i < count; ++i) {
      auto& item = items[i];
      if (!item.socket)
        item.revents = revents_of_descriptor(item, fds[i].revents);
      else if (item.revents == 0 && (fds[i].revents & POLLIN))
        item.revents = static_cast<short>(socket_events(item.socket) & item.events);  // signalled
      ready += item.revents != 0;
    }
    // Nothing ready: a socket signalled for a command that made nothing readable (its ZMQ_FD
    // is reset by the ask above), or the time is up.
    if (ready > 0 || wait_ms == 0) return ready;
  }
}

}  // namespace muster
