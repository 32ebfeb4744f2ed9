// zap_handler.hpp — the ZAP (RFC 27) endpoint of the daemon: libzmq asks it, for every CURVE
// handshake on the daemon's tcp:// sockets, whether the client key may connect.
// Owns: the REP socket on inproc://zeromq.zap.01 and the ZAP frame format.
// Must never: decide anything itself; keys::zap_decide is the policy (fail closed).
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "muster/identity_store.hpp"
#include "muster/socket_poll.hpp"

namespace muster::broker {

// The six reply frames (RFC 27: version, request id, status code, status text, user id,
// metadata) to one ZAP request given as its frames. Socket-free: the ZapHandler sends what
// this returns, and tests/fuzz/fuzz_zap_request.cpp runs it on arbitrary frames. A request
// that is not a well-formed RFC 27 request is refused (fail closed).
std::array<std::string, 6> answer_zap_request(const keys::IdentityStore& identities,
                                              const std::vector<std::string_view>& frames);

class ZapHandler {
 public:
  // Binds inproc://zeromq.zap.01 in `ctx`: must happen before any CURVE socket binds.
  ZapHandler(zmq::context_t& ctx, const keys::IdentityStore& identities);
  PolledSocket& socket() { return socket_; }  // for the loop's wait (SocketWait)
  // Answers every waiting request. Never blocks.
  void serve();

 private:
  PolledSocket socket_;
  const keys::IdentityStore& identities_;
};

}  // namespace muster::broker
