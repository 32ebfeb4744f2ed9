// fake_client_daemon.hpp — musterd's client socket, scripted, for the C++ client library's unit
// tests (client_chunk_resume_test.cpp, client_call_resume_test.cpp): a ROUTER the Client connects
// to, what the Client sends (checked by type), replies to it, and a connection that breaks.
// Must never: decide anything the test does not script, or wait without a bound.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "temp_dir.hpp"
#include "muster/align.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/value.hpp"

namespace muster::test {

using namespace std::chrono_literals;

// The daemon's client socket, scripted: what the Client sends, and replies to it.
struct FakeClientDaemon {
  muster::test::TempDir dir;
  zmq::context_t ctx;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string address = "ipc://" + (dir.path / "client.sock").string();
  std::string peer;

  FakeClientDaemon() {
    router.set(zmq::sockopt::linger, 0);
    router.bind(address);
  }

  // The connection breaks, as a network blip breaks it: what was on the way is lost, and the
  // client connects again to the same address (the same daemon, as far as it can tell).
  void break_connection() {
    router.close();
    router = zmq::socket_t(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.bind(address);
  }
  // The daemon goes away for good (nothing binds the address any more).
  void go_away() { router.close(); }
  // Whether the client sent something (without waiting).
  bool has_message() {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(0));
    return item.revents & ZMQ_POLLIN;
  }

  struct Received {
    zmq::message_t bytes;
    const wire::ClientMessage* msg = nullptr;
  };
  Received expect(wire::ClientBody type, std::chrono::milliseconds timeout = 10000ms) {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    REQUIRE_MESSAGE((item.revents & ZMQ_POLLIN), "no ", wire::EnumNameClientBody(type), " from the client");
    zmq::message_t id;
    Received r;
    REQUIRE(router.recv(id));
    peer = id.to_string();
    REQUIRE(router.recv(r.bytes));
    REQUIRE_FALSE(r.bytes.more());
    align_payload(r.bytes);
    r.msg = read_client_message(bytes_of(r.bytes));
    REQUIRE(r.msg != nullptr);
    REQUIRE_MESSAGE(r.msg->body_type() == type, "expected ", wire::EnumNameClientBody(type), ", got ",
                    wire::EnumNameClientBody(r.msg->body_type()));
    return r;
  }

  template <class Build>
  void reply(std::uint64_t request_id, wire::ReplyBody type, Build build) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = build(fbb);
    fbb.Finish(wire::CreateClientReply(fbb, request_id, type, body.Union()), wire::ClientReplyIdentifier());
    router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    router.send(zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize()), zmq::send_flags::none);
  }
  void credit(std::uint64_t id, std::uint32_t stream, std::uint64_t bytes, std::optional<std::uint64_t> resume = {}) {
    reply(id, wire::ReplyBody::Credit, [&](auto& fbb) {
      return wire::CreateCredit(fbb, id, stream, 0, bytes, resume.value_or(0), resume.has_value());
    });
  }
  void chunk(std::uint64_t id, std::uint32_t stream, std::uint64_t offset, std::span<const std::uint8_t> data) {
    reply(id, wire::ReplyBody::Chunk, [&](auto& fbb) {
      return wire::CreateChunk(fbb, id, stream, offset, fbb.CreateVector(data.data(), data.size()));
    });
  }
  void result(std::uint64_t id, const Map& outputs) {
    reply(id, wire::ReplyBody::Result,
          [&](auto& fbb) { return wire::CreateResult(fbb, id, create_nested_values(fbb, outputs)); });
  }
  // The chunks of `stream` the client sends until one ends at `end`: [offset, data] in order.
  std::vector<std::pair<std::uint64_t, Bytes>> chunks_until(std::uint64_t end) {
    std::vector<std::pair<std::uint64_t, Bytes>> out;
    for (;;) {
      auto r = expect(wire::ClientBody::Chunk);
      auto* c = r.msg->body_as_Chunk();
      out.emplace_back(c->offset(), Bytes(c->data()->begin(), c->data()->end()));
      if (c->offset() + c->data()->size() == end) return out;
    }
  }
};

}  // namespace muster::test
