// on_behalf_of_test.cpp — who musterd lets act on behalf of an end user (issue 13, item 6):
// a gateway for its enrolled workspaces, the local owner over ipc://, nobody else; and the
// caller an honoured assertion becomes.
#include <doctest/doctest.h>

#include "on_behalf_of.hpp"

using namespace muster::broker;
using muster::wire::ErrorCode;

namespace {
const Caller kGateway{"6f1e-gw", "front door", "alpha,beta", "gateway"};
const Caller kClient{"77aa-client", "ada-laptop", "alpha", "client"};
const Caller kAdmin{"88bb-admin", "ops", "default", "admin"};
const Caller kAnonymous{"anonymous", "anonymous", "default", "client"};
const Caller kLocalOwner{};  // ipc://
OnBehalfOf ada(std::string workspace = "alpha") { return OnBehalfOf{"ada", std::move(workspace), "call"}; }
}  // namespace

TEST_CASE("a gateway acts on behalf of a user of a workspace it was enrolled for") {
  for (auto ws : {"alpha", "beta"}) {
    auto v = decide_on_behalf_of(kGateway, ada(ws));
    REQUIRE(v.caller);
    CHECK(v.caller->identity == "6f1e-gw/ada");
    CHECK(v.caller->name == "ada");
    CHECK(v.caller->workspace == ws);
    CHECK(v.caller->role == "call");
    CHECK(v.code == ErrorCode::None);
  }
  // No role given: "user".
  auto v = decide_on_behalf_of(kGateway, OnBehalfOf{"bob", "beta", ""});
  REQUIRE(v.caller);
  CHECK(v.caller->role == "user");
}

TEST_CASE("a gateway naming a workspace it was not enrolled for is refused") {
  for (auto ws : {"gamma", "default", "alph", "alpha,beta"}) {
    auto v = decide_on_behalf_of(kGateway, ada(ws));
    CHECK_FALSE(v.caller);
    CHECK(v.code == (std::string_view(ws) == "alpha,beta" ? ErrorCode::InvalidRequest : ErrorCode::PermissionDenied));
  }
  auto v = decide_on_behalf_of(kGateway, ada("gamma"));
  CHECK(v.reason.find("not enrolled for workspace 'gamma'") != std::string::npos);
}

TEST_CASE("a client, an admin identity and anonymous may not assert a user") {
  for (auto& sender : {kClient, kAdmin, kAnonymous}) {
    auto v = decide_on_behalf_of(sender, ada());
    CHECK_FALSE(v.caller);
    CHECK(v.code == ErrorCode::PermissionDenied);
    CHECK(v.reason.find("only an identity enrolled with role gateway") != std::string::npos);
  }
}

TEST_CASE("the local owner (ipc://) may assert a user of any workspace") {
  auto v = decide_on_behalf_of(kLocalOwner, ada("anywhere"));
  REQUIRE(v.caller);
  CHECK(v.caller->identity == "local/ada");
  CHECK(v.caller->workspace == "anywhere");
  CHECK(v.caller->role == "call");
}

TEST_CASE("without an assertion a message is its sender's; a gateway's is refused, its Cancel is not") {
  for (auto& sender : {kClient, kAdmin, kAnonymous, kLocalOwner}) {
    auto v = decide_on_behalf_of(sender, std::nullopt);
    REQUIRE(v.caller);
    CHECK(*v.caller == sender);
  }
  auto v = decide_on_behalf_of(kGateway, std::nullopt);
  CHECK_FALSE(v.caller);
  CHECK(v.code == ErrorCode::PermissionDenied);
  CHECK(decide_on_behalf_of(kGateway, std::nullopt, /*cancel=*/true).caller);
}

// musterd asks acts_as_sender first and makes a verdict only when it says no: it must say yes
// exactly where the verdict is the sender itself for every kind of message.
TEST_CASE("acts_as_sender: yes exactly where the verdict is the sender, for every message kind") {
  for (auto& sender : {kGateway, kClient, kAdmin, kAnonymous, kLocalOwner})
    for (auto& asserted : {std::optional<OnBehalfOf>{}, std::optional<OnBehalfOf>{ada()}})
      for (bool cancel : {false, true})
        for (bool admin : {false, true}) {
          CAPTURE(sender.identity);
          CAPTURE(asserted.has_value());
          auto v = decide_on_behalf_of(sender, asserted, cancel, admin);
          if (acts_as_sender(sender, asserted)) {
            REQUIRE(v.caller);
            CHECK(*v.caller == sender);
          } else {
            // Not the sender as it is: refused, or another caller (an asserted user; a gateway's
            // own Cancel is the one case decided as the sender, by the verdict).
            CHECK((!v.caller || !(*v.caller == sender) || (sender.role == "gateway" && cancel && !asserted)));
          }
        }
  CHECK(acts_as_sender(kClient, std::nullopt));
  CHECK_FALSE(acts_as_sender(kGateway, std::nullopt));
  CHECK_FALSE(acts_as_sender(kClient, ada()));
}

TEST_CASE("admin commands are never made on behalf of a user") {
  for (auto& sender : {kGateway, kLocalOwner}) {
    auto v = decide_on_behalf_of(sender, OnBehalfOf{"root", "alpha", "admin"}, false, /*admin_command=*/true);
    CHECK_FALSE(v.caller);
    CHECK(v.code == ErrorCode::PermissionDenied);
  }
}

TEST_CASE("an assertion with a bad user, workspace or role is an invalid request") {
  for (auto& a : {OnBehalfOf{"", "alpha", ""}, OnBehalfOf{"a/b", "alpha", ""}, OnBehalfOf{"ada\n", "alpha", ""},
                  OnBehalfOf{std::string("\xff\xfe"), "alpha", ""}, OnBehalfOf{std::string(129, 'a'), "alpha", ""},
                  OnBehalfOf{"ada", "", ""}, OnBehalfOf{"ada", "al pha", ""}, OnBehalfOf{"ada", "alpha", "ro le"},
                  OnBehalfOf{"ada", "alpha", std::string(33, 'r')}}) {
    auto v = decide_on_behalf_of(kGateway, a);
    CHECK_FALSE(v.caller);
    CHECK(v.code == ErrorCode::InvalidRequest);
  }
}
