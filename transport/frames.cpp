// frames.cpp — ROUTER envelope handling.
#include "muster/frames.hpp"


#include "muster/align.hpp"

namespace muster {

bool recv_router(zmq::socket_t& socket, RouterMessage& out, bool user_ids, bool peer_addresses) {
  zmq::message_t first;
  if (!socket.recv(first, zmq::recv_flags::dontwait)) return false;
  out.peer.routing_id.assign(static_cast<const char*>(first.data()), first.size());
  out.peer.delimiter = false;
  out.peer.identity.clear();
  out.peer.address.clear();
  out.well_formed = false;
  // The rest of a multipart message is already here once its first frame is. Only the last
  // frame is kept (and whether the one after the routing id was empty): no container, so no
  // allocation per message.
  std::size_t rest = 0;
  bool second_empty = false;
  zmq::message_t last;
  for (bool more = first.more(); more; ++rest) {
    (void)socket.recv(last, zmq::recv_flags::none);
    more = last.more();
    if (rest == 0) second_empty = last.size() == 0;
  }
  out.frame_count = 1 + rest;
  if (rest == 0) {
    out.payload = zmq::message_t();
    return true;
  }
  out.peer.delimiter = rest >= 2 && second_empty;
  out.well_formed = rest == 1 ? !second_empty : (rest == 2 && out.peer.delimiter);
  // The C call, not message_t::gets: that throws when a property is absent (no ZAP on this
  // socket), and two exceptions per message were a measurable part of
  // musterd's CPU per call (docs/PERFORMANCE.md).
  if (user_ids)
    if (const char* uid = zmq_msg_gets(last.handle(), "User-Id")) out.peer.identity = uid;
  if (peer_addresses)
    if (const char* addr = zmq_msg_gets(last.handle(), "Peer-Address")) out.peer.address = addr;
  out.payload = std::move(last);
  align_payload(out.payload);  // FlatBuffers reads it in place
  return true;
}

bool send_router(zmq::socket_t& socket, const Peer& peer, std::span<zmq::message_t> frames) {
  try {
    if (!socket.send(zmq::buffer(peer.routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;
    // Once the first frame is taken, libzmq takes the rest of the message whole.
    if (peer.delimiter) socket.send(zmq::message_t(), zmq::send_flags::sndmore);
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) socket.send(std::move(frames[i]), zmq::send_flags::sndmore);
    return socket.send(std::move(frames.back()), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH with ROUTER_MANDATORY: the peer is gone
  }
}

zmq::message_t message_of(flatbuffers::FlatBufferBuilder& fbb) {
  auto* detached = new flatbuffers::DetachedBuffer(fbb.Release());
  return zmq::message_t(
      detached->data(), detached->size(),
      [](void*, void* hint) { delete static_cast<flatbuffers::DetachedBuffer*>(hint); }, detached);
}

zmq::message_t message_owning(std::uint8_t* raw, std::span<const std::uint8_t> bytes) {
  return zmq::message_t(
      const_cast<std::uint8_t*>(bytes.data()), bytes.size(),
      [](void*, void* hint) { delete[] static_cast<std::uint8_t*>(hint); }, raw);
}

zmq::message_t take_message(flatbuffers::FlatBufferBuilder& fbb, std::size_t copy_max) {
  if (fbb.GetSize() > copy_max) return message_of(fbb);
  zmq::message_t m(fbb.GetBufferPointer(), fbb.GetSize());
  fbb.Clear();
  return m;
}

flatbuffers::FlatBufferBuilder& MessageBuilders::get(std::size_t need) {
  if (need > kCopyMessageMax) {
    big_ = flatbuffers::FlatBufferBuilder(need);
    return big_;
  }
  reused_.Clear();
  return reused_;
}

bool send_router(zmq::socket_t& socket, const Peer& peer, zmq::message_t payload) {
  return send_router(socket, peer, std::span<zmq::message_t>(&payload, 1));
}

bool send_router(zmq::socket_t& socket, const Peer& peer, std::span<const std::uint8_t> payload) {
  return send_router(socket, peer, zmq::message_t(payload.data(), payload.size()));
}

}  // namespace muster
