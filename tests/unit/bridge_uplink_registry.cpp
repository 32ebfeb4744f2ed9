// bridge_uplink_registry.cpp — tests for the uplink's publish bookkeeping: selection, when a
// node is due, refusals, ports changing, and which events are still answered.
#include <doctest/doctest.h>

#include "muster/bridge/uplink_registry.hpp"

using namespace muster;
using namespace muster::bridge;

namespace {
std::vector<std::string> names(const std::vector<RegisterRequest>& v) {
  std::vector<std::string> out;
  for (auto& r : v) out.push_back(r.name);
  return out;
}
RegisterRequest node(std::string name, std::vector<std::string> outs) { return {std::move(name), {"in"}, std::move(outs)}; }
}  // namespace

TEST_CASE("bridge uplink registry: node json from `muster nodes --json`") {
  auto r = register_request_from_node(Json::parse(
      R"({"name":"hello","inputs":[{"name":"name","type":"string"}],"outputs":[{"name":"greeting"},{"name":"shout"}]})"));
  CHECK(r.name == "hello");
  CHECK(r.inputs == std::vector<std::string>{"name"});
  CHECK(r.outputs == std::vector<std::string>{"greeting", "shout"});
  CHECK(register_request_from_node(Json::parse("[]")).name.empty());
}

TEST_CASE("bridge uplink registry: registering follows the broker") {
  UplinkRegistry reg({.patterns = {}, .interval_ms = 60000, .server_ttl_ms = 600000, .rejected_retry_ms = 300000});
  auto changed = reg.update({node("hello", {"greeting"}), node("echo", {})}, 0);
  CHECK(changed.size() == 2);
  CHECK(names(reg.due(0)) == std::vector<std::string>{"echo", "hello"});
  CHECK(reg.next_due(0) == std::optional<std::int64_t>(0));

  CHECK(reg.on_registered("hello", 100));
  reg.on_rejected("echo", "At least one output required", 100);
  CHECK(reg.due(200).empty());
  CHECK(reg.next_due(200) == std::optional<std::int64_t>(60100));
  CHECK(names(reg.due(60100)) == std::vector<std::string>{"hello"});
  CHECK(names(reg.due(300100)) == std::vector<std::string>{"echo", "hello"});
  CHECK(names(reg.due(200, /*force=*/true)) == std::vector<std::string>{"hello"});  // a refused node waits
  CHECK_FALSE(reg.on_registered("hello", 60100));  // a refresh is not news

  // Same ports again: nothing changes; new ports: due at once, refusal forgotten.
  CHECK(reg.update({node("hello", {"greeting"}), node("echo", {})}, 300).empty());
  CHECK(reg.update({node("hello", {"greeting"}), node("echo", {"out"})}, 400) == std::vector<std::string>{"echo"});
  CHECK(names(reg.due(400)) == std::vector<std::string>{"echo"});
}

TEST_CASE("bridge uplink registry: events for gone nodes are answered while the server knows them") {
  UplinkRegistry reg({.patterns = {}, .interval_ms = 60000, .server_ttl_ms = 600000, .rejected_retry_ms = 600000});
  reg.update({node("hello", {"greeting", "shout"})}, 0);
  CHECK_FALSE(reg.outputs_for("hello", 0).has_value());  // not registered yet: not ours to answer
  reg.on_registered("hello", 0);
  CHECK(reg.outputs_for("hello", 0) == std::optional<std::vector<std::string>>({"greeting", "shout"}));
  CHECK(reg.registered_count(0) == 1);
  reg.update({}, 1000);  // gone from the broker
  CHECK(reg.due(1000, true).empty());
  CHECK(reg.present().empty());
  CHECK(reg.outputs_for("hello", 599999).has_value());
  CHECK_FALSE(reg.outputs_for("hello", 600000).has_value());
  reg.update({}, 600000);
  CHECK_FALSE(reg.outputs_for("hello", 600000).has_value());
  CHECK_FALSE(reg.outputs_for("never", 0).has_value());
}

TEST_CASE("bridge uplink registry: selection by glob") {
  UplinkRegistry reg({.patterns = {"hel*", "echo"}});
  CHECK(reg.selected("hello"));
  CHECK(reg.selected("echo"));
  CHECK_FALSE(reg.selected("sleep"));
  reg.update({node("hello", {"g"}), node("sleep", {"slept_ms"}), node("echo", {})}, 0);
  CHECK(reg.present() == std::vector<std::string>{"echo", "hello"});
  CHECK_FALSE(reg.outputs_for("sleep", 0).has_value());
}

TEST_CASE("bridge uplink registry: only successfully registered nodes are answered") {
  // A node the server refused (e.g. no outputs) may be served by another worker of the same
  // user: the uplink must not answer its events.
  UplinkRegistry reg({.patterns = {}, .interval_ms = 60000, .server_ttl_ms = 600000, .rejected_retry_ms = 600000});
  reg.update({node("echo", {}), node("hello", {"greeting"})}, 0);
  reg.on_rejected("echo", "At least one output required", 10);
  reg.on_registered("hello", 10);
  CHECK_FALSE(reg.outputs_for("echo", 20).has_value());
  CHECK(reg.outputs_for("hello", 20) == std::optional<std::vector<std::string>>({"greeting"}));
  CHECK(reg.registered_count(20) == 1);
}

TEST_CASE("bridge uplink registry: new ports register at once, the old registration is answered meanwhile") {
  UplinkRegistry reg({.patterns = {}, .interval_ms = 60000, .server_ttl_ms = 600000, .rejected_retry_ms = 600000});
  reg.update({node("hello", {"greeting"})}, 0);
  reg.on_registered("hello", 0);
  CHECK(reg.update({node("hello", {"greeting", "shout"})}, 1000) == std::vector<std::string>{"hello"});
  CHECK(names(reg.due(1000)) == std::vector<std::string>{"hello"});
  CHECK(reg.next_due(1000) == std::optional<std::int64_t>(1000));
  // The server still holds the first registration: its events get its output keys.
  CHECK(reg.outputs_for("hello", 1000) == std::optional<std::vector<std::string>>({"greeting"}));
  CHECK(reg.on_registered("hello", 1100));  // news: the outputs changed
  CHECK(reg.outputs_for("hello", 1100) == std::optional<std::vector<std::string>>({"greeting", "shout"}));
  CHECK(reg.due(1100).empty());
  // Refused after a change: the last good registration stays answered until it lapses.
  reg.update({node("hello", {})}, 2000);
  reg.on_rejected("hello", "At least one output required", 2000);
  CHECK(reg.outputs_for("hello", 2000) == std::optional<std::vector<std::string>>({"greeting", "shout"}));
  CHECK_FALSE(reg.outputs_for("hello", 1100 + 600000).has_value());
}
