// bridge_hurozo.cpp — tests for the Hurozo contract as data: register request validation and
// its exact error strings, reply shapes, WebSocket event/reply parsing with hostile input, and
// mapping outputs by name.
#include <doctest/doctest.h>

#include "muster/bridge/hurozo.hpp"

using namespace muster;
using namespace muster::bridge;

namespace {
std::string error_of(std::string_view body) {
  auto r = parse_register_request(body);
  if (auto* e = std::get_if<ApiError>(&r)) return std::to_string(e->status) + " " + e->error;
  return "ok";
}
}  // namespace

TEST_CASE("bridge hurozo: register request validation") {
  auto r = parse_register_request(R"({"name":"ws_hello","inputs":["name"],"outputs":["greeting","shout"]})");
  REQUIRE(std::holds_alternative<RegisterRequest>(r));
  auto& req = std::get<RegisterRequest>(r);
  CHECK(req.name == "ws_hello");
  CHECK(req.inputs == std::vector<std::string>{"name"});
  CHECK(req.outputs == std::vector<std::string>{"greeting", "shout"});

  CHECK(error_of(R"({"inputs":[],"outputs":["x"]})") == "400 Missing or invalid name");
  CHECK(error_of(R"({"name":"","outputs":["x"]})") == "400 Missing or invalid name");
  CHECK(error_of(R"({"name":"a/b","outputs":["x"]})") == "400 Missing or invalid name");
  CHECK(error_of(R"({"name":5,"outputs":["x"]})") == "400 Missing or invalid name");
  CHECK(error_of("not json") == "400 Missing or invalid name");
  CHECK(error_of("[1,2]") == "400 Missing or invalid name");
  CHECK(error_of("") == "400 Missing or invalid name");
  // name is checked before outputs
  CHECK(error_of(R"({"name":"a/b","outputs":[]})") == "400 Missing or invalid name");
  CHECK(error_of(R"({"name":"n","outputs":[]})") == "400 At least one output required");
  CHECK(error_of(R"({"name":"n"})") == "400 At least one output required");
  CHECK(error_of(R"({"name":"n","outputs":null})") == "400 At least one output required");
  CHECK(error_of(R"({"name":"n","outputs":"x"})") == "400 outputs must be a list of strings");
  CHECK(error_of(R"({"name":"n","outputs":[1]})") == "400 outputs must be a list of strings");
  CHECK(error_of(R"({"name":"n","outputs":["x"],"inputs":"a"})") == "400 inputs must be a list of strings");
  CHECK(error_of(R"({"name":"n","outputs":["x"],"inputs":null})") == "ok");
  CHECK(error_of(R"({"name":"with space","outputs":["x"]})") == "ok");  // only "/" is forbidden

  auto dup = std::get<RegisterRequest>(parse_register_request(R"({"name":"n","outputs":["x","x","y"]})"));
  CHECK(dup.outputs == std::vector<std::string>{"x", "y"});
}

TEST_CASE("bridge hurozo: reply shapes") {
  Registration reg{.user = "alice", .name = "ws_hello", .inputs = {"name"}, .outputs = {"greeting", "shout"}};
  CHECK(register_response(reg, "ws://h/ws", "T").dump() ==
        R"({"status":"registered","websocket_url":"ws://h/ws","token":"T","inputs":["name"],"outputs":["greeting","shout"]})");
  CHECK(list_response({reg}).dump() == R"({"nodes":[{"name":"ws_hello","inputs":["name"],"outputs":["greeting","shout"]}]})");
  CHECK(list_response({}).dump() == R"({"nodes":[]})");
  CHECK(error_body("Invalid API token").dump() == R"({"error":"Invalid API token"})");
  CHECK(register_payload(RegisterRequest{"hello", {"name"}, {"greeting"}}).dump() ==
        R"({"name":"hello","inputs":["name"],"outputs":["greeting"]})");
}

TEST_CASE("bridge hurozo: events and replies on the WebSocket") {
  auto e = parse_event(R"({"node":"ws_hello","inputs":{"name":"Ada"},"uuid":"u-1"})");
  REQUIRE(std::holds_alternative<RemoteEvent>(e));
  CHECK(std::get<RemoteEvent>(e).inputs["name"] == "Ada");
  CHECK(event_message(std::get<RemoteEvent>(e)).dump() == R"({"node":"ws_hello","inputs":{"name":"Ada"},"uuid":"u-1"})");

  auto no_inputs = std::get<RemoteEvent>(parse_event(R"({"node":"n","uuid":7,"inputs":[1]})"));
  CHECK(no_inputs.inputs == Json::object());
  CHECK(no_inputs.uuid == "7");

  CHECK(std::get<std::string>(parse_event("{bad json")) == "not JSON");
  CHECK(std::get<std::string>(parse_event("[]")) == "not a JSON object");
  CHECK(std::get<std::string>(parse_event(R"({"uuid":"x"})")) == "no string \"node\"");
  CHECK(std::get<std::string>(parse_event(R"({"node":"n"})")) == "no \"uuid\"");
  CHECK(std::get<std::string>(parse_event(R"({"node":"n","uuid":null})")) == "no \"uuid\"");

  auto r = parse_reply(R"({"node":"ws_hello","outputs":{"greeting":"Hi"},"uuid":"u-1"})");
  REQUIRE(std::holds_alternative<RemoteReply>(r));
  CHECK(std::get<RemoteReply>(r).outputs["greeting"] == "Hi");
  auto bare = std::get<RemoteReply>(parse_reply(R"({"uuid":"u-2","outputs":"nope"})"));
  CHECK(bare.outputs.is_null());
  CHECK(bare.node.empty());
  CHECK(std::get<std::string>(parse_reply("\xff\xfe")) == "not JSON");
  CHECK(reply_message(RemoteReply{"n", Json(), "u"}).dump() == R"({"node":"n","outputs":{},"uuid":"u"})");
}

TEST_CASE("bridge hurozo: outputs are mapped by name, misnamed keys give null") {
  std::vector<std::string> missing;
  Map m = outputs_from_reply({"greeting", "shout"}, Json::parse(R"({"greting":"typo","shout":"HI","extra":1})"), &missing);
  REQUIRE(m.size() == 2);
  CHECK(m.begin()->first == "greeting");
  CHECK(m.find("greeting")->is_null());
  CHECK(m.find("shout")->as_string() == "HI");
  CHECK_FALSE(m.contains("extra"));
  CHECK(missing == std::vector<std::string>{"greeting"});

  Map all_null = outputs_from_reply({"a"}, Json());
  CHECK(all_null.find("a")->is_null());
  Map odd = outputs_from_reply({"a"}, Json::parse(R"({"a":{"$bytes":"!!"}})"));
  CHECK(odd.find("a")->as_string() == R"({"$bytes":"!!"})");

  Map outs{{"shout", "HI"}, {"greeting", "hi"}, {"other", 1}};
  CHECK(outputs_for_reply({"greeting", "shout", "absent"}, outs).dump() == R"({"greeting":"hi","shout":"HI","absent":null})");
  CHECK(null_outputs({"a", "b"}).dump() == R"({"a":null,"b":null})");
  CHECK(inputs_for_event({"name", "age"}, Map{{"extra", true}, {"name", "Ada"}}).dump() ==
        R"({"name":"Ada","age":null,"extra":true})");
}

TEST_CASE("bridge hurozo: JSON nested deeper than kMaxJsonDepth is refused before parsing") {
  // fuzz finding: a WebSocket message or HTTP body nested ~100 000 deep overflowed the stack
  std::string deep = R"({"node":"n","uuid":"u","inputs":{"x":)" + std::string(100'000, '[') +
                     std::string(100'000, ']') + "}}";
  auto e = parse_event(deep);
  REQUIRE(std::holds_alternative<std::string>(e));
  CHECK(std::get<std::string>(e) == "JSON nested deeper than 128 levels");
  CHECK(std::get<std::string>(parse_reply(deep)) == "JSON nested deeper than 128 levels");
  CHECK(std::get<std::string>(parse_event("{")) == "not JSON");
  CHECK(parse_json(deep).is_discarded());
  auto reg = parse_register_request(R"({"name":"n","outputs":["o"],"x":)" + std::string(200, '[') + std::string(200, ']') + "}");
  CHECK(std::get<ApiError>(reg).status == 400);
  CHECK(std::holds_alternative<RemoteEvent>(parse_event(R"({"node":"n","uuid":"u","inputs":{"x":[[1]]}})")));
}

TEST_CASE("bridge hurozo: dump_json never throws on invalid UTF-8") {
  Json j = outputs_for_reply({"s"}, Map{{"s", std::string("ok\xff")}});
  CHECK_THROWS(j.dump());
  CHECK(dump_json(j) == "{\"s\":\"ok\xef\xbf\xbd\"}");
}

TEST_CASE("bridge hurozo: uuid and glob") {
  auto u = new_uuid();
  CHECK(u.size() == 36);
  CHECK(u[14] == '4');
  CHECK(u[8] == '-');
  CHECK(new_uuid() != u);
  CHECK(glob_match("*", "anything"));
  CHECK(glob_match("he?lo", "hello"));
  CHECK(glob_match("img.*", "img.resize"));
  CHECK(glob_match("a*b*c", "aXXbYYc"));
  CHECK_FALSE(glob_match("a*b", "aXXc"));
  CHECK_FALSE(glob_match("hello", "hello2"));
  CHECK(glob_match("", ""));
}
