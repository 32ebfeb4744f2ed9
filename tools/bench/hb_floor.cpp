// hb_floor.cpp — muster-bench-hbfloor: the baseline of the scale scenario. The heartbeat
// traffic of musterd with N idle workers, in bare libzmq and nothing else: a PUB broadcasts a
// ping every interval, each of N (SUB, DEALER) pairs answers with a pong, and a ROUTER answers
// each pong with an ack, with musterd's socket types, options and message sizes (FlatBuffers
// Ping ~60 B, Pong ~90 B, Ack ~40 B). Its CPU and RSS are what libzmq itself costs for that
// many workers, the floor under musterd's idle figures.
//
//   muster-bench-hbfloor server  --request-address A --response-address B [--ping-ms 1000] [--no-ack]
//   muster-bench-hbfloor clients --request-address A --response-address B --count N
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "muster/process.hpp"

namespace {

int server(const std::string& request, const std::string& response, int ping_ms, bool ack) {
  muster::SignalPipe signals;
  zmq::context_t ctx{1};
  zmq::socket_t pub{ctx, zmq::socket_type::pub}, router{ctx, zmq::socket_type::router};
  for (auto* s : {&pub, &router}) {  // as musterd sets them
    s->set(zmq::sockopt::linger, 2000);
    s->set(zmq::sockopt::sndhwm, 100000);
    s->set(zmq::sockopt::rcvhwm, 100000);
  }
  router.set(zmq::sockopt::router_mandatory, 1);
  pub.bind(request);
  router.bind(response);
  const std::string ping(60, 'p'), ack_body(40, 'a');
  auto next = std::chrono::steady_clock::now();
  zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, signals.fd(), ZMQ_POLLIN, 0}};
  while (!signals.triggered()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next) {
      pub.send(zmq::str_buffer("b:"), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(ping), zmq::send_flags::none);
      next += std::chrono::milliseconds(ping_ms);
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now());
    try {
      zmq::poll(items, 2, std::max(wait, std::chrono::milliseconds(0)));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (items[1].revents & ZMQ_POLLIN) signals.drain();
    zmq::message_t rid, body;
    for (int i = 0; i < 256 && router.recv(rid, zmq::recv_flags::dontwait); ++i) {
      while (rid.more() && router.recv(body, zmq::recv_flags::none) && body.more()) {
      }
      if (!ack) continue;
      try {
        router.send(rid, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        router.send(zmq::buffer(ack_body), zmq::send_flags::dontwait);
      } catch (const zmq::error_t&) {
      }
    }
  }
  return 0;
}

int clients(const std::string& request, const std::string& response, int count) {
  muster::SignalPipe signals;
  zmq::context_t ctx{1};
  ctx.set(zmq::ctxopt::max_sockets, 2 * count + 64);
  std::vector<std::unique_ptr<zmq::socket_t>> subs, dealers;
  std::vector<zmq::pollitem_t> items;
  for (int i = 0; i < count; ++i) {
    subs.push_back(std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::sub));
    dealers.push_back(std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer));
    subs.back()->set(zmq::sockopt::linger, 0);
    dealers.back()->set(zmq::sockopt::linger, 0);
    subs.back()->set(zmq::sockopt::subscribe, "w:hb-" + std::to_string(i) + ":");
    subs.back()->set(zmq::sockopt::subscribe, "b:");
    subs.back()->connect(request);
    dealers.back()->connect(response);
    items.push_back({subs.back()->handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({dealers.back()->handle(), 0, ZMQ_POLLIN, 0});
  }
  items.push_back({nullptr, signals.fd(), ZMQ_POLLIN, 0});
  const std::string pong(90, 'q');
  while (!signals.triggered()) {
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(1000));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (items.back().revents & ZMQ_POLLIN) signals.drain();
    for (int i = 0; i < count; ++i) {
      zmq::message_t a, b;
      while (subs[i]->recv(a, zmq::recv_flags::dontwait)) {
        while (a.more()) (void)subs[i]->recv(a, zmq::recv_flags::none);
        dealers[i]->send(zmq::buffer(pong), zmq::send_flags::dontwait);
      }
      while (dealers[i]->recv(b, zmq::recv_flags::dontwait)) {
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string request, response;
  int ping_ms = 1000, count = 250;
  bool no_ack = false;
  CLI::App app{"muster-bench-hbfloor — musterd's idle heartbeat traffic in bare libzmq.",
               "muster-bench-hbfloor"};
  app.require_subcommand(1);
  auto* srv = app.add_subcommand("server", "PUB pings + ROUTER acks");
  auto* cli = app.add_subcommand("clients", "many SUB + DEALER pairs answering pings");
  for (auto* sc : {srv, cli}) {
    sc->add_option("--request-address", request, "PUB endpoint")->required();
    sc->add_option("--response-address", response, "ROUTER endpoint")->required();
  }
  srv->add_option("--ping-ms", ping_ms, "Ping interval")->capture_default_str();
  srv->add_flag("--no-ack", no_ack, "Do not answer pongs");
  cli->add_option("--count", count, "Pairs in this process")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (*srv) return server(request, response, ping_ms, !no_ack);
  return clients(request, response, count);
}
