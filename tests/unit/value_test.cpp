// value_test.cpp — Value <-> FlatBuffers, Value <-> JSON, base64, and message verification.
#include <doctest/doctest.h>

#include <limits>
#include <random>

#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/value.hpp"
#include "muster/value_json.hpp"

using namespace muster;

namespace {
Map sample() {
  Map nested{{"empty_list", List{}}, {"empty_map", Map{}}, {"deep", List{List{Map{{"x", 1}}}}}};
  return Map{{"null", nullptr},
             {"t", true},
             {"f", false},
             {"min", static_cast<long long>(std::numeric_limits<std::int64_t>::min())},
             {"max", static_cast<long long>(std::numeric_limits<std::int64_t>::max())},
             {"zero", 0},
             {"pi", 3.141592653589793},
             {"neg_zero_float", -0.0},
             {"tiny", 5e-324},
             {"whole_float", 2.0},
             {"unicode", "héllo, 世界 🎉"},
             {"empty", ""},
             {"bytes", Bytes{0, 1, 2, 255}},
             {"no_bytes", Bytes{}},
             {"list", List{1, "two", 3.0, nullptr}},
             {"nested", nested},
             {"err", ErrorValue{"E_X", "went wrong"}}};
}
}  // namespace

TEST_CASE("values round-trip through a nested Values buffer exactly") {
  Map m = sample();
  auto bytes = encode_values(m);
  CHECK(flatbuffers::BufferHasIdentifier(bytes.data(), "MSVL"));
  Map back = decode_values(std::span<const std::uint8_t>(bytes));
  CHECK(back == m);
  CHECK(back.find("max")->as_int() == std::numeric_limits<std::int64_t>::max());
  CHECK(back.find("whole_float")->kind() == ValueKind::Float);
  // order of keys is kept
  auto it = back.begin();
  CHECK(it->first == "null");
}

TEST_CASE("values round-trip through JSON exactly, kinds kept") {
  Map m = sample();
  m.erase("neg_zero_float");  // -0.0 == 0.0 in JSON text; kept out of the exact comparison
  std::string text = to_json(m).dump();
  Map back = map_from_json_text(text);
  CHECK(back == m);
  CHECK(text.find("\"whole_float\":2.0") != std::string::npos);
  CHECK(text.find("{\"$bytes\":\"AAEC/w==\"}") != std::string::npos);
  CHECK(text.find("{\"$error\":{\"code\":\"E_X\",\"message\":\"went wrong\"}}") != std::string::npos);
}

TEST_CASE("JSON input errors are clear") {
  CHECK_THROWS_WITH_AS(map_from_json_text("{"), doctest::Contains("invalid JSON"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(map_from_json_text("[1]"), doctest::Contains("JSON object"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(map_from_json_text(R"({"a":{"$bytes":"!!"}})"), doctest::Contains("$.a"),
                       std::invalid_argument);
  CHECK_THROWS_AS(to_json(Value(std::numeric_limits<double>::infinity())), std::invalid_argument);
  // a map that would read back as bytes or an error has no JSON form
  CHECK_THROWS_AS(to_json(Map{{"$bytes", "AA=="}}), std::invalid_argument);
  CHECK_THROWS_AS(to_json(Map{{"$error", Map{}}}), std::invalid_argument);
  CHECK_NOTHROW(to_json(Map{{"$bytes", 1}}));
  // integers beyond int64 become floats rather than wrapping
  CHECK(map_from_json_text(R"({"big":18446744073709551615})").find("big")->kind() == ValueKind::Float);
}

TEST_CASE("base64 matches RFC 4648 test vectors") {
  auto enc = [](std::string s) { return base64_encode(Bytes(s.begin(), s.end())); };
  CHECK(enc("") == "");
  CHECK(enc("f") == "Zg==");
  CHECK(enc("fo") == "Zm8=");
  CHECK(enc("foo") == "Zm9v");
  CHECK(enc("foobar") == "Zm9vYmFy");
  auto dec = base64_decode("Zm9vYg==");
  CHECK(std::string(dec.begin(), dec.end()) == "foob");
  CHECK_THROWS(base64_decode("Zm9"));
  CHECK_THROWS(base64_decode("Z=9v"));
}

TEST_CASE("typed access names the kinds on a mismatch") {
  CHECK_THROWS_WITH(Value("x").as_int(), "expected a int value, got string");
  CHECK(Value(3).as_number() == 3.0);
}

TEST_CASE("node specs round-trip and names are checked") {
  NodeSpec s;
  s.name = "hello";
  s.description = "d";
  s.inputs = {{.name = "name", .type = "string", .required = true, .default_value = Value("x")}};
  s.outputs = {{.name = "greeting"}};
  s.idempotent = true;
  s.default_timeout_ms = 5;
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(encode_node_spec(fbb, s));
  auto* back = flatbuffers::GetRoot<wire::NodeSpec>(fbb.GetBufferPointer());
  CHECK(decode_node_spec(back) == s);
  CHECK(valid_node_name("py.hello:v2-x_y"));
  CHECK_FALSE(valid_node_name("a/b"));
  CHECK_FALSE(valid_node_name(""));
  CHECK_FALSE(valid_node_name(std::string(129, 'a')));
  CHECK(valid_worker_id("host-1.a_b"));
  CHECK_FALSE(valid_worker_id("a:b"));  // ':' would break topic framing
}

TEST_CASE("readers reject garbage, truncation and the wrong message type") {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> junk(rng() % 200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    CHECK(read_worker_message(junk) == nullptr);
    CHECK(read_client_message(junk) == nullptr);
  }
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateListNodes(fbb);
  fbb.Finish(wire::CreateClientMessage(fbb, 1, wire::ClientBody::ListNodes, body.Union()),
             wire::ClientMessageIdentifier());
  std::span<const std::uint8_t> ok(fbb.GetBufferPointer(), fbb.GetSize());
  CHECK(read_client_message(ok) != nullptr);
  CHECK(read_worker_message(ok) == nullptr);  // right buffer, wrong socket
  for (std::size_t cut = 0; cut < ok.size(); ++cut) CHECK(read_client_message(ok.first(cut)) == nullptr);
}

TEST_CASE("error code names are stable") {
  CHECK(error_code_name(wire::ErrorCode::NoWorker) == "NO_WORKER");
  CHECK(error_code_name(wire::ErrorCode::Unavailable) == "UNAVAILABLE");
  CHECK(error_code_from_name("QUEUE_FULL") == wire::ErrorCode::QueueFull);
  CHECK_FALSE(error_code_from_name("nope").has_value());
}
