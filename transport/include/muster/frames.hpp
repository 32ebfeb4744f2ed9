// frames.hpp — reading and writing muster messages on ROUTER sockets (PROTOCOL.md §2).
// Owns: the envelope rule: the payload is the last frame; replies mirror the envelope.
// Must never: block; every call here is non-blocking or called when the socket is readable.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

namespace muster {

// Who sent a ROUTER message and how to answer them.
struct Peer {
  std::string routing_id;
  bool delimiter = false;   // the request had an empty frame before the payload (REQ)
  std::string identity;     // the ZAP User-Id, empty when the socket has no ZAP
  std::string address;      // Peer-Address: the peer's IP address; over ipc:// libzmq's "localhost:…" with its credentials
  std::uint8_t via = 0;     // which of the receiver's sockets of that role it came through

  // The same connection: the same routing id on the same socket (the rest describes the peer,
  // not the connection; a reconnect gets a new routing id).
  bool same_connection(const Peer& other) const { return routing_id == other.routing_id && via == other.via; }
};

struct RouterMessage {
  Peer peer;
  zmq::message_t payload;
  bool well_formed = false;  // 2 frames, or 3 with an empty middle frame
  std::size_t frame_count = 0;
};

// Reads one whole multipart message if one is waiting. Returns false if none was.
// `user_ids`: whether to ask each message for its User-Id (a lookup by name in libzmq's metadata
// map, ~300 instructions); one exists only where a ZAP handler gave it, so a process with no ZAP
// handler passes false and `peer.identity` stays empty, as it would anyway.
// `peer_addresses`: whether to ask for its Peer-Address (the same lookup, and a copy: over ipc
// a string too long to stay inside std::string); false leaves `peer.address` empty, for a
// socket whose readers never use it.
bool recv_router(zmq::socket_t& socket, RouterMessage& out, bool user_ids = true, bool peer_addresses = true);

// Sends [routing_id, ("")?, payload]. Returns false if the peer is gone (never blocks).
bool send_router(zmq::socket_t& socket, const Peer& peer, zmq::message_t payload);
// Sends [routing_id, ("")?, frames...]: the message last, the payload frames it refers to
// before it (PROTOCOL.md §2.1). Returns false if the peer is gone (never blocks).
bool send_router(zmq::socket_t& socket, const Peer& peer, std::span<zmq::message_t> frames);
bool send_router(zmq::socket_t& socket, const Peer& peer, std::span<const std::uint8_t> payload);

// A finished builder's buffer as a message that owns it, not copied (a 1 MiB payload was
// copied once more into each message before).
zmq::message_t message_of(flatbuffers::FlatBufferBuilder& fbb);

// A buffer allocated with new[] (a finished Batch, BatchWriter::release) as a message that shows
// `bytes`, within it, without copying them; libzmq frees the buffer with delete[] once it has
// sent it (on its I/O thread, after send() has returned). The caller must not touch it after.
zmq::message_t message_owning(std::uint8_t* raw, std::span<const std::uint8_t> bytes);

// The finished message for a builder that is reused for the next one (cleared on return): up
// to `copy_max` bytes it is copied into a message of its own (one allocation, and the builder
// keeps its buffer), larger ones are handed over as message_of does (no copy of a big payload).
// message_of costs three allocations per message (the builder's next buffer, the hand-over,
// libzmq's reference count): on the small-call hot path that was most of musterd's malloc.
inline constexpr std::size_t kCopyMessageMax = 16 * 1024;
zmq::message_t take_message(flatbuffers::FlatBufferBuilder& fbb, std::size_t copy_max = kCopyMessageMax);

// The builders of one sending thread: `get(need)` gives the reused one, cleared, for a message
// of up to kCopyMessageMax bytes, and a fresh one of `need` bytes for a larger message (built in
// one buffer, then handed over whole by take_message). Not for two threads at once.
class MessageBuilders {
 public:
  flatbuffers::FlatBufferBuilder& get(std::size_t need = 0);

 private:
  flatbuffers::FlatBufferBuilder reused_{4096}, big_{0};
};

inline std::span<const std::uint8_t> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::uint8_t*>(m.data()), m.size()};
}

}  // namespace muster
