// keys_gateway_role.cpp — tests for keys/: the gateway role (issue 13, item 6): its name, which
// sockets it may use, a gateway token enrolled for an explicit list of workspaces, and the
// identity it enrolls carrying that list.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <chrono>
#include <string>

#include "muster/curve_keys.hpp"
#include "muster/enrollment.hpp"
#include "muster/names.hpp"
#include "muster/role.hpp"
#include "muster/zap_policy.hpp"

using namespace muster::keys;
using namespace std::chrono_literals;

namespace {
const TimePoint T0 = TimePoint(std::chrono::seconds(1'750'000'000));
}

TEST_CASE("keys: the gateway role has a name and may use the client socket only") {
  CHECK(role_name(Role::Gateway) == "gateway");
  CHECK(parse_role("gateway") == Role::Gateway);
  CHECK_FALSE(parse_role("Gateway").has_value());
  CHECK(role_satisfies(Role::Gateway, Role::Client));
  CHECK(role_satisfies(Role::Gateway, Role::Gateway));
  CHECK_FALSE(role_satisfies(Role::Gateway, Role::Worker));
  CHECK_FALSE(role_satisfies(Role::Gateway, Role::Admin));
  CHECK_FALSE(role_satisfies(Role::Client, Role::Gateway));
  CHECK_FALSE(role_satisfies(Role::Admin, Role::Gateway));
}

TEST_CASE("keys: a workspace list is 1 to 64 distinct valid names, comma-separated") {
  CHECK(workspace_list("alpha") == std::vector<std::string>{"alpha"});
  CHECK(workspace_list("alpha,beta") == std::vector<std::string>{"alpha", "beta"});
  for (auto bad : {"", ",", "alpha,", ",alpha", "alpha,,beta", "alpha,alpha", "al pha", "alpha,.beta", "a/b"})
    CHECK_MESSAGE(workspace_list(bad).empty(), bad);
  std::string many;
  for (int i = 0; i < 65; ++i) many += (i ? ",w" : "w") + std::to_string(i);
  CHECK(workspace_list(many).empty());
}

TEST_CASE("keys: a gateway token names its workspaces; the identity it enrolls keeps them") {
  muster::test::TempDir dir;
  KeyPair daemon = generate_key_pair();
  TokenStore tokens{TokenStore::default_path(dir.path), daemon.public_key};
  IdentityStore identities{IdentityStore::default_path(dir.path)};
  Enrollment enrollment{tokens, identities, nullptr};

  MintRequest r;
  r.role = Role::Gateway;
  r.workspace = "alpha,beta";
  r.label = "front door";
  auto minted = tokens.mint(r, T0);
  CHECK(minted.info.workspace == "alpha,beta");

  // A client token still takes exactly one workspace; a gateway token a valid list.
  MintRequest client = r;
  client.role = Role::Client;
  CHECK_THROWS_AS(tokens.mint(client, T0), std::invalid_argument);
  MintRequest bad = r;
  bad.workspace = "alpha,alpha";
  CHECK_THROWS_AS(tokens.mint(bad, T0), std::invalid_argument);

  KeyPair gw = generate_key_pair();
  EnrollRequestFields req{minted.token, gw.public_key, "gateway", "gw-1", "host"};
  auto o = enrollment.enroll(req, gw.public_key, "10.0.0.9", T0);
  REQUIRE(o.ok);
  CHECK(o.identity->role == Role::Gateway);
  CHECK(o.identity->workspace == "alpha,beta");
  // The client socket's ZAP domain admits it; the worker domain does not.
  CHECK(identities.is_allowed(gw.public_key, Role::Client));
  CHECK_FALSE(identities.is_allowed(gw.public_key, Role::Worker));
  // Persisted with its role.
  IdentityStore reloaded{IdentityStore::default_path(dir.path)};
  auto found = reloaded.find_by_key(gw.public_key);
  REQUIRE(found);
  CHECK(found->role == Role::Gateway);
  CHECK(found->workspace == "alpha,beta");
}
