// daemon_traps_test.cpp — the two PUB/SUB traps of DESIGN.md, closed end to end: a real musterd
// process, a hand-driven worker (raw SUB + DEALER sockets speaking the wire protocol byte by
// byte) and a raw client.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include <zmq.hpp>

#include "muster/align.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/value.hpp"
#include "daemon_process.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;

namespace {

std::vector<std::uint8_t> worker_message(const std::string& worker_id, wire::WorkerBody type,
                                         flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<void> body) {
  finish_worker_message(fbb, worker_id, type, body);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

struct RawWorker {
  zmq::context_t& ctx;
  std::string id = "raw";
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  std::optional<zmq::socket_t> sub;
  std::string instance;
  std::string topic;  // Attached.topic

  RawWorker(zmq::context_t& c, const DaemonProcess& d) : ctx(c) {
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(d.endpoint("response"));
  }

  void send(const std::vector<std::uint8_t>& bytes) {
    dealer.send(zmq::message_t(bytes.data(), bytes.size()), zmq::send_flags::none);
  }

  const wire::DaemonMessage* reply(zmq::message_t& m) {
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 5000ms);
    REQUIRE((item.revents & ZMQ_POLLIN));
    REQUIRE(dealer.recv(m));
    align_payload(m);
    auto* msg = read_daemon_message(bytes_of(m));
    REQUIRE(msg != nullptr);
    return msg;
  }

  void attach() {
    flatbuffers::FlatBufferBuilder fbb;
    NodeSpec spec;
    spec.name = "n";
    std::vector<flatbuffers::Offset<wire::NodeSpec>> nodes = {encode_node_spec(fbb, spec)};
    auto body = wire::CreateAttachDirect(fbb, id.c_str(), "host", "raw-test", 1, "session-1", 1, &nodes);
    send(worker_message(id, wire::WorkerBody::Attach, fbb, body.Union()));
    zmq::message_t m;
    auto* msg = reply(m);
    REQUIRE(msg->body_type() == wire::DaemonBody::Attached);
    instance = msg->body_as_Attached()->instance()->str();
    topic = msg->body_as_Attached()->topic()->str();
    CHECK(topic == "w:local:raw:");  // over ipc the identity is the local owner
  }

  // After attach(): subscribes to Attached.topic (the only worker topic musterd applies) and b:.
  void connect_sub(const DaemonProcess& d) {
    sub.emplace(ctx, zmq::socket_type::sub);
    sub->set(zmq::sockopt::linger, 0);
    sub->set(zmq::sockopt::subscribe, topic);
    sub->set(zmq::sockopt::subscribe, "b:");
    sub->connect(d.endpoint("request"));
  }

  // The next published message within `wait`, or nullopt.
  std::optional<zmq::message_t> published(std::chrono::milliseconds wait) {
    zmq::pollitem_t item{sub->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t topic, payload;
    REQUIRE(sub->recv(topic));
    REQUIRE(topic.more());
    REQUIRE(sub->recv(payload));
    align_payload(payload);
    return payload;
  }

  void pong(std::uint64_t seq, std::vector<std::uint64_t> in_flight) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreatePongDirect(fbb, seq, instance.c_str(), &in_flight);
    send(worker_message(id, wire::WorkerBody::Pong, fbb, body.Union()));
    zmq::message_t m;
    CHECK(reply(m)->body_type() == wire::DaemonBody::Ack);
  }

  void result(std::uint64_t request_id) {
    flatbuffers::FlatBufferBuilder fbb;
    auto nested = encode_values(Map{{"ok", true}});
    fbb.ForceVectorAlignment(nested.size(), 1, 8);
    auto vec = fbb.CreateVector(nested);
    auto body = wire::CreateResult(fbb, request_id, vec);
    send(worker_message(id, wire::WorkerBody::Result, fbb, body.Union()));
    zmq::message_t m;
    auto* msg = reply(m);
    REQUIRE(msg->body_type() == wire::DaemonBody::Ack);
    CHECK_FALSE(msg->body_as_Ack()->late());
  }
};

void submit(zmq::socket_t& client, std::uint64_t rid) {
  flatbuffers::FlatBufferBuilder fbb;
  auto node = fbb.CreateString("n");
  wire::SubmitBuilder s(fbb);
  s.add_node(node);
  s.add_timeout_ms(20000);
  auto body = s.Finish();
  fbb.Finish(wire::CreateClientMessage(fbb, rid, wire::ClientBody::Submit, body.Union()),
             wire::ClientMessageIdentifier());
  client.send(zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize()), zmq::send_flags::none);
}

// Receives client replies until a terminal one for `rid`; counts the terminals seen.
int terminals_for(zmq::socket_t& client, std::uint64_t rid, std::chrono::milliseconds wait) {
  int count = 0;
  auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    zmq::pollitem_t item{client.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 50ms);
    if (!(item.revents & ZMQ_POLLIN)) continue;
    zmq::message_t m;
    REQUIRE(client.recv(m));
    align_payload(m);
    auto* r = read_client_reply(bytes_of(m));
    REQUIRE(r != nullptr);
    if (r->request_id() == rid &&
        (r->body_type() == wire::ReplyBody::Result || r->body_type() == wire::ReplyBody::Failure)) {
      CHECK(r->body_type() == wire::ReplyBody::Result);
      ++count;
    }
  }
  return count;
}

}  // namespace

TEST_CASE("slow joiner and silent loss are closed end to end") {
  DaemonProcess daemon;
  zmq::context_t ctx;
  zmq::socket_t client(ctx, zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(daemon.endpoint("client"));

  RawWorker w(ctx, daemon);
  w.attach();  // attached, but its SUB socket is not even connected yet
  submit(client, 1);
  std::this_thread::sleep_for(400ms);  // anything published now would be lost

  // Slow joiner: once the SUB path works, the daemon confirms it with a ping before any work.
  w.connect_sub(daemon);
  std::uint64_t request_id = 0;
  bool ponged = false;
  for (int i = 0; i < 40 && !request_id; ++i) {
    auto m = w.published(200ms);
    if (!m) continue;
    auto* msg = read_daemon_message(bytes_of(*m));
    REQUIRE(msg != nullptr);
    if (msg->body_type() == wire::DaemonBody::Ping) {
      w.pong(msg->body_as_Ping()->seq(), {});
      ponged = true;
    } else if (msg->body_type() == wire::DaemonBody::WorkRequest) {
      REQUIRE(ponged);  // no work before the PUB path was proven
      request_id = msg->body_as_WorkRequest()->request_id();
      CHECK(msg->body_as_WorkRequest()->attempt() == 1);
    }
  }
  REQUIRE(request_id != 0);
  w.result(request_id);
  CHECK(terminals_for(client, 1, 300ms) == 1);

  // Silent loss: the worker "never received" the next request and says so in its pong.
  submit(client, 2);
  std::uint64_t lost = 0, resent = 0;
  for (int i = 0; i < 40 && !resent; ++i) {
    auto m = w.published(200ms);
    if (!m) continue;
    auto* msg = read_daemon_message(bytes_of(*m));
    REQUIRE(msg != nullptr);
    if (msg->body_type() == wire::DaemonBody::WorkRequest) {
      auto* wr = msg->body_as_WorkRequest();
      if (!lost) {
        lost = wr->request_id();  // dropped on the floor, as PUB would at its high-water mark
      } else {
        CHECK(wr->request_id() == lost);
        CHECK(wr->attempt() == 2);
        resent = wr->request_id();
      }
    } else if (msg->body_type() == wire::DaemonBody::Ping) {
      w.pong(msg->body_as_Ping()->seq(), {});  // in_flight is empty: it never arrived
    }
  }
  REQUIRE(resent != 0);
  w.result(resent);
  CHECK(terminals_for(client, 2, 500ms) == 1);
}

TEST_CASE("a result over --max-message-bytes fails the call at once with WORKER_ERROR") {
  DaemonProcess daemon({"--max-message-bytes", "65536"});
  zmq::context_t ctx;
  zmq::socket_t client(ctx, zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(daemon.endpoint("client"));
  RawWorker w(ctx, daemon);
  w.attach();  // Attached names the topic to subscribe to
  w.connect_sub(daemon);
  submit(client, 1);  // 20 s deadline: before the fix the caller waited all of it
  std::uint64_t request_id = 0;
  for (int i = 0; i < 40 && !request_id; ++i) {
    auto m = w.published(200ms);
    if (!m) continue;
    auto* msg = read_daemon_message(bytes_of(*m));
    REQUIRE(msg != nullptr);
    if (msg->body_type() == wire::DaemonBody::Ping) w.pong(msg->body_as_Ping()->seq(), {});
    if (msg->body_type() == wire::DaemonBody::WorkRequest) request_id = msg->body_as_WorkRequest()->request_id();
  }
  REQUIRE(request_id != 0);

  flatbuffers::FlatBufferBuilder fbb;
  auto nested = encode_values(Map{{"blob", Value(Bytes(100 * 1024, 0x42))}});
  fbb.ForceVectorAlignment(nested.size(), 1, 8);
  auto vec = fbb.CreateVector(nested);
  auto body = wire::CreateResult(fbb, request_id, vec);
  w.send(worker_message(w.id, wire::WorkerBody::Result, fbb, body.Union()));
  zmq::message_t ack;
  auto* answer = w.reply(ack);  // acknowledged, so the worker stops sending it
  REQUIRE(answer->body_type() == wire::DaemonBody::Ack);

  zmq::pollitem_t item{client.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, 5000ms);
  REQUIRE((item.revents & ZMQ_POLLIN));
  zmq::message_t m;
  REQUIRE(client.recv(m));
  align_payload(m);
  auto* r = read_client_reply(bytes_of(m));
  REQUIRE(r != nullptr);
  REQUIRE(r->body_type() == wire::ReplyBody::Failure);
  CHECK(r->body_as_Failure()->code() == wire::ErrorCode::WorkerError);
  CHECK(std::string(r->body_as_Failure()->message()->str()).find("exceeds the daemon's limit of 65536 bytes") !=
        std::string::npos);
}
