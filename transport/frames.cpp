// frames.cpp — ROUTER envelope handling.
#include "muster/frames.hpp"

#include <vector>

namespace muster {

bool recv_router(zmq::socket_t& socket, RouterMessage& out) {
  zmq::message_t first;
  if (!socket.recv(first, zmq::recv_flags::dontwait)) return false;
  out.peer.routing_id.assign(static_cast<const char*>(first.data()), first.size());
  out.peer.delimiter = false;
  out.peer.identity.clear();
  out.peer.address.clear();
  out.well_formed = false;
  // The rest of a multipart message is already here once its first frame is.
  std::vector<zmq::message_t> rest;
  for (bool more = first.more(); more;) {
    zmq::message_t part;
    (void)socket.recv(part, zmq::recv_flags::none);
    more = part.more();
    rest.push_back(std::move(part));
  }
  out.frame_count = 1 + rest.size();
  if (rest.empty()) {
    out.payload = zmq::message_t();
    return true;
  }
  out.peer.delimiter = rest.size() >= 2 && rest.front().size() == 0;
  out.well_formed = rest.size() == 1 ? rest.front().size() > 0 : (rest.size() == 2 && out.peer.delimiter);
  try {
    if (const char* uid = rest.back().gets("User-Id")) out.peer.identity = uid;
  } catch (const zmq::error_t&) {
    // no ZAP on this socket
  }
  try {
    if (const char* addr = rest.back().gets("Peer-Address")) out.peer.address = addr;
  } catch (const zmq::error_t&) {
    // ipc:// has no address
  }
  out.payload = std::move(rest.back());
  return true;
}

bool send_router(zmq::socket_t& socket, const Peer& peer, zmq::message_t payload) {
  try {
    if (!socket.send(zmq::buffer(peer.routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;
    if (peer.delimiter) socket.send(zmq::message_t(), zmq::send_flags::sndmore);
    return socket.send(std::move(payload), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH with ROUTER_MANDATORY: the peer is gone
  }
}

bool send_router(zmq::socket_t& socket, const Peer& peer, std::span<const std::uint8_t> payload) {
  return send_router(socket, peer, zmq::message_t(payload.data(), payload.size()));
}

}  // namespace muster
