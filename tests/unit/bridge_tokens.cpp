// bridge_tokens.cpp — tests for the host mode's API tokens (file format, exact error strings
// and status codes) and the HMAC-signed WebSocket tokens (expiry, tampering, URL safety).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "muster/bridge/api_tokens.hpp"
#include "muster/bridge/ws_token.hpp"

using namespace muster::bridge;

TEST_CASE("bridge api tokens: file format") {
  auto t = ApiTokens::parse("# comment\n\ntok-w alice\ntok-r alice read\r\n  tok-x bob write  \n");
  CHECK(t.size() == 3);
  REQUIRE(t.find("tok-w"));
  CHECK(t.find("tok-w")->user == "alice");
  CHECK(t.find("tok-w")->write);
  CHECK_FALSE(t.find("tok-r")->write);
  CHECK(t.find("tok-x")->user == "bob");
  CHECK(t.find("tok") == nullptr);
  CHECK_THROWS_AS(ApiTokens::parse("lonely\n"), std::invalid_argument);
  CHECK_THROWS_AS(ApiTokens::parse("a b admin\n"), std::invalid_argument);
  CHECK_THROWS_AS(ApiTokens::parse("a b\na c\n"), std::invalid_argument);
}

TEST_CASE("bridge api tokens: authorize gives the reference's errors") {
  auto t = ApiTokens::parse("tok-w alice write\ntok-r alice read\n");
  auto missing = t.authorize(std::nullopt, true);
  CHECK_FALSE(missing.ok);
  CHECK(missing.status == 401);
  CHECK(missing.error == "Missing Authorization header");
  CHECK(t.authorize(std::string_view(""), false).error == "Missing Authorization header");

  auto wrong = t.authorize(std::string_view("Bearer nope"), false);
  CHECK(wrong.status == 401);
  CHECK(wrong.error == "Invalid API token");
  CHECK(t.authorize(std::string_view("Basic tok-w"), false).error == "Invalid API token");
  CHECK(t.authorize(std::string_view("tok-w"), false).error == "Invalid API token");

  auto ro = t.authorize(std::string_view("Bearer tok-r"), true);
  CHECK_FALSE(ro.ok);
  CHECK(ro.status == 403);
  CHECK(ro.error == "Invalid API token");
  auto ro_read = t.authorize(std::string_view("Bearer tok-r"), false);
  CHECK(ro_read.ok);
  CHECK(ro_read.user == "alice");

  auto ok = t.authorize(std::string_view("bearer  tok-w "), true);
  CHECK(ok.ok);
  CHECK(ok.write);
}

TEST_CASE("bridge ws tokens: base64url round trip") {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\xff\xfe\x00\x01", 4)}) {
    auto enc = base64url_encode(s);
    CHECK(enc.find_first_of("+/=") == std::string::npos);
    CHECK(base64url_decode(enc) == std::optional<std::string>(s));
  }
  CHECK_FALSE(base64url_decode("a+b").has_value());
  CHECK_FALSE(base64url_decode("a").has_value());
}

TEST_CASE("bridge ws tokens: sign, verify, expire, tamper") {
  WsTokenSigner signer(std::string(32, 'k'));
  auto token = signer.sign("alice", 1000000, 60000);
  CHECK(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == std::string::npos);
  auto v = signer.verify(token, 1000000 + 59999);
  REQUIRE(v);
  CHECK(v->user == "alice");
  CHECK(v->expires_ms == 1060000);

  std::string why;
  CHECK_FALSE(signer.verify(token, 1060000, &why));
  CHECK(why == "expired");

  WsTokenSigner other(std::string(32, 'x'));
  CHECK_FALSE(other.verify(token, 1000000, &why));
  CHECK(why == "bad signature");

  std::string tampered = token;
  tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
  CHECK_FALSE(signer.verify(tampered, 1000000, &why));
  CHECK_FALSE(signer.verify("garbage", 1000000, &why));
  CHECK(why == "malformed");
  CHECK_FALSE(signer.verify("", 1000000));

  // Users with dots survive the payload format; two tokens differ (nonce).
  auto dotted = signer.sign("a.b.c", 0, 10);
  CHECK(signer.verify(dotted, 5)->user == "a.b.c");
  CHECK(signer.sign("alice", 0, 10) != signer.sign("alice", 0, 10));
  CHECK_THROWS_AS(WsTokenSigner("short"), std::invalid_argument);
}

TEST_CASE("bridge ws tokens: carry the registered node name; version 1 tokens still verify") {
  WsTokenSigner signer(std::string(32, 'k'));
  auto token = signer.sign("a.lice", 0, 100, "ws_hello.v2");
  CHECK(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == std::string::npos);
  auto v = signer.verify(token, 1);
  REQUIRE(v);
  CHECK(v->user == "a.lice");
  CHECK(v->node == "ws_hello.v2");
  CHECK(signer.verify(signer.sign("bob", 0, 100), 1)->node.empty());

  // A version 1 token (made by an earlier bridge with the same --secret-file) has no node.
  std::string payload = "1.100.0011223344556677.carol";
  std::string v1 = base64url_encode(payload) + "." + base64url_encode(hmac_sha256(std::string(32, 'k'), payload));
  auto old = signer.verify(v1, 1);
  REQUIRE(old);
  CHECK(old->user == "carol");
  CHECK(old->node.empty());
  // A version 2 payload whose node field is not base64url is malformed.
  std::string bad = "2.100.00.a+b.carol";
  std::string why;
  CHECK_FALSE(signer.verify(base64url_encode(bad) + "." + base64url_encode(hmac_sha256(std::string(32, 'k'), bad)), 1, &why));
  CHECK(why == "malformed");
}

TEST_CASE("bridge ws tokens: HMAC-SHA256 matches RFC 4231 test case 2") {
  auto mac = hmac_sha256("Jefe", "what do ya want for nothing?");
  std::string hex;
  for (unsigned char c : mac) {
    const char* d = "0123456789abcdef";
    hex += d[c >> 4];
    hex += d[c & 15];
  }
  CHECK(hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
