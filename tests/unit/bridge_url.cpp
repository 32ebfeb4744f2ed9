// bridge_url.cpp — tests for bridge/core url: parsing http(s)/ws(s) URLs, percent-encoding,
// query parameters and how `?auth=<token>` is appended to a websocket_url.
#include <doctest/doctest.h>

#include <stdexcept>

#include "muster/bridge/url.hpp"

using namespace muster::bridge;

TEST_CASE("bridge url: parse fills default ports and targets") {
  auto u = parse_url("https://app.hurozo.com");
  CHECK(u.scheme == "https");
  CHECK(u.host == "app.hurozo.com");
  CHECK(u.port == "443");
  CHECK(u.target == "/");
  CHECK(u.tls());
  CHECK(u.host_header() == "app.hurozo.com");

  auto w = parse_url("ws://127.0.0.1:8080/ws?x=1#frag");
  CHECK(w.port == "8080");
  CHECK(w.target == "/ws?x=1");
  CHECK_FALSE(w.tls());
  CHECK(w.host_header() == "127.0.0.1:8080");
  CHECK(w.str() == "ws://127.0.0.1:8080/ws?x=1");

  auto v6 = parse_url("WSS://[::1]:9443/Prod");
  CHECK(v6.scheme == "wss");
  CHECK(v6.host == "::1");
  CHECK(v6.port == "9443");
  CHECK(v6.host_header() == "[::1]:9443");
}

TEST_CASE("bridge url: parse refuses what the bridge cannot speak") {
  CHECK_THROWS_AS(parse_url("app.hurozo.com"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("ftp://x"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://host:99999/"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://host:abc/"), std::invalid_argument);
}

TEST_CASE("bridge url: encoding and query parameters") {
  CHECK(url_encode("a+b/c=d e~") == "a%2Bb%2Fc%3Dd%20e~");
  CHECK(url_decode("a%2Bb%2fc%3Dd+e") == "a+b/c=d+e");
  CHECK(url_decode("bad%zzescape%") == "bad%zzescape%");
  CHECK(target_path("/ws?auth=1") == "/ws");
  CHECK(query_param("/ws?x=1&auth=a%2Bb%3D", "auth") == std::optional<std::string>("a+b="));
  CHECK(query_param("/ws?auth", "auth") == std::optional<std::string>(""));
  CHECK_FALSE(query_param("/ws?x=1", "auth").has_value());
  CHECK_FALSE(query_param("/ws", "auth").has_value());
  CHECK(append_query_param("wss://h/Prod", "auth", "t+k/=") == "wss://h/Prod?auth=t%2Bk%2F%3D");
  CHECK(append_query_param("wss://h/Prod?stage=1", "auth", "t") == "wss://h/Prod?stage=1&auth=t");
  CHECK(append_query_param("wss://h/Prod?", "auth", "t") == "wss://h/Prod?auth=t");
}
