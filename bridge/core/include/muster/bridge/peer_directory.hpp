// peer_directory.hpp — the host mode's knowledge of which open WebSocket (peer) of a user
// serves which remote node names, and so where a call goes and when it is lost.
// Owns these rules (docs/BRIDGE.md, "Which connection serves a node"):
//  - a peer is known to serve a name when its WebSocket token was issued by registering that
//    name, or once it answered an event for that name;
//  - a call of a name goes to every open peer of the user (Hurozo publishes to the user's
//    stream); it waits on the peers known to serve the name, or on all of them when none is
//    known, and is lost when those have all closed;
//  - when the last open peer known to serve a name closes, the name is orphaned for that user:
//    it is routed nowhere (the caller gets NO_WORKER after the connect grace) until a peer
//    known to serve it opens, or the user registers the name again (a live worker does).
// Must never: route a call of one user to another user's peer. Socket-free, clock-free and
// not thread-safe (the host's mutex guards it).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace muster::bridge {

class PeerDirectory {
 public:
  using PeerId = std::uint64_t;

  struct Route {
    std::vector<PeerId> recipients;  // every open peer of the user: the event goes to each
    std::vector<PeerId> servers;     // those known to serve the name (may be empty)
    bool orphaned = false;           // the name's known peers all closed (see above)
    // Whether a call can be sent now.
    bool routable() const { return !servers.empty() || (!orphaned && !recipients.empty()); }
    // The peers whose closing loses the call: the known servers, else every recipient.
    const std::vector<PeerId>& watched() const { return servers.empty() ? recipients : servers; }
  };

  // A WebSocket of `user` opened; `token_node` is the name its token was issued for ("" if
  // unknown). Un-orphans that name.
  void opened(PeerId peer, const std::string& user, const std::string& token_node);
  // The peer closed. Returns the names it orphaned (for the log).
  std::vector<std::string> closed(PeerId peer);
  // The peer answered an event for `node`: it serves it.
  void answered(PeerId peer, const std::string& node);
  // `user` registered (or refreshed) `node`: a live worker serves it; it is no longer orphaned.
  void registered(const std::string& user, const std::string& node);
  // `user`'s registration of `node` expired: forget that it was orphaned.
  void expired(const std::string& user, const std::string& node);

  Route route(const std::string& user, const std::string& node) const;
  bool serves(PeerId peer, const std::string& node) const;
  bool orphaned(const std::string& user, const std::string& node) const;
  std::size_t peers() const { return peers_.size(); }

 private:
  struct PeerInfo {
    std::string user;
    std::set<std::string> names;  // known to serve
  };
  std::map<PeerId, PeerInfo> peers_;
  std::map<std::string, std::set<PeerId>> by_user_;
  std::set<std::pair<std::string, std::string>> orphaned_;  // (user, name)
};

}  // namespace muster::bridge
