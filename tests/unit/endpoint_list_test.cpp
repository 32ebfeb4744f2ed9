// endpoint_list_test.cpp — the address lists workers and clients take (transport/endpoints.hpp):
// one endpoint, or both daemons of a failover pair, comma-separated.
#include <doctest/doctest.h>

#include <stdexcept>

#include "muster/endpoints.hpp"

using muster::endpoint_list;

TEST_CASE("endpoint_list: one endpoint is a list of one") {
  CHECK(endpoint_list("ipc:///run/muster/client.sock") ==
        std::vector<std::string>{"ipc:///run/muster/client.sock"});
}

TEST_CASE("endpoint_list: a failover pair, in order, spaces around commas ignored") {
  CHECK(endpoint_list("tcp://a.lan:7901, tcp://b.lan:7901") ==
        std::vector<std::string>{"tcp://a.lan:7901", "tcp://b.lan:7901"});
}

TEST_CASE("endpoint_list: an empty list or item is refused with the address in the message") {
  for (const char* bad : {"", " ", "tcp://a:1,", ",tcp://a:1", "tcp://a:1,,tcp://b:1"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(endpoint_list(bad),
                         doctest::Contains("empty endpoint in the address list"), std::invalid_argument);
  }
}
