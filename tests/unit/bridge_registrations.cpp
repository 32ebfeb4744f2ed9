// bridge_registrations.cpp — tests for the host mode's RegistrationStore: refresh extends the
// life, expiry, per-user listing, and which registration backs a shared name.
#include <doctest/doctest.h>

#include "muster/bridge/registration_store.hpp"

using namespace muster::bridge;

TEST_CASE("bridge registrations: expire ttl after the last refresh") {
  RegistrationStore s(600000);
  s.upsert("alice", "ws_hello", {"name"}, {"greeting", "shout"}, 0);
  CHECK(s.list("alice", 599999).size() == 1);
  CHECK(s.list("alice", 600000).empty());
  s.upsert("alice", "ws_hello", {"name"}, {"greeting", "shout"}, 500000);  // refresh
  CHECK(s.list("alice", 600000).size() == 1);
  CHECK(s.list("alice", 600000)[0].created_ms == 0);
  CHECK(s.list("alice", 600000)[0].refreshed_ms == 500000);
  CHECK(s.next_expiry() == std::optional<std::int64_t>(1100000));
  CHECK(s.expire(1099999).empty());
  auto gone = s.expire(1100000);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].name == "ws_hello");
  CHECK(s.size() == 0);
  CHECK_FALSE(s.next_expiry().has_value());
}

TEST_CASE("bridge registrations: a lapsed registration comes back as new") {
  RegistrationStore s(1000);
  s.upsert("alice", "n", {}, {"o"}, 0);
  auto& r = s.upsert("alice", "n", {}, {"o"}, 5000);
  CHECK(r.created_ms == 5000);
}

TEST_CASE("bridge registrations: per user, freshest backs a shared name") {
  RegistrationStore s(1000);
  s.upsert("bob", "shared", {"a"}, {"x"}, 0);
  s.upsert("alice", "shared", {"b"}, {"y"}, 10);
  s.upsert("alice", "mine", {}, {"z"}, 20);
  auto alice = s.list("alice", 30);
  REQUIRE(alice.size() == 2);
  CHECK(alice[0].name == "mine");
  CHECK(alice[1].name == "shared");
  CHECK(s.list("bob", 30).size() == 1);
  CHECK(s.list("carol", 30).empty());

  auto found = s.find("shared", 30);
  REQUIRE(found.size() == 2);
  CHECK(found[0].user == "alice");
  CHECK(found[1].user == "bob");

  auto exposed = s.exposed(30);
  REQUIRE(exposed.size() == 2);
  CHECK(exposed[0].name == "mine");
  CHECK(exposed[1].name == "shared");
  CHECK(exposed[1].user == "alice");
  CHECK(exposed[1].outputs == std::vector<std::string>{"y"});

  // Alice's registration lapses first (refreshed at 10): then bob's backs the name.
  s.upsert("bob", "shared", {"a"}, {"x"}, 900);
  auto later = s.exposed(1025);
  REQUIRE(later.size() == 1);
  CHECK(later[0].user == "bob");
}
