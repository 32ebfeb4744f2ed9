// ws_peer.hpp — one open WebSocket as the gateway sees it (the session template behind it is
// in ws_session.hpp). Everything here is used on the gateway's Asio thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "muster/gateway/jwt.hpp"
#include "muster/gateway/users.hpp"

namespace muster::gateway {

class WsPeer : public std::enable_shared_from_this<WsPeer> {
 public:
  virtual ~WsPeer() = default;
  // Sends a text message (copied: `text` may go once this returns); a peer more than the queue
  // limit behind is dropped.
  virtual void send(std::string_view text) = 0;
  // Closes with `code` (RFC 6455) once the messages already queued are written.
  virtual void close(std::uint16_t code = 1001) = 0;

  std::uint64_t id = 0;
  std::string user, workspace, remote;
  Role role = Role::Read;
  std::int64_t expires_at = 0;  // the token's expiry (unix s): the socket is closed then
  std::set<std::uint64_t> executions;  // open executions started on this socket
};

}  // namespace muster::gateway
