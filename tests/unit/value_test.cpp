// value_test.cpp — Value <-> FlatBuffers, Value <-> JSON, base64, and message verification.
#include <doctest/doctest.h>

#include <limits>
#include <random>

#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/utf8.hpp"
#include "muster/value.hpp"
#include "muster/value_json.hpp"
#include "muster/wire/daemon_generated.h"
#include "muster/wire/value_generated.h"

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

TEST_CASE("create_nested_values writes the same Values buffer into a builder, aligned for nesting") {
  Map m = sample();
  m.set("big", Bytes(100000, 0x5a));
  auto expected = encode_values(m);
  CHECK(encoded_size_hint(m) >= expected.size() / 2);  // a sizing hint, not an exact figure
  flatbuffers::FlatBufferBuilder fbb(64);
  fbb.CreateString("something before");
  auto vec = create_nested_values(fbb, m);
  fbb.Finish(vec);
  auto* v = flatbuffers::GetRoot<flatbuffers::Vector<std::uint8_t>>(fbb.GetBufferPointer());
  CHECK(reinterpret_cast<std::uintptr_t>(v->data()) % 8 == 0);
  CHECK(v->size() <= expected.size() + 8);  // the same tables; padding may differ
  CHECK(decode_values(std::span<const std::uint8_t>(v->data(), v->size())) == m);
}

TEST_CASE("two nested Values in one builder each read as a buffer of their own") {
  Map a = sample(), b{{"n", Value(7LL)}, {"s", Value("x")}};
  flatbuffers::FlatBufferBuilder fbb(16);  // grows while building: offsets stay relative
  auto first = create_nested_values(fbb, b);
  auto second = create_nested_values(fbb, a);
  fbb.CreateString("after");
  std::vector<flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>> both{first, second};
  auto vec = fbb.CreateVector(both);
  fbb.Finish(vec);
  auto* root = flatbuffers::GetRoot<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>>>(
      fbb.GetBufferPointer());
  REQUIRE(root->size() == 2);
  for (unsigned i = 0; i < 2; ++i) {
    auto* v = root->Get(i);
    CHECK(reinterpret_cast<std::uintptr_t>(v->data()) % 8 == 0);
    // decode_values verifies the nested buffer alone: every offset in it stays inside it
    CHECK(decode_values(std::span<const std::uint8_t>(v->data(), v->size())) == (i == 0 ? b : a));
  }
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

TEST_CASE("chunked values (PROTOCOL.md §7.9) round-trip through Values and JSON; bad ones are refused") {
  ChunkedValue c{3, UINT64_MAX, {}};
  for (std::size_t i = 0; i < c.sha256.size(); ++i) c.sha256[i] = static_cast<std::uint8_t>(i);
  Map m{{"data", c}, {"small", Bytes{1, 2}}};
  CHECK(decode_values(encode_values(m)) == m);
  CHECK(kind_name(Value(c).kind()) == "chunked");
  CHECK(Value(c).as_chunked() == c);
  std::string text = to_json(m).dump();
  CHECK(text ==
        R"({"data":{"$chunked":{"stream":3,"size":18446744073709551615,"sha256":")"
        R"(000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}},"small":{"$bytes":"AQI="}})");
  CHECK(map_from_json_text(text) == m);
  const std::string zeros(64, '0');
  for (std::string bad : {R"({"stream":0,"size":1,"sha256":")" + zeros + "\"}",
                          R"({"stream":4294967296,"size":1,"sha256":")" + zeros + "\"}",
                          R"({"stream":1,"size":-1,"sha256":")" + zeros + "\"}",
                          R"({"stream":1,"size":1,"sha256":")" + zeros.substr(2) + "\"}",
                          R"({"stream":1,"size":1,"sha256":")" + std::string(64, 'A') + "\"}",
                          std::string(R"({"stream":1,"size":1})")}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(map_from_json_text(R"({"d":{"$chunked":)" + bad + "}}"), doctest::Contains("$.d: $chunked"),
                         std::invalid_argument);
  }
  CHECK_THROWS_AS(to_json(Map{{"$chunked", Map{}}}), std::invalid_argument);
  // On the wire: stream 0 or a sha256 that is not 32 bytes makes the payload invalid.
  for (auto [stream, sha_len] : {std::pair<std::uint32_t, std::size_t>{0, 32}, {1, 31}}) {
    flatbuffers::FlatBufferBuilder fbb;
    auto key = fbb.CreateString("d");
    std::vector<std::uint8_t> sha(sha_len, 0);
    auto v = wire::CreateValue(fbb, wire::ValueKind::Chunked, false, 0, 0, 0, 0, 0, 0, 0, 0, stream, 5,
                               fbb.CreateVector(sha));
    auto e = wire::CreateEntry(fbb, key, v);
    fbb.Finish(wire::CreateValues(fbb, fbb.CreateVector(std::vector{e})), wire::ValuesIdentifier());
    CHECK_THROWS_WITH_AS(decode_values(std::span<const std::uint8_t>(fbb.GetBufferPointer(), fbb.GetSize())),
                         doctest::Contains(stream == 0 ? "stream 0" : "sha256 is not 32 bytes"), std::runtime_error);
  }
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

TEST_CASE("JSON nested deeper than kMaxJsonDepth is refused with a clear error, not a stack overflow") {
  auto nested = [](std::size_t depth) {  // {"x": [[...]]}: depth levels, the object included
    return "{\"x\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  };
  CHECK_NOTHROW(map_from_json_text(nested(kMaxJsonDepth)));
  CHECK_THROWS_WITH_AS(map_from_json_text(nested(kMaxJsonDepth + 1)), doctest::Contains("nested deeper than 128"),
                       std::invalid_argument);
  // fuzz finding: 100 000 levels in 200 KB overflowed the stack in the parser and from_json
  CHECK_THROWS_WITH_AS(map_from_json_text(nested(100'000)), doctest::Contains("nested deeper"),
                       std::invalid_argument);
  // brackets inside strings (escaped quotes included) do not count
  CHECK_FALSE(json_too_deep(R"({"a":"[[[\"[[["})", 1));
  CHECK(json_too_deep("[[", 1));
  // from_json has the same bound for JSON built in memory
  Json deep = Json::array();
  for (std::size_t i = 0; i < kMaxJsonDepth; ++i) deep = Json::array({deep});
  CHECK_THROWS_WITH_AS(from_json(deep), doctest::Contains("nested deeper"), std::invalid_argument);
}

TEST_CASE("a string that is not UTF-8 makes a Values buffer invalid, as in the Python and TypeScript SDKs") {
  // fuzz finding: such a string passed the Verifier and to_json(v).dump() then threw
  // nlohmann's type_error 316 (the bridge's uplink stopped on it)
  for (Map m : {Map{{"s", "caf\xe9"}}, Map{{"caf\xe9", 1}}, Map{{"e", ErrorValue{"E", "\xff"}}},
                Map{{"l", List{"ok", "\xc0\x80"}}}}) {
    auto bytes = encode_values(m);
    CHECK_THROWS_WITH_AS(decode_values(std::span<const std::uint8_t>(bytes)),
                         doctest::Contains("not valid UTF-8"), std::runtime_error);
  }
  Map ok{{"s", "héllo, 世界 🎉"}};
  auto bytes = encode_values(ok);
  CHECK(decode_values(std::span<const std::uint8_t>(bytes)) == ok);
  // node specs too: every string of a spec ends up in listings
  NodeSpec s;
  s.name = "n";
  s.description = "caf\xe9";
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(encode_node_spec(fbb, s));
  CHECK_THROWS_WITH_AS(decode_node_spec(flatbuffers::GetRoot<wire::NodeSpec>(fbb.GetBufferPointer())),
                       doctest::Contains("not valid UTF-8"), std::runtime_error);
}

TEST_CASE("valid_utf8 is as strict as Python's and TypeScript's decoders") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain ascii"));
  CHECK(valid_utf8("\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8e\x89 \xf4\x8f\xbf\xbf"));  // é 世 🎉 U+10FFFF
  CHECK_FALSE(valid_utf8("caf\xe9"));            // Latin-1
  CHECK_FALSE(valid_utf8("\xc0\x80"));           // overlong NUL
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));       // overlong '/'
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));       // a surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));   // above U+10FFFF
  CHECK_FALSE(valid_utf8("\xe4\xb8"));           // truncated
  CHECK_FALSE(valid_utf8("\x80"));               // a continuation byte first
  CHECK_FALSE(valid_utf8("\xf8\x88\x80\x80\x80"));  // five-byte form
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
  // a default with no JSON form: the error names the port (musterd refuses it at attach)
  s.inputs[0].default_value = Value(std::numeric_limits<double>::quiet_NaN());
  CHECK_THROWS_WITH_AS(to_json(s), doctest::Contains("port 'name': default: a non-finite float"),
                       std::invalid_argument);
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

TEST_CASE("decode_values with an owner reads large bytes in place and keeps the buffer alive") {
  Map m{{"big", Value(Bytes(10000, 0x33))}, {"small", Value(Bytes{1, 2, 3})},
        {"nested", Value(List{Value(Bytes(kBytesViewMin, 0x44))})}};
  auto buffer = std::make_shared<std::vector<std::uint8_t>>(encode_values(m));
  const std::uint8_t* first = buffer->data();
  const std::uint8_t* last = first + buffer->size();
  Map decoded = decode_values(std::span<const std::uint8_t>(*buffer), buffer);
  std::weak_ptr<std::vector<std::uint8_t>> watch = buffer;
  buffer.reset();  // the decoded values hold it now
  REQUIRE_FALSE(watch.expired());
  auto inside = [&](const Bytes& b) { return b.data() >= first && b.data() + b.size() <= last; };
  CHECK(inside(decoded.find("big")->as_bytes()));                           // a view
  CHECK(inside(decoded.find("nested")->as_list().at(0).as_bytes()));        // at the threshold: a view
  CHECK_FALSE(inside(decoded.find("small")->as_bytes()));                   // small: a copy
  CHECK(decoded == m);
  Map copy = decoded;  // copying shares, never copies the bytes
  CHECK(copy.find("big")->as_bytes().data() == decoded.find("big")->as_bytes().data());
  decoded = Map();
  CHECK_FALSE(watch.expired());  // `copy` still holds it
  copy = Map();
  CHECK(watch.expired());        // and nothing else did
  // Without an owner, every value is a copy of its own.
  auto bytes = encode_values(m);
  Map plain = decode_values(bytes);
  const std::uint8_t* at = plain.find("big")->as_bytes().data();
  bool in_buffer = at >= bytes.data() && at < bytes.data() + bytes.size();
  CHECK_FALSE(in_buffer);
  CHECK(plain == m);
}

TEST_CASE("decode_verified_values reads a message's verified nested Values as decode_values does") {
  // The SDK worker and the client library decode the nested payloads of a message that
  // read_*_message verified with this, not verifying them a second time: the same values, the
  // same UTF-8 errors, an absent field an empty map.
  flatbuffers::FlatBufferBuilder fbb;
  auto inputs = create_nested_values(fbb, sample());
  auto parameters = create_nested_values(fbb, Map{{"s", "caf\xe9"}});
  auto body = wire::CreateWorkRequest(fbb, 7, fbb.CreateString("echo"), inputs, parameters);
  fbb.Finish(wire::CreateDaemonMessage(fbb, wire::DaemonBody::WorkRequest, body.Union()),
             wire::DaemonMessageIdentifier());
  auto* msg = read_daemon_message(std::span<const std::uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()));
  REQUIRE(msg != nullptr);  // the Verifier does not look at UTF-8: decoding does
  auto* w = msg->body_as_WorkRequest();
  REQUIRE(w != nullptr);
  CHECK(decode_verified_values(payload_bytes(w->inputs())) == sample());
  CHECK(decode_verified_values(payload_bytes(w->inputs())) == decode_values(payload_bytes(w->inputs())));
  CHECK_THROWS_WITH_AS(decode_verified_values(payload_bytes(w->parameters())),
                       doctest::Contains("payload is not a valid muster Values buffer: "), std::runtime_error);
  CHECK_THROWS_WITH_AS(decode_verified_values(payload_bytes(w->parameters())), doctest::Contains("not valid UTF-8"),
                       std::runtime_error);
  CHECK(decode_verified_values(payload_bytes(nullptr)).size() == 0);
}
