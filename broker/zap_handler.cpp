// zap_handler.cpp — see zap_handler.hpp.
#include "zap_handler.hpp"

#include <vector>

#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/zap_policy.hpp"

namespace muster::broker {

std::array<std::string, 6> answer_zap_request(const keys::IdentityStore& identities,
                                              const std::vector<std::string_view>& frames) {
  // version, request id, domain, address, routing id, mechanism, credentials...
  keys::ZapVerdict verdict;
  if (frames.size() < 6 || frames[0] != "1.0") {
    verdict.status_code = "500";
    verdict.status_text = "malformed ZAP request";
  } else {
    keys::ZapRequest req;
    req.domain = frames[2];
    req.address = frames[3];
    req.mechanism = frames[5];
    if (frames.size() >= 7)
      req.client_key = {reinterpret_cast<const std::uint8_t*>(frames[6].data()), frames[6].size()};
    verdict = keys::zap_decide(identities, req);
    if (!verdict.allow)
      spdlog::warn("refused a {} handshake from {} on {}: {} (key {})", req.mechanism, req.address,
                   req.domain, verdict.status_text, keys::key_fingerprint(verdict.public_key));
  }
  std::string request_id = frames.size() > 1 ? std::string(frames[1]) : std::string();
  return {"1.0", std::move(request_id), std::move(verdict.status_code),
          std::move(verdict.status_text), std::move(verdict.user_id), ""};
}

ZapHandler::ZapHandler(zmq::context_t& ctx, const keys::IdentityStore& identities)
    : socket_(ctx, zmq::socket_type::rep), identities_(identities) {
  socket_.use().set(zmq::sockopt::linger, 0);
  socket_.use().bind("inproc://zeromq.zap.01");
}

void ZapHandler::serve() {
  for (;;) {
    std::vector<zmq::message_t> frames;
    auto recv = [&](zmq::socket_t& s) {
      zmq::message_t part;
      if (!s.recv(part, zmq::recv_flags::dontwait)) return false;
      bool more = part.more();
      frames.push_back(std::move(part));
      while (more) {
        zmq::message_t next;
        (void)s.recv(next, zmq::recv_flags::none);
        more = next.more();
        frames.push_back(std::move(next));
      }
      return true;
    };
    if (!socket_.read(recv)) return;  // read to the end: the loop's wait need not ask it
    std::vector<std::string_view> views;
    views.reserve(frames.size());
    for (auto& f : frames) views.push_back(f.to_string_view());
    auto reply = answer_zap_request(identities_, views);
    for (std::size_t i = 0; i < reply.size(); ++i)
      socket_.use().send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace muster::broker
