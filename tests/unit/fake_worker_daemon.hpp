// fake_worker_daemon.hpp — a scripted fake musterd for the C++ worker SDK's unit tests
// (worker_sdk_test, worker_chunk_resume_test): a PUB and a ROUTER bound in a private
// directory, playing the daemon's side of PROTOCOL.md §7 message by message, for the sequences
// a real one cannot be made to produce on cue.
// Must never: wait unbounded (every receive has a timeout), or outlive its test.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <zmq.hpp>

#include "temp_dir.hpp"
#include "muster/align.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/worker.hpp"

namespace muster::test {

using namespace std::chrono_literals;

// Plays the daemon's side of PROTOCOL.md §7 message by message: a PUB and a ROUTER bound in a
// private directory. Every wait is bounded.
struct FakeDaemon {
  muster::test::TempDir dir;
  zmq::context_t ctx;
  zmq::socket_t pub{ctx, zmq::socket_type::pub}, router{ctx, zmq::socket_type::router};
  std::string request_address = "ipc://" + (dir.path / "request.sock").string();
  std::string response_address = "ipc://" + (dir.path / "response.sock").string();

  struct Received {
    std::string peer;
    zmq::message_t bytes;
    const wire::WorkerMessage* msg = nullptr;
    wire::WorkerBody type() const { return msg->body_type(); }
  };

  FakeDaemon() {
    for (auto* s : {&pub, &router}) s->set(zmq::sockopt::linger, 0);
    pub.bind(request_address);
    router.bind(response_address);
  }

  WorkerOptions options(std::string worker_id) const {
    return {.worker_id = std::move(worker_id),
            .request_address = request_address,
            .response_address = response_address,
            .drain_timeout = 60000ms,
            .handle_signals = false};
  }

  // The next message from a worker, or nullopt after `timeout`. attach() may have sent several
  // confirming Pings before the first Pong came back (a loaded machine): the Pong to each later
  // one (its seq, once, listing no answers) is answered and skipped, not handed to the test.
  std::optional<Received> recv(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      auto r = recv_any(std::max(left, 0ms));
      if (!r || r->type() != wire::WorkerBody::Pong) return r;
      const auto* pong = r->msg->body_as_Pong();
      auto late = std::find(late_confirmations.begin(), late_confirmations.end(), pong->seq());
      if (late == late_confirmations.end() || (pong->answered() && pong->answered()->size() > 0)) return r;
      late_confirmations.erase(late);
      reply(r->peer, ack());
    }
  }

  // The next message from a worker, whatever it is, or nullopt after `timeout`.
  std::optional<Received> recv_any(std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    Received r;
    zmq::message_t peer;
    REQUIRE(router.recv(peer));
    REQUIRE(peer.more());
    REQUIRE(router.recv(r.bytes));
    REQUIRE_FALSE(r.bytes.more());
    align_payload(r.bytes);
    r.peer = peer.to_string();
    r.msg = read_worker_message(bytes_of(r.bytes));
    REQUIRE(r.msg != nullptr);
    return r;
  }

  // The next message, which must be of `type`; Pongs before it are answered Ack if `skip_pongs`.
  Received expect(wire::WorkerBody type, bool skip_pongs = false, std::chrono::milliseconds timeout = 10000ms) {
    for (;;) {
      auto r = recv(timeout);
      REQUIRE_MESSAGE(r.has_value(), "no ", wire::EnumNameWorkerBody(type), " from the worker");
      if (skip_pongs && r->type() == wire::WorkerBody::Pong && type != wire::WorkerBody::Pong) {
        reply(r->peer, ack());
        continue;
      }
      REQUIRE_MESSAGE(r->type() == type, "expected ", wire::EnumNameWorkerBody(type), ", got ",
                      wire::EnumNameWorkerBody(r->type()));
      return std::move(*r);
    }
  }

  void reply(const std::string& peer, zmq::message_t body) {
    router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    router.send(std::move(body), zmq::send_flags::none);
  }
  void publish(const std::string& topic, zmq::message_t body) {
    pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    pub.send(std::move(body), zmq::send_flags::none);
  }

  template <class Build>
  static zmq::message_t message(wire::DaemonBody type, Build build) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = build(fbb);
    fbb.Finish(wire::CreateDaemonMessage(fbb, type, body.Union()), wire::DaemonMessageIdentifier());
    return zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize());
  }
  bool asked_no_answer_acks = false;  // what the last Attach asked for
  bool asked_idle_pongs = false;
  bool asked_direct = false;
  static zmq::message_t ack() {
    return message(wire::DaemonBody::Ack, [](auto& fbb) { return wire::CreateAck(fbb); });
  }
  // The reply to the Pong with `seq` of a worker without answer Acks (§7.7).
  static zmq::message_t pong_ack(std::uint64_t seq, std::vector<std::uint64_t> missing) {
    return message(wire::DaemonBody::Ack, [&](auto& fbb) { return wire::CreateAckDirect(fbb, false, seq, &missing); });
  }
  static zmq::message_t forgotten() {  // what musterd answers a worker it does not know
    return message(wire::DaemonBody::Rejected, [](auto& fbb) {
      return wire::CreateRejectedDirect(fbb, ErrorCode::InvalidRequest, "unknown worker", true);
    });
  }
  // A chunk of the caller's input stream, and a Credit of the caller for an output stream
  // (PROTOCOL.md §7.9), as musterd forwards them on the worker's topic.
  static zmq::message_t chunk(std::uint64_t id, std::uint32_t stream, std::uint64_t offset,
                              std::span<const std::uint8_t> data) {
    return message(wire::DaemonBody::Chunk, [&](auto& fbb) {
      return wire::CreateChunk(fbb, id, stream, offset, fbb.CreateVector(data.data(), data.size()));
    });
  }
  static zmq::message_t credit(std::uint64_t id, std::uint32_t stream, std::uint64_t bytes,
                               std::optional<std::uint64_t> resume = std::nullopt) {
    return message(wire::DaemonBody::Credit, [&](auto& fbb) {
      return wire::CreateCredit(fbb, id, stream, 0, bytes, resume.value_or(0), resume.has_value());
    });
  }
  static zmq::message_t ping(std::uint64_t seq, const std::string& instance) {
    return message(wire::DaemonBody::Ping, [&](auto& fbb) { return wire::CreatePingDirect(fbb, seq, instance.c_str()); });
  }
  static zmq::message_t work_request(std::uint64_t id, const std::string& node, const Map& inputs,
                                     bool inputs_in_frame = false, std::uint64_t chunk_window_bytes = 0,
                                     std::uint64_t timeout_ms = 10000) {
    return message(wire::DaemonBody::WorkRequest, [&](auto& fbb) {
      auto in = create_nested_values(fbb, inputs);
      auto name = fbb.CreateString(node);
      wire::WorkRequestBuilder w(fbb);
      w.add_request_id(id);
      w.add_node(name);
      if (!inputs_in_frame) w.add_inputs(in);
      w.add_timeout_ms(timeout_ms);
      w.add_inputs_in_frame(inputs_in_frame);
      w.add_chunk_window_bytes(chunk_window_bytes);
      return w.Finish();
    });
  }

  // Attach -> Attached -> confirming pings on the worker's topic until a Pong -> Ack (§7.1).
  // No broadcast pings follow unless the test sends them: `ping_interval_ms` x 3 is how long
  // the worker waits before it reconnects.
  // `no_answer_acks`: what Attached says (false: a daemon that does not know PROTOCOL.md §7.7).
  // `idle_pong_every`: what Attached grants (0: every ping, §7.3).
  std::string attach(const std::string& worker_id, std::uint64_t max_message_bytes = 16u << 20,
                     std::uint64_t ping_interval_ms = 60000, bool no_answer_acks = false,
                     std::uint32_t idle_pong_every = 0) {
    auto a = expect(wire::WorkerBody::Attach);
    asked_no_answer_acks = a.msg->body_as_Attach()->no_answer_acks();
    asked_idle_pongs = a.msg->body_as_Attach()->idle_pongs();
    asked_direct = a.msg->body_as_Attach()->direct();
    reply(a.peer, message(wire::DaemonBody::Attached, [&](auto& fbb) {
            return wire::CreateAttachedDirect(fbb, worker_id.c_str(), "inst-1", ("w:" + worker_id + ":").c_str(), "b:",
                                              ping_interval_ms, 3, max_message_bytes, no_answer_acks,
                                              /*batches=*/false, idle_pong_every);
          }));
    // The confirming Ping (§7.1) goes again every 50 ms until a Pong comes: the SUB may not
    // have subscribed to the worker topic yet. Pongs to the others are skipped by recv().
    std::vector<std::uint64_t> sent;
    for (;;) {
      REQUIRE(sent.size() < 200);
      sent.push_back(next_confirming_seq++);
      publish("w:" + worker_id + ":", ping(sent.back(), "inst-1"));
      if (auto r = recv_any(50ms)) {
        REQUIRE(r->type() == wire::WorkerBody::Pong);
        reply(r->peer, ack());
        // Those sent before it were dropped (the SUB had not subscribed) or answered first.
        auto taken = std::find(sent.begin(), sent.end(), r->msg->body_as_Pong()->seq());
        REQUIRE(taken != sent.end());
        late_confirmations.insert(late_confirmations.end(), taken + 1, sent.end());
        return r->peer;
      }
    }
  }
  // attach()'s confirming Pings are numbered from here, apart from the tests' own.
  std::uint64_t next_confirming_seq = 1'000'000'000;
  std::vector<std::uint64_t> late_confirmations;  // confirming Pings sent after the one answered first

  // Attach -> Attached{direct} (PROTOCOL.md §7.10, without answer Acks): from then on the
  // test sends everything to the returned peer with reply(); nothing is confirmed yet.
  std::string attach_direct(const std::string& worker_id, std::uint32_t idle_pong_every = 0) {
    auto a = expect(wire::WorkerBody::Attach);
    asked_direct = a.msg->body_as_Attach()->direct();
    reply(a.peer, attached_direct(worker_id, idle_pong_every));
    return a.peer;
  }
  static zmq::message_t attached_direct(const std::string& worker_id, std::uint32_t idle_pong_every = 0) {
    return message(wire::DaemonBody::Attached, [&](auto& fbb) {
      return wire::CreateAttachedDirect(fbb, worker_id.c_str(), "inst-1", ("w:" + worker_id + ":").c_str(), "b:",
                                        60000, 3, 16u << 20, /*no_answer_acks=*/true, /*batches=*/false,
                                        idle_pong_every, /*direct=*/true);
    });
  }
};


}  // namespace muster::test
