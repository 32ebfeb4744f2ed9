// gateway_json_text.cpp — the gateway's direct JSON writer (gateway/core/json_text.cpp) and the
// execution.updated message written with it: byte for byte what nlohmann's dump writes (every
// escape, UTF-8 and invalid-UTF-8 case, and random values), parsed back by nlohmann, and
// written without allocating when the buffer has room.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "allocation_counter.hpp"
#include "muster/gateway/envelope.hpp"
#include "muster/gateway/executions.hpp"
#include "muster/gateway/json_text.hpp"

using namespace muster;
using namespace muster::gateway;

namespace {
std::string reference(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string written(const Json& j) {
  std::string out = "prefix:";
  append_json(out, j);
  REQUIRE(out.rfind("prefix:", 0) == 0);  // appends, never overwrites
  return out.substr(7);
}

// A string of random bytes, biased towards the ones JSON and UTF-8 care about.
std::string random_bytes(std::mt19937& rng) {
  static const std::string interesting = std::string("\"\\/\b\f\n\r\t\x01\x1f\x7f a~", 14) +
                                         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x80\xbf\xc0\xc1\xed\xa0\x80\xf4\x90\xfe\xff";
  std::uniform_int_distribution<int> len(0, 24), pick(0, 3), byte(0, 255);
  std::uniform_int_distribution<std::size_t> at(0, interesting.size() - 1);
  std::string s;
  for (int i = len(rng); i > 0; --i) s += pick(rng) ? interesting[at(rng)] : static_cast<char>(byte(rng));
  return s;
}

Json random_json(std::mt19937& rng, int depth = 0) {
  std::uniform_int_distribution<int> kind(0, depth > 2 ? 6 : 8);
  switch (kind(rng)) {
    case 0: return nullptr;
    case 1: return std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    case 2: return std::uniform_int_distribution<std::int64_t>(std::numeric_limits<std::int64_t>::min())(rng);
    case 3: return std::uniform_int_distribution<std::uint64_t>()(rng);
    case 4: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    case 5:
    case 6: return random_bytes(rng);
    case 7: {
      Json o = Json::object();
      for (int i = std::uniform_int_distribution<int>(0, 4)(rng); i > 0; --i) o[random_bytes(rng)] = random_json(rng, depth + 1);
      return o;
    }
    default: {
      Json a = Json::array();
      for (int i = std::uniform_int_distribution<int>(0, 4)(rng); i > 0; --i) a.push_back(random_json(rng, depth + 1));
      return a;
    }
  }
}
}  // namespace

TEST_CASE("gateway json text: every escape and UTF-8 case as nlohmann dumps it") {
  std::vector<std::string> cases = {"", "plain ascii 0123 ~", "\"", "\\", "a\"b\\c", "/", "\b\f\n\r\t",
                                    std::string("nul\0byte", 8), "\x01\x1f", "\x7f", "caf\xc3\xa9", "\xe2\x82\xac",
                                    "\xf0\x9f\x98\x80", "\x80", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                    "\xfe\xff", "ok\xe2\x82"};
  for (int c = 0; c < 256; ++c) cases.push_back(std::string(1, static_cast<char>(c)));
  for (auto& s : cases) {
    CAPTURE(s);
    std::string out;
    append_json_string(out, s);
    CHECK(out == reference(Json(s)));
    CHECK(written(Json(s)) == reference(Json(s)));
    CHECK(Json::parse(out).is_string());
  }
  for (const Json& j : {Json(nullptr), Json(true), Json(false), Json(0), Json(-1), Json(std::numeric_limits<std::int64_t>::min()),
                        Json(std::numeric_limits<std::uint64_t>::max()), Json(1.5), Json(-0.0), Json(1e300),
                        Json(std::nan("")), Json(INFINITY), Json::object(), Json::array(),
                        Json{{"b", 1}, {"a", Json::array({1, "x", nullptr})}}, Json::binary({1, 2, 3})}) {
    CAPTURE(reference(j));
    CHECK(written(j) == reference(j));
  }
  std::string out;
  append_json_integer(out, std::int64_t{-42});
  append_json_integer(out, std::uint64_t{18446744073709551615ull});
  CHECK(out == "-4218446744073709551615");
}

TEST_CASE("gateway json text: random values are written as nlohmann dumps them and parse back") {
  std::mt19937 rng(20261206);
  for (int i = 0; i < 20000; ++i) {
    Json j = random_json(rng);
    auto out = written(j);
    REQUIRE(out == reference(j));
    auto back = Json::parse(out, nullptr, /*allow_exceptions=*/false);
    REQUIRE_FALSE(back.is_discarded());
  }
}

TEST_CASE("gateway json text: execution.updated is the envelope of execution_payload, byte for byte") {
  std::mt19937 rng(7);
  const char* statuses[] = {"pending", "running", "completed", "failed", "cancelled"};
  for (int i = 0; i < 5000; ++i) {
    ExecutionState s;
    s.execution_id = std::uniform_int_distribution<std::uint64_t>()(rng);
    s.node = random_bytes(rng);
    s.client_ref = random_json(rng, 2);
    s.status = statuses[i % 5];
    s.step = std::uniform_int_distribution<std::uint64_t>()(rng);
    s.total = i % 3;
    s.message = random_bytes(rng);
    if (i % 5 == 2) s.outputs = random_json(rng);
    if (i % 5 >= 3) {
      s.error_code = random_bytes(rng) + "E";
      s.error_message = random_bytes(rng);
    }
    s.started_at = std::uniform_int_distribution<std::int64_t>(0, 4'000'000'000)(rng);
    s.completed_at = i % 5 >= 2 ? s.started_at + 1 : 0;
    std::int64_t now = 1'765'000'000 + i;
    std::string out;
    append_execution_updated(out, s, now);
    REQUIRE(out == make_message("execution.updated", execution_payload(s), now));
    auto m = Json::parse(out);
    CHECK(m["type"] == "execution.updated");
    CHECK(m["payload"]["execution_id"] == s.execution_id);
  }
}

// (A float goes through nlohmann's serializer, which allocates its output adapter.)
TEST_CASE("gateway json text: an everyday execution.updated is written without allocating") {
  ExecutionState s;
  s.execution_id = 12345;
  s.node = "echo";
  s.client_ref = 77;
  s.status = "completed";
  s.outputs = Json{{"x", 1}, {"text", "hello"}, {"list", Json::array({1, true, "three", nullptr})}};
  s.started_at = s.completed_at = 1'765'000'000;
  std::string out;
  out.reserve(4096);
  auto before = test::allocations_on_this_thread();
  append_execution_updated(out, s, 1'765'000'001);
  append_message(out, "pong", nullptr, 1'765'000'001);
  CHECK(test::allocations_on_this_thread() - before == 0);
}
