// gateway_calls.cpp — calls through the gateway: execution.start / REST bodies, cancel, the
// execution.updated payload, the HTTP status of each muster error code, the login limiter.
#include <doctest/doctest.h>

#include "muster/gateway/call_errors.hpp"
#include "muster/gateway/executions.hpp"
#include "muster/gateway/login_limiter.hpp"

using namespace muster;
using namespace muster::gateway;

namespace {
std::string refused(const std::variant<CallRequest, std::string>& r) {
  REQUIRE(std::holds_alternative<std::string>(r));
  return std::get<std::string>(r);
}
}  // namespace

TEST_CASE("gateway calls: execution.start payloads") {
  auto ok = parse_execution_start(Json::parse(
      R"({"node":"sleep","inputs":{"ms":5,"b":{"$bytes":"aGk="}},"parameters":{"p":1},"timeout_ms":900,"client_ref":"r1"})"));
  REQUIRE(std::holds_alternative<CallRequest>(ok));
  auto& r = std::get<CallRequest>(ok);
  CHECK(r.node == "sleep");
  CHECK(r.inputs.find("ms")->as_int() == 5);
  CHECK(r.inputs.find("b")->kind() == ValueKind::Bytes);
  CHECK(r.parameters.find("p")->as_int() == 1);
  CHECK(r.timeout_ms == 900);
  CHECK(r.client_ref == "r1");
  CHECK(refused(parse_execution_start(Json::parse(R"({"inputs":{}})"))) == "'node' must be a string");
  CHECK(refused(parse_execution_start(Json::parse(R"({"node":"bad name"})"))).find("not a valid node name") != std::string::npos);
  CHECK(refused(parse_execution_start(Json::parse(R"({"node":"n","inputs":[1]})"))) == "'inputs' must be an object");
  CHECK(refused(parse_execution_start(Json::parse(R"({"node":"n","timeout_ms":-1})"))).find("timeout_ms") != std::string::npos);
  CHECK(refused(parse_execution_start(Json::parse(R"({"node":"n","inputs":{"x":{"$bytes":"!!"}}})"))).find("inputs") != std::string::npos);
  CHECK(refused(parse_execution_start(Json())).find("object") != std::string::npos);
}

TEST_CASE("gateway calls: REST bodies") {
  CHECK(std::holds_alternative<CallRequest>(parse_rest_call("echo", "")));
  auto ok = parse_rest_call("echo", R"({"inputs":{"a":1},"timeout_ms":10})");
  REQUIRE(std::holds_alternative<CallRequest>(ok));
  CHECK(std::get<CallRequest>(ok).inputs.find("a")->as_int() == 1);
  CHECK(refused(parse_rest_call("echo", "{x")) == "the body is not valid JSON");
  CHECK(refused(parse_rest_call("echo", R"({"input":{}})")).find("unknown field 'input'") != std::string::npos);
  CHECK(refused(parse_rest_call("echo", "[]")).find("object") != std::string::npos);
  CHECK(refused(parse_rest_call("no/such", "{}")).find("node name") != std::string::npos);
}

TEST_CASE("gateway calls: execution.cancel payloads") {
  CHECK(std::get<std::uint64_t>(parse_execution_cancel(Json::parse(R"({"execution_id":7})"))) == 7);
  CHECK(std::holds_alternative<std::string>(parse_execution_cancel(Json::parse(R"({"execution_id":"7"})"))));
  CHECK(std::holds_alternative<std::string>(parse_execution_cancel(Json::parse(R"({"execution_id":-7})"))));
  CHECK(std::holds_alternative<std::string>(parse_execution_cancel(Json())));
}

TEST_CASE("gateway calls: the execution.updated payload") {
  ExecutionState s;
  s.execution_id = 3;
  s.node = "sleep";
  s.client_ref = "r";
  s.status = "running";
  s.step = 2;
  s.total = 10;
  s.message = "slept 2/10";
  s.started_at = 100;
  auto j = execution_payload(s);
  CHECK(j["execution_id"] == 3);
  CHECK(j["status"] == "running");
  CHECK(j["progress"] == Json{{"step", 2}, {"total", 10}, {"message", "slept 2/10"}});
  CHECK(j["outputs"].is_null());
  CHECK(j["error"].is_null());
  CHECK(j["completed_at"].is_null());
  s.status = "failed";
  s.error_code = "TIMEOUT";
  s.error_message = "too slow";
  s.completed_at = 105;
  j = execution_payload(s);
  CHECK(j["error"] == Json{{"code", "TIMEOUT"}, {"message", "too slow"}});
  CHECK(j["completed_at"] == 105);
}

TEST_CASE("gateway calls: HTTP status and execution status per muster error code") {
  using E = wire::ErrorCode;
  CHECK(http_status_for(E::NoWorker) == 404);
  CHECK(http_status_for(E::Timeout) == 504);
  CHECK(http_status_for(E::WorkerLost) == 502);
  CHECK(http_status_for(E::Cancelled) == 409);
  CHECK(http_status_for(E::InvalidRequest) == 400);
  CHECK(http_status_for(E::PermissionDenied) == 403);
  CHECK(http_status_for(E::QueueFull) == 429);
  CHECK(http_status_for(E::WorkerError) == 422);
  CHECK(http_status_for(E::BadMessage) == 400);
  CHECK(http_status_for(E::Internal) == 500);
  CHECK(http_status_for(E::ShuttingDown) == 503);
  CHECK(http_status_for(E::Unavailable) == 503);
  CHECK(execution_status_for(E::Cancelled) == "cancelled");
  CHECK(execution_status_for(E::Timeout) == "failed");
}

TEST_CASE("gateway calls: latency percentiles") {
  LatencyWindow w(100);
  CHECK(w.summary()["p50_us"] == 0);
  for (std::uint64_t i = 1; i <= 200; ++i) w.add(i);  // the window keeps 101..200
  auto s = w.summary();
  CHECK(s["count"] == 200);
  CHECK(s["p50_us"] == 150);
  CHECK(s["p99_us"] == 199);
}

TEST_CASE("gateway login limiter: attempts per address and window") {
  LoginLimiter l(3, 60);
  CHECK_FALSE(l.attempt("a", 0));
  CHECK_FALSE(l.attempt("a", 1));
  CHECK_FALSE(l.attempt("a", 2));
  auto wait = l.attempt("a", 10);
  REQUIRE(wait);
  CHECK(*wait == 50);
  CHECK_FALSE(l.attempt("b", 10));  // another address has its own window
  CHECK_FALSE(l.attempt("a", 60));  // a new window
  LoginLimiter small(1, 60, 2);
  CHECK_FALSE(small.attempt("x", 0));
  CHECK_FALSE(small.attempt("y", 1));
  CHECK_FALSE(small.attempt("z", 2));  // the oldest window is forgotten
  CHECK(small.attempt("z", 3));
}
