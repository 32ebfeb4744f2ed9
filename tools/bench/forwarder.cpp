// forwarder.cpp — muster-bench-forwarder: the baseline. A bare libzmq broker with musterd's
// socket types and options and nothing else: no FlatBuffers, no registry, no deadlines, no
// acks. What it costs is the floor for any brokered call on this machine.
//
//   client DEALER ──[payload]──► ROUTER (client socket)
//                                  │ round robin over ready workers
//                                  ▼
//   worker SUB ◄──[topic, client routing id, payload]── PUB (request socket)
//   worker DEALER ──[client routing id, payload]──► ROUTER (response socket) ──► client
//
// Frames are moved, never copied. Workers announce themselves with ["H", id] on the DEALER
// until they see ["C"] on their topic (the forwarder publishes it on every hello: the same
// slow-joiner check musterd makes), then send ["R", id] and get work. A client payload shorter
// than 8 bytes is a query: the answer is the number of ready workers (4 bytes).
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "muster/allocator.hpp"
#include "muster/process.hpp"

int main(int argc, char** argv) {
  std::string client_address, request_address, response_address, curve_secret;
  CLI::App app{"muster-bench-forwarder — the bare-libzmq baseline broker of muster-bench.",
               "muster-bench-forwarder"};
  app.add_option("--client-address", client_address, "ROUTER endpoint for clients")->required();
  app.add_option("--request-address", request_address, "PUB endpoint for workers")->required();
  app.add_option("--response-address", response_address, "ROUTER endpoint for workers")->required();
  app.add_option("--curve-secret", curve_secret, "Z85 secret key: every socket is a CURVE server");
  CLI11_PARSE(app, argc, argv);
  muster::reuse_memory_for_large_messages();  // as musterd does: the baseline gets the same malloc

  muster::SignalPipe signals;
  zmq::context_t ctx{1};
  zmq::socket_t frontend{ctx, zmq::socket_type::router};
  zmq::socket_t pub{ctx, zmq::socket_type::pub};
  zmq::socket_t backend{ctx, zmq::socket_type::router};
  for (auto* s : {&frontend, &pub, &backend}) {  // as musterd sets them (broker/daemon.cpp)
    s->set(zmq::sockopt::linger, 2000);
    s->set(zmq::sockopt::sndhwm, 100000);
    s->set(zmq::sockopt::rcvhwm, 100000);
    s->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(32ll << 20));
    if (!curve_secret.empty()) {
      s->set(zmq::sockopt::curve_server, 1);
      s->set(zmq::sockopt::curve_secretkey, curve_secret);
    }
  }
  frontend.set(zmq::sockopt::router_mandatory, 1);
  backend.set(zmq::sockopt::router_mandatory, 1);
  frontend.bind(client_address);
  pub.bind(request_address);
  backend.bind(response_address);

  std::vector<std::string> ready;  // topics
  std::unordered_set<std::string> ready_set;
  std::size_t next = 0;
  std::vector<zmq::pollitem_t> items = {
      {frontend.handle(), 0, ZMQ_POLLIN, 0},
      {backend.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, signals.fd(), ZMQ_POLLIN, 0},
  };
  // To a client; with ROUTER_MANDATORY a client that is gone throws (EHOSTUNREACH): dropped.
  auto reply = [&](zmq::message_t& rid, zmq::message_t body) {
    try {
      if (frontend.send(rid, zmq::send_flags::sndmore | zmq::send_flags::dontwait))
        frontend.send(body, zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  };
  constexpr int kBatch = 256;
  while (!signals.triggered()) {
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(1000));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (items[2].revents & ZMQ_POLLIN) signals.drain();
    for (int i = 0; i < kBatch; ++i) {
      zmq::message_t rid, payload;
      if (!frontend.recv(rid, zmq::recv_flags::dontwait)) break;
      if (!rid.more()) continue;
      (void)frontend.recv(payload, zmq::recv_flags::none);
      while (payload.more()) (void)frontend.recv(payload, zmq::recv_flags::none);
      if (payload.size() < 8) {
        auto n = static_cast<std::uint32_t>(ready.size());
        reply(rid, zmq::message_t(&n, sizeof n));
        continue;
      }
      if (ready.empty()) {  // nobody to serve it: bounce an empty frame (an error)
        reply(rid, zmq::message_t());
        continue;
      }
      const std::string& topic = ready[next++ % ready.size()];
      pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
      pub.send(rid, zmq::send_flags::sndmore);
      pub.send(payload, zmq::send_flags::none);
    }
    for (int i = 0; i < kBatch; ++i) {
      zmq::message_t wrid, first, second;
      if (!backend.recv(wrid, zmq::recv_flags::dontwait)) break;
      if (!wrid.more()) continue;
      (void)backend.recv(first, zmq::recv_flags::none);
      if (!first.more()) continue;
      (void)backend.recv(second, zmq::recv_flags::none);
      while (second.more()) (void)backend.recv(second, zmq::recv_flags::none);
      if (first.size() == 1 && (*first.data<char>() == 'H' || *first.data<char>() == 'R')) {
        std::string topic = "w:" + second.to_string() + ":";
        if (*first.data<char>() == 'H') {
          pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
          pub.send(zmq::str_buffer("C"), zmq::send_flags::none);
        } else if (ready_set.insert(topic).second) {
          ready.push_back(topic);
        }
        continue;
      }
      reply(first, std::move(second));
    }
  }
  return 0;
}
