// input_check_test.cpp — musterd's check of Submit inputs and parameters against declared ports
// (broker/input_check.hpp) and the wording of a differing declaration (spec_difference.hpp).
#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "input_check.hpp"
#include "muster/wire/value_generated.h"
#include "spec_difference.hpp"

using namespace muster;
using namespace muster::broker;

namespace {

NodeSpec greet() {
  NodeSpec s;
  s.name = "greet";
  s.inputs = {{.name = "name", .type = "string", .required = true},
              {.name = "times", .type = "int"},
              {.name = "scale", .type = "float"},
              {.name = "style", .type = "string", .required = true, .default_value = Value("plain")},
              {.name = "extra", .type = "any"}};
  s.parameters = {{.name = "lang", .type = "string", .default_value = Value("en")}};
  return s;
}

std::optional<std::string> check(const NodeSpec& spec, const Map& inputs, const Map& params = {}) {
  auto in = encode_values(inputs), pa = encode_values(params);
  return InputCheck(spec).check(in, params.empty() ? std::span<const std::uint8_t>() : pa);
}

}  // namespace

TEST_CASE("input check: acceptable inputs pass") {
  auto s = greet();
  CHECK_FALSE(check(s, Map{{"name", "Ada"}}));
  CHECK_FALSE(check(s, Map{{"name", "Ada"}, {"times", 3}, {"scale", 2.5}, {"extra", List{1, "x"}}}));
  CHECK_FALSE(check(s, Map{{"name", "Ada"}, {"scale", 2}}));         // an int is a float
  CHECK_FALSE(check(s, Map{{"name", "Ada"}, {"times", nullptr}}));   // null: not given
  CHECK_FALSE(check(s, Map{{"name", "Ada"}, {"style", nullptr}}));   // null: the default applies
  CHECK_FALSE(check(s, Map{{"name", "Ada"}, {"extra", nullptr}}));
  CHECK_FALSE(check(s, Map{{"name", "Ada"}}, Map{{"lang", "fr"}}));
}

TEST_CASE("input check: the refusal names the node, the port, the expected and the given kind") {
  auto s = greet();
  CHECK(check(s, Map{{"name", 42}}) == "node 'greet': input \"name\": expected string, got int");
  CHECK(check(s, Map{{"name", "Ada"}, {"times", 1.5}}) ==
        "node 'greet': input \"times\": expected int, got float");
  CHECK(check(s, Map{{"name", "Ada"}, {"scale", "x"}}) ==
        "node 'greet': input \"scale\": expected float, got string");
  CHECK(check(s, Map{{"times", 1}}) == "node 'greet': missing required input \"name\" (string)");
  CHECK(check(s, Map{}) == "node 'greet': missing required input \"name\" (string)");
  CHECK(check(s, Map{{"name", nullptr}}) ==
        "node 'greet': missing required input \"name\" (null given; expected string)");
  CHECK(check(s, Map{{"nmae", "Ada"}}) == "node 'greet': missing required input \"name\" (string)");
  CHECK(check(s, Map{{"name", "Ada"}}, Map{{"lang", 1}}) ==
        "node 'greet': parameter \"lang\": expected string, got int");
}

TEST_CASE("input check: every port type against every kind") {
  const std::vector<std::pair<std::string, Value>> samples = {
      {"null", nullptr}, {"bool", true}, {"int", 7}, {"float", 0.5}, {"string", "s"},
      {"bytes", Bytes{1, 2}}, {"list", List{}}, {"map", Map{}}, {"error", ErrorValue{"E", "m"}}};
  for (std::string type : {"any", "bool", "int", "float", "string", "bytes", "list", "map"}) {
    NodeSpec s;
    s.name = "n";
    s.inputs = {{.name = "v", .type = type, .required = true}};
    for (auto& [kind, value] : samples) {
      CAPTURE(type);
      CAPTURE(kind);
      bool fits = type == "any" || kind == type || (type == "float" && kind == "int");
      auto problem = check(s, Map{{"v", value}});
      CHECK(problem.has_value() == !fits);
    }
  }
}

TEST_CASE("input check: names a node does not declare are forwarded, not checked") {
  NodeSpec echo;
  echo.name = "echo";
  CHECK_FALSE(check(echo, Map{{"anything", 1}, {"else", "x"}}, Map{{"p", true}}));
  NodeSpec s = greet();
  CHECK_FALSE(check(s, Map{{"name", "Ada"}, {"extra_key", List{1, 2}}}, Map{{"mode", 1}}));
}

TEST_CASE("input check: a port given twice counts once (a duplicate key cannot hide a missing port)") {
  NodeSpec s;
  s.name = "two";
  s.inputs = {{.name = "a", .type = "int", .required = true}, {.name = "b", .type = "int", .required = true}};
  // Map keeps keys unique, so build the duplicate by hand on the wire.
  flatbuffers::FlatBufferBuilder fbb;
  auto one = encode_value(fbb, Value(1));
  auto e1 = wire::CreateEntry(fbb, fbb.CreateString("a"), one);
  auto two = encode_value(fbb, Value(2));
  auto e2 = wire::CreateEntry(fbb, fbb.CreateString("a"), two);
  std::vector<flatbuffers::Offset<wire::Entry>> entries{e1, e2};
  auto values = wire::CreateValues(fbb, fbb.CreateVector(entries));
  fbb.Finish(values, "MSVL");
  InputCheck c(s);
  CHECK(c.check({fbb.GetBufferPointer(), fbb.GetSize()}, {}) ==
        "node 'two': missing required input \"b\" (int)");
  // and the same checker keeps answering correctly call after call
  auto ok = encode_values(Map{{"a", 1}, {"b", 2}});
  for (int i = 0; i < 3; ++i) CHECK_FALSE(c.check(ok, {}));
}

TEST_CASE("input check: an empty payload is no values") {
  NodeSpec s = greet();
  CHECK(InputCheck(s).check({}, {}) == "node 'greet': missing required input \"name\" (string)");
  s.inputs[0].required = false;
  CHECK_FALSE(InputCheck(s).check({}, {}));
}

TEST_CASE("unsound ports: an unknown type, or a default its type does not take") {
  NodeSpec s = greet();
  CHECK_FALSE(unsound_port(s));
  s.inputs[1].type = "integer";
  CHECK(unsound_port(s) == "node 'greet': input \"times\" has unknown type \"integer\" (one of any, "
                           "null, bool, int, float, string, bytes, list, map)");
  s = greet();
  s.parameters[0].default_value = Value(3);
  CHECK(unsound_port(s) == "node 'greet': parameter \"lang\": the default is int, the type string");
  s = greet();
  s.inputs[2].default_value = Value(1);  // an int default of a float port is fine
  CHECK_FALSE(unsound_port(s));
}

TEST_CASE("spec difference: names the first differing port or field") {
  NodeSpec a = greet(), b = greet();
  CHECK_FALSE(spec_difference(a, b));
  b.inputs[0].type = "int";
  CHECK(spec_difference(a, b) == "input \"name\": type \"int\", served as \"string\"");
  b = greet();
  b.inputs.push_back({.name = "new"});
  CHECK(spec_difference(a, b) == "input \"new\": not declared by the workers serving it");
  b = greet();
  b.inputs.pop_back();
  CHECK(spec_difference(a, b) == "input \"extra\": declared by the workers serving it, missing here");
  b = greet();
  b.parameters[0].default_value = Value("de");
  CHECK(spec_difference(a, b) == "parameter \"lang\": default \"de\", served as \"en\"");
  b = greet();
  b.version = "2";
  CHECK(spec_difference(a, b) == "version \"2\", served as \"\"");
  b = greet();
  std::swap(b.inputs[0], b.inputs[1]);
  CHECK(spec_difference(a, b) == "inputs declared in a different order");
}

TEST_CASE("input check: an acceptable payload is checked without allocating") {
  NodeSpec s = greet();
  InputCheck c(s);
  auto inputs = encode_values(Map{{"name", "Ada"}, {"times", 3}, {"scale", 2}, {"style", nullptr}});
  auto params = encode_values(Map{{"lang", "fr"}});
  std::size_t before = test::allocations_on_this_thread();
  bool all_fine = true;
  for (int i = 0; i < 1000; ++i) all_fine = all_fine && !c.check(inputs, params);
  std::size_t during = test::allocations_on_this_thread() - before;
  CHECK(all_fine);
  CHECK(during == 0);
  // the counter does count: a refusal builds its message
  before = test::allocations_on_this_thread();
  CHECK(c.check(encode_values(Map{{"name", 1}}), {}));
  CHECK(test::allocations_on_this_thread() > before);
}

TEST_CASE("input check: a bytes port accepts a chunked value (PROTOCOL.md §7.9), other types refuse it") {
  NodeSpec s;
  s.name = "echo";
  s.inputs = {{.name = "data", .type = "bytes", .required = true}, {.name = "text", .type = "string"}};
  ChunkedValue c{1, 1u << 30, {}};
  CHECK_FALSE(check(s, Map{{"data", c}}));
  CHECK(check(s, Map{{"data", Bytes{1}}, {"text", c}}) == "node 'echo': input \"text\": expected string, got chunked");
}
