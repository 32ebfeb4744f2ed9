// prometheus_text_test.cpp — the exposition-format writer (transport/prometheus_text.hpp)
// and musterd's /metrics page rendered from a core driven under a fake clock
// (broker/metrics_text.hpp), plus the metrics endpoint's HTTP answers (metrics_server.hpp).
#include <doctest/doctest.h>

#include <array>
#include <string>

#include "broker_core.hpp"
#include "metrics_server.hpp"
#include "metrics_text.hpp"
#include "muster/prometheus_text.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

TEST_CASE("the exposition writer escapes label values and writes cumulative histogram buckets") {
  PrometheusText t;
  t.family("x_total", "counter", "A help\\text\nwith a newline.");
  t.sample("x_total", {{"node", "a\"b\\c\nd"}}, std::uint64_t{7});
  t.sample("x_total", {}, 0.25);
  t.family("lat_seconds", "histogram", "Latency.");
  std::array<double, 2> bounds{0.001, 0.01};
  std::array<std::uint64_t, 3> counts{2, 3, 4};
  t.histogram("lat_seconds", {{"node", "n"}}, bounds, counts, 1.5);
  CHECK(t.text() ==
        "# HELP x_total A help\\\\text\\nwith a newline.\n"
        "# TYPE x_total counter\n"
        "x_total{node=\"a\\\"b\\\\c\\nd\"} 7\n"
        "x_total 0.25\n"
        "# HELP lat_seconds Latency.\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{node=\"n\",le=\"0.001\"} 2\n"
        "lat_seconds_bucket{node=\"n\",le=\"0.01\"} 5\n"
        "lat_seconds_bucket{node=\"n\",le=\"+Inf\"} 9\n"
        "lat_seconds_sum{node=\"n\"} 1.5\n"
        "lat_seconds_count{node=\"n\"} 9\n");
}

namespace {

// A core with one worker serving "n" that completed one call in 3 ms and failed one.
MetricsSnapshot snapshot_after_two_calls() {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  CoreConfig config;
  config.instance = "inst";
  BrokerCore core(config, now);
  Caller who;
  AttachEvent ev;
  ev.worker_id = "w1";
  ev.session = "s";
  ev.capacity = 2;
  NodeSpec spec;
  spec.name = "n";
  ev.nodes = {spec};
  core.on_attach(now, Peer{"wp", false, ""}, who, std::move(ev));
  std::uint64_t seq = 0;
  for (auto& a : core.actions())
    if (auto* p = std::get_if<SendPing>(&a)) seq = p->seq;
  core.on_pong(now, Peer{"wp", false, ""}, who, "w1", seq, "inst", {});
  std::vector<std::uint64_t> ids;
  for (std::uint64_t rid : {1, 2}) {
    SubmitEvent s;
    s.client_request_id = rid;
    s.node = "n";
    core.on_submit(now, Peer{"c", false, ""}, who, std::move(s));
  }
  for (auto& a : core.actions())
    if (auto* w = std::get_if<SendWorkRequest>(&a)) ids.push_back(w->request_id);
  REQUIRE(ids.size() == 2);
  now += 3ms;
  core.on_result(now, Peer{"wp", false, ""}, who, "w1", ids[0], Payload{});
  core.on_failure(now, Peer{"wp", false, ""}, who, "w1", ids[1], ErrorCode::WorkerError, "boom");
  MetricsSnapshot s;
  s.version = "1.2.3";
  s.instance = "inst";
  s.daemon = core.status(now);
  for (auto& ws : core.workspace_names()) s.workspaces.push_back({ws, core.status(now, ws)});
  s.nodes = core.node_stats(now, "");
  s.open_requests = core.open_requests();
  s.enrollments_ok = 4;
  s.identities_revoked = 1;
  return s;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("musterd's /metrics page: per-node counters and histograms, gauges, process metrics") {
  ProcessMetrics p;
  p.resident_bytes = 1024;
  p.open_fds = 9;
  auto text = render_metrics(snapshot_after_two_calls(), p);
  CHECK(has_line(text, "muster_build_info{version=\"1.2.3\",instance=\"inst\"} 1"));
  CHECK(has_line(text, "muster_workers{workspace=\"default\"} 1"));
  CHECK(has_line(text, "muster_requests_submitted_total{workspace=\"default\"} 2"));
  CHECK(has_line(text, "muster_node_requests_total{workspace=\"default\",node=\"n\",outcome=\"completed\"} 1"));
  CHECK(has_line(text, "muster_node_requests_total{workspace=\"default\",node=\"n\",outcome=\"worker_error\"} 1"));
  // Both calls took 3 ms: in the 4.096 ms bucket (a power-of-two bound of the core's), not below.
  CHECK(has_line(text, "muster_node_service_seconds_bucket{workspace=\"default\",node=\"n\",le=\"0.002048\"} 0"));
  CHECK(has_line(text, "muster_node_service_seconds_bucket{workspace=\"default\",node=\"n\",le=\"0.004096\"} 2"));
  CHECK(has_line(text, "muster_node_service_seconds_bucket{workspace=\"default\",node=\"n\",le=\"+Inf\"} 2"));
  CHECK(has_line(text, "muster_node_service_seconds_sum{workspace=\"default\",node=\"n\"} 0.006"));
  CHECK(has_line(text, "muster_node_service_seconds_count{workspace=\"default\",node=\"n\"} 2"));
  CHECK(has_line(text, "muster_node_queue_wait_seconds_count{workspace=\"default\",node=\"n\"} 2"));
  CHECK(has_line(text, "muster_node_workers{workspace=\"default\",node=\"n\"} 1"));
  CHECK(has_line(text, "muster_enrollments_total{result=\"ok\"} 4"));
  CHECK(has_line(text, "muster_revocations_total{kind=\"identity\"} 1"));
  CHECK(has_line(text, "process_resident_memory_bytes 1024"));
  CHECK(has_line(text, "process_open_fds 9"));
  // Every family is announced once, before its samples.
  CHECK(text.find("# TYPE muster_node_service_seconds histogram\n") != std::string::npos);
  CHECK(text.find("# TYPE muster_node_requests_total counter\n") < text.find("muster_node_requests_total{"));
}

TEST_CASE("the metrics endpoint answers GET /metrics, refuses other paths and methods") {
  auto render = [] { return std::string("m 1\n"); };
  auto ok = MetricsServer::respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render);
  CHECK(ok.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(ok.find("Content-Length: 4\r\n") != std::string::npos);
  CHECK(ok.substr(ok.size() - 4) == "m 1\n");
  auto head = MetricsServer::respond("HEAD /metrics HTTP/1.1\r\n\r\n", render);
  CHECK(head.find("Content-Length: 4\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  CHECK(MetricsServer::respond("GET /metrics?x=1 HTTP/1.1\r\n\r\n", render).rfind("HTTP/1.1 200", 0) == 0);
  CHECK(MetricsServer::respond("GET / HTTP/1.1\r\n\r\n", render).rfind("HTTP/1.1 404", 0) == 0);
  CHECK(MetricsServer::respond("POST /metrics HTTP/1.1\r\n\r\n", render).rfind("HTTP/1.1 405", 0) == 0);
  CHECK(MetricsServer::respond("garbage", render).rfind("HTTP/1.1 400", 0) == 0);
  CHECK(MetricsServer::respond("GET /metrics HTTP/1.1\r\n\r\n", [] { return std::string(); })
            .rfind("HTTP/1.1 503", 0) == 0);
}

TEST_CASE("the metrics endpoint refuses a non-loopback address unless allowed") {
  MetricsExchange exchange;
  CHECK_THROWS_WITH_AS(MetricsServer("0.0.0.0:0", false, exchange),
                       doctest::Contains("--metrics-allow-remote"), std::invalid_argument);
  CHECK_THROWS_AS(MetricsServer("nonsense", false, exchange), std::invalid_argument);
  CHECK_THROWS_AS(MetricsServer("example.invalid:80", false, exchange), std::invalid_argument);
  MetricsServer local("127.0.0.1:0", false, exchange);
  CHECK(local.bound_address().rfind("127.0.0.1:", 0) == 0);
  MetricsServer any("0.0.0.0:0", true, exchange);
  CHECK(any.bound_address().rfind("0.0.0.0:", 0) == 0);
}
