// baseline_worker.cpp — see baseline_worker.hpp.
#include "baseline_worker.hpp"

#include <chrono>
#include <cerrno>

#include "common.hpp"
#include "muster/process.hpp"

namespace muster::bench {

int run_baseline_worker(const std::string& id, const std::string& request_address,
                        const std::string& response_address, const std::string& curve_server_key,
                        bool broadcast, const BaselineAnswer& answer) {
  muster::SignalPipe signals;
  zmq::context_t ctx{1};
  zmq::socket_t sub{ctx, zmq::socket_type::sub};
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  for (auto* s : {&sub, &dealer}) {  // as the C++ SDK sets them (worker/cpp/worker.cpp)
    s->set(zmq::sockopt::linger, 1000);
    s->set(zmq::sockopt::rcvhwm, 100000);
    s->set(zmq::sockopt::sndhwm, 100000);
    if (!curve_server_key.empty()) {
      auto keys = curve_keypair();
      s->set(zmq::sockopt::curve_serverkey, curve_server_key);
      s->set(zmq::sockopt::curve_publickey, keys.public_key);
      s->set(zmq::sockopt::curve_secretkey, keys.secret_key);
    }
  }
  sub.set(zmq::sockopt::subscribe, "w:" + id + ":");
  if (broadcast) sub.set(zmq::sockopt::subscribe, "b:");
  sub.connect(request_address);
  dealer.connect(response_address);

  bool confirmed = false;
  auto hello = [&] {
    dealer.send(zmq::str_buffer("H"), zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(id), zmq::send_flags::dontwait);
  };
  hello();
  auto last_hello = std::chrono::steady_clock::now();
  zmq::pollitem_t items[] = {{sub.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, signals.fd(), ZMQ_POLLIN, 0}};
  while (!signals.triggered()) {
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(confirmed ? 1000 : 50));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (items[1].revents & ZMQ_POLLIN) signals.drain();
    if (!confirmed && std::chrono::steady_clock::now() - last_hello > std::chrono::milliseconds(50)) {
      hello();
      last_hello = std::chrono::steady_clock::now();
    }
    for (int i = 0; i < 256; ++i) {
      zmq::message_t topic, rid, request;
      if (!sub.recv(topic, zmq::recv_flags::dontwait)) break;
      if (!topic.more()) continue;
      (void)sub.recv(rid, zmq::recv_flags::none);
      if (!rid.more()) {
        if (!confirmed && rid.size() == 1 && *rid.data<char>() == 'C') {
          confirmed = true;
          dealer.send(zmq::str_buffer("R"), zmq::send_flags::sndmore);
          dealer.send(zmq::buffer(id), zmq::send_flags::dontwait);
        }
        continue;
      }
      (void)sub.recv(request, zmq::recv_flags::none);
      while (request.more()) (void)sub.recv(request, zmq::recv_flags::none);
      answer(rid, request, dealer);
    }
  }
  return 0;
}

}  // namespace muster::bench
