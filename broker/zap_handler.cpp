// zap_handler.cpp — see zap_handler.hpp.
#include "zap_handler.hpp"

#include <vector>

#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/zap_policy.hpp"

namespace muster::broker {

ZapHandler::ZapHandler(zmq::context_t& ctx, const keys::IdentityStore& identities)
    : socket_(ctx, zmq::socket_type::rep), identities_(identities) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
}

void ZapHandler::serve() {
  for (;;) {
    std::vector<zmq::message_t> frames;
    zmq::message_t part;
    if (!socket_.recv(part, zmq::recv_flags::dontwait)) return;
    bool more = part.more();
    frames.push_back(std::move(part));
    while (more) {
      zmq::message_t next;
      (void)socket_.recv(next, zmq::recv_flags::none);
      more = next.more();
      frames.push_back(std::move(next));
    }
    // version, request id, domain, address, routing id, mechanism, credentials...
    keys::ZapVerdict verdict;
    if (frames.size() >= 6) {
      keys::ZapRequest req;
      req.domain = frames[2].to_string_view();
      req.address = frames[3].to_string_view();
      req.mechanism = frames[5].to_string_view();
      if (frames.size() >= 7)
        req.client_key = {static_cast<const std::uint8_t*>(frames[6].data()), frames[6].size()};
      verdict = keys::zap_decide(identities_, req);
      if (!verdict.allow)
        spdlog::warn("refused a {} handshake from {} on {}: {} (key {})", req.mechanism, req.address,
                     req.domain, verdict.status_text, keys::key_fingerprint(verdict.public_key));
    } else {
      verdict.status_code = "500";
      verdict.status_text = "malformed ZAP request";
    }
    std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
    socket_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(verdict.status_code), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(verdict.status_text), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(verdict.user_id), zmq::send_flags::sndmore);
    socket_.send(zmq::str_buffer(""), zmq::send_flags::none);
  }
}

}  // namespace muster::broker
