// gateway_envelope.cpp — the gateway's WebSocket envelope: what parses, what is refused with
// which code, and the shape of the server's messages.
#include <doctest/doctest.h>

#include <string>

#include "muster/gateway/envelope.hpp"

using namespace muster;
using namespace muster::gateway;

namespace {
ProtocolError refused(std::string_view text) {
  auto r = parse_envelope(text);
  REQUIRE(std::holds_alternative<ProtocolError>(r));
  return std::get<ProtocolError>(r);
}
}  // namespace

TEST_CASE("gateway envelope: a well-formed message parses") {
  auto r = parse_envelope(R"({"type":"ping","payload":null,"timestamp":1703520000})");
  REQUIRE(std::holds_alternative<Envelope>(r));
  auto& e = std::get<Envelope>(r);
  CHECK(e.type == "ping");
  CHECK(e.payload.is_null());
  CHECK(e.timestamp == 1703520000);
  auto r2 = parse_envelope(R"({"type":"execution.start","payload":{"node":"echo"}})");
  REQUIRE(std::holds_alternative<Envelope>(r2));
  CHECK(std::get<Envelope>(r2).payload["node"] == "echo");
  CHECK(std::get<Envelope>(r2).timestamp == 0);
}

TEST_CASE("gateway envelope: malformed messages get INVALID_MESSAGE and a reason") {
  CHECK(refused("{bad").code == "INVALID_MESSAGE");
  CHECK(refused("{bad").error == "message is not valid JSON");
  CHECK(refused("").code == "INVALID_MESSAGE");
  CHECK(refused("[1,2]").error.find("JSON object") != std::string::npos);
  CHECK(refused(R"({"payload":{}})").error.find("'type'") != std::string::npos);
  CHECK(refused(R"({"type":""})").error.find("'type'") != std::string::npos);
  CHECK(refused(R"({"type":7})").code == "INVALID_MESSAGE");
  CHECK(refused(R"({"type":"ping","timestamp":"now"})").error.find("timestamp") != std::string::npos);
  CHECK(refused(R"({"type":")" + std::string(200, 'x') + "\"}").error.find("128") != std::string::npos);
  std::string deep(1000, '[');
  CHECK(refused(R"({"type":"ping","payload":)" + deep).error.find("deeper") != std::string::npos);
}

TEST_CASE("gateway envelope: server messages carry type, payload and timestamp") {
  auto text = make_message("pong", nullptr, 42);
  CHECK(text == R"({"type":"pong","payload":null,"timestamp":42})");
  auto err = Json::parse(make_message("error", error_payload("boom", "INVALID_REQUEST"), 1));
  CHECK(err["payload"]["error"] == "boom");
  CHECK(err["payload"]["code"] == "INVALID_REQUEST");
}
