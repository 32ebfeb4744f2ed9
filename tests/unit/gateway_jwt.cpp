// gateway_jwt.cpp — the gateway's JWTs: round trip, expiry, forged signature, other keys,
// tampered claims, alg "none" and junk.
#include <doctest/doctest.h>

#include <string>

#include "muster/gateway/jwt.hpp"
#include "muster/value_json.hpp"

using namespace muster::gateway;

namespace {
const std::string kKey(32, 'k');
Claims alice(std::int64_t now) { return Claims{"alice", "default", "call", now, now + 60}; }

std::string b64url(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : s) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(t[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(t[((val << 8) >> (bits + 8)) & 0x3F]);
  return out;
}
}  // namespace

TEST_CASE("gateway jwt: a signed token verifies with its claims until it expires") {
  JwtSigner s(kKey);
  auto token = s.sign(alice(1000));
  auto ok = s.verify(token, 1059);
  REQUIRE(std::holds_alternative<Claims>(ok));
  auto& c = std::get<Claims>(ok);
  CHECK(c.user == "alice");
  CHECK(c.workspace == "default");
  CHECK(c.role == "call");
  CHECK(c.expires_at == 1060);
  auto expired = s.verify(token, 1060);
  REQUIRE(std::holds_alternative<std::string>(expired));
  CHECK(std::get<std::string>(expired) == "expired");
}

TEST_CASE("gateway jwt: forged, foreign, tampered and unsigned tokens are refused") {
  JwtSigner s(kKey);
  auto token = s.sign(alice(1000));
  // Another key (another gateway) signed it.
  JwtSigner other(std::string(32, 'o'));
  CHECK(std::holds_alternative<std::string>(s.verify(other.sign(alice(1000)), 1001)));
  // A flipped signature character.
  auto forged = token;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  CHECK(std::holds_alternative<std::string>(s.verify(forged, 1001)));
  // The payload swapped for one naming another role, signature kept.
  auto dot1 = token.find('.'), dot2 = token.rfind('.');
  auto tampered = token.substr(0, dot1 + 1) +
                  b64url(R"({"sub":"alice","workspace":"default","role":"admin","iss":"muster-gateway","iat":1000,"exp":1060})") +
                  token.substr(dot2);
  CHECK(std::holds_alternative<std::string>(s.verify(tampered, 1001)));
  // alg none, no signature.
  auto none = b64url(R"({"alg":"none","typ":"JWT"})") + "." +
              b64url(R"({"sub":"alice","workspace":"default","role":"admin","iss":"muster-gateway","iat":1000,"exp":99999999999})") + ".";
  CHECK(std::holds_alternative<std::string>(s.verify(none, 1001)));
  CHECK(std::holds_alternative<std::string>(s.verify("", 1001)));
  CHECK(std::holds_alternative<std::string>(s.verify("a.b.c", 1001)));
  CHECK(std::holds_alternative<std::string>(s.verify(std::string(5000, 'a'), 1001)));
  // Another issuer with the same key.
  JwtSigner foreign_issuer(kKey, "someone-else");
  CHECK(std::get<std::string>(s.verify(foreign_issuer.sign(alice(1000)), 1001)) == "wrong issuer");
}

TEST_CASE("gateway jwt: a short key is refused") {
  CHECK_THROWS_AS(JwtSigner(std::string(16, 'k')), std::invalid_argument);
}
