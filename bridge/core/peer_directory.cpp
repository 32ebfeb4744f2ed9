// peer_directory.cpp — see peer_directory.hpp.
#include "muster/bridge/peer_directory.hpp"

namespace muster::bridge {

void PeerDirectory::opened(PeerId peer, const std::string& user, const std::string& token_node) {
  auto& info = peers_[peer];
  info.user = user;
  by_user_[user].insert(peer);
  if (!token_node.empty()) {
    info.names.insert(token_node);
    orphaned_.erase({user, token_node});
  }
}

std::vector<std::string> PeerDirectory::closed(PeerId peer) {
  std::vector<std::string> orphans;
  auto it = peers_.find(peer);
  if (it == peers_.end()) return orphans;
  PeerInfo info = std::move(it->second);
  peers_.erase(it);
  auto u = by_user_.find(info.user);
  if (u != by_user_.end()) {
    u->second.erase(peer);
    if (u->second.empty()) by_user_.erase(u);
  }
  for (auto& name : info.names) {
    if (!route(info.user, name).servers.empty()) continue;  // another open peer serves it
    orphaned_.insert({info.user, name});
    orphans.push_back(name);
  }
  return orphans;
}

void PeerDirectory::answered(PeerId peer, const std::string& node) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || node.empty()) return;
  it->second.names.insert(node);
  orphaned_.erase({it->second.user, node});
}

void PeerDirectory::registered(const std::string& user, const std::string& node) { orphaned_.erase({user, node}); }

void PeerDirectory::expired(const std::string& user, const std::string& node) { orphaned_.erase({user, node}); }

PeerDirectory::Route PeerDirectory::route(const std::string& user, const std::string& node) const {
  Route r;
  auto u = by_user_.find(user);
  if (u != by_user_.end()) {
    for (PeerId id : u->second) {
      r.recipients.push_back(id);
      if (peers_.at(id).names.contains(node)) r.servers.push_back(id);
    }
  }
  r.orphaned = orphaned_.contains({user, node});
  return r;
}

bool PeerDirectory::serves(PeerId peer, const std::string& node) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.names.contains(node);
}

bool PeerDirectory::orphaned(const std::string& user, const std::string& node) const {
  return orphaned_.contains({user, node});
}

}  // namespace muster::bridge
