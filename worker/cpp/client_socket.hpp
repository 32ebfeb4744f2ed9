// client_socket.hpp — (private to the C++ client library) the DEALER a Client or a Watch talks
// to musterd on: its endpoints (one daemon, or the two of a failover pair), CURVE, and the
// libzmq socket monitor that reports its connections coming up and going away. One place for
// both, so a Watch connects exactly as a Client does.
// Owns: checking the endpoints and security options, the monitor's inproc PAIR socket.
// Must never: connect before the monitor watches (an event would be missed), or decide what a
// connection event means (the Client fails or resumes calls, a Watch ends).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <zmq.hpp>

#include "muster/client.hpp"
#include "muster/endpoints.hpp"
#include "muster/secure_connect.hpp"
#include "muster/socket_poll.hpp"

namespace muster {

// Sets `socket` up for opt.client_address (filled with the default endpoint when empty):
// checks every endpoint against the security options, applies CURVE and linger 0, and returns
// the endpoints, not yet connected. Throws what check_endpoint and secure_connect_keys throw.
// Not ZMQ_IMMEDIATE for one daemon: with it, libzmq drops replies already received but not yet
// read when the daemon disconnects right after sending them (e.g. at shutdown). With a failover
// pair it is needed: without it, every other message would wait in the pipe of the standby's
// endpoint (bound by no one) and reach it, stale, once it takes over. What a dying daemon sent
// and was not read is lost either way; durable calls resume.
inline std::vector<std::string> prepare_client_socket(ClientOptions& opt, zmq::socket_t& socket) {
  if (opt.client_address.empty()) opt.client_address = default_endpoint(SocketRole::Client);
  SecureOptions secure = opt.secure;
  secure.insecure = secure.insecure || opt.insecure;
  auto endpoints = endpoint_list(opt.client_address);
  auto curve = secure_connect_keys(secure, endpoints);
  for (auto& ep : endpoints) check_endpoint(ep, curve.has_value(), secure.insecure);
  if (curve) apply_curve(socket, *curve);
  if (endpoints.size() > 1) socket.set(zmq::sockopt::immediate, 1);
  socket.set(zmq::sockopt::linger, 0);
  return endpoints;
}

// The CONNECTED and DISCONNECTED events of one socket. Destroy it before the watched socket
// (declare it after): it stops the monitoring first, because libzmq sends monitor events from
// its I/O thread with a blocking send, and an event of a socket whose monitor reader is gone
// would block that thread, and every socket of the context, for good (the C++ SDK worker's
// close_dealer() has the story).
class ConnectionMonitor {
 public:
  ConnectionMonitor(zmq::context_t& ctx, zmq::socket_t& watched)
      : pair_(ctx, zmq::socket_type::pair), watched_(watched.handle()) {
    auto endpoint = fmt::format("inproc://muster-connection-monitor-{}", static_cast<void*>(this));
    if (zmq_socket_monitor(watched_, endpoint.c_str(), ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
      throw zmq::error_t();
    pair_.use().set(zmq::sockopt::linger, 0);
    pair_.use().connect(endpoint);
  }
  ~ConnectionMonitor() { zmq_socket_monitor(watched_, nullptr, 0); }
  ConnectionMonitor(const ConnectionMonitor&) = delete;
  ConnectionMonitor& operator=(const ConnectionMonitor&) = delete;

  // The next event already waiting (ZMQ_EVENT_CONNECTED or ZMQ_EVENT_DISCONNECTED), or nullopt.
  std::optional<std::uint16_t> next() {
    zmq::message_t event, address;
    auto recv = [&](zmq::socket_t& s) {
      if (!s.recv(event, zmq::recv_flags::dontwait)) return false;
      if (event.more()) (void)s.recv(address, zmq::recv_flags::none);
      return true;
    };
    if (!pair_.read(recv)) return std::nullopt;
    std::uint16_t kind = 0;
    if (event.size() >= 2) std::memcpy(&kind, event.data(), 2);
    return kind;
  }

  void* handle() { return pair_.use().handle(); }  // readable while an event waits (for zmq::poll)
  // For a SocketWait: read to the end by next(), the monitor is not asked again until an event.
  PolledSocket& polled() { return pair_; }

 private:
  PolledSocket pair_;
  void* watched_;
};

}  // namespace muster
