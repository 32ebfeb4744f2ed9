// bridge_peer_directory.cpp — tests for which of a user's WebSockets serves which remote node
// (host mode): routing, when a call is lost, and orphaned names after a worker died.
#include <doctest/doctest.h>

#include "muster/bridge/peer_directory.hpp"

using namespace muster::bridge;
using Ids = std::vector<PeerDirectory::PeerId>;

TEST_CASE("bridge peer directory: a dead worker's node is orphaned, the other worker's is not") {
  PeerDirectory dir;
  dir.opened(1, "alice", "a");  // worker A connected with the token from registering "a"
  dir.opened(2, "alice", "b");
  auto ra = dir.route("alice", "a");
  CHECK(ra.recipients == Ids{1, 2});  // Hurozo publishes to the user's whole stream
  CHECK(ra.servers == Ids{1});
  CHECK(ra.watched() == Ids{1});      // the call is lost when worker A goes
  CHECK(ra.routable());

  CHECK(dir.closed(1) == std::vector<std::string>{"a"});
  auto after = dir.route("alice", "a");
  CHECK(after.orphaned);
  CHECK(after.recipients == Ids{2});
  CHECK_FALSE(after.routable());      // NO_WORKER (after the connect grace), not a 600 s wait
  CHECK(dir.route("alice", "b").routable());
  CHECK(dir.route("alice", "b").servers == Ids{2});

  // Worker A comes back with a token for "a", or registers "a" again: routable again.
  dir.opened(3, "alice", "a");
  CHECK(dir.route("alice", "a").servers == Ids{3});
  dir.closed(3);
  CHECK_FALSE(dir.route("alice", "a").routable());
  dir.registered("alice", "a");
  CHECK(dir.route("alice", "a").routable());
  CHECK(dir.route("alice", "a").watched() == Ids{2});  // no known server: every recipient
}

TEST_CASE("bridge peer directory: answers teach which names a connection serves") {
  PeerDirectory dir;
  dir.opened(1, "alice", "");  // a token without a node (version 1)
  dir.opened(2, "alice", "b");
  auto r = dir.route("alice", "c");
  CHECK(r.servers.empty());
  CHECK(r.watched() == Ids{1, 2});
  dir.answered(1, "c");
  CHECK(dir.serves(1, "c"));
  CHECK(dir.route("alice", "c").watched() == Ids{1});
  // Two peers serving one name: closing one orphans nothing.
  dir.answered(2, "c");
  CHECK(dir.closed(1).empty());
  CHECK(dir.route("alice", "c").servers == Ids{2});
  CHECK(dir.closed(2) == std::vector<std::string>{"b", "c"});
  CHECK(dir.orphaned("alice", "c"));
  dir.expired("alice", "c");
  CHECK_FALSE(dir.orphaned("alice", "c"));
  CHECK(dir.peers() == 0);
}

TEST_CASE("bridge peer directory: users never share peers") {
  PeerDirectory dir;
  dir.opened(1, "alice", "n");
  dir.opened(2, "bob", "n");
  CHECK(dir.route("alice", "n").recipients == Ids{1});
  CHECK(dir.route("bob", "n").recipients == Ids{2});
  dir.closed(1);
  CHECK(dir.orphaned("alice", "n"));
  CHECK_FALSE(dir.orphaned("bob", "n"));
  CHECK(dir.route("carol", "n").recipients.empty());
  CHECK_FALSE(dir.route("carol", "n").routable());
}
