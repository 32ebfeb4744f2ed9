// zap_policy.hpp — the answer to a ZAP (ZeroMQ authentication, RFC 27) request, without the
// socket: which CURVE client keys a daemon socket accepts.
// The daemon sets ZMQ_ZAP_DOMAIN on each CURVE server socket to one of the domains below and
// runs the ZAP REP socket (inproc://zeromq.zap.01) itself; for each request it calls
// zap_decide() and sends the verdict back (status_code, status_text, user_id).
// Owns: domain → required role, and "unknown domain or mechanism → refuse" (fail closed).
// Must never: accept a non-CURVE mechanism, an unknown domain, an unknown or revoked key, or a
// key of the wrong role.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "muster/identity_store.hpp"
#include "muster/role.hpp"

namespace muster::keys {

inline constexpr std::string_view kZapDomainWorker = "muster.worker";  // request PUB, response ROUTER
inline constexpr std::string_view kZapDomainClient = "muster.client";  // client ROUTER (client, admin)
inline constexpr std::string_view kZapDomainEnroll = "muster.enroll";  // enrollment ROUTER: any key

// The role a domain requires; nullopt for the enrollment domain and for unknown domains.
std::optional<Role> zap_domain_role(std::string_view domain);

struct ZapRequest {
  std::string_view domain;     // frame 3
  std::string_view address;    // frame 4 (peer IP)
  std::string_view mechanism;  // frame 6: must be "CURVE"
  std::span<const std::uint8_t> client_key;  // frame 7 for CURVE: the 32-byte client public key
};

struct ZapVerdict {
  bool allow = false;
  std::string status_code;  // "200" allow, "400" refuse
  std::string status_text;  // short reason (goes back to libzmq, not to the peer)
  // allow: the identity id on worker/client domains; on the enrollment domain the client's
  // Z85 public key, so the enrollment socket reads the connection's key from the message
  // property "User-Id" (zmq_msg_gets) and passes it to Enrollment::enroll.
  std::string user_id;
  std::string public_key;   // the client key in Z85 (for the enrollment check and logs)
  std::optional<Identity> identity;  // allow on worker/client domains
};

ZapVerdict zap_decide(const IdentityStore& identities, const ZapRequest& req);

}  // namespace muster::keys
