// gateway_metrics.cpp — the gateway's /metrics counters and text (gateway/core/metrics.hpp)
// and the per-node stats and recent failures its pushes carry (Catalog::update_stats).
#include <doctest/doctest.h>

#include <string>

#include "muster/gateway/catalog.hpp"
#include "muster/gateway/metrics.hpp"

using namespace muster;
using namespace muster::gateway;

TEST_CASE("gateway metrics: counters, call outcomes and the call latency histogram") {
  GatewayMetrics m;
  m.http_request();
  m.websocket_opened();
  m.message_received();
  m.messages_sent(3);
  m.upload("completed", 1000);
  m.upload("failed", 0);
  m.call("completed", 0.004);
  m.call("completed", 0.2);
  m.call("cancelled", 100);
  auto text = m.render({2, 1, true}, ProcessMetrics{});
  auto has = [&](const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; };
  CHECK(has("muster_gateway_up 1"));
  CHECK(has("muster_gateway_websocket_connections 2"));
  CHECK(has("muster_gateway_websocket_messages_sent_total 3"));
  CHECK(has("muster_gateway_uploads_total{result=\"completed\"} 1"));
  CHECK(has("muster_gateway_upload_bytes_total 1000"));
  CHECK(has("muster_gateway_calls_total{outcome=\"completed\"} 2"));
  CHECK(has("muster_gateway_calls_total{outcome=\"cancelled\"} 1"));
  CHECK(has("muster_gateway_call_seconds_bucket{le=\"0.005\"} 1"));
  CHECK(has("muster_gateway_call_seconds_bucket{le=\"0.25\"} 2"));
  CHECK(has("muster_gateway_call_seconds_bucket{le=\"60\"} 2"));
  CHECK(has("muster_gateway_call_seconds_bucket{le=\"+Inf\"} 3"));
  CHECK(has("muster_gateway_call_seconds_count 3"));
}

TEST_CASE("catalog: services carry their node's stats, recent failures of the workspace only") {
  Catalog c("default", 60);
  Json nodes = Json::array({Json{{"name", "hello"}, {"workspace", "default"}, {"workers", 1u}},
                            Json{{"name", "quiet"}, {"workspace", "default"}, {"workers", 1u}}});
  c.update(nodes, Json::array(), 1000);
  Json stats{{"nodes", Json::array({Json{{"workspace", "default"}, {"node", "hello"}, {"completed", 5u}, {"failed", 1u},
                                         {"rate_1m", 0.5}, {"service", Json{{"p50_us", 1500u}, {"p90_us", 2000u}, {"p99_us", 9000u}}},
                                         {"queue_wait", Json{{"p50_us", 40u}}}},
                                    Json{{"workspace", "beta"}, {"node", "quiet"}, {"completed", 7u}}})},
             {"recent_failures", Json::array({Json{{"workspace", "default"}, {"node", "hello"}, {"code", "TIMEOUT"},
                                                   {"message", "late"}, {"age_ms", 1500u}},
                                              Json{{"workspace", "beta"}, {"node", "x"}, {"code", "NO_WORKER"},
                                                   {"message", "other"}, {"age_ms", 1u}}})}};
  c.update_stats(stats, 1'765'000'000'000);
  auto services = c.services()["services"];
  REQUIRE(services.size() == 2);
  CHECK(services[0]["stats"] == Json{{"completed", 5u}, {"failed", 1u}, {"rate_per_s", 0.5}, {"p50_ms", 1.5},
                                     {"p90_ms", 2.0}, {"p99_ms", 9.0}, {"queue_wait_p50_ms", 0.04}});
  CHECK(services[1]["stats"]["completed"] == 0);  // beta's "quiet" is not this workspace's
  REQUIRE(c.recent_failures().size() == 1);
  CHECK(c.recent_failures()[0] == Json{{"node", "hello"}, {"code", "TIMEOUT"}, {"message", "late"},
                                       {"time", "2025-12-06T05:46:38.500Z"}});
}
