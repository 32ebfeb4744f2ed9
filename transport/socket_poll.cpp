// socket_poll.cpp — see socket_poll.hpp.
#include "muster/socket_poll.hpp"

#include <poll.h>

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

zmq::fd_t socket_descriptor(void* socket) {
  zmq::fd_t fd{};
  std::size_t size = sizeof fd;
  if (zmq_getsockopt(socket, ZMQ_FD, &fd, &size) != 0) throw zmq::error_t();
  return fd;
}

// The descriptor a wait blocks on for `item` (`fd`: a socket item's ZMQ_FD).
::pollfd descriptor_of(const zmq::pollitem_t& item, zmq::fd_t fd) {
  if (item.socket) return {fd, POLLIN, 0};  // readable: the socket has commands to process
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
  std::uint64_t asks = 0;
  thread_local std::vector<::pollfd> fds;
  fds.resize(count);
  for (std::size_t i = 0; i < count; ++i)
    fds[i] = descriptor_of(items[i], items[i].socket ? socket_descriptor(items[i].socket) : -1);
  return SocketWait::wait_items(items, nullptr, fds.data(), count, timeout, asks);
}

zmq::fd_t PolledSocket::descriptor() {
  if (!fd_known_) {
    fd_ = socket_descriptor(socket_.handle());
    fd_known_ = true;
  }
  return fd_;
}

std::size_t SocketWait::add(PolledSocket& socket) {
  items_.push_back({socket.socket_.handle(), 0, ZMQ_POLLIN, 0});
  polled_.push_back(&socket);
  fds_.push_back(descriptor_of(items_.back(), socket.descriptor()));
  return items_.size() - 1;
}

std::size_t SocketWait::add(zmq::socket_t& socket) {
  items_.push_back({socket.handle(), 0, ZMQ_POLLIN, 0});
  polled_.push_back(nullptr);
  fds_.push_back(descriptor_of(items_.back(), socket_descriptor(socket.handle())));
  return items_.size() - 1;
}

std::size_t SocketWait::add_fd(int fd) {
  items_.push_back({nullptr, fd, ZMQ_POLLIN, 0});
  polled_.push_back(nullptr);
  fds_.push_back(descriptor_of(items_.back(), -1));
  return items_.size() - 1;
}

void SocketWait::clear() {
  items_.clear();
  polled_.clear();
  fds_.clear();
}

int SocketWait::wait(std::chrono::milliseconds timeout) {
  return wait_items(items_.data(), polled_.data(), fds_.data(), items_.size(), timeout, asks_);
}

int SocketWait::wait_items(zmq::pollitem_t* items, PolledSocket* const* polled, ::pollfd* fds,
                           std::size_t count, std::chrono::milliseconds timeout, std::uint64_t& asks) {
  using Clock = std::chrono::steady_clock;
  // Asks socket item `i` what is ready; the ask processed its commands, so a PolledSocket
  // found not readable is quiet from now until its next use.
  auto ask = [&](std::size_t i) {
    ++asks;
    const short events = socket_events(items[i].socket);
    if (polled && polled[i]) polled[i]->quiet_ = !(events & ZMQ_POLLIN);
    return static_cast<short>(events & items[i].events);
  };
  // Every socket that may be ready, once (a quiet one is not: its descriptor signals first):
  // what is ready now, and every ZMQ_FD reset for the wait below.
  bool sockets_ready = false, descriptors = false;
  for (std::size_t i = 0; i < count; ++i) {
    auto& item = items[i];
    const bool quiet = polled && polled[i] && polled[i]->quiet_;
    item.revents = item.socket && !quiet ? ask(i) : 0;
    sockets_ready = sockets_ready || item.revents != 0;
    descriptors = descriptors || !item.socket;
  }
  if (sockets_ready && !descriptors) return [&] {
      int n = 0;
      for (std::size_t i = 0; i < count; ++i) n += items[i].revents != 0;
      return n;
    }();
  // The clock is read only for a wait that may block with a limit: a turn that finds a socket
  // ready reads none.
  const bool forever = timeout.count() < 0, limited = !sockets_ready && !forever && timeout.count() > 0;
  const auto until = limited ? Clock::now() + timeout : Clock::time_point{};
  for (bool first = true;; first = false) {
    int wait_ms = -1;
    if (sockets_ready || (!forever && !limited)) {
      wait_ms = 0;
    } else if (!forever) {
      auto left = first ? timeout.count()
                        : std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
      wait_ms = left > 0 ? static_cast<int>(left) : 0;
    }
    if (::poll(fds, static_cast<nfds_t>(count), wait_ms) < 0) throw zmq::error_t();
    int ready = 0;
    for (std::size_t i = 0; i < count; ++i) {
      auto& item = items[i];
      if (!item.socket)
        item.revents = revents_of_descriptor(item, fds[i].revents);
      else if (item.revents == 0 && (fds[i].revents & POLLIN))
        item.revents = ask(i);  // signalled
      ready += item.revents != 0;
    }
    // Nothing ready: a socket signalled for a command that made nothing readable (its ZMQ_FD
    // is reset by the ask above), or the time is up.
    if (ready > 0 || wait_ms == 0) return ready;
  }
}

}  // namespace muster
